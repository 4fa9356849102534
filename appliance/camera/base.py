"""The Source protocol every camera source follows, and the small pieces they share.

A frame is an RGB uint8 (H, W, 3) array. OpenCV and picamera2's "RGB888" are BGR in memory: each source
converts at its edge, so nothing downstream ever has to guess the channel order.

Sources subclass Source: a plain source raises SourceError when its camera is gone and so is always
`connected` while it answers; ReconnectingSource overrides health() with what it has been through.
"""

from __future__ import annotations

import time
from typing import NamedTuple, Protocol, runtime_checkable

import cv2
import numpy as np


class SourceHealth(NamedTuple):
    """What the pipeline and the status report about a camera."""

    connected: bool = True           # False: the picture is "no signal" while it reconnects
    reconnects: int = 0              # successful reopenings after a fault
    failures: int = 0                # faults: a read raised, a stall, an open attempt failed
    last_error: str | None = None    # the fault now (None while connected)


@runtime_checkable
class Source(Protocol):
    name: str               # for logs and status, e.g. "folder:/path"
    realtime: bool          # True when the device paces itself (cameras, streams)
    ended: bool = False     # a non-looping file or folder reached its end (not a fault)

    def open(self) -> None: ...                    # SourceError with a fix

    def read(self) -> np.ndarray | None: ...       # RGB frame; None = nothing yet; SourceError = gone

    def close(self) -> None: ...

    def health(self) -> SourceHealth:
        return SourceHealth()


def no_signal_frame(width: int, height: int, detail: str = "") -> np.ndarray:
    """A dark frame with NO SIGNAL in the middle and an optional smaller line (the source) below it."""
    img = np.full((height, width, 3), 20, np.uint8)
    font = cv2.FONT_HERSHEY_SIMPLEX
    scale = max(0.5, width / 400)
    thickness = max(1, round(scale * 2))
    (tw, th), _ = cv2.getTextSize("NO SIGNAL", font, scale, thickness)
    cv2.putText(img, "NO SIGNAL", ((width - tw) // 2, (height + th) // 2), font, scale, (220, 220, 220),
                thickness, cv2.LINE_AA)
    if detail:
        small = scale * 0.4
        (dw, dh), _ = cv2.getTextSize(detail, font, small, 1)
        cv2.putText(img, detail, (max(4, (width - dw) // 2), (height + th) // 2 + 2 * dh + 8), font, small,
                    (150, 150, 150), 1, cv2.LINE_AA)
    return img


def bgr_to_rgb(bgr: np.ndarray) -> np.ndarray:
    """OpenCV's BGR (or BGRA / grey) frame as a contiguous RGB uint8 array."""
    if bgr.ndim == 2:
        return cv2.cvtColor(bgr, cv2.COLOR_GRAY2RGB)
    if bgr.shape[2] == 4:
        return cv2.cvtColor(bgr, cv2.COLOR_BGRA2RGB)
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


class Pacer:
    """Sleeps so that successive calls to wait() happen at most `fps` times a second.

    Disabled (throttle=False, for benchmarks) it never sleeps. When the caller falls behind it does not
    try to catch up with a burst: the schedule restarts from now.
    """

    def __init__(self, fps: float, enabled: bool = True) -> None:
        self.interval = 1.0 / fps if fps > 0 else 0.0
        self.enabled = enabled and self.interval > 0
        self._next = 0.0

    def wait(self) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if now < self._next:
            time.sleep(self._next - now)
            self._next += self.interval
        else:
            self._next = now + self.interval

    def reset(self) -> None:
        self._next = 0.0


def cover(rgb: np.ndarray, width: int, height: int) -> np.ndarray:
    """Scale to cover width x height keeping the aspect ratio, then centre-crop (no black bars)."""
    h, w = rgb.shape[:2]
    scale = max(width / w, height / h)
    new_w, new_h = max(width, round(w * scale)), max(height, round(h * scale))
    interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    resized = cv2.resize(rgb, (new_w, new_h), interpolation=interpolation)
    x, y = (new_w - width) // 2, (new_h - height) // 2
    return np.ascontiguousarray(resized[y:y + height, x:x + width])
