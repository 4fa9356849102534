"""GET/POST /api/models, DELETE /api/models/<name>: upload a classifier or detector, checked and loaded.

An upload is multipart/form-data: `model` (the .tflite), `kind` ("classifier" | "detector"), optional
`labels` (a text file: one label per line, or "id label" lines) and optional `name`. The model is checked
(Edge TPU fit, kind) and loaded on the CPU before it is kept in <data_dir>/custom_models/; the answer says
how to use it (vision.classifier / vision.detector in the config) and any partial-CPU notice.
"""

from __future__ import annotations

from pathlib import Path

from flask import Blueprint, jsonify, request

from appliance.custom_models import MAX_MODEL_BYTES, CustomModels
from appliance.errors import ApplianceError
from appliance.web.state import web_state

bp = Blueprint("models_api", __name__)

UPLOAD_PATH = "/api/models"
LABELS_MAX_BYTES = 1024 * 1024
FORM_SLACK = 64 * 1024  # multipart boundaries and the small fields


class TooLargeError(ApplianceError):
    status = 413


def is_upload() -> bool:
    """Is this request a model upload (the one route whose body is not JSON and may be large)?"""
    return request.method == "POST" and request.path == UPLOAD_PATH


def upload_limit() -> int:
    return MAX_MODEL_BYTES + LABELS_MAX_BYTES + FORM_SLACK


def _models() -> CustomModels:
    return CustomModels(Path(web_state().system.config.data_dir))


def _use_hint(info: dict) -> str:
    key = "classifier" if info["kind"] == "classifier" else "detector"
    labels = Path(info["file"]).with_suffix(".txt")
    text = f'set [vision] {key} = "{info["file"]}"'
    if info["labels"]:
        text += f' and {key}_labels = "{labels}"'
    mode = "recognition.show_base_labels = true" if key == "classifier" else 'recognition.mode = "detect"'
    return text + f" ({mode}), then restart the appliance"


@bp.get("/api/models")
def list_models():
    return jsonify({"models": _models().list(), "max_bytes": MAX_MODEL_BYTES})


@bp.post(UPLOAD_PATH)
def upload():
    if not request.mimetype == "multipart/form-data":
        raise ApplianceError("a model upload must be multipart/form-data",
                             "send the form fields model (the .tflite file), kind and optionally labels")
    model = request.files.get("model")
    if model is None or not model.filename:
        raise ApplianceError("the upload has no model file",
                             "send the .tflite file in the form field `model`")
    kind = (request.form.get("kind") or "").strip()
    name = (request.form.get("name") or "").strip() or Path(model.filename.replace("\\", "/")).name
    labels_file = request.files.get("labels")
    labels_text = None
    if labels_file is not None and labels_file.filename:
        raw = labels_file.read(LABELS_MAX_BYTES + 1)
        if len(raw) > LABELS_MAX_BYTES:
            raise ApplianceError("the labels file is larger than 1 MB",
                                 "send a text file with one label per line")
        try:
            labels_text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ApplianceError("the labels file is not UTF-8 text",
                                 "send a text file with one label per line (or \"id label\" lines)") from exc
    store = _models()
    store.check_name(name)
    data = model.read(MAX_MODEL_BYTES + 1)
    if len(data) > MAX_MODEL_BYTES:
        raise TooLargeError(f"the model is more than the {MAX_MODEL_BYTES:,} bytes allowed",
                            "upload a smaller model (an 8-bit quantised image model is usually under 20 MB)")
    info = store.add(name, data, kind, labels_text)
    info["use"] = _use_hint(info)
    return jsonify(info), 201


@bp.delete("/api/models/<name>")
def delete_model(name: str):
    _models().delete(name)
    return "", 204
