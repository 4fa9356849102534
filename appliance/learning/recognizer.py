"""Embeddings → a taught class or "unknown", from a head that follows the store's changes.

A frame is unknown when the head's probability is below `unknown_threshold`, or when the frame is
not similar enough (cosine below `min_similarity`) to any stored sample of the class the head picked:
the open-set check that makes "unknown" possible with a single taught class (see learning.openset).

An unknown answer still names the closest taught class (the head's first choice), with its
probability and its similarity, and why it was not named: "unsure" (below `unknown_threshold`) or
"unlike" (below `min_similarity`), so the page can say "unknown — closest: mug, 31 %" instead of a
bare number.

Two ways to follow the store. `background=False` (tools, tests): each call compares the store's version
and brings the head up to date first, so a class taught by anyone is recognised on the next call.
`background=True` (the running appliance): recognition never waits for learning. A HeadBuilder thread
applies changes to running per-class sums and swaps in a new head whole; each call reads the head that
is current, so the camera loop never blocks on the store, a fit or a cross-validation.
"""

import logging
import threading
from collections import namedtuple

import numpy as np

from appliance.errors import ConfigError, StoreError
from appliance.learning.class_sums import EMPTY, ClassSums, Taught
from appliance.learning.head_builder import HeadBuilder
from appliance.learning.heads import HEAD_KINDS, Head, auto_eligible, fit_head
from appliance.learning.openset import MIN_SIMILARITY
from appliance.learning.store import ClassStore

log = logging.getLogger(__name__)

# class_id None = unknown. closest_id / closest: the taught class the head ranks first (the class itself
# when known; None when nothing is taught); score: the head's probability for it; similarity: the cosine
# to that class's closest stored sample; reason: why an unknown with a closest class was not named it.
Recognition = namedtuple("Recognition", "class_id label score closest_id closest similarity reason",
                         defaults=(None, None, None, None))
UNKNOWN_LABEL = "unknown"
UNSURE = "unsure"   # the head's probability is below unknown_threshold: taught classes nearly tie
UNLIKE = "unlike"   # the cosine to the class's closest sample is below min_similarity: nothing taught


class Recognizer:
    """Thread-safe: the current (Taught, Head) pair is one immutable object, replaced whole."""

    def __init__(self, store: ClassStore, head: str = "auto", unknown_threshold: float = 0.6,
                 min_similarity: float = MIN_SIMILARITY, *, background: bool = False) -> None:
        if head not in HEAD_KINDS:
            raise ConfigError(f"unknown recognition head {head!r}", f"use one of {', '.join(HEAD_KINDS)}")
        if not 0.0 <= float(unknown_threshold) <= 1.0:
            raise ConfigError(f"unknown_threshold must be between 0 and 1, not {unknown_threshold}",
                              "set [recognition] unknown_threshold to e.g. 0.6")
        if not 0.0 <= float(min_similarity) <= 1.0:
            raise ConfigError(f"min_similarity must be between 0 and 1, not {min_similarity}",
                              f"set [recognition] min_similarity to e.g. {MIN_SIMILARITY} "
                              "(0 turns the check off)")
        self.store = store
        self.head_kind = head
        self.unknown_threshold = float(unknown_threshold)
        self.min_similarity = float(min_similarity)
        self._lock = threading.Lock()      # foreground mode: one refresh at a time
        self._sums = ClassSums(store)
        self._current: tuple[Taught, Head | None] | None = None
        self._builder: HeadBuilder | None = None
        if background:
            self._builder = HeadBuilder(self._sums, head, self._publish).start()

    def _publish(self, taught: Taught, head: Head | None, keep_head: bool) -> None:
        if keep_head and self._current is not None:
            head = self._current[1]
        self._current = (taught, head)  # one assignment: readers see the old pair or the new one
        if head is not None and not keep_head:
            log.info("recognition head at store version %d: %s (%d classes, %d samples)", taught.version,
                     head.reason or head.kind, len(head.class_ids), taught.sample_count)

    def _refresh(self) -> None:
        """Foreground mode: bring the head up to date before answering."""
        with self._lock:
            try:
                if self._current is not None and self.store.version == self._current[0].version:
                    return
                taught, changed = self._sums.update()
            except StoreError as exc:
                if self._current is None:
                    raise
                # e.g. the file stayed locked by another process: keep recognising with the head we have
                # and try again on the next call, rather than stopping the camera loop
                log.warning("keeping the current recognition head: %s", exc)
                return
            if not changed and self._current is not None:
                self._publish(taught, None, True)
                return
            X, y = taught.training_data()
            if not len(y):
                self._publish(taught, None, False)
            elif self.head_kind == "imprint" or (self.head_kind == "auto" and not auto_eligible(y)):
                reason = "" if self.head_kind == "imprint" else \
                    "imprint: fewer than 2 classes, or a class with fewer than 2 samples"
                self._publish(taught, taught.imprint_head(reason), False)
            else:
                self._publish(taught, fit_head(X, y, self.head_kind), False)

    def _pair(self) -> tuple[Taught, Head | None]:
        if self._builder is None:
            self._refresh()
        current = self._current
        return current if current is not None else (EMPTY, None)

    @property
    def ready(self) -> bool:
        """True once a head (or the knowledge that nothing is taught) has been loaded."""
        return self._current is not None

    @property
    def version(self) -> int | None:
        """The store version the head in use reflects (None before the first load)."""
        current = self._current
        return None if current is None else current[0].version

    @property
    def class_count(self) -> int | None:
        """How many classes the head in use knows of (None before the first load); reads no store."""
        current = self._current
        return None if current is None else len(current[0].labels)

    @property
    def head(self) -> Head | None:
        """The head in use (None while no class has samples)."""
        return self._pair()[1]

    def close(self) -> None:
        """Stop the background builder (if any); recognising keeps working with the last head."""
        if self._builder is not None:
            self._builder.stop()

    def recognize(self, embedding: np.ndarray) -> Recognition:
        return self.recognize_batch(np.asarray(embedding, dtype=np.float32).reshape(1, -1))[0]

    def recognize_batch(self, embeddings: np.ndarray) -> list[Recognition]:
        """One Recognition per row; unknown when no class has samples, the best score is too low or the
        frame is unlike the picked class's samples (the score stays the head's probability, and the
        picked class stays as `closest`)."""
        X = np.atleast_2d(np.asarray(embeddings, dtype=np.float32))
        taught, head = self._pair()
        if head is None:
            return [Recognition(None, UNKNOWN_LABEL, 0.0) for _ in range(len(X))]
        ids, scores = head.predict(X)
        similar = taught.similarity_to(X, ids)
        return [self._answer(int(i), float(p), float(c), taught)
                for i, p, c in zip(ids, scores, similar, strict=True)]

    def _answer(self, class_id: int, score: float, similarity: float, taught: Taught) -> Recognition:
        label = taught.labels.get(class_id, UNKNOWN_LABEL)
        if self.min_similarity > 0 and similarity < self.min_similarity:
            reason = UNLIKE   # first: for a frame like nothing taught, the probability says little
        elif score < self.unknown_threshold:
            reason = UNSURE
        else:
            return Recognition(class_id, label, score, class_id, label, similarity)
        return Recognition(None, UNKNOWN_LABEL, score, class_id, label, similarity, reason)

    def similarity(self, embeddings: np.ndarray) -> dict[str, np.ndarray]:
        """Per class label, the cosine of each embedding to the class's closest sample (for tuning
        `min_similarity` and for status pages)."""
        X = np.atleast_2d(np.asarray(embeddings, dtype=np.float32))
        taught, _ = self._pair()
        index = taught.sample_index()
        if index is None:
            return {}
        S = index.similarity(X)
        return {taught.labels[int(c)]: S[:, j] for j, c in enumerate(index.class_ids)}
