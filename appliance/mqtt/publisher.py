"""What the appliance publishes: state (retained), recognition and teach events, snapshots, the class list.

Fed from the EventBus (the same events the page's SSE gets). Few messages by design: the state goes
out when what is recognised or the health changes, else every `state_interval_s`; a recognition event
(QoS 1, buffered while the broker is away) only when the smoothed class changes; a snapshot JPEG at
most every `snapshot_interval_s`.
"""

from __future__ import annotations

import json
import threading
import time
from typing import TYPE_CHECKING

from appliance.classes import class_dict
from appliance.mqtt.topics import Topics

if TYPE_CHECKING:
    from appliance.config import MqttConfig
    from appliance.mqtt.connection import Connection
    from appliance.system import System


def _json(data: dict) -> bytes:
    return json.dumps(data, separators=(",", ":")).encode()


def _label(recognition: dict) -> str:
    """The class label, or "unknown" when no taught class is recognised."""
    return recognition.get("label") if recognition.get("class_id") is not None else "unknown"


def in_view(recognition: dict | None) -> list[int]:
    """Every taught class seen: the smoothed class, and in detect mode each box's matched class."""
    if not recognition:
        return []
    ids = {recognition.get("class_id")}
    for obj in recognition.get("objects") or []:
        match = obj.get("match") or {}
        ids.add(match.get("class_id"))
    return sorted(i for i in ids if i is not None)


def state_payload(status: dict, healthy: bool, recognition: dict | None) -> dict:
    """The retained state: what is recognised now (or "unknown"), the backend, fps and health."""
    rec = recognition or {}
    class_id = rec.get("class_id")
    fps = (status.get("fps") or {}).get("inference")
    ms = status.get("inference_ms")
    return {
        "label": _label(rec),
        "class_id": class_id,
        "score": round(float(rec.get("score") or 0.0), 4),
        "closest": rec.get("closest"),   # the taught class it is (or, when unknown, was) closest to
        "in_view": in_view(recognition),
        "backend": status.get("backend"),
        "mode": status.get("mode"),
        "fps": None if fps is None else round(float(fps), 1),
        "inference_ms": None if ms is None else round(float(ms), 2),
        "healthy": bool(healthy),
        "teaching": bool(status.get("teaching")),
        "classes": status.get("classes"),
        "time": round(time.time(), 3),
    }


class Publisher:
    def __init__(self, system: System, conn: Connection, topics: Topics, settings: MqttConfig) -> None:
        self.system = system
        self.conn = conn
        self.topics = topics
        self.state_interval_s = float(settings.state_interval_s)
        self.snapshot_interval_s = float(settings.snapshot_interval_s)
        self.recognition: dict | None = None
        self._state_key: tuple | None = None
        self._state_at = 0.0
        self._snapshot_at = -1e9
        self._snapshot: bytes | None = None
        self._lock = threading.Lock()  # the event thread and the network thread (reconnect, HA birth) publish

    # -- state ---------------------------------------------------------------------------------
    def publish_state(self, *, force: bool = False, status: dict | None = None) -> bool:
        """Publish the state when it changed or is due (or `force`); True when published."""
        status = status if status is not None else self.system.status()
        state = state_payload(status, self.system.healthy(), self.recognition)
        key = (state["class_id"], state["label"], state["closest"], tuple(state["in_view"]), state["healthy"],
               state["backend"], state["teaching"], state["classes"])
        with self._lock:
            now = time.monotonic()
            if not force and key == self._state_key and now - self._state_at < self.state_interval_s:
                return False
            self._state_key, self._state_at = key, now
            self.conn.publish(self.topics.state, _json(state), qos=0, retain=True)
        return True

    # -- events --------------------------------------------------------------------------------
    def handle(self, event: str, data: dict) -> None:
        if event == "recognition":
            self._recognition(data)
        elif event == "status":
            self.publish_state(status=data)
        elif event == "classes":
            self.publish_classes(data.get("classes"))
        elif event == "teach":
            self.conn.publish(self.topics.teach, _json({**data, "time": round(time.time(), 3)}), qos=1,
                              buffer=True)

    def _recognition(self, data: dict) -> None:
        previous = self.recognition or {}
        self.recognition = data
        if (previous and data.get("mode") != "detect"
                and (previous.get("class_id"), _label(previous)) == (data.get("class_id"), _label(data))):
            self.publish_state()  # only the closest class of an unknown changed: the state, not an event
            return
        event = {"type": "recognition", "class_id": data.get("class_id"), "label": _label(data),
                 "score": round(float(data.get("score") or 0.0), 4), "in_view": in_view(data),
                 "previous": {"class_id": previous.get("class_id"), "label": _label(previous)},
                 "time": round(time.time(), 3)}
        self.conn.publish(self.topics.events, _json(event), qos=1, buffer=True)
        self.publish_state()
        self.publish_snapshot()

    def publish_snapshot(self, *, force: bool = False) -> None:
        """The latest annotated frame, rate-limited; kept to re-send on reconnect."""
        with self._lock:
            now = time.monotonic()
            if not force and now - self._snapshot_at < self.snapshot_interval_s:
                return
            _, jpeg = self.system.hub.latest()
            jpeg = jpeg or self._snapshot
            if jpeg is None:
                return
            self._snapshot_at, self._snapshot = now, jpeg
            self.conn.publish(self.topics.snapshot, jpeg, qos=0, retain=True)

    def publish_classes(self, classes: list | None = None) -> list:
        if classes is None:
            classes = [class_dict(c) for c in self.system.classes.list()]
        self.conn.publish(self.topics.classes, _json({"classes": classes}), qos=1, retain=True)
        return classes
