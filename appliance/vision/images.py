"""Reading photos from disk as RGB arrays (OpenCV decodes to BGR; the conversion happens here, once)."""

from pathlib import Path

import cv2
import numpy as np

from appliance.errors import ImageError


def read_image(path) -> np.ndarray:
    """An RGB uint8 (H, W, 3) array; ImageError when the file is missing or not a readable image."""
    path = Path(path)
    try:
        data = np.fromfile(path, dtype=np.uint8)  # imdecode also copes with non-ASCII paths
    except FileNotFoundError as exc:
        raise ImageError(f"image {path} does not exist", "check the path") from exc
    except (IsADirectoryError, PermissionError, OSError) as exc:
        raise ImageError(f"image {path} cannot be read: {exc.strerror or exc}",
                         "check the path and its permissions") from exc
    bgr = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if bgr is None:
        raise ImageError(f"{path} is not an image OpenCV can decode",
                         "use a JPEG, PNG, BMP, TIFF or WebP file")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
