"""The classes service: teaching bursts from live frames into a real SQLite class store with the real
embedder, and every other change (rename, delete, clear, import), each with its events."""

import threading
import time

import numpy as np
import pytest
from pipeline_helpers import PhotoSource, wait_until

from appliance.classes import Classes, class_dict
from appliance.errors import ApplianceError, ConflictError, NotFoundError, SourceError
from appliance.learning.store import ClassStore
from appliance.pipeline.infer import Engines, Inference, InferSettings
from appliance.pipeline.worker import Pipeline
from appliance.teacher import Teacher, pick_evenly
from appliance.vision.embed import Embedder
from appliance.vision.model import load_model

EMBEDDER = "mobilenet_v1_1.0_224_quant_embedding_extractor.tflite"


@pytest.fixture(scope="module")
def embedder(models_dir):
    return Embedder(load_model(models_dir / EMBEDDER, device="cpu"))


@pytest.fixture
def rig(tmp_path, embedder, images_dir):
    source = PhotoSource([images_dir / "imprinting" / "cat_train_0.bmp",
                          images_dir / "imprinting" / "cat_test_0.bmp"], fps=30)
    pipe = Pipeline(source, Inference(Engines(embedder=embedder), InferSettings()))
    store = ClassStore(tmp_path / "classes.sqlite", EMBEDDER)
    teacher = Teacher(pipe, frames_per_burst=6, seconds=0.5, thumbnails_per_class=3)
    classes = Classes(store, pipe.events, teacher, slot_labels=("Class 1", "Class 2"))
    pipe.start()
    assert wait_until(lambda: pipe.latest_frame() is not None)
    yield source, pipe, store, classes
    pipe.stop()
    store.close()


def drain(sub):
    out = []
    while (item := sub.get(timeout=0)) is not None:
        out.append(item)
    return out


def test_teach_burst_adds_distinct_frames_in_one_transaction(rig):
    source, pipe, store, classes = rig
    sub = pipe.events.subscribe(maxsize=1000)
    seq_before = pipe.capture_seq
    version = store.version
    t0 = time.monotonic()
    info = classes.teach("cat")
    took = time.monotonic() - t0
    assert info.label == "cat" and info.samples == 6 and info.frames == 6
    assert store.version == version + 1, "one transaction"
    assert pipe.capture_seq - seq_before >= 6, "distinct frames, waited for new ones"
    assert 0.3 < took < 5.0
    assert len(store.thumbnails(info.id)) == 3 and store.thumbnail(info.id)[:2] == b"\xff\xd8"
    X, y = store.training_data()
    assert X.shape == (6, 1024) and np.allclose(np.linalg.norm(X, axis=1), 1, atol=1e-3)
    events = [(e, d.get("state")) for e, d in drain(sub) if e in ("teach", "classes")]
    assert events == [("teach", "started"), ("teach", "finished"), ("classes", None)]
    again = classes.add_samples(info.id)
    assert again.id == info.id and again.samples == 12 and not classes.teacher.busy
    assert classes.teach("CAT").samples == 18, "a known label adds samples to its class"
    with pytest.raises(ConflictError, match="already exists"):
        classes.teach_new("Cat")


def test_teach_while_busy_is_refused_not_queued(rig):
    _, _, store, classes = rig
    busy_seen = []
    classes.teacher.on_busy.append(lambda slot, busy: busy_seen.append((slot, busy)))
    worker = threading.Thread(target=classes.teach_slot, args=(1,))
    worker.start()
    assert wait_until(lambda: classes.teacher.busy, 2)
    with pytest.raises(ConflictError, match="a teaching burst is running"):
        classes.teach("dog")
    with pytest.raises(ConflictError):
        classes.teach_slot(2)  # a button press during a burst (Controls logs and ignores it)
    worker.join(5)
    assert [c.label for c in store.list_classes()] == ["Class 1"]
    assert busy_seen == [(1, True), (1, False)]


def test_clear_slot_keeps_the_class_without_samples(rig):
    _, _, store, classes = rig
    assert classes.clear_slot(1) is None  # never taught
    classes.teach_slot(1)
    info = classes.clear_slot(1)
    assert info.label == "Class 1" and info.samples == 0 and store.thumbnail(info.id) is None
    with pytest.raises(NotFoundError):
        classes.slot_label(3)
    with pytest.raises(NotFoundError):
        classes.add_samples(999)
    assert classes.slot_of("class 2") == 2 and classes.slot_of("cat") is None


def test_no_frames_fails_cleanly_and_frees_the_teacher(rig):
    source, pipe, store, classes = rig
    sub = pipe.events.subscribe(maxsize=100)
    source.empty = True
    with pytest.raises(SourceError, match="no camera frames"):
        classes.teach("ghost")
    assert not classes.teacher.busy and store.find("ghost") is None
    failed = [d for e, d in drain(sub) if e == "teach" and d["state"] == "failed"]
    assert len(failed) == 1 and "no camera frames" in failed[0]["error"] and failed[0]["fix"]
    source.empty = False
    assert classes.teach("back").samples == 6


def test_rename_delete_import_each_publish_the_class_list(tmp_path, rig):
    _, pipe, store, classes = rig
    cat = classes.teach_samples("cat", np.eye(3, 1024, dtype=np.float32))
    dog = classes.teach_samples("dog", np.eye(3, 1024, k=5, dtype=np.float32))
    sub = pipe.events.subscribe(maxsize=100)
    assert classes.rename(cat.id, " Kitty ").label == "Kitty"
    with pytest.raises(ApplianceError, match="empty"):
        classes.rename(dog.id, "   ")  # the one label rule: refused here as on the page and over MQTT
    export = tmp_path / "export.sqlite"
    classes.export(export)
    assert classes.delete(dog.id).label == "dog"
    imported = classes.import_(export, replacing=["kitty"])  # a newer fleet set replaces what it brought
    assert sorted(c.label for c in classes.list()) == ["Kitty", "dog"]
    assert {c.label for c in imported} == {"Kitty", "dog"}
    events = [(d["reason"], [c["label"] for c in d["classes"]]) for e, d in drain(sub) if e == "classes"]
    assert events == [("renamed", ["Kitty", "dog"]), ("deleted", ["Kitty"]),
                      ("imported", sorted(["Kitty", "dog"], key=[c.label for c in classes.list()].index))]
    assert classes.find("KITTY").label == "Kitty" and class_dict(classes.find("dog"))["samples"] == 3
    with pytest.raises(NotFoundError, match="no class labelled"):
        classes.find("bird")
    broken = tmp_path / "broken.sqlite"
    broken.write_bytes(b"SQLite format 3\x00" + bytes(4000))  # a cut-off download
    with pytest.raises(ApplianceError):
        classes.import_(broken, replacing=["kitty"])
    assert sorted(c.label for c in classes.list()) == ["Kitty", "dog"], "nothing replaced by a bad file"


def test_without_a_camera_teaching_says_how_to_teach(tmp_path):
    with ClassStore(tmp_path / "c.sqlite", EMBEDDER) as store:
        with pytest.raises(ApplianceError, match="no camera") as err:
            Classes(store).teach("cat")
        assert "appliance teach" in err.value.fix and store.list_classes() == []


def test_pick_evenly():
    assert pick_evenly(list(range(10)), 3) == [0, 3, 6]
    assert pick_evenly([1, 2], 4) == [1, 2] and pick_evenly([1], 0) == []
