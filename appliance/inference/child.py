"""The inference worker's own process: loads the models, then runs each request it is sent, in order.

It owns the interpreters and the delegate, so a segfault, an abort() or a hang in them ends or stalls
only this process; the appliance notices and starts another (see supervisor.py).
"""

from __future__ import annotations

import logging
import signal
import time
from pathlib import Path

import numpy as np

from appliance.errors import ApplianceError
from appliance.inference.protocol import ModelInfo, ModelSpec, map_file, plain_detail, slot_views
from appliance.vision.model import Model, load_model, twin_for

log = logging.getLogger("appliance.inference.child")


class _Runner:
    """One loaded model and the views of its slots."""

    def __init__(self, model: Model, simulate_ms: float) -> None:
        self.model = model
        self.simulate_s = simulate_ms / 1000.0
        self.cached: list[np.ndarray] | None = None
        self.slots: list[tuple[np.ndarray, list[np.ndarray]]] = []
        self._buffers: list = []

    def info(self, role: str) -> ModelInfo:
        m = self.model
        offloaded = m.backend != "cpu" or self.simulate_s > 0  # the invoke does not use this CPU
        return ModelInfo(role, str(m.path), m.backend, m.kind, m.warning, plain_detail(m.input_detail),
                         [plain_detail(d) for d in m.output_details], dict(m.signature_outputs), m.input_size,
                         offloaded)

    def attach(self, paths: list[str], info: ModelInfo) -> None:
        for path in paths:
            buffer = map_file(path)
            self._buffers.append(buffer)
            self.slots.append(slot_views(buffer, info))

    def run(self, slot: int) -> float:
        """Copy the slot's input in, invoke, copy the outputs out; the invoke's milliseconds."""
        source, outputs = self.slots[slot]
        interpreter = self.model.interpreter
        t0 = time.perf_counter()
        if self.cached is not None:  # a benchmark's simulated accelerator: the time, not the CPU
            time.sleep(self.simulate_s)
            results = self.cached
        else:
            interpreter.set_tensor(self.model.input_detail["index"], source)
            self.model.invoke()
            results = [interpreter.get_tensor(d["index"]) for d in self.model.output_details]
            if self.simulate_s:
                self.cached = results
        invoke_ms = (time.perf_counter() - t0) * 1e3
        for view, value in zip(outputs, results, strict=True):
            np.copyto(view, value.reshape(view.shape))
        return invoke_ms


def _load(spec: ModelSpec) -> _Runner:
    model = load_model(spec.path, device="cpu" if spec.simulate_ms else spec.device,
                       edgetpu_device=spec.edgetpu_device, num_threads=spec.num_threads, kind=spec.kind)
    return _Runner(model, spec.simulate_ms)


def on_cpu(spec: ModelSpec) -> ModelSpec:
    """The spec run on the CPU (after a fallback, or to describe a model while the worker is down): a
    model named by its Edge TPU file (m_edgetpu.tflite) runs as its CPU twin (m.tflite) when that is
    beside it, since the compiled file cannot run there."""
    twin = twin_for(Path(spec.path), "cpu")
    return spec._replace(device="cpu", path=str(twin) if twin.exists() else spec.path)


def describe_on_cpu(spec: ModelSpec) -> ModelInfo:
    """The model's tensor facts, read from its CPU twin in this process (no delegate, no invoke): what
    the engines need to be built while the worker is down."""
    return _load(on_cpu(spec)).info(spec.role)


def main(conn, specs: list[ModelSpec], log_level: int = logging.WARNING) -> None:
    """The worker's entry point (multiprocessing spawns it): load, report, attach, serve until told."""
    # Ctrl-C, and systemd's SIGTERM to the whole service, are the appliance's to handle: it stops us (and
    # when it is gone, the closed pipe ends this loop)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    logging.basicConfig(level=log_level, format="%(levelname)s inference worker: %(message)s")
    try:
        runners = [_load(spec) for spec in specs]
    except ApplianceError as exc:
        conn.send(("error", type(exc).__name__, exc.problem, exc.fix))
        return
    except Exception as exc:  # a runtime's own error type: its words are the user's clue
        conn.send(("error", "DeviceError", f"{type(exc).__name__}: {exc}", ""))
        return
    infos = [r.info(spec.role) for r, spec in zip(runners, specs, strict=True)]
    conn.send(("ready", infos))
    message = conn.recv()
    for runner, paths, info in zip(runners, message[1], infos, strict=True):
        runner.attach(paths, info)
    conn.send(("attached",))
    while True:
        try:
            message = conn.recv()
        except EOFError:  # the appliance is gone
            return
        if message[0] == "stop":
            return
        _, request, index, slot = message
        try:
            conn.send(("done", request, runners[index].run(slot)))
        except ApplianceError as exc:
            conn.send(("fail", request, exc.problem, exc.fix))
        except Exception as exc:
            conn.send(("fail", request, f"{type(exc).__name__}: {exc}", ""))
