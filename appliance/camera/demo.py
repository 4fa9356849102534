"""The built-in demo camera: needs no camera, no file and no network.

What it shows:
- when photos are found (`../shared/images` beside the checkout, or `images_dir`): each photo for
  `seconds_per_scene` (4 s by default) with a slow pan and zoom, in file-name order, looping. These are
  real pictures (a cat, a parrot, an owl, ...), so the base classifier names them and teaching one and
  then another works as with a camera.
- otherwise a synthetic scene of moving coloured shapes that changes every `seconds_per_scene`: red
  circles on blue, yellow triangles on green, white squares on purple, cyan stripes on dark orange. The
  scenes differ in colour and shape, so the embedder tells them apart and each can be taught as a class.

Time is counted in frames (frame / fps), so throttle=False (benchmarks) gives the same pictures faster.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import cv2
import numpy as np

from appliance.camera.base import Pacer, cover
from appliance.camera.folder import list_images
from appliance.errors import ImageError
from appliance.paths import shared_models_dir
from appliance.vision.images import read_image

log = logging.getLogger(__name__)

# (name, background RGB, shape colour RGB, shape kind)
SCENES = (
    ("red circles", (30, 60, 170), (230, 40, 40), "circle"),
    ("yellow triangles", (20, 110, 40), (250, 220, 40), "triangle"),
    ("white squares", (100, 30, 120), (245, 245, 245), "square"),
    ("cyan stripes", (150, 70, 10), (40, 220, 230), "stripe"),
)
PAN = 1.25  # photos are prepared this much larger than the frame, to pan and zoom across


def default_images_dir() -> Path | None:
    """`../shared/images` beside the checkout, when present."""
    models = shared_models_dir()
    candidate = models.parent / "images" if models is not None else None
    return candidate if candidate is not None and candidate.is_dir() else None


class DemoSource:
    """Photos with slow pan / zoom when any are found, else moving coloured shapes."""

    realtime = False
    name = "demo"

    def __init__(self, *, width: int = 640, height: int = 480, fps: float = 30.0, throttle: bool = True,
                 seconds_per_scene: float = 4.0, images_dir: Path | str | None = None,
                 photos: bool = True) -> None:
        self.width, self.height, self.fps = width, height, fps
        self.frames_per_scene = max(1, round(seconds_per_scene * fps))
        self.images_dir = Path(images_dir) if images_dir else (default_images_dir() if photos else None)
        self.use_photos = photos
        self.frame_index = 0
        self.photos: list[tuple[str, np.ndarray]] = []
        self._pacer = Pacer(fps, throttle)

    @property
    def showing(self) -> str:
        """What the current frame shows: a photo's file name or a shape scene's name."""
        scene = self.frame_index // self.frames_per_scene
        if self.photos:
            return self.photos[scene % len(self.photos)][0]
        return SCENES[scene % len(SCENES)][0]

    def open(self) -> None:
        self.frame_index = 0
        self._pacer.reset()
        self.photos = self._load_photos() if self.use_photos and self.images_dir else []
        log.info("demo source: %s", f"{len(self.photos)} photos from {self.images_dir}" if self.photos
                 else "moving coloured shapes (no photos found)")

    def _load_photos(self) -> list[tuple[str, np.ndarray]]:
        size = (round(self.width * PAN), round(self.height * PAN))
        photos = []
        for path in list_images(self.images_dir):
            try:
                photos.append((path.name, cover(read_image(path), *size)))
            except ImageError as exc:
                log.warning("demo source: skipping %s (%s)", path, exc.problem)
        return photos

    def read(self) -> np.ndarray:
        scene, step = divmod(self.frame_index, self.frames_per_scene)
        progress = step / self.frames_per_scene
        if self.photos:
            frame = self._photo_frame(self.photos[scene % len(self.photos)][1], progress)
        else:
            seconds = self.frame_index / self.fps
            frame = shapes_frame(SCENES[scene % len(SCENES)], self.width, self.height, seconds)
        self.frame_index += 1
        self._pacer.wait()
        return frame

    def _photo_frame(self, big: np.ndarray, progress: float) -> np.ndarray:
        """A window moving left to right and slowly zooming in across the enlarged photo."""
        big_h, big_w = big.shape[:2]
        zoom = 1.0 - 0.12 * progress                       # window shrinks: zooms in by ~12 %
        win_w, win_h = round(big_w / PAN * zoom * 1.1), round(big_h / PAN * zoom * 1.1)
        win_w, win_h = min(win_w, big_w), min(win_h, big_h)
        x = round((big_w - win_w) * progress)
        y = round((big_h - win_h) * (0.5 + 0.3 * math.sin(progress * math.pi)) / 1.3)
        crop = big[y:y + win_h, x:x + win_w]
        return cv2.resize(crop, (self.width, self.height), interpolation=cv2.INTER_AREA)

    def close(self) -> None:
        self.photos = []


def shapes_frame(scene: tuple, width: int, height: int, t: float) -> np.ndarray:
    """One frame of a shape scene at time t (seconds): five shapes drifting on a shaded background."""
    name, background, colour, kind = scene
    img = np.empty((height, width, 3), np.uint8)
    shade = np.linspace(0.75, 1.15, height, dtype=np.float32)[:, None, None]
    img[:] = np.clip(np.array(background, np.float32)[None, None, :] * shade, 0, 255).astype(np.uint8)
    size = max(8, min(width, height) // 7)
    for i in range(5):
        phase = i * 1.3
        cx = int(width * (0.5 + 0.38 * math.sin(0.7 * t + phase)))
        cy = int(height * (0.5 + 0.35 * math.cos(0.9 * t + phase * 1.7)))
        tint = tuple(int(c * (0.8 + 0.05 * i)) for c in colour)
        if kind == "circle":
            cv2.circle(img, (cx, cy), size, tint, -1, cv2.LINE_AA)
        elif kind == "square":
            cv2.rectangle(img, (cx - size, cy - size), (cx + size, cy + size), tint, -1)
        elif kind == "triangle":
            pts = np.array([(cx, cy - size), (cx - size, cy + size), (cx + size, cy + size)], np.int32)
            cv2.fillPoly(img, [pts], tint, cv2.LINE_AA)
        else:  # stripe
            cv2.line(img, (cx - 2 * size, cy - size), (cx + 2 * size, cy + size), tint, max(4, size // 3),
                     cv2.LINE_AA)
    cv2.putText(img, f"demo: {name}", (10, height - 12), cv2.FONT_HERSHEY_SIMPLEX, max(0.4, width / 1100),
                (255, 255, 255), 1, cv2.LINE_AA)
    return img
