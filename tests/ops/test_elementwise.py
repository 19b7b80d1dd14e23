"""Elementwise operations: float64 gradcheck and gradgradcheck of every case in the shared table
(broadcasting, 0-d, size-one and zero-size shapes, number operands), plus the points where the
derivative needs care (0 ** b, integer powers, number bases)."""

import math

import numpy as np
import pytest
from op_cases import check_gradients, gradcheck_params

import chainrule as cr
from chainrule.autograd import gradcheck, gradgradcheck


@pytest.mark.parametrize("case, shapes, params", gradcheck_params("elementwise"))
def test_gradcheck(case, shapes, params):
    check_gradients(case, shapes, params)


@pytest.mark.parametrize("case, shapes, params", gradcheck_params("elementwise", twice_only=True))
def test_gradgradcheck(case, shapes, params):
    check_gradients(case, shapes, params, second_order=True)


def leaf(values):
    return cr.tensor(values, dtype=cr.float64, requires_grad=True)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # 0 ** -1 and log 0, masked out by the rule
def test_pow_exponent_gradient_at_zero_base_is_zero_for_nonnegative_exponents():
    base, exponent = leaf([0.0, 0.0, 2.0]), leaf([2.0, 0.0, 3.0])
    (base ** exponent).sum().backward()
    # d(0 ** b)/db = 0 ** b * log 0 is taken as its limit 0 (PyTorch does the same)
    np.testing.assert_allclose(exponent.grad.cpu().numpy(), [0.0, 0.0, 8.0 * np.log(2.0)])
    np.testing.assert_allclose(base.grad.cpu().numpy(), [0.0, 0.0, 12.0])


def test_pow_of_the_same_tensor_in_base_and_exponent():
    x = leaf([0.5, 1.5, 2.0])
    assert gradcheck(lambda t: t ** t, [x])
    assert gradgradcheck(lambda t: t ** t, [x])


@pytest.mark.parametrize("exponent", [2, 3, -1, 0.5, 0])
def test_pow_scalar_exponent_matches_closed_form(exponent):
    x = leaf([0.5, 1.5, 2.0])
    (x ** exponent).sum().backward()
    np.testing.assert_allclose(x.grad.cpu().numpy(), exponent * np.array([0.5, 1.5, 2.0]) ** (exponent - 1))


def test_division_by_a_number_and_of_a_number():
    x = leaf([0.5, -2.0])
    assert gradgradcheck(lambda t: 3.0 / t + t / 4.0, [x])


def test_add_and_sub_with_alpha():
    a, b = leaf([1.0, 2.0]), leaf([3.0, 5.0])
    out = cr.sub(cr.add(a, b, alpha=2), b, alpha=0.5)
    out.sum().backward()
    np.testing.assert_allclose(out.detach().cpu().numpy(), [5.5, 9.5])
    np.testing.assert_allclose(b.grad.cpu().numpy(), [1.5, 1.5])


def test_the_same_tensor_in_both_operands_accumulates():
    x = leaf([1.0, -2.0, 3.0])
    (x * x + x).sum().backward()
    np.testing.assert_allclose(x.grad.cpu().numpy(), 2 * np.array([1.0, -2.0, 3.0]) + 1)


def test_gradient_of_a_broadcast_operand_is_summed_to_its_shape():
    row, col = leaf([[1.0, 2.0, 3.0]]), leaf([[1.0], [10.0]])
    (row * col).sum().backward()
    assert row.grad.shape == (1, 3) and col.grad.shape == (2, 1)
    np.testing.assert_allclose(row.grad.cpu().numpy(), [[11.0, 11.0, 11.0]])
    np.testing.assert_allclose(col.grad.cpu().numpy(), [[6.0], [6.0]])


def test_operands_that_do_not_require_grad_get_none():
    x, c = leaf([1.0, 2.0]), cr.tensor([3.0, 4.0], dtype=cr.float64)
    (x * c).sum().backward()
    assert c.grad is None
    np.testing.assert_allclose(x.grad.cpu().numpy(), [3.0, 4.0])


def test_operators_reach_the_same_primitives():
    a, b = cr.tensor([1.5, -2.0]), cr.tensor([0.5, 4.0])
    for op, fn in [(a + b, cr.add), (a - b, cr.sub), (a * b, cr.mul), (a / b, cr.div), (a ** b.abs(), None)]:
        if fn is not None:
            np.testing.assert_array_equal(op.cpu().numpy(), fn(a, b).cpu().numpy())
    np.testing.assert_array_equal((-a).cpu().numpy(), cr.neg(a).cpu().numpy())
    np.testing.assert_array_equal(abs(a).cpu().numpy(), cr.abs(a).cpu().numpy())
    np.testing.assert_array_equal((2.0 ** a).cpu().numpy(), cr.pow(2.0, a).cpu().numpy())


def test_erf_is_accurate_over_the_whole_line():
    x = np.concatenate([np.linspace(-7.0, 7.0, 2001), [0.0, 1e-300, -1e-20, 0.4999999, 0.5, 30.0, np.inf, -np.inf]])
    expected = np.array([math.erf(v) for v in x])
    got = cr.erf(cr.tensor(x, dtype=cr.float64)).cpu().numpy()
    np.testing.assert_allclose(got, expected, rtol=2e-15, atol=1e-300)
    got32 = cr.erf(cr.tensor(x.astype(np.float32))).cpu().numpy()
    assert got32.dtype == np.float32
    np.testing.assert_allclose(got32, expected.astype(np.float32), rtol=1e-6, atol=1e-7)


def test_exact_gelu_is_x_times_the_normal_cdf():
    x = np.array([-3.0, -0.5, 0.0, 0.7, 4.0])
    expected = [v * 0.5 * (1 + math.erf(v / math.sqrt(2))) for v in x]
    np.testing.assert_allclose(cr.gelu(cr.tensor(x, dtype=cr.float64)).cpu().numpy(), expected, rtol=1e-14)
