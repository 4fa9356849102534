"""Files shipped inside the package (photos with their attribution in ATTRIBUTION.md)."""

from pathlib import Path

FOLDER = Path(__file__).parent
PROBE_PHOTO = FOLDER / "parrot.jpg"  # the Edge TPU probe's known image: a macaw


def demo_photos() -> list[Path]:
    """The demo camera's photos, in the order it shows them (file-name order): the same on every machine."""
    return sorted(FOLDER.glob("*.jpg"))
