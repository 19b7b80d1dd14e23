"""Resampling: F.interpolate (nearest, nearest-exact, linear, bilinear, bicubic, trilinear) and
pixel_shuffle / pixel_unshuffle.

Interpolation is a composite, not a primitive: separable along each spatial dim, it is a few gathers
(``index_select`` with index arrays computed as PyTorch computes its source coordinates) and a weighted
sum of them. The gather's rule is a scatter-add (``index_add``), the transpose of the gather, so the
backward and every higher order come from existing rules, and a resize costs one gather per tap and dim
(2 for linear, 4 for cubic): the same work a fused primitive would do, with no second copy of the
coordinate arithmetic to keep in step. Pixel shuffles are a reshape, a permute and a reshape.
"""

from __future__ import annotations

import math

from chainrule.backend import xp_of
from chainrule.ops._helpers import Tensor, describe, tensor_operand, wrap
from chainrule.ops.indexing import index_select

__all__ = ["interpolate", "upsample", "pixel_shuffle", "pixel_unshuffle"]

_MODES = ("nearest", "nearest-exact", "linear", "bilinear", "bicubic", "trilinear")
_DIMS = {"linear": 1, "bilinear": 2, "bicubic": 2, "trilinear": 3}
_KERNEL = {"nearest": "nearest", "nearest-exact": "nearest", "linear": "linear", "bilinear": "linear",
           "trilinear": "linear", "bicubic": "cubic"}
_CUBIC_A = -0.75


def _as_list(v, n: int, what: str, spatial) -> list | None:
    if v is None:
        return None
    if not isinstance(v, (list, tuple)):
        return [v] * n
    if len(v) != n:
        first, named, of, letter = (("output", "output size", "of ", "o") if what == "size" else
                                    ("scale_factor", "scale_factor", "of shape ", "s"))
        raise ValueError(
            f"Input and {first} must have the same number of spatial dimensions, but got input with spatial "
            f"dimensions of {list(spatial)} and {named} {of}{v}. Please provide input tensor in "
            f"(N, C, d1, d2, ...,dK) format and {named} in ({letter}1, {letter}2, ...,{letter}K) format.")
    return list(v)


def interpolate(input, size=None, scale_factor=None, mode: str = "nearest", align_corners: bool | None = None,
                recompute_scale_factor: bool | None = None, antialias: bool = False) -> Tensor:
    """PyTorch's F.interpolate on (N, C, d1[, d2[, d3]]) input, with its source coordinates: for the
    linear and cubic modes ``src = (dst + 0.5) * in / out - 0.5`` (``dst * (in - 1) / (out - 1)`` with
    ``align_corners``), ``in / out`` replaced by ``1 / scale_factor`` when a scale factor is given and not
    recomputed; nearest takes ``floor(dst * scale)``, nearest-exact ``floor((dst + 0.5) * scale)``."""
    x = tensor_operand(input, "interpolate")
    if mode not in _MODES:
        raise NotImplementedError(
            f"Input Error: Only 3D, 4D and 5D input Tensors supported (got {x.ndim}D) for the modes: nearest | "
            f"linear | bilinear | bicubic | trilinear | area | nearest-exact (got {mode})")
    if antialias:
        raise NotImplementedError("interpolate: antialias=True is not supported")
    if mode in ("nearest", "nearest-exact"):
        if align_corners is not None:
            raise ValueError("align_corners option can only be set with the interpolating modes: "
                             "linear | bilinear | bicubic | trilinear")
    elif align_corners is None:
        align_corners = False
    n = x.ndim - 2
    spatial = tuple(x.shape[2:])
    if size is not None and scale_factor is not None:
        raise ValueError("only one of size or scale_factor should be defined")
    if size is None and scale_factor is None:
        raise ValueError("either size or scale_factor should be defined")
    sizes = _as_list(size, n, "size", spatial)
    scales = _as_list(scale_factor, n, "scale_factor", spatial)
    if recompute_scale_factor and size is not None:
        raise ValueError("recompute_scale_factor is not meaningful with an explicit size.")
    if scales is not None:
        sizes = [math.floor(float(s) * float(f)) for s, f in zip(spatial, scales)]
        if recompute_scale_factor:
            scales = None
    if n not in (1, 2, 3) or (mode in _DIMS and _DIMS[mode] != n):
        if mode in _DIMS and n in (1, 2, 3):
            raise NotImplementedError(f"Got {x.ndim}D input, but {mode} mode needs {_DIMS[mode] + 2}D input")
        raise NotImplementedError(
            f"Input Error: Only 3D, 4D and 5D input Tensors supported (got {x.ndim}D) for the modes: nearest | "
            f"linear | bilinear | bicubic | trilinear | area | nearest-exact (got {mode})")
    kernel = _KERNEL[mode]
    kind = x._data.dtype.kind
    if kind != "f" and not (kind == "u" and x._data.dtype.itemsize == 1 and kernel != "linear"):
        raise NotImplementedError(f"\"compute_indices_weights_{kernel}\" not implemented for "
                                  f"'{_TORCH_NAMES.get(x.dtype.name, x.dtype.name)}'")
    if any(s <= 0 for s in sizes) or any(s <= 0 for s in spatial):
        raise RuntimeError(f"interpolate: input {describe(x)} and output sizes {sizes} must be greater than 0")
    xp = xp_of(x._data)
    # PyTorch computes the coordinates in the input's float type (float for float16/float32, double for float64)
    cdt = xp.float64 if x._data.dtype == xp.float64 else xp.float32
    out = x
    for i in range(n):
        d = 2 + i
        insz, outsz = spatial[i], sizes[i]
        scale = None if scales is None else scales[i]
        if kernel == "nearest":
            if mode == "nearest" and outsz == insz:
                continue
            out = index_select(out, d, wrap(_nearest_index(insz, outsz, scale, mode == "nearest-exact", xp, cdt)))
            continue
        taps = _linear_taps if kernel == "linear" else _cubic_taps
        terms = None
        for idx, w in taps(insz, outsz, scale, align_corners, xp, cdt):
            shape = [1] * out.ndim
            shape[d] = outsz
            term = index_select(out, d, wrap(idx)) * wrap(w.astype(x._data.dtype).reshape(shape))
            terms = term if terms is None else terms + term
        out = terms
    return out if out is not x else x.clone()


_TORCH_NAMES = {"int64": "Long", "int32": "Int", "int16": "Short", "int8": "Char", "uint8": "Byte", "bool": "Bool"}


def _area_scale(insz: int, outsz: int, align_corners: bool, scale, cdt, xp):
    """PyTorch's area_pixel_compute_scale."""
    if align_corners:
        return cdt((insz - 1) / (outsz - 1)) if outsz > 1 else cdt(0)
    if scale is not None and scale > 0:
        return cdt(1.0 / scale)
    return cdt(insz) / cdt(outsz)


def _nearest_index(insz, outsz, scale, exact: bool, xp, cdt):
    s = _area_scale(insz, outsz, False, scale, cdt, xp)
    dst = xp.arange(outsz, dtype=cdt)
    src = xp.floor(((dst + cdt(0.5)) if exact else dst) * s).astype(xp.int64)
    return xp.minimum(src, insz - 1)


def _source(insz, outsz, scale, align_corners: bool, cubic: bool, xp, cdt):
    """PyTorch's area_pixel_compute_source_index for every output position."""
    s = _area_scale(insz, outsz, align_corners, scale, cdt, xp)
    dst = xp.arange(outsz, dtype=cdt)
    if align_corners:
        return s * dst
    src = s * (dst + cdt(0.5)) - cdt(0.5)
    return src if cubic else xp.maximum(src, cdt(0))


def _linear_taps(insz, outsz, scale, align_corners, xp, cdt):
    src = _source(insz, outsz, scale, align_corners, False, xp, cdt)
    i0 = src.astype(xp.int64)
    i1 = xp.minimum(i0 + 1, insz - 1)
    w1 = src - i0.astype(cdt)
    return ((i0, cdt(1) - w1), (i1, w1))


def _cubic_taps(insz, outsz, scale, align_corners, xp, cdt):
    src = _source(insz, outsz, scale, align_corners, True, xp, cdt)
    i = xp.floor(src)
    t = src - i
    i = i.astype(xp.int64)
    a = cdt(_CUBIC_A)

    def near(v):  # |v| <= 1
        return ((a + 2) * v - (a + 3)) * v * v + 1

    def far(v):  # 1 < |v| < 2
        return ((a * v - 5 * a) * v + 8 * a) * v - 4 * a

    weights = (far(t + 1), near(t), near(1 - t), far(2 - t))
    return tuple((xp.clip(i - 1 + k, 0, insz - 1), w) for k, w in enumerate(weights))


def upsample(input, size=None, scale_factor=None, mode: str = "nearest", align_corners: bool | None = None) -> Tensor:
    return interpolate(input, size, scale_factor, mode, align_corners)


def pixel_shuffle(input, upscale_factor: int) -> Tensor:
    """(*, C r^2, H, W) -> (*, C, H r, W r): a reshape, a permute and a reshape."""
    x = tensor_operand(input, "pixel_shuffle")
    r = int(upscale_factor)
    if x.ndim < 3:
        raise RuntimeError(f"pixel_shuffle expects input to have at least 3 dimensions, but got input with {x.ndim} "
                           "dimension(s)")
    if r <= 0:
        raise RuntimeError(f"pixel_shuffle expects a positive upscale_factor, but got {r}")
    *lead, c, h, w = x.shape
    if c % (r * r):
        raise RuntimeError("pixel_shuffle expects its input's 'channel' dimension to be divisible by the square of "
                           f"upscale_factor, but input.size(-3)={c} is not divisible by {r * r}")
    k = len(lead)
    y = x.reshape(*lead, c // (r * r), r, r, h, w)
    y = y.permute(*range(k), k, k + 3, k + 1, k + 4, k + 2)
    return y.reshape(*lead, c // (r * r), h * r, w * r)


def pixel_unshuffle(input, downscale_factor: int) -> Tensor:
    """(*, C, H r, W r) -> (*, C r^2, H, W): the inverse of pixel_shuffle."""
    x = tensor_operand(input, "pixel_unshuffle")
    r = int(downscale_factor)
    if x.ndim < 3:
        raise RuntimeError(f"pixel_unshuffle expects input to have at least 3 dimensions, but got input with "
                           f"{x.ndim} dimension(s)")
    if r <= 0:
        raise RuntimeError(f"pixel_unshuffle expects a positive downscale_factor, but got {r}")
    *lead, c, h, w = x.shape
    if h % r:
        raise RuntimeError("pixel_unshuffle expects height to be divisible by downscale_factor, but input.size(-2)="
                           f"{h} is not divisible by {r}")
    if w % r:
        raise RuntimeError("pixel_unshuffle expects width to be divisible by downscale_factor, but input.size(-1)="
                           f"{w} is not divisible by {r}")
    k = len(lead)
    y = x.reshape(*lead, c, h // r, r, w // r, r)
    y = y.permute(*range(k), k, k + 2, k + 4, k + 1, k + 3)
    return y.reshape(*lead, c * r * r, h // r, w // r)
