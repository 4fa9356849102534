"""FrameHub: the latest annotated JPEG, encoded once, shared by every viewer.

publish() never waits for a viewer: it swaps the bytes and notifies a Condition; each viewer
remembers the seq it sent last and asks for the next one. A viewer that stops reading holds nothing.
"""

from __future__ import annotations

import threading


class FrameHub:
    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._seq = 0
        self._jpeg: bytes | None = None
        self._closed = False

    def publish(self, jpeg: bytes) -> None:
        with self._cond:
            self._seq += 1
            self._jpeg = jpeg
            self._cond.notify_all()

    def latest(self) -> tuple[int, bytes | None]:
        with self._cond:
            return self._seq, self._jpeg

    def wait_next(self, after_seq: int, timeout: float) -> tuple[int, bytes | None]:
        """Block until a frame newer than after_seq is published (or timeout / close); return the latest."""
        with self._cond:
            self._cond.wait_for(lambda: self._seq > after_seq or self._closed, timeout)
            return self._seq, self._jpeg

    def close(self) -> None:
        """Wake every waiting viewer (on shutdown); `closed` tells streams to end."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    @property
    def closed(self) -> bool:
        return self._closed
