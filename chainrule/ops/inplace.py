"""In-place operations (``add_``, ``mul_``, ``x += y``, ``x[i] = v``, ``zero_``, ...).

An in-place op is its out-of-place twin whose result is written back into the tensor's own memory,
so views of it see the change, and whose version counter is bumped, so backward rules that saved the
old values refuse to use the new ones. When the graph is being recorded the tensor is rebased: the
out-of-place op is applied to a snapshot of the old value and its node becomes the tensor's node.

Refused, as in PyTorch: in-place on a leaf that requires grad (outside ``no_grad``), results that do
not fit the tensor's shape, and results of a higher dtype kind (float into an integer tensor). Also
refused here: in-place on a view while recording (the base's graph is not rebased; write through the
base, ``x[i] = x[i] + v``, or use an out-of-place op).
"""

from __future__ import annotations

from collections.abc import Callable

from chainrule.autograd.grad_mode import GRAD_ENABLED, no_grad
from chainrule.dtypes import from_np
from chainrule.ops._helpers import Tensor, describe, wrap

__all__ = ["apply_inplace", "setitem", "INPLACE_OPS"]


def _check_allowed(target: Tensor, op: str, recording: bool) -> None:
    if not recording:
        return
    if target._node is None and target._rg:
        raise RuntimeError(
            f"{op}: a leaf tensor that requires grad ({describe(target)}) is being used in an in-place "
            "operation; wrap the update in `with chainrule.no_grad():` (as optimizers do) or use an "
            "out-of-place operation"
        )
    base = target._base
    if base is not None:
        # The view's new value would have to flow into its base's graph (PyTorch's CopySlices);
        # chainrule does not rebase views, so refuse rather than drop that gradient silently.
        raise RuntimeError(
            f"{op}: in-place modification of a view ({describe(target)}, a view of {describe(base)}) is not "
            "supported while recording gradients; write through the base instead, e.g. "
            "x[index] = x[index] + value rather than x[index] += value, or use an out-of-place operation"
        )


def _write_back(target: Tensor, result: Tensor, op: str) -> None:
    if result._data.shape != target._data.shape:
        raise RuntimeError(
            f"{op}: output with shape {tuple(target.shape)} doesn't match the broadcast shape "
            f"{tuple(result.shape)}"
        )
    if from_np(result._data.dtype)._kind > from_np(target._data.dtype)._kind:
        raise RuntimeError(
            f"{op}: result type {result.dtype} can't be cast to the desired output type {target.dtype} "
            "(in-place operations keep the tensor's dtype)"
        )
    target._data[...] = result._data


def invalidate_views(target: Tensor) -> None:
    """After an in-place change to ``target`` recorded in the graph, its views' data no longer match
    their graph (they still say "a slice of the old value"): give each live view a node that refuses
    backward, so an op using the view from now on cannot silently lose gradients. Ops that used a view
    before the change keep its original node and stay correct."""
    views, target._views = target._views, None
    for ref in views or ():
        view = ref()
        if view is not None and view._node is not None:
            view._node = _stale_view_node(view._node)


def _stale_view_node(node):
    from chainrule.autograd.graph import Node

    def refuse(g, _):
        raise RuntimeError(
            f"backward: a view ({node.op}) was used after an in-place change to the tensor it views, so its "
            "values no longer match its graph. Take the view again after the in-place operation (or modify "
            "a clone instead)."
        )

    return Node("stale_view", (node,), refuse, ())


def apply_inplace(target: Tensor, op: str, fn: Callable[..., Tensor], *args, **kwargs) -> Tensor:
    """Compute ``fn(target, *args)`` and store it in ``target``; returns ``target``."""
    others_rg = any(isinstance(x, Tensor) and x._rg for x in args)
    recording = GRAD_ENABLED[0] and (target._rg or others_rg)
    _check_allowed(target, op, recording)
    if not recording:
        with no_grad():
            result = fn(target, *args, **kwargs)
        _write_back(target, result, op)
        target._bump_version()
        return target
    snapshot = wrap(target._data.copy(), target._rg, target._node)
    result = fn(snapshot, *args, **kwargs)
    _write_back(target, result, op)
    target._node = result._node
    target._rg = result._rg
    target._bump_version()
    if target._views:
        invalidate_views(target)
    return target


def setitem(target: Tensor, index, value) -> None:
    """``target[index] = value``: direct assignment when nothing is recorded, else index_put rebased."""
    from chainrule.ops.indexing import convert_index, index_put

    recording = GRAD_ENABLED[0] and (target._rg or (isinstance(value, Tensor) and value._rg))
    if not recording:
        _check_allowed(target, "setitem", False)
        idx, _, _ = convert_index(index, "setitem")
        data = value._data if isinstance(value, Tensor) else value
        if isinstance(value, Tensor) and from_np(value._data.dtype)._kind > from_np(target._data.dtype)._kind:
            raise RuntimeError(f"setitem: can't assign {describe(value)} into a tensor of {describe(target)}")
        try:
            target._data[idx] = data
        except (IndexError, ValueError) as err:
            raise RuntimeError(
                f"setitem: can't assign {type(value).__name__} to index {index!r} of a tensor of {describe(target)}: {err}"
            ) from None
        target._bump_version()
        return
    apply_inplace(target, "setitem", index_put, index, value)


def _overwrite(t: Tensor, src) -> Tensor:
    """``src`` broadcast to ``t``'s shape and dtype: the out-of-place twin of fill_ and copy_.
    The old value of ``t`` gets a zero gradient; ``src`` gets the gradient, summed over broadcasting."""
    from chainrule.ops._helpers import record, reduce_to, tensor_operand

    src = tensor_operand(src, "copy_", like=t)
    try:
        out = t.xp.broadcast_to(src._data.astype(t._data.dtype, copy=False), t.shape).copy()
    except ValueError:
        raise RuntimeError(f"copy_: source of {describe(src)} can't be broadcast to {describe(t)}") from None
    return record(out, "copy", (t, src), lambda g, _: (g * 0.0, reduce_to(g, src)))


def _names():
    from chainrule.ops import elementwise as ew

    return {
        "add_": ew.add, "sub_": ew.sub, "mul_": ew.mul, "div_": ew.div, "pow_": ew.pow, "neg_": ew.neg,
        "abs_": ew.abs, "exp_": ew.exp, "log_": ew.log, "sqrt_": ew.sqrt, "clamp_": ew.clamp,
        "clip_": ew.clamp, "relu_": ew.relu, "sigmoid_": ew.sigmoid, "tanh_": ew.tanh,
        "floor_": ew.floor, "ceil_": ew.ceil, "round_": ew.round, "sign_": ew.sign,
        "reciprocal_": ew.reciprocal, "square_": ew.square, "lerp_": ew.lerp, "addcmul_": ew.addcmul,
        "addcdiv_": ew.addcdiv, "fill_": _overwrite, "copy_": _overwrite, "leaky_relu_": ew.leaky_relu,
        "nan_to_num_": ew.nan_to_num,
    }


def _make_method(name: str, fn: Callable) -> Callable:
    def method(self, *args, **kwargs):
        return apply_inplace(self, name, fn, *args, **kwargs)

    method.__name__ = name
    method.__doc__ = f"In-place version of ``{fn.__name__}``: stores the result in this tensor and returns it."
    return method


def INPLACE_OPS() -> dict:
    """name -> Tensor method for every in-place op."""
    return {name: _make_method(name, fn) for name, fn in _names().items()}
