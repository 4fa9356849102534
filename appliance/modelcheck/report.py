"""The check's report as text for a person: the verdict first, then tensors, every op, the partition."""


def _io_line(d: dict) -> str:
    q = f" scale {d['scale']:.6g} zero point {d['zero_point']}" if isinstance(d["scale"], float) else ""
    return f"{d['name'] or '?'}: {d['dtype']} {d['shape']}{q}"


def format_report(r: dict) -> str:
    lines = [f"{r['file']}: {r['verdict'].upper()}"]
    if "summary" not in r:  # unreadable
        lines += [f"  problem: {p}" for p in r["problems"]]
        return "\n".join(lines)
    lines.append(f"  {r['summary']}")
    kind = r["kind"] or "not usable by the appliance"
    size = f", input {r['input_size'][0]}x{r['input_size'][1]}" if r["input_size"] else ""
    lines.append(f"  kind: {kind}{size}" + (f" ({r['kind_problem']})" if r["kind_problem"] else ""))
    lines += [f"  input  {_io_line(d)}" for d in r["inputs"]]
    lines += [f"  output {_io_line(d)}" for d in r["outputs"]]
    t = r["tensors"]
    lines.append(f"  tensors: {t['total']} ({t['quantized']} 8-bit activations; float: {len(t['float'])}, "
                 f"dynamic: {len(t['dynamic'])}, over 3 non-1 dims: {len(t['over_3_dims'])})")
    if r["twin"]:
        tw = r["twin"]
        match = "matches" if tw["matches"] else "does NOT match"
        lines.append(f"  CPU twin {tw['file']}: predicted {tw['ops_on_edgetpu']} of {tw['ops_total']} ops on "
                     f"the Edge TPU, CPU ops {tw['cpu_ops_predicted'] or 'none'}; the compiled file {match} "
                     f"(CPU ops {tw['cpu_ops_in_compiled'] or 'none'})")
    lines.append("  ops:")
    for op in r["ops"]:
        lines.append(f"    {op['index']:3d} {op['op']:<28} {op['runs_on']:<7} {op['verdict']:<11} "
                     f"{op['reason']}")
    if r["problems"]:
        lines.append("  problems:")
        lines += [f"    - {p}" for p in r["problems"]]
    lines.append(f"  checked in {r['seconds'] * 1000:.0f} ms")
    return "\n".join(lines)
