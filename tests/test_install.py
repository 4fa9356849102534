"""install.sh run for real against a throwaway root, with stand-ins for the commands that cannot run here.

The stand-ins (tests/install_helpers/fake_admin.sh) record every call; the venv, pip install, the model
copy with hash checks, the config, unit and udev files are real. pip installs without downloading: the
fresh venv sees this checkout's .venv packages through PYTHONPATH, and APPLIANCE_PIP_ARGS keeps pip offline.
"""

import hashlib
import os
import shutil
import subprocess
import sys
import sysconfig
import tarfile
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


@pytest.fixture(scope="module")
def checkout(tmp_path_factory) -> Path:
    return _checkout(tmp_path_factory.mktemp("src") / "checkout")


@pytest.fixture(scope="module")
def installed(tmp_path_factory, checkout, models_dir):
    _needs_builder()
    box = Box(tmp_path_factory.mktemp("pi"), checkout)
    proc = box.run("--models-from", str(models_dir))
    return box, proc


def test_first_install_does_every_step(installed, models_dir):
    box, proc = installed
    assert proc.returncode == 0, proc.stdout + proc.stderr
    calls = box.calls()
    assert "apt-get install -y -qq --no-install-recommends python3-venv python3-picamera2 python3-lgpio" \
        in calls
    assert "apt-get install -y -qq --no-install-recommends libedgetpu1-std" in calls  # a Coral is plugged in
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
    assert "coral-edgetpu-stable" in (root / "etc/apt/sources.list.d/coral-edgetpu.list").read_text()
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
    assert "would: apt-get install libedgetpu1-std" in proc.stdout
    assert "would: write /etc/udev/rules.d/99-coral-edgetpu.rules" in proc.stdout


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
