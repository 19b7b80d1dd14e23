"""Linear algebra: float64 gradcheck and gradgradcheck of every case in the shared table (matmul's
1-D and batch-broadcast rules, mm, bmm, dot, outer, inner, einsum contractions with ellipses and
diagonals), plus the result shapes of matmul's rules and einsum against matmul."""

import numpy as np
import pytest
from op_cases import check_gradients, gradcheck_params

import chainrule as cr
from chainrule.autograd import gradgradcheck


@pytest.mark.parametrize("case, shapes, params", gradcheck_params("linalg"))
def test_gradcheck(case, shapes, params):
    check_gradients(case, shapes, params)


@pytest.mark.parametrize("case, shapes, params", gradcheck_params("linalg", twice_only=True))
def test_gradgradcheck(case, shapes, params):
    check_gradients(case, shapes, params, second_order=True)


@pytest.mark.parametrize("a, b, expected", [
    ((3,), (3,), ()), ((3,), (3, 2), (2,)), ((2, 3), (3,), (2,)), ((4, 2, 3), (3,), (4, 2)),
    ((3,), (4, 3, 2), (4, 2)), ((2, 1, 2, 3), (5, 3, 4), (2, 5, 2, 4)), ((0, 3), (3, 2), (0, 2)),
])
def test_matmul_result_shapes_follow_pytorch_rules(a, b, expected):
    out = cr.matmul(cr.ones(*a), cr.ones(*b))
    assert out.shape == expected
    np.testing.assert_array_equal(out.cpu().numpy(), np.full(expected, 3.0 if 0 not in a else 0.0))


def test_batch_broadcast_gradient_is_summed_over_the_broadcast_batch():
    a = cr.ones(2, 2, 3, requires_grad=True)
    w = cr.ones(3, 4, requires_grad=True)
    (a @ w).sum().backward()
    assert w.grad.shape == (3, 4)
    np.testing.assert_array_equal(w.grad.cpu().numpy(), np.full((3, 4), 4.0))


def test_attention_contractions_agree_with_matmul():
    rng = np.random.default_rng(0)
    q, k, v = (cr.tensor(rng.standard_normal((2, 3, 4, 5))) for _ in range(3))
    scores = cr.einsum("bhqd,bhkd->bhqk", q, k)
    np.testing.assert_allclose(scores.cpu().numpy(), (q @ k.mT).cpu().numpy(), rtol=1e-5)
    out = cr.einsum("bhqk,bhkd->bhqd", scores, v)
    np.testing.assert_allclose(out.cpu().numpy(), (scores @ v).cpu().numpy(), rtol=1e-5)


def test_bilinear_contraction_second_order():
    rng = np.random.default_rng(1)
    x1, w, x2 = (cr.tensor(rng.standard_normal(s), requires_grad=True) for s in [(2, 3), (2, 3, 2), (2, 2)])
    assert gradgradcheck(lambda a, b, c: cr.einsum("bi,oij,bj->bo", a, b, c), [x1, w, x2])


def test_einsum_diagonal_gradient_lands_on_the_diagonal():
    x = cr.tensor(np.arange(9.0).reshape(3, 3), requires_grad=True)
    cr.einsum("ii->", x).backward()
    np.testing.assert_array_equal(x.grad.cpu().numpy(), np.eye(3))
