"""Apply the Edge TPU's rules to a model's graph: per-tensor and per-op verdicts, the single partition.

The rules are those of Coral's page on Edge TPU models: 8-bit tensors, static shapes, at most 3 dimensions
larger than 1, only the operations of its table (optable.py) within their limits; and the compiler's
single partition: from the first op that cannot map, everything runs on the CPU. A float model input may
be converted by a leading Quantize and a float output by a trailing Dequantize on the CPU (the page
allows that); those do not cut the partition.
"""

import time
from pathlib import Path

from appliance.errors import ApplianceError
from appliance.modelcheck.graph import EDGETPU_OP, Graph, Op, Tensor, load_graph
from appliance.modelcheck.optable import TABLE
from appliance.vision import backends
from appliance.vision.model import twin_for

DETECTION_OP = "TFLite_Detection_PostProcess"


def _tensor_problem(t: Tensor, role: str) -> str | None:
    if t.constant:
        return f"{role} '{t.name}' is {t.dtype}: a float parameter, not quantised" \
            if t.dtype.startswith("float") else None
    if not t.quantized:
        return f"{role} '{t.name}' is {t.dtype}, not 8-bit quantised (int8/uint8)"
    if t.dynamic:
        return f"{role} '{t.name}' has a dynamic shape {list(t.signature)} (sizes must be fixed)"
    if t.non1_dims > 3:
        return (f"{role} '{t.name}' {list(t.shape)} has {t.non1_dims} dimensions larger than 1 "
                "(at most the 3 innermost may be)")
    return None


def judge_op(g: Graph, op: Op) -> tuple[str, str]:
    """("supported" | "unsupported" | "unknown" | "edgetpu", reason in words) for one op in isolation."""
    if op.custom:
        if op.name == EDGETPU_OP:
            return "edgetpu", "the compiled Edge TPU part of the model"
        return "unsupported", "a custom operator: the Edge TPU runs only the operations of Coral's table"
    if op.name not in TABLE:
        return "unknown", f"{op.name} is not in Coral's table of supported operations (so not assumed to map)"
    for role, indices in (("input", op.inputs), ("output", op.outputs)):
        for i in indices:
            if i >= 0:
                problem = _tensor_problem(g.tensors[i], role)
                if problem:
                    return "unsupported", problem
    coral, limits, rule = TABLE[op.name]
    problem = rule(g, op)
    if problem:
        return "unsupported", f"{coral} {problem}"
    return "supported", f"{coral}" + (f" ({limits})" if limits else "")


def _float_edge(g: Graph, op: Op, first: bool) -> bool:
    """A leading Quantize of a float model input, or a trailing Dequantize to a float model output."""
    if first:
        return (op.name == "QUANTIZE" and len(op.inputs) == 1 and op.inputs[0] in g.inputs
                and g.tensors[op.inputs[0]].dtype.startswith("float"))
    return op.name == "DEQUANTIZE" and all(o in g.outputs for o in op.outputs)


def edges(g: Graph) -> tuple[int, int]:
    """How many ops lead (float input Quantize) and trail (float output Dequantize) on the CPU."""
    lead = 0
    while lead < len(g.ops) and _float_edge(g, g.ops[lead], True):
        lead += 1
    trail = 0
    while trail < len(g.ops) - lead and _float_edge(g, g.ops[len(g.ops) - 1 - trail], False):
        trail += 1
    return lead, trail


def partition(g: Graph) -> dict:
    """The ops with verdicts, and the predicted Edge TPU part: ops[lead:cut] (cut None = to the end)."""
    lead, trail = edges(g)
    rows, cut = [], None
    for op in g.ops:
        verdict, reason = judge_op(g, op)
        if op.index < lead or op.index >= len(g.ops) - trail:
            verdict, where = "supported", "cpu"
            reason = ("converts the float input to 8 bits on the CPU (allowed)" if op.index < lead
                      else "converts the 8-bit output to float on the CPU (allowed)")
        elif cut is None and verdict not in ("supported", "edgetpu"):
            cut, where = op.index, "cpu"
        else:
            where = "cpu" if cut is not None else "edgetpu"
        rows.append({"index": op.index, "op": op.name, "verdict": verdict, "runs_on": where,
                     "reason": reason})
    end = cut if cut is not None else len(g.ops) - trail
    return {"ops": rows, "lead": lead, "trail": trail, "cut": cut, "on_edgetpu": max(0, end - lead)}


def _tensor_facts(g: Graph, part: dict) -> dict:
    live = [t for t in g.tensors if not t.constant]
    edge_ops = [g.ops[i] for i in range(part["lead"])] + \
        [g.ops[len(g.ops) - 1 - i] for i in range(part["trail"])]
    at_edges = {i for op in edge_ops for i in (*op.inputs, *op.outputs) if i in g.inputs or i in g.outputs}
    floats = [t for t in live if t.dtype.startswith("float")]
    return {
        "float_only_at_edges": bool(floats) and all(t.index in at_edges for t in floats),
        "total": len(g.tensors),
        "quantized": sum(t.quantized for t in live),
        "float": [t.name for t in live if t.dtype.startswith("float")],
        "float_parameters": [t.name for t in g.tensors if t.constant and t.dtype.startswith("float")],
        "other_types": sorted({t.dtype for t in live if not t.quantized and not t.dtype.startswith("float")}),
        "dynamic": [t.name for t in live if t.dynamic],
        "over_3_dims": [f"{t.name} {list(t.shape)}" for t in live if t.non1_dims > 3],
        "all": [dict(_io(t), index=t.index, constant=t.constant) for t in g.tensors],
    }


def _io(t: Tensor) -> dict:
    return {"name": t.name, "dtype": t.dtype, "shape": list(t.shape),
            "scale": t.scale[0] if len(t.scale) == 1 else list(t.scale),
            "zero_point": t.zero_point[0] if len(t.zero_point) == 1 else list(t.zero_point)}


def kind_of(g: Graph) -> tuple[str | None, list[int] | None, str | None]:
    """(kind, [width, height], why the appliance cannot use it) from the graph alone."""
    from appliance.vision.model import infer_kind

    t = g.tensors[g.inputs[0]] if g.inputs else None
    if t is None or len(t.shape) != 4 or t.shape[0] != 1 or t.shape[3] != 3:
        shape = list(t.shape) if t is not None else None
        return None, None, (f"its input {shape} is not one RGB image (1, height, width, 3): "
                            "the appliance feeds camera frames")
    size = [t.shape[2], t.shape[1]]
    outputs = [{"name": g.tensors[i].name, "shape": g.tensors[i].shape} for i in g.outputs]
    try:
        kind = infer_kind(outputs, g.signature_outputs, any(op.name == DETECTION_OP for op in g.ops))
    except ApplianceError as exc:
        return None, size, exc.problem
    return kind, size, None


def _summary(part: dict, total: int) -> str:
    text = f"{part['on_edgetpu']} of {total} ops would run on the Edge TPU"
    if part["cut"] is not None:
        row = part["ops"][part["cut"]]
        text += f"; from op {row['index']} ({row['op']}: {row['reason']}) on, the CPU"
    cpu_edges = part["lead"] + part["trail"]
    if cpu_edges:
        text += f" ({cpu_edges} float conversion op(s) at the edges run on the CPU, as the page allows)"
    return text


def _compiled(g: Graph, part: dict) -> dict:
    """What the Edge TPU compiler did: the custom op(s), and the ops it left to the CPU after them."""
    custom = [op.index for op in g.ops if op.name == EDGETPU_OP]
    after = [r for r in part["ops"][custom[-1] + 1:] if r["index"] < len(g.ops) - part["trail"]]
    for r in after:
        r["runs_on"], r["verdict"] = "cpu", r["verdict"] if r["verdict"] != "supported" else "left-on-cpu"
        r["reason"] = "outside the edgetpu-custom-op: the compiler left it to the CPU; " + r["reason"]
    return {"custom": custom, "cpu_after": after}


def check_graph(g: Graph, file: str) -> dict:
    """The report of one graph (see `check_file` for the keys)."""
    part = partition(g)
    problems: list[str] = []
    if g.subgraphs > 1:
        problems.append(f"the model has {g.subgraphs} subgraphs; only the first is checked "
                        "(the compiler supports one)")
    compiled = any(op.name == EDGETPU_OP for op in g.ops)
    first = None
    if compiled:
        facts = _compiled(g, part)
        on_tpu = len(facts["custom"])
        if facts["cpu_after"]:
            r = facts["cpu_after"][0]
            first = {"index": r["index"], "op": r["op"], "reason": r["reason"]}
        summary = (f"compiled: {on_tpu} edgetpu-custom-op; "
                   + (f"{len(facts['cpu_after'])} op(s) after it run on the CPU, from op {first['index']} "
                      f"({first['op']})" if first else "nothing after it runs on the CPU"))
        for r in part["ops"]:
            if r["verdict"] == "edgetpu":
                r["runs_on"] = "edgetpu"
        cpu_ops = [r["op"] for r in facts["cpu_after"]]
    else:
        on_tpu = part["on_edgetpu"]
        if part["cut"] is not None:
            r = part["ops"][part["cut"]]
            first = {"index": r["index"], "op": r["op"], "reason": r["reason"]}
        summary = _summary(part, len(g.ops))
        cpu_ops = [r["op"] for r in part["ops"][part["cut"]:len(g.ops) - part["trail"]]] \
            if part["cut"] is not None else []
    if not g.ops or on_tpu == 0:
        verdict = "unusable"
        problems.append("no op would run on the Edge TPU" + (f": op 0 ({first['op']}) already cannot map"
                                                            if first else ""))
    else:
        verdict = "partial" if first else "full"
    if first and not compiled:
        problems.append(summary)
    facts_t = _tensor_facts(g, part)
    edges = (" (only the model's input / output, converted by a Quantize / Dequantize next to them: allowed)"
             if facts_t["float_only_at_edges"] else "")
    for key, text in (("float", "float tensor(s)" + edges), ("dynamic", "dynamic-shape tensor(s)"),
                      ("over_3_dims", "tensor(s) with more than 3 dimensions larger than 1"),
                      ("float_parameters", "float parameter tensor(s)")):
        if facts_t[key]:
            problems.append(f"{len(facts_t[key])} {text}: " + ", ".join(facts_t[key][:5])
                            + (" ..." if len(facts_t[key]) > 5 else ""))
    kind, size, why = kind_of(g)
    if why:
        problems.append(f"the appliance cannot use it: {why}")
    return {
        "file": file, "verdict": verdict, "ops_total": len(g.ops), "ops_on_edgetpu": on_tpu,
        "first_cpu_op": first, "compiled": compiled,
        "edgetpu_custom_ops": sum(op.name == EDGETPU_OP for op in g.ops), "kind": kind,
        "problems": problems, "summary": summary, "input_size": size, "kind_problem": why,
        "inputs": [_io(g.tensors[i]) for i in g.inputs], "outputs": [_io(g.tensors[i]) for i in g.outputs],
        "tensors": facts_t, "ops": part["ops"], "cpu_ops": cpu_ops, "twin": None,
    }


def cpu_twin(path: Path) -> Path | None:
    """The CPU model a compiled one was made from (by the compiler's naming), None for a CPU model."""
    twin = twin_for(path, backends.CPU)
    return twin if twin != path else None


def check_file(path: Path, *, twin: bool = True) -> dict:
    """Check one .tflite file; ModelError when it is not a readable model.

    Keys: file, verdict ("full" | "partial" | "unusable"), ops_total, ops_on_edgetpu, first_cpu_op
    (None or {index, op, reason}), compiled, edgetpu_custom_ops, kind, problems, and the details:
    summary, input_size, inputs, outputs, tensors, ops, cpu_ops, twin, seconds.
    """
    t0 = time.perf_counter()
    path = Path(path)
    g, size = load_graph(path)
    report = check_graph(g, str(path))
    report["bytes"] = size
    other = cpu_twin(path) if report["compiled"] and twin else None
    if other is not None and other.is_file():
        pred = check_file(other, twin=False)
        report["twin"] = {"file": str(other), "verdict": pred["verdict"], "ops_total": pred["ops_total"],
                          "ops_on_edgetpu": pred["ops_on_edgetpu"], "cpu_ops_predicted": pred["cpu_ops"],
                          "cpu_ops_in_compiled": report["cpu_ops"],
                          "matches": pred["cpu_ops"] == report["cpu_ops"]}
        if not report["twin"]["matches"]:
            report["problems"].append(
                f"the compiler left {report['cpu_ops'] or 'nothing'} to the CPU, the prediction for "
                f"{other.name} is {pred['cpu_ops'] or 'nothing'}")
    report["seconds"] = round(time.perf_counter() - t0, 4)
    return report


def unreadable(path: Path, exc: ApplianceError) -> dict:
    """The report of a file that is not a readable model: unusable, with the reason and the fix."""
    return {"file": str(path), "verdict": "unusable", "ops_total": 0, "ops_on_edgetpu": 0,
            "first_cpu_op": None, "compiled": False, "edgetpu_custom_ops": 0, "kind": None,
            "problems": [exc.problem + (f" (fix: {exc.fix})" if exc.fix else "")]}


EXIT_CODES = {"full": 0, "partial": 1, "unusable": 2}
