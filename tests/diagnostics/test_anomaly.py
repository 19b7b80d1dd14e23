"""Anomaly provenance: detect_anomaly names the operation, the line of this file that called it, and the
statistics of the values involved, for a NaN made in the forward pass and one made in the backward pass."""

import pytest

import chainrule as cr
from chainrule import nn
from chainrule.autograd import AnomalyError, detect_anomaly

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")  # numpy's "invalid value" warnings


def line_of(marker: str) -> int:
    """The line number in this file of the line holding ``marker`` (written as a trailing comment)."""
    with open(__file__, encoding="utf-8") as f:
        lines = [i for i, text in enumerate(f, start=1) if text.rstrip().endswith("# " + marker)]
    assert len(lines) == 1, marker
    return lines[0]


def test_forward_nan_names_the_operation_the_line_and_the_input_statistics():
    x = cr.tensor([-1.0, 2.0, 4.0], requires_grad=True)
    with pytest.raises(AnomalyError) as info, detect_anomaly():
        y = x * 2
        y.log()  # forward-log
    message = str(info.value)
    assert "operation 'log' produced NaN/Inf in the forward pass" in message
    assert f'test_anomaly.py", line {line_of("forward-log")}' in message and "y.log()" in message
    assert "input 0: shape (3,), float32, min -2, max 8, 0 NaN, 0 Inf" in message
    assert "1 NaN" in message.split("\n")[0]  # the output's statistics


def test_backward_nan_names_the_forward_operation_and_its_line():
    x = cr.tensor([0.0, 4.0], requires_grad=True)
    mask = cr.tensor([0.0, 1.0])
    with detect_anomaly():
        root = x.sqrt()  # backward-sqrt
        loss = (root * mask).sum()  # finite forward: sqrt(0) = 0, times 0
        with pytest.raises(AnomalyError) as info:
            loss.backward()  # d sqrt / dx at 0 is inf; times the incoming 0 gives NaN
    message = str(info.value)
    assert "backward rule SqrtBackward0 returned NaN/Inf for input 0 of the forward operation 'sqrt'" in message
    assert f'test_anomaly.py", line {line_of("backward-sqrt")}' in message and "x.sqrt()" in message
    assert "incoming gradient: shape (2,), float32, min 0, max 1, 0 NaN, 0 Inf" in message
    assert "gradient for input 0: shape (2,), float32" in message and "1 NaN" in message
    assert x.grad is None  # the failed backward changed nothing


class _LogLayer(nn.Module):
    def forward(self, x):
        return (x - 1.0).log()  # inside-module


def test_nan_inside_a_module_points_at_the_module_code_in_user_files():
    layer = nn.Sequential(nn.Linear(2, 2), _LogLayer())
    with cr.no_grad():
        layer[0].weight.fill_(0.0)
        layer[0].bias.fill_(0.5)  # every output 0.5 -> log(0.5 - 1) = NaN
    with pytest.raises(AnomalyError) as info, detect_anomaly():
        layer(cr.ones(3, 2))
    message = str(info.value)
    assert "operation 'log'" in message and f'line {line_of("inside-module")}, in forward' in message


def test_only_the_first_nan_is_reported_not_the_ops_it_flows_into():
    x = cr.tensor([-1.0, 1.0], requires_grad=True)
    with detect_anomaly(check_nan=False):
        bad = x.log()  # recorded, not checked
    with pytest.raises(AnomalyError) as info, detect_anomaly():
        z = bad * 3  # NaN comes in from outside: not this op's fault
        z.exp()
        x.sqrt()  # second-nan
    assert "operation 'sqrt'" in str(info.value) and f'line {line_of("second-nan")}' in str(info.value)


def test_check_forward_false_checks_only_the_backward_pass():
    x = cr.tensor([0.0, 4.0], requires_grad=True)
    with detect_anomaly(check_forward=False):
        y = (x - 1.0).log()  # NaN in the forward pass: not checked
        loss = (x.sqrt() * cr.tensor([0.0, 1.0])).sum() + y[1]
        with pytest.raises(AnomalyError, match="SqrtBackward0"):
            loss.backward()


def test_nan_made_outside_the_graph_is_reported_at_first_use():
    poisoned = cr.tensor([-1.0]).log()  # not recorded: nothing requires grad
    w = cr.ones(1, requires_grad=True)
    with pytest.raises(cr.autograd.AnomalyError, match=r"operation 'mul' received NaN/Inf: input 1 does not require grad"):
        with cr.autograd.detect_anomaly():
            w * poisoned


def test_nan_arriving_with_the_incoming_gradient_is_not_blamed_on_the_rule():
    x = cr.ones(2, requires_grad=True)
    with pytest.raises(cr.autograd.AnomalyError, match=r"gradient flowing into ExpBackward0 .* already holds NaN/Inf"):
        with cr.autograd.detect_anomaly():
            x.exp().backward(cr.tensor([float("nan"), 1.0]))
