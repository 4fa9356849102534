"""tools/arm64_check.sh: the parts that run in seconds (arguments, skipping with the reason, shellcheck).

The check itself (`./dev.sh arm64-check`) takes minutes per release under emulation and is run by hand
before changing install.sh or the dependencies, not by the test suite.
"""

import os
import shutil
import subprocess

import pytest

from appliance.paths import REPO_ROOT

SCRIPT = REPO_ROOT / "tools" / "arm64_check.sh"


def _run(*args: str, user: str | None = None) -> subprocess.CompletedProcess:
    command = ["bash", str(SCRIPT), *args]
    if user is not None:
        command = ["setpriv", f"--reuid={user}", f"--regid={user}", "--clear-groups", *command]
    return subprocess.run(command, capture_output=True, text=True, timeout=60, cwd="/")


def test_an_unknown_release_is_refused_with_the_choices():
    proc = _run("buster")
    assert proc.returncode == 2
    assert "unknown release 'buster': give bookworm, trixie or all" in proc.stderr


def test_without_root_it_skips_and_says_why():
    if os.geteuid() == 0:
        if shutil.which("setpriv") is None:
            pytest.skip("running as root and setpriv (util-linux) is missing: cannot drop to a plain user")
        proc = _run("bookworm", user="65534")  # nobody:nogroup
    else:
        proc = _run("bookworm")
    assert proc.returncode == 77, proc.stdout + proc.stderr
    assert "arm64-check: skipped: this needs root" in proc.stdout
    assert "fix: sudo ./dev.sh arm64-check" in proc.stdout


def test_shellcheck_is_clean():
    shellcheck = shutil.which("shellcheck")
    if shellcheck is None:
        pytest.skip("shellcheck is not installed (apt install shellcheck)")
    proc = subprocess.run([shellcheck, str(SCRIPT), str(REPO_ROOT / "dev.sh")],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout
