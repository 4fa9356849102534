"""Embeddings → a taught class or "unknown", with the head rebuilt whenever the store changes.

Each call compares the store's persisted `version` (one indexed SELECT) with the version the head was
built from, so a class taught by the web page, a button or another process is recognised on the next frame.
"""

import logging
import threading
from collections import namedtuple

import numpy as np

from appliance.errors import ConfigError, StoreError
from appliance.learning.heads import HEAD_KINDS, Head, fit_head
from appliance.learning.store import ClassStore

log = logging.getLogger(__name__)

Recognition = namedtuple("Recognition", "class_id label score")  # class_id None = unknown
UNKNOWN_LABEL = "unknown"


class Recognizer:
    """Thread-safe: one lock covers the version check, the rebuild and the head's use."""

    def __init__(self, store: ClassStore, head: str = "auto", unknown_threshold: float = 0.6) -> None:
        if head not in HEAD_KINDS:
            raise ConfigError(f"unknown recognition head {head!r}", f"use one of {', '.join(HEAD_KINDS)}")
        if not 0.0 <= float(unknown_threshold) <= 1.0:
            raise ConfigError(f"unknown_threshold must be between 0 and 1, not {unknown_threshold}",
                              "set [recognition] unknown_threshold to e.g. 0.6")
        self.store = store
        self.head_kind = head
        self.unknown_threshold = float(unknown_threshold)
        self._lock = threading.Lock()
        self._version: int | None = None
        self._head: Head | None = None
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
        """One Recognition per row; unknown when no class has samples or the best score is too low."""
        X = np.atleast_2d(np.asarray(embeddings, dtype=np.float32))
        with self._lock:
            self._refresh()
            head, labels = self._head, self._labels
        if head is None:
            return [Recognition(None, UNKNOWN_LABEL, 0.0) for _ in range(len(X))]
        ids, scores = head.predict(X)
        return [Recognition(int(i), labels[int(i)], float(s)) if s >= self.unknown_threshold
                else Recognition(None, UNKNOWN_LABEL, float(s)) for i, s in zip(ids, scores, strict=True)]
