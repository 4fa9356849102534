"""System: everything wired from one Config — models, class store, camera, pipeline, teacher, controls, web.

Build order matters for error messages: the config is already valid; models resolve and load next
(the commonest failure: a missing model or Edge TPU), then the store, then the camera source. Nothing
runs until start(); stop() ends the web page, buttons and threads within about two seconds and closes
the store (a teaching burst cut short commits nothing: its frames never reach the store).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from appliance.camera import ReconnectingSource, open_source
from appliance.errors import ApplianceError
from appliance.learning.model_identity import model_identity
from appliance.learning.store import ClassStore
from appliance.model_files import resolve_model
from appliance.pipeline.events import EventBus
from appliance.pipeline.hub import FrameHub
from appliance.pipeline.infer import Engines, Inference, InferSettings, main_object_crop
from appliance.pipeline.result import Result
from appliance.pipeline.stats import Stats
from appliance.pipeline.worker import Pipeline
from appliance.teacher import Teacher
from appliance.vision.classify import Classifier
from appliance.vision.detect import Detector
from appliance.vision.embed import Embedder
from appliance.vision.labels import read_labels
from appliance.vision.model import Model, load_model

log = logging.getLogger(__name__)

STORE_FILE = "classes.sqlite"
SOURCE_STALL_S = 5.0  # the camera wrapper reopens a source silent for this long


class Models:
    """The loaded engines (each model file loaded once for the process's life)."""

    def __init__(self, config) -> None:
        v = config.vision
        self._where = {"models_dir": config.models_dir, "models_from": v.models_from or None}
        mode = config.recognition.mode
        self.embedder_path = self._resolve(v.embedder)
        self.embedder = Embedder(self._load(self.embedder_path, v))
        self.classifier = None
        self.detector = None
        if mode == "classify" and config.recognition.show_base_labels:
            model = self._load(self._resolve(v.classifier), v)
            self.classifier = Classifier(model, read_labels(self._resolve(v.classifier_labels)))
        if mode == "detect":
            model = self._load(self._resolve(v.detector), v)
            self.detector = Detector(model, read_labels(self._resolve(v.detector_labels)))
        self.main: Model = (self.detector or self.embedder).model

    def _resolve(self, name: str) -> Path:
        return resolve_model(name, **self._where)

    @staticmethod
    def _load(path: Path, v) -> Model:
        return load_model(path, device=v.device, edgetpu_device=v.edgetpu_device, num_threads=v.num_threads)

    def all(self) -> list[Model]:
        return [e.model for e in (self.embedder, self.classifier, self.detector) if e is not None]

    @property
    def backend(self) -> str:
        return self.main.backend

    @property
    def warning(self) -> str | None:
        return next((m.warning for m in self.all() if m.warning), None)


class System:
    def __init__(self, config, *, source=None, throttle: bool = True, pace_to_consumer: bool = False) -> None:
        from appliance.learning.recognizer import Recognizer  # written by the learning part

        self.config = config
        self.started_at: float | None = None
        self.web_server = None
        self.web_url: str | None = None
        self.controls = None
        self._stopped = False
        self.models = Models(config)
        data_dir = Path(config.data_dir)
        data_dir.mkdir(parents=True, exist_ok=True)
        self.store = ClassStore(data_dir / STORE_FILE, model_identity(self.models.embedder_path),
                                max_samples=config.teach.max_samples_per_class,
                                max_thumbnails=config.teach.thumbnails_per_class)
        r = config.recognition
        self.recognizer = Recognizer(self.store, head=r.head, unknown_threshold=r.unknown_threshold,
                                     min_similarity=r.min_similarity, background=True)
        cam = config.camera
        if source is None:
            source = open_source(cam.source, width=cam.width, height=cam.height, fps=cam.fps, loop=cam.loop,
                                 throttle=throttle)
        if not isinstance(source, ReconnectingSource):
            source = ReconnectingSource(source, width=cam.width, height=cam.height,
                                        stall_seconds=SOURCE_STALL_S)
        self.source = source
        self.stats = Stats(mode=r.mode, source=source.name, backend=self.models.backend,
                           backend_warning=self.models.warning)
        self.hub = FrameHub()
        self.events = EventBus()
        engines = Engines(embedder=self.models.embedder, recognizer=self.recognizer,
                          classifier=self.models.classifier, detector=self.models.detector, store=self.store)
        self.inference = Inference(engines, InferSettings.from_config(r))
        self.pipeline = Pipeline(source, self.inference, stats=self.stats, hub=self.hub, events=self.events,
                                 pace_to_consumer=pace_to_consumer, status_fn=self.status,
                                 frame_size=(cam.width, cam.height), max_publish_fps=cam.fps)
        self.teacher = Teacher.from_config(config, self.pipeline, self.models.embedder, self.store,
                                           self.events)
        if self.models.detector is not None:  # detect mode matches box crops: teach from the main box
            self.teacher.region = main_object_crop(self.models.detector, r.detect_threshold)

    # -- lifecycle -----------------------------------------------------------------------------
    def start(self, *, web: bool | None = None, controls: bool | None = None) -> None:
        """Open the camera, start the threads, then the buttons and the web page (when configured)."""
        self.source.open()
        self.pipeline.start()
        self.started_at = time.monotonic()
        if self.config.controls.enabled if controls is None else controls:
            self._start_controls()
        if self.config.web.enabled if web is None else web:
            self._start_web()

    def _start_controls(self) -> None:
        try:
            from appliance.controls import Controls  # gpiozero is imported only when buttons are wanted
        except ModuleNotFoundError as exc:
            log.warning("buttons and LEDs not available (%s)", exc)
            return
        self.controls = Controls(self.config.controls, on_teach=self._teach_slot,
                                 on_clear=self.teacher.clear_slot)
        self.teacher.on_busy.append(self._recording_led)
        self.pipeline.on_result.append(self._recognised_led)

    def _teach_slot(self, slot: int) -> None:
        """A button press (Controls runs it in its own thread): ConflictError tells it a burst is running."""
        self.teacher.teach(label=self.teacher.slot_label(slot), slot=slot)

    def _recording_led(self, slot: int | None, busy: bool) -> None:
        if self.controls is not None and slot is not None:
            self.controls.set_recording(slot if busy else None)

    def _recognised_led(self, result: Result) -> None:
        if self.controls is not None:
            self.controls.set_recognised(self.recognised_slot(result))

    def recognised_slot(self, result: Result | None) -> int | None:
        """The button slot whose class the result shows (smoothed; in detect mode the best-matched box)."""
        rec = None if result is None else result.recognition
        if rec is None or rec.class_id is None:
            return None
        return self.teacher.slot_of(rec.label)

    def _start_web(self) -> None:
        try:
            from appliance.web.app import create_app
            from appliance.web.server import serve
        except ModuleNotFoundError as exc:  # an install without the web part
            log.warning("web page not available (%s)", exc)
            return
        w = self.config.web
        try:
            self.web_server = serve(create_app(self), w.host, w.port, w.threads)
        except OSError as exc:  # port taken, address not on this machine, port < 1024 without rights
            raise ApplianceError(f"cannot serve the web page on {w.host}:{w.port}: {exc.strerror or exc}",
                                 "choose another --port / [web] port, or stop the program using it") from exc
        self.web_url = self.web_server.url

    def stop(self) -> None:
        """Stop everything within about two seconds; safe to call twice."""
        if self._stopped:
            return
        self._stopped = True
        if self.web_server is not None:
            self.web_server.stop()
        if self.controls is not None:
            try:
                self.controls.close()
            except Exception:
                log.exception("closing the buttons and LEDs failed")
        self.pipeline.stop(timeout=1.5)  # a running burst now gets no frames and commits nothing
        self.recognizer.close()
        self.source.close()
        self.hub.close()
        self.events.close()
        got = self.teacher._lock.acquire(timeout=1.0)  # let a burst's one transaction finish or fail
        try:
            self.store.close()
        finally:
            if got:
                self.teacher._lock.release()

    def __enter__(self) -> System:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # -- state ---------------------------------------------------------------------------------
    def latest_result(self) -> Result | None:
        return self.pipeline.latest_result()

    def healthy(self, max_age_s: float | None = None) -> bool:
        """Frames and inferences advancing (or, camera gone, the loop showing "no signal"); no hung invoke."""
        limit = self.config.service.stall_seconds if max_age_s is None else max_age_s
        return self.pipeline.running and self.stats.healthy(limit)

    def status(self) -> dict:
        snap = self.stats.snapshot()
        try:  # the recognizer's view when it has one: the status (once a second, from the encode
            # thread) must not wait for the store while a teach commits or the head builder reads it
            classes = self.recognizer.class_count
            if classes is None:
                classes = len(self.store.list_classes())
        except Exception:  # a closed store while stopping: the rest of the status still matters
            classes = None
        snap.update({
            "classes": classes,
            "teaching": self.teacher.busy,
            "source_failures": int(getattr(self.source, "failures", 0)),
            "source_error": getattr(self.source, "last_error", None),
            "inference_errors": self.pipeline.inference_errors,
            "events_dropped": self.events.dropped,
            "models": {m.kind: m.path.name for m in self.models.all()},
            "web_url": self.web_url,
        })
        return snap

    def describe(self) -> str:
        """One line for the log: what is served where, on which backend."""
        parts = [f"{self.config.recognition.mode} mode", f"camera {self.source.name}",
                 f"backend {self.models.backend} ({self.models.main.path.name})"]
        if self.models.warning:
            parts.append(f"WARNING: {self.models.warning}")
        parts.append(f"page {self.web_url}" if self.web_url else "no web page")
        parts.append(f"classes in {self.store.path}")
        return "; ".join(parts)

