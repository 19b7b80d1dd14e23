"""Reductions: float64 gradcheck and gradgradcheck of every case in the shared table (dim as None,
an int, a tuple, negative; keepdim; 0-d and zero-size inputs), plus the gradients that need
care: products with zeros, std of a constant slice, numpy's axis/keepdims spellings."""

import numpy as np
import pytest
from op_cases import check_gradients, gradcheck_params

import chainrule as cr
from chainrule.autograd import gradcheck, gradgradcheck

# empty slices reduce to -inf (logsumexp) or to 0 whose p-norm gradient is infinite: numpy warns
pytestmark = pytest.mark.filterwarnings("ignore:divide by zero:RuntimeWarning",
                                        "ignore:invalid value:RuntimeWarning")


@pytest.mark.parametrize("case, shapes, params", gradcheck_params("reduction"))
def test_gradcheck(case, shapes, params):
    check_gradients(case, shapes, params)


@pytest.mark.parametrize("case, shapes, params", gradcheck_params("reduction", twice_only=True))
def test_gradgradcheck(case, shapes, params):
    check_gradients(case, shapes, params, second_order=True)


def leaf(values):
    return cr.tensor(values, dtype=cr.float64, requires_grad=True)


@pytest.mark.parametrize("values", [[2.0, 0.0, 3.0, 4.0], [0.0, 5.0, 0.0, 2.0], [0.0, 0.0, 0.0, 1.5]])
def test_prod_gradients_are_exact_with_zeros(values):
    x = leaf([values, values[::-1]])
    assert gradcheck(lambda t: t.prod(1), [x])
    assert gradgradcheck(lambda t: t.prod(1), [x])
    assert gradgradcheck(lambda t: t.prod(), [x])


def test_prod_gradient_with_one_zero_is_the_product_of_the_others():
    x = leaf([2.0, 0.0, 3.0])
    x.prod().backward()
    np.testing.assert_allclose(x.grad.cpu().numpy(), [0.0, 6.0, 0.0])


def test_std_of_a_constant_slice_has_zero_gradient():
    # d sqrt(v)/dv is infinite at v = 0; the gradient is taken as 0 there (as PyTorch), not nan
    x = leaf([[1.0, 1.0, 1.0], [1.0, 2.0, 4.0]])
    x.std(dim=1).sum().backward()
    assert np.isfinite(x.grad.cpu().numpy()).all()
    np.testing.assert_array_equal(x.grad.cpu().numpy()[0], [0.0, 0.0, 0.0])
    assert gradgradcheck(lambda t: t.std(dim=1), [leaf([[1.0, 2.0, 4.0], [0.5, -1.0, 2.0]])])


def test_numpy_axis_and_keepdims_spellings():
    x = cr.tensor(np.arange(24.0).reshape(2, 3, 4))
    for name in ("sum", "mean", "amax", "amin"):
        by_dim = getattr(cr, name)(x, dim=(0, 2), keepdim=True)
        by_axis = getattr(cr, name)(x, axis=(0, 2), keepdims=True)
        assert by_axis.shape == (1, 3, 1)
        np.testing.assert_array_equal(by_dim.cpu().numpy(), by_axis.cpu().numpy())


def test_max_with_dim_returns_values_and_int64_indices():
    x = cr.tensor([[1.0, 5.0, 2.0], [7.0, 0.0, 3.0]])
    values, indices = cr.max(x, dim=1)
    np.testing.assert_array_equal(values.cpu().numpy(), [5.0, 7.0])
    assert indices.dtype == cr.int64
    np.testing.assert_array_equal(indices.cpu().numpy(), [1, 0])
    assert cr.max(x, 1, keepdim=True).indices.shape == (2, 1)


def test_reductions_over_a_zero_size_dim():
    x = leaf(np.zeros((0, 3)))
    s = x.sum(0)
    np.testing.assert_array_equal(s.detach().cpu().numpy(), [0.0, 0.0, 0.0])
    assert np.isnan(x.mean(0).detach().cpu().numpy()).all()
    np.testing.assert_array_equal(x.prod(0).detach().cpu().numpy(), [1.0, 1.0, 1.0])
    (s.sum() + x.prod(0).sum()).backward()
    assert x.grad.shape == (0, 3)


def test_cumsum_gradient_is_the_reversed_cumulative_sum():
    x = leaf([1.0, 2.0, 3.0])
    (cr.cumsum(x, 0) * cr.tensor([1.0, 10.0, 100.0], dtype=cr.float64)).sum().backward()
    np.testing.assert_allclose(x.grad.cpu().numpy(), [111.0, 110.0, 100.0])


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_var_with_correction_at_least_the_count_divides_by_zero():
    # as PyTorch: the divisor is max(0, count - correction)
    x = cr.tensor([[1.0, 2.0], [3.0, 3.0]])
    np.testing.assert_array_equal(x.var(dim=1, correction=2).cpu().numpy(), [np.inf, np.nan])
    np.testing.assert_array_equal(x.var(dim=1, correction=3).cpu().numpy(), [np.inf, np.nan])


def test_max_and_min_of_two_tensors_are_elementwise():
    a, b = leaf([1.0, 5.0]), leaf([3.0, 2.0])
    np.testing.assert_array_equal(cr.max(a, b).detach().cpu().numpy(), [3.0, 5.0])
    np.testing.assert_array_equal(cr.min(a, b).detach().cpu().numpy(), [1.0, 2.0])
    cr.max(a, b).sum().backward()
    np.testing.assert_array_equal(a.grad.cpu().numpy(), [0.0, 1.0])


def test_norm_zero_counts_nonzeros_with_a_zero_gradient():
    x = leaf([0.0, 2.0, -3.0])
    out = cr.norm(x, 0)
    assert out.item() == 2.0 and out.requires_grad
    out.backward()
    np.testing.assert_array_equal(x.grad.cpu().numpy(), [0.0, 0.0, 0.0])
