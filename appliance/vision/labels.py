"""Label files: "N label" lines (Coral style) or one label per line (line number = id)."""

import re
from pathlib import Path

from appliance.errors import ModelError

_PAIR = re.compile(r"^\s*(\d+)(?:\s+|\s*:\s*)(\S.*?)\s*$")


def parse_labels(text: str) -> dict[int, str]:
    lines = text.splitlines()
    filled = [line for line in lines if line.strip()]
    if filled and all(_PAIR.match(line) for line in filled):
        return {int(m.group(1)): m.group(2) for m in map(_PAIR.match, filled)}
    return {i: line.strip() for i, line in enumerate(lines) if line.strip()}


def read_labels(path) -> dict[int, str]:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise ModelError(f"label file {path} does not exist",
                         "give --labels FILE or run `appliance models fetch` for the default labels") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ModelError(f"label file {path} cannot be read as UTF-8 text: {exc}",
                         "use a text file with one label per line (or \"N label\" lines)") from exc
    labels = parse_labels(text)
    if not labels:
        raise ModelError(f"label file {path} is empty", "use a text file with one label per line")
    return labels
