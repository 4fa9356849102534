"""Temporal smoothing: the recognised class is the majority over the last few frames.

A single odd frame (motion blur, a hand passing) must not flip the label or the LEDs. Below the
unknown threshold a frame votes for "unknown" (class_id None), and unknown can win the vote. An unknown
vote keeps the class it was closest to, so a smoothed "unknown" still says what it was closest to.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Iterable

from appliance.learning.recognizer import UNKNOWN_LABEL, UNSURE, Recognition


def as_vote(rec: Recognition | None, threshold: float) -> Recognition:
    """A recognition below the threshold, or without a class, counts as unknown (keeping its closest)."""
    if rec is None:
        return Recognition(None, UNKNOWN_LABEL, 0.0)
    similarity = rec.similarity
    if rec.class_id is None:
        return rec._replace(label=UNKNOWN_LABEL, score=float(rec.score))
    if rec.score < threshold:
        return Recognition(None, UNKNOWN_LABEL, float(rec.score), rec.class_id, rec.label, similarity, UNSURE)
    return Recognition(rec.class_id, rec.label, float(rec.score), rec.class_id, rec.label, similarity)


def _most_frequent(votes: list[Recognition], key) -> list[Recognition]:
    """The votes sharing the most frequent key; ties go to the key seen most recently."""
    counts = Counter(key(v) for v in votes)
    last_seen = {key(v): i for i, v in enumerate(votes)}
    winner = max(counts, key=lambda k: (counts[k], last_seen[k]))
    return [v for v in votes if key(v) == winner]


def _mean(values: list[float | None]) -> float | None:
    return None if not values or None in values else sum(values) / len(values)


def majority(votes: Iterable[Recognition]) -> Recognition | None:
    """The most frequent class; ties go to the class seen most recently; score = its mean score. When
    unknown wins, its closest class is the one most of the unknown votes were closest to, with their
    mean score and similarity (so the number shown belongs to the class named)."""
    votes = list(votes)
    if not votes:
        return None
    mine = _most_frequent(votes, lambda v: v.class_id)
    if mine[0].class_id is None:
        mine = _most_frequent(mine, lambda v: v.closest_id)
    last = mine[-1]
    score = sum(v.score for v in mine) / len(mine)
    return last._replace(score=score, similarity=_mean([v.similarity for v in mine]))


class Smoother:
    """Keeps the last `frames` votes; not thread-safe (the inference worker owns it)."""

    def __init__(self, frames: int = 5, threshold: float = 0.6) -> None:
        self.threshold = threshold
        self._votes: deque[Recognition] = deque(maxlen=max(1, int(frames)))

    def update(self, rec: Recognition | None) -> Recognition:
        self._votes.append(as_vote(rec, self.threshold))
        return majority(self._votes)

    def reset(self) -> None:
        """Forget history, e.g. when the taught classes change."""
        self._votes.clear()
