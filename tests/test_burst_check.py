"""The burst check on real embeddings of real photos: a burst across a photo change keeps the majority
or refuses; a steady (panning) view keeps every frame. And a real Teacher over the demo camera: held
still, a burst is one photo; not held, the burst that spans a photo change says so."""

from __future__ import annotations

import re

import numpy as np
import pytest

from appliance.camera.demo import DemoSource
from appliance.classes import Classes, class_dict
from appliance.errors import ConflictError
from appliance.learning.burst_check import LINK_SIMILARITY, check_burst, groups_of
from appliance.learning.store import ClassStore
from appliance.pipeline.infer import Engines, Inference, InferSettings
from appliance.pipeline.worker import Pipeline
from appliance.teacher import Teacher
from appliance.vision.embed import Embedder
from appliance.vision.model import load_model

EMBEDDER = "mobilenet_v1_1.0_224_quant_embedding_extractor.tflite"


@pytest.fixture(scope="module")
def embedder(models_dir):
    return Embedder(load_model(models_dir / EMBEDDER, device="cpu"))


@pytest.fixture(scope="module")
def demo_vectors(embedder) -> dict[str, np.ndarray]:
    """Ten panning frames of each demo photo (a 1 s scene at 10 fps), embedded: photo name -> (10, d)."""
    source = DemoSource(width=320, height=240, fps=10.0, seconds_per_scene=1.0, throttle=False)
    source.open()
    out: dict[str, list] = {}
    for _ in range(10 * len(source.photos)):
        name = source.showing
        out.setdefault(name, []).append(embedder.embed(source.read()))
    return {name: np.stack(v) for name, v in out.items()}


def test_the_link_threshold_sits_between_same_and_different_photos(demo_vectors):
    names = sorted(demo_vectors)
    assert names == ["cat.jpg", "owl.jpg", "parrot.jpg", "sunflower.jpg"]
    same = min(float((v @ v.T).min()) for v in demo_vectors.values())
    other = max(float((demo_vectors[a] @ demo_vectors[b].T).max()) for a in names for b in names if a != b)
    assert other + 0.05 < LINK_SIMILARITY < same - 0.1, (same, other)


def test_a_steady_view_keeps_every_frame(demo_vectors):
    check = check_burst(demo_vectors["owl.jpg"])  # the pan moves the picture; it is still one view
    assert check.keep == tuple(range(10)) and check.consistent and check.warning is None


def test_a_burst_across_a_photo_change_keeps_the_majority(demo_vectors):
    burst = np.concatenate([demo_vectors["cat.jpg"][4:], demo_vectors["owl.jpg"][:4]])  # 6 cat, 4 owl
    check = check_burst(burst)
    assert check.keep == tuple(range(6)) and check.groups == 2
    assert check.warning == "the view changed during teaching: kept 6 of 10 frames"
    assert [len(g) for g in groups_of(burst)] == [6, 4]


def test_a_burst_without_a_majority_is_refused(demo_vectors):
    even = np.concatenate([demo_vectors["parrot.jpg"][5:], demo_vectors["sunflower.jpg"][:5]])
    check = check_burst(even)
    assert check.refused and check.keep == () and check.groups == 2
    three = np.concatenate([demo_vectors["cat.jpg"][:4], demo_vectors["owl.jpg"][:3],
                            demo_vectors["parrot.jpg"][:3]])
    check = check_burst(three)
    assert check.refused and check.groups == 3
    assert check.warning.startswith("the view changed during teaching: 10 frames showed 3 different views")


def test_empty_and_single_frame_bursts():
    assert check_burst(np.zeros((0, 8), np.float32)).refused
    one = check_burst(np.ones((1, 8), np.float32))
    assert one.keep == (0,) and one.warning is None


def _rig(tmp_path, embedder, source, frames=10, seconds=1.0):
    pipe = Pipeline(source, Inference(Engines(embedder=embedder), InferSettings()))
    store = ClassStore(tmp_path / "classes.sqlite", EMBEDDER)
    teacher = Teacher(pipe, frames_per_burst=frames, seconds=seconds, thumbnails_per_class=2)
    return pipe, store, Classes(store, pipe.events, teacher)


def test_teacher_with_the_demo_held_still_learns_one_photo(tmp_path, embedder):
    source = DemoSource(width=320, height=240, fps=20.0, seconds_per_scene=0.4)
    pipe, store, classes = _rig(tmp_path, embedder, source)
    classes.teacher.on_busy.append(lambda slot, busy: source.hold(busy))  # as System wires it
    held: list[bool] = []
    classes.teacher.on_busy.append(lambda slot, busy: held.append(source.scene()["held"]))
    pipe.start()
    try:
        info = classes.teach("photo")  # 1 s: without the hold, two or three photo changes
        assert info.samples == 10 and info.kept == 10 and info.warning is None
        assert class_dict(info)["burst"] == {"frames": 10, "kept": 10, "warning": None}
        assert held == [True, False]  # held while the burst recorded, released after
    finally:
        pipe.stop()
        store.close()


def test_teacher_says_when_the_view_changed_during_the_burst(tmp_path, embedder):
    """The demo not holding stands for a camera whose view changes: every outcome says so."""
    source = DemoSource(width=320, height=240, fps=20.0, seconds_per_scene=0.7, holds=False)
    pipe, store, classes = _rig(tmp_path, embedder, source)
    sub = pipe.events.subscribe(maxsize=1000)
    pipe.start()
    try:
        try:
            info = classes.teach("moving")  # 1 s burst over 0.7 s photos: spans a change
        except ConflictError as exc:
            assert "the view changed during teaching" in exc.problem and "hold one thing still" in exc.fix
            assert store.list_classes() == []  # nothing learned
            events = [d for kind, d in _drain(sub) if kind == "teach"]
            assert events[-1]["state"] == "failed" and "view changed" in events[-1]["error"]
            return
        match = re.fullmatch(r"the view changed during teaching: kept (\d+) of 10 frames", info.warning or "")
        assert match, info.warning
        assert info.samples == info.kept == int(match.group(1)) and 5 < info.kept < 10
        finished = [d for kind, d in _drain(sub) if kind == "teach"][-1]
        assert finished["state"] == "finished" and finished["warning"] == info.warning
        assert class_dict(info)["burst"]["warning"] == info.warning
    finally:
        pipe.stop()
        store.close()


def _drain(sub) -> list:
    out = []
    while (item := sub.get(timeout=0)) is not None:
        out.append(item)
    return out
