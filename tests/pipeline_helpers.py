"""Test sources for the pipeline's own tests: real photos, with real faults (raise, empty, stall).

The camera helper's sources are tested in its own files; these are small so the pipeline's tests do not
depend on their timing. Each follows the Source protocol of docs/ARCHITECTURE.md.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np

from appliance.camera.base import Source
from appliance.errors import SourceError
from appliance.vision.images import read_image


class PhotoSource(Source):
    """Cycles through real photos, paced to `fps` (0 = as fast as asked); fault knobs for tests."""

    realtime = True

    def __init__(self, paths: list[Path], fps: float = 30.0, size=(640, 480)) -> None:
        import cv2

        self.name = "photos"
        self.frames = [cv2.resize(read_image(p), size) for p in paths]
        self.fps = fps
        self.reads = 0
        self.raise_error = False     # read() raises SourceError (the camera vanished)
        self.empty = False           # read() returns None (nothing yet)
        self.stall = threading.Event()  # while set, read() blocks (a hung driver)
        self._next = 0.0
        self.closed = False

    def open(self) -> None:
        self.closed = False

    def read(self) -> np.ndarray | None:
        while self.stall.is_set() and not self.closed:
            time.sleep(0.01)
        if self.raise_error:
            raise SourceError("test camera vanished", "plug it back in")
        if self.empty:
            time.sleep(0.002)
            return None
        if self.fps:
            now = time.monotonic()
            if now < self._next:
                time.sleep(self._next - now)
            self._next = max(now, self._next) + 1.0 / self.fps
        frame = self.frames[self.reads % len(self.frames)].copy()  # a new buffer each time, like a camera
        self.reads += 1
        return frame

    def close(self) -> None:
        self.closed = True


def wait_until(predicate, timeout: float = 10.0, interval: float = 0.02) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


def rss_mb() -> float:
    """Current resident set size of this process (Linux)."""
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    import os

    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20
