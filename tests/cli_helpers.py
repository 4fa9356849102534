"""Running the `appliance` command in-process for tests, with the user's own folders kept out of it."""

import pytest

from appliance import model_files
from appliance.cli import main


@pytest.fixture(autouse=True)
def private_home(tmp_path, monkeypatch):
    """Default folders go to tmp, never the user's own data folder; models come from ../shared."""
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv(model_files.ENV_MODELS_FROM, raising=False)


def run_cli(capsys, *argv) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err
