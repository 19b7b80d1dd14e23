"""Distributions with their parameters on the cuda device (the NumPy stand-in on a machine without a GPU)
while the default device stays the CPU: every result (samples, densities, moments, supports, KL terms)
must be computed, and stay, on the parameters' device. The stand-in refuses host arrays next to device
ones, so a constant made on the default device instead of the parameters' fails here on any machine."""

import numpy as np
import pytest

import chainrule as cr
from chainrule import distributions as D

P3 = np.array([0.2, 0.3, 0.5])

# name -> parameters as a function of T (a number or array -> a float64 tensor on the device)
FAMILIES = {
    "Normal": lambda T: (T(0.5), T([1.0, 2.0])), "Uniform": lambda T: (T(0.0), T([1.0, 2.0])),
    "Exponential": lambda T: (T([1.0, 3.0]),), "Bernoulli": lambda T: ((), {"probs": T(P3)}),
    "Categorical": lambda T: ((), {"probs": T(P3)}), "OneHotCategorical": lambda T: ((), {"probs": T(P3)}),
    "Gamma": lambda T: (T(2.0), T([1.0, 2.0])), "Chi2": lambda T: (T([3.0, 4.0]),),
    "Beta": lambda T: (T(2.0), T([1.5, 3.0])), "Dirichlet": lambda T: (T(P3 * 4),),
    "MultivariateNormal": lambda T: ((T([0.0, 1.0]),), {"covariance_matrix": T([[2.0, 0.5], [0.5, 1.0]])}),
    "LowRankMultivariateNormal": lambda T: (T([0.0, 1.0]), T([[1.0], [0.5]]), T([1.0, 2.0])),
    "Laplace": lambda T: (T(0.0), T([1.0, 2.0])), "LogNormal": lambda T: (T(0.0), T([0.5, 1.0])),
    "StudentT": lambda T: (T([3.0, 5.0]),), "Poisson": lambda T: (T([2.0, 4.0]),),
    "Binomial": lambda T: ((T(5.0),), {"probs": T(P3)}), "Geometric": lambda T: ((), {"probs": T(P3)}),
    "Cauchy": lambda T: (T(0.0), T([1.0, 2.0])), "HalfNormal": lambda T: (T([1.0, 2.0]),),
    "HalfCauchy": lambda T: (T([1.0, 2.0]),), "Gumbel": lambda T: (T(0.0), T([1.0, 2.0])),
    "Pareto": lambda T: (T(1.0), T([3.0, 4.0])), "Weibull": lambda T: (T(1.0), T([1.5, 2.0])),
    "InverseGamma": lambda T: (T([3.0, 4.0]), T(2.0)), "Kumaraswamy": lambda T: (T(2.0), T([1.5, 3.0])),
    "LogisticNormal": lambda T: (T([0.0, 1.0]), T([1.0, 0.5])),
    "RelaxedBernoulli": lambda T: ((T(0.5),), {"probs": T(P3)}),
    "RelaxedOneHotCategorical": lambda T: ((T(0.5),), {"probs": T(P3)}),
    "Multinomial": lambda T: ((4,), {"probs": T(P3)}), "NegativeBinomial": lambda T: ((T(3.0),), {"probs": T(P3)}),
    "FisherSnedecor": lambda T: (T([5.0, 6.0]), T(7.0)), "ContinuousBernoulli": lambda T: ((), {"probs": T(P3)}),
    "GeneralizedPareto": lambda T: (T(0.0), T([1.0, 2.0]), T(0.2)), "VonMises": lambda T: (T(0.5), T([1.0, 2.0])),
    "LKJCholesky": lambda T: ((3, T(2.0)), {}), "Wishart": lambda T: ((T(4.0),), {"covariance_matrix": T(np.eye(2))}),
}


def _build(name, device):
    params = FAMILIES[name](lambda v: cr.tensor(v, dtype=cr.float64, device=device))
    args, kwargs = params if isinstance(params[-1], dict) else (params, {})
    return getattr(D, name)(*args, **kwargs)


def _results(d):
    """Each result the distribution gives, by name; what it does not implement is left out."""
    x = d.sample((2,))
    made = {"sample": x, "log_prob": d.log_prob(x), "support.check": d.support.check(x)}
    for name in ("mean", "variance", "stddev", "mode"):
        try:
            made[name] = getattr(d, name)
        except NotImplementedError:
            pass
    for name, call in (("entropy", d.entropy), ("cdf", lambda: d.cdf(x)), ("kl to itself", lambda: D.kl_divergence(d, d))):
        try:
            made[name] = call()
        except NotImplementedError:
            pass
    if d.has_rsample:
        made["rsample"] = d.rsample((2,))
    if d.has_enumerate_support:
        made["enumerate_support"] = d.enumerate_support()
    return made


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_every_result_stays_on_the_parameters_device(name, cuda_device):
    with cr.device("cpu"):  # the default device is the CPU: nothing the distribution makes may land there
        d = _build(name, cuda_device)
        made = _results(d)
    elsewhere = {k: str(v.device) for k, v in made.items() if v.device != cuda_device}
    assert not elsewhere, f"{name}: results not on {cuda_device}: {elsewhere}"


@pytest.mark.parametrize("name", ["Normal", "Gamma", "Dirichlet", "MultivariateNormal", "LKJCholesky", "Wishart"])
def test_results_on_the_device_equal_the_cpus(name, cuda_device):
    """The same draws (same seed) and densities as on the CPU: the device computes what the CPU does."""
    results = []
    for device in ("cpu", cuda_device):
        cr.manual_seed(3)
        with cr.device("cpu"):
            d = _build(name, device)
            x = d.sample((4,))
            results.append((x.cpu().numpy(), d.log_prob(x).cpu().numpy()))
    for on_cpu, on_device in zip(*results):
        np.testing.assert_allclose(on_device, on_cpu, rtol=1e-12, atol=1e-12)
