"""Edge cases of the scans, shape functions and reductions of issue 16 against PyTorch: cumprod's
gradient with zeros (one, several, first, last), ties in cummax/cummin, quantile interpolation and
NaN handling, higher-order gradients, and errors with PyTorch's messages."""

import numpy as np
import pytest

import chainrule as cr

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")


def _grads(fn, x, seed=0, order=1):
    """Outputs and input gradients (and, for order 2, the gradient of the gradient's sum) of ``fn`` on both libraries."""
    out = []
    for lib in (cr, torch):
        t = lib.tensor(np.asarray(x, dtype=np.float64), requires_grad=True)
        y = fn(lib, t)
        y0 = y[0] if isinstance(y, tuple) else y
        g = lib.tensor(np.random.default_rng(seed).normal(size=tuple(y0.shape)))
        (gx,) = (cr.autograd.grad if lib is cr else torch.autograd.grad)((y0 * g).sum(), (t,), create_graph=order > 1)
        res = [np.asarray(y0.detach()), np.asarray(gx.detach())]
        if order > 1:
            (ggx,) = (cr.autograd.grad if lib is cr else torch.autograd.grad)((gx * gx).sum(), (t,))
            res.append(np.asarray(ggx.detach()))
        out.append(res)
    return out


@pytest.mark.parametrize("x", [[2.0, 0.0, 3.0, 4.0], [0.0, 2.0, 3.0], [2.0, 3.0, 0.0], [0.0, 0.0, 1.5],
                               [1.0, 0.0, 2.0, 0.0, 3.0], [0.0, 0.0, 0.0]])
@pytest.mark.parametrize("order", [1, 2])
def test_cumprod_gradient_with_zeros_matches_torch(x, order):
    ours, theirs = _grads(lambda lib, t: lib.cumprod(t, 0), x, order=order)
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)


def test_cumprod_gradient_with_zeros_along_a_dim():
    x = np.array([[1.0, 0.0, 2.0], [3.0, 2.0, 0.0], [0.0, 0.0, 5.0]])
    for dim in (0, 1, -1):
        ours, theirs = _grads(lambda lib, t, dim=dim: lib.cumprod(t, dim), x)
        np.testing.assert_allclose(ours[1], theirs[1], rtol=1e-12)


@pytest.mark.parametrize("op", ["cummax", "cummin"])
def test_ties_take_the_later_index_and_the_gradient_goes_there(op):
    x = [[1.0, 3.0, 3.0, 2.0, 3.0], [2.0, 2.0, 2.0, -1.0, -1.0]]
    for dim in (0, 1):
        c = getattr(cr, op)(cr.tensor(x), dim)
        t = getattr(torch, op)(torch.tensor(x), dim)
        np.testing.assert_array_equal(c.indices.cpu().numpy(), t.indices.cpu().numpy())
        np.testing.assert_array_equal(c.values.cpu().numpy(), t.values.cpu().numpy())
        ours, theirs = _grads(lambda lib, a, dim=dim: tuple(getattr(lib, op)(a, dim)), x)
        np.testing.assert_allclose(ours[1], theirs[1])


def test_cummax_nan_propagates_as_torch():
    x = [1.0, float("nan"), 3.0, 0.5]
    c, t = cr.cummax(cr.tensor(x), 0), torch.cummax(torch.tensor(x), 0)
    np.testing.assert_array_equal(c.values.cpu().numpy(), t.values.cpu().numpy())
    np.testing.assert_array_equal(c.indices.cpu().numpy(), t.indices.cpu().numpy())


def test_logcumsumexp_is_stable_and_its_gradients_match():
    x = [[-1000.0, 0.0, 1000.0, 999.0], [-3.0, 1.0, -40.0, 2.0]]
    ours, theirs = _grads(lambda lib, t: lib.logcumsumexp(t, 1), x, order=2)
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)
    x = [[float("-inf"), 1.0, float("-inf"), 2.0]]  # first order: NaN at a leading -inf, as PyTorch
    ours, theirs = _grads(lambda lib, t: lib.logcumsumexp(t, 1), x)
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("interpolation", ["linear", "lower", "higher", "midpoint", "nearest"])
@pytest.mark.parametrize("q", [0.0, 0.1, 0.25, 0.5, 0.625, 0.875, 1.0])
def test_quantile_interpolation(interpolation, q):
    x = np.array([[4.0, 1.0, 3.0, 2.0, 7.0], [0.5, -1.0, 6.0, 2.5, 2.0]])
    ours, theirs = _grads(lambda lib, t: lib.quantile(t, q, dim=1, interpolation=interpolation), x)
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(a, b, rtol=1e-12)


@pytest.mark.parametrize("second_order", [False, True])
def test_quantile_gradcheck_and_oracle_on_the_table_configs(second_order):
    from op_cases import _QUANTILE_CONFIGS, QUANTILE_CASES, check_gradients, compare_with_torch

    for c in QUANTILE_CASES:
        for shapes, params in _QUANTILE_CONFIGS:
            check_gradients(c, shapes, params, second_order=second_order)
            compare_with_torch(c, shapes, params, np.float64)
            compare_with_torch(c, shapes, params, np.float32)


def test_quantile_and_nanquantile_with_nan():
    x = [[1.0, float("nan"), 3.0, 2.0], [float("nan")] * 4, [4.0, 2.0, 0.0, 1.0]]
    for name in ("quantile", "nanquantile"):
        ours, theirs = _grads(lambda lib, t, name=name: getattr(lib, name)(t, 0.4, 1, keepdim=True), x)
        for a, b in zip(ours, theirs):
            np.testing.assert_allclose(a, b, equal_nan=True)


def test_mode_picks_the_smallest_most_frequent_and_its_last_index():
    x = [[1.0, 2.0, 2.0, 3.0, 3.0, 1.0], [5.0, 5.0, 4.0, 4.0, 4.0, 5.0]]
    c, t = cr.mode(cr.tensor(x)), torch.mode(torch.tensor(x))
    np.testing.assert_array_equal(c.values.cpu().numpy(), t.values.cpu().numpy())
    np.testing.assert_array_equal(c.indices.cpu().numpy(), t.indices.cpu().numpy())


def test_diff_with_prepend_append_and_bool():
    x = [[1.0, 4.0, 9.0], [2.0, 2.0, 5.0]]
    c = cr.diff(cr.tensor(x), n=2, dim=1, prepend=cr.tensor([[0.0], [1.0]]), append=cr.tensor([[16.0], [9.0]]))
    t = torch.diff(torch.tensor(x), n=2, dim=1, prepend=torch.tensor([[0.0], [1.0]]), append=torch.tensor([[16.0], [9.0]]))
    np.testing.assert_array_equal(c.cpu().numpy(), t.cpu().numpy())
    b = [True, True, False, True]
    np.testing.assert_array_equal(cr.diff(cr.tensor(b)).cpu().numpy(), torch.diff(torch.tensor(b)).cpu().numpy())


def test_shape_functions_second_order():
    x = np.random.default_rng(0).normal(size=(3, 4))
    fns = [lambda lib, t: lib.diag(t, 1) ** 2, lambda lib, t: lib.diag_embed(t, -1) ** 3,
           lambda lib, t: lib.rot90(t, 3) ** 2, lambda lib, t: lib.kron(t, t),
           lambda lib, t: lib.repeat_interleave(t, lib.tensor([2, 0, 1, 3]), dim=1) ** 2]
    for fn in fns:
        ours, theirs = _grads(fn, x, order=2)
        for a, b in zip(ours, theirs):
            np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)


def _same_error(fn, *args, **kwargs):
    with pytest.raises(Exception) as theirs:
        fn(torch, *[torch.tensor(a) for a in args], **kwargs)
    with pytest.raises(type(theirs.value)) as ours:
        fn(cr, *[cr.tensor(a) for a in args], **kwargs)
    return str(ours.value), str(theirs.value)


@pytest.mark.parametrize("fn, args", [
    (lambda lib, x: lib.diag(x), (np.zeros((2, 2, 2)),)),
    (lambda lib, x: lib.diagonal(x, 0, 1, 1), (np.zeros((2, 2)),)),
    (lambda lib, x: lib.fliplr(x), (np.zeros(3),)),
    (lambda lib, x: lib.flipud(x), (np.zeros(()),)),
    (lambda lib, x: lib.rot90(x, 1, (0, 1, 2)), (np.zeros((2, 2, 2)),)),
    (lambda lib, x: lib.rot90(x, 1, (0, 0)), (np.zeros((2, 2)),)),
    (lambda lib, x: lib.rot90(x), (np.zeros(3),)),
    (lambda lib, x: lib.hsplit(x, 4), (np.zeros((2, 6)),)),
    (lambda lib, x: lib.vsplit(x, 2), (np.zeros(6),)),
    (lambda lib, x: lib.tensor_split(x, 0), (np.zeros(6),)),
    (lambda lib, x: lib.diff(x), (np.zeros(()),)),
    (lambda lib, x: lib.quantile(x, 1.5), (np.zeros(3),)),
    (lambda lib, x: lib.quantile(x, lib.tensor([0.5, -0.5], dtype=lib.float64)), (np.zeros(3),)),
    (lambda lib, x: lib.quantile(x, 0.5), (np.zeros(3, dtype=np.int64),)),
    (lambda lib, x: lib.quantile(x, 0.5, interpolation="cubic"), (np.zeros(3),)),
    (lambda lib, x: lib.quantile(x, 0.5), (np.zeros(0),)),
    (lambda lib, x: lib.aminmax(x), (np.zeros(0),)),
    (lambda lib, x: lib.nanmean(x), (np.zeros(3, dtype=np.int64),)),
    (lambda lib, x: lib.kthvalue(x, 4), (np.zeros(3),)),
    (lambda lib, x: lib.block_diag(x), (np.zeros((1, 1, 1)),)),
    (lambda lib, x: lib.cartesian_prod(x), (np.zeros((2, 2)),)),
    (lambda lib, x: lib.repeat_interleave(x, lib.tensor([1, 2]), dim=0), (np.zeros(3),)),
], ids=lambda v: "" if not callable(v) else None)
def test_errors_as_torch(fn, args):
    ours, theirs = _same_error(fn, *args)
    assert ours.split("\n")[0] == theirs.split("\n")[0]
