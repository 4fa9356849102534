"""Label files in both formats, and photos read as RGB with clear errors."""

import cv2
import numpy as np
import pytest

from appliance.errors import ImageError, ModelError
from appliance.vision.images import read_image
from appliance.vision.labels import parse_labels, read_labels


def test_real_label_files(models_dir):
    imagenet = read_labels(models_dir / "imagenet_labels.txt")
    assert len(imagenet) == 1001 and imagenet[0] == "background" and imagenet[89] == "macaw"
    coco = read_labels(models_dir / "coco_labels.txt")
    assert coco[0] == "person" and coco[16] == "cat" and coco[37] == "kite" and coco[11] == "n/a"


def test_pair_and_plain_formats():
    assert parse_labels("0  person\n1  bicycle\n3 car\n") == {0: "person", 1: "bicycle", 3: "car"}
    assert parse_labels("1:apple\n2: pear\n") == {1: "apple", 2: "pear"}
    assert parse_labels("cat\n\ndog\n") == {0: "cat", 2: "dog"}
    # a label that merely starts with a digit does not turn a plain file into pairs
    assert parse_labels("3 inch screw\nbolt\n") == {0: "3 inch screw", 1: "bolt"}


def test_label_file_errors(tmp_path):
    with pytest.raises(ModelError, match="does not exist"):
        read_labels(tmp_path / "none.txt")
    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n")
    with pytest.raises(ModelError, match="empty"):
        read_labels(empty)
    binary = tmp_path / "bin.txt"
    binary.write_bytes(b"\xff\xfe\x00bad")
    with pytest.raises(ModelError, match="UTF-8"):
        read_labels(binary)


def test_read_image_is_rgb(images_dir, tmp_path):
    rgb = read_image(images_dir / "parrot.jpg")
    assert rgb.dtype == np.uint8 and rgb.ndim == 3 and rgb.shape[2] == 3
    bgr = cv2.imread(str(images_dir / "parrot.jpg"))
    assert np.array_equal(rgb, bgr[..., ::-1])
    red = np.zeros((8, 8, 3), np.uint8)
    red[..., 2] = 255  # BGR red
    cv2.imwrite(str(tmp_path / "red.png"), red)
    assert read_image(tmp_path / "red.png")[0, 0].tolist() == [255, 0, 0]


def test_unreadable_images(tmp_path):
    with pytest.raises(ImageError, match="does not exist"):
        read_image(tmp_path / "missing.jpg")
    text = tmp_path / "notes.jpg"
    text.write_text("not a picture")
    with pytest.raises(ImageError, match="not an image") as err:
        read_image(text)
    assert "JPEG" in err.value.fix
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(ImageError):
        read_image(tmp_path / "empty.png")
    with pytest.raises(ImageError, match="cannot be read"):
        read_image(tmp_path)
