"""In-place operations (``add_``, ``mul_``, ``x += y``, ``x[i] = v``, ``zero_``, ...).

An in-place op is its out-of-place twin whose result is written back into the tensor's own memory,
so views of it see the change, and whose version counter is bumped, so backward rules that saved the
old values refuse to use the new ones. When the graph is being recorded the tensor is rebased: the
out-of-place op is applied to a snapshot of the old value and its node becomes the tensor's node.

An in-place op on a view while recording rebases the view's base, as PyTorch's CopySlices does: the
base's new value is its old value with the view's elements replaced by the op's result (an
``index_put`` at the positions the view occupies in the base). So ``y[i] += v``, ``y[:, 0].mul_(w)`` or
``y.t()[1] = z`` on a non-leaf ``y`` carry their gradients. After any recorded in-place change to a
base, its live views (the changed one included) gather their elements from its new value
(:func:`refresh_views`), so they can be used, and changed again, as in PyTorch.

Refused, as in PyTorch: in-place on a leaf that requires grad or on a view of one (outside
``no_grad``), results that do not fit the tensor's shape, and results of a higher dtype kind (float
into an integer tensor). Also refused: in-place on a view while recording when the base's memory is not
one dense block (a base that is itself strided with gaps), where the view's positions can't be mapped.
"""

from __future__ import annotations

from collections.abc import Callable

from chainrule.autograd.grad_mode import GRAD_ENABLED, no_grad
from chainrule.backend import np, xp_of
from chainrule.dtypes import from_np
from chainrule.ops._helpers import Tensor, describe, wrap
from chainrule.ops.shape import as_view
from chainrule.tensor import STATE_EPOCH

__all__ = ["apply_inplace", "setitem", "inplace_ops", "inplace_method", "inplace_view"]


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
    if base is not None and base._node is None and base._rg:
        raise RuntimeError(
            f"{op}: a view ({describe(target)}) of a leaf tensor that requires grad ({describe(base)}) is being "
            "used in an in-place operation; wrap the update in `with chainrule.no_grad():` or use an "
            "out-of-place operation"
        )


def _write_back(target: Tensor, result: Tensor, op: str) -> None:
    _check_fits(target, result, op)
    target._data[...] = result._data


# In-place ops PyTorch lets write an expanded tensor (each memory location gets one value whatever the order)
_SAME_VALUE_WRITES = frozenset({"fill_", "zero_", "masked_fill_"})


def _check_fits(target: Tensor, result: Tensor, op: str) -> None:
    strides = target._data.strides
    if 0 in strides and op not in _SAME_VALUE_WRITES and any(s == 0 and n > 1 for s, n in zip(strides, target._data.shape)):
        # PyTorch refuses this; numpy marks such (broadcast) arrays read-only, but CuPy writes them silently
        raise RuntimeError(
            f"{op}: unsupported operation: more than one element of the written-to tensor ({describe(target)}, "
            "expanded) refers to a single memory location. Please clone() the tensor before performing the "
            "operation."
        )
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


def refresh_views(base: Tensor, also: Tensor | None = None) -> None:
    """After an in-place change to ``base`` recorded in the graph, its live views' graphs still say "a
    part of the old value": give each (and ``also``) a node that gathers its elements from the new
    value, as PyTorch regenerates a view's grad_fn. Ops that used a view before the change keep its
    original node and stay correct. A view whose elements can't be mapped to the base's (see
    :func:`_positions_in`) gets a node that refuses backward rather than losing gradients."""
    views, base._views = base._views, None
    live = [view for view in (ref() for ref in views or ()) if view is not None and view._node is not None]
    if also is not None and all(view is not also for view in live):
        live.append(also)
    current = wrap(base._data, base._rg, base._node).reshape(-1)
    for view in live:
        positions = _positions_in(base._data, view._data)
        if positions is None:
            view._node = _stale_view_node(view._node, view)
            continue
        view._node, view._rg = current[positions]._node, True
        STATE_EPOCH[0] += 1
        as_view(view, base)  # registered again, with its new node


def _stale_view_node(node, view: Tensor):
    from chainrule.autograd.graph import Node

    def refuse(g, _):
        raise RuntimeError(
            f"backward: a view ({node.op}) was used after an in-place change to the tensor it views, so its "
            "values no longer match its graph. Take the view again after the in-place operation (or modify "
            "a clone instead)."
        )

    return Node("stale_view", (node,), refuse, view._data)


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
    if target._base is not None:
        return _rebase_through_view(target, result, op)
    _write_back(target, result, op)
    target._node = result._node
    target._rg = result._rg
    STATE_EPOCH[0] += 1
    target._bump_version()
    if target._views:
        refresh_views(target)
    return target


def _rebase_through_view(view: Tensor, result: Tensor, op: str) -> Tensor:
    """Store ``result`` (the new value of ``view``, recorded) in the view and rebase its base: the base
    becomes ``index_put(old base, positions of the view, result)``, the view a gather of those positions."""
    from chainrule.ops.indexing import index_put

    base = view._base
    _check_fits(view, result, op)
    positions = _positions_in(base._data, view._data)
    if positions is None:
        raise RuntimeError(
            f"{op}: in-place modification of a view ({describe(view)}, a view of {describe(base)}) while "
            "recording gradients needs a base laid out as one dense block of memory; write through the base "
            "instead (x[index] = x[index] + value) or use an out-of-place operation"
        )
    old_base = wrap(base._data, base._rg, base._node)  # read (and copied) by index_put before the write below
    new_base = index_put(old_base.reshape(-1), positions, result).reshape(base.shape)
    view._data[...] = result._data
    base._node, base._rg = new_base._node, True
    STATE_EPOCH[0] += 1
    base._bump_version()
    refresh_views(base, also=view)
    return view


def _positions_in(base, view):
    """The flat (C-order) indices into ``base`` of each element of ``view``, an array that shares its
    memory, as an int64 tensor of the view's shape on their device; None when the base's memory is not one
    dense block in some axis order (the element addresses then can't be mapped back). The positions are
    worked out on the host from addresses and strides (metadata), then copied to the device once."""
    xp = xp_of(base)
    if base.size == 0 or not xp.may_share_memory(base, view):
        return None
    itemsize = base.itemsize
    offset = _address(view) - _address(base)
    if offset % itemsize or any(s % itemsize for s in view.strides):
        return None
    slot = np.full(view.shape, offset // itemsize, dtype=np.int64)  # memory slot of each element of the view
    for axis, (size, stride) in enumerate(zip(view.shape, view.strides)):
        steps = np.arange(size, dtype=np.int64) * (stride // itemsize)
        slot += steps.reshape((size,) + (1,) * (view.ndim - axis - 1))
    if slot.size and (slot.min() < 0 or slot.max() >= base.size):
        return None
    if not base.flags.c_contiguous:
        order = sorted(range(base.ndim), key=lambda k: -base.strides[k])
        if not base.transpose(order).flags.c_contiguous:  # gaps or negative strides: not one block
            return None
        # memory slot -> C-order index: the base's elements listed in memory order
        slot = np.arange(base.size).reshape(base.shape).transpose(order).reshape(-1)[slot]
    return wrap(xp.asarray(slot))


def _address(array) -> int:
    """The address of ``array``'s first element: CUDA's array interface on a GPU, numpy's on the host."""
    interface = getattr(array, "__cuda_array_interface__", None) or array.__array_interface__
    return interface["data"][0]


def setitem(target: Tensor, index, value) -> None:
    """``target[index] = value``: direct assignment when nothing is recorded, else index_put rebased."""
    from chainrule.ops.indexing import convert_index, index_put

    recording = GRAD_ENABLED[0] and (target._rg or (isinstance(value, Tensor) and value._rg))
    if not recording:
        _check_allowed(target, "setitem", False)
        idx, _, _ = convert_index(index, "setitem", target.device)
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
    from chainrule.ops._helpers import record, tensor_operand

    src = tensor_operand(src, "copy_", like=t)
    try:
        out = t.xp.broadcast_to(src._data.astype(t._data.dtype, copy=False), t.shape).copy()
    except ValueError:
        raise RuntimeError(f"copy_: source of {describe(src)} can't be broadcast to {describe(t)}") from None
    return record(out, "copy", (t, src), lambda g, _: (g * 0.0, g))


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


def inplace_method(name: str, fn: Callable) -> Callable:
    def method(self, *args, **kwargs):
        return apply_inplace(self, name, fn, *args, **kwargs)

    method.__name__ = name
    method.__doc__ = f"In-place version of ``{fn.__name__}``: stores the result in this tensor and returns it."
    return method


def inplace_view(name: str, view_fn: Callable) -> Callable:
    """``squeeze_``, ``t_``...: the tensor itself becomes its view ``view_fn(tensor, ...)`` (new shape, same
    memory); a recorded tensor takes the view's node, so gradients flow through the reshaping."""
    def method(self, *args, **kwargs):
        _check_allowed(self, name, GRAD_ENABLED[0] and self._rg)
        view = view_fn(self, *args, **kwargs)
        self._swap_data(view._data)
        if view._node is not None:
            self._node = view._node
        self._bump_version()
        return self

    method.__name__ = name
    method.__doc__ = f"In-place version of ``{view_fn.__name__}``: this tensor takes the new shape."
    return method


def inplace_ops() -> dict:
    """name -> Tensor method for every in-place op."""
    return {name: inplace_method(name, fn) for name, fn in _names().items()}
