"""`appliance bench`: pipeline fps against raw invoke fps of the same model, per-stage ms, drops, RSS."""

import argparse
import json

from appliance.commands.models import add_location_flags, load_settings
from appliance.vision import backends


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, metavar="M",
                        help="a .tflite path or manifest name (classifier, detector or embedder)")
    parser.add_argument("--labels", metavar="L",
                        help="label file (default: the one that goes with the model)")
    parser.add_argument("--source", default="demo", metavar="SRC",
                        help="demo (default), an image folder or file, a video file, or a camera")
    parser.add_argument("--seconds", type=float, default=30.0, metavar="N", help="measured run (default 30)")
    parser.add_argument("--mode", choices=("classify", "detect"), help="checked against the model's kind")
    parser.add_argument("--device", choices=backends.device_choices(), default="auto")
    parser.add_argument("--edgetpu-device", default="", metavar="SPEC")
    parser.add_argument("--threads", type=int, default=0, metavar="N",
                        help="CPU threads for invoke (0 = all)")
    parser.add_argument("--publish-fps", type=float, default=30.0, metavar="F",
                        help="stream display rate, as camera.fps in the appliance (0 = encode every result)")
    parser.add_argument("--in-process", action="store_true",
                        help="run the model in this process, not in the inference worker (as the appliance)")
    parser.add_argument("--simulate-edgetpu-ms", type=float, default=0.0, metavar="MS",
                        help="the worker's invoke becomes a sleep of MS ms that uses no CPU (outputs are the "
                             "CPU model's, computed once): does the pipeline keep an accelerator busy?")
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
    from appliance.inference.protocol import ModelSpec
    from appliance.inference.supervisor import InferenceWorker, RemoteModel
    from appliance.model_files import labels_for_model, resolve_model
    from appliance.vision.labels import read_labels
    from appliance.vision.model import load_model

    if args.seconds <= 0:
        raise ApplianceError(f"--seconds {args.seconds:g} must be more than 0", "e.g. --seconds 30")
    if args.simulate_edgetpu_ms < 0 or (args.simulate_edgetpu_ms and args.in_process):
        raise ApplianceError("--simulate-edgetpu-ms takes a positive number of ms, without --in-process",
                             "e.g. --simulate-edgetpu-ms 2.4 (Coral's published MobileNet v1 time)")
    models_dir, models_from, _ = load_settings(args)
    path = resolve_model(args.model, models_dir=models_dir, models_from=models_from)
    device = "cpu" if args.simulate_edgetpu_ms else args.device
    local = load_model(path, device=device, edgetpu_device=args.edgetpu_device, num_threads=args.threads)
    labels_name = args.labels or labels_for_model(path, kind=local.kind)
    labels = read_labels(resolve_model(labels_name, models_dir=models_dir, models_from=models_from)) \
        if labels_name and local.kind != "embedder" else None
    worker = None
    if not args.in_process:
        worker = InferenceWorker([ModelSpec("bench", str(path), device, args.edgetpu_device, args.threads,
                                            None, args.simulate_edgetpu_ms)], device)
        worker.start()
    try:
        model = RemoteModel(worker, "bench") if worker is not None else local
        report = run_bench(BenchSetup(model, labels, args.source, args.seconds, args.mode,
                                      publish_fps=args.publish_fps, local=local,
                                      simulate_ms=args.simulate_edgetpu_ms))
    finally:
        if worker is not None:
            worker.close()
    print(json.dumps(report, indent=2) if args.json else format_report(report))
    return 0
