"""`appliance models check`: the real models (CPU and compiled twins) and small models built here."""

import json

import numpy as np
import pytest
from cli_helpers import private_home, run_cli  # noqa: F401
from conftest import DETECTOR, EMBEDDER, TINY_CLASSIFIER
from modelcheck_helpers import (
    chain_of_convs,
    conv,
    dynamic_middle,
    float_in_the_middle,
    float_io,
    four_big_dims,
    image_input,
    softmax_over,
)

from appliance.modelcheck.build import Builder
from appliance.modelcheck.check import check_file

KEYS = {"file", "verdict", "ops_total", "ops_on_edgetpu", "first_cpu_op", "compiled", "edgetpu_custom_ops",
        "kind", "problems"}


def write(tmp_path, builder: Builder, name: str = "m.tflite"):
    path = tmp_path / name
    path.write_bytes(builder.bytes())
    return path


def check_json(capsys, path) -> tuple[int, dict]:
    code, out, _ = run_cli(capsys, "models", "check", path, "--json")
    report = json.loads(out)
    assert set(report) >= KEYS
    return code, report


# --- the real models -----------------------------------------------------------------------------------

def test_cpu_embedder_maps_whole_and_its_compiled_twin_has_one_custom_op(models_dir, capsys):
    code, r = check_json(capsys, models_dir / EMBEDDER)
    assert (code, r["verdict"], r["compiled"], r["kind"]) == (0, "full", False, "embedder")
    assert r["ops_on_edgetpu"] == r["ops_total"] == 28 and r["first_cpu_op"] is None
    assert r["input_size"] == [224, 224]
    code, t = check_json(capsys, models_dir / EMBEDDER.replace(".tflite", "_edgetpu.tflite"))
    assert (code, t["verdict"], t["compiled"]) == (0, "full", True)
    assert t["edgetpu_custom_ops"] == t["ops_total"] == 1
    assert t["ops_on_edgetpu"] == 1 and t["kind"] == "embedder"
    assert t["twin"]["matches"] and t["twin"]["ops_on_edgetpu"] == 28
    assert t["twin"]["cpu_ops_in_compiled"] == []


@pytest.mark.parametrize("name", ["mobilenet_v1_0.25_128_quant", "mobilenet_v1_0.5_160_quant"])
def test_compiled_classifiers_match_the_prediction_for_their_cpu_twin(models_dir, name):
    cpu = check_file(models_dir / f"{name}.tflite")
    assert cpu["verdict"] == "full" and cpu["kind"] == "classifier"
    assert [r["op"] for r in cpu["ops"]][-2:] == ["RESHAPE", "SOFTMAX"]  # softmax over 1001: within 16,000
    tpu = check_file(models_dir / f"{name}_edgetpu.tflite")
    assert tpu["twin"]["matches"] and tpu["edgetpu_custom_ops"] == 1 and tpu["verdict"] == "full"


def test_ssd_detector_postprocess_runs_on_the_cpu(models_dir, capsys):
    code, r = check_json(capsys, models_dir / DETECTOR)
    assert (code, r["verdict"], r["kind"]) == (1, "partial", "detector")
    assert r["ops_total"] == 64 and r["ops_on_edgetpu"] == 63
    assert r["first_cpu_op"]["index"] == 63 and r["first_cpu_op"]["op"] == "TFLite_Detection_PostProcess"
    assert "custom operator" in r["first_cpu_op"]["reason"]
    assert any("63 of 64 ops would run on the Edge TPU; from op 63" in p for p in r["problems"])


def test_text_report_names_every_op_with_a_verdict(models_dir, capsys):
    code, out, _ = run_cli(capsys, "models", "check", models_dir / TINY_CLASSIFIER)
    assert code == 0 and "FULL" in out and "31 of 31 ops would run on the Edge TPU" in out
    assert out.count(" supported ") == 31 and "kind: classifier, input 128x128" in out


def test_not_a_model_and_a_truncated_model_are_unusable(models_dir, tmp_path, capsys):
    text = tmp_path / "notes.tflite"
    text.write_text("hello")
    code, r = check_json(capsys, text)
    assert (code, r["verdict"]) == (2, "unusable") and "no TFL3 identifier" in r["problems"][0]
    cut = tmp_path / "cut.tflite"
    cut.write_bytes((models_dir / TINY_CLASSIFIER).read_bytes()[:4000])
    code, r = check_json(capsys, cut)
    assert (code, r["verdict"]) == (2, "unusable") and "truncated" in r["problems"][0]


# --- models built here: each with the exact expected partition ------------------------------------------

def test_float_op_in_the_middle_cuts_at_the_dequantize(tmp_path, capsys):
    code, r = check_json(capsys, write(tmp_path, float_in_the_middle()))
    assert (code, r["verdict"], r["ops_total"], r["ops_on_edgetpu"]) == (1, "partial", 5, 1)
    assert r["first_cpu_op"]["index"] == 1 and r["first_cpu_op"]["op"] == "DEQUANTIZE"
    assert r["ops"][1]["verdict"] == "unknown"  # not in Coral's table: never guessed as supported
    assert r["ops"][2]["verdict"] == "unsupported" and "float32, not 8-bit" in r["ops"][2]["reason"]
    assert [o["runs_on"] for o in r["ops"]] == ["edgetpu", "cpu", "cpu", "cpu", "cpu"]
    assert r["tensors"]["float"] == ["dequantized", "doubled"] and r["tensors"]["float_parameters"] == ["two"]
    assert not r["tensors"]["float_only_at_edges"]


def test_four_non_1_dims_cut_at_the_reshape(tmp_path):
    r = check_file(write(tmp_path, four_big_dims()))
    assert (r["verdict"], r["ops_total"], r["ops_on_edgetpu"]) == ("partial", 3, 1)
    assert r["first_cpu_op"]["index"] == 1 and "4 dimensions larger than 1" in r["first_cpu_op"]["reason"]
    assert r["tensors"]["over_3_dims"] == ["batch_of_two [2, 4, 8, 3]", "conv1 [2, 4, 8, 3]"]


def test_unsupported_op_first_makes_the_model_unusable(tmp_path, capsys):
    b = Builder()
    x = image_input(b)
    y = conv(b, x, "conv0", (1, 8, 8, 3), dilation=(2, 1))
    out = conv(b, y, "conv1", (1, 8, 8, 3))
    b.io([x], [out])
    code, r = check_json(capsys, write(tmp_path, b))
    assert (code, r["verdict"], r["ops_on_edgetpu"], r["ops_total"]) == (2, "unusable", 0, 2)
    assert r["first_cpu_op"] == {"index": 0, "op": "CONV_2D",
                                 "reason": "Conv2d dilation differs in x (2) and y (1); it must be the same"}


def test_unsupported_op_last_leaves_the_rest_on_the_edge_tpu(tmp_path, capsys):
    code, r = check_json(capsys, write(tmp_path, chain_of_convs(4, dilation=(1, 2))))
    assert (code, r["verdict"], r["ops_on_edgetpu"], r["ops_total"]) == (1, "partial", 3, 4)
    assert r["first_cpu_op"]["index"] == 3


def test_a_supported_op_after_the_cut_still_runs_on_the_cpu(tmp_path):
    b = chain_of_convs(1, dilation=(2, 1))
    x = b.sg.outputs[0]
    for i in range(2):
        x = conv(b, x, f"after{i}", (1, 8, 8, 3))
    b.io(b.sg.inputs, [x])
    r = check_file(write(tmp_path, b))
    assert [(o["verdict"], o["runs_on"]) for o in r["ops"]] == [
        ("unsupported", "cpu"), ("supported", "cpu"), ("supported", "cpu")]


def test_dynamic_shape_cuts_where_it_appears(tmp_path):
    r = check_file(write(tmp_path, dynamic_middle()))
    assert (r["verdict"], r["ops_total"], r["ops_on_edgetpu"]) == ("partial", 3, 1)
    assert r["first_cpu_op"]["op"] == "RESHAPE" and "dynamic shape [-1, 192]" in r["first_cpu_op"]["reason"]
    assert r["tensors"]["dynamic"] == ["flat"]


def test_softmax_over_20000_elements_runs_on_the_cpu_and_1000_maps(tmp_path):
    r = check_file(write(tmp_path, softmax_over(20_000)))
    assert (r["verdict"], r["ops_on_edgetpu"], r["ops_total"]) == ("partial", 1, 2)
    assert r["first_cpu_op"] == {"index": 1, "op": "SOFTMAX",
                                 "reason": "Softmax input has 20,000 elements; at most 16,000 are supported"}
    ok = check_file(write(tmp_path, softmax_over(1000), "small.tflite"))
    assert (ok["verdict"], ok["ops_on_edgetpu"]) == ("full", 2)


def test_float_input_and_output_conversions_are_allowed(tmp_path):
    r = check_file(write(tmp_path, float_io()))
    assert (r["verdict"], r["ops_total"], r["ops_on_edgetpu"], r["first_cpu_op"]) == ("full", 3, 1, None)
    assert [o["runs_on"] for o in r["ops"]] == ["cpu", "edgetpu", "cpu"]
    assert "float conversion op(s) at the edges" in r["summary"]
    assert r["tensors"]["float_only_at_edges"] and r["tensors"]["float"] == ["input", "output"]
    assert r["tensors"]["all"][0] == {"name": "input", "dtype": "float32", "shape": [1, 8, 8, 3], "scale": [],
                                      "zero_point": [], "index": 0, "constant": False}


def test_an_op_missing_from_the_table_is_unknown_not_supported(tmp_path):
    b = chain_of_convs(2)
    y = b.sg.outputs[0]
    axis = b.tensor("axis", (1,), "int32", data=np.array([3]))
    out = b.tensor("argmax", (1, 8, 8), "uint8", **{"scale": 1.0, "zero_point": 0})
    b.op("ARG_MAX", [y, axis], [out], b.options("ArgMaxOptions", outputType=3))
    b.io(b.sg.inputs, [out])
    r = check_file(write(tmp_path, b))
    assert r["ops"][2]["verdict"] == "unknown" and "not in Coral's table" in r["ops"][2]["reason"]
    assert (r["verdict"], r["ops_on_edgetpu"]) == ("partial", 2)


def test_models_built_here_are_real_tflite_models(tmp_path):
    """The builder writes files the TFLite runtime loads and runs (so the checks above are of real files)."""
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_path=str(write(tmp_path, float_in_the_middle())))
    interp.allocate_tensors()
    interp.set_tensor(interp.get_input_details()[0]["index"], np.full((1, 8, 8, 3), 200, np.uint8))
    interp.invoke()
    assert interp.get_tensor(interp.get_output_details()[0]["index"]).shape == (1, 8, 8, 3)


def _with_argmax(b: Builder) -> Builder:
    y = b.sg.outputs[0]
    axis = b.tensor("axis", (1,), "int32", data=np.array([3]))
    out = b.tensor("argmax", (1, 8, 8), "uint8", **{"scale": 1.0, "zero_point": 0})
    b.op("ARG_MAX", [y, axis], [out], b.options("ArgMaxOptions", outputType=3))
    b.io(b.sg.inputs, [out])
    return b


def _compiled(tail: bool) -> Builder:
    """The graph shape edgetpu_compiler writes: one edgetpu-custom-op, then what it left to the CPU."""
    b = Builder()
    x = image_input(b)
    y = b.tensor("tpu_out", (1, 8, 8, 3), "uint8", 1 / 128, 128)
    b.op("edgetpu-custom-op", [x], [y])
    b.io([x], [y])
    return _with_argmax(b) if tail else b


def test_compiled_model_is_compared_with_the_prediction_for_its_twin(tmp_path):
    write(tmp_path, _with_argmax(chain_of_convs(2)), "net.tflite")
    same = check_file(write(tmp_path, _compiled(tail=True), "net_edgetpu.tflite"))
    assert (same["verdict"], same["compiled"], same["edgetpu_custom_ops"], same["ops_on_edgetpu"]) == (
        "partial", True, 1, 1)
    assert same["first_cpu_op"]["op"] == "ARG_MAX"
    assert "compiler left it to the CPU" in same["first_cpu_op"]["reason"]
    assert same["twin"]["matches"] and same["twin"]["cpu_ops_predicted"] == ["ARG_MAX"]
    other = check_file(write(tmp_path, _compiled(tail=False), "net_edgetpu.tflite"))
    assert other["verdict"] == "full" and not other["twin"]["matches"]
    assert any("the compiler left nothing to the CPU" in p and "['ARG_MAX']" in p for p in other["problems"])
