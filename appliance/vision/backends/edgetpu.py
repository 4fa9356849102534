"""The Edge TPU backend: Coral's libedgetpu delegate, on the runtime it was built against.

libedgetpu is linked against one TensorFlow version; loaded into another runtime it crashes at the
first model it prepares (google-coral/edgetpu#812). install.sh installs a matched pair with the
`tflite_runtime` module, so that runtime comes first here; ai-edge-litert is only the last resort.
"""

from appliance.vision import edgetpu as hardware
from appliance.vision.backends.base import Backend


class _EdgeTpuHardware:
    def present(self) -> bool:
        return hardware.edge_tpu_present()

    def delegates(self, spec: str) -> list:
        return [hardware.load_delegate(spec, load=BACKEND.interpreter_module().load_delegate)]

    def describe(self) -> str:
        return ", ".join(f"{t.type} ({t.path})" for t in hardware.list_edge_tpus()) or "none found"


BACKEND = Backend(name="edgetpu", label="Edge TPU", runtimes=("tflite_runtime", "ai_edge_litert"),
                  model_suffix="_edgetpu", compiled_marker=b"edgetpu-custom-op", hardware=_EdgeTpuHardware())
