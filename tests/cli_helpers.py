"""Running the `appliance` command in-process for tests, with the user's own folders kept out of it."""

import pytest

from appliance.cli import main


@pytest.fixture(autouse=True)
def private_home(tmp_path, monkeypatch):
    """Default folders go to tmp, never the user's own data folder; models are copied from the folder in
    APPLIANCE_MODELS_FROM (conftest sets it to the real models), as on a development machine."""
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))


def run_cli(capsys, *argv) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err
