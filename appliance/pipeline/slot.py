"""LatestSlot: hands the newest frame from the capture thread to the inference worker.

Holds at most one frame. A newer frame replaces an unconsumed older one, and that older one is
counted as dropped: when inference is slower than the camera we lose frames, never fall behind.
"""

from __future__ import annotations

import threading
from typing import Generic, TypeVar

T = TypeVar("T")


class LatestSlot(Generic[T]):
    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._item: T | None = None
        self._seq = 0          # seq of the item put last
        self.dropped = 0
        self._closed = False

    def put(self, item: T) -> int:
        """Store item, replacing (and counting) an unconsumed one; returns its seq."""
        with self._cond:
            if self._item is not None:
                self.dropped += 1
            self._item = item
            self._seq += 1
            self._cond.notify_all()
            return self._seq

    def take(self, timeout: float | None = None) -> tuple[int, T] | None:
        """Wait for a frame not taken before and remove it; None on timeout or close."""
        with self._cond:
            self._cond.wait_for(lambda: self._item is not None or self._closed, timeout)
            if self._item is None:
                return None
            item, self._item = self._item, None
            self._cond.notify_all()
            return self._seq, item

    def wait_empty(self, timeout: float | None = None) -> bool:
        """Wait until the held item was taken (lets a non-realtime source run exactly one frame ahead)."""
        with self._cond:
            return self._cond.wait_for(lambda: self._item is None or self._closed, timeout)

    @property
    def seq(self) -> int:
        with self._cond:
            return self._seq

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    @property
    def closed(self) -> bool:
        return self._closed
