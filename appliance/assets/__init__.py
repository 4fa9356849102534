"""Files shipped inside the package (photos with their attribution in ATTRIBUTION.md)."""

from pathlib import Path

FOLDER = Path(__file__).parent
PROBE_PHOTO = FOLDER / "parrot.jpg"  # the Edge TPU probe's known image: a macaw
