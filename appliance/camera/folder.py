"""A folder of images (or one image file) as a camera: a slideshow in file-name order.

Each picture is shown for `seconds_per_image` worth of frames (round(seconds * fps) frames), paced to fps
when throttle=True, so the same frames come out with or without throttling. Pictures keep their own size.
The folder is listed again at each pass, so added and removed files are picked up; an unreadable file is
skipped and counted in `skipped`, and logged once until the file changes (not on every pass). A pass
with no readable picture at all is a SourceError.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from appliance.camera.base import Pacer, Source
from appliance.errors import ImageError, SourceError
from appliance.vision.images import read_image

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm"})


def list_images(folder: Path) -> list[Path]:
    """Image files directly in `folder`, sorted by name (hidden files ignored)."""
    return sorted(p for p in folder.iterdir()
                  if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".") and p.is_file())


class FolderSource(Source):
    """Slideshow of the images in a folder; a single image file works too (shown forever)."""

    realtime = False

    def __init__(self, path: Path | str, *, fps: float = 30.0, loop: bool = True, throttle: bool = True,
                 seconds_per_image: float = 2.0) -> None:
        self.path = Path(path)
        self.loop = loop
        self.name = f"folder:{self.path}" if not self.path.is_file() else f"image:{self.path}"
        self.frames_per_image = max(1, round(seconds_per_image * fps))
        self.skipped = 0           # unreadable images met so far
        self.ended = False
        self.shown: list[Path] = []  # pictures shown, in order (for logs and tests)
        self._pacer = Pacer(fps, throttle)
        self._files: list[Path] = []
        self._index = -1
        self._current: np.ndarray | None = None
        self._remaining = 0
        self._warned: dict[Path, tuple[int, int] | None] = {}  # bad file -> (mtime, size) when reported

    def _list(self) -> list[Path]:
        if self.path.is_file():
            return [self.path]
        if not self.path.is_dir():
            raise SourceError(f"image folder {self.path} does not exist", "check the path")
        try:
            files = list_images(self.path)
        except OSError as exc:
            raise SourceError(f"image folder {self.path} cannot be listed: {exc}",
                              "check its permissions") from exc
        if not files:
            raise SourceError(f"image folder {self.path} has no images",
                              f"put JPEG / PNG / BMP files in it ({', '.join(sorted(IMAGE_SUFFIXES))})")
        return files

    def open(self) -> None:
        self._files = self._list()
        self._index = -1
        self._current = None
        self._remaining = 0
        self.ended = False
        self._pacer.reset()

    def read(self) -> np.ndarray | None:
        if self.ended:
            return None
        if (self._remaining <= 0 or self._current is None) and not self._advance():
            return None
        self._remaining -= 1
        self._pacer.wait()
        return self._current.copy()  # a copy: the consumer may draw on it

    def _advance(self) -> bool:
        """Load the next readable picture; False at the end without loop."""
        tried = 0
        while True:
            self._index += 1
            if self._index >= len(self._files):
                if not self.loop and self._current is not None:
                    self.ended = True
                    return False
                self._files = self._list()  # a new pass sees added / removed files
                self._index = 0
            if tried >= len(self._files):
                raise SourceError(f"none of the {len(self._files)} images in {self.path} can be read",
                                  "check the files are JPEG / PNG / BMP images and are readable")
            tried += 1
            path = self._files[self._index]
            try:
                self._current = read_image(path)
            except ImageError as exc:
                self.skipped += 1
                self._report(path, exc.problem)
                continue
            self._warned.pop(path, None)
            self.shown.append(path)
            del self.shown[:-1000]
            self._remaining = self.frames_per_image
            return True

    def _report(self, path: Path, problem: str) -> None:
        """Log a bad file once per version of it: the slideshow passes over it again and again."""
        try:
            st = path.stat()
            stamp: tuple[int, int] | None = (st.st_mtime_ns, st.st_size)
        except OSError:
            stamp = None
        if path in self._warned and self._warned[path] == stamp:
            return
        self._warned[path] = stamp
        if len(self._warned) > 10000:
            self._warned.clear()
        log.warning("slideshow: skipping %s (%s); reported again only if it changes", path, problem)

    def close(self) -> None:
        self._current = None
