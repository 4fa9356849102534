"""Teacher: records a teaching burst — live frames -> embeddings, thumbnails and a consistency check.

A burst takes `teach.frames` distinct camera frames spread over `teach.seconds`, with the embeddings the
pipeline made of them as it inferred them (pipeline.tap: while the burst records, the pipeline embeds
every frame it infers, in detect mode the main object's crop); the Teacher never invokes the model
itself, so the live pipeline's frames never wait for it. Only one burst records at a
time: `recording()` refuses a second with ConflictError (presses during a burst are ignored, never
queued) and tells `on_busy` listeners (the slot's LED, the demo camera's hold) when one starts and ends.

A burst whose frames show clearly different views (the view changed part-way) is checked by
learning.burst_check: the consistent majority is kept, or ConflictError when there is none.

The Teacher stores nothing: appliance.classes commits what it recorded, inside `recording()`, so
`paused()` also waits for that commit.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import NamedTuple, Protocol

import cv2
import numpy as np

from appliance.errors import ApplianceError, ConflictError, ModelError, SourceError
from appliance.learning.burst_check import check_burst
from appliance.pipeline.annotate import encode_jpeg
from appliance.pipeline.tap import EmbeddingTap
from appliance.pipeline.worker import Frame

log = logging.getLogger(__name__)

THUMBNAIL_WIDTH = 160
FRAME_WAIT_S = 2.0  # no camera frame for this long during a burst: give up with an error


class FrameFeed(Protocol):
    """Where bursts take their frames from (the Pipeline)."""

    embeddings: EmbeddingTap  # the frames' embeddings, made by the pipeline while a burst wants them
    last_inference_error: Exception | None  # why the latest frame was not inferred (None: it was)

    def latest_frame(self) -> Frame | None: ...


class Burst(NamedTuple):
    """What one burst recorded, after the consistency check."""

    embeddings: np.ndarray   # (kept, D) float32
    thumbnails: list[bytes]  # JPEGs of a few of the kept frames
    frames: int              # frames recorded
    kept: int                # frames kept (all of them unless the view changed)
    warning: str | None      # why frames were dropped


def thumbnail(rgb: np.ndarray, width: int = THUMBNAIL_WIDTH) -> bytes:
    h, w = rgb.shape[:2]
    small = cv2.resize(rgb, (width, max(1, round(h * width / w))), interpolation=cv2.INTER_AREA)
    return encode_jpeg(small, 80)


def pick_evenly(items: list, count: int) -> list:
    if count <= 0 or not items:
        return []
    if count >= len(items):
        return list(items)
    step = len(items) / count
    return [items[int(i * step)] for i in range(count)]


class Teacher:
    def __init__(self, frames: FrameFeed, *, frames_per_burst: int = 10, seconds: float = 1.0,
                 thumbnails_per_class: int = 4) -> None:
        self.frames = frames
        self.frames_per_burst = max(1, int(frames_per_burst))
        self.seconds = max(0.0, float(seconds))
        self.thumbnails_per_class = int(thumbnails_per_class)
        self.on_busy: list[Callable[[int | None, bool], None]] = []   # (slot or None, busy): LEDs, demo hold
        self._lock = threading.Lock()
        self.busy = False

    @classmethod
    def from_config(cls, config, frames: FrameFeed) -> Teacher:
        return cls(frames, frames_per_burst=config.teach.frames, seconds=config.teach.seconds,
                   thumbnails_per_class=config.teach.thumbnails_per_class)

    @contextlib.contextmanager
    def recording(self, slot: int | None) -> Iterator[None]:
        """The one burst running now: ConflictError when another one is; `on_busy` hears start and end."""
        if not self._lock.acquire(blocking=False):
            raise ConflictError("a teaching burst is running",
                                "wait for it to finish (about a second), then try again")
        try:
            self._set_busy(True, slot)
            yield
        finally:
            self._set_busy(False, slot)
            self._lock.release()

    def record(self) -> Burst:
        """Record one burst, with the pipeline's embeddings of its frames, and check it (call it inside
        `recording()`)."""
        embeddings, pictures = self._frames()
        check = check_burst(embeddings)
        if check.refused:
            raise ConflictError(check.warning, "hold one thing still in front of the camera for the whole "
                                "burst (about a second) and teach again")
        keep = list(check.keep)
        thumbs = [thumbnail(pictures[i]) for i in pick_evenly(keep, self.thumbnails_per_class)]
        return Burst(embeddings[keep], thumbs, check.total, len(keep), check.warning)

    def _frames(self) -> tuple[np.ndarray, list[np.ndarray]]:
        """Distinct frames newer than the burst's start, spread over its duration, as the pipeline embedded
        them; -> (vectors, the pixels embedded)."""
        n = self.frames_per_burst
        interval = self.seconds / n
        tap = self.frames.embeddings
        with tap.want():  # from here on the pipeline embeds the frames it starts and hands them over
            start = time.monotonic()
            latest = self.frames.latest_frame()
            seq = latest.seq if latest is not None else 0
            embeddings, pictures = [], []
            for i in range(n):
                delay = start + i * interval - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                item = tap.wait(seq, FRAME_WAIT_S)
                if item is None:
                    raise self._no_frames(seq)
                seq = item.seq
                embeddings.append(item.embedding)
                pictures.append(item.rgb)
        return np.stack(embeddings).astype(np.float32), pictures

    def _no_frames(self, seq: int) -> ApplianceError:
        """Why no embedded frame came: no recent camera frames, or frames the model did not embed."""
        latest = self.frames.latest_frame()
        if (self.frames.embeddings.closed or latest is None or latest.seq <= seq
                or time.monotonic() - latest.captured_at > FRAME_WAIT_S / 2):
            return SourceError("no camera frames arrived while teaching",
                               "check that the camera is connected (the page shows \"no signal\")")
        error = self.frames.last_inference_error
        if isinstance(error, ApplianceError):  # e.g. the inference worker is down: 503, with its fix
            return error
        return ModelError("camera frames arrived while teaching, but the model embedded none of them",
                          "look for inference errors in the log (journalctl -u appliance) and run "
                          "`appliance doctor`")

    def _set_busy(self, busy: bool, slot: int | None) -> None:
        self.busy = busy
        for callback in list(self.on_busy):
            try:
                callback(slot, busy)
            except Exception:
                log.exception("busy callback failed")

    @contextlib.contextmanager
    def paused(self, timeout: float) -> Iterator[bool]:
        """No burst starts inside this block; a running one gets up to `timeout` s to commit or fail first.
        Yields whether it got the teaching lock (False: a burst still runs; shutting down goes on anyway)."""
        got = self._lock.acquire(timeout=timeout)
        try:
            yield got
        finally:
            if got:
                self._lock.release()
