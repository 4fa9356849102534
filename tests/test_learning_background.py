"""Recognition never waits for learning: incremental per-class sums, the background HeadBuilder, and the
learning benchmark on a short setting (figures are for the report; only generous bounds are asserted)."""

from __future__ import annotations

import time

import numpy as np
import pytest

from appliance.learning.class_sums import ClassSums
from appliance.learning.heads import fit_imprint
from appliance.learning.recognizer import Recognizer
from appliance.learning.store import ClassStore


def unit(seed: int, dim: int = 64) -> np.ndarray:
    v = np.random.default_rng(seed).random(dim).astype(np.float32)
    return v / np.linalg.norm(v)


def cluster(seed: int, n: int, dim: int = 64) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.random(dim) + 0.05 * rng.random((n, dim))).astype(np.float32)


def wait_for(predicate, timeout: float = 20.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


def test_running_sums_match_a_full_rebuild_after_every_kind_of_change(tmp_path):
    path = tmp_path / "classes.sqlite"
    with ClassStore(path, "m", max_samples=6) as store, ClassStore(path, "m") as other:
        sums = ClassSums(store)
        steps = [
            lambda: store.teach("a", cluster(1, 3)),
            lambda: store.teach("b", cluster(2, 2)),
            lambda: store.teach("a", cluster(3, 2)),             # appended
            lambda: store.teach("a", cluster(4, 4)),             # trimmed to max_samples: rebuilt
            lambda: other.teach("c", cluster(5, 3)),             # another store object (process)
            lambda: store.rename(store.find("b").id, "bee"),     # labels only
            lambda: store.clear(store.find("a").id),
            lambda: store.delete(store.find("c").id),
            lambda: store.teach("a", cluster(6, 1)),
        ]
        for step in steps:
            step()
            taught, _ = sums.update()
            X, y = store.training_data()
            assert taught.version == store.version
            assert taught.labels == {c.id: c.label for c in store.list_classes()}
            got = taught.imprint_head()
            want = fit_imprint(X, y)
            np.testing.assert_array_equal(got.class_ids, want.class_ids)
            np.testing.assert_allclose(got.weights, want.weights, atol=1e-5)
            tX, ty = taught.training_data()
            np.testing.assert_allclose(tX, X / np.linalg.norm(X, axis=1, keepdims=True), atol=1e-6)
            np.testing.assert_array_equal(ty, y)


def test_only_the_new_rows_are_read(tmp_path):
    with ClassStore(tmp_path / "classes.sqlite", "m") as store:
        for c in range(20):
            store.teach(f"c{c}", cluster(c, 10))
        sums = ClassSums(store)
        sums.update()
        store.teach("new", cluster(99, 5))
        delta = store.sample_delta({c: (len(s), sums._lasts[c]) for c, s in sums.taught.samples.items()})
        assert list(delta.rows) == [store.find("new").id] and len(delta.rows[store.find("new").id][1]) == 5


def test_background_recognizer_serves_while_the_head_is_fitted(tmp_path):
    with ClassStore(tmp_path / "classes.sqlite", "m") as store:
        for c in range(40):
            store.teach(f"c{c}", cluster(c, 20))
        recognizer = Recognizer(store, head="auto", background=True)
        try:
            wait_for(lambda: recognizer.ready, 20)  # the imprinting head, from running sums
            probe = cluster(7, 1)[0]
            assert recognizer.recognize(probe).label == "c7"
            assert "while" in recognizer.head.reason  # the cross-validated head is still being fitted
            slowest = 0.0
            end = time.monotonic() + 1.5
            while time.monotonic() < end:  # the builder fits meanwhile: recognising never waits for it
                t0 = time.perf_counter()
                recognizer.recognize(probe)
                slowest = max(slowest, time.perf_counter() - t0)
            assert slowest < 0.25, f"a recognize() call took {slowest * 1e3:.0f} ms"
            store.teach("late", cluster(500, 5))  # a new class is served long before any fit is done
            wait_for(lambda: recognizer.recognize(cluster(500, 1)[0]).label == "late", 10)
        finally:
            recognizer.close()


def test_background_recognizer_fits_the_configured_head_and_follows_renames(tmp_path):
    with ClassStore(tmp_path / "classes.sqlite", "m") as store:
        for c in range(3):
            store.teach(f"c{c}", cluster(c, 4))
        recognizer = Recognizer(store, head="softmax", background=True)
        try:
            wait_for(lambda: recognizer.head is not None and recognizer.head.kind == "softmax", 60)
            fitted = recognizer.head
            store.rename(store.find("c1").id, "renamed")
            wait_for(lambda: recognizer.recognize(cluster(1, 1)[0]).label == "renamed", 10)
            assert recognizer.head is fitted  # a rename needs no new fit
        finally:
            recognizer.close()


@pytest.mark.usefixtures("models_dir")
def test_learning_bench_short_run(images_dir):
    from appliance.bench.learning import report, run_startup, run_teaching

    teaching = run_teaching(4, 2, str(images_dir), "cpu", frames=3, seconds=0.2, measure_s=1.0)
    startup = run_startup(60, 10, str(images_dir), "cpu", fit_wait_s=0.5)
    print(report(teaching, [startup]))
    assert teaching.fps_before > 0 and teaching.fps_teaching > 0
    # generous: the goal is 2 frame times (about 70 ms); a shared test machine stalls now and then
    assert teaching.longest_gap_ms < 2000
    assert len(teaching.recognised_after_ms) == 4 and max(teaching.recognised_after_ms) < 10000
    assert 0 < startup.first_inference_s < 30 and 0 < startup.healthy_s < 30
    assert 0 < startup.recognising_s < 30 and startup.teach_latency_ms < 10000


def test_the_fit_process_gives_the_same_head_and_gives_up_when_outdated():
    from appliance.learning.fit_process import Abandoned, FitProcess
    from appliance.learning.heads import fit_head

    X = np.concatenate([cluster(c, 6) for c in range(4)])
    y = np.repeat(np.arange(4), 6)
    fitter = FitProcess()
    try:
        head = fitter.fit(X, y, "softmax", lambda: False)
        want = fit_head(X, y, "softmax")
        np.testing.assert_array_equal(head.class_ids, want.class_ids)
        np.testing.assert_allclose(head.weights, want.weights, atol=1e-6)
        big = np.concatenate([cluster(c, 40, dim=512) for c in range(60)])
        started = time.monotonic()
        with pytest.raises(Abandoned):
            fitter.fit(big, np.repeat(np.arange(60), 40), "auto", lambda: time.monotonic() - started > 0.3)
        assert time.monotonic() - started < 5
        again = fitter.fit(X, y, "imprint", lambda: False)  # the same child takes the next job
        assert again.kind == "imprint"
        child = fitter._proc
    finally:
        fitter.close()
    assert child is not None and not child.is_alive()
