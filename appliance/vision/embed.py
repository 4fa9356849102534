"""Embeddings for teaching: the extractor's output, dequantised and L2-normalised (float32)."""

import time

import numpy as np

from appliance.vision import preprocess
from appliance.vision.classify import dequantize, wrong_kind
from appliance.vision.model import Model, Timings


def l2_normalize(vector: np.ndarray) -> np.ndarray:
    vector = np.asarray(vector, np.float32).reshape(-1)
    norm = float(np.linalg.norm(vector))
    return vector / np.float32(norm) if norm > 0 else vector


def get_embedding(model: Model) -> np.ndarray:
    return l2_normalize(dequantize(model.output(0), model.output_details[0]))


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
        with self.model.lock:
            t0 = time.perf_counter()
            preprocess.set_input(self.model, rgb)
            t1 = time.perf_counter()
            self.model.invoke()
            t2 = time.perf_counter()
            raw = self.model.output(0)
        embedding = l2_normalize(dequantize(raw, self.model.output_details[0]))
        t3 = time.perf_counter()
        self.last_timings = Timings((t1 - t0) * 1e3, (t2 - t1) * 1e3, (t3 - t2) * 1e3)
        return embedding
