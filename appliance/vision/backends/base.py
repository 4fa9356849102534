"""What a backend is: a place models run, with its runtime, its delegate and its model file naming."""

from __future__ import annotations

import importlib
import importlib.util
from collections import namedtuple
from dataclasses import dataclass, field
from typing import Any, Protocol

RuntimeInfo = namedtuple("RuntimeInfo", "module version")  # e.g. ("tflite_runtime", "2.17.1")


class _Hardware(Protocol):
    def present(self) -> bool: ...
    def delegates(self, spec: str) -> list[Any]: ...
    def describe(self) -> str: ...


@dataclass(frozen=True)
class Backend:
    """One way to run a TFLite model. `runtimes` are tried in order: an accelerator names the runtime its
    delegate was built against first (libedgetpu must match the TensorFlow version of its runtime)."""

    name: str                      # config / flag value: "cpu", "edgetpu"
    label: str                     # what the page shows: "CPU", "Edge TPU"
    runtimes: tuple[str, ...]      # Python modules with an `interpreter` submodule, preferred first
    model_suffix: str = ""         # "_edgetpu": the file name of a model compiled for it
    compiled_marker: bytes = b""   # a custom op only models compiled for it contain
    hardware: _Hardware | None = field(default=None, compare=False)

    def present(self) -> bool:
        return self.hardware.present() if self.hardware is not None else True

    def delegates(self, spec: str = "") -> list[Any]:
        """Delegates to hand the interpreter (none for the CPU); DeviceError with a fix when unusable."""
        return self.hardware.delegates(spec) if self.hardware is not None else []

    def interpreter_module(self):
        """The runtime's `interpreter` module (Interpreter, load_delegate), the first one installed."""
        last: ImportError | None = None
        for name in self.runtimes:
            try:
                return importlib.import_module(f"{name}.interpreter")
            except ImportError as exc:
                last = exc
        raise ImportError(f"none of {', '.join(self.runtimes)} is installed") from last

    def runtime(self) -> RuntimeInfo | None:
        """Which runtime this backend would load, and its version; None when none is installed."""
        from importlib import metadata

        for name in self.runtimes:
            if importlib.util.find_spec(name) is None:
                continue
            try:
                return RuntimeInfo(name, metadata.version(name.replace("_", "-")))
            except metadata.PackageNotFoundError:
                return RuntimeInfo(name, "unknown")
        return None
