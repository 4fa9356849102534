"""Bring your own model: upload through the real web server, config paths, labels in three forms."""

import dataclasses
import io
import uuid
import zipfile

import pytest
from conftest import DETECTOR, TINY_CLASSIFIER
from modelcheck_helpers import partial_classifier
from web_helpers import Client, web_config

from appliance.custom_models import CustomModels, embedded_labels, load_labels
from appliance.errors import ModelError
from appliance.web import models_api


@pytest.fixture(scope="module")
def system(models_dir, tmp_path_factory):
    """A real System served by waitress, built but not started: uploads need no camera loop, and an idle
    System leaves the CPU to the tests that run after these."""
    yield from idle_served(tmp_path_factory.mktemp("custom-models"))


def idle_served(data_dir):
    from appliance.system import System
    from appliance.web.app import create_app
    from appliance.web.server import serve

    system = System(web_config(data_dir))
    system.web_server = serve(create_app(system), "127.0.0.1", 0, 4)
    try:
        yield system
    finally:
        system.stop()


@pytest.fixture
def client(system):
    return Client(system.web_server.port)


def upload(client, data: bytes, kind: str, *, filename: str = "m.tflite", labels: bytes | None = None,
           name: str | None = None):
    """POST /api/models as multipart/form-data, built by hand like any HTTP client would."""
    boundary = uuid.uuid4().hex
    parts = [(b'form-data; name="kind"', kind.encode())]
    if name:
        parts.append((b'form-data; name="name"', name.encode()))
    parts.append((b'form-data; name="model"; filename="%s"' % filename.encode(), data))
    if labels is not None:
        parts.append((b'form-data; name="labels"; filename="labels.txt"', labels))
    body = b"".join(b"--%s\r\nContent-Disposition: %s\r\n\r\n%s\r\n" % (boundary.encode(), d, v)
                    for d, v in parts) + b"--%s--\r\n" % boundary.encode()
    return client.request("POST", "/api/models", raw=body,
                          headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})


def kept(system) -> list[str]:
    folder = system.config.data_dir / "custom_models"
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


def test_good_upload_is_checked_loaded_kept_listed_and_deleted(client, system, models_dir):
    labels = (models_dir / "imagenet_labels.txt").read_bytes()
    status, _, info = upload(client, (models_dir / TINY_CLASSIFIER).read_bytes(), "classifier",
                             filename=TINY_CLASSIFIER, labels=labels, name="tiny")
    assert status == 201, info
    assert (info["name"], info["kind"], info["verdict"]) == ("tiny", "classifier", "full")
    assert info["labels"] == 1001 and info["labels_source"] == "the upload" and info["problems"] == []
    assert info["notice"] is None and info["cpu_ms_per_frame"] > 0 and info["input_size"] == [128, 128]
    assert "vision] classifier" in info["use"] and "tiny.tflite" in info["use"]
    assert {"tiny.tflite", "tiny.txt", "tiny.json"} <= set(kept(system))
    status, _, listed = client.get("/api/models")
    assert status == 200 and [m["name"] for m in listed["models"]] == ["tiny"]
    assert client.request("DELETE", "/api/models/tiny")[0] == 204
    assert "tiny.tflite" not in kept(system)
    assert client.request("DELETE", "/api/models/tiny")[0] == 404


def test_truncated_model_is_refused_and_nothing_kept(client, system, models_dir):
    before = kept(system)
    status, _, body = upload(client, (models_dir / TINY_CLASSIFIER).read_bytes()[:100_000], "classifier",
                             name="cut")
    assert status == 400 and "truncated or corrupt" in body["error"] and body["fix"]
    assert kept(system) == before


def test_detector_given_as_a_classifier_is_refused(client, system, models_dir):
    status, _, body = upload(client, (models_dir / DETECTOR).read_bytes(), "classifier", name="ssd")
    assert status == 400 and "is detector, not a classifier" in body["error"]
    assert "upload it as a detector" in body["fix"] and "ssd.tflite" not in kept(system)


def test_too_big_an_upload_is_refused_before_it_is_read(client, system, models_dir, monkeypatch):
    monkeypatch.setattr(models_api, "MAX_MODEL_BYTES", 100_000)  # the 525 kB tiny model is then too big
    status, _, body = upload(client, (models_dir / TINY_CLASSIFIER).read_bytes(), "classifier", name="big")
    assert status == 413 and "more than" in body["error"] and "big.tflite" not in kept(system)
    with pytest.raises(ModelError, match="more than the 1,000 allowed"):
        CustomModels(system.config.data_dir, max_bytes=1000).add("big", b"x" * 2000, "classifier")


def test_partly_cpu_model_is_kept_with_a_notice_naming_the_split_op(client, system, tmp_path):
    status, _, info = upload(client, partial_classifier().bytes(), "classifier", name="long")
    assert status == 201, info
    assert info["verdict"] == "partial" and info["first_cpu_op"]["op"] == "SOFTMAX"
    assert info["notice"].startswith("long.tflite runs partly on the CPU: 3 of 4 ops on the Edge TPU, "
                                     "the rest from op 3 (SOFTMAX: Softmax input has 20,000 elements")
    assert "ms per frame measured on this CPU" in info["notice"]
    assert info["labels_source"] == "none: classes shown by number" and info["classes"] == 20_000
    assert client.request("DELETE", "/api/models/long")[0] == 204


def test_ssd_detector_upload_notes_its_cpu_postprocess(client, system, models_dir):
    status, _, info = upload(client, (models_dir / DETECTOR).read_bytes(), "detector", name="ssd",
                             labels=(models_dir / "coco_labels.txt").read_bytes())
    assert status == 201 and "TFLite_Detection_PostProcess" in info["notice"]
    assert info["labels"] == 90  # one per line, "n/a" in the gaps
    status, _, info = upload(client, (models_dir / DETECTOR).read_bytes(), "detector", name="ssd",
                             labels=b"0  person\n2 car\n17: cat\n")  # "id label" lines as pycoral's
    assert status == 201 and info["labels"] == 3
    text = (system.config.data_dir / "custom_models" / "ssd.txt").read_text()
    assert text == "0 person\n2 car\n17 cat\n"
    assert client.request("DELETE", "/api/models/ssd")[0] == 204


def test_bad_names_and_kinds_are_refused(client, models_dir):
    data = (models_dir / TINY_CLASSIFIER).read_bytes()
    status, _, body = upload(client, data, "classifier", name="../../etc/x")
    assert status == 400 and "not a usable model name" in body["error"]
    status, _, body = upload(client, data, "embedder", name="e")
    assert status == 400 and "unknown model kind" in body["error"]


def with_metadata_labels(model: bytes, labels: str) -> bytes:
    """A model with a labels file in its metadata zip, as Model Maker and Teachable Machine write them."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as archive:
        archive.writestr("labels.txt", labels)
    return model + buf.getvalue()


def test_labels_from_the_models_metadata(tmp_path, models_dir):
    data = with_metadata_labels((models_dir / TINY_CLASSIFIER).read_bytes(), "background\ncat\ndog\n")
    assert embedded_labels(data) == {0: "background", 1: "cat", 2: "dog"}
    assert embedded_labels(partial_classifier(5).bytes()) is None
    real = embedded_labels((models_dir / TINY_CLASSIFIER).read_bytes())  # Coral's file carries its labels
    assert len(real) == 1001 and real[1].startswith("tench")
    info = CustomModels(tmp_path).add("meta", data, "classifier")  # the model still loads and runs
    assert info["labels"] == 3 and info["labels_source"] == "the model's metadata"
    info = CustomModels(tmp_path).add("few", partial_classifier(2).bytes(), "classifier", "a\nb\nc\n")
    assert any("labels go up to id 2 but the model has 2 scores" in p for p in info["problems"])
    assert load_labels(tmp_path / "custom_models" / "meta.tflite", None)[0][2] == "dog"


def test_config_custom_classifier_uses_metadata_labels_and_shows_the_notice(tmp_path, models_dir):
    from appliance.system import Models

    path = tmp_path / "mine.tflite"
    path.write_bytes(with_metadata_labels(partial_classifier(50).bytes(), "a\nb\n"))
    config = web_config(tmp_path / "data")
    config = dataclasses.replace(
        config, vision=dataclasses.replace(config.vision, classifier=str(path), classifier_labels=""),
        recognition=dataclasses.replace(config.recognition, show_base_labels=True))
    models = Models(config)
    assert models.classifier.labels == {0: "a", 1: "b"}
    assert models.notices == [] and models.warning is None  # 50 classes: all of it maps
    path.write_bytes(partial_classifier(20_000).bytes())
    models = Models(config)
    assert len(models.notices) == 1 and "from op 3 (SOFTMAX" in models.notices[0]
    assert "mine.tflite runs partly on the CPU" in models.warning
