"""Resampling: F.interpolate (nearest, nearest-exact, linear, bilinear, bicubic, trilinear, area; antialiased
bilinear and bicubic), pixel_shuffle / pixel_unshuffle, and grid_sample / affine_grid.

Interpolation is a composite, not a primitive: separable along each spatial dim, it is a few gathers
(``index_select`` with index arrays computed as PyTorch computes its source coordinates) and a weighted
sum of them. The gather's rule is a scatter-add (``index_add``), the transpose of the gather, so the
backward and every higher order come from existing rules, and a resize costs one gather per tap and dim
(2 for linear, 4 for cubic): the same work a fused primitive would do, with no second copy of the
coordinate arithmetic to keep in step. Antialiasing widens the taps (2 * ceil(support) + 1 of them), so
there each dim is resized by one matmul with the (out, in) matrix of the taps' weights instead; the area
mode is adaptive average pooling. Pixel shuffles are a reshape, a permute and a reshape.
"""

from __future__ import annotations

import itertools
import math
import warnings

from chainrule.backend import xp_of
from chainrule.ops._helpers import Tensor, describe, record, tensor_operand, wrap
from chainrule.ops.conv import adaptive_avg_pool1d, adaptive_avg_pool2d, adaptive_avg_pool3d
from chainrule.ops.indexing import index_select
from chainrule.ops.rows import take_rows

__all__ = ["interpolate", "upsample", "pixel_shuffle", "pixel_unshuffle", "grid_sample", "affine_grid"]

_MODES = ("nearest", "nearest-exact", "linear", "bilinear", "bicubic", "trilinear", "area")
_DIMS = {"linear": 1, "bilinear": 2, "bicubic": 2, "trilinear": 3}
_KERNEL = {"nearest": "nearest", "nearest-exact": "nearest", "linear": "linear", "bilinear": "linear",
           "trilinear": "linear", "bicubic": "cubic"}
_CUBIC_A = -0.75
_ADAPTIVE_AVG_POOL = {1: adaptive_avg_pool1d, 2: adaptive_avg_pool2d, 3: adaptive_avg_pool3d}


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
    if mode in ("nearest", "nearest-exact", "area"):
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
    if antialias and not (mode in ("bilinear", "bicubic") and x.ndim == 4):
        raise ValueError("Anti-alias option is restricted to bilinear and bicubic modes and requires a 4-D tensor as "
                         "input")
    if n not in (1, 2, 3) or (mode in _DIMS and _DIMS[mode] != n):
        if mode in _DIMS and n in (1, 2, 3):
            raise NotImplementedError(f"Got {x.ndim}D input, but {mode} mode needs {_DIMS[mode] + 2}D input")
        raise NotImplementedError(
            f"Input Error: Only 3D, 4D and 5D input Tensors supported (got {x.ndim}D) for the modes: nearest | "
            f"linear | bilinear | bicubic | trilinear | area | nearest-exact (got {mode})")
    if mode == "area":  # PyTorch's area mode is adaptive average pooling to the output size
        return _ADAPTIVE_AVG_POOL[n](x, tuple(sizes))
    kernel = _KERNEL[mode]
    kind = x._data.dtype.kind
    if kind == "u" and x._data.dtype.itemsize == 1 and kernel != "nearest":
        # PyTorch resamples uint8 images in fixed-point arithmetic with its own rounding, not reproduced here
        raise NotImplementedError(f"interpolate: mode '{mode}' on uint8 input is not supported: convert the input to "
                                  "a floating point dtype first")
    if kind != "f" and not (kind == "u" and x._data.dtype.itemsize == 1):
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
        if antialias:  # many taps per output (2 * ceil(support) + 1): one matmul with their weights' matrix
            matrix = _tap_matrix(_antialias_taps(insz, outsz, scale, align_corners, xp, cdt, kernel == "cubic"), insz)
            moved = out.movedim(d, -1)
            lead = tuple(moved.shape[:-1])  # flattened first: numpy runs a 2-D GEMM, not one per leading index
            resized = moved.reshape(math.prod(lead), insz) @ wrap(matrix.T.astype(x._data.dtype))
            out = resized.reshape(*lead, outsz).movedim(-1, d)
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

    return tuple((xp.clip(i - 1 + k, 0, insz - 1), w) for k, w in enumerate(_cubic_weights(t, a)))


def _cubic_weights(t, a):
    """The four weights of Keys' cubic convolution (parameter ``a``) at taps -1, 0, 1, 2 around a source
    point ``t`` past its tap 0 (arrays or tensors alike)."""
    return _cubic_far(t + 1, a), _cubic_near(t, a), _cubic_near(1 - t, a), _cubic_far(2 - t, a)


def _cubic_near(v, a):
    """Keys' cubic convolution kernel at distance |v| <= 1."""
    return ((a + 2) * v - (a + 3)) * v * v + 1


def _cubic_far(v, a):
    """Keys' cubic convolution kernel at distance 1 < |v| < 2."""
    return ((a * v - 5 * a) * v + 8 * a) * v - 4 * a


def _antialias_taps(insz, outsz, scale, align_corners, xp, cdt, cubic: bool):
    """PyTorch's antialiased taps (its _compute_indices_min_size_weights_aa): output ``i`` centred at
    ``s (i + 0.5)`` in the input takes the input pixels under a filter (the triangle, or Keys' cubic with
    a = -0.5) that is stretched by ``s`` when downsampling (``s`` > 1), so every pixel it covers counts;
    its weights are normalised to sum to one. Taps past an output's window get weight zero."""
    s = _area_scale(insz, outsz, align_corners, scale, cdt, xp)
    stretch = s if s >= 1 else cdt(1)
    support = (2 if cubic else 1) * stretch
    count = int(math.ceil(support)) * 2 + 1
    center = s * (xp.arange(outsz, dtype=cdt) + cdt(0.5))
    first = xp.maximum((center - support + cdt(0.5)).astype(xp.int64), 0)  # truncation, as PyTorch's cast
    width = xp.clip(xp.minimum((center + support + cdt(0.5)).astype(xp.int64), insz) - first, 0, count)
    step = xp.arange(count).reshape(-1, 1)
    distance = xp.abs((step + first - center + cdt(0.5)) * (cdt(1) / stretch)).astype(cdt)
    if cubic:
        a = cdt(-0.5)
        w = xp.where(distance < 1, _cubic_near(distance, a), xp.where(distance < 2, _cubic_far(distance, a), cdt(0)))
    else:
        w = xp.maximum(cdt(1) - distance, cdt(0))
    w = xp.where(step < width, w, cdt(0))
    total = w.sum(axis=0)
    w = w / xp.where(total != 0, total, cdt(1))
    return tuple((xp.minimum(first + k, insz - 1), w[k]) for k in range(count))


def _tap_matrix(taps, insz: int):
    """The (out, in) matrix of the taps' weights: row i holds output i's weight on each input position."""
    index, weight = taps[0]
    xp = xp_of(weight)
    matrix = xp.zeros((index.size, insz), dtype=weight.dtype)
    rows = xp.arange(index.size)
    for index, weight in taps:
        xp.add.at(matrix, (rows, index), weight)  # a clipped tap may repeat another's position
    return matrix


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


# ----- grid_sample and affine_grid -----------------------------------------------------------------------
#
# grid_sample is a composite too. Along each spatial dim, a grid coordinate in [-1, 1] becomes a source
# coordinate (unnormalised, then clipped or reflected by the padding mode) and a few taps: integer source
# positions, each with a weight (1 - t and t for bilinear, Keys' cubic for bicubic, 1 for nearest) and a
# zero weight where a tap falls outside the input. The output sums, over every combination of one tap per
# dim, the input rows gathered at the taps (take_rows) times the product of the taps' weights. The
# source coordinates are piecewise linear in the grid, and _grid_coordinate records them with PyTorch's
# slopes (zero at clip bounds, sign flips under reflection), so the gradients w.r.t. input (add_rows, the
# gather's transpose) and grid (through the weights), and every higher order, come from existing rules.

_GRID_MODES = ("bilinear", "nearest", "bicubic")
_GRID_PADDINGS = ("zeros", "border", "reflection")
_ALIGN_WARNING = ("Default grid_sample and affine_grid behavior has changed to align_corners=False since 1.3.0. "
                  "Please specify align_corners=True if the old behavior is desired. See the documentation of "
                  "grid_sample for details.")


def grid_sample(input, grid, mode: str = "bilinear", padding_mode: str = "zeros",
                align_corners: bool | None = None) -> Tensor:
    """PyTorch's F.grid_sample: ``input`` (N, C, H, W) sampled at ``grid`` (N, Ho, Wo, 2) of (x, y) in
    [-1, 1] gives (N, C, Ho, Wo); likewise (N, C, D, H, W) at (N, Do, Ho, Wo, 3) of (x, y, z)."""
    if mode not in _GRID_MODES:
        raise ValueError(f"nn.functional.grid_sample(): expected mode to be 'bilinear', 'nearest' or 'bicubic', "
                         f"but got: '{mode}'")
    if padding_mode not in _GRID_PADDINGS:
        raise ValueError("nn.functional.grid_sample(): expected padding_mode to be 'zeros', 'border', or "
                         f"'reflection', but got: '{padding_mode}'")
    if align_corners is None:
        warnings.warn(_ALIGN_WARNING, stacklevel=2)
        align_corners = False
    x = tensor_operand(input, "grid_sample")
    grid = tensor_operand(grid, "grid_sample")
    _check_grid_sample(x, grid, mode)
    n, c, spatial = x.shape[0], x.shape[1], tuple(x.shape[2:])
    out_spatial = tuple(grid.shape[1:-1])
    points = grid.reshape(n, math.prod(out_spatial), len(spatial))
    # the grid's last dim lists x (width, the last input dim) first
    taps = [_grid_taps(points[:, :, len(spatial) - 1 - d], size, mode, padding_mode, align_corners)
            for d, size in enumerate(spatial)]
    positions = math.prod(spatial)
    rows = x.reshape(n, c, positions).permute(0, 2, 1).reshape(n * positions, c)  # one row per input position
    xp = xp_of(x._data)
    first_row = xp.arange(n, dtype=xp.int64).reshape(n, 1) * positions
    out = None
    for combination in itertools.product(*taps):
        flat, weight = first_row, None
        for (index, w), stride in zip(combination, _strides(spatial)):
            flat = flat + index * stride
            weight = w if weight is None else weight * w
        term = take_rows(rows, flat.reshape(-1)) * weight.reshape(flat.size, 1)
        out = term if out is None else out + term
    return out.reshape(n, *out_spatial, c).movedim(-1, 1)


def _strides(spatial) -> list[int]:
    return [math.prod(spatial[d + 1:]) for d in range(len(spatial))]


def _check_grid_sample(x: Tensor, grid: Tensor, mode: str) -> None:
    """PyTorch's checks, in its order."""
    sizes = f"input with sizes {list(x.shape)} and grid with sizes {list(grid.shape)}"
    if x.ndim < 3 or grid.ndim < 3:
        raise RuntimeError(f"grid_sampler(): expected 4D or 5D input and grid, but got {sizes}")
    if grid.shape[0] != x.shape[0]:
        raise RuntimeError(f"grid_sampler(): expected grid and input to have same batch size, but got {sizes}")
    if grid.shape[-1] != x.ndim - 2:
        raise RuntimeError(f"grid_sampler(): expected grid to have size {x.ndim - 2} in last dimension, but got grid "
                           f"with sizes {list(grid.shape)}")
    for d in range(2, x.ndim):
        if x.shape[d] == 0:
            raise RuntimeError(f"grid_sampler(): expected input to have non-empty spatial dimensions, but input has "
                               f"sizes {list(x.shape)} with dimension {d} being empty")
    if x.ndim not in (4, 5) or grid.ndim != x.ndim:
        raise RuntimeError(f"grid_sampler(): expected {4 if x.ndim == 4 else 5}D input and grid with same number of "
                           f"dimensions, but got {sizes}")
    if mode == "bicubic" and x.ndim != 4:
        raise RuntimeError("grid_sampler(): bicubic interpolation only supports 4D input")
    if x._data.dtype.kind != "f" or grid._data.dtype != x._data.dtype:
        raise RuntimeError(f"grid_sampler(): expected input and grid of one floating point dtype, but got input "
                           f"{describe(x)} and grid {describe(grid)}")


def _grid_taps(coordinate: Tensor, size: int, mode: str, padding_mode: str, align_corners: bool) -> list:
    """The taps of one spatial dim: (source index array, weight tensor) pairs for each grid point, the
    weight zero where the tap falls outside the input (only possible with zeros padding)."""
    xp = xp_of(coordinate._data)
    dtype = coordinate._data.dtype.type
    source, slope = _unnormalize(coordinate._data, size, align_corners, dtype)
    if mode == "bicubic":  # PyTorch pads bicubic's integer taps, not its source point
        start = xp.floor(source)
        t = _grid_coordinate(coordinate, source - start, slope)
        steps = [_pad_coordinate(start + k, size, padding_mode, align_corners, xp)[0] for k in (-1, 0, 1, 2)]
        return [_tap(step, size, w) for step, w in zip(steps, _cubic_weights(t, _CUBIC_A))]
    source, padded_slope = _pad_coordinate(source, size, padding_mode, align_corners, xp)
    if mode == "nearest":  # piecewise constant: the grid's gradient is zero, as PyTorch's
        nearest = xp.rint(source)
        return [_tap(nearest, size, _grid_coordinate(coordinate, xp.ones_like(source), xp.zeros_like(source)))]
    start = xp.floor(source)
    t = _grid_coordinate(coordinate, source - start, slope * padded_slope)
    return [_tap(start, size, 1 - t), _tap(start + 1, size, t)]


def _tap(position, size: int, weight: Tensor):
    """An integer index array (positions outside the input point at 0) and the weight, zeroed there."""
    xp = xp_of(position)
    inside = (position >= 0) & (position <= size - 1)  # False for NaN
    index = xp.where(inside, position, 0).astype(xp.int64)
    if inside.all():
        return index, weight
    return index, weight * wrap(inside.astype(position.dtype))


def _grid_coordinate(grid_coordinate: Tensor, value, slope) -> Tensor:
    """``value`` (an array computed from the grid coordinate's values) as a tensor whose derivative with
    respect to that coordinate is ``slope``: the grid's path into the weights."""
    return record(value, "grid_sample_coordinate", (grid_coordinate,), lambda g, _: (g * wrap(xp_of(value).asarray(slope)),))


def _unnormalize(coordinate, size: int, align_corners: bool, dtype):
    """PyTorch's grid_sampler_unnormalize: -1 and 1 are the centres of the corner pixels with
    align_corners, their outer edges without; and its slope."""
    if align_corners:
        scale = dtype((size - 1) / 2)
        return (coordinate + 1) * scale, scale
    scale = dtype(size / 2)
    return coordinate * scale + (scale - dtype(0.5)), scale


def _pad_coordinate(source, size: int, padding_mode: str, align_corners: bool, xp):
    """PyTorch's compute_coordinates: the source coordinate clipped into the input (border), or reflected
    at its edges and then clipped (reflection); and the derivative of that map (zero at the clip bounds)."""
    if padding_mode == "zeros":
        return source, 1
    slope = 1
    if padding_mode == "reflection":
        low, high = (0, 2 * (size - 1)) if align_corners else (-1, 2 * size - 1)
        source, slope = _reflect(source, low, high, xp)
    inside = (source > 0) & (source < size - 1)
    return xp.clip(source, 0, size - 1), slope * inside


def _reflect(source, twice_low: int, twice_high: int, xp):
    """PyTorch's reflect_coordinates: ``source`` mirrored back and forth into [low, high] (given doubled,
    so half-integer bounds stay integers), and the sign of the slope."""
    if twice_low == twice_high:
        return xp.zeros_like(source), xp.zeros_like(source)
    dtype = source.dtype.type
    low, span = dtype(twice_low / 2), dtype((twice_high - twice_low) / 2)
    offset = source - low
    sign = xp.where(offset < 0, dtype(-1), dtype(1))
    offset = xp.abs(offset)
    extra = xp.fmod(offset, span)
    even = xp.floor(offset / span) % 2 == 0
    return xp.where(even, extra + low, span - extra + low), xp.where(even, sign, -sign)


def affine_grid(theta, size, align_corners: bool | None = None) -> Tensor:
    """PyTorch's F.affine_grid: the (N, H, W, 2) grid (N, D, H, W, 3 in 3-d) of ``theta`` (N, 2, 3) (or
    (N, 3, 4)) applied to the base grid of (x, y[, z], 1) over ``size`` = (N, C, H, W) (or (N, C, D, H, W)):
    a matmul of a constant with theta, differentiable in theta."""
    if align_corners is None:
        warnings.warn(_ALIGN_WARNING, stacklevel=2)
        align_corners = False
    theta = tensor_operand(theta, "affine_grid")
    size = tuple(int(s) for s in size)
    if theta._data.dtype.kind != "f":
        raise ValueError(f"Expected theta to have floating point type, but got {theta.dtype}")
    if len(size) not in (4, 5):
        raise NotImplementedError(f"affine_grid only supports 4D and 5D sizes, for 2D and 3D affine transforms, "
                                  f"respectively. Got size {size}.")
    k = len(size) - 2
    if theta.ndim != 3 or tuple(theta.shape[1:]) != (k, k + 1):
        raise ValueError(f"Expected a batch of {k}D affine matrices of shape Nx{k}x{k + 1} for size {size}. Got "
                         f"{describe(theta)}.")
    spatial = size[2:]
    if align_corners and min(spatial) == 1:
        warnings.warn("Since version 1.3.0, affine_grid behavior has changed for unit-size grids when "
                      "align_corners=True. This is not an intended use case of affine_grid. See the documentation "
                      "of affine_grid for details.", stacklevel=2)
    elif min(size) <= 0:
        raise ValueError(f"Expected non-zero, positive output size. Got {size}")
    if theta.shape[0] != size[0]:
        raise RuntimeError(f"affine_grid: theta holds {theta.shape[0]} matrices but size asks for a batch of "
                           f"{size[0]} (theta {describe(theta)}, size {size})")
    base = _base_grid(spatial, align_corners, xp_of(theta._data), theta._data.dtype)
    grid = wrap(base.reshape(1, -1, k + 1)) @ theta.transpose(1, 2)
    return grid.reshape(size[0], *spatial, k)


def _base_grid(spatial, align_corners: bool, xp, dtype):
    """(*spatial, k + 1) of (x, y[, z], 1): each axis spans [-1, 1] between pixel centres with
    align_corners, shrunk by (n - 1) / n (to the centres of pixels spanning [-1, 1]) without."""
    axes = []
    for n in reversed(spatial):  # x runs along the last dim
        steps = xp.linspace(-1, 1, n, dtype=dtype) if n > 1 else xp.zeros(n, dtype=dtype)
        axes.append(steps if align_corners else steps * dtype.type((n - 1) / n))
    mesh = xp.meshgrid(*reversed(axes), indexing="ij")  # each of shape spatial
    return xp.stack([*reversed(mesh), xp.ones(tuple(spatial), dtype=dtype)], axis=-1)
