"""EmbeddingTap: the embeddings the pipeline made of its frames, handed to a teaching burst that wants them.

A burst used to embed its frames itself, beside the inference thread, with the same model: the
pipeline's frames then waited for the model (pauses of up to 673 ms between two inferences). Now the
Teacher holds `want()` while its burst records; the pipeline embeds every frame it infers meanwhile
(even with nothing taught yet; in detect mode the main object's crop, as boxes are matched) and `put`s
each here, and the burst takes its frames from `wait`. This is the one place that says "embed this
frame because a burst wants it": Pipeline reads `wanted` where a frame starts.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Embedded:
    """One inferred frame's embedding, as a burst takes it."""

    seq: int                # the frame's capture seq
    rgb: np.ndarray         # the pixels embedded: the frame, or in detect mode its main object's crop
    embedding: np.ndarray   # (D,) float32, L2-normalised (Embedder's output)


class EmbeddingTap:
    """Thread-safe; the newest embedded frame only (a burst takes distinct frames spread over time)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._wanted = 0
        self._latest: Embedded | None = None
        self._closed = False

    @property
    def wanted(self) -> bool:
        """Whether someone wants the frames' embeddings now (read where a frame starts)."""
        return self._wanted > 0

    @property
    def closed(self) -> bool:
        """The pipeline stopped: no more frames come."""
        return self._closed

    @contextlib.contextmanager
    def want(self) -> Iterator[None]:
        """Frames started inside this block are embedded and handed over; nothing older is."""
        with self._cond:
            self._wanted += 1
        try:
            yield
        finally:
            with self._cond:
                self._wanted -= 1
                if not self._wanted:
                    self._latest = None  # nobody waits: do not keep a frame alive

    def put(self, item: Embedded) -> None:
        with self._cond:
            if self._wanted:
                self._latest = item
                self._cond.notify_all()

    def wait(self, after_seq: int, timeout: float) -> Embedded | None:
        """The newest embedded frame newer than after_seq, or None on timeout / when closed."""
        with self._cond:
            self._cond.wait_for(lambda: self._closed or (self._latest is not None
                                                          and self._latest.seq > after_seq), timeout)
            item = None if self._closed else self._latest
        return item if item is not None and item.seq > after_seq else None

    def open(self) -> None:
        with self._cond:
            self._closed = False

    def close(self) -> None:
        """The pipeline stopped: wake waiters with None."""
        with self._cond:
            self._closed = True
            self._latest = None
            self._cond.notify_all()
