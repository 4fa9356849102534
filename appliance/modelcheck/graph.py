"""A .tflite file as plain Python objects: read with the TFLite schema, and written back.

The schema's generated object API ships inside ai-edge-litert (`schema_py_generated`), so reading and
writing need no interpreter and run no model. `Graph` is the read-only view the checks use;
`read_model` / `write_model` give the full object tree for tools that edit a model (the export).
"""

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from appliance.errors import ModelError

FILE_ID = b"TFL3"
EDGETPU_OP = "edgetpu-custom-op"


def schema():
    """The TFLite schema's generated Python module (imported late: it is large)."""
    try:
        from ai_edge_litert import schema_py_generated
    except ImportError as exc:  # pragma: no cover - depends on the installation
        raise ModelError("the TFLite schema is not installed (it ships with ai-edge-litert)",
                         "pip install ai-edge-litert (the appliance's own dependency)") from exc
    return schema_py_generated


def _names(cls) -> dict[int, str]:
    return {v: k for k, v in vars(cls).items() if not k.startswith("_") and isinstance(v, int)}


def op_names() -> dict[int, str]:
    return _names(schema().BuiltinOperator)


def type_names() -> dict[int, str]:
    return {k: v.lower() for k, v in _names(schema().TensorType).items()}


def read_model(data: bytes, source: str = "the file"):
    """The ModelT object tree of `data`, or a ModelError naming why it is not a TFLite model."""
    fix = "give a .tflite file (a TensorFlow Lite flatbuffer); re-export or re-download it if it is damaged"
    if len(data) < 8 or data[4:8] != FILE_ID:
        raise ModelError(f"{source} is not a TFLite model (no TFL3 identifier: wrong file, or empty)", fix)
    try:
        model = schema().ModelT.InitFromPackedBuf(data, 0)
    except Exception as exc:  # a truncated flatbuffer fails anywhere inside the generated code
        raise ModelError(f"{source} is not a readable TFLite model ({type(exc).__name__}: {exc}); "
                         "it may be truncated or corrupt", fix) from exc
    if not model.subgraphs:
        raise ModelError(f"{source} has no subgraph: there is no graph to run", fix)
    return model


def write_model(model) -> bytes:
    """Serialise a ModelT object tree to .tflite bytes."""
    import flatbuffers

    builder = flatbuffers.Builder(1 << 20)
    builder.Finish(model.Pack(builder), file_identifier=FILE_ID)
    return bytes(builder.Output())


@dataclass(frozen=True)
class Tensor:
    index: int
    name: str
    dtype: str                       # "uint8", "int8", "float32", ...
    shape: tuple[int, ...]
    signature: tuple[int, ...]       # shape_signature: -1 marks a dynamic dimension
    scale: tuple[float, ...]
    zero_point: tuple[int, ...]
    constant: bool                   # its value is stored in the file (weights, biases, shapes)
    data: np.ndarray | None = field(default=None, repr=False, compare=False)

    @property
    def dynamic(self) -> bool:
        return any(d < 0 for d in self.signature) or any(d < 0 for d in self.shape)

    @property
    def non1_dims(self) -> int:
        return sum(1 for d in self.shape if d != 1)

    @property
    def size(self) -> int:
        return int(np.prod(self.shape)) if self.shape else 1

    @property
    def quantized(self) -> bool:
        return self.dtype in ("uint8", "int8")

    def values(self, dtype) -> np.ndarray | None:
        """The stored value as `dtype` (e.g. a Pad's paddings), None when not constant."""
        if self.data is None or not len(self.data):
            return None
        return np.frombuffer(np.asarray(self.data, np.uint8).tobytes(), dtype=dtype).reshape(self.shape)


@dataclass(frozen=True)
class Op:
    index: int
    name: str                        # "CONV_2D", or a custom op's own name
    custom: bool
    inputs: tuple[int, ...]          # tensor indices; -1 = an optional input left out
    outputs: tuple[int, ...]
    options: object = field(default=None, repr=False, compare=False)  # the schema's *OptionsT


@dataclass(frozen=True)
class Graph:
    """The main subgraph of a model, as the checks see it."""

    tensors: tuple[Tensor, ...]
    ops: tuple[Op, ...]
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    subgraphs: int
    signature_outputs: dict[str, int]
    metadata: dict[str, bytes]       # the model's metadata entries (e.g. TFLITE_METADATA)


def _tensor(i: int, t, buffers, types: dict[int, str]) -> Tensor:
    q = t.quantization
    scale = tuple(float(s) for s in (q.scale if q is not None and q.scale is not None else ()))
    zero = tuple(int(z) for z in (q.zeroPoint if q is not None and q.zeroPoint is not None else ()))
    data = buffers[t.buffer].data if 0 < t.buffer < len(buffers) else None
    shape = tuple(int(d) for d in (t.shape if t.shape is not None else ()))
    signature = tuple(int(d) for d in t.shapeSignature) if t.shapeSignature is not None else shape
    name = t.name.decode("utf-8", "replace") if isinstance(t.name, bytes) else str(t.name or "")
    return Tensor(i, name, types.get(t.type, f"type{t.type}"), shape, signature, scale, zero,
                  data is not None and len(data) > 0, data)


def graph_of(model) -> Graph:
    """The first subgraph (the one the interpreter runs) of a ModelT."""
    names, types = op_names(), type_names()
    sg = model.subgraphs[0]
    buffers = model.buffers or []
    tensors = tuple(_tensor(i, t, buffers, types) for i, t in enumerate(sg.tensors or []))
    ops = []
    for i, o in enumerate(sg.operators or []):
        code = model.operatorCodes[o.opcodeIndex]
        builtin = max(int(code.builtinCode), int(code.deprecatedBuiltinCode))
        custom = builtin == schema().BuiltinOperator.CUSTOM
        name = (code.customCode.decode("utf-8", "replace") if isinstance(code.customCode, bytes)
                else str(code.customCode)) if custom else names.get(builtin, f"BUILTIN_{builtin}")
        ops.append(Op(i, name, custom, tuple(int(x) for x in (o.inputs if o.inputs is not None else ())),
                      tuple(int(x) for x in (o.outputs if o.outputs is not None else ())), o.builtinOptions))
    sig_out: dict[str, int] = {}
    if model.signatureDefs and len(model.signatureDefs) == 1:
        for m in model.signatureDefs[0].outputs or []:
            key = m.name.decode() if isinstance(m.name, bytes) else str(m.name)
            sig_out[key] = int(m.tensorIndex)
    metadata = {}
    for m in model.metadata or []:
        key = m.name.decode() if isinstance(m.name, bytes) else str(m.name)
        data = buffers[m.buffer].data if m.buffer < len(buffers) else None
        metadata[key] = bytes(np.asarray(data, np.uint8)) if data is not None else b""
    return Graph(tensors, tuple(ops), tuple(int(x) for x in sg.inputs), tuple(int(x) for x in sg.outputs),
                 len(model.subgraphs), sig_out, metadata)


def load_graph(path: Path) -> tuple[Graph, int]:
    """The graph of the file at `path` and the file's size in bytes."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ModelError(f"{path} cannot be read: {exc.strerror or exc}",
                         "give the path of an existing .tflite file") from exc
    return graph_of(read_model(data, str(path))), len(data)
