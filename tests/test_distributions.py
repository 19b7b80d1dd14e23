"""chainrule.distributions and the sampling functions against torch.distributions / torch (float64)."""

import numpy as np
import pytest
import torch

import chainrule as cr
from chainrule import distributions as D

TD = torch.distributions
RNG = np.random.default_rng(0)


def pair(a):
    a = np.asarray(a, dtype=np.float64)
    return cr.tensor(a, dtype=cr.float64), torch.tensor(a, dtype=torch.float64)


def close(c, t, tol=1e-10):
    np.testing.assert_allclose(c.cpu().numpy() if hasattr(c, "numpy") else np.asarray(c), t.detach().cpu().numpy(),
                               rtol=tol, atol=tol)


def families():
    loc, scale = RNG.standard_normal((2, 3)), RNG.uniform(0.5, 2, (2, 3))
    low = RNG.standard_normal((2, 3))
    high = low + RNG.uniform(0.5, 2, (2, 3))
    probs = RNG.uniform(0.05, 0.95, (2, 3))
    logits = RNG.standard_normal((2, 3)) * 2
    cprobs = RNG.uniform(0.1, 1, (2, 3, 4))
    clogits = RNG.standard_normal((2, 3, 4))
    rate = RNG.uniform(0.5, 3, (2, 3))
    return [
        ("Normal", (loc, scale), {}, RNG.standard_normal((5, 2, 3))),
        ("Uniform", (low, high), {}, low + (high - low) * RNG.uniform(0, 1, (5, 2, 3))),
        ("Exponential", (rate,), {}, RNG.exponential(1, (5, 2, 3))),
        ("Bernoulli", (), {"probs": probs}, RNG.integers(0, 2, (5, 2, 3)).astype(float)),
        ("Bernoulli", (), {"logits": logits}, RNG.integers(0, 2, (5, 2, 3)).astype(float)),
        ("Categorical", (), {"probs": cprobs}, RNG.integers(0, 4, (5, 2, 3))),
        ("Categorical", (), {"logits": clogits}, RNG.integers(0, 4, (5, 2, 3))),
        ("OneHotCategorical", (), {"probs": cprobs}, np.eye(4)[RNG.integers(0, 4, (5, 2, 3))]),
    ]


def build(name, args, kwargs):
    c_args = [pair(a)[0] for a in args]
    t_args = [pair(a)[1] for a in args]
    c_kw = {k: pair(v)[0] for k, v in kwargs.items()}
    t_kw = {k: pair(v)[1] for k, v in kwargs.items()}
    return getattr(D, name)(*c_args, **c_kw), getattr(TD, name)(*t_args, **t_kw)


@pytest.mark.parametrize("case", families(), ids=lambda c: c[0] + "-" + "-".join(c[2]))
def test_against_torch(case):
    name, args, kwargs, value = case
    c, t = build(name, args, kwargs)
    assert tuple(c.batch_shape) == tuple(t.batch_shape) and tuple(c.event_shape) == tuple(t.event_shape)
    if name == "Categorical":
        cv, tv = cr.tensor(value), torch.tensor(value)
    else:
        cv, tv = pair(value)
    close(c.log_prob(cv), t.log_prob(tv))
    close(c.entropy(), t.entropy())
    if name != "Categorical":
        close(c.mean, t.mean)
        close(c.variance, t.variance)
        close(c.stddev, t.stddev)
    else:
        assert np.isnan(c.mean.cpu().numpy()).all() and c.mean.shape == t.mean.shape
    e = c.expand((4, 2, 3))
    assert tuple(e.batch_shape) == (4, 2, 3)
    close(e.entropy(), t.expand((4, 2, 3)).entropy())
    s = c.sample((7,))
    assert tuple(s.shape) == (7, 2, 3) + tuple(c.event_shape)
    c.log_prob(s)  # draws lie in the support


@pytest.mark.parametrize("name", ["Normal", "Uniform", "Exponential", "Bernoulli", "Categorical",
                                  "OneHotCategorical"])
def test_kl_against_torch(name):
    cases = [f for f in families() if f[0] == name]
    (_, a1, k1, _), (_, a2, k2, _) = cases[0], families()[[f[0] for f in families()].index(name)]
    if name == "Uniform":  # q must cover p for a finite KL; one pair finite, widened
        a2 = (a1[0] - 0.5, a1[1] + RNG.uniform(0, 1, a1[1].shape))
    cp, tp = build(name, a1, k1)
    cq, tq = build(name, a2, k2)
    close(D.kl_divergence(cp, cq), TD.kl_divergence(tp, tq))
    close(D.kl_divergence(cq, cp), TD.kl_divergence(tq, tp))


def test_kl_edge_values_and_registry():
    cp, tp = build("Bernoulli", (), {"probs": [0.0, 1.0, 0.5]})
    cq, tq = build("Bernoulli", (), {"probs": [0.5, 0.0, 1.0]})
    close(D.kl_divergence(cp, cq), TD.kl_divergence(tp, tq))
    cp, tp = build("Categorical", (), {"probs": [[0.0, 1.0], [0.5, 0.5]]})
    cq, tq = build("Categorical", (), {"probs": [[0.5, 0.5], [1.0, 0.0]]})
    close(D.kl_divergence(cp, cq), TD.kl_divergence(tp, tq))
    with pytest.raises(NotImplementedError):  # a pair PyTorch has no KL for either
        D.kl_divergence(D.Normal(0.0, 1.0), D.Poisson(1.0))
    with pytest.raises(NotImplementedError):
        TD.kl_divergence(TD.Normal(0.0, 1.0), TD.Poisson(1.0))

    class MyNormal(D.Normal):
        pass

    @D.register_kl(MyNormal, MyNormal)
    def _kl(p, q):
        return cr.tensor(42.0)

    assert D.kl_divergence(MyNormal(0.0, 1.0), MyNormal(0.0, 1.0)).item() == 42.0
    assert D.kl_divergence(MyNormal(0.0, 1.0), D.Normal(0.0, 1.0)).item() == 0.0


@pytest.mark.parametrize("name,params,mean,var", [
    ("Normal", (1.5, 2.0), 1.5, 4.0), ("Uniform", (-1.0, 3.0), 1.0, 16 / 12),
    ("Exponential", (2.0,), 0.5, 0.25),
])
def test_sample_moments(name, params, mean, var):
    cr.manual_seed(0)
    s = getattr(D, name)(*[cr.tensor(p, dtype=cr.float64) for p in params]).sample((200_000,)).cpu().numpy()
    assert abs(s.mean() - mean) < 0.02 and abs(s.var() - var) / var < 0.02


def test_discrete_sample_frequencies():
    cr.manual_seed(0)
    probs = np.array([0.1, 0.2, 0.3, 0.4])
    s = D.Categorical(probs=cr.tensor(probs)).sample((100_000,)).cpu().numpy()
    np.testing.assert_allclose(np.bincount(s, minlength=4) / s.size, probs, atol=0.01)
    b = D.Bernoulli(probs=cr.tensor([0.2, 0.7])).sample((100_000,)).cpu().numpy()
    np.testing.assert_allclose(b.mean(0), [0.2, 0.7], atol=0.01)
    oh = D.OneHotCategorical(probs=cr.tensor(probs)).sample((50_000,)).cpu().numpy()
    assert (oh.sum(-1) == 1).all()
    np.testing.assert_allclose(oh.mean(0), probs, atol=0.01)


def test_sampling_is_seeded():
    cr.manual_seed(3)
    a = D.Normal(cr.zeros(4), cr.ones(4)).sample().cpu().numpy()
    cr.manual_seed(3)
    np.testing.assert_array_equal(a, D.Normal(cr.zeros(4), cr.ones(4)).sample().cpu().numpy())


def test_rsample_gradients_are_the_reparameterisation():
    loc = cr.tensor([0.5, -1.0], dtype=cr.float64, requires_grad=True)
    scale = cr.tensor([1.5, 0.3], dtype=cr.float64, requires_grad=True)
    cr.manual_seed(1)
    x = D.Normal(loc, scale).rsample((3,))
    x.sum().backward()
    eps = (x.detach().cpu().numpy() - loc.detach().cpu().numpy()) / scale.detach().cpu().numpy()
    close(loc.grad, torch.tensor([3.0, 3.0]))
    np.testing.assert_allclose(scale.grad.cpu().numpy(), eps.sum(0), rtol=1e-10)

    rate = cr.tensor([2.0, 0.5], dtype=cr.float64, requires_grad=True)
    y = D.Exponential(rate).rsample()
    y.sum().backward()
    np.testing.assert_allclose(rate.grad.cpu().numpy(), -y.detach().cpu().numpy() / rate.detach().cpu().numpy(), rtol=1e-10)

    low = cr.tensor([0.0], dtype=cr.float64, requires_grad=True)
    high = cr.tensor([2.0], dtype=cr.float64, requires_grad=True)
    u = D.Uniform(low, high).rsample()
    u.sum().backward()
    frac = u.item() / 2.0
    np.testing.assert_allclose([low.grad.item(), high.grad.item()], [1 - frac, frac], rtol=1e-10)
    assert not D.Normal(loc, scale).sample().requires_grad


def test_log_prob_and_kl_gradients_match_torch():
    c_loc, t_loc = pair([0.3, -0.7])
    c_loc.requires_grad_(True)
    t_loc.requires_grad_(True)
    c_lg, t_lg = pair([[0.1, 2.0, -1.0]])
    c_lg.requires_grad_(True)
    t_lg.requires_grad_(True)
    (D.Normal(c_loc, 2.0).log_prob(cr.tensor([1.0, 2.0], dtype=cr.float64)).sum()
     + D.kl_divergence(D.Categorical(logits=c_lg), D.Categorical(logits=cr.zeros(1, 3, dtype=cr.float64)))
     .sum()).backward()
    (TD.Normal(t_loc, 2.0).log_prob(torch.tensor([1.0, 2.0], dtype=torch.float64)).sum()
     + TD.kl_divergence(TD.Categorical(logits=t_lg), TD.Categorical(logits=torch.zeros(1, 3, dtype=torch.float64)))
     .sum()).backward()
    close(c_loc.grad, t_loc.grad)
    close(c_lg.grad, t_lg.grad)


def test_argument_validation():
    with pytest.raises(ValueError, match="scale"):
        D.Normal(0.0, -1.0)
    with pytest.raises(ValueError, match="probs"):
        D.Bernoulli(probs=cr.tensor([1.5]))
    with pytest.raises(ValueError, match="Either `probs` or `logits`"):
        D.Categorical()
    with pytest.raises(ValueError, match="support"):
        D.Exponential(1.0).log_prob(cr.tensor(-1.0))
    with pytest.raises(ValueError):
        D.Uniform(1.0, 0.0)
    D.Normal(0.0, -1.0, validate_args=False)  # no check asked


# ---- torch.multinomial / bernoulli / poisson / normal and the in-place samplers


def test_multinomial_shapes_and_frequencies():
    cr.manual_seed(0)
    w = cr.tensor([[1.0, 2.0, 3.0, 4.0], [0.0, 0.0, 1.0, 1.0]])
    s = cr.multinomial(w, 2)
    assert s.shape == (2, 2) and s.dtype == cr.int64
    assert cr.multinomial(w[0], 3).shape == (3,)
    draws = cr.multinomial(w, 50_000, replacement=True).cpu().numpy()
    np.testing.assert_allclose(np.bincount(draws[0], minlength=4) / 50_000, [0.1, 0.2, 0.3, 0.4], atol=0.01)
    assert set(np.unique(draws[1])) == {2, 3}
    # without replacement: distinct, and the first draw follows the weights
    rows = cr.multinomial(cr.tensor([1.0, 2.0, 3.0, 4.0]).expand(20_000, 4), 4).cpu().numpy()
    assert all(len(set(r)) == 4 for r in rows[:500])
    np.testing.assert_allclose(np.bincount(rows[:, 0], minlength=4) / 20_000, [0.1, 0.2, 0.3, 0.4], atol=0.015)
    # second draw given first = 3: remaining weights 1, 2, 3 of 6
    second = rows[rows[:, 0] == 3, 1]
    np.testing.assert_allclose(np.bincount(second, minlength=3)[:3] / second.size, [1 / 6, 2 / 6, 3 / 6], atol=0.02)


@pytest.mark.parametrize("weights,n,replacement,pattern", [
    ([0.5, -0.1, 0.6], 1, True, "element < 0"),
    ([0.5, float("nan"), 0.6], 1, True, "element < 0"),
    ([0.0, 0.0], 1, True, "sum of probabilities"),
    ([0.5, 0.5], 3, False, "n_sample > prob_dist.size"),
])
def test_multinomial_errors_as_torch(weights, n, replacement, pattern):
    with pytest.raises(RuntimeError, match=pattern):
        torch.multinomial(torch.tensor(weights), n, replacement)
    with pytest.raises(RuntimeError, match=pattern):
        cr.multinomial(cr.tensor(weights), n, replacement)


def test_multinomial_zero_weights_without_replacement_as_torch():
    assert cr.multinomial(cr.tensor([0.5, 0.0, 0.0]), 2).tolist() == torch.multinomial(
        torch.tensor([0.5, 0.0, 0.0]), 2).tolist()


def test_bernoulli_poisson_normal():
    cr.manual_seed(0)
    p = cr.tensor([0.0, 0.25, 1.0], dtype=cr.float64)
    s = cr.bernoulli(p.expand(40_000, 3)).cpu().numpy()
    assert s.dtype == np.float64
    np.testing.assert_allclose(s.mean(0), [0.0, 0.25, 1.0], atol=0.01)
    assert cr.full((2, 2), 0.5).bernoulli().shape == (2, 2)
    with pytest.raises(RuntimeError, match="p_in >= 0 && p_in <= 1"):
        torch.bernoulli(torch.tensor([1.5]))
    with pytest.raises(RuntimeError, match="p_in >= 0 && p_in <= 1"):
        cr.bernoulli(cr.tensor([1.5]))
    k = cr.poisson(cr.full((50_000,), 3.0)).cpu().numpy()
    assert abs(k.mean() - 3) < 0.05 and (k == np.round(k)).all()
    m = cr.zeros(3, requires_grad=True)
    x = cr.normal(m, cr.full((2, 1), 2.0))
    assert x.shape == (2, 3)
    x.sum().backward()  # zero gradient to mean, as torch.normal
    close(m.grad, torch.zeros(3))
    assert cr.normal(0.0, 1.0, (4, 2)).shape == (4, 2)
    big = cr.normal(cr.full((100_000,), 1.0), 3.0).cpu().numpy()
    assert abs(big.mean() - 1) < 0.05 and abs(big.std() - 3) < 0.05


def test_inplace_samplers():
    cr.manual_seed(0)
    x = cr.empty(100_000, dtype=cr.float64)
    assert x.bernoulli_(0.3) is x and abs(x.cpu().numpy().mean() - 0.3) < 0.01
    assert abs(x.exponential_(2.0).cpu().numpy().mean() - 0.5) < 0.01
    g = x.geometric_(0.25).cpu().numpy()
    assert g.min() >= 1 and abs(g.mean() - 4) < 0.1
    r = x.random_(3, 7).cpu().numpy()
    assert set(np.unique(r)) == {3, 4, 5, 6}
    assert set(np.unique(x.random_(2).cpu().numpy())) == {0, 1}
    assert x.random_().cpu().numpy().max() <= 2 ** 53
    assert abs(x.uniform_(2, 4).cpu().numpy().mean() - 3) < 0.01
    assert abs(x.normal_(1, 2).cpu().numpy().std() - 2) < 0.02
    assert x.log_normal_().cpu().numpy().min() > 0
    x.cauchy_()
    with pytest.raises(RuntimeError, match="lambda"):
        x.exponential_(-1.0)
    assert cr.ones(2, 5).multinomial(3).shape == (2, 3)
