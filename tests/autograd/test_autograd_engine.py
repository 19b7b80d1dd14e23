"""The backward walk: accumulation, graph shapes, freeing, hooks, autograd.grad and its errors."""

import gc
import weakref

import numpy as np
import pytest

import chainrule as cr


def leaf(*values, dtype=cr.float64):
    return cr.tensor(list(values), dtype=dtype, requires_grad=True)


# ----- what backward computes ----------------------------------------------------------------------


def test_diamond_sums_the_gradients_of_both_paths():
    x = cr.tensor(2.0, requires_grad=True)
    a = x * 3
    d = (a + a * a) * a  # a is used three times; d = a^2 + a^3
    d.backward()
    a_val = 6.0
    assert x.grad.item() == pytest.approx(3 * (2 * a_val + 3 * a_val**2))


def test_a_tensor_used_twice_in_one_op_and_a_shared_subgraph():
    x = leaf(1.0, 2.0)
    (x * x).sum().backward()
    assert x.grad.tolist() == [2.0, 4.0]
    x.grad = None
    shared = x.exp()
    first, second = (shared * 2).sum(), (shared * shared).sum()
    (first + second).backward()
    expected = np.exp([1.0, 2.0]) * 2 + 2 * np.exp([1.0, 2.0]) ** 2
    np.testing.assert_allclose(x.grad.cpu().numpy(), expected)


def test_leaf_grads_accumulate_across_backward_calls():
    x = leaf(1.0, 2.0)
    for _ in range(3):
        (x * x).sum().backward()
    assert x.grad.tolist() == [6.0, 12.0]
    x.grad = None
    (x * 5).sum().backward()
    assert x.grad.tolist() == [5.0, 5.0]


def test_two_outputs_of_one_graph_with_retain_graph():
    x = leaf(1.0, 2.0)
    y = x.exp()
    y.sum().backward(retain_graph=True)
    (y * 2).sum().backward()
    np.testing.assert_allclose(x.grad.cpu().numpy(), 3 * np.exp([1.0, 2.0]))


def test_non_leaf_tensors_get_no_grad_unless_retained():
    x = leaf(1.0, 2.0)
    h, k = x * 2, x * 3
    k.retain_grad()
    (h * k).sum().backward()
    assert h.grad is None and k.grad.tolist() == [2.0, 4.0]


def test_grad_has_the_dtype_and_shape_of_its_leaf():
    x = cr.ones(2, 3, dtype=cr.float16, requires_grad=True)
    (x.float() * cr.ones(3)).sum().backward()
    assert x.grad.dtype is cr.float16 and x.grad.shape == (2, 3)
    b = cr.ones(3, requires_grad=True)
    (cr.ones(4, 3) * b).sum().backward()  # broadcast: summed back to b's shape
    assert b.grad.tolist() == [4.0, 4.0, 4.0]


def test_backward_of_a_leaf_itself():
    x = cr.tensor(2.0, requires_grad=True)
    x.backward()
    x.backward()
    assert x.grad.item() == 2.0


def test_backward_with_an_explicit_gradient():
    x = leaf(1.0, 2.0, 3.0)
    v = cr.tensor([1.0, 0.5, -1.0], dtype=cr.float64)
    (x * x).backward(v)
    assert x.grad.tolist() == [2.0, 2.0, -6.0]
    assert v.tolist() == [1.0, 0.5, -1.0]
    x.grad = None
    (x * 2).backward([1.0, 1.0, 1.0])  # plain data is accepted too
    assert x.grad.tolist() == [2.0, 2.0, 2.0]


def test_backward_inputs_restricts_which_tensors_get_grad():
    x, w = leaf(1.0, 2.0), leaf(3.0, 4.0)
    h = x * w
    (h * h).sum().backward(inputs=[x, h])
    assert x.grad.tolist() == [2 * 3.0 * 3.0 * 1.0, 2 * 4.0 * 4.0 * 2.0]
    assert h.grad.tolist() == [6.0, 16.0] and w.grad is None


# ----- long graphs ---------------------------------------------------------------------------------


def test_a_chain_of_100000_operations_backwards_and_frees_without_recursion():
    x = cr.tensor([1.0], requires_grad=True)
    y = x
    for _ in range(100_001):
        y = -y
    y.sum().backward()
    assert x.grad.tolist() == [-1.0]
    del y
    gc.collect()


def test_a_long_graph_never_run_is_freed_without_recursion():
    w = cr.tensor([1.0], requires_grad=True)
    y = w
    for _ in range(100_000):
        y = y.sin()  # each node's rule holds its input tensor, which holds the node before
    del y
    gc.collect()
    (gx,) = cr.autograd.grad((w * 2).sum(), w)
    assert gx.item() == 2.0


def test_autograd_grad_on_a_long_chain():
    x = cr.tensor([0.5], requires_grad=True)
    y = x
    for _ in range(30_000):
        y = y + 0.0
    (g,) = cr.autograd.grad(y.sum(), x)
    assert g.tolist() == [1.0]


# ----- freeing the graph ---------------------------------------------------------------------------


def test_saved_arrays_are_released_after_backward():
    x = leaf(1.0, 2.0)
    y = (x * 2).exp()  # exp keeps its output; mul(y, y) saves y
    z = (y * y).sum()
    exp_out = weakref.ref(y.grad_fn.out)
    del y
    z.backward()
    gc.collect()
    assert exp_out() is None


def _square_of_a_reshaped_copy(branch, x):
    copy = branch.transpose(0, 1).reshape(-1)  # numpy has to copy; mul(copy, copy) then saves the copy
    return copy * copy


@pytest.mark.parametrize("combine, slope", [
    (lambda branch, x: branch + x, lambda x: 3.0),  # a residual connection
    (lambda branch, x: x - branch, lambda x: -1.0),
    (lambda branch, x: cr.where(x > 0, branch, x), lambda x: 2.0),
    (lambda branch, x: branch[None] + x, lambda x: 3.0),  # broadcast: the engine sums the gradient back
], ids=["add", "sub", "where", "broadcast_add"])
@pytest.mark.parametrize("rows", [2, 96])
def test_the_graph_does_not_keep_inputs_whose_values_backward_never_reads(combine, slope, rows):
    # PyTorch frees such intermediates as soon as the user drops them; holding them until backward
    # would keep a transformer's branch outputs alive for the whole step. The rules of add, sub and
    # where read no input, and undoing broadcasting needs only the shape, which the graph knows.
    x = cr.tensor(np.linspace(0.5, 2.0, rows * 64).reshape(rows, 64), requires_grad=True)
    branch = x * 2.0  # mul by a number saves nothing of its input or output
    freed = weakref.ref(branch._data)
    out = combine(branch, x)
    del branch
    gc.collect()
    assert freed() is None
    out.sum().backward()
    np.testing.assert_array_equal(x.grad.cpu().numpy(), np.broadcast_to(slope(x.detach().cpu().numpy()), x.shape))


def test_a_copy_the_rule_reads_is_kept_until_backward():
    x = cr.tensor(np.linspace(0.5, 2.0, 128).reshape(2, 64), requires_grad=True)
    copy = (x * 2.0).transpose(0, 1).reshape(-1)  # numpy has to copy; mul(copy, copy) then saves the copy
    kept = weakref.ref(copy._data)
    out = copy * copy
    del copy
    gc.collect()
    assert kept() is not None
    out.sum().backward()
    np.testing.assert_allclose(x.grad.cpu().numpy(), 8.0 * x.detach().cpu().numpy())


def test_retain_graph_keeps_saved_arrays():
    x = leaf(1.0, 2.0)
    y = (x * 2).exp()
    z = (y * y).sum()
    exp_out = weakref.ref(y.grad_fn.out)
    del y
    z.backward(retain_graph=True)
    gc.collect()
    assert exp_out() is not None
    z.backward()
    np.testing.assert_allclose(x.grad.cpu().numpy(), 2 * 4 * np.exp(4 * np.array([1.0, 2.0])))


def test_a_second_backward_through_a_freed_graph_says_to_retain_it():
    x = leaf(1.0, 2.0)
    z = x.exp().sum()
    z.backward()
    with pytest.raises(RuntimeError, match=r"backward through the graph a second time.*retain_graph=True"):
        z.backward()
    (g,) = cr.autograd.grad((x.sin()).sum(), x)  # a new graph is fine
    np.testing.assert_allclose(g.cpu().numpy(), np.cos([1.0, 2.0]))


# ----- errors --------------------------------------------------------------------------------------


def test_backward_errors_name_the_problem():
    x = leaf(1.0, 2.0)
    with pytest.raises(RuntimeError, match=r"grad can be implicitly created only for scalar outputs.*shape \(2,\).*sum\(\)"):
        (x * 2).backward()
    with pytest.raises(RuntimeError, match="does not require grad and does not have a grad_fn"):
        cr.ones(2).sum().backward()
    with cr.no_grad():
        y = (x * 2).sum()
    with pytest.raises(RuntimeError, match="computed under no_grad"):
        y.backward()
    with pytest.raises(RuntimeError, match=r"gradient has shape \(3,\) but the output it belongs to has shape \(2,\)"):
        (x * 2).backward(cr.ones(3, dtype=cr.float64))
    with pytest.raises(RuntimeError, match="got 2 outputs but 1 gradients"):
        cr.autograd.backward([(x * 2).sum(), x.sum()], [cr.tensor(1.0, dtype=cr.float64)])


def test_a_failed_backward_changes_no_grad():
    x = leaf(1.0, 2.0)
    a = x * 1
    y = (a * a).sum() + x.sum()
    with cr.no_grad():
        a.add_(1)  # invalidates the mul that saved a
    with pytest.raises(RuntimeError, match="modified by an in-place operation"):
        y.backward()
    assert x.grad is None


# ----- autograd.grad -------------------------------------------------------------------------------


def test_grad_returns_gradients_without_touching_dot_grad():
    x, w = leaf(1.0, 2.0), leaf(3.0, 4.0)
    gx, gw = cr.autograd.grad((x * w).sum(), [x, w])
    assert gx.tolist() == [3.0, 4.0] and gw.tolist() == [1.0, 2.0]
    assert x.grad is None and w.grad is None
    (gx_only,) = cr.autograd.grad((x * w).sum(), x)
    assert gx_only.tolist() == [3.0, 4.0] and w.grad is None


def test_grad_with_respect_to_an_intermediate_and_with_grad_outputs():
    x = leaf(1.0, 2.0)
    h = x * 2
    (gh,) = cr.autograd.grad((h * h).sum(), h)
    assert gh.tolist() == [4.0, 8.0]
    y = x.sin()
    (g,) = cr.autograd.grad(y, x, grad_outputs=cr.tensor([2.0, -1.0], dtype=cr.float64))
    np.testing.assert_allclose(g.cpu().numpy(), [2 * np.cos(1.0), -np.cos(2.0)])
    a, b = x.sin(), x.cos()
    (g,) = cr.autograd.grad([a.sum(), b.sum()], x)
    np.testing.assert_allclose(g.cpu().numpy(), np.cos([1.0, 2.0]) - np.sin([1.0, 2.0]))
    (g,) = cr.autograd.grad([(h * 3).sum(), h.sum()], x)  # one output is an ancestor of the other
    assert g.tolist() == [8.0, 8.0]


def test_grad_unused_inputs():
    x, unused = leaf(1.0), leaf(2.0)
    with pytest.raises(RuntimeError, match=r"input 1 \(shape \(1,\)\) was not used.*allow_unused=True"):
        cr.autograd.grad((x * 2).sum(), [x, unused])
    gx, gu = cr.autograd.grad((x * 2).sum(), [x, unused], allow_unused=True)
    assert gx.tolist() == [2.0] and gu is None
    _, gz = cr.autograd.grad((x * 2).sum(), [x, unused], materialize_grads=True)
    assert gz.tolist() == [0.0]
    with pytest.raises(RuntimeError, match="input 0 .* does not require grad"):
        cr.autograd.grad((x * 2).sum(), cr.ones(1))


def test_rules_that_send_no_gradient_do_not_stall_the_walk():
    class FirstOnly(cr.autograd.Function):
        @staticmethod
        def forward(ctx, a, b):
            return a * b

        @staticmethod
        def backward(ctx, g):
            return g, None  # no gradient for b, although it requires grad

    x, a = leaf(1.0, 2.0), leaf(1.0, 1.0)
    b = x * 2
    (FirstOnly.apply(a, b) + b).sum().backward()
    assert a.grad.tolist() == [1.0, 1.0] and x.grad.tolist() == [2.0, 2.0]


# ----- hooks ---------------------------------------------------------------------------------------


def test_hooks_see_and_may_replace_gradients():
    x = leaf(1.0, 2.0)
    seen = []
    x.register_hook(lambda g: seen.append(g.tolist()))
    h = x * 2
    h.register_hook(lambda g: g * 10)
    (h * 1).sum().backward()
    assert seen == [[20.0, 20.0]] and x.grad.tolist() == [20.0, 20.0]


def test_leaf_hooks_run_once_on_the_summed_gradient():
    x = leaf(1.0, 2.0)
    calls = []
    x.register_hook(lambda g: calls.append(g.tolist()))
    (x * 2 + x * 3).sum().backward()
    assert calls == [[5.0, 5.0]]


def test_hooks_fire_under_autograd_grad_and_can_be_removed():
    x = leaf(1.0, 2.0)
    seen = []
    handle = x.register_hook(lambda g: seen.append(g.tolist()) or g * 2)
    (g,) = cr.autograd.grad((x * 3).sum(), x)
    assert seen == [[3.0, 3.0]] and g.tolist() == [6.0, 6.0]
    handle.remove()
    (g,) = cr.autograd.grad((x * 3).sum(), x)
    assert g.tolist() == [3.0, 3.0] and len(seen) == 1
    h = x * 2
    h.register_hook(lambda g: g * 0)
    (g,) = cr.autograd.grad((h * h).sum(), x)
    assert g.tolist() == [0.0, 0.0]


def test_hooks_of_leaves_nobody_asked_for_do_not_fire():
    x, w = leaf(1.0), leaf(2.0)
    fired = []
    w.register_hook(lambda g: fired.append(g))
    cr.autograd.grad((x * w).sum(), x)
    assert fired == []


def test_a_gradient_a_hook_kept_is_not_changed_by_later_accumulation():
    x = leaf(1.0, 2.0)
    kept = []
    x.register_hook(kept.append)
    (x * 3).sum().backward()
    (x * 3).sum().backward()
    assert [k.tolist() for k in kept] == [[3.0, 3.0], [3.0, 3.0]] and x.grad.tolist() == [6.0, 6.0]


def test_hook_errors():
    with pytest.raises(RuntimeError, match="doesn't require grad"):
        cr.ones(2).register_hook(lambda g: g)
    x = leaf(1.0, 2.0)
    x.register_hook(lambda g: cr.ones(3, dtype=cr.float64))
    with pytest.raises(RuntimeError, match=r"hook returned a gradient of shape \(3,\), expected \(2,\)"):
        (x * 2).sum().backward()
