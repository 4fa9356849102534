"""Camera sources on real files: a video made from real photos, an image folder, the demo scene."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from appliance.camera import open_source
from appliance.camera.demo import SCENES, DemoSource, shapes_frame
from appliance.camera.folder import FolderSource
from appliance.camera.opencv_source import DeviceSource, StreamSource, VideoFileSource, _hide_password
from appliance.camera.picamera import PicameraSource, i420_to_rgb, lores_size
from appliance.errors import SourceError

PHOTOS = ("cat.bmp", "owl.jpg", "parrot.jpg")
SIZE = (160, 120)
REPEAT = 3  # frames per photo in the test video


def rgb_photo(images_dir: Path, name: str, size=SIZE) -> np.ndarray:
    return cv2.resize(cv2.cvtColor(cv2.imread(str(images_dir / name)), cv2.COLOR_BGR2RGB), size)


@pytest.fixture(scope="module")
def video(images_dir: Path, tmp_path_factory) -> Path:
    """A real MJPEG AVI file: each photo for REPEAT frames."""
    path = tmp_path_factory.mktemp("video") / "photos.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, SIZE)
    assert writer.isOpened(), "OpenCV cannot write MJPG AVI files here"
    for name in PHOTOS:
        bgr = cv2.cvtColor(rgb_photo(images_dir, name), cv2.COLOR_RGB2BGR)
        for _ in range(REPEAT):
            writer.write(bgr)
    writer.release()
    return path


def mean_abs(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


def test_video_file_frames_are_rgb_in_order(video: Path, images_dir: Path) -> None:
    source = VideoFileSource(video, loop=False, throttle=False)
    source.open()
    frames = []
    while (frame := source.read()) is not None:
        frames.append(frame)
    source.close()
    assert source.ended and len(frames) == len(PHOTOS) * REPEAT
    for i, name in enumerate(PHOTOS):
        expected = rgb_photo(images_dir, name)
        got = frames[i * REPEAT]
        assert got.shape == (SIZE[1], SIZE[0], 3) and got.dtype == np.uint8
        assert mean_abs(got, expected) < 8                       # JPEG-compressed, same picture
        assert mean_abs(got, expected) < mean_abs(got[..., ::-1], expected)  # and RGB, not BGR


def test_video_file_loops_and_is_paced(video: Path) -> None:
    fast = VideoFileSource(video, loop=True, throttle=False)
    fast.open()
    frames = [fast.read() for _ in range(len(PHOTOS) * REPEAT * 2 + 2)]
    fast.close()
    assert all(f is not None for f in frames) and not fast.ended
    assert mean_abs(frames[0], frames[len(PHOTOS) * REPEAT]) < 1  # the second pass starts at the start

    paced = VideoFileSource(video, fps=20.0, loop=True, throttle=True)
    paced.open()
    start = time.monotonic()
    for _ in range(11):
        paced.read()
    elapsed = time.monotonic() - start
    paced.close()
    assert elapsed >= 0.4, f"11 frames at 20 fps took {elapsed:.2f} s: not paced"


def test_open_source_picks_the_source(video: Path, images_dir: Path) -> None:
    assert isinstance(open_source("demo"), DemoSource)
    assert isinstance(open_source("0"), DeviceSource)
    assert isinstance(open_source("/dev/video7"), DeviceSource)
    assert isinstance(open_source("rtsp://user:pw@cam.local/stream"), StreamSource)
    assert isinstance(open_source(str(images_dir)), FolderSource)
    assert isinstance(open_source(str(images_dir / "cat.bmp")), FolderSource)
    assert isinstance(open_source(str(video)), VideoFileSource)
    assert isinstance(open_source("picamera"), PicameraSource)
    with pytest.raises(SourceError) as err:
        open_source("/no/such/thing.mp4")
    assert "demo" in err.value.fix


def test_missing_device_and_file_are_source_errors(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="does not exist"):
        DeviceSource("/dev/video99").open()
    with pytest.raises(SourceError, match="does not exist"):
        VideoFileSource(tmp_path / "gone.mp4").open()
    not_video = tmp_path / "notes.txt"
    not_video.write_text("not a video")
    with pytest.raises(SourceError, match="not a video"):
        VideoFileSource(not_video).open()


def test_folder_slideshow_order_rgb_and_skips_unreadable(images_dir: Path, tmp_path: Path) -> None:
    names = ["b_owl.jpg", "a_cat.bmp", "c_parrot.jpg"]
    for name in names:
        shutil.copy(images_dir / name.split("_", 1)[1], tmp_path / name)
    (tmp_path / "0_broken.jpg").write_bytes(b"this is not a JPEG")
    (tmp_path / "readme.txt").write_text("ignored")
    source = FolderSource(tmp_path, fps=20.0, seconds_per_image=0.1, loop=False, throttle=False)
    assert source.frames_per_image == 2
    source.open()
    frames = []
    while (frame := source.read()) is not None:
        frames.append(frame)
    assert source.ended and source.skipped == 1
    assert [p.name for p in source.shown] == sorted(names)
    assert len(frames) == 2 * len(names)
    for i, name in enumerate(sorted(names)):
        expected = cv2.cvtColor(cv2.imread(str(tmp_path / name)), cv2.COLOR_BGR2RGB)
        assert np.array_equal(frames[2 * i], expected) and np.array_equal(frames[2 * i + 1], expected)


def test_folder_loops_and_is_paced(images_dir: Path, tmp_path: Path) -> None:
    for name in PHOTOS[:2]:
        shutil.copy(images_dir / name, tmp_path / name)
    source = FolderSource(tmp_path, fps=25.0, seconds_per_image=0.04, loop=True, throttle=True)
    source.open()
    start = time.monotonic()
    frames = [source.read() for _ in range(13)]
    elapsed = time.monotonic() - start
    assert all(f is not None for f in frames)
    assert [p.name for p in source.shown] == ["cat.bmp", "owl.jpg"] * 6 + ["cat.bmp"]
    assert elapsed >= 0.35, f"13 frames at 25 fps took {elapsed:.2f} s: not paced"


def test_folder_errors(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="no images"):
        FolderSource(tmp_path).open()
    with pytest.raises(SourceError, match="does not exist"):
        FolderSource(tmp_path / "missing").open()
    (tmp_path / "bad.png").write_bytes(b"garbage")
    source = FolderSource(tmp_path, throttle=False)
    source.open()
    with pytest.raises(SourceError, match="can be read"):
        source.read()


def test_demo_photos_change_and_have_the_right_size(images_dir: Path) -> None:
    source = DemoSource(width=320, height=240, fps=10.0, seconds_per_scene=1.0, throttle=False,
                        images_dir=images_dir)
    source.open()
    assert source.photos, "the demo should find the photos"
    frames = [source.read() for _ in range(21)]
    assert all(f.shape == (240, 320, 3) and f.dtype == np.uint8 for f in frames)
    assert mean_abs(frames[0], frames[5]) > 1          # slow pan / zoom inside a scene
    assert mean_abs(frames[0], frames[10]) > 20        # the next photo
    assert mean_abs(frames[0], frames[20]) > 20


def test_demo_shows_the_packaged_photos_on_every_machine() -> None:
    """No folder given: the photos inside the package, whatever lies beside the checkout."""
    from appliance.assets import FOLDER, demo_photos

    photos = demo_photos()
    assert [p.name for p in photos] == ["cat.jpg", "owl.jpg", "parrot.jpg", "sunflower.jpg"]
    attribution = (FOLDER / "ATTRIBUTION.md").read_text()
    for path in photos:
        assert path.stat().st_size <= 60_000, path
        assert f"`{path.name}`" in attribution, f"{path.name} has no attribution"
    source = DemoSource(width=320, height=240, fps=10.0, seconds_per_scene=1.0, throttle=False)
    source.open()
    assert [name for name, _ in source.photos] == [p.name for p in photos]
    assert source.scene() == {"showing": "cat.jpg", "seconds_left": 1.0, "held": False}
    for _ in range(13):
        source.read()
    assert source.scene() == {"showing": "owl.jpg", "seconds_left": 0.7, "held": False}


def test_demo_holds_its_picture_still_while_held() -> None:
    source = DemoSource(width=320, height=240, fps=10.0, seconds_per_scene=1.0, throttle=False)
    source.open()
    source.read()
    source.read()
    source.hold(True)
    held = [source.read() for _ in range(30)]  # 3 s of frames: three scene changes had it not held
    assert all(np.array_equal(held[0], f) for f in held)
    assert source.scene()["showing"] == "cat.jpg" and source.scene()["held"]
    source.hold(False)
    moving = [source.read() for _ in range(10)]
    assert mean_abs(held[0], moving[2]) > 0.5          # the pan goes on ...
    assert mean_abs(held[0], moving[-1]) > 20          # ... and the next photo comes
    assert source.scene()["showing"] == "owl.jpg"


def test_demo_shapes_without_photos_and_pacing(tmp_path: Path) -> None:
    source = DemoSource(width=200, height=150, fps=20.0, seconds_per_scene=0.5, throttle=True, photos=False)
    source.open()
    assert not source.photos
    start = time.monotonic()
    frames = [source.read() for _ in range(10 * len(SCENES))]
    elapsed = time.monotonic() - start
    assert elapsed >= 1.5, f"40 frames at 20 fps took {elapsed:.2f} s: not paced"
    assert all(f.shape == (150, 200, 3) for f in frames)
    assert mean_abs(frames[0], frames[3]) > 0.5        # shapes move
    means = [frames[10 * i + 5].reshape(-1, 3).mean(0) for i in range(len(SCENES))]
    for i in range(len(SCENES)):
        for j in range(i + 1, len(SCENES)):
            assert np.abs(means[i] - means[j]).sum() > 40, (SCENES[i][0], SCENES[j][0])


def test_demo_shape_scenes_are_distinct_to_the_embedder(models_dir: Path) -> None:
    from appliance.vision.embed import Embedder
    from appliance.vision.model import load_model

    embedder = Embedder(load_model(models_dir / "mobilenet_v1_1.0_224_quant_embedding_extractor.tflite",
                                   device="cpu"))
    same, other = [], []
    vectors = {i: [embedder.embed(shapes_frame(scene, 320, 240, t)) for t in (0.0, 1.5)]
               for i, scene in enumerate(SCENES)}
    for i in vectors:
        same.append(float(vectors[i][0] @ vectors[i][1]))
        other += [float(vectors[i][0] @ vectors[j][1]) for j in vectors if j != i]
    assert min(same) > max(other), (same, other)


def test_i420_to_rgb_with_and_without_stride_padding(images_dir: Path) -> None:
    rgb = rgb_photo(images_dir, "parrot.jpg", (320, 240))
    yuv = cv2.cvtColor(rgb, cv2.COLOR_RGB2YUV_I420)            # (360, 320)
    assert mean_abs(i420_to_rgb(yuv, 320, 240), rgb) < 6
    # the same picture in a 384-byte stride buffer, as libcamera may deliver it
    y, u, v = yuv[:240], yuv[240:300].reshape(-1), yuv[300:].reshape(-1)
    padded = np.zeros((360, 384), np.uint8)
    padded[:240, :320] = y
    u_rows = np.zeros((120, 192), np.uint8)
    v_rows = np.zeros((120, 192), np.uint8)
    u_rows[:, :160], v_rows[:, :160] = u.reshape(120, 160), v.reshape(120, 160)
    padded[240:] = np.concatenate([u_rows.reshape(-1), v_rows.reshape(-1)]).reshape(120, 384)
    assert mean_abs(i420_to_rgb(padded, 320, 240), rgb) < 6
    assert lores_size(640, 480) == (320, 240)
    assert lores_size(1920, 1080) == (320, 180)


def test_picamera_needs_picamera2() -> None:
    try:
        import picamera2  # noqa: F401
    except ImportError:
        with pytest.raises(SourceError) as err:
            PicameraSource().open()
        assert "python3-picamera2" in err.value.fix and "--system-site-packages" in err.value.fix
        pytest.skip("picamera2 is not installed (Raspberry Pi OS only): no Pi camera to capture from here")
    source = PicameraSource(width=640, height=480)
    source.open()
    try:
        frame = source.read()
        assert frame.shape == (480, 640, 3) and source.read_lores().shape == (240, 320, 3)
    finally:
        source.close()


def test_stream_password_is_hidden() -> None:
    assert _hide_password("rtsp://admin:secret@10.0.0.5:554/s1") == "rtsp://admin:***@10.0.0.5:554/s1"
    assert _hide_password("http://cam.local/mjpg") == "http://cam.local/mjpg"
    assert "secret" not in StreamSource("rtsp://admin:secret@10.0.0.5/s1").name
