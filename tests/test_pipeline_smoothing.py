"""Majority vote over recent frames, with unknown below the threshold."""

from appliance.learning.recognizer import UNKNOWN_LABEL as UNKNOWN
from appliance.learning.recognizer import Recognition as Rec
from appliance.pipeline.smoothing import Smoother, majority


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
    votes = [Rec(1, "a", 0.9), Rec(2, "b", 0.7), Rec(1, "a", 0.8), Rec(2, "b", 0.9)]
    assert majority(votes).class_id == 2
    assert majority([]) is None
    s = Smoother(frames=5, threshold=0.5)
    for _ in range(5):
        s.update(Rec(1, "cat", 0.9))
    s.reset()
    assert s.update(Rec(2, "dog", 0.9)).class_id == 2
    assert s.update(None).class_id in (2, None)


def test_an_unknown_majority_keeps_the_class_most_unknown_frames_were_closest_to():

    s = Smoother(frames=5, threshold=0.6)
    s.update(Rec(None, UNKNOWN, 1.0, 7, "mug", 0.41, "unlike"))
    s.update(Rec(None, UNKNOWN, 0.52, 8, "cup", 0.80, "unsure"))
    s.update(Rec(7, "mug", 0.55, 7, "mug", 0.70))  # named, but below the smoothing threshold
    out = s.update(Rec(None, UNKNOWN, 1.0, 7, "mug", 0.45, "unlike"))
    assert (out.class_id, out.label, out.closest_id, out.closest, out.reason) == \
        (None, UNKNOWN, 7, "mug", "unlike")
    assert abs(out.score - (1.0 + 0.55 + 1.0) / 3) < 1e-6  # the mug votes' own numbers, not the cup's
    assert abs(out.similarity - (0.41 + 0.70 + 0.45) / 3) < 1e-6
    for _ in range(3):
        out = s.update(Rec(7, "mug", 0.9, 7, "mug", 0.8))
    assert (out.class_id, out.label, out.closest, out.reason) == (7, "mug", "mug", None)


def test_a_vote_below_the_threshold_is_unsure_of_its_own_class():
    from appliance.learning.recognizer import UNSURE
    from appliance.pipeline.smoothing import as_vote

    vote = as_vote(Rec(3, "cat", 0.4), 0.6)  # a recognition without the closest fields (e.g. an old one)
    assert (vote.class_id, vote.closest_id, vote.closest, vote.reason, vote.similarity) == \
        (None, 3, "cat", UNSURE, None)
    assert as_vote(None, 0.6) == Rec(None, UNKNOWN, 0.0)
