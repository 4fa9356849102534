"""GET /healthz and GET /metrics: open without the password, for probes and Prometheus scrapers."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify

from appliance.web.state import web_state
from appliance.web.status import unhealthy_reason, with_web_figures

bp = Blueprint("metrics", __name__)

PROM_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def _escape(value: object) -> str:
    return str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _num(value: object) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    return repr(float(value)) if isinstance(value, float) else str(int(value))


def prometheus_text(status: dict, healthy: bool) -> str:
    """Prometheus exposition text from one status snapshot (the same numbers as /api/status)."""
    lines: list[str] = []

    def metric(name: str, kind: str, help_: str, samples: list[tuple[dict, object]]) -> None:
        samples = [(labels, v) for labels, v in samples if v is not None]
        if not samples:
            return
        lines.append(f"# HELP {name} {help_}")
        lines.append(f"# TYPE {name} {kind}")
        for labels, value in samples:
            tag = ",".join(f'{k}="{_escape(v)}"' for k, v in labels.items())
            lines.append(f"{name}{{{tag}}} {_num(value)}" if tag else f"{name} {_num(value)}")

    fps = status.get("fps") or {}
    metric("appliance_fps", "gauge", "Frames per second by stage.",
           [({"stage": "capture"}, fps.get("capture")), ({"stage": "inference"}, fps.get("inference"))])
    metric("appliance_inference_ms", "gauge", "Milliseconds of the latest inference.",
           [({}, status.get("inference_ms"))])
    metric("appliance_dropped_frames_total", "counter", "Frames dropped because inference was busy.",
           [({}, status.get("dropped_frames"))])
    metric("appliance_frames_captured_total", "counter", "Frames captured from the source.",
           [({}, status.get("frames_captured"))])
    metric("appliance_inferences_total", "counter", "Inferences run.", [({}, status.get("inferences"))])
    metric("appliance_reconnects_total", "counter", "Times the camera source was reopened.",
           [({}, status.get("reconnects"))])
    metric("appliance_uptime_seconds", "gauge", "Seconds since the pipeline started.",
           [({}, status.get("uptime_s"))])
    metric("appliance_source_connected", "gauge", "1 while the camera source delivers frames.",
           [({}, status.get("connected"))])
    metric("appliance_healthy", "gauge", "1 while frames and inferences advance.", [({}, healthy)])
    metric("appliance_stream_viewers", "gauge", "Open /stream.mjpg viewers.", [({}, status.get("viewers"))])
    metric("appliance_event_clients", "gauge", "Open /api/events clients.",
           [({}, status.get("event_clients"))])
    metric("appliance_classes", "gauge", "Taught classes.", [({}, status.get("classes"))])
    metric("appliance_cpu_temperature_celsius", "gauge", "SoC temperature.", [({}, status.get("cpu_temp_c"))])
    metric("appliance_backend_info", "gauge", "The inference backend (edgetpu or cpu) and mode.",
           [({"backend": status.get("backend", ""), "mode": status.get("mode", ""),
              "warning": status.get("backend_warning") or ""}, 1)])
    return "\n".join(lines) + "\n"


def _class_count(status: dict) -> int | None:
    value = status.get("classes")
    if isinstance(value, list):
        return len(value)
    return value if isinstance(value, int) else None


def _stall_seconds(system: object) -> float:
    config = getattr(system, "config", None)
    return float(getattr(getattr(config, "service", None), "stall_seconds", 10.0))


@bp.get("/healthz")
def healthz():
    state = web_state()
    system = state.system
    if system.healthy():
        return jsonify({"ok": True})
    reason = unhealthy_reason(system.status(), _stall_seconds(system))
    fix = ("run `appliance doctor` (it probes the Edge TPU and names the fix) and see the appliance log "
           "(journalctl -u appliance)" if reason.startswith("the inference worker") else
           "check the camera and the appliance log (journalctl -u appliance)")
    return jsonify({"ok": False, "error": reason, "fix": fix}), 503


@bp.get("/metrics")
def metrics():
    state = web_state()
    status = with_web_figures(state.system.status(), state)
    status["classes"] = _class_count(status)
    return Response(prometheus_text(status, bool(state.system.healthy())), content_type=PROM_TYPE)
