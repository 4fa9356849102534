"""Web load benchmark: does serving many MJPEG viewers slow the camera loop?

    python -m appliance.bench.web [--viewers 20] [--seconds 60] [--source SPEC] [--unthrottled] [--json]

Starts a real System (one class taught, so every frame is embedded and recognised) and its web server
on 127.0.0.1, measures inference fps for N seconds without viewers, for N seconds with V viewers reading
/stream.mjpg (threads in a separate process, so this process's CPU time is the server's), and N seconds
without them again (drift on a shared machine shows), and prints: the fps ratio with / without (goal
>= 0.9), frames delivered per viewer, server CPU (process CPU time / wall), and RSS before and after.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import socket
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from appliance.config import Config, apply_overrides, demo_config
from appliance.model_files import ENV_MODELS_FROM
from appliance.vision import backends


@dataclass(frozen=True)
class Phase:
    seconds: float
    inference_fps: float
    frames_published: int
    cpu_percent: float          # process CPU time / wall time x 100 (200 % = both cores of a 2-core box)
    rss_mb: float               # at the end of the phase


@dataclass(frozen=True)
class WebBench:
    viewers: int
    source: str
    backend: str
    idle: Phase                  # before the viewers
    loaded: Phase
    idle_after: Phase            # after they left: before and after bracket any drift of a shared machine
    ratio: float                 # loaded / mean(idle, idle_after) inference fps
    frames_per_viewer: list[int]
    viewer_fps_mean: float
    delivered_fraction: float    # mean frames per viewer / frames published while loaded
    viewer_errors: int


def rss_mb() -> float:
    """Current resident set size of this process (not the peak)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024.0
    return 0.0


def _viewer(port: int, count_from: float, stop_at: float, counts: list[int], errors: list[int],
            index: int) -> None:
    """Read /stream.mjpg until stop_at, counting whole JPEG parts received after count_from (time.time)."""
    try:
        sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        sock.sendall(f"GET /stream.mjpg HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
        buf = bytearray()
        while time.time() < stop_at:
            chunk = sock.recv(262144)
            if not chunk:
                break
            buf += chunk
            while True:
                at = buf.find(b"Content-Length: ")
                if at < 0:
                    del buf[:-32]
                    break
                end = buf.find(b"\r\n\r\n", at)
                if end < 0:
                    break
                length = int(buf[at + 16:buf.index(b"\r\n", at)])
                if len(buf) < end + 4 + length:
                    break
                del buf[:end + 4 + length]
                if time.time() >= count_from:
                    counts[index] += 1
        sock.close()
    except OSError:
        errors[index] += 1


def _viewers_process(port: int, viewers: int, count_from: float, stop_at: float, out) -> None:
    counts, errors = [0] * viewers, [0] * viewers
    threads = [threading.Thread(target=_viewer, args=(port, count_from, stop_at, counts, errors, i),
                                daemon=True) for i in range(viewers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(stop_at - time.time() + 15)
    out.send((counts, sum(errors)))
    out.close()


def _measure(system, seconds: float) -> Phase:
    snap0, seq0 = system.stats.snapshot(), system.hub.latest()[0]
    cpu0, wall0 = time.process_time(), time.monotonic()
    time.sleep(seconds)
    cpu1, wall1 = time.process_time(), time.monotonic()
    snap1, seq1 = system.stats.snapshot(), system.hub.latest()[0]
    wall = wall1 - wall0
    return Phase(round(wall, 2), round((snap1["inferences"] - snap0["inferences"]) / wall, 2), seq1 - seq0,
                 round(100.0 * (cpu1 - cpu0) / wall, 1), round(rss_mb(), 1))


def without_client_caps(config: Config) -> Config:
    """Every viewer of a benchmark comes from 127.0.0.1, so the per-client caps (which would refuse the
    9th stream and the 33rd connection) are off, as `[web] max_live_views_per_client = 0` and
    `max_connections_per_client = 0` would turn them off in a config file."""
    return replace(config, web=replace(config.web, max_live_views_per_client=0, max_connections_per_client=0))


def run_bench(viewers: int, seconds: float, source: str, throttle: bool, device: str,
              settle_s: float = 5.0) -> WebBench:
    from appliance.system import System
    from appliance.web.app import create_app
    from appliance.web.server import serve

    with tempfile.TemporaryDirectory(prefix="appliance-web-bench-") as data_dir:
        config = apply_overrides(demo_config(data_dir=Path(data_dir)), source=source, device=device,
                                 models_dir=os.environ.get(ENV_MODELS_FROM) or str(Path(data_dir) / "models"))
        config = without_client_caps(config)
        system = System(config, throttle=throttle)
        system.start(web=False, controls=False)
        server = serve(create_app(system), "127.0.0.1", 0, max(config.web.threads, viewers + 8))
        try:
            deadline = time.monotonic() + 60
            while system.stats.snapshot()["inferences"] == 0 and time.monotonic() < deadline:
                time.sleep(0.1)
            system.classes.teach("bench")  # from now on every frame is embedded and recognised
            time.sleep(settle_s)  # the recognizer rebuilds its head, the interpreter warms up
            idle = _measure(system, seconds)
            receive, send = mp.Pipe(duplex=False)
            count_from = time.time() + 3.0  # time to start the process and connect every viewer
            child = mp.get_context("spawn").Process(
                target=_viewers_process, args=(server.port, viewers, count_from, count_from + seconds, send))
            child.start()
            time.sleep(max(0.0, count_from - time.time()))
            loaded = _measure(system, seconds)
            counts, errors = receive.recv() if receive.poll(seconds + 30) else ([0] * viewers, viewers)
            child.join(10)
            time.sleep(1.0)
            idle_after = _measure(system, seconds)
        finally:
            server.stop()
            system.stop()
    mean = sum(counts) / max(1, len(counts))
    baseline = (idle.inference_fps + idle_after.inference_fps) / 2
    ratio = loaded.inference_fps / baseline if baseline else 0.0
    return WebBench(
        viewers=viewers, source=source, backend=system.stats.snapshot()["backend"], idle=idle,
        loaded=loaded, idle_after=idle_after, ratio=round(ratio, 3), frames_per_viewer=counts,
        viewer_fps_mean=round(mean / seconds, 2),
        delivered_fraction=round(mean / max(1, loaded.frames_published), 3), viewer_errors=errors,
    )


def report(b: WebBench) -> str:
    return "\n".join([
        f"web load: {b.viewers} MJPEG viewers on 127.0.0.1, source {b.source}, backend {b.backend}",
        f"  inference fps without viewers: {b.idle.inference_fps:.1f} before, "
        f"{b.idle_after.inference_fps:.1f} after;  with viewers: {b.loaded.inference_fps:.1f};  "
        f"ratio {b.ratio:.3f} (goal >= 0.9)",
        f"  frames per viewer: mean {sum(b.frames_per_viewer) / max(1, b.viewers):.0f} "
        f"(min {min(b.frames_per_viewer, default=0)}, max {max(b.frames_per_viewer, default=0)}), "
        f"{b.viewer_fps_mean:.1f} fps each, {100 * b.delivered_fraction:.0f} % of the frames published; "
        f"viewer errors {b.viewer_errors}",
        f"  server CPU: {b.idle.cpu_percent:.0f} % without viewers, {b.loaded.cpu_percent:.0f} % with, "
        f"{b.idle_after.cpu_percent:.0f} % after (process CPU time / wall; 100 % = one core)",
        f"  RSS: {b.idle.rss_mb:.0f} MB before the viewers, {b.loaded.rss_mb:.0f} MB with them, "
        f"{b.idle_after.rss_mb:.0f} MB after they left",
    ])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m appliance.bench.web",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--viewers", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=60.0, help="length of each phase")
    parser.add_argument("--source", default="demo",
                        help="camera source (default: the demo camera's photos; any source `run` takes)")
    parser.add_argument("--unthrottled", action="store_true",
                        help="let the source go as fast as inference can (CPU-bound loop: the harshest case)")
    parser.add_argument("--device", default="auto", choices=backends.device_choices())
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)
    result = run_bench(args.viewers, args.seconds, args.source, not args.unthrottled, args.device)
    print(json.dumps(asdict(result), indent=2) if args.json else report(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
