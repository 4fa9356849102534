"""The web server under a hostile client, over the real running System on 127.0.0.1: oversize and
chunked bodies, rebinding Host/Origin pairs, slow and excess connections, password guessing, logout."""

from __future__ import annotations

import contextlib
import dataclasses
import http.client
import json
import select
import socket
import tempfile
import time
import urllib.parse

import pytest
from web_helpers import Client, ConfigView, MjpegReader, served, shared_system, wait_for

from appliance.web.auth import hash_password

PASSWORD = "open sesame"


def raw(port: int, data: bytes, *, source: str = "127.0.0.1",
        timeout: float = 10.0) -> tuple[int, dict, bytes]:
    """Send raw bytes, read one response: (status, lower-case headers, body)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout, source_address=(source, 0))
    try:
        sock.sendall(data)
        return read_response(sock)
    finally:
        sock.close()


def read_response(sock: socket.socket) -> tuple[int, dict, bytes]:
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            break
        buf += chunk
    head, _, body = buf.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.lower().split(": ", 1) for line in lines[1:] if ": " in line)
    length = int(headers.get("content-length", "0"))
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return int(lines[0].split()[1]), headers, body


@pytest.fixture
def temp_files(monkeypatch):
    """Counts the bytes written to temporary files (where waitress spills large bodies)."""
    written = [0]
    real = tempfile.TemporaryFile

    class Counting:
        def __init__(self, f):
            self._f = f

        def write(self, data):
            written[0] += len(data)
            return self._f.write(data)

        def __getattr__(self, name):
            return getattr(self._f, name)

    monkeypatch.setattr(tempfile, "TemporaryFile", lambda *a, **kw: Counting(real(*a, **kw)))
    return written


# -- bodies ---------------------------------------------------------------------------------------
def test_an_oversize_body_is_refused_from_its_header_before_reading(temp_files):
    with served() as server:
        status, headers, body = raw(server.port, (
            f"POST /api/classes HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
            "Content-Type: application/json\r\nContent-Length: 1000000000\r\n\r\n").encode())  # no body
        assert status == 413 and headers["content-type"].startswith("application/json")
        data = json.loads(body)
        assert "max_body" in data["error"] and "max_request_bytes" in data["fix"]
        status, _, _ = raw(server.port, (
            b"POST /api/classes HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b"Content-Length: 1000000\r\nExpect: 100-continue\r\n\r\n"))
        assert status == 413  # the first answer: no "100 Continue" for a body that will be refused
    assert temp_files[0] == 0


def test_only_the_upload_routes_take_large_bodies(temp_files):
    """A model upload may be megabytes; the same size sent anywhere else is refused at its header."""
    from appliance.web import models_api

    size = 2 * 1024 * 1024
    assert size < models_api.upload_limit()
    with served() as server:
        for path, refused in (("/api/classes", True), ("/api/models", False)):
            status, _, body = raw(server.port, (
                f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/octet-stream\r\n"
                f"Content-Length: {size}\r\nExpect: 100-continue\r\n\r\n").encode())
            assert (status == 413) is refused, (path, status, body)
    assert temp_files[0] == 0


def test_a_chunked_body_is_cut_at_the_limit(temp_files):
    limit = shared_system().config.web.max_request_bytes
    with served() as server:
        sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
        sock.sendall(b"POST /api/classes HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                     b"Transfer-Encoding: chunked\r\n\r\n")
        chunk = b"1000\r\n" + b" " * 0x1000 + b"\r\n"
        sent = 0
        with contextlib.suppress(OSError):
            while sent < 20 * limit and not select.select([sock], [], [], 0.02)[0]:
                sock.sendall(chunk)  # until the server answers
                sent += 0x1000
        status, headers, body = read_response(sock)
        sock.close()
        assert status == 413 and json.loads(body)["fix"]
    assert temp_files[0] == 0 and limit <= sent <= limit + 8 * 0x1000  # answered at the limit


@pytest.mark.parametrize(("request_bytes", "status"), [
    (b"GARBAGE\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " + b"a" * 300000 + b"\r\n\r\n", 431),
    (b"POST /api/classes HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: gzip\r\n\r\n", 501),
    (b"POST /api/classes HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: abc\r\n\r\n", 400),
])
def test_the_servers_own_errors_are_the_apis_json(request_bytes, status):
    with served() as server:
        got, headers, body = raw(server.port, request_bytes)
    assert got == status and headers["content-type"] == "application/json"
    data = json.loads(body)
    assert data["error"] and data["fix"]


# -- rebinding ------------------------------------------------------------------------------------
@pytest.mark.parametrize("host", ["evil.example:{port}", "evil.example", "127.0.0.1.evil.example:{port}"])
def test_a_rebound_host_is_refused_even_without_a_password(host):
    with served() as server:
        client = Client(server.port)
        host = host.format(port=server.port)
        label = f"rebinding {time.monotonic_ns()}"
        status, _, body = client.post("/api/classes", {"label": label},
                                      headers={"Host": host, "Origin": f"http://{host}"})
        assert status == 421 and "allowed_hosts" in body["fix"] and "rebinding" in body["error"]
        assert client.get("/api/status", headers={"Host": host})[0] == 421
        assert shared_system().store.find(label) is None


@pytest.mark.parametrize("host", ["127.0.0.1:{port}", "localhost:{port}", "[::1]:{port}", "LOCALHOST",
                                  socket.gethostname(), socket.gethostname().split(".")[0] + ".local:{port}"])
def test_the_boxs_own_names_and_addresses_are_answered(host):
    with served() as server:
        headers = {"Host": host.format(port=server.port)}
        assert Client(server.port).get("/api/status", headers=headers)[0] == 200


def test_allowed_hosts_lets_a_name_in():
    with served(allowed_hosts=("camera.example.lan",)) as server:
        client = Client(server.port)
        assert client.get("/api/status", headers={"Host": "camera.example.lan:8080"})[0] == 200
        assert client.get("/api/status", headers={"Host": "other.example.lan"})[0] == 421


def test_allowed_hosts_in_a_config_file(tmp_path):
    from appliance.config import load_config
    from appliance.errors import ConfigError

    path = tmp_path / "appliance.toml"
    path.write_text('[web]\nallowed_hosts = ["camera.example.lan", "cam"]\n')
    assert load_config(path).web.allowed_hosts == ("camera.example.lan", "cam")
    path.write_text('[web]\nallowed_hosts = ["http://camera.example.lan:8080"]\n')
    with pytest.raises(ConfigError, match="allowed_hosts"):
        load_config(path)


# -- slow and excess connections ------------------------------------------------------------------
def test_slow_header_connections_are_closed_and_healthz_keeps_answering(monkeypatch):
    from appliance.web import bounds

    monkeypatch.setattr(bounds, "HEADER_TIMEOUT_S", 2.0)
    with served(max_connections_per_client=0) as server:  # a crowd from one address: no per-client cap
        slow = []
        for _ in range(200):  # a slow-loris crowd, each sending one header line now and then
            sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
            sock.sendall(b"GET /api/status HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            slow.append(sock)
        client = Client(server.port)
        started = time.monotonic()
        try:
            for _ in range(3):
                assert client.get("/healthz", timeout=5)[0] == 200
                for sock in slow:
                    with contextlib.suppress(OSError):
                        sock.sendall(b"X-Slow: 1\r\n")
                time.sleep(0.5)

            def closed(sock: socket.socket) -> bool:
                try:
                    sock.sendall(b"X-Slow: 1\r\n")
                    sock.settimeout(0.05)
                    return sock.recv(1) == b""
                except TimeoutError:
                    return False
                except OSError:
                    return True

            wait_for(lambda: closed(slow[0]), timeout=10)
            assert time.monotonic() - started < 10  # seconds, not minutes
            assert client.get("/healthz", timeout=5)[0] == 200
        finally:
            for sock in slow:
                sock.close()


def test_excess_viewers_get_503_and_the_api_keeps_its_threads():
    from appliance.web.server import long_lived_limit

    with served(threads=8) as server:
        limit = long_lived_limit(8)
        viewers = [MjpegReader(server.port) for _ in range(limit)]
        try:
            for v in viewers:
                v.next_frame()
            client = Client(server.port)
            status, headers, body = client.get("/stream.mjpg", timeout=5)
            assert status == 503 and "too many live views" in body["error"] and "web.threads" in body["fix"]
            assert client.get("/api/events", timeout=5)[0] == 503
            assert client.get("/healthz", timeout=5)[0] == 200
            assert client.get("/api/status", timeout=5)[0] == 200
            viewers.pop().close()  # a viewer leaves: its slot is free again

            def admitted() -> bool:
                reader = MjpegReader(server.port)
                ok = reader.status_line.split()[1] == b"200"
                if ok:
                    viewers.append(reader)
                else:
                    reader.close()
                return ok

            wait_for(admitted, timeout=10, interval=0.2)
        finally:
            for v in viewers:
                v.close()


# -- passwords: throttling and sessions -----------------------------------------------------------
def bearer(port: int, password: str, source: str = "127.0.0.1") -> tuple[int, dict, bytes]:
    return raw(port, (f"GET /api/classes HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {password}\r\n"
                      "Connection: close\r\n\r\n").encode(), source=source)


def test_wrong_guesses_are_throttled_per_address():
    from appliance.web.throttle import Throttle

    # the per-address lock, not the global CPU budget (tested on its own below with a clock)
    with served(PASSWORD, throttle=Throttle(cpu_burst_s=10.0)) as server:
        statuses = [bearer(server.port, f"guess {i}")[0] for i in range(5)]
        assert statuses[:4] == [401] * 4 and statuses[4] == 429
        status, headers, body = bearer(server.port, PASSWORD)  # even the right one waits out the lock
        assert status == 429 and int(headers["retry-after"]) >= 1 and json.loads(body)["fix"]
        assert bearer(server.port, PASSWORD, source="127.0.0.2")[0] == 200  # another address: not locked
        assert bearer(server.port, PASSWORD, source="127.0.0.2")[0] == 200  # cached: no scrypt again
        login = _form_login(server.port, "wrong again")
        assert login.status == 429 and login.getheader("Retry-After")


def test_the_throttle_grows_the_lock_and_bounds_the_cpu():
    from appliance.web.throttle import FREE_FAILURES, Throttle, TooManyAttemptsError

    now = [1000.0]
    throttle = Throttle(clock=lambda: now[0], cpu_share=0.1, cpu_burst_s=10.0)
    waits = []
    for _ in range(FREE_FAILURES + 4):
        try:
            throttle.attempt("10.0.0.1", lambda: False)
        except TooManyAttemptsError as exc:
            waits.append(exc.retry_after)
            now[0] += exc.retry_after
            throttle.attempt("10.0.0.1", lambda: False)
    assert waits == [1, 2, 4, 8][:len(waits)] and len(waits) >= 3
    assert throttle.attempt("10.0.0.2", lambda: True)  # another address is not locked out

    def burn() -> bool:  # a verification costing 50 ms of CPU, like scrypt
        end = time.thread_time() + 0.05
        while time.thread_time() < end:
            pass
        return False

    budget = Throttle(clock=lambda: now[0], cpu_share=0.1, cpu_burst_s=0.2, clean_cpu_share=0.05)
    ran = refused = 0
    for _ in range(3):  # 40 addresses guessing at once, three times each, no time passing
        for i in range(40):
            try:
                budget.attempt(f"10.1.0.{i}", burn)
                ran += 1
            except TooManyAttemptsError as exc:
                refused += 1
                assert exc.retry_after >= 1
    # about 0.2 s of CPU for first tries and 0.2 s for repeat offenders, then 429 until they refill
    assert ran <= 12 and refused >= 108


def _form_login(port: int, password: str) -> http.client.HTTPResponse:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request("POST", "/login", body=urllib.parse.urlencode({"password": password}),
                 headers={"Content-Type": "application/x-www-form-urlencoded"})
    resp = conn.getresponse()
    resp.read()
    conn.close()
    return resp


def test_logout_ends_the_session_for_good_and_a_new_password_ends_all():
    from appliance.web.app import create_app
    from appliance.web.server import serve

    with served(PASSWORD) as server:
        client = Client(server.port)
        jars = []
        for _ in range(2):
            good = _form_login(server.port, PASSWORD)
            assert good.status == 302
            jars.append({"Cookie": good.getheader("Set-Cookie").split(";", 1)[0]})
        assert all(client.get("/api/classes", headers=jar)[0] == 200 for jar in jars)
        status = client.request("POST", "/logout", headers=jars[0])[0]
        assert status == 303
        assert client.get("/api/classes", headers=jars[0])[0] == 401  # the kept copy of the cookie is void
        assert client.get("/api/classes", headers=jars[1])[0] == 200  # the other session lives on
        system = shared_system()
        config = dataclasses.replace(system.config, web=dataclasses.replace(
            system.config.web, password_hash=hash_password("a new password")))
        changed = serve(create_app(ConfigView(system, config)), "127.0.0.1", 0, 4)
        try:
            assert Client(changed.port).get("/api/classes", headers=jars[1])[0] == 401
        finally:
            changed.stop()


@pytest.mark.parametrize("label", ["\u3164", "\u2800", "\ufe0f", "\ue000", "\ufdd0"])
def test_blank_labels_are_refused_by_the_api(label):
    with served() as server:
        status, _, body = Client(server.port).post("/api/classes", {"label": label})
    assert status == 400 and body["fix"]
