"""Head maths: imprinting as libcoral defines it, the trained softmax layer, the automatic choice."""

import numpy as np
import pytest

from appliance.learning import heads


def clusters(rng, classes=3, per_class=6, dim=32, spread=0.05):
    centres = rng.normal(size=(classes, dim))
    X = np.concatenate([c + spread * rng.normal(size=(per_class, dim)) for c in centres])
    y = np.repeat(np.arange(10, 10 + classes), per_class)  # store ids need not start at 0
    return X.astype(np.float32), y


def test_imprint_weight_is_the_normalised_sum_of_normalised_embeddings():
    rng = np.random.default_rng(1)
    X, y = clusters(rng)
    head = heads.fit_imprint(X, y)
    for row, class_id in enumerate(head.class_ids):
        s = (X[y == class_id] / np.linalg.norm(X[y == class_id], axis=1, keepdims=True)).sum(axis=0)
        np.testing.assert_allclose(head.weights[row], s / np.linalg.norm(s), rtol=1e-5, atol=1e-6)
    assert head.scale == heads.IMPRINT_SCALE
    # score = softmax(scale * cosine)
    x = X[:1]
    cos = (x / np.linalg.norm(x)) @ head.weights.T
    expected = np.exp(head.scale * cos) / np.exp(head.scale * cos).sum()
    np.testing.assert_allclose(head.probabilities(x), expected, rtol=1e-5)


def test_imprint_is_invariant_to_embedding_length():
    rng = np.random.default_rng(2)
    X, y = clusters(rng)
    a = heads.fit_imprint(X, y)
    b = heads.fit_imprint(X * rng.uniform(0.1, 10, size=(len(X), 1)).astype(np.float32), y)
    np.testing.assert_allclose(a.weights, b.weights, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kind", ["imprint", "softmax", "auto"])
def test_probabilities_sum_to_one_and_predict_uses_store_ids(kind):
    rng = np.random.default_rng(3)
    X, y = clusters(rng)
    head = heads.fit_head(X, y, kind)
    P = head.probabilities(rng.normal(size=(7, X.shape[1])))
    assert P.shape == (7, 3)
    np.testing.assert_allclose(P.sum(axis=1), 1.0, rtol=1e-5)
    assert np.all(P >= 0)
    ids, scores = head.predict(X)
    assert set(ids.tolist()) <= {10, 11, 12}
    np.testing.assert_array_equal(ids, y)
    assert np.all((scores > 0) & (scores <= 1))


def test_softmax_head_fits_separable_data_that_imprinting_gets_wrong():
    # Class 0 spreads over angles 0-34 degrees, class 1 sits tightly at 44-48: linearly separable with a
    # margin, but the cosine bisector of the class means (about 31.5 degrees) cuts through class 0.
    angles = np.r_[np.linspace(0, 34, 40), np.linspace(44, 48, 40)]
    rad = np.deg2rad(angles)
    X = np.stack([np.cos(rad), np.sin(rad), np.full_like(rad, 0.1)], axis=1).astype(np.float32)
    y = np.repeat([0, 1], 40)
    soft = heads.fit_softmax(X, y)
    pred, scores = soft.predict(X)
    assert (pred == y).mean() == 1.0
    assert (heads.fit_imprint(X, y).predict(X)[0] == y).mean() < 0.97
    assert heads.fit_head(X, y, "auto").kind == "softmax"


def test_softmax_is_deterministic():
    rng = np.random.default_rng(5)
    X, y = clusters(rng)
    a, b = heads.fit_softmax(X, y), heads.fit_softmax(X, y)
    np.testing.assert_array_equal(a.weights, b.weights)
    np.testing.assert_array_equal(a.bias, b.bias)


def test_single_class_heads_always_answer_that_class():
    X = np.random.default_rng(6).normal(size=(3, 8)).astype(np.float32)
    for kind in ("imprint", "softmax", "auto"):
        ids, scores = heads.fit_head(X, np.array([7, 7, 7]), kind).predict(X)
        assert ids.tolist() == [7, 7, 7]
        np.testing.assert_allclose(scores, 1.0)


def test_auto_imprints_below_two_samples_per_class_and_says_why():
    rng = np.random.default_rng(7)
    X, y = clusters(rng, per_class=1)
    head = heads.fit_head(X, y, "auto")
    assert head.kind == "imprint" and "fewer than 2" in head.reason
    X, y = clusters(rng, per_class=4)
    head = heads.fit_head(X, y, "auto")
    assert "cross-validation" in head.reason


def test_folds_are_stratified_contiguous_and_capped():
    y = np.repeat([1, 2], [30, 4])
    fold_list = heads.folds(y, max_folds=5, max_per_class=20)
    assert len(fold_list) == 4  # the smallest class has 4 samples
    used = np.concatenate(fold_list)
    assert len(used) == len(set(used.tolist())) == 24
    for fold in fold_list:
        assert set(y[fold].tolist()) == {1, 2}
        ones = fold[y[fold] == 1]
        assert ones.max() - ones.min() < 10  # a block of nearby samples, not every 4th one


def test_unknown_kind_is_refused():
    with pytest.raises(ValueError):
        heads.fit_head(np.ones((2, 3)), np.array([0, 1]), "knn")
