"""What the web routes share per app: the System, the viewer gauge, the shutdown flag, the password check."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from flask import current_app

from appliance.web.auth import PasswordCheck

STATE_KEY = "appliance.web"


class Gauge:
    """A thread-safe up/down counter (stream viewers, SSE clients) with a running total."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.value = 0
        self.total = 0

    def __enter__(self) -> Gauge:
        with self._lock:
            self.value += 1
            self.total += 1
        return self

    def __exit__(self, *exc: object) -> None:
        with self._lock:
            self.value -= 1


class PartCache:
    """The multipart-framed bytes of the latest JPEG, built once per frame for every viewer."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._seq = -1
        self._part = b""

    def part(self, seq: int, jpeg: bytes) -> bytes:
        with self._lock:
            if seq != self._seq:
                head = (b"--frame\r\nContent-Type: image/jpeg\r\n"
                        b"Content-Length: %d\r\nX-Frame-Seq: %d\r\n\r\n" % (len(jpeg), seq))
                self._part = head + jpeg + b"\r\n"
                self._seq = seq
            return self._part


@dataclass
class WebState:
    system: Any
    shutdown: threading.Event
    password: PasswordCheck | None
    heartbeat_s: float = 15.0
    poll_s: float = 0.5          # how often long-lived responses look at the shutdown flag
    viewers: Gauge = field(default_factory=Gauge)
    sse_clients: Gauge = field(default_factory=Gauge)
    parts: PartCache = field(default_factory=PartCache)


def web_state() -> WebState:
    return current_app.extensions[STATE_KEY]
