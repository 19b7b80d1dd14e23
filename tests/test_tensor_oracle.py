"""Tensor creation, dtype inference, type promotion and printing compared with PyTorch."""

import itertools

import numpy as np
import pytest

import chainrule as cr

torch = pytest.importorskip("torch")

_DTYPES = ["float16", "float32", "float64", "int32", "int64", "bool", "uint8", "int8", "int16"]


def _name(dtype) -> str:
    return str(dtype).split(".")[-1]


@pytest.mark.parametrize("make", [
    lambda m: m.tensor([1.0, 2.0]), lambda m: m.tensor([1, 2]), lambda m: m.tensor([True]),
    lambda m: m.tensor([1, 2.5]), lambda m: m.tensor([True, 2]), lambda m: m.tensor(3.5), lambda m: m.tensor(7),
    lambda m: m.tensor([]), lambda m: m.tensor([[]]), lambda m: m.tensor(np.array([1, 2], dtype=np.int32)),
    lambda m: m.tensor(np.array([1.0], dtype=np.float16)), lambda m: m.tensor(np.float64(1.5)),
    lambda m: m.tensor(np.int32(1)), lambda m: m.as_tensor(np.ones(2)), lambda m: m.from_numpy(np.ones(2, np.int64)),
    lambda m: m.full((2,), 3), lambda m: m.full((2,), 3.0), lambda m: m.full((2,), False),
    lambda m: m.arange(5), lambda m: m.arange(0, 1, 0.1), lambda m: m.arange(5, 0, -1.5),
    lambda m: m.arange(2, dtype=m.float64), lambda m: m.linspace(-1, 1, 7), lambda m: m.eye(3, 2),
    lambda m: m.zeros(2, dtype=float), lambda m: m.zeros(2, dtype=int), lambda m: m.ones(2, 1, dtype=m.bool),
    lambda m: m.full_like(m.zeros(2, dtype=m.int64), 2.7), lambda m: m.ones_like(m.zeros(3, dtype=m.float16)),
])
def test_creation_matches_pytorch(make):
    mine, theirs = make(cr), make(torch)
    assert mine.shape == tuple(theirs.shape)
    assert mine.dtype.name == _name(theirs.dtype)
    np.testing.assert_allclose(mine.cpu().numpy().astype(np.float64), theirs.numpy().astype(np.float64),
                               rtol=1e-6, atol=1e-6)


def _sum_dtype(lib, a: str, a_dims: int, b: str, b_dims: int):
    x = lib.ones((2,) * a_dims, dtype=getattr(lib, a))
    y = lib.ones((2,) * b_dims, dtype=getattr(lib, b))
    return (x + y).dtype


def test_type_promotion_matches_pytorch_for_every_dtype_pair_and_rank():
    mismatches = []
    for a, b in itertools.product(_DTYPES, _DTYPES):
        for a_dims, b_dims in [(1, 1), (1, 0), (0, 1), (0, 0)]:
            mine, theirs = (_sum_dtype(m, a, a_dims, b, b_dims) for m in (cr, torch))
            if mine.name != _name(theirs):
                mismatches.append((a, a_dims, b, b_dims, mine.name, _name(theirs)))
    assert mismatches == []


@pytest.mark.parametrize("scalar", [True, 3, 2.5])
@pytest.mark.parametrize("dtype", _DTYPES)
def test_python_scalar_promotion_matches_pytorch(dtype, scalar):
    for shape in [(2,), ()]:
        mine = (cr.ones(shape, dtype=getattr(cr, dtype)) * scalar).dtype
        theirs = (torch.ones(shape, dtype=getattr(torch, dtype)) * scalar).dtype
        assert mine.name == _name(theirs)


_REPR_CASES = [
    lambda m: m.tensor([1.0, 2.5, 3.0]), lambda m: m.tensor([[1, 2], [3, 4]]), lambda m: m.tensor(3.0),
    lambda m: m.tensor([1e-5, 1.0]), lambda m: m.tensor([1e9, 1.0]), lambda m: m.tensor([True, False]),
    lambda m: m.tensor([1.0, 2.0], dtype=m.float64), lambda m: m.tensor([1, 2], dtype=m.int32),
    lambda m: m.tensor([1.0, 2.0], requires_grad=True), lambda m: m.tensor([1.0, 2.0], requires_grad=True) * 2,
    lambda m: m.tensor([1.0, 2.0], requires_grad=True).sum(), lambda m: m.zeros(0), lambda m: m.zeros(2, 0),
    lambda m: m.tensor([], dtype=m.int64), lambda m: m.tensor([float("nan"), float("-inf"), 1.5]),
    lambda m: m.tensor([1.0, 2.0], dtype=m.float16), lambda m: m.arange(2000.0), lambda m: m.tensor([0.0, -0.0]),
    lambda m: m.tensor([123456.7, 1.0]), lambda m: m.tensor(np.linspace(-3, 3, 35, dtype=np.float32).reshape(5, 7)),
    lambda m: m.tensor(np.arange(60, dtype=np.float32).reshape(3, 4, 5) / 7),
    lambda m: m.tensor(np.arange(4000, dtype=np.float32).reshape(40, 100) * 1.5),
    lambda m: m.tensor(np.arange(-50, 50).reshape(4, 25)), lambda m: m.tensor(np.random.default_rng(0).random(1500) > 0.5),
]


@pytest.mark.parametrize("case", range(len(_REPR_CASES)))
def test_repr_matches_pytorch_modulo_the_module_name(case):
    make = _REPR_CASES[case]
    with cr.device("cpu"):  # torch's tensors here are CPU ones; test_tensor.py checks the device suffix
        assert repr(make(cr)) == repr(make(torch)).replace("torch.", "chainrule.")
