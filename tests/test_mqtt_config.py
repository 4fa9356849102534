"""[mqtt] is validated like the rest of the config (file, line, fix), off by default; the device id is
made once and kept; topics and the public URL follow from the config."""

from __future__ import annotations

import dataclasses

import pytest

from appliance.config import Config, load_config
from appliance.errors import ConfigError
from appliance.mqtt.topics import Topics, device_id, public_url


def test_off_by_default_with_the_documented_defaults():
    m = Config().mqtt
    assert (m.enabled, m.port, m.discovery, m.discovery_prefix, m.topic_prefix) == (
        False, 1883, True, "homeassistant", "")


@pytest.mark.parametrize("body, line, words", [
    ('port = 0', 3, "[mqtt] port is 0, outside 1..65535"),
    ('topic_prefix = "home/#"', 3, 'topic_prefix is "home/#", not a valid MQTT topic prefix'),
    ('topic_prefix = "/home"', 3, "not a valid MQTT topic prefix"),
    ('discovery = "yes"', 3, "discovery must be true or false"),
    ('tls_cert = "/c.pem"', 3, "tls_cert is set but tls_ca is not"),
    ('username = "u"\npasword_file = "/p"', 4, 'pasword_file is not a known key'),
    ('password_file = "/p"', 3, "password_file is set but username is not"),
    ('device_id = "my box"', 3, "a device id is 1 to 64 letters"),
    ('fleet_subscribe = ["a/b"]', 3, 'has the set name "a/b"'),
    ('keepalive_s = 1', 3, "keepalive_s is 1, outside 5..3600"),
])
def test_bad_values_name_the_line_and_the_fix(tmp_path, body, line, words):
    path = tmp_path / "config.toml"
    path.write_text(f"# mine\n[mqtt]\n{body}\n")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert f"{path} line {line}: " in err.value.problem and words in err.value.problem, err.value.problem
    assert err.value.fix


def test_device_id_is_made_once_and_kept(tmp_path):
    config = dataclasses.replace(Config(), data_dir=tmp_path)
    first = device_id(config)
    assert len(first) == 12 and (tmp_path / "device_id").read_text().strip() == first
    assert device_id(config) == first
    topics = Topics.from_config(config)
    assert topics.state == f"appliance/{first}/state" and topics.available == f"appliance/{first}/available"
    named = dataclasses.replace(config, mqtt=dataclasses.replace(config.mqtt, device_id="door",
                                                                 topic_prefix="home/door"))
    t = Topics.from_config(named)
    assert (t.device_id, t.command, t.reply, t.ha_status) == (
        "door", "home/door/command", "home/door/command/reply", "homeassistant/status")
    assert public_url(named, 8123).endswith(":8123") and public_url(named).startswith("http://")
