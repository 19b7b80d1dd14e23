"""KL between different families: every cross pair PyTorch registers among the families here, against
torch.distributions.kl_divergence (float64, batched, infinite ones included); and gradients."""

import numpy as np
import pytest
import torch
from torch.distributions.kl import _KL_REGISTRY

import chainrule as cr
from chainrule import distributions as D
from chainrule.autograd import gradcheck

TD = torch.distributions
RNG = np.random.default_rng(23)


def u(low, high, shape=(2, 3)):
    return RNG.uniform(low, high, shape)


PARAMS = {  # parameters in each family's constructor order; Uniform inside [0, 1] and above Pareto's scale
    "Normal": lambda: (RNG.standard_normal((2, 3)), u(0.5, 2)),
    "Uniform": lambda: (u(0.05, 0.3), u(0.6, 0.95)),
    "Exponential": lambda: (u(0.5, 2),),
    "Gamma": lambda: (u(0.5, 3), u(0.5, 2)),
    "Laplace": lambda: (RNG.standard_normal((2, 3)), u(0.5, 2)),
    "Gumbel": lambda: (RNG.standard_normal((2, 3)), u(0.5, 2)),
    "Beta": lambda: (u(0.5, 3), u(0.5, 3)),
    "Pareto": lambda: (u(0.01, 0.04), u(0.5, 4)),
    "Poisson": lambda: (u(0.5, 3),),
    "Bernoulli": lambda: (u(0.1, 0.9),),
    "Binomial": lambda: (np.full((2, 3), 4.0), u(0.1, 0.9)),
    "ContinuousBernoulli": lambda: (np.array([[0.2, 0.4995, 0.7], [0.9, 0.3, 0.5]]),),
}
PAIRS = sorted({(p.__name__, q.__name__) for p, q in _KL_REGISTRY}
               - {(name, name) for name in PARAMS})
PAIRS = [pair for pair in PAIRS if pair[0] in PARAMS and pair[1] in PARAMS]


def build(name, args):
    return getattr(D, name)(*[cr.tensor(a) for a in args]), getattr(TD, name)(*[torch.tensor(a) for a in args])


def test_every_cross_pair_is_covered():
    assert len(PAIRS) >= 60


@pytest.mark.parametrize("p_name, q_name", PAIRS)
def test_cross_kl_against_torch(p_name, q_name):
    cp, tp = build(p_name, PARAMS[p_name]())
    cq, tq = build(q_name, PARAMS[q_name]())
    ours, theirs = D.kl_divergence(cp, cq), TD.kl_divergence(tp, tq)
    assert tuple(ours.shape) == tuple(theirs.shape)
    np.testing.assert_allclose(ours.cpu().numpy(), theirs.cpu().numpy(), rtol=1e-9, atol=1e-9)


def test_support_edges_and_gradients():
    # a uniform reaching below 0 against an exponential, or outside [0, 1] against a beta: infinite
    wide = D.Uniform(cr.tensor([-0.5, 0.1]), cr.tensor([0.5, 0.9]))
    assert np.isinf(D.kl_divergence(wide, D.Exponential(cr.tensor(1.0))).cpu().numpy()).tolist() == [True, False]
    assert np.isinf(D.kl_divergence(wide, D.Beta(cr.tensor(2.0), cr.tensor(2.0))).cpu().numpy()).tolist() == [True, False]
    # Pareto(alpha <= 2) has no variance: infinite against a Normal, as torch
    heavy = D.Pareto(cr.tensor([1.0, 1.0]), cr.tensor([1.5, 3.0]))
    assert np.isinf(D.kl_divergence(heavy, D.Normal(0.0, 1.0)).cpu().numpy()).tolist() == [True, False]
    leaves = [cr.tensor(RNG.standard_normal(3), dtype=cr.float64, requires_grad=True),
              cr.tensor(u(0.5, 2, 3), dtype=cr.float64, requires_grad=True)]
    assert gradcheck(lambda m, s: D.kl_divergence(D.Normal(m, s), D.Laplace(m * 0.5, s + 1)), leaves)
    assert gradcheck(lambda m, s: D.kl_divergence(D.Gamma(s, s + 0.5), D.Gumbel(m, s)), leaves)


def test_wishart_to_wishart_sums_its_scalar_natural_parameter_whole():
    """The exponential-family KL sums each natural parameter's term over the event dimensions; Wishart's
    degrees-of-freedom term has none (a scalar next to the matrix), which PyTorch's reshape-sum takes whole."""
    pairs = [((4.0, np.eye(2)), (5.0, 2 * np.eye(2))), ((np.array([3.5, 6.0]), np.eye(3)), (4.0, np.diag([1.0, 2.0, 3.0])))]
    for (df_p, cov_p), (df_q, cov_q) in pairs:
        ours = D.kl_divergence(*(D.Wishart(cr.tensor(df, dtype=cr.float64), covariance_matrix=cr.tensor(cov))
                                 for df, cov in ((df_p, cov_p), (df_q, cov_q))))
        theirs = TD.kl_divergence(*(TD.Wishart(torch.tensor(df, dtype=torch.float64), covariance_matrix=torch.tensor(cov))
                                    for df, cov in ((df_p, cov_p), (df_q, cov_q))))
        np.testing.assert_allclose(ours.cpu().numpy(), theirs.detach().numpy(), rtol=1e-10)
