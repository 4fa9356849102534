"""Annotation draws on a copy; JPEG encoding round-trips in RGB."""

import cv2
import numpy as np

from appliance.learning.recognizer import Recognition
from appliance.pipeline.annotate import annotate, encode_jpeg, object_caption
from appliance.pipeline.result import Result
from appliance.vision.classify import Class
from appliance.vision.detect import BBox, Object


def test_classify_annotation_draws_banner_on_a_copy():
    frame = np.full((240, 320, 3), 90, np.uint8)
    result = Result(1, "classify", Recognition(3, "our cat", 0.91), [Class(282, 0.6, "tiger cat")])
    out = annotate(frame, result)
    assert (frame == 90).all()  # input untouched
    changed = np.argwhere((out != frame).any(axis=2))
    assert changed.size and changed[:, 0].max() < 80 and changed[:, 1].min() < 20  # top-left banner only


def test_detect_annotation_draws_boxes_where_objects_are():
    frame = np.full((240, 320, 3), 90, np.uint8)
    obj = Object(0, 0.8, BBox(100, 100, 200, 200), "person")
    out = annotate(frame, Result(1, "detect", None, objects=[obj], matches=[None]))
    assert (out[150, 100] != 90).any() and (out[150, 150] == 90).all()  # edge drawn, inside untouched
    assert object_caption(obj, Recognition(2, "our Bob", 0.7)) == ("our Bob 70%", True)
    assert object_caption(obj, Recognition(None, "unknown", 0.2)) == ("person 80%", False)


def test_encode_jpeg_keeps_rgb_order():
    frame = np.zeros((64, 64, 3), np.uint8)
    frame[..., 0] = 250  # pure red in RGB
    bgr = cv2.imdecode(np.frombuffer(encode_jpeg(frame), np.uint8), cv2.IMREAD_COLOR)
    assert bgr[32, 32, 2] > 200 and bgr[32, 32, 0] < 50


def test_unknown_says_what_it_was_closest_to_and_how_close():
    from appliance.pipeline.annotate import recognition_caption

    assert recognition_caption(Recognition(3, "mug", 0.92, 3, "mug", 0.8)) == "mug 92%"
    assert recognition_caption(Recognition(None, "unknown", 0.31, 3, "mug", 0.8, "unsure")) == \
        "unknown - closest: mug, 31%"
    # like nothing taught: its probability (100 % with one class) would mislead; its similarity is shown
    assert recognition_caption(Recognition(None, "unknown", 1.0, 3, "mug", 0.41, "unlike")) == \
        "unknown - closest: mug, 41% alike"
    assert recognition_caption(Recognition(None, "unknown", 0.0)) == "unknown"  # nothing taught


def test_the_closest_caption_is_drawn_on_the_stream():
    frame = np.full((240, 480, 3), 90, np.uint8)

    def banner_width(rec) -> int:
        changed = np.argwhere((annotate(frame, Result(1, "classify", rec)) != frame).any(axis=2))
        return int(changed[:, 1].max())

    plain = banner_width(Recognition(None, "unknown", 0.0))
    closest = banner_width(Recognition(None, "unknown", 0.31, 3, "mug", 0.8, "unsure"))
    assert closest > plain + 100  # "unknown - closest: mug, 31%" is drawn, not "unknown" alone


def test_the_result_json_carries_the_closest_class():
    rec = Recognition(None, "unknown", 0.31234, 3, "mug", 0.81234, "unsure")
    unknown = Result(4, "classify", rec).to_dict()
    assert unknown["recognition"] == {"class_id": None, "label": "unknown", "score": 0.3123, "closest_id": 3,
                                      "closest": "mug", "similarity": 0.8123, "reason": "unsure"}
    known = Result(5, "classify", Recognition(3, "mug", 0.9, 3, "mug", 0.8)).to_dict()["recognition"]
    assert (known["closest_id"], known["closest"], known["reason"]) == (3, "mug", None)
