"""The Edge TPU paths end to end, with no Edge TPU: the real `appliance run` and `appliance doctor`
against a stand-in libedgetpu (compiled here) that loads, fails to load, segfaults, aborts or hangs,
and a sysfs tree that shows a Coral USB Accelerator.

The stand-in cannot run a model compiled for the Edge TPU: this runtime rejects the compiled model's
edgetpu-custom-op before any delegate is asked. Where a test needs the delegate's Prepare to run (the
crash happens there, as with a libedgetpu built for another TensorFlow), the "_edgetpu" twin beside the
embedder is a copy of the CPU model, and the test says so. Nothing here shows a real Edge TPU working.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys

import pytest
from edgetpu_helpers import Appliance, coral_env, http

from appliance.paths import REPO_ROOT

EMBEDDER = "mobilenet_v1_1.0_224_quant_embedding_extractor"


@pytest.fixture
def box(tmp_path, fake_lib, models_dir):
    """The environment of a machine with a Coral plugged in and the stand-in runtime installed."""
    env, mode = coral_env(tmp_path, fake_lib, models_dir)
    return tmp_path, env, mode


def twin_is_cpu_copy(tmp_path, models_dir) -> str:
    """An embedder whose "_edgetpu" twin is the CPU model itself, so the stand-in's Prepare is reached."""
    folder = tmp_path / "models"
    folder.mkdir()
    shutil.copy(models_dir / f"{EMBEDDER}.tflite", folder / f"{EMBEDDER}.tflite")
    shutil.copy(models_dir / f"{EMBEDDER}.tflite", folder / f"{EMBEDDER}_edgetpu.tflite")
    return str(folder / f"{EMBEDDER}.tflite")


def write_config(tmp_path, **vision) -> str:
    lines = ["[vision]", "result_timeout_s = 3.0", "first_result_timeout_s = 4.0",
             "failures_before_fallback = 2"]
    lines += [f"{k} = {v!r}".replace("'", '"').replace("True", "true").replace("False", "false")
              for k, v in vision.items()]
    path = tmp_path / "config.toml"
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def run_with_cpu_copy_twin(box, models_dir, mode: str, device: str) -> Appliance:
    """`appliance run` with the stand-in in `mode`, no start-up probe, and a twin that reaches Prepare."""
    tmp_path, env, mode_file = box
    mode_file.write_text(mode + "\n")
    config = write_config(tmp_path, embedder=twin_is_cpu_copy(tmp_path, models_dir), probe_at_start=False)
    return Appliance(tmp_path, env, "--device", device, "--config", config)


def children(pid: int) -> list[int]:
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


@pytest.mark.parametrize("mode, at, says, fix", [
    ("segv", "create", "was killed by SIGSEGV", "install.sh --edgetpu"),  # crashes as soon as it is used
    ("fail", "prepare", "could not open the first Edge TPU", "plug in the Coral"),
])
def test_auto_falls_back_to_the_cpu_when_the_start_up_probe_fails(box, mode, at, says, fix):
    tmp_path, env, mode_file = box
    mode_file.write_text(mode + "\n")
    env["FAKE_EDGETPU_AT"] = at
    app = Appliance(tmp_path, env, "--device", "auto", "--config", write_config(tmp_path))
    try:
        status = app.wait_for(lambda s: s["inference_worker"]["alive"] and s["inferences"] > 3)
        assert status["backend"] == "cpu" and status["backend_fallback"] is True
        warning = status["backend_warning"]
        assert "probe" in warning and says in warning and "running on the CPU" in warning
        assert fix in warning
        assert app.get("/healthz")[0] == 200 and app.get("/")[0] == 200
        metrics = app.get("/metrics")[1]
        assert 'backend="cpu"' in metrics and says in metrics
        assert "appliance_backend_fallback 1" in metrics
    finally:
        assert app.stop() == 0, app.output()


def test_auto_worker_crash_loop_falls_back_then_retry_reaches_the_edge_tpu(box, models_dir):
    tmp_path, _, mode = box
    app = run_with_cpu_copy_twin(box, models_dir, "segv", "auto")  # every worker start dies in Prepare
    try:
        # (with no class taught there is nothing to invoke, so "alive" is what shows the worker serving)
        status = app.wait_for(lambda s: s["backend_fallback"] and s["inference_worker"]["alive"])
        assert status["backend"] == "cpu"
        assert "failed 2 times in a row" in status["backend_warning"]
        assert "SIGSEGV" in status["backend_warning"]
        worker = status["inference_worker"]
        assert worker["alive"] is True and "SIGSEGV" in worker["last_error"], (status, app.output())
        assert app.get("/healthz")[0] == 200

        mode.write_text("works\n")  # "fixed": the page's retry button
        assert http(app.port, "/api/inference/retry", "POST", {})[0] == 202
        status = app.wait_for(lambda s: s["backend"] == "edgetpu" and not s["backend_warning"]
                              and s["inference_worker"]["alive"])
        before = status["inference_worker"]["restarts"]
        log = (tmp_path / "fake.log").read_text().split("\n")
        pids = {line.split("pid=")[1] for line in log if line.startswith("create works")}
        assert pids and str(app.proc.pid) not in pids, "the delegate is loaded in the worker, never here"

        worker_pid = children(app.proc.pid)
        assert worker_pid, "the inference worker is a child process"
        for pid in worker_pid:
            os.kill(pid, signal.SIGSEGV)  # a crash mid-run: restarted, once is no reason to fall back
        status = app.wait_for(lambda s: s["inference_worker"]["restarts"] > before
                              and s["inference_worker"]["alive"])
        assert status["backend"] == "edgetpu" and not status["backend_fallback"]
        assert app.get("/healthz")[0] == 200
    finally:
        assert app.stop() == 0, app.output()


def test_edgetpu_device_keeps_retrying_reports_unhealthy_and_teaching_is_503(box, models_dir):
    app = run_with_cpu_copy_twin(box, models_dir, "abort", "edgetpu")
    try:
        status = app.wait_for(lambda s: s["inference_worker"]["restarts"] == 0
                              and (s["inference_worker"]["last_error"] or "").count("SIGABRT"))
        assert status["backend_fallback"] is False
        code, body = app.get("/healthz")
        assert code == 503 and "inference worker" in body["error"] and "SIGABRT" in body["error"]
        assert "appliance doctor" in body["fix"]
        assert app.get("/")[0] == 200  # the page stays up
        code, body = http(app.port, "/api/classes", "POST", {"label": "mug"})
        assert code == 503 and "inference worker" in body["error"] and body["fix"]
        assert http(app.port, "/api/classes")[1] == []  # nothing half-committed
    finally:
        assert app.stop() == 0, app.output()


def test_auto_hung_worker_is_killed_and_falls_back(box, models_dir):
    app = run_with_cpu_copy_twin(box, models_dir, "hang", "auto")
    try:
        status = app.wait_for(lambda s: s["backend_fallback"] and s["inference_worker"]["alive"], timeout=90)
        assert "hung" in status["backend_warning"] and status["backend"] == "cpu"
        assert app.get("/healthz")[0] == 200
    finally:
        assert app.stop() == 0, app.output()


def doctor(env, tmp_path) -> subprocess.CompletedProcess:
    config = tmp_path / "doctor.toml"
    config.write_text(f'data_dir = "{tmp_path / "data"}"\n[vision]\nfirst_result_timeout_s = 4.0\n'
                      '[camera]\nsource = "demo"\n[controls]\nenabled = false\n')
    return subprocess.run([sys.executable, "-m", "appliance", "doctor", "--config", str(config)],
                          cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120)


PAIR_FIX = "sudo ./install.sh --edgetpu"


@pytest.mark.parametrize("mode, at, says, fix", [
    ("works", "prepare", "did not run mobilenet_v1_0.25_128_quant_edgetpu.tflite's edgetpu-custom-op",
     PAIR_FIX),
    ("fail", "prepare", "could not open the first Edge TPU: Failed to load delegate", "plug in the Coral"),
    ("segv", "create", "was killed by SIGSEGV (segmentation fault) while loading the models", PAIR_FIX),
    ("abort", "create", "was killed by SIGABRT (abort()) while loading the models", PAIR_FIX),
    ("hang", "create", "gave no answer within 4 s while loading the models (hung)", PAIR_FIX),
])
def test_doctor_names_what_the_probe_saw_and_the_fix(box, mode, at, says, fix):
    tmp_path, env, mode_file = box
    mode_file.write_text(mode + "\n")
    env["FAKE_EDGETPU_AT"] = at
    done = doctor(env, tmp_path)
    line = next(x for x in done.stdout.splitlines() if " edge tpu:" in x)
    assert line.startswith("fail  edge tpu: found usb") and says in line, done.stdout
    fix_line = done.stdout.splitlines()[done.stdout.splitlines().index(line) + 1]
    assert fix_line.strip().startswith("fix:") and fix in fix_line, done.stdout
    runtime = next(x for x in done.stdout.splitlines() if " runtime:" in x)
    assert f"libedgetpu {env['APPLIANCE_EDGETPU_LIB']}" in runtime, done.stdout
    assert "coral usb: 5000 Mb/s" in done.stdout
    assert done.returncode == 1
