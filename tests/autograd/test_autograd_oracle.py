"""The engine and chainrule.func compared with PyTorch (torch.autograd and torch.func)."""

import numpy as np
import pytest

import chainrule as cr

torch = pytest.importorskip("torch")
tfunc = pytest.importorskip("torch.func")

RNG = np.random.default_rng(0)
XA, YA, MA = RNG.standard_normal(4), RNG.standard_normal(4), RNG.standard_normal((4, 4))


def both(array, requires_grad=False):
    return (cr.tensor(array, requires_grad=requires_grad), torch.tensor(array, requires_grad=requires_grad))


def close(mine, theirs):
    if isinstance(mine, (tuple, list)):
        assert len(mine) == len(theirs)
        for m, t in zip(mine, theirs):
            close(m, t)
        return
    np.testing.assert_allclose(mine.detach().cpu().numpy(), theirs.detach().cpu().numpy(), rtol=1e-10, atol=1e-12)


def scalar_fn(x, y):
    return ((x.sin() * y) ** 2).sum() + (x * y).tanh().sum() * x.exp().mean()


def vector_fn(x):
    return x.sin() * x.exp() + x.tanh().sum()


def test_grads_of_a_graph_with_reuse_and_broadcasting_match_pytorch():
    def graph(lib, x, w, b):
        h = (x @ w + b).tanh()
        shared = h * h
        return (shared.sum(1) * h.mean(1) + shared.exp().sum(1)).sum() / x.shape[0]

    data = [RNG.standard_normal((5, 4)), MA, RNG.standard_normal(4)]
    mine = [cr.tensor(a, requires_grad=True) for a in data]
    theirs = [torch.tensor(a, requires_grad=True) for a in data]
    graph(cr, *mine).backward()
    graph(torch, *theirs).backward()
    close([t.grad for t in mine], [t.grad for t in theirs])


def test_second_and_third_order_grads_match_pytorch():
    (xc, xt) = both(XA, requires_grad=True)
    results = []
    for lib, x in ((cr, xc), (torch, xt)):
        y = (x.tanh() * x.sin()).sum()
        (g1,) = lib.autograd.grad(y, x, create_graph=True)
        (g2,) = lib.autograd.grad(g1.sum(), x, create_graph=True)
        (g3,) = lib.autograd.grad((g2 * g2).sum(), x)
        results.append((g1, g2, g3))
    close(*results)


@pytest.mark.parametrize("argnums", [0, 1, (0, 1)])
def test_func_grad_and_value_and_grad(argnums):
    (xc, xt), (yc, yt) = both(XA), both(YA)
    close(cr.func.grad(scalar_fn, argnums=argnums)(xc, yc), tfunc.grad(scalar_fn, argnums=argnums)(xt, yt))
    value, g = cr.func.value_and_grad(scalar_fn, argnums=argnums)(xc, yc)
    close(value, scalar_fn(xt, yt))
    close(g, tfunc.grad(scalar_fn, argnums=argnums)(xt, yt))


def test_func_vjp_and_jvp():
    (xc, xt), (vc, vt) = both(XA), both(YA)
    out_c, vjp_c = cr.func.vjp(vector_fn, xc)
    out_t, vjp_t = tfunc.vjp(vector_fn, xt)
    close(out_c, out_t)
    close(vjp_c(vc), vjp_t(vt))
    close(cr.func.jvp(vector_fn, (xc,), (vc,)), tfunc.jvp(vector_fn, (xt,), (vt,)))


def test_func_jacobians_and_hessian():
    (xc, xt), (yc, yt) = both(XA), both(YA)
    close(cr.func.jacrev(vector_fn)(xc), tfunc.jacrev(vector_fn)(xt))
    close(cr.func.jacfwd(vector_fn)(xc), tfunc.jacfwd(vector_fn)(xt))
    close(cr.func.jacobian(lambda x, y: x * y.sin(), argnums=(0, 1))(xc, yc),
          tfunc.jacrev(lambda x, y: x * y.sin(), argnums=(0, 1))(xt, yt))
    close(cr.func.hessian(scalar_fn)(xc, yc), tfunc.hessian(scalar_fn)(xt, yt))
    close(cr.func.hessian(scalar_fn, argnums=1)(xc, yc), tfunc.hessian(scalar_fn, argnums=1)(xt, yt))


def test_nested_func_transforms():
    (xc, xt) = both(XA)

    def inner_c(x):
        return cr.func.grad(lambda t: (t.sin() * t).sum() * t.prod())(x).sum()

    def inner_t(x):
        return tfunc.grad(lambda t: (t.sin() * t).sum() * t.prod())(x).sum()

    close(cr.func.grad(inner_c)(xc), tfunc.grad(inner_t)(xt))


def test_hooks_and_retain_grad_match_pytorch():
    grads = []
    for lib in (cr, torch):
        x = lib.tensor(XA, requires_grad=True)
        h = x * 2
        h.retain_grad()
        h.register_hook(lambda g: g * 3)
        k = (h.exp() * x).sum()
        k.backward()
        grads.append((x.grad, h.grad))
    close(*grads)


# ----- torch.autograd.functional -------------------------------------------------------------------


def test_autograd_functional_matches_pytorch():
    mine, theirs = cr.autograd.functional, torch.autograd.functional
    (xc, xt), (yc, yt), (vc, vt) = both(XA), both(YA), both(RNG.standard_normal(4))

    def at_y(lib_y):
        return lambda x: scalar_fn(x, lib_y)

    close(mine.vjp(vector_fn, xc, vc), theirs.vjp(vector_fn, xt, vt))
    close(mine.vjp(scalar_fn, (xc, yc)), theirs.vjp(scalar_fn, (xt, yt)))
    close(mine.jvp(vector_fn, xc, vc), theirs.jvp(vector_fn, xt, vt))
    close(mine.jacobian(vector_fn, xc), theirs.jacobian(vector_fn, xt))
    two_outputs = lambda a, b: (a * b.sin(), (a * b).sum())  # noqa: E731
    close(mine.jacobian(two_outputs, (xc, yc)), theirs.jacobian(two_outputs, (xt, yt)))
    close(mine.hessian(at_y(yc), xc), theirs.hessian(at_y(yt), xt))
    close(mine.hessian(scalar_fn, (xc, yc)), theirs.hessian(scalar_fn, (xt, yt)))
    close(mine.vhp(at_y(yc), xc, vc), theirs.vhp(at_y(yt), xt, vt))
    close(mine.hvp(scalar_fn, (xc, yc), (vc, vc)), theirs.hvp(scalar_fn, (xt, yt), (vt, vt)))


def test_autograd_functional_create_graph():
    x = cr.tensor(XA, requires_grad=True)
    jac = cr.autograd.functional.jacobian(vector_fn, x, create_graph=True)
    assert jac.requires_grad
    jac.sum().backward()
    xt = torch.tensor(XA, requires_grad=True)
    torch.autograd.functional.jacobian(vector_fn, xt, create_graph=True).sum().backward()
    close(x.grad, xt.grad)
    assert not cr.autograd.functional.jacobian(vector_fn, x).requires_grad
