"""Every family in float32: draws, log_prob and entropy stay float32 (no silent promotion to float64) and the
log-probabilities of its own draws are finite; and empty batches draw and score as PyTorch's."""

import numpy as np
import pytest

import chainrule as cr
from chainrule import distributions as D


def f(*values):
    return cr.tensor(np.array(values, dtype=np.float32))


CASES = {
    "Normal": lambda: D.Normal(f(0.0, 1.0), f(1.0, 2.0)),
    "Uniform": lambda: D.Uniform(f(0.0), f(1.0)),
    "Exponential": lambda: D.Exponential(f(1.0)),
    "Gamma": lambda: D.Gamma(f(0.5, 2.0), f(1.0, 1.5)),
    "Chi2": lambda: D.Chi2(f(3.0)),
    "Beta": lambda: D.Beta(f(0.5, 2.0), f(1.0, 1.5)),
    "Dirichlet": lambda: D.Dirichlet(f(0.5, 2.0, 1.0)),
    "StudentT": lambda: D.StudentT(f(3.0)),
    "MultivariateNormal": lambda: D.MultivariateNormal(f(0.0, 1.0), cr.eye(2)),
    "LowRankMultivariateNormal": lambda: D.LowRankMultivariateNormal(f(0.0, 1.0), cr.ones(2, 1), f(1.0, 1.0)),
    "Laplace": lambda: D.Laplace(f(0.0), f(1.0)),
    "LogNormal": lambda: D.LogNormal(f(0.0), f(1.0)),
    "Cauchy": lambda: D.Cauchy(f(0.0), f(1.0)),
    "HalfNormal": lambda: D.HalfNormal(f(1.0)),
    "HalfCauchy": lambda: D.HalfCauchy(f(1.0)),
    "Gumbel": lambda: D.Gumbel(f(0.0), f(1.0)),
    "Pareto": lambda: D.Pareto(f(1.0), f(3.0)),
    "Weibull": lambda: D.Weibull(f(1.0), f(2.0)),
    "InverseGamma": lambda: D.InverseGamma(f(3.0), f(1.0)),
    "Kumaraswamy": lambda: D.Kumaraswamy(f(2.0), f(3.0)),
    "LogisticNormal": lambda: D.LogisticNormal(f(0.0, 1.0), f(1.0, 1.0)),
    "RelaxedBernoulli": lambda: D.RelaxedBernoulli(f(0.5), probs=f(0.3)),
    "RelaxedOneHotCategorical": lambda: D.RelaxedOneHotCategorical(f(0.5), probs=f(0.3, 0.7)),
    "Poisson": lambda: D.Poisson(f(3.0)),
    "Binomial": lambda: D.Binomial(f(5.0), probs=f(0.3)),
    "Geometric": lambda: D.Geometric(probs=f(0.3)),
    "NegativeBinomial": lambda: D.NegativeBinomial(f(3.0), probs=f(0.3)),
    "Multinomial": lambda: D.Multinomial(4, probs=f(0.3, 0.7)),
    "FisherSnedecor": lambda: D.FisherSnedecor(f(3.0), f(5.0)),
    "GeneralizedPareto": lambda: D.GeneralizedPareto(f(0.0), f(1.0), f(0.2)),
    "ContinuousBernoulli": lambda: D.ContinuousBernoulli(f(0.3)),
    "VonMises": lambda: D.VonMises(f(0.0), f(2.0)),
    "LKJCholesky": lambda: D.LKJCholesky(3, f(2.0)),
    "Wishart": lambda: D.Wishart(f(4.0), cr.eye(2)),
    "MixtureSameFamily": lambda: D.MixtureSameFamily(D.Categorical(probs=f(0.3, 0.7)),
                                                     D.Normal(f(0.0, 1.0), f(1.0, 1.0))),
    "Independent": lambda: D.Independent(D.Normal(f(0.0, 1.0), f(1.0, 1.0)), 1),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_float32_in_float32_out(name):
    cr.manual_seed(0)
    d = CASES[name]()
    draws = d.rsample((3,)) if d.has_rsample else d.sample((3,))
    log_prob = d.log_prob(draws)
    assert draws.dtype == cr.float32 and log_prob.dtype == cr.float32
    assert np.isfinite(log_prob.detach().cpu().numpy()).all()
    try:
        entropy = d.entropy()
    except NotImplementedError:  # as PyTorch: Poisson, VonMises, the mixture, LKJ have none
        return
    assert entropy.dtype == cr.float32


@pytest.mark.parametrize("make", [
    lambda L, T: L.Normal(T(np.zeros(0)), T(np.ones(0))),
    lambda L, T: L.Gamma(T(np.ones((2, 0))), T(np.ones((2, 0)))),
    lambda L, T: L.Categorical(probs=T(np.ones((0, 3)))),
    lambda L, T: L.StudentT(T(np.full(0, 3.0))),
    lambda L, T: L.Binomial(T(np.full(0, 3.0)), probs=T(np.full(0, 0.5))),
], ids=["Normal", "Gamma", "Categorical", "StudentT", "Binomial"])
def test_empty_batches_as_torch(make):
    import torch

    theirs = make(torch.distributions, torch.tensor)
    ours = make(D, cr.tensor)
    expected = theirs.sample((3,))
    draws = ours.sample((3,))
    assert tuple(draws.shape) == tuple(expected.shape)
    assert tuple(ours.log_prob(draws).shape) == tuple(theirs.log_prob(expected).shape)
