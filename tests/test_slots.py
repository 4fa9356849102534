"""Button slots and labels: the classes service and the LEDs use one rule (the store's label identity)."""

import pytest

from appliance.classes import Classes
from appliance.errors import NotFoundError
from appliance.slots import slot_label, slot_of

LABELS = ("Class 1", "Mug", "Straße")


def test_slot_label_and_errors():
    assert slot_label(LABELS, 2) == "Mug"
    with pytest.raises(NotFoundError) as err:
        slot_label(LABELS, 4)
    assert "slots are 1 to 3" in err.value.fix


def test_slot_of_matches_as_the_store_does():
    assert slot_of(LABELS, "mug") == 2 and slot_of(LABELS, " MUG ") == 2
    assert slot_of(LABELS, "STRASSE") == 3  # casefold, as learning.labels.label_key
    assert slot_of(LABELS, "cup") is None and slot_of(LABELS, None) is None


def test_the_classes_service_uses_the_same_rule():
    classes = Classes(None, slot_labels=LABELS)
    assert [classes.slot_of(label) for label in ("class 1", "STRASSE", "cup")] == [1, 3, None]
    assert classes.slot_label(3) == "Straße"
