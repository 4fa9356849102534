"""OpenCV sources: a V4L2 device (/dev/video0 or an index), a video file, an RTSP / HTTP stream.

Frames leave here as RGB (OpenCV decodes to BGR). Devices and streams pace themselves (realtime); files
are paced to `fps` when throttle=True and run flat out when it is False (benchmarks).
"""

from __future__ import annotations

import logging
from pathlib import Path

import cv2
import numpy as np

from appliance.camera.base import Pacer, Source, bgr_to_rgb
from appliance.errors import SourceError

log = logging.getLogger(__name__)

STREAM_TIMEOUT_MS = 5000  # open and read timeouts for network streams, so a dead camera is noticed


def _release(cap: cv2.VideoCapture | None) -> None:
    if cap is not None:
        try:
            cap.release()
        except cv2.error as exc:
            log.debug("VideoCapture.release failed: %s", exc)


class DeviceSource(Source):
    """A local camera through OpenCV (V4L2 on Linux); asks for width x height at fps."""

    realtime = True

    def __init__(self, device: str | int, *, width: int = 640, height: int = 480, fps: float = 30.0) -> None:
        text = str(device)
        self.device: str | int = int(text) if text.isdigit() else text
        self.width, self.height, self.fps = width, height, fps
        self.name = f"device:{text}"
        self._cap: cv2.VideoCapture | None = None

    def open(self) -> None:
        if isinstance(self.device, str) and not Path(self.device).exists():
            raise SourceError(f"camera device {self.device} does not exist",
                              "plug the camera in (ls /dev/video*), or use --source demo")
        cap = cv2.VideoCapture(self.device, cv2.CAP_V4L2) if hasattr(cv2, "CAP_V4L2") else None
        if cap is None or not cap.isOpened():
            _release(cap)
            cap = cv2.VideoCapture(self.device)
        if not cap.isOpened():
            _release(cap)
            raise SourceError(f"camera device {self.device} cannot be opened",
                              "check it is a camera (v4l2-ctl --list-devices), that no other program uses "
                              "it, and that this user is in the 'video' group")
        cap.set(cv2.CAP_PROP_FOURCC, cv2.VideoWriter_fourcc(*"MJPG"))  # USB 2 webcams: 30 fps need MJPEG
        cap.set(cv2.CAP_PROP_FRAME_WIDTH, self.width)
        cap.set(cv2.CAP_PROP_FRAME_HEIGHT, self.height)
        cap.set(cv2.CAP_PROP_FPS, self.fps)
        cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # the newest frame, not a queue of old ones
        self._cap = cap

    def read(self) -> np.ndarray | None:
        if self._cap is None:
            raise SourceError(f"camera {self.device} is not open", "open the source first")
        ok, bgr = self._cap.read()
        if not ok or bgr is None:
            raise SourceError(f"camera {self.device} stopped delivering frames",
                              "check the cable and the kernel log (dmesg)")
        return bgr_to_rgb(bgr)

    def close(self) -> None:
        _release(self._cap)
        self._cap = None


class StreamSource(Source):
    """An RTSP / HTTP(S) video stream through OpenCV's FFmpeg backend.

    A live camera paces itself. A video *file* served over HTTP does not: FFmpeg would read it as fast as
    it decodes (hundreds of fps) and then end, over and over. Such a stream (it has a frame count) is paced
    to `fps` like a local file and, with loop, started again at its end instead of failing.
    """

    realtime = True

    def __init__(self, url: str, *, fps: float = 30.0, loop: bool = True, throttle: bool = True) -> None:
        self.url = url
        self.name = f"stream:{_hide_password(url)}"
        self.loop = loop
        self.finite = False        # a video file over HTTP, not a live stream
        self._pacer = Pacer(fps, throttle)
        self._cap: cv2.VideoCapture | None = None

    def open(self) -> None:
        params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, STREAM_TIMEOUT_MS, cv2.CAP_PROP_READ_TIMEOUT_MSEC,
                  STREAM_TIMEOUT_MS]
        cap = cv2.VideoCapture(self.url, cv2.CAP_FFMPEG, params)
        if not cap.isOpened():
            _release(cap)
            raise SourceError(f"stream {_hide_password(self.url)} cannot be opened",
                              "check the URL, the camera's power and network, and its user name / password")
        cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)
        self.finite = (cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0) > 0
        self.realtime = not self.finite
        self._pacer.reset()
        self._cap = cap

    def read(self) -> np.ndarray | None:
        if self._cap is None:
            raise SourceError(f"stream {self.name} is not open", "open the source first")
        ok, bgr = self._cap.read()
        if (not ok or bgr is None) and self.finite and self.loop:  # the end of a file: play it again
            self.close()
            self.open()
            ok, bgr = self._cap.read() if self._cap is not None else (False, None)
        if not ok or bgr is None:
            raise SourceError(f"stream {_hide_password(self.url)} stopped delivering frames",
                              "check the camera's power and network")
        if self.finite:
            self._pacer.wait()
        return bgr_to_rgb(bgr)

    def close(self) -> None:
        _release(self._cap)
        self._cap = None


class VideoFileSource(Source):
    """A video file, paced to fps when throttle=True; with loop it starts again at the end.

    Looping reopens the file by its path, so a file replaced on disk is picked up and a deleted one is
    reported (SourceError) rather than played from a stale handle forever.
    """

    realtime = False

    def __init__(self, path: Path | str, *, fps: float = 30.0, loop: bool = True, throttle: bool = True):
        self.path = Path(path)
        self.loop = loop
        self.name = f"file:{self.path}"
        self.ended = False
        self.frames_read = 0
        self._pacer = Pacer(fps, throttle)
        self._cap: cv2.VideoCapture | None = None

    def open(self) -> None:
        if not self.path.is_file():
            raise SourceError(f"video file {self.path} does not exist", "check the path")
        cap = cv2.VideoCapture(str(self.path))
        if not cap.isOpened():
            _release(cap)
            raise SourceError(f"{self.path} is not a video OpenCV can decode",
                              "use an MP4 / AVI / MKV file, or a folder of images")
        self._cap = cap
        self.ended = False
        self._pacer.reset()

    def read(self) -> np.ndarray | None:
        if self.ended:
            return None
        if self._cap is None:
            raise SourceError(f"video file {self.path} is not open", "open the source first")
        ok, bgr = self._cap.read()
        if not ok or bgr is None:
            if not self.loop:
                self.ended = True
                return None
            self.close()
            self.open()
            ok, bgr = self._cap.read() if self._cap is not None else (False, None)
            if not ok or bgr is None:
                raise SourceError(f"video file {self.path} has no readable frames",
                                  "check the file plays in a video player")
        self._pacer.wait()
        self.frames_read += 1
        return bgr_to_rgb(bgr)

    def close(self) -> None:
        _release(self._cap)
        self._cap = None


def _hide_password(url: str) -> str:
    """rtsp://user:secret@host/... -> rtsp://user:***@host/... for logs and the status page."""
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest.split("/", 1)[0]:
        return url
    credentials, host = rest.split("@", 1)
    user = credentials.split(":", 1)[0]
    return f"{scheme}://{user}:***@{host}"
