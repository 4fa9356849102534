"""Button slots and class labels: one rule for the classes service, the buttons' LEDs and MQTT.

Slot N (1-based) teaches the class labelled `[controls] slot_labels[N-1]`; a class belongs to a slot
when its label has the same identity as the store gives labels (learning.labels.label_key: ignoring case,
after trimming), so "class 2" on the page and "Class 2" in the config are one slot.
"""

from __future__ import annotations

from collections.abc import Sequence

from appliance.errors import NotFoundError
from appliance.learning.labels import label_key


def slot_label(slot_labels: Sequence[str], slot: int) -> str:
    """The label slot `slot` teaches; NotFoundError naming the slots there are."""
    if not 1 <= slot <= len(slot_labels):
        raise NotFoundError(f"there is no button slot {slot}",
                            f"slots are 1 to {len(slot_labels)} ([controls] slot_labels)")
    return slot_labels[slot - 1]


def slot_of(slot_labels: Sequence[str], label: str | None) -> int | None:
    """The slot whose label is `label` (the store's identity of labels), or None."""
    if label is None:
        return None
    wanted = label_key(label.strip())
    for slot, candidate in enumerate(slot_labels, start=1):
        if label_key(candidate.strip()) == wanted:
            return slot
    return None
