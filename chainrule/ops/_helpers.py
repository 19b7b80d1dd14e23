"""What every op module shares: operand conversion with PyTorch's type promotion, untracked results,
and dimension checks with clear errors. (Undoing broadcasting in backward is the engine's: see
:meth:`chainrule.autograd.graph.Node.apply`.)"""

from __future__ import annotations

from numbers import Number

from chainrule import dtypes as _dt
from chainrule.autograd.graph import record
from chainrule.autograd.provenance import note_origin
from chainrule.backend import ARRAY_TYPES, xp_of
from chainrule.tensor import Tensor, wrap

__all__ = ["record", "wrap", "Tensor", "tensor_operand", "binary_operands", "scalar_operand", "norm_dim",
           "norm_dims", "describe", "float_operand", "untracked", "refuse_complex"]


def untracked(out, like: Tensor, op: str | None = None, inputs: tuple = ()) -> Tensor:
    """A result that never carries a graph (comparisons, indices, integer results) as a tensor; with
    ``op``, it remembers that it came from ``inputs`` (default ``like``) for explanations
    (:mod:`chainrule.autograd.provenance`).

    numpy returns a scalar, not a 0-d array, for an operation on 0-d input; it is made an array of
    ``like``'s namespace again, as :func:`record` does for tracked results.
    """
    if type(out) not in ARRAY_TYPES:
        out = xp_of(like._data).asarray(out)
    result = wrap(out)
    if op is not None:
        note_origin(result, op, inputs or (like,))
    return result


def describe(t: Tensor) -> str:
    return f"shape {tuple(t.shape)}, {t.dtype}"


def tensor_operand(x, op: str, like: Tensor | None = None) -> Tensor:
    """``x`` as a Tensor (numbers, lists and arrays are converted; they never require grad)."""
    if isinstance(x, Tensor):
        return x
    from chainrule.creation import as_tensor

    try:
        if like is not None and isinstance(x, Number) and not isinstance(x, bool):
            return as_tensor(x, dtype=_dt.scalar_result_type(like.dtype, x), device=like.device)
        return as_tensor(x, device=like.device if like is not None else None)
    except (TypeError, ValueError) as err:
        raise TypeError(f"{op}: expected a Tensor or a number, got {type(x).__name__} ({err})") from None


def _same_device(a: Tensor, b: Tensor, op: str) -> tuple[Tensor, Tensor]:
    """PyTorch's rule for operands on two devices: a 0-d CPU tensor counts as a number and joins the other
    operand's device; anything else is refused."""
    if a.device.type == "cpu" and a._data.ndim == 0:
        return a.to(b.device), b
    if b.device.type == "cpu" and b._data.ndim == 0:
        return a, b.to(a.device)
    raise RuntimeError(
        f"{op}: Expected all tensors to be on the same device, but found at least two devices, {a.device} and "
        f"{b.device}! ({describe(a)} and {describe(b)}; move one with .to(device))")


def binary_operands(a, b, op: str) -> tuple[Tensor, Tensor]:
    """Two tensors of one dtype and device from two operands (tensors, numbers or arrays)."""
    if not isinstance(a, Tensor):
        a = tensor_operand(a, op, like=b if isinstance(b, Tensor) else None)
    if not isinstance(b, Tensor):
        b = tensor_operand(b, op, like=a)
    if type(a._data) is not type(b._data):
        a, b = _same_device(a, b, op)
    da, db = a._data.dtype, b._data.dtype
    if da == db:
        return a, b
    dtype = _dt.result_type(_dt.from_np(da), a._data.ndim, _dt.from_np(db), b._data.ndim)
    return a.to(dtype), b.to(dtype)


def scalar_operand(a: Tensor, value, op: str) -> Tensor:
    """The tensor to combine with the Python number ``value``: ``a`` itself, or ``a`` cast up when
    the number is of a higher kind (int tensor * 2.5 -> float, bool tensor + 1 -> int64)."""
    if a._data.dtype.kind == "f" and type(value) is not complex:  # the common case: a float tensor keeps its dtype
        return a
    dtype = _dt.scalar_result_type(_dt.from_np(a._data.dtype), value)
    return a if dtype.np == a._data.dtype else a.to(dtype)


def refuse_complex(op: str, *operands) -> None:
    """Operations that need an order (comparisons, max, relu, sort, rounding) refuse complex input, as
    PyTorch does (NotImplementedError, a RuntimeError): complex numbers have none."""
    for x in operands:
        if type(x) is complex or (isinstance(x, Tensor) and x._data.dtype.kind == "c"):
            what = describe(x) if isinstance(x, Tensor) else f"the number {x}"
            raise NotImplementedError(
                f"{op}: not supported for complex input ({what}): complex numbers have no order; "
                "apply it to .abs(), .real or .imag instead"
            )


def float_operand(a, op: str) -> Tensor:
    """Operations defined on floats (and complex numbers: exp, log, ...) promote integer input to the default float."""
    if not isinstance(a, Tensor):
        a = tensor_operand(a, op)
    if a._data.dtype.kind not in "fc":
        return a.to(_dt.get_default_dtype())
    return a


def norm_dim(dim: int, ndim: int, op: str) -> int:
    """A dimension index in [0, ndim), accepting negatives; a 0-d tensor accepts 0 and -1."""
    size = max(ndim, 1)
    if not isinstance(dim, int) or isinstance(dim, bool):
        raise TypeError(f"{op}: dim must be an int, got {type(dim).__name__}")
    if not -size <= dim < size:
        raise IndexError(
            f"{op}: dimension out of range (expected to be in range of [{-size}, {size - 1}], but got {dim})"
        )
    return dim % size if ndim else 0


def norm_dims(dim, ndim: int, op: str) -> tuple[int, ...]:
    """``dim`` (None, int, or a tuple/list of ints) as a sorted tuple of distinct non-negative dims."""
    if dim is None:
        return tuple(range(ndim))
    if isinstance(dim, int):
        return (norm_dim(dim, ndim, op),) if ndim else ()
    dims = tuple(norm_dim(d, ndim, op) for d in dim)
    if len(set(dims)) != len(dims):
        raise RuntimeError(f"{op}: dim {tuple(dim)} appears multiple times in the list of dims")
    return tuple(sorted(dims)) if ndim else ()
