"""Broker trouble never stops the appliance: a real Mosquitto stopped and restarted under a running
System (no crash, state re-published, events buffered with counted drops), wrong passwords and bad
certificates as one clear line with the fix (not a reconnect storm), and the doctor's MQTT line."""

from __future__ import annotations

import time
from types import SimpleNamespace

import pytest
from mqtt_helpers import USER, Broker, Watcher, make_ca
from system_helpers import CameraFolder
from web_helpers import wait_for, web_config

from appliance.config import MqttConfig
from appliance.doctor import check_mqtt
from appliance.mqtt.connection import Connection
from appliance.system import System
from appliance.web.metrics import prometheus_text


def connection(broker: Broker, **mqtt) -> Connection:
    base = dict(enabled=True, host="127.0.0.1", port=broker.port, username=USER,
                password_file=str(broker.password_file), keepalive_s=5)
    base.update(mqtt)
    conn = Connection(MqttConfig(**base), f"t-{time.monotonic_ns()}", will_topic="t/available",
                      subscriptions=[], on_connect=lambda: None, on_message=lambda t, p: None)
    conn.start()
    return conn


def connect_attempts(broker: Broker) -> int:
    return broker.log.read_text(errors="replace").count("Sending CONNACK")  # MQTT attempts, not port probes


def test_wrong_password_is_one_clear_line_not_a_storm(mqtt_broker, tmp_path):
    wrong = tmp_path / "wrong.txt"
    wrong.write_text("not-the-password\n")
    before = connect_attempts(mqtt_broker)
    conn = connection(mqtt_broker, password_file=str(wrong))
    try:
        wait_for(lambda: conn.error, 10)
        assert conn.error.startswith("the broker refused the login: not authorized (wrong username or")
        assert "password_file" in conn.fix and "mosquitto_passwd" in conn.fix
        time.sleep(2.0)
        assert connect_attempts(mqtt_broker) - before == 1, "retried a refused password at once"
        assert conn.status() == {"enabled": True, "connected": False, "error": conn.error,
                                 "dropped_events": 0}
    finally:
        conn.stop()


def test_missing_password_file_and_tls_files_are_errors_not_crashes(mqtt_broker, tmp_path):
    conn = connection(mqtt_broker, password_file=str(tmp_path / "nope.txt"))
    assert "password_file" in conn.error and "nope.txt" in conn.error and "first line" in conn.fix
    conn.stop()
    conn = connection(mqtt_broker, port=mqtt_broker.tls_port, tls_ca=str(tmp_path / "ca.pem"))
    assert "TLS files" in conn.error and "tls_ca" in conn.fix
    conn.stop()


def test_tls_good_ca_connects_wrong_ca_and_plain_to_tls_say_why(mqtt_broker, tmp_path):
    good = connection(mqtt_broker, port=mqtt_broker.tls_port, tls_ca=str(mqtt_broker.ca[0]))
    other_ca, _ = make_ca(tmp_path, "other-ca")
    bad = connection(mqtt_broker, port=mqtt_broker.tls_port, tls_ca=str(other_ca))
    plain = connection(mqtt_broker, port=mqtt_broker.tls_port)
    try:
        wait_for(lambda: good.connected, 10)
        wait_for(lambda: bad.error and plain.error, 10)
        assert bad.error.startswith("TLS: the broker's certificate at 127.0.0.1:")
        assert "was not accepted (self-signed certificate in certificate chain)" in bad.error
        assert "tls_ca" in bad.fix
        assert "closed the connection before accepting it" in plain.error and "tls_ca" in plain.fix
        assert not bad.connected and not plain.connected
    finally:
        for conn in (good, bad, plain):
            conn.stop()


def test_doctor_line_names_the_problem_and_the_fix(mqtt_broker, tmp_path):
    wrong = tmp_path / "wrong.txt"
    wrong.write_text("nope\n")
    config = tmp_path / "config.toml"
    base = (f'data_dir = "{tmp_path}"\n[mqtt]\nenabled = true\nhost = "127.0.0.1"\n'
            f'port = {mqtt_broker.port}\nusername = "{USER}"\n')
    config.write_text(base + f'password_file = "{wrong}"\n')
    check = check_mqtt(SimpleNamespace(config_error=None, config_path=str(config)))
    assert check.status == "fail" and check.name == "mqtt"
    assert check.detail.startswith("disconnected (the broker refused the login: not authorized")
    assert "password_file" in check.fix
    config.write_text(base + f'password_file = "{mqtt_broker.password_file}"\n')
    check = check_mqtt(SimpleNamespace(config_error=None, config_path=str(config)))
    assert check.status == "ok" and f"127.0.0.1:{mqtt_broker.port}" in check.detail
    config.write_text(f'data_dir = "{tmp_path}"\n')
    assert check_mqtt(SimpleNamespace(config_error=None, config_path=str(config))) is None  # off: no line


@pytest.fixture
def own_broker(tmp_path):
    broker = Broker(tmp_path / "broker", persistence=True)  # keeps the watcher's session over a restart
    yield broker
    broker.stop()


def test_broker_stopped_and_restarted_mid_run(own_broker, tmp_path, images_dir):
    camera = CameraFolder(tmp_path / "camera")
    camera.show(images_dir / "imprinting" / "cat_train_0.bmp")
    config = own_broker.settings(web_config(tmp_path / "data"), device_id="flappy", buffer_events=3)
    system = System(config, source=camera.source())
    system.start(web=False, controls=False)
    w = Watcher(own_broker, "appliance/flappy/#", session="flappy-watcher")
    try:
        wait_for(lambda: system.status()["mqtt"]["connected"])
        own_broker.stop()
        stopped_at = time.time()
        wait_for(lambda: system.status()["mqtt"]["error"], 10)
        status = system.status()["mqtt"]
        assert status["connected"] is False and status["enabled"] is True
        assert "lost" in status["error"] or "refused" in status["error"]
        # teaching goes on without the broker: 2 bursts = 4 teach events (+ recognition events) into a
        # buffer of 3: the oldest are dropped and counted
        system.classes.teach("cat")
        camera.show(images_dir / "imprinting" / "dog_train_0.bmp")
        wait_for(lambda: camera.showing(images_dir / "imprinting" / "dog_train_0.bmp"))
        system.classes.teach("dog")
        wait_for(lambda: system.status()["mqtt"]["dropped_events"] >= 1)
        inferences = system.status()["inferences"]
        wait_for(lambda: system.status()["inferences"] > inferences + 3)  # the appliance runs on
        text = prometheus_text(system.status(), system.healthy())
        assert "appliance_mqtt_connected 0" in text
        assert f'appliance_mqtt_error_info{{error="{system.status()["mqtt"]["error"]}"}} 1' in text
        assert f"appliance_mqtt_dropped_events_total {system.status()['mqtt']['dropped_events']}" in text

        own_broker.start()
        wait_for(lambda: system.status()["mqtt"]["connected"], 40)
        assert system.status()["mqtt"]["error"] is None and system.mqtt.conn.connects == 2
        # state and the class list re-published after the reconnect (made after the broker stopped)
        state = w.wait(lambda w: [s for s in w.json_on("appliance/flappy/state") if s["time"] > stopped_at])
        assert state[-1]["classes"] == 2
        classes = w.wait(lambda w: w.json_on("appliance/flappy/classes")[-1]["classes"])
        assert sorted(c["label"] for c in classes) == ["cat", "dog"]
        time.sleep(1.0)  # nothing older (a retained message unacknowledged at the loss) may follow it
        assert w.json_on("appliance/flappy/classes")[-1]["classes"] == classes
        assert w.on("appliance/flappy/available")[-1] == b"online"
        # the buffered (newest) events arrive: dog's burst finished while the broker was away
        w.wait(lambda w: any(e["state"] == "finished" and e["label"] == "dog"
                             for e in w.json_on("appliance/flappy/teach")))
        teach = w.json_on("appliance/flappy/teach")
        assert not any(e["label"] == "cat" and e["state"] == "started" for e in teach), "oldest not dropped"
    finally:
        w.close()
        system.stop()


def test_broker_down_at_start_then_up(own_broker, tmp_path, images_dir):
    own_broker.stop()
    camera = CameraFolder(tmp_path / "camera")
    camera.show(images_dir / "imprinting" / "cat_train_0.bmp")
    config = own_broker.settings(web_config(tmp_path / "data"), device_id="late")
    system = System(config, source=camera.source())
    system.start(web=False, controls=False)
    try:
        wait_for(lambda: "connection refused" in (system.status()["mqtt"]["error"] or ""), 10)
        assert system.latest_result() is not None or wait_for(lambda: system.latest_result() is not None)
        own_broker.start()
        wait_for(lambda: system.status()["mqtt"]["connected"], 40)
    finally:
        system.stop()
