"""One client address cannot take every live view or every connection from the others: the real server
on 127.0.0.1, real sockets bound to other loopback addresses (127.0.0.2, 127.0.0.3, ...: all of
127.0.0.0/8 is loopback on Linux) as separate clients."""

from __future__ import annotations

import contextlib
import json
import socket
import time

import pytest
from web_helpers import Client, MjpegReader, served, wait_for


def _can_bind(address: str) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind((address, 0))
        except OSError:
            return False
    return True


pytestmark = pytest.mark.skipif(
    not _can_bind("127.0.0.2"), reason="cannot bind 127.0.0.2 here (no loopback /8) for a second client")

A, B = "127.0.0.2", "127.0.0.3"


def status_of(reader: MjpegReader) -> int:
    return int(reader.status_line.split()[1])


def refused(port: int, path: str, source: str) -> tuple[int, dict, dict]:
    """Ask for a live view that should be refused: (status, headers, JSON body). Only the head is read
    first, so a view that is wrongly admitted fails the test instead of streaming into it forever."""
    reader = MjpegReader(port, path, timeout=5, source=source)
    try:
        status = status_of(reader)
        assert status != 200, f"{path} from {source} was admitted"
        headers = dict(line.split(": ", 1) for line in reader.headers.split("\r\n") if ": " in line)
        while len(reader.buf) < int(headers["content-length"]):
            reader._fill()
        return status, headers, json.loads(reader.buf)
    finally:
        reader.close()


@contextlib.contextmanager
def closing(readers: list[MjpegReader]):
    try:
        yield readers
    finally:
        for reader in readers:
            reader.close()


def test_one_address_at_its_live_view_cap_gets_429_while_another_gets_its_stream():
    with served(threads=16, max_live_views_per_client=3) as server, closing([]) as held:
        # client A: two streams and an event feed (a page and a half)
        held += [MjpegReader(server.port, source=A), MjpegReader(server.port, source=A),
                 MjpegReader(server.port, "/api/events", source=A)]
        assert [status_of(r) for r in held] == [200, 200, 200]
        held[0].next_frame()
        a = Client(server.port, source=A)
        status, headers, body = refused(server.port, "/stream.mjpg", A)
        assert status == 429, (status, body)
        assert "too many live views from 127.0.0.2" in body["error"] and "3" in body["error"]
        assert "web.max_live_views_per_client" in body["fix"] and "tabs" in body["fix"]
        assert int(headers["retry-after"]) >= 1
        assert refused(server.port, "/api/events", A)[0] == 429
        status, _, figures = a.get("/api/status", timeout=5)
        assert status == 200  # short requests are not live views
        assert figures["live_views_refused"] == {"client": 2, "server": 0}
        assert 'appliance_live_views_refused_total{reason="client"} 2' in a.get("/metrics")[2].decode()

        other = MjpegReader(server.port, source=B)  # another address still gets its stream
        held.append(other)
        assert status_of(other) == 200
        other.next_frame()

        held.pop(0).close()  # A closes one view: its slot is A's again

        def admitted() -> bool:
            reader = MjpegReader(server.port, source=A)
            if status_of(reader) == 200:
                held.append(reader)
                return True
            reader.close()
            return False

        wait_for(admitted, timeout=10, interval=0.2)
        held[-1].next_frame()
        assert refused(server.port, "/stream.mjpg", A)[0] == 429  # and it is at its cap again


def test_no_per_client_cap_leaves_only_the_servers_own():
    from appliance.web.server import long_lived_limit

    limit = long_lived_limit(8)
    with served(threads=8, max_live_views_per_client=0) as server, closing([]) as held:
        held += [MjpegReader(server.port, source=A) for _ in range(limit)]
        assert all(status_of(r) == 200 for r in held)
        status, _, body = refused(server.port, "/stream.mjpg", B)
        assert status == 503 and "web.threads" in body["fix"]  # the server-wide cap, not the client's
        assert Client(server.port).get("/api/status")[2]["live_views_refused"] == {"client": 0, "server": 1}


def _connect(port: int, source: str) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=10, source_address=(source, 0))


def test_one_address_at_its_connection_cap_is_answered_429_and_others_connect():
    with served(max_connections_per_client=4) as server:
        idle = [_connect(server.port, A) for _ in range(4)]  # accepted in order, before the next one
        try:
            a = Client(server.port, source=A)
            status, headers, body = a.get("/healthz", timeout=5)
            assert status == 429, (status, body)
            assert "too many connections from 127.0.0.2" in body["error"]
            assert "web.max_connections_per_client" in body["fix"] and int(headers["retry-after"]) >= 1
            assert Client(server.port, source=B).get("/healthz", timeout=5)[0] == 200
            idle.pop().close()  # one of A's connections closes: A may connect again
            wait_for(lambda: a.get("/healthz", timeout=5)[0] == 200, timeout=10, interval=0.2)
        finally:
            for sock in idle:
                sock.close()


def test_live_views_count_against_the_connection_cap():
    """A stream is a connection too: an address at its connection cap through streams gets no more."""
    with served(threads=16, max_connections_per_client=2, max_live_views_per_client=2) as server, \
            closing([]) as held:
        held += [MjpegReader(server.port, source=A) for _ in range(2)]
        assert [status_of(r) for r in held] == [200, 200]
        started = time.monotonic()
        assert Client(server.port, source=A).get("/api/status", timeout=5)[0] == 429
        assert time.monotonic() - started < 5  # answered at once, not left to time out
        assert Client(server.port, source=B).get("/api/status", timeout=5)[0] == 200


def test_every_listening_socket_is_bounded_when_a_host_has_two_addresses():
    """A host name with two addresses ("localhost" as 127.0.0.1 and ::1 on Raspberry Pi OS) gives waitress
    one listening server per address behind a MultiSocketServer: each of them gets the bounds (here the
    connection cap), not only the first, and the wrapper itself is not mistaken for a server."""
    import threading

    from waitress.server import MultiSocketServer, create_server

    from appliance.web import bounds

    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "2")])
        return [b"ok"]

    server = create_server(app, listen="127.0.0.1:0 127.0.0.4:0", threads=4)
    assert isinstance(server, MultiSocketServer) and len(bounds.listening(server)) == 2
    bounds.install(server, connections_per_client=1)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        for host, port in server.effective_listen:
            first = socket.create_connection((host, port), timeout=5, source_address=(A, 0))
            try:
                time.sleep(0.3)  # accepted before the next one
                second = socket.create_connection((host, port), timeout=5, source_address=(A, 0))
                with second:
                    second.sendall(f"GET / HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
                    assert second.recv(64).startswith(b"HTTP/1.1 429"), f"{host}:{port} is not bounded"
            finally:
                first.close()
    finally:
        server.close()
        thread.join(5)
