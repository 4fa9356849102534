"""End to end: buttons on gpiozero MockFactory pins teach slots from an image-folder camera; LEDs follow;
classes survive a restart; holding a button clears its class. And `appliance run --demo` as a process."""

import dataclasses
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import pytest
from pipeline_helpers import wait_until
from system_helpers import CameraFolder, quick_config

from appliance.paths import REPO_ROOT
from appliance.system import System

HOLD_S = 0.5


def press(controls, slot: int, seconds: float = 0.1) -> None:
    pin = controls.buttons[slot].pin
    pin.drive_low()   # active low: pressed
    time.sleep(seconds)
    pin.drive_high()


def led_states(controls) -> dict[int, bool]:
    return {slot: bool(led.value) for slot, led in controls.leds.items()}


@pytest.fixture
def config(tmp_path, models_dir):
    base = quick_config(tmp_path, models_dir, controls=True, pin_factory="mock")
    return dataclasses.replace(base, controls=dataclasses.replace(base.controls, hold_seconds=HOLD_S))


def test_buttons_teach_slots_leds_follow_restart_keeps_classes_hold_clears(config, tmp_path, images_dir):
    imp = images_dir / "imprinting"
    camera = CameraFolder(tmp_path / "camera")
    camera.show(imp / "cat_train_0.bmp")
    with System(config, source=camera.source()) as system:
        system.start()
        controls = system.controls
        assert controls is not None
        assert wait_until(lambda: system.latest_result() is not None, 20)

        press(controls, 1)
        assert wait_until(lambda: system.teacher.busy, 3)
        seen = set()
        while system.teacher.busy:  # slot 1's LED blinks while the burst records
            seen.add(led_states(controls)[1])
            time.sleep(0.01)
        assert seen == {True, False}
        assert controls.wait_idle(5)
        assert system.store.find("Class 1").samples == config.teach.frames

        camera.show(imp / "dog_train_0.bmp")
        assert wait_until(lambda: camera.showing(imp / "dog_train_0.bmp"), 10)
        press(controls, 2)
        assert wait_until(lambda: system.teacher.busy, 3)
        press(controls, 1)  # pressed during the burst: ignored, not queued
        assert controls.wait_idle(5)
        assert system.store.find("Class 2").samples == config.teach.frames
        assert system.store.find("Class 1").samples == config.teach.frames
        assert controls.ignored_presses >= 1

        camera.show(imp / "cat_test_0.bmp")  # photos not used for teaching
        assert wait_until(lambda: system.latest_result().recognition.label == "Class 1"
                          and led_states(controls) == {1: True, 2: False, 3: False, 4: False}, 10)
        camera.show(imp / "dog_test_0.bmp")
        assert wait_until(lambda: system.latest_result().recognition.label == "Class 2"
                          and led_states(controls) == {1: False, 2: True, 3: False, 4: False}, 10)

    with System(config, source=camera.source()) as again:  # a restart on the same data dir
        assert {c.label: c.samples for c in again.store.list_classes()} == {"Class 1": 10, "Class 2": 10}
        again.start()
        controls = again.controls
        assert wait_until(lambda: (r := again.latest_result()) is not None
                          and r.recognition.label == "Class 2", 20)
        pin = controls.buttons[1].pin
        pin.drive_low()
        time.sleep(HOLD_S + 0.4)  # hold: clear slot 1
        pin.drive_high()
        assert wait_until(lambda: again.store.find("Class 1").samples == 0, 3)
        assert again.store.find("Class 2").samples == 10
        time.sleep(0.3)
        assert not again.teacher.busy, "a hold is not also a press"
        assert again.store.find("Class 1").samples == 0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGHUP])
def test_run_demo_serves_and_stops_on_sigterm(tmp_path, models_dir, stop_signal):
    port = free_port()
    env = {**os.environ, "APPLIANCE_MODELS_FROM": str(models_dir), "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "appliance", "run", "--demo", "--data-dir", str(tmp_path),
                             "--port", str(port)], cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        status = None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/status", timeout=2) as resp:
                    status = json.load(resp)
                if status["inferences"] > 3:
                    break
            except OSError:
                pass
            time.sleep(0.3)
        assert status is not None and status["inferences"] > 3, proc.stdout.read() if proc.poll() else ""
        assert status["backend"] == "cpu" and status["source"] == "demo"
        t0 = time.monotonic()
        proc.send_signal(stop_signal)
        code = proc.wait(10)
        took = time.monotonic() - t0
        out = proc.stdout.read()
    finally:
        if proc.poll() is None:
            proc.kill()
    assert code == 0, out
    assert took < 4.0, f"stopped in {took:.1f} s"
    assert f"page http://127.0.0.1:{port}" in out and "backend cpu" in out and "stopped" in out
    assert f"{signal.Signals(stop_signal).name} received" in out and "Traceback" not in out
    assert (tmp_path / "classes.sqlite").exists()
