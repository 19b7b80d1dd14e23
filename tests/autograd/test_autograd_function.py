"""Custom operations: cr.autograd.Function with forward/backward, ctx and apply."""

import numpy as np
import pytest

import chainrule as cr


class ScaledSquare(cr.autograd.Function):
    """k * x^2 with a hand-written backward (made of tensor ops, so it is twice differentiable)."""

    calls = []

    @staticmethod
    def forward(ctx, x, k):
        ctx.save_for_backward(x)
        ctx.k = k
        assert not cr.is_grad_enabled()  # forward runs without recording
        return x * x * k

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        ScaledSquare.calls.append(ctx.needs_input_grad)
        return g * 2 * x * ctx.k, None


def test_forward_backward_ctx_and_needs_input_grad():
    x = cr.tensor([1.0, 2.0], requires_grad=True)
    y = ScaledSquare.apply(x, 3.0)
    assert y.tolist() == [3.0, 12.0] and y.grad_fn.name() == "ScaledSquareBackward0" and not y.is_leaf
    ScaledSquare.calls.clear()
    y.sum().backward()
    assert x.grad.tolist() == [6.0, 12.0]
    assert ScaledSquare.calls == [(True, False)]


def test_custom_function_passes_gradcheck_and_gradgradcheck():
    x = cr.tensor([0.5, -1.5, 2.0], dtype=cr.float64, requires_grad=True)
    assert cr.autograd.gradcheck(lambda t: ScaledSquare.apply(t, 1.5), x)
    assert cr.autograd.gradgradcheck(lambda t: ScaledSquare.apply(t, 1.5), x)


def test_two_tensor_inputs_one_not_requiring_grad():
    class Mul(cr.autograd.Function):
        @staticmethod
        def forward(ctx, a, b):
            ctx.save_for_backward(a, b)
            return a * b

        @staticmethod
        def backward(ctx, g):
            a, b = ctx.saved_tensors
            assert ctx.needs_input_grad == (True, False)
            return g * b, g * a

    a, b = cr.tensor([1.0, 2.0], requires_grad=True), cr.tensor([3.0, 4.0])
    Mul.apply(a, b).sum().backward()
    assert a.grad.tolist() == [3.0, 4.0] and b.grad is None


def test_no_graph_without_inputs_that_require_grad_or_under_no_grad():
    assert not ScaledSquare.apply(cr.ones(2), 2.0).requires_grad
    with cr.no_grad():
        assert not ScaledSquare.apply(cr.ones(2, requires_grad=True), 2.0).requires_grad


def test_broadcast_gradients_are_summed_and_dtypes_cast():
    class Identity(cr.autograd.Function):
        @staticmethod
        def forward(ctx, a):
            return a.clone()

        @staticmethod
        def backward(ctx, g):
            return (g * 2).double().expand(3, 2)  # broadcast and a different dtype: fixed up

    x = cr.ones(2, requires_grad=True)
    Identity.apply(x).sum().backward()
    assert x.grad.tolist() == [6.0, 6.0] and x.grad.dtype is cr.float32


def test_a_returned_saved_tensor_is_copied_before_it_becomes_grad():
    class PassSaved(cr.autograd.Function):
        @staticmethod
        def forward(ctx, a, b):
            ctx.save_for_backward(b)
            return a * 1

        @staticmethod
        def backward(ctx, g):
            return ctx.saved_tensors[0], None

    x, b = cr.zeros(2, requires_grad=True), cr.tensor([1.0, 2.0])
    PassSaved.apply(x, b).sum().backward()
    PassSaved.apply(x, b).sum().backward()  # accumulating into x.grad must not write into b
    assert x.grad.tolist() == [2.0, 4.0] and b.tolist() == [1.0, 2.0]


def test_bad_backward_results_are_named():
    class WrongCount(cr.autograd.Function):
        @staticmethod
        def forward(ctx, a, k):
            return a * k

        @staticmethod
        def backward(ctx, g):
            return g

    with pytest.raises(RuntimeError, match="WrongCount.backward returned 1 gradients, but forward took 2 arguments"):
        WrongCount.apply(cr.ones(2, requires_grad=True), 2.0).sum().backward()

    class WrongShape(cr.autograd.Function):
        @staticmethod
        def forward(ctx, a):
            return a.sum()

        @staticmethod
        def backward(ctx, g):
            return g.expand(3)

    x = cr.ones(2, requires_grad=True)
    expected = r"WrongShape.backward returned a gradient of shape \(3,\) for input 0, which has shape \(2,\)"
    with pytest.raises(RuntimeError, match=expected):
        WrongShape.apply(x).backward()
    assert x.grad is None

    class NotATensor(cr.autograd.Function):
        @staticmethod
        def forward(ctx, a):
            return a * 1

        @staticmethod
        def backward(ctx, g):
            return 1.0

    with pytest.raises(TypeError, match="gradient 0 must be a Tensor or None, got float"):
        NotATensor.apply(x).sum().backward()


def test_forward_must_return_a_tensor():
    class ReturnsList(cr.autograd.Function):
        @staticmethod
        def forward(ctx, a):
            return [a]

    with pytest.raises(TypeError, match="ReturnsList.forward must return a Tensor or a tuple of Tensors, got list"):
        ReturnsList.apply(cr.ones(1, requires_grad=True))


class SinCos(cr.autograd.Function):
    """Two outputs; backward records which output gradients it was given."""

    given = []

    @staticmethod
    def forward(ctx, a):
        ctx.save_for_backward(a)
        return a.sin(), a.cos()

    @staticmethod
    def backward(ctx, g_sin, g_cos):
        (a,) = ctx.saved_tensors
        SinCos.given.append((g_sin.tolist(), g_cos.tolist()))
        return g_sin * a.cos() - g_cos * a.sin()


def test_several_outputs_get_their_own_gradients():
    x = cr.tensor([0.3, -1.2, 2.0], dtype=cr.float64, requires_grad=True)
    s, c = SinCos.apply(x)
    assert s.requires_grad and c.requires_grad
    np.testing.assert_allclose(s.detach().cpu().numpy(), np.sin(x.detach().cpu().numpy()))
    (2 * s + 3 * c).sum().backward()
    np.testing.assert_allclose(x.grad.cpu().numpy(), 2 * np.cos(x.detach().cpu().numpy()) - 3 * np.sin(x.detach().cpu().numpy()))
    from chainrule.autograd import gradcheck, gradgradcheck

    assert gradcheck(lambda a: SinCos.apply(a)[0] * SinCos.apply(a)[1], (x,))
    assert gradgradcheck(lambda a: SinCos.apply(a)[0] * SinCos.apply(a)[1], (x,))


def test_an_unused_output_gets_a_zero_gradient():
    SinCos.given.clear()
    x = cr.tensor([0.5, 1.0], dtype=cr.float64, requires_grad=True)
    s, _ = SinCos.apply(x)
    s.sum().backward()
    assert SinCos.given == [([1.0, 1.0], [0.0, 0.0])]


def test_integer_and_marked_outputs_get_no_graph():
    class MaxWithIndex(cr.autograd.Function):
        @staticmethod
        def forward(ctx, a):
            index = a.argmax()
            ctx.save_for_backward(index)
            doubled = a * 2
            ctx.mark_non_differentiable(doubled)
            return a[index], index, doubled

        @staticmethod
        def backward(ctx, g, g_index, g_doubled):
            assert g_index is None and g_doubled is None
            (index,) = ctx.saved_tensors
            grad = cr.zeros(3, dtype=g.dtype)
            grad[index] = g
            return grad

    x = cr.tensor([1.0, 5.0, 2.0], requires_grad=True)
    top, index, doubled = MaxWithIndex.apply(x)
    assert top.requires_grad and not index.requires_grad and not doubled.requires_grad
    top.backward()
    assert x.grad.tolist() == [0.0, 1.0, 0.0] and index.item() == 1


def test_differentiable_outputs_of_several_dtypes_are_refused():
    class Mixed(cr.autograd.Function):
        @staticmethod
        def forward(ctx, a):
            return a * 1, a.double()

    with pytest.raises(TypeError, match=r"Mixed.forward returned differentiable outputs of several dtypes"):
        Mixed.apply(cr.ones(2, requires_grad=True))


def test_saved_tensors_modified_in_place_are_detected():
    x = cr.tensor([1.0, 2.0], requires_grad=True)
    h = x * 1
    y = ScaledSquare.apply(h, 1.0)
    h += 1
    with pytest.raises(RuntimeError, match="needed by ScaledSquareBackward0.*version 1.*'ScaledSquare' saved it at version 0"):
        y.sum().backward()


def test_a_saved_output_modified_in_place_is_detected():
    class Exp(cr.autograd.Function):
        @staticmethod
        def forward(ctx, a):
            out = a.exp()
            ctx.save_for_backward(out)
            return out

        @staticmethod
        def backward(ctx, g):
            (out,) = ctx.saved_tensors
            return g * out

    x = cr.tensor([0.0, 1.0], requires_grad=True)
    y = Exp.apply(x)
    z = y.sum()
    z.backward(retain_graph=True)
    np.testing.assert_allclose(x.grad.cpu().numpy(), np.exp([0.0, 1.0]), rtol=1e-6)
    y.mul_(2)
    with pytest.raises(RuntimeError, match="modified by an in-place operation"):
        z.backward()
