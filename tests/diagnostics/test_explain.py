"""explain_grad: one test per reason a tensor gets no (or a zero) gradient, and the healthy case."""

import numpy as np
import pytest

import chainrule as cr
from chainrule import nn
from chainrule.autograd import detect_anomaly
from chainrule.diagnostics import REASONS, explain_grad


@pytest.fixture
def w():
    return cr.tensor([1.0, -2.0, 3.0], requires_grad=True)


@pytest.fixture
def v():
    return cr.tensor([0.5, 0.5, 2.0], requires_grad=True)


def test_leaf_with_a_nonzero_gradient_is_ok(w, v):
    loss = (w * v).sum()
    explanation = explain_grad(loss, w)
    assert explanation.reason == "ok" and explanation.ok
    assert explanation.grad_norm == pytest.approx(np.linalg.norm([0.5, 0.5, 2.0]), rel=1e-6)
    assert "nonzero gradient" in str(explanation)
    assert w.grad is None  # explaining does not touch .grad
    loss.backward()  # and the graph is still usable
    assert w.grad.tolist() == [0.5, 0.5, 2.0]


def test_non_leaf_without_retain_grad(w):
    h = w * 2
    loss = (h * h).sum()
    explanation = explain_grad(loss, h, name="h")
    assert explanation.reason == "not_leaf" and explanation.op == "mul"
    assert "retain_grad()" in explanation.message and explanation.message.startswith("h ")
    h.retain_grad()
    assert explain_grad(loss, h).reason == "ok"


def test_tensor_created_under_no_grad(w, v):
    with cr.no_grad():
        h = w * 2
    loss = (h * v).sum()
    explanation = explain_grad(loss, h)
    assert explanation.reason == "requires_grad_false"
    assert "no_grad()" in explanation.message and "'mul'" in explanation.message
    # and the leaf it came from is not connected any more
    assert explain_grad(loss, w).reason == "not_connected"


def test_frozen_parameter():
    layer = nn.Linear(3, 2)
    layer.weight.requires_grad_(False)
    loss = layer(cr.randn(4, 3)).sum()
    explanation = explain_grad(loss, layer.weight, name="weight")
    assert explanation.reason == "requires_grad_false" and explanation.details["frozen_parameter"]
    assert "requires_grad_(True)" in explanation.message


@pytest.mark.parametrize("use", [
    lambda w, v: (w.detach() * v).sum(),                        # the copy is saved by mul
    lambda w, v: (w.detach() + v).sum(),                        # add saves nothing: found in its closure
    lambda w, v: (w.detach().reshape(3, 1) * v).sum(),          # a view of the detached copy
    lambda w, v: (w.data * v).sum(),                            # .data is a detached copy too
])
def test_cut_by_detach_names_the_consuming_operation(w, v, use):
    explanation = explain_grad(use(w, v), w)
    assert explanation.reason == "detached"
    assert explanation.op in ("mul", "add")
    assert f"operation '{explanation.op}'" in explanation.message and "detach()" in explanation.message


def test_detach_inside_a_model_names_the_operation_and_line_under_anomaly_mode(w, v):
    with detect_anomaly():
        loss = (w.detach() * v).sum()  # the line named
    explanation = explain_grad(loss, w)
    assert explanation.reason == "detached"
    assert "test_explain.py" in explanation.message and "the line named" in explanation.message


def test_integer_tensor():
    idx = cr.tensor([0, 2])
    table = cr.randn(3, 2, requires_grad=True)
    loss = table[idx].sum()
    explanation = explain_grad(loss, idx)
    assert explanation.reason == "integer_dtype" and "int64" in explanation.message


def test_not_connected(w, v):
    unused = cr.randn(3, requires_grad=True)
    explanation = explain_grad((w * v).sum(), unused)
    assert explanation.reason == "not_connected"
    assert "None (not zero)" in explanation.message


def test_connected_only_through_operations_without_gradient(w, v):
    masked = ((w > 0).float() * v).sum()  # the mask passes through .float() before it meets the graph
    explanation = explain_grad(masked, w)
    assert explanation.reason == "non_differentiable" and explanation.op == "gt"
    assert "only through 'gt', an operation without a gradient" in explanation.message
    picked = v[w.argmax()]  # argmax picks an index: v gets a gradient, w none
    assert (explain_grad(picked, w).reason, explain_grad(picked, w).op) == ("non_differentiable", "argmax")
    hidden = w * 2  # through an intermediate tensor computed from w
    assert explain_grad((v * (hidden > 0)).sum(), w).op == "gt"
    assert explain_grad((v * w.long()).sum(), w).op == "to"
    _, order = w.sort()
    assert explain_grad(v[order].sum(), w).op == "sort (indices)"


def test_a_mask_made_under_no_grad_is_not_blamed_on_its_operation(w, v):
    with cr.no_grad():
        mask = w > 0
    assert explain_grad((v * mask).sum(), w).reason == "not_connected"


def test_origin_trails_of_a_tensor_updated_step_after_step_stay_short(w):
    from chainrule.autograd.provenance import _MAX_DEPTH, origin_of

    running = cr.zeros(())
    for _ in range(3 * _MAX_DEPTH):  # a running accuracy fed by comparisons, outside no_grad()
        running = running * 0.9 + (w > 0).float().mean() * 0.1
    assert origin_of(running) is None or origin_of(running).depth <= _MAX_DEPTH


def test_origin_notes_die_with_their_tensors(w, v):
    import gc

    from chainrule.autograd.provenance import ORIGINS

    gc.collect()
    before = len(ORIGINS)
    mask = (w > 0).float()
    loss = (mask * v).sum()
    assert len(ORIGINS) > before
    del mask, loss
    gc.collect()
    assert len(ORIGINS) == before


@pytest.mark.parametrize("op", ["sign", "floor", "ceil", "round"])
def test_piecewise_constant_operation_gives_zero_gradient(w, v, op):
    loss = (getattr(w, op)() * v).sum()
    explanation = explain_grad(loss, w)
    assert explanation.reason == "zero_gradient" and explanation.op == op
    assert "piecewise constant" in explanation.message and explanation.grad_norm == 0.0


def test_relu_in_its_dead_region(w, v):
    loss = (cr.relu(w - 10.0) * v).sum()
    explanation = explain_grad(loss, w)
    assert explanation.reason == "zero_gradient" and explanation.op == "relu"
    assert "dead region" in explanation.message and "100%" in explanation.message
    # partly alive: the gradient is not zero
    assert explain_grad((cr.relu(w) * v).sum(), w).reason == "ok"


def test_multiplied_by_zero_names_the_operation(w):
    loss = (w * 0.0).sum() + (w.detach() ** 2).sum()
    explanation = explain_grad(loss, w)
    assert explanation.reason == "zero_gradient" and explanation.op == "mul"
    assert "multiplied" in explanation.message


def test_paths_that_cancel(w):
    explanation = explain_grad((w - w).sum(), w)
    assert explanation.reason == "zero_gradient" and "cancel" in explanation.message


def test_output_computed_under_no_grad(w):
    with cr.no_grad():
        loss = (w * 2).sum()
    assert explain_grad(loss, w).reason == "output_not_tracked"


def test_graph_freed_by_backward(w, v):
    h = w * v
    loss = (h * 2).sum()
    loss.backward()
    assert explain_grad(loss, h).reason == "graph_freed"
    after = explain_grad(loss, w)  # a leaf still has its .grad to look at
    assert after.reason == "ok" and "already freed" in after.message


def test_backward_that_would_fail_is_reported_with_its_error(w):
    h = w * 1
    loss = (h * h).sum()
    with cr.no_grad():
        h.add_(1.0)  # modifies a tensor the mul saved for backward
    explanation = explain_grad(loss, w)
    assert explanation.reason == "backward_error" and "in-place" in explanation.message


def test_every_reason_is_documented_and_bad_arguments_raise(w):
    assert set(REASONS) == {"ok", "not_leaf", "integer_dtype", "requires_grad_false", "output_not_tracked", "detached",
                            "not_connected", "non_differentiable", "zero_gradient", "graph_freed",
                            "backward_error"}
    with pytest.raises(TypeError, match="explain_grad: tensor must be a Tensor"):
        explain_grad(w.sum(), [1.0])
