"""Learning benchmark: does teaching slow recognition down, and how soon does a big store serve?

    python -m appliance.bench.learning [--classes 100] [--viewers 20] [--sizes 150x20,500x20,10x200] [--json]

Teaching: a real System on 127.0.0.1 (the demo camera, throttled like a camera) with V viewers
reading /stream.mjpg from another process; N new classes are taught back to back through the Teacher (a
real burst of frames each). A sampler thread notes when the inference counter moves: printed are the
inference fps before and while teaching, the longest gap between two inferences (goal: at most 2 frame
times) and how long after each commit the recognizer served the new class.
Start-up: for each size CxS a store of C classes x S samples is made, then a System is started on it:
time to the first inference, to healthy (what /healthz answers), to recognising a taught sample, to the
configured head fitted in the background, and the teach latency (commit -> recognised) at that size.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from appliance.bench.web import without_client_caps
from appliance.config import apply_overrides, demo_config
from appliance.model_files import ENV_MODELS_FROM

TICK_S = 0.002


@dataclass(frozen=True)
class TeachingRun:
    classes: int
    viewers: int
    source: str
    backend: str
    fps_before: float
    fps_teaching: float
    frame_ms: float               # 1000 / fps_before
    longest_gap_before_ms: float  # the same measure before teaching: the machine's own jitter
    longest_gap_ms: float         # between two inferences while teaching
    gap_p99_ms: float
    seconds_per_teach: float      # burst capture + commit
    recognised_after_ms: list[float]   # per teach: commit -> the recognizer serves that store version


@dataclass(frozen=True)
class StartupRun:
    classes: int
    samples: int
    first_inference_s: float
    healthy_s: float
    recognising_s: float          # a stored sample is recognised as its class
    fitted_s: float | None        # the configured head in use (None: not within the wait)
    head: str
    teach_latency_ms: float       # store.teach commit -> recognised, at this size
    commit_ms: float              # the store.teach transaction itself


class GapSampler:
    """Notes the times the inference counter moves (a thread polling every TICK_S)."""

    def __init__(self, stats) -> None:
        self.stats = stats
        self.times: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="gap-sampler", daemon=True)

    def _run(self) -> None:
        last = self.stats.inferences
        while not self._stop.is_set():
            now = self.stats.inferences
            if now != last:
                self.times.append(time.monotonic())
                last = now
            time.sleep(TICK_S)

    def __enter__(self) -> GapSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def gaps_ms(self) -> np.ndarray:
        return np.diff(np.asarray(self.times)) * 1e3 if len(self.times) > 1 else np.zeros(1)


def _config(data_dir: Path, source: str, device: str, **overrides):
    config = apply_overrides(demo_config(data_dir=data_dir), source=source, device=device,
                             models_dir=os.environ.get(ENV_MODELS_FROM) or str(data_dir / "models"))
    config = without_client_caps(config)  # its viewers all come from 127.0.0.1
    return replace(config, **overrides) if overrides else config


def _wait(predicate, timeout: float, step: float = 0.005) -> float | None:
    """Seconds until predicate() held, or None after timeout."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if predicate():
            return time.monotonic() - start
        time.sleep(step)
    return None


def _served(recognizer, version: int) -> bool:
    current = recognizer.version
    return current is not None and current >= version


def run_teaching(classes: int, viewers: int, source: str, device: str, *, frames: int = 10,
                 seconds: float = 1.0, measure_s: float = 5.0, head: str = "auto") -> TeachingRun:
    """Teach `classes` classes back to back while V viewers watch; see the module docstring."""
    from appliance.bench.web import _viewers_process
    from appliance.system import System
    from appliance.web.app import create_app
    from appliance.web.server import serve

    with tempfile.TemporaryDirectory(prefix="appliance-learning-bench-") as tmp:
        config = _config(Path(tmp), source, device)
        config = replace(config, teach=replace(config.teach, frames=frames, seconds=seconds),
                         recognition=replace(config.recognition, head=head))
        system = System(config, throttle=True)
        system.start(web=False, controls=False)
        server = serve(create_app(system), "127.0.0.1", 0, max(config.web.threads, viewers + 8))
        child = None
        try:
            _wait(lambda: system.stats.inferences > 0, 60)
            system.classes.teach("class 0")  # every frame is embedded and recognised from now on
            _wait(lambda: _served(system.recognizer, system.store.version), 30)
            receive, send = mp.Pipe(duplex=False)
            if viewers:
                count_from = time.time() + 2.0
                child = mp.get_context("spawn").Process(target=_viewers_process, args=(
                    server.port, viewers, count_from, count_from + 3600, send))
                child.start()
                time.sleep(2.5)
            with GapSampler(system.stats) as before:
                n0, t0 = system.stats.inferences, time.monotonic()
                time.sleep(measure_s)
                fps_before = (system.stats.inferences - n0) / (time.monotonic() - t0)
            latencies: list[float] = []
            with GapSampler(system.stats) as sampler:
                n0, t0 = system.stats.inferences, time.monotonic()
                for i in range(1, classes + 1):
                    system.classes.teach(f"class {i}")
                    version = system.store.version
                    waited = _wait(lambda v=version: _served(system.recognizer, v), 30, 0.001)
                    latencies.append(round(1e3 * (waited if waited is not None else 30.0), 1))
                elapsed = time.monotonic() - t0
                fps_teaching = (system.stats.inferences - n0) / elapsed
            gaps = sampler.gaps_ms()
            if child is not None:
                child.terminate()
                child.join(5)
            backend = system.stats.snapshot()["backend"]
        finally:
            server.stop()
            system.stop()
    return TeachingRun(classes, viewers, source, backend, round(fps_before, 2), round(fps_teaching, 2),
                       round(1e3 / fps_before, 1) if fps_before else 0.0,
                       round(float(before.gaps_ms().max()), 1), round(float(gaps.max()), 1),
                       round(float(np.percentile(gaps, 99)), 1), round(elapsed / classes, 3), latencies)


def _fill_store(config, classes: int, samples: int, seed: int = 1) -> np.ndarray:
    """A store of `classes` x `samples` embeddings near one random direction per class; -> the centres."""
    from appliance.learning.model_identity import model_identity
    from appliance.learning.store import ClassStore
    from appliance.system import STORE_FILE, Models

    models = Models(config)
    dim = int(models.embedder.embed(np.zeros((224, 224, 3), np.uint8)).shape[0])
    rng = np.random.default_rng(seed)
    centres = rng.random((classes, dim)).astype(np.float32)
    with ClassStore(Path(config.data_dir) / STORE_FILE, model_identity(models.embedder_path),
                    max_samples=max(samples, config.teach.max_samples_per_class)) as store:
        for c in range(classes):
            X = centres[c] + 0.05 * rng.random((samples, dim)).astype(np.float32)
            store.teach(f"class {c}", X)
    return centres


def run_startup(classes: int, samples: int, source: str, device: str, fit_wait_s: float = 60.0) -> StartupRun:
    from appliance.system import System

    with tempfile.TemporaryDirectory(prefix="appliance-startup-bench-") as tmp:
        config = _config(Path(tmp), source, device)
        config = replace(config, teach=replace(config.teach, max_samples_per_class=max(samples, 200)))
        centres = _fill_store(config, classes, samples)
        t0 = time.monotonic()
        system = System(config, throttle=True)
        system.start(web=False, controls=False)
        try:
            def since_start(predicate, step: float = 0.005) -> float | None:
                return None if _wait(predicate, 120, step) is None else time.monotonic() - t0

            first = since_start(lambda: system.stats.inferences > 0)
            healthy = since_start(system.healthy)
            probe, label = centres[classes // 2], f"class {classes // 2}"
            recognising = since_start(lambda: system.recognizer.recognize(probe).label == label)
            kind = config.recognition.head

            def fitted() -> bool:
                head = system.recognizer.head
                return head is not None and (kind == "imprint" or "while" not in head.reason)

            fit = _wait(fitted, fit_wait_s, 0.05)
            fit = None if fit is None else time.monotonic() - t0
            head = system.recognizer.head
            rng = np.random.default_rng(99)
            dim = centres.shape[1]
            new = rng.random(dim).astype(np.float32) + 0.05 * rng.random((samples, dim)).astype(np.float32)
            c0 = time.monotonic()
            system.classes.teach_samples("new class", new)
            commit = time.monotonic() - c0
            latency = _wait(lambda: system.recognizer.recognize(new[0]).label == "new class", 60, 0.001)
        finally:
            system.stop()
    head_name = head.reason or head.kind if head else "none"
    return StartupRun(classes, samples, round(first or -1, 2), round(healthy or -1, 2),
                      round(recognising or -1, 2), None if fit is None else round(fit, 1), head_name,
                      round(1e3 * (commit + (latency or 60)), 1), round(1e3 * commit, 1))


def report(teaching: TeachingRun | None, startups: list[StartupRun]) -> str:
    lines = []
    if teaching is not None:
        t = teaching
        lat = np.asarray(t.recognised_after_ms)
        lines += [
            f"teaching {t.classes} classes back to back with {t.viewers} MJPEG viewers, source {t.source}, "
            f"backend {t.backend}",
            f"  inference fps: {t.fps_before:.1f} before, {t.fps_teaching:.1f} while teaching "
            f"(frame time {t.frame_ms:.1f} ms)",
            f"  longest inference gap while teaching: {t.longest_gap_ms:.0f} ms = "
            f"{t.longest_gap_ms / max(t.frame_ms, 1e-9):.2f} frame times (goal <= 2); 99th percentile "
            f"{t.gap_p99_ms:.0f} ms; before teaching the longest was {t.longest_gap_before_ms:.0f} ms",
            f"  {t.seconds_per_teach:.2f} s per teach (burst + commit); new class served "
            f"{np.median(lat):.0f} ms after the commit (median), {lat.max():.0f} ms at most",
        ]
    if startups:
        lines.append("start-up on a big store (s after System() was called) and teach latency:")
        lines.append("  classes x samples | first inference | healthy | recognising | head fitted | "
                     "teach latency (commit)")
        for s in startups:
            fitted = f"{s.fitted_s:.1f} s" if s.fitted_s is not None else "not yet"
            lines.append(f"  {s.classes:>4} x {s.samples:<4}     | {s.first_inference_s:6.2f} s      | "
                         f"{s.healthy_s:5.2f} s | {s.recognising_s:6.2f} s    | {fitted:>10}  | "
                         f"{s.teach_latency_ms:.0f} ms ({s.commit_ms:.0f} ms)   head: {s.head}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m appliance.bench.learning",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--classes", type=int, default=100, help="classes taught back to back (0: skip)")
    parser.add_argument("--viewers", type=int, default=20)
    parser.add_argument("--sizes", default="150x20,500x20,10x200",
                        help="start-up store sizes, CLASSESxSAMPLES, comma separated ('' skips)")
    parser.add_argument("--fit-wait", type=float, default=60.0, help="seconds to wait for the fitted head")
    parser.add_argument("--source", default="demo",
                        help="camera source (default: the demo camera, which holds its photo while a burst "
                             "records; a source whose view changes mid-burst gets bursts refused)")
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "edgetpu"))
    parser.add_argument("--head", default="auto", choices=("auto", "imprint", "softmax"),
                        help="recognition head while teaching (imprint: no background fit at all)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    teaching = run_teaching(args.classes, args.viewers, args.source, args.device,
                            head=args.head) if args.classes else None
    startups = []
    for size in filter(None, args.sizes.split(",")):
        c, s = (int(v) for v in size.lower().split("x"))
        startups.append(run_startup(c, s, args.source, args.device, args.fit_wait))
    if args.json:
        print(json.dumps({"teaching": asdict(teaching) if teaching else None,
                          "startup": [asdict(s) for s in startups]}, indent=2))
    else:
        print(report(teaching, startups))
    return 0


if __name__ == "__main__":
    sys.exit(main())
