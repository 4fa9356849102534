"""The Edge TPU probe: one real inference in a throwaway worker process, checked against the CPU.

Loading the delegate proves little: a libedgetpu built for another TensorFlow crashes at the first
model it prepares. So the probe runs a small compiled model on a known photo in its own process (a
crash there costs nothing) and compares the answer with the same model's CPU twin here: the same top
class, and scores within a couple of quantisation steps. Only then is the Edge TPU "ok".
"""

from __future__ import annotations

import statistics
from collections import namedtuple
from pathlib import Path

import numpy as np

from appliance.assets import PROBE_PHOTO
from appliance.errors import ApplianceError
from appliance.inference.client import WorkerClient, WorkerError
from appliance.inference.protocol import ModelSpec
from appliance.model_files import resolve_model
from appliance.vision import backends, edgetpu
from appliance.vision.classify import dequantize
from appliance.vision.images import read_image
from appliance.vision.model import load_model, twin_for

PROBE_MODEL = "mobilenet_v1_0.25_128_quant"   # tiny; its _edgetpu twin is in the manifest
MAX_STEPS = 2                                 # quantisation steps the two answers may differ by
INVOKES = 5

# probed False: the probe model could not be had, so nothing was run (the Edge TPU is neither good nor bad)
ProbeResult = namedtuple("ProbeResult", "ok detail fix invoke_ms probed", defaults=(True,))
Agreement = namedtuple("Agreement", "same_top max_steps top_class")


def agreement(accelerated: np.ndarray, cpu: np.ndarray, top_k: int = 5) -> Agreement:
    """How closely two raw quantised score vectors (one unit = one quantisation step) agree on the
    classes the CPU ranks highest."""
    accelerated, cpu = np.asarray(accelerated).reshape(-1), np.asarray(cpu).reshape(-1)
    best = np.argsort(-cpu.astype(np.float64), kind="stable")[:top_k]
    diff = np.abs(accelerated[best].astype(np.float64) - cpu[best].astype(np.float64))
    return Agreement(int(np.argmax(accelerated)) == int(best[0]), float(diff.max()), int(best[0]))


def runtime_line() -> str:
    """The Edge TPU backend's runtime and libedgetpu, for the line that explains a crash."""
    backend = backends.get("edgetpu")
    runtime = backend.runtime()
    text = f"{runtime.module} {runtime.version}" if runtime else "no TFLite runtime"
    return f"runtime {text}, {edgetpu.library_description()}"


CRASH_FIX = edgetpu.INSTALL_FIX  # a crash or a hang at the first model: the mismatched pair's signature


def probe_configured(config, models_dir: Path) -> ProbeResult:
    """The probe with the config's Edge TPU device, models source and first-result timeout."""
    v = config.vision
    return probe_edgetpu(models_dir=models_dir, models_from=v.models_from or None,
                         device_spec=v.edgetpu_device, timeout_s=v.first_result_timeout_s)


def failure_words(exc: ApplianceError) -> tuple[str, str]:
    """(problem on one line, fix) for an Edge TPU run that failed: a crash or a hang is the mismatched
    pair's signature (the fix installs the matched pair); an error the runtime reported carries its own
    fix. Callers add runtime_line(), so the message names the runtime and libedgetpu in play."""
    problem = " ".join(exc.problem.split())
    return problem, CRASH_FIX if isinstance(exc, WorkerError) or not exc.fix else exc.fix


def _failed(exc: ApplianceError) -> ProbeResult:
    """One line: what stopped the probe, the runtime and libedgetpu in play, and the fix."""
    problem, fix = failure_words(exc)
    return ProbeResult(False, f"the probe failed ({problem}); {runtime_line()}", fix, None)


def probe_edgetpu(*, models_dir: Path, models_from: str | None = None, device_spec: str = "",
                  timeout_s: float = 30.0) -> ProbeResult:
    """Run the probe model on the Edge TPU in a worker process and judge it against the CPU twin."""
    try:
        cpu_path = resolve_model(PROBE_MODEL, models_dir=models_dir, models_from=models_from)
        tpu_path = resolve_model(twin_for(cpu_path, "edgetpu").stem, models_dir=models_dir,
                                 models_from=models_from)
    except ApplianceError as exc:
        return ProbeResult(False, f"the probe model is missing: {exc.problem}",
                           f"appliance models fetch {PROBE_MODEL} {PROBE_MODEL}_edgetpu", None, False)
    rgb = read_image(PROBE_PHOTO)
    cpu_model = load_model(cpu_path, device="cpu", num_threads=1)
    cpu_scores = cpu_model.submit(rgb).wait().outputs[0]
    detail = cpu_model.output_details[0]
    try:
        client = WorkerClient([ModelSpec("probe", str(tpu_path), "edgetpu", device_spec, 1)],
                              start_timeout_s=timeout_s, result_timeout_s=timeout_s,
                              first_result_timeout_s=timeout_s)
    except ApplianceError as exc:
        return _failed(exc)
    try:
        runs = []
        for _ in range(INVOKES):
            runs.append(client.submit(0, rgb).wait())
    except ApplianceError as exc:
        return _failed(exc)
    finally:
        client.close()
    invoke_ms = statistics.median(r.invoke_ms for r in runs[1:])  # the first loads the model onto it
    if client.models[0].backend != "edgetpu":
        return ProbeResult(False, f"the probe ran on the {client.models[0].backend}, not the Edge TPU",
                           CRASH_FIX, invoke_ms)
    agree = agreement(runs[-1].outputs[0], cpu_scores)
    top = dequantize(runs[-1].outputs[0], detail).reshape(-1)
    if not agree.same_top or agree.max_steps > MAX_STEPS:
        return ProbeResult(False, f"the Edge TPU computed a different answer from the CPU (top class "
                           f"{int(np.argmax(top))} vs {agree.top_class}, scores {agree.max_steps:.0f} "
                           f"quantisation steps apart); {runtime_line()}", CRASH_FIX, invoke_ms)
    return ProbeResult(True, f"{tpu_path.name} computed the CPU's answer (class {agree.top_class}, "
                       f"within {agree.max_steps:.0f} quantisation steps) in {invoke_ms:.1f} ms per invoke",
                       "", invoke_ms)
