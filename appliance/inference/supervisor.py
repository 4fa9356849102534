"""InferenceWorker: keeps one worker process serving, restarts it with a growing pause, and under
device "auto" falls back to the CPU after the accelerator's worker failed several times in a row.

The fallback is never silent: the reason is logged and shown as the backend warning (page banner,
/api/status, /metrics); `retry_accelerator()` (a button on the page) tries the accelerator again.
Under a named device ("edgetpu") it keeps retrying and the appliance reports itself unhealthy.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from appliance.errors import ApplianceError, ModelError
from appliance.inference.child import describe_on_cpu, on_cpu
from appliance.inference.client import RESTART_FIX, Ticket, WorkerClient, WorkerError
from appliance.inference.protocol import ModelInfo, ModelSpec
from appliance.vision import backends

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WorkerSettings:
    result_timeout_s: float = 5.0          # a result later than this: the worker is hung, restart it
    first_result_timeout_s: float = 30.0   # the first invoke (an Edge TPU loads the model then)
    start_timeout_s: float = 60.0          # loading the models
    failures_before_fallback: int = 3      # under "auto": accelerator failures in a row before the CPU
    restart_pause_s: float = 0.5           # doubles after each failure in a row ...
    max_restart_pause_s: float = 30.0      # ... up to this
    stable_after_s: float = 30.0           # a worker serving this long resets the failure count


def worker_for(vision, paths: Mapping[str, Path], *, kinds: Mapping[str, str | None] | None = None,
               simulate_ms: float = 0.0) -> InferenceWorker:
    """An InferenceWorker (not started yet) for one model per role, with the config's `[vision]` device,
    Edge TPU, threads and timeouts: what the appliance and the one-shot commands both start."""
    kinds = kinds or {}
    specs = [ModelSpec(role, str(path), vision.device, vision.edgetpu_device, vision.num_threads,
                       kinds.get(role), simulate_ms) for role, path in paths.items()]
    settings = WorkerSettings(result_timeout_s=vision.result_timeout_s,
                              start_timeout_s=vision.first_result_timeout_s,
                              first_result_timeout_s=vision.first_result_timeout_s,
                              failures_before_fallback=vision.failures_before_fallback)
    return InferenceWorker(specs, vision.device, settings)


class InferenceWorker:
    """Owns the current WorkerClient; models reach it through RemoteModel (one per role)."""

    def __init__(self, specs: list[ModelSpec], device: str, settings: WorkerSettings | None = None,
                 on_change=None) -> None:
        self.specs = list(specs)
        self.device = device                 # as configured: "auto", "cpu", "edgetpu"
        self.settings = settings or WorkerSettings()
        self.on_change = on_change           # called (no arguments) when backend / warning / health moves
        self.restarts = 0
        self.failures_in_row = 0
        self.last_error: str | None = None
        self.fallback_reason: str | None = None
        self._client: WorkerClient | None = None
        self._described: dict[str, ModelInfo] = {}  # tensor facts read on the CPU while no worker runs
        self._started_at = 0.0
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- lifecycle -----------------------------------------------------------------------------
    def start(self, *, supervise: bool = True) -> None:
        """Start the first worker, then supervise it. A wrong model file is the start-up's error; an
        accelerator that crashes, hangs or fails is not: the page comes up and the worker is retried.

        supervise=False is for a one-shot command: every failure to start is raised, and a worker that
        dies stays dead (its callers get the WorkerError), so the command decides what follows."""
        try:
            self._client = self._new_client()
        except ModelError:
            raise
        except ApplianceError as exc:
            if not supervise or self._device_now() == backends.CPU:
                raise
            self._failed(exc)
            self._described = {spec.role: describe_on_cpu(spec) for spec in self.specs}
            self._wake.set()
        if supervise:
            self._thread = threading.Thread(target=self._supervise, name="inference-supervisor", daemon=True)
            self._thread.start()

    def close(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(3.0)
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            client.close()

    def _device_now(self) -> str:
        return backends.CPU if self.fallback_reason else self.device

    def _new_client(self) -> WorkerClient:
        specs = ([on_cpu(spec) for spec in self.specs] if self.fallback_reason
                 else [spec._replace(device=self.device) for spec in self.specs])
        s = self.settings
        client = WorkerClient(specs, start_timeout_s=s.start_timeout_s, result_timeout_s=s.result_timeout_s,
                              first_result_timeout_s=s.first_result_timeout_s)
        self._started_at = time.monotonic()
        log.info("inference worker started (pid %s): %s", client.process.pid,
                 ", ".join(f"{m.role} on {m.backend}" for m in client.models))
        return client

    # -- supervision ---------------------------------------------------------------------------
    def client(self) -> WorkerClient:
        """The serving worker, or WorkerError (HTTP 503) while it is down or being restarted."""
        client = self._client
        if client is None or not client.alive:
            if client is not None:
                self._wake.set()
            raise WorkerError("the inference worker is restarting" + (f" ({self.last_error})"
                              if self.last_error else ""), RESTART_FIX)
        return client

    def report(self, exc: Exception) -> None:
        """A caller saw the worker fail: wake the supervisor (it restarts a dead one)."""
        self._wake.set()

    def _supervise(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(0.5)
            self._wake.clear()
            if self._stop.is_set():
                return
            client = self._client
            if client is not None and client.alive:
                served_s = time.monotonic() - self._started_at
                if self.failures_in_row and served_s > self.settings.stable_after_s:
                    self.failures_in_row = 0
                continue
            if self._stop.is_set():
                return
            if client is not None:
                self._failed(WorkerError(f"the inference worker {client.died}", RESTART_FIX), client)
                with self._lock:
                    self._client = None
                client.close()
            self._restart()

    def _failed(self, exc: ApplianceError, client: WorkerClient | None = None) -> None:
        self.failures_in_row += 1
        on = self._backend_of(client)
        self.last_error = f"{exc.problem}" + (f" (on the {backends.label(on)})" if on else "")
        log.error("inference worker failed (%d in a row): %s", self.failures_in_row, self.last_error)
        self._changed()

    def _backend_of(self, client: WorkerClient | None) -> str | None:
        if client is not None and client.models:
            return client.models[0].backend
        return None

    def _may_fall_back(self) -> bool:
        """Under "auto", with an accelerator present, after enough failures in a row."""
        return (self.device == backends.AUTO and not self.fallback_reason
                and self.failures_in_row >= self.settings.failures_before_fallback
                and any(b.present() for b in backends.accelerators()))

    def fall_back(self, reason: str) -> None:
        """Run on the CPU from the next worker start on, for `reason` (e.g. the start-up probe failed)."""
        self.fallback_reason = reason
        log.warning("%s", reason)
        self._changed()

    def _fall_back(self) -> None:
        labels = "/".join(b.label for b in backends.accelerators() if b.present())
        self.fallback_reason = (
            f"the {labels} inference worker failed {self.failures_in_row} times in a row "
            f"({self.last_error}): running on the CPU; retry from the page or POST /api/inference/retry "
            "after fixing it (`appliance doctor` names the fix)")
        log.warning("%s", self.fallback_reason)
        self.failures_in_row = 0
        self._changed()

    def _restart(self) -> None:
        while not self._stop.is_set():
            pause = min(self.settings.restart_pause_s * 2 ** max(0, self.failures_in_row - 1),
                        self.settings.max_restart_pause_s)
            if self._stop.wait(pause):
                return
            if self._may_fall_back():
                self._fall_back()
            try:
                client = self._new_client()
            except ApplianceError as exc:
                self._failed(exc)
                continue
            with self._lock:
                self._client = client
            self.restarts += 1
            self._changed()
            return

    def retry_accelerator(self) -> None:
        """Forget the fallback and start a worker on the configured device (a button on the page)."""
        if self.fallback_reason is None:
            return
        log.info("retrying the accelerator (was: %s)", self.fallback_reason)
        self.fallback_reason = None
        self.failures_in_row = 0
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            client.close()
        self._wake.set()

    def _changed(self) -> None:
        if self.on_change is not None:
            try:
                self.on_change()
            except Exception:
                log.exception("inference worker change callback failed")

    # -- what the page shows -------------------------------------------------------------------
    def info(self, role: str) -> ModelInfo | None:
        client = self._client
        if client is None:
            return self._described.get(role)
        return next((m for m in client.models if m.role == role), None)

    @property
    def alive(self) -> bool:
        client = self._client
        return client is not None and client.alive

    def status(self) -> dict:
        return {"alive": self.alive, "restarts": self.restarts, "last_error": self.last_error}

    @property
    def backend(self) -> str:
        client = self._client
        if client is not None and client.models:
            return client.models[0].backend
        return backends.CPU if self.fallback_reason or self.device == backends.AUTO else self.device

    @property
    def warning(self) -> str | None:
        if self.fallback_reason:
            return self.fallback_reason
        client = self._client
        return next((m.warning for m in client.models if m.warning), None) if client is not None else None


class RemoteModel:
    """A Model whose interpreter lives in the inference worker: the engines use it unchanged."""

    asynchronous = True  # submit() returns before the invoke has run

    def __init__(self, worker: InferenceWorker, role: str) -> None:
        self.worker = worker
        self.role = role
        first = worker.info(role)
        if first is None:
            raise WorkerError(f"the inference worker has no {role} model", RESTART_FIX)
        self._info = first

    def _current(self) -> tuple[WorkerClient, int, ModelInfo]:
        client = self.worker.client()
        for index, info in enumerate(client.models):
            if info.role == self.role:
                self._info = info
                return client, index, info
        raise WorkerError(f"the inference worker has no {self.role} model", RESTART_FIX)

    # the Model attributes the engines and preprocess read
    @property
    def path(self) -> Path:
        return Path(self._info.path)

    @property
    def backend(self) -> str:
        return self._info.backend

    @property
    def offloaded(self) -> bool:
        """Whether its invoke leaves this machine's CPU (an accelerator, or a simulated one)."""
        return self._info.offloaded

    @property
    def kind(self) -> str:
        return self._info.kind

    @property
    def warning(self) -> str | None:
        return self._info.warning

    @property
    def input_detail(self) -> dict:
        return self._info.input_detail

    @property
    def output_details(self) -> list[dict]:
        return self._info.output_details

    @property
    def signature_outputs(self) -> dict:
        return self._info.signature_outputs

    @property
    def input_size(self) -> tuple[int, int]:
        return tuple(self._info.input_size)

    def __repr__(self) -> str:
        return f"RemoteModel({self.role}, {self.path.name}, backend={self.backend})"

    def submit(self, rgb: np.ndarray, *, letterbox: bool = False) -> _RemotePending:
        client, index, _ = self._current()
        try:
            return _RemotePending(self.worker, client.submit(index, rgb, letterbox=letterbox))
        except WorkerError as exc:
            self.worker.report(exc)
            raise


class _RemotePending:
    def __init__(self, worker: InferenceWorker, ticket: Ticket) -> None:
        self.worker = worker
        self.ticket = ticket

    def wait(self):
        try:
            return self.ticket.wait()
        except WorkerError as exc:
            self.worker.report(exc)
            raise
