"""ReconnectingSource: keeps any Source going through faults, so the loop never crashes on a camera.

A read that raises, or no frame for `stall_seconds`, closes the source and reopens it with exponential
backoff (capped). Meanwhile read() returns a dark "NO SIGNAL" frame (paced, so the loop does not spin) and
`connected` is False. It never raises out of read(); `reconnects` and `failures` count what happened.

A read blocked inside a driver cannot be interrupted from Python: the stall is noticed when it returns
(OpenCV streams are opened with read timeouts so that it does).
"""

from __future__ import annotations

import logging
import threading
import time

import numpy as np

from appliance.camera.base import Source, SourceHealth, no_signal_frame

log = logging.getLogger(__name__)


class ReconnectingSource(Source):
    """Wraps a Source: reopen with backoff on faults, a NO SIGNAL frame meanwhile, counters for status."""

    def __init__(self, source: Source, *, width: int = 640, height: int = 480, stall_seconds: float = 5.0,
                 backoff_initial: float = 0.5, backoff_max: float = 10.0, no_signal_interval: float = 0.1):
        self.source = source
        self.name = source.name
        self.realtime = source.realtime
        self.stall_seconds = stall_seconds
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.no_signal_interval = no_signal_interval
        self.reconnects = 0          # successful reopenings after a fault
        self.failures = 0            # faults: a read raised, a stall, an open attempt failed
        self.connected = False
        self.last_error: str | None = None   # the fault now (None while connected)
        self.last_fault: str | None = None   # the latest fault, kept after recovering (for diagnosis)
        self._no_signal = no_signal_frame(width, height, source.name)
        self._backoff = backoff_initial
        self._retry_at = 0.0
        self._last_frame_at = 0.0
        self._had_fault = False
        self._closed = False
        self._lock = threading.Lock()

    @property
    def ended(self) -> bool:
        """A non-looping file or folder reached its end (that is not a fault: no reconnect)."""
        return self.source.ended

    def health(self) -> SourceHealth:
        return SourceHealth(self.connected, self.reconnects, self.failures, self.last_error)

    def open(self) -> None:
        """Open the source; a failure is logged and retried by read(), never raised."""
        with self._lock:
            self._closed = False
            self._try_open()

    def read(self) -> np.ndarray | None:
        with self._lock:
            if self._closed:
                return None
            if not self.connected:
                if time.monotonic() >= self._retry_at:
                    self._try_open()
                if not self.connected:
                    return self._wait_no_signal()
            try:
                frame = self.source.read()
            except Exception as exc:  # SourceError, or a driver / decoder bug: the loop must go on
                if self._closed:
                    return None
                self._fault(f"read failed: {exc}")
                return self._no_signal.copy()
            if self._closed:  # closed while this read was in progress
                self._close_inner()
                return None
            now = time.monotonic()
            if frame is None:
                if self.ended:
                    time.sleep(self.no_signal_interval)
                    return None
                if now - self._last_frame_at > self.stall_seconds:
                    self._fault(f"no frame for {now - self._last_frame_at:.1f} s (stall limit "
                                f"{self.stall_seconds:g} s)")
                    return self._no_signal.copy()
                return None
            self._last_frame_at = now
            self._backoff = self.backoff_initial
            return frame

    def close(self, timeout: float = 2.0) -> None:
        """Close the source; when a read is stuck in a driver, it is closed as soon as that read returns
        (closing a capture under a read in progress can crash native code)."""
        self._closed = True
        self.connected = False
        if self._lock.acquire(timeout=timeout):
            try:
                self._close_inner()
            finally:
                self._lock.release()
        else:
            log.warning("camera %s: a read is stuck; closing it when the read returns", self.name)

    # -- internals -----------------------------------------------------------------------------

    def _try_open(self) -> None:
        try:
            self.source.open()
        except Exception as exc:
            self.failures += 1
            self.last_error = self.last_fault = str(exc)
            self._schedule_retry()
            log.warning("camera %s: open failed (%s); retrying in %.1f s", self.name, exc,
                        self._retry_at - time.monotonic())
            self._close_inner()
            return
        self.connected = True
        self.last_error = None  # the status shows the fault while it lasts, not after the camera is back
        self._last_frame_at = time.monotonic()
        if self._had_fault:
            self.reconnects += 1
            log.info("camera %s: reconnected (%d reconnects so far)", self.name, self.reconnects)

    def _fault(self, why: str) -> None:
        self.failures += 1
        self.last_error = self.last_fault = why
        self.connected = False
        self._had_fault = True
        self._close_inner()
        self._schedule_retry()
        log.warning("camera %s: %s; reopening in %.1f s", self.name, why, self._retry_at - time.monotonic())

    def _schedule_retry(self) -> None:
        self._had_fault = True
        self._retry_at = time.monotonic() + self._backoff
        self._backoff = min(self._backoff * 2, self.backoff_max)

    def _close_inner(self) -> None:
        try:
            self.source.close()
        except Exception as exc:
            log.debug("camera %s: close failed: %s", self.name, exc)

    def _wait_no_signal(self) -> np.ndarray:
        """Pace the NO SIGNAL frames so the capture loop does not spin while the camera is away."""
        time.sleep(max(0.0, min(self.no_signal_interval, self._retry_at - time.monotonic())))
        return self._no_signal.copy()
