"""create_graph=True: gradients that are themselves differentiable, checked against analytic values."""

import numpy as np
import pytest

import chainrule as cr


def grad1(y, x):
    (g,) = cr.autograd.grad(y, x, create_graph=True)
    return g


def test_gradients_carry_a_graph_only_with_create_graph():
    x = cr.tensor([1.0, 2.0], requires_grad=True)
    (plain,) = cr.autograd.grad((x**3).sum(), x)
    assert not plain.requires_grad and plain.grad_fn is None
    g = grad1((x**3).sum(), x)
    assert g.requires_grad and g.grad_fn is not None
    (x**3).sum().backward(create_graph=True)
    assert x.grad.requires_grad and x.grad.tolist() == [3.0, 12.0]


@pytest.mark.parametrize("x0", [-1.3, 0.5, 2.0])
def test_third_derivative_of_x_cubed(x0):
    x = cr.tensor(x0, dtype=cr.float64, requires_grad=True)
    d1 = grad1(x**3, x)
    d2 = grad1(d1, x)
    (d3,) = cr.autograd.grad(d2, x)
    assert d1.item() == pytest.approx(3 * x0**2)
    assert d2.item() == pytest.approx(6 * x0)
    assert d3.item() == pytest.approx(6.0)


@pytest.mark.parametrize("x0", [-1.3, 0.0, 0.5, 2.0])
def test_third_derivative_of_tanh(x0):
    x = cr.tensor(x0, dtype=cr.float64, requires_grad=True)
    d1 = grad1(x.tanh(), x)
    d2 = grad1(d1, x)
    (d3,) = cr.autograd.grad(d2, x)
    t = np.tanh(x0)
    s = 1 - t**2  # sech^2
    assert d1.item() == pytest.approx(s)
    assert d2.item() == pytest.approx(-2 * t * s)
    assert d3.item() == pytest.approx(-2 * s**2 + 4 * t**2 * s)


def test_hessian_vector_product_of_a_quadratic_form():
    rng = np.random.default_rng(0)
    a = rng.standard_normal((4, 4))
    v = rng.standard_normal(4)
    x = cr.tensor(rng.standard_normal(4), requires_grad=True)
    A = cr.tensor(a)
    f = x @ A @ x  # Hessian A + A^T
    g = grad1(f, x)
    (hv,) = cr.autograd.grad(g, x, grad_outputs=cr.tensor(v), retain_graph=True)
    np.testing.assert_allclose(hv.cpu().numpy(), (a + a.T) @ v)
    (hv2,) = cr.autograd.grad((g * cr.tensor(v)).sum(), x)  # the same product as a dot, then grad
    np.testing.assert_allclose(hv2.cpu().numpy(), (a + a.T) @ v)


def test_gradient_penalty_reaches_the_parameters():
    rng = np.random.default_rng(1)
    w0, x0 = rng.standard_normal(5), rng.standard_normal(5)
    w = cr.tensor(w0, requires_grad=True)
    x = cr.tensor(x0, requires_grad=True)
    out = (w * x).sin().sum()
    gx = grad1(out, x)  # w cos(w x)
    penalty = (gx * gx).sum()  # sum w^2 cos^2(w x)
    penalty.backward()
    c, s = np.cos(w0 * x0), np.sin(w0 * x0)
    np.testing.assert_allclose(w.grad.cpu().numpy(), 2 * w0 * c**2 - 2 * w0**2 * x0 * c * s)
    np.testing.assert_allclose(x.grad.cpu().numpy(), -2 * w0**3 * c * s)


def test_grad_of_a_sum_of_first_derivatives_through_several_ops():
    x = cr.tensor([0.3, -0.7], dtype=cr.float64, requires_grad=True)
    g = grad1((x.exp() * x.sin()).sum(), x)  # e^x (sin x + cos x)
    (gg,) = cr.autograd.grad(g.sum(), x)  # 2 e^x cos x
    np.testing.assert_allclose(gg.cpu().numpy(), 2 * np.exp([0.3, -0.7]) * np.cos([0.3, -0.7]))


def test_gradgradcheck_of_compositions():
    rng = np.random.default_rng(2)
    a = cr.tensor(rng.uniform(0.5, 1.5, (2, 3)), requires_grad=True)
    b = cr.tensor(rng.uniform(0.5, 1.5, (3, 2)), requires_grad=True)
    assert cr.autograd.gradgradcheck(lambda a, b: (a @ b).tanh() * (a.sum() / b.sum()), (a, b))
    assert cr.autograd.gradgradcheck(lambda a: (a.exp() / a.exp().sum(1, keepdim=True)).log(), (a,))


def test_func_transforms_agree_with_analytic_values():
    rng = np.random.default_rng(3)
    a = rng.standard_normal((3, 3))
    A = cr.tensor(a)
    x = cr.tensor(rng.standard_normal(3))

    def quad(t):
        return t @ A @ t

    np.testing.assert_allclose(cr.func.grad(quad)(x).cpu().numpy(), (a + a.T) @ x.cpu().numpy())
    np.testing.assert_allclose(cr.func.hessian(quad)(x).cpu().numpy(), a + a.T)
    np.testing.assert_allclose(cr.func.jacrev(lambda t: t.sin())(x).cpu().numpy(), np.diag(np.cos(x.cpu().numpy())))
    value, g = cr.func.value_and_grad(quad)(x)
    assert value.item() == pytest.approx(x.cpu().numpy() @ a @ x.cpu().numpy()) and not value.requires_grad
    out, vjp_fn = cr.func.vjp(lambda t: A @ t, x)
    np.testing.assert_allclose(vjp_fn(cr.ones(3, dtype=cr.float64))[0].cpu().numpy(), a.T @ np.ones(3))
    _, jv = cr.func.jvp(lambda t: A @ t, (x,), (cr.ones(3, dtype=cr.float64),))
    np.testing.assert_allclose(jv.cpu().numpy(), a @ np.ones(3))
    (g_aux, aux) = cr.func.grad(lambda t: (quad(t), t * 2), has_aux=True)(x)
    assert not aux.requires_grad and aux.tolist() == (x * 2).tolist()
    with pytest.raises(RuntimeError, match=r"must return a one-element tensor.*shape \(3,\)"):
        cr.func.grad(lambda t: t * 2)(x)


def test_autograd_functional_forms_agree_with_analytic_values():
    rng = np.random.default_rng(4)
    a = rng.standard_normal((3, 3))
    A = cr.tensor(a)
    x, v = cr.tensor(rng.standard_normal(3)), cr.tensor(rng.standard_normal(3))
    F = cr.autograd.functional

    def quad(t):
        return t @ A @ t

    out, g = F.vjp(quad, x)
    assert out.item() == pytest.approx(x.cpu().numpy() @ a @ x.cpu().numpy())
    np.testing.assert_allclose(g.cpu().numpy(), (a + a.T) @ x.cpu().numpy())
    np.testing.assert_allclose(F.hessian(quad, x).cpu().numpy(), a + a.T)
    np.testing.assert_allclose(F.hvp(quad, x, v)[1].cpu().numpy(), (a + a.T) @ v.cpu().numpy())
    np.testing.assert_allclose(F.vhp(quad, x, v)[1].cpu().numpy(), v.cpu().numpy() @ (a + a.T))
    np.testing.assert_allclose(F.jacobian(lambda t: A @ t, x).cpu().numpy(), a)
    np.testing.assert_allclose(F.jvp(lambda t: A @ t, x, v)[1].cpu().numpy(), a @ v.cpu().numpy())
    with pytest.raises(RuntimeError, match="v can be omitted only when every output has a single element"):
        F.vjp(lambda t: A @ t, x)
    with pytest.raises(RuntimeError, match=r"v must match the inputs in number and shape"):
        F.jvp(lambda t: A @ t, x, cr.ones(2))
