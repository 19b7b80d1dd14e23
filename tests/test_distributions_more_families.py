"""Laplace, LogNormal, StudentT, Chi2, Poisson, Binomial, Geometric and Independent against
torch.distributions (float64, batched), their KL pairs, sample moments and rsample gradients."""

import math

import numpy as np
import pytest
import torch

import chainrule as cr
from chainrule import distributions as D
from chainrule.autograd import gradcheck

TD = torch.distributions
RNG = np.random.default_rng(11)


def pair(a):
    a = np.asarray(a, dtype=np.float64)
    return cr.tensor(a, dtype=cr.float64), torch.tensor(a, dtype=torch.float64)


def close(c, t, tol=1e-10):
    np.testing.assert_allclose(c.detach().cpu().numpy(), t.detach().cpu().numpy(), rtol=tol, atol=tol)


def families():
    """(name, positional parameters, keyword parameters, values in the support)."""
    counts = RNG.integers(0, 6, (5, 2, 3)).astype(float)
    return [
        ("Laplace", (RNG.standard_normal((2, 3)), RNG.uniform(0.5, 2, 3)), {}, RNG.standard_normal((5, 2, 3))),
        ("LogNormal", (RNG.standard_normal((2, 3)), RNG.uniform(0.3, 1.5, (2, 3))), {},
         RNG.uniform(0.1, 4, (5, 2, 3))),
        ("StudentT", (RNG.uniform(0.5, 6, (2, 3)), RNG.standard_normal(3), RNG.uniform(0.5, 2, (2, 1))), {},
         RNG.standard_normal((5, 2, 3)) * 3),
        ("Chi2", (RNG.uniform(0.5, 6, (2, 3)),), {}, RNG.uniform(0.1, 5, (5, 2, 3))),
        ("Poisson", (RNG.uniform(0.2, 6, (2, 3)),), {}, counts),
        ("Binomial", (), {"total_count": np.full((2, 3), 7.0), "probs": RNG.uniform(0.05, 0.95, (2, 3))}, counts),
        ("Binomial", (), {"total_count": 5.0, "logits": RNG.standard_normal((2, 3)) * 2}, counts.clip(max=5)),
        ("Geometric", (), {"probs": RNG.uniform(0.1, 0.9, (2, 3))}, counts),
        ("Geometric", (), {"logits": RNG.standard_normal((2, 3))}, counts),
    ]


def build(name, args, kwargs):
    c = getattr(D, name)(*[pair(a)[0] for a in args], **{k: pair(v)[0] for k, v in kwargs.items()})
    t = getattr(TD, name)(*[pair(a)[1] for a in args], **{k: pair(v)[1] for k, v in kwargs.items()})
    return c, t


@pytest.mark.parametrize("case", families(), ids=lambda c: c[0] + "-" + "-".join(c[2]))
def test_against_torch(case):
    name, args, kwargs, value = case
    c, t = build(name, args, kwargs)
    assert tuple(c.batch_shape) == tuple(t.batch_shape) and tuple(c.event_shape) == tuple(t.event_shape)
    cv, tv = pair(value)
    close(c.log_prob(cv), t.log_prob(tv))
    if name != "Poisson":  # torch.distributions.Poisson has no entropy
        close(c.entropy(), t.entropy())
    for moment in ("mean", "variance", "stddev", "mode"):
        close(getattr(c, moment), getattr(t, moment))
    big = (4,) + tuple(c.batch_shape)
    close(c.expand(big).log_prob(cv[:, None]), t.expand(big).log_prob(tv[:, None]))
    s = c.sample((7,))
    assert tuple(s.shape) == (7,) + tuple(c.batch_shape) and not s.requires_grad
    c.log_prob(s)  # the draws lie in the support (validated)
    assert c.has_rsample == t.has_rsample


def test_cdf_icdf_against_torch():
    c, t = build("Laplace", (RNG.standard_normal(3), RNG.uniform(0.5, 2, 3)), {})
    cv, tv = pair(RNG.standard_normal((4, 3)))
    close(c.cdf(cv), t.cdf(tv))
    cu, tu = pair(RNG.uniform(0.01, 0.99, (4, 3)))
    close(c.icdf(cu), t.icdf(tu))
    c, t = build("LogNormal", (RNG.standard_normal(3), RNG.uniform(0.5, 2, 3)), {})
    cv, tv = pair(RNG.uniform(0.1, 3, (4, 3)))
    close(c.cdf(cv), t.cdf(tv))


def test_geometric_and_binomial_edges_as_torch():
    c, t = build("Geometric", (), {"probs": [1.0, 0.5]})
    for v in ([0.0, 0.0], [0.0, 3.0]):
        close(c.log_prob(pair(v)[0]), t.log_prob(pair(v)[1]))
    p = cr.tensor([1.0, 0.5], dtype=cr.float64, requires_grad=True)
    D.Geometric(probs=p).log_prob(cr.tensor([0.0, 2.0], dtype=cr.float64)).sum().backward()
    assert np.isfinite(p.grad.cpu().numpy()).all()
    with pytest.raises(NotImplementedError, match="Inhomogeneous total count"):
        D.Binomial(cr.tensor([2.0, 3.0]), probs=cr.tensor([0.5, 0.5])).entropy()


@pytest.mark.parametrize("name, p, q", [
    ("Laplace", (RNG.standard_normal((2, 3)), RNG.uniform(0.5, 2, (2, 3))), (RNG.standard_normal(3),
                                                                             RNG.uniform(0.5, 2, (2, 1)))),
    ("LogNormal", (RNG.standard_normal((2, 3)), RNG.uniform(0.5, 2, (2, 3))), (RNG.standard_normal(3),
                                                                               RNG.uniform(0.5, 2, 3))),
    ("Poisson", (RNG.uniform(0.2, 5, (2, 3)),), (RNG.uniform(0.2, 5, 3),)),
])
def test_kl_against_torch(name, p, q):
    cp, tp = build(name, p, {})
    cq, tq = build(name, q, {})
    close(D.kl_divergence(cp, cq), TD.kl_divergence(tp, tq))
    close(D.kl_divergence(cq, cp), TD.kl_divergence(tq, tp))


def test_independent_against_torch():
    loc, scale = RNG.standard_normal((4, 2, 3)), RNG.uniform(0.5, 2, (4, 2, 3))
    cn, tn = build("Normal", (loc, scale), {})
    cq, tq = build("Normal", (loc * 0.5, scale * 2), {})
    for dims in (0, 1, 2):
        c, t = D.Independent(cn, dims), TD.Independent(tn, dims)
        assert (tuple(c.batch_shape), tuple(c.event_shape)) == (tuple(t.batch_shape), tuple(t.event_shape))
        cv, tv = pair(RNG.standard_normal((5, 4, 2, 3)))
        close(c.log_prob(cv), t.log_prob(tv))
        close(c.entropy(), t.entropy())
        close(c.mean, t.mean)
        close(D.kl_divergence(c, D.Independent(cq, dims)), TD.kl_divergence(t, TD.Independent(tq, dims)))
        e = c.expand((6,) + tuple(c.batch_shape))
        assert tuple(e.batch_shape) == (6,) + tuple(t.batch_shape) and tuple(e.event_shape) == tuple(t.event_shape)
        assert tuple(c.rsample((2,)).shape) == (2, 4, 2, 3)
    assert repr(D.Independent(cn, 1)) == repr(TD.Independent(tn, 1))
    cb, tb = build("Bernoulli", (), {"probs": RNG.uniform(0.1, 0.9, (3, 2))})
    cv, tv = pair(RNG.integers(0, 2, (3, 2)))
    close(D.Independent(cb, 1).log_prob(cv), TD.Independent(tb, 1).log_prob(tv))
    with pytest.raises(ValueError, match="reinterpreted_batch_ndims <= len"):
        D.Independent(cn, 4)
    with pytest.raises(ValueError, match="reinterpreted_batch_ndims <= len"):
        TD.Independent(tn, 4)


N = 200_000


def _assert_moments(samples, mean, var):
    """Sample mean within 5 standard errors sqrt(var / N), sample variance within 5 of its own standard error
    sqrt((m4 - var^2) / N)."""
    m4 = ((samples - samples.mean(0)) ** 4).mean(0)
    assert np.all(np.abs(samples.mean(0) - mean) < 5 * np.sqrt(var / N))
    assert np.all(np.abs(samples.var(0) - var) < 5 * np.sqrt((m4 - samples.var(0) ** 2) / N))


@pytest.mark.parametrize("name, args, kwargs", [
    ("Laplace", ([0.5, -1.0], [1.0, 0.3]), {}),
    ("LogNormal", ([0.0, 0.5], [0.25, 0.5]), {}),
    ("StudentT", ([9.0, 30.0], [1.0, 0.0], [2.0, 0.5]), {}),  # df > 4: the variance's error is finite
    ("Chi2", ([0.7, 5.0],), {}),
    ("Poisson", ([0.3, 7.0],), {}),
    ("Binomial", (), {"total_count": [3.0, 20.0], "probs": [0.2, 0.7]}),
    ("Geometric", (), {"probs": [0.2, 0.7]}),
])
def test_sample_moments(name, args, kwargs):
    cr.manual_seed(0)
    d, _ = build(name, args, kwargs)
    _assert_moments(d.sample((N,)).cpu().numpy(), d.mean.cpu().numpy(), d.variance.cpu().numpy())


def test_rsample_gradients_against_finite_differences():
    loc = cr.tensor(RNG.standard_normal(3), dtype=cr.float64, requires_grad=True)
    scale = cr.tensor(RNG.uniform(0.5, 2, 3), dtype=cr.float64, requires_grad=True)
    df = cr.tensor([2.5, 4.0, 9.0], dtype=cr.float64)

    def seeded(make):
        def draws(loc, scale):
            cr.manual_seed(3)  # the same noise at every evaluation
            return make(loc, scale).rsample((4,))
        return draws

    assert gradcheck(seeded(D.Laplace), [loc, scale])
    assert gradcheck(seeded(D.LogNormal), [loc, scale])
    assert gradcheck(seeded(lambda loc, scale: D.StudentT(df, loc, scale)), [loc, scale])


def test_student_t_df_gradient_is_unbiased():
    """d/d df E[x^2] = d/d df df / (df - 2) = -2 / (df - 2)^2, from per-draw gradients (each draw its own df);
    tolerance: 5 standard errors of their mean over n = 100,000 draws."""
    cr.manual_seed(1)
    n, nu = 100_000, 9.0
    df = cr.full((n,), nu, dtype=cr.float64, requires_grad=True)
    (D.StudentT(df).rsample() ** 2).sum().backward()
    g = df.grad.cpu().numpy()
    assert abs(g.mean() + 2 / (nu - 2) ** 2) < 5 * g.std() / math.sqrt(n)


def test_bad_arguments_as_torch():
    cases = [
        (lambda lib, T: lib.Laplace(T(0.0), T(-1.0)), "scale"),
        (lambda lib, T: lib.StudentT(T(-1.0)), "df"),
        (lambda lib, T: lib.Poisson(T(-1.0)), "rate"),
        (lambda lib, T: lib.Poisson(T(1.0)).log_prob(T(0.5)), "support"),
        (lambda lib, T: lib.Binomial(T(3.0), probs=T(0.5)).log_prob(T(4.0)), "support"),
        (lambda lib, T: lib.Binomial(T(3.0)), "Either `probs` or `logits`"),
        (lambda lib, T: lib.Geometric(probs=T(1.5)), "probs"),
        (lambda lib, T: lib.LogNormal(T(0.0), T(1.0)).log_prob(T(-1.0)), "support"),
    ]
    for make, pattern in cases:
        with pytest.raises(ValueError, match=pattern):
            make(TD, torch.tensor)
        with pytest.raises(ValueError, match=pattern):
            make(D, cr.tensor)


def test_modes_of_the_first_families_as_torch():
    for name, args, kwargs in [("Normal", ([0.5, -1.0], [1.0, 2.0]), {}), ("Exponential", ([0.5, 2.0],), {}),
                               ("Bernoulli", (), {"probs": [0.2, 0.7]}),
                               ("Categorical", (), {"probs": [[0.2, 0.5, 0.3]]})]:
        c, t = build(name, args, kwargs)
        close(c.mode, t.mode)


def test_generalized_pareto(cpu_repr):
    """Against torch in float32 (torch 2.13's GeneralizedPareto.log_prob fails on float64 input); in float64 the
    density is the CDF's derivative, icdf inverts cdf, xi = 0 is the shifted Exponential; moments by sampling,
    rsample gradients by finite differences."""
    loc, scale = RNG.standard_normal(4), RNG.uniform(0.5, 2, 4)
    xi = np.array([-0.3, 0.0, 0.2, 0.7])
    args32 = [a.astype(np.float32) for a in (loc, scale, xi)]
    c32 = D.GeneralizedPareto(*(cr.tensor(a) for a in args32))
    t32 = TD.GeneralizedPareto(*(torch.tensor(a) for a in args32))
    probs = RNG.uniform(0.05, 0.95, (5, 4)).astype(np.float32)
    x32 = t32.icdf(torch.tensor(probs))
    for ours, theirs in ((c32.icdf(cr.tensor(probs)), x32), (c32.log_prob(cr.tensor(x32.cpu().numpy())), t32.log_prob(x32)),
                         (c32.cdf(cr.tensor(x32.cpu().numpy())), t32.cdf(x32)), (c32.mean, t32.mean),
                         (c32.variance, t32.variance), (c32.entropy(), t32.entropy())):
        np.testing.assert_allclose(ours.cpu().numpy(), theirs.cpu().numpy(), rtol=2e-6, atol=2e-6)
    assert cpu_repr(c32.support) == repr(t32.support)

    d = D.GeneralizedPareto(*(cr.tensor(a, dtype=cr.float64) for a in (loc, scale, xi)))
    x = d.icdf(cr.tensor(probs.astype(np.float64)))
    np.testing.assert_allclose(d.cdf(x).cpu().numpy(), probs, rtol=1e-6)
    h = 1e-6
    slope = (d.cdf(x + h).cpu().numpy() - d.cdf(x - h).cpu().numpy()) / (2 * h)
    np.testing.assert_allclose(d.log_prob(x).cpu().numpy(), np.log(slope), rtol=1e-6, atol=1e-7)
    exponential = D.Exponential(cr.tensor(1 / scale[1], dtype=cr.float64))
    np.testing.assert_allclose(d.log_prob(x).cpu().numpy()[:, 1], exponential.log_prob(x[:, 1] - loc[1]).cpu().numpy(),
                               rtol=1e-12)

    cr.manual_seed(0)
    light = D.GeneralizedPareto(*(cr.tensor(a, dtype=cr.float64) for a in (loc[:2], scale[:2], [-0.3, 0.1])))
    _assert_moments(light.sample((N,)).cpu().numpy(), light.mean.cpu().numpy(), light.variance.cpu().numpy())
    leaves = [cr.tensor(a, dtype=cr.float64, requires_grad=True) for a in (loc, scale, xi + 0.05)]

    def draws(loc, scale, xi):
        cr.manual_seed(1)
        return D.GeneralizedPareto(loc, scale, xi).rsample((3,))

    assert gradcheck(draws, leaves)


def test_von_mises():
    """log_prob and circular variance against mpmath's Bessel functions to 1e-13 and against torch to 1e-6
    (torch evaluates log I0 and I1 by polynomial fits good to about 1e-7); samples: E[cos(x - loc)] =
    I1(k) / I0(k) and E[sin(x - loc)] = 0 within 5 / sqrt(N)."""
    mpmath = pytest.importorskip("mpmath")
    loc, kappa = RNG.uniform(-3, 3, 4), np.array([0.01, 1.0, 20.0, 900.0])
    c, t = build("VonMises", (loc, kappa), {})
    x = RNG.uniform(-3.1, 3.1, (5, 4))
    log_i0 = np.array([float(mpmath.log(mpmath.besseli(0, k))) for k in kappa])
    ratio = np.array([float(mpmath.besseli(1, k) / mpmath.besseli(0, k)) for k in kappa])
    expected = kappa * np.cos(x - loc) - np.log(2 * np.pi) - log_i0
    np.testing.assert_allclose(c.log_prob(pair(x)[0]).cpu().numpy(), expected, rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(c.variance.cpu().numpy(), 1 - ratio, rtol=1e-13, atol=1e-15)
    close(c.log_prob(pair(x)[0]), t.log_prob(pair(x)[1]), 1e-6)
    close(c.variance, t.variance, 1e-6)
    close(c.mean, t.mean)
    assert repr(c.support) == repr(t.support) and c.has_rsample == t.has_rsample
    cr.manual_seed(0)
    s = c.sample((N,)).cpu().numpy()
    assert s.min() >= -np.pi and s.max() <= np.pi
    assert np.all(np.abs(np.cos(s - loc).mean(0) - ratio) < 5 / np.sqrt(N))
    assert np.all(np.abs(np.sin(s - loc).mean(0)) < 5 / np.sqrt(N))
    k = cr.tensor(kappa, dtype=cr.float64, requires_grad=True)
    assert gradcheck(lambda k: D.VonMises(cr.tensor(loc), k).log_prob(cr.tensor(x)), [k])


def test_enumerate_support_as_torch():
    probs = RNG.dirichlet(np.ones(3), 2)
    for name, args, kwargs in [("OneHotCategorical", (), {"probs": probs}), ("Categorical", (), {"probs": probs}),
                               ("Bernoulli", (), {"probs": probs[:, 0]}),
                               ("Binomial", (np.full(2, 4.0),), {"probs": probs[:, 0]})]:
        c, t = build(name, args, kwargs)
        assert c.has_enumerate_support and t.has_enumerate_support
        for expand in (True, False):
            close(c.enumerate_support(expand).double(), t.enumerate_support(expand).double())
    for lib, T in ((D, cr.tensor), (TD, torch.tensor)):
        normal = lib.Normal(T(0.0), T(1.0))
        assert not normal.has_enumerate_support
        with pytest.raises(NotImplementedError):
            normal.enumerate_support()
        with pytest.raises(NotImplementedError):
            lib.Gamma(T(1.0), T(1.0)).icdf(T(0.5))
