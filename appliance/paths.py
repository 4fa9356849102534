"""Where things live on disk: the package's checkout, per-user state, the system config.

Runtime code never looks beside the checkout: a development folder of models is only ever given with
--from or APPLIANCE_MODELS_FROM (see model_files).
"""

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
MANIFEST_PATH = REPO_ROOT / "models" / "manifest.toml"
SYSTEM_CONFIG_PATH = Path("/etc/appliance/config.toml")


def default_data_dir() -> Path:
    """Per-user state folder for demo and development runs (the service uses /var/lib/appliance)."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "appliance"

