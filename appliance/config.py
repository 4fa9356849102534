"""The appliance's one TOML config: typed frozen sections, defaults, validation up front.

Every key of docs/config.example.toml has a default here. A wrong file is rejected before anything starts,
with a ConfigError naming the file, the line, the key and the fix (unknown keys suggest the closest
known one).
"""

from __future__ import annotations

import dataclasses
import difflib
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from appliance.config_checks import CHECKS, Bad, coerce, section_cross_checks, type_name
from appliance.errors import ConfigError
from appliance.paths import SYSTEM_CONFIG_PATH, default_data_dir

SERVICE_DATA_DIR = Path("/var/lib/appliance")


@dataclass(frozen=True)
class CameraConfig:
    source: str = "picamera"
    width: int = 640
    height: int = 480
    fps: float = 30.0
    loop: bool = True


@dataclass(frozen=True)
class VisionConfig:
    device: str = "auto"
    edgetpu_device: str = ""
    models_dir: str = ""
    models_from: str = ""
    classifier: str = "mobilenet_v2_1.0_224_quant"
    classifier_labels: str = "imagenet_labels.txt"
    detector: str = "ssd_mobilenet_v1_coco_quant_2018_06_29_detect"
    detector_labels: str = "coco_labels.txt"
    embedder: str = "mobilenet_v1_1.0_224_quant_embedding_extractor"
    num_threads: int = 0
    result_timeout_s: float = 5.0
    first_result_timeout_s: float = 30.0
    failures_before_fallback: int = 3
    probe_at_start: bool = True


@dataclass(frozen=True)
class RecognitionConfig:
    mode: str = "classify"
    show_base_labels: bool = False
    classify_detections: bool = True
    detect_threshold: float = 0.4
    unknown_threshold: float = 0.6
    min_similarity: float = 0.55
    smoothing_frames: int = 5
    head: str = "auto"


@dataclass(frozen=True)
class TeachConfig:
    frames: int = 10
    seconds: float = 1.0
    max_samples_per_class: int = 200
    thumbnails_per_class: int = 4


@dataclass(frozen=True)
class ControlsConfig:
    enabled: bool = True
    pin_factory: str = "auto"
    buttons: tuple[int, ...] = (17, 27, 22, 23)
    leds: tuple[int, ...] = (5, 6, 13, 19)
    slot_labels: tuple[str, ...] = ("Class 1", "Class 2", "Class 3", "Class 4")
    hold_seconds: float = 3.0
    bounce_seconds: float = 0.05


@dataclass(frozen=True)
class WebConfig:
    enabled: bool = True
    host: str = "0.0.0.0"
    port: int = 8080
    threads: int = 48
    password_hash: str = ""
    max_request_bytes: int = 65536
    allowed_hosts: tuple[str, ...] = ()   # extra host names the page answers to (DNS rebinding check)
    max_live_views_per_client: int = 8    # streams + event feeds one client address may hold; 0 = no cap
    max_connections_per_client: int = 32  # open connections one client address may hold; 0 = no cap


@dataclass(frozen=True)
class ServiceConfig:
    stall_seconds: float = 10.0


@dataclass(frozen=True)
class MqttConfig:
    """MQTT, Home Assistant discovery and fleet sharing (docs/mqtt.md); off unless enabled."""
    enabled: bool = False
    host: str = "localhost"
    port: int = 1883
    username: str = ""
    password_file: str = ""
    tls_ca: str = ""            # "" = plain TCP; a CA file, or "system" for the system's CAs
    tls_cert: str = ""
    tls_key: str = ""
    client_id: str = ""         # "" = appliance-<device_id>
    device_id: str = ""         # "" = generated once and kept in <data_dir>/device_id
    device_name: str = ""       # "" = "Appliance <device_id>"
    topic_prefix: str = ""      # "" = appliance/<device_id>
    discovery: bool = True
    discovery_prefix: str = "homeassistant"
    keepalive_s: int = 60
    state_interval_s: float = 30.0
    snapshot_interval_s: float = 10.0
    buffer_events: int = 100
    public_url: str = ""        # "" = http://<hostname>:<web port>; used in HA and fleet announcements
    fleet_prefix: str = "appliance/fleet"
    fleet_subscribe: tuple[str, ...] = ()
    fleet_password_file: str = ""


SECTIONS: dict[str, type] = {
    "camera": CameraConfig,
    "vision": VisionConfig,
    "recognition": RecognitionConfig,
    "teach": TeachConfig,
    "controls": ControlsConfig,
    "web": WebConfig,
    "service": ServiceConfig,
    "mqtt": MqttConfig,
}


@dataclass(frozen=True)
class Config:
    data_dir: Path = SERVICE_DATA_DIR
    camera: CameraConfig = field(default_factory=CameraConfig)
    vision: VisionConfig = field(default_factory=VisionConfig)
    recognition: RecognitionConfig = field(default_factory=RecognitionConfig)
    teach: TeachConfig = field(default_factory=TeachConfig)
    controls: ControlsConfig = field(default_factory=ControlsConfig)
    web: WebConfig = field(default_factory=WebConfig)
    service: ServiceConfig = field(default_factory=ServiceConfig)
    mqtt: MqttConfig = field(default_factory=MqttConfig)
    path: Path | None = field(default=None, compare=False)  # the file it was read from; not a key

    @property
    def models_dir(self) -> Path:
        """`vision.models_dir`, or `<data_dir>/models` when that is empty."""
        if self.vision.models_dir:
            return Path(self.vision.models_dir).expanduser()
        return self.data_dir / "models"


def check_value(section: str, key: str, value: Any) -> Any:
    """The typed, validated value for one key (raises Bad)."""
    cls = Config if section == "" else SECTIONS[section]
    fld = {f.name: f for f in dataclasses.fields(cls)}[key]
    default = fld.default if fld.default is not dataclasses.MISSING else None
    typed = coerce(value, fld.type, default)
    check = CHECKS.get((section, key))
    if check:
        check(typed)
    return typed


# ---------------------------------------------------------------- locating keys in the file


def find_line(text: str, section: str, key: str | None) -> int | None:
    """The 1-based line of `key` inside `[section]` (or of the section header when key is None)."""
    current = ""
    header = re.compile(r"^\s*\[\s*([A-Za-z0-9_.\"' -]+?)\s*\]\s*(#.*)?$")
    for number, line in enumerate(text.splitlines(), 1):
        match = header.match(line)
        if match:
            current = match.group(1).strip("\"'")
            if key is None and current == section:
                return number
            continue
        key_line = key is not None and re.match(rf"^\s*[\"']?{re.escape(key)}[\"']?\s*=", line)
        if key_line and current == section:
            return number
        if key is None and current == "" and re.match(rf"^\s*{re.escape(section)}\s*=", line):
            return number  # an inline table: section = { ... }
    return None


def _error(origin: str, text: str, section: str, key: str | None, problem: str, fix: str) -> ConfigError:
    line = find_line(text, section, key) if text else None
    if line is None and key is not None and section:
        line = find_line(text, section, None) if text else None
    where = f"{origin} line {line}" if line else origin
    name = f"[{section}] {key}" if section and key else (key or f"[{section}]")
    return ConfigError(f"{where}: {name} {problem}", fix)


# ---------------------------------------------------------------- building a Config


def _known(cls: type) -> list[str]:
    return [f.name for f in dataclasses.fields(cls)]


def _unknown(origin: str, text: str, section: str, key: str, known: list[str]) -> ConfigError:
    close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
    fix = f'did you mean "{close[0]}"? ' if close else ""
    scope = f"keys in [{section}]" if section else "top-level keys and sections"
    fix += f"known {scope}: {', '.join(known)}"
    if section:
        return _error(origin, text, section, key, "is not a known key", fix)
    line = find_line(text, key, None) if text else None
    where = f"{origin} line {line}" if line else origin
    return ConfigError(f"{where}: {key} is not a known key or section", fix)


def build_config(raw: dict[str, Any], *, origin: str = "<config>", text: str = "",
                 path: Path | None = None) -> Config:
    """A validated Config from a parsed TOML dict; `text` (the file's text) lets errors name lines."""
    top_known = ["data_dir", *SECTIONS]
    top: dict[str, Any] = {}
    for key, value in raw.items():
        if key not in top_known:
            raise _unknown(origin, text, "", key, top_known)
        if key in SECTIONS:
            if not isinstance(value, dict):
                raise _error(origin, text, key, None, f"must be a table ([{key}]), not {type_name(value)}",
                             f"write [{key}] on its own line, then its keys below it")
            top[key] = _build_section(key, value, origin, text)
        else:
            try:
                top[key] = check_value("", key, value)
            except Bad as bad:
                raise _error(origin, text, "", key, bad.problem, bad.fix) from None
    return Config(**top, path=path)


def _build_section(section: str, raw: dict[str, Any], origin: str, text: str) -> Any:
    cls = SECTIONS[section]
    known = _known(cls)
    values: dict[str, Any] = {}
    for key, value in raw.items():
        if key not in known:
            raise _unknown(origin, text, section, key, known)
        try:
            values[key] = check_value(section, key, value)
        except Bad as bad:
            raise _error(origin, text, section, key, bad.problem, bad.fix) from None
    merged = {**dataclasses.asdict(cls()), **values}
    blame = section_cross_checks(section, merged)
    if blame:
        key, bad = blame
        raise _error(origin, text, section, key, bad.problem, bad.fix)
    return cls(**values)


def load_config(path: Path | str | None = None) -> Config:
    """Read and validate a config file.

    path None: /etc/appliance/config.toml when it exists, else the defaults. An explicit path must exist.
    """
    if path is None:
        if not SYSTEM_CONFIG_PATH.is_file():
            return Config()
        path = SYSTEM_CONFIG_PATH
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist",
                          "check the path, or copy docs/config.example.toml there") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"config file {path} cannot be read: {exc}",
                          "check its permissions and that it is UTF-8 text") from None
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        match = re.search(r"\(at line (\d+), column (\d+)\)", str(exc))
        where = f"{path} line {match.group(1)}" if match else str(path)
        message = re.sub(r"\s*\(at line \d+, column \d+\)", "", str(exc))
        raise ConfigError(f"{where}: TOML syntax error: {message}",
                          'fix the syntax on that line: key = value, strings in "quotes", '
                          "lists in [brackets], sections as [name]") from None
    return build_config(raw, origin=str(path), text=text, path=path)


# ---------------------------------------------------------------- overrides from flags and --demo

OVERRIDES: dict[str, tuple[str, str]] = {  # flag name -> (section, key)
    "source": ("camera", "source"),
    "width": ("camera", "width"),
    "height": ("camera", "height"),
    "fps": ("camera", "fps"),
    "loop": ("camera", "loop"),
    "mode": ("recognition", "mode"),
    "device": ("vision", "device"),
    "edgetpu_device": ("vision", "edgetpu_device"),
    "models_dir": ("vision", "models_dir"),
    "models_from": ("vision", "models_from"),
    "num_threads": ("vision", "num_threads"),
    "host": ("web", "host"),
    "port": ("web", "port"),
    "web": ("web", "enabled"),
    "controls": ("controls", "enabled"),
    "pin_factory": ("controls", "pin_factory"),
    "data_dir": ("", "data_dir"),
}


def apply_overrides(config: Config, **flags: Any) -> Config:
    """A copy of `config` with command-line flags applied; flags left None keep the file's value.

    Accepts the names in OVERRIDES (source, mode, host, port, data_dir, device, ...), validated like the file.
    """
    sections: dict[str, dict[str, Any]] = {}
    top: dict[str, Any] = {}
    for name, value in flags.items():
        if name not in OVERRIDES:
            raise TypeError(f"apply_overrides() got an unknown flag {name!r}")
        if value is None:
            continue
        section, key = OVERRIDES[name]
        if isinstance(value, Path) and key != "data_dir":
            value = str(value)
        try:
            typed = check_value(section, key, value)
        except Bad as bad:
            flag = "--" + name.replace("_", "-")
            raise ConfigError(f"{flag} {value}: {bad.problem}", bad.fix) from None
        if section:
            sections.setdefault(section, {})[key] = typed
        else:
            top[key] = typed
    changes: dict[str, Any] = dict(top)
    for section, values in sections.items():
        changes[section] = dataclasses.replace(getattr(config, section), **values)
    return dataclasses.replace(config, **changes)


def demo_config(config: Config | None = None, *, data_dir: Path | str | None = None) -> Config:
    """`run --demo`: the demo source, mock pins, the CPU, the page on 127.0.0.1:8080, per-user state."""
    return apply_overrides(config or Config(), source="demo", pin_factory="mock", device="cpu",
                           host="127.0.0.1", port=8080, data_dir=data_dir or default_data_dir())


def check_config(path: Path | str | None = None) -> str:
    """Validate a config file (ConfigError when wrong) and summarise it for `appliance run --check-config`."""
    return describe_config(load_config(path))


def describe_config(config: Config) -> str:
    """A few lines saying what this (validated) config will do, e.g. after flags and --demo were applied."""
    where = str(config.path) if config.path else "built-in defaults (no config file)"
    c, v, r, ctl, w = config.camera, config.vision, config.recognition, config.controls, config.web
    lines = [
        f"config OK: {where}",
        f"  data_dir: {config.data_dir} (models in {config.models_dir})",
        f"  camera: {c.source} {c.width}x{c.height} @ {c.fps:g} fps" + (", looping" if c.loop else ""),
        f"  vision: device {v.device}, models {v.classifier} / {v.detector} / {v.embedder}",
        f"  recognition: mode {r.mode}, head {r.head}, unknown below {r.unknown_threshold:g} "
        f"or similarity {r.min_similarity:g}",
        f"  teach: {config.teach.frames} frames over {config.teach.seconds:g} s",
        ("  controls: " + (f"{ctl.pin_factory} pins, buttons {list(ctl.buttons)}, LEDs {list(ctl.leds)}, "
                           f"hold {ctl.hold_seconds:g} s to clear" if ctl.enabled else "disabled")),
        "  web: " + (f"http://{w.host}:{w.port}/ ({'password set' if w.password_hash else 'no password'})"
                     if w.enabled else "disabled"),
    ]
    m = config.mqtt
    if m.enabled:
        lines.append(f"  mqtt: {m.host}:{m.port}" + (" (TLS)" if m.tls_ca else "")
                     + (f", Home Assistant discovery under {m.discovery_prefix}/" if m.discovery else ""))
    return "\n".join(lines)
