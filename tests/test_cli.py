"""The `appliance` command as a whole: every sub-command is there, and help costs no model load."""

import subprocess
import sys

import pytest

from appliance.cli import COMMANDS, build_parser, main


def test_every_command_registers():
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    assert sorted(sub.choices) == sorted(COMMANDS)


@pytest.mark.parametrize("command", COMMANDS)
def test_each_command_has_help(command, capsys):
    with pytest.raises(SystemExit) as exc:
        main([command, "--help"])
    assert exc.value.code == 0
    assert "usage: appliance " + command in capsys.readouterr().out


def test_unknown_command_is_a_usage_error_without_traceback():
    done = subprocess.run([sys.executable, "-m", "appliance", "frobnicate"], capture_output=True, text=True)
    assert done.returncode == 2
    assert "invalid choice" in done.stderr and "Traceback" not in done.stderr
