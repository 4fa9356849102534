"""Models for a one-shot command (classify, detect, teach): on an accelerator in an inference worker.

A libedgetpu built for another TensorFlow than the runtime segfaults, aborts or hangs at the first model
it prepares or runs. In the command's own process that is the end of it, with no word said; in the
worker it is the command's error naming the crash, the runtime and libedgetpu, and the fix (exit 2) —
or, under device "auto", a warning and the CPU, as a failed start-up probe means in the service (a
one-shot command does not wait for restarts). On the CPU models load in this process: nothing to guard.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from appliance.errors import ApplianceError, DeviceError, ModelError
from appliance.inference.client import RESTART_FIX, WorkerError
from appliance.inference.probe import CRASH_FIX, failure_words, runtime_line
from appliance.inference.supervisor import InferenceWorker, RemoteModel, worker_for
from appliance.vision import backends
from appliance.vision.model import Done, Model, load_model, twin_for

log = logging.getLogger(__name__)


def _present(device: str) -> list:
    """The accelerators `device` would use that are present here: any under "auto", else the named one."""
    if device == backends.CPU:
        return []
    candidates = backends.accelerators() if device == backends.AUTO else [backends.get(device)]
    return [b for b in candidates if b.present()]


def on_accelerator(device: str) -> bool:
    """Whether `device` would run models on an accelerator here: a named one that is present (a missing
    one is load_model's plain error), or "auto" with one present."""
    return bool(_present(device))


class OneShotModels:
    """Loads one command's models and closes the workers it started (`with` or close())."""

    def __init__(self, vision) -> None:
        self.vision = vision  # the config's [vision] with the command's --device / --edgetpu-device
        self.workers: list[InferenceWorker] = []

    def __enter__(self) -> OneShotModels:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def load(self, path: str | Path, kind: str | None = None) -> Model | GuardedModel:
        """The model at `path` as load_model gives it on the CPU, or run by an inference worker."""
        path, v = Path(path), self.vision
        if not on_accelerator(v.device):
            return load_model(path, device=v.device, edgetpu_device=v.edgetpu_device,
                              num_threads=v.num_threads, kind=kind)
        role = path.name  # names the model in the worker's log line
        worker = worker_for(v, {role: path}, kinds={role: kind})
        self.workers.append(worker)
        try:
            worker.start(supervise=False)
        except ModelError:
            raise
        except ApplianceError as exc:
            return self.failed(path, worker, exc, kind)
        return GuardedModel(self, path, RemoteModel(worker, role))

    def failed(self, path: Path, worker: InferenceWorker, exc: ApplianceError, kind: str | None, *,
               built_on: RemoteModel | None = None) -> Model:
        """The worker failed: under "auto" the model on the CPU here, with a warning saying why; under a
        named device the command's error. A crash or a hang names the runtime and libedgetpu. A model
        engines were `built_on` moves to the CPU only if its tensors are the same ones."""
        worker.close()
        problem, fix = failure_words(exc)
        if fix == RESTART_FIX:  # the service's words ("restarts by itself"): a command does not
            fix = CRASH_FIX
        device = self.vision.device
        label = "/".join(b.label for b in _present(device)) or backends.label(device)
        words = f"running {path.name} on the {label} failed: {problem}; {runtime_line()}"
        cpu_path = twin_for(path, backends.CPU)
        if device != backends.AUTO or not cpu_path.is_file():
            raise DeviceError(words, fix) from exc
        local = load_model(cpu_path, device=backends.CPU, num_threads=self.vision.num_threads, kind=kind)
        if built_on is not None and _indices(local) != _indices(built_on):
            raise DeviceError(words, fix) from exc
        log.warning("%s: running on the CPU; fix: %s", words, fix)
        return local

    def close(self) -> None:
        for worker in self.workers:
            worker.close()
        self.workers.clear()


class GuardedModel:
    """A model run by the inference worker (RemoteModel) until the worker fails, then as failed() says:
    an error, or the CPU here. It has a Model's attributes; submit() returns with the invoke done."""

    asynchronous = False

    def __init__(self, owner: OneShotModels, path: Path, target: RemoteModel | Model) -> None:
        self._owner = owner
        self._path = path
        self.target = target

    def __getattr__(self, name: str):
        return getattr(self.target, name)

    def __repr__(self) -> str:
        return f"GuardedModel({self.target!r})"

    def submit(self, rgb: np.ndarray, *, letterbox: bool = False) -> Done:
        remote = self.target
        try:
            return Done(remote.submit(rgb, letterbox=letterbox).wait())
        except WorkerError as exc:
            if not isinstance(remote, RemoteModel):
                raise
            self.target = self._owner.failed(self._path, remote.worker, exc, remote.kind, built_on=remote)
        return self.target.submit(rgb, letterbox=letterbox)


def _indices(model) -> list[int]:
    return [int(d["index"]) for d in (model.input_detail, *model.output_details)]
