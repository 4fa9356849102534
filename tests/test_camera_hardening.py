"""Camera fixes from the hardening issue: a video file over HTTP is paced like a local file and loops,
and a bad file in a slideshow folder is reported once per change, not on every pass."""

from __future__ import annotations

import functools
import http.server
import logging
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from appliance.camera import open_source
from appliance.camera.folder import FolderSource


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


@pytest.fixture()
def video_url(tmp_path):
    """A real 20-frame MJPEG AVI served by a real HTTP server on 127.0.0.1."""
    root = tmp_path / "www"
    root.mkdir()
    writer = cv2.VideoWriter(str(root / "clip.avi"), cv2.VideoWriter_fourcc(*"MJPG"), 20.0, (160, 120))
    assert writer.isOpened(), "OpenCV cannot write MJPG AVI files here"
    for i in range(20):
        writer.write(np.full((120, 160, 3), i * 10, np.uint8))
    writer.release()
    handler = functools.partial(_QuietHandler, directory=root)
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/clip.avi"
    httpd.shutdown()
    httpd.server_close()


def test_a_video_file_over_http_is_paced_and_loops(video_url):
    source = open_source(video_url, fps=20.0)
    source.open()
    try:
        assert source.finite  # a file, not a live camera
        started = time.monotonic()
        frames = [source.read() for _ in range(30)]  # past its 20 frames: it starts again, no error
        took = time.monotonic() - started
    finally:
        source.close()
    assert all(f is not None and f.shape == (120, 160, 3) for f in frames)
    assert took >= 1.2, f"30 frames at 20 fps came in {took:.2f} s (unpaced)"


def test_a_bad_file_in_a_folder_is_reported_once_per_change(tmp_path, images_dir, caplog):
    folder = tmp_path / "photos"
    folder.mkdir()
    (folder / "a.bmp").write_bytes((images_dir / "cat.bmp").read_bytes())
    bad = folder / "b.jpg"
    bad.write_bytes(b"not a picture")
    source = FolderSource(folder, fps=30.0, throttle=False, seconds_per_image=1 / 30)
    source.open()
    with caplog.at_level(logging.WARNING, logger="appliance.camera.folder"):
        for _ in range(10):  # ten passes over the folder
            source.read()
        assert source.skipped >= 5
        assert sum("b.jpg" in r.getMessage() for r in caplog.records) == 1
        bad.write_bytes(b"still not a picture, but changed")
        for _ in range(4):
            source.read()
        assert sum("b.jpg" in r.getMessage() for r in caplog.records) == 2
    source.close()


def test_folder_report_keeps_working_for_a_missing_file(tmp_path: Path):
    source = FolderSource(tmp_path, fps=30.0, throttle=False)
    source._report(tmp_path / "gone.jpg", "vanished")
    source._report(tmp_path / "gone.jpg", "vanished")
    assert list(source._warned) == [tmp_path / "gone.jpg"]
