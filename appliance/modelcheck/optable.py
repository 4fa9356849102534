"""Coral's table of operations the Edge TPU supports, with each listed limit as a check.

Source: Coral, "TensorFlow models on the Edge TPU", table 1 "All operations supported by the Edge TPU
and any known limitations", https://coral.ai/docs/edgetpu/models-intro/#supported-operations (a capture
is in shared/reference/edgetpu-models-page.txt). That capture lost the op names of some rows (Add, Mean,
Mul, Pack, Pad, ReLU, Sub, Sum, Tanh...); they were completed from the same table as republished for the
Edge TPU in Axis ARTPEC-7 chips, https://developer.axis.com/computer-vision/on-device/system-on-chip/
artpec-7/supported-ops/ . Where the table has two rows for one op (runtime 13 and 14), the stricter
runtime-13 limit that a current compiler still shows is not applied; the runtime-14 one is.

An op not in this table is "unknown": never guessed as supported.
"""

from collections.abc import Callable

import numpy as np

from appliance.modelcheck.graph import Graph, Op

SOFTMAX_MAX = 16_000

Rule = Callable[[Graph, Op], str | None]


def _t(g: Graph, op: Op, i: int, outputs: bool = False):
    idx = (op.outputs if outputs else op.inputs)
    return g.tensors[idx[i]] if i < len(idx) and idx[i] >= 0 else None


def _opt(op: Op, name: str, default=0):
    return getattr(op.options, name, default) if op.options is not None else default


def _no_fused_activation(g: Graph, op: Op) -> str | None:
    act = _opt(op, "fusedActivationFunction")
    return f"has a fused activation function (code {act}); the Edge TPU takes none here" if act else None


def _same_dilation(g: Graph, op: Op) -> str | None:
    w, h = _opt(op, "dilationWFactor", 1), _opt(op, "dilationHFactor", 1)
    return None if w == h else f"dilation differs in x ({w}) and y ({h}); it must be the same"


def _concat(g: Graph, op: Op) -> str | None:
    reason = _no_fused_activation(g, op)
    if reason:
        return reason
    consts = [g.tensors[i] for i in op.inputs if i >= 0 and g.tensors[i].constant]
    if not consts:
        return None
    if len(op.inputs) != 2:
        return "has a constant input among more than 2 inputs (only a 2-input zero padding is allowed)"
    values = consts[0].values(np.uint8)
    zero = consts[0].zero_point[0] if consts[0].zero_point else 0
    if values is not None and np.any(values.astype(int) != zero):
        return "has a constant input that is not all zeros (only zero padding is allowed)"
    return None


def _fully_connected(g: Graph, op: Op) -> str | None:
    fmt = _opt(op, "weightsFormat")
    if fmt:
        return f"uses a non-default weights format ({fmt}); only the default format is supported"
    out = _t(g, op, 0, outputs=True)
    if out is not None and out.non1_dims > 1:
        return f"output {list(out.shape)} is not one-dimensional"
    return None


def _axes(g: Graph, op: Op, i: int = 1) -> list[int] | None:
    t = _t(g, op, i)
    vals = t.values(np.int32) if t is not None and t.dtype == "int32" else None
    if vals is None:
        return None
    rank = len(_t(g, op, 0).shape)
    return [int(a) % rank if rank else int(a) for a in np.ravel(vals)]


def _batch_axis(g: Graph, op: Op) -> bool:
    return len(_t(g, op, 0).shape) >= 4


def _reduce_not_batch(g: Graph, op: Op) -> str | None:
    axes = _axes(g, op)
    if axes is None:
        return "its axes are not constant"
    if _batch_axis(g, op) and 0 in axes:
        return "reduces over the batch dimension"
    return None


def _mean(g: Graph, op: Op) -> str | None:
    reason = _reduce_not_batch(g, op)
    if reason:
        return reason
    shape = _t(g, op, 0).shape
    z = len(shape) - 1
    if z in _axes(g, op) and shape[z] % 4:
        return f"reduces over z with z = {shape[z]}, not a multiple of 4"
    return None


def _pack(g: Graph, op: Op) -> str | None:
    return "packs along the batch dimension" if _opt(op, "axis") == 0 else None


def _pad(g: Graph, op: Op) -> str | None:
    pads = _t(g, op, 1)
    vals = pads.values(np.int32) if pads is not None and pads.dtype == "int32" else None
    if vals is None:
        return "its paddings are not constant"
    if _batch_axis(g, op) and np.any(vals.reshape(-1, 2)[0] != 0):
        return "pads the batch dimension"
    return None


def _prelu(g: Graph, op: Op) -> str | None:
    alpha = _t(g, op, 1)
    if alpha is not None and any(d != 1 for d in alpha.shape[:-1]):
        return f"alpha {list(alpha.shape)} is not 1-dimensional (only the innermost dimension may be > 1)"
    return None


def _softmax(g: Graph, op: Op) -> str | None:
    x = _t(g, op, 0)
    if x.non1_dims > 1:
        return f"input {list(x.shape)} is not 1-D"
    if x.size > SOFTMAX_MAX:
        return f"input has {x.size:,} elements; at most {SOFTMAX_MAX:,} are supported"
    return None


def _split(g: Graph, op: Op) -> str | None:
    axis = _axes(g, op, 0)  # SPLIT's first input is the axis
    if axis is None:
        return "its axis is not constant"
    rank = len(_t(g, op, 1).shape)
    return "splits along the batch dimension" if rank >= 4 and axis and axis[0] % rank == 0 else None


def _squeeze(g: Graph, op: Op) -> str | None:
    shape = _t(g, op, 0).shape
    lead = next((i for i, d in enumerate(shape) if d != 1), len(shape))
    dims = [d % len(shape) for d in (_opt(op, "squeezeDims", None) or [])] or \
        [i for i, d in enumerate(shape) if d == 1]
    inner = [d for d in dims if d >= lead]
    return (f"squeezes dimension(s) {inner} of {list(shape)} that are not leading 1s (needs a relayout)"
            if inner else None)


def _strided_slice(g: Graph, op: Op) -> str | None:
    strides = _t(g, op, 3)
    vals = strides.values(np.int32) if strides is not None and strides.dtype == "int32" else None
    if vals is None:
        return "its strides are not constant"
    if np.any(vals != 1):
        return f"has strides {vals.tolist()}; all must be 1"
    if _opt(op, "ellipsisMask") or _opt(op, "newAxisMask"):
        return "uses an ellipsis or new-axis mask; both must be 0"
    begin, end = _t(g, op, 1).values(np.int32), _t(g, op, 2).values(np.int32)
    shape = _t(g, op, 0).shape
    if len(shape) >= 4 and begin is not None and end is not None:
        b = 0 if _opt(op, "beginMask") & 1 else int(begin[0])
        e = shape[0] if _opt(op, "endMask") & 1 else int(end[0])
        if (b, e) != (0, shape[0]):
            return "slices the batch dimension"
    return None


def _lstm(g: Graph, op: Op) -> str | None:
    return "is bidirectional; only unidirectional LSTM is supported" if "BIDIRECTIONAL" in op.name else None


def _none(g: Graph, op: Op) -> str | None:
    return None


# TFLite builtin name -> (the table's name, the table's limits in short, the check of those limits)
TABLE: dict[str, tuple[str, str, Rule]] = {
    "ADD": ("Add", "", _none),
    "AVERAGE_POOL_2D": ("AveragePool2d", "no fused activation function", _no_fused_activation),
    "CONCATENATION": ("Concatenation", "no fused activation; a constant input only as 2-input zero padding",
                      _concat),
    "CONV_2D": ("Conv2d", "same dilation in x and y", _same_dilation),
    "DEPTHWISE_CONV_2D": ("DepthwiseConv2d", "same dilation in x and y", _same_dilation),
    "EXPAND_DIMS": ("ExpandDims", "", _none),
    "FULLY_CONNECTED": ("FullyConnected", "default weights format; 1-D output", _fully_connected),
    "L2_NORMALIZATION": ("L2Normalization", "", _none),
    "LOGISTIC": ("Logistic", "", _none),
    "LSTM": ("LSTM", "unidirectional only", _lstm),
    "UNIDIRECTIONAL_SEQUENCE_LSTM": ("LSTM", "unidirectional only", _lstm),
    "BIDIRECTIONAL_SEQUENCE_LSTM": ("LSTM", "unidirectional only", _lstm),
    "MAXIMUM": ("Maximum", "", _none),
    "MAX_POOL_2D": ("MaxPool2d", "no fused activation function", _no_fused_activation),
    "MEAN": ("Mean", "no reduction in batch; a z-reduction needs z a multiple of 4", _mean),
    "MINIMUM": ("Minimum", "", _none),
    "MUL": ("Mul", "", _none),
    "PACK": ("Pack", "no packing in batch", _pack),
    "PAD": ("Pad", "no padding in batch", _pad),
    "PRELU": ("PReLU", "alpha 1-dimensional", _prelu),
    "QUANTIZE": ("Quantize", "", _none),
    "REDUCE_MAX": ("ReduceMax", "not on the batch dimension", _reduce_not_batch),
    "REDUCE_MIN": ("ReduceMin", "not on the batch dimension", _reduce_not_batch),
    "RELU": ("ReLU", "", _none),
    "RELU6": ("ReLU6", "", _none),
    "RELU_N1_TO_1": ("ReLUN1To1", "", _none),
    "RESHAPE": ("Reshape", "certain reshapes of large tensors might not map", _none),
    "RESIZE_BILINEAR": ("ResizeBilinear", "3-D input/output; may stay on the CPU for precision", _none),
    "RESIZE_NEAREST_NEIGHBOR": ("ResizeNearestNeighbor", "3-D input/output; may stay on the CPU", _none),
    "RSQRT": ("Rsqrt", "", _none),
    "SLICE": ("Slice", "", _none),
    "SOFTMAX": ("Softmax", f"1-D input of at most {SOFTMAX_MAX:,} elements", _softmax),
    "SPACE_TO_DEPTH": ("SpaceToDepth", "", _none),
    "SPLIT": ("Split", "no splitting in batch", _split),
    "SQUEEZE": ("Squeeze", "leading 1s only", _squeeze),
    "STRIDED_SLICE": ("StridedSlice", "strides of 1, no ellipsis / new-axis mask, not on batch",
                      _strided_slice),
    "SUB": ("Sub", "", _none),
    "SUM": ("Sum", "not on the batch dimension", _reduce_not_batch),
    "SQUARED_DIFFERENCE": ("Squared-difference", "", _none),
    "TANH": ("Tanh", "", _none),
    "TRANSPOSE": ("Transpose", "", _none),
    "TRANSPOSE_CONV": ("TransposeConv", "", _none),
}
