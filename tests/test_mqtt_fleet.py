"""A fleet sharing what it was taught: two real appliances (real photos, CPU models, real web servers) on
a real Mosquitto. The first is taught and announces a class set (the page's endpoint, then the CLI);
the second fetches it over HTTP, checks sha256 and model, imports it, and recognises what the first was
taught; a newer version replaces the older. Plus the HTTP export / import endpoints themselves."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys

import pytest
from mqtt_helpers import USER, Watcher
from system_helpers import CameraFolder
from web_helpers import Client, wait_for, web_config

from appliance.paths import REPO_ROOT
from appliance.system import System

FLEET = "appliance/fleet"


def box(tmp_path, name, broker, images_dir, photo, **mqtt):
    camera = CameraFolder(tmp_path / name / "camera")
    camera.show(images_dir / "imprinting" / photo)
    config = broker.settings(web_config(tmp_path / name / "data"), device_id=name, **mqtt)
    system = System(config, source=camera.source())
    system.start(web=True, controls=False)
    return system, camera


def recognised(system) -> str | None:
    result = system.latest_result()
    return None if result is None or result.recognition is None else result.recognition.label


@pytest.fixture
def fleet(tmp_path, mqtt_broker, images_dir):
    a, cam_a = box(tmp_path, "boxa", mqtt_broker, images_dir, "cat_train_0.bmp")
    b, cam_b = box(tmp_path, "boxb", mqtt_broker, images_dir, "cat_test_0.bmp",
                   fleet_subscribe=("pets", "broken"))
    yield a, cam_a, b, cam_b
    b.stop()
    a.stop()
    cleanup = Watcher(mqtt_broker)
    for name in ("pets", "broken"):
        cleanup.publish(f"{FLEET}/{name}", b"", retain=True)
    cleanup.close()


def test_second_box_recognises_what_the_first_was_taught(fleet, mqtt_broker, images_dir, tmp_path,
                                                         models_dir):
    a, cam_a, b, cam_b = fleet
    imp = images_dir / "imprinting"
    http_a = Client(a.web_server.port)
    wait_for(lambda: a.status()["mqtt"]["connected"] and b.status()["mqtt"]["connected"])
    status, _, body = http_a.post("/api/classes", {"label": "cat"})
    assert status == 201
    assert b.store.list_classes() == [] and recognised(b) in (None, "unknown")  # nothing taught on B

    w = Watcher(mqtt_broker, f"{FLEET}/#")
    status, _, announced = http_a.post("/api/classes/publish", {"name": "pets"})
    assert status == 200, announced
    assert announced["version"] == 1 and announced["classes"] == ["cat"] and announced["publisher"] == "boxa"
    assert announced["url"] == f"http://127.0.0.1:{a.web_server.port}/api/classes/export?set=pets"
    assert announced["embedding_model"] == a.store.embedding_model
    message = w.wait(lambda w: w.json_on(f"{FLEET}/pets"))[-1]
    assert message == announced and w.messages[-1][0] == f"{FLEET}/pets"
    status, headers, blob = http_a.get("/api/classes/export?set=pets")
    assert status == 200 and hashlib.sha256(blob).hexdigest() == announced["sha256"]
    assert blob.startswith(b"SQLite format 3\x00")

    # box B fetched, checked and imported it: it now recognises the cat it was never shown being taught
    wait_for(lambda: [c.label for c in b.store.list_classes()] == ["cat"], 20)
    wait_for(lambda: recognised(b) == "cat", 20)
    assert b.store.find("cat").samples == 4

    # A learns a dog and publishes again, from the command line this time: version 2 replaces version 1
    cam_a.show(imp / "dog_train_0.bmp")
    wait_for(lambda: cam_a.showing(imp / "dog_train_0.bmp"))
    assert http_a.post("/api/classes", {"label": "dog"})[0] == 201
    config = tmp_path / "boxa.toml"
    config.write_text(f'data_dir = "{a.config.data_dir}"\n[mqtt]\nenabled = true\nhost = "127.0.0.1"\n'
                      f'port = {mqtt_broker.port}\nusername = "{USER}"\n'
                      f'password_file = "{mqtt_broker.password_file}"\ndevice_id = "boxa"\n'
                      f'public_url = "http://127.0.0.1:{a.web_server.port}"\n')
    env = {**os.environ, "APPLIANCE_MODELS_FROM": str(models_dir)}
    out = subprocess.run([sys.executable, "-m", "appliance", "classes", "publish", "pets", "--config",
                          str(config), "--json"], cwd=REPO_ROOT, env=env, capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    v2 = json.loads(out.stdout)
    assert v2["version"] == 2 and sorted(v2["classes"]) == ["cat", "dog"]
    wait_for(lambda: sorted(c.label for c in b.store.list_classes()) == ["cat", "dog"], 20)
    assert b.store.find("cat").samples == 4, "v2's cat replaced v1's, not added to it"
    cam_b.show(imp / "dog_test_0.bmp")
    wait_for(lambda: recognised(b) == "dog", 20)
    assert (b.config.data_dir / "fleet" / "backup-before-pets-v2.sqlite").is_file()

    # a wrong sha256 is refused with a reason; nothing imported
    w.publish(f"{FLEET}/broken", {**v2, "name": "broken", "sha256": "0" * 64}, retain=True)
    wait_for(lambda: "broken" in b.mqtt.fleet_errors, 20)
    assert "sha256" in b.mqtt.fleet_errors["broken"]
    assert sorted(c.label for c in b.store.list_classes()) == ["cat", "dog"]
    w.close()

    # CLI errors are a line with the fix: MQTT off in the config
    config.write_text(f'data_dir = "{a.config.data_dir}"\n')
    out = subprocess.run([sys.executable, "-m", "appliance", "classes", "publish", "pets", "--config",
                          str(config)], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "MQTT is off" in out.stderr and "enabled = true" in out.stderr


def test_http_export_and_import(fleet):
    a, _, b, _ = fleet
    http_a, http_b = Client(a.web_server.port), Client(b.web_server.port)
    assert http_a.post("/api/classes", {"label": "Cat"})[0] == 201
    status, headers, blob = http_a.get("/api/classes/export")
    assert status == 200 and headers["content-type"] == "application/vnd.sqlite3"
    assert 'filename="classes-export.sqlite"' in headers["content-disposition"]
    status, _, body = http_b.request("POST", "/api/classes/import", raw=blob,
                                     headers={"Content-Type": "application/octet-stream"})
    assert status == 200, body
    assert [c["label"] for c in body["imported"]] == ["Cat"] and body["classes"][0]["samples"] == 4
    assert [c.label for c in b.store.list_classes()] == ["Cat"]
    # twice: merged by label (samples appended), as `appliance classes import` does
    status, _, body = http_b.request("POST", "/api/classes/import", raw=blob,
                                     headers={"Content-Type": "application/octet-stream"})
    assert status == 200 and body["classes"][0]["samples"] == 8
    status, _, body = http_b.request("POST", "/api/classes/import", raw=b"not a database at all",
                                     headers={"Content-Type": "application/octet-stream"})
    assert status == 400 and "not a class-store export" in body["error"]
    assert "GET /api/classes/export" in body["fix"]
    status, _, body = http_a.get("/api/classes/export?set=nosuch")
    assert status == 404 and "appliance classes publish nosuch" in body["fix"]
    status, _, body = http_a.get("/api/classes/export?set=../../etc")
    assert status == 400 and "not a class-set name" in body["error"]
