"""GET /api/events: server-sent events relayed from the EventBus (recognition, classes, status, teach).

Each client has its own bounded subscription (a slow client loses its oldest events, never slows
anyone). A comment line is sent as a heartbeat so proxies keep the connection and a vanished client
is noticed by the failing write. The `status` events come from the System's ticker (every second,
even while the pipeline is stalled); here they only get the web's own figures added, and a new client
gets one at once.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

from flask import Blueprint, Response

from appliance.web.state import Held, WebState, take_live_slot, web_state
from appliance.web.status import status_payload, with_web_figures

bp = Blueprint("events", __name__)

QUEUE_SIZE = 100


def sse(event: str, data: object) -> bytes:
    """One SSE message; json.dumps never emits a raw newline, so one data line is enough."""
    name = "".join(ch for ch in event if ch.isalnum() or ch in "_-") or "message"
    return f"event: {name}\ndata: {json.dumps(data, separators=(',', ':'), default=str)}\n\n".encode()


def event_stream(state: WebState) -> Iterator[bytes]:
    """SSE bytes for one client until it leaves or the server stops."""
    bus = state.system.events
    with state.sse_clients, bus.subscribe(maxsize=QUEUE_SIZE) as sub:
        yield b"retry: 3000\n\n" + sse("status", status_payload(state))
        last_beat = time.monotonic()
        while not state.shutdown.is_set() and not sub.closed:
            item = sub.get(timeout=state.poll_s)
            now = time.monotonic()
            if item is not None:
                event, data = item
                if event == "status":
                    data = with_web_figures(data, state)
                yield sse(event, data)
                last_beat = now
            elif now - last_beat >= state.heartbeat_s:
                yield b": ping\n\n"
                last_beat = now


@bp.get("/api/events")
def events():
    state = web_state()
    return Response(
        Held(event_stream(state), take_live_slot(state)),
        mimetype="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        direct_passthrough=True,
    )
