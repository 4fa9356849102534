"""RGB frame -> the model's input tensor, written in place: resize or letterbox, then quantise.

Models here expect RGB; the pixel transform is derived from the input tensor's own quantisation so that
uint8 models with scale 1/128 zp 128 and TF2 models with zp 127 (and float or int8 models) all get the
values they were trained on.
"""

from collections import namedtuple

import cv2
import numpy as np

from appliance.errors import ImageError

# The real input most image models are trained on: (pixel - 127.5) / 127.5, i.e. [-1, 1].
MEAN = 127.5
STD = 127.5
COPY_TOLERANCE = 1.5  # quantised levels; within this a plain pixel copy is what the model expects

PixelMap = namedtuple("PixelMap", "copy gain offset dtype")  # value = pixel * gain + offset, unless copy


def pixel_map(detail: dict, mean: float = MEAN, std: float = STD) -> PixelMap:
    """How a 0..255 pixel becomes an input value for this tensor (a pure function of its details)."""
    dtype = np.dtype(detail["dtype"])
    scale, zero_point = detail.get("quantization", (0.0, 0))
    if dtype.kind == "f" or not scale:
        return PixelMap(False, 1.0 / std, -mean / std, dtype)
    gain = 1.0 / (std * scale)
    offset = zero_point - mean * gain
    if dtype == np.uint8:
        pixels = np.array([0.0, 255.0])
        if np.max(np.abs(pixels * gain + offset - pixels)) <= COPY_TOLERANCE:
            return PixelMap(True, 1.0, 0.0, dtype)
    return PixelMap(False, gain, offset, dtype)


def as_rgb(image: np.ndarray) -> np.ndarray:
    """Accept (H, W, 3) uint8 RGB, or grayscale (H, W) / (H, W, 1); anything else is an ImageError."""
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8:
        raise ImageError("a frame must be a numpy uint8 array", "convert it with np.asarray(img, np.uint8)")
    if image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 1):
        return cv2.cvtColor(image.reshape(image.shape[:2]), cv2.COLOR_GRAY2RGB)
    if image.ndim != 3 or image.shape[2] != 3 or image.shape[0] < 1 or image.shape[1] < 1:
        raise ImageError(f"a frame must be RGB of shape (H, W, 3), got {image.shape}",
                         "drop the alpha channel / convert the image to RGB first")
    return np.ascontiguousarray(image)  # OpenCV refuses views such as bgr[..., ::-1]


def _convert(pixels: np.ndarray, pmap: PixelMap) -> np.ndarray:
    if pmap.copy:
        return pixels
    values = pixels.astype(np.float32) * np.float32(pmap.gain) + np.float32(pmap.offset)
    if pmap.dtype.kind in "iu":
        info = np.iinfo(pmap.dtype)
        values = np.clip(np.rint(values), info.min, info.max)
    return values.astype(pmap.dtype)


def _area_steps(rgb: np.ndarray, kx: int, ky: int) -> np.ndarray:
    """Average kx x ky blocks (the image is a whole multiple of them). OpenCV's INTER_AREA is quick
    only for 2x2, so: 2x2 steps while both factors are even; then, for powers of two, halvings of one
    axis as two-tap INTER_LINEAR (the same mean, SIMD too); else one general INTER_AREA for the rest."""
    while kx % 2 == 0 and ky % 2 == 0:
        rgb = cv2.resize(rgb, (rgb.shape[1] // 2, rgb.shape[0] // 2), interpolation=cv2.INTER_AREA)
        kx, ky = kx // 2, ky // 2
    if kx & (kx - 1) or ky & (ky - 1):  # an odd factor above 1 is left
        return cv2.resize(rgb, (rgb.shape[1] // kx, rgb.shape[0] // ky), interpolation=cv2.INTER_AREA)
    while kx > 1 or ky > 1:
        fx, fy = min(kx, 2), min(ky, 2)
        rgb = cv2.resize(rgb, (rgb.shape[1] // fx, rgb.shape[0] // fy), interpolation=cv2.INTER_LINEAR)
        kx, ky = kx // fx, ky // fy
    return rgb


def shrink(rgb: np.ndarray, size: tuple[int, int]) -> tuple[np.ndarray, tuple[int, int]]:
    """Resize to size (w, h) with area averaging, fast: averaging by whole factors per axis (see
    _area_steps), then INTER_LINEAR for the remaining factor below 2. Within about one grey level of a
    full INTER_AREA at a fraction of its cost. The whole-factor step may drop up to factor-1 pixels at the
    right and bottom edges; returns the (w, h) of the part of the image that was used."""
    h, w = rgb.shape[:2]
    kx, ky = max(1, w // size[0]), max(1, h // size[1])
    if kx > 1 or ky > 1:
        w, h = w - w % kx, h - h % ky
        rgb = _area_steps(rgb[:h, :w], kx, ky)
    if (rgb.shape[1], rgb.shape[0]) != tuple(size):
        rgb = cv2.resize(rgb, tuple(size), interpolation=cv2.INTER_LINEAR)
    return rgb, (w, h)


def letterbox_size(image_size: tuple[int, int], input_size: tuple[int, int]) -> tuple[int, int]:
    """Largest (w, h) that fits in input_size keeping the aspect ratio of image_size (w, h)."""
    (iw, ih), (w, h) = image_size, input_size
    ratio = min(w / iw, h / ih)
    return max(1, min(w, int(iw * ratio))), max(1, min(h, int(ih * ratio)))


def set_input(model, rgb: np.ndarray, *, letterbox: bool = False) -> tuple[float, float]:
    """Write `rgb` into the model's input tensor; returns the (x, y) scale from image to tensor pixels.

    With letterbox the image keeps its aspect ratio in the top-left corner and the rest is black, as
    pycoral's set_resized_input does; without it the image is stretched to the input size.
    """
    rgb = as_rgb(rgb)
    ih, iw = rgb.shape[:2]
    width, height = model.input_size
    pmap = pixel_map(model.input_detail)
    nw, nh = letterbox_size((iw, ih), (width, height)) if letterbox else (width, height)
    resized, (iw, ih) = shrink(rgb, (nw, nh))
    view = model.input_view()
    if (nw, nh) != (width, height):  # black only the border (a (1, 1, 3) broadcast is slow per pixel)
        black = _convert(np.zeros((1, 1, 3), np.uint8), pmap).reshape(-1)
        for border in (view[nh:], view[:nh, nw:]):
            if np.all(black == black[0]):
                border.fill(black[0])
            else:
                border[:] = black
    view[:nh, :nw] = _convert(resized, pmap)
    del view  # the interpreter refuses to invoke while a view of its buffer is alive
    return nw / iw, nh / ih
