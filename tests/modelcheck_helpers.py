"""Small uint8 models written with the TFLite schema, each with one property the check must catch."""

import numpy as np

from appliance.modelcheck.build import Builder

Q = {"scale": 1 / 128, "zero_point": 128}


def conv(b: Builder, x: int, name: str, shape_out, *, dilation=(1, 1), cin: int = 3, cout: int = 3) -> int:
    w = b.tensor(f"{name}/w", (cout, 1, 1, cin), "uint8", 0.01, 128, np.full((cout, 1, 1, cin), 130))
    bias = b.tensor(f"{name}/b", (cout,), "int32", 0.01 / 128, 0, np.zeros(cout))
    y = b.tensor(name, shape_out, "uint8", **Q)
    b.op("CONV_2D", [x, w, bias], [y], b.options("Conv2DOptions", padding=0, strideW=1, strideH=1,
                                                  dilationWFactor=dilation[0], dilationHFactor=dilation[1]))
    return y


def image_input(b: Builder, shape=(1, 8, 8, 3)) -> int:
    return b.tensor("input", shape, "uint8", **Q)


def chain_of_convs(n: int, **last) -> Builder:
    """input -> n CONV_2D 1x1 (the last one with `last`'s keywords, e.g. dilation)."""
    b = Builder()
    x = first = image_input(b)
    for i in range(n):
        x = conv(b, x, f"conv{i}", (1, 8, 8, 3), **(last if i == n - 1 else {}))
    b.io([first], [x])
    return b


def float_in_the_middle() -> Builder:
    """conv -> DEQUANTIZE -> float MUL -> QUANTIZE -> conv."""
    b = Builder()
    x = image_input(b)
    y = conv(b, x, "conv0", (1, 8, 8, 3))
    f = b.tensor("dequantized", (1, 8, 8, 3), "float32")
    b.op("DEQUANTIZE", [y], [f])
    two = b.tensor("two", (1,), "float32", data=np.array([2.0]))
    g = b.tensor("doubled", (1, 8, 8, 3), "float32")
    b.op("MUL", [f, two], [g], b.options("MulOptions"))
    q = b.tensor("requantized", (1, 8, 8, 3), "uint8", **Q)
    b.op("QUANTIZE", [g], [q])
    out = conv(b, q, "conv1", (1, 8, 8, 3))
    b.io([x], [out])
    return b


def four_big_dims() -> Builder:
    """conv -> RESHAPE to (2, 4, 8, 3): four dimensions larger than 1 -> conv."""
    b = Builder()
    x = image_input(b)
    y = conv(b, x, "conv0", (1, 8, 8, 3))
    shape = b.tensor("shape", (4,), "int32", data=np.array([2, 4, 8, 3]))
    r = b.tensor("batch_of_two", (2, 4, 8, 3), "uint8", **Q)
    b.op("RESHAPE", [y, shape], [r], b.options("ReshapeOptions", newShape=[2, 4, 8, 3]))
    out = conv(b, r, "conv1", (2, 4, 8, 3))
    b.io([x], [out])
    return b


def dynamic_middle() -> Builder:
    """conv -> RESHAPE to (-1, 192) (dynamic) -> FULLY_CONNECTED."""
    b = Builder()
    x = image_input(b)
    y = conv(b, x, "conv0", (1, 8, 8, 3))
    shape = b.tensor("shape", (2,), "int32", data=np.array([-1, 192]))
    r = b.tensor("flat", (1, 192), "uint8", signature=(-1, 192), **Q)
    b.op("RESHAPE", [y, shape], [r], b.options("ReshapeOptions", newShape=[-1, 192]))
    w = b.tensor("fc/w", (4, 192), "uint8", 0.01, 128, np.full((4, 192), 129))
    bias = b.tensor("fc/b", (4,), "int32", 0.01 / 128, 0, np.zeros(4))
    out = b.tensor("logits", (1, 4), "uint8", **Q)
    b.op("FULLY_CONNECTED", [r, w, bias], [out], b.options("FullyConnectedOptions"))
    b.io([x], [out])
    return b


def softmax_over(n: int) -> Builder:
    """input (1, 8) -> FULLY_CONNECTED to (1, n) -> SOFTMAX."""
    b = Builder()
    x = b.tensor("input", (1, 8), "uint8", **Q)
    w = b.tensor("fc/w", (n, 8), "uint8", 0.01, 128, np.full((n, 8), 129))
    bias = b.tensor("fc/b", (n,), "int32", 0.01 / 128, 0, np.zeros(n))
    logits = b.tensor("logits", (1, n), "uint8", 0.1, 128)
    b.op("FULLY_CONNECTED", [x, w, bias], [logits], b.options("FullyConnectedOptions"))
    probs = b.tensor("probs", (1, n), "uint8", 1 / 256, 0)
    b.op("SOFTMAX", [logits], [probs], b.options("SoftmaxOptions", beta=1.0))
    b.io([x], [probs])
    return b


def float_io() -> Builder:
    """float input -> QUANTIZE -> conv -> DEQUANTIZE -> float output (allowed at the edges)."""
    b = Builder()
    x = b.tensor("input", (1, 8, 8, 3), "float32")
    q = b.tensor("quantized", (1, 8, 8, 3), "uint8", **Q)
    b.op("QUANTIZE", [x], [q])
    y = conv(b, q, "conv0", (1, 8, 8, 3))
    f = b.tensor("output", (1, 8, 8, 3), "float32")
    b.op("DEQUANTIZE", [y], [f])
    b.io([x], [f])
    return b


def partial_classifier(classes: int = 20_000) -> Builder:
    """A classifier the CPU runs whose Softmax is too long for the Edge TPU: conv, reshape, FC, SOFTMAX."""
    b = Builder()
    x = image_input(b)
    y = conv(b, x, "conv0", (1, 8, 8, 3))
    shape = b.tensor("shape", (2,), "int32", data=np.array([1, 192]))
    flat = b.tensor("flat", (1, 192), "uint8", **Q)
    b.op("RESHAPE", [y, shape], [flat], b.options("ReshapeOptions", newShape=[1, 192]))
    rng = np.random.default_rng(0)
    w = b.tensor("fc/w", (classes, 192), "uint8", 0.01, 128, rng.integers(0, 256, (classes, 192)))
    bias = b.tensor("fc/b", (classes,), "int32", 0.01 / 128, 0, np.zeros(classes))
    logits = b.tensor("logits", (1, classes), "uint8", 0.1, 128)
    b.op("FULLY_CONNECTED", [flat, w, bias], [logits], b.options("FullyConnectedOptions"))
    probs = b.tensor("probs", (1, classes), "uint8", 1 / 256, 0)
    b.op("SOFTMAX", [logits], [probs], b.options("SoftmaxOptions", beta=1.0))
    b.io([x], [probs])
    return b
