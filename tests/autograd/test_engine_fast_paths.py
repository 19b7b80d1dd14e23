"""The engine's fast paths keep their edge cases: gradients summed in place only into buffers the
engine made, version checks skipped only while no tensor changed in place, create_graph still
building graphs, and record()'s node construction matching Node's own."""

import numpy as np
import pytest

import chainrule as cr
from chainrule.autograd.graph import record
from chainrule.tensor import INPLACE_EPOCH


def leaf(*values):
    return cr.tensor(list(values), dtype=cr.float64, requires_grad=True)


# ----- summing gradients ---------------------------------------------------------------------------


def test_a_gradient_an_add_hands_to_both_inputs_is_never_summed_into():
    # s = a + b gives a and b the very same gradient tensor; a and b then get more gradient each
    # (three contributions, so a's sum also takes the in-place path). Adding into the shared array
    # would corrupt the other input's gradient.
    x = leaf(0.5, 1.5)
    a, b = x.exp(), x.sin()
    s = a + b
    out = s + a * 2 + b * 3 + a * 4
    s.retain_grad()
    out.sum().backward()
    xv = np.array([0.5, 1.5])
    np.testing.assert_allclose(x.grad.cpu().numpy(), np.exp(xv) * (1 + 2 + 4) + np.cos(xv) * (1 + 3))
    np.testing.assert_array_equal(s.grad.cpu().numpy(), [1.0, 1.0])


def test_a_custom_function_returning_one_tensor_for_two_inputs_is_not_mutated():
    class AddBoth(cr.autograd.Function):
        @staticmethod
        def forward(ctx, p, q):
            return p + q

        @staticmethod
        def backward(ctx, g):
            return g, g  # one tensor for both inputs

    x = leaf(1.0, 2.0)
    a, b = x * 1.0, x * 10.0
    seen = []
    out = AddBoth.apply(a, b)
    out.register_hook(lambda g: seen.append(g))
    (out + a + a + b).sum().backward()  # a: three contributions, b: two
    np.testing.assert_array_equal(x.grad.cpu().numpy(), [3.0 + 2.0 * 10.0] * 2)
    np.testing.assert_array_equal(seen[0].cpu().numpy(), [1.0, 1.0])  # the hook's tensor was not added into


def test_a_gradient_a_hook_kept_is_not_changed_when_more_gradient_arrives():
    x = leaf(1.0, 2.0)
    a = x * 2.0
    kept = []
    c = a + a
    c.register_hook(lambda g: kept.append(g))
    (c + c * 3.0 + c).sum().backward()  # c: three contributions, summed before its hook runs
    np.testing.assert_array_equal(kept[0].cpu().numpy(), [5.0, 5.0])
    np.testing.assert_array_equal(x.grad.cpu().numpy(), [20.0, 20.0])


def test_the_caller_s_gradient_is_never_summed_into():
    x = leaf(1.0, 2.0)
    y = x * 3.0
    g1, g2 = cr.tensor([1.0, 1.0], dtype=cr.float64), cr.tensor([2.0, 2.0], dtype=cr.float64)
    cr.autograd.backward([y, y, y], [g1, g2, g1])  # one root three times: the root's gradients are summed
    np.testing.assert_array_equal(x.grad.cpu().numpy(), [12.0, 12.0])
    np.testing.assert_array_equal(g1.cpu().numpy(), [1.0, 1.0])
    np.testing.assert_array_equal(g2.cpu().numpy(), [2.0, 2.0])


def test_many_contributions_to_a_0d_tensor_and_to_a_leaf():
    x = cr.tensor(2.0, dtype=cr.float64, requires_grad=True)
    a = x * 3.0
    (a + a + a * a + a * 2.0).backward()  # a: 1 + 1 + 2a + 2 with a = 6
    assert x.grad.item() == pytest.approx(3.0 * (4.0 + 12.0))
    w = leaf(1.0, 2.0)
    (w * 2.0 + w * 3.0 + w * 4.0 + w).sum().backward()  # the leaf's four gradients summed
    np.testing.assert_array_equal(w.grad.cpu().numpy(), [10.0, 10.0])


def test_retain_graph_gives_the_same_gradients_on_the_second_pass():
    x = leaf(0.5, 1.5)
    a = x.tanh()
    y = (a * a + a + a * 3.0).sum()
    y.backward(retain_graph=True)
    first = x.grad.cpu().numpy().copy()
    y.backward()
    np.testing.assert_allclose(x.grad.cpu().numpy(), 2 * first)


def test_create_graph_sums_gradients_into_a_graph():
    x = leaf(0.5, 1.5)
    y = (x * x + x * x * x + x).sum()  # x reaches the sum through several paths
    (gx,) = cr.autograd.grad(y, x, create_graph=True)
    assert gx.requires_grad and gx.grad_fn is not None
    xv = np.array([0.5, 1.5])
    np.testing.assert_allclose(gx.detach().cpu().numpy(), 2 * xv + 3 * xv**2 + 1)
    (ggx,) = cr.autograd.grad(gx.sum(), x)
    np.testing.assert_allclose(ggx.cpu().numpy(), 2 + 6 * xv)


def test_create_graph_backward_gives_a_grad_that_requires_grad():
    x = leaf(1.0, 2.0)
    (x * x + x * x).sum().backward(create_graph=True)
    assert x.grad.requires_grad
    (x.grad.sum()).backward()
    np.testing.assert_array_equal(x.grad.detach().cpu().numpy(), [4.0 + 4.0, 8.0 + 4.0])


# ----- version checks ------------------------------------------------------------------------------


def test_in_place_changes_bump_the_epoch():
    t = cr.zeros(3)
    before = INPLACE_EPOCH[0]
    t.add_(1)
    t.detach().mul_(2)
    assert INPLACE_EPOCH[0] == before + 2


def test_an_unrelated_in_place_change_does_not_trip_the_check():
    x = leaf(1.0, 2.0)
    a = x * 1.0
    b = a * a  # saves a
    other = cr.zeros(2)
    other.add_(1)  # the epoch moves, so the exact check runs, and passes
    b.sum().backward()
    np.testing.assert_array_equal(x.grad.cpu().numpy(), [2.0, 4.0])


def test_a_tensor_changed_before_the_op_saved_it_is_fine_and_after_is_caught():
    x = leaf(1.0, 2.0)
    a = x * 1.0
    with cr.no_grad():
        a.add_(1)  # version 1, before the multiplication saves it
    b = a * a
    b.sum().backward(retain_graph=True)
    np.testing.assert_array_equal(x.grad.cpu().numpy(), [4.0, 6.0])
    with cr.no_grad():
        a.add_(1)
    with pytest.raises(RuntimeError, match="at version 2, but the forward operation 'mul' saved it at version 1"):
        b.sum().backward()


def test_a_saved_output_changed_after_its_node_is_caught():
    x = leaf(1.0, 2.0)
    y = x.tanh()  # keeps its output
    z = y * 2.0
    with cr.no_grad():
        y.mul_(3)
    with pytest.raises(RuntimeError, match="output of 'tanh'.*at version 1, expected version 0"):
        z.sum().backward()


def test_an_in_place_change_made_by_a_hook_during_backward_is_caught():
    x = leaf(1.0, 2.0)
    a = x * 1.0
    b = a * a  # saves a; its rule runs after c's hook
    c = b * 1.0

    def change_a(g):
        with cr.no_grad():
            a.add_(1)

    c.register_hook(change_a)
    with pytest.raises(RuntimeError, match="needed by MulBackward0.*modified by an in-place operation"):
        c.sum().backward()


# ----- record() and Node -----------------------------------------------------------------------------


def test_a_recorded_node_knows_its_output_and_the_versions_it_read():
    x = leaf(1.0, 2.0)
    y = x.tanh()
    z = (x * y).to(cr.float32)
    assert y.grad_fn.out is y._data and y.grad_fn.out_version is y._vc  # tanh keeps its output
    assert (x * y).grad_fn.out is None and (x * y).grad_fn.versions == (0, 0)
    assert z.grad_fn.shape == (2,) and z.grad_fn.dtype == np.float32  # what gradients sent to it are made
    assert y.grad_fn.epoch == INPLACE_EPOCH[0]  # what backward compares to skip the version checks


def test_record_parents_per_input():
    x, w = leaf(1.0), cr.tensor([2.0], dtype=cr.float64)
    h = x * 1.0
    arr = np.ones(1)
    assert record(arr, "t", (x, w), None).grad_fn.parents == (x, None)
    assert record(arr, "t", (w, h), None).grad_fn.parents == (None, h.grad_fn)
    assert record(arr, "t", (w, w, x), None).grad_fn.parents == (None, None, x)
    assert record(arr, "t", (w,), None).grad_fn is None
    assert record(arr, "t", (w, w), None).grad_fn is None
    assert record(arr, "t", (w, w, w), None).grad_fn is None
    with cr.no_grad():
        assert record(arr, "t", (x, h), None).grad_fn is None


def test_a_rule_gets_the_args_it_was_recorded_with_until_backward_frees_it():
    x = leaf(1.0, 2.0)
    seen = []

    def rule(g, out, scale, label):
        seen.append((out, scale, label))
        return (g * scale,)

    y = record(x._data * 3.0, "scaled", (x,), rule, args=(3.0, "three"))
    assert y.grad_fn.args == (3.0, "three")
    y.sum().backward()
    assert seen == [(None, 3.0, "three")]
    assert y.grad_fn.args == () and y.grad_fn.backward_fn is None  # released with the rule
    np.testing.assert_array_equal(x.grad.cpu().numpy(), [3.0, 3.0])


@pytest.mark.parametrize("make", [lambda x, y: x * y, lambda x, y: x * 2.0, lambda x, y: x + y,
                                  lambda x, y: x - y, lambda x, y: x.tanh()], ids=["mul", "mul_number", "add", "sub", "tanh"])
def test_the_most_frequent_ops_record_rules_without_closures(make):
    # A closure is three or four more objects per recorded op for the garbage collector to scan: a tenth
    # of the step in a graph of many small ops (bench/ANALYSIS.md). These ops pass their operands as args.
    x, y = leaf(1.0, 2.0), leaf(3.0, 4.0)
    node = make(x, y).grad_fn
    assert node.backward_fn.__closure__ is None


def test_saved_versions_are_taken_when_the_node_is_made():
    x = leaf(1.0, 2.0)
    a, b, c = x * 1.0, x * 2.0, x * 3.0
    with cr.no_grad():
        a.add_(1)
        c.add_(1)
        c.add_(1)
    arr = np.ones(2)
    assert record(arr, "t", (a, b), None, (a, b)).grad_fn.versions == (1, 0)
    assert record(arr, "t", (a, b, c), None, (a, b, c)).grad_fn.versions == (1, 0, 2)
    assert record(arr, "t", (c,), None, (c,)).grad_fn.versions == (2,)


# ----- gradients of views placed into their base's gradient ----------------------------------------


def test_overlapping_views_and_a_full_gradient_of_one_base_add_up():
    rng = np.random.default_rng(0)
    x0 = rng.standard_normal((4, 5))
    w = [rng.standard_normal(s) for s in ((5,), (4, 2), (5,), (4, 5))]
    x = cr.tensor(x0, requires_grad=True)
    y = x * 2.0
    pieces = [y[0], y[:, 1:3], y[1], y.exp()]  # y[0] and y[1] overlap y[:, 1:3]; exp sends a full gradient
    sum(((p * cr.tensor(wi)).sum() for p, wi in zip(pieces, w)), cr.tensor(0.0)).backward()
    gy = np.zeros((4, 5))
    gy[0] += w[0]
    gy[:, 1:3] += w[1]
    gy[1] += w[2]
    gy += w[3] * np.exp(2 * x0)
    np.testing.assert_allclose(x.grad.cpu().numpy(), 2 * gy, rtol=1e-12)


@pytest.mark.parametrize("view_first", [True, False])
def test_a_broadcast_gradient_from_a_rule_is_copied_before_views_add_into_it(view_first):
    # sum's rule hands back a read-only broadcast of its gradient: the engine must copy it before adding
    # a view's gradient, whichever arrives first
    x = leaf(0.5, 1.5, -1.0)
    y = x.exp()
    total = y[1:].sum() * 3.0 + y.sum() if view_first else y.sum() + y[1:].sum() * 3.0
    total.backward()
    np.testing.assert_allclose(x.grad.cpu().numpy(), np.exp([0.5, 1.5, -1.0]) * [1, 4, 4])


def test_views_of_a_leaf_hooks_and_retained_grads_see_whole_gradients():
    x = cr.tensor(np.arange(6.0).reshape(2, 3), requires_grad=True)
    y = x * 1.0
    y.retain_grad()
    seen = []
    y.register_hook(lambda g: seen.append(g.cpu().numpy().copy()))
    (y[0].sum() + y[:, 2].sum() * 10 + x[1, 1] * 100).backward()
    expected_y = np.array([[1.0, 1, 11], [0, 0, 10]])
    np.testing.assert_array_equal(seen[0], expected_y)
    np.testing.assert_array_equal(y.grad.cpu().numpy(), expected_y)
    np.testing.assert_array_equal(x.grad.cpu().numpy(), expected_y + [[0, 0, 0], [0, 100, 0]])


def test_views_keep_their_graph_when_backward_is_recorded():
    x = cr.tensor([0.3, -0.7, 1.1], requires_grad=True)
    y = x ** 3
    (g,) = cr.autograd.grad(y[0] + y[1:].sum() * 2, x, create_graph=True)
    (gg,) = cr.autograd.grad(g.sum(), x)
    np.testing.assert_allclose(gg.cpu().numpy(), 6 * np.array([0.3, -0.7, 1.1]) * [1, 2, 2], rtol=1e-6)


@pytest.mark.parametrize("create_graph", [False, True])
def test_a_broadcast_gradient_and_one_of_the_input_shape_sum_correctly(create_graph):
    # the engine sums a gradient of the broadcast shape down to its input's shape: a second gradient of the
    # input's own shape must be added once, not broadcast over the first and summed with it
    x = cr.tensor([[1.0], [2.0], [3.0]], requires_grad=True)
    y = x * 1.0  # a node of shape (3, 1)
    for out in ((y * cr.ones(3, 4)).sum() + (y * 2.0).sum(), (y * 2.0).sum() + (y * cr.ones(3, 4)).sum()):
        (g,) = cr.autograd.grad(out, x, create_graph=create_graph, retain_graph=True)
        np.testing.assert_array_equal(g.detach().cpu().numpy(), np.full((3, 1), 6.0, np.float32))


def test_a_placed_gradient_meets_a_broadcast_one():
    x = cr.tensor([1.0, 2.0, 3.0], requires_grad=True)
    h = x * 1.0
    out = (h + cr.ones(4, 3)).sum() + h[0] * 5.0  # (4, 3) from the add, a placed 5 at index 0 from the view
    out.backward()
    np.testing.assert_array_equal(x.grad.cpu().numpy(), [9.0, 4.0, 4.0])
