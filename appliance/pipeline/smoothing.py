"""Temporal smoothing: the recognised class is the majority over the last few frames.

A single odd frame (motion blur, a hand passing) must not flip the label or the LEDs. Below the
unknown threshold a frame votes for "unknown" (class_id None), and unknown can win the vote.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Iterable
from typing import NamedTuple

UNKNOWN = "unknown"


class Vote(NamedTuple):  # the same fields as learning.recognizer.Recognition
    class_id: int | None
    label: str
    score: float


def as_vote(rec, threshold: float) -> Vote:
    """A recognition below the threshold, or without a class, counts as unknown."""
    if rec is None or rec.class_id is None or rec.score < threshold:
        return Vote(None, UNKNOWN, 0.0 if rec is None else float(rec.score))
    return Vote(rec.class_id, rec.label, float(rec.score))


def majority(votes: Iterable[Vote]) -> Vote | None:
    """The most frequent class; ties go to the class seen most recently; score = its mean score."""
    votes = list(votes)
    if not votes:
        return None
    counts = Counter(v.class_id for v in votes)
    last_seen = {v.class_id: i for i, v in enumerate(votes)}
    winner = max(counts, key=lambda cid: (counts[cid], last_seen[cid]))
    mine = [v for v in votes if v.class_id == winner]
    score = sum(v.score for v in mine) / len(mine)
    return Vote(winner, mine[-1].label, score)


class Smoother:
    """Keeps the last `frames` votes; not thread-safe (the inference worker owns it)."""

    def __init__(self, frames: int = 5, threshold: float = 0.6) -> None:
        self.threshold = threshold
        self._votes: deque[Vote] = deque(maxlen=max(1, int(frames)))

    def update(self, rec) -> Vote:
        self._votes.append(as_vote(rec, self.threshold))
        return majority(self._votes)

    def reset(self) -> None:
        """Forget history, e.g. when the taught classes change."""
        self._votes.clear()
