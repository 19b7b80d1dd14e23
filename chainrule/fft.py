"""Discrete Fourier transforms with gradients, as ``torch.fft``: ``fft``/``ifft`` (and the 2-d and n-d
forms), ``rfft``/``irfft`` (real signals, one-sided spectra), ``hfft``/``ihfft`` (and their 2-d and n-d
forms), ``fftshift``,
``fftfreq``.

Three primitives carry everything:

- ``_c2c``: the complex transform over some dims. It is linear, so its gradient is its adjoint: the
  inverse transform with the opposite normalization ("backward" <-> "forward", "ortho" stays);
- ``_resize``: zero-padding or trimming to the sizes ``n``/``s`` ask for; its adjoint resizes back;
- ``_c2r``: the inverse of ``rfft`` (a one-sided spectrum to a real signal). Its gradient is ``rfft`` of the
  incoming gradient with the opposite normalization, doubled at the bins that stand for two (every bin but
  the zero frequency and, for an even length, the Nyquist one), the "Hermitian doubling" PyTorch applies.

``rfft`` is ``_c2c`` of the real signal made complex, trimmed to the one-sided half: its gradient, by
composition, is the real part of the padded spectrum's inverse transform. numpy computes in double
precision; results are cast back, so float32/complex64 input gives complex64/float32 as in PyTorch.
"""

from __future__ import annotations

from chainrule import dtypes as _dt
from chainrule.backend import np, xp_of
from chainrule.ops._helpers import Tensor, describe, norm_dim, record, tensor_operand
from chainrule.ops.shape import roll

__all__ = ["fft", "ifft", "fft2", "ifft2", "fftn", "ifftn", "rfft", "irfft", "rfft2", "irfft2", "rfftn", "irfftn",
           "hfft", "ihfft", "hfft2", "ihfft2", "hfftn", "ihfftn", "fftshift", "ifftshift", "fftfreq", "rfftfreq"]

_OPPOSITE = {"backward": "forward", "forward": "backward", "ortho": "ortho"}


# ----- the primitives ----------------------------------------------------------------------------------

def _c2c(x: Tensor, dims: tuple, norm: str, forward: bool) -> Tensor:
    """The complex DFT (``forward``) or its inverse over ``dims`` of the complex tensor ``x``."""
    fft_module = xp_of(x._data).fft
    transform = fft_module.fftn if forward else fft_module.ifftn
    out = transform(x._data, axes=dims, norm=norm).astype(x._data.dtype, copy=False)
    return record(out, "fft_c2c", (x,), lambda g, _: (_c2c(g, dims, _OPPOSITE[norm], not forward),))


def _resize(x: Tensor, dims: tuple, sizes: tuple) -> Tensor:
    """``x`` trimmed or zero-padded at the end of each of ``dims`` to ``sizes``."""
    old = tuple(x.shape[d] for d in dims)
    if old == sizes:
        return x
    xp = xp_of(x._data)
    shape = list(x.shape)
    for d, n in zip(dims, sizes):
        shape[d] = n
    out = xp.zeros(shape, dtype=x._data.dtype)
    common = tuple(slice(0, min(shape[d], x.shape[d])) for d in range(x.ndim))
    out[common] = x._data[common]
    return record(out, "fft_resize", (x,), lambda g, _: (_resize(g, dims, old),))


def _c2r(x: Tensor, dim: int, n: int, norm: str) -> Tensor:
    """The real signal of length ``n`` whose one-sided spectrum along ``dim`` is ``x`` (n // 2 + 1 bins)."""
    real = _dt.to_real(x.dtype)
    out = xp_of(x._data).fft.irfft(x._data, n=n, axis=dim, norm=norm).astype(real.np, copy=False)

    def rule(g, _):
        spectrum = _c2c(g.to(x.dtype), (dim,), _OPPOSITE[norm], True).narrow(dim, 0, n // 2 + 1)
        return (spectrum * _hermitian_weights(n, dim, g.ndim, real, g.device),)

    return record(out, "fft_c2r", (x,), rule)


def _hermitian_weights(n: int, dim: int, ndim: int, dtype, device) -> Tensor:
    """2 for the one-sided bins that stand for a pair of bins of the full spectrum, 1 for the zero frequency
    and (n even) the Nyquist bin: shaped to broadcast along ``dim``."""
    weights = np.full(n // 2 + 1, 2.0, dtype=dtype.np)
    weights[0] = 1.0
    if n % 2 == 0:
        weights[-1] = 1.0
    return Tensor(weights.reshape((-1,) + (1,) * (ndim - 1 - dim)), device=device)


# ----- arguments ---------------------------------------------------------------------------------------

def _norm(norm, op: str) -> str:
    if norm is None:
        return "backward"
    if norm not in _OPPOSITE:
        raise RuntimeError(f'{op}: Invalid normalization mode: "{norm}" (expected "backward", "ortho" or "forward")')
    return norm


def _dims_and_sizes(x: Tensor, s, dim, op: str) -> tuple[tuple, tuple]:
    """The transformed dims and the signal size along each, from PyTorch's ``s`` and ``dim`` (``s`` alone
    names the last len(s) dims; -1 in ``s`` keeps that dim's size)."""
    if dim is None:
        dims = tuple(range(x.ndim - len(s), x.ndim)) if s is not None else tuple(range(x.ndim))
        if s is not None and len(s) > x.ndim:
            raise RuntimeError(f"{op}: got shape s={tuple(s)} with {len(s)} values but the input is {x.ndim}-d "
                               f"({describe(x)})")
    else:
        dims = tuple(norm_dim(d, x.ndim, op) for d in ((dim,) if isinstance(dim, int) else dim))
        if x.ndim == 0:
            raise IndexError(f"{op}: Dimension specified as {dim} but tensor has no dimensions")
    if len(set(dims)) != len(dims):
        raise RuntimeError(f"{op}: FFT dims must be unique, got dim={dim}")
    if s is None:
        sizes = tuple(x.shape[d] for d in dims)
    else:
        if len(s) != len(dims):
            raise RuntimeError(f"{op}: When given, dim and shape arguments must have the same length "
                               f"(dim={dim}, s={tuple(s)})")
        sizes = tuple(x.shape[d] if n == -1 else int(n) for d, n in zip(dims, s))
    for d, n in zip(dims, sizes):
        if n < 1:
            raise RuntimeError(f"{op}: Invalid number of data points ({n}) specified along dim {d} ({describe(x)})")
    return dims, sizes


def _float_input(x, op: str) -> Tensor:
    x = tensor_operand(x, op)
    if x.dtype._kind < 2:
        return x.to(_dt.get_default_dtype())
    if x.dtype is _dt.float16:
        raise RuntimeError(f"{op}: Unsupported dtype Half ({describe(x)}); convert to float32 first")
    return x


def _complex_input(x, op: str) -> Tensor:
    x = _float_input(x, op)
    return x.to(_dt.to_complex(x.dtype))


def _real_input(x, op: str) -> Tensor:
    x = _float_input(x, op)
    if x.dtype.is_complex:
        raise RuntimeError(f"{op}: expects a real input tensor, but got {describe(x)}")
    return x


# ----- complex to complex ------------------------------------------------------------------------------

def _complex_transform(x, s, dim, norm, forward: bool, op: str) -> Tensor:
    x = _complex_input(x, op)
    norm = _norm(norm, op)
    dims, sizes = _dims_and_sizes(x, s, dim, op)
    return _c2c(_resize(x, dims, sizes), dims, norm, forward)


def _one(n) -> tuple | None:
    return None if n is None else (n,)


def fft(input, n: int | None = None, dim: int = -1, norm: str | None = None) -> Tensor:
    return _complex_transform(input, _one(n), dim, norm, True, "fft")


def ifft(input, n: int | None = None, dim: int = -1, norm: str | None = None) -> Tensor:
    return _complex_transform(input, _one(n), dim, norm, False, "ifft")


def fft2(input, s=None, dim=(-2, -1), norm: str | None = None) -> Tensor:
    return _complex_transform(input, s, dim, norm, True, "fft2")


def ifft2(input, s=None, dim=(-2, -1), norm: str | None = None) -> Tensor:
    return _complex_transform(input, s, dim, norm, False, "ifft2")


def fftn(input, s=None, dim=None, norm: str | None = None) -> Tensor:
    return _complex_transform(input, s, dim, norm, True, "fftn")


def ifftn(input, s=None, dim=None, norm: str | None = None) -> Tensor:
    return _complex_transform(input, s, dim, norm, False, "ifftn")


# ----- real signals and one-sided spectra --------------------------------------------------------------

def _real_transform(x, s, dim, norm, op: str) -> Tensor:
    """rfftn: the full transform of the (resized) real signal, trimmed to n // 2 + 1 bins along the last dim."""
    x = _real_input(x, op)
    norm = _norm(norm, op)
    dims, sizes = _dims_and_sizes(x, s, dim, op)
    if not dims:
        raise RuntimeError(f"{op}: must transform at least one axis ({describe(x)}, dim={dim})")
    x = _resize(x, dims, sizes)
    full = _c2c(x.to(_dt.to_complex(x.dtype)), dims, norm, True)
    return full.narrow(dims[-1], 0, sizes[-1] // 2 + 1)


def _inverse_real_transform(x, s, dim, norm, op: str) -> Tensor:
    """irfftn: the inverse complex transform over all dims but the last, then the one-sided inverse over it.
    Without ``s`` the last dim's output length is 2 * (bins - 1)."""
    x = _complex_input(x, op)
    norm = _norm(norm, op)
    dims, sizes = _dims_and_sizes(x, s, dim, op)
    if not dims:
        raise RuntimeError(f"{op}: must transform at least one axis ({describe(x)}, dim={dim})")
    if s is None or s[-1] == -1:
        sizes = sizes[:-1] + (2 * (x.shape[dims[-1]] - 1),)
        if sizes[-1] < 1:
            raise RuntimeError(f"{op}: Invalid number of data points ({sizes[-1]}) specified "
                               f"({describe(x)}: give the output length n or s)")
    last, n = dims[-1], sizes[-1]
    if len(dims) > 1:
        x = _c2c(_resize(x, dims[:-1], sizes[:-1]), dims[:-1], norm, False)
    return _c2r(_resize(x, (last,), (n // 2 + 1,)), last, n, norm)


def rfft(input, n: int | None = None, dim: int = -1, norm: str | None = None) -> Tensor:
    return _real_transform(input, _one(n), dim, norm, "rfft")


def irfft(input, n: int | None = None, dim: int = -1, norm: str | None = None) -> Tensor:
    return _inverse_real_transform(input, _one(n), dim, norm, "irfft")


def rfft2(input, s=None, dim=(-2, -1), norm: str | None = None) -> Tensor:
    return _real_transform(input, s, dim, norm, "rfft2")


def irfft2(input, s=None, dim=(-2, -1), norm: str | None = None) -> Tensor:
    return _inverse_real_transform(input, s, dim, norm, "irfft2")


def rfftn(input, s=None, dim=None, norm: str | None = None) -> Tensor:
    return _real_transform(input, s, dim, norm, "rfftn")


def irfftn(input, s=None, dim=None, norm: str | None = None) -> Tensor:
    return _inverse_real_transform(input, s, dim, norm, "irfftn")


def _hermitian_transform(x, s, dim, norm, op: str) -> Tensor:
    """hfftn: the real spectrum of a signal with Hermitian symmetry given by its one-sided half, that is the
    inverse real transform of the conjugate with the opposite normalization (numpy's and PyTorch's definition)."""
    x = _complex_input(x, op)
    return _inverse_real_transform(x.conj_physical(), s, dim, _OPPOSITE[_norm(norm, op)], op)


def _inverse_hermitian_transform(x, s, dim, norm, op: str) -> Tensor:
    """ihfftn, the inverse of hfftn: the conjugate of the real transform with the opposite normalization."""
    return _real_transform(x, s, dim, _OPPOSITE[_norm(norm, op)], op).conj_physical()


def hfft(input, n: int | None = None, dim: int = -1, norm: str | None = None) -> Tensor:
    return _hermitian_transform(input, _one(n), dim, norm, "hfft")


def ihfft(input, n: int | None = None, dim: int = -1, norm: str | None = None) -> Tensor:
    return _inverse_hermitian_transform(input, _one(n), dim, norm, "ihfft")


def hfft2(input, s=None, dim=(-2, -1), norm: str | None = None) -> Tensor:
    return _hermitian_transform(input, s, dim, norm, "hfft2")


def ihfft2(input, s=None, dim=(-2, -1), norm: str | None = None) -> Tensor:
    return _inverse_hermitian_transform(input, s, dim, norm, "ihfft2")


def hfftn(input, s=None, dim=None, norm: str | None = None) -> Tensor:
    return _hermitian_transform(input, s, dim, norm, "hfftn")


def ihfftn(input, s=None, dim=None, norm: str | None = None) -> Tensor:
    return _inverse_hermitian_transform(input, s, dim, norm, "ihfftn")


# ----- helpers: frequencies and shifts -----------------------------------------------------------------

def fftfreq(n: int, d: float = 1.0, *, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """The sample frequencies of an n-point transform: [0, 1, ..., -(n // 2), ..., -1] / (d * n)."""
    freqs = np.fft.fftfreq(n, d)
    return _frequencies(freqs, dtype, device, requires_grad)


def rfftfreq(n: int, d: float = 1.0, *, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """The sample frequencies of rfft's n // 2 + 1 bins: [0, 1, ..., n // 2] / (d * n)."""
    return _frequencies(np.fft.rfftfreq(n, d), dtype, device, requires_grad)


def _frequencies(freqs, dtype, device, requires_grad: bool) -> Tensor:
    dtype = _dt.get_default_dtype() if dtype is None else _dt.to_dtype(dtype)
    out = Tensor(freqs.astype(dtype.np), device=device)
    return out.requires_grad_(True) if requires_grad else out


def _shifted(x, dim, sign: int, op: str) -> Tensor:
    x = tensor_operand(x, op)
    dims = tuple(range(x.ndim)) if dim is None else (dim,) if isinstance(dim, int) else tuple(dim)
    dims = tuple(norm_dim(d, x.ndim, op) for d in dims)
    if not dims:
        return x
    return roll(x, tuple(sign * (x.shape[d] // 2) for d in dims), dims)


def fftshift(input, dim=None) -> Tensor:
    """The zero frequency moved to the centre: each dim rolled by half its size."""
    return _shifted(input, dim, 1, "fftshift")


def ifftshift(input, dim=None) -> Tensor:
    """The inverse of fftshift."""
    return _shifted(input, dim, -1, "ifftshift")
