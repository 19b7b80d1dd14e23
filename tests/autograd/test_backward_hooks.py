"""Tensor.register_post_accumulate_grad_hook and autograd.queue_callback (the two engine hooks that
DistributedDataParallel needs), against PyTorch where it has the same thing."""

import numpy as np
import pytest

import chainrule as cr
from chainrule.autograd import queue_callback

RNG = np.random.default_rng(3)
W1, W2, B, X = RNG.standard_normal((2, 3)), RNG.standard_normal(3), RNG.standard_normal(3), RNG.standard_normal((4, 2))


def _events(lib, queue=None):
    """Two backwards of a small net, logging each post-accumulate hook with the .grad it sees."""
    log = []
    w1, w2, b = (lib.tensor(a, requires_grad=True) for a in (W1, W2, B))
    x = lib.tensor(X)
    for name, p in (("w1", w1), ("w2", w2), ("b", b)):
        p.register_post_accumulate_grad_hook(lambda t, name=name: log.append((name, t.grad.detach().cpu().numpy().copy())))
    for _ in range(2):
        loss = ((x @ w1 + b).tanh() * w2).sum() + (w2 * w2).sum()
        loss.backward()
    return log


@pytest.mark.oracle
def test_post_accumulate_hooks_fire_in_torch_order_with_the_accumulated_grad():
    torch = pytest.importorskip("torch")
    mine, theirs = _events(cr), _events(torch)
    assert [name for name, _ in mine] == [name for name, _ in theirs]
    for (_, g), (_, t) in zip(mine, theirs):
        np.testing.assert_allclose(g, t, rtol=1e-12)


def test_post_accumulate_hook_fires_mid_walk_before_earlier_leaves_get_grads():
    w1, w2 = cr.tensor(W1, requires_grad=True), cr.tensor(W2, requires_grad=True)
    seen = []
    w2.register_post_accumulate_grad_hook(lambda t: seen.append((t.grad is not None, w1.grad is None)))
    ((cr.tensor(X) @ w1).tanh() * w2).sum().backward()
    assert seen == [(True, True)]  # w2's .grad is complete while w1's is still being computed
    assert w1.grad is not None


def test_post_accumulate_hooks_of_module_parameters_fire_layer_by_layer():
    """nn.Parameter leaves (a Tensor subclass) fire mid-walk too: the last layer's before the gradient has even
    reached the first layer's output."""
    net = cr.nn.Sequential(cr.nn.Linear(2, 3), cr.nn.Tanh(), cr.nn.Linear(3, 1)).double()
    order = []
    for name, p in net.named_parameters():
        p.register_post_accumulate_grad_hook(lambda t, name=name: order.append(name))
    hidden = net[0](cr.tensor(X))
    hidden.register_hook(lambda g: order.append("gradient reaches the first layer's output"))
    net[2](net[1](hidden)).sum().backward()
    assert set(order[:2]) == {"2.bias", "2.weight"}
    assert order[2] == "gradient reaches the first layer's output"
    assert set(order[3:]) == {"0.bias", "0.weight"}


def test_post_accumulate_hook_once_per_backward_for_a_leaf_used_many_times():
    w = cr.tensor(W2, requires_grad=True)
    calls = []
    w.register_post_accumulate_grad_hook(lambda t: calls.append(t.grad.cpu().numpy().copy()))
    (w * w + w.exp() + w[0]).sum().backward()
    assert len(calls) == 1
    np.testing.assert_allclose(calls[0], 2 * W2 + np.exp(W2) + 3 * np.eye(3)[0])  # w[0] is broadcast to 3


def test_post_accumulate_hook_not_for_autograd_grad_and_not_for_unreached_leaves():
    w, unused = cr.tensor(W2, requires_grad=True), cr.tensor(B, requires_grad=True)
    calls = []
    for p in (w, unused):
        p.register_post_accumulate_grad_hook(lambda t: calls.append(t))
    cr.autograd.grad((w * 2).sum(), [w])
    assert calls == [] and w.grad is None
    (w * 2).sum().backward()
    assert len(calls) == 1 and calls[0] is w and unused.grad is None


def test_post_accumulate_hook_with_inputs_fires_only_for_those_inputs():
    a, b = cr.tensor(W2, requires_grad=True), cr.tensor(B, requires_grad=True)
    calls = []
    a.register_post_accumulate_grad_hook(lambda t: calls.append("a"))
    b.register_post_accumulate_grad_hook(lambda t: calls.append("b"))
    (a * b).sum().backward(inputs=[b])
    assert calls == ["b"] and a.grad is None


def test_post_accumulate_hook_sees_a_leaf_hook_replaced_gradient_and_handle_removes_it():
    w = cr.tensor(W2, requires_grad=True)
    calls = []
    w.register_hook(lambda g: g * 10)
    handle = w.register_post_accumulate_grad_hook(lambda t: calls.append(t.grad.cpu().numpy().copy()))
    (w * 3).sum().backward()
    np.testing.assert_allclose(calls[0], np.full(3, 30.0))
    handle.remove()
    (w * 3).sum().backward()
    assert len(calls) == 1
    np.testing.assert_allclose(w.grad.cpu().numpy(), np.full(3, 60.0))


def test_post_accumulate_hook_on_a_root_leaf():
    w = cr.tensor(2.0, requires_grad=True)
    calls = []
    w.register_post_accumulate_grad_hook(lambda t: calls.append(float(t.grad)))
    w.backward()
    assert calls == [1.0]


def test_post_accumulate_hook_registration_errors():
    with pytest.raises(RuntimeError, match="non-leaf"):
        (cr.tensor(W2, requires_grad=True) * 2).register_post_accumulate_grad_hook(lambda t: None)
    with pytest.raises(RuntimeError, match="doesn't require grad"):
        cr.tensor(W2).register_post_accumulate_grad_hook(lambda t: None)


def test_queue_callback_runs_after_every_grad_in_queue_order():
    w1, w2 = cr.tensor(W1, requires_grad=True), cr.tensor(W2, requires_grad=True)
    order = []

    def first_hook(t):
        if not order:
            queue_callback(lambda: order.append(("first", w1.grad is not None and w2.grad is not None)))
            queue_callback(lambda: order.append(("second", True)))
    w2.register_post_accumulate_grad_hook(first_hook)
    ((cr.tensor(X) @ w1).tanh() * w2).sum().backward()
    assert order == [("first", True), ("second", True)]


def test_queue_callback_from_a_callback_and_from_a_tensor_hook():
    w = cr.tensor(W2, requires_grad=True)
    order = []

    def outer():
        order.append("outer")
        queue_callback(lambda: order.append("inner"))

    def hook(g):
        queue_callback(outer)
        return None
    (w * 2).register_hook(hook)
    ((w * 2) * 1).sum()  # a different graph: its hook never runs
    y = w * 2
    y.register_hook(hook)
    y.sum().backward()
    assert order == ["outer", "inner"]


def test_queue_callback_outside_backward_raises_and_a_failed_walk_runs_none():
    with pytest.raises(RuntimeError, match="during the backward pass"):
        queue_callback(lambda: None)
    w = cr.tensor(W2, requires_grad=True)
    ran = []

    def failing(g):
        queue_callback(lambda: ran.append(1))
        raise ValueError("boom")
    y = w * 2
    y.register_hook(failing)
    with pytest.raises(ValueError, match="boom"):
        y.sum().backward()
    assert ran == []
    with pytest.raises(RuntimeError, match="during the backward pass"):
        queue_callback(lambda: None)  # the failed backward left no callback list behind


def test_a_hooked_leaf_finished_before_the_failure_keeps_its_grad():
    """The one exception to "an error mid-way changes nothing": a leaf with a post-accumulate hook gets its
    .grad as soon as it is complete (as in PyTorch); the other leaves are untouched."""
    w, x = cr.tensor(W2, requires_grad=True), cr.tensor(B, requires_grad=True)
    w.register_post_accumulate_grad_hook(lambda t: None)
    before = (x * 3).tanh()  # reached after w's gradient is complete
    before.register_hook(lambda g: (_ for _ in ()).throw(ValueError("boom")))
    with pytest.raises(ValueError, match="boom"):
        (before * w).sum().backward()
    np.testing.assert_allclose(w.grad.cpu().numpy(), np.tanh(B * 3))  # accumulated when its last edge was walked
    assert x.grad is None


def test_variable_spelling_of_pytorch():
    from chainrule.autograd import Variable

    t = cr.tensor(W2)
    v = Variable(t, requires_grad=True)
    assert v is not t and v.requires_grad and isinstance(t, Variable) and not isinstance(W2, Variable)
    assert v.xp.shares_memory(v._data, t._data)  # asked of the tensors' own array namespace (any device)
    assert Variable(v * 2).grad_fn is None
    order = []
    y = v * 2
    y.register_hook(lambda g: Variable._execution_engine.queue_callback(lambda: order.append(v.grad is not None)))
    y.sum().backward()
    assert order == [True]
