"""The inference worker process on its own: the same answers as in this process, replies matched to
their requests under concurrent callers, a crash mid-request is a 503-style error and a restart, and
the probe's verdict on real outputs."""

from __future__ import annotations

import os
import signal
import threading
import time

import numpy as np
import pytest
from pipeline_helpers import wait_until

from appliance.inference.client import WorkerClient, WorkerError, exit_reason
from appliance.inference.probe import agreement
from appliance.inference.protocol import ModelSpec
from appliance.inference.supervisor import InferenceWorker, RemoteModel
from appliance.vision.classify import Classifier
from appliance.vision.images import read_image
from appliance.vision.model import load_model

TINY = "mobilenet_v1_0.25_128_quant.tflite"


@pytest.fixture(scope="module")
def worker(models_dir):
    worker = InferenceWorker([ModelSpec("classifier", str(models_dir / TINY), "cpu", "", 1)], "cpu")
    worker.start()
    yield worker
    worker.close()


@pytest.fixture(scope="module")
def local(models_dir):
    return Classifier(load_model(models_dir / TINY, device="cpu", num_threads=1))


def test_the_worker_gives_the_same_scores_as_this_process(worker, local, images_dir):
    remote = Classifier(RemoteModel(worker, "classifier"))
    for photo in ("parrot.jpg", "cat.bmp", "bird.bmp"):
        rgb = read_image(images_dir / photo)
        assert remote.classify(rgb, top_k=5) == local.classify(rgb, top_k=5)
    classes, timings = remote.classify_timed(read_image(images_dir / "owl.jpg"))
    assert timings.invoke_ms > 0 and timings.preprocess_ms > 0


def test_concurrent_callers_get_their_own_answers(worker, local, images_dir):
    remote = Classifier(RemoteModel(worker, "classifier"))
    photos = [read_image(images_dir / p) for p in ("parrot.jpg", "cat.bmp", "bird.bmp", "owl.jpg")]
    expected = [local.classify(p, top_k=3) for p in photos]
    wrong, errors = [], []

    def caller(i: int) -> None:
        try:
            for _ in range(15):
                if remote.classify(photos[i], top_k=3) != expected[i]:
                    wrong.append(i)
        except Exception as exc:  # pragma: no cover - shown by the assert below
            errors.append(exc)

    threads = [threading.Thread(target=caller, args=(i,)) for i in range(len(photos))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors and not wrong


def test_pipelined_submits_each_read_their_own_slot(worker, local, images_dir):
    model = RemoteModel(worker, "classifier")
    photos = [read_image(images_dir / p) for p in ("parrot.jpg", "cat.bmp")]
    first, second = model.submit(photos[0]), model.submit(photos[1])  # two in flight, as the pipeline does
    scores = [second.wait().outputs[0], first.wait().outputs[0]]
    local_scores = [local.model.submit(p).wait().outputs[0] for p in reversed(photos)]
    assert all(np.array_equal(a, b) for a, b in zip(scores, local_scores, strict=True))


def test_a_worker_killed_mid_request_is_an_error_then_restarted(models_dir, images_dir):
    worker = InferenceWorker([ModelSpec("classifier", str(models_dir / TINY), "cpu", "", 1)], "cpu")
    worker.start()
    try:
        remote = Classifier(RemoteModel(worker, "classifier"))
        rgb = read_image(images_dir / "parrot.jpg")
        assert remote.classify(rgb, top_k=1)[0].label == "89"
        os.kill(worker.client().process.pid, signal.SIGSEGV)
        with pytest.raises(WorkerError) as err:
            for _ in range(100):  # the kill lands between two calls or inside one
                remote.classify(rgb)
                time.sleep(0.01)
        assert err.value.status == 503 and err.value.fix
        assert wait_until(lambda: worker.alive and worker.restarts == 1, 20)
        assert "SIGSEGV" in worker.status()["last_error"]
        assert remote.classify(rgb, top_k=1)[0].label == "89"
    finally:
        worker.close()
    assert not worker.alive


def test_a_hung_request_is_killed_after_the_timeout(models_dir, images_dir):
    client = WorkerClient([ModelSpec("classifier", str(models_dir / TINY), "cpu", "", 1)],
                          start_timeout_s=30, result_timeout_s=0.5, first_result_timeout_s=0.5)
    try:
        os.kill(client.process.pid, signal.SIGSTOP)  # a stuck invoke: alive, never answering
        started = time.monotonic()
        with pytest.raises(WorkerError, match="gave no result within 0.5 s"):
            client.submit(0, read_image(images_dir / "parrot.jpg")).wait()
        assert time.monotonic() - started < 5
        assert not client.alive
    finally:
        client.close()


def test_exit_reasons_in_words():
    assert exit_reason(-signal.SIGSEGV) == "was killed by SIGSEGV (segmentation fault)"
    assert exit_reason(-signal.SIGABRT) == "was killed by SIGABRT (abort())"
    assert exit_reason(3) == "exited with status 3"


def test_probe_agreement_on_real_outputs(local, images_dir):
    def scores(photo: str) -> np.ndarray:
        return local.model.submit(read_image(images_dir / photo)).wait().outputs[0].reshape(-1)

    parrot, again, cat = scores("parrot.jpg"), scores("parrot.jpg"), scores("cat.bmp")
    same = agreement(again, parrot)
    assert same.same_top and same.max_steps == 0 and same.top_class == 89
    nudged = parrot.astype(np.int16)
    nudged[int(np.argmax(parrot))] -= 2  # two quantisation steps lower on the top class: still agrees
    assert agreement(nudged.astype(parrot.dtype), parrot).max_steps == 2
    other = agreement(cat, parrot)
    assert not other.same_top and other.max_steps > 2


def test_sigterm_to_the_worker_leaves_its_stopping_to_the_appliance(models_dir, images_dir):
    """systemd stops a service with SIGTERM to every process in it: the worker must not die of it first
    (the appliance would see a crash while stopping); the appliance stops it, or a closed pipe does."""
    worker = InferenceWorker([ModelSpec("classifier", str(models_dir / TINY), "cpu", "", 1)], "cpu")
    worker.start()
    try:
        process = worker.client().process
        os.kill(process.pid, signal.SIGTERM)
        time.sleep(1.0)
        assert process.is_alive() and worker.restarts == 0 and worker.status()["last_error"] is None
        remote = Classifier(RemoteModel(worker, "classifier"))
        assert remote.classify(read_image(images_dir / "parrot.jpg"), top_k=1)[0].label == "89"
    finally:
        worker.close()
    assert not process.is_alive()


def test_a_program_that_exits_without_closing_its_worker_still_exits(models_dir):
    """The worker ignores SIGTERM (see above), which multiprocessing's own exit handler sends before it
    waits: without the appliance's exit handler killing it, such a program would never end."""
    import subprocess
    import sys

    code = ("from appliance.inference.supervisor import InferenceWorker\n"
            "from appliance.inference.protocol import ModelSpec\n"
            "if __name__ == '__main__':\n"
            f"    w = InferenceWorker([ModelSpec('m', {str(models_dir / TINY)!r}, 'cpu')], 'cpu')\n"
            "    w.start()\n"
            "    print('started', flush=True)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and "started" in done.stdout, done.stderr


def test_after_a_fallback_a_model_named_by_its_edgetpu_file_runs_as_its_cpu_twin(models_dir, local,
                                                                                 images_dir):
    compiled = models_dir / "mobilenet_v1_0.25_128_quant_edgetpu.tflite"
    if not compiled.exists():
        pytest.skip(f"{compiled.name} is not in the models folder (the compiled twin of {TINY})")
    worker = InferenceWorker([ModelSpec("classifier", str(compiled), "auto", "", 1)], "auto")
    worker.fall_back("the Edge TPU failed (test): running on the CPU")  # as the start-up probe does
    worker.start()
    try:
        remote = Classifier(RemoteModel(worker, "classifier"))
        rgb = read_image(images_dir / "parrot.jpg")
        assert remote.classify(rgb, top_k=3) == local.classify(rgb, top_k=3)  # the CPU twin's answer
        assert worker.backend == "cpu" and worker.alive
    finally:
        worker.close()
