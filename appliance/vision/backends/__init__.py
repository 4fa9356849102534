"""The backend registry: every place that names a device (config, flags, doctor, the page) reads it here.

Adding an accelerator is one new module with a `BACKEND` and one line in `_MODULES`.
"""

from __future__ import annotations

from appliance.errors import DeviceError
from appliance.vision import edgetpu as edgetpu_hardware  # not "edgetpu": that is the submodule's name here
from appliance.vision.backends import cpu, edgetpu
from appliance.vision.backends.base import Backend, RuntimeInfo

__all__ = ["Backend", "RuntimeInfo", "AUTO", "REGISTRY", "device_choices", "get", "accelerators",
           "compiled_for", "label", "twin_name", "runtime_status"]

AUTO = "auto"
_MODULES = (edgetpu, cpu)  # "auto" tries the accelerators in this order, the CPU last
REGISTRY: dict[str, Backend] = {m.BACKEND.name: m.BACKEND for m in _MODULES}
CPU = cpu.BACKEND.name


def device_choices() -> tuple[str, ...]:
    """What `vision.device` and every --device flag accept."""
    return (AUTO, *REGISTRY)


def get(name: str) -> Backend:
    try:
        return REGISTRY[name]
    except KeyError:
        raise DeviceError(f"unknown device {name!r}", f"use one of {', '.join(device_choices())}") from None


def accelerators() -> list[Backend]:
    return [b for b in REGISTRY.values() if b.compiled_marker]


def compiled_for(data: bytes, path_stem: str = "") -> Backend | None:
    """The accelerator a model file was compiled for (by its custom op or its file name), or None."""
    for backend in accelerators():
        named = bool(backend.model_suffix) and path_stem.endswith(backend.model_suffix)
        if named or backend.compiled_marker in data:
            return backend
    return None


def twin_name(name: str, backend_name: str) -> str:
    """A model's file (or manifest) name for a backend: ("m.tflite", "edgetpu") -> "m_edgetpu.tflite",
    ("m_edgetpu", "cpu") -> "m". The naming each backend's compiler uses."""
    stem, ext = (name[:-len(".tflite")], ".tflite") if name.endswith(".tflite") else (name, "")
    for accelerator in accelerators():
        stem = stem.removesuffix(accelerator.model_suffix)
    return stem + get(backend_name).model_suffix + ext


def runtime_status(name: str) -> dict:
    """What /api/status, /metrics and doctor say of the runtime a backend uses: the TFLite runtime module,
    its version, the TensorFlow version it was built from where known, and the delegate library."""
    from appliance.vision.runtime_pairs import installed_runtime_info, runtime_tf_version

    backend = get(name)
    runtime = backend.runtime()
    module, version = (runtime.module, runtime.version) if runtime else (None, None)
    status = {"name": module, "version": version,
              "tensorflow": runtime_tf_version(module, version) if module else None,
              "delegate": None, "problem": None}
    if backend.hardware is not None:
        status["delegate"] = edgetpu_hardware.library_description()
        status["problem"] = installed_runtime_info().problem  # a known mismatched pair, in words
    return status


def label(name: str) -> str:
    """The name a person reads on the page ("Edge TPU"), for a backend name ("edgetpu")."""
    backend = REGISTRY.get(name)
    return backend.label if backend is not None else name
