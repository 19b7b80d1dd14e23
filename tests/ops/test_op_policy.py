"""The documented policy for kinks and ties (README, and the docstrings of chainrule.ops.elementwise
and chainrule.ops.reduction): relu'(0) = 0, leaky_relu'(0) = negative_slope, abs'(0) = 0, clamp
passes the gradient at its bounds, max/min/amax/amin/maximum/minimum split it evenly among tied
elements, sign/floor/ceil/round/trunc have zero gradient, the 2-norm's gradient at 0 is 0.
Where PyTorch follows the same rule the test also asks torch."""

import numpy as np
import pytest

import chainrule as cr

try:
    import torch
    import torch.nn.functional as F
except ImportError:  # the policy holds without torch; only the cross-checks need it
    torch = None


def grad_of(fn, values):
    """d sum(fn(x)) / dx at ``values`` (float64)."""
    x = cr.tensor(values, dtype=cr.float64, requires_grad=True)
    fn(x).sum().backward()
    return x.grad.cpu().numpy()


def torch_grad_of(fn, values):
    x = torch.tensor(values, dtype=torch.float64, requires_grad=True)
    fn(x).sum().backward()
    return x.grad.cpu().numpy()


def agrees_with_torch(cr_fn, torch_fn, values, expected):
    np.testing.assert_allclose(grad_of(cr_fn, values), expected)
    if torch is not None:
        np.testing.assert_allclose(torch_grad_of(torch_fn, values), expected)


def test_relu_derivative_at_zero_is_zero():
    agrees_with_torch(cr.relu, lambda x: torch.relu(x), [0.0, 2.0, -2.0], [0.0, 1.0, 0.0])


def test_leaky_relu_derivative_at_zero_is_the_negative_slope():
    agrees_with_torch(lambda x: cr.leaky_relu(x, 0.2), lambda x: F.leaky_relu(x, 0.2), [0.0, 1.0, -1.0], [0.2, 1.0, 0.2])


def test_abs_derivative_at_zero_is_zero():
    agrees_with_torch(cr.abs, lambda x: torch.abs(x), [0.0, -3.0, 3.0], [0.0, -1.0, 1.0])


def test_clamp_passes_the_gradient_at_its_bounds():
    agrees_with_torch(lambda x: cr.clamp(x, -1.0, 1.0), lambda x: torch.clamp(x, -1.0, 1.0),
                      [-1.0, 1.0, 2.0, -2.0, 0.0], [1.0, 1.0, 0.0, 0.0, 1.0])
    agrees_with_torch(lambda x: cr.clamp(x, min=0.0), lambda x: torch.clamp(x, min=0.0), [0.0, -1.0], [1.0, 0.0])


def test_clamp_with_tensor_bounds_sends_ties_to_the_input():
    x = cr.tensor([0.0, 1.0, 3.0, -5.0], dtype=cr.float64, requires_grad=True)
    lo = cr.tensor([0.0, 0.0, 0.0, 0.0], dtype=cr.float64, requires_grad=True)
    hi = cr.tensor([2.0, 1.0, 2.0, 2.0], dtype=cr.float64, requires_grad=True)
    cr.clamp(x, lo, hi).sum().backward()
    np.testing.assert_array_equal(x.grad.cpu().numpy(), [1.0, 1.0, 0.0, 0.0])
    np.testing.assert_array_equal(lo.grad.cpu().numpy(), [0.0, 0.0, 0.0, 1.0])
    np.testing.assert_array_equal(hi.grad.cpu().numpy(), [0.0, 0.0, 1.0, 0.0])


@pytest.mark.parametrize("name", ["max", "amax"])
def test_max_of_all_elements_splits_ties_evenly(name):
    agrees_with_torch(lambda x: getattr(cr, name)(x), lambda x: getattr(torch, name)(x),
                      [1.0, 3.0, 3.0, 0.0, 3.0], [0.0, 1 / 3, 1 / 3, 0.0, 1 / 3])


@pytest.mark.parametrize("name", ["min", "amin"])
def test_min_of_all_elements_splits_ties_evenly(name):
    agrees_with_torch(lambda x: getattr(cr, name)(x), lambda x: getattr(torch, name)(x),
                      [1.0, 0.0, 3.0, 0.0], [0.0, 0.5, 0.0, 0.5])


def test_amax_and_amin_along_dims_split_ties_per_slice():
    values = [[2.0, 2.0, 1.0], [0.0, 5.0, 0.0]]
    agrees_with_torch(lambda x: cr.amax(x, dim=1), lambda x: torch.amax(x, dim=1), values,
                      [[0.5, 0.5, 0.0], [0.0, 1.0, 0.0]])
    agrees_with_torch(lambda x: cr.amin(x, dim=-1), lambda x: torch.amin(x, dim=-1), values,
                      [[0.0, 0.0, 1.0], [0.5, 0.0, 0.5]])


def test_max_and_min_along_a_dim_split_ties_evenly_unlike_pytorch():
    # PyTorch sends max(dim)'s gradient to the one returned index; chainrule keeps one policy
    values = [[2.0, 2.0, 1.0], [4.0, 5.0, 5.0]]
    np.testing.assert_allclose(grad_of(lambda x: cr.max(x, dim=1).values, values), [[0.5, 0.5, 0.0], [0.0, 0.5, 0.5]])
    np.testing.assert_allclose(grad_of(lambda x: cr.min(x, dim=0).values, [[1.0, 2.0], [1.0, 3.0]]),
                               [[0.5, 1.0], [0.5, 0.0]])
    indices = cr.max(cr.tensor(values), dim=1).indices
    np.testing.assert_array_equal(indices.cpu().numpy(), [0, 1])  # the first maximum, as PyTorch


@pytest.mark.parametrize("name", ["maximum", "minimum"])
def test_maximum_and_minimum_split_ties_evenly(name):
    a = cr.tensor([1.0, 2.0, 3.0], dtype=cr.float64, requires_grad=True)
    b = cr.tensor([1.0, 0.0, 4.0], dtype=cr.float64, requires_grad=True)
    getattr(cr, name)(a, b).sum().backward()
    expected_a = [0.5, 1.0, 0.0] if name == "maximum" else [0.5, 0.0, 1.0]
    np.testing.assert_array_equal(a.grad.cpu().numpy(), expected_a)
    np.testing.assert_array_equal(b.grad.cpu().numpy(), 1 - np.array(expected_a))
    if torch is not None:
        ta = torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64, requires_grad=True)
        tb = torch.tensor([1.0, 0.0, 4.0], dtype=torch.float64, requires_grad=True)
        getattr(torch, name)(ta, tb).sum().backward()
        np.testing.assert_array_equal(ta.grad.cpu().numpy(), expected_a)


def test_tied_maximum_of_a_tensor_with_itself_gets_the_whole_gradient():
    np.testing.assert_array_equal(grad_of(lambda x: cr.maximum(x, x), [1.0, -2.0]), [1.0, 1.0])


@pytest.mark.parametrize("name", ["sign", "floor", "ceil", "round", "trunc"])
def test_piecewise_constant_functions_have_zero_gradient_everywhere(name):
    at_jumps = [0.0, 1.0, -1.0, 0.5, 1.5, -2.5, 0.3]
    agrees_with_torch(getattr(cr, name), getattr(torch, name) if torch else None, at_jumps, np.zeros(7))


def test_two_norm_gradient_at_zero_is_zero():
    agrees_with_torch(lambda x: cr.norm(x), lambda x: torch.norm(x), [0.0, 0.0, 0.0], [0.0, 0.0, 0.0])
    agrees_with_torch(lambda x: cr.norm(x, dim=1), lambda x: torch.norm(x, dim=1), [[0.0, 0.0], [3.0, 4.0]],
                      [[0.0, 0.0], [0.6, 0.8]])


def test_median_of_all_elements_splits_ties_evenly():
    agrees_with_torch(lambda x: cr.median(x), lambda x: torch.median(x), [1.0, 2.0, 2.0, 3.0], [0.0, 0.5, 0.5, 0.0])


def test_hardtanh_and_relu6_follow_pytorch_zero_gradient_at_their_bounds():
    # not clamp: PyTorch's hardtanh/relu6 pass the gradient strictly inside the bounds only
    agrees_with_torch(cr.hardtanh, lambda x: F.hardtanh(x), [-1.0, 1.0, 0.0], [0.0, 0.0, 1.0])
    agrees_with_torch(cr.relu6, lambda x: F.relu6(x), [0.0, 6.0, 3.0], [0.0, 0.0, 1.0])


def test_elu_derivative_at_zero_is_alpha():
    agrees_with_torch(lambda x: cr.elu(x, 0.5), lambda x: F.elu(x, 0.5), [0.0], [0.5])


def test_second_derivative_at_a_kink_is_zero():
    x = cr.tensor([0.0, 1.0, -1.0], dtype=cr.float64, requires_grad=True)
    (g,) = cr.autograd.grad(cr.relu(x).sum() + cr.abs(x).sum(), x, create_graph=True)
    (gg,) = cr.autograd.grad(g.sum(), x, allow_unused=True, materialize_grads=True)
    np.testing.assert_array_equal(gg.cpu().numpy(), [0.0, 0.0, 0.0])
