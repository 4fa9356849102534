"""The CPU backend: TFLite's own kernels (XNNPACK), through ai-edge-litert from the package index."""

from appliance.vision.backends.base import Backend

# ai-edge-litert is what pip installs everywhere; tflite_runtime is there only beside a matched libedgetpu
BACKEND = Backend(name="cpu", label="CPU", runtimes=("ai_edge_litert", "tflite_runtime"))
