"""Image classification: dequantised scores -> best classes (pycoral's classify adapter, plus timing)."""

import time
from collections import namedtuple

import numpy as np

from appliance.errors import ModelError
from appliance.vision.model import Model, Pending, Timings, timings_since

Class = namedtuple("Class", "id score label")


def dequantize(values: np.ndarray, detail: dict) -> np.ndarray:
    """Real values of an output tensor as float32 (quantised tensors carry a scale and zero point)."""
    scale, zero_point = detail.get("quantization", (0.0, 0))
    if scale:
        return (values.astype(np.float32) - np.float32(zero_point)) * np.float32(scale)
    return values.astype(np.float32)


def label_for(class_id: int, labels: dict[int, str] | None) -> str:
    return labels.get(class_id, str(class_id)) if labels else str(class_id)


def get_classes(scores: np.ndarray, top_k: int = 5, threshold: float = 0.0,
                labels: dict[int, str] | None = None) -> list[Class]:
    """The top_k classes scoring at least `threshold`, best first."""
    scores = np.asarray(scores, np.float32).reshape(-1)
    top_k = min(max(int(top_k), 0), scores.size)
    if top_k == 0:
        return []
    best = np.argpartition(-scores, top_k - 1)[:top_k]
    best = best[np.argsort(-scores[best], kind="stable")]
    return [Class(int(i), float(scores[i]), label_for(int(i), labels))
            for i in best if scores[i] >= threshold]


def wrong_kind(model: Model, wanted: str, hint: str) -> ModelError:
    article = "an" if wanted[0] in "aeiou" else "a"
    return ModelError(f"{model.path.name} is a {model.kind} model, not {article} {wanted}", hint)


class Classifier:
    """Thread-safe; `start` hands the frame to the model, `finish` reads its scores (see Model.submit)."""

    def __init__(self, model: Model, labels: dict[int, str] | None = None) -> None:
        if model.kind != "classifier":
            hint = " (use `appliance detect` for detectors)" if model.kind == "detector" else ""
            raise wrong_kind(model, "classifier",
                             "use an image classifier such as mobilenet_v2_1.0_224_quant" + hint)
        self.model = model
        self.labels = labels

    def start(self, rgb: np.ndarray) -> Pending:
        return self.model.submit(rgb)

    def finish(self, pending: Pending, top_k: int = 5, threshold: float = 0.0) -> tuple[list[Class], Timings]:
        ran = pending.wait()
        t0 = time.perf_counter()
        scores = dequantize(ran.outputs[0], self.model.output_details[0]).reshape(-1)
        classes = get_classes(scores, top_k, threshold, self.labels)
        return classes, timings_since(ran, t0)

    def classify_timed(self, rgb: np.ndarray, top_k: int = 5,
                       threshold: float = 0.0) -> tuple[list[Class], Timings]:
        return self.finish(self.start(rgb), top_k, threshold)

    def classify(self, rgb: np.ndarray, top_k: int = 5, threshold: float = 0.0) -> list[Class]:
        return self.classify_timed(rgb, top_k, threshold)[0]
