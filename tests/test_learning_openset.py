"""Open-set "unknown": a frame unlike the samples of the picked class is unknown, even with one class."""

import numpy as np
import pytest
from learning_helpers import embedder, embedder_identity  # noqa: F401  (fixtures)

from appliance.bench.fewshot import embed_folders
from appliance.errors import ConfigError
from appliance.learning.heads import fit_head
from appliance.learning.openset import MIN_SIMILARITY, sample_index
from appliance.learning.recognizer import Recognizer
from appliance.learning.store import ClassStore
from appliance.vision.images import read_image


@pytest.fixture
def store(tmp_path, embedder_identity):  # noqa: F811
    with ClassStore(tmp_path / "classes.db", embedder_identity) as s:
        yield s


def test_similarity_is_the_closest_sample_of_each_class_in_any_order():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(7, 5)).astype(np.float32)
    y = np.array([9, 3, 9, 3, 5, 9, 3])  # unsorted, ids need not start at 0
    index = sample_index(X * 4.0, y)  # lengths do not matter
    Q = rng.normal(size=(4, 5)).astype(np.float32)
    Xn = X / np.linalg.norm(X, axis=1, keepdims=True)
    Qn = Q / np.linalg.norm(Q, axis=1, keepdims=True)
    expected = np.stack([(Qn @ Xn[y == c].T).max(axis=1) for c in (3, 5, 9)], axis=1)
    np.testing.assert_allclose(index.similarity(Q), expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(index.similarity_to(Q, np.array([9, 3, 5, 9])),
                               expected[np.arange(4), [2, 0, 1, 2]], rtol=1e-5, atol=1e-6)


def test_one_taught_class_cat_the_cat_is_known_unrelated_photos_are_unknown(images_dir, embedder, store):  # noqa: F811
    photos = sorted(images_dir.glob("imprinting/cat_train_*"))
    store.teach("cat", [embedder.embed(read_image(p)) for p in photos])
    recognizer = Recognizer(store)
    assert recognizer.min_similarity == MIN_SIMILARITY
    for photo in ("imprinting/cat_test_0.bmp", "cat.bmp"):
        found = recognizer.recognize(embedder.embed(read_image(images_dir / photo)))
        assert found.label == "cat" and found.class_id == store.find("cat").id, photo
    for photo in ("kite_and_cold.jpg", "sunflower.bmp", "grace_hopper.bmp", "parrot.jpg"):
        embedding = embedder.embed(read_image(images_dir / photo))
        found = recognizer.recognize(embedding)
        # the head alone would say cat with probability 1 (the only class); the similarity says no
        assert found.class_id is None and found.label == "unknown", photo
        assert found.score == pytest.approx(1.0)
        assert recognizer.similarity(embedding)["cat"][0] < MIN_SIMILARITY
    # live-frame-like changes of the taught photo stay known
    rgb = read_image(photos[0])
    h, w = rgb.shape[:2]
    for frame in (rgb[:, ::-1], rgb[h // 10:, w // 10:], (rgb * 0.7).astype(np.uint8)):
        assert recognizer.recognize(embedder.embed(np.ascontiguousarray(frame))).label == "cat"
    # 0 turns the check off: the only class again
    off = Recognizer(store, min_similarity=0.0)
    assert off.recognize(embedder.embed(read_image(images_dir / "kite_and_cold.jpg"))).label == "cat"


def test_min_similarity_outside_0_1_is_a_config_error(store):
    with pytest.raises(ConfigError) as err:
        Recognizer(store, min_similarity=1.2)
    assert "min_similarity" in err.value.problem and "min_similarity" in err.value.fix


@pytest.fixture(scope="module")
def flowers(flowers_dir, embedder):  # noqa: F811
    return embed_folders(flowers_dir, embedder)


def test_flowers_known_class_photos_are_mostly_kept_and_unrelated_photos_mostly_rejected(
        flowers, images_dir, embedder):  # noqa: F811
    # 5 classes taught from 5 photos each, the auto head picks, the similarity to that class decides.
    # Measured over these 10 splits: 94% of the unseen flower photos reach 0.55 and stay known;
    # 79% of the unrelated photos (people, birds, cats, kites) stay below it and are unknown.
    X, y, _ = flowers
    unrelated = np.stack([embedder.embed(read_image(images_dir / name)) for name in
                          ("bird.bmp", "cat.bmp", "face.jpg", "grace_hopper.bmp", "kite_and_cold.jpg",
                           "owl.jpg", "parrot.jpg", "pets.jpg")])
    rng = np.random.default_rng(4)
    kept, accepted = [], []
    for _ in range(10):
        train = np.concatenate([rng.choice(np.flatnonzero(y == c), 5, replace=False) for c in np.unique(y)])
        test = np.setdiff1d(np.arange(len(y)), train)
        head, index = fit_head(X[train], y[train]), sample_index(X[train], y[train])
        kept.append((index.similarity_to(X[test], head.predict(X[test])[0]) >= MIN_SIMILARITY).mean())
        accepted.append((index.similarity_to(unrelated, head.predict(unrelated)[0]) >= MIN_SIMILARITY).mean())
    print(f"kept {np.mean(kept):.3f}, accepted {np.mean(accepted):.3f}")
    assert np.mean(kept) >= 0.9, f"known-class photos kept {np.mean(kept):.3f}"
    assert np.mean(accepted) <= 0.35, f"unrelated photos accepted {np.mean(accepted):.3f}"


def test_benchmark_mirrors_train_only_and_open_set_rates_are_fractions():
    from appliance.bench.fewshot import few_shot_accuracy, open_set_rates, splits_for, training_set

    rng = np.random.default_rng(8)
    centres = rng.random((3, 16))
    y = np.repeat(np.arange(3), 6)
    X = (centres[y] + 0.05 * rng.random((18, 16))).astype(np.float32)
    mirrors = (X + 0.01).astype(np.float32)
    train, test = next(splits_for(y, 2, 1, 0))
    assert len(train) == 6 and len(test) == 12 and not set(train) & set(test)
    Xt, yt = training_set(X, y, train, mirrors)
    assert len(Xt) == 12 and (yt[:6] == yt[6:]).all() and np.allclose(Xt[6:], mirrors[train])
    loo = list(splits_for(y, 6, 50, 0))
    assert len(loo) == 18 and all(len(t) == 1 for _, t in loo)
    assert few_shot_accuracy(X, y, 2, "softmax", splits=3, mirrors=mirrors) == 1.0
    rates = open_set_rates(X, y, rng.normal(size=(4, 16)).astype(np.float32), 2, splits=3)
    assert len(rates["kept"]) == len(rates["accepted"]) == len(rates["thresholds"])
    assert all(k == 1.0 for k in rates["kept"])  # the clusters are tight: every test point is close
