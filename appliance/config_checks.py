"""Value checks for the config: types, ranges, choices, pins; each problem comes with its fix.

Kept apart from appliance.config so that each module stays small: this one knows what a good value is,
config.py knows where a value came from (file and line, or a command-line flag).
"""

from __future__ import annotations

import difflib
import re
from pathlib import Path
from typing import Any

from appliance.errors import DeviceError
from appliance.vision import backends, edgetpu


class Bad(Exception):
    """A value problem, before we know where (file line or command-line flag) it came from."""

    def __init__(self, problem: str, fix: str) -> None:
        super().__init__(problem)
        self.problem, self.fix = problem, fix


PIN_FACTORIES = ("auto", "mock", "lgpio", "rpigpio", "pigpio", "native")


def type_name(value: Any) -> str:
    return {bool: "true/false", int: "an integer", float: "a number", str: "a string",
            list: "a list", dict: "a table"}.get(type(value), type(value).__name__)


def coerce(value: Any, kind: Any, default: Any) -> Any:
    """Check a TOML value against a field's type; ints are accepted where numbers are expected."""
    if kind in (bool, "bool"):
        if isinstance(value, bool):
            return value
        raise Bad(f"must be true or false, not {type_name(value)}", f"write {str(default).lower()}")
    if kind in (int, "int"):
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise Bad(f"must be an integer, not {type_name(value)}", f"write a whole number, e.g. {default}")
    if kind in (float, "float"):
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        raise Bad(f"must be a number, not {type_name(value)}", f"write a number, e.g. {default}")
    if kind in (str, "str", Path, "Path"):
        if isinstance(value, str | Path):
            return Path(value).expanduser() if kind in (Path, "Path") else value
        raise Bad(f"must be a string, not {type_name(value)}", f'write it in quotes, e.g. "{default}"')
    # tuple[int, ...] / tuple[str, ...]
    item = int if "int" in str(kind) else str
    if not isinstance(value, list | tuple):
        raise Bad(f"must be a list, not {type_name(value)}", f"write a list, e.g. {_toml(default)}")
    for element in value:
        if item is int and (not isinstance(element, int) or isinstance(element, bool)):
            raise Bad(f"must be a list of integers; {element!r} is not one", f"e.g. {_toml(default)}")
        if item is str and not isinstance(element, str):
            raise Bad(f"must be a list of strings; {element!r} is not one", f"e.g. {_toml(default)}")
    return tuple(value)


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, str | Path):
        return f'"{value}"'
    if isinstance(value, tuple | list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return str(value)


def _in_range(lo: float, hi: float) -> Any:
    def check(value: float) -> None:
        if not lo <= value <= hi:
            raise Bad(f"is {value}, outside {lo}..{hi}", f"use a value from {lo} to {hi}")
    return check


def _one_of(*choices: str) -> Any:
    def check(value: str) -> None:
        if value not in choices:
            close = difflib.get_close_matches(value, choices, n=1)
            hint = f'did you mean "{close[0]}"? ' if close else ""
            listed = ", ".join(choices)
            raise Bad(f'is "{value}", not one of {listed}', f"{hint}use one of: {listed}")
    return check


def _not_empty(value: str) -> None:
    if not str(value).strip():
        raise Bad("is empty", "give a value or remove the line to use the default")


def _edgetpu_device(value: str) -> None:
    """The runtime's own parser (vision.edgetpu.device_options) decides, so both accept the same names;
    the config is stricter only about spaces around the name, which the parser would strip."""
    if value != value.strip():
        raise Bad(f'is "{value}", with spaces around the device name', f'write "{value.strip()}"')
    try:
        edgetpu.device_options(value)
    except DeviceError as exc:
        raise Bad(f'is "{value}", not an Edge TPU device name', exc.fix) from None


def _pins(value: tuple[int, ...]) -> None:
    if not 1 <= len(value) <= 4:
        raise Bad(f"has {len(value)} entries; there are 1 to 4 class slots", "list 1 to 4 BCM pin numbers")
    for pin in value:
        if not 0 <= pin <= 27:
            raise Bad(f"has pin {pin}; BCM GPIO pins are 0..27",
                       "use BCM numbers (GPIO17 is 17), not board pin numbers")
    if len(set(value)) != len(value):
        raise Bad("lists a pin twice", "give each slot its own pin")


def _labels(value: tuple[str, ...]) -> None:
    if not 1 <= len(value) <= 4:
        raise Bad(f"has {len(value)} entries; there are 1 to 4 class slots", "list 1 to 4 labels")
    if any(not label.strip() for label in value):
        raise Bad("has an empty label", 'give every slot a name, e.g. "Class 1"')
    if len({label.strip().casefold() for label in value}) != len(value):
        raise Bad("lists the same label twice", "give each slot its own label")


_TOPIC_FIX = 'use letters, digits, "_", "-" and "/" between levels, e.g. "appliance/kitchen"'


def _topic(value: str) -> None:
    """A topic prefix: no wildcards, no empty levels (so "<prefix>/state" is one well-formed topic)."""
    if value and (not re.fullmatch(r"[^#+\x00]+", value) or "//" in value or value[0] == "/"
                  or value[-1] == "/"):
        raise Bad(f'is "{value}", not a valid MQTT topic prefix', _TOPIC_FIX)


def _device_id(value: str) -> None:
    if value and not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", value):
        raise Bad(f'is "{value}"; a device id is 1 to 64 letters, digits, "_" or "-"',
                  'e.g. "kitchen_door", or leave it empty to generate one')


def _client_id(value: str) -> None:
    if len(value) > 128 or any(ord(ch) < 32 for ch in value):
        raise Bad("is too long or has control characters",
                  "use up to 128 visible characters, or leave it empty")


def _fleet_names(value: tuple[str, ...]) -> None:
    for name in value:
        if not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", name):
            raise Bad(f'has the set name "{name}"; set names are 1 to 64 letters, digits, "_", "-" or "."',
                      'e.g. ["shop-products"]')


def _host_names(value: tuple[str, ...]) -> None:
    for name in value:
        if not name or not all(ch.isalnum() or ch in ".-_" for ch in name) or name.startswith((".", "-")):
            raise Bad(f"has {name!r}, not a host name",
                      'list exact host names without scheme or port, e.g. ["camera.example.lan"]')


CHECKS: dict[tuple[str, str], Any] = {
    ("", "data_dir"): _not_empty,
    ("camera", "source"): _not_empty,
    ("camera", "width"): _in_range(16, 8192),
    ("camera", "height"): _in_range(16, 8192),
    ("camera", "fps"): _in_range(0.1, 240),
    ("vision", "device"): _one_of(*backends.device_choices()),
    ("vision", "edgetpu_device"): _edgetpu_device,
    ("vision", "classifier"): _not_empty,
    ("vision", "detector"): _not_empty,
    ("vision", "embedder"): _not_empty,
    ("vision", "num_threads"): _in_range(0, 256),
    ("vision", "result_timeout_s"): _in_range(0.5, 600.0),
    ("vision", "first_result_timeout_s"): _in_range(1.0, 600.0),
    ("vision", "failures_before_fallback"): _in_range(1, 100),
    ("recognition", "mode"): _one_of("classify", "detect"),
    ("recognition", "detect_threshold"): _in_range(0.0, 1.0),
    ("recognition", "unknown_threshold"): _in_range(0.0, 1.0),
    ("recognition", "min_similarity"): _in_range(0.0, 1.0),
    ("recognition", "smoothing_frames"): _in_range(1, 100),
    ("recognition", "head"): _one_of("auto", "imprint", "softmax"),
    ("teach", "frames"): _in_range(1, 100),
    ("teach", "seconds"): _in_range(0.0, 60.0),
    ("teach", "max_samples_per_class"): _in_range(1, 100000),
    ("teach", "thumbnails_per_class"): _in_range(0, 32),
    ("controls", "pin_factory"): _one_of(*PIN_FACTORIES),
    ("controls", "buttons"): _pins,
    ("controls", "leds"): _pins,
    ("controls", "slot_labels"): _labels,
    ("controls", "hold_seconds"): _in_range(0.05, 60.0),
    ("controls", "bounce_seconds"): _in_range(0.0, 1.0),
    ("web", "host"): _not_empty,
    ("web", "port"): _in_range(1, 65535),
    ("web", "threads"): _in_range(1, 1000),
    ("web", "max_request_bytes"): _in_range(1024, 1 << 30),
    ("web", "allowed_hosts"): _host_names,
    ("web", "max_live_views_per_client"): _in_range(0, 1000),
    ("web", "max_connections_per_client"): _in_range(0, 10000),
    ("service", "stall_seconds"): _in_range(0.5, 3600.0),
    ("mqtt", "host"): _not_empty,
    ("mqtt", "port"): _in_range(1, 65535),
    ("mqtt", "client_id"): _client_id,
    ("mqtt", "device_id"): _device_id,
    ("mqtt", "topic_prefix"): _topic,
    ("mqtt", "discovery_prefix"): lambda v: (_not_empty(v), _topic(v)),
    ("mqtt", "keepalive_s"): _in_range(5, 3600),
    ("mqtt", "state_interval_s"): _in_range(1.0, 3600.0),
    ("mqtt", "snapshot_interval_s"): _in_range(0.0, 3600.0),
    ("mqtt", "buffer_events"): _in_range(1, 100000),
    ("mqtt", "fleet_prefix"): lambda v: (_not_empty(v), _topic(v)),
    ("mqtt", "fleet_subscribe"): _fleet_names,
}


def section_cross_checks(section: str, values: dict[str, Any]) -> tuple[str, Bad] | None:
    """Checks between keys of one section: (the key to blame, the problem) or None."""
    if section == "controls":
        buttons, leds, labels = values["buttons"], values["leds"], values["slot_labels"]
        if len(leds) != len(buttons):
            return "leds", Bad(f"has {len(leds)} pins but buttons has {len(buttons)}",
                                "give one LED pin per button (the same number of entries)")
        if len(labels) != len(buttons):
            return "slot_labels", Bad(f"has {len(labels)} labels but buttons has {len(buttons)}",
                                       "give one label per button (the same number of entries)")
        shared = set(buttons) & set(leds)
        if shared:
            return "leds", Bad(f"uses pin {min(shared)}, which is also a button", "use separate pins")
    if section == "mqtt":
        if values["tls_cert"] and not values["tls_ca"]:
            return "tls_cert", Bad("is set but tls_ca is not (TLS is on only with tls_ca)",
                                   'set tls_ca to the broker\'s CA file, or "system" for the system\'s CAs')
        if values["tls_key"] and not values["tls_cert"]:
            return "tls_key", Bad("is set but tls_cert is not", "set tls_cert to the client certificate file")
        if values["password_file"] and not values["username"]:
            return "password_file", Bad("is set but username is not",
                                        "set username too (the broker checks the pair)")
    if section == "web":
        views, connections = values["max_live_views_per_client"], values["max_connections_per_client"]
        if views and connections and views > connections:
            return "max_live_views_per_client", Bad(
                f"({views}) is more than max_connections_per_client ({connections}); each live view "
                "holds a connection",
                "make max_connections_per_client at least max_live_views_per_client, or lower the latter")
    if section == "teach" and values["max_samples_per_class"] < values["frames"]:
        return "max_samples_per_class", Bad(
            f"({values['max_samples_per_class']}) is smaller than one burst ({values['frames']} frames)",
            "make max_samples_per_class at least teach.frames")
    return None
