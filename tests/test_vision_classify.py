"""Classification with the real ImageNet models on real photos, and the preprocessing behind it."""

import numpy as np
import pytest

from appliance.errors import ImageError
from appliance.vision import preprocess
from appliance.vision.classify import Class, Classifier, dequantize, get_classes
from appliance.vision.images import read_image
from appliance.vision.labels import read_labels
from appliance.vision.model import Timings, load_model

CLASSIFIERS = ["mobilenet_v2_1.0_224_quant.tflite", "tf2_mobilenet_v2_1.0_224_ptq.tflite",
               "mobilenet_v1_0.25_128_quant.tflite"]
CATS = {"tabby, tabby cat", "tiger cat", "Egyptian cat"}


@pytest.fixture(scope="module")
def imagenet(models_dir):
    return read_labels(models_dir / "imagenet_labels.txt")


@pytest.fixture(scope="module", params=CLASSIFIERS)
def classifier(request, models_dir, imagenet):
    return Classifier(load_model(models_dir / request.param, device="cpu"), imagenet)


@pytest.mark.parametrize(("image", "expected"), [
    ("cat.bmp", CATS),
    ("parrot.jpg", {"macaw"}),
    ("bird.bmp", {"chickadee"}),
])
def test_imagenet_classifiers_name_the_photos(classifier, images_dir, image, expected):
    classes = classifier.classify(read_image(images_dir / image), top_k=3)
    assert classes[0].label in expected, classes
    assert classes[0].score > 0.2
    assert [c.score for c in classes] == sorted((c.score for c in classes), reverse=True)
    assert all(isinstance(c, Class) and 0.0 <= c.score <= 1.0 for c in classes)
    timings = classifier.classify_timed(read_image(images_dir / image), top_k=3)[1]
    assert isinstance(timings, Timings) and timings.invoke_ms > 0 and timings.preprocess_ms > 0


def test_cat_classes_dominate_the_cat_photo(classifier, images_dir):
    classes = classifier.classify(read_image(images_dir / "cat.bmp"), top_k=3)
    assert sum(c.score for c in classes if c.label in CATS) > 0.4


def test_rgb_order_matters(classifier, images_dir):
    """Feeding BGR (OpenCV's order) instead of RGB costs the right label much of its score."""
    drop = 0.0
    for name in ("sunflower.bmp", "cat.bmp", "bird.bmp"):  # yellow petals turn blue when swapped
        rgb = read_image(images_dir / name)
        right = classifier.classify(rgb, top_k=1)[0]
        bgr = rgb[..., ::-1]  # a view: the engine must cope with its negative stride
        swapped = {c.id: c.score for c in classifier.classify(bgr, top_k=1001)}
        drop += right.score - swapped[right.id]
    assert drop > 0.25


def test_threshold_and_top_k(classifier, images_dir):
    rgb = read_image(images_dir / "parrot.jpg")
    assert len(classifier.classify(rgb, top_k=5)) == 5
    confident = classifier.classify(rgb, top_k=5, threshold=0.5)
    assert [c.label for c in confident] == ["macaw"]


def test_get_classes_is_a_pure_top_k():
    scores = np.array([0.1, 0.7, 0.0, 0.2], np.float32)
    assert get_classes(scores, top_k=2, labels={1: "b", 3: "d"}) == [
        Class(1, pytest.approx(0.7), "b"), Class(3, pytest.approx(0.2), "d")]
    assert [c.id for c in get_classes(scores, top_k=10, threshold=0.15)] == [1, 3]
    assert get_classes(scores, top_k=0) == []
    assert get_classes(scores, top_k=1)[0].label == "1"  # no labels: the id


def test_dequantize_uses_scale_and_zero_point():
    raw = np.array([0, 128, 255], np.uint8)
    assert dequantize(raw, {"quantization": (0.5, 128)}).tolist() == [-64.0, 0.0, 63.5]
    assert dequantize(np.array([0.25], np.float32), {"quantization": (0.0, 0)}).tolist() == [0.25]


def test_pixel_map_from_the_real_input_quantisation(models_dir):
    v2 = load_model(models_dir / CLASSIFIERS[0], device="cpu")   # scale 1/128, zero point 128
    tf2 = load_model(models_dir / CLASSIFIERS[1], device="cpu")  # scale 1/127.5, zero point 127
    assert v2.input_detail["quantization"][1] == 128 and tf2.input_detail["quantization"][1] == 127
    assert preprocess.pixel_map(v2.input_detail).copy
    assert preprocess.pixel_map(tf2.input_detail).copy


def test_pixel_map_general_cases():
    # int8 input with the usual [-1, 1] range: pixel 0 -> -128, 255 -> 127
    int8 = preprocess.pixel_map({"dtype": np.int8, "quantization": (1 / 127.5, 0)})
    assert not int8.copy
    values = preprocess._convert(np.array([[[0, 128, 255]]], np.uint8), int8)
    assert values.dtype == np.int8 and values.ravel().tolist() == [-128, 0, 127]
    # float input: (pixel - 127.5) / 127.5
    floats = preprocess.pixel_map({"dtype": np.float32, "quantization": (0.0, 0)})
    out = preprocess._convert(np.array([[[0, 255, 51]]], np.uint8), floats)
    assert out.dtype == np.float32 and np.allclose(out.ravel(), [-1.0, 1.0, -0.6])
    # a uint8 model expecting [0, 1] inputs needs the pixels rescaled, not copied
    unit = preprocess.pixel_map({"dtype": np.uint8, "quantization": (1 / 255, 0)}, mean=0.0, std=255.0)
    assert unit.copy
    half = preprocess.pixel_map({"dtype": np.uint8, "quantization": (1 / 510, 0)}, mean=0.0, std=255.0)
    assert not half.copy
    assert preprocess._convert(np.array([[[100]]], np.uint8), half).ravel().tolist() == [200]


def test_shrink_matches_area_averaging(images_dir):
    import cv2

    photo = read_image(images_dir / "kite_and_cold.jpg")  # 1352 x 900
    small, used = preprocess.shrink(photo, (224, 224))
    assert small.shape == (224, 224, 3) and used == (1350, 900)  # whole factors 6 and 4
    exact = cv2.resize(photo, (224, 224), interpolation=cv2.INTER_AREA)
    assert np.abs(small.astype(float) - exact).mean() < 2.0
    big, used = preprocess.shrink(photo[:100, :100], (224, 224))  # upscaling: nothing dropped
    assert big.shape == (224, 224, 3) and used == (100, 100)


def test_set_input_writes_rgb_into_the_tensor(models_dir):
    model = load_model(models_dir / CLASSIFIERS[2], device="cpu")  # 128x128
    frame = np.zeros((256, 512, 3), np.uint8)
    frame[..., 0] = 200  # pure red
    assert preprocess.set_input(model, frame) == (0.25, 0.5)
    tensor = model.input_view()
    assert tensor.shape == (128, 128, 3)
    assert (tensor[..., 0] == 200).all() and (tensor[..., 1:] == 0).all()


def test_grayscale_frames_are_accepted_and_bad_frames_refused(classifier):
    gray = np.full((100, 120), 90, np.uint8)
    assert len(classifier.classify(gray, top_k=1)) == 1
    with pytest.raises(ImageError):
        classifier.classify(np.zeros((10, 10, 4), np.uint8))
    with pytest.raises(ImageError):
        classifier.classify(np.zeros((10, 10, 3), np.float32))
