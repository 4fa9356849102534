"""Shared fixtures: the real models, photos and few-shot data in ../shared beside the checkout."""

from pathlib import Path

import pytest

from appliance.paths import REPO_ROOT

SHARED = REPO_ROOT.parent / "shared"
MODELS = SHARED / "models"
IMAGES = SHARED / "images"
FLOWERS = SHARED / "data" / "flowers"

CLASSIFIER = "mobilenet_v2_1.0_224_quant.tflite"
TINY_CLASSIFIER = "mobilenet_v1_0.25_128_quant.tflite"
DETECTOR = "ssd_mobilenet_v1_coco_quant_2018_06_29_detect.tflite"
EMBEDDER = "mobilenet_v1_1.0_224_quant_embedding_extractor.tflite"


def _need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"{path} not found: the real models and photos live in ../shared beside the checkout")
    return path


@pytest.fixture(scope="session")
def models_dir() -> Path:
    return _need(MODELS)


@pytest.fixture(scope="session")
def images_dir() -> Path:
    return _need(IMAGES)


@pytest.fixture(scope="session")
def flowers_dir() -> Path:
    return _need(FLOWERS)


@pytest.fixture(scope="session")
def mqtt_broker(tmp_path_factory):
    """One real Mosquitto for the MQTT tests (password listener + TLS listener on a test CA)."""
    from mqtt_helpers import Broker

    broker = Broker(tmp_path_factory.mktemp("mosquitto"), tls=True)
    yield broker
    broker.stop()
