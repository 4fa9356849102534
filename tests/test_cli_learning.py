"""`appliance teach` and `appliance classes` end to end on the real embedding extractor and photos."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from cli_helpers import private_home, run_cli  # noqa: F401 (private_home is an autouse fixture)

from appliance.learning.store import ClassStore, stored_embedding_model
from appliance.paths import REPO_ROOT

EMBEDDER = "mobilenet_v1_1.0_224_quant_embedding_extractor.tflite"


@pytest.fixture
def taught(tmp_path, models_dir, images_dir, capsys):
    """A store with cat, dog and hot dog taught through the CLI; returns its path."""
    store = tmp_path / "classes.db"
    folder = images_dir / "imprinting"
    for prefix, label in (("cat", "cat"), ("dog", "dog"), ("hotdog", "hot dog")):
        photos = sorted(folder.glob(f"{prefix}_train_*"))
        code, out, err = run_cli(capsys, "teach", "--store", store, "--model", models_dir / EMBEDDER,
                                 "--device", "cpu", "--json", label, *photos)
        assert code == 0, err
        result = json.loads(out)
        assert result["label"] == label and result["created"] is True
        assert result["samples"] == result["added"] == len(list(folder.glob(f"{prefix}_train_*")))
    return store


def test_teach_then_list_json(taught, capsys):
    code, out, err = run_cli(capsys, "classes", "--store", taught, "--json")
    assert code == 0, err
    rows = json.loads(out)
    assert [(r["label"], r["samples"]) for r in rows] == [("cat", 1), ("dog", 1), ("hot dog", 2)]
    assert all(set(r) == {"id", "label", "samples"} and isinstance(r["id"], int) for r in rows)
    code, out2, _ = run_cli(capsys, "classes", "--store", taught, "list", "--json")
    assert json.loads(out2) == rows
    code, text, _ = run_cli(capsys, "classes", "--store", taught)
    assert "hot dog" in text and "(2 samples)" in text
    with ClassStore(taught, stored_embedding_model(taught)) as store:  # thumbnails were stored as JPEG
        assert store.thumbnail(store.find("cat").id).startswith(b"\xff\xd8")


def test_teach_adds_to_an_existing_class_with_default_model(taught, tmp_path, images_dir, capsys):
    # no --model: the default embedder is resolved by name (copied from ../shared/models, hash checked)
    code, out, err = run_cli(capsys, "teach", "--store", taught, "--models-dir", tmp_path / "models",
                             "--device", "cpu", "CAT", images_dir / "cat.bmp")
    assert code == 0, err
    assert "updated class 'cat'" in out and "2 in total" in out


def test_rename_delete_export_import(taught, tmp_path, capsys):
    code, out, err = run_cli(capsys, "classes", "--store", taught, "rename", "cat", "Kitty", "--json")
    assert code == 0, err
    assert [r["label"] for r in json.loads(out)] == ["Kitty", "dog", "hot dog"]
    code, out, err = run_cli(capsys, "classes", "--store", taught, "rename", "dog", "kitty")
    assert code == 2 and "already used" in err and "Traceback" not in err
    export = tmp_path / "export.db"
    assert run_cli(capsys, "classes", "--store", taught, "export", export)[0] == 0
    code, out, err = run_cli(capsys, "classes", "--store", taught, "delete", "DOG", "--json")
    assert code == 0, err
    assert [r["label"] for r in json.loads(out)] == ["Kitty", "hot dog"]
    code, out, err = run_cli(capsys, "classes", "--store", tmp_path / "new.db", "list")
    assert code == 2 and "does not exist" in err  # listing never creates a store by accident
    code, out, err = run_cli(capsys, "classes", "--store", tmp_path / "new.db", "import", export)
    assert code == 0, err  # restoring a backup into a new store creates it, with the export's model
    assert "Kitty  (1 samples)" in out and stored_embedding_model(tmp_path / "new.db") == \
        stored_embedding_model(export)
    code, out, err = run_cli(capsys, "classes", "--store", tmp_path / "new2.db", "import", tmp_path / "x")
    assert code == 2 and "not a class-store export" in err and not (tmp_path / "new2.db").exists()
    code, out, err = run_cli(capsys, "classes", "--store", taught, "import", export, "--json")
    assert code == 0, err
    assert [(r["label"], r["samples"]) for r in json.loads(out)] == [("Kitty", 2), ("hot dog", 4), ("dog", 1)]


def test_errors_are_clear_without_traceback(taught, tmp_path, models_dir, images_dir, capsys):
    image = images_dir / "cat.bmp"
    code, _, err = run_cli(capsys, "teach", "--store", taught, "--model", models_dir / EMBEDDER,
                           "bad\tlabel", image)
    assert code == 2 and "control or invisible characters" in err and "fix:" in err
    code, _, err = run_cli(capsys, "teach", "--store", taught, "--model", models_dir / EMBEDDER, " ", image)
    assert code == 2 and "empty" in err
    code, _, err = run_cli(capsys, "classes", "--store", taught, "delete", "unicorn")
    assert code == 2 and "no class labelled 'unicorn'" in err and "'hot dog'" in err
    code, _, err = run_cli(capsys, "teach", "--store", taught, "--model", models_dir / EMBEDDER, "--device",
                           "cpu", "cat", tmp_path / "missing.jpg")
    assert code == 2 and "missing.jpg" in err
    fresh = tmp_path / "fresh.db"
    code, _, err = run_cli(capsys, "teach", "--store", fresh, "--model", models_dir / EMBEDDER,
                           "--device", "cpu", "cat", tmp_path / "missing.jpg")
    assert code == 2 and "missing.jpg" in err and not fresh.exists()
    # a store taught with another embedding model
    other = tmp_path / "other.db"
    with ClassStore(other, "efficientnet-edgetpu-S_quant_embedding_extractor.tflite") as store:
        store.teach("cat", np.ones((1, 1280), np.float32))
    code, _, err = run_cli(capsys, "teach", "--store", other, "--model", models_dir / EMBEDDER, "--device",
                           "cpu", "cat", image)
    assert code == 2 and "efficientnet-edgetpu-S_quant_embedding_extractor" in err
    assert "mobilenet_v1_1.0_224_quant_embedding_extractor" in err and "fix:" in err
    corrupt = tmp_path / "corrupt.db"
    corrupt.write_bytes(b"garbage" * 1000)
    code, _, err = run_cli(capsys, "classes", "--store", corrupt, "list")
    assert code == 2 and "corrupt" in err and str(corrupt) in err
    assert all("Traceback" not in e for e in (err,))


def test_subprocess_json_and_exit_codes(taught, tmp_path):
    env = {**os.environ, "XDG_DATA_HOME": str(tmp_path / "xdg")}
    proc = subprocess.run([sys.executable, "-m", "appliance", "classes", "--store", str(taught), "--json"],
                          capture_output=True, text=True, cwd=REPO_ROOT, env=env, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert [r["label"] for r in json.loads(proc.stdout)] == ["cat", "dog", "hot dog"]
    proc = subprocess.run([sys.executable, "-m", "appliance", "classes", "--store", str(taught), "delete",
                           "x"], capture_output=True, text=True, cwd=REPO_ROOT, env=env, timeout=60)
    assert proc.returncode == 2 and proc.stdout == "" and "Traceback" not in proc.stderr


def test_classify_against_the_store_names_what_an_unknown_was_closest_to(taught, models_dir, images_dir,
                                                                          capsys):
    photos = [images_dir / "imprinting" / "cat_test_0.bmp", images_dir / "sunflower.bmp"]
    code, out, err = run_cli(capsys, "classify", "--store", taught, "--model", models_dir / EMBEDDER,
                             "--device", "cpu", "--json", *photos)
    assert code == 0, err
    cat, flower = (r["classes"][0] for r in json.loads(out))
    assert cat["label"] == "cat" and cat["closest"] == "cat" and cat["reason"] is None
    assert flower["id"] is None and flower["label"] == "unknown"
    assert flower["closest"] in ("cat", "dog", "hot dog") and flower["reason"] in ("unsure", "unlike")
    assert 0.0 < flower["similarity"] < 1.0
    code, text, _ = run_cli(capsys, "classify", "--store", taught, "--model", models_dir / EMBEDDER,
                            "--device", "cpu", photos[1])
    assert f"unknown  (closest: {flower['closest']})" in text
