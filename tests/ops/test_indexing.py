"""Indexing: float64 gradcheck and gradgradcheck of every case in the shared table (basic,
strided, None/Ellipsis, negative, integer-array and boolean-mask getitem; gather, scatter(_add),
index_select/add, masked_fill, take_along_dim), plus accumulation of repeated indices."""

import numpy as np
import pytest
from op_cases import check_gradients, gradcheck_params

import chainrule as cr


@pytest.mark.parametrize("case, shapes, params", gradcheck_params("indexing"))
def test_gradcheck(case, shapes, params):
    check_gradients(case, shapes, params)


@pytest.mark.parametrize("case, shapes, params", gradcheck_params("indexing", twice_only=True))
def test_gradgradcheck(case, shapes, params):
    check_gradients(case, shapes, params, second_order=True)


def leaf(values):
    return cr.tensor(values, dtype=cr.float64, requires_grad=True)


@pytest.mark.parametrize("index", [[0, 2, 0, 0], cr.tensor([0, 2, 0, 0]), np.array([0, 2, 0, 0])])
def test_repeated_integer_indices_accumulate(index):
    x = leaf([10.0, 20.0, 30.0])
    out = x[index]
    np.testing.assert_array_equal(out.detach().cpu().numpy(), [10.0, 30.0, 10.0, 10.0])
    out.sum().backward()
    np.testing.assert_array_equal(x.grad.cpu().numpy(), [3.0, 0.0, 1.0])


def test_repeated_index_pairs_accumulate():
    x = leaf(np.zeros((2, 2)))
    x[cr.tensor([1, 1, 0]), cr.tensor([0, 0, 1])].sum().backward()
    np.testing.assert_array_equal(x.grad.cpu().numpy(), [[0.0, 1.0], [2.0, 0.0]])


@pytest.mark.parametrize("take", [
    lambda x, i: cr.index_select(x, 0, i),
    lambda x, i: cr.gather(x, 0, i),
    lambda x, i: cr.take_along_dim(x, i, 0),
])
def test_repeated_indices_accumulate_in_index_select_gather_take_along_dim(take):
    x = leaf([1.0, 2.0, 3.0])
    take(x, cr.tensor([2, 2, 0, 2])).sum().backward()
    np.testing.assert_array_equal(x.grad.cpu().numpy(), [1.0, 0.0, 3.0])


def test_scatter_add_adds_up_repeated_targets_and_routes_gradients_back():
    base, src = leaf(np.zeros(3)), leaf([1.0, 2.0, 4.0])
    out = cr.scatter_add(base, 0, cr.tensor([1, 1, 2]), src)
    np.testing.assert_array_equal(out.detach().cpu().numpy(), [0.0, 3.0, 4.0])
    (out * cr.tensor([1.0, 10.0, 100.0], dtype=cr.float64)).sum().backward()
    np.testing.assert_array_equal(src.grad.cpu().numpy(), [10.0, 10.0, 100.0])
    np.testing.assert_array_equal(base.grad.cpu().numpy(), [1.0, 10.0, 100.0])


def test_boolean_mask_gradient_lands_on_the_selected_elements():
    x = leaf([[1.0, -2.0], [-3.0, 4.0]])
    x[x.detach() > 0].sum().backward()
    np.testing.assert_array_equal(x.grad.cpu().numpy(), [[1.0, 0.0], [0.0, 1.0]])


def test_masked_fill_blocks_the_gradient_where_filled():
    x = leaf([1.0, 2.0, 3.0])
    cr.masked_fill(x, cr.tensor([True, False, True]), 0.0).sum().backward()
    np.testing.assert_array_equal(x.grad.cpu().numpy(), [0.0, 1.0, 0.0])


def test_one_hot():
    out = cr.one_hot(cr.tensor([[0, 2], [1, 1]]), 3)
    assert out.dtype == cr.int64 and out.shape == (2, 2, 3)
    np.testing.assert_array_equal(out.cpu().numpy()[0], [[1, 0, 0], [0, 0, 1]])
    assert cr.one_hot(cr.tensor([3, 0])).shape == (2, 4)


def test_basic_indexing_results_are_views():
    x = cr.arange(12.0).reshape(3, 4)
    with cr.no_grad():  # a write through a view lands in x's memory (on any device); through a copy it does not
        x[1:, ::2].fill_(-1.0)
        x[[0, 1]].fill_(-2.0)
    assert x[1:, ::2].eq(-1.0).all() and x.eq(-1.0).sum().item() == 4 and not x.eq(-2.0).any()


@pytest.mark.parametrize("shape", [(7,), (7, 5), (7, 3, 2)])
def test_repeated_row_gradients_add_up_exactly_as_add_at(shape):
    """The gradient of x[rows] for repeated (and negative) rows is a segmented sum of the rows' values:
    what numpy's add.at gives, up to float32 rounding."""
    from chainrule.ops.indexing import _add_rows_at

    rng = np.random.default_rng(4)
    rows = rng.integers(-7, 7, size=(40, 3))
    values = rng.standard_normal(rows.shape + shape[1:]).astype(np.float32)
    expected = np.zeros(shape, np.float32)
    np.add.at(expected, rows % 7, values)
    got = np.zeros(shape, np.float32)
    _add_rows_at(got, rows, values)
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-6)
    x = cr.tensor(np.ones(shape, np.float32), requires_grad=True)
    (x[cr.tensor(rows)] * cr.tensor(values)).sum().backward()
    np.testing.assert_allclose(x.grad.cpu().numpy(), expected, rtol=1e-6, atol=1e-6)
