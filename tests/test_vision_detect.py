"""Detection with the real COCO SSD on real photos; output order and box geometry as pure functions."""

import numpy as np
import pytest

from appliance.errors import ModelError
from appliance.vision import preprocess
from appliance.vision.detect import BBox, Detector, Object, detection_output_order, objects_from_outputs
from appliance.vision.images import read_image
from appliance.vision.labels import read_labels
from appliance.vision.model import load_model

DETECTOR = "ssd_mobilenet_v1_coco_quant_2018_06_29_detect.tflite"


@pytest.fixture(scope="module")
def detector(models_dir):
    labels = read_labels(models_dir / "coco_labels.txt")
    return Detector(load_model(models_dir / DETECTOR, device="cpu"), labels)


def _inside(obj: Object, width: int, height: int) -> bool:
    b = obj.bbox
    return 0 <= b.xmin < b.xmax <= width and 0 <= b.ymin < b.ymax <= height


def test_finds_the_cat_with_a_box_in_image_pixels(detector, images_dir):
    rgb = read_image(images_dir / "cat.bmp")
    height, width = rgb.shape[:2]  # 512 x 341: not square, so the letterbox scale must be undone
    objects = detector.detect(rgb, threshold=0.4)
    cats = [o for o in objects if o.label == "cat"]
    assert len(cats) == 1 and cats[0].score > 0.5, objects
    cat = cats[0]
    assert _inside(cat, width, height)
    assert all(isinstance(v, int) for v in cat.bbox)
    # the cat fills most of the photo's height and the left two thirds of its width
    assert cat.bbox.height > 0.6 * height and 0.4 * width < cat.bbox.width < 0.9 * width
    assert cat.bbox.xmin < width / 3 and cat.bbox.xmax > width / 2
    assert detector.detect_timed(rgb, threshold=0.4)[1].invoke_ms > 0


def test_finds_people_and_kites(detector, images_dir):
    rgb = read_image(images_dir / "kite_and_cold.jpg")
    height, width = rgb.shape[:2]
    assert (width, height) == (1352, 900)
    objects = detector.detect(rgb, threshold=0.4)
    labels = [o.label for o in objects]
    assert labels.count("person") >= 2 and labels.count("kite") >= 2, labels
    assert all(_inside(o, width, height) for o in objects)
    # kites fly in the sky above the people on the beach
    kites = [o for o in objects if o.label == "kite"]
    people = [o for o in objects if o.label == "person"]
    assert min(k.bbox.ymin for k in kites) < min(p.bbox.ymin for p in people)
    assert max(p.bbox.ymax for p in people) > height / 2
    # a box far beyond the 300x300 input proves boxes are in photo pixels, not tensor pixels
    assert max(o.bbox.xmax for o in objects) > 600
    assert [o.score for o in objects] == sorted((o.score for o in objects), reverse=True)


def test_threshold_filters(detector, images_dir):
    rgb = read_image(images_dir / "kite_and_cold.jpg")
    assert all(o.score >= 0.6 for o in detector.detect(rgb, threshold=0.6))
    assert len(detector.detect(rgb, threshold=0.99)) == 0


def _details(shapes):
    return [{"name": f"out{i}", "index": 100 + i, "shape": np.array(s)} for i, s in enumerate(shapes)]


def test_output_order_tf1_from_the_real_model(detector):
    order = detector.order  # role -> position in output_details
    details = detector.model.output_details
    assert tuple(details[order["boxes"]]["shape"]) == (1, 10, 4)
    assert tuple(details[order["count"]]["shape"]) == (1,)
    assert details[order["boxes"]]["name"] == "TFLite_Detection_PostProcess"
    assert details[order["scores"]]["name"] == "TFLite_Detection_PostProcess:2"


def test_output_order_tf1_tf2_and_signature():
    tf1 = _details([(1, 25, 4), (1, 25), (1, 25), (1,)])
    assert detection_output_order(tf1) == {"boxes": 100, "classes": 101, "scores": 102, "count": 103}
    tf2 = _details([(1, 25), (1, 25, 4), (1,), (1, 25)])  # scores, boxes, count, classes
    assert detection_output_order(tf2) == {"scores": 100, "boxes": 101, "count": 102, "classes": 103}
    # signature order: output_0 count, output_1 scores, output_2 classes, output_3 boxes
    sig_details = _details([(1, 25, 4), (1, 25), (1,), (1, 25)])
    signature = {"output_0": 102, "output_1": 103, "output_2": 101, "output_3": 100}
    assert detection_output_order(sig_details, signature) == {
        "count": 102, "scores": 103, "classes": 101, "boxes": 100}
    with pytest.raises(ModelError, match="not in a known order"):
        detection_output_order(_details([(1, 25), (1, 25), (1, 25), (1, 25)]))
    with pytest.raises(ModelError, match="needs 4 outputs"):
        detection_output_order(_details([(1, 1001)]))


def test_objects_from_outputs_undo_the_letterbox():
    # a 600x300 photo letterboxed into 300x300: scale 0.5, the photo fills the top half of the tensor
    boxes = np.array([[[0.1, 0.2, 0.4, 0.6], [0.0, 0.0, 0.6, 1.2], [0.0, 0.0, 0.1, 0.1]]], np.float32)
    objects = objects_from_outputs(
        boxes, np.array([[16, 0, 3]]), np.array([[0.9, 0.8, 0.1]]), 3, threshold=0.5,
        input_size=(300, 300), image_scale=(0.5, 0.5), image_size=(600, 300), labels={16: "cat"})
    assert objects[0] == Object(16, pytest.approx(0.9), BBox(120, 60, 360, 240), "cat")
    assert objects[1].bbox == BBox(0, 0, 600, 300)  # clipped to the photo
    assert objects[1].label == "0" and len(objects) == 2


def test_letterbox_fills_the_tensor_and_returns_the_scale(detector):
    model = detector.model
    frame = np.full((480, 640, 3), 255, np.uint8)
    assert preprocess.set_input(model, frame, letterbox=True) == (300 / 640, 225 / 480)
    tensor = model.input_view()
    assert (tensor[:225] == 255).all() and (tensor[225:] == 0).all()


def test_bbox_helpers():
    a, b = BBox(0, 0, 10, 10), BBox(5, 5, 15, 15)
    assert BBox.iou(a, b) == pytest.approx(25 / 175)
    assert BBox.iou(a, BBox(20, 20, 30, 30)) == 0.0
    assert a.scale(2, 3) == BBox(0, 0, 20, 30)
    assert a.translate(1, 2) == BBox(1, 2, 11, 12)
    assert BBox.union(a, b) == BBox(0, 0, 15, 15) and BBox.intersect(a, b) == BBox(5, 5, 10, 10)
    assert (a.width, a.height, a.area, a.valid) == (10, 10, 100, True)
    assert BBox(0.4, 1.6, 2.5, 3.5).map(round) == BBox(0, 2, 2, 4)
