"""The further elementwise functions beyond the op table: the special functions' accuracy over their whole
range against torch (and scipy where torch is less accurate), edge values (0, +-inf, nan) as torch gives
them, the incomplete gamma's second derivative, the derivatives PyTorch does not define, and fmax's ties."""

import numpy as np
import pytest

import chainrule as cr
from chainrule.autograd import gradgradcheck

torch = pytest.importorskip("torch")

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")

_WIDE = np.concatenate([np.linspace(-720.0, 720.0, 1441), np.linspace(-30.0, 30.0, 601),
                        [0.0, -0.0, 1e-300, np.inf, -np.inf, np.nan]])


@pytest.mark.parametrize("name", ["i0", "special.i0e", "special.i1", "special.i1e", "special.erfcx"])
def test_bessel_and_erfcx_match_torch_over_the_whole_float64_range(name):
    def fn(lib):
        target = lib.special if name.startswith("special.") else lib
        return getattr(target, name.removeprefix("special."))

    ours = fn(cr)(cr.tensor(_WIDE)).cpu().numpy()
    theirs = fn(torch)(torch.tensor(_WIDE)).cpu().numpy()
    if name == "special.i1":  # torch gives nan at +-inf; the limits are +-inf (as scipy's i1)
        np.testing.assert_array_equal(ours[np.isinf(_WIDE)], _WIDE[np.isinf(_WIDE)])
        ours, theirs = ours[~np.isinf(_WIDE)], theirs[~np.isinf(_WIDE)]
    np.testing.assert_allclose(ours, theirs, rtol=1e-13, atol=0, equal_nan=True)


@pytest.mark.parametrize("name", ["i0", "special.i1e", "special.erfcx"])
def test_float32_results_match_torch(name):
    def fn(lib):
        return getattr(lib.special if "." in name else lib, name.split(".")[-1])

    x = np.linspace(-80.0, 80.0, 1601, dtype=np.float32)
    ours, theirs = fn(cr)(cr.tensor(x)), fn(torch)(torch.tensor(x))
    assert ours.dtype == cr.float32
    # computed in float64 and rounded once: within torch's own float32 error (up to 4e-6 near overflow)
    np.testing.assert_array_equal(ours.cpu().numpy(), fn(cr)(cr.tensor(x, dtype=cr.float64)).cpu().numpy().astype(np.float32))
    np.testing.assert_allclose(ours.cpu().numpy(), theirs.cpu().numpy(), rtol=1e-5, atol=0, equal_nan=True)


def test_incomplete_gamma_matches_scipy_on_a_grid_and_torch_at_the_edges():
    special = pytest.importorskip("scipy.special")
    a, x = np.meshgrid([0.05, 0.5, 1.0, 2.5, 10.0, 60.0, 400.0, 5000.0],
                       [1e-8, 0.01, 0.3, 1.0, 3.0, 9.5, 11.0, 55.0, 70.0, 380.0, 420.0, 5000.0, 6000.0])
    np.testing.assert_allclose(cr.igamma(cr.tensor(a), cr.tensor(x)).cpu().numpy(), special.gammainc(a, x), rtol=1e-10,
                               atol=1e-300)
    np.testing.assert_allclose(cr.igammac(cr.tensor(a), cr.tensor(x)).cpu().numpy(), special.gammaincc(a, x), rtol=1e-10,
                               atol=1e-300)
    edges = [0.0, 1.0, np.inf, -1.0, np.nan]
    a, x = (np.array(v) for v in zip(*[(u, v) for u in edges for v in edges]))
    for name in ("igamma", "igammac"):
        ours = getattr(cr, name)(cr.tensor(a), cr.tensor(x)).cpu().numpy()
        np.testing.assert_allclose(ours, getattr(torch, name)(torch.tensor(a), torch.tensor(x)).cpu().numpy(), rtol=1e-15)


@pytest.mark.parametrize("name", ["igamma", "igammac"])
def test_incomplete_gamma_second_derivative_in_x(name):
    a = cr.tensor([0.7, 1.0, 2.5, 6.0], dtype=cr.float64)
    x = cr.tensor([0.4, 1.3, 2.0, 7.5], dtype=cr.float64, requires_grad=True)
    assert gradgradcheck(lambda x: getattr(cr, name)(a, x), [x])


@pytest.mark.parametrize("name", ["igamma", "igammac"])
def test_incomplete_gamma_has_no_derivative_in_its_first_argument_as_in_torch(name):
    a = cr.tensor([1.5], requires_grad=True)
    with pytest.raises(RuntimeError, match=f"{name}.*derivative.*input"):
        getattr(cr, name)(a, cr.tensor([2.0])).sum().backward()
    at = torch.tensor([1.5], requires_grad=True)
    with pytest.raises(RuntimeError):
        getattr(torch, name)(at, torch.tensor([2.0])).sum().backward()


def test_heaviside_has_no_derivative_as_in_torch():
    x = cr.tensor([-1.0, 0.0, 2.0], requires_grad=True)
    out = cr.heaviside(x, cr.tensor(0.5))
    np.testing.assert_array_equal(out.detach().cpu().numpy(), [0.0, 0.5, 1.0])
    with pytest.raises(RuntimeError, match="heaviside.*derivative"):
        out.sum().backward()


@pytest.mark.parametrize("name", ["fmax", "fmin"])
def test_fmax_and_fmin_split_ties_and_send_the_gradient_past_nan(name):
    nan = float("nan")
    a = cr.tensor([1.0, nan, 2.0, nan], requires_grad=True)
    b = cr.tensor([1.0, 3.0, nan, nan], requires_grad=True)
    out = getattr(cr, name)(a, b)
    np.testing.assert_array_equal(out.detach().cpu().numpy(), [1.0, 3.0, 2.0, nan])
    out.sum().backward()
    np.testing.assert_array_equal(a.grad.cpu().numpy(), [0.5, 0.0, 1.0, 1.0])
    np.testing.assert_array_equal(b.grad.cpu().numpy(), [0.5, 1.0, 0.0, 0.0])


def test_frexp_edge_values_and_gradient_as_torch():
    values = [0.0, -0.0, 8.0, -3.5, 1e-310, 1e300, np.inf, -np.inf, np.nan]
    for dtype in (np.float16, np.float32, np.float64):
        x = np.array(values).astype(dtype)
        ours, theirs = cr.frexp(cr.tensor(x)), torch.frexp(torch.tensor(x))
        np.testing.assert_array_equal(ours.mantissa.cpu().numpy(), theirs.mantissa.cpu().numpy())
        np.testing.assert_array_equal(ours.exponent.cpu().numpy(), theirs.exponent.cpu().numpy())
        assert ours.exponent.dtype == cr.int32 and ours.mantissa.dtype.name == str(theirs.mantissa.dtype)[6:]


def test_gcd_and_lcm_of_negative_and_zero_integers_as_torch():
    a, b = np.array([-4, 0, 0, 12, -7, 9]), np.array([6, 0, 5, -18, -21, 1])
    for name in ("gcd", "lcm"):
        ours = getattr(cr, name)(cr.tensor(a), cr.tensor(b))
        np.testing.assert_array_equal(ours.cpu().numpy(), getattr(torch, name)(torch.tensor(a), torch.tensor(b)).cpu().numpy())


def test_ldexp_is_exact_for_integer_exponents():
    x, e = cr.tensor([0.75, -1.5, 3.0], dtype=cr.float64), cr.tensor([1000, -1070, 0])
    np.testing.assert_array_equal(cr.ldexp(x, e).cpu().numpy(), np.ldexp([0.75, -1.5, 3.0], [1000, -1070, 0]))


def test_methods_and_the_special_namespace_reach_the_same_functions():
    x = cr.tensor([0.5, 1.5, 2.5], dtype=cr.float64)
    np.testing.assert_array_equal(x.i0().cpu().numpy(), cr.special.i0(x).cpu().numpy())
    np.testing.assert_array_equal(x.mvlgamma(2).cpu().numpy(), cr.special.multigammaln(x, 2).cpu().numpy())
    np.testing.assert_array_equal(x.igamma(x).cpu().numpy(), cr.special.gammainc(x, x).cpu().numpy())
    np.testing.assert_array_equal(x.fix().cpu().numpy(), cr.trunc(x).cpu().numpy())


def test_zeta_matches_scipy_and_torch_including_poles_and_negative_q():
    special = pytest.importorskip("scipy.special")
    rng = np.random.default_rng(0)
    s, q = rng.uniform(1.01, 40.0, 500), rng.uniform(0.01, 30.0, 500)
    np.testing.assert_allclose(cr.special.zeta(cr.tensor(s), cr.tensor(q)).cpu().numpy(), special.zeta(s, q), rtol=1e-13)
    s = np.array([2.0, 1.0, 0.5, 3.0, 4.0, 2.5, 3.0, np.nan])  # (q = inf: 0 here, the limit; torch gives nan)
    q = np.array([1.0, 1.0, 1.0, -1.5, -2.0, -2.5, 0.0, 1.0])
    np.testing.assert_allclose(cr.special.zeta(cr.tensor(s), cr.tensor(q)).cpu().numpy(),
                               torch.special.zeta(torch.tensor(s), torch.tensor(q)).cpu().numpy(), rtol=1e-13)


def test_zeta_has_no_derivative_in_x_as_in_torch():
    x = cr.tensor([2.0, 3.0], requires_grad=True)
    with pytest.raises(RuntimeError, match="zeta.*derivative.*x"):
        cr.special.zeta(x, cr.tensor([1.5, 2.0])).sum().backward()


@pytest.mark.parametrize("name", ["chebyshev_polynomial_t", "chebyshev_polynomial_u", "chebyshev_polynomial_v",
                                  "chebyshev_polynomial_w", "shifted_chebyshev_polynomial_t", "hermite_polynomial_h",
                                  "hermite_polynomial_he", "laguerre_polynomial_l", "legendre_polynomial_p"])
def test_polynomials_match_torch_at_the_ends_and_for_degrees_up_to_30(name):
    x = np.concatenate([np.linspace(-1.0, 1.0, 41), [-1.0, 1.0, 0.0, 1.5, -3.0]])
    for n in (-2, 0, 1, 2, 7, 12, 30, 2.9):
        ours = getattr(cr.special, name)(cr.tensor(x), n).cpu().numpy()
        theirs = getattr(torch.special, name)(torch.tensor(x), n).cpu().numpy()
        np.testing.assert_allclose(ours, theirs, rtol=1e-9, atol=1e-9, equal_nan=True, err_msg=f"n = {n}")
    assert not getattr(cr.special, name)(cr.tensor(x, requires_grad=True), 3).requires_grad
    # nan stays nan (torch's vectorised kernel gives some other element's value there)
    assert np.isnan(getattr(cr.special, name)(cr.tensor([0.5, np.nan]), 4).cpu().numpy()[1])


_BESSEL_X = np.concatenate([np.linspace(-80.0, 80.0, 3201), [1e-300, 1e-10, 24.999, 25.001, 1e3, 1e6]])


@pytest.mark.parametrize("name, reference", [("bessel_j0", "j0"), ("bessel_j1", "j1"), ("bessel_y0", "y0"),
                                             ("bessel_y1", "y1"), ("modified_bessel_k0", "k0"),
                                             ("modified_bessel_k1", "k1"), ("scaled_modified_bessel_k0", "k0e"),
                                             ("scaled_modified_bessel_k1", "k1e")])
def test_bessel_functions_match_scipy_closely_and_torch_to_its_accuracy(name, reference):
    special = pytest.importorskip("scipy.special")
    x = _BESSEL_X if name.startswith("bessel_j") else _BESSEL_X[_BESSEL_X > 0]
    ours = getattr(cr.special, name)(cr.tensor(x)).cpu().numpy()
    # absolute near the zeros of J and Y, relative elsewhere
    np.testing.assert_allclose(ours, getattr(special, reference)(x), rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(ours, getattr(torch.special, name)(torch.tensor(x)).cpu().numpy(), rtol=1e-6, atol=1e-6)
    for value in (0.0, -1.0, np.nan):  # the special values as torch gives them (at +-inf, the limits 0)
        np.testing.assert_allclose(getattr(cr.special, name)(cr.tensor([value], dtype=cr.float64)).cpu().numpy(),
                                   getattr(torch.special, name)(torch.tensor([value], dtype=torch.float64)).cpu().numpy(),
                                   rtol=1e-6)


def test_airy_ai_matches_scipy_and_torch_to_its_accuracy():
    special = pytest.importorskip("scipy.special")
    x = np.linspace(-100.0, 100.0, 20001)
    ours = cr.special.airy_ai(cr.tensor(x)).cpu().numpy()
    reference = special.airy(x)[0]
    np.testing.assert_allclose(ours, reference, rtol=0, atol=2e-11)  # the oscillating side, absolutely
    np.testing.assert_allclose(ours[x > 0], reference[x > 0], rtol=1e-12, atol=0)  # the decaying side, relatively
    np.testing.assert_allclose(ours, torch.special.airy_ai(torch.tensor(x)).cpu().numpy(), rtol=1e-5, atol=1e-5)
    assert not cr.special.airy_ai(cr.tensor([1.0], requires_grad=True)).requires_grad
