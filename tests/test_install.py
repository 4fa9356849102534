"""install.sh run for real against a throwaway root, with stand-ins for the commands that cannot run here.

The stand-ins (tests/install_helpers/fake_admin.sh) record every call; the venv, pip install, the model
copy with hash checks, the config, unit and udev files are real. pip installs without downloading: the
fresh venv sees this checkout's .venv packages through PYTHONPATH, and APPLIANCE_PIP_ARGS keeps pip offline.
"""

import base64
import hashlib
import os
import platform
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import zipfile
from pathlib import Path

import pytest

from appliance.paths import REPO_ROOT

HELPER = REPO_ROOT / "tests" / "install_helpers" / "fake_admin.sh"
FAKED = ("id", "dpkg", "dpkg-query", "apt-cache", "apt-get", "getent", "useradd", "usermod", "userdel",
         "systemctl", "lsusb", "lspci", "udevadm", "chown", "curl", "gpg", "systemd-analyze")
READ_ONLY = {"id", "dpkg", "dpkg-query", "apt-cache", "getent", "lsusb", "lspci", "systemd-analyze"}
PARTS = ("pyproject.toml", "README.md", "LICENSE", "appliance", "models", "systemd",
         "docs/config.example.toml", "install.sh")
RPI_OS = """PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"
NAME="Debian GNU/Linux"
VERSION_ID="12"
VERSION_CODENAME=bookworm
ID=debian
"""
CORAL_LSUSB = "Bus 002 Device 003: ID 18d1:9302 Google Inc."
PI_PACKAGES = "python3-venv python3-picamera2 python3-lgpio libedgetpu1-std"
TRIXIE = 'PRETTY_NAME="Debian GNU/Linux 13 (trixie)"\nVERSION_CODENAME=trixie\nID=debian\n'
FERANICK = "https://github.com/feranick/libedgetpu/releases/download/16.0TF2.17.1-1/"
# (os-release, Python, dpkg arch) -> the .deb and the wheel install.sh must fetch for it
PAIRS = {
    ("bookworm", "3.11", "arm64"): (FERANICK + "libedgetpu1-std_16.0tf2.17.1-1.bookworm_arm64.deb",
                                    "https://github.com/feranick/TFlite-builds/releases/download/v2.17.1/"
                                    "tflite_runtime-2.17.1-cp311-cp311-linux_aarch64.whl"),
    ("bookworm", "3.11", "amd64"): (FERANICK + "libedgetpu1-std_16.0tf2.17.1-1.bookworm_amd64.deb",
                                    "https://github.com/frigate-nvr/TFlite-builds/releases/download/v2.17.1/"
                                    "tflite_runtime-2.17.1-cp311-cp311-linux_x86_64.whl"),
    ("trixie", "3.13", "arm64"): ("https://github.com/ricardodeazambuja/EdgeTPUOnModernRPIs/releases/download/"
                                  "2.17.1/libedgetpu1-std_16.0tf2.17.1-1.trixie_arm64.deb",
                                  "https://github.com/Nachtzuster/BirdNET-Pi/releases/download/v0.1/"
                                  "tflite_runtime-2.17.1-cp313-cp313-linux_aarch64.whl"),
}


def _no_pycache(info: tarfile.TarInfo) -> tarfile.TarInfo | None:
    return None if "__pycache__" in info.name or ".egg-info" in info.name else info


def _checkout(dest: Path) -> Path:
    """A frozen copy of the parts of the checkout install.sh copies (others edit /work/main meanwhile)."""
    dest.mkdir()
    archive = dest.parent / "checkout.tar"
    with tarfile.open(archive, "w") as tar:
        for part in PARTS:
            if (REPO_ROOT / part).exists():
                tar.add(REPO_ROOT / part, arcname=part, filter=_no_pycache)
    with tarfile.open(archive) as tar:
        tar.extractall(dest, filter="tar")
    return dest


class Box:
    """One throwaway machine: a root prefix, a bin folder of stand-ins, their log and state."""

    def __init__(self, base: Path, checkout: Path, os_release: str = RPI_OS) -> None:
        self.base = base
        self.root = base / "root"
        self.state = base / "state"
        self.bin = base / "bin"
        self.log = base / "calls.log"
        self.checkout = checkout
        (self.root / "etc").mkdir(parents=True)
        (self.root / "etc" / "os-release").write_text(os_release)
        self.state.mkdir()
        (self.state / "group").write_text("video:x:44:\nplugdev:x:46:pi\ngpio:x:997:pi\n")
        self.bin.mkdir()
        for name in FAKED:
            (self.bin / name).symlink_to(HELPER)
        self.env = {
            **os.environ,
            "PATH": f"{self.bin}:{os.environ['PATH']}",
            "APPLIANCE_ROOT": str(self.root),
            "APPLIANCE_PYTHON": sys.executable,
            "APPLIANCE_PIP_ARGS": "--no-deps --no-build-isolation --no-index",
            "APPLIANCE_VENV_ARGS": "--without-pip",  # pip itself comes from this venv, via PYTHONPATH
            "PYTHONPATH": str(_dependencies(base / "deps")),
            "FAKE_LOG": str(self.log),
            "FAKE_STATE": str(self.state),
            "FAKE_AVAILABLE": PI_PACKAGES,
            "FAKE_LSUSB": CORAL_LSUSB,
        }
        self.env.pop("APPLIANCE_MODELS_FROM", None)

    def run(self, *args: str, **env: str) -> subprocess.CompletedProcess:
        self.log.write_text("")
        return subprocess.run(["bash", str(self.checkout / "install.sh"), *args], env={**self.env, **env},
                              cwd=self.base, capture_output=True, text=True, timeout=120)

    def calls(self) -> list[str]:
        return self.log.read_text().splitlines()

    def changing_calls(self) -> list[str]:
        return [c for c in self.calls() if c.split()[0] not in READ_ONLY
                and not c.startswith(("systemctl is-enabled", "systemctl is-active",
                                      "systemctl is-system-running"))]

    def files(self) -> set[str]:
        return {str(p.relative_to(self.root)) for p in self.root.rglob("*")}


def _dependencies(dest: Path) -> Path:
    """This venv's installed packages, minus its own editable install of the appliance (whose finder
    module has the same name as the one pip writes into the new venv and would shadow it)."""
    dest.mkdir()
    for entry in Path(sysconfig.get_paths()["purelib"]).iterdir():
        if "teachable_appliance" not in entry.name and entry.suffix != ".pth":
            (dest / entry.name).symlink_to(entry)
    return dest


def _needs_builder() -> None:
    import setuptools

    if int(setuptools.__version__.split(".")[0]) < 77:  # pyproject's SPDX license needs setuptools 77
        pytest.skip(f"an offline `pip install -e` needs setuptools>=77 in the test venv, not "
                    f"{setuptools.__version__} (pip install 'setuptools>=77', as the [test] extra does)")


def _record_line(name: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{name},sha256={digest},{len(data)}"


def _stand_in_wheel(folder: Path, url: str) -> Path:
    """What the curl stand-in serves for the runtime wheel's URL: a real, installable wheel of that name
    (no TFLite inside: it only has to be what pip installs and importlib.metadata then finds)."""
    name = url.rsplit("/", 1)[1]
    dist, version, python, abi, plat = name[:-len(".whl")].split("-")
    info = f"{dist}-{version}.dist-info"
    files = {
        f"{dist}/__init__.py": f'__version__ = "{version}"\n'.encode(),
        f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n".encode(),
        f"{info}/WHEEL": f"Wheel-Version: 1.0\nRoot-Is-Purelib: false\nTag: {python}-{abi}-{plat}\n".encode(),
    }
    folder.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(folder / name, "w") as wheel:
        for member, data in files.items():
            wheel.writestr(member, data)
        wheel.writestr(f"{info}/RECORD", "\n".join([*(_record_line(m, d) for m, d in files.items()),
                                                    f"{info}/RECORD,,"]) + "\n")
    return folder / name


def _python_reporting(folder: Path, version: str) -> Path:
    """This interpreter, except that it tells install.sh it is Python VERSION (as Trixie's python3 would)."""
    python = folder / "python3"
    python.write_text(f'#!/bin/sh\ncase "$*" in *"version_info[:2]"*) echo {version}; exit 0 ;; esac\n'
                      f'exec {sys.executable} "$@"\n')
    python.chmod(0o755)
    return python


@pytest.fixture(scope="module")
def checkout(tmp_path_factory) -> Path:
    return _checkout(tmp_path_factory.mktemp("src") / "checkout")


@pytest.fixture(scope="module")
def installed(tmp_path_factory, checkout, models_dir):
    """A PC with Debian 12 and a USB Coral (amd64: the runtime wheel's platform is this machine's, so the
    real pip installs it), installed for real."""
    _needs_builder()
    if platform.machine() != "x86_64":
        pytest.skip("the stand-in runtime wheel is tagged linux_x86_64: pip installs it only on x86_64")
    box = Box(tmp_path_factory.mktemp("pi"), checkout)
    box.env["FAKE_ARCH"] = "amd64"
    box.env["FAKE_DOWNLOADS"] = str(_stand_in_wheel(box.base / "downloads",
                                                    PAIRS[("bookworm", "3.11", "amd64")][1]).parent)
    proc = box.run("--models-from", str(models_dir))
    return box, proc


def test_first_install_does_every_step(installed, models_dir):
    box, proc = installed
    assert proc.returncode == 0, proc.stdout + proc.stderr
    calls = box.calls()
    assert "apt-get install -y -qq --no-install-recommends python3-venv python3-picamera2 python3-lgpio" \
        in calls
    deb_url, wheel_url = PAIRS[("bookworm", "3.11", "amd64")]  # a Coral is plugged in: the matched pair
    cache = box.root / "opt/appliance/edgetpu-runtime"
    deb, wheel = cache / deb_url.rsplit("/", 1)[1], cache / wheel_url.rsplit("/", 1)[1]
    assert f"curl -fsSL --retry 3 -o {deb}.part {deb_url}" in calls
    assert f"curl -fsSL --retry 3 -o {wheel}.part {wheel_url}" in calls
    assert f"apt-get install -y -qq --no-install-recommends {deb}" in calls
    assert not any(c.startswith("apt-get install") and c.endswith(" libedgetpu1-std") for c in calls)
    assert "gpg" not in {c.split()[0] for c in calls}  # no Coral apt key, no Coral repository
    assert not (box.root / "etc/apt/sources.list.d/coral-edgetpu.list").exists()
    assert "both built from TensorFlow 2.17.1" in proc.stdout
    assert "why this pair (strong evidence): Frigate's amd64 image" in proc.stdout
    assert "note: no sha256 is published for libedgetpu1-std_16.0tf2.17.1-1.bookworm_amd64.deb" in proc.stdout
    assert any(c.startswith("useradd --system --user-group") and c.endswith(" appliance") for c in calls)
    assert {"usermod -a -G video appliance", "usermod -a -G gpio appliance",
            "usermod -a -G plugdev appliance"} <= set(calls)
    assert not any("apex" in c for c in calls if c.startswith("usermod"))  # no such group here
    assert "udevadm control --reload-rules" in calls
    for expected in ("systemctl daemon-reload", "systemctl enable appliance.service",
                     "systemctl start appliance.service"):
        assert expected in calls
    root = box.root
    assert (root / "etc/systemd/system/appliance.service").read_text() == \
        (REPO_ROOT / "systemd/appliance.service").read_text()
    assert (root / "etc/appliance/config.toml").read_text() == \
        (REPO_ROOT / "docs/config.example.toml").read_text()
    assert "18d1" in (root / "etc/udev/rules.d/99-coral-edgetpu.rules").read_text()
    venv = root / "opt/appliance/venv"
    assert "include-system-site-packages = true" in (venv / "pyvenv.cfg").read_text()
    where = subprocess.run([str(venv / "bin/python"), "-c", "import appliance; print(appliance.__file__)"],
                           env=box.env, cwd=box.base, capture_output=True, text=True, timeout=60)
    assert where.stdout.strip() == str(root / "opt/appliance/src/appliance/__init__.py")
    assert (root / "usr/local/bin/appliance").readlink() == Path("/opt/appliance/venv/bin/appliance")
    model = root / "var/lib/appliance/models/mobilenet_v2_1.0_224_quant.tflite"
    assert hashlib.sha256(model.read_bytes()).hexdigest() == \
        hashlib.sha256((models_dir / model.name).read_bytes()).hexdigest()
    assert "done: the appliance is installed and running" in proc.stdout


def test_the_installed_pair_is_what_the_appliance_then_reports(installed):
    """The venv's appliance, asked what runtime and libedgetpu it has, names the pair install.sh chose."""
    box, proc = installed
    assert proc.returncode == 0, proc.stdout + proc.stderr
    ask = ("from appliance.vision.runtime_pairs import installed_runtime_info as i; r = i(); "
           "print(r.runtime, r.runtime_version, r.tf_version, r.libedgetpu, r.libedgetpu_tf_version, "
           "r.problem)")
    out = subprocess.run([str(box.root / "opt/appliance/venv/bin/python"), "-c", ask], env=box.env,
                         cwd=box.base, capture_output=True, text=True, timeout=60)
    want = ["tflite_runtime", "2.17.1", "2.17.1", "libedgetpu1-std", "2.17.1", "None"]
    assert out.stdout.split() == want, out.stderr
    assert (box.root / "opt/appliance/edgetpu-constraints.txt").read_text().strip() == "numpy<2"


def test_second_run_changes_nothing(installed, models_dir):
    box, _ = installed
    before = box.files()
    proc = box.run("--models-from", str(models_dir))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "doing:" not in proc.stdout
    assert proc.stdout.strip().endswith("nothing to change")
    assert "ok: already running: appliance.service" in proc.stdout
    assert box.changing_calls() == []
    assert box.files() == before


def test_dry_run_on_an_installed_box_has_nothing_to_do(installed):
    box, _ = installed
    proc = box.run("--dry-run")
    assert proc.returncode == 0, proc.stderr
    assert "would:" not in proc.stdout and proc.stdout.strip().endswith("nothing to change")


def test_dry_run_touches_nothing(tmp_path, checkout):
    box = Box(tmp_path, checkout)
    proc = box.run("--dry-run")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert box.files() == {"etc", "etc/os-release"}
    assert box.changing_calls() == []
    out = proc.stdout
    for action in ("would: apt-get install python3-venv", "would: create system user appliance",
                   "would: pip install -e /opt/appliance/src", "would: write the default /etc/appliance",
                   "would: install /etc/systemd/system/appliance.service", "would: start appliance.service"):
        assert action in out
    assert "doing:" not in out
    assert "nothing was changed" in out


def _copy_of(installed_box: Box, base: Path, checkout: Path) -> Box:
    """A second box in the state the installed one is in (its venv still points into the first)."""
    box = Box(base, checkout)
    shutil.rmtree(box.root)
    shutil.rmtree(box.state)
    shutil.copytree(installed_box.root, box.root, symlinks=True)
    shutil.copytree(installed_box.state, box.state, symlinks=True)
    for key in ("FAKE_ARCH", "FAKE_DOWNLOADS"):  # the same machine: the same Edge TPU pair and its files
        if key in installed_box.env:
            box.env[key] = installed_box.env[key]
    return box


def test_without_systemd_the_unit_is_enabled_and_verified_not_started(installed, tmp_path, checkout,
                                                                      models_dir):
    """In a chroot or a container systemctl start is a no-op that exits 0: never claim it is running."""
    src, _ = installed
    box = _copy_of(src, tmp_path / "copy", checkout)
    (box.state / "enabled").unlink()
    (box.state / "active").unlink()
    (box.root / "etc/systemd/system/appliance.service").unlink()
    proc = box.run("--models-from", str(models_dir), FAKE_SYSTEM_STATE="offline")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    calls = box.calls()
    assert (box.root / "etc/systemd/system/appliance.service").exists()
    assert "systemctl daemon-reload" not in calls  # it would fail: there is no systemd to reload
    assert "systemctl enable appliance.service" in calls
    assert f"systemd-analyze verify {box.root}/etc/systemd/system/appliance.service" in calls
    assert not any(c.startswith(("systemctl start", "systemctl restart")) for c in calls)
    out = proc.stdout
    assert "ok: appliance.service is enabled and its unit verified (systemd-analyze verify)" in out
    assert "ok: not starting appliance.service: systemd is not running here" in out
    assert "installed and running" not in out
    assert "done: the appliance is installed and enabled, not started (systemd is not running here" in out

    again = box.run("--models-from", str(models_dir), FAKE_SYSTEM_STATE="offline")
    assert again.returncode == 0, again.stdout + again.stderr
    assert again.stdout.strip().endswith("nothing to change") and box.changing_calls() == []

    broken = box.run(FAKE_SYSTEM_STATE="offline", FAKE_VERIFY_ERROR="appliance.service: bad setting")
    assert broken.returncode == 1
    assert "bad setting" in broken.stderr and "systemd-analyze verify finds problems" in broken.stderr
    assert "fix:" in broken.stderr

    gone = box.run("--uninstall", FAKE_SYSTEM_STATE="offline")
    assert gone.returncode == 0, gone.stdout + gone.stderr
    assert "systemctl disable appliance.service" in box.calls()  # no --now: nothing runs to stop
    assert not any("--now" in c or "daemon-reload" in c for c in box.calls())


def test_no_start_says_it_did_not_start(installed, tmp_path, checkout, models_dir):
    src, _ = installed
    box = _copy_of(src, tmp_path / "copy", checkout)
    (box.state / "enabled").unlink()
    (box.state / "active").unlink()
    proc = box.run("--no-start", "--models-from", str(models_dir))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "systemctl enable appliance.service" in box.calls()
    assert not any(c.startswith("systemctl start") for c in box.calls())
    assert "systemd-analyze" not in "".join(box.calls())  # a running systemd checks the unit itself
    assert "ok: not starting appliance.service (--no-start)" in proc.stdout
    assert "done: the appliance is installed and enabled, not started (--no-start)" in proc.stdout


def test_dry_run_without_systemd_says_it_would_not_start(tmp_path, checkout):
    box = Box(tmp_path, checkout)
    proc = box.run("--dry-run", FAKE_SYSTEM_STATE="offline")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "would: enable appliance.service" in proc.stdout
    assert "would: start" not in proc.stdout
    assert "ok: not starting appliance.service: systemd is not running here" in proc.stdout
    assert box.changing_calls() == [] and box.files() == {"etc", "etc/os-release"}


def test_uninstall_keeps_taught_classes_then_purge_removes_them(installed, tmp_path, checkout):
    src, _ = installed
    box = _copy_of(src, tmp_path / "copy", checkout)
    store = box.root / "var/lib/appliance/classes.sqlite3"
    store.write_bytes(b"taught classes")

    proc = box.run("--uninstall")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    calls = box.calls()
    assert "systemctl disable --now appliance.service" in calls
    assert "userdel appliance" in calls
    assert not (box.root / "etc/systemd/system/appliance.service").exists()
    assert not (box.root / "opt/appliance").exists()
    assert not (box.root / "usr/local/bin/appliance").is_symlink()
    assert not (box.root / "etc/udev/rules.d/99-coral-edgetpu.rules").exists()
    assert store.read_bytes() == b"taught classes"
    assert (box.root / "etc/appliance/config.toml").exists()
    assert "kept: /var/lib/appliance" in proc.stdout

    again = box.run("--uninstall")
    assert again.returncode == 0 and again.stdout.strip().endswith("nothing to change")
    assert box.changing_calls() == []

    purge = box.run("--uninstall", "--purge")
    assert purge.returncode == 0, purge.stderr
    assert not (box.root / "var/lib/appliance").exists()
    assert not (box.root / "etc/appliance").exists()


def test_refuses_without_root(tmp_path, checkout):
    box = Box(tmp_path, checkout)
    proc = box.run(FAKE_UID="1000")
    assert proc.returncode == 1
    assert "must run as root" in proc.stderr and "fix: sudo" in proc.stderr
    assert box.changing_calls() == [] and box.files() == {"etc", "etc/os-release"}


@pytest.mark.parametrize(("os_release", "arch", "message"), [
    ('PRETTY_NAME="Fedora Linux 40"\nID=fedora\n', "amd64", "unsupported operating system: Fedora Linux 40"),
    (RPI_OS, "armhf", "32-bit system (armhf)"),
])
def test_refuses_unsupported_systems(tmp_path, checkout, os_release, arch, message):
    box = Box(tmp_path, checkout, os_release=os_release)
    proc = box.run(FAKE_ARCH=arch)
    assert proc.returncode == 1
    assert message in proc.stderr and "fix:" in proc.stderr
    assert box.changing_calls() == []


def test_plain_debian_without_a_coral_skips_the_pi_and_coral_parts(tmp_path, checkout):
    box = Box(tmp_path, checkout)
    proc = box.run("--dry-run", FAKE_AVAILABLE="python3-venv", FAKE_LSUSB="")
    assert proc.returncode == 0, proc.stderr
    assert "python3-picamera2 is not offered by this OS" in proc.stdout
    assert "no Coral found" in proc.stdout
    assert "libedgetpu1-std" not in proc.stdout


def test_edgetpu_flag_adds_the_runtime_without_a_coral_plugged_in(tmp_path, checkout):
    box = Box(tmp_path, checkout)
    proc = box.run("--dry-run", "--edgetpu", FAKE_LSUSB="")
    assert "would: install libedgetpu1-std 16.0tf2.17.1-1 (built from TensorFlow 2.17.1)" in proc.stdout
    assert "would: write /etc/udev/rules.d/99-coral-edgetpu.rules" in proc.stdout
    assert "libedgetpu1-std" not in proc.stdout.replace("libedgetpu1-std 16.0tf2.17.1-1", "") \
        .replace("libedgetpu1-std_16.0tf2.17.1-1", "")  # Coral's apt package is not asked for


def _platform_box(tmp_path: Path, checkout: Path, codename: str, python: str) -> tuple[Box, dict]:
    os_release = RPI_OS if codename == "bookworm" else TRIXIE
    env = {"APPLIANCE_PYTHON": str(_python_reporting(tmp_path, python))} if python != "3.11" else {}
    return Box(tmp_path / "box", checkout, os_release=os_release), env


@pytest.mark.parametrize("cell", sorted(PAIRS))
def test_each_platform_gets_its_pair_through_install_sh(tmp_path, checkout, cell):
    codename, python, arch = cell
    box, env = _platform_box(tmp_path, checkout, codename, python)
    proc = box.run("--dry-run", FAKE_ARCH=arch, **env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    deb_url, wheel_url = PAIRS[cell]
    assert f"ok: Edge TPU runtime for {codename}/{python}/{arch}: libedgetpu1-std 16.0tf2.17.1-1 + " \
           f"tflite_runtime 2.17.1, both built from TensorFlow 2.17.1" in proc.stdout
    assert f"would: download {deb_url}\n" in proc.stdout and f"would: download {wheel_url}\n" in proc.stdout
    numpy = ", numpy<2" if codename == "bookworm" else ""
    assert f"would: pip install tflite_runtime 2.17.1 (built from TensorFlow 2.17.1) into the venv{numpy}: " \
           f"{wheel_url.rsplit('/', 1)[1]}" in proc.stdout
    assert ("weak evidence" in proc.stdout) == (codename == "trixie")
    assert box.changing_calls() == []
    # for real, stopped right after the Edge TPU step (the next one, useradd, is made to fail)
    proc = box.run(FAKE_ARCH=arch, FAKE_FAIL="useradd", **env)
    assert proc.returncode == 1 and box.calls()[-1] == "useradd --system --user-group --home-dir " \
        "/var/lib/appliance --no-create-home --shell /usr/sbin/nologin appliance"
    cache = box.root / "opt/appliance/edgetpu-runtime"
    deb, wheel = (cache / url.rsplit("/", 1)[1] for url in (deb_url, wheel_url))
    edgetpu_calls = [c for c in box.changing_calls() if "edgetpu" in c or c.startswith("udevadm")]
    assert edgetpu_calls == [f"curl -fsSL --retry 3 -o {deb}.part {deb_url}",
                             f"curl -fsSL --retry 3 -o {wheel}.part {wheel_url}",
                             f"apt-get install -y -qq --no-install-recommends {deb}",
                             "udevadm control --reload-rules", "udevadm trigger --subsystem-match=usb"]
    assert deb.is_file() and wheel.is_file()


def test_a_platform_without_a_pair_stays_on_the_cpu_or_refuses_an_explicit_flag(tmp_path, checkout):
    box, env = _platform_box(tmp_path, checkout, "trixie", "3.13")
    detected = box.run("--dry-run", FAKE_ARCH="amd64", **env)  # a Coral is plugged in
    assert detected.returncode == 0, detected.stderr
    assert "warn: a Coral is present, but no matched Edge TPU runtime pair is pinned for Debian 13" \
        in detected.stdout
    assert "  fix: use Debian 12 (bookworm)" in detected.stdout
    assert "the appliance runs on the CPU (ai-edge-litert)" in detected.stdout
    assert "would: download" not in detected.stdout and "libedgetpu1-std 16.0" not in detected.stdout
    explicit = box.run("--dry-run", "--edgetpu", FAKE_ARCH="amd64", **env)
    assert explicit.returncode == 1
    assert "install.sh: --edgetpu: no matched Edge TPU runtime pair" in explicit.stderr
    assert "  fix: use Debian 12 (bookworm)" in explicit.stderr
    ubuntu = Box(tmp_path / "ubuntu", checkout, os_release='PRETTY_NAME="Ubuntu 24.04 LTS"\nID=ubuntu\n'
                 'VERSION_CODENAME=noble\n')
    proc = ubuntu.run("--dry-run", "--edgetpu", FAKE_ARCH="amd64")
    assert proc.returncode == 1 and "no Edge TPU runtime pair is pinned for noble" in proc.stderr


def _checkout_pinning(tmp_path: Path, checkout: Path, deb_sha256: str, wheel_sha256: str) -> Path:
    """A copy of the checkout whose manifest pins these hashes for the first pair (bookworm, arm64)."""
    copy = tmp_path / "checkout"
    shutil.copytree(checkout, copy)
    manifest = copy / "appliance/vision/edgetpu_runtime.toml"
    text = manifest.read_text()
    text = text.replace('deb_sha256 = ""', f'deb_sha256 = "{deb_sha256}"', 1)
    text = text.replace('wheel_sha256 = ""', f'wheel_sha256 = "{wheel_sha256}"', 1)
    manifest.write_text(text)
    return copy


def test_a_download_whose_sha256_differs_from_the_pin_is_refused(tmp_path, checkout):
    deb_url, wheel_url = PAIRS[("bookworm", "3.11", "arm64")]
    served = hashlib.sha256(f"stand-in download of {deb_url}\n".encode()).hexdigest()  # what curl serves
    pinned = "0" * 64
    box = Box(tmp_path, _checkout_pinning(tmp_path, checkout, served, pinned))
    proc = box.run("--edgetpu")
    assert proc.returncode == 1
    assert "ok: sha256 verified: libedgetpu1-std_16.0tf2.17.1-1.bookworm_arm64.deb" in proc.stdout
    wheel = wheel_url.rsplit("/", 1)[1]
    got = hashlib.sha256(f"stand-in download of {wheel_url}\n".encode()).hexdigest()
    assert f"install.sh: sha256 mismatch for {wheel}: the manifest pins {pinned}, the download is {got}" \
        in proc.stderr
    assert "fix: do not install it" in proc.stderr
    assert not (box.root / "opt/appliance/edgetpu-runtime" / wheel).exists()
    calls = box.calls()
    assert not any(".deb" in c for c in calls if c.startswith("apt-get"))  # nothing installed from the pair
    assert not (box.root / "opt/appliance/venv").exists()


def test_a_failed_download_stops_before_anything_of_the_pair_is_installed(tmp_path, checkout):
    box = Box(tmp_path, checkout)
    proc = box.run("--edgetpu", FAKE_FAIL="curl")
    deb_url = PAIRS[("bookworm", "3.11", "arm64")][0]
    assert proc.returncode == 1
    assert f"install.sh: could not download {deb_url}" in proc.stderr
    assert "fix: check the network" in proc.stderr
    assert not any(".deb" in c for c in box.calls() if c.startswith("apt-get"))
    assert not (box.root / "opt/appliance/edgetpu-runtime" / deb_url.rsplit("/", 1)[1]).exists()


def test_an_earlier_installs_coral_repository_and_libedgetpu_16_0_are_replaced(tmp_path, checkout):
    """What earlier versions of install.sh left: Coral's apt repository and its libedgetpu1-std 16.0."""
    box = Box(tmp_path, checkout)
    listing = box.root / "etc/apt/sources.list.d/coral-edgetpu.list"
    listing.parent.mkdir(parents=True)
    listing.write_text("deb [signed-by=/etc/apt/keyrings/coral-edgetpu.gpg] "
                       "https://packages.cloud.google.com/apt coral-edgetpu-stable main\n")
    (box.state / "installed").write_text("libedgetpu1-std\n")
    (box.state / "versions").write_text("libedgetpu1-std 16.0\n")
    proc = box.run("--dry-run")
    assert proc.returncode == 0, proc.stderr
    assert "would: remove Coral's apt repository (its libedgetpu 16.0 is built from TF 2.5" in proc.stdout
    assert "would: install libedgetpu1-std 16.0tf2.17.1-1 (built from TensorFlow 2.17.1) over 16.0" \
        in proc.stdout
    _needs_builder()
    # for real: the curl stand-in's "wheel" is text, so pip fails at the last Edge TPU step and says so
    proc = box.run("--edgetpu")
    deb_url, wheel_url = PAIRS[("bookworm", "3.11", "arm64")]
    deb = box.root / "opt/appliance/edgetpu-runtime" / deb_url.rsplit("/", 1)[1]
    assert f"apt-get install -y -qq --no-install-recommends {deb}" in box.calls()
    assert not listing.exists()
    assert "libedgetpu1-std 16.0tf2.17.1-1.bookworm" in (box.state / "versions").read_text()
    assert proc.returncode == 1
    assert f"install.sh: pip could not install {wheel_url.rsplit('/', 1)[1]} into /opt/appliance/venv" \
        in proc.stderr
    assert "fix: see pip's message above" in proc.stderr


def test_shellcheck_is_clean():
    shellcheck = shutil.which("shellcheck")
    if shellcheck is None:
        pytest.skip("shellcheck is not installed (apt install shellcheck)")
    proc = subprocess.run([shellcheck, str(REPO_ROOT / "install.sh"), str(HELPER)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout


def test_bookworm_picamera2_keeps_numpy_1_in_the_venv(tmp_path, checkout):
    """Bookworm's apt picamera2 stack is built for numpy 1.x: pip must not put numpy 2 over it."""
    python = tmp_path / "python3"  # a system python whose apt numpy is 1.24 (as on Bookworm)
    python.write_text('#!/bin/sh\ncase "$*" in *numpy*) echo 1.24.2 ;; esac\nexit 0\n')
    python.chmod(0o755)
    box = Box(tmp_path / "box", checkout)
    proc = box.run("--dry-run", APPLIANCE_PYTHON=str(python))
    assert "would: write /opt/appliance/pip-constraints.txt" in proc.stdout
    assert "numpy<2 to match apt's picamera2 modules" in proc.stdout
    plain = box.run("--dry-run", APPLIANCE_PYTHON=str(python), FAKE_AVAILABLE="python3-venv")
    assert "numpy<2" not in plain.stdout  # no picamera2 from apt: nothing to match


def test_refuses_a_python_older_than_3_11(tmp_path, checkout):
    """Mendel Linux (Coral Dev Board) and Ubuntu 22.04 ship older Pythons: say so before changing anything."""
    python = tmp_path / "python3"  # the Dev Board's interpreter: Python 3.7
    python.write_text('#!/bin/sh\ncase "$*" in *--version*) echo "Python 3.7.3" ;; *) exit 1 ;; esac\n')
    python.chmod(0o755)
    mendel = 'PRETTY_NAME="Mendel GNU/Linux 5 (Eagle)"\nID=mendel\nID_LIKE=debian\n'
    box = Box(tmp_path / "box", checkout, os_release=mendel)
    proc = box.run(APPLIANCE_PYTHON=str(python))
    assert proc.returncode == 1
    assert "older than Python 3.11" in proc.stderr and "ships Python 3.7.3" in proc.stderr
    assert "fix:" in proc.stderr and box.changing_calls() == []
