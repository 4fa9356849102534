"""The taught classes as a standalone .tflite classifier that any TFLite runtime can run.

The graph is the embedding extractor's own, with four uint8 ops appended, like Coral's imprinted models:
RESHAPE to (1, D) -> L2_NORMALIZATION -> FULLY_CONNECTED with the head's weights and bias -> SOFTMAX
(beta = the head's scale). The head is the one the store's Recognizer uses (imprinting or the trained
softmax regression, per `head`), so the export's top class is the appliance's. Input: the embedder's,
the whole photo resized to its input size (no crop), RGB uint8. Labels go beside it, one per line in
output order.
"""

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from appliance.errors import ModelError, StoreError
from appliance.learning.heads import Head, l2_normalize
from appliance.learning.recognizer import Recognizer
from appliance.learning.store import ClassStore
from appliance.modelcheck.build import Builder
from appliance.modelcheck.graph import EDGETPU_OP, graph_of, read_model

L2_SCALE, L2_ZERO = 1.0 / 128.0, 128      # TFLite's fixed uint8 quantisation of L2_NORMALIZATION's output
SOFTMAX_SCALE, SOFTMAX_ZERO = 1.0 / 256.0, 0  # and of SOFTMAX's
LOGIT_MARGIN = 0.2  # widen the logits' range seen on the samples by a fifth of it on each side


@dataclass(frozen=True)
class Export:
    model: Path
    labels: Path
    head: Head
    label_list: list[str]


def _uint8(values: np.ndarray, lo: float, hi: float) -> tuple[np.ndarray, float, int]:
    """Asymmetric uint8 quantisation of `values` over [lo, hi] (widened to hold 0)."""
    lo, hi = min(float(lo), 0.0), max(float(hi), 0.0)
    scale = (hi - lo) / 255.0 or 1e-8
    zero = int(np.clip(round(-lo / scale), 0, 255))
    q = np.clip(np.rint(values / scale) + zero, 0, 255).astype(np.uint8)
    return q, scale, zero


def logit_range(head: Head, X: np.ndarray) -> tuple[float, float]:
    """The range the FC layer's output must hold: the logits on the stored samples, with a margin."""
    logits = l2_normalize(X) @ head.weights.T + head.bias
    lo, hi = float(logits.min()), float(logits.max())
    span = max(hi - lo, 1e-3)
    return lo - LOGIT_MARGIN * span, hi + LOGIT_MARGIN * span


def append_head(data: bytes, head: Head, X: np.ndarray, description: str) -> bytes:
    """The embedder's .tflite bytes with the head's layers appended; the output is the class scores."""
    model = read_model(data, "the embedding extractor")
    g = graph_of(model)
    if any(op.name == EDGETPU_OP for op in g.ops):
        raise ModelError("the embedding extractor given is compiled for the Edge TPU",
                         "export from its CPU twin (the same file name without _edgetpu)")
    emb = g.tensors[g.outputs[0]]
    if emb.dtype != "uint8" or len(g.outputs) != 1:
        raise ModelError(f"the embedding extractor's output is {emb.dtype} {list(emb.shape)}",
                         "use a uint8-quantised embedding extractor (one output), e.g. "
                         "mobilenet_v1_1.0_224_quant_embedding_extractor")
    dim, classes = emb.size, len(head.class_ids)
    b = Builder(model)
    shape = b.tensor("export/flat_shape", (2,), "int32", data=np.array([1, dim]))
    flat = b.tensor("export/embedding", (1, dim), "uint8", emb.scale[0], emb.zero_point[0])
    b.op("RESHAPE", [emb.index, shape], [flat], b.options("ReshapeOptions", newShape=[1, dim]))
    norm = b.tensor("export/l2_normalized", (1, dim), "uint8", L2_SCALE, L2_ZERO)
    b.op("L2_NORMALIZATION", [flat], [norm], b.options("L2NormOptions"))
    wq, w_scale, w_zero = _uint8(head.weights, head.weights.min(), head.weights.max())
    weights = b.tensor("export/weights", (classes, dim), "uint8", w_scale, w_zero, wq)
    bias_scale = L2_SCALE * w_scale
    bias = b.tensor("export/bias", (classes,), "int32", bias_scale, 0,
                    np.rint(head.bias / bias_scale).astype(np.int32))
    lo, hi = logit_range(head, X)
    _, l_scale, l_zero = _uint8(np.zeros(1), lo, hi)
    logits = b.tensor("export/logits", (1, classes), "uint8", l_scale, l_zero)
    b.op("FULLY_CONNECTED", [norm, weights, bias], [logits], b.options("FullyConnectedOptions"))
    scores = b.tensor("export/scores", (1, classes), "uint8", SOFTMAX_SCALE, SOFTMAX_ZERO)
    b.op("SOFTMAX", [logits], [scores], b.options("SoftmaxOptions", beta=float(head.scale)))
    b.io(g.inputs, [scores])
    model.signatureDefs = None  # the embedder's signature named its old output
    model.metadata = [m for m in (model.metadata or []) if m.name in (b"min_runtime_version",
                                                                       "min_runtime_version")]
    model.description = description
    return b.bytes()


def export_tflite(store: ClassStore, embedder_path: Path, out: Path, head_kind: str = "auto") -> Export:
    """Write `out` (.tflite) and `out` with .txt (labels) for the classes in `store`."""
    recognizer = Recognizer(store, head=head_kind)
    head = recognizer.head
    snap = store.snapshot()
    if head is None or not len(snap.y):
        raise StoreError(f"the class store {store.path} has no taught samples to export",
                         f"teach a class first: appliance teach --store {store.path} LABEL IMAGE...")
    names = {c.id: c.label for c in snap.classes}
    labels = [names[int(i)] for i in head.class_ids]
    description = (f"Teachable appliance export: {len(labels)} taught classes, {head.kind} head "
                   f"({head.reason or 'as configured'}), over {Path(embedder_path).name}")
    data = append_head(Path(embedder_path).read_bytes(), head, snap.X, description)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    labels_path = out.with_suffix(".txt")
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(out)
    labels_path.write_text("".join(f"{label}\n" for label in labels), encoding="utf-8")
    return Export(out, labels_path, head, labels)
