"""Camera sources behind one small interface; every frame is an RGB uint8 array.

`open_source(spec)` picks the source for a spec (it does not open it: call `.open()`, or wrap it in
`ReconnectingSource`, which opens it and keeps it open).
"""

from __future__ import annotations

import re
from pathlib import Path

from appliance.camera.base import Source
from appliance.camera.folder import IMAGE_SUFFIXES
from appliance.camera.reconnect import ReconnectingSource
from appliance.errors import SourceError

__all__ = ["IMAGE_SUFFIXES", "ReconnectingSource", "Source", "open_source"]

SPEC_HELP = ('use "picamera", "demo", a device ("/dev/video0" or "0"), a video file, an image file, '
             'a folder of images, or an rtsp:// / http(s):// URL')


def open_source(spec: str, *, width: int = 640, height: int = 480, fps: float = 30.0, loop: bool = True,
                throttle: bool = True, seconds_per_image: float = 2.0) -> Source:
    """The Source for `spec` (see SPEC_HELP); SourceError with a fix when the spec names nothing usable.

    throttle=False (benchmarks) lets file, folder and demo sources go as fast as they can.
    seconds_per_image: how long a folder (or single image) slideshow shows each picture.
    """
    spec = str(spec).strip()
    if spec == "picamera":
        from appliance.camera.picamera import PicameraSource
        return PicameraSource(width=width, height=height, fps=fps)
    if spec == "demo":
        from appliance.camera.demo import DemoSource
        return DemoSource(width=width, height=height, fps=fps, throttle=throttle)
    if re.fullmatch(r"\d+", spec) or spec.startswith("/dev/video"):
        from appliance.camera.opencv_source import DeviceSource
        return DeviceSource(spec, width=width, height=height, fps=fps)
    if re.match(r"(?i)^(rtsps?|https?|rtmp)://", spec):
        from appliance.camera.opencv_source import StreamSource
        return StreamSource(spec, fps=fps, loop=loop, throttle=throttle)
    path = Path(spec).expanduser()
    if path.is_dir() or (path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES):
        from appliance.camera.folder import FolderSource
        return FolderSource(path, fps=fps, loop=loop, throttle=throttle, seconds_per_image=seconds_per_image)
    if path.is_file():
        from appliance.camera.opencv_source import VideoFileSource
        return VideoFileSource(path, fps=fps, loop=loop, throttle=throttle)
    if not spec:
        raise SourceError("the camera source is empty", SPEC_HELP)
    raise SourceError(f'camera source "{spec}" is not a known source, file or folder', SPEC_HELP)
