"""Helpers for the web tests: one real System (folder of real photos, CPU models, mock pins, tmp data
dir) served by the real waitress server on 127.0.0.1, and small HTTP helpers over http.client."""

from __future__ import annotations

import atexit
import contextlib
import dataclasses
import http.client
import json
import shutil
import socket
import tempfile
import time
from pathlib import Path
from typing import Any

from appliance.config import apply_overrides, demo_config

SHARED = Path(__file__).resolve().parent.parent.parent / "shared"
MODELS = SHARED / "models"
IMAGES = SHARED / "images"

_SYSTEM: dict[str, Any] = {}


def web_config(data_dir: Path, **web: Any):
    """The demo config (the demo camera's real photos, held still while a burst records, so a burst never
    spans two photos and the samples a test expects are all kept), with a short teach burst so tests stay
    fast."""
    config = demo_config(data_dir=data_dir)
    config = apply_overrides(config, source="demo", models_dir=str(MODELS), device="cpu")
    return dataclasses.replace(  # port 0 (a free port) is a test-only value the config file refuses
        config,
        teach=dataclasses.replace(config.teach, frames=4, seconds=0.3),
        web=dataclasses.replace(config.web, port=0, threads=16, **web),
    )


def shared_system():
    """One started System for every web test in the session (models load once), serving its page on
    127.0.0.1 through its own web server (system.web_server.port); stopped at exit."""
    if "system" not in _SYSTEM:
        from appliance.system import System

        data_dir = Path(tempfile.mkdtemp(prefix="appliance-web-test-"))
        system = System(web_config(data_dir))
        system.start(web=True, controls=False)  # buttons are tested with the controls; the page needs none
        _SYSTEM.update(system=system, data_dir=data_dir)

        def _stop() -> None:
            system.stop()
            shutil.rmtree(data_dir, ignore_errors=True)

        atexit.register(_stop)
    return _SYSTEM["system"]


class ConfigView:
    """The same running System seen with another config (e.g. a password) by a second app."""

    def __init__(self, system: Any, config: Any) -> None:
        self._system = system
        self.config = config

    def __getattr__(self, name: str) -> Any:
        return getattr(self._system, name)


def wait_for(predicate, timeout: float = 20.0, interval: float = 0.05) -> Any:
    """Poll until predicate() is truthy; its value, or AssertionError after timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(interval)


class Client:
    """A tiny JSON client over http.client (a new connection per request, like curl)."""

    def __init__(self, port: int, host: str = "127.0.0.1", source: str | None = None) -> None:
        self.host, self.port = host, port
        self.source = (source, 0) if source else None  # a client address of its own (127.0.0.2, ...)

    def request(self, method: str, path: str, body: Any = None, *, headers: dict | None = None,
                raw: bytes | None = None, timeout: float = 30.0) -> tuple[int, dict, Any]:
        conn = http.client.HTTPConnection(self.host, self.port, timeout=timeout, source_address=self.source)
        hdrs = dict(headers or {})
        data = raw
        if body is not None:
            data = json.dumps(body).encode()
            hdrs.setdefault("Content-Type", "application/json")
        try:
            conn.request(method, path, body=data, headers=hdrs)
            resp = conn.getresponse()
            payload = resp.read()
            headers_out = {k.lower(): v for k, v in resp.getheaders()}
        finally:
            conn.close()
        ctype = headers_out.get("content-type", "")
        if ctype.startswith("application/json") and payload:
            return resp.status, headers_out, json.loads(payload)
        return resp.status, headers_out, payload

    def get(self, path: str, **kw: Any):
        return self.request("GET", path, **kw)

    def post(self, path: str, body: Any = None, **kw: Any):
        return self.request("POST", path, body, **kw)


@contextlib.contextmanager
def served(password: str = "", threads: int = 8, throttle=None, **web):
    """A fresh app (own throttle, own live-view count) over the shared System, on its own server;
    `throttle` replaces the app's password throttle (a test of the per-address lock gives it room in the
    CPU budget, which a loaded machine's slower scrypt checks would otherwise use up first)."""
    from appliance.web.app import create_app
    from appliance.web.auth import hash_password as _hash
    from appliance.web.server import serve
    from appliance.web.state import STATE_KEY

    system = shared_system()
    config = system.config
    config = dataclasses.replace(config, web=dataclasses.replace(
        config.web, password_hash=_hash(password) if password else "", **web))
    view = ConfigView(system, config)
    app = create_app(view)
    if throttle is not None:
        app.extensions[STATE_KEY].throttle = throttle
    server = serve(app, "127.0.0.1", 0, threads)
    try:
        yield server
    finally:
        server.stop()


class MjpegReader:
    """Reads JPEG parts from /stream.mjpg over a raw socket (so a test controls reading exactly)."""

    def __init__(self, port: int, path: str = "/stream.mjpg", timeout: float = 10.0,
                 source: str | None = None) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout,
                                             source_address=(source, 0) if source else None)
        self.sock.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
        self.buf = b""
        head = self._until(b"\r\n\r\n")
        self.status_line, _, header_text = head.partition(b"\r\n")
        self.headers = header_text.decode("latin-1").lower()

    def _fill(self) -> None:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError("stream closed")
        self.buf += chunk

    def _until(self, marker: bytes) -> bytes:
        while marker not in self.buf:
            self._fill()
        head, _, self.buf = self.buf.partition(marker)
        return head

    def next_frame(self) -> tuple[int, bytes]:
        """(frame seq, JPEG) of the next part. The transfer is chunked, one chunk per part, so the
        JPEG bytes follow their part headers unbroken."""
        self._until(b"--frame\r\n")
        fields = dict(line.split(": ", 1) for line in self._until(b"\r\n\r\n").decode().split("\r\n"))
        assert fields["Content-Type"] == "image/jpeg"
        length = int(fields["Content-Length"])
        while len(self.buf) < length:
            self._fill()
        jpeg, self.buf = self.buf[:length], self.buf[length:]
        return int(fields["X-Frame-Seq"]), jpeg

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()
