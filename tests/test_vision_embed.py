"""Embeddings from the real MobileNet v1 extractor: unit length, and similar photos close together."""

import numpy as np
import pytest

from appliance.vision.embed import Embedder, l2_normalize
from appliance.vision.images import read_image
from appliance.vision.model import load_model

EMBEDDER = "mobilenet_v1_1.0_224_quant_embedding_extractor.tflite"


@pytest.fixture(scope="module")
def embedder(models_dir):
    return Embedder(load_model(models_dir / EMBEDDER, device="cpu"))


def test_embedding_is_float32_unit_length(embedder, images_dir):
    vector, timings = embedder.embed_timed(read_image(images_dir / "cat.bmp"))
    assert vector.shape == (1024,) and vector.dtype == np.float32 and embedder.dim == 1024
    assert np.linalg.norm(vector) == pytest.approx(1.0, abs=1e-5)
    assert (vector >= 0).all() and np.count_nonzero(vector) > 100  # avg-pool of ReLU6 features
    assert timings.invoke_ms > 0


def test_each_test_photo_is_nearest_a_training_photo_of_its_class(embedder, images_dir):
    folder = images_dir / "imprinting"
    emb = {p.stem: embedder.embed(read_image(p)) for p in sorted(folder.glob("*.bmp"))}
    train = [name for name in emb if "_train_" in name]
    tests = [name for name in emb if "_test_" in name]
    assert len(tests) == 3 and len(train) >= 3
    for name in tests:
        nearest = max(train, key=lambda t: float(emb[name] @ emb[t]))
        assert nearest.split("_")[0] == name.split("_")[0], (name, nearest)


def test_same_frame_gives_the_same_embedding(embedder, images_dir):
    rgb = read_image(images_dir / "parrot.jpg")
    assert np.array_equal(embedder.embed(rgb), embedder.embed(rgb.copy()))


def test_l2_normalize():
    assert np.allclose(l2_normalize(np.array([3.0, 4.0])), [0.6, 0.8])
    assert l2_normalize(np.zeros(3)).tolist() == [0.0, 0.0, 0.0]
    assert l2_normalize(np.array([[1.0], [1.0]])).shape == (2,)
