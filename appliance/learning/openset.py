"""Open-set check: how close a frame is to the stored samples of each taught class.

A softmax over the taught classes always names one of them (with one class taught, always with
probability 1), so a frame unlike everything taught needs a second test. The measure is the cosine to the
class's most similar stored sample, not to the imprinted class mean: live frames resemble one particular
teaching frame (cosine >= 0.77 under crops, shifts, blur, brightness and JPEG changes on the real
extractor), while the mean of varied samples drifts towards the average of all photos and comes closer to
unrelated ones too (figures in the README, "Two heads and the automatic choice").
"""

from dataclasses import dataclass

import numpy as np

from appliance.learning.heads import l2_normalize

# MobileNet v1 embeddings are non-negative (after ReLU), so even unrelated photos have cosines of
# 0.2-0.6. Measured with 5 flower classes taught from 5 photos each: 0.55 keeps every live-frame variant
# and 94% of the unseen photos of the picked class, and rejects 82% of unrelated photos; with one class
# (a cat) every unrelated photo (figures in the README, "Two heads and the automatic choice").
MIN_SIMILARITY = 0.55


@dataclass(frozen=True)
class SampleIndex:
    """Every stored sample, normalised and grouped by class (rows of one class are contiguous)."""

    class_ids: np.ndarray   # (C,) sorted store class ids
    samples: np.ndarray     # (M, D) float32 unit rows, sorted by class
    starts: np.ndarray      # (C,) first row of each class in `samples`

    def similarity(self, X: np.ndarray) -> np.ndarray:
        """(N, C): for each embedding, the cosine to the closest stored sample of each class."""
        cos = l2_normalize(X) @ self.samples.T
        return np.maximum.reduceat(cos, self.starts, axis=1)

    def similarity_to(self, X: np.ndarray, class_ids: np.ndarray) -> np.ndarray:
        """(N,): the cosine of each embedding to the closest stored sample of the given class."""
        columns = np.searchsorted(self.class_ids, np.asarray(class_ids))
        return self.similarity(X)[np.arange(len(columns)), columns]


def sample_index(X: np.ndarray, y: np.ndarray) -> SampleIndex:
    y = np.asarray(y)
    order = np.argsort(y, kind="stable")
    class_ids, starts = np.unique(y[order], return_index=True)
    return SampleIndex(class_ids, l2_normalize(X)[order], starts.astype(np.int64))
