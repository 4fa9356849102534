"""The vision benchmark runs on the real models and reports consistent figures."""

import json

from appliance.bench import vision as bench


def test_camera_frame_is_640x480_from_a_real_photo(images_dir):
    frame = bench.camera_frame(images_dir / "kite_and_cold.jpg")
    assert frame.shape == (480, 640, 3) and frame.dtype.name == "uint8" and frame.std() > 20


def test_bench_rows(models_dir, images_dir, capsys):
    tiny = models_dir / "mobilenet_v1_0.25_128_quant.tflite"
    detector = models_dir / "ssd_mobilenet_v1_coco_quant_2018_06_29_detect.tflite"
    photo = images_dir / "cat.bmp"
    code = bench.main(["--json", "--iterations", "3", "--device", "cpu", "--image", str(photo),
                       "--model", str(tiny), "--model", str(detector)])
    assert code == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["kind"] for r in rows] == ["classifier", "detector"]
    for r in rows:
        assert r["frame"] == [640, 480] and r["backend"] == "cpu" and r["invoke_ms"] > 0
        assert r["preprocess_adapter_ms"] > 0
        assert abs(r["ratio"] - r["preprocess_adapter_ms"] / r["invoke_ms"]) < 0.01 + 0.01 * r["ratio"]
