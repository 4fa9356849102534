"""Per-class running sums of the taught samples, kept up to date from the store's deltas.

The imprinting head is one normalised sum per class, so a burst of new samples changes one class's sum by
O(samples added); nothing else is recomputed. The same per-class sample matrices feed the open-set check
(a frame is compared with the picked class's samples only) and, when wanted, the trained head's fit.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from appliance.learning.heads import IMPRINT_SCALE, Head, l2_normalize
from appliance.learning.openset import SampleIndex
from appliance.learning.store import ClassStore


@dataclass(frozen=True)
class Taught:
    """An immutable view of the taught classes at one store version: swapped whole, never changed."""

    version: int
    labels: dict[int, str]
    samples: dict[int, np.ndarray]   # class id -> (n, D) unit rows, in teaching order
    sums: dict[int, np.ndarray]      # class id -> (D,) sum of those rows

    @property
    def class_ids(self) -> np.ndarray:
        return np.array(sorted(self.samples), dtype=np.int64)

    @property
    def sample_count(self) -> int:
        return sum(len(s) for s in self.samples.values())

    def imprint_head(self, reason: str = "") -> Head | None:
        """The imprinting head (libcoral's weights): the normalised per-class sums; None with no samples."""
        ids = self.class_ids
        if not len(ids):
            return None
        weights = l2_normalize(np.stack([self.sums[int(c)] for c in ids]))
        return Head("imprint", ids, weights, np.zeros(len(ids), np.float32), IMPRINT_SCALE, reason)

    def training_data(self) -> tuple[np.ndarray, np.ndarray]:
        """X (N, D) and y (N,) in class-id then teaching order, as ClassStore.training_data gives them."""
        ids = self.class_ids
        if not len(ids):
            return np.empty((0, 0), np.float32), np.empty(0, np.int64)
        X = np.concatenate([self.samples[int(c)] for c in ids])
        y = np.concatenate([np.full(len(self.samples[int(c)]), c, np.int64) for c in ids])
        return X, y

    def sample_index(self) -> SampleIndex | None:
        ids = self.class_ids
        if not len(ids):
            return None
        counts = np.array([len(self.samples[int(c)]) for c in ids])
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
        return SampleIndex(ids, np.concatenate([self.samples[int(c)] for c in ids]), starts)

    def similarity_to(self, X: np.ndarray, class_ids: np.ndarray) -> np.ndarray:
        """(N,): each embedding's cosine to the closest sample of its given class (that class's rows only)."""
        Xn = l2_normalize(X)
        return np.array([float((self.samples[int(c)] @ x).max()) for x, c in zip(Xn, class_ids, strict=True)],
                        dtype=np.float32)


EMPTY = Taught(-1, {}, {}, {})


def counts_of(taught: Taught, lasts: dict[int, int]) -> dict[int, tuple[int, int]]:
    return {c: (len(s), lasts[c]) for c, s in taught.samples.items() if c in lasts}


class ClassSums:
    """Follows one store: `update()` applies what changed since the last call and returns the new Taught."""

    def __init__(self, store: ClassStore) -> None:
        self.store = store
        self.taught = EMPTY
        self._lasts: dict[int, int] = {}   # class id -> last sample id held

    def update(self) -> tuple[Taught, bool]:
        """(the current Taught, whether the samples changed: labels alone do not count). StoreError passes."""
        delta = self.store.sample_delta(counts_of(self.taught, self._lasts))
        if delta.version == self.taught.version:
            return self.taught, False
        old = self.taught
        samples = {c: s for c, s in old.samples.items() if c in delta.counts}
        sums = {c: s for c, s in old.sums.items() if c in delta.counts}
        for class_id, (appended, X) in delta.rows.items():
            Xn = l2_normalize(X) if len(X) else X
            if appended and class_id in samples:
                samples[class_id] = np.concatenate([samples[class_id], Xn])
                sums[class_id] = sums[class_id] + Xn.sum(axis=0)
            else:
                samples[class_id], sums[class_id] = Xn, Xn.sum(axis=0)
        changed = set(samples) != set(old.samples) or bool(delta.rows)
        self._lasts = {c: last for c, (_, last) in delta.counts.items()}
        labels = {c.id: c.label for c in delta.classes}
        self.taught = replace(old, version=delta.version, labels=labels, samples=samples, sums=sums)
        return self.taught, changed
