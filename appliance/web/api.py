"""The JSON API: status, and the taught classes (list, teach, add samples, rename, delete, thumbnail).

Labels go through appliance.learning.labels.validate_label; class ids are ints from the URL router,
so no request value ever reaches a file path (thumbnails come out of the SQLite store by id).
"""

from __future__ import annotations

import json
from pathlib import Path

from flask import Blueprint, Response, jsonify, request

from appliance.classes import class_dict as class_json
from appliance.errors import ApplianceError, NotFoundError
from appliance.learning.labels import validate_label
from appliance.web.state import web_state
from appliance.web.status import status_payload

bp = Blueprint("api", __name__)

OPENAPI_PATH = Path(__file__).with_name("openapi.json")
MAX_CLASS_ID = 2**63 - 1  # SQLite integers are 64-bit


@bp.url_value_preprocessor
def _class_id_in_range(endpoint, values) -> None:
    """A class id past SQLite's range is a 404, not an OverflowError (a 500) from the store."""
    if values and values.get("class_id", 0) > MAX_CLASS_ID:
        raise NotFoundError(f"there is no class with id {values['class_id']}",
                            "list them with GET /api/classes")


class UnsupportedMediaError(ApplianceError):
    """A mutating request whose body is not JSON."""

    status = 415


def json_object() -> dict:
    """The request body as a JSON object, or a 400 / 415 that says what to send."""
    raw = request.get_data(cache=True)
    if not raw.strip():
        raise ApplianceError("the request has no JSON body", 'send a JSON object, e.g. {"label": "cat"}')
    if not request.is_json:
        raise UnsupportedMediaError(
            f"the body is {request.mimetype or 'untyped'}, not JSON",
            "send Content-Type: application/json with a JSON object body",
        )
    try:
        data = json.loads(raw)
    except RecursionError as exc:  # e.g. [[[[...]]]] nested thousands deep, well under the size limit
        raise ApplianceError("the JSON body is nested too deeply", 'send a JSON object, e.g. {"label": "cat"}'
                             ) from exc
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApplianceError(f"the body is not valid JSON ({exc})",
                             'send a JSON object, e.g. {"label": "cat"}') from exc
    if not isinstance(data, dict):
        raise ApplianceError("the JSON body must be an object", 'send e.g. {"label": "cat"}')
    return data


def label_from_body() -> str:
    data = json_object()
    if "label" not in data:
        raise ApplianceError('the JSON body has no "label"', 'send e.g. {"label": "cat"}')
    return validate_label(data["label"])


@bp.get("/api/status")
def status():
    return jsonify(status_payload(web_state()))


@bp.post("/api/inference/retry")
def retry_accelerator():
    """After a fallback to the CPU: start the inference worker on the configured device again."""
    reason = web_state().system.retry_accelerator()
    return jsonify({"retrying": True, "was": reason}), 202


@bp.get("/api/classes")
def list_classes():
    return jsonify([class_json(c) for c in web_state().system.classes.list()])


@bp.post("/api/classes")
def teach_new_class():
    info = web_state().system.classes.teach_new(label_from_body())
    body = class_json(info)
    return jsonify(body), 201, {"Location": f"/api/classes/{body['id']}"}


@bp.get("/api/classes/<int:class_id>")
def get_class(class_id: int):
    return jsonify(class_json(web_state().system.classes.get(class_id)))


@bp.post("/api/classes/<int:class_id>/samples")
def add_samples(class_id: int):
    classes = web_state().system.classes
    classes.get(class_id)  # 404 before reading the body
    if request.get_data(cache=True).strip():
        json_object()  # a body is optional, but when sent it must be JSON
    return jsonify(class_json(classes.add_samples(class_id)))


@bp.patch("/api/classes/<int:class_id>")
def rename_class(class_id: int):
    label = label_from_body()
    return jsonify(class_json(web_state().system.classes.rename(class_id, label)))


@bp.delete("/api/classes/<int:class_id>")
def delete_class(class_id: int):
    web_state().system.classes.delete(class_id)
    return Response(status=204)


@bp.get("/api/classes/<int:class_id>/thumbnail.jpg")
def thumbnail(class_id: int):
    jpeg = web_state().system.classes.thumbnail(class_id)
    return Response(jpeg, mimetype="image/jpeg", headers={"Cache-Control": "private, max-age=3600"})


@bp.get("/api/openapi.json")
def openapi():
    return Response(OPENAPI_PATH.read_bytes(), mimetype="application/json")
