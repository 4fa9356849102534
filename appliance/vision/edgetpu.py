"""Find Coral Edge TPUs and load the libedgetpu delegate, with the errors a user can act on."""

import ctypes
import logging
import os
import platform
import re
import time
from collections import namedtuple
from pathlib import Path

from appliance.errors import DeviceError

log = logging.getLogger(__name__)

EdgeTpu = namedtuple("EdgeTpu", "type path speed_mbps")  # type "usb" | "pci"; speed_mbps None when unknown

# (vendor, product): 1a6e:089a before its firmware is loaded, 18d1:9302 after (it re-enumerates).
USB_IDS = frozenset({("1a6e", "089a"), ("18d1", "9302")})
LIBRARIES = {"Linux": "libedgetpu.so.1", "Darwin": "libedgetpu.1.dylib", "Windows": "edgetpu.dll"}
_DEVICE_SPEC = re.compile(r"^(usb|pci)?(:\d+)?$")

INSTALL_FIX = (
    "install the Edge TPU runtime with `sudo ./install.sh --edgetpu` from the appliance's checkout "
    "(it installs libedgetpu and the TFLite runtime built from the same TensorFlow version), then unplug and "
    "replug the accelerator; or run on the CPU with --device cpu (vision.device = \"cpu\")"
)
NO_TPU_FIX = (
    "plug in the Coral USB Accelerator (a blue USB 3 port on a Pi 4/5) or check that the PCIe/M.2 driver "
    "created /dev/apex_0; or run on the CPU with --device cpu (vision.device = \"cpu\")"
)


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def sys_root_path() -> Path:
    """Where sysfs is: APPLIANCE_SYS_ROOT for tests and unusual installs, else /sys."""
    return Path(os.environ.get("APPLIANCE_SYS_ROOT") or "/sys")


def dev_root_path() -> Path:
    """Where device nodes are: APPLIANCE_DEV_ROOT for tests and unusual installs, else /dev."""
    return Path(os.environ.get("APPLIANCE_DEV_ROOT") or "/dev")


def list_edge_tpus(sys_root: Path | None = None, dev_root: Path | None = None) -> list[EdgeTpu]:
    """USB accelerators from sysfs (with their link speed, so `doctor` can warn about USB 2) and PCIe ones."""
    sys_root = sys_root if sys_root is not None else sys_root_path()
    dev_root = dev_root if dev_root is not None else dev_root_path()
    found = []
    for device in sorted((sys_root / "bus" / "usb" / "devices").glob("*")):
        ids = (_read(device / "idVendor"), _read(device / "idProduct"))
        if ids in USB_IDS:
            speed = _read(device / "speed")
            try:
                speed_mbps = int(float(speed)) if speed else None
            except ValueError:
                speed_mbps = None
            found.append(EdgeTpu("usb", str(device), speed_mbps))
    found.extend(EdgeTpu("pci", str(p), None) for p in sorted(dev_root.glob("apex_*")))
    return found


def library_name(system: str | None = None) -> str:
    """The libedgetpu to load: APPLIANCE_EDGETPU_LIB (a path) when set, else the system's by platform."""
    override = os.environ.get("APPLIANCE_EDGETPU_LIB")
    if override and system is None:
        return override
    return LIBRARIES.get(system or platform.system(), LIBRARIES["Linux"])


def library_available(name: str | None = None) -> bool:
    """Try to dlopen the runtime first: a failed load_delegate leaves noisy finalizer errors behind."""
    try:
        ctypes.CDLL(name or library_name())
    except OSError:
        return False
    return True


def library_description() -> str:
    """Which libedgetpu would be loaded: its path, or its Debian package, version and TensorFlow version."""
    from appliance.vision.runtime_pairs import installed_runtime_info

    info = installed_runtime_info()
    if os.environ.get("APPLIANCE_EDGETPU_LIB"):
        return f"libedgetpu {library_name()} (APPLIANCE_EDGETPU_LIB)"
    if info.libedgetpu is None:
        return f"libedgetpu {library_name()} (no Debian package installed)"
    built = f", built for TensorFlow {info.libedgetpu_tf_version}" if info.libedgetpu_tf_version else ""
    return f"libedgetpu {info.libedgetpu} {info.libedgetpu_version}{built}"


def device_options(spec: str) -> dict[str, str]:
    """pycoral-style device selection: "" (first found), usb, usb:N, pci, pci:N, :N."""
    spec = (spec or "").strip()
    if not spec:
        return {}
    if not _DEVICE_SPEC.match(spec):
        raise DeviceError(
            f"edgetpu_device {spec!r} is not a device name",
            'use "" (first found), "usb", "usb:N", "pci", "pci:N" or ":N" (N counts from 0)',
        )
    return {"device": spec}


def edge_tpu_present() -> bool:
    """Linux can enumerate accelerators; elsewhere the runtime being installed is the best hint."""
    if platform.system() == "Linux":
        return bool(list_edge_tpus())
    return library_available()


def load_delegate(spec: str = "", *, load, attempts: int = 3, delay_s: float = 1.0):
    """Open the Edge TPU delegate with the runtime's `load_delegate`, retrying: a USB Coral re-enumerates
    with new ids on its first use."""
    options = device_options(spec)
    name = library_name()
    if not library_available(name):
        raise DeviceError(f"the Edge TPU runtime ({name}) is not installed", INSTALL_FIX)
    last: Exception | None = None
    for attempt in range(1, attempts + 1):
        try:
            return load(name, options)
        except (ValueError, RuntimeError, OSError) as exc:
            last = exc
            log.warning("Edge TPU delegate attempt %d/%d failed: %s", attempt, attempts, exc)
            if attempt < attempts:
                time.sleep(delay_s)
    which = spec or "the first Edge TPU"
    raise DeviceError(f"could not open {which}: {' '.join(str(last).split())}", NO_TPU_FIX)
