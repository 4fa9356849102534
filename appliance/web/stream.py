"""GET /stream.mjpg (multipart MJPEG from the FrameHub) and GET /snapshot.jpg (the latest frame).

Each viewer is a generator on its own server thread: it waits for the next frame with
hub.wait_next(seq) and so always sends the newest one, skipping what it was too slow for. The
pipeline never waits for a viewer. A viewer that goes away makes the server's next write fail, which
closes the generator (GeneratorExit) and takes it off the viewer gauge.
"""

from __future__ import annotations

from collections.abc import Iterator

from flask import Blueprint, Response

from appliance.errors import ApplianceError
from appliance.web.state import Held, WebState, take_live_slot, web_state

bp = Blueprint("stream", __name__)

BOUNDARY = "frame"
NO_STORE = {"Cache-Control": "no-store, no-cache, must-revalidate", "Pragma": "no-cache"}


class NoFrameError(ApplianceError):
    """No frame has been published yet."""

    status = 503


def mjpeg_parts(state: WebState) -> Iterator[bytes]:
    """Multipart parts for one viewer until it leaves or the server stops."""
    hub = state.system.hub
    with state.viewers:
        seq, jpeg = hub.latest()
        if jpeg is not None:
            yield state.parts.part(seq, jpeg)
        while not (state.shutdown.is_set() or hub.closed):
            new_seq, jpeg = hub.wait_next(seq, state.poll_s)
            if new_seq == seq or jpeg is None:
                continue
            seq = new_seq
            yield state.parts.part(seq, jpeg)


@bp.get("/stream.mjpg")
def stream():
    state = web_state()
    return Response(
        Held(mjpeg_parts(state), take_live_slot(state)),
        mimetype=f"multipart/x-mixed-replace; boundary={BOUNDARY}",
        headers={**NO_STORE, "X-Accel-Buffering": "no"},
        direct_passthrough=True,
    )


@bp.get("/snapshot.jpg")
def snapshot():
    _, jpeg = web_state().system.hub.latest()
    if jpeg is None:
        raise NoFrameError("no frame has been captured yet",
                           "wait a second for the camera to start, then retry")
    return Response(jpeg, mimetype="image/jpeg", headers=NO_STORE)
