"""The Raspberry Pi camera through picamera2 (Raspberry Pi OS only; imported when opened).

Two streams from one capture: "main" (width x height, for display) and "lores" (a smaller one, for
inference: the models take 224x224 or 300x300, so a 320x240 lores saves the ISP doing the resize on the
CPU). read() returns the main frame; read_lores() returns the lores frame of the same capture.

Colour order: picamera2's "RGB888" is BGR in memory (libcamera names formats by their little-endian
word), so main is flipped to RGB here; lores is YUV420 (I420) and converted with OpenCV.
"""

from __future__ import annotations

import logging

import cv2
import numpy as np

from appliance.camera.base import Source
from appliance.errors import SourceError

log = logging.getLogger(__name__)

PICAMERA2_FIX = ("picamera2 comes with Raspberry Pi OS: sudo apt install python3-picamera2, and create the "
                 "virtual environment with --system-site-packages so it can see it; on other machines use "
                 "--source demo, a /dev/videoN device, a file or a folder")


def lores_size(width: int, height: int, longest: int = 320) -> tuple[int, int]:
    """A lores size no larger than main, same aspect, even and 32-pixel-wide aligned (ISP constraint)."""
    scale = min(1.0, longest / max(width, height))
    w = max(64, int(width * scale) // 32 * 32)
    h = max(48, int(height * scale) // 2 * 2)
    return min(w, width), min(h, height)


def i420_to_rgb(yuv: np.ndarray, width: int, height: int) -> np.ndarray:
    """A lores YUV420 buffer ((height * 3 / 2, stride) uint8, stride >= width) as RGB (height, width, 3).

    With a padded stride the U and V planes are (height / 2) rows of stride / 2 bytes each, packed two
    per buffer row, so the padding is dropped plane by plane before OpenCV sees an I420 image.
    """
    stride = yuv.shape[1]
    if stride != width:
        y = yuv[:height, :width]
        chroma = yuv[height:].reshape(-1)
        plane = (height // 2) * (stride // 2)
        u = chroma[:plane].reshape(height // 2, stride // 2)[:, :width // 2]
        v = chroma[plane:2 * plane].reshape(height // 2, stride // 2)[:, :width // 2]
        yuv = np.concatenate([y.reshape(-1), u.reshape(-1), v.reshape(-1)]).reshape(height * 3 // 2, width)
    return cv2.cvtColor(np.ascontiguousarray(yuv), cv2.COLOR_YUV2RGB_I420)


class PicameraSource(Source):
    realtime = True
    name = "picamera"

    def __init__(self, *, width: int = 640, height: int = 480, fps: float = 30.0, camera_num: int = 0):
        self.width, self.height, self.fps = width, height, fps
        self.camera_num = camera_num
        self.lores_width, self.lores_height = lores_size(width, height)
        self._camera = None
        self._lores: np.ndarray | None = None

    def open(self) -> None:
        try:
            from picamera2 import Picamera2  # Raspberry Pi OS only
        except ImportError as exc:
            raise SourceError(f"the Raspberry Pi camera library picamera2 is not installed ({exc})",
                              PICAMERA2_FIX) from exc
        try:
            if not Picamera2.global_camera_info():
                raise SourceError("no Raspberry Pi camera was found",
                                  "check the ribbon cable (contacts facing the board) and run rpicam-hello")
            camera = Picamera2(self.camera_num)
            config = camera.create_video_configuration(
                main={"size": (self.width, self.height), "format": "RGB888"},
                lores={"size": (self.lores_width, self.lores_height), "format": "YUV420"},
                controls={"FrameRate": float(self.fps)},
                buffer_count=4,
            )
            camera.configure(config)
            camera.start()
        except SourceError:
            raise
        except Exception as exc:  # picamera2 raises RuntimeError / IndexError for a busy or absent camera
            raise SourceError(f"the Raspberry Pi camera cannot be started: {exc}",
                              "make sure no other program uses it (rpicam-hello, another appliance) "
                              "and that the camera is enabled") from exc
        self._camera = camera

    def read(self) -> np.ndarray | None:
        if self._camera is None:
            raise SourceError("the Raspberry Pi camera is not open", "open the source first")
        try:
            request = self._camera.capture_request()
            try:
                main = request.make_array("main")
                lores = request.make_array("lores")
            finally:
                request.release()
        except Exception as exc:
            raise SourceError(f"the Raspberry Pi camera stopped delivering frames: {exc}",
                              "check the ribbon cable and the kernel log (dmesg)") from exc
        self._lores = i420_to_rgb(lores, self.lores_width, self.lores_height)
        return np.ascontiguousarray(main[:, :, 2::-1])  # BGR in memory -> RGB (drops padding channel)

    def read_lores(self) -> np.ndarray | None:
        """The lores (inference-sized) RGB frame captured with the latest read(), or None before one."""
        return self._lores

    def close(self) -> None:
        camera, self._camera = self._camera, None
        if camera is not None:
            try:
                camera.stop()
            finally:
                camera.close()
