"""Embeddings for teaching: the extractor's output, dequantised and L2-normalised (float32)."""

import time

import numpy as np

from appliance.vision.classify import dequantize, wrong_kind
from appliance.vision.model import Model, Pending, Timings, timings_since


def l2_normalize(vector: np.ndarray) -> np.ndarray:
    vector = np.asarray(vector, np.float32).reshape(-1)
    norm = float(np.linalg.norm(vector))
    return vector / np.float32(norm) if norm > 0 else vector


class Embedder:
    """Thread-safe; `start` hands the frame to the model, `finish` reads the embedding (see Model.submit)."""

    def __init__(self, model: Model) -> None:
        if model.kind != "embedder":
            raise wrong_kind(model, "embedding extractor", "use an embedding extractor such as "
                             "mobilenet_v1_1.0_224_quant_embedding_extractor")
        self.model = model
        self.dim = int(np.prod(model.output_details[0]["shape"]))

    def start(self, rgb: np.ndarray) -> Pending:
        return self.model.submit(rgb)

    def finish(self, pending: Pending) -> tuple[np.ndarray, Timings]:
        ran = pending.wait()
        t0 = time.perf_counter()
        embedding = l2_normalize(dequantize(ran.outputs[0], self.model.output_details[0]))
        return embedding, timings_since(ran, t0)

    def embed_timed(self, rgb: np.ndarray) -> tuple[np.ndarray, Timings]:
        return self.finish(self.start(rgb))

    def embed(self, rgb: np.ndarray) -> np.ndarray:
        return self.embed_timed(rgb)[0]
