"""Class sets over HTTP: GET /api/classes/export, POST /api/classes/import, POST /api/classes/publish.

The file is the existing export (a class-store SQLite snapshot, checked against the embedding model
on import, merged by label as `appliance classes import` does). `?set=NAME` serves the snapshot a
fleet announcement named, byte for byte, so its sha256 still matches. Same password as the rest.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from flask import Blueprint, Response, jsonify, request

from appliance.classes import class_dict
from appliance.errors import ApplianceError, NotFoundError
from appliance.web.state import web_state

bp = Blueprint("transfer", __name__)

IMPORT_PATH = "/api/classes/import"
MAX_UPLOAD_BYTES = 512 * 1024 * 1024  # a store of 4 full classes is a few MB; this only stops runaways
SQLITE_MAGIC = b"SQLite format 3\x00"


def _download(path: Path, name: str) -> Response:
    return Response(path.read_bytes(), mimetype="application/vnd.sqlite3",
                    headers={"Content-Disposition": f'attachment; filename="{name}"',
                             "Cache-Control": "no-store"})


@bp.get("/api/classes/export")
def export_classes():
    system = web_state().system
    name = request.args.get("set")
    if name is not None:
        from appliance.mqtt.fleet import set_path

        path = set_path(Path(system.config.data_dir), name)
        if not path.is_file():
            raise NotFoundError(f"no class set {name!r} was published from this box",
                                f"publish it: appliance classes publish {name}")
        return _download(path, path.name)
    with tempfile.TemporaryDirectory(prefix="appliance-export-", dir=system.config.data_dir) as tmp:
        path = Path(tmp) / "classes-export.sqlite"
        system.classes.export(path)
        return _download(path, "classes-export.sqlite")


@bp.post(IMPORT_PATH)
def import_classes():
    system = web_state().system
    with tempfile.TemporaryDirectory(prefix="appliance-import-", dir=system.config.data_dir) as tmp:
        path = Path(tmp) / "upload.sqlite"
        with path.open("wb") as out:
            while chunk := request.stream.read(1 << 20):
                out.write(chunk)
        with path.open("rb") as f:
            head = f.read(len(SQLITE_MAGIC))
        if head != SQLITE_MAGIC:
            raise ApplianceError("the body is not a class-store export (not an SQLite file)",
                                 "send the file from GET /api/classes/export or `appliance classes export` "
                                 "as the body (Content-Type: application/octet-stream)")
        imported = system.classes.import_(path)
    return jsonify({"imported": [class_dict(c) for c in imported],
                    "classes": [class_dict(c) for c in system.classes.list()]})


@bp.post("/api/classes/publish")
def publish_set():
    from appliance.web.api import json_object

    system = web_state().system
    name = json_object().get("name")
    if not isinstance(name, str):
        raise ApplianceError('the JSON body has no "name" text', 'send e.g. {"name": "shop"}')
    if system.mqtt is None:
        raise ApplianceError("MQTT is off, so a class set cannot be announced",
                             "set [mqtt] enabled = true (and the broker) in the config, then restart")
    return jsonify(system.mqtt.publish_set(name))
