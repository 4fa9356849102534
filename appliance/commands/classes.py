"""`appliance classes`: list, rename, delete, export, import and publish the classes of a class store."""

import argparse
import json
import sys
from pathlib import Path

from appliance.errors import NotFoundError, StoreError


def register(subparsers) -> None:
    parser = subparsers.add_parser("classes", help="list, rename, delete, export or import taught classes",
                                   description=__doc__.splitlines()[0])
    actions = parser.add_subparsers(dest="action", metavar="ACTION")
    for name, text, extra in (
            ("list", "the classes, their ids and sample counts (the default)", ()),
            ("rename", "give a class a new label", ("old", "new")),
            ("delete", "forget a class and its samples", ("label",)),
            ("export", "write every class to one file (a class-store SQLite file)", ("file",)),
            ("import", "merge the classes of an exported file (by label)", ("file",)),
            ("publish", "announce the classes as a fleet class set on MQTT (docs/mqtt.md)", ("name",))):
        sub = actions.add_parser(name, help=text, description=text)
        for arg in extra:
            sub.add_argument(arg, metavar=arg.upper(), type=Path if arg == "file" else str,
                             nargs="?" if name == "export" else None)
        if name == "export":
            _tflite_flags(sub)
        if name == "publish":
            sub.add_argument("--config", type=Path, metavar="FILE",
                             help="the config with [mqtt] (default /etc/appliance/config.toml); the store "
                                  "defaults to its data_dir's classes.sqlite")
            sub.add_argument("--url", metavar="URL",
                             help="the base URL other boxes fetch from (default [mqtt] public_url)")
        _common(sub, argparse.SUPPRESS)
    _common(parser, None)
    parser.set_defaults(func=run, action=None)


def _tflite_flags(parser: argparse.ArgumentParser) -> None:
    from appliance.commands.models import add_location_flags

    parser.add_argument("--tflite", type=Path, metavar="OUT.tflite",
                        help="instead: write the classes as a standalone uint8 .tflite "
                             "classifier (+ OUT.txt)")
    parser.add_argument("--head", choices=("auto", "imprint", "softmax"),
                        help="the head to export (default: the config's recognition.head, as the appliance)")
    parser.add_argument("--model", metavar="M", help="the embedding extractor the store was taught with "
                                                     "(default: the one the store records)")
    add_location_flags(parser)


def export_tflite(args, store) -> str:
    """Write the .tflite and its labels, check it, and say what was written."""
    from appliance.commands.models import load_settings
    from appliance.learning.model_identity import base_name, model_identity, same_model
    from appliance.learning.tflite_export import export_tflite as write
    from appliance.model_files import resolve_model
    from appliance.modelcheck.check import check_file
    from appliance.vision.model import twin_for

    models_dir, models_from, config = load_settings(args)
    name = args.model or base_name(store.embedding_model)
    path = twin_for(resolve_model(name, models_dir=models_dir, models_from=models_from), "cpu")
    if not same_model(store.embedding_model, model_identity(path)):
        raise StoreError(f"{store.path} was taught with {base_name(store.embedding_model)}, not {path.name}",
                         "leave out --model, or give the embedding extractor the store was taught with")
    head = args.head or config.recognition.head
    done = write(store, path, args.tflite, head)
    report = check_file(done.model)
    return (f"exported {len(done.label_list)} class(es) to {done.model} and {done.labels} "
            f"({done.head.kind} head{': ' + done.head.reason if done.head.reason else ''})\n"
            f"Edge TPU check: {report['verdict']}: {report['summary']}")


def _common(parser: argparse.ArgumentParser, default) -> None:
    # On the command and on each action, so `classes --json list` and `classes list --json` both work;
    # the actions' SUPPRESS defaults keep a flag given before the action.
    parser.add_argument("--store", type=Path, metavar="S", default=default, help="the class store file")
    parser.add_argument("--json", action="store_true", default=default if default is not None else False,
                        help="print JSON to stdout")


def _open(path: Path | None, import_from: Path | None = None):
    """Open an existing store with the identity it records: these actions compute no embeddings.

    Only `import` may create the store (restoring a backup onto a fresh box), with the export's model.
    """
    from appliance.learning.store import ClassStore, stored_embedding_model

    if path is None:
        raise StoreError("no class store given", "add --store FILE (the file `appliance teach` wrote)")
    if not path.is_file() and import_from is not None:
        model = stored_embedding_model(import_from)
        if model is None:
            raise StoreError(f"{import_from} is not a class-store export",
                             "give the file written by `appliance classes export`")
        return ClassStore(path, model)
    if not path.is_file():
        raise StoreError(f"the class store {path} does not exist",
                         f"teach a class first: appliance teach --store {path} LABEL IMAGE...")
    return ClassStore(path, stored_embedding_model(path) or "unknown")


def _find(store, label: str):
    info = store.find(label)
    if info is None:
        known = ", ".join(repr(c.label) for c in store.list_classes()) or "none"
        raise NotFoundError(f"there is no class labelled {label!r} in {store.path} (classes: {known})",
                            f"list them with `appliance classes --store {store.path} list`")
    return info


def _rows(infos) -> list[dict]:
    return [{"id": c.id, "label": c.label, "samples": c.samples} for c in infos]


def _publish(args) -> int:
    from appliance.config import load_config
    from appliance.mqtt.oneshot import publish_set
    from appliance.system import STORE_FILE

    config = load_config(args.config)
    store_path = args.store or Path(config.data_dir) / STORE_FILE
    with _open(store_path) as store:
        announcement = publish_set(config, store, args.name, url_base=args.url)
    if args.json:
        json.dump(announcement, sys.stdout)
        print()
    else:
        print(f"published class set {announcement['name']!r} v{announcement['version']} "
              f"({len(announcement['classes'])} classes, sha256 {announcement['sha256'][:12]}...) "
              f"at {announcement['url']}")
    return 0


def run(args) -> int:
    from appliance.classes import Classes

    action = args.action or "list"
    if action == "publish":
        return _publish(args)
    with _open(args.store, args.file if action == "import" else None) as store:
        classes = Classes(store)  # the same rules as the running appliance's; nobody listens here
        if action == "rename":
            renamed = classes.rename(_find(store, args.old).id, args.new)
            message = f"renamed {args.old!r} to {renamed.label!r}"
        elif action == "delete":
            info = classes.delete(_find(store, args.label).id)
            message = f"deleted {info.label!r} ({info.samples} samples)"
        elif action == "export" and getattr(args, "tflite", None) is not None:
            message = export_tflite(args, store)
        elif action == "export":
            if args.file is None:
                raise StoreError("export needs a FILE, or --tflite OUT.tflite",
                                 f"appliance classes --store {store.path} export BACKUP.db "
                                 "(or export --tflite OUT.tflite)")
            store.export(args.file)
            message = f"exported {len(store.list_classes())} class(es) to {args.file}"
        elif action == "import":
            message = f"imported {len(classes.import_(args.file))} class(es) from {args.file}"
        else:
            message = None
        now = store.list_classes()
    if args.json:
        json.dump(_rows(now), sys.stdout)  # every action prints the class list as it now is
        print()
        return 0
    if message:
        print(message)
    if action in ("list", "import"):
        if not now:
            print("no classes taught yet")
        for c in now:
            print(f"{c.id:4d}  {c.label}  ({c.samples} samples)")
    return 0
