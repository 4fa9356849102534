"""Serve the Flask app with waitress inside the appliance's process, and stop it within a second.

Why waitress: pure Python, one process (the camera is opened once), a thread pool that holds many
long-lived MJPEG / SSE responses. Waitress (3.x) flushes every write at once from the worker thread
(send_bytes defaults to 1), so small SSE events go out immediately. A low `outbuf_high_watermark` blocks
a slow viewer's own thread after a few frames, so it skips frames instead of buffering megabytes.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from waitress import wasyncore
from waitress.channel import HTTPChannel
from waitress.server import create_server
from waitress.trigger import trigger as Trigger

from appliance.web import bounds

if TYPE_CHECKING:
    from flask import Flask

log = logging.getLogger(__name__)

SHUTDOWN_KEY = "appliance.shutdown"  # app.extensions[...] -> threading.Event streams poll
LONG_LIVED_KEY = "appliance.long_lived_limit"  # app.extensions[...] -> how many streams + SSE at once
LARGE_BODIES_KEY = "appliance.large_bodies"    # app.extensions[...] -> {upload path: max bytes}
CLIENT_CONNECTIONS_KEY = "appliance.connections_per_client"  # app.extensions[...] -> per address, 0: none
STOP_TIMEOUT_S = 0.9


def shutdown_event(app: Flask) -> threading.Event:
    """The Event that long-lived responses (stream, SSE) poll; set when the server stops."""
    return app.extensions.setdefault(SHUTDOWN_KEY, threading.Event())


class WebServer:
    """A waitress server running in a background thread; `stop()` returns within about a second."""

    def __init__(self, app: Flask, host: str, port: int, threads: int) -> None:
        self.app = app
        self._map: dict = {}
        self._shutdown = shutdown_event(app)
        self._shutdown.clear()
        threads = max(4, threads)
        max_body = int(app.config.get("MAX_CONTENT_LENGTH") or 65536)
        app.extensions[LONG_LIVED_KEY] = long_lived_limit(threads)
        self._server = create_server(
            app,
            map=self._map,
            host=host,
            port=port,
            threads=threads,
            outbuf_high_watermark=512 * 1024,
            asyncore_loop_timeout=1,  # whole seconds: waitress int()s it, and 0 spins a core
            channel_timeout=bounds.IDLE_TIMEOUT_S,
            cleanup_interval=1,
            connection_limit=max(bounds.CONNECTION_LIMIT, threads * 2),
            max_request_body_size=max_body + 1,  # waitress refuses at >=; ours is "more than"
            inbuf_overflow=max(524288, max_body + 1),  # never spill a body to a temp file
            ident="appliance",
            clear_untrusted_proxy_headers=True,
        )
        bounds.install(self._server, large_bodies=app.extensions.get(LARGE_BODIES_KEY),
                       connections_per_client=int(app.extensions.get(CLIENT_CONNECTIONS_KEY) or 0))
        listen = getattr(self._server, "effective_listen", None)
        if listen:
            self.host, self.port = listen[0][0], int(listen[0][1])
        else:
            self.host, self.port = self._server.effective_host, int(self._server.effective_port)
        self._thread = threading.Thread(target=self._run, name="web-server", daemon=True)
        self._stopped = False
        self._close_lock = threading.Lock()  # the loop thread and stop() may both try: close once
        self._closed_all = False

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def start(self) -> WebServer:
        self._thread.start()
        log.info("web page on %s", self.url)
        return self

    def _run(self) -> None:
        try:
            self._server.run()
        except (OSError, ValueError) as exc:
            if self._stopped:  # stop() closed a socket under the loop's poll (EBADF, or fileno -1): done
                log.debug("web server loop ended while stopping: %s", exc)
                return
            log.exception("web server loop failed")
        except Exception:  # the loop must not die silently
            log.exception("web server loop failed")

    def stop(self) -> None:
        """End streams, close every connection and the listening sockets, then join the workers."""
        if self._stopped:
            return
        self._stopped = True
        deadline = time.monotonic() + STOP_TIMEOUT_S
        self._shutdown.set()
        self._in_loop(self._close_all)
        self._thread.join(timeout=max(0.0, deadline - time.monotonic() - 0.3))
        if self._thread.is_alive():  # the loop did not run our thunk: close from here
            self._close_all()
            self._thread.join(timeout=max(0.0, deadline - time.monotonic() - 0.2))
        dispatcher = self._server.task_dispatcher
        dispatcher.shutdown(cancel_pending=True, timeout=max(0.05, deadline - time.monotonic()))

    def _in_loop(self, thunk: Callable[[], None]) -> None:
        """Run `thunk` in the loop thread (waitress's trigger), where closing channels is safe."""
        for obj in list(self._map.values()):
            if isinstance(obj, Trigger):
                try:
                    obj.pull_trigger(thunk)
                    return
                except OSError:  # the trigger is gone already: close from here
                    break
        thunk()

    def _close_all(self) -> None:
        """Close every channel, the listening socket and the trigger, exactly once: closing a descriptor
        twice from two threads could close one that another server has been given meanwhile."""
        with self._close_lock:
            if self._closed_all:
                return
            self._closed_all = True
            self._close_map()

    def _close_map(self) -> None:
        # handle_close wakes task threads blocked on a full output buffer (they raise ClientDisconnected)
        for obj in list(self._map.values()):
            if isinstance(obj, HTTPChannel):
                with contextlib.suppress(OSError):
                    obj.handle_close()
            elif isinstance(obj, Trigger):
                # a task thread finishing a response after this pulls the trigger: once its pipe is
                # closed that write would fail with EBADF (a traceback on shutdown) or, worse, hit a
                # reused file descriptor. Nothing needs waking any more.
                obj.pull_trigger = _ignore_pull
        wasyncore.close_all(self._map, ignore_all=True)


def _ignore_pull(thunk: Callable[[], None] | None = None) -> None:
    """A closed trigger's pull: the server loop it would wake has ended."""


def long_lived_limit(threads: int) -> int:
    """How many streams and event feeds may run at once: the rest of the threads stay for the API."""
    return max(1, threads - max(2, threads // 6))


def serve(app: Flask, host: str, port: int, threads: int) -> WebServer:
    """Start serving `app` on host:port in a background thread (port 0 picks a free one)."""
    return WebServer(app, host, port, threads).start()
