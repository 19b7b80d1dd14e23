"""Dtype discipline without an oracle: float32 inputs give float32 outputs and float32 gradients,
first and second order, for every differentiable operation in the shared table (no silent float64
up-casts), and Python numbers never up-cast a tensor."""

import numpy as np
import pytest
from op_cases import CASES, as_tuple

import chainrule as cr

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")

_DIFFERENTIABLE = [c for c in CASES if c.differentiable and c.configs]


@pytest.mark.parametrize("dtype", [cr.float32, cr.float16], ids=["float32", "float16"])
@pytest.mark.parametrize("case", _DIFFERENTIABLE, ids=lambda c: f"{c.kind}-{c.name}")
def test_outputs_and_gradients_keep_the_input_float_dtype(case, dtype):
    if dtype == cr.float16 and "no_half" in case.tags:
        pytest.skip("no float16 linear algebra, as in PyTorch")
    if dtype is cr.float16 and "complex" in case.tags:
        pytest.skip("complex cases build complex tensors, and chainrule has no complex32 (PyTorch's is experimental)")
    for shapes, params in case.configs[:3]:
        xs = [cr.tensor(a, dtype=dtype, requires_grad=True) for a in case.inputs(shapes)]
        outs = [o for o in as_tuple(case.call(cr, *xs, **params)) if o.is_floating_point()]
        assert outs and all(o.dtype == dtype for o in outs), [o.dtype for o in outs]
        outs = [o for o in outs if o.requires_grad]
        if not outs:
            continue
        grads = cr.autograd.grad(outs, xs, grad_outputs=[cr.ones_like(o) for o in outs], allow_unused=True,
                                 create_graph=case.twice)
        assert all(g is None or g.dtype == dtype for g in grads), [g.dtype for g in grads if g is not None]
        if case.twice:
            second = [g for g in grads if g is not None and g.requires_grad]
            if second:
                gg = cr.autograd.grad(sum((g * g).sum() for g in second), xs, allow_unused=True)
                assert all(h is None or h.dtype == dtype for h in gg), [h.dtype for h in gg if h is not None]


@pytest.mark.parametrize("scalar", [2, 2.5, -1, 0.5, True])
def test_python_numbers_never_up_cast_a_float32_tensor(scalar):
    x = cr.tensor([1.0, 2.0], requires_grad=True)
    results = [x + scalar, scalar + x, scalar * x, x / scalar, x ** scalar, cr.maximum(x, cr.tensor(scalar)),
               cr.where(x > 1, x, scalar), cr.clamp(x, min=scalar), cr.masked_fill(x, x > 1, scalar)]
    if not isinstance(scalar, bool):  # subtracting a bool is refused, as in PyTorch
        results.append(x - scalar)
    assert [r.dtype for r in results] == [cr.float32] * len(results)
    sum(r.sum() for r in results).backward()
    assert x.grad.dtype == cr.float32


def test_integer_tensors_with_float_numbers_take_the_default_float_dtype():
    n = cr.tensor([1, 2, 3])
    assert (n * 2.5).dtype == cr.float32
    assert (n / 2).dtype == cr.float32
    assert (n + 2).dtype == cr.int64
    cr.set_default_dtype(cr.float64)
    try:
        assert (n * 2.5).dtype == cr.float64
        assert cr.exp(n).dtype == cr.float64
    finally:
        cr.set_default_dtype(cr.float32)


def test_gradient_of_a_dtype_conversion_comes_back_in_the_source_dtype():
    x = cr.tensor([1.0, 2.0], requires_grad=True)
    (x.double() * 3).sum().backward()
    assert x.grad.dtype == cr.float32
    np.testing.assert_array_equal(x.grad.cpu().numpy(), [3.0, 3.0])
