"""GET /healthz and GET /metrics: open without the password, for probes and Prometheus scrapers.

Prometheus naming: base units (seconds, bytes), `_total` counters, an `appliance_build_info` gauge
whose labels say what runs, and the standard `process_*` metrics read from /proc, so one Prometheus
scraping every box of a fleet can alert on any of them.
"""

from __future__ import annotations

import os
import platform

from flask import Blueprint, Response, jsonify

from appliance import __version__
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
    ms = status.get("inference_ms")
    metric("appliance_inference_seconds", "gauge", "Duration of the latest inference.",
           [({}, None if ms is None else round(float(ms) / 1000.0, 6))])
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
    refused = status.get("live_views_refused") or {}
    metric("appliance_live_views_refused_total", "counter",
           "Streams and event feeds refused: a client at web.max_live_views_per_client, or the server full.",
           [({"reason": "client"}, refused.get("client")), ({"reason": "server"}, refused.get("server"))])
    metric("appliance_classes", "gauge", "Taught classes.", [({}, status.get("classes"))])
    metric("appliance_cpu_temperature_celsius", "gauge", "SoC temperature.", [({}, status.get("cpu_temp_c"))])
    metric("appliance_backend_info", "gauge", "The inference backend (edgetpu or cpu) and mode.",
           [({"backend": status.get("backend", ""), "mode": status.get("mode", ""),
              "warning": status.get("backend_warning") or ""}, 1)])
    runtime = status.get("runtime") or {}
    metric("appliance_build_info", "gauge",
           "What runs: the appliance version, the TFLite runtime in use (and the TensorFlow it was built "
           "from), the Edge TPU library, Python.",
           [({"version": __version__,
              "runtime": f"{runtime['name']} {runtime['version']}" if runtime.get("name") else "none",
              "tensorflow": runtime.get("tensorflow") or "", "libedgetpu": runtime.get("delegate") or "",
              "python": platform.python_version(), "backend": status.get("backend", "")}, 1)])
    worker = status.get("inference_worker") or {}
    metric("appliance_inference_worker_up", "gauge", "1 while the inference worker process serves.",
           [({}, worker.get("alive"))])
    metric("appliance_inference_worker_restarts_total", "counter", "Inference worker restarts.",
           [({}, worker.get("restarts"))])
    metric("appliance_backend_fallback", "gauge", "1 while running on the CPU after the accelerator failed.",
           [({}, status.get("backend_fallback"))])
    metric("appliance_inference_errors_total", "counter", "Inferences that raised an error.",
           [({}, status.get("inference_errors"))])
    metric("appliance_events_dropped_total", "counter", "Events dropped for slow subscribers.",
           [({}, status.get("events_dropped"))])
    mqtt = status.get("mqtt") or {}
    metric("appliance_mqtt_enabled", "gauge", "1 when [mqtt] is enabled.", [({}, mqtt.get("enabled"))])
    metric("appliance_mqtt_connected", "gauge", "1 while connected to the MQTT broker.",
           [({}, mqtt.get("connected"))])
    metric("appliance_mqtt_dropped_events_total", "counter", "MQTT events dropped while the broker was away.",
           [({}, mqtt.get("dropped_events"))])
    metric("appliance_mqtt_error_info", "gauge", "Why MQTT is disconnected (present only then).",
           [({"error": mqtt["error"]}, 1)] if mqtt.get("error") else [])
    for name, kind, help_, value in process_metrics():
        metric(name, kind, help_, [({}, value)])
    return "\n".join(lines) + "\n"


def process_metrics(proc: str = "/proc/self") -> list[tuple[str, str, str, float]]:
    """The standard process_* metrics (as Prometheus client libraries name them), from /proc on Linux."""
    out: list[tuple[str, str, str, float]] = []
    try:
        with open(f"{proc}/stat", encoding="ascii") as f:
            fields = f.read().rpartition(")")[2].split()
        ticks = os.sysconf("SC_CLK_TCK")
        page = os.sysconf("SC_PAGE_SIZE")
        with open("/proc/stat", encoding="ascii") as f:
            boot = next(float(line.split()[1]) for line in f if line.startswith("btime"))
        # fields[0] is the state (field 3 of stat): utime is field 14, so index 11
        out += [
            ("process_cpu_seconds_total", "counter", "User and system CPU time spent.",
             (int(fields[11]) + int(fields[12])) / ticks),
            ("process_start_time_seconds", "gauge", "Start time of the process since the Unix epoch.",
             boot + int(fields[19]) / ticks),
            ("process_virtual_memory_bytes", "gauge", "Virtual memory size.", int(fields[20])),
            ("process_resident_memory_bytes", "gauge", "Resident memory size.", int(fields[21]) * page),
        ]
        out.append(("process_open_fds", "gauge", "Open file descriptors.", len(os.listdir(f"{proc}/fd"))))
        with open(f"{proc}/limits", encoding="ascii") as f:
            soft = next(line.split()[3] for line in f if line.startswith("Max open files"))
        if soft.isdigit():
            out.append(("process_max_fds", "gauge", "Limit of open file descriptors.", int(soft)))
        out.append(("process_threads", "gauge", "OS threads.", int(fields[17])))
    except (OSError, ValueError, IndexError, StopIteration):
        pass  # not Linux: the process metrics are left out, the rest still serves
    return out


def _class_count(status: dict) -> int | None:
    value = status.get("classes")
    if isinstance(value, list):
        return len(value)
    return value if isinstance(value, int) else None


@bp.get("/healthz")
def healthz():
    state = web_state()
    system = state.system
    if system.healthy():
        return jsonify({"ok": True})
    reason = unhealthy_reason(system.status(), system.config.service.stall_seconds)
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
