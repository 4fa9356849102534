"""System built from a Config: real models, real SQLite store, an image-folder camera."""

import dataclasses
import threading
import time

import numpy as np
import pytest
from pipeline_helpers import wait_until
from system_helpers import CameraFolder, quick_config

from appliance.config import Config, apply_overrides
from appliance.errors import ApplianceError, ConflictError, ModelError
from appliance.learning.store import ClassStore
from appliance.system import System


@pytest.fixture
def camera(tmp_path):
    return CameraFolder(tmp_path / "camera")


def test_teach_recognise_persist_and_restart(tmp_path, models_dir, images_dir, camera):
    imp = images_dir / "imprinting"
    camera.show(imp / "cat_train_0.bmp")
    config = quick_config(tmp_path, models_dir)
    with System(config, source=camera.source()) as system:
        system.start()
        assert wait_until(lambda: system.latest_result() is not None, 20)
        sub = system.events.subscribe(maxsize=1000)
        cat = system.classes.teach("cat")
        camera.show(imp / "dog_train_0.bmp")
        assert wait_until(lambda: camera.showing(imp / "dog_train_0.bmp"), 10)
        dog = system.classes.teach("dog")
        assert wait_until(lambda: system.latest_result().recognition.label == "dog", 10)
        camera.show(imp / "cat_test_0.bmp")  # a different photo of the cat
        assert wait_until(lambda: system.latest_result().recognition.label == "cat", 10)
        status = system.status()
        assert status["classes"] == 2 and status["inferences"] > 10 and status["backend"] == "cpu"
        assert system.healthy()
        kinds = set()
        while (item := sub.get(timeout=0)) is not None:
            kinds.add(item[0])
        assert {"teach", "classes", "recognition", "status"} <= kinds
    assert not system.pipeline.running
    camera.show(imp / "dog_test_0.bmp")
    with System(config, source=camera.source()) as again:  # same data dir: classes are still there
        assert [(c.label, c.samples) for c in again.store.list_classes()] == [("cat", 10), ("dog", 10)]
        assert {cat.id, dog.id} == {c.id for c in again.store.list_classes()}
        again.start()
        assert wait_until(lambda: (r := again.latest_result()) is not None
                          and r.recognition.label == "dog", 20)


def test_stop_during_a_burst_commits_nothing_and_is_quick(tmp_path, models_dir, images_dir, camera):
    camera.show(images_dir / "cat.bmp")
    config = quick_config(tmp_path, models_dir)
    system = System(config, source=camera.source())
    system.start()
    assert wait_until(lambda: system.latest_result() is not None, 20)
    errors = []

    def burst():
        try:
            system.classes.teach("half")
        except Exception as exc:
            errors.append(exc)

    t = threading.Thread(target=burst)
    t.start()
    assert wait_until(lambda: system.teacher.busy, 2)
    with pytest.raises(ConflictError):
        system.classes.teach("other")
    t0 = time.monotonic()
    system.stop()
    took = time.monotonic() - t0
    t.join(3)
    assert took < 3.0
    store = ClassStore(config.data_dir / "classes.sqlite", "mobilenet_v1_1.0_224_quant_embedding_extractor")
    assert store.list_classes() == [] and errors
    store.close()


def test_detect_mode_system_matches_boxes_against_taught_classes(tmp_path, models_dir, images_dir, camera):
    camera.show(images_dir / "kite_and_cold.jpg")
    config = quick_config(tmp_path, models_dir, mode="detect")
    with System(config, source=camera.source()) as system:
        system.start()
        assert wait_until(lambda: system.latest_result() is not None, 20)
        result = system.latest_result()
        assert {"person", "kite"} <= {o.label for o in result.objects}
        assert result.matches == [None] * len(result.objects)  # nothing taught: base labels only
        system.classes.teach("Bob")  # taught from the best box's crop, as boxes are matched
        assert wait_until(lambda: any(m is not None and m.label == "Bob"
                                      for m in system.latest_result().matches), 10)
        assert system.status()["models"]["detector"].startswith("ssd_mobilenet")


def test_missing_model_is_a_clear_error(tmp_path):
    config = apply_overrides(Config(), device="cpu", data_dir=tmp_path, models_dir=tmp_path / "none",
                             web=False, controls=False, source="demo")
    vision = dataclasses.replace(config.vision, embedder=str(tmp_path / "x.tflite"))
    config = dataclasses.replace(config, vision=vision)
    with pytest.raises(ModelError, match="does not exist"):
        System(config)


def test_healthy_false_when_pipeline_not_running(tmp_path, models_dir, images_dir, camera):
    camera.show(images_dir / "cat.bmp")
    system = System(quick_config(tmp_path, models_dir), source=camera.source())
    assert not system.healthy()
    system.start()
    assert wait_until(system.healthy, 10)
    system.stop()
    assert not system.healthy()
    assert np.isfinite(system.status()["uptime_s"])


def test_camera_folder_vanishes_and_comes_back(tmp_path, models_dir, images_dir, camera):
    camera.show(images_dir / "cat.bmp")
    with System(quick_config(tmp_path, models_dir), source=camera.source()) as system:
        system.start()
        assert wait_until(lambda: system.status()["inferences"] > 2, 20)
        for photo in camera.folder.iterdir():
            photo.unlink()
        camera.folder.rmdir()  # the camera is gone
        assert wait_until(lambda: system.status()["connected"] is False, 5)
        seq = system.hub.latest()[0]
        assert system.hub.wait_next(seq, timeout=3)[0] > seq  # still serving "no signal"
        assert system.healthy() and system.status()["source_error"]
        camera.folder.mkdir()
        camera.show(images_dir / "cat.bmp")
        assert wait_until(lambda: system.status()["connected"] and system.status()["reconnects"] == 1, 15)
        assert system.status()["source_error"] is None  # cleared on reconnect
        inferences = system.status()["inferences"]
        assert wait_until(lambda: system.status()["inferences"] > inferences + 2, 5)


def test_port_in_use_is_a_clear_error_and_stop_still_works(tmp_path, models_dir, images_dir, camera):
    import socket

    camera.show(images_dir / "cat.bmp")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = quick_config(tmp_path, models_dir, web=True, host="127.0.0.1", port=port)
        system = System(config, source=camera.source())
        with pytest.raises(ApplianceError, match=f"cannot serve the web page on 127.0.0.1:{port}"):
            system.start()
        system.stop()
    assert not system.pipeline.running
