"""Guessing benchmark: how much does a password-guessing client slow recognition down?

    python -m appliance.bench.guessing [--seconds 20] [--guessers 8] [--json]

Starts a real System with a web password (one class taught, so every frame is embedded and recognised)
on 127.0.0.1 and measures inference fps: without guessing, while G threads in another process send
wrong bearer passwords as fast as the server answers (each thread from its own loopback address,
127.0.0.2, 127.0.0.3, ...), again with the throttle switched off (the scrypt cost of every guess paid, as
before the throttle existed), and without guessing again. Goal: fps while guessing >= 0.9 of normal.
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

from appliance.config import apply_overrides, demo_config
from appliance.model_files import ENV_MODELS_FROM
from appliance.vision import backends
from appliance.web.throttle import Throttle

PASSWORD = "the right password"


@dataclass(frozen=True)
class GuessPhase:
    inference_fps: float
    guesses: int
    answered_401: int
    answered_429: int
    cpu_percent: float


@dataclass(frozen=True)
class GuessBench:
    guessers: int
    seconds: float
    idle: GuessPhase
    throttled: GuessPhase
    unthrottled: GuessPhase
    idle_after: GuessPhase
    ratio: float              # throttled fps / mean idle fps
    ratio_unthrottled: float


class NoThrottle(Throttle):
    """Every guess checked at once: the cost of guessing without the throttle, for comparison."""

    def attempt(self, address, verify):
        return verify()


def _guesser(port: int, source: str, stop_at: float, counts: dict, lock: threading.Lock) -> None:
    n = 0
    while time.time() < stop_at:
        n += 1
        try:
            sock = socket.create_connection(("127.0.0.1", port), timeout=10, source_address=(source, 0))
            sock.sendall(f"GET /api/classes HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                         f"Authorization: Bearer guess {n}\r\nConnection: close\r\n\r\n".encode())
            status = sock.recv(64).split(b" ", 2)[1].decode()
            sock.close()
        except (OSError, IndexError):
            status = "error"
        with lock:
            counts[status] = counts.get(status, 0) + 1


def _guessers_process(port: int, guessers: int, start_at: float, stop_at: float, out) -> None:
    counts: dict[str, int] = {}
    lock = threading.Lock()
    time.sleep(max(0.0, start_at - time.time()))
    threads = [threading.Thread(target=_guesser, args=(port, f"127.0.0.{2 + i}", stop_at, counts, lock),
                                daemon=True) for i in range(guessers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(stop_at - time.time() + 15)
    out.send(counts)
    out.close()


def _phase(system, seconds: float, port: int | None = None, guessers: int = 0) -> GuessPhase:
    child = receive = None
    if guessers and port:
        receive, send = mp.Pipe(duplex=False)
        start_at = time.time() + 2.0
        child = mp.get_context("spawn").Process(target=_guessers_process,
                                                args=(port, guessers, start_at, start_at + seconds, send))
        child.start()
        time.sleep(max(0.0, start_at - time.time()))
    n0, cpu0, t0 = system.stats.inferences, time.process_time(), time.monotonic()
    time.sleep(seconds)
    wall = time.monotonic() - t0
    fps = (system.stats.inferences - n0) / wall
    cpu = 100.0 * (time.process_time() - cpu0) / wall
    counts: dict[str, int] = {}
    if child is not None:
        counts = receive.recv() if receive.poll(seconds + 30) else {}
        child.join(10)
        time.sleep(1.0)
    return GuessPhase(round(fps, 2), sum(counts.values()), counts.get("401", 0), counts.get("429", 0),
                      round(cpu, 1))


def run_bench(seconds: float, guessers: int, source: str, device: str) -> GuessBench:
    from appliance.system import System
    from appliance.web.app import create_app
    from appliance.web.auth import hash_password
    from appliance.web.server import serve
    from appliance.web.state import STATE_KEY

    with tempfile.TemporaryDirectory(prefix="appliance-guess-bench-") as data_dir:
        config = apply_overrides(demo_config(data_dir=Path(data_dir)), source=source, device=device,
                                 models_dir=os.environ.get(ENV_MODELS_FROM) or str(Path(data_dir) / "models"))
        config = replace(config, web=replace(config.web, password_hash=hash_password(PASSWORD)))
        system = System(config, throttle=True)
        system.start(web=False, controls=False)
        app = create_app(system)
        server = serve(app, "127.0.0.1", 0, config.web.threads)
        try:
            deadline = time.monotonic() + 60
            while system.stats.inferences == 0 and time.monotonic() < deadline:
                time.sleep(0.1)
            system.classes.teach("bench")
            time.sleep(3.0)
            idle = _phase(system, seconds)
            throttled = _phase(system, seconds, server.port, guessers)
            state = app.extensions[STATE_KEY]
            state.throttle, kept = NoThrottle(), state.throttle
            unthrottled = _phase(system, seconds, server.port, guessers)
            state.throttle = kept
            idle_after = _phase(system, seconds)
        finally:
            server.stop()
            system.stop()
    base = (idle.inference_fps + idle_after.inference_fps) / 2 or 1.0
    return GuessBench(guessers, seconds, idle, throttled, unthrottled, idle_after,
                      round(throttled.inference_fps / base, 3), round(unthrottled.inference_fps / base, 3))


def report(b: GuessBench) -> str:
    def line(name: str, p: GuessPhase) -> str:
        extra = (f"; {p.guesses} guesses ({p.guesses / b.seconds:.0f}/s): {p.answered_401} checked (401), "
                 f"{p.answered_429} refused unchecked (429)") if p.guesses else ""
        return f"  {name:<28} inference {p.inference_fps:5.1f} fps, process CPU {p.cpu_percent:4.0f} %{extra}"

    return "\n".join([
        f"password guessing: {b.guessers} guessing threads from {b.guessers} loopback addresses, "
        f"{b.seconds:g} s per phase",
        line("no guessing", b.idle),
        line("guessing, throttled", b.throttled),
        line("guessing, throttle off", b.unthrottled),
        line("no guessing again", b.idle_after),
        f"  fps ratio while guessing: {b.ratio:.3f} throttled (goal >= 0.9), "
        f"{b.ratio_unthrottled:.3f} with the throttle off",
    ])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m appliance.bench.guessing",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="length of each phase")
    parser.add_argument("--guessers", type=int, default=8, help="guessing threads, one address each")
    parser.add_argument("--source", default="demo",
                        help="camera source (default: the demo camera's photos; any source `run` takes)")
    parser.add_argument("--device", default="auto", choices=backends.device_choices())
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    result = run_bench(args.seconds, args.guessers, args.source, args.device)
    print(json.dumps(asdict(result), indent=2) if args.json else report(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
