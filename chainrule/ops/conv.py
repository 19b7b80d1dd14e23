"""Convolution and pooling on NCHW (and NCL) tensors, with torch.nn.functional's signatures.

Everything stands on one sliding-window geometry (:class:`~chainrule.backend.windows.Windows`): an
(H, W) image, padded, visited by a kh x kw kernel with a stride and a dilation, gives an (oh, ow) grid
of windows. The array work (and every compiled kernel) is in :mod:`chainrule.backend.windows`; this
module checks arguments and declares the primitives, each a forward on arrays with its backward rule:

- ``_conv_forward`` / ``_conv_input_grad`` / ``_conv_weight_grad``: convolution as im2col + one GEMM
  per group, its transposed convolution (the gradient in the input) and its weight gradient. Each
  one's backward is made of the other two, so convolution is differentiable to any order. The backend
  runs them over the batch a few images at a time, so the columns never exist for the whole batch.
- ``_im2col`` / ``_col2im``: every window as one column / columns summed back onto the image, in
  PyTorch's layout (N, C*kh*kw, L); each is the other's backward. ``unfold`` / ``fold``.
- ``_window_gather`` / ``_window_scatter``: weighted sums over the taps of each window, and their
  adjoint. Average pooling is one gather; max pooling's backward is one scatter whose weights route
  the gradient to the maxima.
- ``_max_pool_windows``: the elementwise maximum over the taps.

Layout: convolution outputs are channel-major in memory ((C, N, H, W), returned as an (N, C, H, W)
view), so that a chunk of images is a block of GEMM output columns; pooling, padding and the
gradients here keep whichever layout their input has, so a conv -> relu -> pool -> conv chain and its
backward never mix layouts (numpy's elementwise loops over mixed layouts are much slower) and never
transpose.

Tie policy (the project's rule for max): max pooling splits a window's gradient evenly among the
elements tied for its maximum (NaNs count as the maximum of their window). PyTorch sends it to one
index instead; without ties the two agree.
"""

from __future__ import annotations

from collections.abc import Sequence
from numbers import Integral

from chainrule.autograd.grad_mode import GRAD_ENABLED
from chainrule.backend import np, windows, xp_of
from chainrule.backend.windows import Windows, is_channels_major
from chainrule.ops._helpers import Tensor, describe, record, tensor_operand, wrap
from chainrule.ops.rows import take_rows

__all__ = ["unfold", "fold", "conv1d", "conv2d", "conv_transpose1d", "conv_transpose2d", "max_pool1d", "max_pool2d",
           "avg_pool1d", "avg_pool2d", "adaptive_avg_pool1d", "adaptive_avg_pool2d"]
__all__ += ["conv3d", "conv_transpose3d", "max_pool3d", "avg_pool3d", "adaptive_avg_pool3d"]
__all__ += ["adaptive_max_pool1d", "adaptive_max_pool2d", "max_unpool1d", "max_unpool2d", "lp_pool1d", "lp_pool2d"]


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
    layout = {1: "(N, C, L)", 2: "(N, C, H, W)", 3: "(N, C, D, H, W)"}[spatial]
    raise RuntimeError(
        f"{op}: expected a {spatial + 1}-D (unbatched) or {spatial + 2}-D (batched {layout}) input, got {describe(x)}"
    )


def _unbatched(out: Tensor, added: bool) -> Tensor:
    return out.squeeze(0) if added else out


# ----- im2col / col2im ------------------------------------------------------------------------------

def _im2col(x: Tensor, geom: Windows) -> Tensor:
    """Primitive: the windows of ``x`` as the columns of PyTorch's unfold, (N, C*kh*kw, L); backward
    is ``_col2im``."""
    return record(windows.window_columns(x._data, geom), "im2col", (x,), lambda g, _: (_col2im(g, geom),))


def _col2im(cols: Tensor, geom: Windows) -> Tensor:
    """Primitive: columns (N, C*kh*kw, L) summed back onto the image (overlaps add up); backward is
    ``_im2col``."""
    return record(windows.add_window_columns(cols._data, geom), "col2im", (cols,), lambda g, _: (_im2col(g, geom),))


def unfold(input: Tensor, kernel_size, dilation=1, padding=0, stride=1) -> Tensor:
    """Extract sliding local blocks (im2col), as ``torch.nn.functional.unfold``: (N, C, H, W) ->
    (N, C * kh * kw, L), L the number of blocks; column ``l`` holds block ``l`` in row-major order,
    channel-major within. Differentiable to any order (its backward is :func:`fold`)."""
    x = tensor_operand(input, "unfold")
    x, added = _batched(x, 2, "unfold")
    geom = Windows.for_conv(x.shape, _ints(kernel_size, 2, "kernel_size", "unfold", 1),
                            _ints(stride, 2, "stride", "unfold", 1), _ints(dilation, 2, "dilation", "unfold", 1),
                            _symmetric(_ints(padding, 2, "padding", "unfold", 0)), "unfold")
    return _unbatched(_im2col(x, geom), added)


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
    return _unbatched(_col2im(cols, geom), added)


def _symmetric(padding: tuple[int, int]) -> tuple[int, int, int, int]:
    return padding[0], padding[0], padding[1], padding[1]


# ----- convolution ----------------------------------------------------------------------------------

def conv2d(input: Tensor, weight: Tensor, bias: Tensor | None = None, stride=1, padding=0, dilation=1,
           groups: int = 1) -> Tensor:
    """2-D convolution (cross-correlation, as ``torch.nn.functional.conv2d``): input (N, C, H, W) or
    (C, H, W), weight (out_channels, C / groups, kh, kw), bias (out_channels,). ``padding`` is an
    int, a pair, ``'valid'`` (none) or ``'same'`` (output size = input size; stride 1; any odd total
    goes to the bottom/right, as PyTorch).

    Runs as im2col + one GEMM per group (+ bias), a few images at a time (``_conv_forward``). The
    result is laid out channel-major in memory (a permuted view); ``.contiguous()`` makes it NCHW."""
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
    out = _conv_forward(x, weight, bias, geom, groups)
    if spatial == 1:
        out = out.squeeze(2)
    return _unbatched(out, added)


def conv_transpose2d(input: Tensor, weight: Tensor, bias: Tensor | None = None, stride=1, padding=0,
                     output_padding=0, groups: int = 1, dilation=1) -> Tensor:
    """2-D transposed convolution as ``torch.nn.functional.conv_transpose2d`` (note: ``groups`` before
    ``dilation``): input (N, C, h, w) or (C, h, w), weight (C, out_channels / groups, kh, kw), bias
    (out_channels,); output size H = (h - 1) * stride - 2 * padding + dilation * (kh - 1) +
    output_padding + 1 (likewise W). ``output_padding`` (smaller than the stride or the dilation) adds
    rows and columns at the bottom and right that only the bias reaches.

    It is the gradient in its input of the convolution with the same geometry, so it runs as that
    primitive (``_conv_input_grad``): its gradients are a convolution (input) and that convolution's
    weight gradient with the roles swapped (weight), differentiable to any order."""
    return _conv_transpose("conv_transpose2d", input, weight, bias, stride, padding, output_padding, groups,
                           dilation, spatial=2)


def conv_transpose1d(input: Tensor, weight: Tensor, bias: Tensor | None = None, stride=1, padding=0,
                     output_padding=0, groups: int = 1, dilation=1) -> Tensor:
    """1-D transposed convolution as ``torch.nn.functional.conv_transpose1d``: input (N, C, L) or (C, L),
    weight (C, out_channels / groups, k). Runs as a 2-D one of height 1."""
    return _conv_transpose("conv_transpose1d", input, weight, bias, stride, padding, output_padding, groups,
                           dilation, spatial=1)


def _conv_transpose(op: str, x, weight, bias, stride, padding, output_padding, groups, dilation, spatial: int):
    x, weight = tensor_operand(x, op), tensor_operand(weight, op)
    bias = None if bias is None else tensor_operand(bias, op)
    x, added = _batched(x, spatial, op)
    _check_transpose_operands(op, x, weight, bias, groups, spatial)
    stride = _ints(stride, spatial, "stride", op, 1)
    dilation = _ints(dilation, spatial, "dilation", op, 1)
    padding = _ints(padding, spatial, "padding", op, 0)
    output_padding = _ints(output_padding, spatial, "output_padding", op, 0)
    if any(o >= s and o >= d for o, s, d in zip(output_padding, stride, dilation)):
        raise RuntimeError(
            f"{op}: output_padding must be smaller than either stride or dilation (in each dimension), but got "
            f"output_padding={output_padding}, stride={stride} and dilation={dilation}"
        )
    kernel = tuple(weight.shape[2:])
    if spatial == 1:  # a 2-D transposed convolution of height 1
        x, weight = x.unsqueeze(2), weight.unsqueeze(2)
        kernel, stride, dilation = (1,) + kernel, (1,) + stride, (1,) + dilation
        padding, output_padding = (0,) + padding, (0,) + output_padding
    geom = Windows.for_transpose(x.shape, weight.shape[1] * groups, kernel, stride, dilation, padding,
                                 output_padding, op)
    out = _conv_input_grad(x, weight, geom, groups)
    if bias is not None:
        out = out + bias.reshape((-1,) + (1,) * max(2, spatial))
    if spatial == 1:
        out = out.squeeze(2)
    return _unbatched(out, added)


# Convolution is three primitives, each the adjoint of the others in one argument, so that gradients of
# every order come from these three rules (PyTorch's convolution / convolution_backward split):
#
#   _conv_forward(x, w, b)      y  = W @ im2col(x) + b      the convolution
#   _conv_input_grad(g, w)      gx = col2im(W^T @ g)        its gradient in x: a transposed convolution
#   _conv_weight_grad(x, g)     gw = g @ im2col(x)^T        its gradient in w
#
# with W the weight as one matrix per group (out_channels/G, C/G*kh*kw). The arrays are computed by
# chainrule.backend.windows (convolve, convolve_transpose, convolve_weight_grad).

_KEEP_COLUMNS_BYTES = 32 << 20  # the most of x's columns the forward may keep for the weight gradient


def _conv_forward(x: Tensor, w: Tensor, bias: Tensor | None, geom: Windows, groups: int) -> Tensor:
    """Primitive: the convolution of ``x`` (N, C, H, W) with ``w`` (O, C/G, kh, kw), plus ``bias``;
    laid out channel-major."""
    # The weight gradient multiplies by x's columns. When it will be taken (this node is recorded and w
    # requires grad), the backend may keep the columns it made, up to a budget, instead of making them
    # again in the backward; otherwise keeping them would only hold memory.
    budget = _KEEP_COLUMNS_BYTES if w._rg and GRAD_ENABLED[0] else 0
    out, kept = windows.convolve(x._data, w._data, None if bias is None else bias._data, geom, groups, budget)
    o = w.shape[0]

    def rule(g, _):
        grads = (_conv_input_grad(g, w, geom, groups) if x._rg else None,
                 _conv_weight_grad(x, g, geom, groups, kept) if w._rg else None)
        if bias is None:
            return grads
        return grads + (g.transpose(0, 1).reshape(o, -1).sum(1) if bias._rg else None,)

    inputs = (x, w) if bias is None else (x, w, bias)
    return record(out, "conv2d", inputs, rule, (x, w))


def _conv_input_grad(g: Tensor, w: Tensor, geom: Windows, groups: int) -> Tensor:
    """Primitive: the convolution's gradient in its input for the output gradient ``g``: the transposed
    convolution col2im(W^T @ g), an (N, C, H, W) image laid out channel-major."""

    def rule(h, _):
        return (_conv_forward(h, w, None, geom, groups) if g._rg else None,
                _conv_weight_grad(h, g, geom, groups) if w._rg else None)

    image = windows.convolve_transpose(g._data, w._data, geom, groups)
    return record(image, "conv2d_input_grad", (g, w), rule, (g, w))


def _conv_weight_grad(x: Tensor, g: Tensor, geom: Windows, groups: int, columns: list | None = None) -> Tensor:
    """Primitive: the convolution's gradient in its weight for the input ``x`` and the output gradient
    ``g``: g @ im2col(x)^T summed over the batch, shaped (O, C/G, kh, kw). ``columns``: x's columns as
    the forward kept them, if it did."""

    def rule(h, _):
        return (_conv_input_grad(g, h, geom, groups) if x._rg else None,
                _conv_forward(x, h, None, geom, groups) if g._rg else None)

    total = windows.convolve_weight_grad(x._data, g._data, geom, groups, columns)
    return record(total, "conv2d_weight_grad", (x, g), rule, (x, g))


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
    _check_bias_dtype_device(op, x, weight, bias, out_channels)


def _check_transpose_operands(op: str, x: Tensor, weight: Tensor, bias: Tensor | None, groups, spatial: int) -> None:
    kernel_dims = "(in_channels, out_channels / groups, kh, kw)" if spatial == 2 else "(in_channels, out_channels / groups, k)"
    if weight.ndim != spatial + 2:
        raise RuntimeError(f"{op}: expected a {spatial + 2}-D weight {kernel_dims}, got {describe(weight)}")
    if not _is_int(groups) or groups < 1:
        raise RuntimeError(f"{op}: groups must be a positive int, got {groups!r}")
    if weight.shape[0] % groups:
        raise RuntimeError(
            f"{op}: given groups={groups}, expected weight to be divisible by {groups} at dimension 0 (in_channels), "
            f"but got weight of shape {tuple(weight.shape)}"
        )
    if x.shape[1] != weight.shape[0]:
        raise RuntimeError(
            f"{op}: weight of shape {tuple(weight.shape)} {kernel_dims} expects input of shape {tuple(x.shape)} "
            f"to have {weight.shape[0]} channels, but it has {x.shape[1]}"
        )
    _check_bias_dtype_device(op, x, weight, bias, weight.shape[1] * groups)


def _check_bias_dtype_device(op: str, x: Tensor, weight: Tensor, bias: Tensor | None, out_channels: int) -> None:
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
    """Primitive, linear in ``x``: out[n, c, i, j] = scale[..., i, j] * sum over taps (a, b) of
    weights[a, b][n, c, i, j] * padded_x[n, c, tap (a, b) of window (i, j)]. ``weights`` (constant,
    a mapping from each tap (a, b) to an array broadcastable to the output) and ``scale`` (a number or
    an array broadcastable to the output) may be None (= 1). Backward is ``_window_scatter`` with the
    same weights."""
    layout = is_channels_major(x._data)
    return record(windows.window_gather(x._data, geom, weights, scale), "window_gather", (x,),
                  lambda g, _: (_window_scatter(g, geom, weights, scale, layout),))


def _window_scatter(g: Tensor, geom: Windows, weights=None, scale=None, channels_major: bool | None = None) -> Tensor:
    """Primitive, the adjoint of ``_window_gather``: each window's value, times its weight per tap,
    added onto the elements of that window. The image is laid out channel-major or not as asked
    (the gathered input's layout; ``g``'s when None). Backward is ``_window_gather``."""
    image = windows.window_scatter(g._data, geom, weights, scale, channels_major)
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
    indices = windows.argmax_indices(x4._data, geom) if return_indices else None
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


def _max_pool_windows(x: Tensor, geom: Windows) -> Tensor:
    """Primitive: the maximum over each window's taps, in x's memory layout. The backward scatters the
    gradient onto the maxima, tied elements sharing it evenly; its plain form (``fast``) is the same
    formula on arrays (one compiled pass for 2 x 2 windows in float32)."""

    def rule(g, out):
        hits, share = windows.tie_shares(x._data, out._data, geom)
        return (_window_scatter(g, geom, hits, share, is_channels_major(x._data)),)

    return record(windows.max_pool(x._data, geom), "max_pool2d", (x,), rule, (x,), keep_output=True,
                  fast=lambda g, out: (windows.max_pool_grad(x._data, out, g, geom),))


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
    for axis in range(len(geom.kernel)):
        n, k, s, p = geom.shape[2 + axis], geom.kernel[axis], geom.stride[axis], geom.pad[2 * axis]
        starts = np.arange(geom.out[axis]) * s - p
        ends = np.minimum(starts + k, n + p)
        if not count_include_pad:
            starts, ends = np.maximum(starts, 0), np.minimum(ends, n)
        sizes.append(ends - starts)
    divisor = np.ones((), np.int64)
    for size in sizes:
        divisor = np.multiply.outer(divisor, size)
    if (divisor == divisor.flat[0]).all():
        return 1.0 / int(divisor.flat[0])
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


def _adaptive_avg(x: Tensor, size: tuple[int, ...]) -> Tensor:
    if len(size) == 3:  # the depth bins as one matmul over (D, H*W), then the 2-d bins
        n, c, d, h, w = x.shape
        x = (_bin_matrix(size[0], d, x) @ x.reshape(n, c, d, h * w)).reshape(n, c, size[0], h, w)
        return _adaptive_avg(x.reshape(n, c * size[0], h, w), size[1:]).reshape((n, c) + size)
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


def _bins(bins: int, n: int):
    """Adaptive pooling's bins over n elements: starts and ends (numpy), [floor(i*n/bins), ceil((i+1)*n/bins))."""
    i = np.arange(bins)
    return (i * n) // bins, -((-(i + 1) * n) // bins)


# ----- adaptive max pooling -------------------------------------------------------------------------

def adaptive_max_pool2d(input: Tensor, output_size, return_indices: bool = False):
    """``torch.nn.functional.adaptive_max_pool2d``: the maximum over bins [floor(i*H/oh), ceil((i+1)*H/oh))
    (likewise columns); with ``return_indices`` also the flat index (into H * W) of each bin's first maximum.
    Composite: each bin's elements gathered (index_select per axis, bins padded to one size with -inf) and
    reduced with amax, so the gradient follows amax's tie policy (split evenly among tied maxima)."""
    return _adaptive_max("adaptive_max_pool2d", input, output_size, return_indices, 2)


def adaptive_max_pool1d(input: Tensor, output_size, return_indices: bool = False):
    """``torch.nn.functional.adaptive_max_pool1d`` ((N, C, L) or (C, L) input); as adaptive_max_pool2d."""
    return _adaptive_max("adaptive_max_pool1d", input, output_size, return_indices, 1)


def _adaptive_max(op, x, output_size, return_indices, spatial: int):
    x = tensor_operand(x, op)
    _floating(x, op)
    x, added = _batched(x, spatial, op)
    sizes = tuple(x.shape[2:])
    out_size = _adaptive_size(output_size, sizes, op)
    if any(s == 0 for s in sizes):
        raise RuntimeError(f"{op}: expected non-empty spatial dimensions, got input {describe(x)}")
    xp = xp_of(x._data)
    valid, starts, taps = [], [], []
    gathered = x
    for axis, (n, o) in enumerate(zip(sizes, out_size)):
        start, end = _bins(o, n)
        k = int((end - start).max())
        offsets = start[:, None] + np.arange(k)[None, :]
        valid.append(offsets < end[:, None])
        starts.append(start)
        taps.append(k)
        index = wrap(xp.asarray(np.minimum(offsets, n - 1).reshape(-1)))
        dim = 2 + 2 * axis
        gathered = gathered.index_select(dim, index).unflatten(dim, (o, k))
    # (N, C, o1, k1, o2, k2, ...) -> (N, C, o1, o2, ..., k1, k2, ...)
    order = (0, 1) + tuple(2 + 2 * a for a in range(spatial)) + tuple(3 + 2 * a for a in range(spatial))
    gathered = gathered.permute(*order)
    invalid = np.ones((), bool)
    for axis, v in enumerate(valid):  # broadcast each axis' (o, k) mask into place
        shape = [1] * (2 * spatial)
        shape[axis], shape[spatial + axis] = v.shape
        invalid = invalid & v.reshape(shape)
    invalid = ~invalid
    if invalid.any():
        gathered = gathered.masked_fill(wrap(xp.asarray(invalid)), float("-inf"))
    tap_dims = tuple(range(2 + spatial, 2 + 2 * spatial))
    out = _unbatched(gathered.amax(dim=tap_dims), added)
    if not return_indices:
        return out
    flat = gathered._data.reshape(gathered.shape[:2 + spatial] + (-1,))
    best = xp.unravel_index(xp.argmax(flat, axis=-1), tuple(taps))  # the first maximum; NaN wins
    index = 0
    for axis in range(spatial):
        shape = [1] * spatial
        shape[axis] = out_size[axis]
        position = xp.asarray(starts[axis]).reshape(shape) + best[axis]
        index = index * sizes[axis] + position
    return out, _unbatched(wrap(xp.asarray(index, dtype=xp.int64)), added)


# ----- max unpooling --------------------------------------------------------------------------------

def max_unpool2d(input: Tensor, indices: Tensor, kernel_size, stride=None, padding=0, output_size=None) -> Tensor:
    """``torch.nn.functional.max_unpool2d``: the partial inverse of max_pool2d. Each value of ``input``
    goes to its flat index (into H * W) from ``indices`` (max_pool2d's, int64), zeros elsewhere; the
    output size is (h - 1) * stride - 2 * padding + kernel_size, or ``output_size``. Its gradient gathers
    the output's gradient at the indices."""
    return _max_unpool("max_unpool2d", input, indices, kernel_size, stride, padding, output_size, 2)


def max_unpool1d(input: Tensor, indices: Tensor, kernel_size, stride=None, padding=0, output_size=None) -> Tensor:
    """``torch.nn.functional.max_unpool1d`` ((N, C, L) or (C, L) input): as max_unpool2d."""
    return _max_unpool("max_unpool1d", input, indices, kernel_size, stride, padding, output_size, 1)


def _max_unpool(op, x, indices, kernel_size, stride, padding, output_size, spatial: int):
    x, indices = tensor_operand(x, op), tensor_operand(indices, op)
    if indices.dtype.name != "int64":
        raise RuntimeError(f"{op}: elements in indices should be type int64 but got: {indices.dtype.name}")
    if tuple(indices.shape) != tuple(x.shape):
        raise RuntimeError(
            f"{op}: expected shape of indices to be same as that of the input tensor ({tuple(x.shape)}) but got "
            f"indices tensor with shape: {tuple(indices.shape)}"
        )
    x, added = _batched(x, spatial, op)
    indices = indices.unsqueeze(0) if added else indices
    kernel = _ints(kernel_size, spatial, "kernel_size", op, 1)
    stride = kernel if stride is None else _ints(stride, spatial, "stride", op, 1)
    padding = _ints(padding, spatial, "padding", op, 0)
    size = _unpool_output_size(op, tuple(x.shape[2:]), kernel, stride, padding, output_size)
    n, c = x.shape[:2]
    total = int(np.prod(size))
    flat_index = indices.reshape(n, c, -1)
    if flat_index.numel():
        low, high = int(flat_index._data.min()), int(flat_index._data.max())
        if low < 0 or high >= total:
            bad = low if low < 0 else high
            raise RuntimeError(
                f"{op}: found an invalid max index: {bad} (output volumes are of size {'x'.join(map(str, size))})"
            )
    zeros = wrap(xp_of(x._data).zeros((n, c, total), x._data.dtype))
    out = zeros.scatter(2, flat_index, x.reshape(n, c, -1)).reshape((n, c) + size)
    return _unbatched(out, added)


def _unpool_output_size(op, input_size, kernel, stride, padding, output_size) -> tuple[int, ...]:
    """PyTorch's rule: (h - 1) * stride - 2 * padding + kernel, or ``output_size`` (its last dims) when
    within a stride of that."""
    n = len(kernel)
    default = tuple((i - 1) * s + k - 2 * p for i, s, k, p in zip(input_size, stride, kernel, padding))
    if output_size is None:
        size = default
    else:
        output_size = tuple(int(v) for v in (output_size if isinstance(output_size, Sequence) else (output_size,)))
        if len(output_size) == n + 2:
            output_size = output_size[2:]
        if len(output_size) != n:
            raise ValueError(
                f"output_size should be a sequence containing {n} or {n + 2} elements, but it has a length of "
                f"'{len(output_size)}'"
            )
        for d in range(n):
            low, high = default[d] - stride[d], default[d] + stride[d]
            if not low < output_size[d] < high:
                raise ValueError(f'invalid output_size "{list(output_size)}" (dim {d} must be between {low} and {high})')
        size = output_size
    if any(s < 0 for s in size):
        raise ValueError(f"{op}: output_size must contain non-negative spatial dimensions, but got {list(size)}")
    return tuple(size)


# ----- power-average pooling ------------------------------------------------------------------------

def lp_pool2d(input: Tensor, norm_type, kernel_size, stride=None, ceil_mode: bool = False) -> Tensor:
    """``torch.nn.functional.lp_pool2d``: (sum over each window of x ** p) ** (1 / p), composed as PyTorch
    does (avg_pool2d of x ** p times the window size; p = inf is max pooling of |x|), so its gradient
    (zero where a window's sum is zero) is PyTorch's."""
    return _lp_pool(input, norm_type, kernel_size, stride, ceil_mode, 2)


def lp_pool1d(input: Tensor, norm_type, kernel_size, stride=None, ceil_mode: bool = False) -> Tensor:
    """``torch.nn.functional.lp_pool1d`` ((N, C, L) or (C, L) input): as lp_pool2d."""
    return _lp_pool(input, norm_type, kernel_size, stride, ceil_mode, 1)


def _lp_pool(x, norm_type, kernel_size, stride, ceil_mode, spatial: int) -> Tensor:
    from chainrule.ops.elementwise import relu

    op = f"lp_pool{spatial}d"
    x = tensor_operand(x, op)
    max_pool, avg_pool = _POOLS[spatial]
    if norm_type == float("inf"):
        return max_pool(x.abs(), kernel_size, stride, 0, 1, ceil_mode)
    if norm_type == -float("inf"):
        return -max_pool(-x.abs(), kernel_size, stride, 0, 1, ceil_mode)
    kernel = _ints(kernel_size, spatial, "kernel_size", op, 1)
    out = avg_pool(x.pow(norm_type), kernel_size, stride, 0, ceil_mode)
    return (out.sign() * relu(out.abs())).mul(int(np.prod(kernel))).pow(1.0 / norm_type)


_POOLS = {1: (max_pool1d, avg_pool1d), 2: (max_pool2d, avg_pool2d)}


# ----- 3-d ------------------------------------------------------------------------------------------
#
# The same primitives over (N, C, D, H, W): the geometry has three spatial axes and the backend runs it
# with numpy (the compiled kernels are 2-d only).

def conv3d(input: Tensor, weight: Tensor, bias: Tensor | None = None, stride=1, padding=0, dilation=1,
           groups: int = 1) -> Tensor:
    """3-D convolution as ``torch.nn.functional.conv3d``: input (N, C, D, H, W) or (C, D, H, W), weight
    (out_channels, C / groups, kd, kh, kw); the same three primitives as conv2d."""
    return _conv("conv3d", input, weight, bias, stride, padding, dilation, groups, spatial=3)


def conv_transpose3d(input: Tensor, weight: Tensor, bias: Tensor | None = None, stride=1, padding=0,
                     output_padding=0, groups: int = 1, dilation=1) -> Tensor:
    """3-D transposed convolution as ``torch.nn.functional.conv_transpose3d``: weight (C, out_channels /
    groups, kd, kh, kw); the gradient in its input of the convolution with the same geometry."""
    return _conv_transpose("conv_transpose3d", input, weight, bias, stride, padding, output_padding, groups,
                           dilation, spatial=3)


def max_pool3d(input: Tensor, kernel_size, stride=None, padding=0, dilation=1, ceil_mode: bool = False,
               return_indices: bool = False):
    """3-D max pooling as ``torch.nn.functional.max_pool3d``; indices are flat into D * H * W; ties as max_pool2d."""
    return _max_pool("max_pool3d", input, kernel_size, stride, padding, dilation, ceil_mode, return_indices, 3)


def avg_pool3d(input: Tensor, kernel_size, stride=None, padding=0, ceil_mode: bool = False,
               count_include_pad: bool = True, divisor_override: int | None = None) -> Tensor:
    """3-D average pooling as ``torch.nn.functional.avg_pool3d``."""
    return _avg_pool("avg_pool3d", input, kernel_size, stride, padding, ceil_mode, count_include_pad,
                     divisor_override, 3)


def adaptive_avg_pool3d(input: Tensor, output_size) -> Tensor:
    """``torch.nn.functional.adaptive_avg_pool3d`` ((N, C, D, H, W) or (C, D, H, W) input)."""
    x = tensor_operand(input, "adaptive_avg_pool3d")
    _floating(x, "adaptive_avg_pool3d")
    x, added = _batched(x, 3, "adaptive_avg_pool3d")
    size = _adaptive_size(output_size, tuple(x.shape[2:]), "adaptive_avg_pool3d")
    return _unbatched(_adaptive_avg(x, size), added)


def adaptive_max_pool3d(input: Tensor, output_size, return_indices: bool = False):
    """``torch.nn.functional.adaptive_max_pool3d`` ((N, C, D, H, W) or (C, D, H, W) input; indices flat into
    D * H * W); as adaptive_max_pool2d."""
    return _adaptive_max("adaptive_max_pool3d", input, output_size, return_indices, 3)


def max_unpool3d(input: Tensor, indices: Tensor, kernel_size, stride=None, padding=0, output_size=None) -> Tensor:
    """``torch.nn.functional.max_unpool3d`` (indices flat into D * H * W, as max_pool3d's): as max_unpool2d."""
    return _max_unpool("max_unpool3d", input, indices, kernel_size, stride, padding, output_size, 3)


def lp_pool3d(input: Tensor, norm_type, kernel_size, stride=None, ceil_mode: bool = False) -> Tensor:
    """``torch.nn.functional.lp_pool3d``: as lp_pool2d, over (D, H, W) windows."""
    return _lp_pool(input, norm_type, kernel_size, stride, ceil_mode, 3)


_POOLS[3] = (max_pool3d, avg_pool3d)


# ----- fractional max pooling -----------------------------------------------------------------------
#
# Graham's fractional max pooling, as PyTorch does it: along each spatial dim, window starts that advance by
# alpha = (input - kernel) / (output - 1) on average, offset by a random sample u in [0, 1) per (batch,
# channel) plane and dim: start_i = int((i + u) alpha) - int(u alpha), the last start input - kernel.
# The output is the input taken (take_rows) at each window's first maximum, found on the arrays, so the
# gradient goes to that element alone, as PyTorch's; windows may overlap, and their gradients then add up.

_FRACTIONAL_DIMS = {2: ("height", "width"), 3: ("time", "height", "width")}


def fractional_max_pool2d(input: Tensor, kernel_size, output_size=None, output_ratio=None,
                          return_indices: bool = False, _random_samples=None):
    """``torch.nn.functional.fractional_max_pool2d`` ((N, C, H, W) or (C, H, W) input): ``_random_samples``
    (N, C, 2) of [0, 1), the width's sample first, drawn from chainrule's generator when not given."""
    return _fractional_max_pool("fractional_max_pool2d", input, kernel_size, output_size, output_ratio,
                                return_indices, _random_samples, 2)


def fractional_max_pool3d(input: Tensor, kernel_size, output_size=None, output_ratio=None,
                          return_indices: bool = False, _random_samples=None):
    """``torch.nn.functional.fractional_max_pool3d`` ((N, C, T, H, W) or (C, T, H, W) input):
    ``_random_samples`` (N, C, 3) of [0, 1), in the order T, H, W."""
    return _fractional_max_pool("fractional_max_pool3d", input, kernel_size, output_size, output_ratio,
                                return_indices, _random_samples, 3)


def _fractional_max_pool(op, x, kernel_size, output_size, output_ratio, return_indices, samples, spatial: int):
    x = tensor_operand(x, op)
    _floating(x, op)
    x, added = _batched(x, spatial, op)
    kernel = _ints(kernel_size, spatial, "kernel_size", op, 1)
    sizes = tuple(x.shape[2:])
    out_size = _fractional_output_size(op, sizes, output_size, output_ratio, spatial)
    _check_fractional(op, x, kernel, out_size, spatial)
    n, c = x.shape[:2]
    if samples is None:
        from chainrule.creation import rand

        samples = rand(n, c, spatial, dtype=x.dtype, device=x.device)
    samples = tensor_operand(samples, op)
    _check_fractional_samples(x, samples, spatial)
    xp = xp_of(x._data)
    plane = _count(sizes)
    window = _fractional_windows(samples._data[:n], sizes, out_size, kernel, xp)  # (N, C, windows, elements)
    taken = xp.take_along_axis(x._data.reshape(n, c, plane), window.reshape(n, c, window.shape[2] * window.shape[3]), axis=2)
    best = xp.argmax(taken.reshape(window.shape), axis=-1)[..., None]  # the first maximum; NaN wins
    best = xp.take_along_axis(window, best, axis=-1).reshape((n, c) + out_size)  # flat in its plane
    planes = xp.arange(n * c, dtype=xp.int64).reshape((n, c) + (1,) * spatial) * plane
    out = take_rows(x.reshape(n * c * plane, 1), (planes + best).reshape(-1)).reshape((n, c) + out_size)
    out = _unbatched(out, added)
    if not return_indices:
        return out
    return out, _unbatched(wrap(best), added)


def _fractional_windows(samples, sizes, out_size, kernel, xp):
    """Every window's elements as flat indices into its (batch, channel) plane: (N, C, windows, elements)."""
    n, c, spatial = samples.shape[0], samples.shape[1], len(sizes)
    # the sample of input dim d: PyTorch's 2-d kernel reads (width, height), its 3-d kernel (time, height, width)
    order = (1, 0) if spatial == 2 else (0, 1, 2)
    corner = xp.zeros((n, c) + out_size, dtype=xp.int64)  # each window's first element
    offsets = xp.zeros(kernel, dtype=xp.int64)  # each window element's offset from its corner
    for d in range(spatial):
        start = _fractional_starts(samples[:, :, order[d]], sizes[d], out_size[d], kernel[d], xp)
        shape = [n, c] + [1] * spatial
        shape[2 + d] = out_size[d]
        corner = corner * sizes[d] + start.reshape(shape)
        step = [1] * spatial
        step[d] = kernel[d]
        offsets = offsets * sizes[d] + xp.arange(kernel[d]).reshape(step)
    return corner.reshape(n, c, _count(out_size), 1) + offsets.reshape(_count(kernel))


def _count(sizes) -> int:
    return int(np.prod(sizes, dtype=np.int64))


def _fractional_output_size(op, sizes, output_size, output_ratio, spatial: int) -> tuple[int, ...]:
    if output_size is None and output_ratio is None:
        raise ValueError(f"{op} requires specifying either an output_size or an output_ratio")
    if output_size is not None:
        return _ints(output_size, spatial, "output_size", op, 0)
    ratios = tuple(output_ratio) if isinstance(output_ratio, Sequence) else (output_ratio,) * spatial
    if len(ratios) != spatial:
        raise ValueError(f"{op} requires output_ratio to be a number or a tuple of {spatial}, got {output_ratio!r}")
    return tuple(int(s * r) for s, r in zip(sizes, ratios))


def _check_fractional(op, x: Tensor, kernel, out_size, spatial: int) -> None:
    for d in range(1, x.ndim):
        if x.shape[d] == 0:
            name = op if spatial == 2 else f"{op}_out"
            raise RuntimeError(f"{name}(): Expected input to have non-zero size for non-batch dimensions, but got"
                               f"{list(x.shape)} with dimension {d} being empty.")
    for name, k, o, n in zip(_FRACTIONAL_DIMS[spatial], kernel, out_size, x.shape[2:]):
        # PyTorch's bound: the windows fit (2-d); in 3-d it wants one element to spare
        if o + k - 1 > n or (spatial == 3 and o + k - 1 == n):
            where = op if spatial == 2 else f"{op}_out"
            raise RuntimeError(f"{where}(): pool {name} {k} too large relative to input {name} {n}")


def _check_fractional_samples(x: Tensor, samples: Tensor, spatial: int) -> None:
    if samples.dtype != x.dtype:
        raise RuntimeError(f"Expect _random_samples to have the same dtype as input (input {describe(x)}, "
                           f"_random_samples {describe(samples)})")
    if samples.ndim != 3:
        raise RuntimeError(f"Expect _random_samples to have 3 dimensions, got {samples.ndim}")
    if samples.shape[2] != spatial:
        raise RuntimeError(f"Expect _random_samples.size(2) equals to {spatial}; got {samples.shape[2]}.")
    if samples.shape[0] < x.shape[0]:
        raise RuntimeError("Expect _random_samples.size(0) no less then input batch size.")
    if samples.shape[1] != x.shape[1]:
        raise RuntimeError("Expect _random_samples.size(1) equals to input channel size.")


def _fractional_starts(sample, size: int, out: int, kernel: int, xp):
    """PyTorch's generate_intervals for each plane's sample, in the input's float type: (N, C, out)."""
    dtype = sample.dtype.type
    starts = xp.empty(sample.shape + (out,), dtype=xp.int64)
    if out > 1:
        alpha = dtype(size - kernel) / dtype(out - 1)
        u = sample[..., None]
        i = xp.arange(out - 1).astype(sample.dtype)
        starts[..., :-1] = ((i + u) * alpha).astype(xp.int64) - (u * alpha).astype(xp.int64)
    if out > 0:
        starts[..., -1] = size - kernel
    return starts
