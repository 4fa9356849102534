"""Pipeline benchmark: the real capture -> inference -> annotate/encode pipeline, unthrottled, against
raw invoke speed of the same interpreter measured in the same run (before and after).

    appliance bench --model M --source SRC --seconds N [--mode classify|detect] [--json]
    python -m appliance.bench.pipeline ...   (same flags)

pipeline_fps / invoke_fps says how much the pipeline around the model costs; with the capture and encode
threads overlapping invoke it should stay close to 1.
"""

from __future__ import annotations

import resource
import time
from dataclasses import dataclass

import numpy as np

from appliance.camera import ReconnectingSource, open_source
from appliance.errors import ApplianceError
from appliance.pipeline.infer import Engines, Inference, InferSettings
from appliance.pipeline.worker import Pipeline
from appliance.vision.classify import Classifier
from appliance.vision.detect import Detector
from appliance.vision.embed import Embedder
from appliance.vision.model import Model
from appliance.vision.preprocess import set_input

STAGES = ("capture", "resize", "preprocess", "invoke", "adapter", "recognize", "annotate", "encode")
MODE_OF_KIND = {"classifier": "classify", "embedder": "classify", "detector": "detect"}


@dataclass(frozen=True)
class BenchSetup:
    model: Model
    labels: dict[int, str] | None
    source_spec: str
    seconds: float
    mode: str | None = None
    width: int = 640
    height: int = 480
    warmup_s: float = 1.0
    invoke_s: float = 1.0       # each raw-invoke measurement (before, between and after the windows)
    publish_fps: float = 30.0   # the stream's display rate, as in the appliance (camera.fps)


def engines_for(model: Model, labels, mode: str | None) -> tuple[Engines, str]:
    """The engine the model is, and the mode it runs in; a mode that does not fit is an error."""
    fitting = MODE_OF_KIND[model.kind]
    if mode is not None and mode != fitting:
        raise ApplianceError(f"{model.path.name} is a {model.kind}: it runs in {fitting} mode, not {mode}",
                             f"use --mode {fitting}, or a model for {mode} mode")
    if model.kind == "detector":
        return Engines(detector=Detector(model, labels)), fitting
    if model.kind == "classifier":
        return Engines(classifier=Classifier(model, labels)), fitting
    return Engines(embedder=Embedder(model)), fitting


def invoke_fps(model: Model, frame: np.ndarray, seconds: float) -> float:
    """Raw speed: invoke() in a tight loop on the model's own interpreter, input filled once."""
    return _invoke_run(model, frame, seconds)[0]


def _invoke_run(model: Model, frame: np.ndarray, seconds: float) -> tuple[float, int]:
    """(fps, invokes) of one raw run."""
    with model.lock:
        set_input(model, frame)
        model.invoke()  # warm
        count, start = 0, time.perf_counter()
        while True:
            model.invoke()
            count += 1
            elapsed = time.perf_counter() - start
            if elapsed >= seconds and count >= 3:
                return count / elapsed, count


def _first_frame(source, timeout: float = 10.0) -> np.ndarray:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        frame = source.read()
        if frame is not None and getattr(source, "connected", True):
            return frame
    raise ApplianceError(f"the source {source.name} gave no frame within {timeout:g} s",
                         "check the --source (a folder of images, a video file, demo, or a camera)")


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: kB


def rounds_for(seconds: float) -> int:
    """How many pipeline windows to interleave with raw-invoke measurements (one per ~5 s, 1..10)."""
    return max(1, min(10, int(seconds // 5)))


def run_bench(setup: BenchSetup) -> dict:
    """Pipeline windows interleaved with raw-invoke measurements, so that a change in machine load (a
    shared CPU) affects both figures alike. A raw measurement holds the model's lock: meanwhile the
    pipeline waits, and its windows count only the time it ran."""
    engines, mode = engines_for(setup.model, setup.labels, setup.mode)
    inner = open_source(setup.source_spec, width=setup.width, height=setup.height, fps=30.0, loop=True,
                        throttle=False)
    source = ReconnectingSource(inner, width=setup.width, height=setup.height)
    source.open()
    raws: list[float] = []
    windows: list[tuple[int, float]] = []  # (inferences, seconds)
    # process CPU seconds (all threads) and frames, raw vs pipeline: what each frame costs the machine
    raw_cpu = raw_count = pipe_cpu = 0.0
    try:
        frame = _first_frame(source)
        pipe = Pipeline(source, Inference(engines, InferSettings(mode=mode, show_base_labels=True)),
                        pace_to_consumer=True, frame_size=(setup.width, setup.height),
                        max_publish_fps=setup.publish_fps or None)
        pipe.stats.configure(backend=setup.model.backend, backend_warning=setup.model.warning)
        pipe.start()
        try:
            time.sleep(setup.warmup_s)
            snap0, hub0, dropped0 = pipe.stats.snapshot(), pipe.hub.latest()[0], pipe.stats.dropped_frames
            pipe.stats.reset_stages()
            rounds = rounds_for(setup.seconds)
            for i in range(rounds + 1):
                c0 = time.process_time()
                fps, count = _invoke_run(setup.model, frame, setup.invoke_s)
                raws.append(fps)
                raw_cpu, raw_count = raw_cpu + time.process_time() - c0, raw_count + count
                if i == rounds:
                    break
                start_count = pipe.stats.snapshot()["inferences"]
                t0, c0 = time.perf_counter(), time.process_time()
                time.sleep(setup.seconds / rounds)
                windows.append((pipe.stats.snapshot()["inferences"] - start_count, time.perf_counter() - t0))
                pipe_cpu += time.process_time() - c0
            snap1, hub1, dropped1 = pipe.stats.snapshot(), pipe.hub.latest()[0], pipe.stats.dropped_frames
            stages = pipe.stats.stages_ms()
        finally:
            pipe.stop()
    finally:
        source.close()
    inferences = sum(n for n, _ in windows)
    elapsed = sum(t for _, t in windows)
    pipeline = inferences / elapsed
    raw = sum(raws) / len(raws)
    # each window against the raw speed measured just before and just after it
    ratios = [(n / t) / ((raws[i] + raws[i + 1]) / 2) for i, (n, t) in enumerate(windows)]
    return {
        "model": setup.model.path.name,
        "backend": setup.model.backend,
        "mode": mode,
        "source": source.name,
        "seconds": round(elapsed, 2),
        "frames_captured": snap1["frames_captured"] - snap0["frames_captured"],
        "inferences": inferences,
        "frames_published": hub1 - hub0,
        "publish_fps_cap": setup.publish_fps or None,
        "pipeline_fps": round(pipeline, 2),
        "invoke_fps": round(raw, 2),
        "invoke_fps_runs": [round(r, 1) for r in raws],
        "ratio": round(pipeline / raw, 3) if raw else None,
        "ratio_per_window": [round(r, 3) for r in ratios],
        "stages_ms": {k: round(stages[k], 2) for k in STAGES if k in stages},
        "cpu_ms_per_frame": {"invoke": round(raw_cpu * 1e3 / raw_count, 2) if raw_count else None,
                             "pipeline": round(pipe_cpu * 1e3 / inferences, 2) if inferences else None},
        "dropped_frames": dropped1 - dropped0,
        "peak_rss_mb": round(peak_rss_mb(), 1),
    }


def format_report(r: dict) -> str:
    stages = ", ".join(f"{k} {v:g}" for k, v in r["stages_ms"].items())
    cpu = r["cpu_ms_per_frame"]
    return "\n".join([
        f"pipeline benchmark: {r['model']} on the {r['backend']}, {r['mode']} mode, source {r['source']}, "
        f"{r['seconds']:g} s",
        f"  invoke fps (raw, same interpreter, {len(r['invoke_fps_runs'])} runs between the windows): "
        f"{r['invoke_fps']:g} (min {min(r['invoke_fps_runs']):g}, max {max(r['invoke_fps_runs']):g})",
        f"  pipeline fps: {r['pipeline_fps']:g} ({r['inferences']} frames inferred, "
        f"{r['frames_published']} published)",
        f"  ratio pipeline / invoke: {r['ratio']} (per window: "
        f"{', '.join(f'{x:g}' for x in r['ratio_per_window'])})",
        f"  stage ms per frame: {stages} (annotate and encode: per published frame)",
        f"  CPU ms per frame, all threads: raw invoke {cpu['invoke']}, pipeline {cpu['pipeline']}",
        f"  dropped frames: {r['dropped_frames']}",
        f"  peak RSS: {r['peak_rss_mb']:g} MB",
    ])


def main(argv: list[str] | None = None) -> int:
    import argparse
    import sys

    from appliance.commands.bench import add_arguments, run

    parser = argparse.ArgumentParser(prog="python -m appliance.bench.pipeline",
                                     description=__doc__.splitlines()[0])
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return run(args)
    except ApplianceError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
