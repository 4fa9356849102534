"""`appliance classes export --tflite`: the taught classes as a .tflite that agrees with the appliance."""

import numpy as np
import pytest
from cli_helpers import private_home, run_cli  # noqa: F401
from learning_helpers import EMBEDDER_FILE, embedder  # noqa: F401

from appliance.learning.export_agreement import agreement, run_set, tflite_top
from appliance.modelcheck.check import check_file
from appliance.vision.images import read_image


def teach_pets(capsys, images_dir, models_dir, store):
    folder = images_dir / "imprinting"
    for label, photos in (("cat", ["cat_train_0.bmp"]), ("dog", ["dog_train_0.bmp"]),
                          ("hotdog", ["hotdog_train_0.bmp", "hotdog_train_1.bmp"])):
        code, _, err = run_cli(capsys, "teach", "--store", store, "--from", models_dir, "--device", "cpu",
                               label, *[folder / p for p in photos])
        assert code == 0, err


def test_cli_export_writes_model_and_labels_that_name_the_test_photos(capsys, images_dir, models_dir,
                                                                       tmp_path, monkeypatch):
    monkeypatch.setenv("APPLIANCE_MODELS_FROM", str(models_dir))
    store = tmp_path / "pets.db"
    teach_pets(capsys, images_dir, models_dir, store)
    out = tmp_path / "export" / "pets.tflite"
    code, text, err = run_cli(capsys, "classes", "--store", store, "export", "--tflite", out)
    assert code == 0, err
    assert "exported 3 class(es)" in text and "imprint head" in text and "Edge TPU check: full" in text
    assert out.with_suffix(".txt").read_text() == "cat\ndog\nhotdog\n"
    photos = [read_image(images_dir / "imprinting" / f"{n}_test_0.bmp") for n in ("cat", "dog", "hotdog")]
    assert tflite_top(out, photos) == [0, 1, 2]
    report = check_file(out)
    assert (report["verdict"], report["kind"], report["input_size"]) == ("full", "classifier", [224, 224])
    assert [o["op"] for o in report["ops"]][-4:] == [
        "RESHAPE", "L2_NORMALIZATION", "FULLY_CONNECTED", "SOFTMAX"]
    assert report["outputs"][0]["dtype"] == "uint8" and report["outputs"][0]["shape"] == [1, 3]


def test_export_agrees_with_the_appliance_on_flowers(flowers_dir, models_dir, embedder):  # noqa: F811
    """The store's own head (auto picks softmax regression here) through uint8 ops: >= 99 % the same."""
    photos = {d.name: [read_image(p) for p in sorted(d.glob("*.jpg"))]
              for d in sorted(flowers_dir.iterdir()) if d.is_dir()}
    row = run_set("flowers", photos, {k: 5 for k in photos}, embedder, models_dir / EMBEDDER_FILE, "auto")
    assert row["photos"] == 100 and row["head"] == "softmax"
    assert row["agreement"] >= 0.99, row


def test_imprint_head_export_agrees_on_the_imprinting_photos(images_dir, models_dir, embedder):  # noqa: F811
    folder = images_dir / "imprinting"
    photos, train = {}, {}
    for p in sorted(folder.glob("*_train_*.bmp")) + sorted(folder.glob("*_test_*.bmp")):
        label = p.name.split("_")[0]
        photos.setdefault(label, []).append(read_image(p))
        train[label] = train.get(label, 0) + ("_train_" in p.name)
    row = run_set("imprinting", photos, train, embedder, models_dir / EMBEDDER_FILE, "imprint")
    assert (row["head"], row["photos"], row["agree"]) == ("imprint", 7, 7)


def test_export_of_an_empty_store_or_without_a_file_says_what_to_do(capsys, models_dir, tmp_path, monkeypatch,
                                                                    images_dir):
    monkeypatch.setenv("APPLIANCE_MODELS_FROM", str(models_dir))
    store = tmp_path / "pets.db"
    teach_pets(capsys, images_dir, models_dir, store)
    for label in ("cat", "dog", "hotdog"):
        assert run_cli(capsys, "classes", "--store", store, "delete", label)[0] == 0
    code, _, err = run_cli(capsys, "classes", "--store", store, "export", "--tflite", tmp_path / "x.tflite")
    assert code == 2 and "no taught samples" in err and not (tmp_path / "x.tflite").exists()
    code, _, err = run_cli(capsys, "classes", "--store", store, "export")
    assert code == 2 and "--tflite" in err
    code, _, err = run_cli(capsys, "classes", "--store", store, "export", "--tflite", tmp_path / "x.tflite",
                           "--model", models_dir / "mobilenet_v2_1.0_224_quant.tflite")
    assert code == 2 and "was taught with mobilenet_v1_1.0_224_quant_embedding_extractor" in err


def test_agreement_counts_a_disagreement(images_dir, models_dir, embedder, tmp_path):  # noqa: F811
    """The measure itself can fail: a head that ranks classes the other way round disagrees."""
    from dataclasses import replace

    from appliance.learning.export_agreement import teach_and_export

    photos = [read_image(images_dir / "imprinting" / f"{n}_test_0.bmp") for n in ("cat", "dog")]
    vectors = {n: [embedder.embed(p)] for n, p in zip(("cat", "dog"), photos, strict=True)}
    export = teach_and_export(vectors, {"cat": 1, "dog": 1}, models_dir / EMBEDDER_FILE, tmp_path, "imprint")
    X = np.array([v[0] for v in vectors.values()])
    assert agreement(export, X, photos) == (2, 2)
    flipped = replace(export, head=replace(export.head, weights=export.head.weights[::-1].copy()))
    assert agreement(flipped, X, photos) == (0, 2)


def test_a_compiled_embedder_is_refused(models_dir):
    from appliance.errors import ModelError
    from appliance.learning.heads import fit_imprint
    from appliance.learning.tflite_export import append_head

    head = fit_imprint(np.eye(2, 1024, dtype=np.float32), np.array([1, 2]))
    data = (models_dir / EMBEDDER_FILE.replace(".tflite", "_edgetpu.tflite")).read_bytes()
    with pytest.raises(ModelError, match="compiled for the Edge TPU"):
        append_head(data, head, np.eye(2, 1024, dtype=np.float32), "x")
