"""dev.sh starts a set-up checkout without installing (so offline): a stamp in .venv records the
pyproject.toml it installed; a changed pyproject.toml would install again."""

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from appliance.paths import REPO_ROOT


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    """dev.sh and pyproject.toml in a temporary folder, whose .venv runs this venv's appliance; its
    `python` only records how it was called (dev.sh calls it only to install: pip)."""
    appliance = Path(sys.executable).parent / "appliance"
    if not appliance.exists():
        pytest.skip(f"{appliance} is missing: the test needs the venv's `appliance` (pip install -e .)")
    for name in ("dev.sh", "pyproject.toml"):
        shutil.copy(REPO_ROOT / name, tmp_path / name)
    bin_dir = tmp_path / ".venv" / "bin"
    bin_dir.mkdir(parents=True)
    python = bin_dir / "python"
    python.write_text(f'#!/bin/sh\necho "$*" >> {tmp_path}/python-calls\n')
    python.chmod(0o755)
    (bin_dir / "appliance").symlink_to(appliance)
    return tmp_path


def run_dev(checkout: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHON": sys.executable}
    return subprocess.run(["bash", str(checkout / "dev.sh"), *args], capture_output=True, text=True,
                          env=env, timeout=120)


def stamp_for(checkout: Path, extras: str) -> str:
    return hashlib.sha256((checkout / "pyproject.toml").read_bytes()).hexdigest() + " " + extras


def test_a_set_up_checkout_starts_without_installing(checkout):
    stamp = checkout / ".venv" / ".dev-sh-installed"
    stamp.write_text(stamp_for(checkout, "[test]") + "\n")
    before = stamp.stat().st_mtime_ns
    proc = run_dev(checkout, "demo", "--help")
    assert proc.returncode == 0, proc.stderr
    assert "usage: appliance run" in proc.stdout
    assert stamp.stat().st_mtime_ns == before and not (checkout / "python-calls").exists()


def test_a_changed_pyproject_installs_again_and_stamps(checkout):
    stamp = checkout / ".venv" / ".dev-sh-installed"
    stamp.write_text("0123 [test]\n")  # installed from another pyproject.toml
    proc = run_dev(checkout, "demo", "--help")
    assert proc.returncode == 0, proc.stderr
    calls = (checkout / "python-calls").read_text().splitlines()
    assert calls == ["-m pip install --quiet --upgrade pip", "-m pip install --quiet -e ."], calls
    assert stamp.read_text() == stamp_for(checkout, "") + "\n"
    (checkout / "python-calls").unlink()
    assert run_dev(checkout, "demo", "--help").returncode == 0
    assert not (checkout / "python-calls").exists()  # stamped: no install the second time
