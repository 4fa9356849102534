"""Does a teaching burst show one thing? Frames that split into clearly different views are not all kept.

A burst is meant to show one object for about a second. When the view changes part-way (the demo moved
to its next photo, a person walked in front of the camera, the object was swapped), its frames' embeddings
fall into groups far apart from each other. Teaching all of them would teach the class two things and
say nothing; this check finds the groups and keeps only a consistent majority, or refuses.

Groups: frames are linked when their embeddings' cosine similarity is at least LINK_SIMILARITY, and a
group is a connected set of links (single linkage), so a slow pan or a hand moving the object, whose
neighbouring frames stay alike, is one group. Measured with the mobilenet_v1 embedding extractor on the
demo's photos: frames of one photo while it pans are >= 0.90 alike, frames of two different photos
<= 0.55 (tests/test_burst_check.py keeps that margin honest); 0.65 sits between, nearer the different.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

LINK_SIMILARITY = 0.65


@dataclass(frozen=True)
class BurstCheck:
    keep: tuple[int, ...]   # indices of the frames to teach (all, the majority group, or none)
    total: int              # frames in the burst
    groups: int             # clearly different views found

    @property
    def consistent(self) -> bool:
        return self.groups <= 1

    @property
    def refused(self) -> bool:
        return not self.keep

    @property
    def warning(self) -> str | None:
        """What the page and the teach event say when not every frame is kept (None when all are)."""
        if self.consistent:
            return None
        if self.refused:
            return (f"the view changed during teaching: {self.total} frames showed {self.groups} different "
                    "views and none was most of the burst, so nothing was learned")
        return f"the view changed during teaching: kept {len(self.keep)} of {self.total} frames"


def groups_of(embeddings: np.ndarray, link: float = LINK_SIMILARITY) -> list[list[int]]:
    """Frame indices grouped by single linkage at cosine similarity >= link; largest group first."""
    vectors = np.asarray(embeddings, np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    vectors = vectors / np.maximum(norms, 1e-12)
    linked = (vectors @ vectors.T) >= link
    n = len(vectors)
    group = [-1] * n
    groups: list[list[int]] = []
    for start in range(n):
        if group[start] >= 0:
            continue
        members, stack = [], [start]
        group[start] = len(groups)
        while stack:
            i = stack.pop()
            members.append(i)
            for j in np.flatnonzero(linked[i]):
                if group[j] < 0:
                    group[j] = len(groups)
                    stack.append(int(j))
        groups.append(sorted(members))
    return sorted(groups, key=lambda g: (-len(g), g[0]))


def check_burst(embeddings: np.ndarray, link: float = LINK_SIMILARITY) -> BurstCheck:
    """Keep every frame of a one-view burst, the largest group when it is more than half, else none."""
    total = len(embeddings)
    if total == 0:
        return BurstCheck((), 0, 0)
    groups = groups_of(embeddings, link)
    largest = groups[0]
    keep = tuple(largest) if len(largest) * 2 > total else ()
    return BurstCheck(keep, total, len(groups))
