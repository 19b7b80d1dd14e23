"""``torch.autograd.functional``: derivatives of a function at a point, returned as tensors.

``vjp``, ``jvp``, ``jacobian``, ``hessian``, ``vhp`` and ``hvp`` take ``(func, inputs, ...)`` where
``inputs`` is a tensor or a tuple of tensors, and return results shaped like PyTorch's: per input
(and per output, for Jacobians), a single tensor when ``inputs`` was a single tensor. Results are
detached unless ``create_graph=True``. ``strict``, ``vectorize`` and the strategy arguments are
accepted for compatibility and ignored (an input the output does not depend on gets zeros).
(The composable ``torch.func`` forms are in ``chainrule.func``.)
"""

from __future__ import annotations

from collections.abc import Callable

from chainrule.autograd.engine import grad as _grad
from chainrule.autograd.graph import record
from chainrule.tensor import Tensor, wrap

__all__ = ["vjp", "jvp", "jacobian", "hessian", "vhp", "hvp"]


def _as_tuple(x, what: str, fn_name: str) -> tuple[bool, tuple]:
    is_tuple = isinstance(x, (tuple, list))
    items = tuple(x) if is_tuple else (x,)
    for i, t in enumerate(items):
        if not isinstance(t, Tensor):
            raise TypeError(f"{fn_name}: {what} {i} must be a Tensor, got {type(t).__name__}")
    return is_tuple, items


def _prepare(inputs: tuple, create_graph: bool) -> tuple:
    """Fresh leaves that require grad; with ``create_graph`` an input that requires grad stays
    connected to its graph (through an identity node), so the result can be differentiated further."""
    out = []
    for t in inputs:
        if create_graph and t._rg:
            out.append(record(t._data, "alias", (t,), lambda g, _: (g,)))
        else:
            out.append(wrap(t._data).requires_grad_(t.dtype.is_floating_point))
    return tuple(out)


def _finish(results: tuple, is_tuple: bool, create_graph: bool):
    results = tuple(r if create_graph or r is None else r.detach() for r in results)
    return results if is_tuple else results[0]


def _grads(outputs, inputs, grad_outputs, create_graph: bool, retain_graph: bool | None = None) -> tuple:
    return _grad(outputs, inputs, grad_outputs=grad_outputs, retain_graph=retain_graph, create_graph=create_graph,
                 allow_unused=True, materialize_grads=True)


def _call(func: Callable, inputs: tuple, fn_name: str) -> tuple[bool, tuple]:
    return _as_tuple(func(*inputs), "output", fn_name)


def _check_v(v, like: tuple, fn_name: str, what: str) -> tuple:
    if v is None:
        if any(t.numel() != 1 for t in like):
            raise RuntimeError(
                f"{fn_name}: v can be omitted only when every {what} has a single element; got shapes "
                f"{[tuple(t.shape) for t in like]}"
            )
        return tuple(wrap(t.xp.ones_like(t._data)) for t in like)
    _, v = _as_tuple(v, "v", fn_name)
    if len(v) != len(like) or any(a.shape != b.shape for a, b in zip(v, like)):
        raise RuntimeError(
            f"{fn_name}: v must match the {what}s in number and shape: got {[tuple(t.shape) for t in v]}, "
            f"expected {[tuple(t.shape) for t in like]}"
        )
    return v


def vjp(func: Callable, inputs, v=None, create_graph: bool = False, strict: bool = False):
    """``(func(inputs), v^T J)``: the vector-Jacobian product, one gradient per input."""
    is_tuple, inputs = _as_tuple(inputs, "input", "vjp")
    inputs = _prepare(inputs, create_graph)
    out_is_tuple, outputs = _call(func, inputs, "vjp")
    v = _check_v(v, outputs, "vjp", "output")
    grads = _grads(list(outputs), list(inputs), list(v), create_graph)
    return _finish(outputs, out_is_tuple, create_graph), _finish(grads, is_tuple, create_graph)


def jvp(func: Callable, inputs, v=None, create_graph: bool = False, strict: bool = False):
    """``(func(inputs), J v)``: the Jacobian-vector product, one tensor per output, by the
    double-vjp trick (u -> J^T u is linear, so its vjp with v is J v)."""
    is_tuple, inputs = _as_tuple(inputs, "input", "jvp")
    inputs = _prepare(inputs, create_graph)
    v = _check_v(v, inputs, "jvp", "input")
    out_is_tuple, outputs = _call(func, inputs, "jvp")
    dummies = [wrap(o.xp.zeros_like(o._data)).requires_grad_(True) for o in outputs]
    transposed = _grads(list(outputs), list(inputs), dummies, create_graph=True)
    pairs = [(g, t) for g, t in zip(transposed, v) if g.requires_grad]
    if not pairs:
        products = tuple(wrap(o.xp.zeros_like(o._data)) for o in outputs)
    else:
        products = _grads([g for g, _ in pairs], dummies, [t for _, t in pairs], create_graph)
    return _finish(outputs, out_is_tuple, create_graph), _finish(products, out_is_tuple, create_graph)


def jacobian(func: Callable, inputs, create_graph: bool = False, strict: bool = False, vectorize: bool = False,
             strategy: str = "reverse-mode"):
    """The Jacobian of ``func`` at ``inputs``, of shape ``output.shape + input.shape`` per pair:
    a tensor for one input and one output, else tuples (outer: outputs, inner: inputs)."""
    from chainrule.ops.shape import stack

    is_tuple, inputs = _as_tuple(inputs, "input", "jacobian")
    inputs = _prepare(inputs, create_graph)
    out_is_tuple, outputs = _call(func, inputs, "jacobian")
    per_output = []
    for out in outputs:
        flat = out.reshape(-1)
        rows = [_grads(flat[j], list(inputs), None, create_graph, retain_graph=True) for j in range(flat.shape[0])]
        blocks = []
        for k, x in enumerate(inputs):
            shape = tuple(out.shape) + tuple(x.shape)
            block = stack([r[k] for r in rows]).reshape(shape) if rows else wrap(x.xp.zeros(shape, dtype=x._data.dtype))
            blocks.append(block)
        per_output.append(_finish(tuple(blocks), is_tuple, create_graph))
    return tuple(per_output) if out_is_tuple else per_output[0]


def _gradient_fn(func: Callable, fn_name: str) -> Callable:
    """The gradient of scalar-valued ``func`` as a function of the inputs, kept differentiable."""
    def gradient(*inputs):
        out_is_tuple, outputs = _call(func, inputs, fn_name)
        if out_is_tuple or outputs[0].numel() != 1:
            raise RuntimeError(f"{fn_name}: the function must return a single one-element tensor")
        return _grads(outputs[0], list(inputs), None, create_graph=True)

    return gradient


def hessian(func: Callable, inputs, create_graph: bool = False, strict: bool = False, vectorize: bool = False,
            outer_jacobian_strategy: str = "reverse-mode"):
    """The Hessian of scalar-valued ``func``: the Jacobian of its gradient (a tensor for one input,
    else a tuple of tuples of blocks)."""
    is_tuple, inputs = _as_tuple(inputs, "input", "hessian")
    gradient = _gradient_fn(func, "hessian")
    result = jacobian(lambda *xs: gradient(*xs), inputs, create_graph=create_graph)
    return result if is_tuple else result[0][0]


def vhp(func: Callable, inputs, v=None, create_graph: bool = False, strict: bool = False):
    """``(func(inputs), v^T H)`` for scalar-valued ``func``."""
    is_tuple, inputs = _as_tuple(inputs, "input", "vhp")
    inputs = _prepare(inputs, create_graph)
    value = func(*inputs)
    if not isinstance(value, Tensor) or value.numel() != 1:
        raise RuntimeError("vhp: the function must return a single one-element tensor")
    grads = _grads(value, list(inputs), None, create_graph=True)
    v = _check_v(v, inputs, "vhp", "input")
    products = _grads(list(grads), list(inputs), list(v), create_graph)
    return _finish((value,), False, create_graph), _finish(products, is_tuple, create_graph)


def hvp(func: Callable, inputs, v=None, create_graph: bool = False, strict: bool = False):
    """``(func(inputs), H v)`` for scalar-valued ``func``: the jvp of its gradient."""
    is_tuple, inputs = _as_tuple(inputs, "input", "hvp")
    gradient = _gradient_fn(func, "hvp")
    value = func(*_prepare(inputs, False))
    _, products = jvp(lambda *xs: tuple(gradient(*xs)), inputs, v, create_graph=create_graph)
    return _finish((value,), False, create_graph), products if is_tuple else products[0]
