"""`appliance teach`: add photos as samples of a class in a class store (created if needed)."""

import json
import sys
from pathlib import Path

from appliance.learning.labels import validate_label


def register(subparsers) -> None:
    from appliance.commands.classify import add_model_flags

    parser = subparsers.add_parser(
        "teach", help="teach a class from photos", description=__doc__.splitlines()[0],
        epilog="--model is the embedding extractor (default mobilenet_v1_1.0_224_quant_embedding_extractor); "
               "a store only accepts embeddings from the model it was first taught with.")
    parser.add_argument("--store", type=Path, required=True, metavar="S",
                        help="the class store file (created on first use)")
    parser.add_argument("label", metavar="LABEL", help="the class name (1 to 64 characters)")
    add_model_flags(parser, labels=False)
    parser.set_defaults(func=run)


def open_store(session, store_path: Path, embedding_model: str):
    """The ClassStore with the config's sample and thumbnail limits."""
    from appliance.learning.store import ClassStore

    teach = session.config.teach
    return ClassStore(store_path, embedding_model, max_samples=teach.max_samples_per_class,
                      max_thumbnails=teach.thumbnails_per_class)


def run(args) -> int:
    from appliance.classes import Classes
    from appliance.commands.classify import Session, library_errors
    from appliance.learning.model_identity import model_identity
    from appliance.teacher import pick_evenly, thumbnail
    from appliance.vision.embed import Embedder

    label = validate_label(args.label)  # before loading anything: a bad label fails fast
    with Session(args) as session:
        embedder = Embedder(session.load(args.model or session.vision.embedder, kind="embedder"))
        images = session.images()  # an unreadable photo leaves no new, empty store behind
        with library_errors("computing embeddings"):  # before the store: a crash leaves no empty store
            embeddings = [embedder.embed(rgb) for rgb in images]
    store = open_store(session, args.store, model_identity(embedder.model.path))
    with store:
        with library_errors("making thumbnails"):
            thumbs = [thumbnail(rgb) for rgb in pick_evenly(images, store.max_thumbnails)]
        before = store.find(label)
        info = Classes(store).teach_samples(label, embeddings, thumbs)
    if args.json:
        json.dump({"id": info.id, "label": info.label, "samples": info.samples,
                   "added": len(embeddings), "created": before is None}, sys.stdout)
        print()
    else:
        verb = "created" if before is None else "updated"
        print(f"{verb} class {info.label!r} (id {info.id}): {len(embeddings)} sample(s) added, "
              f"{info.samples} in total")
    return 0
