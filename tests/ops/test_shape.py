"""Shape operations: float64 gradcheck and gradgradcheck of every case in the shared table, plus
view semantics (views share memory with their base) and the corners of cat, split and chunk."""

import numpy as np
import pytest
from op_cases import check_gradients, gradcheck_params

import chainrule as cr
from chainrule.autograd import gradgradcheck


@pytest.mark.parametrize("case, shapes, params", gradcheck_params("shape"))
def test_gradcheck(case, shapes, params):
    check_gradients(case, shapes, params)


@pytest.mark.parametrize("case, shapes, params", gradcheck_params("shape", twice_only=True))
def test_gradgradcheck(case, shapes, params):
    check_gradients(case, shapes, params, second_order=True)


@pytest.mark.parametrize("make_view", [
    lambda x: x.reshape(3, 2), lambda x: x.view(-1), lambda x: x.transpose(0, 1), lambda x: x.T,
    lambda x: x.unsqueeze(0), lambda x: x[1:], lambda x: x.expand(4, 2, 3)[0],
])
def test_views_share_memory_with_their_base(make_view):
    x = cr.arange(6.0).reshape(2, 3)
    view = make_view(x)
    assert view.xp.shares_memory(view._data, x._data)  # asked of the tensors' own array namespace (any device)


def test_cat_gives_skipped_one_d_empty_tensors_an_empty_gradient():
    empty = cr.zeros(0, requires_grad=True)
    full = cr.ones(2, 3, requires_grad=True)
    out = cr.cat([empty, full], dim=1)  # PyTorch skips 1-d empty tensors, whatever the other shapes
    assert out.shape == (2, 3)
    out.sum().backward()
    assert empty.grad is not None and empty.grad.shape == (0,)
    np.testing.assert_array_equal(full.grad.cpu().numpy(), np.ones((2, 3)))


def test_chunk_of_an_empty_dim_gives_the_requested_number_of_pieces():
    pieces = cr.chunk(cr.zeros(0, 2), 3)
    assert [p.shape for p in pieces] == [(0, 2)] * 3


def test_split_pieces_get_their_own_gradients():
    x = cr.arange(5.0, requires_grad=True)
    first, second = cr.split(x, [2, 3])
    (first.sum() * 2 + second.sum() * 3).backward()
    np.testing.assert_array_equal(x.grad.cpu().numpy(), [2, 2, 3, 3, 3])


def test_expand_gradient_sums_over_the_expanded_dims():
    x = cr.tensor([[1.0], [2.0]], requires_grad=True)
    x.expand(3, 2, 4).sum().backward()
    np.testing.assert_array_equal(x.grad.cpu().numpy(), [[12.0], [12.0]])


def test_flatten_of_zero_size_dims():
    assert cr.zeros(1, 0, 2).flatten().shape == (0,)
    assert cr.zeros(2, 0, 3).flatten(0, 1).shape == (0, 3)


def test_the_same_tensor_twice_in_cat_and_stack_gets_both_gradients():
    x = cr.tensor([1.0, 2.0], dtype=cr.float64, requires_grad=True)
    w = cr.tensor([1.0, 2.0, 3.0, 4.0], dtype=cr.float64)
    (cr.cat([x, x]) * w).sum().backward()
    np.testing.assert_array_equal(x.grad.cpu().numpy(), [4.0, 6.0])
    assert gradgradcheck(lambda t: cr.stack([t, t * t, t], dim=1), [x])
