"""One short broker connection for the command line: read what is retained, publish, disconnect.

`appliance classes publish NAME` runs beside the service (or without it): it cannot use the service's
connection, so it opens its own with the same [mqtt] settings and reports any failure as an error
with its fix (exit 2), never a traceback.
"""

from __future__ import annotations

import contextlib
import json
import threading
from typing import TYPE_CHECKING, Any

from appliance.errors import ApplianceError
from appliance.mqtt import fleet
from appliance.mqtt.connection import AUTH_FAILURES, describe_error, make_client
from appliance.mqtt.topics import Topics, public_url

if TYPE_CHECKING:
    from appliance.config import Config, MqttConfig
    from appliance.learning.store import ClassStore

RETAINED_WAIT_S = 1.0
TIMEOUT_S = 10.0


class OneShot:
    def __init__(self, settings: MqttConfig, client_id: str) -> None:
        self.settings = settings
        self.client = make_client(settings, client_id)
        self.retained: dict[str, bytes] = {}
        self._connected = threading.Event()
        self._refused: tuple[str, str] | None = None
        self.client.on_connect = self._on_connect
        self.client.on_message = lambda _c, _u, msg: self.retained.__setitem__(msg.topic, bytes(msg.payload))

    def _on_connect(self, _client: Any, _userdata: Any, _flags: Any, reason: Any, _props: Any) -> None:
        if reason.is_failure:
            self._refused = AUTH_FAILURES.get(getattr(reason, "value", None),
                                              (f"the broker refused the connection: {reason}", ""))
        self._connected.set()

    def __enter__(self) -> OneShot:
        s = self.settings
        try:
            self.client.connect(s.host, s.port, s.keepalive_s)
        except Exception as exc:
            problem, fix, _ = describe_error(exc, s.host, s.port)
            raise ApplianceError(f"mqtt: {problem}", fix) from None
        self.client.loop_start()
        if not self._connected.wait(TIMEOUT_S):
            raise ApplianceError(f"mqtt: no answer from the broker at {s.host}:{s.port}",
                                 "check [mqtt] host / port and that the broker runs")
        if self._refused:
            raise ApplianceError(f"mqtt: {self._refused[0]}", self._refused[1])
        return self

    def __exit__(self, *exc: Any) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def read_retained(self, topic: str) -> bytes | None:
        done = threading.Event()
        self.client.on_subscribe = lambda *a: done.set()
        self.client.subscribe(topic, qos=1)
        done.wait(TIMEOUT_S)
        threading.Event().wait(RETAINED_WAIT_S)  # a retained message follows the SUBACK promptly
        return self.retained.get(topic)

    def publish(self, topic: str, payload: str, *, retain: bool) -> None:
        info = self.client.publish(topic, payload, qos=1, retain=retain)
        with contextlib.suppress(RuntimeError, ValueError):
            info.wait_for_publish(TIMEOUT_S)
        if not info.is_published():
            raise ApplianceError(f"mqtt: the broker did not acknowledge {topic}",
                                 "check the broker's log and its ACL for this user")


def publish_set(config: Config, store: ClassStore, name: str, *, url_base: str | None = None) -> dict:
    """Export `store` as set `name` into the data dir and announce it; -> the announcement."""
    fleet.check_name(name)
    if not config.mqtt.enabled:
        raise ApplianceError("MQTT is off in the config, so a class set cannot be announced",
                             "set [mqtt] enabled = true with the broker's host (see docs/mqtt.md)")
    topics = Topics.from_config(config)
    client_id = f"{config.mqtt.client_id or 'appliance-' + topics.device_id}-publish"
    with OneShot(config.mqtt, client_id) as conn:
        previous = conn.read_retained(topics.fleet_set(name))
        version = 0
        if previous:
            try:
                version = int(json.loads(previous).get("version", 0))
            except (ValueError, AttributeError, TypeError):
                version = 0
        announcement = fleet.prepare_set(store, config.data_dir, name,
                                         url_base=url_base or public_url(config),
                                         publisher=topics.device_id, previous_version=version)
        conn.publish(topics.fleet_set(name), json.dumps(announcement), retain=True)
    return announcement
