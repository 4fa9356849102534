"""Teacher: a burst of live frames -> embeddings -> one class-store transaction.

A burst takes `teach.frames` distinct camera frames spread over `teach.seconds`, embedding each as
it arrives (the Embedder's lock shares the model with the inference thread). A second teach while a
burst runs raises ConflictError: presses during a burst are ignored, never queued.

A burst whose frames show clearly different views (the view changed part-way) is checked by
learning.burst_check: the consistent majority is taught, or nothing when there is none, and the teach
event, the returned class (its `burst` field, the API's answer) and so the page say so.

Buttons: slot N teaches the class labelled `controls.slot_labels[N-1]` (created on first press);
holding it clears that class: its samples and thumbnails go, its id and label stay (store.clear), so
the page keeps the slot and the next press fills it again.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import cv2
import numpy as np

from appliance.errors import ApplianceError, ConflictError, SourceError
from appliance.learning.burst_check import check_burst
from appliance.learning.labels import validate_label
from appliance.learning.store import ClassInfo
from appliance.pipeline.annotate import encode_jpeg
from appliance.slots import slot_label, slot_of

log = logging.getLogger(__name__)

THUMBNAIL_WIDTH = 160
FRAME_WAIT_S = 2.0  # no camera frame for this long during a burst: give up with an error


@dataclass(frozen=True)
class TaughtClass(ClassInfo):
    """The class after a burst, and what the burst kept: `warning` says why frames were dropped."""

    frames: int = 0
    kept: int = 0
    warning: str | None = None


def class_dict(info) -> dict:
    """A class as events carry it (the same fields and thumbnail URL as the web API's JSON).

    After a teaching burst it also has `burst`: {"frames", "kept", "warning"} (warning null when every
    frame was kept)."""
    version = int(float(info.updated or 0) * 1000)
    out = {"id": int(info.id), "label": info.label, "samples": int(info.samples),
           "thumbnail_url": f"/api/classes/{int(info.id)}/thumbnail.jpg?v={version}",
           "created": info.created, "updated": info.updated}
    if isinstance(info, TaughtClass):
        out["burst"] = {"frames": info.frames, "kept": info.kept, "warning": info.warning}
    return out


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
    def __init__(self, frames, embedder, store, events, *, frames_per_burst: int = 10,
                 seconds: float = 1.0, thumbnails_per_class: int = 4,
                 slot_labels: tuple[str, ...] = ()) -> None:
        self.frames = frames          # has wait_frame(after_seq, timeout) -> Frame | None (the Pipeline)
        self.embedder = embedder
        self.store = store
        self.events = events
        self.frames_per_burst = max(1, int(frames_per_burst))
        self.seconds = max(0.0, float(seconds))
        self.thumbnails_per_class = int(thumbnails_per_class)
        self.slot_labels = tuple(slot_labels)
        self.on_busy: list[Callable[[int | None, bool], None]] = []   # (slot or None, busy): LEDs, demo hold
        self.region: Callable[[np.ndarray], np.ndarray] | None = None  # the part to teach (detect mode)
        self._lock = threading.Lock()
        self._busy_slot: int | None = None
        self.busy = False

    @classmethod
    def from_config(cls, config, frames, embedder, store, events) -> Teacher:
        return cls(frames, embedder, store, events, frames_per_burst=config.teach.frames,
                   seconds=config.teach.seconds, thumbnails_per_class=config.teach.thumbnails_per_class,
                   slot_labels=tuple(config.controls.slot_labels))

    # -- teaching ------------------------------------------------------------------------------
    def teach(self, label: str | None = None, class_id: int | None = None, *, slot: int | None = None):
        """Teach a burst of frames to the class `label` (created if new) or `class_id`; -> ClassInfo."""
        if (label is None) == (class_id is None):
            raise ApplianceError("give either a label or a class id to teach", "e.g. label=\"cat\"")
        if class_id is not None:
            target = self.store.get(class_id)  # NotFoundError before anything starts
            label = target.label
        else:
            label = validate_label(label)
        if not self._lock.acquire(blocking=False):
            raise ConflictError("a teaching burst is running",
                                "wait for it to finish (about a second), then try again")
        if slot is None:
            slot = self.slot_of(label)  # taught from the page: still blink that slot's LED
        try:
            self._set_busy(True, slot)
            self.events.publish("teach", {"state": "started", "label": label, "class_id": class_id,
                                          "slot": slot, "frames": self.frames_per_burst,
                                          "seconds": self.seconds})
            try:
                embeddings, pictures = self._burst()
                check = check_burst(embeddings)
                if check.refused:
                    raise ConflictError(check.warning, "hold one thing still in front of the camera for "
                                        "the whole burst (about a second) and teach again")
                embeddings = embeddings[list(check.keep)]
                thumbs = [thumbnail(pictures[i]) for i in pick_evenly(list(check.keep),
                                                                     self.thumbnails_per_class)]
                if class_id is not None:
                    stored = self.store.add_samples(class_id, embeddings, thumbs)
                else:
                    stored = self.store.teach(label, embeddings, thumbs)
            except ApplianceError as exc:
                self.events.publish("teach", {"state": "failed", "label": label, "class_id": class_id,
                                              "slot": slot, "error": exc.problem, "fix": exc.fix})
                raise
            info = TaughtClass(**stored.as_dict(), frames=check.total, kept=len(check.keep),
                               warning=check.warning)
            if info.warning:
                log.warning("teaching %r: %s", info.label, info.warning)
            log.info("taught %r with %d frames (%d samples now)", info.label, len(embeddings), info.samples)
            self.events.publish("teach", {"state": "finished", "label": info.label, "class_id": info.id,
                                          "slot": slot, "frames": check.total, "kept": info.kept,
                                          "warning": info.warning, "class": class_dict(info)})
            self.classes_changed("taught", info.id)
            return info
        finally:
            self._set_busy(False, slot)
            self._lock.release()

    def _burst(self) -> tuple[np.ndarray, list[np.ndarray]]:
        """Distinct frames spread over the burst's duration, embedded as they come; -> (vectors, pictures)."""
        n = self.frames_per_burst
        interval = self.seconds / n
        start = time.monotonic()
        latest = self.frames.latest_frame()
        seq = latest.seq if latest is not None else 0
        embeddings, pictures = [], []
        for i in range(n):
            delay = start + i * interval - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            frame = self.frames.wait_frame(seq, FRAME_WAIT_S)
            if frame is None:
                raise SourceError("no camera frames arrived while teaching",
                                  "check that the camera is connected (the page shows \"no signal\")")
            seq = frame.seq
            rgb = self.region(frame.rgb) if self.region is not None else frame.rgb
            embeddings.append(self.embedder.embed(rgb))
            pictures.append(rgb)
        return np.stack(embeddings).astype(np.float32), pictures

    def _set_busy(self, busy: bool, slot: int | None) -> None:
        self.busy = busy
        self._busy_slot = slot if busy else None
        for callback in list(self.on_busy):
            try:
                callback(slot, busy)
            except Exception:
                log.exception("busy callback failed")

    def clear(self, class_id: int):
        """Forget a class's samples, keep its id and label; -> ClassInfo."""
        info = self.store.clear(class_id)
        log.info("cleared %r", info.label)
        self.classes_changed("cleared", info.id)
        return info

    def classes_changed(self, reason: str, class_id: int) -> None:
        """Publish the `classes` event with the class list as it is now (after any change to the classes)."""
        classes = [class_dict(c) for c in self.store.list_classes()]
        self.events.publish("classes", {"reason": reason, "id": class_id, "classes": classes})

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

    # -- buttons -------------------------------------------------------------------------------
    def slot_label(self, slot: int) -> str:
        return slot_label(self.slot_labels, slot)

    def slot_of(self, label: str | None) -> int | None:
        """The button slot whose class has this label (as the store matches labels), or None."""
        return slot_of(self.slot_labels, label)

    def teach_slot(self, slot: int):
        """A button press: teach that slot's class; ignored (None) while a burst runs."""
        try:
            return self.teach(label=self.slot_label(slot), slot=slot)
        except ConflictError:
            log.info("button %d pressed during a teaching burst: ignored", slot)
            return None

    def clear_slot(self, slot: int):
        """A button held: clear that slot's class (None when it was never taught)."""
        info = self.store.find(self.slot_label(slot))
        if info is None:
            return None
        return self.clear(info.id)
