"""gradcheck and gradgradcheck: they pass correct rules and catch wrong ones with a useful report."""

import numpy as np
import pytest

import chainrule as cr


def f64(*shape, low=-1.0, high=1.0, seed=0):
    rng = np.random.default_rng(seed)
    return cr.tensor(rng.uniform(low, high, shape), requires_grad=True)


class SinWithWrongBackward(cr.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x.sin()

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return g * x.cos() * 1.01  # 1% off


class SquareWithFirstOrderOnlyBackward(cr.autograd.Function):
    """Right gradient, but computed from a detached input: its own derivative is lost."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x * x

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return g * 2 * x.detach()


def test_gradcheck_passes_correct_functions_of_several_inputs_and_outputs():
    a, b = f64(3, 2), f64(2, seed=1)
    assert cr.autograd.gradcheck(lambda a, b: (a * b).tanh(), (a, b))
    assert cr.autograd.gradcheck(lambda a, b: ((a + b).exp(), a.sum() * b), (a, b))
    assert cr.autograd.gradcheck(lambda a, k: a * k, (a, 2.5))  # non-tensor arguments pass through


def test_gradcheck_catches_a_wrong_backward_and_names_the_worst_element():
    x = f64(4, low=0.5, high=1.5)
    with pytest.raises(cr.autograd.GradcheckError) as info:
        cr.autograd.gradcheck(SinWithWrongBackward.apply, x)
    message = str(info.value)
    worst = int(np.argmax(np.cos(x.detach().cpu().numpy()) * 0.01))
    assert "output 0 with respect to input 0" in message
    assert f"Worst: d output[{worst}] / d input[{worst}]" in message
    assert f"analytical {1.01 * np.cos(x[worst].item()):.6f}"[:-1] in message
    assert f"numerical {np.cos(x[worst].item()):.6f}"[:-1] in message
    assert "4 of 16 entries differ" in message
    assert cr.autograd.gradcheck(SinWithWrongBackward.apply, x, raise_exception=False) is False


def test_gradcheck_wants_float64_inputs():
    with pytest.raises(cr.autograd.GradcheckError, match="input 0 is chainrule.float32; finite differences need float64"):
        cr.autograd.gradcheck(lambda t: t * 2, cr.ones(2, requires_grad=True))


def test_gradcheck_leaves_the_inputs_as_they_were():
    x = f64(3)
    before = x.detach().cpu().numpy().copy()
    cr.autograd.gradcheck(lambda t: t.exp(), x)
    assert x.detach().cpu().numpy().tolist() == before.tolist() and x.grad is None


def test_gradgradcheck_passes_correct_and_catches_first_order_only_backwards():
    x = f64(3, seed=4)
    assert cr.autograd.gradgradcheck(lambda t: t.tanh() * t, x)
    assert cr.autograd.gradcheck(SquareWithFirstOrderOnlyBackward.apply, x)  # first order is right
    with pytest.raises(cr.autograd.GradcheckError, match="Jacobian mismatch"):
        cr.autograd.gradgradcheck(SquareWithFirstOrderOnlyBackward.apply, x)
