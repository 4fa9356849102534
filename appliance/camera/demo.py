"""The built-in demo camera: needs no camera, no file and no network.

What it shows:
- by default the photos shipped in the package (appliance/assets: a cat, an owl, a parrot, a sunflower;
  see ATTRIBUTION.md there), so the demo is the same on every machine; or the photos of `images_dir`.
  Each photo shows for `seconds_per_scene` (4 s by default) with a slow pan, in file-name order, looping.
  They are real pictures, so the base classifier names them and teaching one and then another works as
  with a camera.
- with photos=False, a synthetic scene of moving coloured shapes that changes every `seconds_per_scene`:
  red circles on blue, yellow triangles on green, white squares on purple, cyan stripes on dark orange.
  The scenes differ in colour and shape, so the embedder tells them apart and each can be taught.

While a teaching burst records, `hold(True)` keeps the current picture still (the burst cannot run past
a photo change); `scene()` says what shows and for how long, for the page.

A photo frame is a slice of the photo prepared once at open (a pan is a moving window, no resize per
frame), so capture costs well under a millisecond. Time is counted in frames (frame / fps), so
throttle=False (benchmarks) gives the same pictures faster.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import cv2
import numpy as np

from appliance.assets import demo_photos
from appliance.camera.base import Pacer, Source, cover
from appliance.camera.folder import list_images
from appliance.errors import ImageError
from appliance.vision.images import read_image

log = logging.getLogger(__name__)

# (name, background RGB, shape colour RGB, shape kind)
SCENES = (
    ("red circles", (30, 60, 170), (230, 40, 40), "circle"),
    ("yellow triangles", (20, 110, 40), (250, 220, 40), "triangle"),
    ("white squares", (100, 30, 120), (245, 245, 245), "square"),
    ("cyan stripes", (150, 70, 10), (40, 220, 230), "stripe"),
)
PAN = 1.2  # photos are prepared this much larger than the frame, to pan across


class DemoSource(Source):
    """Photos with a slow pan (the package's own, or images_dir's), or moving coloured shapes."""

    realtime = False
    name = "demo"

    def __init__(self, *, width: int = 640, height: int = 480, fps: float = 30.0, throttle: bool = True,
                 seconds_per_scene: float = 4.0, images_dir: Path | str | None = None,
                 photos: bool = True, holds: bool = True) -> None:
        self.width, self.height, self.fps = width, height, fps
        self.frames_per_scene = max(1, round(seconds_per_scene * fps))
        self.images_dir = Path(images_dir) if images_dir else None
        self.use_photos = photos
        self.frame_index = 0
        self.photos: list[tuple[str, np.ndarray]] = []
        self._pacer = Pacer(fps, throttle)
        self.holds = holds  # False: the view moves on even during a burst, as a camera's may (page test)
        self._held = False

    @property
    def showing(self) -> str:
        """What the current frame shows: a photo's file name or a shape scene's name."""
        scene = self.frame_index // self.frames_per_scene
        if self.photos:
            return self.photos[scene % len(self.photos)][0]
        return SCENES[scene % len(SCENES)][0]

    def hold(self, held: bool) -> None:
        """Keep showing the current picture (True) while a teaching burst records; False moves on."""
        self._held = bool(held) and self.holds

    def scene(self) -> dict:
        """What shows now, for how many more seconds, and whether it is held for a teaching burst."""
        step = self.frame_index % self.frames_per_scene
        return {"showing": self.showing, "seconds_left": round((self.frames_per_scene - step) / self.fps, 1),
                "held": self._held}

    def open(self) -> None:
        self.frame_index = 0
        self._pacer.reset()
        self.photos = self._load_photos() if self.use_photos else []
        where = self.images_dir or "the package"
        log.info("demo source: %s", f"{len(self.photos)} photos from {where}" if self.photos
                 else "moving coloured shapes")

    def _load_photos(self) -> list[tuple[str, np.ndarray]]:
        size = (round(self.width * PAN), round(self.height * PAN))
        photos = []
        for path in list_images(self.images_dir) if self.images_dir else demo_photos():
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
        if not self._held:  # held: the same picture again (time stands still for the demo)
            self.frame_index += 1
        self._pacer.wait()
        return frame

    def _photo_frame(self, big: np.ndarray, progress: float) -> np.ndarray:
        """A frame-sized window moving left to right (and gently up and down) across the enlarged photo."""
        big_h, big_w = big.shape[:2]
        x = round((big_w - self.width) * progress)
        y = round((big_h - self.height) * (0.5 + 0.4 * math.sin(progress * 2 * math.pi)))
        return big[y:y + self.height, x:x + self.width].copy()

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
