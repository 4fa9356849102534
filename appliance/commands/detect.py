"""`appliance detect`: find objects in photos with an SSD detector; boxes in pixels of each photo."""

import json
import sys

from appliance.commands.classify import Session, add_model_flags, library_errors


def register(subparsers) -> None:
    parser = subparsers.add_parser("detect", help="detect objects in photos (COCO SSD by default)",
                                   description=__doc__.splitlines()[0])
    parser.add_argument("--threshold", type=float, metavar="T",
                        help="minimum score (default: the config's recognition.detect_threshold, 0.4)")
    add_model_flags(parser)
    parser.set_defaults(func=run)


def run(args) -> int:
    from appliance.vision.detect import Detector

    with Session(args) as session:
        config = session.config
        threshold = args.threshold if args.threshold is not None else config.recognition.detect_threshold
        model = session.load(args.model or config.vision.detector)
        detector = Detector(model, session.labels(model))
        images = session.images()
        results = []
        with library_errors("detection"):
            for path, rgb in zip(args.images, images, strict=True):
                objects = detector.detect(rgb, threshold=threshold)
                results.append({"image": path, "objects": [
                    {"id": o.id, "label": o.label, "score": round(o.score, 6), "bbox": list(o.bbox)}
                    for o in objects]})
    if args.json:
        json.dump(results, sys.stdout, indent=2)
        print()
        return 0
    for result, rgb in zip(results, images, strict=True):
        print(f"{result['image']} ({rgb.shape[1]}x{rgb.shape[0]})")
        for o in result["objects"]:
            xmin, ymin, xmax, ymax = o["bbox"]
            print(f"  {o['score']:.3f}  {o['label']:<16} [{xmin}, {ymin}, {xmax}, {ymax}]")
        if not result["objects"]:
            print(f"  (nothing above {threshold:g})")
    return 0
