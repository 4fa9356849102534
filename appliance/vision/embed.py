"""Embeddings for teaching: the extractor's output, dequantised and L2-normalised (float32)."""

import numpy as np

from appliance.vision.classify import dequantize, wrong_kind
from appliance.vision.model import Model, Timings, timings_since


def l2_normalize(vector: np.ndarray) -> np.ndarray:
    vector = np.asarray(vector, np.float32).reshape(-1)
    norm = float(np.linalg.norm(vector))
    return vector / np.float32(norm) if norm > 0 else vector


class Embedder:
    """Thread-safe: the model's lock covers filling the input, invoking and reading the output."""

    def __init__(self, model: Model) -> None:
        if model.kind != "embedder":
            raise wrong_kind(model, "embedding extractor", "use an embedding extractor such as "
                             "mobilenet_v1_1.0_224_quant_embedding_extractor")
        self.model = model
        self.dim = int(np.prod(model.output_details[0]["shape"]))
        self.last_timings = Timings(0.0, 0.0, 0.0)

    def embed(self, rgb: np.ndarray) -> np.ndarray:
        raw, _, marks = self.model.run(rgb, lambda model: model.output(0))
        embedding = l2_normalize(dequantize(raw, self.model.output_details[0]))
        self.last_timings = timings_since(marks)
        return embedding
