"""ReconnectingSource under real faults: a source that raises, returns nothing, stalls or vanishes."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from appliance.camera.base import Source, SourceHealth, no_signal_frame
from appliance.camera.folder import FolderSource
from appliance.camera.opencv_source import VideoFileSource
from appliance.camera.reconnect import ReconnectingSource
from appliance.errors import SourceError

W, H = 160, 120


class FaultySource(Source):
    """A real folder slideshow with fault switches, like a camera that misbehaves on demand."""

    realtime = True

    def __init__(self, folder: Path) -> None:
        self.inner = FolderSource(folder, fps=100.0, seconds_per_image=0.01, throttle=False)
        self.name = "faulty"
        self.raise_on_read = False
        self.fail_open = False
        self.return_none = False
        self.block_s = 0.0   # each read blocks this long, then returns nothing (a hung driver)
        self.opens = 0
        self.closes = 0

    def open(self) -> None:
        self.opens += 1
        if self.fail_open:
            raise SourceError("camera unplugged", "plug it in")
        self.inner.open()

    def read(self) -> np.ndarray | None:
        if self.raise_on_read:
            raise SourceError("camera vanished", "plug it in")
        if self.block_s:
            time.sleep(self.block_s)
            return None
        if self.return_none:
            time.sleep(0.005)
            return None
        return self.inner.read()

    def close(self) -> None:
        self.closes += 1


@pytest.fixture
def photo_folder(images_dir: Path, tmp_path: Path) -> Path:
    folder = tmp_path / "photos"
    folder.mkdir()
    for name in ("cat.bmp", "owl.jpg"):
        shutil.copy(images_dir / name, folder / name)
    return folder


def wrap(source, **kw) -> ReconnectingSource:
    options = dict(width=W, height=H, stall_seconds=0.3, backoff_initial=0.05, backoff_max=0.2,
                   no_signal_interval=0.01)
    options.update(kw)
    return ReconnectingSource(source, **options)


def is_no_signal(frame: np.ndarray | None) -> bool:
    return frame is not None and frame.shape == (H, W, 3) and frame.mean() < 40


def read_until(source: ReconnectingSource, predicate, timeout: float = 5.0) -> list:
    frames = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        frames.append(source.read())
        if predicate(frames[-1]):
            return frames
    raise AssertionError(f"condition not met in {timeout} s (failures {source.failures}, "
                         f"reconnects {source.reconnects}, last error {source.last_error})")


def is_photo(frame) -> bool:
    return frame is not None and frame.shape[:2] != (H, W)


def test_no_signal_frame_is_dark_with_text() -> None:
    frame = no_signal_frame(320, 240, "device:/dev/video0")
    assert frame.shape == (240, 320, 3) and frame.dtype == np.uint8
    assert frame.mean() < 40 and frame.max() > 200          # dark, with bright letters drawn


def test_source_that_raises_is_reopened(photo_folder: Path) -> None:
    faulty = FaultySource(photo_folder)
    cam = wrap(faulty)
    cam.open()
    assert cam.connected and is_photo(cam.read())
    faulty.raise_on_read = True
    assert is_no_signal(cam.read()) and not cam.connected and cam.failures == 1
    health = cam.health()  # what the pipeline and the status read
    assert not health.connected and health.failures == 1 and "vanished" in health.last_error
    assert faulty.health() == SourceHealth()  # a bare source: connected while it answers
    frames = read_until(cam, lambda f: faulty.opens >= 3)   # keeps retrying, keeps serving frames
    assert all(is_no_signal(f) for f in frames) and cam.reconnects >= 2
    faulty.raise_on_read = False
    read_until(cam, is_photo)
    assert cam.connected and cam.last_error is None  # the status no longer shows the old fault
    assert cam.health() == SourceHealth(True, cam.reconnects, cam.failures, None)
    assert cam.last_fault and "vanished" in cam.last_fault


def test_source_that_never_opens_never_raises_and_backs_off(photo_folder: Path) -> None:
    faulty = FaultySource(photo_folder)
    faulty.fail_open = True
    cam = wrap(faulty, backoff_initial=0.02, backoff_max=0.08)
    cam.open()                                      # logged, not raised
    assert not cam.connected and cam.failures == 1
    start = time.monotonic()
    reads = 0
    while time.monotonic() - start < 1.0:
        assert is_no_signal(cam.read())
        reads += 1
    assert reads <= 1.0 / 0.01 + 10, "no-signal frames must be paced, not spun"
    # backoff doubles to its cap (0.08 s): about 1 / 0.08 attempts in a second, far fewer than reads
    assert 6 <= faulty.opens <= 20, faulty.opens
    faulty.fail_open = False
    read_until(cam, is_photo)
    assert cam.connected and cam.reconnects == 1


def test_source_returning_nothing_is_a_stall(photo_folder: Path) -> None:
    faulty = FaultySource(photo_folder)
    cam = wrap(faulty)
    cam.open()
    cam.read()
    faulty.return_none = True
    start = time.monotonic()
    frames = read_until(cam, is_no_signal)
    waited = time.monotonic() - start
    assert 0.25 <= waited < 3.0 and cam.failures == 1 and not cam.connected
    assert all(f is None for f in frames[:-1])     # None ("nothing yet") until the stall limit
    faulty.return_none = False
    read_until(cam, is_photo)
    assert cam.reconnects == 1 and faulty.closes >= 1


def test_blocking_reads_are_a_stall(photo_folder: Path) -> None:
    faulty = FaultySource(photo_folder)
    cam = wrap(faulty, stall_seconds=0.2)
    cam.open()
    faulty.block_s = 0.15
    read_until(cam, is_no_signal)
    assert cam.failures == 1
    faulty.block_s = 0.0
    read_until(cam, is_photo)
    assert cam.reconnects == 1


def test_folder_that_vanishes_and_comes_back(photo_folder: Path) -> None:
    cam = wrap(FolderSource(photo_folder, fps=100.0, seconds_per_image=0.02, throttle=False))
    cam.open()
    assert is_photo(cam.read())
    backup = photo_folder.with_name("backup")
    shutil.copytree(photo_folder, backup)
    shutil.rmtree(photo_folder)
    frames = read_until(cam, is_no_signal)
    assert all(is_photo(f) for f in frames[:-1])   # the picture in memory until it is needed again
    assert cam.failures >= 1 and not cam.connected
    for _ in range(20):
        assert is_no_signal(cam.read())            # still serving while it is gone
    shutil.copytree(backup, photo_folder)
    read_until(cam, is_photo)
    assert cam.connected and cam.reconnects >= 1


def test_video_file_deleted_while_playing_then_restored(images_dir: Path, tmp_path: Path) -> None:
    video = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (W * 2, H * 2))
    photo = cv2.resize(cv2.imread(str(images_dir / "parrot.jpg")), (W * 2, H * 2))
    for _ in range(5):
        writer.write(photo)
    writer.release()
    backup = tmp_path / "backup.avi"
    shutil.copy(video, backup)
    cam = wrap(VideoFileSource(video, loop=True, throttle=False))
    cam.open()
    assert is_photo(cam.read())
    video.unlink()
    read_until(cam, is_no_signal)                  # at the end of the pass the file is gone
    failures = cam.failures
    read_until(cam, lambda f: cam.failures > failures + 1)   # retried, still gone, still serving
    shutil.copy(backup, video)
    read_until(cam, is_photo)
    assert cam.connected and cam.reconnects >= 1


def test_end_of_a_non_looping_source_is_not_a_fault(photo_folder: Path) -> None:
    cam = wrap(FolderSource(photo_folder, fps=100.0, seconds_per_image=0.01, loop=False, throttle=False),
               stall_seconds=0.05)
    cam.open()
    frames = [cam.read() for _ in range(10)]
    assert sum(f is not None for f in frames) == 2 and cam.ended
    time.sleep(0.1)
    assert cam.read() is None and cam.failures == 0 and cam.connected


def test_close_stops_reading(photo_folder: Path) -> None:
    faulty = FaultySource(photo_folder)
    cam = wrap(faulty)
    cam.open()
    cam.close()
    assert cam.read() is None and not cam.connected and faulty.closes == 1


def test_close_while_a_read_is_stuck(photo_folder: Path) -> None:
    import threading

    faulty = FaultySource(photo_folder)
    cam = wrap(faulty, stall_seconds=5.0)
    cam.open()
    faulty.block_s = 0.6
    reader = threading.Thread(target=cam.read)
    reader.start()
    time.sleep(0.1)
    start = time.monotonic()
    cam.close(timeout=0.1)                          # does not wait for the stuck read
    assert time.monotonic() - start < 0.4 and faulty.closes == 0
    reader.join(5)
    assert faulty.closes == 1 and cam.read() is None
