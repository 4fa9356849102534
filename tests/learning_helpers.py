"""Fixtures for the learning tests: the real embedding extractor on the CPU."""

import pytest

from appliance.learning.model_identity import model_identity

EMBEDDER_FILE = "mobilenet_v1_1.0_224_quant_embedding_extractor.tflite"


@pytest.fixture(scope="session")
def embedder(models_dir):
    from appliance.vision.embed import Embedder
    from appliance.vision.model import load_model

    return Embedder(load_model(models_dir / EMBEDDER_FILE, device="cpu"))


@pytest.fixture(scope="session")
def embedder_identity(models_dir):
    return model_identity(models_dir / EMBEDDER_FILE)
