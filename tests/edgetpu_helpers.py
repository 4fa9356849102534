"""The stand-in libedgetpu (compiled here from tests/fake_edgetpu) and a sysfs tree holding a Coral USB
Accelerator's ids: together they make this machine look like one with an Edge TPU whose runtime loads,
fails to load, segfaults, aborts or hangs, as a test chooses."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from appliance.paths import REPO_ROOT

SOURCE = Path(__file__).parent / "fake_edgetpu" / "fake_libedgetpu.c"


def build_fake_libedgetpu(folder: Path) -> Path:
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        pytest.skip("no C compiler: the stand-in libedgetpu cannot be built (./dev.sh test installs gcc)")
    folder.mkdir(parents=True, exist_ok=True)
    library = folder / "libedgetpu.so.1"
    subprocess.run([compiler, "-shared", "-fPIC", "-O1", "-o", str(library), str(SOURCE)], check=True)
    return library


def coral_sysfs(root: Path, speed: str = "5000") -> Path:
    """A /sys with one USB Accelerator after its firmware loaded (18d1:9302) on a USB 3 port."""
    device = root / "bus" / "usb" / "devices" / "2-1"
    device.mkdir(parents=True)
    (device / "idVendor").write_text("18d1\n")
    (device / "idProduct").write_text("9302\n")
    (device / "speed").write_text(speed + "\n")
    return root


def coral_env(tmp_path: Path, fake_lib: Path, models_dir: Path, mode: str = "works") -> tuple[dict, Path]:
    """(environment, mode file) of a machine with a Coral plugged in and the stand-in runtime installed:
    write "works", "fail", "segv", "abort" or "hang" into the mode file to change what it does."""
    mode_file = tmp_path / "fake-mode"
    mode_file.write_text(mode + "\n")
    env = {**os.environ, "APPLIANCE_MODELS_FROM": str(models_dir), "APPLIANCE_EDGETPU_LIB": str(fake_lib),
           "APPLIANCE_SYS_ROOT": str(coral_sysfs(tmp_path / "sys")), "FAKE_EDGETPU_MODE_FILE": str(mode_file),
           "FAKE_EDGETPU_LOG": str(tmp_path / "fake.log"), "PYTHONUNBUFFERED": "1"}
    return env, mode_file


def delegate_pids(tmp_path: Path, event: str = "create") -> set[int]:
    """The processes the stand-in's log says created (or prepared) a delegate."""
    log = tmp_path / "fake.log"
    lines = log.read_text().splitlines() if log.exists() else []
    return {int(line.rsplit("pid=", 1)[1]) for line in lines if line.startswith(event + " ")}


def processes_with_env(marker: str) -> list[int]:
    """Live processes whose environment mentions `marker` (a test's temporary path): what it started
    and left running."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes()
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if marker.encode() in environ and state != "Z":
            found.append(int(entry.name))
    return found


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http(port: int, path: str, method: str = "GET", body: dict | None = None) -> tuple[int, dict | str]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data, method=method,
                                     headers={"Content-Type": "application/json"} if data else {})
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:
            raw, status, kind = resp.read(), resp.status, resp.headers.get("Content-Type", "")
    except urllib.error.HTTPError as exc:
        raw, status, kind = exc.read(), exc.code, exc.headers.get("Content-Type", "")
    return status, json.loads(raw) if "json" in kind else raw.decode(errors="replace")


class Appliance:
    """`appliance run --demo` as a real process, with the environment a test gives it."""

    def __init__(self, tmp_path: Path, env: dict, *args: str) -> None:
        self.port = free_port()
        self.log = tmp_path / "appliance.log"
        self._out = self.log.open("w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "appliance", "run", "--demo", "--data-dir", str(tmp_path / "data"),
             "--port", str(self.port), *args], cwd=REPO_ROOT, env=env, stdout=self._out,
            stderr=subprocess.STDOUT, text=True)

    def get(self, path: str) -> tuple[int, dict | str]:
        return http(self.port, path)

    def status(self) -> dict | None:
        try:
            code, body = self.get("/api/status")
        except OSError:
            return None
        return body if code == 200 else None

    def wait_for(self, predicate, timeout: float = 60.0) -> dict:
        """The first /api/status that satisfies predicate; fails with the log when none does."""
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            exited = self.proc.poll()
            assert exited is None, f"the appliance exited ({exited}):\n{self.output()}"
            last = self.status()
            if last is not None and predicate(last):
                return last
            time.sleep(0.3)
        raise AssertionError(f"no matching status within {timeout} s; last: {last}\n{self.output()}")

    def output(self) -> str:
        if not self._out.closed:
            self._out.flush()
        return self.log.read_text()

    def stop(self) -> int | None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._out.close()
        return self.proc.returncode
