"""Shared fixtures: the real models, photos and few-shot data in ../shared beside the checkout.

The runtime never looks for ../shared: the tests hand the models folder over as APPLIANCE_MODELS_FROM
(dev.sh and .ci/run set it; when it is unset, ../shared/models is used if present). Every test runs
with HOME and the XDG folders in a temporary folder, so no test writes into the real user's
~/.local/share/appliance (or anywhere else outside temporary folders).
"""

import os
import shutil
import tempfile
from pathlib import Path

import pytest

from appliance.model_files import ENV_MODELS_FROM
from appliance.paths import REPO_ROOT

SHARED = REPO_ROOT.parent / "shared"
MODELS = Path(os.environ.get(ENV_MODELS_FROM) or SHARED / "models")
if MODELS.is_dir():
    os.environ[ENV_MODELS_FROM] = str(MODELS)

_HOME = tempfile.mkdtemp(prefix="appliance-tests-home-")
for _var, _sub in (("HOME", ""), ("XDG_DATA_HOME", ".local/share"), ("XDG_CONFIG_HOME", ".config"),
                   ("XDG_CACHE_HOME", ".cache"), ("XDG_STATE_HOME", ".local/state")):
    os.environ[_var] = os.path.join(_HOME, _sub) if _sub else _HOME


def pytest_unconfigure(config) -> None:
    shutil.rmtree(_HOME, ignore_errors=True)
IMAGES = SHARED / "images"
FLOWERS = SHARED / "data" / "flowers"

CLASSIFIER = "mobilenet_v2_1.0_224_quant.tflite"
TINY_CLASSIFIER = "mobilenet_v1_0.25_128_quant.tflite"
DETECTOR = "ssd_mobilenet_v1_coco_quant_2018_06_29_detect.tflite"
EMBEDDER = "mobilenet_v1_1.0_224_quant_embedding_extractor.tflite"


def _need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"{path} not found: the real models and photos live in ../shared beside the checkout "
                    f"(or set {ENV_MODELS_FROM} to a folder of the models)")
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
def fake_lib(tmp_path_factory) -> Path:
    """The stand-in libedgetpu (tests/fake_edgetpu), compiled once for the whole run."""
    from edgetpu_helpers import build_fake_libedgetpu

    return build_fake_libedgetpu(tmp_path_factory.mktemp("libedgetpu"))


@pytest.fixture(scope="session")
def mqtt_broker(tmp_path_factory):
    """One real Mosquitto for the MQTT tests (password listener + TLS listener on a test CA)."""
    from mqtt_helpers import Broker

    broker = Broker(tmp_path_factory.mktemp("mosquitto"), tls=True)
    yield broker
    broker.stop()
