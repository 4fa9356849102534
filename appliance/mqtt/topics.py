"""Who this box is on the broker: its stable device id, its topics, and the URL others reach it at.

The device id is generated once and kept in the data dir, so Home Assistant's unique ids and the
topics stay the same over restarts and upgrades (an id from the config wins).
"""

from __future__ import annotations

import os
import socket
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from appliance.config import Config

DEVICE_ID_FILE = "device_id"


def device_id(config: Config) -> str:
    """`[mqtt] device_id`, else the one kept in <data_dir>/device_id (written on first use)."""
    if config.mqtt.device_id:
        return config.mqtt.device_id
    path = Path(config.data_dir) / DEVICE_ID_FILE
    try:
        kept = path.read_text(encoding="utf-8").strip()
        if kept:
            return kept
    except FileNotFoundError:
        pass
    new = uuid.uuid4().hex[:12]
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{DEVICE_ID_FILE}.{os.getpid()}.tmp")
    tmp.write_text(new + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return new


def public_url(config: Config, port: int | None = None) -> str:
    """`[mqtt] public_url`, else http://<this host's name>:<web port> (what other machines can open).

    port: the port the page is really served on, when known (the config may say 0: any free port).
    """
    if config.mqtt.public_url:
        return config.mqtt.public_url.rstrip("/")
    host = config.web.host
    if host in ("0.0.0.0", "::", ""):
        host = socket.gethostname()
    return f"http://{host}:{port or config.web.port}"


@dataclass(frozen=True)
class Topics:
    prefix: str
    discovery_prefix: str
    device_id: str
    fleet_prefix: str

    @classmethod
    def from_config(cls, config: Config, dev_id: str | None = None) -> Topics:
        m = config.mqtt
        dev_id = dev_id or device_id(config)
        return cls(prefix=m.topic_prefix or f"appliance/{dev_id}", discovery_prefix=m.discovery_prefix,
                   device_id=dev_id, fleet_prefix=m.fleet_prefix)

    available = property(lambda self: f"{self.prefix}/available")
    state = property(lambda self: f"{self.prefix}/state")
    events = property(lambda self: f"{self.prefix}/events")
    teach = property(lambda self: f"{self.prefix}/teach")
    snapshot = property(lambda self: f"{self.prefix}/snapshot")
    classes = property(lambda self: f"{self.prefix}/classes")
    command = property(lambda self: f"{self.prefix}/command")
    reply = property(lambda self: f"{self.prefix}/command/reply")
    ha_status = property(lambda self: f"{self.discovery_prefix}/status")

    def fleet_set(self, name: str) -> str:
        return f"{self.fleet_prefix}/{name}"
