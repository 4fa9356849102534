"""Majority vote over recent frames, with unknown below the threshold."""

from collections import namedtuple

from appliance.pipeline.smoothing import UNKNOWN, Smoother, Vote, majority

Rec = namedtuple("Rec", "class_id label score")


def test_single_odd_frame_does_not_flip_the_label():
    s = Smoother(frames=5, threshold=0.5)
    for _ in range(4):
        out = s.update(Rec(1, "cat", 0.9))
    out = s.update(Rec(2, "dog", 0.95))
    assert out.class_id == 1 and out.label == "cat" and abs(out.score - 0.9) < 1e-6


def test_label_changes_once_the_majority_changes():
    s = Smoother(frames=5, threshold=0.5)
    for _ in range(5):
        s.update(Rec(1, "cat", 0.9))
    outs = [s.update(Rec(2, "dog", 0.8)).class_id for _ in range(3)]
    assert outs == [1, 1, 2]


def test_below_threshold_votes_unknown_and_unknown_can_win():
    s = Smoother(frames=3, threshold=0.6)
    s.update(Rec(1, "cat", 0.9))
    s.update(Rec(1, "cat", 0.3))
    out = s.update(Rec(None, UNKNOWN, 0.2))
    assert out.class_id is None and out.label == UNKNOWN


def test_tie_goes_to_most_recent_and_reset_forgets():
    votes = [Vote(1, "a", 0.9), Vote(2, "b", 0.7), Vote(1, "a", 0.8), Vote(2, "b", 0.9)]
    assert majority(votes).class_id == 2
    assert majority([]) is None
    s = Smoother(frames=5, threshold=0.5)
    for _ in range(5):
        s.update(Rec(1, "cat", 0.9))
    s.reset()
    assert s.update(Rec(2, "dog", 0.9)).class_id == 2
    assert s.update(None).class_id in (2, None)
