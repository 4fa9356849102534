"""Where things live on disk: the checkout, per-user state, the shared model folder beside the checkout."""

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
MANIFEST_PATH = REPO_ROOT / "models" / "manifest.toml"
SYSTEM_CONFIG_PATH = Path("/etc/appliance/config.toml")


def default_data_dir() -> Path:
    """Per-user state folder for demo and development runs (the service uses /var/lib/appliance)."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "appliance"


def shared_models_dir() -> Path | None:
    """`../shared/models` beside the checkout, where this project's machines keep verified copies."""
    candidate = REPO_ROOT.parent / "shared" / "models"
    return candidate if candidate.is_dir() else None
