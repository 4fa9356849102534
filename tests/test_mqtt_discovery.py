"""MQTT with a real Mosquitto and a real System (real photos, CPU models): Home Assistant discovery
payloads checked field by field against HA's MQTT discovery schema (and their templates rendered with
Jinja2 against the real state), state and events, commands with replies, bad commands with the same
errors as the HTTP API, class sensors added / renamed / removed, re-publishing on HA's birth message."""

from __future__ import annotations

import dataclasses
import json

import jinja2
import pytest
from mqtt_helpers import Watcher
from system_helpers import CameraFolder
from web_helpers import Client, wait_for, web_config

from appliance.system import System

DEV = "testbox"
PREFIX = f"appliance/{DEV}"
DP = "homeassistant"
URL = "http://box.example:8080"

# HA MQTT discovery: the keys each platform takes (abbreviations aside), which are required, and
# allowed values (homeassistant/components/mqtt/{sensor,binary_sensor,button,image}.py and the docs).
COMMON = {"name", "unique_id", "availability_topic", "payload_available", "payload_not_available", "device",
          "icon", "entity_category", "json_attributes_topic", "object_id", "default_entity_id"}
SCHEMA = {
    "sensor": ({"state_topic"}, {"value_template", "unit_of_measurement", "device_class", "state_class"}),
    "binary_sensor": ({"state_topic"}, {"value_template", "payload_on", "payload_off", "device_class"}),
    "button": ({"command_topic"}, {"payload_press", "device_class", "qos", "retain"}),
    "image": ({"image_topic"}, {"content_type", "image_encoding"}),
}
BINARY_CLASSES = {"problem", "occupancy", "presence", "motion", "running", "connectivity"}
SENSOR_UNITS = {"duration": {"d", "h", "min", "s", "ms"}}
DEVICE_KEYS = {"identifiers", "name", "manufacturer", "model", "sw_version", "configuration_url"}


def check_ha_config(topic: str, cfg: dict) -> str:
    """Assert one discovery config is what HA accepts; -> its component."""
    prefix, component, node, object_id, last = topic.split("/")
    assert (prefix, node, last) == (DP, DEV, "config") and object_id
    required, optional = SCHEMA[component]
    assert required <= set(cfg), f"{topic} lacks {required - set(cfg)}"
    unknown = set(cfg) - required - optional - COMMON
    assert not unknown, f"{topic}: keys HA does not know: {unknown}"
    assert isinstance(cfg["name"], str) and cfg["name"]
    assert cfg["unique_id"] == f"appliance_{DEV}_{object_id}"
    assert cfg["availability_topic"] == f"{PREFIX}/available"
    assert (cfg["payload_available"], cfg["payload_not_available"]) == ("online", "offline")
    device = cfg["device"]
    assert set(device) == DEVICE_KEYS
    assert device["identifiers"] == [f"appliance_{DEV}"] and device["configuration_url"] == URL
    assert device["name"] == "Front door" and device["sw_version"] and device["model"]
    if "entity_category" in cfg:
        assert cfg["entity_category"] in ("config", "diagnostic")
    if "state_class" in cfg:
        assert cfg["state_class"] in ("measurement", "total", "total_increasing")
        assert component == "sensor"
    if component == "sensor" and "device_class" in cfg:
        assert cfg["unit_of_measurement"] in SENSOR_UNITS[cfg["device_class"]]
    if component == "binary_sensor":
        assert cfg.get("device_class", "problem") in BINARY_CLASSES
        assert (cfg["payload_on"], cfg["payload_off"]) == ("ON", "OFF")
    for key in ("state_topic", "json_attributes_topic"):
        if key in cfg:
            assert cfg[key] == f"{PREFIX}/state"
    if component == "button":
        assert cfg["command_topic"] == f"{PREFIX}/command"
        press = json.loads(cfg["payload_press"])
        assert press["action"] == "teach" and isinstance(press["slot"], int)
    if component == "image":
        assert cfg["image_topic"] == f"{PREFIX}/snapshot" and cfg["content_type"] == "image/jpeg"
    return component


def render(template: str, state: dict) -> str:
    return jinja2.Environment().from_string(template).render(value_json=state).strip()


def configs(w: Watcher) -> dict[str, dict]:
    """The latest retained config per topic (empty payload = removed)."""
    out: dict[str, dict] = {}
    for topic, payload, _ in list(w.messages):
        if topic.startswith(f"{DP}/") and topic.endswith("/config"):
            out[topic] = json.loads(payload) if payload else {}
    return out


def replies(w: Watcher) -> dict:
    return {r["id"]: r for r in w.json_on(f"{PREFIX}/command/reply")}


@pytest.fixture
def running(tmp_path, images_dir, mqtt_broker):
    camera = CameraFolder(tmp_path / "camera")
    camera.show(images_dir / "imprinting" / "cat_train_0.bmp")
    config = web_config(tmp_path / "data")
    config = mqtt_broker.settings(config, device_id=DEV, device_name="Front door", public_url=URL,
                                  state_interval_s=1.0, snapshot_interval_s=0.0)
    config = dataclasses.replace(config, controls=dataclasses.replace(config.controls,
                                                                      slot_labels=("Mail", "Cat")))
    # a class sensor an earlier run left retained, for a class that no longer exists
    stale = Watcher(mqtt_broker)
    stale.publish(f"{DP}/binary_sensor/{DEV}/class_77/config", {"name": "gone in view"}, retain=True)
    stale.close()
    watcher = Watcher(mqtt_broker, f"{PREFIX}/#", f"{DP}/#")
    system = System(config, source=camera.source())
    system.start(web=True, controls=False)
    yield system, watcher, camera
    system.stop()
    watcher.close()
    # leave nothing retained for the other tests
    cleanup = Watcher(mqtt_broker)
    for topic in {t for t, _, r in watcher.messages}:
        cleanup.publish(topic, b"", retain=True)
    cleanup.close()


def test_discovery_state_commands_and_class_sensors(running, mqtt_broker, images_dir):
    system, w, camera = running
    fixed = {f"{DP}/sensor/{DEV}/class/config", f"{DP}/sensor/{DEV}/confidence/config",
             f"{DP}/image/{DEV}/snapshot/config", f"{DP}/binary_sensor/{DEV}/health/config",
             f"{DP}/sensor/{DEV}/fps/config", f"{DP}/sensor/{DEV}/inference_time/config",
             f"{DP}/button/{DEV}/teach_slot_1/config", f"{DP}/button/{DEV}/teach_slot_2/config"}
    w.wait(lambda w: fixed <= set(configs(w)) and w.on(f"{PREFIX}/state"))
    assert w.on(f"{PREFIX}/available")[-1] == b"online"
    assert system.status()["mqtt"] == {"enabled": True, "connected": True, "error": None, "dropped_events": 0}
    # the stale class sensor was removed with an empty retained config
    w.wait(lambda w: configs(w).get(f"{DP}/binary_sensor/{DEV}/class_77/config") == {})

    found = configs(w)
    components = {topic: check_ha_config(topic, found[topic]) for topic in fixed}
    assert sorted(components.values()).count("button") == 2
    assert len({found[t]["unique_id"] for t in fixed}) == len(fixed)
    assert found[f"{DP}/button/{DEV}/teach_slot_2/config"]["name"] == "Teach slot 2 (Cat)"
    state = w.json_on(f"{PREFIX}/state")[-1]
    assert {"label", "score", "backend", "healthy", "fps", "in_view"} <= set(state)
    assert state["label"] == "unknown" and state["backend"] == "cpu"
    assert state["closest"] is None  # nothing taught yet
    # healthy comes with the first inference; an fps needs two (the state is re-sent every second)
    w.wait(lambda w: w.json_on(f"{PREFIX}/state")[-1]["healthy"] and w.json_on(f"{PREFIX}/state")[-1]["fps"])
    state = w.json_on(f"{PREFIX}/state")[-1]
    assert render(found[f"{DP}/binary_sensor/{DEV}/health/config"]["value_template"], state) == "OFF"
    assert render(found[f"{DP}/sensor/{DEV}/class/config"]["value_template"], state) == "unknown"
    assert float(render(found[f"{DP}/sensor/{DEV}/fps/config"]["value_template"], state)) > 0
    assert w.on(f"{PREFIX}/snapshot")[-1][:2] == b"\xff\xd8"
    assert json.loads(w.on(f"{PREFIX}/classes")[-1]) == {"classes": []}

    # teach by command: the reply, teach events, the class list, a class sensor, then recognition
    cmd = f"{PREFIX}/command"
    w.publish(cmd, {"id": "t1", "action": "teach", "label": " cat "})
    reply = w.wait(lambda w: replies(w).get("t1"), 30)
    assert reply["ok"] is True and reply["class"]["label"] == "cat" and reply["class"]["samples"] == 4
    class_id = reply["class"]["id"]
    teach = w.wait(lambda w: w.json_on(f"{PREFIX}/teach")[1:])  # the reply may overtake the event
    assert [e["state"] for e in w.json_on(f"{PREFIX}/teach")][:2] == ["started", "finished"]
    assert teach[0]["class_id"] == class_id and teach[0]["frames"] == 4
    w.wait(lambda w: [c["label"] for c in json.loads(w.on(f"{PREFIX}/classes")[-1])["classes"]] == ["cat"])
    sensor_topic = f"{DP}/binary_sensor/{DEV}/class_{class_id}/config"
    sensor = w.wait(lambda w: configs(w).get(sensor_topic))
    check_ha_config(sensor_topic, sensor)
    assert sensor["name"] == "cat in view"
    event = w.wait(lambda w: [e for e in w.json_on(f"{PREFIX}/events") if e["label"] == "cat"])[-1]
    assert event["class_id"] == class_id and event["score"] > 0.5 and event["previous"]["label"] == "unknown"
    state = w.wait(lambda w: [s for s in w.json_on(f"{PREFIX}/state") if s["class_id"] == class_id])[-1]
    assert render(sensor["value_template"], state) == "ON"
    assert render(found[f"{DP}/sensor/{DEV}/class/config"]["value_template"], state) == "cat"
    assert float(render(found[f"{DP}/sensor/{DEV}/confidence/config"]["value_template"], state)) > 50
    camera.show(images_dir / "imprinting" / "hotdog_test_0.bmp")  # something not taught
    w.wait(lambda w: any(e["label"] == "unknown" and e["previous"]["label"] == "cat"
                         for e in w.json_on(f"{PREFIX}/events")))
    state = w.wait(lambda w: w.json_on(f"{PREFIX}/state")[-1]["class_id"] is None
                   and w.json_on(f"{PREFIX}/state")[-1])
    assert render(sensor["value_template"], state) == "OFF"
    assert (state["label"], state["closest"]) == ("unknown", "cat")  # what the hot dog was closest to

    # bad commands get the HTTP API's own errors
    http = Client(system.web_server.port)
    w.publish(cmd, b"{not json")
    w.publish(cmd, {"id": "b1", "action": "explode"})
    w.publish(cmd, {"id": "b2", "action": "teach", "label": "a\tb"})
    w.publish(cmd, {"id": "b3", "action": "delete", "class_id": 999})
    w.publish(cmd, {"id": "b4", "action": "rename", "class_id": class_id})
    w.publish(cmd, {"id": "b5", "action": "clear", "slot": 9})
    w.publish(cmd, {"id": "b6", "action": "delete", "class_id": "1"})
    wanted = {"b1", "b2", "b3", "b4", "b5", "b6", None}
    got = w.wait(lambda w: replies(w) if wanted <= set(replies(w)) else None)
    assert all(r["ok"] is False and r["error"] and r["fix"] for k, r in got.items() if k != "t1")
    assert "not valid JSON" in got[None]["error"]
    assert "unknown action" in got["b1"]["error"] and "teach" in got["b1"]["fix"]
    status, _, body = http.post("/api/classes", {"label": "a\tb"})
    assert status == 400 and (got["b2"]["error"], got["b2"]["fix"]) == (body["error"], body["fix"])
    status, _, body = http.request("DELETE", "/api/classes/999")
    assert status == 404 and (got["b3"]["error"], got["b3"]["fix"]) == (body["error"], body["fix"])
    assert "label" in got["b4"]["error"]
    assert "no button slot 9" in got["b5"]["error"] and "1 to 2" in got["b5"]["fix"]
    assert "whole number" in got["b6"]["error"]
    assert [c.label for c in system.store.list_classes()] == ["cat"]

    # rename: same id, the sensor's name follows; HA's birth message re-publishes every config
    w.publish(cmd, {"id": "r1", "action": "rename", "from": "CAT", "label": "kitty"})
    assert w.wait(lambda w: replies(w).get("r1"))["class"]["label"] == "kitty"
    w.wait(lambda w: configs(w)[sensor_topic].get("name") == "kitty in view")
    before = len([m for m in w.messages if m[0] == f"{DP}/sensor/{DEV}/class/config"])
    w.publish(f"{DP}/status", "online")
    w.wait(lambda w: len([m for m in w.messages if m[0] == f"{DP}/sensor/{DEV}/class/config"]) > before)

    # a teach-slot button press is the same as the physical button: the slot's label
    w.publish(cmd, json.loads(found[f"{DP}/button/{DEV}/teach_slot_2/config"]["payload_press"]))
    assert w.wait(lambda w: replies(w).get("ha-button-2"), 30)["class"]["label"] == "Cat"

    # delete: the class sensor is removed (empty retained config)
    w.publish(cmd, {"id": "d1", "action": "delete", "label": "kitty"})
    assert w.wait(lambda w: replies(w).get("d1"))["ok"] is True
    w.wait(lambda w: configs(w)[sensor_topic] == {})
    assert [c.label for c in system.store.list_classes()] == ["Cat"]
    wait_for(lambda: not system.teacher.busy)


def test_a_change_of_only_the_closest_class_updates_the_state_not_the_events():
    """The publisher's choice alone (the broker side is the test above): a recognition event whose only
    change is what an unknown was closest to re-sends the state with the new `closest`, and adds no
    MQTT event (events stay one per change of the recognised class)."""
    from types import SimpleNamespace

    from appliance.mqtt.publisher import Publisher
    from appliance.mqtt.topics import Topics

    sent: list[tuple[str, dict]] = []
    conn = SimpleNamespace(publish=lambda topic, payload, **_: sent.append((topic, json.loads(payload))))
    system = SimpleNamespace(status=lambda: {"backend": "cpu", "classes": 2}, healthy=lambda: True,
                             hub=SimpleNamespace(latest=lambda: (0, None)))
    topics = Topics(prefix=PREFIX, discovery_prefix=DP, device_id=DEV, fleet_prefix="appliance/fleet")
    settings = SimpleNamespace(state_interval_s=30.0, snapshot_interval_s=10.0)
    publisher = Publisher(system, conn, topics, settings)

    def unknown(closest: str) -> dict:
        return {"class_id": None, "label": "unknown", "score": 0.5, "closest": closest, "mode": "classify"}

    publisher.handle("recognition", unknown("mug"))
    publisher.handle("recognition", unknown("cup"))
    events = [p for t, p in sent if t == f"{PREFIX}/events"]
    states = [p for t, p in sent if t == f"{PREFIX}/state"]
    assert [e["label"] for e in events] == ["unknown"]
    assert [s["closest"] for s in states] == ["mug", "cup"]
    publisher.handle("recognition", {"class_id": 2, "label": "cup", "score": 0.9, "closest": "cup",
                                     "mode": "classify"})
    assert [p["label"] for t, p in sent if t == f"{PREFIX}/events"] == ["unknown", "cup"]
