"""Function transforms over the tape, as ``torch.func`` (public as ``chainrule.func``): grad,
value_and_grad, vjp, jvp, jacrev (alias jacobian), hessian. They nest: hessian is the Jacobian of
the gradient. (``chainrule.autograd.functional`` has the ``torch.autograd.functional`` forms.)

Each transform re-roots its arguments: an argument that already requires grad (we are inside an
outer transform) is passed through an identity node so the outer transform can still differentiate
through it; otherwise it becomes a fresh leaf.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from chainrule.autograd.engine import grad as _grad
from chainrule.autograd.graph import record
from chainrule.tensor import Tensor, wrap

__all__ = ["grad", "value_and_grad", "vjp", "jvp", "jacrev", "jacobian", "hessian"]


def _reroot(x: Tensor) -> Tensor:
    if x.requires_grad:
        return record(x._data, "alias", (x,), lambda g, _: (g,))
    return wrap(x._data).requires_grad_(True)


def _argnums_tuple(argnums) -> tuple:
    return (argnums,) if isinstance(argnums, int) else tuple(argnums)


def _nested(args) -> bool:
    return any(isinstance(a, Tensor) and a.requires_grad for a in args)


def value_and_grad(fn: Callable, argnums: int | Sequence[int] = 0, has_aux: bool = False) -> Callable:
    """A function returning ``(fn(*args), d fn / d args[argnums])``; fn must return a scalar tensor
    (or ``(scalar, aux)`` with ``has_aux``)."""
    nums = _argnums_tuple(argnums)

    def wrapped(*args):
        nested = _nested(args)
        args = list(args)
        for i in nums:
            args[i] = _reroot(args[i])
        result = fn(*args)
        value, aux = result if has_aux else (result, None)
        if not isinstance(value, Tensor) or value.numel() != 1:
            raise RuntimeError(f"grad: the function must return a one-element tensor, got {type(value).__name__}"
                               f"{'' if not isinstance(value, Tensor) else ' of shape ' + str(tuple(value.shape))}")
        grads = _grad(value, [args[i] for i in nums], create_graph=nested, allow_unused=True,
                      materialize_grads=True)
        grads = grads[0] if isinstance(argnums, int) else tuple(grads)
        if not nested:
            value = value.detach()
            aux = _detach_tree(aux)
        return ((value, aux), grads) if has_aux else (value, grads)

    return wrapped


def _detach_tree(obj):
    """``obj`` with every tensor in it (through tuples, lists and dicts) detached."""
    if isinstance(obj, Tensor):
        return obj.detach()
    if isinstance(obj, (tuple, list)):
        return type(obj)(_detach_tree(o) for o in obj)
    if isinstance(obj, dict):
        return {k: _detach_tree(v) for k, v in obj.items()}
    return obj


def grad(fn: Callable, argnums: int | Sequence[int] = 0, has_aux: bool = False) -> Callable:
    """A function returning the gradient of scalar-valued ``fn`` with respect to ``args[argnums]``."""
    vg = value_and_grad(fn, argnums, has_aux)

    def wrapped(*args):
        (value, grads) = vg(*args)
        return (grads, value[1]) if has_aux else grads

    return wrapped


def vjp(fn: Callable, *primals: Tensor):
    """``(fn(*primals), vjp_fn)`` where ``vjp_fn(v)`` gives v^T J for each primal."""
    nested = _nested(primals)
    args = [_reroot(p) for p in primals]
    out = fn(*args)

    def vjp_fn(v: Tensor) -> tuple:
        return _grad(out, args, grad_outputs=v, retain_graph=True, create_graph=nested or v.requires_grad,
                     allow_unused=True, materialize_grads=True)

    return (out if nested else out.detach()), vjp_fn


def jvp(fn: Callable, primals: Sequence[Tensor], tangents: Sequence[Tensor]):
    """``(fn(*primals), J @ tangents)`` by the double-vjp trick: u -> J^T u is linear in u, so the
    vjp of that map at any u, applied to the tangents, is J v."""
    primals, tangents = tuple(primals), tuple(tangents)
    nested = _nested(primals) or _nested(tangents)
    args = [_reroot(p) for p in primals]
    out = fn(*args)
    u = wrap(out.xp.zeros_like(out._data)).requires_grad_(True)
    g = _grad(out, args, grad_outputs=u, create_graph=True, allow_unused=True, materialize_grads=True)
    pairs = [(gi, t) for gi, t in zip(g, tangents) if gi.requires_grad]
    if not pairs:
        return (out if nested else out.detach()), wrap(out.xp.zeros_like(out._data))
    (jv,) = _grad([p for p, _ in pairs], u, grad_outputs=[t for _, t in pairs], create_graph=nested,
                  allow_unused=True, materialize_grads=True)
    return (out if nested else out.detach()), jv


def jacrev(fn: Callable, argnums: int | Sequence[int] = 0) -> Callable:
    """A function returning the Jacobian of ``fn`` (shape ``out.shape + arg.shape``), one
    vector-Jacobian product per output element."""
    nums = _argnums_tuple(argnums)

    def wrapped(*args):
        from chainrule.ops.shape import stack

        nested = _nested(args)
        args = list(args)
        for i in nums:
            args[i] = _reroot(args[i])
        out = fn(*args)
        flat = out.reshape(-1)
        per_arg = [[] for _ in nums]
        for j in range(flat.shape[0]):
            grads = _grad(flat[j], [args[i] for i in nums], retain_graph=True, create_graph=nested,
                          allow_unused=True, materialize_grads=True)
            for rows, g in zip(per_arg, grads):
                rows.append(g)
        jacobians = []
        for rows, i in zip(per_arg, nums):
            shape = tuple(out.shape) + tuple(args[i].shape)
            jac = stack(rows).reshape(shape) if rows else wrap(out.xp.zeros(shape, dtype=out._data.dtype))
            jacobians.append(jac)
        return jacobians[0] if isinstance(argnums, int) else tuple(jacobians)

    return wrapped


jacobian = jacrev


def hessian(fn: Callable, argnums: int | Sequence[int] = 0) -> Callable:
    """A function returning the Hessian of scalar-valued ``fn``: the Jacobian of its gradient."""
    return jacrev(grad(fn, argnums), argnums)
