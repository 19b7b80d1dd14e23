"""Linear algebra primitives: matmul (with batch broadcasting and PyTorch's 1-D rules), mm, bmm,
dot, outer, einsum."""

from __future__ import annotations

import string

from chainrule.backend import gemm, xp_of
from chainrule.ops._helpers import Tensor, describe, record, tensor_operand

__all__ = ["matmul", "mm", "bmm", "dot", "vdot", "outer", "einsum", "inner", "cdist"]


def _same_dtype(op: str, a: Tensor, b: Tensor) -> None:
    if a._data.dtype != b._data.dtype:
        raise RuntimeError(
            f"{op}: expected both operands to have the same dtype, but got {a.dtype} and {b.dtype} "
            f"(shapes {tuple(a.shape)} and {tuple(b.shape)}); convert one with .to(dtype)"
        )
    if type(a._data) is not type(b._data):
        raise RuntimeError(f"{op}: Expected all tensors to be on the same device, but found at least two devices, "
                           f"{a.device} and {b.device}! (shapes {tuple(a.shape)} and {tuple(b.shape)}; move one "
                           "with .to(device))")


def _matmul_error(op: str, a: Tensor, b: Tensor) -> RuntimeError:
    inner_a = a.shape[-1]
    inner_b = b.shape[-2] if b.ndim > 1 else b.shape[0]
    return RuntimeError(
        f"{op}: shapes {tuple(a.shape)} and {tuple(b.shape)} cannot be multiplied ({inner_a} != {inner_b}, "
        "or the batch dims do not broadcast)"
    )


def matmul(a, b) -> Tensor:
    """Matrix product with PyTorch's rules: 1-D operands are treated as a row (left) or a column
    (right) vector and that dim is removed again; leading dims broadcast."""
    a, b = tensor_operand(a, "matmul"), tensor_operand(b, "matmul")
    if a.ndim == 0 or b.ndim == 0:
        raise RuntimeError(f"matmul: both arguments need at least 1 dimension, got {describe(a)} and {describe(b)}")
    _same_dtype("matmul", a, b)
    if a.ndim == 1 or b.ndim == 1:
        left = a.unsqueeze(0) if a.ndim == 1 else a
        right = b.unsqueeze(-1) if b.ndim == 1 else b
        out = _matmul_nd(left, right, "matmul", a, b)
        if b.ndim == 1:
            out = out.squeeze(-1)
        if a.ndim == 1:  # the row dim is last once the column dim is gone
            out = out.squeeze(-1 if b.ndim == 1 else -2)
        return out
    return _matmul_nd(a, b, "matmul", a, b)


def _matmul_nd(a: Tensor, b: Tensor, op: str, orig_a: Tensor, orig_b: Tensor) -> Tensor:
    """The primitive: both operands have >= 2 dims."""
    if a.shape[-1] != b.shape[-2]:
        raise _matmul_error(op, orig_a, orig_b)
    try:
        out = gemm.matmul(a._data, b._data)
    except ValueError:
        raise _matmul_error(op, orig_a, orig_b) from None

    def rule(g, _):
        return (g @ _adjoint(b) if a._rg else None,
                _matrix_grad(a, b, g) if b._rg else None)

    return record(out, "matmul", (a, b), rule, (a, b))


def _matrix_grad(a: Tensor, b: Tensor, g: Tensor) -> Tensor:
    """The gradient of ``b`` in ``a @ b``, adjoint(a) @ g; for a stack of real matrices ``a`` times one matrix
    ``b``, the sum over the stack as one product of folded rows (not a stack of products the engine sums)."""
    if b.ndim == 2 and a.ndim > 2 and a._data.dtype.kind != "c":
        return a.reshape(-1, a.shape[-1]).mT @ g.reshape(-1, g.shape[-1])
    return _adjoint(a) @ g


def _adjoint(m: Tensor) -> Tensor:
    """The conjugate transpose of the last two dims (the transpose for real matrices): matmul's rule
    for PyTorch's complex gradients."""
    return m.mT.conj_physical() if m._data.dtype.kind == "c" else m.mT


def mm(a, b) -> Tensor:
    a, b = tensor_operand(a, "mm"), tensor_operand(b, "mm")
    if a.ndim != 2 or b.ndim != 2:
        raise RuntimeError(f"mm: both arguments must be 2-D matrices, got {describe(a)} and {describe(b)}")
    _same_dtype("mm", a, b)
    return _matmul_nd(a, b, "mm", a, b)


def bmm(a, b) -> Tensor:
    a, b = tensor_operand(a, "bmm"), tensor_operand(b, "bmm")
    if a.ndim != 3 or b.ndim != 3 or a.shape[0] != b.shape[0]:
        raise RuntimeError(
            f"bmm: both arguments must be 3-D with the same batch size, got {describe(a)} and {describe(b)}"
        )
    _same_dtype("bmm", a, b)
    return _matmul_nd(a, b, "bmm", a, b)


def dot(a, b) -> Tensor:
    a, b = tensor_operand(a, "dot"), tensor_operand(b, "dot")
    if a.ndim != 1 or b.ndim != 1 or a.shape[0] != b.shape[0]:
        raise RuntimeError(
            f"dot: expects two 1-D tensors of the same size, got {describe(a)} and {describe(b)}"
        )
    _same_dtype("dot", a, b)
    return matmul(a, b)


def vdot(a, b) -> Tensor:
    """The dot product with the first vector conjugated (``dot`` for real vectors)."""
    a, b = tensor_operand(a, "vdot"), tensor_operand(b, "vdot")
    if a.ndim != 1 or b.ndim != 1 or a.shape[0] != b.shape[0]:
        raise RuntimeError(f"vdot: expects two 1-D tensors of the same size, got {describe(a)} and {describe(b)}")
    return dot(a.conj_physical(), b)


def inner(a, b) -> Tensor:
    """Sum of products over the last dims: the result has shape ``a.shape[:-1] + b.shape[:-1]``
    (a 0-d operand just scales the other)."""
    a, b = tensor_operand(a, "inner"), tensor_operand(b, "inner")
    if a.ndim == 0 or b.ndim == 0:
        return a * b
    _same_dtype("inner", a, b)
    if a.shape[-1] != b.shape[-1]:
        raise RuntimeError(
            f"inner: the last dims must match, got shapes {tuple(a.shape)} and {tuple(b.shape)} "
            f"({a.shape[-1]} != {b.shape[-1]})"
        )
    left = string.ascii_lowercase[:a.ndim - 1]
    right = string.ascii_lowercase[a.ndim - 1:a.ndim + b.ndim - 2]
    return einsum(f"{left}z,{right}z->{left}{right}", a, b)


def outer(a, b) -> Tensor:
    a, b = tensor_operand(a, "outer"), tensor_operand(b, "outer")
    if a.ndim != 1 or b.ndim != 1:
        raise RuntimeError(f"outer: expects two 1-D tensors, got {describe(a)} and {describe(b)}")
    return a.unsqueeze(1) * b.unsqueeze(0)


# ----- einsum ---------------------------------------------------------------------------------------

def _parse_einsum(equation: str, operands: list) -> tuple[list[str], str]:
    """Explicit subscripts per operand and for the output, with '...' spelled out in spare letters."""
    eq = equation.replace(" ", "")
    lhs, arrow, rhs = eq.partition("->")
    terms = lhs.split(",")
    if len(terms) != len(operands):
        raise RuntimeError(f"einsum: equation {equation!r} names {len(terms)} operands but {len(operands)} were given")
    used = set(eq) - {".", ",", "-", ">"}
    spare = [c for c in string.ascii_uppercase + string.ascii_lowercase if c not in used]
    n_ellipsis = 0
    for term, x in zip(terms, operands):
        if "..." in term:
            n_ellipsis = max(n_ellipsis, x.ndim - (len(term) - 3))
    ell = "".join(spare[:n_ellipsis])
    subs = []
    for term, x in zip(terms, operands):
        if "..." in term:
            k = x.ndim - (len(term) - 3)
            term = term.replace("...", ell[n_ellipsis - k:] if k else "")
        if len(term) != x.ndim:
            raise RuntimeError(
                f"einsum: the subscript {term!r} has {len(term)} letters but its operand has {x.ndim} dims"
            )
        subs.append(term)
    if arrow:
        out = rhs.replace("...", ell)
    else:
        letters = "".join(subs)
        out = ell + "".join(sorted(c for c in set(letters) if letters.count(c) == 1 and c not in ell))
    return subs, out


def einsum(equation: str, *operands) -> Tensor:
    """Einstein summation, differentiable in every operand (one einsum per operand in backward).

    Subscripts repeated within one operand ('ii->i', 'ii->') take a diagonal; its gradient is put
    back on the diagonal.
    """
    if len(operands) == 1 and isinstance(operands[0], (list, tuple)):
        operands = tuple(operands[0])
    operands = tuple(tensor_operand(x, "einsum") for x in operands)
    subs, out_subs = _parse_einsum(equation, operands)
    xp = xp_of(operands[0]._data)
    full = ",".join(subs) + "->" + out_subs
    try:
        out = xp.einsum(full, *[x._data for x in operands], optimize=len(operands) > 2)
    except ValueError as err:
        shapes = ", ".join(str(tuple(x.shape)) for x in operands)
        raise RuntimeError(f"einsum: {equation!r} does not fit operands of shapes {shapes}: {err}") from None

    def rule(g, _):
        grads = []
        for k, x in enumerate(operands):
            if not x._rg:
                grads.append(None)
                continue
            others = [g] + [y for j, y in enumerate(operands) if j != k]
            other_subs = [out_subs] + [s for j, s in enumerate(subs) if j != k]
            present = set("".join(other_subs))
            size = dict(zip(subs[k], x.shape))
            unique = "".join(dict.fromkeys(subs[k]))
            target = "".join(c for c in unique if c in present)
            grad = einsum(",".join(other_subs) + "->" + target, *others)
            if target != unique:  # letters only in operand k were summed out: broadcast back
                grad = grad.reshape([size[c] if c in present else 1 for c in unique]).expand([size[c] for c in unique])
            if unique != subs[k]:
                grad = _onto_diagonal(grad, unique, subs[k], size)
            grads.append(grad)
        return tuple(grads)

    return record(out, "einsum", operands, rule, operands)


def _onto_diagonal(grad: Tensor, unique: str, sub: str, size: dict) -> Tensor:
    """The gradient of an operand whose subscripts ``sub`` repeat a letter (a diagonal was taken):
    ``grad`` (subscripts ``unique``) placed on that diagonal, zeros elsewhere. Each repeat gets a
    fresh letter tied to the first by an identity matrix, so this is one differentiable einsum."""
    from chainrule.creation import eye

    spare = iter(c for c in string.ascii_letters if c not in sub)
    seen, spelled, eye_subs, eyes = set(), "", [], []
    for c in sub:
        if c in seen:
            fresh = next(spare)
            spelled += fresh
            eye_subs.append(c + fresh)
            eyes.append(eye(size[c], dtype=grad.dtype, device=grad.device))
        else:
            seen.add(c)
            spelled += c
    return einsum(",".join([unique, *eye_subs]) + "->" + spelled, grad, *eyes)


def cdist(x1, x2, p: float = 2.0, compute_mode: str = "use_mm_for_euclid_dist_if_necessary") -> Tensor:
    """p-norm distances between the rows of x1 (..., P, M) and of x2 (..., R, M): (..., P, R). A composite.
    p = 2 uses the matmul form sqrt(max(|a|^2 - 2 a.b + |b|^2, 0)) when asked, or (PyTorch's default) when
    P or R exceeds 25, and ||a - b|| over the broadcast differences otherwise; other p take the differences."""
    x1, x2 = tensor_operand(x1, "cdist"), tensor_operand(x2, "cdist")
    for name, x in (("X1", x1), ("X2", x2)):
        if x._data.dtype.kind != "f":
            raise RuntimeError(f"cdist only supports floating-point dtypes, {name} got: {x.dtype}")
    if x1.ndim < 2 or x2.ndim < 2:
        raise RuntimeError(f"cdist only supports at least 2D tensors, {'X1' if x1.ndim < 2 else 'X2'} got: "
                           f"{min(x1.ndim, x2.ndim)}D")
    if x1.shape[-1] != x2.shape[-1]:
        raise RuntimeError(f"X1 and X2 must have the same number of columns. X1: {x1.shape[-1]} X2: {x2.shape[-1]}")
    if p < 0:
        raise RuntimeError("cdist only supports non-negative p values")
    modes = ("use_mm_for_euclid_dist_if_necessary", "use_mm_for_euclid_dist", "donot_use_mm_for_euclid_dist")
    if compute_mode not in modes:
        raise ValueError(f"{compute_mode} is not a valid value for compute_mode")
    _same_dtype("cdist", x1, x2)
    rows1, rows2 = x1.shape[-2], x2.shape[-2]
    use_mm = p == 2 and (compute_mode == "use_mm_for_euclid_dist" or (
        compute_mode == modes[0] and (rows1 > 25 or rows2 > 25)))
    if use_mm:
        sq1 = (x1 * x1).sum(-1, keepdim=True)
        sq2 = (x2 * x2).sum(-1, keepdim=True)
        return (sq1 - 2 * matmul(x1, x2.mT) + sq2.mT).clamp(min=0).sqrt()
    diff = x1.unsqueeze(-2) - x2.unsqueeze(-3)
    return diff.norm(p, -1)
