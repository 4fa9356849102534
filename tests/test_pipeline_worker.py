"""The threaded pipeline on real models and photos: detection, faults, slow inference."""

import time

import cv2
import numpy as np
import pytest
from pipeline_helpers import PhotoSource, rss_mb, wait_until

from appliance.camera import ReconnectingSource
from appliance.errors import DeviceError
from appliance.pipeline.infer import Engines, Inference, InferSettings
from appliance.pipeline.worker import Pipeline, PipelineSettings
from appliance.vision.classify import Classifier
from appliance.vision.detect import Detector
from appliance.vision.labels import read_labels
from appliance.vision.model import load_model

SIZE = (640, 480)


@pytest.fixture(scope="module")
def detector(models_dir):
    model = load_model(models_dir / "ssd_mobilenet_v1_coco_quant_2018_06_29_detect.tflite", device="cpu")
    return Detector(model, read_labels(models_dir / "coco_labels.txt"))


@pytest.fixture(scope="module")
def tiny_classifier(models_dir):
    model = load_model(models_dir / "mobilenet_v1_0.25_128_quant.tflite", device="cpu")
    return Classifier(model, read_labels(models_dir / "imagenet_labels.txt"))


class SlowClassifier(Classifier):
    """The real classifier, deliberately slower than the camera (as a big model on a Pi CPU would be)."""

    delay = 0.3

    def finish(self, pending, top_k=5, threshold=0.0):
        time.sleep(self.delay)
        return super().finish(pending, top_k, threshold)


def decode(jpeg: bytes) -> np.ndarray:
    return cv2.cvtColor(cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def dark_frame_shown(hub, timeout: float = 3.0) -> bool:
    """True once the hub publishes a "no signal" picture (frames already in flight may come first)."""
    deadline = time.monotonic() + timeout
    seq = hub.latest()[0]
    while time.monotonic() < deadline:
        seq, jpeg = hub.wait_next(seq, timeout=0.5)
        if jpeg is not None and decode(jpeg).mean() < 60:
            return True
    return False


def classify_pipeline(source, classifier, **kw) -> Pipeline:
    return Pipeline(source, Inference(Engines(classifier=classifier), InferSettings(mode="classify")),
                    PipelineSettings(**kw))


def test_detect_mode_on_kite_photo_reaches_results_and_annotated_frame(detector, images_dir):
    source = PhotoSource([images_dir / "kite_and_cold.jpg"], fps=30, size=SIZE)
    pipe = Pipeline(source, Inference(Engines(detector=detector), InferSettings(mode="detect")))
    sub = pipe.events.subscribe()
    pipe.start()
    try:
        assert wait_until(lambda: pipe.latest_result() is not None and pipe.hub.latest()[0] > 2, 20)
    finally:
        pipe.stop()
    result = pipe.latest_result()
    labels = {o.label for o in result.objects}
    assert {"person", "kite"} <= labels
    event = sub.get(timeout=1)
    assert event[0] == "recognition" and {"person", "kite"} <= {o["label"] for o in event[1]["objects"]}
    shown = decode(pipe.hub.latest()[1]).astype(int)
    raw = source.frames[0].astype(int)
    diff = np.abs(shown - raw).sum(axis=2)
    box = result.objects[0].bbox
    edge = diff[int(box.ymin) + 5:int(box.ymax) - 5, int(box.xmin)]  # the box's left edge
    assert edge.mean() > 60, "the box is drawn on the shown frame"
    far = np.ones(diff.shape, bool)
    for o in result.objects:  # away from every box and its caption, only JPEG noise
        b = o.bbox
        far[max(0, int(b.ymin) - 30):int(b.ymax) + 3, max(0, int(b.xmin) - 3):int(b.xmax) + 3] = False
    assert far.any() and diff[far].mean() < 25


def test_source_that_raises_keeps_serving_no_signal_and_recovers(tiny_classifier, images_dir):
    source = PhotoSource([images_dir / "cat.bmp"], fps=30)
    pipe = classify_pipeline(source, tiny_classifier)
    pipe.start()
    try:
        assert wait_until(lambda: pipe.stats.snapshot()["inferences"] > 2)
        source.raise_error = True
        assert wait_until(lambda: pipe.read_errors >= 2)
        seq = pipe.hub.latest()[0]
        assert pipe.hub.wait_next(seq, timeout=3)[0] > seq  # still serving: "no signal" frames
        assert pipe.stats.snapshot()["connected"] is False
        assert pipe.stats.healthy(10)  # the loop is alive; the camera is not
        inferences = pipe.stats.snapshot()["inferences"]
        source.raise_error = False
        assert wait_until(lambda: pipe.stats.snapshot()["inferences"] > inferences + 2)
        assert pipe.stats.snapshot()["connected"] is True
    finally:
        pipe.stop()


def test_source_returning_nothing_or_stalling_shows_no_signal_and_goes_unhealthy(tiny_classifier, images_dir):
    source = PhotoSource([images_dir / "cat.bmp"], fps=30)
    pipe = classify_pipeline(source, tiny_classifier, no_signal_after_s=0.5)
    pipe.start()
    try:
        assert wait_until(lambda: pipe.stats.snapshot()["inferences"] > 2)
        source.empty = True
        assert dark_frame_shown(pipe.hub)  # the dark "no signal" picture
        source.empty = False
        assert wait_until(lambda: pipe.stats.snapshot()["last_frame_age_s"] < 0.2)
        source.stall.set()  # read() hangs inside the "driver"
        time.sleep(1.2)
        seq = pipe.hub.latest()[0]
        assert pipe.hub.wait_next(seq, timeout=3)[0] > seq  # viewers still get frames
        assert not pipe.stats.healthy(1.0)  # the watchdog would stop: capture is stuck
        source.stall.clear()
        assert wait_until(lambda: pipe.stats.healthy(1.0))
    finally:
        source.stall.clear()
        pipe.stop()
    assert not pipe.running


def test_slow_model_keeps_latency_and_memory_bounded(models_dir, images_dir):
    model = load_model(models_dir / "mobilenet_v1_0.25_128_quant.tflite", device="cpu")
    slow = SlowClassifier(model, read_labels(models_dir / "imagenet_labels.txt"))
    source = PhotoSource([images_dir / "cat.bmp", images_dir / "bird.bmp"], fps=30, size=SIZE)
    pipe = classify_pipeline(source, slow)
    before = rss_mb()
    pipe.start()
    try:
        time.sleep(3.0)
        snap = pipe.stats.snapshot()
        lag = pipe.capture_seq - pipe.latest_result().frame_seq
        grown = rss_mb() - before
    finally:
        pipe.stop()
    assert snap["frames_captured"] > 50 and 3 <= snap["inferences"] <= 12
    assert snap["dropped_frames"] >= snap["frames_captured"] - snap["inferences"] - 2
    # at most the frame being inferred plus one invoke's worth of frames (a queue would be ~70 behind)
    assert lag <= 2 * slow.delay * 30 + 8, f"result is {lag} frames behind the camera"
    assert grown < 40, f"RSS grew {grown:.0f} MB: frames are being queued"  # 90 queued frames = 80 MB


def test_stop_is_quick_and_threads_end(tiny_classifier, images_dir):
    pipe = classify_pipeline(PhotoSource([images_dir / "cat.bmp"], fps=30), tiny_classifier)
    pipe.start()
    assert wait_until(lambda: pipe.latest_result() is not None)
    t0 = time.monotonic()
    pipe.stop()
    assert time.monotonic() - t0 < 2.0 and not pipe.running
    inferences = pipe.stats.snapshot()["inferences"]
    pipe.start()  # a stopped pipeline can start again
    assert wait_until(lambda: pipe.stats.snapshot()["inferences"] > inferences + 2)
    pipe.stop()
    assert pipe.latest_result().classes  # classify mode without an embedder shows base labels


def test_reconnecting_source_faults_are_reconnected_and_counted(tiny_classifier, images_dir):
    inner = PhotoSource([images_dir / "cat.bmp"], fps=30)
    source = ReconnectingSource(inner, stall_seconds=0.5, backoff_initial=0.1, backoff_max=0.2)
    pipe = classify_pipeline(source, tiny_classifier)
    source.open()
    pipe.start()
    try:
        assert wait_until(lambda: pipe.stats.snapshot()["inferences"] > 2)
        for fault in ("raise_error", "empty"):  # the camera vanishes; then it delivers nothing
            reconnects = pipe.stats.snapshot()["reconnects"]
            setattr(inner, fault, True)
            assert wait_until(lambda: pipe.stats.snapshot()["connected"] is False, 5)
            assert dark_frame_shown(pipe.hub)  # NO SIGNAL keeps the stream going
            assert pipe.stats.healthy(2.0)
            setattr(inner, fault, False)
            assert wait_until(lambda r=reconnects: pipe.stats.snapshot()["reconnects"] == r + 1, 5)
            inferences = pipe.stats.snapshot()["inferences"]
            assert wait_until(lambda n=inferences: pipe.stats.snapshot()["inferences"] > n + 2, 5)
            assert pipe.stats.snapshot()["connected"] is True
        assert source.failures >= 2
    finally:
        pipe.stop()
        source.close()


def test_display_rate_caps_encoding_not_inference(tiny_classifier, images_dir):
    source = PhotoSource([images_dir / "cat.bmp"], fps=0)  # as fast as asked
    pipe = classify_pipeline(source, tiny_classifier, max_publish_fps=10)
    pipe.start()
    try:
        time.sleep(0.5)
        seq0, n0 = pipe.hub.latest()[0], pipe.stats.snapshot()["inferences"]
        time.sleep(2.0)
        published, inferred = pipe.hub.latest()[0] - seq0, pipe.stats.snapshot()["inferences"] - n0
    finally:
        pipe.stop()
    assert 12 <= published <= 24, published  # about 10 a second
    assert inferred > 3 * published and pipe.encode_skipped > 0


class FlakyClassifier(Classifier):
    """The real classifier; while `failing` is set its invoke fails as an unplugged Edge TPU's does."""

    failing = False

    def start(self, rgb):
        if self.failing:
            raise DeviceError("inference failed on the edgetpu: USB transfer error", "check the cable")
        return super().start(rgb)


def test_failing_inference_keeps_the_stream_live_and_turns_unhealthy(models_dir, images_dir):
    model = load_model(models_dir / "mobilenet_v1_0.25_128_quant.tflite", device="cpu")
    flaky = FlakyClassifier(model, read_labels(models_dir / "imagenet_labels.txt"))
    pipe = classify_pipeline(PhotoSource([images_dir / "cat.bmp"], fps=30), flaky)
    pipe.start()
    try:
        assert wait_until(lambda: pipe.stats.snapshot()["inferences"] > 2)
        flaky.failing = True
        assert wait_until(lambda: pipe.inference_errors >= 2, 5)
        seq = pipe.hub.latest()[0]
        nxt, jpeg = pipe.hub.wait_next(seq, timeout=2)
        assert nxt > seq and decode(jpeg).mean() > 60  # the live picture, not "no signal"
        assert wait_until(lambda: not pipe.stats.healthy(1.0), 5)  # inferences stopped advancing
        assert pipe.stats.snapshot()["inference_running_s"] is None  # failed, not hung
        flaky.failing = False
        assert wait_until(lambda: pipe.stats.healthy(1.0), 5)
    finally:
        pipe.stop()
