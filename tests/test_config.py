"""The TOML config: defaults equal the example file, and every kind of mistake names file, line and fix."""

from __future__ import annotations

import dataclasses
import tomllib
from pathlib import Path

import pytest

from appliance import config as config_module
from appliance.config import (
    SECTIONS,
    Config,
    apply_overrides,
    check_config,
    demo_config,
    describe_config,
    find_line,
    load_config,
)
from appliance.errors import ConfigError
from appliance.paths import REPO_ROOT

EXAMPLE = REPO_ROOT / "docs" / "config.example.toml"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text)
    return path


def error_for(tmp_path: Path, text: str) -> ConfigError:
    with pytest.raises(ConfigError) as err:
        load_config(write(tmp_path, text))
    return err.value


def test_example_file_is_exactly_the_defaults() -> None:
    raw = tomllib.loads(EXAMPLE.read_text())
    loaded = load_config(EXAMPLE)
    assert loaded == Config() and loaded.path == EXAMPLE
    # every key of the example exists here and the other way round
    assert set(raw) == {"data_dir", *SECTIONS}
    for section, cls in SECTIONS.items():
        assert set(raw[section]) == {f.name for f in dataclasses.fields(cls)}, section
    assert loaded.controls.buttons == (17, 27, 22, 23) and isinstance(loaded.camera.fps, float)
    assert loaded.data_dir == Path("/var/lib/appliance")


def test_no_path_uses_the_system_file_or_defaults(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(config_module, "SYSTEM_CONFIG_PATH", tmp_path / "absent.toml")
    assert load_config() == Config() and load_config().path is None
    system = write(tmp_path, "[camera]\nsource = \"demo\"\n")
    monkeypatch.setattr(config_module, "SYSTEM_CONFIG_PATH", system)
    assert load_config().camera.source == "demo"


def test_explicit_missing_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        load_config(tmp_path / "nope.toml")
    assert "nope.toml does not exist" in err.value.problem and "config.example.toml" in err.value.fix


def test_partial_file_keeps_other_defaults(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, 'data_dir = "/srv/a"\n[camera]\nwidth = 320\nfps = 15\n'))
    assert config.camera.width == 320 and config.camera.fps == 15.0 and config.camera.height == 480
    assert config.data_dir == Path("/srv/a") and config.models_dir == Path("/srv/a/models")
    assert config.web == Config().web


def test_unknown_key_suggests_the_closest_with_its_line(tmp_path: Path) -> None:
    err = error_for(tmp_path, "# comment\n[camera]\nsource = \"demo\"\nwidht = 320\n")
    assert err.problem.startswith(f"{tmp_path / 'config.toml'} line 4: [camera] widht")
    assert 'did you mean "width"' in err.fix


def test_unknown_section_and_top_level_key(tmp_path: Path) -> None:
    err = error_for(tmp_path, "\n[camra]\nwidth = 3\n")
    assert "line 2" in err.problem and "camra" in err.problem and 'did you mean "camera"' in err.fix
    err = error_for(tmp_path, 'datadir = "/x"\n')
    assert "line 1" in err.problem and 'did you mean "data_dir"' in err.fix


def test_same_key_in_another_section_does_not_confuse_the_line(tmp_path: Path) -> None:
    err = error_for(tmp_path, "[web]\nenabled = true\nport = 80\n[controls]\nenabled = 1\n")
    assert "line 5: [controls] enabled must be true or false" in err.problem


@pytest.mark.parametrize(("text", "line", "words", "fix"), [
    ("[camera]\nwidth = \"big\"\n", 2, "width must be an integer", "640"),
    ("[camera]\nfps = 0\n", 2, "fps is 0", "0.1 to 240"),
    ("[camera]\nloop = \"yes\"\n", 2, "loop must be true or false", "true"),
    ("[web]\nport = 70000\n", 2, "port is 70000, outside 1..65535", "1 to 65535"),
    ("[web]\nport = 8080.5\n", 2, "port must be an integer", "8080"),
    ("[web]\nmax_live_views_per_client = -1\n", 2, "max_live_views_per_client is -1", "0 to 1000"),
    ("[web]\nmax_live_views_per_client = \"8\"\n", 2, "must be an integer", "8"),
    ("[web]\nmax_connections_per_client = 20000\n", 2, "max_connections_per_client is 20000", "0 to 10000"),
    ("[web]\nmax_connections_per_client = 4\nmax_live_views_per_client = 6\n", 3,
     "max_live_views_per_client (6) is more than max_connections_per_client (4)", "at least"),
    ("[recognition]\nmode = \"detekt\"\n", 2, 'mode is "detekt"', 'did you mean "detect"'),
    ("[recognition]\nunknown_threshold = 1.5\n", 2, "unknown_threshold is 1.5", "0.0 to 1.0"),
    ("[recognition]\nmin_similarity = -0.1\n", 2, "min_similarity is -0.1", "0.0 to 1.0"),
    ("[vision]\ndevice = \"tpu\"\n", 2, "device is \"tpu\"", "auto, edgetpu, cpu"),
    ("[vision]\nedgetpu_device = \"usb0\"\n", 2, "edgetpu_device", "usb:N"),
    ("[vision]\nedgetpu_device = \" usb\"\n", 2, "with spaces around the device name", 'write "usb"'),
    ("[controls]\nbuttons = [17, 27, 40, 23]\n", 2, "pin 40", "BCM"),
    ("[controls]\nbuttons = [17, 17, 22, 23]\n", 2, "twice", "own pin"),
    ("[controls]\nbuttons = [17, \"27\"]\n", 2, "list of integers", "[17, 27, 22, 23]"),
    ("[controls]\nbuttons = []\n", 2, "0 entries", "1 to 4"),
    ("[controls]\nbuttons = [17, 27]\nleds = [5, 6, 13]\n", 3, "leds has 3 pins but buttons has 2",
     "one LED"),
    ("[controls]\nbuttons = [17]\nleds = [5]\n", 1, "slot_labels has 4 labels but buttons has 1", "label"),
    ("[controls]\nbuttons = [17]\nleds = [17]\nslot_labels = [\"A\"]\n", 3, "also a button", "separate"),
    ("[controls]\npin_factory = \"gpio\"\n", 2, "pin_factory", "mock"),
    ("[teach]\nframes = 50\nmax_samples_per_class = 20\n", 3, "smaller than one burst", "at least"),
    ("camera = 3\n", 1, "[camera] must be a table", "[camera]"),
])
def test_bad_values_name_key_line_and_fix(tmp_path: Path, text: str, line: int, words: str, fix: str) -> None:
    err = error_for(tmp_path, text)
    assert f"config.toml line {line}:" in err.problem, err.problem
    assert words in err.problem and fix in err.fix, (err.problem, err.fix)


def test_toml_syntax_error_names_file_and_line(tmp_path: Path) -> None:
    err = error_for(tmp_path, "[camera]\nwidth = 320\nsource = demo\n")
    assert "config.toml line 3: TOML syntax error" in err.problem and "quotes" in err.fix


def test_overrides_replace_only_what_is_given() -> None:
    base = Config()
    changed = apply_overrides(base, source="0", mode="detect", host="127.0.0.1", port=9000,
                              data_dir="/tmp/x", device="cpu", models_dir=None)
    assert changed.camera.source == "0" and changed.recognition.mode == "detect"
    assert changed.web.host == "127.0.0.1" and changed.web.port == 9000 and changed.vision.device == "cpu"
    assert changed.data_dir == Path("/tmp/x") and changed.models_dir == Path("/tmp/x/models")
    assert changed.camera.width == base.camera.width and base.web.port == 8080  # frozen original untouched
    assert apply_overrides(base) == base


def test_bad_override_names_the_flag() -> None:
    with pytest.raises(ConfigError) as err:
        apply_overrides(Config(), port=0)
    assert err.value.problem.startswith("--port 0:") and "1 to 65535" in err.value.fix
    with pytest.raises(ConfigError, match="--mode"):
        apply_overrides(Config(), mode="segment")
    with pytest.raises(TypeError):
        apply_overrides(Config(), colour="red")


def test_demo_config(tmp_path: Path) -> None:
    demo = demo_config(data_dir=tmp_path)
    assert demo.camera.source == "demo" and demo.controls.pin_factory == "mock"
    assert demo.vision.device == "cpu" and demo.web.host == "127.0.0.1" and demo.web.port == 8080
    assert demo.data_dir == tmp_path
    from appliance.paths import default_data_dir
    assert demo_config().data_dir == default_data_dir()
    custom = apply_overrides(Config(), mode="detect")
    assert demo_config(custom).recognition.mode == "detect"


def test_check_config_summarises(tmp_path: Path) -> None:
    path = write(tmp_path,
                 '[camera]\nsource = "demo"\n[controls]\nenabled = false\n[web]\npassword_hash = "x"\n')
    summary = check_config(path)
    assert summary.startswith(f"config OK: {path}")
    assert "camera: demo 640x480 @ 30 fps" in summary and "controls: disabled" in summary
    assert "password set" in summary
    demo = describe_config(demo_config(load_config(path), data_dir=tmp_path))
    assert "camera: demo" in demo and "http://127.0.0.1:8080/" in demo and f"data_dir: {tmp_path}" in demo
    with pytest.raises(ConfigError):
        check_config(write(tmp_path, "[web]\nport = -1\n"))


def test_find_line() -> None:
    text = "a = 1\n[camera]\n  width = 3 # c\n[ web ]\n\"port\" = 2\n"
    assert find_line(text, "camera", "width") == 3 and find_line(text, "web", "port") == 5
    assert find_line(text, "web", None) == 4 and find_line(text, "camera", "port") is None
