"""The matrix functions beyond the op table: LU against torch (pivots, singular and rectangular matrices, the
errors), solve_ex and cholesky_ex on matrices they cannot handle, vander's values (torch.vander cannot be
differentiated, so the op table's oracle is a formula), float16 refused as PyTorch does, cross's default dim,
the shapes of the older spellings' extra outputs, and bad input refused by both libraries."""

import re
import warnings

import numpy as np
import pytest

import chainrule as cr

torch = pytest.importorskip("torch")

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def _both(fn, *arrays):
    return fn(cr, *[cr.tensor(a) for a in arrays]), fn(torch, *[torch.tensor(a) for a in arrays])


def _same(ours, theirs, **tol):
    ours, theirs = np.asarray(ours), theirs.detach().cpu().numpy()
    assert ours.shape == theirs.shape and ours.dtype == theirs.dtype, (ours.shape, ours.dtype, theirs.shape, theirs.dtype)
    np.testing.assert_allclose(ours, theirs, equal_nan=True, **tol)


@pytest.mark.parametrize("shape", [(4, 4), (2, 3, 5, 5), (3, 5), (5, 3), (0, 3, 3), (2, 0, 0), (1, 1)])
def test_lu_factor_ex_matches_torch_pivots_and_factors(shape):
    a = np.random.default_rng(0).standard_normal(shape)
    ours, theirs = _both(lambda m, x: m.linalg.lu_factor_ex(x), a)
    _same(ours.LU, theirs.LU, rtol=1e-12, atol=1e-14)
    _same(ours.pivots, theirs.pivots)
    _same(ours.info, theirs.info)
    for o, t in zip(*_both(lambda m, x: m.linalg.lu(x), a)):
        _same(o, t, rtol=1e-12, atol=1e-14)


def test_a_singular_matrix_factors_with_info_and_lu_factor_refuses_it_as_torch():
    a = np.array([[0.0, 1, 2], [0, 3, 4], [0, 5, 6]])
    ours, theirs = _both(lambda m, x: m.linalg.lu_factor_ex(x), a)
    for o, t in zip(ours, theirs):
        _same(o, t)
    with pytest.raises(cr.linalg.LinAlgError, match=r"lu_factor.*U\[0, 0\] is zero.*singular"):
        cr.linalg.lu_factor(cr.tensor(a))
    with pytest.raises(RuntimeError):
        torch.linalg.lu_factor(torch.tensor(a))


@pytest.mark.parametrize("shape", [(3, 5), (5, 3), (2, 2, 4)])
def test_lu_of_a_rectangular_matrix_differentiates_as_torch(shape):
    from chainrule.autograd import gradgradcheck

    a, seed = np.random.default_rng(7).standard_normal((2,) + shape)
    x, t = cr.tensor(a, requires_grad=True), torch.tensor(a, requires_grad=True)
    (cr.linalg.lu_factor_ex(x).LU * cr.tensor(seed)).sum().backward()
    (torch.linalg.lu_factor_ex(t).LU * torch.tensor(seed)).sum().backward()
    _same(x.grad, t.grad, rtol=1e-10, atol=1e-12)
    assert gradgradcheck(lambda y: cr.linalg.lu(y)[1:], [cr.tensor(a, requires_grad=True)])


def test_lu_unpack_without_data_or_pivots_gives_empty_tensors_as_torch():
    a = np.random.default_rng(1).standard_normal((3, 3))
    for flags in [(False, True), (True, False)]:
        ours, theirs = _both(lambda m, x, f=flags: m.lu_unpack(*m.lu(x), *f), a)
        for o, t in zip(ours, theirs):
            _same(o, t, rtol=1e-12)


def test_solve_ex_and_cholesky_ex_report_what_they_cannot_handle_as_torch():
    singular = np.array([[[0.0, 1, 2], [0, 3, 4], [0, 5, 6]], np.eye(3) * 2])
    ours, theirs = _both(lambda m, a, b: m.linalg.solve_ex(a, b), singular, np.ones((2, 3)))
    _same(ours.info, theirs.info)
    _same(ours.result, theirs.result, rtol=1e-12)
    not_pd = np.array([[[1.0, 2], [2, 1]], [[4.0, 2], [2, 3]]])
    for upper in (False, True):
        ours, theirs = _both(lambda m, a, u=upper: m.linalg.cholesky_ex(a, upper=u), not_pd)
        _same(ours.info, theirs.info)
        _same(ours.L, theirs.L, rtol=1e-12)
    with pytest.raises(cr.linalg.LinAlgError):
        cr.linalg.cholesky_ex(cr.tensor(not_pd), check_errors=True)


@pytest.mark.parametrize("dtype", [np.float64, np.int64])
def test_vander_values_match_torch(dtype):
    x = np.array([2, -1, 0, 3]).astype(dtype)
    for kwargs in [{}, {"N": 0}, {"N": 6}, {"increasing": True}]:
        _same(*_both(lambda m, t, k=kwargs: m.vander(t, **k), x))
    _same(*_both(lambda m, t: m.linalg.vander(t), x.reshape(2, 2)))
    _same(*_both(lambda m, t: m.linalg.vander(t, N=5), x))


@pytest.mark.parametrize("call", [lambda m, a: m.linalg.solve(a, a), lambda m, a: m.linalg.cholesky(a),
                                  lambda m, a: m.linalg.svd(a), lambda m, a: m.linalg.inv(a),
                                  lambda m, a: m.cholesky_inverse(a), lambda m, a: m.linalg.lu_factor(a)],
                         ids=["solve", "cholesky", "svd", "inv", "cholesky_inverse", "lu_factor"])
def test_float16_linear_algebra_is_refused_as_in_torch(call):
    a = np.eye(3, dtype=np.float16) * 2
    with pytest.raises(RuntimeError, match="Low precision dtypes not supported.*float16"):
        call(cr, cr.tensor(a))
    with pytest.raises(RuntimeError):
        call(torch, torch.tensor(a))


@pytest.mark.parametrize("ord", ["fro", 1, -1, float("inf"), -float("inf")])
def test_float16_matrix_norms_without_svd_as_in_torch(ord):
    a = np.random.default_rng(0).random((3, 4, 4)).astype(np.float16)
    ours, theirs = cr.linalg.matrix_norm(cr.tensor(a), ord=ord), torch.linalg.matrix_norm(torch.tensor(a), ord=ord)
    assert ours.dtype == cr.float16
    np.testing.assert_allclose(ours.cpu().numpy().astype(np.float32), theirs.numpy().astype(np.float32), rtol=2e-3)


def test_cross_without_dim_warns_and_takes_the_first_dim_of_size_3():
    a, b = np.random.default_rng(2).standard_normal((2, 2, 3, 3))
    with pytest.warns(UserWarning, match="cross.*dim"):
        ours = cr.cross(cr.tensor(a[0]), cr.tensor(b[0]))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = torch.cross(torch.tensor(a[0]), torch.tensor(b[0]))
    _same(ours, theirs, rtol=1e-12)


def test_the_extra_outputs_of_triangular_solve_and_svd_have_torch_shapes():
    rng = np.random.default_rng(3)
    b, A = rng.standard_normal((2, 3, 1)), rng.standard_normal((3, 3)) + 3 * np.eye(3)
    for o, t in zip(*_both(lambda m, x, y: m.triangular_solve(x, y), b, A)):
        _same(o, t, rtol=1e-12)
    for o, t in zip(*_both(lambda m, x: m.svd(x, compute_uv=False), rng.standard_normal((2, 4, 3)))):
        _same(o, t, rtol=1e-12)


def test_addmm_with_beta_zero_ignores_nan_in_the_input_as_torch():
    c = np.full((2, 2), np.nan)
    a = np.random.default_rng(4).standard_normal((2, 3))
    _same(*_both(lambda m, x, y: m.addmm(x, y, y.mT, beta=0), c, a), rtol=1e-12)


def test_matrix_rank_matches_torch_with_tolerances_and_hermitian():
    rng = np.random.default_rng(5)
    low = rng.standard_normal((3, 5, 2)) @ rng.standard_normal((3, 2, 5))
    for kwargs in [{}, {"atol": 1.0}, {"rtol": 0.3}, {"hermitian": True}]:
        x = low @ np.swapaxes(low, -1, -2) if kwargs.get("hermitian") else low
        _same(*_both(lambda m, t, k=kwargs: m.linalg.matrix_rank(t, **k), x))


def test_multi_dot_multiplies_in_the_cheapest_order():
    from chainrule.linalg import _chain_order

    assert _chain_order([10, 100, 5, 50]) == {(0, 1): 0, (1, 2): 1, (0, 2): 1}  # (A B) C
    mats = [np.random.default_rng(6).standard_normal(s) for s in [(10, 100), (100, 5), (5, 50)]]
    _same(*_both(lambda m, *xs: m.linalg.multi_dot(list(xs)), *mats), rtol=1e-12)


# (call(lib), the pattern chainrule's message must match): both libraries refuse
_REFUSED = [
    (lambda m: m.mv(m.ones(2, 3), m.ones(2, 3)), r"mv.*vec.*1-D.*\(2, 3\)"),
    (lambda m: m.addmm(m.ones(3, 3), m.ones(2, 3), m.ones(3, 2)), r"addmm.*\(3, 3\).*\(2, 2\)"),
    (lambda m: m.addmm(m.ones(2, 2), m.ones(2, 3), m.ones(3, 2, dtype=m.float64)), r"mm.*float32.*float64"),
    (lambda m: m.baddbmm(m.ones(2, 2), m.ones(2, 2, dtype=m.bool), m.ones(2, 2, dtype=m.bool)), r"baddbmm.*bool"),
    (lambda m: m.tensordot(m.ones(2, 3), m.ones(2, 3), dims=1), r"tensordot.*size 3.*size 2"),
    (lambda m: m.renorm(m.ones(3), 2, 0, 1.0), r"renorm.*2 dimensions.*\(3,\)"),
    (lambda m: m.renorm(m.ones(3, 2), -1, 0, 1.0), r"renorm.*non-positive"),
    (lambda m: m.cov(m.ones(2, 2, 2)), r"cov.*two or fewer.*\(2, 2, 2\)"),
    (lambda m: m.cov(m.ones(2, 3), fweights=m.ones(3)), r"cov.*fweights.*integral"),
    (lambda m: m.cross(m.ones(2, 2), m.ones(2, 2)), r"cross.*size 3.*\(2, 2\)"),
    (lambda m: m.trapezoid(m.ones(3), m.ones(2)), r"trapezoid.*x.*2.*3"),
    (lambda m: m.vander(m.ones(2, 2)), r"vander.*one-dimensional.*\(2, 2\)"),
    (lambda m: m.linalg.lu_factor(m.ones(2, 2), pivot=False), r"lu_factor.*without pivoting"),
    (lambda m: m.linalg.multi_dot([m.ones(2, 3)]), r"multi_dot.*at least 2"),
    (lambda m: m.linalg.tensorinv(m.ones(2, 3), ind=1), r"tensorinv.*3 != 2"),
    (lambda m: m.linalg.householder_product(m.ones(2, 3), m.ones(2)), r"householder_product.*m >= n.*\(2, 3\)"),
    (lambda m: m.nuclear_norm(m.ones(3)), r"matrix_norm.*2 dimensions.*\(3,\)"),
]


@pytest.mark.parametrize("call, pattern", _REFUSED, ids=[p.split(".")[0].strip("\\") for _, p in _REFUSED])
def test_bad_input_is_refused_by_both_with_a_message_naming_the_operation(call, pattern):
    with pytest.raises((RuntimeError, IndexError), match=re.compile(pattern, re.DOTALL)):
        call(cr)
    with pytest.raises(Exception):  # noqa: B017 (torch's error types vary; that it refuses is the point)
        call(torch)


def test_svd_lowrank_is_exact_for_a_matrix_of_rank_at_most_q():
    rng = np.random.default_rng(8)
    a = rng.standard_normal((2, 7, 2)) @ rng.standard_normal((2, 2, 5))
    shift = rng.standard_normal((2, 7, 5))
    U, S, V = cr.svd_lowrank(cr.tensor(a + shift), q=3, M=cr.tensor(shift))
    assert U.shape == (2, 7, 3) and S.shape == (2, 3) and V.shape == (2, 5, 3)
    np.testing.assert_allclose(((U * S.unsqueeze(-2)) @ V.mT).cpu().numpy(), a, atol=1e-12)
    np.testing.assert_allclose(S.cpu().numpy()[:, :2], torch.linalg.svdvals(torch.tensor(a)).cpu().numpy()[:, :2], rtol=1e-12)


def test_pca_lowrank_values_and_gradient_match_torch_at_full_rank():
    a = np.random.default_rng(9).standard_normal((6, 4))
    x, t = cr.tensor(a, requires_grad=True), torch.tensor(a, requires_grad=True)
    cr.manual_seed(0)
    S = cr.pca_lowrank(x)[1]
    St = torch.pca_lowrank(t)[1]
    _same(S, St, rtol=1e-12)
    (S * cr.arange(4.0, dtype=cr.float64)).sum().backward()
    (St * torch.arange(4.0, dtype=torch.float64)).sum().backward()
    _same(x.grad, t.grad, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("shape", [(6, 6), (3, 4, 4), (1, 1), (0, 3, 3), (2, 0, 0)])
def test_ldl_factor_and_solve_match_torch_pivots_included(shape):
    rng = np.random.default_rng(10)
    for trial in range(20):
        a = rng.standard_normal(shape)
        a = a + np.swapaxes(a, -1, -2)
        if trial % 2:  # a zero diagonal forces 2x2 pivots
            a = a - np.eye(shape[-1]) * a
        ours, theirs = _both(lambda m, x: m.linalg.ldl_factor_ex(x), a)
        for o, t in zip(ours, theirs):
            _same(o, t, rtol=1e-10, atol=1e-12)
        b = rng.standard_normal(shape[:-1] + (2,))
        x_ours = cr.linalg.ldl_solve(ours.LD, ours.pivots, cr.tensor(b))
        _same(x_ours, torch.linalg.ldl_solve(theirs.LD, theirs.pivots, torch.tensor(b)), rtol=1e-9, atol=1e-10)


def test_ldl_refuses_a_singular_matrix_and_has_no_derivative_as_in_torch():
    with pytest.raises(cr.linalg.LinAlgError, match=r"ldl_factor.*D\[0\] is zero"):
        cr.linalg.ldl_factor(cr.zeros(2, 2, dtype=cr.float64))
    x = cr.tensor([[2.0, 1.0], [1.0, -3.0]], requires_grad=True)
    with pytest.raises(RuntimeError, match="ldl_factor.*derivative"):
        cr.linalg.ldl_factor(x).LD.sum().backward()
