"""Helpers for System tests: a camera folder whose pictures a test switches, and a quick config."""

from __future__ import annotations

import shutil
from pathlib import Path

from appliance.camera import ReconnectingSource, open_source
from appliance.config import Config, apply_overrides


class CameraFolder:
    """An image folder used as the camera; show() swaps what it "sees" (real photos, copied)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.inner = None

    def show(self, *photos: Path) -> None:
        for old in self.folder.iterdir():
            old.unlink()
        for photo in photos:
            shutil.copy(photo, self.folder / photo.name)

    def source(self, seconds_per_image: float = 0.3, fps: float = 30.0) -> ReconnectingSource:
        self.inner = open_source(str(self.folder), fps=fps, seconds_per_image=seconds_per_image)
        return ReconnectingSource(self.inner)

    def showing(self, photo: Path) -> bool:
        """True once the slideshow has moved on to `photo`."""
        return bool(self.inner and self.inner.shown and self.inner.shown[-1].name == photo.name)


def quick_config(tmp_path: Path, models_dir: Path, **flags) -> Config:
    """Defaults with the CPU, no web page or buttons, state in tmp_path, models from ../shared."""
    base = dict(device="cpu", data_dir=tmp_path / "data", models_dir=models_dir, web=False, controls=False,
                source=str(tmp_path / "camera"))
    base.update(flags)
    return apply_overrides(Config(), **base)
