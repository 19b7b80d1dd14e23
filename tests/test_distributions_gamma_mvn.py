"""Gamma, Beta, Dirichlet and MultivariateNormal against torch.distributions (float64, batched), their sample
moments, and their reparameterised gradients: the standard gamma's implicit gradient against finite
differences of the CDF and against torch's, unbiased gradients of expectations, MVN's rsample by finite
differences."""

import math

import numpy as np
import pytest
import torch

import chainrule as cr
from chainrule import distributions as D
from chainrule.autograd import gradcheck, gradgradcheck
from chainrule.backend import special
from chainrule.distributions.gamma import _standard_gamma

TD = torch.distributions
RNG = np.random.default_rng(7)


def pair(a):
    a = np.asarray(a, dtype=np.float64)
    return cr.tensor(a, dtype=cr.float64), torch.tensor(a, dtype=torch.float64)


def close(c, t, tol=1e-10):
    np.testing.assert_allclose(c.detach().cpu().numpy(), t.detach().cpu().numpy(), rtol=tol, atol=tol)


def spd(*batch, n=3):
    a = RNG.standard_normal(batch + (n, n))
    return a @ np.swapaxes(a, -1, -2) + n * np.eye(n)


def families():
    """(name, positional parameters, keyword parameters, values in the support for log_prob)."""
    cov = spd(2)
    return [
        ("Gamma", (RNG.uniform(0.2, 4, (2, 3)), RNG.uniform(0.5, 2, (1, 3))), {}, RNG.gamma(1.5, size=(5, 2, 3))),
        ("Beta", (RNG.uniform(0.2, 4, (2, 3)), RNG.uniform(0.2, 4, (3,))), {}, RNG.uniform(0.01, 0.99, (5, 2, 3))),
        ("Dirichlet", (RNG.uniform(0.2, 4, (2, 4)),), {}, RNG.dirichlet(np.ones(4), (5, 2))),
        ("MultivariateNormal", (RNG.standard_normal((4, 1, 3)),), {"covariance_matrix": cov},
         RNG.standard_normal((5, 4, 2, 3))),
        ("MultivariateNormal", (RNG.standard_normal(3),), {"precision_matrix": cov}, RNG.standard_normal((5, 2, 3))),
        ("MultivariateNormal", (RNG.standard_normal((2, 3)),), {"scale_tril": np.linalg.cholesky(cov)},
         RNG.standard_normal((5, 2, 3))),
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
    close(c.entropy(), t.entropy())
    for moment in ("mean", "variance", "stddev", "mode"):
        close(getattr(c, moment), getattr(t, moment))
    if name == "MultivariateNormal":
        for matrix in ("covariance_matrix", "precision_matrix", "scale_tril"):
            close(getattr(c, matrix), getattr(t, matrix))
    big = (4,) + tuple(c.batch_shape)
    close(c.expand(big).entropy(), t.expand(big).entropy())
    s = c.sample((7,))
    assert tuple(s.shape) == (7,) + tuple(c.batch_shape) + tuple(c.event_shape) and not s.requires_grad
    c.log_prob(s)  # the draws lie in the support (validated)


def kl_pairs():
    cov_p, cov_q = spd(2), spd()
    return [
        ("Gamma", ((RNG.uniform(0.2, 4, (2, 3)), RNG.uniform(0.5, 2, (2, 3))), {}),
         ((RNG.uniform(0.2, 4, 3), RNG.uniform(0.5, 2, (2, 1))), {})),
        ("Beta", ((RNG.uniform(0.2, 4, (2, 3)), RNG.uniform(0.2, 4, (2, 3))), {}),
         ((RNG.uniform(0.2, 4, 3), RNG.uniform(0.2, 4, (2, 1))), {})),
        ("Dirichlet", ((RNG.uniform(0.2, 4, (2, 4)),), {}), ((RNG.uniform(0.2, 4, (3, 1, 4)),), {})),
        ("MultivariateNormal", ((RNG.standard_normal((2, 3)),), {"covariance_matrix": cov_p}),
         ((RNG.standard_normal((4, 1, 3)),), {"scale_tril": np.linalg.cholesky(cov_q)})),
    ]


@pytest.mark.parametrize("case", kl_pairs(), ids=lambda c: c[0])
def test_kl_against_torch(case):
    name, (args_p, kw_p), (args_q, kw_q) = case
    cp, tp = build(name, args_p, kw_p)
    cq, tq = build(name, args_q, kw_q)
    for (c1, t1), (c2, t2) in (((cp, tp), (cq, tq)), ((cq, tq), (cp, tp))):
        kl = D.kl_divergence(c1, c2)
        expected = TD.kl_divergence(t1, t2)
        assert tuple(kl.shape) == tuple(expected.shape)
        close(kl, expected)
    close(D.kl_divergence(cp, cp), torch.zeros(tuple(cp.batch_shape), dtype=torch.float64))


def test_log_prob_entropy_kl_gradients_match_torch_and_gradcheck():
    c_loc, t_loc = pair(RNG.standard_normal((2, 3)))
    a = RNG.standard_normal((3, 3))
    c_cov, t_cov = pair(a @ a.T + np.eye(3))
    c_conc, t_conc = pair(RNG.uniform(0.5, 3, (2, 4)))
    c_val, t_val = pair(RNG.standard_normal((2, 3)))
    c_x, t_x = pair(RNG.dirichlet(np.ones(4), 2))
    for t in (c_loc, c_cov, c_conc, t_loc, t_cov, t_conc):
        t.requires_grad_(True)

    def loss(lib, loc, cov, conc, val, x):
        mvn = lib.MultivariateNormal(loc, covariance_matrix=cov)
        dirichlet = lib.Dirichlet(conc)
        ref_gamma = lib.Gamma(conc * 0 + 1.5, conc * 0 + 2.0)
        gamma = lib.Gamma(conc, conc.sum(-1, keepdim=True))
        return (mvn.log_prob(val).sum() + mvn.entropy().sum() + dirichlet.log_prob(x).sum()
                + dirichlet.entropy().sum() + lib.kl_divergence(gamma, ref_gamma).sum()
                + lib.kl_divergence(mvn, lib.MultivariateNormal(loc * 0, covariance_matrix=cov * 2)).sum())

    loss(D, c_loc, c_cov, c_conc, c_val, c_x).backward()
    loss(TD, t_loc, t_cov, t_conc, t_val, t_x).backward()
    for c, t in ((c_loc, t_loc), (c_cov, t_cov), (c_conc, t_conc)):
        close(c.grad, t.grad, 1e-9)
    leaves = [c_loc.detach().requires_grad_(True), c_cov.detach().requires_grad_(True),
              c_conc.detach().requires_grad_(True)]

    def fn(loc, cov, conc):
        sym = (cov + cov.mT) / 2  # gradcheck perturbs one entry at a time: keep the matrix symmetric
        return loss(D, loc, sym, conc, c_val, c_x)

    assert gradcheck(fn, leaves)
    assert gradgradcheck(fn, leaves)


# ---- the standard gamma's implicit reparameterisation gradient ----------------------------------------------

ALPHAS = [0.01, 0.2, 0.9, 1.0, 3.5, 40.0, 2500.0]


def _torch_draws(alpha, n=400):
    torch.manual_seed(int(alpha * 1000) % 2**31)
    return torch._standard_gamma(torch.full((n,), alpha, dtype=torch.float64)).clamp(min=1e-300)


@pytest.mark.parametrize("alpha", ALPHAS)
def test_standard_gamma_grad_against_cdf_finite_differences(alpha):
    """dx/da = -(dP(a, x)/da) / p(x; a): P from torch.special.gammainc, differenced centrally."""
    x = _torch_draws(alpha)
    a = torch.full_like(x, alpha)
    h = 1e-6 * max(alpha, 1.0)
    dP = (torch.special.gammainc(a + h, x) - torch.special.gammainc(a - h, x)) / (2 * h)
    log_pdf = (alpha - 1) * x.log() - x - math.lgamma(alpha)
    expected = -dP / log_pdf.exp()
    got = special.standard_gamma_grad(a.cpu().numpy(), x.cpu().numpy(), np)
    # the finite difference loses digits where P is within rounding of 0 or 1 (the far tails): skip those
    P = torch.special.gammainc(a, x).cpu().numpy()
    usable = (P > 1e-6) & (P < 1 - 1e-6)
    assert usable.sum() > 300
    np.testing.assert_allclose(got[usable], expected.cpu().numpy()[usable], rtol=2e-6)


@pytest.mark.parametrize("alpha", ALPHAS)
def test_standard_gamma_grad_against_torch(alpha):
    """torch's _standard_gamma_grad is an approximation (series, saddle point and rational fits) good to about
    1e-3 relative; ours is computed to about 1e-13 (the test above), so they agree to torch's accuracy."""
    x = _torch_draws(alpha)
    a = torch.full_like(x, alpha)
    ours = special.standard_gamma_grad(a.cpu().numpy(), x.cpu().numpy(), np)
    np.testing.assert_allclose(ours, torch._standard_gamma_grad(a, x).cpu().numpy(), rtol=2e-3, atol=1e-300)


def test_standard_gamma_grad_edges():
    a = np.array([2.0, 2.0, -1.0, np.nan, 2.0])
    x = np.array([0.0, np.inf, 1.0, 1.0, np.nan])
    out = special.standard_gamma_grad(a, x, np)
    assert out[0] == 0 and np.isnan(out[1:]).all()
    assert special.standard_gamma_grad(np.ones(0), np.ones(0), np).shape == (0,)
    assert special.standard_gamma_grad(np.float32([1.5]), np.float32([2.0]), np).dtype == np.float32


def test_gamma_rsample_gradient_is_the_implicit_gradient_of_its_draw():
    """Per draw, with the same standard gamma value: d(x / rate)/da = torch's _standard_gamma_grad(a, x) / rate and
    d(x / rate)/d rate = -x / rate^2."""
    conc = cr.tensor([0.3, 1.7, 12.0], dtype=cr.float64, requires_grad=True)
    rate = cr.tensor([2.0, 0.5, 1.5], dtype=cr.float64, requires_grad=True)
    cr.manual_seed(0)
    y = D.Gamma(conc, rate).rsample((50,))
    y.sum().backward()
    x = (y.detach() * rate.detach()).cpu().numpy()  # the standard gamma draws
    t_conc = torch.tensor(conc.detach().cpu().numpy()).expand(50, 3)
    implicit = torch._standard_gamma_grad(t_conc, torch.tensor(x)).cpu().numpy()
    r = rate.detach().cpu().numpy()
    np.testing.assert_allclose(conc.grad.cpu().numpy(), (implicit / r).sum(0), rtol=2e-3)
    np.testing.assert_allclose(rate.grad.cpu().numpy(), (-x / r ** 2).sum(0), rtol=1e-12)


def test_standard_gamma_second_derivative_is_refused_as_torch():
    a = cr.tensor([1.5], dtype=cr.float64, requires_grad=True)
    (g,) = cr.autograd.grad(_standard_gamma(a).sum(), a, create_graph=True)
    with pytest.raises(NotImplementedError, match="_standard_gamma_grad"):
        g.sum().backward()


def _per_draw_gradient(make, params, f, n):
    """Each of n draws from its own copy of the parameters: returns per-draw d f(x) / d params, shape (n, ...)."""
    leaves = [cr.tensor(np.broadcast_to(p, (n,) + np.shape(p)).copy(), dtype=cr.float64, requires_grad=True)
              for p in params]
    f(make(*leaves).rsample()).sum().backward()
    return [leaf.grad.cpu().numpy() for leaf in leaves]


@pytest.mark.parametrize("name, params, f, exact", [
    # d/da E[x^2] = d/da a (a + 1) / b^2 and d/db of the same
    ("Gamma", (0.7, 1.5), lambda x: x ** 2,
     lambda a, b: [(2 * a + 1) / b ** 2, -2 * a * (a + 1) / b ** 3]),
    # E[x] = c1 / (c1 + c0)
    ("Beta", (0.8, 2.5), lambda x: x, lambda c1, c0: [c0 / (c1 + c0) ** 2, -c1 / (c1 + c0) ** 2]),
    # E[x_0 x_1] = a0 a1 / (s (s + 1)), s = sum(a)
    ("Dirichlet", (np.array([0.5, 1.5, 3.0]),), lambda x: x[..., 0] * x[..., 1],
     lambda a: [np.array([a[1] * (a.sum() * (a.sum() + 1)) - a[0] * a[1] * (2 * a.sum() + 1),
                          a[0] * (a.sum() * (a.sum() + 1)) - a[0] * a[1] * (2 * a.sum() + 1),
                          -a[0] * a[1] * (2 * a.sum() + 1)]) / (a.sum() * (a.sum() + 1)) ** 2]),
])
def test_rsample_gradients_are_unbiased(name, params, f, exact):
    """The mean of the per-draw reparameterised gradients estimates the exact gradient of the expectation;
    tolerance: 5 standard errors of that mean (n = 100,000 draws, seeded)."""
    cr.manual_seed(1)
    n = 100_000
    grads = _per_draw_gradient(getattr(D, name), params, f, n)
    for got, want in zip(grads, exact(*params)):
        standard_error = got.std(0) / math.sqrt(n)
        assert np.all(np.abs(got.mean(0) - want) < 5 * standard_error), (got.mean(0), want, standard_error)


def test_mvn_rsample_gradients_against_finite_differences():
    loc = cr.tensor(RNG.standard_normal((2, 3)), dtype=cr.float64, requires_grad=True)
    cov = cr.tensor(spd(), dtype=cr.float64, requires_grad=True)

    def draws(loc, cov):
        cr.manual_seed(5)  # the same noise at every evaluation
        return D.MultivariateNormal(loc, covariance_matrix=(cov + cov.mT) / 2).rsample((4,))

    assert gradcheck(draws, [loc, cov])
    assert gradgradcheck(draws, [loc, cov])


def test_mvn_rsample_matches_torch_with_the_same_noise():
    """torch's rsample is loc + scale_tril @ eps with eps standard normal: given chainrule's eps, the same draw."""
    c, t = build("MultivariateNormal", (RNG.standard_normal((2, 3)),), {"covariance_matrix": spd(2)})
    cr.manual_seed(2)
    x = c.rsample((6,))
    cr.manual_seed(2)
    eps = cr.randn(6, 2, 3, dtype=cr.float64)
    expected = t.loc + (t.scale_tril @ torch.tensor(eps.cpu().numpy()).unsqueeze(-1)).squeeze(-1)
    close(x, expected, 1e-12)


# ---- sample moments ----------------------------------------------------------------------------------------------

N = 200_000


def _assert_moments(samples, mean, var):
    """Sample mean within 5 standard errors sqrt(var / N); sample variance within 5 of its own standard error,
    sqrt((m4 - var^2) / N) from the sample's fourth central moment."""
    m4 = ((samples - samples.mean(0)) ** 4).mean(0)
    assert np.all(np.abs(samples.mean(0) - mean) < 5 * np.sqrt(var / N))
    assert np.all(np.abs(samples.var(0) - var) < 5 * np.sqrt((m4 - samples.var(0) ** 2) / N))


@pytest.mark.parametrize("name, params", [
    ("Gamma", ([0.2, 1.0, 6.0], [1.0, 2.0, 0.5])),
    ("Beta", ([0.3, 2.0, 5.0], [0.7, 2.0, 1.5])),
    ("Dirichlet", ([0.4, 1.0, 3.0],)),
])
def test_sample_moments(name, params):
    cr.manual_seed(0)
    d = getattr(D, name)(*[cr.tensor(p, dtype=cr.float64) for p in params])
    _assert_moments(d.sample((N,)).cpu().numpy(), d.mean.cpu().numpy(), d.variance.cpu().numpy())


def test_mvn_sample_mean_and_covariance():
    cov = spd()
    loc = np.array([1.0, -2.0, 0.5])
    cr.manual_seed(0)
    s = D.MultivariateNormal(cr.tensor(loc), cr.tensor(cov)).sample((N,)).cpu().numpy()
    _assert_moments(s, loc, np.diag(cov))
    # each covariance entry: standard error sqrt((cov_ii cov_jj + cov_ij^2) / N) for a Gaussian
    se = np.sqrt((np.outer(np.diag(cov), np.diag(cov)) + cov ** 2) / N)
    assert np.all(np.abs(np.cov(s.T) - cov) < 5 * se)


def test_sampling_is_seeded_and_keeps_dtype():
    for make in (lambda: D.Gamma(cr.tensor([0.5, 2.0]), cr.tensor(1.0)),
                 lambda: D.Dirichlet(cr.tensor([0.5, 2.0, 1.0])),
                 lambda: D.MultivariateNormal(cr.zeros(2), scale_tril=cr.eye(2))):
        cr.manual_seed(4)
        a = make().sample((3,))
        cr.manual_seed(4)
        b = make().sample((3,))
        assert a.dtype == cr.float32
        np.testing.assert_array_equal(a.cpu().numpy(), b.cpu().numpy())
    tiny = D.Gamma(cr.tensor([1e-3]), cr.tensor(1.0)).sample((1000,)).cpu().numpy()
    assert tiny.min() >= np.finfo(np.float32).tiny  # underflowing draws are raised to the smallest normal


# ---- bad arguments: PyTorch's errors ---------------------------------------------------------------------------------

@pytest.mark.parametrize("make, pattern", [
    (lambda lib, T: lib.MultivariateNormal(T([0.0, 0.0])), "Exactly one of covariance_matrix"),
    (lambda lib, T: lib.MultivariateNormal(T([0.0, 0.0]), T([[1.0, 0.0], [0.0, 1.0]]), scale_tril=T([[1.0, 0.0],
                                                                                               [0.0, 1.0]])),
     "Exactly one of covariance_matrix"),
    (lambda lib, T: lib.MultivariateNormal(T(0.0), T([[1.0]])), "loc must be at least one-dimensional"),
    (lambda lib, T: lib.MultivariateNormal(T([0.0, 0.0]), T([[1.0, 2.0], [2.0, 1.0]])), "PositiveDefinite"),
    (lambda lib, T: lib.MultivariateNormal(T([0.0, 0.0]), scale_tril=T([[1.0, 1.0], [0.0, 1.0]])),
     "LowerCholesky"),
    (lambda lib, T: lib.Gamma(T([1.0, -1.0]), T(1.0)), "concentration"),
    (lambda lib, T: lib.Beta(T(1.0), T(0.0)), "concentration"),
    (lambda lib, T: lib.Dirichlet(T(1.0)), "at least one-dimensional"),
    (lambda lib, T: lib.Dirichlet(T([1.0, 0.0])), "concentration"),
    (lambda lib, T: lib.Gamma(T(1.0), T(1.0)).log_prob(T(-1.0)), "support"),
    (lambda lib, T: lib.Dirichlet(T([1.0, 1.0])).log_prob(T([0.5, 0.6])), "support"),
])
def test_bad_arguments_as_torch(make, pattern):
    with pytest.raises(ValueError, match=pattern):
        make(TD, torch.tensor)
    with pytest.raises(ValueError, match=pattern):
        make(D, cr.tensor)


def test_mvn_size_mismatch_is_an_error():
    with pytest.raises(ValueError, match=r"square matrices of the size of loc's last dimension \(2\)"):
        D.MultivariateNormal(cr.zeros(2), cr.eye(3))


# ---- LowRankMultivariateNormal -------------------------------------------------------------------------------------

def lowrank(batch=(2,), n=4, rank=2):
    return RNG.standard_normal(batch + (n,)), RNG.standard_normal(batch + (n, rank)), RNG.uniform(0.5, 2, batch + (n,))


def test_lowrank_mvn_against_torch():
    loc, W, diag = lowrank()
    c = D.LowRankMultivariateNormal(*(pair(a)[0] for a in (loc, W, diag)))
    t = TD.LowRankMultivariateNormal(*(pair(a)[1] for a in (loc, W, diag)))
    assert (tuple(c.batch_shape), tuple(c.event_shape)) == (tuple(t.batch_shape), tuple(t.event_shape))
    cv, tv = pair(RNG.standard_normal((5, 2, 4)))
    close(c.log_prob(cv), t.log_prob(tv))
    close(c.entropy(), t.entropy())
    for name in ("mean", "variance", "covariance_matrix", "precision_matrix", "scale_tril"):
        close(getattr(c, name), getattr(t, name))
    close(c.expand((3, 2)).log_prob(cv[:, None]), t.expand((3, 2)).log_prob(tv[:, None]))
    assert tuple(c.rsample((6,)).shape) == (6, 2, 4)
    shared_c = D.LowRankMultivariateNormal(*(pair(a)[0] for a in (loc, W[0], diag)))  # one factor for the batch
    shared_t = TD.LowRankMultivariateNormal(*(pair(a)[1] for a in (loc, W[0], diag)))
    close(shared_c.log_prob(cv), shared_t.log_prob(tv))
    close(shared_c.precision_matrix, shared_t.precision_matrix)
    cov = spd(2, n=4)  # batched matrices on both sides: torch's mixed-batch MVN/low-rank KL fails to broadcast
    mvn_c = D.MultivariateNormal(pair(loc[::-1].copy())[0], pair(cov)[0])
    mvn_t = TD.MultivariateNormal(pair(loc[::-1].copy())[1], pair(cov)[1])
    for p_c, q_c, p_t, q_t in ((c, mvn_c, t, mvn_t), (mvn_c, c, mvn_t, t), (c, c.expand((2,)), t, t)):
        close(D.kl_divergence(p_c, q_c), TD.kl_divergence(p_t, q_t), 1e-9)
    for message, args in [("loc must be at least one-dimensional", (cr.tensor(0.0), cr.ones(3, 2), cr.ones(3))),
                          ("cov_factor must be a batch of matrices", (cr.zeros(3), cr.ones(4, 2), cr.ones(3))),
                          ("cov_diag must be a batch of vectors", (cr.zeros(3), cr.ones(3, 2), cr.ones(4)))]:
        with pytest.raises(ValueError, match=message):
            D.LowRankMultivariateNormal(*args)


def test_lowrank_mvn_gradients_and_moments():
    loc, W, diag = lowrank((), n=3, rank=2)
    leaves = [cr.tensor(a, dtype=cr.float64, requires_grad=True) for a in (loc, W, diag)]

    def draws(loc, W, diag):
        cr.manual_seed(6)
        return D.LowRankMultivariateNormal(loc, W, diag).rsample((4,))

    def log_prob(loc, W, diag):
        return D.LowRankMultivariateNormal(loc, W, diag).log_prob(cr.tensor(RNG_FIXED, dtype=cr.float64))

    assert gradcheck(draws, leaves)
    assert gradcheck(log_prob, leaves)
    cr.manual_seed(0)
    d = D.LowRankMultivariateNormal(*(cr.tensor(a, dtype=cr.float64) for a in (loc, W, diag)))
    s = d.sample((N,)).cpu().numpy()
    cov = d.covariance_matrix.cpu().numpy()
    se = np.sqrt((np.outer(np.diag(cov), np.diag(cov)) + cov ** 2) / N)
    assert np.all(np.abs(s.mean(0) - loc) < 5 * np.sqrt(np.diag(cov) / N))
    assert np.all(np.abs(np.cov(s.T) - cov) < 5 * se)


RNG_FIXED = np.random.default_rng(99).standard_normal((5, 3))


# ---- Wishart ---------------------------------------------------------------------------------------------------

def test_wishart_against_torch():
    cov = spd(2)
    df = np.array([3.5, 7.0])
    X = RNG.standard_normal((5, 2, 3, 3))
    X = X @ np.swapaxes(X, -1, -2) + np.eye(3)
    for key, matrix in (("covariance_matrix", cov), ("precision_matrix", np.linalg.inv(cov)),
                        ("scale_tril", np.linalg.cholesky(cov))):
        c = D.Wishart(pair(df)[0], **{key: pair(matrix)[0]})
        t = TD.Wishart(pair(df)[1], **{key: pair(matrix)[1]})
        assert (tuple(c.batch_shape), tuple(c.event_shape)) == (tuple(t.batch_shape), tuple(t.event_shape))
        close(c.log_prob(pair(X)[0]), t.log_prob(pair(X)[1]), 1e-9)
        close(c.entropy(), t.entropy(), 1e-9)
        for name in ("mean", "variance", "covariance_matrix", "precision_matrix", "scale_tril"):
            close(getattr(c, name), getattr(t, name), 1e-9)
        np.testing.assert_allclose(c.mode.cpu().numpy(), t.mode.cpu().numpy(), rtol=1e-9, atol=1e-9)  # NaN where df <= p + 1
        close(D.ExponentialFamily.entropy(c), t.entropy(), 1e-9)
    draws = c.rsample((4,))
    assert tuple(draws.shape) == (4, 2, 3, 3) and bool(D.constraints.positive_definite.check(draws).all())
    assert tuple(c.expand((3, 2)).sample().shape) == (3, 2, 3, 3)
    for lib, T in ((D, cr.tensor), (TD, torch.tensor)):
        with pytest.raises(ValueError, match="df"):
            lib.Wishart(T(1.5), T(np.eye(3)))


def test_wishart_moments_and_gradients():
    cov = spd()
    df = 6.0
    cr.manual_seed(0)
    d = D.Wishart(cr.tensor(df, dtype=cr.float64), cr.tensor(cov, dtype=cr.float64))
    s = d.sample((N,)).cpu().numpy()
    mean, var = d.mean.cpu().numpy(), d.variance.cpu().numpy()
    m4 = ((s - s.mean(0)) ** 4).mean(0)
    assert np.all(np.abs(s.mean(0) - mean) < 5 * np.sqrt(var / N))
    assert np.all(np.abs(s.var(0) - var) < 5 * np.sqrt((m4 - s.var(0) ** 2) / N))
    L = cr.tensor(np.linalg.cholesky(cov), dtype=cr.float64, requires_grad=True)

    def draws(L):
        cr.manual_seed(3)
        return D.Wishart(cr.tensor(df, dtype=cr.float64), scale_tril=L.tril()).rsample((2,))

    assert gradcheck(draws, [L])
    # df reaches the draws through the gamma draws: d/d df E[X] = Sigma, from per-draw gradients
    n = 50_000
    dfs = cr.full((n,), df, dtype=cr.float64, requires_grad=True)
    cr.manual_seed(4)
    D.Wishart(dfs, cr.tensor(cov, dtype=cr.float64)).rsample()[:, 0, 0].sum().backward()
    g = dfs.grad.cpu().numpy()
    assert abs(g.mean() - cov[0, 0]) < 5 * g.std() / np.sqrt(n)


def test_standard_gamma_grad_against_mpmath():
    """The implicit gradient to 1e-12 relative against mpmath (40 digits: d/da of the regularised incomplete
    gamma over the density), across both of its methods (series below a + 1, continued fraction above)."""
    mpmath = pytest.importorskip("mpmath")
    mpmath.mp.dps = 40
    alphas, xs, expected = [], [], []
    for a in (0.003, 0.4, 1.0, 2.5, 30.0, 900.0):
        for x in (0.01 * a, 0.5 * a, a, a + 1.5 * a ** 0.5 + 1, a + 5 * a ** 0.5 + 5):  # both sides of a + 1
            a_mp, x_mp = mpmath.mpf(a), mpmath.mpf(x)
            dP = mpmath.diff(lambda s, x_mp=x_mp: mpmath.gammainc(s, 0, x_mp, regularized=True), a_mp)
            density = x_mp ** (a_mp - 1) * mpmath.exp(-x_mp) / mpmath.gamma(a_mp)
            alphas.append(a)
            xs.append(x)
            expected.append(float(-dP / density))
    got = special.standard_gamma_grad(np.array(alphas), np.array(xs), np)
    np.testing.assert_allclose(got, expected, rtol=1e-12)
