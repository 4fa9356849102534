"""Annotation draws on a copy; JPEG encoding round-trips in RGB."""

import cv2
import numpy as np

from appliance.pipeline.annotate import annotate, encode_jpeg, object_caption
from appliance.pipeline.result import Result
from appliance.pipeline.smoothing import Vote
from appliance.vision.classify import Class
from appliance.vision.detect import BBox, Object


def test_classify_annotation_draws_banner_on_a_copy():
    frame = np.full((240, 320, 3), 90, np.uint8)
    result = Result(1, "classify", Vote(3, "our cat", 0.91), [Class(282, 0.6, "tiger cat")])
    out = annotate(frame, result)
    assert (frame == 90).all()  # input untouched
    changed = np.argwhere((out != frame).any(axis=2))
    assert changed.size and changed[:, 0].max() < 80 and changed[:, 1].min() < 20  # top-left banner only


def test_detect_annotation_draws_boxes_where_objects_are():
    frame = np.full((240, 320, 3), 90, np.uint8)
    obj = Object(0, 0.8, BBox(100, 100, 200, 200), "person")
    out = annotate(frame, Result(1, "detect", None, objects=[obj], matches=[None]))
    assert (out[150, 100] != 90).any() and (out[150, 150] == 90).all()  # edge drawn, inside untouched
    assert object_caption(obj, Vote(2, "our Bob", 0.7)) == ("our Bob 70%", True)
    assert object_caption(obj, Vote(None, "unknown", 0.2)) == ("person 80%", False)


def test_encode_jpeg_keeps_rgb_order():
    frame = np.zeros((64, 64, 3), np.uint8)
    frame[..., 0] = 250  # pure red in RGB
    bgr = cv2.imdecode(np.frombuffer(encode_jpeg(frame), np.uint8), cv2.IMREAD_COLOR)
    assert bgr[32, 32, 2] > 200 and bgr[32, 32, 0] < 50
