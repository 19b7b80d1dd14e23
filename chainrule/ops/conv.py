"""Convolution and pooling on NCHW (and NCL) tensors, with torch.nn.functional's signatures.

Everything stands on one sliding-window geometry (:class:`Windows`): an image of spatial size
(H, W), padded by (top, bottom, left, right), visited by a kh x kw kernel with a stride and a
dilation, gives an (oh, ow) grid of windows. A *tap* is one kernel offset (a, b); its values over
all windows form one strided slice of the padded image. Loops run over the kh * kw taps (a handful),
never over pixels.

Primitives (forward on backend arrays, backward rule beside it):

- ``_conv_forward`` / ``_conv_input_grad`` / ``_conv_weight_grad``: convolution (im2col, one GEMM
  per group, bias added in place), its transposed convolution (the gradient in the input) and its
  weight gradient. Each one's backward is made of the other two, so convolution is differentiable
  to any order. They run a few images at a time, so the columns never exist for the whole batch.
- ``_im2col`` / ``_col2im``: every window as one column / columns summed back onto the image, in
  PyTorch's layout (N, C*kh*kw, L); each is the other's backward. ``unfold`` / ``fold``.
- ``_window_gather`` / ``_window_scatter``: weighted sums over the taps of each window, and their
  adjoint. Average pooling is one gather; max pooling's backward is one scatter whose weights route
  the gradient to the maxima.
- ``_max_pool_windows``: the elementwise maximum over the taps.

Layout: convolution outputs are channel-major in memory ((C, N, H, W), returned as an (N, C, H, W)
view); pooling, padding and the gradients here keep whichever layout their input has, so a
conv -> relu -> pool -> conv chain and its backward never mix layouts (numpy's elementwise loops
over mixed layouts are several times slower) and never transpose.

Speed: in the benchmark's cnn step (conv 1->16 and 16->32, 3x3, pad 1, relu, max pool 2, 64 images
of 28x28, float32, two threads) the median step fell from 42-43 ms to 27-31 ms, from chunking the
convolution (no 7 MB column arrays to allocate and fault in; their copies and GEMMs stay in cache),
max pooling's tie shares as one per-window scale instead of float weights per tap (after a relu,
all-zero windows tie in every batch), and keeping one layout end to end.

Tie policy (the project's rule for max): max pooling splits a window's gradient evenly among the
elements tied for its maximum (NaNs count as the maximum of their window). PyTorch sends it to one
index instead; without ties the two agree.
"""

from __future__ import annotations

from collections.abc import Sequence
from numbers import Integral

from chainrule.autograd.grad_mode import GRAD_ENABLED
from chainrule.backend import kernels, np, xp_of
from chainrule.backend.parallel import parallel_for
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
        """The image (any batch size) with this geometry's padding filled with ``value`` (the image
        itself when unpadded), in the image's memory layout (channel-major stays channel-major)."""
        if not self.has_padding:
            return image
        padded = _allocate(xp_of(image), image.shape[:2] + self.padded_hw, image.dtype,
                           _is_channels_major(image), fill=value)
        self.crop(padded)[...] = image
        return padded

    def crop(self, padded):
        """The image inside a padded one (which may have slack rows below, see :meth:`slack_rows`)."""
        top, _, left, _ = self.pad
        return padded[..., top:top + self.shape[2], left:left + self.shape[3]]

    def patches(self, padded, width: int | None = None):
        """An (N, C, kh, kw, oh, width) strided view of the padded image (any batch size): every window,
        nothing copied. ``width`` (default ow) may run past the output width (see ``_row_width``)."""
        xp = xp_of(padded)
        sn, sc, sh_, sw_ = padded.strides
        strides = (sn, sc, sh_ * self.dilation[0], sw_ * self.dilation[1], sh_ * self.stride[0], sw_ * self.stride[1])
        shape = padded.shape[:2] + self.kernel + (self.out[0], self.out[1] if width is None else width)
        return xp.lib.stride_tricks.as_strided(padded, shape, strides)

    def slack_rows(self, width: int) -> int:
        """Rows past the bottom of the padded image that windows of ``width`` columns per row reach."""
        wp = self.padded_hw[1]
        overrun = (width - 1) * self.stride[1] + (self.kernel[1] - 1) * self.dilation[1] + 1 - wp
        return -(-max(0, overrun) // wp)

    def scatter(self, write_tap, dtype, xp, channels_major: bool = False):
        """The (N, C, H, W) image made by adding each tap's (N, C, oh, ow) values onto that tap's slice
        of a zero image, padding cropped. ``write_tap(a, b, dest, accumulate)`` puts tap (a, b)'s values
        into the view ``dest``: assigned, or added when ``accumulate`` (windows overlap or skip
        elements). ``channels_major`` lays the memory out as (C, N, H, W)."""
        exact = self.tiles_exactly  # every element written once: no zero fill, no accumulation
        image = _allocate(xp, self.shape[:2] + self.padded_hw, dtype, channels_major, fill=None if exact else 0)
        for a, b, tap in self.taps():
            write_tap(a, b, image[tap], not exact)
        return self.crop(image)


def _is_channels_major(array) -> bool:
    """Whether an (N, C, ...) array is laid out channel-major, (C, N, ...) in memory, as convolution
    outputs are. Pooling and padding keep that layout, so elementwise ops between them and their
    gradients see operands of one layout (mixed layouts make numpy's loops several times slower)."""
    return array.ndim == 4 and array.strides[1] > array.strides[0]


def _allocate(xp, shape: tuple, dtype, channels_major: bool, fill=None):
    """A new (N, C, H, W) array, channel-major in memory if asked, filled with ``fill`` (None: uninitialised)."""
    n, c = shape[:2]
    memory = (c, n) + tuple(shape[2:]) if channels_major else tuple(shape)
    array = xp.empty(memory, dtype) if fill is None else xp.full(memory, fill, dtype)
    return array.transpose(1, 0, 2, 3) if channels_major else array


def _padded_hw(shape: tuple, pad: tuple) -> tuple[int, int]:
    return shape[2] + pad[0] + pad[1], shape[3] + pad[2] + pad[3]


# ----- im2col / col2im ------------------------------------------------------------------------------

def _im2col(x: Tensor, geom: Windows) -> Tensor:
    """Primitive: the windows of ``x`` as the columns of PyTorch's unfold, (N, C*kh*kw, L); backward
    is ``_col2im``."""
    (n, c), (kh, kw), (oh, ow) = geom.shape[:2], geom.kernel, geom.out
    patches = geom.patches(geom.padded(x._data))
    # The one copy; always a copy, so the columns never alias x (an in-place change to x can't reach them).
    cols = patches.copy().reshape(n, c * kh * kw, oh * ow)
    return record(cols, "im2col", (x,), lambda g, _: (_col2im(g, geom),))


def _col2im(cols: Tensor, geom: Windows) -> Tensor:
    """Primitive: columns (N, C*kh*kw, L) summed back onto the image (overlaps add up); backward is
    ``_im2col``."""
    patches = cols._data.reshape(geom.shape[:2] + geom.kernel + geom.out)
    image = geom.scatter(lambda a, b, dest, accumulate: _put(dest, patches[:, :, a, b], accumulate),
                         cols._data.dtype, xp_of(cols._data))
    return record(image, "col2im", (cols,), lambda g, _: (_im2col(g, geom),))


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


# Convolution is three primitives, each the adjoint of the others in one argument, so that gradients of
# every order come from these three rules (PyTorch's convolution / convolution_backward split):
#
#   _conv_forward(x, w, b)      y  = W @ im2col(x) + b      the convolution
#   _conv_input_grad(g, w)      gx = col2im(W^T @ g)        its gradient in x: a transposed convolution
#   _conv_weight_grad(x, g)     gw = g @ im2col(x)^T        its gradient in w
#
# with W the weight as one matrix per group (out_channels/G, C/G*kh*kw) and the columns laid out
# (C*kh*kw, images*oh*width). Each runs over the batch a few images at a time (:func:`_batch_chunks`):
# a chunk's columns (~1 MB) are written, multiplied and dropped while still in cache, and the whole
# batch's columns (7.2 MB for 16->32 channels, 3x3, 64 images of 14x14) are never allocated; fresh
# large arrays are expensive (every new page faults on first touch). The weight gradient recomputes
# the columns rather than keeping them from the forward pass, which also keeps memory down.
# Outputs are laid out channel-major, (C, N, H, W) in memory: a chunk is then a block of GEMM output
# columns, and the bias and its gradient run along contiguous rows.
#
# ``width`` is the number of columns per output row (:func:`_row_width`): the output width, or the
# padded width, whose extra columns are junk, computed by the GEMM and dropped.
#
# With the compiled kernels (``chainrule.backend.kernels``, float32), im2col reads the unpadded image
# and writes zeros for the padding, and col2im adds the columns straight onto the unpadded image, one
# pass each; the columns then have the output width (no junk, no padded copy, no cropping). In-process
# A/B of the benchmark's cnn step: 0.79x; per primitive of its 16 -> 32 channel layer: forward 0.82x,
# input gradient 0.58x (numpy's col2im is kh * kw strided passes), weight gradient 0.87x.

_CHUNK_BYTES = 1 << 20
_KEEP_COLUMNS_BYTES = 32 << 20  # the most the forward keeps for the weight gradient (see _conv_forward)


def _column_size(geom: Windows, width: int, images: int) -> int:
    """Elements of the columns of ``images`` images, ``width`` columns per output row."""
    return geom.shape[1] * geom.kernel[0] * geom.kernel[1] * geom.out[0] * width * images


def _row_width(geom: Windows, out_channels: int) -> int:
    """Columns per output row in the column layout: the padded width for stride 1 when the columns
    have more rows (C*kh*kw) than the output (out_channels), else the output width.

    With the padded width, a tap's values for output rows i and i + 1 lie end to end in the padded
    image, so im2col copies (and col2im adds) one long run per image and channel instead of a short
    run per output row; the (kw - 1) * dw extra columns per row are junk (windows wrapping into the
    next row), which the GEMM computes and the output drops. Long runs save per-run work on the
    C*kh*kw rows of the columns; junk costs GEMM work and a copy of the O output rows. Measured
    (64 images, 3x3, padding 1, one thread): 16 -> 32 channels of 14x14, transposed convolution 4.2
    vs 5.4 ms, forward 3.05 vs 3.18 ms; 1 -> 16 channels of 28x28, forward 1.31 vs 0.81 ms."""
    (kh, kw), channels = geom.kernel, geom.shape[1]
    if geom.stride == (1, 1) and channels * kh * kw > out_channels:
        return geom.padded_hw[1]
    return geom.out[1]


def _batch_chunks(n: int, bytes_per_image: int) -> list[slice]:
    """Slices that split a batch of ``n`` into even chunks of about ``_CHUNK_BYTES`` of columns."""
    if n == 0:
        return []
    count = -(-n // max(1, _CHUNK_BYTES // max(1, bytes_per_image)))
    size = -(-n // count)
    return [slice(start, min(n, start + size)) for start in range(0, n, size)]


def _window_kernels(image, geom: Windows, reads_image: bool = True):
    """The compiled im2col / col2im kernels (:mod:`chainrule.backend._numba`) for the windows of
    ``geom`` over float32 numpy arrays like ``image`` (N, C, H, W), else None; when ``reads_image``,
    the kernel reads ``image`` itself, which must then be contiguous in NCHW or channel-major order.
    With them the columns have the output's width (no junk columns) and padding is read as zeros,
    never copied."""
    fast = kernels.fused_strided(image, _column_size(geom, geom.out[1], geom.shape[0]))
    return fast if fast and (not reads_image or _planes(image)[0] is not None) else None


def _kernel_arguments(image, geom: Windows):
    """How the compiled window kernels see ``image``: its (planes, H, W) memory, and after the chunk's
    first image, the plane strides of a channel and an image, the strides, dilations, top and left
    padding (see :mod:`chainrule.backend._numba`)."""
    planes, channels_major = _planes(image)
    n, c = image.shape[:2]
    return planes, ((n, 1) if channels_major else (1, c)) + geom.stride + geom.dilation + (geom.pad[0], geom.pad[2])


def _columns(x, geom: Windows, groups: int, width: int, fast=None, keep: bool = False):
    """Yield ``(chunk, cols)`` over the batch of the image array ``x``: ``cols`` (G, C/G*kh*kw,
    images*oh*width) holds the windows of ``x[chunk]``. The buffers are reused from chunk to chunk:
    a ``cols`` is valid until the next one is yielded, unless ``keep`` (compiled kernels only), which
    gives every chunk its own block of one buffer for the batch. ``fast``: the compiled window
    kernels (then ``width`` must be the output width)."""
    xp = xp_of(x)
    (n, c), (kh, kw), oh = x.shape[:2], geom.kernel, geom.out[0]
    rows = c * kh * kw
    chunks = _batch_chunks(n, _column_size(geom, width, 1) * x.dtype.itemsize)
    if not chunks:
        return
    size = n if keep else chunks[0].stop
    buffer = xp.empty(rows * size * oh * width, x.dtype)
    if fast:
        planes, where = _kernel_arguments(x, geom)
        for chunk in chunks:
            start = rows * chunk.start * oh * width if keep else 0
            cols = buffer[start:start + rows * (chunk.stop - chunk.start) * oh * width]
            cols = cols.reshape(c, kh, kw, -1, oh, width)
            fast.window_columns_f32(planes, cols, chunk.start, *where, False)  # im2col
            yield chunk, cols.reshape(groups, rows // groups, -1)
        return
    slack = geom.slack_rows(width)
    padded = None
    if geom.has_padding or slack:  # borders (and slack) zeroed once; each chunk rewrites the interior
        hp, wp = geom.padded_hw
        padded = _allocate(xp, (size, c, hp + slack, wp), x.dtype, _is_channels_major(x), fill=0)
    for chunk in chunks:
        images = chunk.stop - chunk.start
        source = x[chunk]
        if padded is not None:
            source = padded[:images]
            geom.crop(source)[...] = x[chunk]
        cols = buffer[:rows * images * oh * width].reshape(c, kh, kw, images, oh, width)
        xp.copyto(cols, geom.patches(source, width).transpose(1, 2, 3, 0, 4, 5))
        yield chunk, cols.reshape(groups, rows // groups, images * oh * width)


def _output_rows(grad, geom: Windows, width: int):
    """Yield ``(chunk, rows)`` over the batch chunks of ``_columns``: ``rows`` (O, images*oh*width) is
    ``grad[:, chunk]`` of the (O, N, oh, ow) array ``grad``, with zeros in the junk columns."""
    xp = xp_of(grad)
    o, _, oh, ow = grad.shape
    chunks = _batch_chunks(grad.shape[1], _column_size(geom, width, 1) * grad.dtype.itemsize)
    staging = xp.zeros((o, chunks[0].stop, oh, width), grad.dtype) if chunks and width != ow else None
    for chunk in chunks:
        if staging is None:
            yield chunk, grad[:, chunk].reshape(o, -1)
        else:
            rows = staging[:, :chunk.stop - chunk.start]
            rows[..., :ow] = grad[:, chunk]
            yield chunk, xp.ascontiguousarray(rows).reshape(o, -1)


def _grouped(w, groups: int):
    """The weight array (O, C/G, kh, kw) as G matrices (O/G, C/G*kh*kw)."""
    return w.reshape(groups, w.shape[0] // groups, -1)


def _channels_first(g):
    """An (N, C, H, W) array as its contiguous (C, N, H, W) transpose (free for channel-major arrays)."""
    return xp_of(g).ascontiguousarray(g.transpose(1, 0, 2, 3))


def _conv_forward(x: Tensor, w: Tensor, bias: Tensor | None, geom: Windows, groups: int) -> Tensor:
    """Primitive: the convolution of ``x`` (N, C, H, W) with ``w`` (O, C/G, kh, kw), plus ``bias``;
    laid out channel-major."""
    xp = xp_of(x._data)
    fast = _window_kernels(x._data, geom)
    n, o, (oh, ow) = geom.shape[0], w.shape[0], geom.out
    width = ow if fast else _row_width(geom, o)
    weights = _grouped(w._data, groups)
    shift = 0 if bias is None else bias._data.reshape(o, 1, 1, 1)
    out = xp.empty((o, n, oh, ow), x._data.dtype)
    staging = None
    # With the compiled kernels the columns are kept for the weight gradient, which would otherwise
    # compute them again (in-process A/B of the benchmark's cnn step: 0.87x, 0.92x), when they are small:
    # they hold kh * kw times x until the backward (7.2 MB for the benchmark's 16 -> 32 channel layer;
    # a 64-channel 3x3 layer on 64 images of 112 x 112 would keep 1.8 GB).
    keep = (fast is not None and w._rg and GRAD_ENABLED[0]
            and _column_size(geom, width, n) * x._data.dtype.itemsize <= _KEEP_COLUMNS_BYTES)
    kept = [] if keep else None
    for chunk, cols in _columns(x._data, geom, groups, width, fast, keep=kept is not None):
        if kept is not None:
            kept.append(cols)
        target = out[:, chunk]  # the bias is added to each chunk while it is in cache
        if width == ow:
            xp.matmul(weights, cols, out=target.reshape(groups, o // groups, -1))
            if bias is not None:
                target += shift
        else:  # the GEMM writes whole padded rows; their first ow columns are the output
            staging = xp.empty((o,) + target.shape[1:3] + (width,), out.dtype) if staging is None else staging
            rows = staging[:, :target.shape[1]]
            xp.matmul(weights, cols, out=rows.reshape(groups, o // groups, -1))
            xp.add(rows[..., :ow], shift, out=target)  # with shift 0 a plain copy

    def rule(g, _):
        grads = (_conv_input_grad(g, w, geom, groups) if x._rg else None,
                 _conv_weight_grad(x, g, geom, groups, kept) if w._rg else None)
        if bias is None:
            return grads
        return grads + (g.permute(1, 0, 2, 3).reshape(o, -1).sum(1) if bias._rg else None,)

    inputs = (x, w) if bias is None else (x, w, bias)
    return record(out.transpose(1, 0, 2, 3), "conv2d", inputs, rule, (x, w))


def _conv_input_grad(g: Tensor, w: Tensor, geom: Windows, groups: int) -> Tensor:
    """Primitive: the convolution's gradient in its input for the output gradient ``g``: the transposed
    convolution col2im(W^T @ g), an (N, C, H, W) image laid out channel-major."""
    xp = xp_of(g._data)
    (n, c), (kh, kw), oh = geom.shape[:2], geom.kernel, geom.out[0]
    fast = _window_kernels(g._data, geom, reads_image=False)  # it writes a new image
    # Junk columns of W^T @ g are exactly 0 (g's junk is 0) unless W holds an inf or NaN; they are added
    # onto real pixels, so with a non-finite W the columns are computed without junk.
    width = geom.out[1] if fast or not bool(xp.isfinite(w._data).all()) else _row_width(geom, w.shape[0])
    exact = geom.tiles_exactly
    weights_t = _grouped(w._data, groups).transpose(0, 2, 1)
    if fast:  # the compiled col2im adds the columns straight onto the unpadded image
        image = _allocate(xp, (n, c) + tuple(geom.shape[2:]), g._data.dtype, True, fill=0)
        planes, where = _kernel_arguments(image, geom)
    else:
        hp, wp = geom.padded_hw
        image = _allocate(xp, (n, c, hp + geom.slack_rows(width), wp), g._data.dtype, True, fill=None if exact else 0)
    buffer = None
    for chunk, rows in _output_rows(_channels_first(g._data), geom, width):
        images = chunk.stop - chunk.start
        size = c * kh * kw * images * oh * width
        buffer = xp.empty(size, g._data.dtype) if buffer is None else buffer
        cols = buffer[:size].reshape(groups, -1, images * oh * width)
        xp.matmul(weights_t, rows.reshape(groups, -1, images * oh * width), out=cols)
        if fast:
            cols = cols.reshape(c, kh, kw, images, oh, width)
            fast.window_columns_f32(planes, cols, chunk.start, *where, True)  # col2im
            continue
        patches = cols.reshape(c, kh, kw, images, oh, width).transpose(3, 0, 1, 2, 4, 5)
        taps = geom.patches(image[chunk], width)  # writable windows of the image
        for a in range(kh):
            for b in range(kw):
                _put(taps[:, :, a, b], patches[:, :, a, b], not exact)
    if not fast:
        image = geom.crop(image)

    def rule(h, _):
        return (_conv_forward(h, w, None, geom, groups) if g._rg else None,
                _conv_weight_grad(h, g, geom, groups) if w._rg else None)

    return record(image, "conv2d_input_grad", (g, w), rule, (g, w))


def _conv_weight_grad(x: Tensor, g: Tensor, geom: Windows, groups: int, columns: list | None = None) -> Tensor:
    """Primitive: the convolution's gradient in its weight for the input ``x`` and the output gradient
    ``g``: g @ im2col(x)^T summed over the batch, shaped (O, C/G, kh, kw). ``columns``: x's columns
    chunk by chunk, as the forward kept them (compiled kernels), instead of computing them again."""
    xp = xp_of(x._data)
    o, (kh, kw) = g.shape[1], geom.kernel
    grad = _channels_first(g._data)  # (O, N, oh, ow)

    fast = _window_kernels(x._data, geom)

    def summed(width):
        total = xp.zeros((groups, o // groups, x.shape[1] // groups * kh * kw), x._data.dtype)
        chunks = columns or (cols for _, cols in _columns(x._data, geom, groups, width, fast))
        for cols, (_, rows) in zip(chunks, _output_rows(grad, geom, width)):
            rows = rows.reshape(groups, o // groups, -1)
            # OpenBLAS is faster with the taller operand first (two threads, per chunk of the benchmark's
            # layers: 0.13 vs 0.23 ms for 144 column rows and 32 channels; 0.24 vs 0.46 ms for 9 and 16)
            if cols.shape[1] > rows.shape[1]:
                total += (cols @ rows.transpose(0, 2, 1)).transpose(0, 2, 1)
            else:
                total += rows @ cols.transpose(0, 2, 1)
        return total

    width = geom.out[1] if fast or columns else _row_width(geom, o)  # kept columns have no junk
    with np.errstate(invalid="ignore"):  # 0 * inf in the junk: caught below
        total = summed(width)
    if width != geom.out[1] and not bool(xp.isfinite(total).all()):
        total = summed(geom.out[1])  # junk columns hold pixels of x: g's zeros there times an inf are NaN

    def rule(h, _):
        return (_conv_input_grad(g, h, geom, groups) if x._rg else None,
                _conv_forward(x, h, None, geom, groups) if g._rg else None)

    return record(total.reshape(o, -1, kh, kw), "conv2d_weight_grad", (x, g), rule, (x, g))


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
    """Primitive, linear in ``x``: out[n, c, i, j] = scale[..., i, j] * sum over taps (a, b) of
    weights[a, b][n, c, i, j] * padded_x[n, c, tap (a, b) of window (i, j)]. ``weights`` (constant,
    a mapping from each tap (a, b) to an array broadcastable to the output) and ``scale`` (a number or
    an array broadcastable to the output) may be None (= 1). Backward is ``_window_scatter`` with the
    same weights."""
    padded = geom.padded(x._data)
    out = None
    for a, b, tap in geom.taps():
        term = padded[tap] if weights is None else padded[tap] * weights[a, b]
        if out is None:
            out = xp_of(term).array(term, order="K") if weights is None else term  # a copy in x's layout
        else:
            out += term
    if scale is not None:
        out *= scale
    layout = _is_channels_major(x._data)
    return record(out, "window_gather", (x,), lambda g, _: (_window_scatter(g, geom, weights, scale, layout),))


def _window_scatter(g: Tensor, geom: Windows, weights=None, scale=None, channels_major: bool | None = None) -> Tensor:
    """Primitive, the adjoint of ``_window_gather``: each window's value, times its weight per tap,
    added onto the elements of that window. The image is laid out channel-major or not as asked
    (the gathered input's layout; ``g``'s when None). Backward is ``_window_gather``."""
    xp = xp_of(g._data)
    if channels_major is None:
        channels_major = _is_channels_major(g._data)
    values = g._data
    if scale is not None or _is_channels_major(values) != channels_major:
        # one pass over the (small) window values into the image's layout; mixed layouts in the
        # per-tap writes below measured 3x slower (max pool 2 of 64x32x14x14, one thread: 2.5 vs 0.45 ms)
        values = _allocate(xp, tuple(g.shape), g._data.dtype, channels_major)
        if scale is None:
            values[...] = g._data
        else:
            xp.multiply(g._data, scale, out=values)

    def write_tap(a, b, dest, accumulate):
        if weights is None:
            _put(dest, values, accumulate)
        elif accumulate:
            dest += values * weights[a, b]
        else:
            xp.multiply(values, weights[a, b], out=dest)

    image = geom.scatter(write_tap, values.dtype, xp, channels_major)
    return record(image, "window_scatter", (g,), lambda h, _: (_window_gather(h, geom, weights, scale),))


def _put(dest, values, accumulate: bool) -> None:
    if accumulate:
        dest += values
    else:
        dest[...] = values


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
    ~20x faster in numpy than a max over the small axes of a reshaped view), in x's memory layout.
    The backward rule scatters the gradient onto the maxima, tied elements sharing it evenly.
    2 x 2 windows with stride 2 on large float32 images run as one compiled pass each way when the
    kernels are available (``chainrule.backend.kernels``)."""
    xp = xp_of(x._data)
    planes, channels_major = _planes(x._data) if geom.kernel == (2, 2) and geom.tiles_exactly else (None, None)
    fast = kernels.fused(planes) if planes is not None else None
    if fast:
        out_planes = xp.empty((planes.shape[0],) + geom.out, planes.dtype)
        _over_planes(planes, lambda lo, hi: fast.max_pool_2x2_f32(planes[lo:hi], out_planes[lo:hi]))
        out = _from_planes(out_planes, x.shape[:2], channels_major)
    else:
        padded = geom.padded(x._data, _lowest(x._data.dtype))
        out = None
        for _, _, tap in geom.taps():
            if out is None:
                out = xp.array(padded[tap], order="K")  # a copy in x's layout
            else:
                xp.maximum(out, padded[tap], out=out)

    def rule(g, out):
        # a plain backward: one compiled pass, unless a window's maximum is NaN (its NaNs share the gradient)
        if fast and not GRAD_ENABLED[0] and not bool(xp.isnan(out_planes).any()):
            return (wrap(_max_pool_2x2_grad(fast, planes, out_planes, g._data, channels_major)),)
        hits, share = _tie_shares(geom.padded(x._data, _lowest(x._data.dtype)), out._data, geom)
        return (_window_scatter(g, geom, hits, share, _is_channels_major(x._data)),)

    return record(out, "max_pool2d", (x,), rule, (x,), keep_output=True)


def _planes(image):
    """An (N, C, H, W) array's images as a C-contiguous (planes, H, W) view in memory order, and whether
    that order is channel-major (C, N); (None, None) when its memory is not one block laid out so."""
    for channels_major, arranged in ((False, image), (True, image.transpose(1, 0, 2, 3))):
        if arranged.flags.c_contiguous:
            return arranged.reshape((-1,) + image.shape[2:]), channels_major
    return None, None


def _from_planes(planes, batch_and_channels: tuple, channels_major: bool):
    """The (N, C, h, w) view of a (planes, h, w) array laid out as :func:`_planes` found it."""
    n, c = batch_and_channels
    if channels_major:
        return planes.reshape((c, n) + planes.shape[1:]).transpose(1, 0, 2, 3)
    return planes.reshape((n, c) + planes.shape[1:])


def _over_planes(planes, work) -> None:
    parallel_for(planes.shape[0], planes[0].size, planes, work)


def _max_pool_2x2_grad(fast, planes, out_planes, g, channels_major: bool):
    """The input gradient of 2 x 2 max pooling with stride 2 (ties share evenly), laid out as the input."""
    xp = xp_of(planes)
    arranged = g.transpose(1, 0, 2, 3) if channels_major else g
    g_planes = xp.ascontiguousarray(arranged).reshape(out_planes.shape)  # a copy only if g's layout differs
    grad = xp.empty_like(planes)  # every element is written
    _over_planes(planes, lambda lo, hi: fast.max_pool_2x2_grad_f32(planes[lo:hi], out_planes[lo:hi],
                                                                     g_planes[lo:hi], grad[lo:hi]))
    return _from_planes(grad, g.shape[:2], channels_major)


def _tie_shares(padded, out, geom: Windows):
    """Where each window's maxima are, and each one's share of the window's gradient: per tap (a, b)
    a bool array, True where that tap holds its window's maximum; and 1 / (number of tied maxima) per
    window, or None when no window has a tie. Ties are common: after a relu, all-zero windows tie."""
    xp = xp_of(padded)
    hits = {(a, b): xp.equal(padded[tap], out) for a, b, tap in geom.taps()}
    if out.dtype.kind == "f":
        nan = xp.isnan(out)
        if nan.any():  # NaN != NaN: a window whose maximum is NaN routes to its NaNs
            for a, b, tap in geom.taps():
                hits[a, b] |= nan & xp.isnan(padded[tap])
    count = None  # maxima per window, in the gradient's float dtype (exact: a window has few taps)
    for hit in hits.values():
        count = hit.astype(out.dtype) if count is None else xp.add(count, hit, out=count)
    if float(count.max()) <= 1:
        return hits, None
    return hits, xp.reciprocal(count, out=count)


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
