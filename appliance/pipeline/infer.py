"""One frame -> Result: the engines each mode uses, timed per stage, with smoothing.

Kept apart from the threads in worker.py so it can be called (and tested, and benchmarked) directly.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from appliance.pipeline.result import Result
from appliance.pipeline.smoothing import Smoother, as_vote
from appliance.pipeline.tap import Embedded
from appliance.vision.preprocess import letterbox_size, shrink

if TYPE_CHECKING:
    from appliance.learning.recognizer import Recognizer
    from appliance.learning.store import ClassStore
    from appliance.vision.classify import Classifier
    from appliance.vision.detect import Detector
    from appliance.vision.embed import Embedder

MIN_CROP_PX = 16      # detected boxes smaller than this are not matched against taught classes
BASE_TOP_K = 3


@dataclass(frozen=True)
class Engines:
    """The loaded engines; any may be None when the mode does not need it."""

    embedder: Embedder | None = None
    recognizer: Recognizer | None = None
    classifier: Classifier | None = None
    detector: Detector | None = None
    store: ClassStore | None = None   # for "are there any classes?"


@dataclass(frozen=True)
class Job:
    """A frame handed to the models by `Inference.start`, waiting for `Inference.finish`."""

    seq: int
    frame: np.ndarray
    prepared: dict
    pending: dict  # engine role -> what its start() returned
    classes: tuple[int | None, bool] = (None, False)  # Inference.classes_state() when it started
    embed: bool = False  # a teaching burst wants this frame's embedding (Result.embedded)


@dataclass(frozen=True)
class InferSettings:
    mode: str = "classify"
    show_base_labels: bool = False
    classify_detections: bool = True
    detect_threshold: float = 0.4
    unknown_threshold: float = 0.6
    smoothing_frames: int = 5

    @classmethod
    def from_config(cls, recognition) -> InferSettings:
        return cls(recognition.mode, recognition.show_base_labels, recognition.classify_detections,
                   recognition.detect_threshold, recognition.unknown_threshold, recognition.smoothing_frames)


def _add_timings(stages: dict[str, float], timings) -> None:
    stages["preprocess"] = stages.get("preprocess", 0.0) + timings.preprocess_ms
    stages["invoke"] = stages.get("invoke", 0.0) + timings.invoke_ms
    stages["adapter"] = stages.get("adapter", 0.0) + timings.adapter_ms


def crop(frame: np.ndarray, bbox) -> np.ndarray | None:
    """The box's pixels (a view), or None when it is too small to recognise."""
    h, w = frame.shape[:2]
    x0, y0 = max(0, int(bbox.xmin)), max(0, int(bbox.ymin))
    x1, y1 = min(w, int(bbox.xmax)), min(h, int(bbox.ymax))
    if x1 - x0 < MIN_CROP_PX or y1 - y0 < MIN_CROP_PX:
        return None
    return np.ascontiguousarray(frame[y0:y1, x0:x1])


def main_object(frame: np.ndarray, objects) -> tuple[int | None, np.ndarray]:
    """What detect mode teaches from: the best-scoring object big enough to recognise (objects come best
    first) -> (its index, its pixels), else (None, the whole frame); so a class is taught from what it
    will be matched against — box crops."""
    for i, obj in enumerate(objects):
        pixels = crop(frame, obj.bbox)
        if pixels is not None:
            return i, pixels
    return None, frame


class Inference:
    """Runs one mode's engines on a frame; owned by the one inference thread (the smoother is not shared)."""

    def __init__(self, engines: Engines, settings: InferSettings) -> None:
        if settings.mode not in ("classify", "detect"):
            raise ValueError(f"unknown mode {settings.mode!r}")
        if settings.mode == "detect" and engines.detector is None:
            raise ValueError("detect mode needs a detector")
        if settings.mode == "classify" and engines.embedder is None and engines.classifier is None:
            raise ValueError("classify mode needs an embedder or a classifier")
        self.engines = engines
        self.settings = settings
        self.smoother = Smoother(settings.smoothing_frames, settings.unknown_threshold)
        self._classes_lock = threading.Lock()
        self._classes: tuple[int | None, bool] = (None, False)   # (store version, any class taught)
        self._smoothed_version: int | None = None                 # the version the smoother is for

    @property
    def mode(self) -> str:
        return self.settings.mode

    def _models(self) -> list:
        return [e.model for e in (self.engines.embedder, self.engines.classifier, self.engines.detector)
                if e is not None]

    @property
    def remote(self) -> bool:
        """Whether `start` returns before the model has run (the models are in the inference worker)."""
        return any(m.asynchronous for m in self._models())

    @property
    def overlaps(self) -> bool:
        """Whether starting the next frame while this one runs pays: the invoke leaves this machine's
        CPU (an accelerator), so queueing the next frame behind it keeps the accelerator busy."""
        return any(m.offloaded for m in self._models())

    def classes_state(self) -> tuple[int | None, bool]:
        """(store version, whether any class is taught), re-read only when the store's version moves.
        Called where a frame starts; the smoother follows the version where frames finish."""
        store = self.engines.store
        if store is None:
            return None, self.engines.recognizer is not None
        version = store.peek_version()  # None while another thread writes: never wait for teaching
        with self._classes_lock:
            if version is not None and version != self._classes[0]:
                self._classes = (version, any(c.samples > 0 for c in store.list_classes()))
            return self._classes

    def _follow(self, job: Job) -> bool:
        """Reset the smoothing when the classes changed since the last finished frame; -> any taught."""
        version, taught = job.classes
        if version != self._smoothed_version:
            self._smoothed_version = version
            self.smoother.reset()
        return taught

    def _recognize(self, embedding: np.ndarray, timings, stages: dict[str, float]):
        _add_timings(stages, timings)
        t0 = time.perf_counter()
        rec = self.engines.recognizer.recognize(embedding)
        stages["recognize"] = stages.get("recognize", 0.0) + (time.perf_counter() - t0) * 1e3
        return rec

    def prepare(self, frame: np.ndarray) -> dict:
        """Shrink the frame to each model's input now, in the capture thread, so that this work overlaps
        the previous frame's invoke; the inference thread then only copies it into the input tensor.
        The same pixels the models would make themselves (plain resize; the detector's letterbox)."""
        prepared: dict = {}
        eng = self.engines
        if self.settings.mode == "detect":
            h, w = frame.shape[:2]
            small, used = shrink(frame, letterbox_size((w, h), eng.detector.model.input_size))
            prepared["detect"] = (small, used)
            return prepared
        for engine in (eng.embedder, eng.classifier):
            if engine is not None and engine.model.input_size not in prepared:
                prepared[engine.model.input_size] = shrink(frame, engine.model.input_size)[0]
        return prepared

    def start(self, seq: int, frame: np.ndarray, prepared: dict | None = None, *, embed: bool = False) -> Job:
        """Hand the frame to the model(s) this mode needs first; the results are read by `finish`. With
        the models in the inference worker the next frame is started before the last one is finished,
        so the accelerator never waits for the CPU work around it. `embed`: a teaching burst wants this
        frame's embedding (in Result.embedded), so it is made even when nothing is taught yet."""
        prepared = prepared or {}
        eng = self.engines
        pending: dict[str, Any] = {}
        classes = self.classes_state()
        embed = embed and eng.embedder is not None
        if self.settings.mode == "detect":
            pixels = prepared["detect"][0] if "detect" in prepared else frame
            pending["detector"] = eng.detector.start(pixels)
            return Job(seq, frame, prepared, pending, classes, embed)
        if eng.embedder is not None and (eng.recognizer is None or classes[1] or embed):
            pending["embedder"] = eng.embedder.start(prepared.get(eng.embedder.model.input_size, frame))
        if eng.classifier is not None and (self.settings.show_base_labels or eng.embedder is None):
            pending["classifier"] = eng.classifier.start(prepared.get(eng.classifier.model.input_size, frame))
        return Job(seq, frame, prepared, pending, classes, embed)

    def finish(self, job: Job) -> Result:
        stages: dict[str, float] = {}
        if self.settings.mode == "detect":
            return self._detect(job, stages)
        return self._classify(job, stages)

    def run(self, seq: int, frame: np.ndarray, prepared: dict | None = None, *,
            embed: bool = False) -> Result:
        return self.finish(self.start(seq, frame, prepared, embed=embed))

    def _classify(self, job: Job, stages: dict[str, float]) -> Result:
        raw = smoothed = embedded = None
        classes = []
        eng = self.engines
        taught = self._follow(job)
        if "embedder" in job.pending:
            embedding, timings = eng.embedder.finish(job.pending["embedder"])
            if eng.recognizer is not None and taught:
                raw = self._recognize(embedding, timings, stages)
                smoothed = self.smoother.update(raw)
            else:  # embedder alone (benchmarks), or only for a burst: the work without a verdict
                _add_timings(stages, timings)
            if job.embed:
                embedded = Embedded(job.seq, job.frame, embedding)
        if "classifier" in job.pending:
            classes, timings = eng.classifier.finish(job.pending["classifier"], BASE_TOP_K, 0.05)
            _add_timings(stages, timings)
        return Result(job.seq, "classify", smoothed, classes, [], stages, [], raw, time.monotonic(), embedded)

    def _detect(self, job: Job, stages: dict[str, float]) -> Result:
        eng = self.engines
        frame = job.frame
        objects, timings = eng.detector.finish(job.pending["detector"], self.settings.detect_threshold)
        if "detect" in job.prepared:  # boxes came in the shrunk picture's pixels: back to the frame's
            small, (used_w, used_h) = job.prepared["detect"]
            sx, sy = used_w / small.shape[1], used_h / small.shape[0]
            objects = [o._replace(bbox=o.bbox.scale(sx, sy).map(round)) for o in objects]
        _add_timings(stages, timings)
        matches: list = [None] * len(objects)
        embeddings: dict[int, np.ndarray] = {}
        best = None
        taught = self._follow(job)
        if (self.settings.classify_detections and eng.embedder is not None and eng.recognizer is not None
                and objects and taught):
            for i, obj in enumerate(objects):
                pixels = crop(frame, obj.bbox)
                if pixels is None:
                    continue
                embedding, timings = eng.embedder.embed_timed(pixels)
                embeddings[i] = embedding
                vote = as_vote(self._recognize(embedding, timings, stages), self.settings.unknown_threshold)
                matches[i] = vote
                if vote.class_id is not None and (best is None or vote.score > best.score):
                    best = vote
        smoothed = self.smoother.update(best) if taught else None
        embedded = self._main_object_embedded(job, objects, embeddings, stages) if job.embed else None
        return Result(job.seq, "detect", smoothed, [], objects, stages, matches, best, time.monotonic(),
                      embedded)

    def _main_object_embedded(self, job: Job, objects: list, embeddings: dict[int, np.ndarray],
                              stages: dict[str, float]) -> Embedded:
        """The main object's embedding for a burst: the one its box was matched with, else made now."""
        i, pixels = main_object(job.frame, objects)
        if i is not None and i in embeddings:
            return Embedded(job.seq, pixels, embeddings[i])
        embedding, timings = self.engines.embedder.embed_timed(pixels)
        _add_timings(stages, timings)
        return Embedded(job.seq, pixels, embedding)
