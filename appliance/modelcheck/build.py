"""Write small TFLite models op by op (the taught-classes export and the check's tests use it).

`Builder` appends tensors, buffers and operators to a ModelT object tree, either a new one or one read
from an existing file, and serialises it; the schema's generated code does the flatbuffer encoding.
"""

import numpy as np

from appliance.modelcheck.graph import schema, write_model

DTYPES = {"float32": "FLOAT32", "int32": "INT32", "uint8": "UINT8", "int8": "INT8", "int64": "INT64"}


class Builder:
    """Grows one subgraph; `options` are the schema's *OptionsT objects, e.g. opts("Conv2D", strideW=1)."""

    def __init__(self, model=None) -> None:
        s = schema()
        if model is None:
            model = s.ModelT()
            model.version = 3
            model.operatorCodes, model.buffers = [], [s.BufferT()]
            sg = s.SubGraphT()
            sg.tensors, sg.operators, sg.inputs, sg.outputs, sg.name = [], [], [], [], "main"
            model.subgraphs = [sg]
        self.model = model
        self.sg = model.subgraphs[0]
        self.s = s

    def tensor(self, name: str, shape, dtype: str = "uint8", scale: float | None = None,
               zero_point: int = 0, data: np.ndarray | None = None, signature=None) -> int:
        t = self.s.TensorT()
        t.name, t.shape, t.type = name, [int(d) for d in shape], getattr(self.s.TensorType, DTYPES[dtype])
        if signature is not None:
            t.shapeSignature = [int(d) for d in signature]
        if scale is not None:
            q = self.s.QuantizationParametersT()
            q.scale, q.zeroPoint = [float(scale)], [int(zero_point)]
            t.quantization = q
        if data is not None:
            buf = self.s.BufferT()
            buf.data = np.frombuffer(np.ascontiguousarray(data, dtype=dtype).tobytes(), np.uint8)
            self.model.buffers.append(buf)
            t.buffer = len(self.model.buffers) - 1
        self.sg.tensors.append(t)
        return len(self.sg.tensors) - 1

    def _opcode(self, name: str) -> int:
        s = self.s
        custom = not hasattr(s.BuiltinOperator, name)
        code = s.BuiltinOperator.CUSTOM if custom else getattr(s.BuiltinOperator, name)
        for i, oc in enumerate(self.model.operatorCodes):
            if max(oc.builtinCode, oc.deprecatedBuiltinCode) == code and (
                    not custom or oc.customCode in (name, name.encode())):
                return i
        oc = s.OperatorCodeT()
        oc.builtinCode, oc.deprecatedBuiltinCode, oc.version = code, min(code, 127), 1
        if custom:
            oc.customCode = name
        self.model.operatorCodes.append(oc)
        return len(self.model.operatorCodes) - 1

    def op(self, name: str, inputs, outputs, options=None, version: int = 1) -> int:
        """Append operator `name` (a BuiltinOperator name, or a custom op's name)."""
        o = self.s.OperatorT()
        o.opcodeIndex = self._opcode(name)
        self.model.operatorCodes[o.opcodeIndex].version = max(self.model.operatorCodes[o.opcodeIndex].version,
                                                              version)
        o.inputs, o.outputs = [int(i) for i in inputs], [int(i) for i in outputs]
        if options is not None:
            kind = type(options).__name__.removesuffix("T")
            o.builtinOptionsType = getattr(self.s.BuiltinOptions, kind)
            o.builtinOptions = options
        self.sg.operators.append(o)
        return len(self.sg.operators) - 1

    def options(self, kind: str, **fields):
        """A *OptionsT object of the schema, e.g. options("Conv2DOptions", strideW=1, strideH=1)."""
        opt = getattr(self.s, kind + "T")()
        for key, value in fields.items():
            setattr(opt, key, value)
        return opt

    def io(self, inputs, outputs) -> None:
        self.sg.inputs, self.sg.outputs = [int(i) for i in inputs], [int(i) for i in outputs]

    def bytes(self) -> bytes:
        return write_model(self.model)
