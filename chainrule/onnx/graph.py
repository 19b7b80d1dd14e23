"""The ONNX graph under construction: nodes in order, initializers named after the model's state-dict keys,
anonymous constants, and the rank of every value (which some converters need to choose an ONNX form).

Everything that writes ONNX goes through :class:`GraphBuilder`, so the converters never touch protobuf, and a
different front end (a trace of the forward's ops instead of a walk over modules) can drive the same builder.
"""

from __future__ import annotations

from chainrule.backend import np

__all__ = ["GraphBuilder", "ExportError", "UnsupportedModuleError"]


class ExportError(RuntimeError):
    """A model or argument that cannot be exported to ONNX; the message says which and why."""


class UnsupportedModuleError(ExportError):
    """A module with no ONNX converter: register one with ``chainrule.onnx.register``."""


class GraphBuilder:
    """Collects the nodes and tensors of one ONNX graph.

    ``names`` maps ``id(tensor)`` to its state-dict key, so a parameter shared by two modules (tied embeddings)
    becomes one initializer, used twice.
    """

    def __init__(self, opset: int, names: dict[int, str], float_dtype=np.float32):
        import onnx  # the optional dependency, imported only when exporting

        self.onnx = onnx
        self.opset = opset
        self.nodes: list = []
        self.initializers: dict[str, object] = {}
        self.ranks: dict[str, int] = {}
        self._names = names
        self._taken: set[str] = set(names.values())
        self._count = 0
        self.path = ""  # the dotted name of the module being converted, for error messages
        self.float_dtype = np.dtype(float_dtype)  # the model's float type, which constants must share

    def fresh(self, hint: str) -> str:
        """A value name not used yet (ONNX graphs are in SSA form: every name is assigned once)."""
        self._count += 1
        name = f"{hint}_{self._count}"
        self._taken.add(name)
        return name

    def op(self, op_type: str, inputs: list[str], rank: int | None, *, outputs: int = 1, hint: str | None = None,
           **attrs) -> str | list[str]:
        """Append the node ``op_type(inputs)`` and return its output name (a list when ``outputs > 1``).
        ``rank`` is the rank of the outputs when known."""
        names = [self.fresh(hint or op_type.lower()) for _ in range(outputs)]
        self.nodes.append(self.onnx.helper.make_node(op_type, inputs, names, name=f"{op_type}_{self._count}", **attrs))
        for name in names:
            if rank is not None:
                self.ranks[name] = rank
        return names[0] if outputs == 1 else names

    def param(self, tensor) -> str:
        """The initializer holding a parameter or buffer of the model, under its state-dict key."""
        key = self._names.get(id(tensor))
        if key is None:
            raise ExportError("onnx export: a tensor used by the model is not one of its parameters or buffers")
        if key not in self.initializers:
            array = tensor.detach().numpy(force=True)
            self.initializers[key] = self.onnx.numpy_helper.from_array(np.ascontiguousarray(array), key)
            self.ranks[key] = array.ndim
        return key

    def const(self, value, dtype=None, hint: str = "const") -> str:
        """An anonymous constant initializer (a shape, an axis list, a scalar factor); floats take the model's
        float type unless ``dtype`` says otherwise."""
        array = np.asarray(value, dtype=dtype or self.float_dtype)
        name = self.fresh(hint)
        self.initializers[name] = self.onnx.numpy_helper.from_array(array, name)
        self.ranks[name] = array.ndim
        return name

    def rank(self, name: str) -> int:
        if name not in self.ranks:
            raise ExportError(f"onnx export: the rank of value {name!r} is unknown here")
        return self.ranks[name]
