"""Accuracy of the special functions written in numpy (lgamma, digamma, polygamma, erfinv, erfc, ndtri)
against torch over wide ranges, the chainrule.special namespace, and isclose/allclose/equal semantics."""

import numpy as np
import pytest

import chainrule as cr

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")

_RNG = np.random.default_rng(16)
_GAMMA_X = np.concatenate([_RNG.uniform(-30, 30, 4000), _RNG.uniform(0, 3, 4000), 10 ** _RNG.uniform(-10, 300, 1000),
                           -(10 ** _RNG.uniform(-10, 5, 1000)),
                           [0.0, -0.0, 1.0, 2.0, -1.0, -2.0, np.inf, -np.inf, np.nan, 0.5, 1e-320]])
_UNIT = np.concatenate([_RNG.uniform(-1, 1, 4000), 1 - 10 ** _RNG.uniform(-16, 0, 1000),
                        -1 + 10 ** _RNG.uniform(-16, 0, 1000), 10 ** _RNG.uniform(-300, 0, 500),
                        [0.0, 1.0, -1.0, 1.5, -2.0, np.nan]])


def _close(mine, ref, rtol, atol=0.0):
    """Same non-finite pattern; finite values within rtol (relative to max(|ref|, 1) plus atol)."""
    mine, ref = np.asarray(mine), np.asarray(ref)
    np.testing.assert_array_equal(np.isnan(mine), np.isnan(ref))
    fin = np.isfinite(ref)
    np.testing.assert_array_equal(mine[~fin & ~np.isnan(ref)], ref[~fin & ~np.isnan(ref)])
    err = np.abs(mine[fin] - ref[fin]) / np.maximum(np.abs(ref[fin]), 1.0)
    assert err.max() <= rtol + atol, (err.max(), ref[fin][err.argmax()])


@pytest.mark.parametrize("name", ["lgamma", "digamma"])
def test_gamma_family_matches_torch_over_a_wide_range(name):
    x = cr.tensor(_GAMMA_X, dtype=cr.float64)
    # relative to max(|f|, 1): near the zeros of lgamma/digamma and near the poles both lose digits
    _close(getattr(cr, name)(x).cpu().numpy(), getattr(torch, name)(torch.tensor(_GAMMA_X)).cpu().numpy(), 1e-11)


def test_lgamma_and_digamma_relative_accuracy_away_from_zeros_and_poles():
    x = np.concatenate([_RNG.uniform(2.5, 1e3, 2000), _RNG.uniform(0.01, 0.9, 2000)])
    for name in ("lgamma", "digamma"):
        mine = getattr(cr, name)(cr.tensor(x, dtype=cr.float64)).cpu().numpy()
        ref = getattr(torch, name)(torch.tensor(x)).cpu().numpy()
        np.testing.assert_allclose(mine, ref, rtol=2e-14)


def test_polygamma_matches_mpmath():
    mpmath = pytest.importorskip("mpmath")  # torch's own trigamma is only good to ~1e-10
    x = np.concatenate([_RNG.uniform(-20.0, 40.0, 200), 10 ** _RNG.uniform(-5, 5, 100)])
    for n in (1, 2, 3):
        mine = cr.polygamma(n, cr.tensor(x, dtype=cr.float64)).cpu().numpy()
        ref = np.array([float(mpmath.psi(n, mpmath.mpf(v))) for v in x])
        np.testing.assert_allclose(mine, ref, rtol=1e-12)


def test_erfinv_erfc_and_ndtri_match_torch():
    _close(cr.erfinv(cr.tensor(_UNIT, dtype=cr.float64)).cpu().numpy(), torch.erfinv(torch.tensor(_UNIT)).cpu().numpy(), 1e-14)
    x = np.concatenate([_RNG.uniform(-30, 30, 4000), [np.inf, -np.inf, np.nan, 0.0]])
    _close(cr.erfc(cr.tensor(x, dtype=cr.float64)).cpu().numpy(), torch.erfc(torch.tensor(x)).cpu().numpy(), 0.0, 4e-15)
    nz = x[np.abs(x) < 26]
    np.testing.assert_allclose(cr.erfc(cr.tensor(nz, dtype=cr.float64)).cpu().numpy(), torch.erfc(torch.tensor(nz)).cpu().numpy(),
                               rtol=5e-13)
    p = np.concatenate([_RNG.uniform(0, 1, 4000), 10 ** _RNG.uniform(-300, 0, 1000), [0.0, 1.0, 0.5]])
    _close(cr.special.ndtri(cr.tensor(p, dtype=cr.float64)).cpu().numpy(), torch.special.ndtri(torch.tensor(p)).numpy(), 1e-14)


def test_erfinv_inverts_erf_and_its_gradient():
    x = cr.tensor([-0.9, -0.3, 0.0, 0.4, 0.99], dtype=cr.float64, requires_grad=True)
    y = cr.erfinv(x)
    np.testing.assert_allclose(cr.erf(y).detach().cpu().numpy(), x.detach().cpu().numpy(), rtol=1e-15, atol=1e-16)
    y.sum().backward()
    np.testing.assert_allclose(x.grad.cpu().numpy(), np.sqrt(np.pi) / 2 * np.exp(y.detach().cpu().numpy() ** 2), rtol=1e-14)


def test_special_namespace_names():
    sp = cr.special
    for name in ["expit", "logit", "erf", "erfc", "erfinv", "gammaln", "digamma", "psi", "polygamma", "xlogy",
                 "xlog1py", "log1p", "expm1", "exp2", "sinc", "logsumexp", "softmax", "log_softmax", "ndtr", "ndtri",
                 "log_ndtr", "entr", "multigammaln"]:
        assert callable(getattr(sp, name)), name
        assert hasattr(torch.special, name), name
    assert sp.gammaln is cr.lgamma and sp.psi is cr.digamma and sp.expit is cr.sigmoid
    x = np.array([[0.2, 1.5, -0.7], [2.0, -1.0, 0.1]])
    np.testing.assert_allclose(sp.softmax(cr.tensor(x), 1, dtype=cr.float64).cpu().numpy(),
                               torch.special.softmax(torch.tensor(x), 1, dtype=torch.float64).cpu().numpy(), rtol=1e-12)
    np.testing.assert_allclose(sp.logsumexp(cr.tensor(x), 1).cpu().numpy(), torch.special.logsumexp(torch.tensor(x), 1).numpy())
    np.testing.assert_allclose(sp.multigammaln(cr.tensor([2.5, 4.0]), 3).cpu().numpy(),
                               torch.special.multigammaln(torch.tensor([2.5, 4.0]), 3).cpu().numpy(), rtol=1e-6)
    np.testing.assert_allclose(sp.xlog1py(cr.tensor([0.0, 2.0]), cr.tensor([-1.0, 3.0])).cpu().numpy(),
                               torch.special.xlog1py(torch.tensor([0.0, 2.0]), torch.tensor([-1.0, 3.0])).cpu().numpy())


def test_xlogy_is_zero_where_x_is_zero_and_its_gradient_is_finite_there():
    x = cr.tensor([0.0, 0.0, 2.0, 0.0], dtype=cr.float64, requires_grad=True)
    y = cr.tensor([0.0, 3.0, 3.0, float("nan")], dtype=cr.float64, requires_grad=True)
    tx, ty = (torch.tensor(a.detach().cpu().numpy(), requires_grad=True) for a in (x, y))
    cr.xlogy(x, y).sum().backward()
    torch.xlogy(tx, ty).sum().backward()
    np.testing.assert_array_equal(cr.xlogy(x, y).detach().cpu().numpy(), torch.xlogy(tx, ty).detach().cpu().numpy())
    np.testing.assert_array_equal(x.grad.cpu().numpy(), tx.grad.cpu().numpy())
    np.testing.assert_array_equal(y.grad.cpu().numpy(), ty.grad.cpu().numpy())


@pytest.mark.parametrize("kw", [{}, {"rtol": 0.0, "atol": 0.0}, {"rtol": 0.1}, {"atol": 0.5}, {"equal_nan": True},
                                {"rtol": 0.0, "atol": 1e-3, "equal_nan": True}])
def test_isclose_and_allclose_follow_torch(kw):
    inf, nan = float("inf"), float("nan")
    a = np.array([1.0, 1.0, 1.0, inf, inf, -inf, nan, nan, 0.0, 1e-9, 100.0])
    b = np.array([1.0, 1.0 + 1e-6, 1.2, inf, -inf, inf, nan, 1.0, 1e-9, 0.0, 100.4])
    for dtype in (np.float64, np.float32):
        ca, cb = cr.tensor(a.astype(dtype)), cr.tensor(b.astype(dtype))
        ta, tb = torch.tensor(a.astype(dtype)), torch.tensor(b.astype(dtype))
        np.testing.assert_array_equal(cr.isclose(ca, cb, **kw).cpu().numpy(), torch.isclose(ta, tb, **kw).cpu().numpy())
        assert ca.isclose(cb, **kw).dtype == cr.bool
        for i in range(len(a)):
            assert cr.allclose(ca[i:], cb[i:], **kw) == torch.allclose(ta[i:], tb[i:], **kw)
    ints = np.array([1, 5, 10])
    np.testing.assert_array_equal(cr.isclose(cr.tensor(ints), cr.tensor(ints + 1), rtol=0.15).cpu().numpy(),
                                  torch.isclose(torch.tensor(ints), torch.tensor(ints + 1), rtol=0.15).cpu().numpy())


def test_isclose_refuses_mixed_dtypes_and_negative_tolerances():
    with pytest.raises(RuntimeError, match="same dtype"):
        cr.isclose(cr.tensor([1, 2]), cr.tensor([1.0, 2.0]))
    with pytest.raises(RuntimeError, match="non-negative"):
        cr.isclose(cr.tensor([1.0]), cr.tensor([1.0]), rtol=-1.0)


def test_equal():
    a = cr.tensor([1.0, 2.0])
    assert cr.equal(a, cr.tensor([1.0, 2.0])) is True
    assert cr.equal(a, cr.tensor([1.0, 2.5])) is False
    assert cr.equal(a, cr.tensor([[1.0, 2.0]])) is False  # shapes must match: no broadcasting
    assert cr.equal(cr.tensor([float("nan")]), cr.tensor([float("nan")])) is False
    assert a.equal(cr.tensor([1.0, 2.0]))
