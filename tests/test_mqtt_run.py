"""`appliance run --demo` as a real process on a real Mosquitto: availability, commands, recognition
events from the demo camera, /api/status's mqtt object, and the last will when the process is killed -9."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request

from mqtt_helpers import USER, Watcher, free_port

from appliance.paths import REPO_ROOT

DEV = "demo1"
PREFIX = f"appliance/{DEV}"


def test_run_demo_publishes_obeys_commands_and_leaves_a_last_will(tmp_path, models_dir, mqtt_broker):
    port = free_port()
    config = tmp_path / "config.toml"
    config.write_text(f"""
[teach]
frames = 4
seconds = 0.3

[mqtt]
enabled = true
host = "127.0.0.1"
port = {mqtt_broker.port}
username = "{USER}"
password_file = "{mqtt_broker.password_file}"
device_id = "{DEV}"
keepalive_s = 5
""")
    w = Watcher(mqtt_broker, f"{PREFIX}/#")
    env = {**os.environ, "APPLIANCE_MODELS_FROM": str(models_dir), "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "appliance", "run", "--demo", "--config", str(config),
                             "--data-dir", str(tmp_path / "data"), "--port", str(port)],
                            cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    try:
        w.wait(lambda w: w.on(f"{PREFIX}/available") == [b"online"], 60)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/status", timeout=5) as resp:
            status = json.load(resp)
        assert status["mqtt"] == {"enabled": True, "connected": True, "error": None, "dropped_events": 0}

        w.publish(f"{PREFIX}/command", {"id": "t", "action": "teach", "label": "first scene"})
        reply = w.wait(lambda w: [r for r in w.json_on(f"{PREFIX}/command/reply") if r["id"] == "t"], 30)[0]
        assert reply["ok"] and reply["class"]["samples"] == 4
        # the demo camera moves on to other photos every 4 s: the taught one is recognised, then not
        w.wait(lambda w: any(e["label"] == "first scene" for e in w.json_on(f"{PREFIX}/events")), 20)
        left = w.wait(lambda w: [e for e in w.json_on(f"{PREFIX}/events")
                                 if e["previous"]["label"] == "first scene" and e["label"] == "unknown"], 20)
        assert left[0]["class_id"] is None and left[0]["time"] > time.time() - 60

        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        # the broker publishes the last will: `offline`, retained
        w.wait(lambda w: w.on(f"{PREFIX}/available")[-1:] == [b"offline"], 15)
    finally:
        if proc.poll() is None:
            proc.kill()
        w.close()
    late = Watcher(mqtt_broker, f"{PREFIX}/available")  # a newcomer sees the retained will
    try:
        assert late.wait(lambda w: w.on(f"{PREFIX}/available")) == [b"offline"]
        assert late.messages[0][2] is True
        late.publish(f"{PREFIX}/available", b"", retain=True)
    finally:
        late.close()
