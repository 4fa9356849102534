"""Draw what was recognised on a copy of the frame, and JPEG-encode it (once, for every viewer)."""

from __future__ import annotations

import cv2
import numpy as np

from appliance.learning.recognizer import UNLIKE, Recognition
from appliance.pipeline.result import Result

FONT = cv2.FONT_HERSHEY_SIMPLEX
KNOWN = (40, 200, 80)       # RGB: a taught class
UNKNOWN = (230, 170, 30)    # RGB: unknown / base-model labels
BOX = (255, 64, 64)         # RGB: detection boxes of base labels
TEXT = (255, 255, 255)


def _text_block(img: np.ndarray, lines: list[tuple[str, tuple]], origin=(8, 8), scale=0.6) -> None:
    x, y = origin
    for text, colour in lines:
        (w, h), base = cv2.getTextSize(text, FONT, scale, 1)
        cv2.rectangle(img, (x, y), (x + w + 10, y + h + base + 8), colour, -1)
        cv2.putText(img, text, (x + 5, y + h + 4), FONT, scale, TEXT, 1, cv2.LINE_AA)
        y += h + base + 12


def _percent(score: float) -> str:
    return f"{round(float(score) * 100)}%"


def object_caption(obj, match) -> tuple[str, bool]:
    """A detected object's caption: the taught class when it matched ("our cat"), else the base label."""
    if match is not None and match.class_id is not None:
        return f"{match.label} {_percent(match.score)}", True
    return f"{obj.label} {_percent(obj.score)}", False


def recognition_caption(rec: Recognition) -> str:
    """The banner text: "mug 92%" for a taught class; for unknown, what it was closest to and how close
    ("unknown - closest: mug, 31%" when two classes nearly tie, "..., 41% alike" when the frame looks like
    nothing taught and the probability would say 100%). Hershey fonts have no em dash, so "-"."""
    if rec.class_id is not None:
        return f"{rec.label} {_percent(rec.score)}"
    if rec.closest is None:
        return "unknown"
    if rec.reason == UNLIKE and rec.similarity is not None:
        return f"unknown - closest: {rec.closest}, {_percent(rec.similarity)} alike"
    return f"unknown - closest: {rec.closest}, {_percent(rec.score)}"


def annotate(frame: np.ndarray, result: Result | None) -> np.ndarray:
    """An RGB copy of frame with the result drawn on it; the input is left untouched."""
    img = frame.copy()
    if result is None:
        return img
    if result.mode == "detect":
        for i, obj in enumerate(result.objects):
            match = result.matches[i] if i < len(result.matches) else None
            caption, known = object_caption(obj, match)
            colour = KNOWN if known else BOX
            b = obj.bbox
            cv2.rectangle(img, (int(b.xmin), int(b.ymin)), (int(b.xmax), int(b.ymax)), colour, 2)
            _text_block(img, [(caption, colour)], origin=(int(b.xmin), max(0, int(b.ymin) - 24)), scale=0.5)
        return img
    lines = []
    rec = result.recognition
    if rec is not None:
        lines.append((recognition_caption(rec), UNKNOWN if rec.class_id is None else KNOWN))
    if result.classes:
        best = result.classes[0]
        lines.append((f"{best.label} {_percent(best.score)}", UNKNOWN))
    _text_block(img, lines)
    return img


def encode_jpeg(rgb: np.ndarray, quality: int = 80) -> bytes:
    """RGB -> JPEG bytes; the one place the pipeline converts back to OpenCV's BGR."""
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    return buf.tobytes()
