"""The Teacher takes its burst's embeddings from the live pipeline (pipeline.tap) instead of invoking the
model beside it: against a real pipeline, real photos and the real embedder, every embedder call during a
classify-mode burst comes from the pipeline's inference thread, and what is taught is exactly what the
pipeline made of those frames."""

import threading

import numpy as np
import pytest
from pipeline_helpers import PhotoSource, wait_until

from appliance.classes import Classes
from appliance.errors import ModelError, SourceError
from appliance.learning.recognizer import Recognizer
from appliance.learning.store import ClassStore
from appliance.pipeline.infer import Engines, Inference, InferSettings
from appliance.pipeline.worker import Pipeline
from appliance.teacher import Teacher
from appliance.vision.classify import Classifier
from appliance.vision.embed import Embedder
from appliance.vision.labels import read_labels
from appliance.vision.model import load_model

EMBEDDER = "mobilenet_v1_1.0_224_quant_embedding_extractor.tflite"


@pytest.fixture
def embedder(models_dir):
    return Embedder(load_model(models_dir / EMBEDDER, device="cpu"))


def _photos(images_dir) -> PhotoSource:
    imp = images_dir / "imprinting"
    return PhotoSource([imp / "cat_train_0.bmp", imp / "cat_test_0.bmp"], fps=30)


def test_a_burst_takes_the_pipelines_embeddings_and_never_embeds_itself(tmp_path, embedder, images_dir,
                                                                        monkeypatch):
    store = ClassStore(tmp_path / "classes.sqlite", EMBEDDER)
    inference = Inference(Engines(embedder=embedder, recognizer=Recognizer(store), store=store),
                          InferSettings())
    pipe = Pipeline(_photos(images_dir), inference)
    classes = Classes(store, pipe.events, Teacher(pipe, frames_per_burst=6, seconds=0.5))
    callers: list[str] = []
    real_start = embedder.start

    def counting_start(rgb):
        callers.append(threading.current_thread().name)
        return real_start(rgb)

    monkeypatch.setattr(embedder, "start", counting_start)
    taken = []
    real_wait = pipe.embeddings.wait

    def noting_wait(after_seq, timeout):
        item = real_wait(after_seq, timeout)
        taken.append(item)
        return item

    monkeypatch.setattr(pipe.embeddings, "wait", noting_wait)
    pipe.start()
    try:
        assert wait_until(lambda: pipe.stats.inferences > 5)
        assert callers == [], "nothing taught and no burst: the pipeline does not embed"
        before = pipe.capture_seq
        info = classes.teach("cat")
        assert info.samples == 6 and info.kept == 6
        assert callers and set(callers) == {"pipeline-inference"}, "the burst never invoked the model itself"
        seqs = [item.seq for item in taken]
        assert seqs == sorted(set(seqs)) and seqs[0] > before, "distinct frames newer than the burst"
        X, _ = store.training_data()
        assert np.array_equal(X, np.stack([item.embedding for item in taken]))
        assert pipe.embeddings.wanted is False
        n = len(callers)
        assert wait_until(lambda: len(callers) > n + 5), "taught now: every frame is embedded to recognise"
        monkeypatch.setattr(embedder, "start", real_start)
        for item in taken:  # what the pipeline handed over is the embedding of that very frame
            assert item.rgb.shape == (480, 640, 3)
            np.testing.assert_allclose(embedder.embed(item.rgb), item.embedding, atol=1e-6)
    finally:
        pipe.stop()
        store.close()


def test_frames_that_are_not_embedded_fail_the_burst_with_the_reason(tmp_path, models_dir, images_dir):
    """A classifier-only pipeline embeds nothing: the camera works, so the error says the model made
    no embedding, not that the camera is gone; with the camera gone it says that."""
    classifier = Classifier(load_model(models_dir / "mobilenet_v1_0.25_128_quant.tflite", device="cpu"),
                            read_labels(models_dir / "imagenet_labels.txt"))
    source = _photos(images_dir)
    pipe = Pipeline(source, Inference(Engines(classifier=classifier), InferSettings()))
    teacher = Teacher(pipe, frames_per_burst=2, seconds=0.1)
    pipe.start()
    try:
        assert wait_until(lambda: pipe.latest_frame() is not None)
        with teacher.recording(None), pytest.raises(ModelError, match="embedded none of them") as err:
            teacher.record()
        assert not isinstance(err.value, SourceError) and "appliance doctor" in err.value.fix
        source.empty = True
        with teacher.recording(None), pytest.raises(SourceError, match="no camera frames arrived"):
            teacher.record()
    finally:
        pipe.stop()
