"""The checks behind `appliance doctor`: facts are gathered once, then small pure checks judge them.

Keeping the two apart lets tests feed facts (a /sys and /dev tree in a temporary folder, a config file)
and lets the real command run on any machine: a missing camera or Edge TPU is a line with a fix,
never a traceback.
"""

from __future__ import annotations

import grp
import importlib.metadata
import importlib.util
import os
import platform
import pwd
import shutil
import subprocess
import sys
from collections import namedtuple
from dataclasses import dataclass, field
from pathlib import Path

from appliance.errors import ApplianceError
from appliance.inference.probe import runtime_line
from appliance.mqtt.doctor_check import broker_line
from appliance.vision import edgetpu
from appliance.vision.runtime_pairs import installed_runtime_info

Check = namedtuple("Check", "status name detail fix")  # status: "ok" | "warn" | "fail"

WANTED_GROUPS = ("video", "gpio", "plugdev", "apex")
DISK_WARN_BYTES = 500 * 1024 * 1024
DISK_FAIL_BYTES = 50 * 1024 * 1024
# /dev/video* nodes on a Pi that are codecs, ISPs or CSI receivers, not cameras a program opens directly
NOT_CAMERAS = ("codec", "isp", "hevc", "pispbe", "rpivid", "rp1-cfe", "unicam", "bcm2835-")
DELEGATE_FIX = (
    "unplug and replug the Coral (it re-enumerates on first use); use a powered USB hub or the Pi's official "
    "power supply; check the user is in plugdev (or the udev rule exists); only one program can use an "
    "Edge TPU: stop the service first (sudo systemctl stop appliance)"
)


@dataclass(frozen=True)
class Facts:
    python: str
    runtime: tuple[str, str] | None          # (distribution, version) of the TFLite runtime
    numpy: str | None
    config_path: str | None                  # None = built-in defaults
    config_error: ApplianceError | None
    device: str                              # vision.device
    source: str                              # camera.source
    gpio_wanted: bool                        # controls enabled with real pins
    data_dir: Path
    models_dir: Path
    models: list[tuple[str, str | None]]     # (name, problem or None) for the configured models
    edge_tpus: list[edgetpu.EdgeTpu]
    runtime_library: bool                    # libedgetpu can be dlopen()ed
    probe: tuple[bool, str, str] | None      # (ok, detail, fix) of the Edge TPU probe; None = not run
    edgetpu_runtime: str | None              # the Edge TPU backend's runtime and libedgetpu, in words
    videos: list[tuple[str, str]]            # (/dev/videoN, name from sysfs)
    picamera2: str | None                    # version, None when not importable
    libcamera_cameras: int | None            # None = could not ask
    gpiochips: list[tuple[str, bool]]        # (/dev/gpiochipN, read+write access)
    user: str
    user_groups: list[str]
    system_groups: list[str]                 # which of WANTED_GROUPS exist here
    disk_free: int | None
    service: str | None                      # systemctl is-active output, None without systemctl
    throttled: int | None = None             # Raspberry Pi firmware get_throttled bits, None elsewhere
    runtime_problem: str | None = None       # why the installed runtime and libedgetpu are not a matched pair
    notes: list[str] = field(default_factory=list)


# ------------------------------------------------------------------------------------------- checks

def check_python(f: Facts) -> Check:
    ok = tuple(int(x) for x in f.python.split(".")[:2]) >= (3, 11)
    return Check("ok" if ok else "fail", "python", f.python, "" if ok else "use Python 3.11 or newer")


def check_runtime(f: Facts) -> Check:
    numpy = f"numpy {f.numpy}" if f.numpy else "numpy missing"
    if f.runtime is None or f.numpy is None:
        return Check("fail", "runtime", f"no TensorFlow Lite runtime ({numpy})",
                     "pip install ai-edge-litert numpy (install.sh does this; pycoral and tflite-runtime "
                     "wheels are not needed)")
    edgetpu_part = f"; Edge TPU: {f.edgetpu_runtime}" if f.edgetpu_runtime else ""
    detail = f"{f.runtime[0]} {f.runtime[1]}, {numpy}{edgetpu_part}"
    if f.runtime_problem:
        return Check("fail" if f.edge_tpus else "warn", "runtime", f"{detail}: {f.runtime_problem}",
                     edgetpu.INSTALL_FIX)
    return Check("ok", "runtime", detail, "")


def check_edgetpu(f: Facts) -> Check:
    needed = f.device == "edgetpu"
    if not f.edge_tpus:
        detail = "none found" + ("" if needed else ": models run on the CPU (slower)")
        return Check("fail" if needed else "warn", "edge tpu", detail, edgetpu.NO_TPU_FIX)
    where = ", ".join(f"{t.type} ({t.path})" for t in f.edge_tpus)
    if not f.runtime_library:
        return Check("fail", "edge tpu", f"found {where} but libedgetpu is not installed",
                     edgetpu.INSTALL_FIX)
    if f.probe is None:  # only one program can use an Edge TPU
        return Check("warn", "edge tpu", f"found {where}; not probed: the running service holds it",
                     "see the page's badge or /api/status (backend); to probe it here, "
                     "sudo systemctl stop appliance, run doctor, then start it again")
    ok, detail, fix = f.probe
    if not ok:
        return Check("fail", "edge tpu", f"found {where} but {detail}", fix or DELEGATE_FIX)
    return Check("ok", "edge tpu", f"found {where}; {detail}", "")


def check_usb_speed(f: Facts) -> Check | None:
    usb = [t for t in f.edge_tpus if t.type == "usb"]
    if not usb:
        return None
    slow = [t for t in usb if t.speed_mbps is not None and t.speed_mbps < 5000]
    if slow:
        return Check("warn", "coral usb",
                     f"on a USB 2 port ({slow[0].speed_mbps} Mb/s): inference is about 3x slower",
                     "plug it into a blue USB 3 port (Pi 4 / Pi 5) with the USB 3 cable it came with; "
                     "a Pi 3 or Zero 2 W only has USB 2")
    speeds = ", ".join(f"{t.speed_mbps} Mb/s" if t.speed_mbps else "speed unknown" for t in usb)
    return Check("ok", "coral usb", speeds, "")


def check_camera(f: Facts) -> Check:
    cameras = [f"{path} ({name})" for path, name in f.videos
               if not any(n in name.lower() for n in NOT_CAMERAS)]
    found = ", ".join(cameras) or "no USB camera"
    pi_cams = f.libcamera_cameras
    if f.source == "picamera":
        if f.picamera2 is None:
            return Check("fail", "camera", f"source picamera but picamera2 is not installed ({found})",
                         "sudo apt install python3-picamera2 (Raspberry Pi OS) and keep the venv's "
                         "--system-site-packages; or set camera.source = \"/dev/video0\" for a USB webcam, "
                         "\"demo\" to try it without a camera")
        if not pi_cams:
            return Check("fail", "camera", f"picamera2 {f.picamera2} sees no camera module ({found})",
                         "check the ribbon cable (power off first; contacts facing the right way) and "
                         "`rpicam-hello --list-cameras`; or set camera.source to a USB webcam (/dev/video0)")
        return Check("ok", "camera", f"{pi_cams} camera module(s) via picamera2 {f.picamera2}", "")
    if f.source.isdigit() or f.source.startswith("/dev/video"):
        device = f"/dev/video{f.source}" if f.source.isdigit() else f.source
        if device not in {path for path, _ in f.videos}:
            return Check("fail", "camera", f"source {device} does not exist (found: {found})",
                         "plug in the webcam and check `ls /dev/video*`; "
                         "set camera.source to the right device")
        return Check("ok", "camera", f"{device} present (found: {found})", "")
    return Check("ok", "camera", f"source {f.source} needs no camera (found: {found})", "")


def check_gpio(f: Facts) -> Check:
    if not f.gpio_wanted:
        return Check("ok", "gpio", "not used (controls disabled or mock pins)", "")
    if not f.gpiochips:
        return Check("warn", "gpio", "no /dev/gpiochip*: buttons and LEDs will not work",
                     "on a Raspberry Pi, sudo apt install python3-lgpio; "
                     "elsewhere set controls.enabled = false or controls.pin_factory = \"mock\"")
    usable = [path for path, access in f.gpiochips if access]
    if not usable:
        return Check("warn", "gpio", f"{f.gpiochips[0][0]} is not readable and writable by {f.user}",
                     f"sudo usermod -aG gpio {f.user} (then log in again / restart the service)")
    return Check("ok", "gpio", ", ".join(usable), "")


def check_groups(f: Facts) -> Check:
    if f.user == "root":
        return Check("ok", "groups", "root: every device is accessible", "")
    missing = [g for g in f.system_groups if g not in f.user_groups]
    if missing:
        return Check("warn", "groups", f"{f.user} is not in {', '.join(missing)}",
                     f"sudo usermod -aG {','.join(missing)} {f.user} "
                     "(then log in again / restart the service)")
    return Check("ok", "groups", f"{f.user} in {', '.join(f.system_groups) or 'no device groups'}", "")


def check_models(f: Facts) -> Check:
    missing = [name for name, problem in f.models if problem and problem.startswith("missing")]
    bad = [f"{name}: {problem}" for name, problem in f.models if problem and name not in missing]
    if missing:
        where = next(p for n, p in f.models if n == missing[0]).removeprefix("missing ")
        bad.insert(0, f"{len(missing)} missing {where}: {', '.join(missing)}")
    if bad:
        config = f" --config {f.config_path}" if f.config_path else ""
        return Check("fail", "models", "; ".join(bad),
                     f"{'sudo ' if str(f.models_dir).startswith('/var/') else ''}appliance models fetch"
                     f"{config} --models-dir {f.models_dir} (offline: add --from DIR with the files)")
    return Check("ok", "models", f"{len(f.models)} present and verified", "")


def check_disk(f: Facts) -> Check:
    if f.disk_free is None:
        return Check("warn", "disk", f"cannot measure free space for {f.data_dir}",
                     "check that the folder exists")
    mb = f.disk_free / 1024 / 1024
    detail = f"{mb:.0f} MB free for {f.data_dir}"
    fix = "free some space: sudo apt clean; sudo journalctl --vacuum-size=50M; remove old files"
    if f.disk_free < DISK_FAIL_BYTES:
        return Check("fail", "disk", detail, fix)
    if f.disk_free < DISK_WARN_BYTES:
        return Check("warn", "disk", detail, fix)
    return Check("ok", "disk", detail, "")


def check_config(f: Facts) -> Check:
    if f.config_error is not None:
        return Check("fail", "config", f.config_error.problem, f.config_error.fix)
    return Check("ok", "config", f.config_path or "built-in defaults (no config file)", "")


def check_service(f: Facts) -> Check | None:
    if f.service is None:
        return None
    state = f.service
    if state == "active":
        return Check("ok", "service", "appliance.service is active", "")
    if state == "failed":
        return Check("fail", "service", "appliance.service failed",
                     "see why: journalctl -u appliance -e --no-pager")
    if state == "not installed":
        return Check("warn", "service", "appliance.service is not installed",
                     "sudo ./install.sh from the checkout (or run it by hand: appliance run)")
    if state.startswith("unknown"):
        return Check("warn", "service", f"state {state}",
                     "run doctor on the device itself, where systemd runs")
    return Check("warn", "service", f"appliance.service is {state}", "sudo systemctl enable --now appliance")


def check_power(f: Facts) -> Check | None:
    if f.throttled is None:
        return None
    if f.throttled & 0x1:
        return Check("fail", "power", "under-voltage now: the Coral and the camera may reset",
                     "use the official power supply (5 V 3 A for a Pi 4, 5 V 5 A for a Pi 5) "
                     "or a powered USB hub")
    if f.throttled & 0x10000:
        return Check("warn", "power", "under-voltage happened since boot",
                     "use the official power supply or a powered USB hub for the Coral")
    return Check("ok", "power", "no under-voltage since boot", "")


def check_mqtt(f: Facts) -> Check | None:
    """[mqtt] enabled: one connection to the broker, as the service would make it."""
    if f.config_error is not None:
        return None
    line = broker_line(f.config_path)
    return None if line is None else Check(line[0], "mqtt", line[1], line[2])


CHECKS = (check_python, check_runtime, check_config, check_edgetpu, check_usb_speed, check_power,
          check_camera, check_gpio, check_groups, check_models, check_disk, check_service, check_mqtt)


def run_checks(facts: Facts) -> list[Check]:
    return [c for c in (check(facts) for check in CHECKS) if c is not None]


def format_check(check: Check) -> str:
    line = f"{check.status:<5} {check.name}: {check.detail}"
    return line + (f"\n      fix: {check.fix}" if check.status != "ok" and check.fix else "")


def exit_code(checks: list[Check]) -> int:
    return 1 if any(c.status == "fail" for c in checks) else 0


# ------------------------------------------------------------------------------------------- facts

def _version(*distributions: str) -> tuple[str, str] | None:
    for name in distributions:
        try:
            return name, importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return None


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def _load_config(config_path):
    from appliance.config import Config, load_config

    try:
        return load_config(config_path), None
    except ApplianceError as exc:
        return Config(), exc


def _model_problems(config, models_dir: Path) -> list[tuple[str, str | None]]:
    from appliance import model_files

    try:
        manifest = model_files.load_manifest()
        required, _ = model_files.default_names(config, manifest)
    except ApplianceError as exc:
        return [("manifest", exc.problem)]
    rows = []
    for name in required:
        entry = model_files.find_entry(name, manifest)
        if entry is None:
            rows.append((name, None if Path(name).is_file() else "not in the manifest and not a file"))
            continue
        path = models_dir / entry.file
        if not path.is_file():
            rows.append((name, f"missing from {models_dir}"))
            continue
        rows.append((name, model_files.hash_mismatch(path, entry, model_files.file_digests(path))))
    return rows


def _picamera2() -> tuple[str | None, int | None]:
    if importlib.util.find_spec("picamera2") is None:
        return None, None
    version = (_version("picamera2") or ("", "installed"))[1]
    try:
        from picamera2 import Picamera2

        return version, len(Picamera2.global_camera_info())
    except Exception:  # libcamera missing or broken: report, do not crash
        return version, None


def _service_state() -> str | None:
    systemctl = shutil.which("systemctl")
    if systemctl is None:
        return None
    try:
        load = subprocess.run([systemctl, "show", "-p", "LoadState", "--value", "appliance.service"],
                              capture_output=True, text=True, timeout=5)
        if load.returncode != 0:
            return "unknown (" + (load.stderr.strip().splitlines() or ["systemd is not running"])[0] + ")"
        if load.stdout.strip() == "not-found":
            return "not installed"
        active = subprocess.run([systemctl, "is-active", "appliance.service"],
                                capture_output=True, text=True, timeout=5)
        return active.stdout.strip() or "unknown"
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"unknown ({exc})"


def _probe(config) -> tuple[bool, str, str]:
    from appliance.inference.probe import probe_configured
    from appliance.model_files import default_models_dir

    result = probe_configured(config, default_models_dir(config))
    return result.ok, result.detail, result.fix


def gather_facts(config_path: Path | None = None, *, sys_root: Path | None = None,
                 dev_root: Path | None = None, probe: bool = True) -> Facts:
    """Everything the checks look at. probe=False skips what talks to hardware or systemd (tests).
    sys_root / dev_root default to APPLIANCE_SYS_ROOT / APPLIANCE_DEV_ROOT, else /sys and /dev."""
    sys_root = sys_root or edgetpu.sys_root_path()
    dev_root = dev_root or edgetpu.dev_root_path()
    config, config_error = _load_config(config_path)
    service = _service_state() if probe else None
    tpus = edgetpu.list_edge_tpus(sys_root, dev_root)
    library = edgetpu.library_available() if probe else False
    tpu_probe = _probe(config) if tpus and library and probe and service != "active" else None
    # device paths as the program opens them (/dev/...), read from dev_root (a fake tree in tests)
    videos = [(f"/dev/{p.name}", _read(sys_root / "class" / "video4linux" / p.name / "name") or "?")
              for p in sorted(dev_root.glob("video*"))]
    picamera2, libcamera = _picamera2() if probe else (None, None)
    chips = [(f"/dev/{p.name}", os.access(p, os.R_OK | os.W_OK)) for p in sorted(dev_root.glob("gpiochip*"))]
    user = pwd.getpwuid(os.getuid()).pw_name
    groups = sorted({grp.getgrgid(g).gr_name for g in {os.getgid(), *os.getgroups()}})
    existing = []
    for name in WANTED_GROUPS:
        try:
            grp.getgrnam(name)
            existing.append(name)
        except KeyError:
            continue
    # the models folder `run` and `models fetch` use: without a config file, the per-user one
    from appliance.model_files import default_models_dir

    models_dir = default_models_dir(config)
    data_dir = Path(config.data_dir) if config.path else models_dir.parent
    folder = data_dir
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    try:
        free = shutil.disk_usage(folder).free
    except OSError:
        free = None
    throttled_text = _read(sys_root / "devices" / "platform" / "soc" / "soc:firmware" / "get_throttled")
    try:
        throttled = int(throttled_text, 16) if throttled_text else None
    except ValueError:
        throttled = None
    ctl = config.controls
    return Facts(
        python=platform.python_version(), runtime=_version("ai-edge-litert", "tflite-runtime"),
        numpy=(_version("numpy") or (None, None))[1],
        config_path=str(config.path) if config.path else None, config_error=config_error,
        device=config.vision.device, source=config.camera.source,
        gpio_wanted=ctl.enabled and ctl.pin_factory != "mock", data_dir=data_dir,
        models_dir=models_dir,
        models=_model_problems(config, models_dir), edge_tpus=tpus, runtime_library=library,
        probe=tpu_probe, edgetpu_runtime=runtime_line() if tpus else None,
        runtime_problem=installed_runtime_info().problem,
        videos=videos, picamera2=picamera2, libcamera_cameras=libcamera, gpiochips=chips, user=user,
        user_groups=groups, system_groups=existing, disk_free=free, service=service, throttled=throttled,
        notes=[sys.executable],
    )
