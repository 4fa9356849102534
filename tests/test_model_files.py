"""Model files: the manifest matches the real files; copies and downloads are verified and atomic.

Downloads are tested against a real HTTP server on 127.0.0.1 serving copies of the real models.
"""

import functools
import http.server
import shutil
import threading
import zipfile
from pathlib import Path

import pytest

from appliance import model_files
from appliance.errors import ModelError
from appliance.model_files import ModelEntry, file_digests, find_entry, load_manifest, resolve, resolve_model

TINY = "mobilenet_v1_0.25_128_quant"
TINY_SHA = "cb273c23ee76374b05b9583177e28aa19744858a7679c56a250e83d0333da785"
TINY_BLOB = "22b67d6a63753ad9907a4c8505632479ac439b94"
DETECT_SHA = "e4b118e5e4531945de2e659742c7c590f7536f8d0ed26d135abcfe83b4779d13"


def _leftovers(folder: Path) -> list[str]:
    return [p.name for p in folder.iterdir() if p.name.startswith(".") or p.suffix in (".part", ".download")]


@pytest.fixture()
def no_shared(monkeypatch):
    """No APPLIANCE_MODELS_FROM, so a name must come from the folder or URL under test."""
    monkeypatch.delenv(model_files.ENV_MODELS_FROM, raising=False)


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


@pytest.fixture()
def server(tmp_path, models_dir):
    """A real HTTP server serving a good copy, a corrupted copy and the official-style zip."""
    root = tmp_path / "www"
    root.mkdir()
    data = (models_dir / f"{TINY}.tflite").read_bytes()
    (root / "good.tflite").write_bytes(data)
    (root / "bad.tflite").write_bytes(data[:1000] + bytes([data[1000] ^ 0xFF]) + data[1001:])
    with zipfile.ZipFile(root / "detector.zip", "w") as archive:
        archive.write(models_dir / "ssd_mobilenet_v1_coco_quant_2018_06_29_detect.tflite", "detect.tflite")
        archive.write(models_dir / "coco_labels.txt", "labelmap.txt")
    handler = functools.partial(_QuietHandler, directory=str(root))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_manifest_hashes_match_the_real_files(models_dir):
    manifest = load_manifest()
    checked = 0
    for entry in manifest.values():
        assert entry.sha256 or entry.git_blob, f"{entry.name} has no hash"
        assert entry.url or entry.role == "labels", f"{entry.name} has no URL"
        local = models_dir / entry.file
        if local.exists():
            assert model_files.hash_mismatch(local, entry, file_digests(local)) is None, entry.name
            if entry.size:
                assert local.stat().st_size == entry.size
            checked += 1
    assert checked == 11  # every model and label file of ../shared/models


def test_manifest_covers_the_configured_defaults():
    from appliance.config import Config

    required, optional = model_files.default_names(Config())
    assert required == ["mobilenet_v2_1.0_224_quant", "ssd_mobilenet_v1_coco_quant_2018_06_29_detect",
                        "mobilenet_v1_1.0_224_quant_embedding_extractor", "imagenet_labels.txt",
                        "coco_labels.txt"]
    assert optional == ["mobilenet_v2_1.0_224_quant_edgetpu",
                        "mobilenet_v1_1.0_224_quant_embedding_extractor_edgetpu"]
    assert all(find_entry(name) for name in required + optional)


def test_name_is_copied_from_the_shared_folder_and_verified(tmp_path, models_dir):
    target_dir = tmp_path / "models"
    got = resolve(TINY, models_dir=target_dir)
    assert got.path == target_dir / f"{TINY}.tflite" and got.source == f"copied from {models_dir}"
    assert file_digests(got.path).sha256 == TINY_SHA
    assert _leftovers(target_dir) == []
    again = resolve(f"{TINY}.tflite", models_dir=target_dir)  # with the suffix, now from the folder
    assert again == (got.path, "models_dir")
    assert resolve_model("imagenet_labels.txt", models_dir=target_dir).read_text().startswith("background")


def test_unwritable_models_folder_is_a_clear_error(tmp_path, models_dir):
    blocker = tmp_path / "data"
    blocker.write_text("a file where the data folder should be")  # unwritable even for root
    with pytest.raises(ModelError, match="cannot write the models folder") as err:
        resolve(TINY, models_dir=blocker / "models")
    assert "--data-dir" in err.value.fix


def test_existing_path_is_used_as_is(models_dir, tmp_path):
    path = models_dir / f"{TINY}.tflite"
    assert resolve_model(path, models_dir=tmp_path) == path
    assert list(tmp_path.iterdir()) == []


def test_missing_path_and_unknown_name(tmp_path):
    with pytest.raises(ModelError, match="does not exist"):
        resolve_model(tmp_path / "nope.tflite", models_dir=tmp_path)
    with pytest.raises(ModelError, match="neither a file nor a model name") as err:
        resolve_model("resnet9000", models_dir=tmp_path)
    assert "appliance models list" in err.value.fix


def test_models_from_folder_and_environment_variable(tmp_path, models_dir, monkeypatch, no_shared):
    source = tmp_path / "usb-stick"
    source.mkdir()
    shutil.copyfile(models_dir / f"{TINY}.tflite", source / f"{TINY}.tflite")
    got = resolve(TINY, models_dir=tmp_path / "a", models_from=source)
    assert got.source == f"copied from {source}"
    monkeypatch.setenv(model_files.ENV_MODELS_FROM, str(source))
    assert resolve(TINY, models_dir=tmp_path / "b").source == f"copied from {source}"
    with pytest.raises(ModelError, match="does not exist"):
        resolve(TINY, models_dir=tmp_path / "c", models_from=tmp_path / "no-such-folder")


def test_corrupt_local_copy_is_refused_and_nothing_is_installed(tmp_path, models_dir, no_shared):
    source = tmp_path / "src"
    source.mkdir()
    data = bytearray((models_dir / f"{TINY}.tflite").read_bytes())
    data[5000] ^= 0x01
    (source / f"{TINY}.tflite").write_bytes(bytes(data))
    target_dir = tmp_path / "models"
    with pytest.raises(ModelError) as err:
        resolve_model(TINY, models_dir=target_dir, models_from=source)
    message = str(err.value)
    assert str(source / f"{TINY}.tflite") in message and TINY_SHA in message
    assert file_digests(source / f"{TINY}.tflite").sha256 in message
    assert err.value.fix
    assert list(target_dir.iterdir()) == []


def test_corrupt_file_in_the_models_folder_is_reported(tmp_path, models_dir):
    target_dir = tmp_path / "models"
    target_dir.mkdir()
    (target_dir / f"{TINY}.tflite").write_bytes((models_dir / f"{TINY}.tflite").read_bytes()[:-10])
    with pytest.raises(ModelError) as err:
        resolve_model(TINY, models_dir=target_dir)
    assert "is not the official" in err.value.problem and TINY_SHA in err.value.problem
    assert f"appliance models fetch {TINY}" in err.value.fix


def test_download_from_a_real_http_server(tmp_path, server, no_shared):
    entry = ModelEntry(name=TINY, file=f"{TINY}.tflite", role="classifier", url=f"{server}/good.tflite",
                       sha256=TINY_SHA)
    got = resolve(TINY, models_dir=tmp_path / "m", manifest={TINY: entry})
    assert got.source == f"downloaded from {server}/good.tflite"
    assert file_digests(got.path).sha256 == TINY_SHA and _leftovers(tmp_path / "m") == []


def test_download_verified_by_git_blob_only(tmp_path, server, no_shared):
    entry = ModelEntry(name=TINY, file=f"{TINY}.tflite", role="classifier", url=f"{server}/good.tflite",
                       git_blob=TINY_BLOB)
    assert resolve_model(TINY, models_dir=tmp_path, manifest={TINY: entry}).is_file()
    wrong = ModelEntry(name="x", file="x.tflite", role="classifier", url=f"{server}/good.tflite",
                       git_blob="0" * 40)
    with pytest.raises(ModelError, match=f"expected git blob {'0' * 40}, got {TINY_BLOB}"):
        resolve_model("x", models_dir=tmp_path, manifest={"x": wrong})
    assert not (tmp_path / "x.tflite").exists()


def test_corrupted_download_is_refused(tmp_path, server, no_shared):
    entry = ModelEntry(name=TINY, file=f"{TINY}.tflite", role="classifier", url=f"{server}/bad.tflite",
                       sha256=TINY_SHA)
    with pytest.raises(ModelError) as err:
        resolve_model(TINY, models_dir=tmp_path / "m", manifest={TINY: entry})
    assert f"{server}/bad.tflite" in err.value.problem and TINY_SHA in err.value.problem
    assert list((tmp_path / "m").iterdir()) == []


def test_zip_member_download(tmp_path, server, no_shared):
    name = "ssd_mobilenet_v1_coco_quant_2018_06_29_detect"
    entry = ModelEntry(name=name, file=f"{name}.tflite", role="detector", url=f"{server}/detector.zip",
                       member="detect.tflite", sha256=DETECT_SHA)
    path = resolve_model(name, models_dir=tmp_path, manifest={name: entry})
    assert file_digests(path).sha256 == DETECT_SHA and _leftovers(tmp_path) == []
    missing = ModelEntry(name="y", file="y.tflite", role="detector", url=f"{server}/detector.zip",
                         member="other.tflite", sha256=DETECT_SHA)
    with pytest.raises(ModelError, match="is not a zip holding other.tflite"):
        resolve_model("y", models_dir=tmp_path, manifest={"y": missing})
    assert _leftovers(tmp_path) == []


def test_unreachable_server_says_how_to_work_offline(tmp_path, server, no_shared):
    entry = ModelEntry(name=TINY, file=f"{TINY}.tflite", role="classifier", url=f"{server}/missing.tflite",
                       sha256=TINY_SHA)
    with pytest.raises(ModelError, match="could not download") as err:
        resolve_model(TINY, models_dir=tmp_path / "m", manifest={TINY: entry})
    assert "--from DIR" in err.value.fix and model_files.ENV_MODELS_FROM in err.value.fix
    assert list((tmp_path / "m").iterdir()) == []


def test_label_files_without_url_need_a_local_copy(tmp_path, no_shared):
    with pytest.raises(ModelError, match="no local copy was found") as err:
        resolve_model("coco_labels.txt", models_dir=tmp_path)
    assert "--from DIR" in err.value.fix


def test_default_models_dir_follows_the_config(tmp_path, monkeypatch):
    import dataclasses

    from appliance.config import Config, VisionConfig

    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    # no config file: a per-user folder, never /var/lib/appliance which a developer cannot write
    assert model_files.default_models_dir(Config()) == tmp_path / "xdg" / "appliance" / "models"
    from_file = dataclasses.replace(Config(), data_dir=tmp_path / "data", path=tmp_path / "config.toml")
    assert model_files.default_models_dir(from_file) == tmp_path / "data" / "models"
    explicit = dataclasses.replace(Config(), vision=VisionConfig(models_dir=str(tmp_path / "mine")))
    assert model_files.default_models_dir(explicit) == tmp_path / "mine"


def test_labels_that_go_with_a_model():
    assert model_files.labels_for_model("x/mobilenet_v2_1.0_224_quant.tflite") == "imagenet_labels.txt"
    assert model_files.labels_for_model("ssd_mobilenet_v1_coco_quant_2018_06_29_detect.tflite") == \
        "coco_labels.txt"
    assert model_files.labels_for_model("mobilenet_v1_0.25_128_quant_edgetpu.tflite") == "imagenet_labels.txt"
    own = functools.partial(model_files.labels_for_model, "own.tflite", kind="classifier")
    assert own(classes=1001) == "imagenet_labels.txt" and own(classes=3) is None
