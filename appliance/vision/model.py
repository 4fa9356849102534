"""One TFLite interpreter per model file, on the Edge TPU or the CPU, never switched silently."""

import logging
import os
import threading
import time
from collections import namedtuple
from collections.abc import Callable
from pathlib import Path

import numpy as np

from appliance.errors import DeviceError, ModelError
from appliance.vision import edgetpu, preprocess

log = logging.getLogger(__name__)

Timings = namedtuple("Timings", "preprocess_ms invoke_ms adapter_ms")

KINDS = ("classifier", "detector", "embedder")
DEVICES = ("auto", "cpu", "edgetpu")
EDGETPU_OP = b"edgetpu-custom-op"
DETECTION_OP = b"TFLite_Detection_PostProcess"
EDGETPU_SUFFIX = "_edgetpu"
_EMBEDDING_HINTS = ("embed", "avgpool", "avg_pool", "global_pool", "feature", "pool")


def cpu_twin(path: Path) -> Path:
    """mobilenet_x_edgetpu.tflite -> mobilenet_x.tflite, beside it."""
    path = Path(path)
    return path.with_name(path.stem.removesuffix(EDGETPU_SUFFIX) + path.suffix)


def edgetpu_twin(path: Path) -> Path:
    path = Path(path)
    stem = path.stem if path.stem.endswith(EDGETPU_SUFFIX) else path.stem + EDGETPU_SUFFIX
    return path.with_name(stem + path.suffix)


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


def is_edgetpu_model(path: Path, data: bytes | None = None) -> bool:
    if Path(path).stem.endswith(EDGETPU_SUFFIX):
        return True
    return EDGETPU_OP in (data if data is not None else read_model_file(path))


def edgetpu_without_tpu_error(path: Path) -> ModelError:
    twin = cpu_twin(path)
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


def _interpreter_class():
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:  # pragma: no cover - tflite-runtime fallback (needs numpy < 2)
        from tflite_runtime.interpreter import Interpreter
    return Interpreter


class Model:
    """One interpreter for the process's life; engines hold `lock` around fill + invoke + read."""

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

    def run(self, rgb: np.ndarray, read: Callable[["Model"], object], *,
            letterbox: bool = False) -> tuple[object, tuple[float, float], tuple[float, float, float]]:
        """Fill the input from `rgb`, invoke and `read(self)` the outputs, all under the lock.

        Returns what `read` gave, the image-to-tensor scale, and the clock marks that `timings_since`
        turns into Timings once the engine's adapter has run.
        """
        with self.lock:
            t0 = time.perf_counter()
            scale = preprocess.set_input(self, rgb, letterbox=letterbox)
            t1 = time.perf_counter()
            self.invoke()
            t2 = time.perf_counter()
            return read(self), scale, (t0, t1, t2)

    def output(self, i: int) -> np.ndarray:
        return self.interpreter.get_tensor(self.output_details[i]["index"])

    def tensor(self, index: int) -> np.ndarray:
        return self.interpreter.get_tensor(index)


def timings_since(marks: tuple[float, float, float]) -> Timings:
    """Timings of one `Model.run` whose adapter has just finished."""
    t0, t1, t2 = marks
    t3 = time.perf_counter()
    return Timings((t1 - t0) * 1e3, (t2 - t1) * 1e3, (t3 - t2) * 1e3)


def _signature_outputs(interpreter) -> dict[str, int]:
    try:
        signatures = interpreter._get_full_signature_list()
    except AttributeError:
        return {}
    if len(signatures) != 1:
        return {}
    return dict(next(iter(signatures.values())).get("outputs", {}))


def _make_interpreter(path: Path, delegate, num_threads: int):
    cls = _interpreter_class()
    try:
        interpreter = cls(
            model_path=str(path),
            experimental_delegates=[delegate] if delegate is not None else None,
            num_threads=num_threads,
        )
        interpreter.allocate_tensors()
    except (ValueError, RuntimeError) as exc:
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelError(
            f"{path} could not be loaded as a TFLite model ({detail}); it may be truncated or corrupt",
            "run `appliance models verify`, then `appliance models fetch` to replace it with a verified copy",
        ) from exc
    return interpreter


def load_model(path, *, device: str = "auto", edgetpu_device: str = "", num_threads: int = 0,
               kind: str | None = None) -> Model:
    """Open `path` on the Edge TPU or the CPU per `device`; raises ModelError / DeviceError with a fix.

    Under "auto" and "edgetpu", a CPU model whose `<name>_edgetpu.tflite` twin lies beside it runs as the
    twin on the Edge TPU. Under "auto" without a usable Edge TPU the CPU is used and `Model.warning` says so.
    """
    if device not in DEVICES:
        raise DeviceError(f"unknown device {device!r}", "use auto, cpu or edgetpu")
    if kind is not None and kind not in KINDS:
        raise ModelError(f"unknown model kind {kind!r}", f"use one of {', '.join(KINDS)}")
    path = Path(path)
    data = read_model_file(path)
    compiled = is_edgetpu_model(path, data)
    delegate, warning = None, None
    if device == "cpu":
        if compiled:
            raise edgetpu_without_tpu_error(path)
    elif device == "edgetpu":
        if not edgetpu.edge_tpu_present():
            raise DeviceError("no Edge TPU found (device = \"edgetpu\" requires one)", edgetpu.NO_TPU_FIX)
        if not compiled:
            twin = edgetpu_twin(path)
            if not twin.exists():
                raise ModelError(
                    f"{path.name} is not compiled for the Edge TPU",
                    f"fetch its twin with `appliance models fetch {twin.stem}` or run with --device cpu",
                )
            path, data, compiled = twin, read_model_file(twin), True
        delegate = edgetpu.load_delegate(edgetpu_device)
    else:
        present = edgetpu.edge_tpu_present()
        if compiled:
            if not present:
                raise edgetpu_without_tpu_error(path)
            delegate = edgetpu.load_delegate(edgetpu_device)
        elif present and edgetpu_twin(path).exists():
            try:
                delegate = edgetpu.load_delegate(edgetpu_device)
                path = edgetpu_twin(path)
                data = read_model_file(path)
            except DeviceError as exc:
                warning = f"an Edge TPU was found but could not be used ({exc.problem}): running on the CPU"
        elif present:
            warning = (f"an Edge TPU is present but {path.name} has no {edgetpu_twin(path).name} beside it: "
                       "running on the CPU")
        else:
            warning = "no Edge TPU found: running on the CPU"
    if warning:
        log.warning("%s (%s)", warning, path.name)
    threads = num_threads if num_threads > 0 else (os.cpu_count() or 1)
    interpreter = _make_interpreter(path, delegate, threads)
    model = Model(path, interpreter, "edgetpu" if delegate is not None else "cpu", kind, warning,
                  has_postprocess=DETECTION_OP in data)
    log.debug("loaded %r", model)
    return model
