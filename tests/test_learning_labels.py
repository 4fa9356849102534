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


@pytest.mark.parametrize("text", [
    "\u3164", "\u115f\u1160", "\uffa0", "\u2800\u2800", "\ufe0f", " \ufe0f ", "\u0301",
    "\ue000", "cat\ue000", "\U000f0000", "\ufdd0", "\uffff", "a\U0010fffe", "\u0378",
])
def test_labels_that_render_as_nothing_are_refused(text):
    with pytest.raises(LabelError) as info:
        validate_label(text)
    assert info.value.fix and ("visible" in info.value.problem or "no font" in info.value.problem)


@pytest.mark.parametrize("text", ["\U0001f431", "\u2764\ufe0f", "e\u0301", "\u3164a", "\u2800!", "\u00b7",
                                  "\uac00", "\u2603"])
def test_labels_with_one_visible_glyph_are_kept(text):
    assert validate_label(text)
