"""More special functions numpy lacks (beside :mod:`chainrule.backend.special`): the modified Bessel
functions I0 and I1 (plain and exponentially scaled), the regularised incomplete gamma functions and the
scaled complementary error function. Written with array-namespace operations only, computed in float64
and returned in the input's floating dtype."""

from __future__ import annotations

import math

from chainrule.backend.special import _f64, _quiet, erfc, lgamma

# ----- modified Bessel functions of the first kind, orders 0 and 1 ------------------------------------------

# Below this |x| the power series (all terms positive: no cancellation) is used; above it the asymptotic
# expansion, whose terms keep falling until k ~ 2|x| and whose smallest term is about exp(-2|x|) < 1e-17.
_BESSEL_SERIES_LIMIT = 20.0
_BESSEL_SERIES_TERMS = 60  # (x/2)^2k / (k! (k + nu)!) at x = 20 is below 1e-17 of the sum from k = 60 on
_BESSEL_ASYMPTOTIC_TERMS = 35


def _bessel_i_series(nu: int, x, xp):
    """I_nu(x) = sum_k (x/2)^(2k + nu) / (k! (k + nu)!) for |x| <= the series limit."""
    half = 0.5 * xp.minimum(xp.abs(x), _BESSEL_SERIES_LIMIT)
    q = half * half
    term = half ** nu / math.factorial(nu)
    total = term
    for k in range(1, _BESSEL_SERIES_TERMS):
        term = term * q / (k * (k + nu))
        total = total + term
    return total


def _bessel_ie_asymptotic(nu: int, x, xp):
    """exp(-|x|) I_nu(|x|) ~ (2 pi |x|)^-1/2 sum_k (-1)^k prod_{j<=k} (4 nu^2 - (2j - 1)^2) / (k! (8|x|)^k),
    for |x| >= the series limit."""
    a = xp.maximum(xp.abs(x), _BESSEL_SERIES_LIMIT)
    mu = 4.0 * nu * nu
    term = xp.ones_like(a)
    total = term
    for k in range(1, _BESSEL_ASYMPTOTIC_TERMS):
        term = term * -(mu - (2 * k - 1) ** 2) / (k * 8.0 * a)
        total = total + term
    return total / xp.sqrt(2.0 * math.pi * a)


def _bessel_ie(nu: int, x64, xp):
    """exp(-|x|) I_nu(x) for float64 x (I_1 is odd, I_0 even)."""
    with _quiet(xp):
        small = xp.abs(x64) <= _BESSEL_SERIES_LIMIT
        near = _bessel_i_series(nu, x64, xp) * xp.exp(-xp.minimum(xp.abs(x64), _BESSEL_SERIES_LIMIT))
        out = xp.where(small, near, _bessel_ie_asymptotic(nu, x64, xp))
        out = xp.where(xp.isinf(x64), 0.0, out)
        return xp.copysign(out, x64) if nu == 1 else out


def i0e(x, xp):
    """exp(-|x|) I0(x)."""
    return _bessel_ie(0, _f64(x), xp).astype(x.dtype, copy=False)


def i1e(x, xp):
    """exp(-|x|) I1(x)."""
    return _bessel_ie(1, _f64(x), xp).astype(x.dtype, copy=False)


def i0(x, xp):
    """The modified Bessel function I0 (inf beyond |x| ~ 713, where it overflows float64)."""
    x64 = _f64(x)
    with _quiet(xp):
        return (_bessel_ie(0, x64, xp) * xp.exp(xp.abs(x64))).astype(x.dtype, copy=False)


def i1(x, xp):
    """The modified Bessel function I1 (odd)."""
    x64 = _f64(x)
    with _quiet(xp):
        out = _bessel_ie(1, x64, xp) * xp.exp(xp.abs(x64))
        return xp.where(xp.isinf(x64), x64, out).astype(x.dtype, copy=False)


# ----- regularised incomplete gamma functions -----------------------------------------------------------------

_GAMMA_EPS = 1e-16
_GAMMA_MAX_TERMS = 100_000


def _lower_series(a, x, xp):
    """P(a, x) = x^a e^-x / Gamma(a + 1) * sum_n x^n / ((a + 1) ... (a + n)), for 0 < x < a + 1 (the terms fall
    from the first one on)."""
    term = xp.ones_like(x)
    total = xp.ones_like(x)
    for n in range(1, _GAMMA_MAX_TERMS):
        term = term * x / (a + n)
        total = total + term
        if not bool((term > _GAMMA_EPS * total).any()):
            break
    return xp.exp(a * xp.log(x) - x - lgamma(a + 1.0, xp)) * total


def _upper_fraction(a, x, xp):
    """Q(a, x) = x^a e^-x / Gamma(a) / (x + 1 - a - 1 (1 - a) / (x + 3 - a - 2 (2 - a) / (x + 5 - a - ...))),
    Legendre's continued fraction, for x >= a + 1 (modified Lentz evaluation)."""
    tiny = 1e-300
    b = x + 1.0 - a
    c = xp.full_like(x, 1.0 / tiny)
    d = 1.0 / b
    h = d
    for n in range(1, _GAMMA_MAX_TERMS):
        an = -n * (n - a)
        b = b + 2.0
        d = an * d + b
        d = xp.where(xp.abs(d) < tiny, tiny, d)
        c = b + an / c
        c = xp.where(xp.abs(c) < tiny, tiny, c)
        d = 1.0 / d
        step = d * c
        h = h * step
        if not bool((xp.abs(step - 1.0) > _GAMMA_EPS).any()):
            break
    return xp.exp(a * xp.log(x) - x - lgamma(a, xp)) * h


def gammainc_pair(a, x, xp):
    """(P(a, x), Q(a, x)), the regularised lower and upper incomplete gamma functions, in float64, each computed
    directly where it is the smaller (so neither loses digits to 1 - the other). The special values follow
    PyTorch's order of checks: nan for a < 0 or x < 0; then P(0, x) = 1 for x > 0 (nan otherwise); P(a, 0) = 0;
    P(inf, x) = 0 (nan at x = inf); P(a, inf) = 1."""
    a64, x64 = xp.broadcast_arrays(_f64(a), _f64(x))
    p = xp.full(a64.shape, xp.nan)
    q = xp.full(a64.shape, xp.nan)
    with _quiet(xp):
        inside = (a64 > 0) & (x64 > 0) & xp.isfinite(a64) & xp.isfinite(x64)
        low = inside & (x64 < a64 + 1.0)
        high = inside & ~low
        if bool(low.any()):
            p[low] = _lower_series(a64[low], x64[low], xp)
            q[low] = 1.0 - p[low]
        if bool(high.any()):
            q[high] = _upper_fraction(a64[high], x64[high], xp)
            p[high] = 1.0 - q[high]
        for value, where_p in _incomplete_gamma_special_values(a64, x64, xp):
            p = xp.where(where_p, value, p)
            q = xp.where(where_p, 1.0 - value, q)
    return p, q


def _incomplete_gamma_special_values(a, x, xp):
    """(P's value, mask) pairs, the later overriding the earlier (PyTorch checks them in the reverse order)."""
    nan = xp.nan
    return [(1.0, xp.isinf(x)),
            (xp.where(xp.isinf(x), nan, 0.0), xp.isinf(a)),
            (0.0, x == 0),
            (xp.where(x > 0, 1.0, nan), a == 0),
            (nan, (x < 0) | (a < 0))]


def gammainc(a, x, xp):
    return gammainc_pair(a, x, xp)[0].astype(xp.result_type(a, x), copy=False)


def gammaincc(a, x, xp):
    return gammainc_pair(a, x, xp)[1].astype(xp.result_type(a, x), copy=False)


# ----- scaled complementary error function ------------------------------------------------------------------

_ERFCX_FRACTION_FROM = 5.0
_ERFCX_FRACTION_TERMS = 120  # the continued fraction's tail at x = 5 is below 1e-17 after this many terms


def erfcx(x, xp):
    """exp(x^2) erfc(x): directly below 5, and above it from Laplace's continued fraction
    erfc(x) = exp(-x^2) / sqrt(pi) / (x + (1/2) / (x + 1 / (x + (3/2) / (x + ...)))), evaluated from the tail
    (so it neither underflows nor loses the digits exp(x^2) would amplify)."""
    x64 = _f64(x)
    with _quiet(xp):
        near = xp.minimum(x64, _ERFCX_FRACTION_FROM)
        direct = xp.exp(near * near) * erfc(near, xp)
        far = xp.maximum(x64, _ERFCX_FRACTION_FROM)
        t = far
        for n in range(_ERFCX_FRACTION_TERMS, 0, -1):
            t = far + (0.5 * n) / t
        fraction = 1.0 / (math.sqrt(math.pi) * t)
        out = xp.where(x64 < _ERFCX_FRACTION_FROM, direct, fraction)
        out = xp.where(x64 == xp.inf, 0.0, out)
    return out.astype(x.dtype, copy=False)


# ----- classical orthogonal polynomials --------------------------------------------------------------------

def _shifted(x):
    return 2.0 * x - 1.0


# name -> (argument map, P_1(t), P_{k+1} from (k, t, P_{k-1}, P_k)); P_0 = 1 for all
_POLYNOMIALS = {
    "chebyshev_polynomial_t": (None, lambda t: t, lambda k, t, p, q: 2.0 * t * q - p),
    "chebyshev_polynomial_u": (None, lambda t: 2.0 * t, lambda k, t, p, q: 2.0 * t * q - p),
    "chebyshev_polynomial_v": (None, lambda t: 2.0 * t - 1.0, lambda k, t, p, q: 2.0 * t * q - p),
    "chebyshev_polynomial_w": (None, lambda t: 2.0 * t + 1.0, lambda k, t, p, q: 2.0 * t * q - p),
    "hermite_polynomial_h": (None, lambda t: 2.0 * t, lambda k, t, p, q: 2.0 * t * q - 2.0 * k * p),
    "hermite_polynomial_he": (None, lambda t: t, lambda k, t, p, q: t * q - k * p),
    "laguerre_polynomial_l": (None, lambda t: 1.0 - t, lambda k, t, p, q: ((2 * k + 1 - t) * q - k * p) / (k + 1)),
    "legendre_polynomial_p": (None, lambda t: t, lambda k, t, p, q: ((2 * k + 1) * t * q - k * p) / (k + 1)),
}
for _kind in "tuvw":
    _POLYNOMIALS[f"shifted_chebyshev_polynomial_{_kind}"] = (_shifted,) + _POLYNOMIALS[f"chebyshev_polynomial_{_kind}"][1:]


def orthogonal_polynomial(name: str, x, n, xp):
    """The polynomial of degree n (truncated to an integer; 0 for n < 0) at x, elementwise, in float64, by its
    three-term recurrence."""
    argument, first, step = _POLYNOMIALS[name]
    x64, n64 = xp.broadcast_arrays(_f64(x), xp.trunc(_f64(n)))
    t = argument(x64) if argument else x64
    top = int(n64.max()) if n64.size else 0
    previous, current = xp.ones_like(t), first(t)
    out = xp.where(n64 == 0, 1.0, xp.where(n64 == 1, current, 0.0))
    with _quiet(xp):
        for k in range(1, top):
            previous, current = current, step(k, t, previous, current)
            out = xp.where(n64 == k + 1, current, out)
    return out


# ----- the Hurwitz zeta function ----------------------------------------------------------------------------

_BERNOULLI_2K = (1 / 6, -1 / 30, 1 / 42, -1 / 30, 5 / 66, -691 / 2730, 7 / 6, -3617 / 510, 43867 / 798,
                 -174611 / 330, 854513 / 138)
_ZETA_SHIFT = 12.0


def zeta(s, q, xp):
    """The Hurwitz zeta function sum_{k>=0} (q + k)^-s, in float64: the first terms directly until q + k >= 12,
    then the Euler-Maclaurin tail. inf at s == 1 and at the poles q = 0, -1, ...; nan for s < 1, and for q < 0
    with a non-integer s."""
    s64, q64 = xp.broadcast_arrays(_f64(s), _f64(q))
    with _quiet(xp):
        valid = (s64 > 1) & ~((q64 <= 0) & (q64 == xp.floor(q64)))
        s_ = xp.where(valid, s64, 2.0)
        q_ = xp.where(valid, q64, 1.0)
        # shift to q + k >= 12 + s, where the tail's terms fall by (s + 2j)^2 / (2 pi u)^2 < 1/4 per step
        limit = _ZETA_SHIFT + s_
        u, total = q_, xp.zeros_like(q_)
        steps = int(max(0.0, float((limit - q_).max()))) + 1 if q_.size else 0
        for _ in range(steps):
            below = u < limit
            total = total + xp.where(below, u ** -s_, 0.0)
            u = xp.where(below, u + 1.0, u)
        tail = u ** (1.0 - s_) / (s_ - 1.0) + 0.5 * u ** -s_
        rising, power, factorial = s_, u ** (-s_ - 1.0), 2.0
        for j, b in enumerate(_BERNOULLI_2K, start=1):
            tail = tail + b / factorial * rising * power
            rising = rising * (s_ + 2 * j - 1) * (s_ + 2 * j)
            factorial *= (2 * j + 1) * (2 * j + 2)
            power = power / (u * u)
        out = total + tail
        pole = (s64 == 1) | ((q64 <= 0) & (q64 == xp.floor(q64)) & (s64 > 1))
        out = xp.where(valid, out, xp.where(pole, xp.inf, xp.nan))
        out = xp.where((q64 < 0) & (s64 != xp.floor(s64)) & valid, xp.nan, out)
    return out


def spherical_bessel_j0(x, xp):
    """sin(x) / x (1 at 0)."""
    x64 = _f64(x)
    with _quiet(xp):
        out = xp.where(xp.abs(x64) < 1e-4, 1.0 - x64 * x64 / 6.0, xp.sin(x64) / xp.where(x64 == 0, 1.0, x64))
        return xp.where(xp.isinf(x64), 0.0, out).astype(x.dtype, copy=False)


# ----- Bessel functions J0, J1, Y0, Y1 and modified K0, K1 -------------------------------------------------

_EULER_GAMMA = 0.5772156649015329
_BESSEL_NEAR = 25.0  # below: Miller's recurrence (and an integral for K); above: the asymptotic expansions
_MILLER_START = 70  # even, well past 25 + the dozens of orders over which J_n(x) falls below 1e-17 of J_0


def _hankel(nu: int, x, xp):
    """(P, Q) of Hankel's expansion J_nu(x) = sqrt(2 / (pi x)) (P cos chi - Q sin chi), Y_nu likewise with
    (P sin chi + Q cos chi), chi = x - (nu / 2 + 1/4) pi, for x >= 25 (terms a_k(nu) / x^k, the smallest about
    exp(-2x))."""
    mu = 4.0 * nu * nu
    term = xp.ones_like(x)
    p, q = term, xp.zeros_like(x)
    for k in range(1, 40):
        term = term * (mu - (2 * k - 1) ** 2) / (k * 8.0 * x)
        if k % 2:
            q = q + (term if k % 4 == 1 else -term)
        else:
            p = p + (term if k % 4 == 0 else -term)
    return p, q


def _miller(x, xp):
    """(J0, J1, S0, S1) for 0 < x <= 25 by Miller's backward recurrence J_{k-1} = (2k / x) J_k - J_{k+1},
    normalised by J_0 + 2 sum J_2k = 1, with S0 = sum_{k>=1} (-1)^k J_2k / k and
    S1 = sum_{k>=1} (-1)^k (J_{2k-1} - J_{2k+1}) / k, the sums Neumann's series for Y0 and Y1 need."""
    above, current = xp.zeros_like(x), xp.full_like(x, 1e-30)
    norm, s0, s1 = xp.zeros_like(x), xp.zeros_like(x), xp.zeros_like(x)
    j1 = xp.zeros_like(x)
    for k in range(_MILLER_START, 0, -1):  # current = J_k (unnormalised); make J_{k-1}
        if k % 2 == 0:
            norm = norm + 2.0 * current
            s0 = s0 + (-1) ** (k // 2) / (k // 2) * current
        else:
            weight = (-1) ** ((k + 1) // 2) / ((k + 1) // 2) - ((-1) ** ((k - 1) // 2) / ((k - 1) // 2) if k >= 3 else 0.0)
            s1 = s1 + weight * current
        if k == 1:
            j1 = current
        above, current = current, (2.0 * k / x) * current - above
        big = xp.abs(current) > 1e200
        if bool(big.any()):
            scale = xp.where(big, 1e-200, 1.0)
            above, current, norm, s0, s1, j1 = (v * scale for v in (above, current, norm, s0, s1, j1))
    norm = norm + current  # current is J_0
    return current / norm, j1 / norm, s0 / norm, s1 / norm


_BESSEL_TINY = 1e-3  # below: the power series' first terms (Miller's recurrence would overflow in one step)


def _tiny_jy(x, xp):
    """(J0, J1, Y0, Y1) for 0 < x <= 1e-3 from the ascending series (A&S 9.1.10, 9.1.11), three terms each."""
    q = -x * x / 4.0
    log_half = xp.log(x / 2.0)
    j0 = 1.0 + q + q * q / 4.0
    j1 = x / 2.0 * (1.0 + q / 2.0 + q * q / 12.0)
    psi1, psi2, psi3, psi4 = -_EULER_GAMMA, 1.0 - _EULER_GAMMA, 1.5 - _EULER_GAMMA, 11.0 / 6.0 - _EULER_GAMMA
    y0 = (2.0 / math.pi) * ((log_half + _EULER_GAMMA) * j0 + (-q) - 1.5 * q * q / 4.0)
    y1 = -2.0 / (math.pi * x) + (2.0 / math.pi) * log_half * j1 \
        - x / (2.0 * math.pi) * ((psi1 + psi2) + (psi2 + psi3) * q / 2.0 + (psi3 + psi4) * q * q / 12.0)
    return j0, j1, y0, y1


def bessel_jy(x, xp):
    """(J0, J1, Y0, Y1) of a float64 array: J0 even and J1 odd in x; Y0, Y1 nan for x < 0 and -inf at 0."""
    a = xp.abs(x)
    with _quiet(xp):
        near = xp.clip(a, _BESSEL_TINY, _BESSEL_NEAR)
        j0, j1, s0, s1 = _miller(near, xp)
        log_term = xp.log(near / 2.0) + _EULER_GAMMA
        y0 = (2.0 / math.pi) * log_term * j0 - (4.0 / math.pi) * s0
        y1 = (2.0 / math.pi) * (log_term * j1 - j0 / near) + (2.0 / math.pi) * s1
        tiny = xp.clip(a, 1e-300, _BESSEL_TINY)
        is_tiny = a < _BESSEL_TINY
        j0, j1, y0, y1 = (xp.where(is_tiny, t, v) for t, v in zip(_tiny_jy(tiny, xp), (j0, j1, y0, y1)))
        far = xp.maximum(a, _BESSEL_NEAR)
        amplitude = xp.sqrt(2.0 / (math.pi * far))
        chi0, chi1 = far - math.pi / 4, far - 3 * math.pi / 4
        p0, q0 = _hankel(0, far, xp)
        p1, q1 = _hankel(1, far, xp)
        is_near = a <= _BESSEL_NEAR
        j0 = xp.where(is_near, j0, amplitude * (p0 * xp.cos(chi0) - q0 * xp.sin(chi0)))
        j1 = xp.where(is_near, j1, amplitude * (p1 * xp.cos(chi1) - q1 * xp.sin(chi1)))
        y0 = xp.where(is_near, y0, amplitude * (p0 * xp.sin(chi0) + q0 * xp.cos(chi0)))
        y1 = xp.where(is_near, y1, amplitude * (p1 * xp.sin(chi1) + q1 * xp.cos(chi1)))
        j0 = xp.where(a == 0, 1.0, xp.where(xp.isinf(a), 0.0, j0))
        j1 = xp.where(a == 0, 0.0, xp.where(xp.isinf(a), 0.0, xp.where(x < 0, -j1, j1)))  # odd
        y0 = xp.where(x < 0, xp.nan, xp.where(x == 0, -xp.inf, xp.where(xp.isinf(x), 0.0, y0)))
        y1 = xp.where(x < 0, xp.nan, xp.where(x == 0, -xp.inf, xp.where(xp.isinf(x), 0.0, y1)))
    return j0, j1, y0, y1


_K_STEP = 0.1  # trapezoid step of K's integral: its error is about exp(-pi^2 / step) for x up to 25


def bessel_k_scaled(nu: float, x, xp):
    """exp(x) K_nu(x) for x > 0 (any real order nu >= 0): below 25, the trapezoid rule on exp(-x (cosh t - 1)) cosh(nu t)
    over t >= 0 (exponentially accurate for this analytic, doubly exponentially decaying integrand); above, the
    asymptotic expansion sqrt(pi / 2x) sum_k a_k(nu) / x^k."""
    with _quiet(xp):
        near = xp.clip(x, 1e-300, _BESSEL_NEAR)
        total = 0.5 * xp.ones_like(near)  # the t = 0 term, halved
        t = _K_STEP
        while True:
            term = xp.exp(-near * (math.cosh(t) - 1.0)) * math.cosh(nu * t)
            total = total + term
            if not bool((term > 1e-18 * total).any()):
                break
            t += _K_STEP
        integral = total * _K_STEP
        far = xp.maximum(x, _BESSEL_NEAR)
        mu = 4.0 * nu * nu
        term, series = xp.ones_like(far), xp.ones_like(far)
        for k in range(1, 40):
            term = term * (mu - (2 * k - 1) ** 2) / (k * 8.0 * far)
            series = series + term
        out = xp.where(x <= _BESSEL_NEAR, integral, xp.sqrt(math.pi / (2.0 * far)) * series)
        out = xp.where(x < 0, xp.nan, xp.where(x == 0, xp.inf, xp.where(xp.isinf(x), 0.0, out)))
    return out


# ----- the Airy function Ai -----------------------------------------------------------------------------------

_AI_0, _AI_PRIME_0 = 0.355028053887817239, -0.258819403792806798  # Ai(0), Ai'(0)
_AIRY_SERIES_FROM = -6.5  # the ascending series on [-6.5, 1]: below, the oscillating asymptotic expansion
_AIRY_SERIES_TERMS = 60


def _airy_series(x, xp):
    """Ai(x) = Ai(0) f(x) + Ai'(0) g(x), f = 1 + x^3/3! + 1*4 x^6/6! + ..., g = x + 2 x^4/4! + 2*5 x^7/7! + ..."""
    cube = x * x * x
    f_term, g_term = xp.ones_like(x), x
    f, g = f_term, g_term
    for k in range(1, _AIRY_SERIES_TERMS):
        f_term = f_term * cube / ((3 * k - 1) * (3 * k))
        g_term = g_term * cube / ((3 * k) * (3 * k + 1))
        f, g = f + f_term, g + g_term
    return _AI_0 * f + _AI_PRIME_0 * g


def _airy_oscillating(z, xp):
    """Ai(-z) for z >= 6.5: pi^-1/2 z^-1/4 (sin(zeta + pi/4) P - cos(zeta + pi/4) Q), zeta = 2/3 z^3/2, with
    P = sum (-1)^k u_2k zeta^-2k, Q = sum (-1)^k u_2k+1 zeta^-2k-1 and u_k = u_k-1 (6k-5)(6k-3)(6k-1) / (216 k (2k-1))."""
    zeta = 2.0 / 3.0 * z * xp.sqrt(z)
    u, p, q = 1.0, xp.ones_like(z), xp.zeros_like(z)
    power = xp.ones_like(z)
    for k in range(1, 30):
        u = u * (6 * k - 5) * (6 * k - 3) * (6 * k - 1) / (216 * k * (2 * k - 1))
        power = power / zeta
        sign = -1.0 if (k // 2) % 2 else 1.0
        if k % 2:
            q = q + sign * u * power
        else:
            p = p + sign * u * power
    phase = zeta + math.pi / 4
    return (xp.sin(phase) * p - xp.cos(phase) * q) / (math.sqrt(math.pi) * z ** 0.25)


def airy_ai(x, xp):
    """The Airy function Ai of a float64 array: the ascending series on [-6.5, 1], the asymptotic expansion
    below, and above 1 Ai(x) = sqrt(x / 3) / pi K_1/3(2/3 x^3/2) from the modified Bessel function's integral."""
    with _quiet(xp):
        middle = _airy_series(xp.clip(x, _AIRY_SERIES_FROM, 1.0), xp)
        low = _airy_oscillating(xp.maximum(-x, -_AIRY_SERIES_FROM), xp)
        high_x = xp.maximum(x, 1.0)
        zeta = 2.0 / 3.0 * high_x * xp.sqrt(high_x)
        high = xp.sqrt(high_x / 3.0) / math.pi * xp.exp(-zeta) * bessel_k_scaled(1.0 / 3.0, zeta, xp)
        out = xp.where(x < _AIRY_SERIES_FROM, low, xp.where(x > 1.0, high, middle))
        return xp.where(x == xp.inf, 0.0, xp.where(x == -xp.inf, 0.0, out))
