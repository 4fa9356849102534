"""validate_label: the one rule for class labels everywhere."""

import pytest

from appliance.errors import LabelError
from appliance.learning.labels import MAX_LABEL_LENGTH, label_key, validate_label


@pytest.mark.parametrize("text, expected", [
    ("cat", "cat"), ("  hot dog  ", "hot dog"), ("Kaffeebecher ☕", "Kaffeebecher ☕"),
    ("x" * MAX_LABEL_LENGTH, "x" * MAX_LABEL_LENGTH), ("e\u0301", "\u00e9"),  # NFC: one é whichever way typed
])
def test_valid_labels_are_stripped_and_normalised(text, expected):
    assert validate_label(text) == expected


@pytest.mark.parametrize("text, words", [
    ("", "empty"), ("   ", "empty"), ("x" * (MAX_LABEL_LENGTH + 1), "65 characters"),
    ("cat\n", "U+000A"), ("a\tb", "U+0009"), ("a\x00b", "U+0000"), ("a\u200bb", "U+200B"),
    ("a\u202eb", "U+202E"), ("a\u2028b", "U+2028"), (None, "text"), (42, "text"),
])
def test_bad_labels_say_what_is_wrong_and_how_to_fix_it(text, words):
    with pytest.raises(LabelError) as info:
        validate_label(text)
    assert words in info.value.problem
    assert info.value.fix


def test_label_key_ignores_case_including_non_ascii():
    assert label_key(validate_label("ÄPFEL")) == label_key(validate_label("äpfel"))
    assert label_key("Straße") == label_key("STRASSE")
