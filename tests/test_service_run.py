"""The real `appliance run` under a real NOTIFY_SOCKET: READY=1, WATCHDOG=1 pings, and no pings while
its network camera stops delivering.

The camera is a real MJPEG-over-HTTP stream of real photos served on 127.0.0.1 (like an IP camera).
Halfway the server keeps the connection open but stops sending: OpenCV's read blocks inside FFmpeg,
the capture thread is stuck, no frames and no inferences advance, System.healthy() turns false, and the
watchdog pings must stop (systemd would restart the service after WatchdogSec).
"""

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import cv2
import pytest

from appliance.vision.images import read_image

PHOTOS = ("cat.bmp", "bird.bmp", "parrot.jpg", "owl.jpg")
BOUNDARY = "frame"


class MjpegCamera:
    """An IP camera on 127.0.0.1: multipart JPEG at `fps`; `frozen` set = connection open, no bytes."""

    def __init__(self, jpegs: list[bytes], fps: float = 10.0) -> None:
        self.jpegs = jpegs
        self.fps = fps
        self.frozen = threading.Event()
        self.closing = threading.Event()
        self.sent = 0
        camera = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={BOUNDARY}")
                self.end_headers()
                index = 0
                while not camera.closing.is_set():
                    if camera.frozen.is_set():  # a hung camera: the socket stays open, nothing comes
                        time.sleep(0.05)
                        continue
                    jpeg = camera.jpegs[index % len(camera.jpegs)]
                    index += 1
                    try:
                        self.wfile.write(f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\n"
                                         f"Content-Length: {len(jpeg)}\r\n\r\n".encode() + jpeg + b"\r\n")
                        self.wfile.flush()
                    except OSError:
                        return
                    camera.sent += 1
                    time.sleep(1.0 / camera.fps)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/stream.mjpg"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> "MjpegCamera":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.closing.set()
        self.server.shutdown()
        self.server.server_close()


class Notifications:
    """The service's side of systemd: a bound AF_UNIX datagram socket, messages with arrival times."""

    def __init__(self, path: Path) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.1)
        self.got: list[tuple[float, str]] = []

    def collect(self, seconds: float, until=None) -> list[str]:
        end = time.monotonic() + seconds
        new = []
        while time.monotonic() < end:
            try:
                data = self.sock.recv(65536).decode()
            except TimeoutError:
                continue
            self.got.append((time.monotonic(), data))
            new.append(data)
            if until is not None and until(data):
                break
        return new


def _jpegs(images_dir: Path) -> list[bytes]:
    frames = []
    for name in PHOTOS:
        rgb = cv2.resize(read_image(images_dir / name), (320, 240))
        ok, buf = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
        assert ok
        frames.append(buf.tobytes())
    return frames


def test_run_notifies_ready_pings_and_stops_pinging_when_capture_hangs(tmp_path, images_dir, models_dir):
    if not (Path(__file__).parent.parent / "appliance" / "commands" / "run.py").exists():
        pytest.skip("appliance run is not written yet")
    with MjpegCamera(_jpegs(images_dir)) as camera:
        config = tmp_path / "config.toml"
        config.write_text(f"""data_dir = "{tmp_path / 'data'}"
[camera]
source = "{camera.url}"
width = 320
height = 240
fps = 10.0
[vision]
device = "cpu"
models_from = "{models_dir}"
[controls]
pin_factory = "mock"
[web]
enabled = false
[service]
stall_seconds = 1.0
""")
        notify = Notifications(tmp_path / "notify")
        env = {**os.environ, "NOTIFY_SOCKET": str(tmp_path / "notify"), "WATCHDOG_USEC": "400000"}
        env.pop("WATCHDOG_PID", None)
        proc = subprocess.Popen([sys.executable, "-m", "appliance", "run", "--config", str(config)],
                                env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True)
        try:
            first = notify.collect(60, until=lambda m: m.startswith("READY=1"))
            assert first and first[-1].startswith("READY=1"), _output(proc)
            assert "STATUS=cpu" in first[-1]

            flowing = notify.collect(2.0)
            assert flowing.count("WATCHDOG=1") >= 4, flowing  # every 0.2 s while frames advance

            camera.frozen.set()  # the camera hangs: the capture blocks inside FFmpeg's read
            frozen_at = time.monotonic()
            notify.collect(1.0 + 0.5)  # stall_seconds, plus the pings already on their way
            quiet = notify.collect(2.0)
            assert "WATCHDOG=1" not in quiet, quiet
            assert any(m.startswith("STATUS=STALLED") for _, m in notify.got if _ >= frozen_at)
            assert proc.poll() is None  # the process itself lives on: only systemd's watchdog would act
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                out, _ = proc.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                out, _ = proc.communicate()
        notify.collect(0.3)
        assert any(m.startswith("STOPPING=1") for _, m in notify.got), out
        assert "Traceback" not in out, out
        assert proc.returncode == 0, out  # SIGTERM is a clean stop


def _output(proc: subprocess.Popen) -> str:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        return proc.communicate(timeout=20)[0]
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.communicate()[0]
