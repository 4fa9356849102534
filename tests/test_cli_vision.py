"""`appliance classify | detect | models` end to end on the real models and photos."""

import dataclasses
import json
import os
import subprocess
import sys

import pytest
from cli_helpers import private_home, run_cli  # noqa: F401 (private_home is an autouse fixture)

from appliance import model_files
from appliance.paths import REPO_ROOT

CATS = {"tabby, tabby cat", "tiger cat", "Egyptian cat"}
TINY = "mobilenet_v1_0.25_128_quant"
DETECTOR = "ssd_mobilenet_v1_coco_quant_2018_06_29_detect"


def test_classify_subprocess_json(tmp_path, images_dir):
    env = {**os.environ, "XDG_DATA_HOME": str(tmp_path / "xdg")}
    proc = subprocess.run(
        [sys.executable, "-m", "appliance", "classify", "--json", "--top-k", "3", "--models-dir",
         str(tmp_path / "models"), str(images_dir / "cat.bmp"), str(images_dir / "parrot.jpg")],
        capture_output=True, text=True, cwd=REPO_ROOT, env=env, timeout=60)
    assert proc.returncode == 0, proc.stderr
    results = json.loads(proc.stdout)
    assert [r["image"] for r in results] == [str(images_dir / "cat.bmp"), str(images_dir / "parrot.jpg")]
    assert results[0]["classes"][0]["label"] in CATS and results[1]["classes"][0]["label"] == "macaw"
    first = results[0]["classes"][0]
    assert set(first) == {"id", "label", "score"} and isinstance(first["id"], int)
    assert "no Edge TPU found: running on the CPU" in proc.stderr  # the warning is visible
    assert "Traceback" not in proc.stderr


def test_edgetpu_model_subprocess_error_names_the_twin(tmp_path, models_dir, images_dir):
    from appliance.vision.edgetpu import edge_tpu_present

    if edge_tpu_present():
        pytest.skip("an Edge TPU is present: the _edgetpu model would run")
    proc = subprocess.run(
        [sys.executable, "-m", "appliance", "classify", "--model", str(models_dir / f"{TINY}_edgetpu.tflite"),
         "--labels", str(models_dir / "imagenet_labels.txt"), str(images_dir / "cat.bmp")],
        capture_output=True, text=True, cwd=REPO_ROOT, timeout=60,
        env={**os.environ, "XDG_DATA_HOME": str(tmp_path)})
    assert proc.returncode == 2
    assert f"{TINY}.tflite" in proc.stderr and "fix:" in proc.stderr
    assert "Traceback" not in proc.stderr and proc.stdout == ""


def test_classify_human_output_with_name_and_labels(capsys, tmp_path, models_dir, images_dir):
    code, out, err = run_cli(capsys, "classify", "--model", TINY, "--labels", "imagenet_labels.txt",
                             "--top-k", "2", "--models-dir", str(tmp_path), str(images_dir / "parrot.jpg"))
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == str(images_dir / "parrot.jpg") and "macaw" in lines[1] and len(lines) == 3
    assert (tmp_path / f"{TINY}.tflite").is_file()  # copied in, verified


def test_classify_threshold_json(capsys, tmp_path, images_dir):
    code, out, _ = run_cli(capsys, "classify", "--json", "--threshold", "0.5", "--models-dir", str(tmp_path),
                           str(images_dir / "bird.bmp"))
    assert code == 0
    assert [c["label"] for c in json.loads(out)[0]["classes"]] == ["chickadee"]


def test_detect_json_boxes_in_image_pixels(capsys, tmp_path, images_dir):
    code, out, err = run_cli(capsys, "detect", "--json", "--models-dir", str(tmp_path),
                             str(images_dir / "cat.bmp"), str(images_dir / "kite_and_cold.jpg"))
    assert code == 0, err
    cat, kites = json.loads(out)
    assert set(cat) == {"image", "objects"}
    assert [o["label"] for o in cat["objects"]] == ["cat"]
    obj = cat["objects"][0]
    assert set(obj) == {"id", "label", "score", "bbox"} and obj["id"] == 16
    xmin, ymin, xmax, ymax = obj["bbox"]
    assert 0 <= xmin < xmax <= 512 and 0 <= ymin < ymax <= 341
    labels = [o["label"] for o in kites["objects"]]
    assert "person" in labels and "kite" in labels
    assert all(0 <= o["bbox"][0] < o["bbox"][2] <= 1352 and 0 <= o["bbox"][1] < o["bbox"][3] <= 900
               for o in kites["objects"])


def test_detect_human_output_and_threshold(capsys, tmp_path, images_dir):
    code, out, _ = run_cli(capsys, "detect", "--threshold", "0.95", "--models-dir", str(tmp_path),
                           str(images_dir / "cat.bmp"))
    assert code == 0
    assert out.splitlines() == [f"{images_dir / 'cat.bmp'} (512x341)", "  (nothing above 0.95)"]


@pytest.mark.parametrize(("argv", "problem"), [
    (["classify", "--model", DETECTOR], "is a detector model, not a classifier"),
    (["detect", "--model", TINY], "is a classifier model, not a detector"),
])
def test_wrong_model_kind(capsys, tmp_path, images_dir, argv, problem):
    code, out, err = run_cli(capsys, *argv, "--models-dir", str(tmp_path), str(images_dir / "cat.bmp"))
    assert code == 2 and out == ""
    assert problem in err and "fix:" in err


def test_bad_files(capsys, tmp_path, models_dir, images_dir):
    text_model = tmp_path / "model.tflite"
    text_model.write_text("hello")
    truncated = tmp_path / "cut.tflite"
    truncated.write_bytes((models_dir / f"{TINY}.tflite").read_bytes()[:4096])
    not_image = tmp_path / "x.jpg"
    not_image.write_text("nope")
    cases = [
        (["classify", "--model", str(text_model)], "not a TFLite model"),
        (["classify", "--model", str(truncated)], "truncated or corrupt"),
        (["classify", "--model", str(tmp_path / "gone.tflite")], "does not exist"),
        (["classify", "--model", "no_such_model"], "neither a file nor a model name"),
    ]
    for argv, problem in cases:
        code, out, err = run_cli(capsys, *argv, "--models-dir", str(tmp_path), str(images_dir / "cat.bmp"))
        assert code == 2 and problem in err, (argv, err)
    code, out, err = run_cli(capsys, "classify", "--models-dir", str(tmp_path), str(images_dir / "cat.bmp"),
                             str(not_image))
    assert code == 2 and "not an image" in err and out == ""
    code, _, err = run_cli(capsys, "detect", "--models-dir", str(tmp_path), str(tmp_path / "missing.png"))
    assert code == 2 and "does not exist" in err


def test_device_edgetpu_without_one(capsys, tmp_path, images_dir):
    from appliance.vision.edgetpu import edge_tpu_present

    if edge_tpu_present():
        pytest.skip("an Edge TPU is present")
    code, _, err = run_cli(capsys, "classify", "--device", "edgetpu", "--models-dir", str(tmp_path),
                           str(images_dir / "cat.bmp"))
    assert code == 2 and "no Edge TPU found" in err and "--device cpu" in err


def test_models_fetch_list_verify(capsys, tmp_path, models_dir):
    target = tmp_path / "m"
    code, out, err = run_cli(capsys, "models", "fetch", "--json", "--models-dir", str(target),
                             "--from", str(models_dir), TINY, "coco_labels.txt")
    assert code == 0, err
    rows = json.loads(out)
    assert [(r["name"], r["status"], r["source"]) for r in rows] == [
        (TINY, "ok", f"copied from {models_dir}"), ("coco_labels.txt", "ok", f"copied from {models_dir}")]
    code, out, _ = run_cli(capsys, "models", "list", "--json", "--models-dir", str(target))
    present = {r["name"] for r in json.loads(out) if r["present"]}
    assert present == {TINY, "coco_labels.txt"}
    code, out, _ = run_cli(capsys, "models", "verify", "--models-dir", str(target))
    assert code == 0 and f"ok        {TINY}" in out
    # damage one file: verify fails loudly, naming it
    path = target / f"{TINY}.tflite"
    data = path.read_bytes()
    path.write_bytes(data[:-1] + bytes([data[-1] ^ 0xFF]))
    code, out, err = run_cli(capsys, "models", "verify", "--json", "--models-dir", str(target))
    assert code == 2 and "failed verification" in err
    status = {r["name"]: r["status"] for r in json.loads(out)}
    assert status == {TINY: "mismatch", "coco_labels.txt": "ok"}


def test_models_fetch_default_set_skips_unavailable_twins(capsys, tmp_path, models_dir, monkeypatch):
    """The default set comes from ../shared/models; a twin that cannot be had is skipped, not fatal.

    Download URLs point at a closed port on 127.0.0.1, so the test never reaches the internet.
    """
    real = model_files.load_manifest()
    offline = {name: dataclasses.replace(e, url="http://127.0.0.1:9/" + e.file if e.url else "")
               for name, e in real.items()}
    monkeypatch.setattr(model_files, "load_manifest", lambda *a, **k: offline)
    code, out, err = run_cli(capsys, "models", "fetch", "--json", "--models-dir", str(tmp_path))
    assert code == 0, err
    status = {r["name"]: r["status"] for r in json.loads(out)}
    assert status == {
        "mobilenet_v2_1.0_224_quant": "ok", DETECTOR: "ok",
        "mobilenet_v1_1.0_224_quant_embedding_extractor": "ok", "imagenet_labels.txt": "ok",
        "coco_labels.txt": "ok", "mobilenet_v2_1.0_224_quant_edgetpu": "skipped",
        "mobilenet_v1_1.0_224_quant_embedding_extractor_edgetpu": "ok"}
    code, _, err = run_cli(capsys, "models", "fetch", "--models-dir", str(tmp_path / "x"), "resnet9000")
    assert code == 2 and "could not be fetched" in err


def test_classify_missing_store(capsys, tmp_path, images_dir):
    code, out, err = run_cli(capsys, "classify", "--store", str(tmp_path / "none.db"), "--models-dir",
                             str(tmp_path), str(images_dir / "cat.bmp"))
    assert code == 2 and "does not exist" in err and "appliance teach" in err
    assert not (tmp_path / "none.db").exists()


def test_classify_against_taught_classes(capsys, tmp_path, models_dir, images_dir):
    pytest.importorskip("appliance.learning.recognizer",
                        reason="appliance.learning.recognizer (the learning part) is not written yet")
    from appliance.learning.model_identity import model_identity
    from appliance.learning.store import ClassStore
    from appliance.vision.embed import Embedder
    from appliance.vision.images import read_image
    from appliance.vision.model import load_model

    embedder_path = models_dir / "mobilenet_v1_1.0_224_quant_embedding_extractor.tflite"
    embedder = Embedder(load_model(embedder_path, device="cpu"))
    folder = images_dir / "imprinting"
    store_path = tmp_path / "classes.db"
    store = ClassStore(store_path, embedding_model=model_identity(embedder_path))
    for label, prefix in (("cat", "cat"), ("dog", "dog"), ("hot dog", "hotdog")):
        images = sorted(folder.glob(f"{prefix}_train_*.bmp"))
        store.teach(label, [embedder.embed(read_image(p)) for p in images])
    store.close()
    tests = {"cat": folder / "cat_test_0.bmp", "dog": folder / "dog_test_0.bmp",
             "hot dog": folder / "hotdog_test_0.bmp"}
    code, out, err = run_cli(capsys, "classify", "--store", str(store_path), "--json",
                             "--model", str(embedder_path), *map(str, tests.values()))
    assert code == 0, err
    results = json.loads(out)
    assert [r["classes"][0]["label"] for r in results] == list(tests)
    assert all(isinstance(r["classes"][0]["id"], int) for r in results)
    # a detector is not an embedding extractor
    code, _, err = run_cli(capsys, "classify", "--store", str(store_path), "--model",
                           str(models_dir / f"{DETECTOR}.tflite"), str(tests["cat"]))
    assert code == 2 and "not an embedding extractor" in err
