"""`appliance classify`: name what is in photos with an ImageNet classifier, or against taught classes."""

import argparse
import contextlib
import json
import sys
from pathlib import Path

from appliance.commands.models import add_location_flags, load_settings
from appliance.errors import ApplianceError, ModelError, StoreError
from appliance.vision import backends


def add_model_flags(parser: argparse.ArgumentParser, *, labels: bool = True) -> None:
    parser.add_argument("--model", metavar="M", help="a .tflite path or a manifest name (see `models list`)")
    if labels:
        parser.add_argument("--labels", metavar="L",
                            help="label file path or name (default: the one that goes with the model)")
    parser.add_argument("--device", choices=backends.device_choices(),
                        help="where to run (default: the config's vision.device, auto)")
    parser.add_argument("--edgetpu-device", metavar="SPEC", help="usb, usb:N, pci, pci:N or :N")
    parser.add_argument("--json", action="store_true", help="print JSON to stdout")
    parser.add_argument("images", nargs="+", metavar="IMAGE")
    add_location_flags(parser)


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "classify", help="classify photos (ImageNet, or taught classes with --store)",
        description=__doc__.splitlines()[0])
    parser.add_argument("--top-k", type=int, default=5, metavar="K", help="classes per image (default 5)")
    parser.add_argument("--threshold", type=float, default=0.0, metavar="T", help="minimum score (default 0)")
    parser.add_argument("--store", type=Path, metavar="S",
                        help="classify against the classes taught into this store (--model = the embedder)")
    add_model_flags(parser)
    parser.set_defaults(func=run)


class Session:
    """What every vision command needs: settings, a resolved and loaded model, labels, images. Use it
    with `with`: a model on an accelerator runs in an inference worker, stopped at the end."""

    def __init__(self, args) -> None:
        from appliance.config import apply_overrides
        from appliance.inference.oneshot import OneShotModels

        self.args = args
        self.models_dir, self.models_from, config = load_settings(args)
        self.config = apply_overrides(config, device=args.device, edgetpu_device=args.edgetpu_device)
        self.vision = self.config.vision
        self.models = OneShotModels(self.vision)

    def __enter__(self) -> "Session":
        return self

    def __exit__(self, *exc) -> None:
        self.models.close()

    def resolve(self, name: str) -> Path:
        from appliance.model_files import resolve_model

        return resolve_model(name, models_dir=self.models_dir, models_from=self.models_from)

    def load(self, name: str, kind: str | None = None):
        """In this process on the CPU; on an accelerator in an inference worker, so a runtime that
        crashes or hangs is an error naming it (see appliance.inference.oneshot)."""
        with library_errors(f"loading {name}"):
            return self.models.load(self.resolve(name), kind=kind)

    def labels(self, model) -> dict[int, str] | None:
        from appliance.model_files import labels_for_model
        from appliance.vision.labels import read_labels

        name = getattr(self.args, "labels", None)
        if name is None:
            classes = int(model.output_details[0]["shape"][-1])
            name = labels_for_model(model.path, kind=model.kind, classes=classes)
        if not name:
            return None
        with library_errors(f"reading the labels {name}"):
            return read_labels(self.resolve(name))

    def images(self) -> list:
        from appliance.vision.images import read_image

        return [read_image(path) for path in self.args.images]


@contextlib.contextmanager
def library_errors(doing: str):
    """Turn an unexpected library exception at this boundary into a message without a traceback."""
    import cv2

    try:
        yield
    except ApplianceError:
        raise
    except (ValueError, RuntimeError, OSError, cv2.error) as exc:
        raise ModelError(
            f"{doing} failed: {type(exc).__name__}: {exc}",
            "check the model and image files (`appliance models verify`); run with -v for details") from exc


def run(args) -> int:
    with Session(args) as session:
        results = classify_with_store(session) if args.store is not None else classify(session)
    print_results(results, args.json)
    return 0


def classify(session: Session) -> list[dict]:
    from appliance.vision.classify import Classifier

    args = session.args
    model = session.load(args.model or session.vision.classifier)
    classifier = Classifier(model, session.labels(model))
    images = session.images()
    results = []
    with library_errors("classification"):
        for path, rgb in zip(args.images, images, strict=True):
            classes = classifier.classify(rgb, top_k=args.top_k, threshold=args.threshold)
            results.append({"image": path, "classes": [
                {"id": c.id, "label": c.label, "score": round(c.score, 6)} for c in classes]})
    return results


def classify_with_store(session: Session) -> list[dict]:
    from appliance.learning.model_identity import model_identity
    from appliance.learning.recognizer import Recognizer
    from appliance.learning.store import ClassStore
    from appliance.vision.embed import Embedder

    args = session.args
    if not args.store.is_file():
        raise StoreError(f"class store {args.store} does not exist",
                         f"teach classes first: appliance teach --store {args.store} LABEL IMAGE...")
    embedder = Embedder(session.load(args.model or session.vision.embedder))
    store = ClassStore(args.store, embedding_model=model_identity(embedder.model.path))
    recognition = session.config.recognition
    recognizer = Recognizer(store, head=recognition.head, unknown_threshold=recognition.unknown_threshold,
                            min_similarity=recognition.min_similarity)
    images = session.images()
    results = []
    with library_errors("classification against the taught classes"):
        for path, rgb in zip(args.images, images, strict=True):
            found = recognizer.recognize(embedder.embed(rgb))
            label = found.label if found.class_id is not None else "unknown"
            similarity = None if found.similarity is None else round(float(found.similarity), 6)
            results.append({"image": path, "classes": [
                {"id": found.class_id, "label": label, "score": round(float(found.score), 6),
                 "closest": found.closest, "similarity": similarity, "reason": found.reason}]})
    return results


def print_results(results: list[dict], as_json: bool) -> None:
    if as_json:
        json.dump(results, sys.stdout, indent=2)
        print()
        return
    for result in results:
        print(result["image"])
        for c in result["classes"]:
            print(f"  {c['score']:.3f}  {c['label']}" + (f"  (id {c['id']})" if c["id"] is not None else "")
                  + (f"  (closest: {c['closest']})" if c.get("closest") and c["id"] is None else ""))
        if not result["classes"]:
            print("  (no class above the threshold)")
