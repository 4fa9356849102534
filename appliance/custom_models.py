"""Models a user brings: checked (Edge TPU fit, kind) and loaded before use, labels in any of 3 forms.

A custom model comes from the config (vision.classifier / vision.detector as a file path) or is uploaded
through the web API into <data_dir>/custom_models/, where NAME.tflite sits beside NAME.txt (its labels)
and NAME.json (what the check found). Labels: one per line, "id label" lines as pycoral writes them, or
the labels file embedded in the model by TFLite metadata (a metadata-carrying .tflite is also a zip
archive holding its associated files). A model that would run partly on the CPU is used with a notice
naming the op where the Edge TPU part ends and the per-frame cost measured when it was loaded.
"""

import json
import re
import time
import zipfile
from io import BytesIO
from pathlib import Path

import numpy as np

from appliance.errors import ModelError, NotFoundError
from appliance.modelcheck.check import check_file
from appliance.vision import backends
from appliance.vision.labels import parse_labels

FOLDER = "custom_models"
MAX_MODEL_BYTES = 64 * 1024 * 1024  # the largest Coral detectors are ~10 MB; room for bigger ones
USABLE_KINDS = ("classifier", "detector")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def embedded_labels(data: bytes) -> dict[int, str] | None:
    """Labels from a model's TFLite metadata associated files (a zip appended to the flatbuffer)."""
    try:
        with zipfile.ZipFile(BytesIO(data)) as archive:
            texts = [n for n in archive.namelist() if n.lower().endswith(".txt")]
            if not texts:
                return None
            # prefer a file named for labels; Model Maker and Teachable Machine write labels.txt
            name = next((n for n in texts if "label" in n.lower()), texts[0])
            labels = parse_labels(archive.read(name).decode("utf-8", "replace"))
    except (zipfile.BadZipFile, OSError, KeyError, ValueError):
        return None
    return labels or None


def load_labels(model_path: Path, labels_path: Path | None) -> tuple[dict[int, str] | None, str]:
    """(labels, where they came from): the label file when given, else the model's own metadata."""
    if labels_path is not None:
        from appliance.vision.labels import read_labels

        return read_labels(labels_path), str(labels_path)
    labels = embedded_labels(Path(model_path).read_bytes())
    return labels, ("the model's metadata" if labels else "none: classes shown by number")


def partial_notice(report: dict, ms: float | None = None) -> str | None:
    """The notice for a model that runs partly on the CPU, naming the op where the Edge TPU part ends."""
    first = report.get("first_cpu_op")
    if report.get("verdict") != "partial" or not first:
        return None
    cost = f"; {ms:.0f} ms per frame measured on this CPU" if ms is not None else ""
    return (f"{Path(report['file']).name} runs partly on the CPU: {report['ops_on_edgetpu']} of "
            f"{report['ops_total']} ops on the Edge TPU, the rest from op {first['index']} ({first['op']}: "
            f"{first['reason']}) on the CPU{cost}")


def trial_run(path: Path, kind: str) -> tuple[object, float]:
    """Load the model on the CPU and run it once on a grey frame: (the Model, ms for that frame)."""
    from appliance.vision.classify import Classifier
    from appliance.vision.detect import Detector
    from appliance.vision.model import load_model

    model = load_model(path, device="cpu", kind=kind)
    engine = Classifier(model, None) if kind == "classifier" else Detector(model, None)
    frame = np.full((240, 320, 3), 128, np.uint8)
    run = engine.classify if kind == "classifier" else engine.detect
    run(frame)  # the first invoke allocates; time the second
    t0 = time.perf_counter()
    run(frame)
    return model, (time.perf_counter() - t0) * 1e3


def validate(path: Path, kind: str) -> dict:
    """Check and load a model file meant as `kind`; the facts to keep, or a ModelError with the fix."""
    if kind not in USABLE_KINDS:
        raise ModelError(f"unknown model kind {kind!r}", "use classifier or detector")
    report = check_file(path)
    if report["kind"] != kind:
        found = report["kind"] or "a model the appliance cannot use"
        why = f" ({report['kind_problem']})" if report.get("kind_problem") else ""
        raise ModelError(f"{path.name} is {found}{why}, not a {kind}",
                         f"upload it as a {report['kind']}" if report["kind"] in USABLE_KINDS else
                         "use an image classifier (one (1, N) output) or an SSD detector with "
                         "TFLite_Detection_PostProcess")
    if report["compiled"]:
        raise ModelError(f"{path.name} is compiled for the Edge TPU; it can only be tried where one is "
                         "plugged in",
                         "upload the CPU model (the file given to edgetpu_compiler): the appliance runs it, "
                         "or its _edgetpu twin placed beside it, on the Edge TPU when one is present")
    _, ms = trial_run(path, kind)
    return {"kind": kind, "verdict": report["verdict"], "summary": report["summary"],
            "first_cpu_op": report["first_cpu_op"], "ops_total": report["ops_total"],
            "ops_on_edgetpu": report["ops_on_edgetpu"], "input_size": report["input_size"],
            "cpu_ms_per_frame": round(ms, 1), "notice": partial_notice(report, ms),
            "problems": report["problems"], "classes": _class_count(report)}


def _class_count(report: dict) -> int | None:
    """A classifier's number of scores (its one output's size); None for a detector."""
    if report["kind"] != "classifier":
        return None
    return int(np.prod(report["outputs"][0]["shape"]))


class CustomModels:
    """The uploaded models in one folder: NAME.tflite + NAME.txt (labels) + NAME.json (the check)."""

    def __init__(self, data_dir: Path, max_bytes: int = MAX_MODEL_BYTES) -> None:
        self.folder = Path(data_dir) / FOLDER
        self.max_bytes = max_bytes

    @staticmethod
    def check_name(name: str) -> str:
        stem = str(name).removesuffix(".tflite")
        if not _NAME.match(stem):
            raise ModelError(f"{name!r} is not a usable model name",
                             "use 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit")
        return stem

    def _paths(self, name: str) -> tuple[Path, Path, Path]:
        stem = self.check_name(name)
        return tuple(self.folder / f"{stem}{ext}" for ext in (".tflite", ".txt", ".json"))

    def add(self, name: str, data: bytes, kind: str, labels_text: str | None = None) -> dict:
        """Store, check and load an uploaded model; nothing is kept when it fails."""
        model_path, labels_path, info_path = self._paths(name)
        if len(data) > self.max_bytes:
            raise ModelError(f"the model is {len(data):,} bytes, more than the {self.max_bytes:,} allowed",
                             "upload a smaller model (an 8-bit quantised image model is usually under 20 MB)")
        labels = parse_labels(labels_text) if labels_text and labels_text.strip() else embedded_labels(data)
        self.folder.mkdir(parents=True, exist_ok=True)
        tmp = model_path.with_name(model_path.name + ".part")
        try:
            tmp.write_bytes(data)
            info = validate(tmp, kind)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        info.update(name=model_path.stem, bytes=len(data), file=str(model_path),
                    labels=len(labels) if labels else 0,
                    labels_source=("the upload" if labels_text and labels_text.strip() else
                                   "the model's metadata" if labels else "none: classes shown by number"))
        if info["notice"]:
            info["notice"] = info["notice"].replace(tmp.name, model_path.name)
        if labels and info["classes"] and max(labels) >= info["classes"]:
            info["problems"].append(f"the labels go up to id {max(labels)} but the model has "
                                    f"{info['classes']} scores (ids 0 to {info['classes'] - 1}): "
                                    "check that they belong to this model")
        tmp.replace(model_path)
        if labels:
            labels_path.write_text("".join(f"{i} {label}\n" for i, label in sorted(labels.items())),
                                   encoding="utf-8")
        else:
            labels_path.unlink(missing_ok=True)
        info_path.write_text(json.dumps(info, indent=2), encoding="utf-8")
        return info

    def list(self) -> list[dict]:
        out = []
        for info_path in sorted(self.folder.glob("*.json")) if self.folder.is_dir() else []:
            try:
                out.append(json.loads(info_path.read_text(encoding="utf-8")))
            except (OSError, ValueError):
                continue  # a half-written record: its model is still listed by the next good write
        return out

    def delete(self, name: str) -> None:
        paths = self._paths(name)
        if not paths[0].exists():
            raise NotFoundError(f"there is no uploaded model named {self.check_name(name)!r}",
                                "list them with GET /api/models")
        for p in paths:
            p.unlink(missing_ok=True)


def notice_for(engine) -> str | None:
    """For a loaded custom classifier / detector (not one of the manifest's): the partial-CPU notice,
    with the per-frame cost timed on a grey frame (Models.warning puts it on the page's banner)."""
    from appliance.model_files import find_entry

    model = engine.model
    name = model.path.name
    if find_entry(name) is not None or find_entry(backends.twin_name(name, backends.CPU)) is not None:
        return None
    try:
        report = check_file(model.path)
    except ModelError:
        return None  # it loaded, so the interpreter could read it; nothing more to say
    if report["verdict"] != "partial":
        return None
    frame = np.full((240, 320, 3), 128, np.uint8)
    run = engine.classify if hasattr(engine, "classify") else engine.detect
    run(frame)
    t0 = time.perf_counter()
    run(frame)
    notice = partial_notice(report, (time.perf_counter() - t0) * 1e3)
    if notice and model.backend != "cpu":
        notice = notice.replace("on this CPU", f"here ({model.backend})")
    return notice
