"""Inference on one frame: classify with taught classes and base labels; detect with matched crops."""

import cv2
import numpy as np
import pytest

from appliance.learning.recognizer import Recognizer
from appliance.learning.store import ClassStore
from appliance.pipeline.infer import Engines, Inference, InferSettings, crop, main_object
from appliance.vision.classify import Classifier
from appliance.vision.detect import BBox, Detector
from appliance.vision.embed import Embedder
from appliance.vision.images import read_image
from appliance.vision.labels import read_labels
from appliance.vision.model import load_model

EMBEDDER = "mobilenet_v1_1.0_224_quant_embedding_extractor.tflite"


@pytest.fixture(scope="module")
def engines(models_dir):
    embedder = Embedder(load_model(models_dir / EMBEDDER, device="cpu"))
    classifier = Classifier(load_model(models_dir / "mobilenet_v1_0.25_128_quant.tflite", device="cpu"),
                            read_labels(models_dir / "imagenet_labels.txt"))
    detector = Detector(load_model(models_dir / "ssd_mobilenet_v1_coco_quant_2018_06_29_detect.tflite",
                                   device="cpu"), read_labels(models_dir / "coco_labels.txt"))
    return embedder, classifier, detector


def test_classify_with_taught_classes_and_base_labels(tmp_path, engines, images_dir):
    embedder, classifier, _ = engines
    imp = images_dir / "imprinting"
    cat, dog = read_image(imp / "cat_train_0.bmp"), read_image(imp / "dog_train_0.bmp")
    store = ClassStore(tmp_path / "c.sqlite", EMBEDDER)
    eng = Engines(embedder=embedder, recognizer=Recognizer(store), classifier=classifier, store=store)
    inference = Inference(eng, InferSettings(show_base_labels=True, smoothing_frames=3))
    first = inference.run(1, cat)
    assert first.recognition is None and first.classes  # nothing taught yet: base labels only
    store.teach("our cat", np.stack([embedder.embed(cat)] * 2))
    store.teach("our dog", np.stack([embedder.embed(dog)] * 2))
    result = inference.run(2, read_image(imp / "cat_test_0.bmp"))
    assert result.recognition.label == "our cat" and result.raw_recognition.label == "our cat"
    assert {"preprocess", "invoke", "recognize"} <= set(result.timings)
    assert result.to_dict()["recognition"]["label"] == "our cat"
    store.close()


def test_detect_matches_crops_to_taught_classes(tmp_path, engines, images_dir):
    embedder, _, detector = engines
    frame = read_image(images_dir / "kite_and_cold.jpg")
    store = ClassStore(tmp_path / "c.sqlite", EMBEDDER)
    eng = Engines(embedder=embedder, recognizer=Recognizer(store, unknown_threshold=0.5),
                  detector=detector, store=store)
    inference = Inference(eng, InferSettings(mode="detect", detect_threshold=0.5))
    plain = inference.run(1, frame)
    assert plain.matches == [None] * len(plain.objects) and plain.objects
    taught = main_object(frame, detector.detect(frame, threshold=0.5))[1]
    assert taught.shape[0] < frame.shape[0]  # the best box, not the whole frame
    store.teach("Bob", embedder.embed(taught)[None, :])
    result = inference.run(2, frame)
    assert result.matches[0] is not None and result.matches[0].label == "Bob"
    assert result.to_dict()["objects"][0]["match"]["label"] == "Bob"
    store.close()


def test_a_burst_gets_each_frames_embedding_of_what_it_teaches(tmp_path, engines, images_dir):
    """embed=True (a teaching burst wants the frame): classify embeds the whole frame even with nothing
    taught; detect the main object's crop, before and after a class is taught (then reusing the match)."""
    embedder, _, detector = engines
    frame = read_image(images_dir / "kite_and_cold.jpg")
    store = ClassStore(tmp_path / "c.sqlite", EMBEDDER)
    eng = Engines(embedder=embedder, recognizer=Recognizer(store, unknown_threshold=0.5), store=store)
    classify = Inference(eng, InferSettings())
    assert classify.run(1, frame).embedded is None
    whole = classify.run(2, frame, embed=True)
    assert whole.recognition is None and whole.embedded.seq == 2 and whole.embedded.rgb is frame
    np.testing.assert_allclose(whole.embedded.embedding, embedder.embed(frame), atol=1e-6)
    detect = Inference(Engines(embedder=embedder, recognizer=eng.recognizer, detector=detector, store=store),
                       InferSettings(mode="detect", detect_threshold=0.5))
    main = main_object(frame, detector.detect(frame, threshold=0.5))[1]
    for seq in (3, 4):
        result = detect.run(seq, frame, embed=True)
        assert result.embedded.rgb.shape == main.shape and result.embedded.rgb.shape[0] < frame.shape[0]
        np.testing.assert_allclose(result.embedded.embedding, embedder.embed(main), atol=1e-6)
        store.teach("Bob", result.embedded.embedding[None, :])  # the second frame is matched as well
    assert result.matches[0] is not None and result.matches[0].label == "Bob"
    assert detect.run(5, frame).embedded is None
    store.close()


def test_crop_skips_tiny_boxes():
    frame = np.zeros((100, 100, 3), np.uint8)
    assert crop(frame, BBox(0, 0, 10, 50)) is None
    assert crop(frame, BBox(-5, 10, 60, 90)).shape == (80, 60, 3)


def test_prepared_frames_give_the_same_results(tmp_path, engines, images_dir):
    """Shrinking in the capture thread must not change what the models see."""
    embedder, classifier, detector = engines
    frame = cv2.resize(read_image(images_dir / "kite_and_cold.jpg"), (640, 480))
    det = Inference(Engines(detector=detector), InferSettings(mode="detect", detect_threshold=0.4))
    direct = det.run(1, frame)
    prepared = det.run(2, frame, det.prepare(frame))
    assert [o.label for o in direct.objects] == [o.label for o in prepared.objects]
    for a, b in zip(direct.objects, prepared.objects, strict=True):
        assert abs(a.score - b.score) < 1e-6
        assert max(abs(p - q) for p, q in zip(a.bbox, b.bbox, strict=True)) <= 2
    cls = Inference(Engines(classifier=classifier), InferSettings())
    assert cls.run(1, frame).classes == cls.run(2, frame, cls.prepare(frame)).classes
