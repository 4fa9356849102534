"""One frame -> Result: the engines each mode uses, timed per stage, with smoothing.

Kept apart from the threads in worker.py so it can be called (and tested, and benchmarked) directly.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from appliance.pipeline.result import Result
from appliance.pipeline.smoothing import Smoother, as_vote
from appliance.vision.preprocess import letterbox_size, shrink

MIN_CROP_PX = 16      # detected boxes smaller than this are not matched against taught classes
BASE_TOP_K = 3


@dataclass(frozen=True)
class Engines:
    """The loaded engines; any may be None when the mode does not need it."""

    embedder: Any = None      # vision.embed.Embedder
    recognizer: Any = None    # learning.recognizer.Recognizer
    classifier: Any = None    # vision.classify.Classifier
    detector: Any = None      # vision.detect.Detector
    store: Any = None         # learning.store.ClassStore (for "are there any classes?")


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


def main_object_crop(detector, threshold: float):
    """For detect mode teaching: the best-scoring detected object's pixels (else the whole frame), so a
    class is taught from what it will be matched against — box crops."""
    def region(frame: np.ndarray) -> np.ndarray:
        for obj in detector.detect(frame, threshold=threshold):  # best first
            pixels = crop(frame, obj.bbox)
            if pixels is not None:
                return pixels
        return frame
    return region


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
        self._store_version: int | None = None
        self._has_classes = False

    @property
    def mode(self) -> str:
        return self.settings.mode

    def has_classes(self) -> bool:
        """Whether any class is taught; re-read only when the store's version moves (and reset smoothing)."""
        store = self.engines.store
        if store is None:
            return self.engines.recognizer is not None
        version = store.peek_version()  # None while another thread writes: never wait for teaching
        if version is not None and version != self._store_version:
            self._store_version = version
            self._has_classes = any(c.samples > 0 for c in store.list_classes())
            self.smoother.reset()
        return self._has_classes

    def _recognize(self, rgb: np.ndarray, stages: dict[str, float]):
        embedding = self.engines.embedder.embed(rgb)
        _add_timings(stages, self.engines.embedder.last_timings)
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

    def run(self, seq: int, frame: np.ndarray, prepared: dict | None = None) -> Result:
        stages: dict[str, float] = {}
        prepared = prepared or {}
        if self.settings.mode == "detect":
            return self._detect(seq, frame, stages, prepared)
        return self._classify(seq, frame, stages, prepared)

    def _classify(self, seq: int, frame: np.ndarray, stages: dict[str, float], prepared: dict) -> Result:
        raw = smoothed = None
        classes = []
        eng = self.engines
        if eng.embedder is not None:
            pixels = prepared.get(eng.embedder.model.input_size, frame)
            if eng.recognizer is not None and self.has_classes():
                raw = self._recognize(pixels, stages)
                smoothed = self.smoother.update(raw)
            elif eng.recognizer is None:
                eng.embedder.embed(pixels)  # embedder alone (benchmarks): the work without a verdict
                _add_timings(stages, eng.embedder.last_timings)
        if eng.classifier is not None and (self.settings.show_base_labels or eng.embedder is None):
            pixels = prepared.get(eng.classifier.model.input_size, frame)
            classes = eng.classifier.classify(pixels, top_k=BASE_TOP_K, threshold=0.05)
            _add_timings(stages, eng.classifier.last_timings)
        return Result(seq, "classify", smoothed, classes, [], stages, [], raw, time.monotonic())

    def _detect(self, seq: int, frame: np.ndarray, stages: dict[str, float], prepared: dict) -> Result:
        eng = self.engines
        threshold = self.settings.detect_threshold
        if "detect" in prepared:  # boxes come in the shrunk picture's pixels: back to the frame's
            small, (used_w, used_h) = prepared["detect"]
            sx, sy = used_w / small.shape[1], used_h / small.shape[0]
            objects = [o._replace(bbox=o.bbox.scale(sx, sy).map(round))
                       for o in eng.detector.detect(small, threshold=threshold)]
        else:
            objects = eng.detector.detect(frame, threshold=threshold)
        _add_timings(stages, eng.detector.last_timings)
        matches: list = [None] * len(objects)
        best = None
        if (self.settings.classify_detections and eng.embedder is not None and eng.recognizer is not None
                and objects and self.has_classes()):
            for i, obj in enumerate(objects):
                pixels = crop(frame, obj.bbox)
                if pixels is None:
                    continue
                vote = as_vote(self._recognize(pixels, stages), self.settings.unknown_threshold)
                matches[i] = vote
                if vote.class_id is not None and (best is None or vote.score > best.score):
                    best = vote
        smoothed = self.smoother.update(best) if self.has_classes() else None
        return Result(seq, "detect", smoothed, [], objects, stages, matches, best, time.monotonic())
