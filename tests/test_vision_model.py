"""Loading models: kinds, the device policy, and clear errors for files that cannot work."""

import shutil
import threading

import numpy as np
import pytest

from appliance.errors import DeviceError, ModelError
from appliance.vision import backends, edgetpu
from appliance.vision.classify import Classifier
from appliance.vision.detect import Detector
from appliance.vision.embed import Embedder
from appliance.vision.images import read_image
from appliance.vision.model import infer_kind, load_model, read_model_file, twin_for

CLASSIFIER = "mobilenet_v2_1.0_224_quant.tflite"
TINY = "mobilenet_v1_0.25_128_quant.tflite"
TINY_EDGETPU = "mobilenet_v1_0.25_128_quant_edgetpu.tflite"
DETECTOR = "ssd_mobilenet_v1_coco_quant_2018_06_29_detect.tflite"
EMBEDDER = "mobilenet_v1_1.0_224_quant_embedding_extractor.tflite"

NO_TPU = "this machine has an Edge TPU; the test checks the behaviour without one"
needs_no_tpu = pytest.mark.skipif(edgetpu.edge_tpu_present(), reason=NO_TPU)


@pytest.mark.parametrize(("name", "kind", "size"), [
    (CLASSIFIER, "classifier", (224, 224)),
    (TINY, "classifier", (128, 128)),
    (DETECTOR, "detector", (300, 300)),
    (EMBEDDER, "embedder", (224, 224)),
])
def test_kind_and_input_size_from_the_real_models(models_dir, name, kind, size):
    model = load_model(models_dir / name, device="cpu")
    assert (model.kind, model.input_size, model.backend, model.warning) == (kind, size, "cpu", None)


def test_infer_kind_reads_output_details():
    embedding = [{"name": "global_pool/embedding", "shape": np.array([1, 1280])}]
    assert infer_kind(embedding) == "embedder"
    assert infer_kind([{"name": "logits", "shape": np.array([1, 10])}]) == "classifier"
    signature = {f"output_{i}": i for i in range(4)}
    outputs = [{"name": f"StatefulPartitionedCall:{i}", "shape": np.array([1, 25])} for i in range(4)]
    assert infer_kind(outputs, signature) == "detector"
    with pytest.raises(ModelError, match="cannot tell what kind"):
        infer_kind([{"name": "mask", "shape": np.array([1, 128, 128, 21])}])


@needs_no_tpu
def test_auto_without_edge_tpu_runs_on_cpu_with_a_visible_warning(models_dir, caplog):
    model = load_model(models_dir / TINY)  # device="auto"
    assert model.backend == "cpu"
    assert "no Edge TPU" in model.warning and "CPU" in model.warning
    assert any(r.levelname == "WARNING" and "no Edge TPU" in r.getMessage() for r in caplog.records)


@needs_no_tpu
@pytest.mark.parametrize("device", ["auto", "cpu"])
def test_edgetpu_model_without_edge_tpu_names_the_cpu_twin(models_dir, device):
    with pytest.raises(ModelError) as err:
        load_model(models_dir / TINY_EDGETPU, device=device)
    assert "compiled for the Edge TPU" in err.value.problem
    assert TINY in err.value.fix


@needs_no_tpu
def test_edgetpu_custom_op_is_detected_even_when_renamed(models_dir, tmp_path):
    renamed = tmp_path / "mystery.tflite"
    shutil.copyfile(models_dir / TINY_EDGETPU, renamed)
    def compiled(path):
        return backends.compiled_for(read_model_file(path), path.stem)

    assert compiled(renamed) is not None and compiled(models_dir / TINY) is None  # by its op, not its name
    with pytest.raises(ModelError, match="compiled for the Edge TPU"):
        load_model(renamed, device="auto")


@needs_no_tpu
def test_device_edgetpu_without_one_is_a_device_error(models_dir):
    with pytest.raises(DeviceError) as err:
        load_model(models_dir / TINY, device="edgetpu")
    assert "no Edge TPU" in err.value.problem and "--device cpu" in err.value.fix


def test_unknown_device_is_refused(models_dir):
    with pytest.raises(DeviceError, match="unknown device"):
        load_model(models_dir / TINY, device="gpu")


def test_twin_names():
    assert twin_for("m/a_edgetpu.tflite", "cpu").name == "a.tflite"
    assert twin_for("m/a.tflite", "edgetpu").name == "a_edgetpu.tflite"
    assert twin_for("m/a_edgetpu.tflite", "edgetpu").name == "a_edgetpu.tflite"


def test_missing_model(tmp_path):
    with pytest.raises(ModelError, match="does not exist") as err:
        load_model(tmp_path / "nope.tflite", device="cpu")
    assert "appliance models fetch" in err.value.fix


def test_truncated_model(models_dir, tmp_path):
    cut = tmp_path / "cut.tflite"
    cut.write_bytes((models_dir / TINY).read_bytes()[:200_000])
    with pytest.raises(ModelError) as err:
        load_model(cut, device="cpu")
    assert "truncated or corrupt" in err.value.problem and err.value.fix


def test_non_tflite_file(tmp_path):
    text = tmp_path / "notes.tflite"
    text.write_text("this is not a model\n")
    with pytest.raises(ModelError, match="not a TFLite model"):
        load_model(text, device="cpu")
    empty = tmp_path / "empty.tflite"
    empty.write_bytes(b"")
    with pytest.raises(ModelError, match="not a TFLite model"):
        load_model(empty, device="cpu")


def test_wrong_engine_for_the_model_kind(models_dir):
    detector = load_model(models_dir / DETECTOR, device="cpu")
    classifier = load_model(models_dir / TINY, device="cpu")
    with pytest.raises(ModelError, match="is a detector model, not a classifier") as err:
        Classifier(detector)
    assert "appliance detect" in err.value.fix
    with pytest.raises(ModelError, match="is a classifier model, not a detector") as err:
        Detector(classifier)
    assert "appliance classify" in err.value.fix
    with pytest.raises(ModelError, match="is a classifier model, not an embedding extractor"):
        Embedder(classifier)


def test_one_model_is_safe_to_share_between_threads(models_dir, images_dir):
    classifier = Classifier(load_model(models_dir / TINY, device="cpu"))
    frames = [read_image(images_dir / name) for name in ("cat.bmp", "parrot.jpg", "bird.bmp")]
    expected = [classifier.classify(f, top_k=1)[0].id for f in frames]
    errors, got = [], []

    def work(i):
        try:
            for _ in range(15):
                got.append((i, classifier.classify(frames[i], top_k=1)[0].id))
        except Exception as exc:  # noqa: BLE001 - surfaced by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i % 3,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(got) == 90 and all(class_id == expected[i] for i, class_id in got)


def test_num_threads_default_uses_all_cores(models_dir, monkeypatch):
    import appliance.vision.model as model_module

    seen = {}
    real = model_module._make_interpreter

    def spy(path, backend, delegates, num_threads):
        seen["threads"] = num_threads
        return real(path, backend, delegates, num_threads)

    monkeypatch.setattr(model_module, "_make_interpreter", spy)
    monkeypatch.setattr(model_module.os, "cpu_count", lambda: 3)
    load_model(models_dir / TINY, device="cpu")
    assert seen["threads"] == 3
    load_model(models_dir / TINY, device="cpu", num_threads=1)
    assert seen["threads"] == 1
