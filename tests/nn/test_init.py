"""chainrule.nn.init: each initialiser's distribution, in place, seeded, and PyTorch's formulas."""

import math

import numpy as np
import pytest

import chainrule as cr
from chainrule import nn
from chainrule.nn import init


def big(*shape):
    return cr.empty(*shape, dtype=cr.float64)


def test_uniform_and_normal_statistics():
    u = init.uniform_(big(400, 500), -2.0, 3.0).cpu().numpy()
    assert u.min() >= -2.0 and u.max() <= 3.0 and abs(u.mean() - 0.5) < 0.02
    n = init.normal_(big(400, 500), 1.0, 0.5).cpu().numpy()
    assert abs(n.mean() - 1.0) < 0.005 and abs(n.std() - 0.5) < 0.005


def test_constants_and_eye():
    assert np.all(init.zeros_(big(3, 2)).cpu().numpy() == 0) and np.all(init.ones_(big(3, 2)).cpu().numpy() == 1)
    assert np.all(init.constant_(big(2, 2), 0.25).cpu().numpy() == 0.25)
    assert np.array_equal(init.eye_(big(2, 3)).cpu().numpy(), np.eye(2, 3))


@pytest.mark.parametrize("fn, gain", [(init.xavier_uniform_, 1.0), (init.xavier_normal_, 2.0)])
def test_xavier_std_follows_fan_in_plus_fan_out(fn, gain):
    w = fn(big(300, 200, 3, 3), gain=gain).cpu().numpy()
    fan_in, fan_out = 200 * 9, 300 * 9
    assert abs(w.std() / (gain * math.sqrt(2.0 / (fan_in + fan_out))) - 1) < 0.01


@pytest.mark.parametrize("fn", [init.kaiming_uniform_, init.kaiming_normal_])
@pytest.mark.parametrize("mode", ["fan_in", "fan_out"])
def test_kaiming_std_follows_the_relu_gain(fn, mode):
    w = fn(big(300, 400), mode=mode, nonlinearity="relu").cpu().numpy()
    fan = 400 if mode == "fan_in" else 300
    assert abs(w.std() / (math.sqrt(2.0) / math.sqrt(fan)) - 1) < 0.01


def test_trunc_normal_respects_bounds_and_std():
    w = init.trunc_normal_(big(500, 400), mean=0.0, std=1.0, a=-2.0, b=2.0).cpu().numpy()
    assert w.min() >= -2.0 and w.max() <= 2.0
    assert abs(w.std() - 0.8796) < 0.01  # std of N(0, 1) truncated to [-2, 2]


@pytest.mark.parametrize("shape", [(5, 8), (8, 5), (4, 2, 3)])
def test_orthogonal_rows_or_columns_are_orthonormal(shape):
    w = init.orthogonal_(big(*shape), gain=2.0).cpu().numpy().reshape(shape[0], -1)
    gram = w @ w.T if w.shape[0] <= w.shape[1] else w.T @ w
    assert np.allclose(gram, 4.0 * np.eye(gram.shape[0]), atol=1e-10)


def test_init_is_in_place_seeded_and_unrecorded():
    p = nn.Parameter(cr.empty(3, 3))
    before = p._version
    out = init.normal_(p)
    assert out is p and p.grad_fn is None and p._version == before + 1
    cr.manual_seed(7)
    a = init.normal_(big(4)).cpu().numpy().copy()
    cr.manual_seed(7)
    assert np.array_equal(init.normal_(big(4)).cpu().numpy(), a)


def test_calculate_gain_matches_pytorch_table():
    assert init.calculate_gain("relu") == math.sqrt(2.0)
    assert init.calculate_gain("tanh") == 5.0 / 3
    assert init.calculate_gain("leaky_relu", 0.2) == math.sqrt(2.0 / 1.04)
    with pytest.raises(ValueError, match="unsupported nonlinearity"):
        init.calculate_gain("swish")


def test_fan_needs_two_dims():
    with pytest.raises(ValueError, match="fewer than 2 dimensions"):
        init.xavier_uniform_(big(5))
