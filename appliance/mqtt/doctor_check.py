"""`appliance doctor`'s MQTT line: connect to the configured broker once, as the service would.

Self-contained (it reads the config itself): doctor.check_mqtt only names the line. Quiet (no line)
when MQTT is off or the config does not load (the config line already says why).
"""

from __future__ import annotations

import os

from appliance.errors import ApplianceError


def broker_line(config_path: str | None) -> tuple[str, str, str] | None:
    """(status, detail, fix) of one connection to the configured broker, or None when MQTT is off."""
    from appliance.config import load_config
    from appliance.mqtt.oneshot import OneShot

    try:
        config = load_config(config_path)
    except ApplianceError:
        return None
    m = config.mqtt
    if not m.enabled:
        return None
    where = f"{m.host}:{m.port}" + (" with TLS" if m.tls_ca else "")
    where += f" as {m.username}" if m.username else ""
    try:
        with OneShot(m, f"appliance-doctor-{os.getpid()}"):  # not the service's id: that would cut it off
            pass
    except ApplianceError as exc:
        return "fail", f"disconnected ({exc.problem.removeprefix('mqtt: ')})", exc.fix
    return "ok", f"connected to {where}", ""
