"""Edge cases of scatter_reduce, index_copy/index_fill, masked_scatter, take/put, nonzero/argwhere/where(condition),
unique, unique_consecutive, bincount, histc, searchsorted and bucketize, against PyTorch where it defines the
answer: repeated indices, ties in amax/amin, zeros in prod, empty inputs, 0-d tensors, the in-place forms, and the
places where chainrule's gradient deliberately differs from PyTorch's (said in each test)."""

import numpy as np
import pytest

import chainrule as cr
from chainrule.autograd import gradcheck, gradgradcheck

torch = pytest.importorskip("torch")

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")  # torch's deprecation of scatter(reduce=)


def leaf(values, dtype=cr.float64):
    return cr.tensor(values, dtype=dtype, requires_grad=True)


def torch_leaf(values):
    return torch.tensor(values, dtype=torch.float64, requires_grad=True)


def grads_of(fn, *arrays):
    """fn's output and the gradients of sum(output * weights) for chainrule and torch on the same inputs."""
    weights = np.random.default_rng(0)
    results = []
    for lib, make in ((cr, leaf), (torch, torch_leaf)):
        xs = [make(a) for a in arrays]
        out = fn(lib, *xs)
        w = weights.standard_normal(tuple(out.shape)) if not results else results[0][2]
        (out * (cr.tensor(w) if lib is cr else torch.tensor(w))).sum().backward()
        results.append((out.detach().cpu().numpy(), [x.grad.cpu().numpy() for x in xs], w))
    return results


def assert_same_as_torch(fn, *arrays):
    (c_out, c_grads, _), (t_out, t_grads, _) = grads_of(fn, *arrays)
    np.testing.assert_allclose(c_out, t_out, rtol=1e-12)
    for c, t in zip(c_grads, t_grads):
        np.testing.assert_allclose(c, t, rtol=1e-12, atol=1e-15)


# ----- scatter_reduce ---------------------------------------------------------------------------------------

def _scatter_reduce(index, reduce, include_self=True, dim=0):
    return lambda lib, a, src: lib.scatter_reduce(a, dim, lib.tensor(index), src, reduce, include_self=include_self)


@pytest.mark.parametrize("reduce", ["amax", "amin"])
def test_ties_in_amax_and_amin_split_the_gradient_evenly_as_torch(reduce):
    tied = 5.0 if reduce == "amax" else -5.0
    a = [tied, 1.0, 0.0]
    src = [tied, tied, 0.5, 0.0]  # position 0: its own value and two src values tie
    assert_same_as_torch(_scatter_reduce([0, 0, 1, 2], reduce), a, src)
    x, s = leaf(a), leaf(src)
    cr.scatter_reduce(x, 0, cr.tensor([0, 0, 1, 2]), s, reduce).sum().backward()
    np.testing.assert_allclose(x.grad.cpu().numpy()[0], 1 / 3)
    np.testing.assert_allclose(s.grad.cpu().numpy()[:2], [1 / 3, 1 / 3])


def test_an_excluded_own_value_is_not_among_the_ties_unlike_torch():
    # include_self=False: a[0] takes no part, so the two tied src values share the whole gradient. PyTorch counts
    # the excluded a[0] (equal to the result) among the ties and gives each src 1/3: its gradients sum to 2/3.
    index = cr.tensor([0, 0])
    x, s = leaf([5.0, 1.0]), leaf([5.0, 5.0])
    cr.scatter_reduce(x, 0, index, s, "amax", include_self=False).sum().backward()
    np.testing.assert_allclose(s.grad.cpu().numpy(), [0.5, 0.5])
    np.testing.assert_allclose(x.grad.cpu().numpy(), [0.0, 1.0])
    tx, ts = torch_leaf([5.0, 1.0]), torch_leaf([5.0, 5.0])
    torch.scatter_reduce(tx, 0, torch.tensor([0, 0]), ts, "amax", include_self=False).sum().backward()
    np.testing.assert_allclose(ts.grad.cpu().numpy(), [1 / 3, 1 / 3])


@pytest.mark.parametrize("include_self", [True, False])
@pytest.mark.parametrize("a, src", [
    ([2.0, 3.0, 4.0], [0.0, 1.5, -2.0, 0.5]),  # one zero sent to position 0
    ([0.0, 3.0, 4.0], [1.5, 2.0, -2.0, 0.5]),  # a zero of self
    ([2.0, 3.0, 4.0], [0.0, 0.0, -2.0, 0.5]),  # two zeros sent to one position
    ([0.0, 3.0, 4.0], [0.0, 1.5, 0.0, 0.5]),   # a zero of self and one sent to it
])
def test_prod_gradient_with_zeros_matches_torch(a, src, include_self):
    fn = _scatter_reduce([0, 0, 1, 1], "prod", include_self)
    assert_same_as_torch(fn, a, src)
    assert gradcheck(lambda x, s: fn(cr, x, s), [leaf(a), leaf(src)])


def test_prod_second_derivative_with_one_zero_per_position():
    fn = lambda x, s: cr.scatter_reduce(x, 0, cr.tensor([0, 0, 1, 2]), s, "prod")  # noqa: E731
    assert gradgradcheck(fn, [leaf([0.0, 3.0, 4.0]), leaf([1.5, 2.0, 0.0, 0.5])])
    assert gradgradcheck(fn, [leaf([2.0, 3.0, 4.0]), leaf([0.0, 2.0, 0.0, -0.5])])


def test_prod_second_derivative_with_two_zeros_at_a_position_is_refused_as_in_torch():
    x, s = leaf([2.0, 3.0]), leaf([0.0, 0.0, 1.5])
    out = cr.scatter_reduce(x, 0, cr.tensor([0, 0, 1]), s, "prod")
    (g,) = cr.autograd.grad(out.sum(), s, create_graph=True)
    np.testing.assert_array_equal(g.detach().cpu().numpy(), [0.0, 0.0, 3.0])  # the first derivative is fine
    with pytest.raises(RuntimeError, match="scatter_reduce.*second derivative.*two or more zeros"):
        g.sum().backward()


def test_mean_of_integers_floors_as_torch():
    a, src, index = [-7, 3, -2], [0, -2, -2, 1], [0, 1, 1, 2]
    for include_self in (True, False):
        ours = cr.scatter_reduce(cr.tensor(a), 0, cr.tensor(index), cr.tensor(src), "mean", include_self=include_self)
        theirs = torch.tensor(a).scatter_reduce(0, torch.tensor(index), torch.tensor(src), "mean",
                                                include_self=include_self)
        assert ours.dtype == cr.int64
        np.testing.assert_array_equal(ours.cpu().numpy(), theirs.cpu().numpy())


@pytest.mark.parametrize("reduce", ["sum", "prod", "mean", "amax", "amin"])
def test_scatter_reduce_with_an_empty_index_and_on_0d(reduce):
    x = leaf([1.0, 2.0])
    out = cr.scatter_reduce(x, 0, cr.tensor([], dtype=cr.int64), leaf([]), reduce, include_self=False)
    np.testing.assert_array_equal(out.detach().cpu().numpy(), [1.0, 2.0])
    out.sum().backward()
    np.testing.assert_array_equal(x.grad.cpu().numpy(), [1.0, 1.0])
    assert_same_as_torch(_scatter_reduce(0, reduce), 1.5, 2.0)


def test_scatter_with_reduce_is_scatter_reduce_and_differentiable():
    # PyTorch has no derivative for scatter(reduce=); chainrule's is scatter_reduce's sum and prod
    index = cr.tensor([[0, 1, 0]])
    a = leaf([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    assert gradcheck(lambda x: cr.scatter(x, 0, index, 1.5, reduce="multiply"), [a])
    assert gradcheck(lambda x, s: cr.scatter(x, 0, index, s, reduce="add"), [a, leaf([[1.0, 2.0, 3.0]])])
    y = a.detach().clone()
    y.scatter_(0, index, 2.0, reduce="multiply")
    np.testing.assert_array_equal(y.cpu().numpy(), [[2.0, 2.0, 6.0], [4.0, 10.0, 6.0]])


# ----- index_copy, index_fill, masked_scatter, take, put ------------------------------------------------------

def test_index_copy_with_a_repeated_index_keeps_the_last_copy_and_its_gradient():
    # the forward is PyTorch's on CPU; its gradient also reaches the overwritten copies, chainrule's does not
    x, s = leaf([0.0, 0.0, 0.0]), leaf([1.0, 2.0, 3.0])
    out = cr.index_copy(x, 0, cr.tensor([1, 1, 1]), s)
    expected = torch.zeros(3).index_copy(0, torch.tensor([1, 1, 1]), torch.tensor([1.0, 2.0, 3.0]))
    np.testing.assert_array_equal(out.detach().cpu().numpy(), expected.cpu().numpy())
    out.sum().backward()
    np.testing.assert_array_equal(s.grad.cpu().numpy(), [0.0, 0.0, 1.0])
    np.testing.assert_array_equal(x.grad.cpu().numpy(), [1.0, 0.0, 1.0])
    assert gradcheck(lambda a, b: cr.index_copy(a, 1, cr.tensor([2, 0, 2]), b), [leaf(np.ones((2, 3))),
                                                                                  leaf(np.arange(6.0).reshape(2, 3))])


def test_index_fill_with_a_repeated_index_fills_once():
    assert_same_as_torch(lambda lib, a, v: lib.index_fill(a, 0, lib.tensor([1, 1, 3]), v), [1.0, 2.0, 3.0, 4.0], 2.5)
    # a negative index too (PyTorch's backward fails on it: "index out of range in self"; its forward is compared)
    x, v = leaf([1.0, 2.0, 3.0, 4.0]), leaf(2.5)
    out = cr.index_fill(x, 0, cr.tensor([1, -1, 3]), v)
    expected = torch.tensor([1.0, 2.0, 3.0, 4.0]).index_fill(0, torch.tensor([1, -1, 3]), 2.5)
    np.testing.assert_array_equal(out.detach().cpu().numpy(), expected.cpu().numpy())
    out.sum().backward()
    assert v.grad.item() == 2.0


def test_masked_scatter_sends_no_gradient_to_the_unused_source():
    x, s = leaf(np.zeros((2, 3))), leaf(np.arange(1.0, 8.0))
    mask = cr.tensor([True, False, True])
    cr.masked_scatter(x, mask, s).sum().backward()
    np.testing.assert_array_equal(s.grad.cpu().numpy(), [1, 1, 1, 1, 0, 0, 0])
    np.testing.assert_array_equal(x.grad.cpu().numpy(), [[0, 1, 0], [0, 1, 0]])
    assert_same_as_torch(lambda lib, a, b: lib.masked_scatter(a, lib.tensor([[True, False, True], [False, False, True]]),
                                                              b), [1.0, 2.0, 3.0], np.arange(6.0))


def test_take_and_put_on_0d_and_empty_indices():
    assert_same_as_torch(lambda lib, a: lib.take(a, lib.tensor([0, -1, 0])), 2.0)
    assert_same_as_torch(lambda lib, a: lib.take(a, lib.tensor([], dtype=lib.int64)), [[1.0, 2.0]])
    assert_same_as_torch(lambda lib, a, s: lib.put(a, lib.tensor([0]), s), 2.0, [5.0])
    assert_same_as_torch(lambda lib, a, s: lib.put(a, lib.tensor([], dtype=lib.int64), s), [1.0, 2.0], np.zeros(0))


def test_put_with_repeats_adds_up_when_accumulating_else_keeps_the_last():
    assert_same_as_torch(lambda lib, a, s: lib.put(a, lib.tensor([[1, 1], [-1, 1]]), s, accumulate=True),
                         np.ones((2, 2)), [[1.0, 2.0], [3.0, 4.0]])
    x, s = leaf([0.0, 0.0]), leaf([1.0, 2.0, 3.0])
    out = cr.put(x, cr.tensor([1, 0, -1]), s)
    np.testing.assert_array_equal(out.detach().cpu().numpy(), [2.0, 3.0])
    out.sum().backward()
    np.testing.assert_array_equal(s.grad.cpu().numpy(), [0.0, 1.0, 1.0])


@pytest.mark.parametrize("name, args", [
    ("scatter_reduce_", lambda lib: (1, lib.tensor([[0, 0], [2, 1]]), lib.tensor([[1.0, 2.0], [3.0, 4.0]],
                                                                                     dtype=lib.float64), "prod")),
    ("index_copy_", lambda lib: (0, lib.tensor([1]), lib.tensor([[7.0, 8.0, 9.0]], dtype=lib.float64))),
    ("index_fill_", lambda lib: (1, lib.tensor([0, 2]), -1.0)),
    ("index_reduce_", lambda lib: (0, lib.tensor([1, 1]), lib.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]],
                                                                      dtype=lib.float64), "amax")),
    ("masked_scatter_", lambda lib: (lib.tensor([True, False, True]), lib.arange(6, dtype=lib.float64))),
    ("put_", lambda lib: (lib.tensor([4, 0]), lib.tensor([7.0, 8.0], dtype=lib.float64))),
])
def test_in_place_forms_match_torch_with_gradients(name, args):
    def fn(lib, a):
        h = a * 2  # a non-leaf: in-place on it is recorded
        getattr(h, name)(*args(lib))
        return h * h
    assert_same_as_torch(fn, [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])


# ----- nonzero, argwhere, where(condition) -----------------------------------------------------------------

@pytest.mark.parametrize("value", [0.0, 2.5])
def test_nonzero_argwhere_and_where_of_0d_tensors_match_torch(value):
    ours, theirs = cr.tensor(value), torch.tensor(value)
    for fn in (lambda m, t: m.nonzero(t), lambda m, t: m.argwhere(t)):
        c, t = fn(cr, ours), fn(torch, theirs)
        assert tuple(c.shape) == tuple(t.shape) and c.dtype == cr.int64
    for c, t in zip(cr.nonzero(ours, as_tuple=True) + cr.where(ours != 0), torch.nonzero(theirs, as_tuple=True)
                    + torch.where(theirs != 0)):
        np.testing.assert_array_equal(c.cpu().numpy(), t.cpu().numpy())


def test_where_with_the_condition_alone_gives_one_index_vector_per_dim():
    x = np.array([[0, 1, 0], [2, 0, 3]])
    ours, theirs = cr.where(cr.tensor(x)), torch.where(torch.tensor(x))
    assert len(ours) == 2
    for c, t in zip(ours, theirs):
        np.testing.assert_array_equal(c.cpu().numpy(), t.cpu().numpy())
    assert cr.nonzero(cr.zeros(0, 3)).shape == (0, 2)


# ----- unique, unique_consecutive ---------------------------------------------------------------------------

def _same(ours, theirs):
    ours = ours if isinstance(ours, tuple) else (ours,)
    theirs = theirs if isinstance(theirs, tuple) else (theirs,)
    assert len(ours) == len(theirs)
    for c, t in zip(ours, theirs):
        assert tuple(c.shape) == tuple(t.shape) and c.dtype.name == str(t.dtype).removeprefix("torch.")
        np.testing.assert_array_equal(c.cpu().numpy(), t.cpu().numpy())


@pytest.mark.parametrize("values", [[3.0, 1.0, float("nan"), 3.0, float("nan")], [], [[2, 1], [1, 2]], 4.0])
def test_unique_counts_each_nan_apart_and_sorts_even_when_not_asked_as_torch(values):
    for sorted_ in (True, False):
        _same(cr.unique(cr.tensor(values), sorted=sorted_, return_inverse=True, return_counts=True),
              torch.unique(torch.tensor(values), sorted=sorted_, return_inverse=True, return_counts=True))


def test_unique_and_unique_consecutive_along_a_dim():
    x = [[1, 2, 1, 1], [0, 5, 0, 0], [1, 2, 1, 3]]
    for dim in (0, 1, -1):
        _same(cr.unique(cr.tensor(x), dim=dim, return_inverse=True, return_counts=True),
              torch.unique(torch.tensor(x), dim=dim, return_inverse=True, return_counts=True))
        _same(cr.unique_consecutive(cr.tensor(x), dim=dim, return_inverse=True, return_counts=True),
              torch.unique_consecutive(torch.tensor(x), dim=dim, return_inverse=True, return_counts=True))
    _same(cr.unique_consecutive(cr.tensor(x), return_inverse=True),
          torch.unique_consecutive(torch.tensor(x), return_inverse=True))


def test_unique_results_carry_no_graph():
    x = leaf([2.0, 1.0, 2.0])
    assert not cr.unique(x).requires_grad
    assert x.unique(return_counts=True)[1].dtype == cr.int64


# ----- bincount, histc ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("weights", [None, np.array([0.5, 1.0, 2.0], np.float32), np.array([0.5, 1.0, 2.0]),
                                     np.array([1, 2, 3]), np.array([True, False, True])])
def test_bincount_weights_dtype_follows_torch(weights):
    values = np.array([0, 3, 3])
    w = (None, None) if weights is None else (cr.tensor(weights), torch.tensor(weights))
    _same(cr.bincount(cr.tensor(values), w[0], minlength=5), torch.bincount(torch.tensor(values), w[1], minlength=5))


def test_bincount_and_histc_of_nothing():
    _same(cr.bincount(cr.tensor([], dtype=cr.int64), minlength=2), torch.bincount(torch.tensor([], dtype=torch.int64),
                                                                                  minlength=2))
    _same(cr.bincount(cr.tensor([], dtype=cr.int64), cr.tensor([])),
          torch.bincount(torch.tensor([], dtype=torch.int64), torch.tensor([])))
    _same(cr.histc(cr.tensor([]), bins=3), torch.histc(torch.tensor([]), bins=3))


def test_histc_range_edges_and_values_outside():
    values = [0.0, 1.0, 1.5, 3.0, -0.5, 3.5, float("nan")]
    _same(cr.histc(cr.tensor(values), bins=3, min=0, max=3), torch.histc(torch.tensor(values), bins=3, min=0, max=3))
    _same(cr.histc(cr.tensor([2.0, 2.0]), bins=4), torch.histc(torch.tensor([2.0, 2.0]), bins=4))  # widened by 1
    _same(cr.histc(cr.tensor(1.5, dtype=cr.float64), bins=2), torch.histc(torch.tensor(1.5, dtype=torch.float64), bins=2))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_histc_puts_values_at_and_beside_the_bin_edges_where_torch_does(dtype):
    # histc's bin is (x - min) * bins / (max - min) truncated, in the input's dtype: near an edge rounding decides
    lo, hi, bins = -2.8281623, 1.9350880, 6
    edges = np.linspace(lo, hi, bins + 1).astype(dtype)
    values = np.concatenate([edges, np.nextafter(edges, np.inf), np.nextafter(edges, -np.inf)])
    _same(cr.histc(cr.tensor(values), bins=bins, min=lo, max=hi), torch.histc(torch.tensor(values), bins=bins, min=lo,
                                                                             max=hi))


# ----- searchsorted, bucketize ---------------------------------------------------------------------------------

def test_searchsorted_sides_sorter_rows_and_int32():
    seq, values = np.array([1.0, 3.0, 3.0, 5.0]), np.array([[3.0, 0.0], [6.0, 5.0]])
    for kw in ({}, {"right": True}, {"side": "right"}, {"side": "left"}, {"out_int32": True}):
        _same(cr.searchsorted(cr.tensor(seq), cr.tensor(values), **kw),
              torch.searchsorted(torch.tensor(seq), torch.tensor(values), **kw))
    unsorted = np.array([[5.0, 1.0, 3.0], [2.0, 9.0, 4.0]])
    order = np.argsort(unsorted, axis=-1)
    _same(cr.searchsorted(cr.tensor(unsorted), cr.tensor(values), sorter=cr.tensor(order)),
          torch.searchsorted(torch.tensor(unsorted), torch.tensor(values), sorter=torch.tensor(order)))
    _same(cr.searchsorted(cr.tensor(seq), 3.0), torch.searchsorted(torch.tensor(seq), 3.0))
    _same(cr.searchsorted(cr.zeros(2, 0), cr.zeros(2, 3)), torch.searchsorted(torch.zeros(2, 0), torch.zeros(2, 3)))


@pytest.mark.parametrize("right", [False, True])
def test_searchsorted_with_nan_boundaries_answers_as_torch(right):
    # NaN compares False, so PyTorch's binary search moves right past it: its answers, not numpy's (NaN last)
    values = np.array([[0.5, 1.5, np.nan], [2.5, np.inf, -1.0]])
    for sequence in (np.array([1.0, 2.0, np.nan, np.nan]), np.array([[np.nan, 1.0, 2.0], [1.0, 2.0, np.nan]])):
        _same(cr.searchsorted(cr.tensor(sequence), cr.tensor(values), right=right),
              torch.searchsorted(torch.tensor(sequence), torch.tensor(values), right=right))


def test_bucketize_is_searchsorted_with_the_arguments_swapped():
    boundaries, values = np.array([1, 3, 5, 7]), np.array([[1, 3, 6], [7, 8, 0]])
    for right in (False, True):
        _same(cr.bucketize(cr.tensor(values), cr.tensor(boundaries), right=right, out_int32=right),
              torch.bucketize(torch.tensor(values), torch.tensor(boundaries), right=right, out_int32=right))
    _same(cr.bucketize(3, cr.tensor(boundaries)), torch.bucketize(3, torch.tensor(boundaries)))
