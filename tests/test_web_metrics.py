"""/metrics in Prometheus naming, scraped from the real served System: base units, build info, process_*."""

from __future__ import annotations

import re
import time

from web_helpers import Client, shared_system

from appliance import __version__


def samples(text: str) -> dict[str, float]:
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            out[name] = float(value)
    return out


def test_metrics_follow_prometheus_naming_with_build_info_and_process_metrics():
    system = shared_system()
    text = Client(system.web_server.port).get("/metrics")[2].decode()
    got = samples(text)
    build = next(k for k in got if k.startswith("appliance_build_info{"))
    assert f'version="{__version__}"' in build and 'runtime="ai_edge_litert ' in build and got[build] == 1
    assert 0 < got["appliance_inference_seconds"] < 5  # seconds, not milliseconds
    assert not any(name.endswith("_ms") or "_ms{" in name for name in got)
    rss = got["process_resident_memory_bytes"]
    with open("/proc/self/status") as f:
        vmrss = int(next(line.split()[1] for line in f if line.startswith("VmRSS:"))) * 1024
    assert 0.5 * vmrss < rss < 2 * vmrss  # the test process serves the page: the same process
    assert got["process_cpu_seconds_total"] > 0 and got["process_open_fds"] > 3
    assert time.time() - 86400 < got["process_start_time_seconds"] < time.time()
    assert got["appliance_mqtt_enabled"] == 0 and got["appliance_mqtt_connected"] == 0
    assert got["appliance_inference_worker_up"] == 1 and got["appliance_backend_fallback"] == 0
    assert got["appliance_inference_worker_restarts_total"] == 0
    for name in re.findall(r"# TYPE (\S+) counter", text):
        assert name.endswith("_total"), name
    status = Client(system.web_server.port).get("/api/status")[2]
    assert status["mqtt"] == {"enabled": False, "connected": False, "error": None, "dropped_events": 0}
