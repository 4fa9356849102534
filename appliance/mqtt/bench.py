"""MQTT benchmark: messages per second at the camera's 30 fps, reconnect time, RSS with the broker flapping.

    python -m appliance.mqtt.bench [--seconds 60] [--flap-seconds 120] [--down 5] [--up 10]

Runs the real appliance (demo camera at 30 fps, CPU models from APPLIANCE_MODELS_FROM or the usual
places, one class taught so the recognised class changes with the demo's scenes) against Debian's
`mosquitto`, started here on a free 127.0.0.1 port and stopped / restarted to flap. Prints figures only.
"""

from __future__ import annotations

import argparse
import dataclasses
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import paho.mqtt.client as paho


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _Mosquitto:
    def __init__(self, folder: Path) -> None:
        self.port = _free_port()
        self.conf = folder / "mosquitto.conf"
        self.conf.write_text(f"listener {self.port} 127.0.0.1\nallow_anonymous true\npersistence false\n")
        self.proc: subprocess.Popen | None = None

    def start(self) -> float:
        """Start and wait until it listens; -> time.monotonic() when it does."""
        exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        self.proc = subprocess.Popen([exe, "-c", str(self.conf)], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return time.monotonic()
            except OSError:
                time.sleep(0.01)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(5)
            self.proc = None


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 2**20


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="steady phase: count messages")
    parser.add_argument("--flap-seconds", type=float, default=120.0, help="flapping phase length")
    parser.add_argument("--down", type=float, default=5.0, help="seconds the broker is down per flap")
    parser.add_argument("--up", type=float, default=10.0, help="seconds the broker is up per flap")
    args = parser.parse_args(argv)
    if shutil.which("mosquitto") is None and not Path("/usr/sbin/mosquitto").exists():
        print("mosquitto is not installed: sudo apt-get install mosquitto")
        return 2

    from appliance.config import Config, apply_overrides, demo_config
    from appliance.system import System

    tmp = Path(tempfile.mkdtemp(prefix="appliance-mqtt-bench-"))
    broker = _Mosquitto(tmp)
    broker.start()
    config = demo_config(Config(), data_dir=tmp / "data")
    config = apply_overrides(config, web=False, controls=False, fps=30.0)
    config = dataclasses.replace(config, mqtt=dataclasses.replace(
        config.mqtt, enabled=True, host="127.0.0.1", port=broker.port, device_id="bench", username=""))
    counts: Counter[str] = Counter()
    lock = threading.Lock()

    def on_message(_c, _u, msg) -> None:
        with lock:
            counts[msg.topic.split("/", 2)[-1] if msg.topic.startswith("appliance/") else "discovery"] += 1

    watcher = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="bench-watcher")
    watcher.on_message = on_message
    watcher.on_connect = lambda c, *a: c.subscribe([("appliance/bench/#", 0), ("homeassistant/#", 0)])
    watcher.reconnect_delay_set(0.1, 0.5)
    watcher.connect("127.0.0.1", broker.port)
    watcher.loop_start()
    system = System(config)
    system.start(web=False, controls=False)
    try:
        while not system.status()["mqtt"]["connected"] or system.latest_result() is None:
            time.sleep(0.1)
        system.classes.teach("first scene")  # the recognised class now changes with the scenes
        time.sleep(2.0)
        with lock:
            counts.clear()
        status0 = system.status()
        t0 = time.monotonic()
        time.sleep(args.seconds)
        took = time.monotonic() - t0
        status1 = system.status()
        with lock:
            got = dict(counts)
        cap = (status1["frames_captured"] - status0["frames_captured"]) / took
        inf = (status1["inferences"] - status0["inferences"]) / took
        total = sum(got.values())
        print(f"steady {took:.0f} s: camera {cap:.1f} fps, inference {inf:.1f} fps")
        print(f"  MQTT messages: {total / took:.2f} per second ({total} in {took:.0f} s)")
        for topic, n in sorted(got.items(), key=lambda kv: -kv[1]):
            print(f"    {topic:12s} {n:5d}  ({n / took:.2f}/s)")

        rss = [(0.0, _rss_mb())]
        reconnects: list[float] = []
        start = time.monotonic()
        while time.monotonic() - start < args.flap_seconds:
            broker.stop()
            time.sleep(args.down)
            up_at = broker.start()
            while not system.status()["mqtt"]["connected"]:
                time.sleep(0.01)
            reconnects.append(time.monotonic() - up_at)
            time.sleep(max(0.0, args.up - reconnects[-1]))
            rss.append((time.monotonic() - start, _rss_mb()))
        status = system.status()
        print(f"flapping {time.monotonic() - start:.0f} s: broker down {args.down:g} s / up {args.up:g} s, "
              f"{len(reconnects)} outages")
        median = sorted(reconnects)[len(reconnects) // 2]
        print(f"  reconnect once the broker listens again: median {median:.2f} s, "
              f"max {max(reconnects):.2f} s")
        half = rss[len(rss) // 2][1]
        print(f"  RSS: {rss[0][1]:.0f} MB at the start, {rss[-1][1]:.0f} MB at the end, max "
              f"{max(r for _, r in rss):.0f} MB; second half {half:.0f} -> {rss[-1][1]:.0f} MB")
        print(f"  events dropped while away: {status['mqtt']['dropped_events']}; inferences during flapping: "
              f"{status['inferences'] - status1['inferences']}")
    finally:
        system.stop()
        watcher.loop_stop()
        broker.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
