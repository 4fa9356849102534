"""The unit file: systemd's own checker finds nothing to warn about, and `enable` works offline."""

import configparser
import shutil
import subprocess
from pathlib import Path

import pytest

from appliance.paths import REPO_ROOT

UNIT = REPO_ROOT / "systemd" / "appliance.service"
EXEC = "/opt/appliance/venv/bin/appliance"


def _directives() -> dict[str, list[str]]:
    """Key → every value (DeviceAllow repeats), over all sections."""
    found: dict[str, list[str]] = {}
    for line in UNIT.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith(("#", "[")):
            key, _, value = line.partition("=")
            found.setdefault(key, []).append(value)
    return found


def test_unit_has_the_service_contract():
    d = _directives()
    single = {k: v[-1] for k, v in d.items()}
    assert single["Type"] == "notify"
    assert single["NotifyAccess"] == "main"
    assert 10 <= int(single["WatchdogSec"]) <= 120
    assert single["Restart"] == "on-failure"
    assert int(single["StartLimitBurst"]) >= 1 and int(single["StartLimitIntervalSec"]) > 0
    assert single["User"] == "appliance"
    assert single["StateDirectory"] == "appliance" and single["ConfigurationDirectory"] == "appliance"
    assert single["ExecStart"] == f"{EXEC} run --config /etc/appliance/config.toml"
    assert int(single["TimeoutStopSec"]) >= 10  # time for the class store to commit
    for key in ("ProtectSystem", "ProtectHome", "PrivateTmp", "NoNewPrivileges", "ProtectKernelTunables",
                "ProtectKernelModules", "ProtectKernelLogs", "ProtectControlGroups", "RestrictNamespaces",
                "LockPersonality"):
        assert single[key] in ("yes", "strict"), key
    assert set(single["RestrictAddressFamilies"].split()) == {"AF_UNIX", "AF_INET", "AF_INET6", "AF_NETLINK"}
    allowed = {v.split()[0] for v in d["DeviceAllow"]}
    assert {"char-video4linux", "char-gpiochip", "char-usb_device", "char-apex"} <= allowed
    # the [Install] section parses as plain INI too
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.read_string(UNIT.read_text())
    assert parser["Install"]["WantedBy"] == "multi-user.target"


def test_systemd_analyze_verify_is_clean(tmp_path):
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed (apt install systemd)")
    # verify needs ExecStart's binary to exist: point a copy at a real executable in tmp_path
    binary = tmp_path / "appliance"
    binary.write_text("#!/bin/sh\nexit 0\n")
    binary.chmod(0o755)
    unit = tmp_path / "appliance.service"
    unit.write_text(UNIT.read_text().replace(EXEC, str(binary)))
    proc = subprocess.run([analyze, "verify", str(unit)], capture_output=True, text=True, timeout=60)
    output = (proc.stdout + proc.stderr).strip()
    assert proc.returncode == 0, output
    assert output == "", f"systemd-analyze verify warned:\n{output}"


def test_systemd_analyze_verify_would_catch_a_bad_key(tmp_path):
    """Guards the test above: the checker really reads our copy and reports problems."""
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed (apt install systemd)")
    unit = tmp_path / "appliance.service"
    text = UNIT.read_text().replace(EXEC, "/bin/true")
    unit.write_text(text.replace("[Service]\n", "[Service]\nBogus=1\n"))
    proc = subprocess.run([analyze, "verify", str(unit)], capture_output=True, text=True, timeout=60)
    assert "Unknown key" in proc.stdout + proc.stderr


def test_systemctl_enable_offline_creates_the_wants_link(tmp_path):
    systemctl = shutil.which("systemctl")
    if systemctl is None:
        pytest.skip("systemctl is not installed (apt install systemd)")
    units = tmp_path / "etc" / "systemd" / "system"
    units.mkdir(parents=True)
    shutil.copy(UNIT, units / "appliance.service")
    proc = subprocess.run([systemctl, f"--root={tmp_path}", "enable", "appliance.service"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    link = units / "multi-user.target.wants" / "appliance.service"
    assert link.is_symlink()
    assert Path(link.readlink()) == Path("/etc/systemd/system/appliance.service")
