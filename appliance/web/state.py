"""What the web routes share per app: the System, the viewer gauge, the shutdown flag, the password check."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from flask import current_app, request

from appliance.errors import ApplianceError
from appliance.web.auth import PasswordCheck
from appliance.web.interface import Appliance

if TYPE_CHECKING:
    from appliance.web.hosts import HostCheck
    from appliance.web.sessions import Sessions
    from appliance.web.throttle import Throttle

log = logging.getLogger(__name__)

STATE_KEY = "appliance.web"


class Gauge:
    """A thread-safe up/down counter (stream viewers, SSE clients) with a running total."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.value = 0
        self.total = 0

    def __enter__(self) -> Gauge:
        with self._lock:
            self.value += 1
            self.total += 1
        return self

    def __exit__(self, *exc: object) -> None:
        with self._lock:
            self.value -= 1


class BusyError(ApplianceError):
    """Every thread the server can give to live views is taken."""

    status = 503


class ClientLimitError(ApplianceError):
    """One client address already holds as many live views as one client may (HTTP 429, Retry-After)."""

    status = 429
    retry_after = 5  # nothing frees by itself: the client must close a view; this keeps retries calm


class Slots:
    """Counts the long-lived responses (streams, event feeds) so they never take every server thread,
    and per client address, so one client (a script in a loop, a phone with many tabs) cannot take them
    all. An address's count goes when its last view closes, so the table holds only open views."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.used = 0
        self.by_client: dict[str, int] = {}
        self.refused_client = 0   # live views refused by the per-client cap (429)
        self.refused_busy = 0     # live views refused because every live-view thread was taken (503)
        self._warned: set[str] = set()  # addresses logged as at their cap (again once all their views close)

    def take(self, limit: int, client: str = "", per_client: int = 0) -> Callable[[], None]:
        """A release function; ClientLimitError (429) when `client` holds `per_client` views already
        (0 = no per-client cap), BusyError (503) when `limit` live views are open in all."""
        with self._lock:
            held = self.by_client.get(client, 0)
            if per_client and held >= per_client:
                self.refused_client += 1
                if client not in self._warned:
                    self._warned.add(client)
                    log.warning("%s holds %d live views, web.max_live_views_per_client: refusing more "
                                "from it until one closes", client, held)
                raise ClientLimitError(
                    f"too many live views from {client}: it has {held} video streams and event feeds "
                    f"open, the most one client address may hold (web.max_live_views_per_client = "
                    f"{per_client}), so that others on the network still get theirs",
                    "close the page in other tabs or browsers on that device (each page takes 2), or "
                    "raise web.max_live_views_per_client in the config (0 = no per-client cap)")
            if self.used >= limit:
                self.refused_busy += 1
                raise BusyError(f"too many live views: {self.used} video streams and event feeds are open, "
                                f"the most this server runs at once (the rest of its threads answer the API)",
                                "close the page in another tab or browser, or raise web.threads in the "
                                "config (each live view takes one thread)")
            self.used += 1
            self.by_client[client] = held + 1
        released = threading.Event()

        def release() -> None:
            if not released.is_set():
                released.set()
                with self._lock:
                    self.used -= 1
                    left = self.by_client.get(client, 1) - 1
                    if left > 0:
                        self.by_client[client] = left
                    else:
                        self.by_client.pop(client, None)
                        self._warned.discard(client)

        return release


class Held:
    """An iterable response body that gives its slot back when the server closes it, started or not
    (a generator that never ran would skip its own cleanup)."""

    def __init__(self, body: Iterator[bytes], release: Callable[[], None]) -> None:
        self._body = body
        self._release = release

    def __iter__(self) -> Held:
        return self

    def __next__(self) -> bytes:
        return next(self._body)

    def close(self) -> None:
        try:
            close = getattr(self._body, "close", None)
            if close is not None:
                close()
        finally:
            self._release()


class PartCache:
    """The multipart-framed bytes of the latest JPEG, built once per frame for every viewer."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._seq = -1
        self._part = b""

    def part(self, seq: int, jpeg: bytes) -> bytes:
        with self._lock:
            if seq != self._seq:
                head = (b"--frame\r\nContent-Type: image/jpeg\r\n"
                        b"Content-Length: %d\r\nX-Frame-Seq: %d\r\n\r\n" % (len(jpeg), seq))
                self._part = head + jpeg + b"\r\n"
                self._seq = seq
            return self._part


@dataclass
class WebState:
    system: Appliance
    shutdown: threading.Event
    password: PasswordCheck | None
    hosts: HostCheck
    throttle: Throttle
    sessions: Sessions | None      # None without a password
    heartbeat_s: float = 15.0
    poll_s: float = 0.5          # how often long-lived responses look at the shutdown flag
    viewers: Gauge = field(default_factory=Gauge)
    sse_clients: Gauge = field(default_factory=Gauge)
    parts: PartCache = field(default_factory=PartCache)
    live: Slots = field(default_factory=Slots)       # streams + event feeds open now


def client_address() -> str:
    """The request's client address: password throttling and the live-view cap are per address
    (waitress drops untrusted proxy headers)."""
    return request.remote_addr or "unknown"


def web_state() -> WebState:
    return current_app.extensions[STATE_KEY]


def take_live_slot(state: WebState) -> Callable[[], None]:
    """Reserve a thread for one stream or event feed: 429 ClientLimitError when this client address holds
    web.max_live_views_per_client already, 503 BusyError when none is left for live views at all."""
    from appliance.web.server import LONG_LIVED_KEY, long_lived_limit

    web = state.system.config.web
    limit = current_app.extensions.get(LONG_LIVED_KEY)
    if limit is None:  # not served by WebServer (e.g. Flask's test client): the configured thread count
        limit = long_lived_limit(web.threads)
    return state.live.take(limit, client_address(), web.max_live_views_per_client)
