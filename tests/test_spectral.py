"""torch.stft / torch.istft: chainrule.spectral against PyTorch, with gradients, and the round trip."""

import numpy as np
import pytest
import torch

import chainrule as cr
from chainrule.autograd import gradcheck

RNG = np.random.default_rng(5)

CONFIGS = [
    {"n_fft": 16},
    {"n_fft": 16, "hop_length": 5, "win_length": 12, "window": "hann"},
    {"n_fft": 16, "center": False, "normalized": True},
    {"n_fft": 15, "hop_length": 3, "window": "hann", "onesided": False},
    {"n_fft": 16, "pad_mode": "constant", "window": "hann"},
    {"n_fft": 8, "hop_length": 8, "center": False},  # frames side by side, no overlap (rectangular window)
]


def _arguments(config, lib):
    kwargs = dict(config)
    if kwargs.get("window") == "hann":
        size = kwargs.get("win_length", kwargs["n_fft"])
        kwargs["window"] = lib.hann_window(size, dtype=lib.float64)
    return kwargs


@pytest.mark.parametrize("batched", [True, False])
@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: ",".join(f"{k}={v}" for k, v in c.items()))
def test_stft_equals_torch_with_gradients_and_istft_inverts_it(config, batched):
    signal = RNG.standard_normal((2, 64) if batched else (64,))
    ours_in, theirs_in = cr.tensor(signal, requires_grad=True), torch.tensor(signal, requires_grad=True)
    ours = cr.stft(ours_in, return_complex=True, **_arguments(config, cr))
    theirs = torch.stft(theirs_in, return_complex=True, **_arguments(config, torch))
    assert tuple(ours.shape) == tuple(theirs.shape) and ours.dtype == cr.complex128
    np.testing.assert_allclose(ours.detach().cpu().numpy(), theirs.detach().cpu().numpy(), atol=1e-12)
    weights = RNG.standard_normal(tuple(theirs.shape) + (2,))
    (cr.view_as_real(ours) * cr.tensor(weights)).sum().backward()
    (torch.view_as_real(theirs) * torch.tensor(weights)).sum().backward()
    np.testing.assert_allclose(ours_in.grad.cpu().numpy(), theirs_in.grad.cpu().numpy(), atol=1e-12)

    inverse = {k: v for k, v in config.items() if k != "pad_mode"}
    back = cr.istft(ours.detach(), length=64, **_arguments(inverse, cr))
    expected = torch.istft(theirs.detach(), length=64, **_arguments(inverse, torch))
    np.testing.assert_allclose(back.cpu().numpy(), expected.cpu().numpy(), atol=1e-12)
    if config.get("pad_mode") != "constant":  # reflect padding: every sample is covered, the round trip is exact
        np.testing.assert_allclose(back.cpu().numpy(), signal, atol=1e-12)


def test_stft_and_istft_pass_gradcheck():
    signal = cr.tensor(RNG.standard_normal(24), requires_grad=True)
    window = cr.hann_window(8, dtype=cr.float64)
    assert gradcheck(lambda x: cr.view_as_real(cr.stft(x, 8, 2, window=window, return_complex=True)), (signal,))
    spectrum = cr.stft(signal.detach(), 8, 2, window=window, return_complex=True).requires_grad_()
    assert gradcheck(lambda s: cr.istft(s, 8, 2, window=window, length=24), (spectrum,))


def test_stft_and_istft_errors_match_torch():
    with pytest.raises(RuntimeError, match="stft requires the return_complex parameter"):
        cr.stft(cr.zeros(32), 8)
    with pytest.raises(RuntimeError, match="expected a 1D window tensor of size equal to win_length=8"):
        cr.stft(cr.zeros(32), 8, window=cr.ones(5), return_complex=True)
    with pytest.raises(RuntimeError, match="istft requires a complex-valued input"):
        cr.istft(cr.zeros(5, 4), 8)
    spectrum = cr.stft(cr.ones(32, dtype=cr.float64), 8, 8, window=cr.zeros(8, dtype=cr.float64), center=False,
                       return_complex=True)
    with pytest.raises(RuntimeError, match="window overlap add min"):
        cr.istft(spectrum, 8, 8, window=cr.zeros(8, dtype=cr.float64), center=False)


def test_tensor_methods_are_the_functions():
    signal = cr.tensor(RNG.standard_normal(32))
    spectrum = signal.stft(8, return_complex=True)
    np.testing.assert_array_equal(spectrum.cpu().numpy(), cr.stft(signal, 8, return_complex=True).cpu().numpy())
    np.testing.assert_allclose(spectrum.istft(8, length=32).cpu().numpy(), signal.cpu().numpy(), atol=1e-12)
