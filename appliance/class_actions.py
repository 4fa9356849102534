"""Changing the taught classes: one code path, one set of rules, for the web API and MQTT commands.

Every change goes through here so that a label refused on the page is refused over MQTT with the same
words, and every change tells the same listeners (the page's SSE, the button LEDs, MQTT) afterwards.
"""

from __future__ import annotations

from typing import Any

from appliance.errors import ConflictError, NotFoundError
from appliance.learning.labels import validate_label


def classes_changed(system: Any, reason: str, class_id: int) -> None:
    """Tell the page (SSE) and MQTT (both listen to the `classes` event) that the class list changed."""
    system.teacher.classes_changed(reason, class_id)


def find_class(system: Any, *, class_id: int | None = None, label: str | None = None):
    """The class with this id, or with this label (ignoring case): NotFoundError naming how to list them."""
    if class_id is not None:
        return system.store.get(class_id)
    info = system.store.find(validate_label(label))
    if info is None:
        raise NotFoundError(f"there is no class labelled {label!r}",
                            "list them with GET /api/classes or the retained <topic_prefix>/classes")
    return info


def teach_new(system: Any, label: object):
    """A new class from a burst of live frames; ConflictError when the label is taken."""
    label = validate_label(label)
    existing = system.store.find(label)
    if existing is not None:
        raise ConflictError(
            f"a class named {existing.label!r} already exists (id {existing.id})",
            f"to add samples to it, POST /api/classes/{existing.id}/samples; or choose another label",
        )
    return system.teacher.teach(label=label)


def add_samples(system: Any, class_id: int):
    """More live frames for an existing class (NotFoundError before the burst, not after)."""
    system.store.get(class_id)
    return system.teacher.teach(class_id=class_id)


def teach(system: Any, label: object):
    """Teach `label`: a new class, or more samples when a class has that label already."""
    label = validate_label(label)
    existing = system.store.find(label)
    return add_samples(system, existing.id) if existing is not None else system.teacher.teach(label=label)


def teach_slot(system: Any, slot: int):
    """What pressing button `slot` does: teach that slot's label (ConflictError while a burst runs)."""
    return system.teacher.teach(label=system.teacher.slot_label(slot), slot=slot)


def rename(system: Any, class_id: int, label: object):
    info = system.store.rename(class_id, validate_label(label))
    classes_changed(system, "renamed", class_id)
    return info


def delete(system: Any, class_id: int):
    """Forget a class and its samples; -> the ClassInfo it had."""
    info = system.store.get(class_id)
    system.store.delete(class_id)
    classes_changed(system, "deleted", class_id)
    return info


def clear_slot(system: Any, slot: int):
    """What holding button `slot` does: drop that slot's samples, keep the class (None if never taught)."""
    system.teacher.slot_label(slot)  # NotFoundError naming the slots there are
    return system.teacher.clear_slot(slot)
