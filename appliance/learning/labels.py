"""Class labels: one rule for the CLI, the store and the web page, so a label valid in one is valid in all."""

import unicodedata

from appliance.errors import LabelError

MAX_LABEL_LENGTH = 64

# Cc: control characters (NUL, tab, newline, ...); Cf: invisible format characters (zero-width joiners,
# bidi overrides) that make two labels look alike; Zl/Zp: line and paragraph separators; Cs: lone
# surrogates that cannot be stored as UTF-8.
_FORBIDDEN_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs"})

# Letters, numbers, punctuation and symbols (emoji are So) draw a glyph; marks, spaces and the rest do not.
_VISIBLE_MAJOR = frozenset("LNPS")
# Assigned letters and symbols that fonts draw as nothing: the Hangul fillers and the Braille blank.
_BLANK_GLYPHS = frozenset("\u115f\u1160\u3164\uffa0\u2800")
# Co: private use (no shared glyph); Cn: unassigned code points and the noncharacters (U+FDD0..., U+xFFFE).
_UNDISPLAYABLE_CATEGORIES = frozenset({"Co", "Cn"})

_FIX = f"use 1 to {MAX_LABEL_LENGTH} visible characters, e.g. \"cat\" or \"Coffee mug\""


def validate_label(text: object) -> str:
    """Return the label stripped and NFC-normalised, or raise LabelError saying what is wrong."""
    if not isinstance(text, str):
        raise LabelError(f"a class label must be text, not {type(text).__name__}", _FIX)
    bad = sorted({ch for ch in text if unicodedata.category(ch) in _FORBIDDEN_CATEGORIES})
    if bad:
        shown = ", ".join(f"U+{ord(ch):04X}" for ch in bad)
        raise LabelError(f"the class label {text!r} contains control or invisible characters ({shown})",
                         "remove tabs, newlines and other invisible characters; " + _FIX)
    odd = sorted({ch for ch in text if unicodedata.category(ch) in _UNDISPLAYABLE_CATEGORIES})
    if odd:
        shown = ", ".join(f"U+{ord(ch):04X}" for ch in odd)
        raise LabelError(f"the class label {text!r} contains private-use, unassigned or non-characters "
                         f"({shown}) that no font shows", "remove them; " + _FIX)
    label = unicodedata.normalize("NFC", text).strip()
    if not label:
        raise LabelError("a class label cannot be empty or only spaces", _FIX)
    if not any(unicodedata.category(ch)[0] in _VISIBLE_MAJOR and ch not in _BLANK_GLYPHS for ch in label):
        shown = ", ".join(f"U+{ord(ch):04X}" for ch in dict.fromkeys(label))
        raise LabelError(f"the class label {label!r} shows nothing: it has no visible character ({shown})",
                         "include at least one letter, digit, punctuation mark or symbol; " + _FIX)
    if len(label) > MAX_LABEL_LENGTH:
        raise LabelError(f"the class label is {len(label)} characters long, more than {MAX_LABEL_LENGTH}",
                         f"shorten it to at most {MAX_LABEL_LENGTH} characters")
    return label


def label_key(label: str) -> str:
    """The case-insensitive identity of a valid label: two labels with the same key are one class."""
    return label.casefold()
