"""Special functions numpy lacks, written with array-namespace operations only (so they run on
any backend) and with the same results whether or not scipy is installed."""

from __future__ import annotations

import math

# Chebyshev coefficients of P(u), u = 2t - 1, t = 2 / (2 + z), such that for z >= 0
#   erfc(z) = t * exp(-z**2 + P(u))
# Fitted (degree 24, 400 Chebyshev nodes) against 40-digit erfc values from mpmath; the relative
# error of erfc is below 2e-13 on [0, 27] (below that erfc underflows float64).
_ERFC_CHEB = (
    -0.6513268598908551, 0.6419697923564902, 0.01947647320418583, -0.009561514786808561,
    -0.0009465953444819306, 0.0003668394978526942, 4.252332480686984e-05, -2.0278578112704116e-05,
    -1.6242900047859729e-06, 1.3036558356184493e-06, 1.5626441435484684e-08, -8.523809594006207e-08,
    6.529054357472433e-09, 5.059343491400346e-09, -9.913642822113102e-10, -2.273651533102058e-10,
    9.646797121130922e-11, 2.3939827754535004e-12, -6.88608010344613e-12, 8.94481673712147e-13,
    3.1301363256319756e-13, -1.1266983483514776e-13, 4.710277376051329e-16, 7.035976830476672e-15,
    -1.5700924586837763e-15,
)
# Maclaurin series of erf: 2/sqrt(pi) * sum_n (-1)^n x^(2n+1) / (n! (2n+1)), accurate to 1e-17 for |x| < 0.5
_ERF_SERIES = tuple((-1) ** n / (math.factorial(n) * (2 * n + 1)) * 2 / math.sqrt(math.pi) for n in range(14))


def _chebval(u, coeffs, xp):
    """Clenshaw's recurrence for sum_k c_k T_k(u)."""
    b1 = xp.zeros_like(u)
    b2 = xp.zeros_like(u)
    for c in coeffs[:0:-1]:
        b1, b2 = 2 * u * b1 - b2 + c, b1
    return u * b1 - b2 + coeffs[0]


def erfc_nonneg(z, xp):
    """erfc(z) for z >= 0, computed in float64."""
    t = 2.0 / (2.0 + z)
    return t * xp.exp(-z * z + _chebval(2.0 * t - 1.0, _ERFC_CHEB, xp))


def erf(x, xp):
    """The error function of an array, elementwise, in the array's floating dtype."""
    x64 = x.astype("float64", copy=False)
    a = xp.abs(x64)
    far = 1.0 - erfc_nonneg(a, xp)
    # the series is used only where |x| < 0.5: clip elsewhere so that inf inputs compute no inf * 0
    small = xp.minimum(a, 0.5)
    x2 = small * small
    near = xp.zeros_like(x64)
    for c in _ERF_SERIES[::-1]:
        near = near * x2 + c
    near = near * small
    result = xp.where(a < 0.5, near, far)
    result = xp.copysign(result, x64)
    return result.astype(x.dtype, copy=False)


# ----- inverse error function ------------------------------------------------------------------------

_SQRT_PI = math.sqrt(math.pi)
# Giles' single-precision approximation of erfinv (M. Giles, "Approximating the erfinv function", 2010),
# used as the starting point of Halley's iteration on erf/erfc.
_GILES_CENTRAL = (2.81022636e-08, 3.43273939e-07, -3.5233877e-06, -4.39150654e-06, 0.00021858087,
                  -0.00125372503, -0.00417768164, 0.246640727, 1.50140941)
_GILES_TAIL = (-0.000200214257, 0.000100950558, 0.00134934322, -0.00367342844, 0.00573950773,
               -0.0076224613, 0.00943887047, 1.00167406, 2.83297682)


def _horner(x, coeffs):
    p = coeffs[0]
    for c in coeffs[1:]:
        p = p * x + c
    return p


def _inverse_erfc_pos(a, y, xp):
    """z >= 0 with erf(z) = a and erfc(z) = y, given both a = 1 - y and y in [0, 1] (each exact)."""
    with _quiet(xp):
        w = -xp.log(y * (2.0 - y))
        central = _horner(w - 2.5, _GILES_CENTRAL) * a
        tail = _horner(xp.sqrt(w) - 3.0, _GILES_TAIL) * a
        # beyond Giles' range, erfc(z) ~ exp(-z^2) (1 - 1 / (2 z^2)) / (z sqrt(pi)): fixed-point steps
        far = xp.sqrt(xp.maximum(w, 2.0))
        for _ in range(4):
            far = xp.sqrt(xp.maximum(-xp.log(y) - xp.log(far * _SQRT_PI) + xp.log1p(-0.5 / (far * far)), 2.0))
        z = xp.where(w < 5.0, central, xp.where(w < 16.0, tail, far))
        z = xp.where(xp.isfinite(z), z, 0.0)
        for _ in range(4):  # Halley: cubic convergence
            r = xp.where(a < 0.5, erf(z, xp) - a, y - erfc_nonneg(z, xp))
            slope = (2.0 / _SQRT_PI) * xp.exp(-z * z)
            z = z - r / (slope + z * r)
        z = xp.where(y == 0.0, xp.inf, z)
        return xp.where((y < 0.0) | (y > 1.0) | xp.isnan(y), xp.nan, z)


class _quiet:
    """numpy's floating-point warnings off for the duration (inf/nan are handled explicitly)."""

    def __init__(self, xp):
        self.xp = xp

    def __enter__(self):
        errstate = getattr(self.xp, "errstate", None)
        self.ctx = errstate(all="ignore") if errstate is not None else None
        if self.ctx is not None:
            self.ctx.__enter__()

    def __exit__(self, *exc):
        if self.ctx is not None:
            self.ctx.__exit__(*exc)


def _f64(x):
    return x.astype("float64", copy=False)


def erfc(x, xp):
    """The complementary error function, accurate in the tail (no 1 - erf cancellation)."""
    x64 = _f64(x)
    pos = erfc_nonneg(xp.abs(x64), xp)
    return xp.where(x64 < 0, 2.0 - pos, pos).astype(x.dtype, copy=False)


def erfinv(x, xp):
    """The inverse error function on [-1, 1] (+-inf at +-1, nan outside)."""
    x64 = _f64(x)
    a = xp.abs(x64)
    z = _inverse_erfc_pos(a, 1.0 - a, xp)
    return xp.copysign(z, x64).astype(x.dtype, copy=False)


def ndtri(p, xp):
    """The inverse of the standard normal CDF: sqrt(2) erfinv(2p - 1), accurate for tiny p too."""
    p64 = _f64(p)
    lower = p64 < 0.5
    y = xp.where(lower, 2.0 * p64, 2.0 * (1.0 - p64))  # erfc(|z| / sqrt 2) = y, exact doubling
    z = _inverse_erfc_pos(1.0 - y, y, xp) * math.sqrt(2.0)
    return xp.where(lower, -z, z).astype(p.dtype, copy=False)


# ----- gamma function family ---------------------------------------------------------------------------

def _zeta_minus_one(s: int) -> float:
    """zeta(s) - 1 for an integer s >= 2 (Euler-Maclaurin after 60 terms; exact to double precision)."""
    n = 60
    head = math.fsum(k ** -float(s) for k in range(2, n))
    tail = n ** (1.0 - s) / (s - 1) + 0.5 * n ** -float(s) + s * n ** (-s - 1.0) / 12 \
        - s * (s + 1) * (s + 2) * n ** (-s - 3.0) / 720 + s * (s + 1) * (s + 2) * (s + 3) * (s + 4) * n ** (-s - 5.0) / 30240
    return head + tail


_EULER_GAMMA = 0.5772156649015329
# lgamma(2 + t) = (1 - gamma) t + sum_{k>=2} (-1)^k (zeta(k) - 1) / k t^k, for |t| <= 0.5 (the terms fall as 2^-k)
_LGAMMA2_SERIES = tuple((-1) ** k * _zeta_minus_one(k) / k for k in range(2, 56))
# Stirling's series: B_2k / (2k (2k - 1))
_STIRLING = (1 / 12, -1 / 360, 1 / 1260, -1 / 1680, 1 / 1188, -691 / 360360, 1 / 156, -3617 / 122400)
_HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)


def _sin_pi(x, xp):
    """sin(pi x) with the argument reduced exactly first (accurate for large |x|)."""
    r = x - 2.0 * xp.round(0.5 * x)  # in [-1, 1]
    return xp.sin(math.pi * r)


def _lgamma_pos(x, xp):
    """lgamma for x >= 0.5 (other values are clipped away by the caller)."""
    # [1.5, 2.5]: the series about 2; [0.5, 1.5): lgamma(x) = lgamma(x + 1) - log(x)
    near = x < 1.5
    t = xp.where(near, x + 1.0, x) - 2.0
    t = xp.clip(t, -0.5, 0.5)
    s = xp.zeros_like(t)
    for c in _LGAMMA2_SERIES[::-1]:
        s = (s + c) * t
    s = (s + (1.0 - _EULER_GAMMA)) * t
    mid = xp.where(near, s - xp.log(xp.clip(x, 0.5, 1.5)), s)
    # (2.5, 13): recur down to [1.5, 2.5]: lgamma(x) = lgamma(x - k) + log((x - 1) ... (x - k))
    u = xp.clip(x, 2.5, 13.0)
    prod = xp.ones_like(u)
    for _ in range(11):
        step = u > 2.5
        u = xp.where(step, u - 1.0, u)
        prod = xp.where(step, prod * u, prod)
    t = u - 2.0
    s = xp.zeros_like(t)
    for c in _LGAMMA2_SERIES[::-1]:
        s = (s + c) * t
    s = (s + (1.0 - _EULER_GAMMA)) * t
    recur = s + xp.log(prod)
    # [13, inf): Stirling's series
    big = xp.maximum(x, 13.0)
    inv2 = 1.0 / (big * big)
    corr = xp.zeros_like(big)
    for c in _STIRLING[::-1]:
        corr = corr * inv2 + c
    stirling = (big - 0.5) * xp.log(big) - big + _HALF_LOG_2PI + corr / big
    stirling = xp.where(xp.isinf(x), xp.inf, stirling)
    return xp.where(x <= 2.5, mid, xp.where(x < 13.0, recur, stirling))


def lgamma(x, xp):
    """log|Gamma(x)|, elementwise: +inf at the poles (0 and the negative integers) and at +-inf."""
    x64 = _f64(x)
    with _quiet(xp):
        pos = _lgamma_pos(xp.maximum(x64, 0.5), xp)
        # reflection: lgamma(x) = log(pi / |sin(pi x)|) - lgamma(1 - x), for x < 0.5
        refl_arg = xp.maximum(1.0 - x64, 0.5)
        refl = math.log(math.pi) - xp.log(xp.abs(_sin_pi(x64, xp))) - _lgamma_pos(refl_arg, xp)
        out = xp.where(x64 >= 0.5, pos, refl)
        pole = (x64 <= 0) & (x64 == xp.floor(x64))
        out = xp.where(pole | xp.isinf(x64), xp.inf, out)
        # tiny x: lgamma(x) = -log|x| - gamma x (the reflection loses digits there)
        out = xp.where((xp.abs(x64) < 1e-8) & ~pole, -xp.log(xp.abs(x64)) - _EULER_GAMMA * x64, out)
    return out.astype(x.dtype, copy=False)


# Bernoulli numbers B_2k / (2k), for digamma's asymptotic series
_DIGAMMA_ASYM = (1 / 12, -1 / 120, 1 / 252, -1 / 240, 1 / 132, -691 / 32760, 1 / 12, -3617 / 8160)


def _shift_up(x, xp, limit, fn):
    """Accumulate fn(x + k) over k while x + k < limit; returns (x shifted to >= limit, the sum)."""
    acc = xp.zeros_like(x)
    u = x
    for _ in range(int(limit) + 1):
        step = u < limit
        if not bool(step.any()):
            break
        acc = acc + xp.where(step, fn(xp.where(step, u, 1.0)), 0.0)
        u = xp.where(step, u + 1.0, u)
    return u, acc


def _digamma_pos(x, xp):
    """digamma for x > 0."""
    u, acc = _shift_up(x, xp, 10.0, lambda v: 1.0 / v)
    inv2 = 1.0 / (u * u)
    series = xp.zeros_like(u)
    for c in _DIGAMMA_ASYM[::-1]:
        series = series * inv2 + c
    return xp.log(u) - 0.5 / u - series * inv2 - acc


def digamma(x, xp):
    """The logarithmic derivative of Gamma: -inf at +0, +inf at -0, nan at the negative integers."""
    x64 = _f64(x)
    with _quiet(xp):
        pos = _digamma_pos(xp.where(x64 > 0, x64, 1.0 - x64), xp)
        # reflection: digamma(x) = digamma(1 - x) - pi / tan(pi x)
        r = x64 - xp.round(x64)
        refl = pos - math.pi / xp.tan(math.pi * r)
        out = xp.where(x64 > 0, pos, refl)
        out = xp.where((x64 < 0) & (r == 0), xp.nan, out)
        out = xp.where(x64 == 0, xp.copysign(xp.inf, -x64), out)
        out = xp.where(x64 == xp.inf, xp.inf, xp.where(x64 == -xp.inf, xp.nan, out))
    return out.astype(x.dtype, copy=False)


_BERNOULLI_2K = (1 / 6, -1 / 30, 1 / 42, -1 / 30, 5 / 66, -691 / 2730, 7 / 6, -3617 / 510, 43867 / 798)


def _hurwitz_zeta(s: int, x, xp):
    """zeta(s, x) = sum_{k>=0} (x + k)^-s for an integer s >= 2 and x not a non-positive integer
    (Euler-Maclaurin after shifting x to >= 12)."""
    limit = 12.0 + max(0.0, float(-xp.min(x))) if x.size else 12.0
    u, acc = _shift_up(x, xp, limit, lambda v: v ** -float(s))
    tail = u ** (1.0 - s) / (s - 1) + 0.5 * u ** -float(s)
    rising = float(s)  # s (s + 1) ... (s + 2j - 2)
    power = u ** (-s - 1.0)
    fact = 2.0  # (2j)!
    inv2 = 1.0 / (u * u)
    for j, b in enumerate(_BERNOULLI_2K, start=1):
        tail = tail + b / fact * rising * power
        rising *= (s + 2 * j - 1) * (s + 2 * j)
        fact *= (2 * j + 1) * (2 * j + 2)
        power = power * inv2
    return acc + tail


def polygamma(n: int, x, xp):
    """The n-th derivative of digamma (n = 0 is digamma itself)."""
    if n == 0:
        return digamma(x, xp)
    x64 = _f64(x)
    with _quiet(xp):
        pole = (x64 <= 0) & (x64 == xp.floor(x64))
        safe = xp.where(pole | ~xp.isfinite(x64), 1.0, x64)
        if n == 1:  # reflection keeps trigamma cheap for negative x: psi1(x) = pi^2 / sin^2(pi x) - psi1(1 - x)
            neg = safe < 0.5
            z = _hurwitz_zeta(2, xp.where(neg, 1.0 - safe, safe), xp)
            out = xp.where(neg, (math.pi / _sin_pi(safe, xp)) ** 2 - z, z)
        else:
            out = (-1.0) ** (n + 1) * math.factorial(n) * _hurwitz_zeta(n + 1, safe, xp)
        out = xp.where(pole, xp.inf if n % 2 == 1 else xp.nan, out)
        out = xp.where(x64 == xp.inf, 0.0, xp.where(xp.isnan(x64) | (x64 == -xp.inf), xp.nan, out))
    return out.astype(x.dtype, copy=False)


# ----- the reparameterisation gradient of standard gamma draws -------------------------------------------

def _gamma_grad_series(a, x, xp):
    """x * sum_n t_n (digamma(a + n + 1) - log x), t_n = x^n / (a (a + 1) ... (a + n)): minus the a-derivative of
    the lower regularised incomplete gamma P(a, x), from its power series, over the density; for x < a + 1,
    where the terms fall from the start and no large sums cancel."""
    log_x = xp.log(x)
    term = 1.0 / a
    psi = digamma(a, xp) + term  # digamma(a + 1)
    total = term * (psi - log_x)
    # the terms fall at least as fast as exp(-n^2 / 2a) beyond n = 1: 10 sqrt(a) + 60 of them are plenty
    most_terms = int(10 * math.sqrt(float(xp.max(a)))) + 60
    for n in range(1, most_terms):
        term = term * x / (a + n)
        psi = psi + 1.0 / (a + n)
        step = term * (psi - log_x)
        total = total + step
        if not bool((xp.abs(step) > 1e-17 * xp.abs(total)).any()):
            break
    return x * total


def _gamma_grad_fraction(a, x, xp):
    """The same for x >= a + 1, from Legendre's continued fraction Gamma(a, x) = e^-x x^a / F with
    F = b_0 - c_1 / (b_1 - c_2 / (b_2 - ...)), b_n = x + 2n + 1 - a, c_n = n (n - a), and its a-derivative F'
    carried through the forward recurrence of the convergents: the result is x / F (log x - digamma(a) - F'/F)."""
    # convergents A_n / B_n, A_n = b_n A_{n-1} - c_n A_{n-2} (B likewise), and their a-derivatives dA, dB
    a_prev, a_cur = xp.ones_like(x), x + 1.0 - a
    b_prev, b_cur = xp.zeros_like(x), xp.ones_like(x)
    da_prev, da_cur = xp.zeros_like(x), -xp.ones_like(x)
    db_prev, db_cur = xp.zeros_like(x), xp.zeros_like(x)
    f_old, df_old = a_cur, da_cur
    for n in range(1, 100_000):
        b_n, c_n = x + 2.0 * n + 1.0 - a, n * (n - a)
        a_new = b_n * a_cur - c_n * a_prev
        b_new = b_n * b_cur - c_n * b_prev
        da_new = b_n * da_cur - a_cur - c_n * da_prev + n * a_prev
        db_new = b_n * db_cur - b_cur - c_n * db_prev + n * b_prev
        scale = 1.0 / xp.abs(b_new)  # keep the recurrence in range: only the ratios matter
        a_prev, a_cur = a_cur * scale, a_new * scale
        b_prev, b_cur = b_cur * scale, b_new * scale
        da_prev, da_cur = da_cur * scale, da_new * scale
        db_prev, db_cur = db_cur * scale, db_new * scale
        f, df = a_cur / b_cur, (da_cur * b_cur - a_cur * db_cur) / (b_cur * b_cur)
        moving = (xp.abs(f - f_old) > 1e-14 * xp.abs(f)) | (xp.abs(df - df_old) > 1e-14 * (xp.abs(df) + xp.abs(f)))
        if not bool(moving.any()):
            break
        f_old, df_old = f, df
    return x / f * (xp.log(x) - digamma(a, xp) - df / f)


def standard_gamma_grad(alpha, x, xp):
    """dx/dalpha for a standard gamma draw x of concentration alpha, holding its CDF value fixed (the implicit
    reparameterisation gradient): -(dP(alpha, x)/dalpha) / p(x; alpha). Computed in float64 to about 1e-13."""
    a64, x64 = _f64(alpha), _f64(x)
    a64, x64 = xp.broadcast_arrays(a64, x64)
    out = xp.zeros(a64.shape, dtype="float64")
    with _quiet(xp):
        positive = (x64 > 0) & (a64 > 0) & xp.isfinite(x64) & xp.isfinite(a64)
        low = positive & (x64 < a64 + 1.0)
        high = positive & ~low
        if bool(low.any()):
            out[low] = _gamma_grad_series(a64[low], x64[low], xp)
        if bool(high.any()):
            out[high] = _gamma_grad_fraction(a64[high], x64[high], xp)
        out = xp.where(positive | (x64 == 0), out, xp.nan)
    return out.astype(xp.result_type(alpha, x), copy=False)
