"""One TFLite interpreter per model file, on the Edge TPU or the CPU, never switched silently."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import namedtuple
from pathlib import Path
from typing import Protocol

import numpy as np

from appliance.errors import DeviceError, ModelError
from appliance.vision import backends, edgetpu, preprocess

log = logging.getLogger(__name__)

Timings = namedtuple("Timings", "preprocess_ms invoke_ms adapter_ms")

KINDS = ("classifier", "detector", "embedder")
DETECTION_OP = b"TFLite_Detection_PostProcess"
_EMBEDDING_HINTS = ("embed", "avgpool", "avg_pool", "global_pool", "feature", "pool")


def read_model_file(path: Path) -> bytes:
    """The file's bytes, or a ModelError saying why it cannot be a TFLite model."""
    path = Path(path)
    fix = "run `appliance models fetch` (or `appliance models verify`) to get a verified copy"
    if not path.exists():
        raise ModelError(f"model file {path} does not exist", fix)
    if not path.is_file():
        raise ModelError(f"model path {path} is not a file", fix)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ModelError(f"model file {path} cannot be read: {exc.strerror}", fix) from exc
    if len(data) < 8 or data[4:8] != b"TFL3":
        raise ModelError(f"{path} is not a TFLite model (no TFL3 identifier: wrong file, or empty)", fix)
    return data


def edgetpu_without_tpu_error(path: Path) -> ModelError:
    twin = twin_for(Path(path), backends.CPU)
    if twin == Path(path):
        twin_text = "a CPU version of the model (the same model compiled without the Edge TPU compiler)"
    else:
        where = "beside it" if twin.exists() else "run `appliance models fetch " + twin.stem + "`"
        twin_text = f"its CPU twin {twin.name} ({where})"
    return ModelError(
        f"{Path(path).name} is compiled for the Edge TPU and no Edge TPU is available here",
        f"use {twin_text}, or plug in an Edge TPU and use --device edgetpu",
    )


def infer_kind(outputs: list[dict], signature_outputs: dict | None = None,
               has_postprocess: bool = False) -> str:
    """Tell a detector, classifier and embedder apart from the output tensors alone."""
    names = [str(d.get("name", "")).lower() for d in outputs]
    shapes = [tuple(int(n) for n in d["shape"]) for d in outputs]
    sig = signature_outputs or {}
    if len(outputs) == 4 and (
        has_postprocess
        or any("detection_postprocess" in n for n in names)
        or {"output_0", "output_1", "output_2", "output_3"} <= set(sig)
    ):
        return "detector"
    if len(outputs) == 1:
        shape, name = shapes[0], names[0]
        size = int(np.prod(shape)) if shape else 0
        if len(shape) == 4 and shape[:3] == (1, 1, 1) and size > 1:
            return "embedder"
        if len(shape) == 2 and shape[0] == 1 and size > 1:
            return "embedder" if any(h in name for h in _EMBEDDING_HINTS) else "classifier"
    described = ", ".join(f"{n or '?'} {list(s)}" for n, s in zip(names, shapes, strict=True))
    raise ModelError(
        f"cannot tell what kind of model this is from its outputs ({described})",
        "use an image classifier (one (1, N) output), an SSD detector with TFLite_Detection_PostProcess, "
        "or an embedding extractor; from Python pass kind=\"classifier\" | \"detector\" | \"embedder\"",
    )


class Model:
    """One interpreter for the process's life; engines hold `lock` around fill + invoke + read."""

    asynchronous = False  # submit() has run the invoke when it returns (RemoteModel: not yet)

    def __init__(self, path: Path, interpreter, backend: str, kind: str | None = None,
                 warning: str | None = None, has_postprocess: bool = False) -> None:
        self.path = Path(path)
        self.interpreter = interpreter
        self.backend = backend
        self.warning = warning
        self.lock = threading.Lock()
        self.input_detail = interpreter.get_input_details()[0]
        self.output_details = interpreter.get_output_details()
        self.signature_outputs = _signature_outputs(interpreter)
        _, height, width, _ = (int(n) for n in self.input_detail["shape"])
        self.input_size = (width, height)
        self.kind = kind or infer_kind(self.output_details, self.signature_outputs, has_postprocess)

    @property
    def offloaded(self) -> bool:
        """Whether the invoke runs off this machine's CPU (an accelerator)."""
        return self.backend != backends.CPU

    def __repr__(self) -> str:
        return f"Model({self.path.name}, kind={self.kind}, backend={self.backend}, input={self.input_size})"

    def input_view(self) -> np.ndarray:
        """A (H, W, C) view of the input tensor: preprocessing writes straight into it."""
        return self.interpreter.tensor(self.input_detail["index"])()[0]

    def invoke(self) -> None:
        try:
            self.interpreter.invoke()
        except RuntimeError as exc:
            raise DeviceError(
                f"inference failed on the {self.backend} with {self.path.name}: {exc}",
                "if this is an Edge TPU, check its USB cable and power (a powered hub helps) and restart",
            ) from exc

    def submit(self, rgb: np.ndarray, *, letterbox: bool = False) -> Done:
        """Fill the input from `rgb`, invoke and copy the outputs out, all under the lock (in this
        process the work is done on return; a model in the inference worker returns before it is)."""
        with self.lock:
            t0 = time.perf_counter()
            scale = preprocess.set_input(self, rgb, letterbox=letterbox)
            t1 = time.perf_counter()
            self.invoke()
            t2 = time.perf_counter()
            outputs = [self.interpreter.get_tensor(d["index"]) for d in self.output_details]
        return Done(Ran(outputs, scale, (t1 - t0) * 1e3, (t2 - t1) * 1e3))


# what one invoke gave: outputs in output_details order, the image-to-tensor scale, and its timings
Ran = namedtuple("Ran", "outputs scale preprocess_ms invoke_ms")


class Pending(Protocol):
    """A submitted inference; `wait` gives what it ran to (or raises what stopped it)."""

    def wait(self) -> Ran: ...


class Done:
    """A submitted inference that has already run (the in-process case of a pending one)."""

    def __init__(self, ran: Ran) -> None:
        self._ran = ran

    def wait(self) -> Ran:
        return self._ran


def timings_since(ran: Ran, adapter_started: float) -> Timings:
    """Timings of one inference whose adapter (started at `adapter_started`) has just finished."""
    return Timings(ran.preprocess_ms, ran.invoke_ms, (time.perf_counter() - adapter_started) * 1e3)


def _signature_outputs(interpreter) -> dict[str, int]:
    try:
        signatures = interpreter._get_full_signature_list()
    except AttributeError:
        return {}
    if len(signatures) != 1:
        return {}
    return dict(next(iter(signatures.values())).get("outputs", {}))


def _make_interpreter(path: Path, backend: backends.Backend, delegates: list, num_threads: int):
    cls = backend.interpreter_module().Interpreter
    try:
        interpreter = cls(model_path=str(path), experimental_delegates=delegates or None,
                          num_threads=num_threads)
        interpreter.allocate_tensors()
    except (ValueError, RuntimeError) as exc:
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if delegates and backend.compiled_marker and backend.compiled_marker.decode() in str(exc):
            raise DeviceError(
                f"the {backend.label} runtime ({edgetpu.library_name()}) loaded but did not run "
                f"{path.name}'s {backend.compiled_marker.decode()} ({detail})", edgetpu.INSTALL_FIX) from exc
        raise ModelError(
            f"{path} could not be loaded as a TFLite model ({detail}); it may be truncated or corrupt",
            "run `appliance models verify`, then `appliance models fetch` to replace it with a verified copy",
        ) from exc
    return interpreter


def twin_for(path: Path, backend_name: str) -> Path:
    """The model compiled for a backend beside `path` (its CPU twin for "cpu")."""
    path = Path(path)
    return path.with_name(backends.twin_name(path.name, backend_name))


def choose_backend(path: Path, data: bytes, device: str, spec: str = "") -> tuple[Path, backends.Backend,
                                                                                   list, str | None]:
    """Which file runs where under `device`: (path, backend, delegates, warning), or an error with a fix.

    Under "auto" an accelerator is used when present and the model (or its twin beside it) is compiled for
    it; otherwise the CPU, with a warning saying why. A named device is used or refused, never swapped.
    """
    compiled = backends.compiled_for(data, path.stem)
    cpu = backends.get(backends.CPU)
    if device == backends.CPU:
        if compiled is not None:
            raise edgetpu_without_tpu_error(path)
        return path, cpu, [], None
    if device != backends.AUTO:
        backend = backends.get(device)
        if not backend.present():
            raise DeviceError(f"no {backend.label} found (device = \"{device}\" requires one)",
                              edgetpu.NO_TPU_FIX)
        if compiled is not backend:
            twin = twin_for(path, backend.name)
            if not twin.exists():
                raise ModelError(f"{path.name} is not compiled for the {backend.label}",
                                 f"fetch its twin with `appliance models fetch {twin.stem}` or run with "
                                 "--device cpu")
            path = twin
        return path, backend, backend.delegates(spec), None
    if compiled is not None:
        if not compiled.present():
            raise edgetpu_without_tpu_error(path)
        return path, compiled, compiled.delegates(spec), None
    for backend in backends.accelerators():
        if not backend.present():
            continue
        twin = twin_for(path, backend.name)
        if not twin.exists():
            return path, cpu, [], (f"an {backend.label} is present but {path.name} has no {twin.name} beside "
                                   "it: running on the CPU")
        try:
            return twin, backend, backend.delegates(spec), None
        except DeviceError as exc:
            return path, cpu, [], (f"an {backend.label} was found but could not be used ({exc.problem}): "
                                   "running on the CPU")
    return path, cpu, [], "no Edge TPU found: running on the CPU"


def load_model(path, *, device: str = "auto", edgetpu_device: str = "", num_threads: int = 0,
               kind: str | None = None) -> Model:
    """Open `path` on the backend `device` names ("auto": the best present); ModelError / DeviceError
    with a fix otherwise. Under "auto" without a usable accelerator `Model.warning` says why."""
    if device not in backends.device_choices():
        raise DeviceError(f"unknown device {device!r}", f"use {', '.join(backends.device_choices())}")
    if kind is not None and kind not in KINDS:
        raise ModelError(f"unknown model kind {kind!r}", f"use one of {', '.join(KINDS)}")
    path = Path(path)
    data = read_model_file(path)
    run_path, backend, delegates, warning = choose_backend(path, data, device, edgetpu_device)
    if run_path != path:
        data = read_model_file(run_path)
    if warning:
        log.warning("%s (%s)", warning, path.name)
    threads = num_threads if num_threads > 0 else (os.cpu_count() or 1)
    try:
        interpreter = _make_interpreter(run_path, backend, delegates, threads)
    except DeviceError as exc:
        if device != backends.AUTO or run_path == path:
            raise
        warning = f"the {backend.label} could not run {run_path.name} ({exc.problem}): running on the CPU"
        log.warning("%s", warning)
        run_path, backend, data = path, backends.get(backends.CPU), read_model_file(path)
        interpreter = _make_interpreter(run_path, backend, [], threads)
    model = Model(run_path, interpreter, backend.name, kind, warning, has_postprocess=DETECTION_OP in data)
    log.debug("loaded %r", model)
    return model
