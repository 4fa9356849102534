"""Stats: the one source of statistics, read by the page, the JSON API, metrics and the watchdog.

Everything is guarded by one lock; writers are the capture and inference threads, readers anything.
Times are `time.monotonic()` seconds so wall-clock jumps (NTP on a Pi without RTC) do not matter.
"""

from __future__ import annotations

import threading
import time
from collections import deque

FPS_WINDOW_S = 2.0  # fps is measured over the events of the last two seconds


class _Rate:
    """Events per second over a short sliding window; memory bounded by maxlen."""

    def __init__(self, maxlen: int = 512) -> None:
        self._times: deque[float] = deque(maxlen=maxlen)

    def add(self, now: float) -> None:
        self._times.append(now)

    def per_second(self, now: float) -> float:
        times = self._times
        while times and now - times[0] > FPS_WINDOW_S:
            times.popleft()
        if len(times) < 2:
            return 0.0
        span = max(now - times[0], times[-1] - times[0])
        return (len(times) - 1) / span if span > 0 else 0.0


class Stats:
    """Counters, rates and timestamps of the running pipeline."""

    def __init__(self, *, mode: str = "classify", source: str = "", backend: str = "cpu",
                 backend_warning: str | None = None, clock=time.monotonic) -> None:
        self._lock = threading.Lock()
        self._clock = clock
        self._started = clock()
        self.mode = mode
        self.source = source
        self.backend = backend
        self.backend_warning = backend_warning
        self.connected = False
        self.reconnects = 0
        self.frames_captured = 0
        self.inferences = 0
        self.dropped_frames = 0
        self.inference_ms = 0.0
        self.last_frame_at: float | None = None   # a real camera frame
        self.last_tick_at: float | None = None    # any frame shown, "no signal" ones included
        self.last_inference_at: float | None = None
        self.inference_started_at: float | None = None  # set while an invoke runs: a hung one shows
        self._capture_rate = _Rate()
        self._inference_rate = _Rate()
        self._stage_total_ms: dict[str, float] = {}
        self._stage_count: dict[str, int] = {}

    # -- writers -------------------------------------------------------------------------------
    def configure(self, **fields) -> None:
        """Set descriptive fields: mode, source, backend, backend_warning."""
        with self._lock:
            for key, value in fields.items():
                if key not in ("mode", "source", "backend", "backend_warning"):
                    raise AttributeError(f"Stats has no field {key!r}")
                setattr(self, key, value)

    def frame_captured(self) -> None:
        now = self._clock()
        with self._lock:
            self.frames_captured += 1
            self.last_frame_at = now
            self.last_tick_at = now
            self._capture_rate.add(now)

    def tick(self) -> None:
        """The loop showed a frame without a camera frame (no signal): it is alive, the camera is not."""
        with self._lock:
            self.last_tick_at = self._clock()

    def frames_dropped(self, count: int = 1) -> None:
        with self._lock:
            self.dropped_frames += count

    def set_connection(self, connected: bool, reconnects: int) -> None:
        with self._lock:
            self.connected = connected
            self.reconnects = reconnects

    def inference_started(self) -> None:
        with self._lock:
            self.inference_started_at = self._clock()

    def inference_finished(self, inference_ms: float) -> None:
        now = self._clock()
        with self._lock:
            self.inferences += 1
            self.inference_started_at = None
            self.last_inference_at = now
            self.inference_ms = inference_ms
            self._inference_rate.add(now)

    def inference_failed(self) -> None:
        """The invoke returned (with an error): it is not hung; inferences just do not advance."""
        with self._lock:
            self.inference_started_at = None

    def add_stage(self, stage: str, ms: float) -> None:
        """Accumulate time spent in one pipeline stage (capture, preprocess, invoke, annotate, encode)."""
        with self._lock:
            self._stage_total_ms[stage] = self._stage_total_ms.get(stage, 0.0) + ms
            self._stage_count[stage] = self._stage_count.get(stage, 0) + 1

    def add_stages(self, stages: dict[str, float]) -> None:
        """add_stage for several stages of one frame under one lock (the hot path: once per frame)."""
        with self._lock:
            for stage, ms in stages.items():
                self._stage_total_ms[stage] = self._stage_total_ms.get(stage, 0.0) + ms
                self._stage_count[stage] = self._stage_count.get(stage, 0) + 1

    def reset_stages(self) -> None:
        with self._lock:
            self._stage_total_ms.clear()
            self._stage_count.clear()

    # -- readers -------------------------------------------------------------------------------
    def stages_ms(self) -> dict[str, float]:
        """Mean milliseconds per call of each stage since the last reset."""
        with self._lock:
            return {k: self._stage_total_ms[k] / self._stage_count[k] for k in self._stage_total_ms}

    def uptime_s(self) -> float:
        return self._clock() - self._started

    def _age(self, at: float | None, now: float) -> float | None:
        return None if at is None else now - at

    def stalled_for(self) -> float:
        """Seconds since frames or inferences last advanced, or since the running invoke started.

        While the camera is disconnected only the loop itself must advance (it shows "no signal" and
        reconnects): restarting the service would not bring a camera back.
        """
        now = self._clock()
        with self._lock:
            watched = (self.last_frame_at, self.last_inference_at) if self.connected else (self.last_tick_at,)
            ages = [self._age(at, now) for at in watched]
            running = self._age(self.inference_started_at, now)
            since_start = now - self._started
        ages = [since_start if a is None else a for a in ages]
        if running is not None:
            ages.append(running)
        return max(ages)

    def healthy(self, stall_seconds: float) -> bool:
        """True while frames and inferences keep advancing and no invoke hangs (feeds the watchdog)."""
        return self.stalled_for() <= stall_seconds

    def snapshot(self) -> dict:
        now = self._clock()
        with self._lock:
            return {
                "backend": self.backend,
                "backend_warning": self.backend_warning,
                "fps": {
                    "capture": round(self._capture_rate.per_second(now), 2),
                    "inference": round(self._inference_rate.per_second(now), 2),
                },
                "inference_ms": round(self.inference_ms, 2),
                "dropped_frames": self.dropped_frames,
                "uptime_s": round(now - self._started, 1),
                "source": self.source,
                "connected": self.connected,
                "reconnects": self.reconnects,
                "frames_captured": self.frames_captured,
                "inferences": self.inferences,
                "last_frame_age_s": _round(self._age(self.last_frame_at, now)),
                "last_inference_age_s": _round(self._age(self.last_inference_at, now)),
                "inference_running_s": _round(self._age(self.inference_started_at, now)),
                "mode": self.mode,
            }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)
