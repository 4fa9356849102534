"""System: everything wired from one Config — models, class store, camera, pipeline, classes, controls, web.

Build order matters for error messages: the config is already valid; models resolve and load next
(the commonest failure: a missing model or Edge TPU), then the store, then the camera source. Nothing
runs until start(); stop() ends the web page, buttons and threads within about two seconds and closes
the store (a teaching burst cut short commits nothing: its frames never reach the store).

System owns the `status` event: its own ticker thread publishes it every second (and at once when the
backend changes), so the page's figures keep moving even while the pipeline is stalled.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from appliance.camera import ReconnectingSource, open_source
from appliance.camera.base import Source
from appliance.camera.demo import DemoSource
from appliance.classes import Classes
from appliance.config import Config
from appliance.controls import Controls
from appliance.custom_models import load_labels, notice_for
from appliance.errors import ApplianceError, ConflictError
from appliance.inference.supervisor import InferenceWorker, RemoteModel, worker_for
from appliance.learning.model_identity import model_identity
from appliance.learning.recognizer import Recognizer
from appliance.learning.store import ClassStore
from appliance.model_files import resolve_model
from appliance.pipeline.events import EventBus
from appliance.pipeline.hub import FrameHub
from appliance.pipeline.infer import Engines, Inference, InferSettings
from appliance.pipeline.result import Result
from appliance.pipeline.stats import Stats
from appliance.pipeline.worker import Pipeline, PipelineSettings
from appliance.teacher import Teacher
from appliance.vision import backends
from appliance.vision.classify import Classifier
from appliance.vision.detect import Detector
from appliance.vision.embed import Embedder
from appliance.vision.model import load_model
from appliance.web.app import create_app
from appliance.web.server import WebServer, serve

if TYPE_CHECKING:  # started only when [mqtt] is on (imported then)
    from appliance.mqtt.bridge import MqttBridge

log = logging.getLogger(__name__)

STORE_FILE = "classes.sqlite"
SOURCE_STALL_S = 5.0  # the camera wrapper reopens a source silent for this long
STATUS_EVERY_S = 1.0  # the `status` event's period


class Models:
    """The engines. Their models run in the inference worker process (see appliance.inference), or in
    this process with in_process=True (benchmarks compare the two)."""

    def __init__(self, config: Config, *, in_process: bool = False, simulate_ms: float = 0.0) -> None:
        v = config.vision
        self._where = {"models_dir": config.models_dir, "models_from": v.models_from or None}
        mode = config.recognition.mode
        self.embedder_path = self._resolve(v.embedder)
        roles = {"embedder": (self.embedder_path, None)}
        if mode == "classify" and config.recognition.show_base_labels:
            path = self._resolve(v.classifier)
            roles["classifier"] = (path, self._labels(path, v.classifier_labels))
        if mode == "detect":
            path = self._resolve(v.detector)
            roles["detector"] = (path, self._labels(path, v.detector_labels))
        self.worker: InferenceWorker | None = None
        if in_process:
            loaded = {role: load_model(path, device=v.device, edgetpu_device=v.edgetpu_device,
                                       num_threads=v.num_threads) for role, (path, _) in roles.items()}
        else:
            self.worker = worker_for(v, {role: path for role, (path, _) in roles.items()},
                                     simulate_ms=simulate_ms)
            if (v.probe_at_start and v.device != backends.CPU
                    and any(b.present() for b in backends.accelerators())):
                self._probe_first(config)
            self.worker.start()
            loaded = {role: RemoteModel(self.worker, role) for role in roles}
        self.embedder = Embedder(loaded["embedder"])
        self.classifier = (Classifier(loaded["classifier"], roles["classifier"][1]) if "classifier" in roles
                           else None)
        self.detector = Detector(loaded["detector"], roles["detector"][1]) if "detector" in roles else None
        self.main = (self.detector or self.embedder).model
        # a custom model that runs partly on the CPU says where it splits and what a frame costs
        self.notices = [n for n in map(notice_for, filter(None, (self.classifier, self.detector))) if n]

    def _probe_first(self, config) -> None:
        """One real inference on the Edge TPU in a throwaway process before trusting it. Under "auto" a
        failed probe means the CPU from the start, with the probe's words as the warning; under "edgetpu"
        it is logged with its fix, and the worker keeps trying (the appliance reports itself unhealthy)."""
        from appliance.inference.probe import probe_configured

        v = config.vision
        result = probe_configured(config, config.models_dir)
        if result.ok:
            log.info("Edge TPU probe: %s", result.detail)
        elif not result.probed:
            log.warning("Edge TPU not probed (%s): fix: %s", result.detail, result.fix)
        elif v.device == backends.AUTO:
            self.worker.fall_back(f"the Edge TPU probe at start-up failed: {result.detail}: running on the "
                                  f"CPU; fix: {result.fix}; then retry from the page")
        else:
            log.error("the Edge TPU probe at start-up failed: %s; fix: %s", result.detail, result.fix)

    def _resolve(self, name: str) -> Path:
        return resolve_model(name, **self._where)

    def _labels(self, model_path: Path, name: str) -> dict[int, str] | None:
        """The label file named in the config; none named: the labels inside the model, if any."""
        return load_labels(model_path, self._resolve(name) if name else None)[0]

    def all(self) -> list:
        return [e.model for e in (self.embedder, self.classifier, self.detector) if e is not None]

    @property
    def backend(self) -> str:
        return self.worker.backend if self.worker is not None else self.main.backend

    @property
    def warning(self) -> str | None:
        """What the page's banner says: a fallback or a missing accelerator, and custom-model notices."""
        if self.worker is not None:
            base = self.worker.warning
        else:
            base = next((m.warning for m in self.all() if m.warning), None)
        return "; ".join(filter(None, (base, *self.notices))) or None

    def close(self) -> None:
        if self.worker is not None:
            self.worker.close()


class System:
    def __init__(self, config: Config, *, source: Source | None = None, throttle: bool = True,
                 pace_to_consumer: bool = False, in_process: bool = False, simulate_ms: float = 0.0) -> None:
        self.config = config
        self.web_server: WebServer | None = None
        self.web_url: str | None = None
        self.controls: Controls | None = None
        self.mqtt: MqttBridge | None = None  # when [mqtt] enabled
        self._stopped = False
        self._ticker_stop = threading.Event()
        self._ticker: threading.Thread | None = None
        self.models = Models(config, in_process=in_process, simulate_ms=simulate_ms)
        try:
            self._build(config, source, throttle, pace_to_consumer)
        except BaseException:
            self.models.close()
            raise

    def _build(self, config: Config, source: Source | None, throttle: bool, pace_to_consumer: bool) -> None:
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
        raw = source.source if isinstance(source, ReconnectingSource) else source
        self.demo = raw if isinstance(raw, DemoSource) else None  # holds still while a burst records
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
        self.pipeline = Pipeline(source, self.inference,
                                 PipelineSettings.from_config(config, pace_to_consumer=pace_to_consumer),
                                 stats=self.stats, hub=self.hub, events=self.events)
        self.teacher = Teacher.from_config(config, self.pipeline)  # takes the pipeline's embeddings
        self.classes = Classes(self.store, self.events, self.teacher, config.controls.slot_labels)
        if self.demo is not None:
            self.teacher.on_busy.append(lambda slot, busy: self.demo.hold(busy))
        self._runtime = backends.runtime_status(self.models.backend)  # asks dpkg: once, not per status
        if self.models.worker is not None:
            self.models.worker.on_change = self._backend_changed

    def _backend_changed(self) -> None:
        """The worker restarted or fell back: the page, /api/status and /metrics show it at once."""
        self.stats.configure(backend=self.models.backend, backend_warning=self.models.warning)
        self._runtime = backends.runtime_status(self.models.backend)
        self.events.publish("status", self.status())

    # -- lifecycle -----------------------------------------------------------------------------
    def start(self, *, web: bool | None = None, controls: bool | None = None) -> None:
        """Open the camera, start the threads, then the buttons and the web page (when configured)."""
        self.source.open()
        self.pipeline.start()
        self._ticker = threading.Thread(target=self._status_loop, name="status-ticker", daemon=True)
        self._ticker.start()
        if self.config.controls.enabled if controls is None else controls:
            self._start_controls()
        if self.config.web.enabled if web is None else web:
            self._start_web()
        if self.config.mqtt.enabled:
            self._start_mqtt()

    def _start_mqtt(self) -> None:
        """The broker connection runs in the background: a broker that is down never stops the start."""
        from appliance.mqtt.bridge import MqttBridge

        self.mqtt = MqttBridge(self)
        self.mqtt.start()

    def mqtt_status(self) -> dict:
        """The `mqtt` object of /api/status: {"enabled", "connected", "error", "dropped_events"}."""
        if self.mqtt is None:
            error = "not started" if self.config.mqtt.enabled else None
            return {"enabled": bool(self.config.mqtt.enabled), "connected": False, "error": error,
                    "dropped_events": 0}
        return self.mqtt.status()

    def _status_loop(self) -> None:
        while not self._ticker_stop.wait(STATUS_EVERY_S):
            try:
                self.events.publish("status", self.status())
            except Exception:
                log.exception("status snapshot failed")

    def _start_controls(self) -> None:
        """Buttons teach and clear through the classes service; a press during a burst is ignored."""
        self.controls = Controls(self.config.controls, on_teach=self.classes.teach_slot,
                                 on_clear=self.classes.clear_slot)
        self.teacher.on_busy.append(self._recording_led)
        self.pipeline.on_result.append(self._recognised_led)

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
        return self.classes.slot_of(rec.label)

    def _start_web(self) -> None:
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
        self._ticker_stop.set()
        if self.mqtt is not None:  # first: `offline` goes out while the rest still runs
            try:
                self.mqtt.stop()
            except Exception:
                log.exception("stopping MQTT failed")
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
        self.models.close()
        self.hub.close()
        if self._ticker is not None:
            self._ticker.join(timeout=1.0)
        self.events.close()
        with self.teacher.paused(timeout=1.0):  # let a burst's one transaction finish or fail
            self.store.close()

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
        worker = self.models.worker
        return self.pipeline.running and self.stats.healthy(limit) and (worker is None or worker.alive)

    def status(self) -> dict:
        snap = self.stats.snapshot()
        health = self.source.health()
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
            "source_failures": health.failures,
            "source_error": health.last_error,
            "inference_errors": self.pipeline.inference_errors,
            "events_dropped": self.events.dropped,
            "models": {m.kind: m.path.name for m in self.models.all()},
            "backend_label": backends.label(snap.get("backend", "")),
            "runtime": self._runtime,
            "backend_fallback": bool(self.models.worker is not None and self.models.worker.fallback_reason),
            "inference_worker": (self.models.worker.status() if self.models.worker is not None
                                 else {"alive": True, "restarts": 0, "last_error": None, "in_process": True}),
            "web_url": self.web_url,
            "mqtt": self.mqtt_status(),
            "demo": self.demo.scene() if self.demo is not None else None,  # which photo, how long left
        })
        return snap

    def retry_accelerator(self) -> str:
        """Forget a fallback to the CPU and restart the worker on the configured device; -> the reason."""
        worker = self.models.worker
        reason = worker.fallback_reason if worker is not None else None
        if reason is None:
            raise ConflictError("the appliance is not running on a fallback",
                                f"it runs on the {backends.label(self.models.backend)} as configured "
                                f"(vision.device = \"{self.config.vision.device}\")")
        worker.retry_accelerator()
        return reason

    def describe(self) -> str:
        """One line for the log: what is served where, on which backend."""
        parts = [f"{self.config.recognition.mode} mode", f"camera {self.source.name}",
                 f"backend {self.models.backend} ({self.models.main.path.name})"]
        if self.models.warning:
            parts.append(f"WARNING: {self.models.warning}")
        parts.append(f"page {self.web_url}" if self.web_url else "no web page")
        parts.append(f"classes in {self.store.path}")
        return "; ".join(parts)

