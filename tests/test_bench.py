"""`appliance bench`: the real pipeline unthrottled, against raw invoke of the same interpreter."""

import json

import pytest

from appliance.bench.pipeline import BenchSetup, format_report, run_bench
from appliance.cli import main
from appliance.errors import ApplianceError
from appliance.vision.labels import read_labels
from appliance.vision.model import load_model

TINY = "mobilenet_v1_0.25_128_quant.tflite"


def test_run_bench_reports_fps_ratio_stages_and_memory(models_dir):
    model = load_model(models_dir / TINY, device="cpu")
    setup = BenchSetup(model, read_labels(models_dir / "imagenet_labels.txt"), "demo", seconds=1.5,
                       warmup_s=0.3, invoke_s=0.5)
    report = run_bench(setup)
    assert report["pipeline_fps"] > 5 and report["invoke_fps"] > 5
    assert report["ratio"] == pytest.approx(report["pipeline_fps"] / report["invoke_fps"], rel=0.01)
    assert {"capture", "preprocess", "invoke", "annotate", "encode"} <= set(report["stages_ms"])
    assert report["inferences"] > 5 and report["frames_published"] > 0
    assert report["dropped_frames"] >= 0 and report["peak_rss_mb"] > 20
    text = format_report(report)
    assert "pipeline fps" in text and "ratio" in text


def test_mode_must_fit_the_model(models_dir):
    model = load_model(models_dir / TINY, device="cpu")
    with pytest.raises(ApplianceError, match="runs in classify mode"):
        run_bench(BenchSetup(model, None, "demo", 1, mode="detect"))


def test_bench_command_json(models_dir, images_dir, capsys):
    code = main(["bench", "--model", str(models_dir / "ssd_mobilenet_v1_coco_quant_2018_06_29_detect.tflite"),
                 "--source", str(images_dir / "kite_and_cold.jpg"), "--seconds", "1", "--device", "cpu",
                 "--in-process", "--json"])
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    for key in ("pipeline_fps", "invoke_fps", "ratio", "stages_ms", "dropped_frames", "peak_rss_mb"):
        assert key in report
    assert report["mode"] == "detect" and report["inferences"] > 0


def test_bench_through_the_worker_reports_the_process_hop(models_dir, capsys):
    code = main(["bench", "--model", str(models_dir / TINY), "--source", "demo", "--seconds", "1",
                 "--device", "cpu", "--json"])
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    assert report["inference"] == "worker process" and report["inferences"] > 5
    hop = report["process_hop"]
    assert hop["worker_call_ms"] > 0 and hop["in_process_call_ms"] > 0
    assert hop["hop_ms"] == pytest.approx(hop["worker_call_ms"] - hop["in_process_call_ms"], abs=0.002)


def test_bench_with_a_simulated_edge_tpu(models_dir, capsys):
    code = main(["bench", "--model", str(models_dir / TINY), "--source", "demo", "--seconds", "1",
                 "--simulate-edgetpu-ms", "20", "--json"])
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    assert report["backend"] == "simulated Edge TPU" and report["simulated_max_fps"] == 50.0
    # a 20 ms sleep bounds the rate from above whatever the machine does: proof the sleep replaced invoke
    assert 0 < report["pipeline_fps"] <= 50.0 and report["stages_ms"]["invoke"] >= 19.0
    assert report["ratio_to_simulated_max"] == pytest.approx(report["pipeline_fps"] / 50.0, abs=0.01)
