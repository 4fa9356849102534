"""`appliance bench`: pipeline fps against raw invoke fps of the same model, per-stage ms, drops, RSS."""

import argparse
import json

from appliance.commands.models import add_location_flags, load_settings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, metavar="M",
                        help="a .tflite path or manifest name (classifier, detector or embedder)")
    parser.add_argument("--labels", metavar="L",
                        help="label file (default: the one that goes with the model)")
    parser.add_argument("--source", default="demo", metavar="SRC",
                        help="demo (default), an image folder or file, a video file, or a camera")
    parser.add_argument("--seconds", type=float, default=30.0, metavar="N", help="measured run (default 30)")
    parser.add_argument("--mode", choices=("classify", "detect"), help="checked against the model's kind")
    parser.add_argument("--device", choices=("auto", "cpu", "edgetpu"), default="auto")
    parser.add_argument("--edgetpu-device", default="", metavar="SPEC")
    parser.add_argument("--threads", type=int, default=0, metavar="N",
                        help="CPU threads for invoke (0 = all)")
    parser.add_argument("--publish-fps", type=float, default=30.0, metavar="F",
                        help="stream display rate, as camera.fps in the appliance (0 = encode every result)")
    parser.add_argument("--json", action="store_true", help="print JSON")
    add_location_flags(parser)


def register(subparsers) -> None:
    parser = subparsers.add_parser("bench", help="benchmark the pipeline against raw model speed",
                                   description=__doc__.splitlines()[0])
    add_arguments(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from appliance.bench.pipeline import BenchSetup, format_report, run_bench
    from appliance.errors import ApplianceError
    from appliance.model_files import labels_for_model, resolve_model
    from appliance.vision.labels import read_labels
    from appliance.vision.model import load_model

    if args.seconds <= 0:
        raise ApplianceError(f"--seconds {args.seconds:g} must be more than 0", "e.g. --seconds 30")
    models_dir, models_from, _ = load_settings(args)
    path = resolve_model(args.model, models_dir=models_dir, models_from=models_from)
    model = load_model(path, device=args.device, edgetpu_device=args.edgetpu_device, num_threads=args.threads)
    labels_name = args.labels or labels_for_model(path, kind=model.kind)
    labels = read_labels(resolve_model(labels_name, models_dir=models_dir, models_from=models_from)) \
        if labels_name and model.kind != "embedder" else None
    report = run_bench(BenchSetup(model, labels, args.source, args.seconds, args.mode,
                                  publish_fps=args.publish_fps))
    print(json.dumps(report, indent=2) if args.json else format_report(report))
    return 0
