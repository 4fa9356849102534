"""What one client can take from the web server: body size, time to send a request, connections.

Waitress refuses a body over the limit from its Content-Length header, before reading it (and cuts a
chunked body at the limit); bodies stay in memory (the limit is far below waitress's spill-to-disk size),
so no client can fill the temp folder. A request must arrive whole within seconds of its first byte (a
client trickling a header line now and then is closed), an idle keep-alive connection is closed after
seconds, and the server's own error answers (400, 413, 431, 501) are the API's JSON {"error", "fix"}.
One client address may hold at most web.max_connections_per_client connections: a further one is
answered 429 at once and closed, before it can take a place under the server's connection limit.
"""

from __future__ import annotations

import contextlib
import copy
import json
import logging
import socket
import time
from typing import Any

from waitress.channel import HTTPChannel
from waitress.parser import HTTPRequestParser
from waitress.server import BaseWSGIServer, MultiSocketServer
from waitress.task import ErrorTask

HEADER_TIMEOUT_S = 10.0     # from a request's first byte to the end of its headers
REQUEST_TIMEOUT_S = 30.0    # from a request's first byte to the end of its body
IDLE_TIMEOUT_S = 15         # a kept-alive connection with no request (waitress channel_timeout)
CONNECTION_LIMIT = 250      # the page needs a handful per browser; slow clients are culled in seconds
REFUSED_RETRY_AFTER_S = 5   # a refused connection: retry once one of the address's connections closed

log = logging.getLogger(__name__)

SERVER_FIXES = {
    400: "send a well-formed HTTP/1.1 request (see /api/openapi.json)",
    413: "send a smaller body (the limit is web.max_request_bytes)",
    431: "send fewer or shorter headers",
    501: "send the body with Content-Length or Transfer-Encoding: chunked",
}


class JsonErrorTask(ErrorTask):
    """Waitress's own error answers, as the API's JSON instead of text/plain."""

    def execute(self) -> None:
        error = self.request.error
        body = json.dumps({"error": f"{error.reason}: {error.body}",
                           "fix": SERVER_FIXES.get(error.code, "see the appliance log")}).encode()
        self.status = f"{error.code} {error.reason}"
        self.response_headers.append(("Content-Type", "application/json"))
        self.set_close_on_finish()
        self.content_length = len(body)
        self.write(body)


class SizedParser(HTTPRequestParser):
    """Reads one request; the few paths that take a large upload (`large_bodies`: path -> bytes) get their
    own body limit as soon as the request line is read, so every other path keeps the small one and a
    large body sent there is refused at its header, never read."""

    large_bodies: dict[str, int] = {}

    def parse_header(self, header_plus: bytes) -> None:
        super().parse_header(header_plus)
        limit = self.large_bodies.get(self.path)
        if limit is not None and self.command in ("POST", "PUT"):
            self.adj = copy.copy(self.adj)
            self.adj.max_request_body_size = limit + 1  # waitress refuses at >=; ours is "more than"


class BoundedChannel(HTTPChannel):
    """One client connection: remembers when its current request began, answers 413 without 100 Continue."""

    error_task_class = JsonErrorTask
    request_began = 0.0

    def received(self, data: bytes) -> bool:
        if self.request is None and data:
            self.request_began = time.time()
        return super().received(data)

    def send_continue(self) -> None:
        if self.request is not None and self.request.error is not None:  # refused at the header: no 100
            self.request.expect_continue = False
            return
        super().send_continue()

    def too_slow(self, now: float, header_timeout: float, request_timeout: float) -> bool:
        """A request begun but not received whole in time (the slow-loris pattern)."""
        request = self.request
        if request is None or self.requests:
            return False
        waited = now - self.request_began
        return waited > (request_timeout if request.headers_finished else header_timeout)


def refusal(address: str, held: int, cap: int) -> bytes:
    """The whole HTTP answer to a connection over its address's cap (sent before its request is read)."""
    body = json.dumps({
        "error": f"too many connections from {address}: it has {held} open, the most one client address "
                 f"may hold (web.max_connections_per_client = {cap}), so that others on the network can "
                 "still connect",
        "fix": "close the page in other tabs or browsers on that device, or stop the program opening "
               "them; or raise web.max_connections_per_client in the config (0 = no per-client cap)",
    }).encode()
    return (b"HTTP/1.1 429 Too Many Requests\r\nContent-Type: application/json\r\nConnection: close\r\n"
            b"Retry-After: %d\r\nContent-Length: %d\r\n\r\n%s" % (REFUSED_RETRY_AFTER_S, len(body), body))


def capped_channels(channel_class: type, per_client: int) -> Any:
    """A channel factory for waitress's accept: a connection from an address that already holds
    `per_client` connections gets `refusal()` (best effort: a non-blocking send of a few hundred bytes
    into an empty socket buffer) and is closed; it never becomes a channel. Runs in the server loop
    thread, which alone adds and removes channels, so the count cannot race."""
    warned: set[str] = set()

    def make(server, conn: socket.socket, addr: Any, adj: Any, map: dict | None = None) -> Any:  # noqa: A002
        address = _address(addr)
        held = sum(1 for ch in list(server.active_channels.values()) if _address(ch.addr) == address)
        if held < per_client:
            if held == 0:
                warned.discard(address)
            return channel_class(server, conn, addr, adj, map=map)
        if address not in warned:
            if len(warned) > 1000:  # a spray of addresses: forget, at worst log again
                warned.clear()
            warned.add(address)
            log.warning("%s holds %d connections, web.max_connections_per_client: refusing more from it",
                        address, held)
        with contextlib.suppress(OSError):
            conn.setblocking(False)
            conn.send(refusal(address, held, per_client))
            conn.shutdown(socket.SHUT_WR)
        conn.close()
        return None

    return make


def _address(addr: Any) -> str:
    """The host part of a socket address (IPv4 or IPv6 tuple)."""
    return str(addr[0]) if isinstance(addr, tuple) else str(addr)


def listening(server) -> list:
    """The listening servers behind what create_server returned: itself, or, for a host name with more
    than one address (e.g. "localhost" as 127.0.0.1 and ::1, as Raspberry Pi OS's /etc/hosts has it),
    the TcpWSGIServer of each address inside its MultiSocketServer."""
    if isinstance(server, MultiSocketServer):
        return [d for d in list(server.map.values()) if isinstance(d, BaseWSGIServer)]
    return [server]


def install(server, **bounds) -> None:
    """Bound every listening socket of a server from create_server (see install_one)."""
    for one in listening(server):
        install_one(one, **bounds)


def install_one(server, *, header_timeout: float | None = None, request_timeout: float | None = None,
                large_bodies: dict[str, int] | None = None, connections_per_client: int = 0) -> None:
    """Make one waitress server use BoundedChannel and close too-slow requests; `large_bodies` (path ->
    bytes) are the upload routes allowed more than max_request_body_size; `connections_per_client` caps
    one address's open connections on it (0: no cap)."""
    header_timeout = HEADER_TIMEOUT_S if header_timeout is None else header_timeout
    request_timeout = REQUEST_TIMEOUT_S if request_timeout is None else request_timeout
    parser = type("ServerParser", (SizedParser,), {"large_bodies": dict(large_bodies or {})})
    channel_class = type("ServerChannel", (BoundedChannel,), {"parser_class": parser})
    server.channel_class = channel_class
    if connections_per_client > 0:
        server.channel_class = capped_channels(channel_class, connections_per_client)
    idle_maintenance = server.maintenance

    def maintenance(now: float) -> None:
        idle_maintenance(now)
        for channel in list(server.active_channels.values()):
            if isinstance(channel, BoundedChannel) and channel.too_slow(now, header_timeout, request_timeout):
                channel.will_close = True

    server.maintenance = maintenance
