"""Pipeline benchmark: the real capture -> inference -> annotate/encode pipeline, unthrottled, against
raw invoke speed of the same interpreter measured in the same run (before and after).

    appliance bench --model M --source SRC --seconds N [--mode classify|detect] [--json]

The flags and the model set-up are the command's (appliance.commands.bench): it calls run_bench here,
and nothing here calls it back.

pipeline_fps / invoke_fps says how much the pipeline around the model costs; with the capture and encode
threads overlapping invoke it should stay close to 1.
"""

from __future__ import annotations

import os
import resource
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from appliance.camera import ReconnectingSource, open_source
from appliance.errors import ApplianceError
from appliance.inference.supervisor import RemoteModel
from appliance.pipeline.infer import Engines, Inference, InferSettings
from appliance.pipeline.worker import Pipeline, PipelineSettings
from appliance.vision.classify import Classifier
from appliance.vision.detect import Detector
from appliance.vision.embed import Embedder
from appliance.vision.model import Model
from appliance.vision.preprocess import set_input

STAGES = ("capture", "resize", "preprocess", "invoke", "adapter", "recognize", "annotate", "encode")
MODE_OF_KIND = {"classifier": "classify", "embedder": "classify", "detector": "detect"}


@dataclass(frozen=True)
class BenchSetup:
    model: Model                # what the pipeline runs: in this process, or a RemoteModel in the worker
    labels: dict[int, str] | None
    source_spec: str
    seconds: float
    mode: str | None = None
    width: int = 640
    height: int = 480
    warmup_s: float = 1.0
    invoke_s: float = 1.0       # each raw-invoke measurement (before, between and after the windows)
    publish_fps: float = 30.0   # the stream's display rate, as in the appliance (camera.fps)
    local: Model | None = None  # the same model in this process: raw invoke speed and the hop's baseline
    simulate_ms: float = 0.0    # the worker's invoke is a sleep of this long (a simulated Edge TPU)


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


def _invoke_run(model: Model, frame: np.ndarray, seconds: float,
                simulate_ms: float = 0.0) -> tuple[float, int]:
    """(fps, invokes) of one raw run; with simulate_ms the invoke is that long a sleep, as in the worker."""
    if simulate_ms:
        count, start = 0, time.perf_counter()
        while True:
            time.sleep(simulate_ms / 1000.0)
            count += 1
            elapsed = time.perf_counter() - start
            if elapsed >= seconds and count >= 3:
                return count / elapsed, count
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


def call_ms(model, frame: np.ndarray, seconds: float) -> float:
    """Median ms of one whole submit + wait (fill, invoke, outputs back) on `model`."""
    times, end = [], time.perf_counter() + seconds
    model.submit(frame).wait()  # warm
    while time.perf_counter() < end or len(times) < 5:
        t0 = time.perf_counter()
        model.submit(frame).wait()
        times.append((time.perf_counter() - t0) * 1e3)
    return float(np.median(times))


def hop_ms(remote, local: Model, frame: np.ndarray, rounds: int = 3, seconds: float = 0.5) -> dict:
    """What the process hop costs per frame: the same model, called here and in the worker, alternately
    in the same run (so machine load hits both alike)."""
    w, h = local.input_size
    small = np.ascontiguousarray(frame[:h, :w]) if frame.shape[0] >= h and frame.shape[1] >= w else frame
    here, there = [], []
    for _ in range(rounds):
        here.append(call_ms(local, small, seconds))
        there.append(call_ms(remote, small, seconds))
    in_process, worker = float(np.median(here)), float(np.median(there))
    return {"in_process_call_ms": round(in_process, 3), "worker_call_ms": round(worker, 3),
            "hop_ms": round(worker - in_process, 3)}


def _first_frame(source, timeout: float = 10.0) -> np.ndarray:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        frame = source.read()
        if frame is not None and source.health().connected:
            return frame
    raise ApplianceError(f"the source {source.name} gave no frame within {timeout:g} s",
                         "check the --source (a folder of images, a video file, demo, or a camera)")


def cpu_seconds(model) -> float:
    """CPU seconds used so far by this process and, for a model in the worker, by the worker too."""
    total = time.process_time()
    worker = model.worker if isinstance(model, RemoteModel) else None
    if worker is not None:
        try:
            fields = Path(f"/proc/{worker.client().process.pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime
        except (OSError, ApplianceError, IndexError, ValueError):
            pass
    return total


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: kB


def rounds_for(seconds: float) -> int:
    """How many pipeline windows to interleave with raw-invoke measurements (one per ~5 s, 1..10)."""
    return max(1, min(10, int(seconds // 5)))


def run_bench(setup: BenchSetup) -> dict:
    """Pipeline windows interleaved with raw-invoke measurements, so that a change in machine load (a
    shared CPU) affects both figures alike. The pipeline is stopped during each raw measurement, and its
    windows count only the time it ran."""
    engines, mode = engines_for(setup.model, setup.labels, setup.mode)
    local = setup.local or setup.model
    inner = open_source(setup.source_spec, width=setup.width, height=setup.height, fps=30.0, loop=True,
                        throttle=False)
    source = ReconnectingSource(inner, width=setup.width, height=setup.height)
    source.open()
    raws: list[float] = []
    windows: list[tuple[int, float]] = []  # (inferences, seconds)
    # process CPU seconds (all threads) and frames, raw vs pipeline: what each frame costs the machine
    raw_cpu = raw_count = pipe_cpu = 0.0
    hop = None
    try:
        frame = _first_frame(source)
        if local is not setup.model and not setup.simulate_ms:
            hop = hop_ms(setup.model, local, frame)
        settings = PipelineSettings(frame_size=(setup.width, setup.height), pace_to_consumer=True,
                                    max_publish_fps=setup.publish_fps or None)
        pipe = Pipeline(source, Inference(engines, InferSettings(mode=mode, show_base_labels=True)), settings)
        pipe.stats.configure(backend=setup.model.backend, backend_warning=setup.model.warning)
        rounds = rounds_for(setup.seconds)
        stages: dict[str, float] = {}
        counts = {"frames_captured": 0, "frames_published": 0, "dropped_frames": 0}
        for i in range(rounds + 1):
            c0 = cpu_seconds(setup.model)
            fps, count = _invoke_run(local, frame, setup.invoke_s, setup.simulate_ms)
            raws.append(fps)
            raw_cpu, raw_count = raw_cpu + cpu_seconds(setup.model) - c0, raw_count + count
            if i == rounds:
                break
            pipe.start()
            try:
                time.sleep(setup.warmup_s if i == 0 else min(setup.warmup_s, 0.3))
                snap0, hub0 = pipe.stats.snapshot(), pipe.hub.latest()[0]
                pipe.stats.reset_stages()
                t0, c0 = time.perf_counter(), cpu_seconds(setup.model)
                time.sleep(setup.seconds / rounds)
                snap1, hub1 = pipe.stats.snapshot(), pipe.hub.latest()[0]
                windows.append((snap1["inferences"] - snap0["inferences"], time.perf_counter() - t0))
                pipe_cpu += cpu_seconds(setup.model) - c0
                for key, value in pipe.stats.stages_ms().items():  # a mean over the windows
                    stages[key] = stages.get(key, 0.0) + value / rounds
                counts["frames_captured"] += snap1["frames_captured"] - snap0["frames_captured"]
                counts["frames_published"] += hub1 - hub0
                counts["dropped_frames"] += snap1["dropped_frames"] - snap0["dropped_frames"]
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
    report = {
        "model": setup.model.path.name,
        "backend": "simulated Edge TPU" if setup.simulate_ms else setup.model.backend,
        "inference": "in-process" if local is setup.model else "worker process",
        "mode": mode,
        "source": source.name,
        "seconds": round(elapsed, 2),
        "frames_captured": counts["frames_captured"],
        "inferences": inferences,
        "frames_published": counts["frames_published"],
        "publish_fps_cap": setup.publish_fps or None,
        "pipeline_fps": round(pipeline, 2),
        "invoke_fps": round(raw, 2),
        "invoke_fps_runs": [round(r, 1) for r in raws],
        "ratio": round(pipeline / raw, 3) if raw else None,
        "ratio_per_window": [round(r, 3) for r in ratios],
        "stages_ms": {k: round(stages[k], 2) for k in STAGES if k in stages},
        "cpu_ms_per_frame": {"invoke": round(raw_cpu * 1e3 / raw_count, 2) if raw_count else None,
                             "pipeline": round(pipe_cpu * 1e3 / inferences, 2) if inferences else None},
        "dropped_frames": counts["dropped_frames"],
        "peak_rss_mb": round(peak_rss_mb(), 1),
    }
    if setup.simulate_ms:
        report["simulated_invoke_ms"] = setup.simulate_ms
        report["simulated_max_fps"] = round(1000.0 / setup.simulate_ms, 1)
        report["ratio_to_simulated_max"] = round(pipeline * setup.simulate_ms / 1000.0, 3)
    if hop is not None:
        report["process_hop"] = hop
    return report


def format_report(r: dict) -> str:
    stages = ", ".join(f"{k} {v:g}" for k, v in r["stages_ms"].items())
    cpu = r["cpu_ms_per_frame"]
    return "\n".join([
        f"pipeline benchmark: {r['model']} on the {r['backend']} ({r['inference']}), {r['mode']} mode, "
        f"source {r['source']}, {r['seconds']:g} s",
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
        *([f"  process hop: {r['process_hop']['hop_ms']:g} ms per frame (one call: "
           f"{r['process_hop']['in_process_call_ms']:g} ms here, {r['process_hop']['worker_call_ms']:g} ms "
           "through the worker)"] if "process_hop" in r else []),
        *([f"  simulated Edge TPU ({r['simulated_invoke_ms']:g} ms invoke): {r['pipeline_fps']:g} of at most "
           f"{r['simulated_max_fps']:g} fps = {r['ratio_to_simulated_max']}"] if "simulated_max_fps" in r
          else []),
    ])
