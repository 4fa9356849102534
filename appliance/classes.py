"""Classes: the one owner of changes to the taught classes, and of the events that announce them.

Teach, add samples, rename, delete, clear and import all go through here, from the web page, the
buttons, MQTT commands, fleet sets and the `appliance classes` / `teach` commands alike, so that a label
refused in one place is refused everywhere with the same words, and every change publishes the same
events afterwards: `teach` (started / finished / failed, for a burst) and `classes` (the list as it is
now). Apart from benchmarks filling throwaway stores, nothing else writes to a ClassStore.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from appliance.errors import ApplianceError, ConflictError, NotFoundError
from appliance.learning.labels import label_key, validate_label
from appliance.learning.store import ClassInfo, ClassStore
from appliance.pipeline.events import EventBus
from appliance.slots import slot_label, slot_of
from appliance.teacher import Burst, Teacher

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TaughtClass(ClassInfo):
    """The class after a burst, and what the burst kept: `warning` says why frames were dropped."""

    frames: int = 0
    kept: int = 0
    warning: str | None = None


def class_dict(info: ClassInfo) -> dict:
    """A class as the web API, events and MQTT carry it (with its thumbnail's URL).

    After a teaching burst it also has `burst`: {"frames", "kept", "warning"} (warning null when every
    frame was kept)."""
    version = int(float(info.updated or 0) * 1000)
    out = {"id": int(info.id), "label": info.label, "samples": int(info.samples),
           "thumbnail_url": f"/api/classes/{int(info.id)}/thumbnail.jpg?v={version}",
           "created": info.created, "updated": info.updated}
    if isinstance(info, TaughtClass):
        out["burst"] = {"frames": info.frames, "kept": info.kept, "warning": info.warning}
    return out


class Classes:
    def __init__(self, store: ClassStore, events: EventBus | None = None, teacher: Teacher | None = None,
                 slot_labels: Sequence[str] = ()) -> None:
        self.store = store
        self.events = events or EventBus()   # offline (the CLI): nobody listens
        self.teacher = teacher               # None: no camera, so no teaching bursts
        self.slot_labels = tuple(slot_labels)

    # -- reading -------------------------------------------------------------------------------
    def list(self) -> list[ClassInfo]:
        return self.store.list_classes()

    def get(self, class_id: int) -> ClassInfo:
        """The class with this id (NotFoundError naming how to list them)."""
        return self.store.get(class_id)

    def find(self, label: object) -> ClassInfo:
        """The class with this label (as labels compare: case and width folded), or NotFoundError."""
        info = self.store.find(validate_label(label))
        if info is None:
            raise NotFoundError(f"there is no class labelled {label!r}",
                                "list them with GET /api/classes, `appliance classes list` or the retained "
                                "<topic_prefix>/classes")
        return info

    def thumbnail(self, class_id: int) -> bytes:
        self.store.get(class_id)
        jpeg = self.store.thumbnail(class_id)
        if jpeg is None:
            raise NotFoundError(f"class {class_id} has no thumbnail yet", "teach it a few frames first")
        return jpeg

    def export(self, path: str | Path) -> None:
        self.store.export(path)

    def slot_label(self, slot: int) -> str:
        """The label of button slot `slot` (NotFoundError naming the slots there are)."""
        return slot_label(self.slot_labels, slot)

    def slot_of(self, label: str | None) -> int | None:
        """The button slot whose class has this label, or None."""
        return slot_of(self.slot_labels, label)

    # -- teaching from the camera --------------------------------------------------------------
    def teach(self, label: object) -> TaughtClass:
        """Teach `label` from live frames: a new class, or more samples when it exists already."""
        label = validate_label(label)
        existing = self.store.find(label)
        if existing is not None:
            return self._burst(existing.label, existing.id, self.slot_of(existing.label))
        return self._burst(label, None, self.slot_of(label))

    def teach_new(self, label: object) -> TaughtClass:
        """A new class from live frames; ConflictError when the label is taken."""
        label = validate_label(label)
        existing = self.store.find(label)
        if existing is not None:
            raise ConflictError(
                f"a class named {existing.label!r} already exists (id {existing.id})",
                f"to add samples to it, POST /api/classes/{existing.id}/samples; or choose another label")
        return self._burst(label, None, self.slot_of(label))

    def add_samples(self, class_id: int) -> TaughtClass:
        """More live frames for an existing class (NotFoundError before the burst, not after)."""
        info = self.store.get(class_id)
        return self._burst(info.label, info.id, self.slot_of(info.label))

    def teach_slot(self, slot: int) -> TaughtClass:
        """A button press: teach that slot's label (ConflictError while a burst runs)."""
        label = self.slot_label(slot)
        existing = self.store.find(label)
        return self._burst(label, existing.id if existing is not None else None, slot)

    def _burst(self, label: str, class_id: int | None, slot: int | None) -> TaughtClass:
        """One burst into one store transaction, with its `teach` events, then the `classes` event."""
        if self.teacher is None:
            raise ApplianceError("this program has no camera to teach from",
                                 "teach on the running appliance (its page, a button, MQTT), or from "
                                 "photos with `appliance teach`")
        teacher = self.teacher
        with teacher.recording(slot):
            base = {"label": label, "class_id": class_id, "slot": slot}
            self.events.publish("teach", {"state": "started", **base, "frames": teacher.frames_per_burst,
                                          "seconds": teacher.seconds})
            try:
                burst = teacher.record()
                stored = (self.store.add_samples(class_id, burst.embeddings, burst.thumbnails)
                          if class_id is not None else
                          self.store.teach(label, burst.embeddings, burst.thumbnails))
            except ApplianceError as exc:
                self.events.publish("teach", {"state": "failed", **base, "error": exc.problem,
                                              "fix": exc.fix})
                raise
            info = _taught(stored, burst)
            if info.warning:
                log.warning("teaching %r: %s", info.label, info.warning)
            log.info("taught %r with %d frames (%d samples now)", info.label, info.kept, info.samples)
            self.events.publish("teach", {**base, "state": "finished", "label": info.label,
                                          "class_id": info.id, "frames": info.frames, "kept": info.kept,
                                          "warning": info.warning, "class": class_dict(info)})
        self._changed("taught", info.id)
        return info

    # -- teaching from photos (no camera) ------------------------------------------------------
    def teach_samples(self, label: object, embeddings: object, thumbnails: Sequence[bytes] = ()
                      ) -> ClassInfo:
        """Embeddings made elsewhere (`appliance teach` from photos) as samples of `label`."""
        info = self.store.teach(validate_label(label), embeddings, thumbnails)
        self._changed("taught", info.id)
        return info

    # -- other changes -------------------------------------------------------------------------
    def rename(self, class_id: int, label: object) -> ClassInfo:
        info = self.store.rename(class_id, validate_label(label))
        self._changed("renamed", class_id)
        return info

    def delete(self, class_id: int) -> ClassInfo:
        """Forget a class and its samples; -> the ClassInfo it had."""
        info = self.store.get(class_id)
        self.store.delete(class_id)
        self._changed("deleted", class_id)
        return info

    def clear(self, class_id: int) -> ClassInfo:
        """Forget a class's samples, keep its id and label (a button slot keeps its place)."""
        info = self.store.clear(class_id)
        log.info("cleared %r", info.label)
        self._changed("cleared", info.id)
        return info

    def clear_slot(self, slot: int) -> ClassInfo | None:
        """A button held: clear that slot's class (None when it was never taught)."""
        info = self.store.find(self.slot_label(slot))
        return None if info is None else self.clear(info.id)

    def import_(self, path: str | Path, *, replacing: Iterable[str] = ()) -> list[ClassInfo]:
        """Merge an export into the store by label; the classes labelled `replacing` go first (a newer
        version of a fleet set replaces what the older one brought)."""
        keys = {label_key(label) for label in replacing}
        removed = [info.id for info in self.store.list_classes() if label_key(info.label) in keys]
        imported = self.store.import_(path, replacing=replacing)  # one transaction: all or nothing
        if imported or removed:
            self._changed("imported", imported[0].id if imported else removed[0])
        return imported

    def _changed(self, reason: str, class_id: int) -> None:
        """Publish `classes`: the class list as it is now (the page, MQTT and the LEDs follow it)."""
        classes = [class_dict(c) for c in self.store.list_classes()]
        self.events.publish("classes", {"reason": reason, "id": class_id, "classes": classes})


def _taught(stored: ClassInfo, burst: Burst) -> TaughtClass:
    return TaughtClass(**stored.as_dict(), frames=burst.frames, kept=burst.kept, warning=burst.warning)
