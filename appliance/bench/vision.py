"""Vision benchmark: ms per invoke vs ms of preprocessing + adapter per 640x480 frame.

    python -m appliance.bench.vision [--model M] [--device auto|cpu|edgetpu] [--iterations N] [--json]

The frame is a real photo (kite_and_cold.jpg, or --image) scaled to 640x480, the camera's default size,
so resizing into the input tensor costs what it costs in the running appliance.
"""

import argparse
import json
import statistics
import sys
from pathlib import Path

import cv2
import numpy as np

from appliance import model_files
from appliance.assets import FOLDER
from appliance.errors import ApplianceError
from appliance.vision import backends
from appliance.vision.classify import Classifier
from appliance.vision.detect import Detector
from appliance.vision.embed import Embedder
from appliance.vision.images import read_image
from appliance.vision.model import load_model

DEFAULT_MODELS = ("mobilenet_v2_1.0_224_quant", "ssd_mobilenet_v1_coco_quant_2018_06_29_detect",
                  "mobilenet_v1_1.0_224_quant_embedding_extractor")
DEFAULT_IMAGE = FOLDER / "parrot.jpg"  # shipped with the package (assets/ATTRIBUTION.md)
FRAME_SIZE = (640, 480)


def camera_frame(path: Path = DEFAULT_IMAGE, size: tuple[int, int] = FRAME_SIZE) -> np.ndarray:
    """A real photo cropped to 4:3 and scaled to the camera's frame size."""
    rgb = read_image(path)
    h, w = rgb.shape[:2]
    target = size[0] / size[1]
    if w / h > target:
        cw = int(h * target)
        rgb = rgb[:, (w - cw) // 2:(w - cw) // 2 + cw]
    else:
        ch = int(w / target)
        rgb = rgb[(h - ch) // 2:(h - ch) // 2 + ch]
    return np.ascontiguousarray(cv2.resize(rgb, size, interpolation=cv2.INTER_AREA))


def engine_for(model):
    """A function running one frame through the model's engine and returning its Timings."""
    if model.kind == "classifier":
        engine = Classifier(model)
        return lambda frame: engine.classify_timed(frame)[1]
    if model.kind == "detector":
        detector = Detector(model)
        return lambda frame: detector.detect_timed(frame)[1]
    embedder = Embedder(model)
    return lambda frame: embedder.embed_timed(frame)[1]


def bench_model(path: Path, frame: np.ndarray, *, device: str, iterations: int, warmup: int = 5) -> dict:
    model = load_model(path, device=device)
    run = engine_for(model)
    for _ in range(warmup):
        run(frame)
    timings = [run(frame) for _ in range(iterations)]
    invoke = [t.invoke_ms for t in timings]
    host = [t.preprocess_ms + t.adapter_ms for t in timings]
    pre = [t.preprocess_ms for t in timings]
    post = [t.adapter_ms for t in timings]
    return {
        "model": model.path.name, "kind": model.kind, "backend": model.backend,
        "input": list(model.input_size), "frame": [frame.shape[1], frame.shape[0]], "iterations": iterations,
        "invoke_ms": round(statistics.median(invoke), 3),
        "preprocess_ms": round(statistics.median(pre), 3),
        "adapter_ms": round(statistics.median(post), 3),
        "preprocess_adapter_ms": round(statistics.median(host), 3),
        "ratio": round(statistics.median(host) / statistics.median(invoke), 3),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m appliance.bench.vision",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--model", action="append", help="model path or manifest name (repeatable)")
    parser.add_argument("--device", default="auto", choices=backends.device_choices())
    parser.add_argument("--iterations", type=int, default=50)
    parser.add_argument("--image", type=Path, default=DEFAULT_IMAGE)
    parser.add_argument("--models-dir", type=Path, help="default: the configured models folder")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    try:
        models_dir = args.models_dir or model_files.default_models_dir()
        frame = camera_frame(args.image)
        rows = [bench_model(model_files.resolve_model(name, models_dir=models_dir), frame, device=args.device,
                            iterations=args.iterations)
                for name in (args.model or DEFAULT_MODELS)]
    except ApplianceError as exc:
        print(f"bench: error: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    width, height = FRAME_SIZE
    print(f"frame {width}x{height} from {args.image.name}; medians over {args.iterations} runs")
    print(f"{'model':<52} {'backend':<8} {'invoke ms':>9} {'pre ms':>7} {'adapt ms':>8} {'pre+adapt':>9} "
          f"{'ratio':>6}")
    for r in rows:
        print(f"{r['model']:<52} {r['backend']:<8} {r['invoke_ms']:>9.2f} {r['preprocess_ms']:>7.2f} "
              f"{r['adapter_ms']:>8.2f} {r['preprocess_adapter_ms']:>9.2f} {r['ratio']:>6.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
