"""Pipeline: capture thread -> LatestSlot -> inference thread -> LatestSlot -> annotate + encode thread.

Three threads so that reading/decoding the next frame, invoking the model, and drawing/encoding the
previous result overlap (TFLite's invoke and OpenCV release the GIL). Between them only one-item slots:
when a later stage is slower, older items are replaced and counted, never queued. With the models in
the inference worker process a fourth thread finishes results; on an accelerator the next frame is
already queued in the worker while the last one's outputs are read (at most IN_FLIGHT frames started).
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

from appliance.camera.base import Source, no_signal_frame
from appliance.pipeline.annotate import annotate, encode_jpeg
from appliance.pipeline.events import EventBus
from appliance.pipeline.hub import FrameHub
from appliance.pipeline.infer import Inference, Job
from appliance.pipeline.result import Result
from appliance.pipeline.slot import LatestSlot
from appliance.pipeline.stats import Stats
from appliance.pipeline.tap import EmbeddingTap

log = logging.getLogger(__name__)

WAIT_S = 0.25            # how often idle threads look at the stop flag
IN_FLIGHT = 2            # frames started and not yet finished: one invoking, the next queued behind it
READ_ERROR_BACKOFF_S = 0.5
EMPTY_READ_SLEEP_S = 0.005


@dataclass(frozen=True)
class Frame:
    seq: int                 # capture seq (camera frames only)
    rgb: np.ndarray
    captured_at: float       # time.monotonic()
    signal: bool = True      # False: a "no signal" picture, not a camera frame
    prepared: dict | None = None  # the frame shrunk for each model (Inference.prepare)


def _recognition_key(result: Result) -> tuple:
    """What counts as 'the recognition changed' (for events): the smoothed class (and for unknown the class
    it is closest to) and detected labels."""
    rec = result.recognition
    head = (None, None, None) if rec is None else (rec.class_id, rec.label, rec.closest)
    if result.mode != "detect":
        return head
    labels = []
    for i, obj in enumerate(result.objects):
        match = result.matches[i] if i < len(result.matches) else None
        labels.append(match.label if match is not None and match.class_id is not None else obj.label)
    return head + tuple(sorted(labels))


def recognition_event(result: Result) -> dict:
    data = result.to_dict()
    rec = data["recognition"] or {"class_id": None, "label": None, "score": 0.0}
    return {**rec, "mode": result.mode, "frame_seq": result.frame_seq, "objects": data["objects"],
            "classes": data["classes"]}


@dataclass(frozen=True)
class PipelineSettings:
    """How the pipeline runs; System builds it from the config, tests and benchmarks their own."""

    frame_size: tuple[int, int] = (640, 480)  # of the "no signal" picture: the camera's (width, height)
    max_publish_fps: float | None = None      # encode at most this often (None: every result)
    pace_to_consumer: bool = False            # read a file / folder / demo source only when the last
    jpeg_quality: int = 80                    # frame was taken (benchmarks)
    no_signal_after_s: float = 2.0            # camera silent this long: viewers see "no signal"
    opencv_threads: int | None = 1            # OpenCV's pool size for the whole process (None: its own)

    @classmethod
    def from_config(cls, config, *, pace_to_consumer: bool = False) -> PipelineSettings:
        cam = config.camera
        return cls(frame_size=(cam.width, cam.height), max_publish_fps=cam.fps,
                   pace_to_consumer=pace_to_consumer)


class Pipeline:
    def __init__(self, source: Source, inference: Inference, settings: PipelineSettings | None = None, *,
                 stats: Stats | None = None, hub: FrameHub | None = None,
                 events: EventBus | None = None) -> None:
        s = settings or PipelineSettings()
        self.source = source
        self.inference = inference
        self.stats = stats or Stats(mode=inference.mode, source=source.name)
        self.hub = hub or FrameHub()
        self.events = events or EventBus()
        self.on_result: list[Callable[[Result], None]] = []
        self.embeddings = EmbeddingTap()  # a teaching burst takes its frames' embeddings from here
        # a non-realtime source (file, folder, demo) read only when the last frame was taken: it runs
        # exactly one frame ahead of inference instead of decoding frames that would be dropped
        self.pace_to_consumer = s.pace_to_consumer and not source.realtime
        self.jpeg_quality = s.jpeg_quality
        # one encode per DISPLAYED frame: when inference outruns the display rate (a fast model on a
        # file source), results in between are not encoded, leaving the CPU to invoke
        self.min_publish_interval = 1.0 / s.max_publish_fps if s.max_publish_fps else 0.0
        self.no_signal_after_s = s.no_signal_after_s
        # OpenCV's own thread pool (resize, colour conversion, JPEG) would fight the interpreter's
        # threads for the same cores on every frame: the pipeline's OpenCV work runs on its own thread
        # (process-wide setting, applied at start; None leaves OpenCV's default)
        self.opencv_threads = s.opencv_threads
        self._no_signal_rgb = no_signal_frame(*s.frame_size, source.name)
        self._no_signal_jpeg = encode_jpeg(self._no_signal_rgb, s.jpeg_quality)
        self._started_at = time.monotonic()
        self._frames: LatestSlot[Frame] = LatestSlot()
        self._to_encode: LatestSlot[tuple[Frame, Result | None]] = LatestSlot()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._latest_frame: Frame | None = None
        self._latest_result: Result | None = None
        self._capture_seq = 0
        self._jobs: queue.Queue[tuple[Frame, Job, float]] = queue.Queue()
        self._started = 0                  # frames started and not finished
        self._started_cond = threading.Condition()
        self.read_errors = 0
        self.inference_errors = 0
        self.last_inference_error: Exception | None = None  # the latest frame's, None once one succeeds
        self.encode_skipped = 0
        self._connection: tuple[bool, int] | None = None  # last told to the stats

    # -- public --------------------------------------------------------------------------------
    def start(self) -> None:
        if self._threads:
            raise RuntimeError("pipeline already started")
        self._stop.clear()
        self.embeddings.open()
        if self._frames.closed:  # started again after stop(): fresh slots
            self._frames, self._to_encode = LatestSlot(), LatestSlot()
        self._started_at = time.monotonic()
        if self.opencv_threads is not None:
            cv2.setNumThreads(self.opencv_threads)
        self._jobs = queue.Queue()
        self._started = 0
        loops = [("capture", self._capture_loop), ("inference", self._inference_loop),
                 ("encode", self._encode_loop)]
        if self.inference.remote:
            loops.insert(2, ("results", self._results_loop))
        for name, target in loops:
            thread = threading.Thread(target=self._guard(target), name=f"pipeline-{name}", daemon=True)
            self._threads.append(thread)
            thread.start()

    def stop(self, timeout: float = 2.0) -> None:
        """Stop and join the threads within `timeout` (a capture thread stuck in a driver is abandoned)."""
        self._stop.set()
        self._frames.close()
        self.embeddings.close()
        self._to_encode.close()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
            if thread.is_alive():
                log.warning("%s did not stop within %.1f s; abandoning it", thread.name, timeout)
        self._threads = []

    @property
    def running(self) -> bool:
        return any(t.is_alive() for t in self._threads)

    @property
    def capture_seq(self) -> int:
        return self._capture_seq

    @property
    def dropped_frames(self) -> int:
        return self._frames.dropped

    def latest_result(self) -> Result | None:
        return self._latest_result

    def latest_frame(self) -> Frame | None:
        return self._latest_frame

    # -- threads -------------------------------------------------------------------------------
    def _guard(self, loop: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            try:
                loop()
            except Exception:  # a bug, not a camera or model fault: say so loudly; health goes false
                log.exception("pipeline thread %s crashed", threading.current_thread().name)
        return run

    def _read(self) -> tuple[np.ndarray | None, bool]:
        """(frame or None, whether the source has signal); exceptions become 'no signal' + backoff."""
        try:
            rgb = self.source.read()
        except Exception as exc:  # SourceError from a bare source, or a driver bug: keep serving
            self.read_errors += 1
            if self.read_errors == 1 or self.read_errors % 100 == 0:
                log.warning("camera read failed (%d so far): %s", self.read_errors, exc)
            self._set_connection(False, self.source.health().reconnects)
            self._show_no_signal()
            self._stop.wait(READ_ERROR_BACKOFF_S)
            return None, False
        health = self.source.health()
        self._set_connection(health.connected, health.reconnects)
        return rgb, health.connected

    def _set_connection(self, connected: bool, reconnects: int) -> None:
        """Tell the stats when the connection state or reconnect count changed (not on every frame)."""
        state = (connected, reconnects)
        if state != self._connection:
            self._connection = state
            self.stats.set_connection(*state)

    def _show_no_signal(self, rgb: np.ndarray | None = None) -> None:
        frame = Frame(self._capture_seq, self._no_signal_rgb if rgb is None else rgb, time.monotonic(), False)
        self._to_encode.put((frame, None))
        self.stats.tick()

    def _prepare(self, rgb: np.ndarray) -> dict | None:
        try:
            return self.inference.prepare(rgb)
        except Exception as exc:  # e.g. a malformed frame: the inference thread will report it
            log.debug("preparing a frame failed: %s", exc)
            return None

    def _capture_loop(self) -> None:
        while not self._stop.is_set():
            if self.pace_to_consumer and not self._frames.wait_empty(WAIT_S):
                continue
            t0 = time.perf_counter()
            rgb, connected = self._read()
            if rgb is None:
                self._stop.wait(EMPTY_READ_SLEEP_S)
                continue
            if not connected:  # the reconnecting wrapper's own "no signal" picture: show, never infer
                self._show_no_signal(rgb)
                continue
            t1 = time.perf_counter()
            prepared = self._prepare(rgb)
            self.stats.add_stages({"capture": (t1 - t0) * 1e3, "resize": (time.perf_counter() - t1) * 1e3})
            self._capture_seq += 1
            frame = Frame(self._capture_seq, rgb, time.monotonic(), True, prepared)
            self._latest_frame = frame
            self.stats.frame_captured()
            before = self._frames.dropped
            self._frames.put(frame)
            if self._frames.dropped != before:
                self.stats.frames_dropped(self._frames.dropped - before)

    def _inference_loop(self) -> None:
        """Take the newest frame and run it. With the models in the inference worker this thread only
        starts frames and the results thread finishes them: on an accelerator (whose invoke leaves this
        machine's CPU) up to IN_FLIGHT at once, one invoking and the next queued behind it, so the
        accelerator never waits for the CPU work around it; on the CPU one at a time, as there is
        nothing to gain from queueing work for the same cores."""
        last_key: tuple | None = None
        remote = self.inference.remote
        while not self._stop.is_set():
            if remote and not self._room_for_a_frame(WAIT_S):
                continue
            item = self._frames.take(WAIT_S)
            if item is None:
                continue
            with self._started_cond:
                if self._started == 0:
                    self.stats.inference_started()
                self._started += 1
            started = self._start(item[1])
            if not remote:
                last_key = self._done(started, last_key)
            elif started is None:
                self._done(None, last_key)
            else:
                self._jobs.put(started)

    def _room_for_a_frame(self, timeout: float) -> bool:
        limit = IN_FLIGHT if self.inference.overlaps else 1  # the backend may change at a fallback
        with self._started_cond:
            return self._started_cond.wait_for(lambda: self._started < limit, timeout)

    def _results_loop(self) -> None:
        """Finish started frames in order (models in the worker only)."""
        last_key: tuple | None = None
        while not self._stop.is_set():
            try:
                started = self._jobs.get(timeout=WAIT_S)
            except queue.Empty:
                continue
            last_key = self._done(started, last_key)
        while True:  # stopping: collect what is still in the worker, so its slots come free
            try:
                frame, job, _ = self._jobs.get_nowait()
            except queue.Empty:
                return
            with contextlib.suppress(Exception):
                self.inference.finish(job)

    def _done(self, started: tuple[Frame, Job, float] | None, last_key: tuple | None) -> tuple | None:
        """Finish one started frame (None: it failed to start): read its result, free its place at once
        (the next frame may go to the worker while this one is published), then publish it."""
        if started is None:
            self._release()
            return last_key
        frame, job, t0 = started
        try:
            result = self.inference.finish(job)
        except Exception as exc:  # e.g. an Edge TPU unplugged, the worker restarting
            self._release()
            self._failed(frame, exc)
            return last_key
        self._release()
        return self._publish(frame, result, t0, last_key)

    def _release(self) -> None:
        with self._started_cond:
            self._started -= 1
            if self._started > 0:
                self.stats.inference_started()  # the next one is running now
            self._started_cond.notify_all()

    def _start(self, frame: Frame) -> tuple[Frame, Job, float] | None:
        t0 = time.perf_counter()
        try:
            job = self.inference.start(frame.seq, frame.rgb, frame.prepared, embed=self.embeddings.wanted)
        except Exception as exc:  # e.g. an Edge TPU unplugged, the worker restarting
            self._failed(frame, exc)
            return None
        return frame, job, t0

    def _failed(self, frame: Frame, exc: Exception) -> None:
        """Count, keep the loop going and the picture live; health decides what it means."""
        self.stats.inference_failed()
        self.inference_errors += 1
        self.last_inference_error = exc
        if self.inference_errors == 1 or self.inference_errors % 100 == 0:
            log.error("inference failed (%d so far): %s", self.inference_errors, exc)
        self._to_encode.put((frame, None))  # viewers still see the live picture
        self._stop.wait(READ_ERROR_BACKOFF_S)

    def _publish(self, frame: Frame, result: Result, t0: float, last_key: tuple | None) -> tuple | None:
        self.stats.inference_finished((time.perf_counter() - t0) * 1e3)
        self.stats.add_stages(result.timings)
        self._latest_result = result
        self.last_inference_error = None
        if result.embedded is not None:
            self.embeddings.put(result.embedded)
        skipped = self._to_encode.dropped
        self._to_encode.put((frame, result))
        self.encode_skipped += self._to_encode.dropped - skipped
        for callback in list(self.on_result):
            try:
                callback(result)
            except Exception:
                log.exception("result callback failed")
        key = _recognition_key(result)
        if key != last_key:
            self.events.publish("recognition", recognition_event(result))
        return key

    def _camera_silent_for(self, now: float) -> float:
        latest = self._latest_frame
        return now - max(self._started_at, latest.captured_at if latest is not None else 0.0)

    def _encode_loop(self) -> None:
        last_shown = time.monotonic()
        next_due = 0.0  # the display-rate schedule (no drift: due times advance by the interval)
        while not self._stop.is_set():
            now = time.monotonic()
            if now < next_due:
                # sleep to the display's next due time rather than wake for every result (a thread
                # switch per frame, taken from invoke): the newest result by then is the one shown,
                # those it replaced are counted as skipped
                self._stop.wait(min(next_due - now, WAIT_S))
            item = self._to_encode.take(WAIT_S)
            now = time.monotonic()
            if item is None:
                # capture stalled (stuck in a driver, or only empty reads): tell the viewers, but do not
                # tick the stats: a capture thread that stays stuck is what the watchdog is for
                if (now - last_shown >= self.no_signal_after_s
                        and self._camera_silent_for(now) >= self.no_signal_after_s):
                    self.hub.publish(self._no_signal_jpeg)
                    last_shown = now
                continue
            _, (frame, result) = item
            if frame.signal and self.min_publish_interval:
                if now < next_due:
                    self.encode_skipped += 1
                    continue
                next_due = max(next_due + self.min_publish_interval, now - self.min_publish_interval / 2)
            t0 = time.perf_counter()
            picture = annotate(frame.rgb, result) if frame.signal else frame.rgb
            t1 = time.perf_counter()
            jpeg = encode_jpeg(picture, self.jpeg_quality)
            t2 = time.perf_counter()
            if frame.signal:
                self.stats.add_stages({"annotate": (t1 - t0) * 1e3, "encode": (t2 - t1) * 1e3})
            self.hub.publish(jpeg)
            last_shown = time.monotonic()
