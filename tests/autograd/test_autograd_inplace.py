"""In-place safety: version counters, stale saved values, leaves, views, and in-place ops in a graph."""

import numpy as np
import pytest

import chainrule as cr


def f64(*shape, seed=0):
    return cr.tensor(np.random.default_rng(seed).uniform(0.5, 1.5, shape), requires_grad=True)


def test_version_counters_count_in_place_changes_and_are_shared_with_views():
    t = cr.zeros(4)
    assert t._version == 0
    t.add_(1)
    t[0] = 5.0
    t *= 2
    assert t._version == 3
    view, detached = t[1:], t.detach()
    view.mul_(2)
    assert t._version == view._version == detached._version == 4
    assert t.tolist() == [10.0, 4.0, 4.0, 4.0]
    (t + 1).tolist()
    assert t._version == 4  # out-of-place ops do not count


def test_reshape_that_has_to_copy_gives_a_new_tensor_not_a_view():
    # as PyTorch: a transposed input cannot be reshaped in place, so the result is a copy with its own
    # version counter; changing it in place neither touches the input nor trips the input's saved value
    x = f64(2, 3)
    e = x.exp()  # exp keeps its output for the backward
    copy = e.t().reshape(6)
    assert copy._base is None and e._version == 0
    copy.add_(1.0)
    assert e._version == 0
    np.testing.assert_allclose(e.detach().cpu().numpy(), np.exp(x.detach().cpu().numpy()))
    (e.sum() + copy.sum()).backward()
    np.testing.assert_allclose(x.grad.cpu().numpy(), 2 * np.exp(x.detach().cpu().numpy()))
    view = e.reshape(3, 2)  # contiguous input: a view, as before
    assert view._base is e


def test_a_saved_input_modified_in_place_is_caught_with_op_and_versions():
    x = cr.tensor([1.0, 2.0], requires_grad=True)
    a = x * 1
    b = a * a
    a += 1
    with pytest.raises(RuntimeError) as info:
        b.sum().backward()
    message = str(info.value)
    assert "needed by MulBackward0" in message and "forward operation 'mul'" in message
    assert "at version 1, but the forward operation 'mul' saved it at version 0" in message


def test_a_saved_output_modified_in_place_is_caught():
    x = cr.tensor([1.0, 2.0], requires_grad=True)
    y = x.exp()
    y[0] = 0.0
    with pytest.raises(RuntimeError, match="output of 'exp' .*needed by ExpBackward0.* at version 1, expected version 0"):
        y.sum().backward()


def test_modifying_a_detached_alias_is_caught_too():
    x = cr.tensor([1.0, 2.0], requires_grad=True)
    y = x.sin()
    with cr.no_grad():
        x.detach().add_(1)
    with pytest.raises(RuntimeError, match="SinBackward0.*modified by an in-place operation"):
        y.sum().backward()


def test_in_place_changes_nothing_needed_is_fine():
    x = cr.tensor([1.0, 2.0], requires_grad=True)
    a = x * 2
    b = a + 1  # add saves nothing
    a += 5
    b.sum().backward()
    assert x.grad.tolist() == [2.0, 2.0]


def test_in_place_on_a_leaf_that_requires_grad():
    w = cr.tensor([1.0, 2.0], requires_grad=True)
    for update in (lambda: w.add_(1), lambda: w.__imul__(2), lambda: w.__setitem__(0, 3.0), lambda: w.zero_()):
        with pytest.raises(RuntimeError, match="a leaf tensor that requires grad .* in-place operation.*no_grad"):
            update()
    assert w.tolist() == [1.0, 2.0] and w._version == 0
    with cr.no_grad():
        w -= 0.5 * cr.ones(2)
        w[1] = 7.0
    assert w.tolist() == [0.5, 7.0] and w.is_leaf and w.requires_grad


@pytest.mark.parametrize("update", [
    lambda y, b: y.__iadd__(b), lambda y, b: y.__imul__(b), lambda y, b: y.__isub__(b * 2),
    lambda y, b: y.__itruediv__(b), lambda y, b: y.add_(b, alpha=3), lambda y, b: y.pow_(2),
    lambda y, b: y.__setitem__(slice(1, 3), b[:2] * 2), lambda y, b: y.__setitem__(0, b[3]),
    lambda y, b: y.__setitem__(y.detach() > 1, 0.5), lambda y, b: y.copy_(b.exp()), lambda y, b: y.clamp_(0.8, 1.2),
])
def test_in_place_ops_on_non_leaf_tensors_give_correct_gradients(update):
    a, b = f64(4), f64(4, seed=1)

    def fn(a, b):
        y = a * 1.5
        update(y, b)
        return y * a

    assert cr.autograd.gradcheck(fn, (a, b))


def test_in_place_makes_the_tensor_part_of_the_graph():
    buffer = cr.zeros(3)
    w = cr.tensor([1.0, 2.0, 3.0], requires_grad=True)
    buffer += w * 2
    assert buffer.requires_grad and buffer.grad_fn.name() == "AddBackward0"
    buffer.sum().backward()
    assert w.grad.tolist() == [2.0, 2.0, 2.0]
    target = cr.zeros(3)
    target[1] = w[0] * 5
    target.sum().backward()
    assert w.grad.tolist() == [7.0, 2.0, 2.0]


def _view_edits(lib, x, w):
    """In-place changes through views of non-leaf tensors, as PyTorch code writes them."""
    y = x * 2
    y[1] += w                   # getitem view, then setitem back
    y[:, 0].mul_(w[:3])         # column view
    y.t()[2] -= w[1] * w[:3]    # transposed view
    y.view(-1)[::5].zero_()     # strided view of a reshape
    y[2, 3] *= w[0]             # one element (a 0-d view)
    buffer = lib.zeros(2, 4, dtype=x.dtype)
    buffer[0] += w              # a buffer that needs no grad becomes part of the graph
    buffer[1, 1:3] = w[:2] ** 2
    z = (x[:2] * 1).permute(1, 0)  # a base laid out column-major
    z[0] *= 3
    return (y * y).sum() + (buffer * x[:2]).sum() + (z ** 3).sum()


def test_in_place_through_views_gives_pytorch_gradients():
    torch = pytest.importorskip("torch")
    x0 = np.random.default_rng(1).standard_normal((3, 4))
    w0 = np.random.default_rng(2).standard_normal(4)
    x, w = cr.tensor(x0, requires_grad=True), cr.tensor(w0, requires_grad=True)
    tx, tw = torch.tensor(x0, requires_grad=True), torch.tensor(w0, requires_grad=True)
    loss, tloss = _view_edits(cr, x, w), _view_edits(torch, tx, tw)
    loss.backward()
    tloss.backward()
    np.testing.assert_allclose(loss.item(), tloss.item(), rtol=1e-12)
    np.testing.assert_allclose(x.grad.cpu().numpy(), tx.grad.cpu().numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(w.grad.cpu().numpy(), tw.grad.cpu().numpy(), rtol=1e-12, atol=1e-12)


def test_in_place_through_views_passes_gradcheck():
    from chainrule.autograd import gradcheck, gradgradcheck

    def f(x, w):
        return _view_edits(cr, x, w)

    args = (f64(3, 4), f64(4, seed=1))
    assert gradcheck(f, args) and gradgradcheck(f, args)


def test_the_view_and_its_base_stay_one_memory_after_the_rebase():
    w = cr.tensor([1.0, 2.0], requires_grad=True)
    y = w * 1
    head = y[:1]
    head += 5
    assert y.tolist() == [6.0, 2.0] and head.tolist() == [6.0]
    head *= w[1]  # the rebased view can be changed again
    assert y.tolist() == [12.0, 2.0]
    (y.sum() + head.sum()).backward()
    # y0 = (w0 + 5) * w1, counted twice (y and head); y1 = w1
    assert w.grad.tolist() == [4.0, 2 * 6.0 + 1.0]


def test_an_element_picked_by_integers_is_a_view_of_its_tensor():
    z = cr.zeros(2, 3)
    element = z[1, 2]
    element += 5  # numpy would hand out a copy for z[1, 2]; PyTorch a view
    assert z.tolist() == [[0.0, 0.0, 0.0], [0.0, 0.0, 5.0]] and element.item() == 5.0


def test_in_place_on_a_view_of_a_leaf_that_requires_grad_is_refused():
    w = cr.tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(RuntimeError, match=r"a view .* of a leaf tensor that requires grad"):
        w[0] += 1
    assert w.tolist() == [1.0, 2.0] and w.grad_fn is None


def test_in_place_dtype_errors_name_the_op_and_dtypes():
    i = cr.tensor([1, 2])
    expected = "mul_: result type chainrule.float32 can't be cast to the desired output type chainrule.int64"
    with pytest.raises(RuntimeError, match=expected):
        i *= 0.5
    with pytest.raises(RuntimeError, match="setitem: can't assign .*float32.* into a tensor of .*int64"):
        i[0] = cr.tensor(1.5)
    assert i.tolist() == [1, 2]


def test_view_of_a_base_changed_in_place_follows_the_new_value():
    x = cr.ones(3, requires_grad=True)
    w = cr.ones(3, requires_grad=True)
    a = x * 1
    v = a[:2]
    a += w  # v's data changed with a's: its graph is regenerated from a's new value (PyTorch does the same)
    v.sum().backward()
    assert x.grad.tolist() == [1.0, 1.0, 0.0] and w.grad.tolist() == [1.0, 1.0, 0.0]


def test_views_of_a_base_whose_memory_has_gaps_are_refused_or_stale():
    x = cr.tensor([1.0, 2.0, 3.0, 4.0], requires_grad=True)
    w = cr.ones(2, requires_grad=True)
    base = x * 1
    base._data = np.repeat(base._data, 2)[::2]  # same values, every other element of a larger block
    view = base[1:3]
    with pytest.raises(RuntimeError, match=r"needs a base laid out as one dense block"):
        view += w
    assert base.tolist() == [1.0, 2.0, 3.0, 4.0]
    head = base[:2]
    base += 1  # head can't be regenerated from the new value: using it later refuses backward
    with pytest.raises(RuntimeError, match=r"a view \(getitem\) was used after an in-place change"):
        head.sum().backward()


def test_view_used_before_its_base_changed_keeps_its_gradient():
    x = cr.ones(3, requires_grad=True)
    w = cr.ones(3, requires_grad=True)
    a = x * 2
    head = a[:2] * 3  # uses the view before the change
    a += w
    (head.sum() + a.sum()).backward()
    assert x.grad.tolist() == [8.0, 8.0, 2.0] and w.grad.tolist() == [1.0, 1.0, 1.0]


def test_in_place_on_an_expanded_tensor_is_refused_as_in_pytorch():
    """Elements sharing one memory location can't be written in place on any device (numpy's broadcast
    arrays are read-only, CuPy's are not): PyTorch's error, before any write."""
    import torch

    for lib in (torch, cr):
        x, other = lib.ones(2), lib.ones(3, 2)
        for name, args in (("add_", (1,)), ("clamp_", (0, 1)), ("mul_", (other,)), ("copy_", (other,))):
            with pytest.raises(RuntimeError, match="more than one element of the written-to tensor"):
                getattr(x.expand(3, 2), name)(*args)
        assert x.tolist() == [1.0, 1.0]
        x.unsqueeze(0).expand(1, 2).add_(1)  # no element repeated: written through to x
        assert x.tolist() == [2.0, 2.0]
