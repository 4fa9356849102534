"""Teaching bursts from live frames into a real SQLite class store with the real embedder."""

import threading
import time

import numpy as np
import pytest
from pipeline_helpers import PhotoSource, wait_until

from appliance.errors import ConflictError, NotFoundError, SourceError
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
    teacher = Teacher(pipe, embedder, store, pipe.events, frames_per_burst=6, seconds=0.5,
                      thumbnails_per_class=3, slot_labels=("Class 1", "Class 2"))
    pipe.start()
    assert wait_until(lambda: pipe.latest_frame() is not None)
    yield source, pipe, store, teacher
    pipe.stop()
    store.close()


def drain(sub):
    out = []
    while (item := sub.get(timeout=0)) is not None:
        out.append(item)
    return out


def test_teach_burst_adds_distinct_frames_in_one_transaction(rig):
    source, pipe, store, teacher = rig
    sub = pipe.events.subscribe(maxsize=1000)
    seq_before = pipe.capture_seq
    version = store.version
    t0 = time.monotonic()
    info = teacher.teach(label="cat")
    took = time.monotonic() - t0
    assert info.label == "cat" and info.samples == 6
    assert store.version == version + 1, "one transaction"
    assert pipe.capture_seq - seq_before >= 6, "distinct frames, waited for new ones"
    assert 0.3 < took < 5.0
    assert len(store.thumbnails(info.id)) == 3 and store.thumbnail(info.id)[:2] == b"\xff\xd8"
    X, y = store.training_data()
    assert X.shape == (6, 1024) and np.allclose(np.linalg.norm(X, axis=1), 1, atol=1e-3)
    events = [(e, d.get("state")) for e, d in drain(sub) if e in ("teach", "classes")]
    assert events == [("teach", "started"), ("teach", "finished"), ("classes", None)]
    again = teacher.teach(class_id=info.id)
    assert again.id == info.id and again.samples == 12 and not teacher.busy


def test_teach_while_busy_is_refused_not_queued(rig):
    _, _, store, teacher = rig
    busy_seen = []
    teacher.on_busy.append(lambda slot, busy: busy_seen.append((slot, busy)))
    worker = threading.Thread(target=teacher.teach_slot, args=(1,))
    worker.start()
    assert wait_until(lambda: teacher.busy, 2)
    with pytest.raises(ConflictError, match="a teaching burst is running"):
        teacher.teach(label="dog")
    assert teacher.teach_slot(2) is None  # a button press during a burst: ignored
    worker.join(5)
    assert [c.label for c in store.list_classes()] == ["Class 1"]
    assert busy_seen == [(1, True), (1, False)]


def test_clear_slot_keeps_the_class_without_samples(rig):
    _, _, store, teacher = rig
    assert teacher.clear_slot(1) is None  # never taught
    teacher.teach_slot(1)
    info = teacher.clear_slot(1)
    assert info.label == "Class 1" and info.samples == 0 and store.thumbnail(info.id) is None
    with pytest.raises(NotFoundError):
        teacher.slot_label(3)
    with pytest.raises(NotFoundError):
        teacher.teach(class_id=999)
    assert teacher.slot_of("class 2") == 2 and teacher.slot_of("cat") is None


def test_no_frames_fails_cleanly_and_frees_the_teacher(rig):
    source, pipe, store, teacher = rig
    source.empty = True
    with pytest.raises(SourceError, match="no camera frames"):
        teacher.teach(label="ghost")
    assert not teacher.busy and store.find("ghost") is None
    source.empty = False
    assert teacher.teach(label="back").samples == 6


def test_pick_evenly():
    assert pick_evenly(list(range(10)), 3) == [0, 3, 6]
    assert pick_evenly([1, 2], 4) == [1, 2] and pick_evenly([1], 0) == []
