"""`appliance doctor`'s MQTT line: connect to the configured broker once, as the service would.

Self-contained (it reads the config itself) so doctor.py only registers it. Quiet (no line) when
MQTT is off or the config does not load (the config line already says why).
"""

from __future__ import annotations

import os
from typing import Any

from appliance.errors import ApplianceError


def check_mqtt(facts: Any) -> Any:
    from appliance.config import load_config
    from appliance.doctor import Check
    from appliance.mqtt.oneshot import OneShot

    if getattr(facts, "config_error", None) is not None:
        return None
    try:
        config = load_config(facts.config_path)
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
        return Check("fail", "mqtt", f"disconnected ({exc.problem.removeprefix('mqtt: ')})", exc.fix)
    return Check("ok", "mqtt", f"connected to {where}", "")
