"""Dtype discipline against PyTorch: type promotion of integer, bool and half inputs for every
operation in the shared table, of every pair of tensor dtypes (0-d and dimensioned) for the binary
operations, and of Python numbers on either side. Either both libraries refuse an input or both
give the same dtype and values (where torch merely lacks a kernel for a dtype, chainrule may
compute it in a floating dtype)."""

import itertools

import numpy as np
import pytest
from op_cases import CASES, TORCH, attempt, compare_forward_with_torch, int_inputs, same_outcome

import chainrule as cr

torch = pytest.importorskip("torch")

pytestmark = [pytest.mark.oracle, pytest.mark.filterwarnings("ignore::RuntimeWarning"),
              pytest.mark.filterwarnings("ignore::UserWarning")]

_CASES = [c for c in CASES if c.configs and "int_sum_to_int64" not in c.tags]


@pytest.mark.parametrize("dtype", [np.int64, np.int32, np.bool_, np.float16], ids=["int64", "int32", "bool", "float16"])
@pytest.mark.parametrize("case", _CASES, ids=lambda c: f"{c.kind}-{c.name}")
def test_integer_bool_and_half_inputs_follow_torch(case, dtype):
    if dtype == np.float16 and "no_half" in case.tags:
        pytest.skip("no float16 linear algebra, as in PyTorch")
    if dtype is np.float16 and "complex" in case.tags:
        pytest.skip("complex cases build complex tensors, and chainrule has no complex32 (PyTorch's is experimental)")
    for shapes, params in case.configs[:2]:
        compare_forward_with_torch(case, int_inputs(case, shapes, dtype), params)


_DTYPES = ["bool", "int8", "int32", "int64", "float16", "float32", "float64"]


def _both(fn, *arrays):
    """fn on chainrule tensors and on torch tensors made from the same arrays."""
    return (attempt(fn, cr, *[cr.tensor(a) for a in arrays]),
            attempt(fn, TORCH, *[torch.tensor(a) for a in arrays]))


def _values(dtype: str, ndim: int):
    arr = np.array([1, 2, 3])[:1 if ndim == 0 else 3].reshape(() if ndim == 0 else (3,))
    return arr.astype(bool) if dtype == "bool" else arr.astype(dtype)


_BINARY = {
    "add": lambda m, a, b: m.add(a, b), "sub": lambda m, a, b: m.sub(a, b), "mul": lambda m, a, b: m.mul(a, b),
    "div": lambda m, a, b: m.div(a, b), "pow": lambda m, a, b: m.pow(a, b),
    "maximum": lambda m, a, b: m.maximum(a, b), "minimum": lambda m, a, b: m.minimum(a, b),
    "remainder": lambda m, a, b: m.remainder(a, b), "floor_divide": lambda m, a, b: m.floor_divide(a, b),
    "atan2": lambda m, a, b: m.atan2(a, b), "eq": lambda m, a, b: m.eq(a, b), "lt": lambda m, a, b: m.lt(a, b),
    "where": lambda m, a, b: m.where(m.tensor(True), a, b),
    "clamp": lambda m, a, b: m.clamp(a, min=b), "cat": lambda m, a, b: m.cat([a.reshape(-1), b.reshape(-1)]),
    "matmul": lambda m, a, b: m.matmul(a.reshape(1, -1), b.reshape(-1, 1)),
}


@pytest.mark.parametrize("name", list(_BINARY))
def test_promotion_of_every_pair_of_tensor_dtypes_follows_torch(name):
    fn = _BINARY[name]
    for (da, na), (db, nb) in itertools.product(itertools.product(_DTYPES, (0, 1)), repeat=2):
        if name == "matmul" and (na != nb or da != db):
            continue  # matmul refuses mixed dtypes (tested in test_op_errors); 0-d matmul is refused too
        arrays = (_values(da, na), _values(db, nb))
        half = "float16" in (da, db)
        same_outcome(f"{name}({da} {na}-d, {db} {nb}-d)", *_both(fn, *arrays),
                     rtol=2e-3 if half else 1e-6, atol=1e-3 if half else 1e-7)


_SCALAR_OPS = {
    "x + s": lambda x, s: x + s, "s + x": lambda x, s: s + x, "x - s": lambda x, s: x - s,
    "s - x": lambda x, s: s - x, "x * s": lambda x, s: x * s, "x / s": lambda x, s: x / s,
    "s / x": lambda x, s: s / x, "x ** s": lambda x, s: x ** s, "s ** x": lambda x, s: s ** x,
    "x // s": lambda x, s: x // s, "x % s": lambda x, s: x % s, "x == s": lambda x, s: x == s,
    "x < s": lambda x, s: x < s,
}


@pytest.mark.parametrize("op", list(_SCALAR_OPS))
def test_python_numbers_adopt_the_tensor_dtype_as_in_torch(op):
    fn = _SCALAR_OPS[op]
    for dtype, ndim, scalar in itertools.product(_DTYPES, (0, 1), (2, 2.5, True, -3, 0.5)):
        x = _values(dtype, ndim)
        half = dtype == "float16"
        same_outcome(f"{op} with x {dtype} {ndim}-d, s = {scalar!r}",
                     attempt(fn, cr.tensor(x), scalar), attempt(fn, torch.tensor(x), scalar),
                     rtol=2e-3 if half else 1e-6, atol=1e-3 if half else 1e-7)


@pytest.mark.parametrize("make", [
    lambda m, x: m.where(x > 1, x, 0.5), lambda m, x: m.clamp(x, 0.5, 2.5), lambda m, x: m.clamp(x, min=1),
    lambda m, x: m.masked_fill(x, x > 1, 7.5), lambda m, x: m.add(x, 2, alpha=3), lambda m, x: m.lerp(x, x * 2, 0.5),
    lambda m, x: m.sum(x), lambda m, x: m.prod(x), lambda m, x: m.cumsum(x, 0), lambda m, x: m.mean(x),
    lambda m, x: m.amax(x), lambda m, x: m.argmax(x), lambda m, x: m.exp(x), lambda m, x: m.sigmoid(x),
    lambda m, x: m.abs(x), lambda m, x: m.neg(x), lambda m, x: m.sqrt(x), lambda m, x: m.var(x),
])
@pytest.mark.parametrize("dtype", ["bool", "int32", "int64", "float16", "float32"])
def test_mixed_calls_follow_torch(make, dtype):
    x = _values(dtype, 1)
    half = dtype == "float16"
    same_outcome(f"on {dtype}", *_both(make, x), rtol=2e-3 if half else 1e-6, atol=1e-3 if half else 1e-7)
