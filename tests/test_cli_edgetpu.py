"""The one-shot commands (classify, detect, teach) on an Edge TPU whose runtime crashes, aborts or hangs:
the real `appliance` command against the stand-in libedgetpu (compiled here) and a sysfs tree showing a
Coral USB Accelerator, as in test_edgetpu_paths.py.

The stand-in cannot run a model compiled for the Edge TPU (this runtime rejects the compiled model's
edgetpu-custom-op before any delegate's Prepare), and its crashes happen in Prepare, as with a
libedgetpu built for another TensorFlow. So each test's "_edgetpu" twin is a copy of the CPU model: the
delegate is created and its Prepare reached, and the CPU kernels compute the answer. Nothing here shows
a real Edge TPU working, only that its failures end a command with words instead of a signal.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest
from edgetpu_helpers import coral_env, delegate_pids, processes_with_env

from appliance.config import Config, apply_overrides
from appliance.errors import DeviceError
from appliance.inference.oneshot import GuardedModel, OneShotModels, on_accelerator
from appliance.inference.probe import CRASH_FIX
from appliance.paths import REPO_ROOT
from appliance.vision.classify import Classifier
from appliance.vision.images import read_image

CLASSIFIER = "mobilenet_v1_0.25_128_quant"
DETECTOR = "ssd_mobilenet_v1_coco_quant_2018_06_29_detect"
EMBEDDER = "mobilenet_v1_1.0_224_quant_embedding_extractor"
PAIR_FIX = "sudo ./install.sh --edgetpu"


@pytest.fixture
def box(tmp_path, fake_lib, models_dir):
    env, mode = coral_env(tmp_path, fake_lib, models_dir)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, (str(REPO_ROOT), env.get("PYTHONPATH"))))
    env["XDG_DATA_HOME"] = str(tmp_path / "xdg")
    return tmp_path, env, mode


def cpu_copy_twin(tmp_path, models_dir, name: str) -> str:
    """The CPU model and, under its "_edgetpu" name, a copy of it: the stand-in's Prepare is reached."""
    folder = tmp_path / "models"
    folder.mkdir(exist_ok=True)
    shutil.copy(models_dir / f"{name}.tflite", folder / f"{name}.tflite")
    shutil.copy(models_dir / f"{name}.tflite", folder / f"{name}_edgetpu.tflite")
    return str(folder / f"{name}.tflite")


def appliance(box, mode: str, *argv: str) -> subprocess.CompletedProcess:
    """The command as a user runs it, from the test's folder (where a core file would land)."""
    tmp_path, env, mode_file = box
    mode_file.write_text(mode + "\n")
    config = tmp_path / "config.toml"
    config.write_text("[vision]\nfirst_result_timeout_s = 4.0\n")
    proc = subprocess.Popen([sys.executable, "-m", "appliance", *argv, "--config", str(config)], cwd=tmp_path,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out, err = proc.communicate(timeout=120)
    done = subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
    done.pid = proc.pid
    return done


def assert_nothing_left(tmp_path) -> None:
    """No process the command started is still running (the worker is stopped, or was killed)."""
    deadline = time.monotonic() + 5
    while processes_with_env(str(tmp_path)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert processes_with_env(str(tmp_path)) == []


def command(name: str, model: str, photo: str, store) -> list[str]:
    if name == "teach":
        return ["teach", "--store", str(store), "--model", model, "mug", photo]
    return [name, "--model", model, "--json", photo]


@pytest.mark.parametrize("name, model, mode, says", [
    ("classify", CLASSIFIER, "segv", "was killed by SIGSEGV (segmentation fault) while loading the models"),
    ("classify", CLASSIFIER, "abort", "was killed by SIGABRT (abort()) while loading the models"),
    ("classify", CLASSIFIER, "hang", "gave no answer within 4 s while loading the models (hung)"),
    ("detect", DETECTOR, "segv", "was killed by SIGSEGV"),
    ("teach", EMBEDDER, "segv", "was killed by SIGSEGV"),
])
def test_a_crash_on_the_edge_tpu_is_the_commands_error(box, models_dir, images_dir, name, model, mode, says):
    tmp_path, env, _ = box
    path = cpu_copy_twin(tmp_path, models_dir, model)
    store = tmp_path / "classes.sqlite"
    argv = command(name, path, str(images_dir / "cat.bmp"), store)
    done = appliance(box, mode, *argv, "--device", "edgetpu")
    assert done.returncode == 2 and done.stdout == "", done.stderr
    lines = [line for line in done.stderr.splitlines() if not line.startswith("WARNING: inference worker:")]
    assert len(lines) == 2, done.stderr  # (a hang is also logged as the worker is stopped)
    error, fix = lines
    assert error.startswith(f"appliance: error: running {model}.tflite on the Edge TPU failed: ")
    assert says in error and "runtime ai_edge_litert" in error, error
    assert f"libedgetpu {env['APPLIANCE_EDGETPU_LIB']}" in error
    assert fix.startswith("  fix: ") and PAIR_FIX in fix and "--device cpu" in fix
    assert "Traceback" not in done.stderr and "core dumped" not in done.stderr.lower()
    assert not list(tmp_path.glob("core*"))
    assert delegate_pids(tmp_path) and done.pid not in delegate_pids(tmp_path)  # in the worker
    assert not store.exists()  # teach: nothing half-made
    assert_nothing_left(tmp_path)


@pytest.mark.parametrize("name, model, photo", [
    ("classify", CLASSIFIER, "cat.bmp"), ("detect", DETECTOR, "pets.jpg"),
])
def test_a_working_edge_tpu_gives_the_cpus_answer_from_the_worker(box, models_dir, images_dir, name, model,
                                                                  photo):
    tmp_path, _, _ = box
    path = cpu_copy_twin(tmp_path, models_dir, model)
    argv = command(name, path, str(images_dir / photo), None)
    on_tpu = appliance(box, "works", *argv, "--device", "edgetpu")
    assert on_tpu.returncode == 0, on_tpu.stderr
    assert f"{model}.tflite on edgetpu" in on_tpu.stderr  # the worker's start line
    workers = delegate_pids(tmp_path, "prepare")
    assert workers and on_tpu.pid not in workers, "the stand-in's Prepare ran, in the worker"
    on_cpu = appliance(box, "works", *argv, "--device", "cpu")
    assert on_cpu.returncode == 0, on_cpu.stderr
    assert delegate_pids(tmp_path, "prepare") == workers, "the CPU run loads no delegate"
    tpu, cpu = json.loads(on_tpu.stdout)[0], json.loads(on_cpu.stdout)[0]
    key = "classes" if name == "classify" else "objects"
    assert tpu[key] and tpu[key][0]["label"] == cpu[key][0]["label"]
    assert tpu == cpu  # the stand-in's delegate claims no nodes: the same kernels computed both
    assert_nothing_left(tmp_path)


def test_teach_on_a_working_edge_tpu(box, models_dir, images_dir):
    tmp_path, _, _ = box
    store = tmp_path / "classes.sqlite"
    path = cpu_copy_twin(tmp_path, models_dir, EMBEDDER)
    done = appliance(box, "works", *command("teach", path, str(images_dir / "cat.bmp"), store),
                     "--device", "edgetpu", "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["samples"] == 1 and delegate_pids(tmp_path, "prepare")
    assert_nothing_left(tmp_path)


def test_auto_falls_back_to_the_cpu_with_a_warning_when_the_worker_crashes(box, models_dir, images_dir):
    tmp_path, _, _ = box
    path = cpu_copy_twin(tmp_path, models_dir, CLASSIFIER)
    argv = command("classify", path, str(images_dir / "cat.bmp"), None)
    done = appliance(box, "segv", *argv, "--device", "auto")
    assert done.returncode == 0, done.stderr
    warning = [line for line in done.stderr.splitlines() if line.startswith("WARNING:")]
    assert len(warning) == 1 and "Traceback" not in done.stderr, done.stderr
    assert "was killed by SIGSEGV" in warning[0] and "running on the CPU" in warning[0]
    assert PAIR_FIX in warning[0]
    on_cpu = appliance(box, "segv", *argv, "--device", "cpu")
    assert json.loads(done.stdout) == json.loads(on_cpu.stdout)
    assert_nothing_left(tmp_path)


# -- a crash after the model loaded (a libedgetpu may crash at the first invoke instead) -------------

@pytest.fixture
def coral_here(tmp_path, fake_lib, models_dir, monkeypatch):
    """This process's environment as on a machine with the stand-in runtime, in "works" mode."""
    env, _ = coral_env(tmp_path, fake_lib, models_dir)
    for key in ("APPLIANCE_EDGETPU_LIB", "APPLIANCE_SYS_ROOT", "FAKE_EDGETPU_MODE_FILE", "FAKE_EDGETPU_LOG"):
        monkeypatch.setenv(key, env[key])
    return tmp_path


def vision(device: str):
    return apply_overrides(Config(), device=device, num_threads=1).vision


def test_the_worker_is_used_only_on_an_accelerator(coral_here, monkeypatch):
    assert on_accelerator("edgetpu") and on_accelerator("auto") and not on_accelerator("cpu")
    monkeypatch.setenv("APPLIANCE_SYS_ROOT", str(coral_here / "no-sys"))
    assert not on_accelerator("auto") and not on_accelerator("edgetpu")  # load_model's own error says so


@pytest.mark.parametrize("device", ["edgetpu", "auto"])
def test_a_worker_killed_between_photos(coral_here, models_dir, images_dir, device, caplog):
    path = cpu_copy_twin(coral_here, models_dir, CLASSIFIER)
    rgb = read_image(images_dir / "cat.bmp")
    with OneShotModels(vision(device)) as models:
        model = models.load(path)
        assert isinstance(model, GuardedModel) and model.backend == "edgetpu"
        classifier = Classifier(model)
        first = classifier.classify(rgb, top_k=3)
        worker = model.target.worker
        os.kill(worker.client().process.pid, signal.SIGSEGV)
        if device == "edgetpu":
            with pytest.raises(DeviceError) as err:
                classifier.classify(rgb, top_k=3)
            assert "was killed by SIGSEGV" in err.value.problem and err.value.fix == CRASH_FIX
        else:
            with caplog.at_level(logging.WARNING):
                assert classifier.classify(rgb, top_k=3) == first
            assert model.backend == "cpu" and "running on the CPU" in caplog.text
    assert not worker.alive
    assert os.getpid() not in delegate_pids(coral_here), "the delegate is loaded in the worker only"


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP])
def test_a_command_stopped_while_the_edge_tpu_hangs_leaves_no_worker_behind(box, models_dir, images_dir,
                                                                            sig):
    """Ctrl-C, `kill` or a closed terminal while the runtime hangs: the hung worker (which ignores SIGTERM
    and SIGINT, as the service's must) goes with the command instead of holding the Edge TPU."""
    tmp_path, env, mode_file = box
    mode_file.write_text("hang\n")
    path = cpu_copy_twin(tmp_path, models_dir, CLASSIFIER)
    config = tmp_path / "config.toml"
    config.write_text("[vision]\nfirst_result_timeout_s = 120.0\n")  # the command would wait long
    proc = subprocess.Popen([sys.executable, "-m", "appliance", "classify", "--model", path, "--device",
                             "edgetpu", "--config", str(config), str(images_dir / "cat.bmp")],
                            cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not delegate_pids(tmp_path) and time.monotonic() < deadline:  # the worker is stuck in it
            time.sleep(0.1)
        assert delegate_pids(tmp_path), "the worker never reached the stand-in"
        time.sleep(0.3)
        proc.send_signal(sig)
        proc.communicate(timeout=20)
    finally:
        proc.kill()
    assert proc.returncode != 0
    assert_nothing_left(tmp_path)
