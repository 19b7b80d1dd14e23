"""Convolution and pooling on NCHW (and NCL) tensors, with torch.nn.functional's signatures.

Everything stands on one sliding-window geometry (:class:`Windows`): an image of spatial size
(H, W), padded by (top, bottom, left, right), visited by a kh x kw kernel with a stride and a
dilation, gives an (oh, ow) grid of windows. A *tap* is one kernel offset (a, b); its values over
all windows form one strided slice of the padded image. Loops run over the kh * kw taps (a handful),
never over pixels.

Primitives (forward on backend arrays, backward rule beside it):

- ``_im2col`` / ``_col2im``: every window as one column (one ``as_strided`` view, then one copy) /
  columns summed back onto the image (one strided add per tap). Each is the other's backward, so
  anything built from them is differentiable to any order. ``unfold`` / ``fold`` are these two in
  PyTorch's layout (N, C*kh*kw, L); convolution asks for the layout (C*kh*kw, N*L) instead, which
  makes the whole batch one GEMM per group and lets groups split the rows without a copy.
- ``_window_gather`` / ``_window_scatter``: weighted sums over the taps of each window, and their
  adjoint. Average pooling is one gather; max pooling's backward is one scatter whose weights route
  the gradient to the maxima.
- ``_max_pool_windows``: the elementwise maximum over the taps.

Convolution is composite: im2col, one matmul per group, a bias add. Its gradients of every order come
from the rules of ``_im2col``/``_col2im`` and matmul. A primitive with a hand-written backward (same
kernels, bias added in place) measured no faster: forward+backward of conv2d 16->32, 3x3, pad 1 on
64x16x28x28 float32, one thread, took 127 ms composite vs 130 ms primitive (1->16: 8.5 vs 7.7 ms);
the time is in the three GEMMs, the im2col copy and col2im, which both versions share.

Tie policy (the project's rule for max): max pooling splits a window's gradient evenly among the
elements tied for its maximum (NaNs count as the maximum of their window). PyTorch sends it to one
index instead; without ties the two agree.
"""

from __future__ import annotations

from collections.abc import Sequence
from numbers import Integral

from chainrule.backend import np, xp_of
from chainrule.ops._helpers import Tensor, describe, record, tensor_operand, wrap

__all__ = ["unfold", "fold", "conv1d", "conv2d", "max_pool1d", "max_pool2d", "avg_pool1d", "avg_pool2d",
           "adaptive_avg_pool1d", "adaptive_avg_pool2d"]


# ----- arguments ------------------------------------------------------------------------------------

def _is_int(v) -> bool:
    return isinstance(v, Integral) and not isinstance(v, bool)


def _ints(value, n: int, name: str, op: str, minimum: int) -> tuple[int, ...]:
    """``value`` (an int, or a sequence of 1 or ``n`` ints) as ``n`` ints, each at least ``minimum``."""
    if _is_int(value):
        values = (int(value),) * n
    elif isinstance(value, Sequence) and not isinstance(value, str) and len(value) in (1, n) \
            and all(_is_int(v) for v in value):
        values = tuple(int(v) for v in value) * (n if len(value) == 1 else 1)
    else:
        raise TypeError(f"{op}: {name} must be an int or a tuple of {n} ints, got {value!r}")
    if any(v < minimum for v in values):
        what = "positive" if minimum > 0 else "non-negative"
        raise RuntimeError(f"{op}: {name} must be {what}, got {value!r}")
    return values


def _floating(x: Tensor, op: str) -> None:
    if not x.dtype.is_floating_point:
        raise RuntimeError(f"{op}: expected a floating-point input, got {describe(x)}; convert it, e.g. x.float()")


def _batched(x: Tensor, spatial: int, op: str) -> tuple[Tensor, bool]:
    """``x`` with a batch dimension (PyTorch accepts unbatched input, one dim fewer), and whether one was added."""
    if x.ndim == spatial + 2:
        return x, False
    if x.ndim == spatial + 1:
        return x.unsqueeze(0), True
    layout = "(N, C, L)" if spatial == 1 else "(N, C, H, W)"
    raise RuntimeError(
        f"{op}: expected a {spatial + 1}-D (unbatched) or {spatial + 2}-D (batched {layout}) input, got {describe(x)}"
    )


def _unbatched(out: Tensor, added: bool) -> Tensor:
    return out.squeeze(0) if added else out


# ----- the geometry ---------------------------------------------------------------------------------

class Windows:
    """Where the windows of a convolution or pooling lie on an (N, C, H, W) image.

    ``pad`` is (top, bottom, left, right); ``out`` the (oh, ow) grid of windows. Build one with
    :meth:`for_conv` or :meth:`for_pool`, which check the arguments and name ``op`` in errors.
    """

    __slots__ = ("shape", "kernel", "stride", "dilation", "pad", "out")

    def __init__(self, shape: tuple, kernel: tuple, stride: tuple, dilation: tuple, pad: tuple, out: tuple):
        self.shape = tuple(shape)
        self.kernel, self.stride, self.dilation = kernel, stride, dilation
        self.pad, self.out = pad, out

    @classmethod
    def for_conv(cls, shape: tuple, kernel: tuple, stride: tuple, dilation: tuple, pad: tuple, op: str) -> Windows:
        """Windows that must fit in the padded image; the padding is exactly ``pad``."""
        out = []
        for axis in range(2):
            padded = shape[2 + axis] + pad[2 * axis] + pad[2 * axis + 1]
            span = dilation[axis] * (kernel[axis] - 1) + 1
            if span > padded:
                raise RuntimeError(
                    f"{op}: the kernel {tuple(kernel)} with dilation {tuple(dilation)} spans "
                    f"{tuple(d * (k - 1) + 1 for k, d in zip(kernel, dilation))}, larger than the padded input "
                    f"{_padded_hw(shape, pad)} (input shape {tuple(shape)}, padding {tuple(pad)}); use a smaller "
                    "kernel or dilation, or more padding"
                )
            out.append((padded - span) // stride[axis] + 1)
        return cls(shape, kernel, stride, dilation, pad, tuple(out))

    @classmethod
    def for_pool(cls, shape: tuple, kernel: tuple, stride: tuple, dilation: tuple, padding: tuple,
                 ceil_mode: bool, op: str) -> Windows:
        """PyTorch's pooling windows: symmetric ``padding`` of at most half the (dilated) kernel; with
        ``ceil_mode`` a last, partial window is kept when it starts inside the image or left padding
        (the bottom/right padding then grows to hold it)."""
        out, pad = [], []
        for axis in range(2):
            size, k, s, d, p = shape[2 + axis], kernel[axis], stride[axis], dilation[axis], padding[axis]
            span = d * (k - 1) + 1
            if p > span // 2:
                raise RuntimeError(
                    f"{op}: padding should be at most half of the effective kernel size, but got padding={tuple(padding)}, "
                    f"kernel_size={tuple(kernel)} and dilation={tuple(dilation)}"
                )
            n = (size + 2 * p - span + (s - 1 if ceil_mode else 0)) // s + 1
            if ceil_mode and (n - 1) * s >= size + p:
                n -= 1
            if n < 1:
                raise RuntimeError(
                    f"{op}: input of shape {tuple(shape)} is too small for kernel_size={tuple(kernel)}, "
                    f"dilation={tuple(dilation)} and padding={tuple(padding)} (calculated output size {n}); "
                    "use a smaller kernel or more padding"
                )
            out.append(n)
            pad += [p, max(p, (n - 1) * s + span - size - p)]
        return cls(shape, kernel, stride, dilation, tuple(pad), tuple(out))

    @property
    def padded_hw(self) -> tuple[int, int]:
        return _padded_hw(self.shape, self.pad)

    @property
    def has_padding(self) -> bool:
        return any(self.pad)

    @property
    def tiles_exactly(self) -> bool:
        """Every image element lies in exactly one window (kernel == stride, no padding, sizes divide)."""
        return (self.kernel == self.stride and self.dilation == (1, 1) and not self.has_padding
                and (self.out[0] * self.kernel[0], self.out[1] * self.kernel[1]) == tuple(self.shape[2:]))

    def taps(self):
        """``(a, b, index)`` per kernel offset: ``padded_image[index]`` is that offset's (N, C, oh, ow) values."""
        (kh, kw), (sh, sw), (dh, dw), (oh, ow) = self.kernel, self.stride, self.dilation, self.out
        for a in range(kh):
            rows = slice(a * dh, a * dh + sh * (oh - 1) + 1, sh)
            for b in range(kw):
                yield a, b, (Ellipsis, rows, slice(b * dw, b * dw + sw * (ow - 1) + 1, sw))

    def padded(self, image, value: float = 0):
        """The image with this geometry's padding filled with ``value`` (the image itself when unpadded)."""
        if not self.has_padding:
            return image
        top, bottom, left, right = self.pad
        return xp_of(image).pad(image, ((0, 0), (0, 0), (top, bottom), (left, right)), constant_values=value)

    def crop(self, padded):
        if not self.has_padding:
            return padded
        top, _, left, _ = self.pad
        return padded[..., top:top + self.shape[2], left:left + self.shape[3]]

    def patches(self, padded):
        """An (N, C, kh, kw, oh, ow) strided view of the padded image: every window, nothing copied."""
        xp = xp_of(padded)
        sn, sc, sh_, sw_ = padded.strides
        strides = (sn, sc, sh_ * self.dilation[0], sw_ * self.dilation[1], sh_ * self.stride[0], sw_ * self.stride[1])
        return xp.lib.stride_tricks.as_strided(padded, self.shape[:2] + self.kernel + self.out, strides)

    def scatter(self, tap_values, dtype, xp, channels_major: bool = False):
        """The (N, C, H, W) image made by adding ``tap_values(a, b)`` (N, C, oh, ow) onto each tap's
        slice of a zero image, padding cropped. ``channels_major`` lays the memory out as (C, N, H, W)."""
        n, c = self.shape[:2]
        exact = self.tiles_exactly  # every element written once: no zero fill, no accumulation
        alloc = xp.empty if exact else xp.zeros
        if channels_major:
            image = alloc((c, n) + self.padded_hw, dtype).transpose(1, 0, 2, 3)
        else:
            image = alloc((n, c) + self.padded_hw, dtype)
        for a, b, tap in self.taps():
            if exact:
                image[tap] = tap_values(a, b)
            else:
                image[tap] += tap_values(a, b)
        return self.crop(image)


def _padded_hw(shape: tuple, pad: tuple) -> tuple[int, int]:
    return shape[2] + pad[0] + pad[1], shape[3] + pad[2] + pad[3]


# ----- im2col / col2im ------------------------------------------------------------------------------

# Axis order of the columns, as a permutation of the patch axes (N, C, kh, kw, oh, ow):
_LAYOUTS = {
    "torch": (0, 1, 2, 3, 4, 5),  # (N, C*kh*kw, oh*ow): PyTorch's unfold
    "gemm": (1, 2, 3, 0, 4, 5),  # (C*kh*kw, N*oh*ow): the whole batch as one matrix
}


def _cols_shape(geom: Windows, layout: str) -> tuple[int, int] | tuple[int, int, int]:
    (n, c), (kh, kw), (oh, ow) = geom.shape[:2], geom.kernel, geom.out
    return (n, c * kh * kw, oh * ow) if layout == "torch" else (c * kh * kw, n * oh * ow)


def _im2col(x: Tensor, geom: Windows, layout: str) -> Tensor:
    """Primitive: the windows of ``x`` as columns; backward is ``_col2im``."""
    patches = geom.patches(geom.padded(x._data))
    # The one copy; always a copy, so the columns never alias x (an in-place change to x can't reach them).
    cols = patches.transpose(_LAYOUTS[layout]).copy().reshape(_cols_shape(geom, layout))
    return record(cols, "im2col", (x,), lambda g, _: (_col2im(g, geom, layout),))


def _col2im(cols: Tensor, geom: Windows, layout: str) -> Tensor:
    """Primitive: columns summed back onto the image (overlaps add up); backward is ``_im2col``."""
    perm = _LAYOUTS[layout]
    patch_shape = geom.shape[:2] + geom.kernel + geom.out
    inverse = tuple(sorted(range(6), key=perm.__getitem__))
    patches = cols._data.reshape(tuple(patch_shape[i] for i in perm)).transpose(inverse)
    image = geom.scatter(lambda a, b: patches[:, :, a, b], cols._data.dtype, xp_of(cols._data),
                         channels_major=layout == "gemm")
    return record(image, "col2im", (cols,), lambda g, _: (_im2col(g, geom, layout),))


def unfold(input: Tensor, kernel_size, dilation=1, padding=0, stride=1) -> Tensor:
    """Extract sliding local blocks (im2col), as ``torch.nn.functional.unfold``: (N, C, H, W) ->
    (N, C * kh * kw, L), L the number of blocks; column ``l`` holds block ``l`` in row-major order,
    channel-major within. Differentiable to any order (its backward is :func:`fold`)."""
    x = tensor_operand(input, "unfold")
    x, added = _batched(x, 2, "unfold")
    geom = Windows.for_conv(x.shape, _ints(kernel_size, 2, "kernel_size", "unfold", 1),
                            _ints(stride, 2, "stride", "unfold", 1), _ints(dilation, 2, "dilation", "unfold", 1),
                            _symmetric(_ints(padding, 2, "padding", "unfold", 0)), "unfold")
    return _unbatched(_im2col(x, geom, "torch"), added)


def fold(input: Tensor, output_size, kernel_size, dilation=1, padding=0, stride=1) -> Tensor:
    """Combine sliding local blocks into an image (col2im), summing overlaps, as
    ``torch.nn.functional.fold``: (N, C * kh * kw, L) -> (N, C, *output_size). The adjoint of
    :func:`unfold` (``fold(unfold(x))`` multiplies each pixel by the number of blocks holding it)."""
    cols = tensor_operand(input, "fold")
    if cols.ndim not in (2, 3):
        raise RuntimeError(f"fold: expected a 2-D (unbatched) or 3-D (batched (N, C*kh*kw, L)) input, got {describe(cols)}")
    added = cols.ndim == 2
    if added:
        cols = cols.unsqueeze(0)
    kernel = _ints(kernel_size, 2, "kernel_size", "fold", 1)
    size = _ints(output_size, 2, "output_size", "fold", 1)
    n, rows, length = cols.shape
    if rows % (kernel[0] * kernel[1]):
        raise RuntimeError(
            f"fold: expected the size of input dimension 1 ({rows}, input {describe(cols)}) to be divisible by the "
            f"product of kernel_size {kernel} = {kernel[0] * kernel[1]}"
        )
    geom = Windows.for_conv((n, rows // (kernel[0] * kernel[1])) + size, kernel, _ints(stride, 2, "stride", "fold", 1),
                            _ints(dilation, 2, "dilation", "fold", 1),
                            _symmetric(_ints(padding, 2, "padding", "fold", 0)), "fold")
    if geom.out[0] * geom.out[1] != length:
        raise RuntimeError(
            f"fold: output_size={size}, kernel_size={kernel}, stride, dilation and padding give {geom.out[0]} * "
            f"{geom.out[1]} = {geom.out[0] * geom.out[1]} blocks, but the input ({describe(cols)}) has L={length} "
            "columns in dimension 2"
        )
    return _unbatched(_col2im(cols, geom, "torch"), added)


def _symmetric(padding: tuple[int, int]) -> tuple[int, int, int, int]:
    return padding[0], padding[0], padding[1], padding[1]


# ----- convolution ----------------------------------------------------------------------------------

def conv2d(input: Tensor, weight: Tensor, bias: Tensor | None = None, stride=1, padding=0, dilation=1,
           groups: int = 1) -> Tensor:
    """2-D convolution (cross-correlation, as ``torch.nn.functional.conv2d``): input (N, C, H, W) or
    (C, H, W), weight (out_channels, C / groups, kh, kw), bias (out_channels,). ``padding`` is an
    int, a pair, ``'valid'`` (none) or ``'same'`` (output size = input size; stride 1; any odd total
    goes to the bottom/right, as PyTorch).

    Built as im2col + one GEMM per group (+ bias), composite over differentiable primitives. The result
    is laid out channel-major in memory (a permuted view); ``.contiguous()`` makes it NCHW."""
    return _conv("conv2d", input, weight, bias, stride, padding, dilation, groups, spatial=2)


def conv1d(input: Tensor, weight: Tensor, bias: Tensor | None = None, stride=1, padding=0, dilation=1,
           groups: int = 1) -> Tensor:
    """1-D convolution as ``torch.nn.functional.conv1d``: input (N, C, L) or (C, L), weight
    (out_channels, C / groups, k). Runs as a 2-D convolution of height 1."""
    return _conv("conv1d", input, weight, bias, stride, padding, dilation, groups, spatial=1)


def _conv(op: str, x, weight, bias, stride, padding, dilation, groups, spatial: int) -> Tensor:
    x, weight = tensor_operand(x, op), tensor_operand(weight, op)
    bias = None if bias is None else tensor_operand(bias, op)
    x, added = _batched(x, spatial, op)
    _check_conv_operands(op, x, weight, bias, groups, spatial)
    stride = _ints(stride, spatial, "stride", op, 1)
    dilation = _ints(dilation, spatial, "dilation", op, 1)
    kernel = tuple(weight.shape[2:])
    pad = _conv_padding(op, padding, kernel, stride, dilation)
    if spatial == 1:  # a 2-D convolution of height 1
        x, weight = x.unsqueeze(2), weight.unsqueeze(2)
        kernel, stride, dilation, pad = (1,) + kernel, (1,) + stride, (1,) + dilation, (0, 0) + pad
    geom = Windows.for_conv(x.shape, kernel, stride, dilation, pad, op)
    out = _conv_gemm(x, weight, bias, geom, groups)
    if spatial == 1:
        out = out.squeeze(2)
    return _unbatched(out, added)


def _conv_gemm(x: Tensor, weight: Tensor, bias: Tensor | None, geom: Windows, groups: int) -> Tensor:
    """im2col in the (C*kh*kw, N*L) layout, then (out_channels, C*kh*kw) @ columns: one GEMM per group.
    The bias is added to the (O, N*L) product (its gradient is then a sum along contiguous rows), which
    reshapes to (O, N, oh, ow) and is returned as its (N, O, oh, ow) permutation."""
    n, (oh, ow), o = geom.shape[0], geom.out, weight.shape[0]
    cols = _im2col(x, geom, "gemm")
    if groups == 1:
        out = weight.reshape(o, -1) @ cols
    else:  # a group's channels are a contiguous block of rows: (G, C/G*kh*kw, N*L) is a free reshape
        out = (weight.reshape(groups, o // groups, -1) @ cols.reshape(groups, -1, cols.shape[1])).reshape(o, -1)
    if bias is not None:
        out = out + bias.reshape(o, 1)
    return out.reshape(o, n, oh, ow).permute(1, 0, 2, 3)


def _check_conv_operands(op: str, x: Tensor, weight: Tensor, bias: Tensor | None, groups, spatial: int) -> None:
    kernel_dims = "(out_channels, in_channels / groups, kh, kw)" if spatial == 2 else "(out_channels, in_channels / groups, k)"
    if weight.ndim != spatial + 2:
        raise RuntimeError(f"{op}: expected a {spatial + 2}-D weight {kernel_dims}, got {describe(weight)}")
    if not _is_int(groups) or groups < 1:
        raise RuntimeError(f"{op}: groups must be a positive int, got {groups!r}")
    channels, out_channels = x.shape[1], weight.shape[0]
    if weight.shape[1] * groups != channels:
        raise RuntimeError(
            f"{op}: given groups={groups} and weight of shape {tuple(weight.shape)}, expected input of shape "
            f"{tuple(x.shape)} to have weight.shape[1] * groups = {weight.shape[1] * groups} channels, but it has "
            f"{channels}"
        )
    if out_channels % groups:
        raise RuntimeError(
            f"{op}: out_channels ({out_channels}, weight shape {tuple(weight.shape)}) must be divisible by groups={groups}"
        )
    for name, t in (("weight", weight), ("bias", bias)):
        if t is not None and t.dtype != x.dtype:
            raise RuntimeError(
                f"{op}: input ({describe(x)}) and {name} ({describe(t)}) must have the same dtype; convert one with .to()"
            )
        if t is not None and t.device != x.device:
            raise RuntimeError(f"{op}: input is on {x.device} but {name} is on {t.device}; move one with .to(device)")
    if bias is not None and tuple(bias.shape) != (out_channels,):
        raise RuntimeError(
            f"{op}: expected bias of shape ({out_channels},) for weight of shape {tuple(weight.shape)}, got {describe(bias)}"
        )


def _conv_padding(op: str, padding, kernel: tuple, stride: tuple, dilation: tuple) -> tuple[int, ...]:
    """(before, after) per spatial dim, flattened, from an int, a tuple, 'valid' or 'same'."""
    if isinstance(padding, str):
        if padding == "valid":
            return (0, 0) * len(kernel)
        if padding != "same":
            raise ValueError(f"{op}: padding must be an int, a tuple of ints, 'valid' or 'same', got {padding!r}")
        if any(s != 1 for s in stride):
            raise RuntimeError(f"{op}: padding='same' is not supported for strided convolutions (stride={stride})")
        pad = []
        for k, d in zip(kernel, dilation):
            total = d * (k - 1)
            pad += [total // 2, total - total // 2]
        return tuple(pad)
    per_dim = _ints(padding, len(kernel), "padding", op, 0)
    return tuple(p for p in per_dim for _ in range(2))


# ----- window sums (average pooling; max pooling's backward) ----------------------------------------

def _window_gather(x: Tensor, geom: Windows, weights=None, scale=None) -> Tensor:
    """Primitive, linear in ``x``: out[n, c, i, j] = scale[i, j] * sum over taps (a, b) of
    weights[a, b, n, c, i, j] * padded_x[n, c, tap (a, b) of window (i, j)]. ``weights`` (constant,
    per tap, broadcastable) and ``scale`` (a number or an (oh, ow) array) may be None (= 1).
    Backward is ``_window_scatter`` with the same weights."""
    padded = geom.padded(x._data)
    out = None
    for a, b, tap in geom.taps():
        term = padded[tap] if weights is None else padded[tap] * weights[a, b]
        if out is None:
            out = term.copy() if weights is None else term
        else:
            out += term
    if scale is not None:
        out *= scale
    return record(out, "window_gather", (x,), lambda g, _: (_window_scatter(g, geom, weights, scale),))


def _window_scatter(g: Tensor, geom: Windows, weights=None, scale=None) -> Tensor:
    """Primitive, the adjoint of ``_window_gather``: each window's value, times its weight per tap,
    added onto the elements of that window. Backward is ``_window_gather``."""
    values = g._data if scale is None else g._data * scale
    tap_values = (lambda a, b: values) if weights is None else (lambda a, b: values * weights[a, b])
    image = geom.scatter(tap_values, values.dtype, xp_of(values))
    return record(image, "window_scatter", (g,), lambda h, _: (_window_gather(h, geom, weights, scale),))


# ----- max pooling ----------------------------------------------------------------------------------

def max_pool2d(input: Tensor, kernel_size, stride=None, padding=0, dilation=1, ceil_mode: bool = False,
               return_indices: bool = False):
    """2-D max pooling as ``torch.nn.functional.max_pool2d`` ((N, C, H, W) or (C, H, W) input; ``stride``
    defaults to ``kernel_size``; implicit padding is -inf). With ``return_indices`` also returns the
    flat index (into H * W) of each window's first maximum, as PyTorch.

    Gradient: split evenly among the elements tied for a window's maximum (PyTorch picks one)."""
    return _max_pool("max_pool2d", input, kernel_size, stride, padding, dilation, ceil_mode, return_indices, 2)


def max_pool1d(input: Tensor, kernel_size, stride=None, padding=0, dilation=1, ceil_mode: bool = False,
               return_indices: bool = False):
    """1-D max pooling as ``torch.nn.functional.max_pool1d`` ((N, C, L) or (C, L) input); ties as max_pool2d."""
    return _max_pool("max_pool1d", input, kernel_size, stride, padding, dilation, ceil_mode, return_indices, 1)


def _max_pool(op, x, kernel_size, stride, padding, dilation, ceil_mode, return_indices, spatial: int):
    x = tensor_operand(x, op)
    x, added = _batched(x, spatial, op)
    if x.dtype.name == "bool":
        raise RuntimeError(f"{op}: expected a numeric input, got {describe(x)}")
    x4 = x.unsqueeze(2) if spatial == 1 else x
    geom = _pool_geometry(op, x4, kernel_size, stride, padding, dilation, ceil_mode, spatial)
    out = _max_pool_windows(x4, geom)
    indices = _argmax_indices(x4._data, geom) if return_indices else None
    if spatial == 1:
        out = out.squeeze(2)
        indices = None if indices is None else indices.squeeze(2)
    out = _unbatched(out, added)
    if not return_indices:
        return out
    return out, _unbatched(wrap(indices), added)


def _pool_geometry(op, x: Tensor, kernel_size, stride, padding, dilation, ceil_mode, spatial: int) -> Windows:
    """Windows for pooling ``x`` (N, C, H, W); 1-D arguments describe the W axis (H = 1)."""
    kernel = _ints(kernel_size, spatial, "kernel_size", op, 1)
    stride = kernel if stride is None or (isinstance(stride, Sequence) and len(stride) == 0) \
        else _ints(stride, spatial, "stride", op, 1)
    padding = _ints(padding, spatial, "padding", op, 0)
    dilation = _ints(dilation, spatial, "dilation", op, 1)
    if spatial == 1:
        kernel, stride, padding, dilation = (1,) + kernel, (1,) + stride, (0,) + padding, (1,) + dilation
    return Windows.for_pool(tuple(x.shape), kernel, stride, dilation, padding, bool(ceil_mode), op)


def _lowest(dtype):
    """The fill value for max pooling's padding: -inf, or the smallest integer."""
    return -np.inf if dtype.kind == "f" else np.iinfo(dtype).min


def _max_pool_windows(x: Tensor, geom: Windows) -> Tensor:
    """Primitive: the maximum over each window's taps (elementwise maxima of strided slices; measured
    ~20x faster in numpy than a max over the small axes of a reshaped view). The backward rule
    scatters the gradient onto the maxima, tied elements sharing it evenly."""
    xp = xp_of(x._data)
    padded = geom.padded(x._data, _lowest(x._data.dtype))
    out = None
    for _, _, tap in geom.taps():
        if out is None:
            out = padded[tap].copy()
        else:
            xp.maximum(out, padded[tap], out=out)

    def rule(g, out):
        weights = _tie_weights(geom.padded(x._data, _lowest(x._data.dtype)), out._data, geom)
        return (_window_scatter(g, geom, weights),)

    return record(out, "max_pool2d", (x,), rule, (x,), keep_output=True)


def _tie_weights(padded, out, geom: Windows):
    """Per tap, the share of its window's gradient: 1 for the maximum, 1/k for each of k tied maxima,
    0 elsewhere. A bool array when no window has a tie (the usual case with real data)."""
    xp = xp_of(padded)
    hits = xp.empty(geom.kernel + out.shape, dtype=bool)
    for a, b, tap in geom.taps():
        xp.equal(padded[tap], out, out=hits[a, b])
    if out.dtype.kind == "f":
        nan = xp.isnan(out)
        if nan.any():  # NaN != NaN: a window whose maximum is NaN routes to its NaNs
            for a, b, tap in geom.taps():
                hits[a, b] |= nan & xp.isnan(padded[tap])
    count = hits.sum(axis=(0, 1), dtype=xp.int32)
    if int(count.max()) <= 1:
        return hits
    return hits / count.astype(out.dtype)


def _argmax_indices(image, geom: Windows):
    """Per window, the flat index (into H * W) of its first maximum, NaN counting as maximal (PyTorch's rule)."""
    xp = xp_of(image)
    _, _, h, w = geom.shape
    (sh, sw), (dh, dw), (top, _, left, _) = geom.stride, geom.dilation, geom.pad
    rows = xp.arange(geom.out[0]) * sh - top
    cols = xp.arange(geom.out[1]) * sw - left
    padded = geom.padded(image, _lowest(image.dtype))
    best = xp.full(geom.shape[:2] + geom.out, _lowest(image.dtype), dtype=image.dtype)
    first_row = rows + (-rows).clip(0) // dh * dh + ((-rows).clip(0) % dh > 0) * dh  # first real row
    first_col = cols + (-cols).clip(0) // dw * dw + ((-cols).clip(0) % dw > 0) * dw
    index = xp.broadcast_to(first_row[:, None] * w + first_col[None, :], best.shape).astype(xp.int64)
    for a, b, tap in geom.taps():
        values = padded[tap]
        better = values > best
        if image.dtype.kind == "f":
            better |= xp.isnan(values)
        xp.copyto(best, values, where=better)
        position = (rows[:, None] + a * dh) * w + (cols[None, :] + b * dw)
        xp.copyto(index, xp.broadcast_to(position, index.shape), where=better)
    return index


# ----- average pooling ------------------------------------------------------------------------------

def avg_pool2d(input: Tensor, kernel_size, stride=None, padding=0, ceil_mode: bool = False,
               count_include_pad: bool = True, divisor_override: int | None = None) -> Tensor:
    """2-D average pooling as ``torch.nn.functional.avg_pool2d``: each window's sum divided by its
    size (padding counted when ``count_include_pad``, never the ceil-mode overhang), or by
    ``divisor_override``."""
    return _avg_pool("avg_pool2d", input, kernel_size, stride, padding, ceil_mode, count_include_pad,
                     divisor_override, 2)


def avg_pool1d(input: Tensor, kernel_size, stride=None, padding=0, ceil_mode: bool = False,
               count_include_pad: bool = True) -> Tensor:
    """1-D average pooling as ``torch.nn.functional.avg_pool1d`` ((N, C, L) or (C, L) input)."""
    return _avg_pool("avg_pool1d", input, kernel_size, stride, padding, ceil_mode, count_include_pad, None, 1)


def _avg_pool(op, x, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override, spatial):
    x = tensor_operand(x, op)
    _floating(x, op)
    x, added = _batched(x, spatial, op)
    x4 = x.unsqueeze(2) if spatial == 1 else x
    geom = _pool_geometry(op, x4, kernel_size, stride, padding, 1, ceil_mode, spatial)
    if divisor_override is not None:
        if not _is_int(divisor_override) or divisor_override == 0:
            raise RuntimeError(f"{op}: divisor_override must be a non-zero int, got {divisor_override!r}")
        scale = 1.0 / divisor_override
    else:
        scale = _avg_scale(geom, count_include_pad, x._data.dtype, xp_of(x._data))
    out = _window_gather(x4, geom, None, scale)
    if spatial == 1:
        out = out.squeeze(2)
    return _unbatched(out, added)


def _avg_scale(geom: Windows, count_include_pad: bool, dtype, xp):
    """1 / divisor per window: a number when all windows share it, else an (oh, ow) array.
    PyTorch's divisor: the window clipped to the padded image (count_include_pad) or to the image."""
    sizes = []  # small, so worked out on the host
    for axis in range(2):
        n, k, s, p = geom.shape[2 + axis], geom.kernel[axis], geom.stride[axis], geom.pad[2 * axis]
        starts = np.arange(geom.out[axis]) * s - p
        ends = np.minimum(starts + k, n + p)
        if not count_include_pad:
            starts, ends = np.maximum(starts, 0), np.minimum(ends, n)
        sizes.append(ends - starts)
    divisor = sizes[0][:, None] * sizes[1][None, :]
    if (divisor == divisor[0, 0]).all():
        return 1.0 / int(divisor[0, 0])
    return xp.asarray((1.0 / divisor).astype(dtype))


def adaptive_avg_pool2d(input: Tensor, output_size) -> Tensor:
    """``torch.nn.functional.adaptive_avg_pool2d``: average over bins [floor(i*H/oh), ceil((i+1)*H/oh))
    per output row (likewise columns). ``output_size`` is an int or a pair; None keeps that size.
    Sizes that divide evenly run as avg_pool2d; others as two matmuls with bin-averaging matrices."""
    x = tensor_operand(input, "adaptive_avg_pool2d")
    _floating(x, "adaptive_avg_pool2d")
    x, added = _batched(x, 2, "adaptive_avg_pool2d")
    size = _adaptive_size(output_size, tuple(x.shape[2:]), "adaptive_avg_pool2d")
    return _unbatched(_adaptive_avg(x, size), added)


def adaptive_avg_pool1d(input: Tensor, output_size) -> Tensor:
    """``torch.nn.functional.adaptive_avg_pool1d`` ((N, C, L) or (C, L) input)."""
    x = tensor_operand(input, "adaptive_avg_pool1d")
    _floating(x, "adaptive_avg_pool1d")
    x, added = _batched(x, 1, "adaptive_avg_pool1d")
    size = _adaptive_size(output_size, tuple(x.shape[2:]), "adaptive_avg_pool1d")
    return _unbatched(_adaptive_avg(x.unsqueeze(2), (1,) + size).squeeze(2), added)


def _adaptive_size(output_size, input_size: tuple, op: str) -> tuple[int, ...]:
    n = len(input_size)
    if output_size is None or _is_int(output_size):
        output_size = (output_size,) * n
    if not isinstance(output_size, Sequence) or len(output_size) != n:
        raise TypeError(f"{op}: output_size must be an int or a tuple of {n} ints (or None), got {output_size!r}")
    size = tuple(i if o is None else o for o, i in zip(output_size, input_size))
    return _ints(size, n, "output_size", op, 1)


def _adaptive_avg(x: Tensor, size: tuple[int, int]) -> Tensor:
    h, w = x.shape[2:]
    if h % size[0] == 0 and w % size[1] == 0:
        kernel = (h // size[0], w // size[1])
        geom = Windows(tuple(x.shape), kernel, kernel, (1, 1), (0, 0, 0, 0), size)
        return _window_gather(x, geom, None, 1.0 / (kernel[0] * kernel[1]))
    rows = _bin_matrix(size[0], h, x)
    cols = _bin_matrix(size[1], w, x)
    return rows @ x @ cols.mT


def _bin_matrix(bins: int, n: int, like: Tensor) -> Tensor:
    """(bins, n): row i averages the elements [floor(i*n/bins), ceil((i+1)*n/bins))."""
    i = np.arange(bins)
    starts, ends = (i * n) // bins, -((-(i + 1) * n) // bins)
    j = np.arange(n)
    inside = (j[None, :] >= starts[:, None]) & (j[None, :] < ends[:, None])
    matrix = (inside / (ends - starts)[:, None]).astype(like._data.dtype)
    return wrap(xp_of(like._data).asarray(matrix))
