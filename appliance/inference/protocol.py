"""What the appliance and its inference worker say to each other, and the shared-memory slot layout.

Frames go in and outputs come out through memory both processes map (one file per slot, unlinked as
soon as both have it open); the pipe carries only small tuples: ("run", request, model, slot) one way,
("done", request, invoke_ms) or ("fail", request, problem, fix) the other.
"""

from __future__ import annotations

import mmap
import os
import tempfile
from collections import namedtuple
from pathlib import Path

import numpy as np

# what the worker is asked to load; simulate_ms > 0: invoke once for real, then sleep that long instead
ModelSpec = namedtuple("ModelSpec", "role path device edgetpu_device num_threads kind simulate_ms",
                       defaults=("", 0, None, 0.0))
# what it loaded: tensor details reduced to picklable values (name, index, shape, dtype, quantization)
ModelInfo = namedtuple("ModelInfo", "role path backend kind warning input_detail output_details "
                       "signature_outputs input_size offloaded")

SLOTS_PER_MODEL = 3   # one invoking, one queued behind it (the next frame), one for any other caller
ALIGN = 64


def plain_detail(detail: dict) -> dict:
    """The parts of a TFLite tensor detail the parent needs, as plain picklable values."""
    scale, zero_point = detail.get("quantization", (0.0, 0))
    return {"name": str(detail.get("name", "")), "index": int(detail["index"]),
            "shape": tuple(int(n) for n in detail["shape"]), "dtype": np.dtype(detail["dtype"]),
            "quantization": (float(scale), int(zero_point))}


def _aligned(n: int) -> int:
    return (n + ALIGN - 1) // ALIGN * ALIGN


def slot_layout(info: ModelInfo) -> tuple[int, list[int]]:
    """(bytes per slot, offset of each tensor): the input first, then each output."""
    offsets, size = [], 0
    for detail in (info.input_detail, *info.output_details):
        offsets.append(size)
        size += _aligned(int(np.prod(detail["shape"])) * np.dtype(detail["dtype"]).itemsize)
    return max(size, ALIGN), offsets


def shm_folder() -> str:
    usable = os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK)
    return "/dev/shm" if usable else tempfile.gettempdir()


def create_slot_file(size: int) -> str:
    fd, path = tempfile.mkstemp(prefix="appliance-slot-", dir=shm_folder())
    try:
        os.ftruncate(fd, size)
    finally:
        os.close(fd)
    return path


def map_file(path: str | Path) -> mmap.mmap:
    with open(path, "r+b") as f:
        return mmap.mmap(f.fileno(), 0)


def slot_views(buffer: mmap.mmap, info: ModelInfo) -> tuple[np.ndarray, list[np.ndarray]]:
    """Numpy views of one slot: the input tensor, and each output tensor."""
    _, offsets = slot_layout(info)
    views = []
    for detail, offset in zip((info.input_detail, *info.output_details), offsets, strict=True):
        count = int(np.prod(detail["shape"]))
        views.append(np.frombuffer(buffer, detail["dtype"], count, offset).reshape(detail["shape"]))
    return views[0], views[1:]
