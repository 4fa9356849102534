"""The status the page, /api/status, SSE and /metrics show: the System's snapshot plus web-side figures."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from appliance.web.state import WebState

THERMAL_ZONE = Path("/sys/class/thermal/thermal_zone0/temp")


def cpu_temperature_c(path: Path = THERMAL_ZONE) -> float | None:
    """The SoC temperature in °C (sysfs gives millidegrees), or None where it cannot be read."""
    try:
        return round(int(path.read_text().strip()) / 1000.0, 1)
    except (OSError, ValueError):
        return None


def with_web_figures(status: dict, state: WebState) -> dict:
    """`status` plus stream viewers, SSE clients, live views refused so far and the CPU temperature (left
    out when unreadable)."""
    out = dict(status)
    out["viewers"] = state.viewers.value
    out["event_clients"] = state.sse_clients.value
    out["live_views_refused"] = {"client": state.live.refused_client, "server": state.live.refused_busy}
    temp = cpu_temperature_c()
    if temp is not None:
        out["cpu_temp_c"] = temp
    else:
        out.pop("cpu_temp_c", None)
    return out


def status_payload(state: WebState) -> dict:
    """GET /api/status: the System's status, web figures and the latest result (None before the first)."""
    system = state.system
    out = with_web_figures(system.status(), state)
    result = system.latest_result()
    out["result"] = result.to_dict() if result is not None else None
    return out


def unhealthy_reason(status: dict, stall_s: float) -> str:
    """Why the appliance is not healthy, in words, from its status snapshot."""
    worker = status.get("inference_worker") or {}
    if worker.get("alive") is False:
        error = worker.get("last_error")
        return "the inference worker is down" + (f": {error}" if error else "")
    if status.get("connected") is False:
        return f"the camera source {status.get('source') or ''} is not delivering frames".replace("  ", " ")
    running = status.get("inference_running_s")
    if running is not None and running > stall_s:
        return f"an inference has been running for {running:.1f} s"
    frame_age = status.get("last_frame_age_s")
    if frame_age is None:
        return "no frame captured yet"
    if frame_age > stall_s:
        return f"no new frame for {frame_age:.1f} s"
    inference_age = status.get("last_inference_age_s")
    if inference_age is None:
        return "no inference yet"
    if inference_age > stall_s:
        return f"no new inference for {inference_age:.1f} s"
    return "frames or inferences are not advancing"
