"""Core functions given tensors on the cuda device (the NumPy stand-in without a GPU) while the default
device stays the CPU: their results, and every constant they make on the way, belong on the inputs'
device. The stand-in refuses host arrays next to device ones, so a constant made on the default device
fails here on any machine; the values are checked against the same call on the CPU."""

import numpy as np
import pytest

import chainrule as cr


@pytest.fixture
def on(cuda_device):
    """Tensors on the cuda device, built inside a block whose default device is the CPU."""
    with cr.device("cpu"):
        yield lambda t: t.to(cuda_device)


def _same(on_device, on_cpu, device):
    assert on_device.device == device
    np.testing.assert_allclose(on_device.cpu().numpy(), on_cpu.numpy(), rtol=1e-12, atol=1e-12)


def test_stft_and_istft(on, cuda_device):
    x = cr.randn(2, 64, dtype=cr.float64)
    spectrum = cr.stft(on(x), 16, return_complex=True)
    _same(spectrum, cr.stft(x, 16, return_complex=True), cuda_device)
    _same(cr.istft(spectrum, 16, length=64), x, cuda_device)


def test_isin_new_and_asarray(on, cuda_device):
    values, tests = cr.arange(6), cr.tensor([1, 4, 9])
    _same(cr.isin(on(values), on(tests)), cr.isin(values, tests), cuda_device)
    t = on(cr.ones(2))
    _same(t.new([1.0, 2.0]), cr.tensor([1.0, 2.0]), cuda_device)
    assert t.new(3).device == cuda_device and t.new(3).shape == (3,)
    assert cr.asarray(t, copy=False) is t
    with pytest.raises(ValueError, match="copy=False"):  # a host array becomes a device tensor only by a copy
        cr.asarray(np.ones(2), device=cuda_device, copy=False)
    with pytest.raises(TypeError, match="from_numpy: expected a numpy.ndarray"):  # a device array is not one
        cr.from_numpy(t._data)


def test_random_draws_land_on_the_inputs_device(on, cuda_device):
    draws = cr.binomial(on(cr.full((4000,), 10.0)), on(cr.full((4000,), 0.3)))
    assert draws.device == cuda_device and abs(draws.mean().item() - 3.0) < 0.1
    kept = cr.feature_dropout(on(cr.ones(4, 8, 3)), 0.5, True)
    assert kept.device == cuda_device and set(np.unique(kept.cpu().numpy())) <= {0.0, 2.0}
    assert cr.normal(on(cr.zeros(3)), 2.0).device == cuda_device
