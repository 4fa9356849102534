"""Home Assistant MQTT discovery: one device per appliance and its entities, as retained config messages.

Pure functions: (topic, payload) pairs that the bridge publishes. Topics follow HA's
`<discovery_prefix>/<component>/<node_id>/<object_id>/config`, with the device id as node id, so
unique ids stay stable. Every entity reads the retained `<prefix>/state` JSON and uses the appliance's
`<prefix>/available` as its availability. A class's binary sensor is removed with an empty retained
config on its topic.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from appliance.mqtt.topics import Topics

CLASS_OBJECT = re.compile(r"class_(\d+)")


@dataclass(frozen=True)
class Device:
    name: str
    model: str
    sw_version: str
    configuration_url: str


def device_block(topics: Topics, device: Device) -> dict:
    return {"identifiers": [f"appliance_{topics.device_id}"], "name": device.name,
            "manufacturer": "teachable-appliance", "model": device.model, "sw_version": device.sw_version,
            "configuration_url": device.configuration_url}


def config_topic(topics: Topics, component: str, object_id: str) -> str:
    return f"{topics.discovery_prefix}/{component}/{topics.device_id}/{object_id}/config"


def _entity(topics: Topics, device: Device, object_id: str, name: str, **fields: object) -> dict:
    payload = {"name": name, "unique_id": f"appliance_{topics.device_id}_{object_id}",
               "availability_topic": topics.available, "payload_available": "online",
               "payload_not_available": "offline", "device": device_block(topics, device)}
    payload.update(fields)
    return payload


def entity_configs(topics: Topics, device: Device, slot_labels: tuple[str, ...]) -> list[tuple[str, dict]]:
    """The fixed entities: recognised class, confidence, snapshot, health, fps, inference time, buttons."""
    state = topics.state
    out = [
        (config_topic(topics, "sensor", "class"), _entity(
            topics, device, "class", "Recognised class", state_topic=state,
            value_template="{{ value_json.label }}", icon="mdi:eye", json_attributes_topic=state)),
        (config_topic(topics, "sensor", "confidence"), _entity(
            topics, device, "confidence", "Confidence", state_topic=state,
            value_template="{{ (value_json.score * 100) | round(1) }}", unit_of_measurement="%",
            state_class="measurement", icon="mdi:percent")),
        (config_topic(topics, "image", "snapshot"), _entity(
            topics, device, "snapshot", "Snapshot", image_topic=topics.snapshot, content_type="image/jpeg")),
        (config_topic(topics, "binary_sensor", "health"), _entity(
            topics, device, "health", "Health", state_topic=state, device_class="problem",
            value_template="{{ 'OFF' if value_json.healthy else 'ON' }}", payload_on="ON", payload_off="OFF",
            entity_category="diagnostic")),
        (config_topic(topics, "sensor", "fps"), _entity(
            topics, device, "fps", "Inference fps", state_topic=state, value_template="{{ value_json.fps }}",
            unit_of_measurement="fps", state_class="measurement", entity_category="diagnostic",
            icon="mdi:speedometer")),
        (config_topic(topics, "sensor", "inference_time"), _entity(
            topics, device, "inference_time", "Inference time", state_topic=state,
            value_template="{{ value_json.inference_ms }}", unit_of_measurement="ms", device_class="duration",
            state_class="measurement", entity_category="diagnostic")),
    ]
    for slot, label in enumerate(slot_labels, start=1):
        press = json.dumps({"action": "teach", "slot": slot, "id": f"ha-button-{slot}"})
        out.append((config_topic(topics, "button", f"teach_slot_{slot}"), _entity(
            topics, device, f"teach_slot_{slot}", f"Teach slot {slot} ({label})",
            command_topic=topics.command, payload_press=press, icon="mdi:school")))
    return out


def class_config(topics: Topics, device: Device, class_id: int, label: str) -> tuple[str, dict]:
    """"<label> in view": ON while the state's `in_view` list holds this class id."""
    object_id = f"class_{int(class_id)}"
    return (config_topic(topics, "binary_sensor", object_id), _entity(
        topics, device, object_id, f"{label} in view", state_topic=topics.state,
        value_template=f"{{{{ 'ON' if {int(class_id)} in value_json.in_view else 'OFF' }}}}",
        payload_on="ON", payload_off="OFF", device_class="occupancy"))


def class_id_of(topic: str, topics: Topics) -> int | None:
    """The class id of one of our class binary-sensor config topics, else None."""
    head = f"{topics.discovery_prefix}/binary_sensor/{topics.device_id}/"
    if not topic.startswith(head) or not topic.endswith("/config"):
        return None
    match = CLASS_OBJECT.fullmatch(topic[len(head):-len("/config")])
    return int(match.group(1)) if match else None


def class_config_filter(topics: Topics) -> str:
    """Subscribed to learn which class sensors earlier runs left retained (to remove stale ones)."""
    return f"{topics.discovery_prefix}/binary_sensor/{topics.device_id}/+/config"
