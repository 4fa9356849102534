"""`appliance models list | fetch [NAMES] | verify | check FILE`: official models; Edge TPU fit of any."""

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING

from appliance.errors import ApplianceError, ModelError

if TYPE_CHECKING:
    from appliance.config import Config


def add_location_flags(parser: argparse.ArgumentParser) -> None:
    """--models-dir, --from and --config: shared by models, classify and detect."""
    parser.add_argument("--models-dir", type=Path, metavar="DIR",
                        help="where verified models live "
                             "(default: the config's, else ~/.local/share/appliance/models)")
    parser.add_argument("--from", dest="models_from", type=Path, metavar="DIR",
                        help="a local folder to copy verified models from (or set APPLIANCE_MODELS_FROM)")
    parser.add_argument("--config", type=Path, metavar="FILE",
                        help="read models_dir / models_from from this config file")


def load_settings(args) -> tuple[Path, Path | None, "Config"]:
    """(models_dir, models_from, config) from the flags, else the config file, else per-user defaults."""
    from appliance import model_files
    from appliance.config import load_config

    config = load_config(getattr(args, "config", None))
    models_dir = args.models_dir or model_files.default_models_dir(config)
    models_from = args.models_from or (Path(config.vision.models_from) if config.vision.models_from else None)
    return Path(models_dir), models_from, config


def register(subparsers) -> None:
    parser = subparsers.add_parser("models", help="list, fetch and verify the official models",
                                   description=__doc__.splitlines()[0])
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    for name, text in (("list", "the models in the manifest and whether each is here"),
                       ("fetch", "copy or download models (default: the configured set) and verify them"),
                       ("verify", "check every model file in the models folder against the manifest")):
        sub = actions.add_parser(name, help=text, description=text)
        add_location_flags(sub)
        sub.add_argument("--json", action="store_true", help="print JSON to stdout")
        if name == "fetch":
            sub.add_argument("names", nargs="*", metavar="NAME", help="manifest names (see `models list`)")
        sub.set_defaults(func=run)
    sub = actions.add_parser("check", help="will this .tflite run on the Edge TPU? (read, not run)",
                             description="Check a .tflite file against Coral's Edge TPU model rules "
                                         "without running it. Exit 0: all of it would map; 1: partly; "
                                         "2: it cannot be used.")
    sub.add_argument("file", type=Path, metavar="FILE")
    sub.add_argument("--json", action="store_true", help="print one JSON object to stdout")
    sub.set_defaults(func=check)


def check(args) -> int:
    """Exit 0 / 1 / 2 for full / partial / unusable; an unreadable file is unusable, not a traceback."""
    from appliance.modelcheck.check import EXIT_CODES, check_file, unreadable
    from appliance.modelcheck.report import format_report

    try:
        report = check_file(args.file)
    except ApplianceError as exc:
        report = unreadable(args.file, exc)
    print(json.dumps(report, indent=2) if args.json else format_report(report))
    return EXIT_CODES[report["verdict"]]


def run(args) -> int:
    models_dir, models_from, config = load_settings(args)
    return {"list": list_models, "fetch": fetch, "verify": verify}[args.action](
        args, models_dir, models_from, config)


def list_models(args, models_dir: Path, models_from, config) -> int:
    from appliance import model_files

    rows = []
    for entry in model_files.load_manifest().values():
        rows.append({"name": entry.name, "file": entry.file, "role": entry.role, "size": entry.size,
                     "url": entry.url, "member": entry.member or None, "sha256": entry.sha256 or None,
                     "git_blob": entry.git_blob or None, "labels": entry.labels, "default": entry.default,
                     "present": (models_dir / entry.file).is_file()})
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(f"models folder: {models_dir}")
    for row in rows:
        mark = "here" if row["present"] else "-"
        size = f"{row['size'] / 1e6:.1f} MB" if row["size"] else ""
        default = "default" if row["default"] else ""
        print(f"  {row['name']:<58} {row['role']:<10} {size:>8} {mark:<5} {default}")
    return 0


def fetch(args, models_dir: Path, models_from, config) -> int:
    from appliance import model_files

    manifest = model_files.load_manifest()
    if args.names:
        required, optional = list(args.names), []
    else:
        required, optional = model_files.default_names(config, manifest)
    results, failed = [], False
    for name, needed in [(n, True) for n in required] + [(n, False) for n in optional]:
        try:
            got = model_files.resolve(name, models_dir=models_dir, models_from=models_from, manifest=manifest)
            results.append({"name": name, "status": "ok", "path": str(got.path), "source": got.source})
        except ApplianceError as exc:
            failed = failed or needed
            results.append({"name": name, "status": "failed" if needed else "skipped",
                            "error": exc.problem, "fix": exc.fix})
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        for row in results:
            if row["status"] == "ok":
                print(f"ok       {row['name']}: {row['path']} ({row['source']})")
            else:
                print(f"{row['status']:<8} {row['name']}: {row['error']}")
    if failed:
        bad = [r for r in results if r["status"] == "failed"]
        raise ModelError(f"{len(bad)} model(s) could not be fetched: " + ", ".join(r["name"] for r in bad),
                         bad[0]["fix"])
    return 0


def verify(args, models_dir: Path, models_from, config) -> int:
    from appliance import model_files

    manifest = model_files.load_manifest()
    rows = []
    for entry in manifest.values():
        path = models_dir / entry.file
        if not path.is_file():
            continue
        digests = model_files.file_digests(path)
        problem = model_files.hash_mismatch(path, entry, digests)
        rows.append({"name": entry.name, "path": str(path), "status": "mismatch" if problem else "ok",
                     "sha256": digests.sha256, "problem": problem})
    known = {entry.file for entry in manifest.values()}
    if models_dir.is_dir():
        for path in sorted(models_dir.glob("*.tflite")):
            if path.name not in known:
                rows.append({"name": path.stem, "path": str(path), "status": "unlisted",
                             "sha256": model_files.file_digests(path).sha256,
                             "problem": "not in the manifest: cannot be verified"})
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        empty = "" if rows else " (no model files; run `appliance models fetch`)"
        print(f"models folder: {models_dir}{empty}")
        for row in rows:
            print(f"{row['status']:<9} {row['name']}" + (f": {row['problem']}" if row["problem"] else ""))
    bad = [r for r in rows if r["status"] == "mismatch"]
    if bad:
        names = ", ".join(r["name"] for r in bad)
        raise ModelError(f"{len(bad)} model file(s) failed verification: {names}",
                         "delete them and run `appliance models fetch NAME` to get verified copies")
    return 0
