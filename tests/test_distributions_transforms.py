"""chainrule.distributions.transforms, TransformedDistribution and biject_to/transform_to against
torch.distributions (float64): forward, inverse, log|det J|, domains, signs and shapes; the change of
variables in log_prob; gradients through transforms by finite differences."""

import numpy as np
import pytest
import torch

import chainrule as cr
from chainrule import distributions as D
from chainrule.autograd import gradcheck

TD = torch.distributions
RNG = np.random.default_rng(5)


def pair(a):
    a = np.asarray(a, dtype=np.float64)
    return cr.tensor(a, dtype=cr.float64), torch.tensor(a, dtype=torch.float64)


def close(c, t, tol=1e-10):
    np.testing.assert_allclose(np.asarray(c.detach().cpu().numpy()), t.detach().cpu().numpy(), rtol=tol, atol=tol)


def transform_cases():
    loc, scale = RNG.standard_normal(3), RNG.uniform(0.5, 2, 3) * np.array([1, -1, 1])
    return [  # (name, constructor args (arrays become tensors), input)
        ("ExpTransform", (), RNG.standard_normal((4, 3))),
        ("PowerTransform", (2.5,), RNG.uniform(0.1, 3, (4, 3))),
        ("PowerTransform", (RNG.uniform(-2, 2, 3),), RNG.uniform(0.1, 3, (4, 3))),
        ("SigmoidTransform", (), RNG.standard_normal((4, 3)) * 3),
        ("TanhTransform", (), RNG.standard_normal((4, 3)) * 2),
        ("SoftplusTransform", (), RNG.standard_normal((4, 3)) * 3),
        ("AffineTransform", (loc, scale), RNG.standard_normal((4, 3))),
        ("AffineTransform", (0.5, -2.0), RNG.standard_normal((4, 3))),
        ("StickBreakingTransform", (), RNG.standard_normal((4, 3))),
    ]


def make(lib, name, args):
    module = D if lib is cr else TD
    tensor = (lambda a: pair(a)[0]) if lib is cr else (lambda a: pair(a)[1])
    return getattr(module, name)(*[tensor(a) if isinstance(a, np.ndarray) else a for a in args])


@pytest.mark.parametrize("name, args, x", transform_cases(), ids=[c[0] for c in transform_cases()])
def test_transform_against_torch(name, args, x):
    ours, theirs = make(cr, name, args), make(torch, name, args)
    cx, tx = pair(x)
    cy, ty = ours(cx), theirs(tx)
    close(cy, ty)
    close(ours.inv(cy), tx, 1e-12)  # the round trip (torch keeps a float exponent in float32: less exact)
    close(ours.inv(cy), theirs.inv(ty), 1e-6)
    close(ours.log_abs_det_jacobian(cx, cy), theirs.log_abs_det_jacobian(tx, ty))
    close(ours.inv.log_abs_det_jacobian(cy, cx), theirs.inv.log_abs_det_jacobian(ty, tx))
    assert repr(ours.domain) == repr(theirs.domain) and repr(ours.codomain) == repr(theirs.codomain)
    assert ours.bijective == theirs.bijective and repr(ours) == repr(theirs)
    assert tuple(ours.forward_shape((5, 4, 3))) == tuple(theirs.forward_shape((5, 4, 3)))
    assert tuple(ours.inverse_shape((5, 4, 3))) == tuple(theirs.inverse_shape((5, 4, 3)))
    if name != "StickBreakingTransform":
        sign = ours.sign
        expected = theirs.sign
        np.testing.assert_array_equal(np.asarray(sign.cpu().numpy() if hasattr(sign, "numpy") else sign),
                                      np.asarray(expected.cpu().numpy() if hasattr(expected, "numpy") else expected))


def test_not_bijective_transforms_and_matrices():
    x = RNG.standard_normal((2, 3, 3))
    cx, tx = pair(x)
    for name in ("LowerCholeskyTransform", "PositiveDefiniteTransform", "SoftmaxTransform", "AbsTransform"):
        ours, theirs = getattr(D, name)(), getattr(TD, name)()
        close(ours(cx), theirs(tx))
        assert repr(ours.codomain) == repr(theirs.codomain)
        assert bool(ours.codomain.check(ours(cx)).all())
    pd = D.PositiveDefiniteTransform()
    close(pd.inv(pd(cx)), TD.PositiveDefiniteTransform().inv(TD.PositiveDefiniteTransform()(tx)), 1e-8)


def test_compose_independent_reshape_cat_stack():
    x = RNG.standard_normal((4, 2, 3))
    cx, tx = pair(x)
    loc = RNG.standard_normal(3)
    ours = D.ComposeTransform([D.AffineTransform(pair(loc)[0], 2.0), D.ExpTransform(),
                               D.IndependentTransform(D.SigmoidTransform().inv, 1)])
    theirs = TD.ComposeTransform([TD.AffineTransform(pair(loc)[1], 2.0), TD.ExpTransform(),
                                  TD.IndependentTransform(TD.SigmoidTransform().inv, 1)])
    x = RNG.uniform(-3, -0.5, (4, 2, 3))  # exp of it stays in (0, 1) for the logit
    cx, tx = pair(x)
    close(ours(cx), theirs(tx))
    close(ours.log_abs_det_jacobian(cx, ours(cx)), theirs.log_abs_det_jacobian(tx, theirs(tx)))
    close(ours.inv(ours(cx)), tx, 1e-8)
    assert repr(ours.domain) == repr(theirs.domain) and repr(ours.codomain) == repr(theirs.codomain)
    reshape_c, reshape_t = D.ReshapeTransform((2, 3), (6,)), TD.ReshapeTransform((2, 3), (6,))
    close(reshape_c(cx), reshape_t(tx))
    close(reshape_c.log_abs_det_jacobian(cx, reshape_c(cx)), reshape_t.log_abs_det_jacobian(tx, reshape_t(tx)))
    cat_c = D.CatTransform([D.ExpTransform(), D.AffineTransform(1.0, 3.0)], dim=-1, lengths=[1, 2])
    cat_t = TD.CatTransform([TD.ExpTransform(), TD.AffineTransform(1.0, 3.0)], dim=-1, lengths=[1, 2])
    close(cat_c(cx), cat_t(tx))
    close(cat_c.log_abs_det_jacobian(cx, cat_c(cx)), cat_t.log_abs_det_jacobian(tx, cat_t(tx)))
    stack_c = D.StackTransform([D.ExpTransform(), D.TanhTransform()], dim=1)
    stack_t = TD.StackTransform([TD.ExpTransform(), TD.TanhTransform()], dim=1)
    close(stack_c(cx), stack_t(tx))
    close(stack_c.inv(stack_c(cx)), tx, 1e-8)
    assert repr(D.identity_transform) == repr(TD.identity_transform)


def test_cache_returns_the_input_itself():
    t = D.ExpTransform(cache_size=1)
    x = cr.tensor([0.5, 1.0], requires_grad=True)
    y = t(x)
    assert t.inv(y) is x and t(x) is y
    assert D.ExpTransform().inv(y) is not x


def _jacobian(transform, x):
    """d transform(x) / dx by autograd, one output at a time."""
    rows = []
    for i in range(transform(x).shape[0]):
        xi = x.detach().requires_grad_(True)
        (g,) = cr.autograd.grad(transform(xi)[i], xi)
        rows.append(g.cpu().numpy())
    return np.array(rows)


def test_log_abs_det_jacobian_is_the_jacobians():
    x = cr.tensor(RNG.standard_normal(4), dtype=cr.float64)
    stick = D.StickBreakingTransform()
    J = _jacobian(stick, x)[:-1]  # 5 outputs of 4 inputs: the last coordinate is 1 minus the others
    np.testing.assert_allclose(stick.log_abs_det_jacobian(x, stick(x)).item(), np.linalg.slogdet(J)[1], rtol=1e-10)
    for elementwise in (D.TanhTransform(), D.SoftplusTransform(), D.SigmoidTransform(), D.ExpTransform()):
        J = _jacobian(elementwise, x)
        np.testing.assert_allclose(elementwise.log_abs_det_jacobian(x, elementwise(x)).cpu().numpy(),
                                   np.log(np.abs(np.diag(J))), rtol=1e-10)


def transformed_cases():
    loc, scale = RNG.standard_normal((2, 3)), RNG.uniform(0.5, 1.5, (2, 3))
    return [
        ("exp", lambda L, c: L.TransformedDistribution(L.Normal(c(loc), c(scale)), [L.ExpTransform()]),
         RNG.uniform(0.2, 3, (5, 2, 3))),
        ("sigmoid-affine", lambda L, c: L.TransformedDistribution(L.Normal(c(loc), c(scale)), [
            L.SigmoidTransform(), L.AffineTransform(c(loc[0]), 3.0)]), loc[0] + 3 * RNG.uniform(0.05, 0.95, (5, 2, 3))),
        ("stick-breaking", lambda L, c: L.TransformedDistribution(L.Normal(c(loc), c(scale)),
                                                                 [L.StickBreakingTransform()]),
         RNG.dirichlet(np.ones(4), (5, 2))),
        ("independent-base", lambda L, c: L.TransformedDistribution(L.Independent(L.Normal(c(loc), c(scale)), 1),
                                                                   [L.TanhTransform()]),
         RNG.uniform(-0.9, 0.9, (5, 2, 3))),
    ]


@pytest.mark.parametrize("name, build, value", transformed_cases(), ids=[c[0] for c in transformed_cases()])
def test_transformed_distribution_against_torch(name, build, value):
    ours = build(D, lambda a: pair(a)[0])
    theirs = build(TD, lambda a: pair(a)[1])
    assert (tuple(ours.batch_shape), tuple(ours.event_shape)) == (tuple(theirs.batch_shape),
                                                                 tuple(theirs.event_shape))
    cv, tv = pair(value)
    close(ours.log_prob(cv), theirs.log_prob(tv), 1e-9)
    assert repr(ours.support) == repr(theirs.support)
    s = ours.rsample((7,))
    assert tuple(s.shape) == (7,) + tuple(theirs.batch_shape) + tuple(theirs.event_shape)
    assert ours.has_rsample == theirs.has_rsample
    big = (3,) + tuple(ours.batch_shape)
    e_ours, e_theirs = ours.expand(big), theirs.expand(big)
    assert tuple(e_ours.batch_shape) == tuple(e_theirs.batch_shape)
    close(e_ours.log_prob(cv[:, None]), e_theirs.log_prob(tv[:, None]), 1e-9)


def test_transformed_cdf_icdf_and_gradients():
    loc, scale = pair([0.3, -0.2])[0], pair([1.2, 0.7])[0]
    t_loc, t_scale = pair([0.3, -0.2])[1], pair([1.2, 0.7])[1]
    ours = D.TransformedDistribution(D.Normal(loc, scale), [D.AffineTransform(1.0, -2.0), D.ExpTransform()])
    theirs = TD.TransformedDistribution(TD.Normal(t_loc, t_scale), [TD.AffineTransform(1.0, -2.0), TD.ExpTransform()])
    cv, tv = pair([0.5, 2.0])
    close(ours.cdf(cv), theirs.cdf(tv))
    cu, tu = pair([0.25, 0.8])
    close(ours.icdf(cu), theirs.icdf(tu), 1e-8)

    def draws(loc, scale):
        cr.manual_seed(0)
        d = D.TransformedDistribution(D.Normal(loc, scale), [D.TanhTransform(), D.AffineTransform(0.5, 2.0)])
        return d.rsample((3,))

    def log_prob(loc, scale):
        d = D.TransformedDistribution(D.Normal(loc, scale), [D.SigmoidTransform()])
        return d.log_prob(cr.tensor([0.2, 0.9], dtype=cr.float64))

    leaves = [loc.requires_grad_(True), scale.requires_grad_(True)]
    assert gradcheck(draws, leaves)
    assert gradcheck(log_prob, leaves)


CONSTRAINTS = [
    ("real", None), ("positive", None), ("nonnegative", None), ("greater_than", (2.0,)), ("less_than", (1.0,)),
    ("unit_interval", None), ("interval", (-1.0, 3.0)), ("simplex", None), ("real_vector", None),
    ("lower_cholesky", None), ("positive_definite", None),
]


@pytest.mark.parametrize("name, args", CONSTRAINTS, ids=[c[0] for c in CONSTRAINTS])
def test_biject_to_and_transform_to_as_torch(name, args):
    ours_c = getattr(D.constraints, name) if args is None else getattr(D.constraints, name)(*args)
    theirs_c = getattr(TD.constraints, name) if args is None else getattr(TD.constraints, name)(*args)
    x = RNG.standard_normal((4, 3, 3) if ours_c.event_dim == 2 else (4, 3))
    cx, tx = pair(x)
    for ours_registry, theirs_registry in ((D.biject_to, TD.biject_to), (D.transform_to, TD.transform_to)):
        try:
            theirs = theirs_registry(theirs_c)
        except NotImplementedError:
            with pytest.raises(NotImplementedError, match="Cannot transform"):
                ours_registry(ours_c)
            continue
        ours = ours_registry(ours_c)
        assert repr(ours) == repr(theirs)
        y = ours(cx)
        close(y, theirs(tx))
        assert bool(ours_c.check(y).all())
        if ours.bijective:
            close(ours.inv(y), tx, 1e-8)


def test_corr_cholesky_transform_and_lkj_against_torch():
    x = RNG.standard_normal((2, 6))  # 6 = 4 * 3 / 2: 4 x 4 factors
    cx, tx = pair(x)
    ours, theirs = D.CorrCholeskyTransform(), TD.CorrCholeskyTransform()
    y = ours(cx)
    close(y, theirs(tx))
    close(ours.inv(y), tx, 1e-12)
    close(ours.log_abs_det_jacobian(cx, y), theirs.log_abs_det_jacobian(tx, theirs(tx)))
    assert bool(D.constraints.corr_cholesky.check(y).all())
    assert repr(D.biject_to(D.constraints.corr_cholesky)) == repr(TD.biject_to(TD.constraints.corr_cholesky))
    assert tuple(ours.forward_shape((3, 6))) == (3, 4, 4) and tuple(ours.inverse_shape((3, 4, 4))) == (3, 6)
    leaf = cr.tensor(x, dtype=cr.float64, requires_grad=True)
    assert gradcheck(lambda v: ours(v), [leaf])
    with pytest.raises(ValueError, match="flattend lower-diagonal"):
        ours(cr.zeros(4))

    concentration = np.array([0.5, 1.0, 3.0])
    c = D.LKJCholesky(4, pair(concentration)[0])
    t = TD.LKJCholesky(4, pair(concentration)[1])
    cr.manual_seed(0)
    draws = c.sample((5,))
    assert tuple(draws.shape) == (5, 3, 4, 4) and bool(D.constraints.corr_cholesky.check(draws).all())
    close(c.log_prob(draws), t.log_prob(pair(draws.cpu().numpy())[1]))
    with pytest.raises(ValueError, match="dim to be an integer greater than or equal to 2"):
        D.LKJCholesky(1)


@pytest.mark.parametrize("d, eta", [(4, 2.0), (6, 0.8)])
def test_lkj_correlations_have_the_known_marginal(d, eta):
    """Each correlation of an LKJ(d, eta) draw is 2 Beta(b, b) - 1 with b = eta - 1 + d / 2: mean 0 and variance
    1 / (2 eta + d - 1); checked within 5 standard errors over n = 20,000 draws. (PyTorch 2.13's sampler fails
    this for the rows below the second: see LKJCholesky.)"""
    n = 20_000
    cr.manual_seed(1)
    L = D.LKJCholesky(d, cr.tensor(eta, dtype=cr.float64)).sample((n,)).cpu().numpy()
    corr = L @ np.swapaxes(L, -1, -2)
    np.testing.assert_allclose(np.diagonal(corr, axis1=-2, axis2=-1), 1.0, atol=1e-12)
    r = corr[:, np.tril_indices(d, -1)[0], np.tril_indices(d, -1)[1]]
    var = 1 / (2 * eta + d - 1)
    b = eta - 1 + d / 2  # the fourth central moment of 2 Beta(b, b) - 1: 3 / ((2b + 1)(2b + 3))
    m4 = 3 / ((2 * b + 1) * (2 * b + 3))
    assert np.all(np.abs(r.mean(0)) < 5 * np.sqrt(var / n))
    assert np.all(np.abs(r.var(0) - var) < 5 * np.sqrt((m4 - var ** 2) / n))
