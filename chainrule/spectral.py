"""Short-time Fourier transforms, as ``torch.stft`` and ``torch.istft``.

``stft`` frames the signal (``Tensor.unfold``), weights each frame by the window and transforms it
(:mod:`chainrule.fft`); ``istft`` transforms back, weights by the window again and overlap-adds the frames
(``index_add``), dividing by the overlap-added squared window. Both are composites of differentiable
operations, so gradients of every order come from the parts.
"""

from __future__ import annotations

import chainrule as cr
from chainrule import fft as _fft
from chainrule.nn import functional as F

__all__ = ["stft", "istft"]


def _window(window, win_length: int, n_fft: int, like) -> cr.Tensor:
    """The window (ones when None) of ``win_length`` samples, zero-padded on both sides to ``n_fft``."""
    if window is None:
        window = cr.ones(win_length, dtype=like.dtype if like.dtype.is_floating_point else cr.float32, device=like.device)
    if window.ndim != 1 or window.shape[0] != win_length:
        raise RuntimeError(f"stft: expected a 1D window tensor of size equal to win_length={win_length}, but got "
                           f"window with size {list(window.shape)}")
    left = (n_fft - win_length) // 2
    return F.pad(window, (left, n_fft - win_length - left)) if win_length < n_fft else window


def _lengths(op: str, n_fft: int, hop_length, win_length) -> tuple[int, int]:
    hop = n_fft // 4 if hop_length is None else hop_length
    win = n_fft if win_length is None else win_length
    if n_fft <= 0 or hop <= 0 or not 0 < win <= n_fft:
        raise RuntimeError(f"{op}: expected 0 < n_fft, 0 < hop_length and 0 < win_length <= n_fft, got n_fft={n_fft}, "
                           f"hop_length={hop}, win_length={win}")
    return hop, win


def stft(input, n_fft: int, hop_length: int | None = None, win_length: int | None = None, window=None,
         center: bool = True, pad_mode: str = "reflect", normalized: bool = False, onesided: bool | None = None,
         return_complex: bool | None = None, align_to_window: bool | None = None):
    """The spectra of ``n_fft``-sample frames, ``hop_length`` apart, of the 1-d (L,) or 2-d (B, L) signal:
    (B?, n_fft // 2 + 1 or n_fft, frames) complex, or with a last dim of 2 (real, imaginary) when
    ``return_complex=False``. ``center`` pads ``n_fft // 2`` on both sides (``pad_mode``) so frame t is
    centred on sample t * hop_length; ``normalized`` scales by n_fft ** -0.5."""
    if input.ndim not in (1, 2):
        raise RuntimeError(f"stft: expected a 1D or 2D tensor, got {input.ndim}D")
    if return_complex is None and not input.is_complex():
        raise RuntimeError("stft requires the return_complex parameter be given for real inputs, and will further "
                           "require that return_complex=True in a future PyTorch release.")
    if align_to_window is not None and not center:
        raise NotImplementedError("stft: align_to_window is not supported")
    hop, win = _lengths("stft", n_fft, hop_length, win_length)
    x = input if input.ndim == 2 else input.unsqueeze(0)
    if center:
        x = F.pad(x.unsqueeze(1), (n_fft // 2, n_fft // 2), mode=pad_mode).squeeze(1)
    if x.shape[-1] < n_fft:
        raise RuntimeError(f"stft: the signal ({x.shape[-1]} samples after padding) is shorter than n_fft={n_fft}")
    frames = x.unfold(-1, n_fft, hop) * _window(window, win, n_fft, input)  # (B, frames, n_fft)
    onesided = not input.is_complex() if onesided is None else onesided
    norm = "ortho" if normalized else "backward"
    spectra = _fft.rfft(frames, dim=-1, norm=norm) if onesided else _fft.fft(frames, dim=-1, norm=norm)
    out = spectra.transpose(-1, -2)
    if input.ndim == 1:
        out = out.squeeze(0)
    return out if return_complex is not False else cr.view_as_real(out)


def istft(input, n_fft: int, hop_length: int | None = None, win_length: int | None = None, window=None,
          center: bool = True, normalized: bool = False, onesided: bool | None = None, length: int | None = None,
          return_complex: bool = False):
    """The signal whose :func:`stft` (same arguments) is ``input``, (B?, freqs, frames) complex: each frame's
    inverse transform, windowed, overlap-added and divided by the overlap-added squared window; ``length``
    trims or zero-pads the result."""
    if not input.is_complex():
        raise RuntimeError("istft requires a complex-valued input tensor matching the output from stft with "
                           "return_complex=True.")
    if input.ndim not in (2, 3):
        raise RuntimeError(f"istft: expected a 2D or 3D complex tensor, got {input.ndim}D")
    hop, win = _lengths("istft", n_fft, hop_length, win_length)
    spectra = (input if input.ndim == 3 else input.unsqueeze(0)).transpose(-1, -2)  # (B, frames, freqs)
    onesided = spectra.shape[-1] != n_fft if onesided is None else onesided
    norm = "ortho" if normalized else "backward"
    if onesided:
        if return_complex:
            raise RuntimeError("istft: cannot have onesided output if the window or input is complex")
        frames = _fft.irfft(spectra, n=n_fft, dim=-1, norm=norm)
    else:
        frames = _fft.ifft(spectra, n=n_fft, dim=-1, norm=norm)
        frames = frames if return_complex else cr.real(frames)
    w = _window(window, win, n_fft, frames.real if frames.is_complex() else frames)
    frames = frames * w
    count, batch = frames.shape[1], frames.shape[0]
    total = n_fft + hop * (count - 1)
    positions = (cr.arange(count, device=frames.device).unsqueeze(1) * hop + cr.arange(n_fft, device=frames.device)).reshape(-1)
    signal = cr.zeros(batch, total, dtype=frames.dtype, device=frames.device).index_add(1, positions, frames.reshape(batch, -1))
    envelope = cr.zeros(total, dtype=w.dtype, device=w.device).index_add(0, positions, (w * w).repeat(count))
    start = n_fft // 2 if center else 0
    end = total - (n_fft // 2 if center else 0) if length is None else min(start + length, total)
    signal, envelope = signal[:, start:end], envelope[start:end]
    if envelope.numel() and envelope.abs().min().item() < 1e-11:
        raise RuntimeError("istft: window overlap add min: the window's overlap-added square is zero somewhere "
                           "(NOLA condition failed)")
    signal = signal / envelope
    if length is not None and signal.shape[-1] < length:
        signal = F.pad(signal, (0, length - signal.shape[-1]))
    return signal if input.ndim == 3 else signal.squeeze(0)
