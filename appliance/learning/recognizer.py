"""Embeddings → a taught class or "unknown", with the head rebuilt whenever the store changes.

A frame is unknown when the head's probability is below `unknown_threshold`, or when the frame is
not similar enough (cosine below `min_similarity`) to any stored sample of the class the head picked:
the open-set check that makes "unknown" possible with a single taught class (see learning.openset).

Each call compares the store's persisted `version` (one indexed SELECT) with the version the head was
built from, so a class taught by the web page, a button or another process is recognised on the next frame.
"""

import logging
import threading
from collections import namedtuple

import numpy as np

from appliance.errors import ConfigError, StoreError
from appliance.learning.heads import HEAD_KINDS, Head, fit_head
from appliance.learning.openset import MIN_SIMILARITY, SampleIndex, sample_index
from appliance.learning.store import ClassStore

log = logging.getLogger(__name__)

Recognition = namedtuple("Recognition", "class_id label score")  # class_id None = unknown
UNKNOWN_LABEL = "unknown"


class Recognizer:
    """Thread-safe: one lock covers the version check, the rebuild and the head's use."""

    def __init__(self, store: ClassStore, head: str = "auto", unknown_threshold: float = 0.6,
                 min_similarity: float = MIN_SIMILARITY) -> None:
        if head not in HEAD_KINDS:
            raise ConfigError(f"unknown recognition head {head!r}", f"use one of {', '.join(HEAD_KINDS)}")
        if not 0.0 <= float(unknown_threshold) <= 1.0:
            raise ConfigError(f"unknown_threshold must be between 0 and 1, not {unknown_threshold}",
                              "set [recognition] unknown_threshold to e.g. 0.6")
        if not 0.0 <= float(min_similarity) <= 1.0:
            raise ConfigError(f"min_similarity must be between 0 and 1, not {min_similarity}",
                              f"set [recognition] min_similarity to e.g. {MIN_SIMILARITY} "
                              "(0 turns the check off)")
        self.store = store
        self.head_kind = head
        self.unknown_threshold = float(unknown_threshold)
        self.min_similarity = float(min_similarity)
        self._lock = threading.Lock()
        self._version: int | None = None
        self._head: Head | None = None
        self._index: SampleIndex | None = None
        self._labels: dict[int, str] = {}

    def _refresh(self) -> None:
        try:
            if self._version is not None and self.store.version == self._version:
                return
            snap = self.store.snapshot()
        except StoreError as exc:
            if self._version is None:
                raise
            # e.g. the file stayed locked by another process: keep recognising with the head we have
            # and try again on the next call, rather than stopping the camera loop
            log.warning("keeping the current recognition head: %s", exc)
            return
        self._labels = {c.id: c.label for c in snap.classes}
        self._head = fit_head(snap.X, snap.y, self.head_kind) if len(snap.y) else None
        self._index = sample_index(snap.X, snap.y) if len(snap.y) else None
        self._version = snap.version
        if self._head is not None:
            log.info("recognition head rebuilt at store version %d: %s (%d classes, %d samples)",
                     snap.version, self._head.reason or self._head.kind, len(self._head.class_ids),
                     len(snap.y))

    @property
    def head(self) -> Head | None:
        """The head in use (None while no class has samples), rebuilt first if the store changed."""
        with self._lock:
            self._refresh()
            return self._head

    def recognize(self, embedding: np.ndarray) -> Recognition:
        return self.recognize_batch(np.asarray(embedding, dtype=np.float32).reshape(1, -1))[0]

    def recognize_batch(self, embeddings: np.ndarray) -> list[Recognition]:
        """One Recognition per row; unknown when no class has samples, the best score is too low or the
        frame is unlike the picked class's samples (the score stays the head's probability)."""
        X = np.atleast_2d(np.asarray(embeddings, dtype=np.float32))
        with self._lock:
            self._refresh()
            head, labels, index = self._head, self._labels, self._index
        if head is None or index is None:
            return [Recognition(None, UNKNOWN_LABEL, 0.0) for _ in range(len(X))]
        ids, scores = head.predict(X)
        known = scores >= self.unknown_threshold
        if self.min_similarity > 0:
            known &= index.similarity_to(X, ids) >= self.min_similarity
        return [Recognition(int(i), labels[int(i)], float(s)) if k
                else Recognition(None, UNKNOWN_LABEL, float(s))
                for i, s, k in zip(ids, scores, known, strict=True)]

    def similarity(self, embeddings: np.ndarray) -> dict[str, np.ndarray]:
        """Per class label, the cosine of each embedding to the class's closest sample (for tuning
        `min_similarity` and for status pages)."""
        X = np.atleast_2d(np.asarray(embeddings, dtype=np.float32))
        with self._lock:
            self._refresh()
            labels, index = self._labels, self._index
        if index is None:
            return {}
        S = index.similarity(X)
        return {labels[int(c)]: S[:, j] for j, c in enumerate(index.class_ids)}
