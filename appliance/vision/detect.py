"""Object detection from TFLite_Detection_PostProcess outputs, boxes in pixels of the frame given.

The four outputs come in TF1 order (boxes, classes, scores, count), TF2 order (scores, boxes, count,
classes) or, for models with a signature, output_0..3 = (count, scores, classes, boxes), as pycoral
reads them.
"""

import time
from collections import namedtuple

import numpy as np

from appliance.errors import ModelError
from appliance.vision import preprocess
from appliance.vision.classify import label_for, wrong_kind
from appliance.vision.model import Model, Pending, Timings, timings_since

Object = namedtuple("Object", "id score bbox label")


class BBox(namedtuple("BBox", "xmin ymin xmax ymax")):
    """A box in image pixels, with pycoral's helpers."""

    __slots__ = ()

    @property
    def width(self) -> float:
        return self.xmax - self.xmin

    @property
    def height(self) -> float:
        return self.ymax - self.ymin

    @property
    def area(self) -> float:
        return self.width * self.height

    @property
    def valid(self) -> bool:
        return self.width >= 0 and self.height >= 0

    def scale(self, sx: float, sy: float) -> "BBox":
        return BBox(self.xmin * sx, self.ymin * sy, self.xmax * sx, self.ymax * sy)

    def translate(self, dx: float, dy: float) -> "BBox":
        return BBox(self.xmin + dx, self.ymin + dy, self.xmax + dx, self.ymax + dy)

    def map(self, f) -> "BBox":
        return BBox(*(f(v) for v in self))

    @staticmethod
    def intersect(a: "BBox", b: "BBox") -> "BBox":
        return BBox(max(a.xmin, b.xmin), max(a.ymin, b.ymin), min(a.xmax, b.xmax), min(a.ymax, b.ymax))

    @staticmethod
    def union(a: "BBox", b: "BBox") -> "BBox":
        return BBox(min(a.xmin, b.xmin), min(a.ymin, b.ymin), max(a.xmax, b.xmax), max(a.ymax, b.ymax))

    @staticmethod
    def iou(a: "BBox", b: "BBox") -> float:
        inter = BBox.intersect(a, b)
        if not inter.valid:
            return 0.0
        union = a.area + b.area - inter.area
        return inter.area / union if union > 0 else 0.0


_SIGNATURE_ORDER = {"count": "output_0", "scores": "output_1", "classes": "output_2", "boxes": "output_3"}
_TF1_ORDER = ("boxes", "classes", "scores", "count")
_TF2_ORDER = ("scores", "boxes", "count", "classes")


def detection_output_order(outputs: list[dict], signature_outputs: dict[str, int] | None = None) -> dict:
    """Which tensor index holds boxes, classes, scores and count (a pure function of the output details)."""
    if signature_outputs and set(_SIGNATURE_ORDER.values()) <= set(signature_outputs):
        order = {role: int(signature_outputs[key]) for role, key in _SIGNATURE_ORDER.items()}
        by_index = {int(d["index"]): d for d in outputs}
        shapes = {role: tuple(by_index[i]["shape"]) for role, i in order.items() if i in by_index}
    else:
        if len(outputs) != 4:
            raise ModelError(f"a detector needs 4 outputs, this model has {len(outputs)}",
                             "use an SSD model exported with TFLite_Detection_PostProcess")
        names = _TF1_ORDER if int(np.prod(outputs[3]["shape"])) == 1 else _TF2_ORDER
        order = {role: int(d["index"]) for role, d in zip(names, outputs, strict=True)}
        shapes = {role: tuple(d["shape"]) for role, d in zip(names, outputs, strict=True)}
    if len(shapes) == 4 and (shapes["boxes"][-1:] != (4,) or int(np.prod(shapes["count"])) != 1):
        raise ModelError(f"detector outputs are not in a known order (shapes {shapes})",
                         "use an SSD model with TFLite_Detection_PostProcess (TF1 or TF2 export)")
    return order


def objects_from_outputs(boxes: np.ndarray, classes: np.ndarray, scores: np.ndarray, count: float, *,
                         threshold: float, input_size: tuple[int, int], image_scale: tuple[float, float],
                         image_size: tuple[int, int], labels: dict[int, str] | None = None) -> list[Object]:
    """Objects scoring at least `threshold`, best first; normalised [ymin, xmin, ymax, xmax] boxes become
    pixels of the original (w, h) image by undoing the resize / letterbox scale."""
    width, height = input_size
    sx, sy = width / image_scale[0], height / image_scale[1]
    img_w, img_h = image_size
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    classes = np.asarray(classes).reshape(-1)
    scores = np.asarray(scores, np.float32).reshape(-1)
    n = min(int(count), len(scores), len(boxes), len(classes))
    found = []
    for i in range(n):
        if scores[i] < threshold:
            continue
        ymin, xmin, ymax, xmax = (float(v) for v in boxes[i])
        box = BBox(xmin, ymin, xmax, ymax).scale(sx, sy)
        box = BBox(max(0.0, box.xmin), max(0.0, box.ymin),
                   min(float(img_w), box.xmax), min(float(img_h), box.ymax))
        if not box.valid:
            continue
        class_id = int(classes[i])
        found.append(Object(class_id, float(scores[i]), box.map(round), label_for(class_id, labels)))
    found.sort(key=lambda o: -o.score)
    return found


class Detector:
    """Thread-safe; `start` hands the frame to the model, `finish` reads the boxes (see Model.submit)."""

    def __init__(self, model: Model, labels: dict[int, str] | None = None, *, letterbox: bool = True) -> None:
        if model.kind != "detector":
            raise wrong_kind(model, "detector",
                             "use an SSD detector such as ssd_mobilenet_v1_coco_quant_2018_06_29_detect"
                             + (" (use `appliance classify` for classifiers)" if model.kind == "classifier"
                                else ""))
        self.model = model
        self.labels = labels
        self.letterbox = letterbox
        self._order_for: tuple = ()
        self.order = self._output_order()

    def _output_order(self) -> dict[str, int]:
        """role -> output position, worked out again when the model's outputs change (a worker that fell
        back to the CPU runs the CPU twin, whose tensors need not be the compiled model's)."""
        details = self.model.output_details
        key = tuple(int(d["index"]) for d in details)
        if key != self._order_for:
            order = detection_output_order(details, self.model.signature_outputs)
            position = {int(d["index"]): i for i, d in enumerate(details)}
            self.order = {role: position[index] for role, index in order.items()}
            self._order_for = key
        return self.order

    def start(self, rgb: np.ndarray) -> tuple[Pending, tuple[int, int]]:
        rgb = preprocess.as_rgb(rgb)
        return self.model.submit(rgb, letterbox=self.letterbox), (rgb.shape[1], rgb.shape[0])

    def finish(self, started: tuple[Pending, tuple[int, int]],
               threshold: float = 0.4) -> tuple[list[Object], Timings]:
        pending, image_size = started
        ran = pending.wait()
        t0 = time.perf_counter()
        out = {role: ran.outputs[i] for role, i in self._output_order().items()}
        objects = objects_from_outputs(
            out["boxes"], out["classes"], out["scores"], float(np.asarray(out["count"]).reshape(-1)[0]),
            threshold=threshold, input_size=self.model.input_size, image_scale=ran.scale,
            image_size=image_size, labels=self.labels)
        return objects, timings_since(ran, t0)

    def detect_timed(self, rgb: np.ndarray, threshold: float = 0.4) -> tuple[list[Object], Timings]:
        return self.finish(self.start(rgb), threshold)

    def detect(self, rgb: np.ndarray, threshold: float = 0.4) -> list[Object]:
        return self.detect_timed(rgb, threshold)[0]
