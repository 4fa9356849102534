"""systemd integration: sd_notify over $NOTIFY_SOCKET and a watchdog fed only while the pipeline advances.

A few lines of socket code instead of a library. systemd's protocol: one AF_UNIX datagram of
newline-separated KEY=VALUE fields sent to the path in $NOTIFY_SOCKET ('@' = abstract namespace).
Outside systemd (no NOTIFY_SOCKET) every call is a harmless no-op, so `appliance run` behaves the same
in a terminal.

The watchdog rule (see ../docs/ARCHITECTURE.md): WATCHDOG=1 is sent only while `health()` is true, i.e.
frames and inferences are really advancing. A stalled capture or a hung invoke makes health() false, the
pings stop, and systemd kills and restarts the service after WatchdogSec.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Callable, Mapping

log = logging.getLogger(__name__)


def _socket_address(env: Mapping[str, str]) -> str | None:
    path = env.get("NOTIFY_SOCKET", "")
    if not path:
        return None
    return "\0" + path[1:] if path.startswith("@") else path


def notify(*fields: str, env: Mapping[str, str] | None = None) -> bool:
    """Send fields such as "READY=1" to systemd. False when not under systemd or the send failed."""
    address = _socket_address(os.environ if env is None else env)
    if address is None or not fields:
        return False
    message = "\n".join(fields).encode("utf-8")
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(address)
            sock.sendall(message)
    except OSError as exc:  # systemd gone or socket unreadable: the service keeps running
        log.warning("sd_notify %s failed: %s", fields[0], exc)
        return False
    return True


def one_line(text: str) -> str:
    """STATUS= must be a single line."""
    return " ".join(text.split())


def ready(status_text: str = "") -> bool:
    return notify("READY=1", *([f"STATUS={one_line(status_text)}"] if status_text else []))


def stopping(status_text: str = "stopping") -> bool:
    return notify("STOPPING=1", f"STATUS={one_line(status_text)}")


def status(text: str) -> bool:
    return notify(f"STATUS={one_line(text)}")


def watchdog_ping() -> bool:
    return notify("WATCHDOG=1")


def watchdog_interval(env: Mapping[str, str] | None = None) -> float | None:
    """Seconds between pings (half of WATCHDOG_USEC), or None when systemd asked for no watchdog."""
    env = os.environ if env is None else env
    try:
        usec = int(env.get("WATCHDOG_USEC", "0"))
    except ValueError:
        return None
    pid = env.get("WATCHDOG_PID", "")
    if usec <= 0 or (pid and pid != str(os.getpid())):
        return None
    return usec / 2_000_000


def status_line(snapshot: Mapping) -> str:
    """One line for systemctl status from System.status(): backend, fps, latency, classes, source."""
    parts = [str(snapshot.get("backend", "?"))]
    fps = snapshot.get("fps") or {}
    if isinstance(fps, Mapping):
        parts.append(f"{float(fps.get('capture', 0.0)):.1f} fps capture")
        parts.append(f"{float(fps.get('inference', 0.0)):.1f} fps inference")
    if snapshot.get("inference_ms") is not None:
        parts.append(f"{float(snapshot['inference_ms']):.1f} ms")
    classes = snapshot.get("classes")
    if classes is not None:
        count = classes if isinstance(classes, int) else len(classes)
        parts.append(f"{count} classes")
    if snapshot.get("source"):
        connected = snapshot.get("connected", True)
        parts.append(f"source {snapshot['source']}" + ("" if connected else " (no signal)"))
    return one_line(", ".join(parts))


class Watchdog:
    """Pings WATCHDOG=1 every `interval` seconds while health() is true; sends STATUS= now and then.

    The thread itself does no pipeline work, so its liveness proves nothing: only health() decides.
    """

    def __init__(
        self,
        health: Callable[[], bool],
        interval: float,
        summary: Callable[[], str] | None = None,
        status_every: float = 5.0,
    ) -> None:
        self._health = health
        self._interval = interval
        self._summary = summary
        self._status_every = status_every
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.pings = 0
        self.withheld = 0

    def _healthy(self) -> bool:
        try:
            return bool(self._health())
        except Exception:  # a health check that breaks counts as unhealthy
            log.exception("health check failed")
            return False

    def _send_summary(self, prefix: str = "") -> None:
        if self._summary is None:
            return
        try:
            text = self._summary()
        except Exception:
            log.exception("status summary failed")
            return
        status(prefix + text)

    def check_once(self) -> bool:
        """One watchdog decision: ping when healthy. Returns whether it pinged."""
        if self._healthy():
            if self.withheld:
                log.info("pipeline advancing again: watchdog pings resume")
            self.withheld = 0
            watchdog_ping()
            self.pings += 1
            return True
        if self.withheld == 0:
            log.warning("pipeline stalled (no new frames or inferences): withholding watchdog pings")
            self._send_summary("STALLED: ")
        self.withheld += 1
        return False

    def _run(self) -> None:
        since_status = 0.0
        while not self._stop.is_set():
            self.check_once()
            since_status += self._interval
            if since_status >= self._status_every and not self.withheld:
                since_status = 0.0
                self._send_summary()
            self._stop.wait(self._interval)

    def start(self) -> Watchdog:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="watchdog", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self._interval + 1.0)
            self._thread = None


class Service:
    """The service side of `appliance run`: READY once everything is up, watchdog, STOPPING on exit.

    Usage (commands/run.py):
        system.start(); server.start()            # camera, model and page up
        service = Service(system.healthy, lambda: status_line(system.status()))
        service.ready()                            # READY=1 + STATUS=, starts the watchdog when asked for
        ...wait for SIGTERM...
        service.stopping(); system.stop()          # STOPPING=1, watchdog off, store committed
    """

    def __init__(
        self,
        health: Callable[[], bool],
        summary: Callable[[], str] | None = None,
        env: Mapping[str, str] | None = None,
        status_every: float = 5.0,
    ) -> None:
        self._summary = summary
        interval = watchdog_interval(env)
        self.watchdog = Watchdog(health, interval, summary, status_every) if interval else None

    def ready(self) -> None:
        text = ""
        if self._summary is not None:
            try:
                text = self._summary()
            except Exception:
                log.exception("status summary failed")
        ready(text)
        if self.watchdog is not None:
            self.watchdog.start()

    def stopping(self) -> None:
        if self.watchdog is not None:
            self.watchdog.stop()
        stopping()
