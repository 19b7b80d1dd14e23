"""``chainrule.onnx.export``: a model to an ONNX file, with PyTorch's argument names, checked by onnx and
optionally run in onnxruntime against chainrule's own forward."""

from __future__ import annotations

import os

from chainrule import nn
from chainrule.backend import np
from chainrule.onnx.graph import ExportError, GraphBuilder
from chainrule.onnx.modules import convert
from chainrule.tensor import Tensor

__all__ = ["export", "verify", "IR_VERSION", "MIN_OPSET", "MAX_OPSET"]

MIN_OPSET, MAX_OPSET = 17, 23  # 17: LayerNormalization; 23: the newest all current runtimes read
# The lowest IR version that carries each opset, so runtimes older than the onnx package still load the file
# (onnx stamps its own newest IR, which e.g. onnxruntime before 1.20 refuses).
IR_VERSION = {17: 8, 18: 8, 19: 9, 20: 9, 21: 10, 22: 10, 23: 11}
_TWO_GB = 2**31


def export(model: nn.Module, args, f=None, *, input_names=None, output_names=None, dynamic_axes=None,
           opset_version: int = 18, verify: bool = False, external_data: bool | None = None):
    """Write ``model`` (run in eval mode on the example ``args``) as an ONNX graph to ``f``; returns the ModelProto.

    ``dynamic_axes`` maps an input or output name to the axes that may vary, ``{"idx": {0: "batch", 1: "seq"}}``
    (or a list of axes, named ``<name>_dim<k>``). Initializers carry the state-dict keys. ``verify=True`` runs
    the file in onnxruntime (or onnx's reference evaluator without it) on ``args`` and raises on a mismatch.
    ``external_data`` puts the weights in ``<f>.data`` (default: only when they pass protobuf's 2 GB limit).
    """
    onnx = _import_onnx()
    args = args if isinstance(args, tuple) else (args,)
    _check_arguments(model, args, opset_version)
    input_names = list(input_names or ["input"])
    if len(input_names) != len(args):
        raise ExportError(f"onnx export: {len(input_names)} input_names for {len(args)} example inputs")
    was_training = model.training
    model.eval()
    try:
        from chainrule.autograd import no_grad

        with no_grad():
            expected = model(*args)
        graph = _build_graph(model, args, expected, input_names, output_names, dynamic_axes or {}, opset_version)
    finally:
        model.train(was_training)
    proto = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", opset_version)],
                                   producer_name="chainrule", producer_version=_version())
    proto.ir_version = IR_VERSION[opset_version]
    big = sum(t.ByteSize() for t in proto.graph.initializer) >= _TWO_GB
    if big and not external_data and external_data is not None:
        raise ExportError("onnx export: the weights pass protobuf's 2 GB limit; pass external_data=True")
    if f is not None:
        _save(onnx, proto, os.fspath(f), external=big if external_data is None else external_data)
        onnx.checker.check_model(os.fspath(f), full_check=True)
    else:
        onnx.checker.check_model(proto, full_check=True)
    if verify:
        if f is None:
            raise ExportError("onnx export: verify=True needs a file path f")
        _verified(f, model, args)
    return proto


def verify(path, model: nn.Module, args, rtol: float = 1e-4, atol: float = 1e-5) -> float:
    """Run the ONNX file at ``path`` on ``args`` (onnxruntime, else onnx's reference evaluator) and compare with
    ``model``'s eval-mode forward; returns the largest absolute difference, raises ExportError beyond tolerance."""
    args = args if isinstance(args, tuple) else (args,)
    return _verified(path, model, args, rtol, atol)[1]


def _verified(path, model, args, rtol: float = 1e-4, atol: float = 1e-5):
    from chainrule.autograd import no_grad

    was_training = model.training
    model.eval()
    try:
        with no_grad():
            outputs = model(*args)
    finally:
        model.train(was_training)
    expected = [o.cpu().numpy() for o in (outputs if isinstance(outputs, (tuple, list)) else (outputs,))]
    got = _run(os.fspath(path), [a.cpu().numpy() for a in args])  # onnxruntime reads host arrays
    gap = 0.0
    for want, have in zip(expected, got):
        if want.shape != have.shape:
            raise ExportError(f"onnx verify: output shape {have.shape} differs from chainrule's {want.shape}")
        gap = max(gap, float(np.max(np.abs(want.astype(np.float64) - have), initial=0.0)))
        if not np.allclose(have, want, rtol=rtol, atol=atol):
            raise ExportError(f"onnx verify: {path} differs from chainrule's forward by up to {gap:.3g} "
                              f"(rtol={rtol}, atol={atol})")
    return got, gap


def _run(path: str, feeds: list) -> list:
    import onnx

    model = onnx.load(path)
    names = [i.name for i in model.graph.input]
    try:
        import onnxruntime
    except ImportError:
        from onnx.reference import ReferenceEvaluator

        return ReferenceEvaluator(model).run(None, dict(zip(names, feeds)))
    session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
    return session.run(None, dict(zip(names, feeds)))


def _import_onnx():
    try:
        import onnx
    except ImportError:
        raise ImportError("chainrule.onnx.export needs the onnx package: pip install 'chainrule[onnx]'") from None
    return onnx


def _version() -> str:
    from chainrule._version import __version__

    return __version__


def _check_arguments(model, args, opset_version) -> None:
    if not isinstance(model, nn.Module):
        raise TypeError(f"onnx export: expected a chainrule nn.Module, got {type(model).__name__}")
    if not (isinstance(opset_version, int) and MIN_OPSET <= opset_version <= MAX_OPSET):
        raise ExportError(f"onnx export: opset_version must be an int from {MIN_OPSET} to {MAX_OPSET}, "
                          f"got {opset_version!r}")
    if len(args) != 1:
        raise ExportError(f"onnx export: the module-walk exporter takes models of one input, got {len(args)} inputs")
    for i, a in enumerate(args):
        if not isinstance(a, Tensor):
            raise TypeError(f"onnx export: example input {i} must be a Tensor, got {type(a).__name__}")


def _state_names(model) -> dict[int, str]:
    names = {}
    for key, tensor in [*model.named_parameters(), *model.named_buffers()]:
        names.setdefault(id(tensor), key)  # a tied parameter keeps its first name
    return names


def _build_graph(model, args, expected, input_names, output_names, dynamic_axes, opset):
    onnx = _import_onnx()
    output_names = list(output_names or ["output"])
    unknown = set(dynamic_axes) - set(input_names) - set(output_names)
    if unknown:
        raise ExportError(f"onnx export: dynamic_axes names {sorted(unknown)} are neither inputs {input_names} "
                          f"nor outputs {output_names}")
    g = GraphBuilder(opset, _state_names(model), _float_dtype(model, args))
    for name, a in zip(input_names, args):
        g.ranks[name] = a.ndim
    out = convert(g, model, input_names[0])
    outputs = expected if isinstance(expected, (tuple, list)) else (expected,)
    if len(outputs) != 1:
        raise ExportError(f"onnx export: models with {len(outputs)} outputs are not supported yet (one output)")
    g.nodes.append(onnx.helper.make_node("Identity", [out], [output_names[0]], name="output"))
    inputs = [_value_info(onnx, n, a, dynamic_axes.get(n)) for n, a in zip(input_names, args)]
    outs = [_value_info(onnx, output_names[0], outputs[0], dynamic_axes.get(output_names[0]))]
    return onnx.helper.make_graph(g.nodes, type(model).__name__, inputs, outs, list(g.initializers.values()))


def _float_dtype(model, args):
    """The float type the graph computes in: the parameters', else the inputs', else float32."""
    floats = [t.dtype.np for t in [*model.parameters(), *args] if t.dtype.is_floating_point]
    return floats[0] if floats else np.float32


def _value_info(onnx, name: str, example: Tensor, axes):
    if isinstance(axes, (list, tuple)):
        axes = {a: f"{name}_dim{a}" for a in axes}
    axes = {a % max(example.ndim, 1): sym for a, sym in (axes or {}).items()}
    dims = [axes.get(i, size) for i, size in enumerate(example.shape)]
    elem = onnx.helper.np_dtype_to_tensor_dtype(np.dtype(example.dtype.np))
    return onnx.helper.make_tensor_value_info(name, elem, dims)


def _save(onnx, proto, path: str, external: bool) -> None:
    if external:
        onnx.save(proto, path, save_as_external_data=True, all_tensors_to_one_file=True,
                  location=os.path.basename(path) + ".data", size_threshold=0)
    else:
        onnx.save(proto, path)
