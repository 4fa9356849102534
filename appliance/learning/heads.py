"""Heads over embeddings: weight imprinting, a trained softmax-regression layer, and the choice between them.

Imprinting is libcoral's maths: a class's weight is the normalised sum of its L2-normalised embeddings,
the score of a class is softmax(IMPRINT_SCALE * cosine). The trained head is multinomial logistic
regression (weights + bias, L2 penalty) fitted by a fixed number of Nesterov-accelerated full-batch
gradient steps: numpy only, deterministic, no random start. "auto" compares both by k-fold
cross-validation on the stored samples (when every class has at least 2) and keeps the better one.
"""

from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

# Called between the gradient steps of the trained head: a background builder sleeps there (to bound its
# CPU share) or raises to abandon a fit the store has already outdated. None: run flat out.
Pace = Callable[[], None] | None

# Cosines between MobileNet embeddings of different flowers differ by a few hundredths to a few
# tenths; 30 turns a 0.05 lead over one rival into a 0.82 probability, so the 0.6 "unknown" threshold
# separates confident matches from near-ties (libcoral's imprinting model uses a fixed scale the same way).
IMPRINT_SCALE = 30.0
SOFTMAX_L2 = 3e-4  # chosen by cross-validation on the flowers few-shot set (README: Benchmarks, few-shot)
SOFTMAX_STEPS = 200
CV_MAX_FOLDS = 5
CV_MAX_PER_CLASS = 20  # auto's cross-validation uses at most this many samples per class (Pi budget)
# auto keeps the trained head unless imprinting wins the cross-validation by more than this: on few
# samples the CV estimate is noisy, and the trained head is the better one on average (flowers benchmark).
AUTO_MARGIN = 0.1
HEAD_KINDS = ("auto", "imprint", "softmax")


def l2_normalize(X: np.ndarray) -> np.ndarray:
    X = np.atleast_2d(np.asarray(X, dtype=np.float32))
    norms = np.linalg.norm(X, axis=1, keepdims=True)
    return X / np.where(norms > 0, norms, 1.0)


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


@dataclass(frozen=True)
class Head:
    """A linear layer over L2-normalised embeddings: probabilities = softmax(scale * (X W^T + b))."""

    kind: str                 # "imprint" | "softmax"
    class_ids: np.ndarray     # (C,) the store's class ids, one per row of weights
    weights: np.ndarray       # (C, D)
    bias: np.ndarray          # (C,)
    scale: float = 1.0
    reason: str = ""          # why auto picked this head (for logs and status)

    def probabilities(self, X: np.ndarray) -> np.ndarray:
        """(N, C) class probabilities for N embeddings; each row sums to 1."""
        return softmax(self.scale * (l2_normalize(X) @ self.weights.T + self.bias))

    def predict(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The best class id and its probability for each of N embeddings."""
        P = self.probabilities(X)
        best = P.argmax(axis=1)
        return self.class_ids[best], P[np.arange(len(P)), best]


def _class_index(y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    class_ids, index = np.unique(np.asarray(y), return_inverse=True)
    return class_ids, index


def fit_imprint(X: np.ndarray, y: np.ndarray, scale: float = IMPRINT_SCALE) -> Head:
    """Imprinted weights: per class the normalised sum of its normalised embeddings."""
    class_ids, index = _class_index(y)
    Xn = l2_normalize(X)
    onehot = np.zeros((len(class_ids), len(Xn)), dtype=np.float32)
    onehot[index, np.arange(len(Xn))] = 1.0
    sums = onehot @ Xn
    return Head("imprint", class_ids, l2_normalize(sums), np.zeros(len(class_ids), np.float32), scale)


def fit_softmax(X: np.ndarray, y: np.ndarray, l2: float = SOFTMAX_L2, steps: int = SOFTMAX_STEPS,
                pace: Pace = None) -> Head:
    """Softmax regression by accelerated gradient descent on the mean cross-entropy + l2/2 ||W||^2.

    Rows are unit vectors, so the loss's gradient is (0.5 + l2)-Lipschitz (Bohning's bound): the step
    1 / (0.5 + l2) is safe and needs no line search.
    """
    class_ids, index = _class_index(y)
    Xn = l2_normalize(X).astype(np.float64)
    n, d = Xn.shape
    c = len(class_ids)
    if c < 2:  # one class: nothing to separate; every embedding is that class
        return Head("softmax", class_ids, np.zeros((c, d), np.float32), np.zeros(c, np.float32))
    Y = np.zeros((n, c))
    Y[np.arange(n), index] = 1.0
    lr = 1.0 / (0.5 + l2)
    W = W_prev = np.zeros((c, d))
    b = b_prev = np.zeros(c)
    t = 1.0
    for _ in range(steps):
        if pace is not None:
            pace()
        R = (softmax(Xn @ W.T + b) - Y) / n
        W_next = W - lr * (R.T @ Xn + l2 * W)
        b_next = b - lr * R.sum(axis=0)
        t_next = (1.0 + np.sqrt(1.0 + 4.0 * t * t)) / 2.0
        momentum = (t - 1.0) / t_next
        W = W_next + momentum * (W_next - W_prev)
        b = b_next + momentum * (b_next - b_prev)
        W_prev, b_prev, t = W_next, b_next, t_next
    return Head("softmax", class_ids, W_prev.astype(np.float32), b_prev.astype(np.float32))


FITTERS = {"imprint": fit_imprint, "softmax": fit_softmax}


def folds(y: np.ndarray, max_folds: int = CV_MAX_FOLDS,
          max_per_class: int = CV_MAX_PER_CLASS) -> list[np.ndarray]:
    """Stratified folds (arrays of sample indices), each class's samples cut into contiguous blocks.

    Samples are stored in teaching order, so contiguous blocks keep the near-identical frames of one burst
    together and the held-out fold is not a copy of the training data. At most `max_per_class` samples
    per class take part, spread evenly over the class's history.
    """
    y = np.asarray(y)
    class_ids = np.unique(y)
    k = min(max_folds, min(int((y == c).sum()) for c in class_ids))
    out: list[list[int]] = [[] for _ in range(k)]
    for c in class_ids:
        idx = np.flatnonzero(y == c)
        if len(idx) > max_per_class:
            idx = idx[np.linspace(0, len(idx) - 1, max_per_class).round().astype(int)]
        for fold, block in enumerate(np.array_split(idx, k)):
            out[fold].extend(block.tolist())
    return [np.array(sorted(f), dtype=np.int64) for f in out]


def fit(kind: str, X: np.ndarray, y: np.ndarray, pace: Pace = None) -> Head:
    """The `kind` ("imprint" | "softmax") head; `pace` runs between the trained head's steps."""
    return fit_softmax(X, y, pace=pace) if kind == "softmax" else FITTERS[kind](X, y)


def cross_validate(X: np.ndarray, y: np.ndarray, kind: str, fold_list: list[np.ndarray],
                   pace: Pace = None) -> float:
    """Top-1 accuracy of the `kind` head over the held-out folds."""
    y = np.asarray(y)
    used = np.concatenate(fold_list)
    correct = 0
    for held in fold_list:
        train = np.setdiff1d(used, held)
        pred, _ = fit(kind, X[train], y[train], pace).predict(X[held])
        correct += int((pred == y[held]).sum())
    return correct / len(used)


def auto_eligible(y: np.ndarray) -> bool:
    classes, counts = np.unique(np.asarray(y), return_counts=True)
    return len(classes) >= 2 and int(counts.min()) >= 2


def fit_head(X: np.ndarray, y: np.ndarray, kind: str = "auto", pace: Pace = None) -> Head:
    """Fit the requested head; "auto" picks by cross-validation, imprinting when it cannot compare."""
    if kind not in HEAD_KINDS:
        raise ValueError(f"head must be one of {', '.join(HEAD_KINDS)}, not {kind!r}")
    if kind != "auto":
        return fit(kind, X, y, pace)
    if not auto_eligible(y):
        return replace(fit_imprint(X, y),
                       reason="imprint: fewer than 2 classes, or a class with fewer than 2 samples")
    fold_list = folds(y)
    acc = {k: cross_validate(X, y, k, fold_list, pace) for k in ("imprint", "softmax")}
    pick = "imprint" if acc["imprint"] > acc["softmax"] + AUTO_MARGIN else "softmax"
    head = fit(pick, X, y, pace)
    reason = (f"{pick}: {len(fold_list)}-fold cross-validation top-1 imprint {acc['imprint']:.2f}, "
              f"softmax {acc['softmax']:.2f}")
    return replace(head, reason=reason)
