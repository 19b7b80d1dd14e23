"""detect_anomaly(): the first NaN/Inf is reported with its operation and the user's line that made it."""

import inspect
import warnings

import numpy as np
import pytest

import chainrule as cr


@pytest.fixture(autouse=True)
def _quiet_numpy():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # numpy's divide-by-zero warnings
        yield


def test_nan_in_backward_names_the_rule_the_forward_op_and_its_line():
    x = cr.tensor([0.0, 1.0], requires_grad=True)
    with cr.autograd.detect_anomaly():
        here = inspect.currentframe().f_lineno
        y = x.sqrt()  # d sqrt / dx at 0 is inf
        with pytest.raises(cr.autograd.AnomalyError) as info:
            y.sum().backward()
    message = str(info.value)
    assert "backward rule SqrtBackward0 returned NaN/Inf for input 0 of the forward operation 'sqrt'" in message
    assert f'File "{__file__}", line {here + 1}, in test_nan_in_backward_names_the_rule_the_forward_op_and_its_line' in message
    assert "y = x.sqrt()" in message
    assert "1 Inf" in message
    assert x.grad is None
    assert isinstance(info.value, RuntimeError)


def test_nan_in_forward_names_the_op_and_its_line():
    x = cr.tensor([-1.0, 1.0], requires_grad=True)
    with cr.autograd.detect_anomaly():
        here = inspect.currentframe().f_lineno
        with pytest.raises(cr.autograd.AnomalyError) as info:
            x.log()
    message = str(info.value)
    assert "operation 'log' produced NaN/Inf in the forward pass" in message
    assert f"line {here + 2}" in message and "x.log()" in message
    assert "1 NaN" in message


def test_backward_only_mode_and_the_culprit_is_the_first_bad_rule():
    x = cr.tensor([0.0, 2.0], requires_grad=True)
    with cr.autograd.detect_anomaly(check_forward=False):
        y = (x * 0).log() * 0  # forward makes -inf (not checked); backward of log gives inf * 0 = nan
        expected = "LogBackward0 returned NaN/Inf for input 0 of the forward operation 'log'"
        with pytest.raises(cr.autograd.AnomalyError, match=expected):
            y.sum().backward()


def test_without_anomaly_mode_nothing_is_raised_and_state_is_restored():
    x = cr.tensor([0.0, 1.0], requires_grad=True)
    x.sqrt().sum().backward()
    assert x.grad[0].item() == float("inf")
    assert not cr.autograd.is_anomaly_enabled()
    with pytest.raises(cr.autograd.AnomalyError):
        with cr.autograd.detect_anomaly():
            assert cr.autograd.is_anomaly_enabled()
            x.log().log()
    assert not cr.autograd.is_anomaly_enabled()


def test_detect_anomaly_as_a_decorator():
    @cr.autograd.detect_anomaly()
    def step(t):
        return (t / 0).sum()

    with pytest.raises(cr.autograd.AnomalyError, match="operation 'div' produced NaN/Inf"):
        step(cr.ones(2, requires_grad=True))
    assert not cr.autograd.is_anomaly_enabled()


def test_finite_computations_pass_under_anomaly_mode():
    x = cr.tensor([0.5, 1.0], requires_grad=True)
    with cr.autograd.detect_anomaly():
        (x.sqrt() * x.log()).sum().backward()
    v = np.array([0.5, 1.0])
    np.testing.assert_allclose(x.grad.cpu().numpy(), np.log(v) / (2 * np.sqrt(v)) + 1 / np.sqrt(v), rtol=1e-6)
