"""Cauchy, HalfNormal, HalfCauchy, Gumbel, Pareto, Weibull, InverseGamma, Kumaraswamy, LogisticNormal, the relaxed
families, OneHotCategoricalStraightThrough, NegativeBinomial, Multinomial, FisherSnedecor and MixtureSameFamily
against torch.distributions (float64, batched); their KL pairs, sample moments and rsample gradients."""

import math

import numpy as np
import pytest
import torch

import chainrule as cr
from chainrule import distributions as D
from chainrule.autograd import gradcheck

TD = torch.distributions
RNG = np.random.default_rng(17)


def pair(a):
    a = np.asarray(a, dtype=np.float64)
    return cr.tensor(a, dtype=cr.float64), torch.tensor(a, dtype=torch.float64)


def close(c, t, tol=1e-10):
    np.testing.assert_allclose(c.detach().cpu().numpy(), t.detach().cpu().numpy(), rtol=tol, atol=tol)


def build(name, args, kwargs):
    def convert(v, i):
        return pair(v)[i] if isinstance(v, np.ndarray) else v

    c = getattr(D, name)(*[convert(a, 0) for a in args], **{k: convert(v, 0) for k, v in kwargs.items()})
    t = getattr(TD, name)(*[convert(a, 1) for a in args], **{k: convert(v, 1) for k, v in kwargs.items()})
    return c, t


def u(low, high, shape=(2, 3)):
    return RNG.uniform(low, high, shape)


FAMILIES = [  # (name, args, kwargs, values, which moments torch and chainrule share)
    ("Cauchy", (RNG.standard_normal((2, 3)), u(0.5, 2)), {}, RNG.standard_normal((5, 2, 3)) * 3, "mode"),
    ("HalfNormal", (u(0.5, 2),), {}, u(0.01, 4, (5, 2, 3)), "mean variance mode"),
    ("HalfCauchy", (u(0.5, 2),), {}, u(0.01, 4, (5, 2, 3)), "mean variance mode"),
    ("Gumbel", (RNG.standard_normal((2, 3)), u(0.5, 2)), {}, RNG.standard_normal((5, 2, 3)) * 2,
     "mean variance mode stddev"),
    ("Pareto", (u(0.5, 1.5), u(0.5, 4)), {}, 1.5 + u(0.01, 4, (5, 2, 3)), "mean variance mode"),
    ("Weibull", (u(0.5, 2), u(0.5, 3)), {}, u(0.01, 4, (5, 2, 3)), "mean variance mode"),
    ("InverseGamma", (u(0.5, 4), u(0.5, 2)), {}, u(0.05, 4, (5, 2, 3)), "mean variance mode"),
    ("Kumaraswamy", (u(0.5, 3), u(0.5, 3)), {}, u(0.01, 0.99, (5, 2, 3)), "mean variance"),
    ("LogisticNormal", (RNG.standard_normal((2, 3)), u(0.5, 1.5)), {}, RNG.dirichlet(np.ones(4), (5, 2)), ""),
    ("RelaxedBernoulli", (np.array(0.7),), {"probs": u(0.1, 0.9)}, u(0.01, 0.99, (5, 2, 3)), ""),
    ("RelaxedBernoulli", (np.array(1.3),), {"logits": RNG.standard_normal((2, 3))}, u(0.01, 0.99, (5, 2, 3)), ""),
    ("RelaxedOneHotCategorical", (np.array(0.5),), {"probs": RNG.dirichlet(np.ones(4), 2)},
     RNG.dirichlet(np.ones(4), (5, 2)), ""),
    ("NegativeBinomial", (u(0.5, 5),), {"probs": u(0.1, 0.9)}, RNG.integers(0, 8, (5, 2, 3)).astype(float),
     "mean variance mode"),
    ("NegativeBinomial", (np.array([0.0, 2.0, 3.5]),), {"logits": RNG.standard_normal((2, 3))},
     RNG.integers(0, 8, (5, 2, 3)).astype(float), "mean variance mode"),
    ("Multinomial", (6,), {"probs": RNG.dirichlet(np.ones(4), 2)},
     RNG.multinomial(6, np.ones(4) / 4, (5, 2)).astype(float), "mean variance"),
    ("FisherSnedecor", (u(0.5, 6), np.array([1.5, 3.0, 9.0])), {}, u(0.05, 4, (5, 2, 3)), "mean variance mode"),
]


@pytest.mark.parametrize("name, args, kwargs, value, moments", FAMILIES,
                         ids=[f[0] + "-" + "-".join(f[2]) for f in FAMILIES])
def test_against_torch(name, args, kwargs, value, moments, cpu_repr):
    c, t = build(name, args, kwargs)
    assert (tuple(c.batch_shape), tuple(c.event_shape)) == (tuple(t.batch_shape), tuple(t.event_shape))
    cv, tv = pair(value)
    close(c.log_prob(cv), t.log_prob(tv), 1e-9)
    try:
        expected = t.entropy()
    except NotImplementedError:
        expected = None
    if expected is not None:  # torch's Multinomial entropy takes lgamma of an integer tensor, in float32
        close(c.entropy(), expected, 1e-6 if name == "Multinomial" else 1e-9)
    for moment in moments.split():
        close(getattr(c, moment), getattr(t, moment), 1e-9)
    assert cpu_repr(c.support).replace("chainrule.", "torch.") == repr(t.support)
    assert c.has_rsample == t.has_rsample
    big = (4,) + tuple(c.batch_shape)
    close(c.expand(big).log_prob(cv[:, None]), t.expand(big).log_prob(tv[:, None]), 1e-9)
    s = c.sample((7,))
    assert tuple(s.shape) == (7,) + tuple(c.batch_shape) + tuple(c.event_shape) and not s.requires_grad
    c.log_prob(s)  # the draws lie in the support (validated)


@pytest.mark.parametrize("name, args", [
    ("Cauchy", (RNG.standard_normal(3), u(0.5, 2, 3))), ("HalfNormal", (u(0.5, 2, 3),)),
    ("HalfCauchy", (u(0.5, 2, 3),)), ("Gumbel", (RNG.standard_normal(3), u(0.5, 2, 3))),
    ("Pareto", (u(0.5, 1.5, 3), u(0.5, 4, 3))), ("Weibull", (u(0.5, 2, 3), u(0.5, 3, 3))),
    ("Kumaraswamy", (u(0.5, 3, 3), u(0.5, 3, 3))),
])
def test_cdf_icdf_against_torch(name, args):
    c, t = build(name, args, {})
    probs = u(0.05, 0.95, (4, 3))
    cp, tp = pair(probs)
    x = t.icdf(tp)
    close(c.icdf(cp), x, 1e-8)
    close(c.cdf(pair(x.cpu().numpy())[0]), t.cdf(x), 1e-9)


def test_kumaraswamy_mode_is_the_density_maximum():
    """PyTorch 2.13's Kumaraswamy.mode is NaN for every concentration0 > 1, so the mode is checked against
    the argmax of the density on a fine grid instead."""
    a, b = np.array([1.5, 3.0, 2.0, 0.7]), np.array([2.0, 1.2, 5.0, 2.0])
    d = D.Kumaraswamy(cr.tensor(a), cr.tensor(b))
    grid = np.linspace(1e-4, 1 - 1e-4, 200_001)
    log_density = d.log_prob(cr.tensor(grid[:, None] * np.ones(4))).cpu().numpy()
    expected = grid[log_density.argmax(0)]
    mode = d.mode.cpu().numpy()
    np.testing.assert_allclose(mode[:3], expected[:3], atol=1e-4)
    assert np.isnan(mode[3])  # concentration1 < 1: the density is unbounded at 0


KL_PAIRS = [
    ("Cauchy", (RNG.standard_normal((2, 3)), u(0.5, 2)), (RNG.standard_normal(3), u(0.5, 2, (2, 1)))),
    ("Gumbel", (RNG.standard_normal((2, 3)), u(0.5, 2)), (RNG.standard_normal(3), u(0.5, 2, (2, 1)))),
    ("HalfNormal", (u(0.5, 2),), (u(0.5, 2, 3),)),
    ("Pareto", (u(0.5, 1.5), u(0.5, 4)), (u(0.5, 1.5), u(0.5, 4))),
    ("Geometric", (), ()),
    ("Binomial", (), ()),
]


@pytest.mark.parametrize("name, p_args, q_args", KL_PAIRS, ids=[k[0] for k in KL_PAIRS])
def test_kl_against_torch(name, p_args, q_args):
    if name == "Geometric":
        (cp, tp), (cq, tq) = (build(name, (), {"probs": u(0.1, 0.9)}), build(name, (), {"probs": u(0.1, 0.9)}))
    elif name == "Binomial":
        counts = np.full((2, 3), 5.0)
        cp, tp = build(name, (counts,), {"probs": u(0.1, 0.9)})
        cq, tq = build(name, (counts,), {"probs": np.array([[0.3, 0.01, 0.5], [0.99, 0.2, 0.9]])})
    else:
        cp, tp = build(name, p_args, {})
        cq, tq = build(name, q_args, {})
    close(D.kl_divergence(cp, cq), TD.kl_divergence(tp, tq), 1e-9)
    close(D.kl_divergence(cq, cp), TD.kl_divergence(tq, tp), 1e-9)


def test_binomial_kl_edges():
    """q with probability 0 of an outcome p can produce: infinite (torch clamps the probabilities and returns a
    large finite number); q with fewer trials: infinite; with more: not implemented, as torch."""
    p = D.Binomial(cr.tensor([5.0, 5.0]), probs=cr.tensor([0.3, 0.3]))
    q = D.Binomial(cr.tensor([5.0, 4.0]), probs=cr.tensor([0.0, 0.3]))
    assert np.isinf(D.kl_divergence(p, q).cpu().numpy()).all()
    with pytest.raises(NotImplementedError, match="q.total_count > p.total_count"):
        D.kl_divergence(q, p)


def test_multinomial_entropy_by_enumeration():
    probs = np.array([0.1, 0.2, 0.3, 0.4])
    n = 5
    outcomes = [c for c in np.ndindex(*(n + 1,) * 4) if sum(c) == n]
    d = D.Multinomial(n, probs=cr.tensor(probs, dtype=cr.float64))
    log_p = d.log_prob(cr.tensor(np.array(outcomes, dtype=np.float64))).cpu().numpy()
    np.testing.assert_allclose(np.exp(log_p).sum(), 1.0, rtol=1e-12)
    np.testing.assert_allclose(d.entropy().item(), -(np.exp(log_p) * log_p).sum(), rtol=1e-12)


def test_kl_of_transformed_distributions_is_the_bases():
    loc1, loc2 = pair(RNG.standard_normal(3)), pair(RNG.standard_normal(3))
    scale = pair(u(0.5, 2, 3))
    c = [D.TransformedDistribution(D.Normal(loc[0], scale[0]), [D.ExpTransform()]) for loc in (loc1, loc2)]
    t = [TD.TransformedDistribution(TD.Normal(loc[1], scale[1]), [TD.ExpTransform()]) for loc in (loc1, loc2)]
    close(D.kl_divergence(*c), TD.kl_divergence(*t))
    with pytest.raises(NotImplementedError):
        D.kl_divergence(c[0], D.TransformedDistribution(D.Normal(loc1[0], scale[0]), [D.SigmoidTransform()]))


def test_mixture_same_family_against_torch():
    logits = RNG.standard_normal((2, 3))
    loc, scale = RNG.standard_normal((2, 3)), u(0.5, 2)
    cov = np.stack([np.eye(2) * s for s in (0.5, 1.0, 2.0)]) + 0.1
    mvn_loc = RNG.standard_normal((3, 2))
    for comp_c, comp_t, value in [
        (D.Normal(pair(loc)[0], pair(scale)[0]), TD.Normal(pair(loc)[1], pair(scale)[1]),
         RNG.standard_normal((5, 2))),
        (D.MultivariateNormal(pair(mvn_loc)[0], pair(cov)[0]), TD.MultivariateNormal(pair(mvn_loc)[1], pair(cov)[1]),
         RNG.standard_normal((5, 2, 2))),
    ]:
        mix_logits = logits if comp_c.batch_shape == (2, 3) else logits[0]
        c = D.MixtureSameFamily(D.Categorical(logits=pair(mix_logits)[0]), comp_c)
        t = TD.MixtureSameFamily(TD.Categorical(logits=pair(mix_logits)[1]), comp_t)
        assert (tuple(c.batch_shape), tuple(c.event_shape)) == (tuple(t.batch_shape), tuple(t.event_shape))
        if t.batch_shape == ():
            value = value[:, 0]
        cv, tv = pair(value)
        close(c.log_prob(cv), t.log_prob(tv))
        close(c.mean, t.mean)
        close(c.variance, t.variance)
        s = c.sample((6,))
        assert tuple(s.shape) == (6,) + tuple(t.batch_shape) + tuple(t.event_shape)
    c = D.MixtureSameFamily(D.Categorical(logits=pair(logits)[0]), D.Normal(pair(loc)[0], pair(scale)[0]))
    t = TD.MixtureSameFamily(TD.Categorical(logits=pair(logits)[1]), TD.Normal(pair(loc)[1], pair(scale)[1]))
    cv, tv = pair(RNG.standard_normal((5, 2)))
    close(c.cdf(cv), t.cdf(tv))
    with pytest.raises(ValueError, match="does not equal"):
        D.MixtureSameFamily(D.Categorical(logits=cr.zeros(4)), D.Normal(cr.zeros(3), cr.ones(3)))


def test_mixture_log_prob_gradients_match_torch():
    c_logits, t_logits = pair(RNG.standard_normal(3))
    c_loc, t_loc = pair(RNG.standard_normal(3))
    for leaf in (c_logits, t_logits, c_loc, t_loc):
        leaf.requires_grad_(True)
    x = RNG.standard_normal(7)
    D.MixtureSameFamily(D.Categorical(logits=c_logits), D.Normal(c_loc, 1.0)).log_prob(pair(x)[0]).sum().backward()
    TD.MixtureSameFamily(TD.Categorical(logits=t_logits), TD.Normal(t_loc, 1.0)).log_prob(pair(x)[1]).sum().backward()
    close(c_logits.grad, t_logits.grad)
    close(c_loc.grad, t_loc.grad)


def test_straight_through_gradient():
    logits = cr.tensor(RNG.standard_normal((2, 4)), dtype=cr.float64, requires_grad=True)
    weights = cr.tensor(RNG.standard_normal(4), dtype=cr.float64)
    cr.manual_seed(0)
    draw = D.OneHotCategoricalStraightThrough(logits=logits).rsample()
    assert set(np.unique(draw.detach().cpu().numpy())) == {0.0, 1.0} and (draw.detach().cpu().numpy().sum(-1) == 1).all()
    (draw * weights).sum().backward()
    straight_through = logits.grad.cpu().numpy().copy()
    logits.grad = None
    (logits.softmax(-1) * weights).sum().backward()
    np.testing.assert_allclose(straight_through, logits.grad.cpu().numpy(), rtol=1e-12)


N = 200_000


def _assert_moments(samples, mean, var):
    """Sample mean within 5 standard errors sqrt(var / N); sample variance within 5 of its own standard error
    sqrt((m4 - var^2) / N)."""
    m4 = ((samples - samples.mean(0)) ** 4).mean(0)
    assert np.all(np.abs(samples.mean(0) - mean) < 5 * np.sqrt(var / N))
    assert np.all(np.abs(samples.var(0) - var) < 5 * np.sqrt((m4 - samples.var(0) ** 2) / N))


@pytest.mark.parametrize("name, args, kwargs", [  # parameters with a finite fourth moment
    ("HalfNormal", (np.array([0.5, 2.0]),), {}), ("Gumbel", (np.array([0.0, 1.0]), np.array([1.0, 0.5])), {}),
    ("Pareto", (np.array([1.0, 2.0]), np.array([5.0, 9.0])), {}),
    ("Weibull", (np.array([1.0, 2.0]), np.array([0.8, 3.0])), {}),
    ("InverseGamma", (np.array([5.0, 9.0]), np.array([1.0, 3.0])), {}),
    ("Kumaraswamy", (np.array([0.5, 3.0]), np.array([2.0, 0.7])), {}),
    ("FisherSnedecor", (np.array([3.0, 10.0]), np.array([10.0, 20.0])), {}),
    ("NegativeBinomial", (np.array([2.0, 7.5]),), {"probs": np.array([0.3, 0.6])}),
    ("Multinomial", (10,), {"probs": np.array([0.2, 0.3, 0.5])}),
])
def test_sample_moments(name, args, kwargs):
    cr.manual_seed(0)
    d, _ = build(name, args, kwargs)
    _assert_moments(d.sample((N,)).cpu().numpy(), d.mean.cpu().numpy(), d.variance.cpu().numpy())


def test_mixture_sample_moments():
    cr.manual_seed(0)
    d = D.MixtureSameFamily(D.Categorical(probs=cr.tensor([0.2, 0.5, 0.3], dtype=cr.float64)),
                            D.Normal(cr.tensor([-2.0, 0.0, 3.0], dtype=cr.float64),
                                     cr.tensor([0.5, 1.0, 0.3], dtype=cr.float64)))
    _assert_moments(d.sample((N,)).cpu().numpy(), d.mean.cpu().numpy(), d.variance.cpu().numpy())


@pytest.mark.parametrize("make", [
    lambda a, b: D.Cauchy(a, b.exp()), lambda a, b: D.HalfNormal(b.exp()), lambda a, b: D.Gumbel(a, b.exp()),
    lambda a, b: D.Pareto(b.exp(), a.exp() + 1), lambda a, b: D.Weibull(b.exp(), a.exp()),
    lambda a, b: D.Kumaraswamy(a.exp(), b.exp()), lambda a, b: D.LogisticNormal(a, b.exp()),
    lambda a, b: D.RelaxedBernoulli(b.exp(), logits=a), lambda a, b: D.RelaxedOneHotCategorical(b.exp()[0],
                                                                                               logits=a),
], ids=["Cauchy", "HalfNormal", "Gumbel", "Pareto", "Weibull", "Kumaraswamy", "LogisticNormal", "RelaxedBernoulli",
        "RelaxedOneHotCategorical"])
def test_rsample_gradients_against_finite_differences(make):
    a = cr.tensor(RNG.standard_normal(3) * 0.5, dtype=cr.float64, requires_grad=True)
    b = cr.tensor(RNG.standard_normal(3) * 0.3, dtype=cr.float64, requires_grad=True)

    def draws(a, b):
        cr.manual_seed(4)  # the same noise at every evaluation
        return make(a, b).rsample((3,))

    assert gradcheck(draws, [a, b])


def test_gamma_based_rsample_gradients_are_unbiased():
    """FisherSnedecor and InverseGamma draw through _standard_gamma (implicit gradients): per-draw gradients of
    their draws average to the derivative of the mean, within 5 standard errors (n = 100,000)."""
    cr.manual_seed(2)
    n = 100_000
    df1 = cr.full((n,), 4.0, dtype=cr.float64, requires_grad=True)
    df2 = cr.full((n,), 12.0, dtype=cr.float64, requires_grad=True)
    D.FisherSnedecor(df1, df2).rsample().sum().backward()
    # E = df2 / (df2 - 2): d/d df1 = 0, d/d df2 = -2 / (df2 - 2)^2
    for grad, want in ((df1.grad.cpu().numpy(), 0.0), (df2.grad.cpu().numpy(), -2 / 10 ** 2)):
        assert abs(grad.mean() - want) < 5 * grad.std() / math.sqrt(n)
    c = cr.full((n,), 6.0, dtype=cr.float64, requires_grad=True)
    rate = cr.full((n,), 2.0, dtype=cr.float64, requires_grad=True)
    D.InverseGamma(c, rate).rsample().sum().backward()
    # E = rate / (c - 1): d/dc = -rate / (c - 1)^2, d/drate = 1 / (c - 1)
    for grad, want in ((c.grad.cpu().numpy(), -2.0 / 25), (rate.grad.cpu().numpy(), 1 / 5)):
        assert abs(grad.mean() - want) < 5 * grad.std() / math.sqrt(n)


def test_bad_arguments_as_torch():
    cases = [
        (lambda L, T: L.HalfNormal(T(-1.0)), "scale"),
        (lambda L, T: L.HalfNormal(T(1.0)).log_prob(T(-1.0)), "support"),
        (lambda L, T: L.Pareto(T(2.0), T(1.0)).log_prob(T(1.0)), "support"),
        (lambda L, T: L.Gumbel(T(0.0), T(0.0)), "scale"),
        (lambda L, T: L.Kumaraswamy(T(1.0), T(-1.0)), "concentration0"),
        (lambda L, T: L.NegativeBinomial(T(-1.0), probs=T(0.5)), "total_count"),
        (lambda L, T: L.NegativeBinomial(T(2.0), probs=T(1.0)), "probs"),
        (lambda L, T: L.Multinomial(3, probs=T([0.5, 0.5])).log_prob(T([1.0, 3.0])), "support"),
        (lambda L, T: L.FisherSnedecor(T(1.0), T(-1.0)), "Expected parameter"),
        (lambda L, T: L.MixtureSameFamily(L.Normal(T(0.0), T(1.0)), L.Normal(T([0.0]), T([1.0]))),
         "Categorical"),
    ]
    for make, pattern in cases:
        with pytest.raises(ValueError, match=pattern):
            make(TD, torch.tensor)
        with pytest.raises(ValueError, match=pattern):
            make(D, cr.tensor)


FIXED = RNG.standard_normal(3)


@pytest.mark.parametrize("name, make, param", [  # make(library, tensor of the parameter that is differentiated)
    ("Normal", lambda L, x: L.Normal(x * 0 + FIXED[0], x), u(0.5, 2, 3)),
    ("Exponential", lambda L, x: L.Exponential(x), u(0.5, 2, 3)),
    ("Bernoulli", lambda L, x: L.Bernoulli(logits=x), RNG.standard_normal(3)),
    ("Gamma", lambda L, x: L.Gamma(x, x * 0 + 1.5), u(0.5, 3, 3)),
])
def test_exponential_family_entropy_is_the_closed_form(name, make, param):
    """The generic entropy A - <eta, grad A> - E[log h] (autograd through the log normaliser) against each
    family's closed form, in value and gradient, and against torch's generic one."""
    leaf = cr.tensor(param, dtype=cr.float64, requires_grad=True)
    c, t = make(D, leaf), make(TD, pair(param)[1])
    assert isinstance(c, D.ExponentialFamily) and isinstance(t, TD.ExponentialFamily)
    generic = D.ExponentialFamily.entropy(c)
    close(generic, c.entropy())
    close(generic, TD.ExponentialFamily.entropy(t))
    (g_generic,) = cr.autograd.grad(generic.sum(), leaf, retain_graph=True)  # c.entropy() shares the graph
    (g_closed,) = cr.autograd.grad(c.entropy().sum(), leaf)
    np.testing.assert_allclose(g_generic.cpu().numpy(), g_closed.cpu().numpy(), rtol=1e-10)


@pytest.mark.parametrize("name, p_args, q_args", [
    ("Normal", (RNG.standard_normal(3), u(0.5, 2, 3)), (RNG.standard_normal(3), u(0.5, 2, 3))),
    ("Gamma", (u(0.5, 3, 3), u(0.5, 2, 3)), (u(0.5, 3, 3), u(0.5, 2, 3))),
    ("Beta", (u(0.5, 3, 3), u(0.5, 2, 3)), (u(0.5, 3, 3), u(0.5, 2, 3))),
    ("Dirichlet", (u(0.5, 3, (2, 3)),), (u(0.5, 3, (2, 3)),)),
    ("Poisson", (u(0.5, 3, 3),), (u(0.5, 3, 3),)),
])
def test_exponential_family_kl_is_the_bregman_divergence(name, p_args, q_args):
    from chainrule.distributions.kl import _kl_expfamily_expfamily

    cp, tp = build(name, p_args, {})
    cq, tq = build(name, q_args, {})
    close(_kl_expfamily_expfamily(cp, cq), TD.kl_divergence(tp, tq), 1e-9)
    with pytest.raises(NotImplementedError, match="different exponential families"):
        _kl_expfamily_expfamily(D.Normal(0.0, 1.0), D.Exponential(1.0))


def test_continuous_bernoulli_against_torch():
    """Both sides of 1/2 and inside the Taylor region (|p - 1/2| < 0.001), by probs and by logits."""
    probs = np.array([[0.01, 0.2, 0.4995, 0.5], [0.5004, 0.7, 0.99, 0.3]])
    x = RNG.uniform(0.01, 0.99, (5, 2, 4))
    for kwargs in ({"probs": probs}, {"logits": np.log(probs / (1 - probs))}):
        c, t = build("ContinuousBernoulli", (), kwargs)
        cx, tx = pair(x)
        close(c.log_prob(cx), t.log_prob(tx), 1e-9)
        for name in ("mean", "variance"):
            close(getattr(c, name), getattr(t, name), 1e-9)
        close(c.entropy(), t.entropy(), 1e-9)
        close(c.cdf(cx), t.cdf(tx), 1e-9)
        close(c.icdf(cx), t.icdf(tx), 1e-9)
        close(D.ExponentialFamily.entropy(c), t.entropy(), 1e-9)
    cq, tq = build("ContinuousBernoulli", (), {"probs": probs[::-1].copy()})
    close(D.kl_divergence(c, cq), TD.kl_divergence(t, tq), 1e-9)
    cr.manual_seed(0)
    d = D.ContinuousBernoulli(cr.tensor([0.2, 0.5, 0.9], dtype=cr.float64))
    _assert_moments(d.sample((N,)).cpu().numpy(), d.mean.cpu().numpy(), d.variance.cpu().numpy())
    leaf = cr.tensor([0.2, 0.4999, 0.8], dtype=cr.float64, requires_grad=True)

    def draws(p):
        cr.manual_seed(1)
        return D.ContinuousBernoulli(p).rsample((3,))

    assert gradcheck(draws, [leaf], eps=1e-7)
