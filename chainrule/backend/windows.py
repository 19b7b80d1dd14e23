"""Sliding windows over (N, C, H, W) arrays: the array side of :mod:`chainrule.ops.conv`.

:class:`Windows` is the geometry: an image of spatial size (H, W), padded by (top, bottom, left,
right), visited by a kh x kw kernel with a stride and a dilation, gives an (oh, ow) grid of windows.
A transposed convolution is the gradient in the input of the convolution whose windows are those of
:meth:`Windows.for_transpose`.
A *tap* is one kernel offset (a, b); its values over all windows are one strided slice of the padded
image, so loops run over the kh * kw taps, never over pixels. On it stand:

- convolution as im2col + GEMM (:func:`convolve`) and its two adjoints, the transposed convolution
  (:func:`convolve_transpose`) and the weight gradient (:func:`convolve_weight_grad`), run over the
  batch a few images at a time so that the columns never exist for the whole batch; pointwise (1x1)
  convolutions as one GEMM over channels, and stride-1 input gradients with fewer output than input
  channels as a convolution with the flipped weight, where those are cheaper;
- im2col / col2im in PyTorch's unfold layout (:func:`window_columns`, :func:`add_window_columns`);
- weighted sums over each window's taps and their adjoint (:func:`window_gather`,
  :func:`window_scatter`), and the maximum over them (:func:`max_pool`, :func:`max_pool_grad`).

Where a compiled float32 kernel (:mod:`chainrule.backend._numba`) can do the work it is called here,
beside the numpy code that does the same for every other case (other dtypes, small or oddly laid out
arrays, kernels switched off, no numba); the two agree to float32 rounding, and callers never see which
one ran. Measurements behind the choices made here are in ``bench/ANALYSIS.md`` ("Convolution and
pooling").
"""

from __future__ import annotations

import itertools

from chainrule.backend import gpu_kernels, kernels, np, xp_of
from chainrule.backend.gpu import on_gpu
from chainrule.backend.parallel import parallel_for

__all__ = ["Windows", "is_channels_major", "lowest", "convolve", "convolve_transpose", "convolve_weight_grad",
           "window_columns", "add_window_columns", "window_gather", "window_scatter", "max_pool", "max_pool_grad",
           "tie_shares", "argmax_indices"]


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
        for axis in range(len(kernel)):
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
    def for_transpose(cls, shape: tuple, out_channels: int, kernel: tuple, stride: tuple, dilation: tuple,
                      padding: tuple, output_padding: tuple, op: str) -> Windows:
        """The windows of the convolution whose gradient in its input is the transposed convolution of an
        (N, C, h, w) input ``shape``: their image is the transposed convolution's output (N,
        ``out_channels``, H, W), H = (h - 1) * stride - 2 * padding + dilation * (kh - 1) + output_padding
        + 1 (likewise W), padded by ``padding`` on every side, and there are exactly (h, w) of them (the
        last ``output_padding`` rows and columns lie past the last window: only the bias reaches them)."""
        size = []
        for axis in range(len(kernel)):
            h, k, s, d, p = shape[2 + axis], kernel[axis], stride[axis], dilation[axis], padding[axis]
            size.append((h - 1) * s - 2 * p + d * (k - 1) + output_padding[axis] + 1)
        if min(shape[2:]) < 1:
            raise RuntimeError(
                f"{op}: only zero batch or zero channel inputs are supported, but got input shape {tuple(shape)}"
            )
        if min(size) < 1:
            raise RuntimeError(
                f"{op}: given input size per channel {tuple(shape[2:])}, kernel_size={tuple(kernel)}, "
                f"stride={tuple(stride)}, padding={tuple(padding)}, dilation={tuple(dilation)} and "
                f"output_padding={tuple(output_padding)}, the calculated output size per channel {tuple(size)} is "
                "too small; use less padding or a larger kernel"
            )
        pad = tuple(p for p in padding for _ in range(2))
        return cls((shape[0], out_channels) + tuple(size), kernel, stride, dilation, pad, tuple(shape[2:]))

    @classmethod
    def for_pool(cls, shape: tuple, kernel: tuple, stride: tuple, dilation: tuple, padding: tuple,
                 ceil_mode: bool, op: str) -> Windows:
        """PyTorch's pooling windows: symmetric ``padding`` of at most half the (dilated) kernel; with
        ``ceil_mode`` a last, partial window is kept when it starts inside the image or left padding
        (the bottom/right padding then grows to hold it)."""
        out, pad = [], []
        for axis in range(len(kernel)):
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
        return (self.kernel == self.stride and self.dilation == (1,) * len(self.kernel) and not self.has_padding
                and tuple(o * k for o, k in zip(self.out, self.kernel)) == tuple(self.shape[2:]))

    @property
    def pointwise(self) -> bool:
        """Each window is one element and each element one window (a 1x1 kernel, stride 1, no padding, no
        rows or columns past the last window)."""
        return (all(k == 1 for k in self.kernel) and all(s == 1 for s in self.stride) and not self.has_padding
                and tuple(self.out) == tuple(self.shape[2:]))

    def taps(self):
        """``(a, b, index)`` per kernel offset (``(a, b, c, index)`` in 3-d): ``padded_image[index]`` is that
        offset's (N, C, oh, ow) values."""
        for offset in itertools.product(*(range(k) for k in self.kernel)):
            yield offset + ((Ellipsis,) + tuple(slice(a * d, a * d + s * (o - 1) + 1, s) for a, d, s, o in
                                                zip(offset, self.dilation, self.stride, self.out)),)

    def padded(self, image, value: float = 0):
        """The image (any batch size) with this geometry's padding filled with ``value`` (the image
        itself when unpadded), in the image's memory layout (channel-major stays channel-major)."""
        if not self.has_padding:
            return image
        padded = _allocate(xp_of(image), image.shape[:2] + self.padded_hw, image.dtype,
                           is_channels_major(image), fill=value)
        self.crop(padded)[...] = image
        return padded

    def crop(self, padded):
        """The image inside a padded one (which may have slack rows below, see :meth:`slack_rows`)."""
        return padded[(Ellipsis,) + tuple(slice(p, p + n) for p, n in zip(self.pad[::2], self.shape[2:]))]

    def patches(self, padded, width: int | None = None):
        """An (N, C, kh, kw, oh, width) strided view of the padded image (any batch size): every window,
        nothing copied. ``width`` (default ow) may run past the output width (see ``_row_width``)."""
        xp = xp_of(padded)
        inner = padded.strides[2:]
        strides = padded.strides[:2] + tuple(s * d for s, d in zip(inner, self.dilation)) \
            + tuple(s * t for s, t in zip(inner, self.stride))
        shape = padded.shape[:2] + self.kernel + self.out[:-1] + (self.out[-1] if width is None else width,)
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
        for *offset, tap in self.taps():
            write_tap(*offset, image[tap], not exact)
        return self.crop(image)


def is_channels_major(array) -> bool:
    """Whether an (N, C, ...) array is laid out channel-major, (C, N, ...) in memory, as convolution
    outputs are. Everything here keeps its input's layout, so elementwise ops between these results
    and their gradients see operands of one layout (numpy's loops over mixed layouts are far slower)."""
    return array.ndim in (4, 5) and array.strides[1] > array.strides[0]


def _allocate(xp, shape: tuple, dtype, channels_major: bool, fill=None):
    """A new (N, C, H, W) array, channel-major in memory if asked, filled with ``fill`` (None: uninitialised)."""
    n, c = shape[:2]
    memory = (c, n) + tuple(shape[2:]) if channels_major else tuple(shape)
    array = xp.empty(memory, dtype) if fill is None else xp.full(memory, fill, dtype)
    return array.transpose((1, 0) + tuple(range(2, len(shape)))) if channels_major else array


def _padded_hw(shape: tuple, pad: tuple) -> tuple[int, ...]:
    return tuple(n + pad[2 * i] + pad[2 * i + 1] for i, n in enumerate(shape[2:]))


def _gpu_kernels_take(geom: Windows, *arrays) -> bool:
    """Whether the CUDA kernels (:mod:`chainrule.backend.gpu_kernels`) serve these (N, C, H, W) arrays and
    2-d windows: CuPy float arrays, any layout."""
    return on_gpu(arrays[0]) and len(geom.kernel) == 2 and gpu_kernels.takes_any_layout(*arrays)


def _put(dest, values, accumulate: bool) -> None:
    if accumulate:
        dest += values
    else:
        dest[...] = values


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


def _as_planes(array, channels_major: bool):
    """``array`` (N, C, h, w) as C-contiguous (planes, h, w) in the given order, copied only if laid out otherwise."""
    arranged = array.transpose(1, 0, 2, 3) if channels_major else array
    return xp_of(array).ascontiguousarray(arranged).reshape((-1,) + array.shape[2:])


# ----- im2col and col2im ----------------------------------------------------------------------------
#
# Convolution's columns are laid out (C, kh, kw, images, oh, width): row (c, a, b) holds tap (a, b) of
# channel c over every window of a chunk of images. The compiled kernel reads the unpadded image and
# writes zeros for the padding (im2col), or adds the columns straight onto the unpadded image (col2im),
# one pass each. numpy copies from a padded image instead, one strided copy per tap and channel, and
# may use ``width`` past the output width (see _row_width).

def _compiled_windows(image, geom: Windows, reads_image: bool = True):
    """The compiled kernels for the windows of ``geom`` over the float32 numpy ``image`` like (N, C, H,
    W), or None; when ``reads_image``, ``image`` itself must be one block in NCHW or channel-major order.
    On the GPU, the CUDA im2col / col2im behind the same interface, for float32 and float64."""
    if on_gpu(image):
        served = gpu_kernels.takes_any_layout(image) and (not reads_image or _planes(image)[0] is not None)
        return gpu_kernels.WINDOW_COLUMNS if served else None
    fast = kernels.fused_strided(image, _column_size(geom, geom.out[1], geom.shape[0]))
    return fast if fast and (not reads_image or _planes(image)[0] is not None) else None


def _kernel_arguments(image, geom: Windows):
    """How the compiled window kernel sees ``image``: its (planes, H, W) memory, and after the chunk's
    first image, the plane strides of a channel and an image, the strides, dilations, top and left
    padding (see :mod:`chainrule.backend._numba`)."""
    planes, channels_major = _planes(image)
    n, c = image.shape[:2]
    return planes, ((n, 1) if channels_major else (1, c)) + geom.stride + geom.dilation + (geom.pad[0], geom.pad[2])


def window_columns(image, geom: Windows):
    """im2col in PyTorch's unfold layout: every window of ``image`` (N, C, H, W) as one column of an
    (N, C*kh*kw, L) array, padding read as zeros. Always a new array (never aliases ``image``).
    (The compiled kernel writes convolution's chunk layout only; unfold is not a hot path.)"""
    (n, c), (kh, kw), (oh, ow) = geom.shape[:2], geom.kernel, geom.out
    if _gpu_kernels_take(geom, image):
        cols = xp_of(image).empty((n, c, kh, kw, oh, ow), image.dtype)
        gpu_kernels.window_columns(image, cols.transpose(1, 2, 3, 0, 4, 5), geom)
        return cols.reshape(n, c * kh * kw, oh * ow)
    return geom.patches(geom.padded(image)).copy().reshape(n, c * kh * kw, oh * ow)


def add_window_columns(cols, geom: Windows):
    """col2im, the adjoint of :func:`window_columns`: columns (N, C*kh*kw, L) summed back onto a zero
    (N, C, H, W) image (overlaps add up; what falls on the padding is dropped)."""
    patches = cols.reshape(geom.shape[:2] + geom.kernel + geom.out)
    if _gpu_kernels_take(geom, cols):
        image = xp_of(cols).empty(geom.shape, cols.dtype)
        gpu_kernels.add_window_columns(patches.transpose(1, 2, 3, 0, 4, 5), image, geom)
        return image
    return geom.scatter(lambda *tap: _put(tap[-2], patches[(slice(None), slice(None)) + tap[:-2]], tap[-1]),
                        cols.dtype, xp_of(cols))


# ----- convolution as chunked GEMMs -----------------------------------------------------------------
#
#   convolve(x, w, b)               y  = W @ im2col(x) + b
#   convolve_transpose(g, w)        gx = col2im(W^T @ g)        (the gradient of y in x)
#   convolve_weight_grad(x, g)      gw = g @ im2col(x)^T        (the gradient of y in w)
#
# with W the weight as one matrix per group (out_channels/G, C/G*kh*kw) and the columns of a chunk of
# images (C*kh*kw, images*oh*width). A chunk's columns (about _CHUNK_BYTES) are written, multiplied and
# dropped while still in cache; fresh large arrays are expensive (every new page faults on first touch).
# Outputs are laid out channel-major, (C, N, H, W) in memory: a chunk is then a block of GEMM output
# columns, and the bias and its gradient run along contiguous rows.

_CHUNK_BYTES = 1 << 20
# On a GPU, fewer and larger GEMMs: a chunk per kernel launch costs more there than cache misses.
_GPU_CHUNK_BYTES = 1 << 28


def _chunk_bytes(array) -> int:
    return _GPU_CHUNK_BYTES if on_gpu(array) else _CHUNK_BYTES


def _column_size(geom: Windows, width: int, images: int) -> int:
    """Elements of the columns of ``images`` images, ``width`` columns per output row."""
    return geom.shape[1] * geom.kernel[0] * geom.kernel[1] * geom.out[0] * width * images


def _row_width(geom: Windows, out_channels: int) -> int:
    """Columns per output row for numpy's im2col / col2im: the padded width for stride 1 when the columns
    have more rows (C*kh*kw) than the output (out_channels), else the output width.

    With the padded width, a tap's values for output rows i and i + 1 lie end to end in the padded
    image, so a copy moves one long run per image and channel instead of a short run per output row;
    the (kw - 1) * dw extra columns per row are junk (windows wrapping into the next row), which the
    GEMM computes and the output drops. Long runs save per-run work on the C*kh*kw column rows; junk
    costs GEMM work on the out_channels output rows."""
    (kh, kw), channels = geom.kernel, geom.shape[1]
    if geom.stride == (1, 1) and channels * kh * kw > out_channels:
        return geom.padded_hw[1]
    return geom.out[1]


def _batch_chunks(n: int, bytes_per_image: int, budget: int | None = None) -> list[slice]:
    """Slices that split a batch of ``n`` into even chunks of about ``budget`` (default ``_CHUNK_BYTES``) bytes
    of columns."""
    if n == 0:
        return []
    budget = _CHUNK_BYTES if budget is None else budget
    count = -(-n // max(1, budget // max(1, bytes_per_image)))
    size = -(-n // count)
    return [slice(start, min(n, start + size)) for start in range(0, n, size)]


def _columns(x, geom: Windows, groups: int, width: int, fast=None, keep: bool = False):
    """Yield ``(chunk, cols)`` over the batch of the image ``x``: ``cols`` (G, C/G*kh*kw, images*oh*width)
    holds the windows of ``x[chunk]``. Buffers are reused from chunk to chunk, so a ``cols`` is valid
    until the next one is yielded, unless ``keep`` (compiled kernels only), which gives every chunk its
    own block of one buffer for the batch. With ``fast`` (the compiled kernels) ``width`` is ow."""
    xp = xp_of(x)
    (n, c), (kh, kw), oh = x.shape[:2], geom.kernel, geom.out[0]
    rows = c * kh * kw
    chunks = _batch_chunks(n, _column_size(geom, width, 1) * x.dtype.itemsize, _chunk_bytes(x))
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
            fast.window_columns_f32(planes, cols, chunk.start, *where, False)
            yield chunk, cols.reshape(groups, rows // groups, -1)
        return
    slack = geom.slack_rows(width)
    padded = None
    if geom.has_padding or slack:  # borders (and slack) zeroed once; each chunk rewrites the interior
        hp, wp = geom.padded_hw
        padded = _allocate(xp, (size, c, hp + slack, wp), x.dtype, is_channels_major(x), fill=0)
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
    chunks = _batch_chunks(grad.shape[1], _column_size(geom, width, 1) * grad.dtype.itemsize, _chunk_bytes(grad))
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
    return xp_of(g).ascontiguousarray(g.transpose((1, 0) + tuple(range(2, g.ndim))))


def _convolve_im2col(x, w, bias, geom: Windows, groups: int, keep_bytes: int = 0):
    """The convolution of ``x`` (N, C, H, W) with ``w`` (O, C/G, kh, kw), plus ``bias`` (O,) or None:
    an (N, O, oh, ow) array laid out channel-major. Returns ``(out, kept)``: ``kept`` is x's columns
    chunk by chunk, for :func:`convolve_weight_grad`, when they take at most ``keep_bytes`` and the
    compiled kernels made them (without junk columns); else None."""
    if len(geom.kernel) != 2:
        return _convolve_nd(x, w, bias, geom, groups), None
    xp = xp_of(x)
    fast = _compiled_windows(x, geom)
    n, o, (oh, ow) = geom.shape[0], w.shape[0], geom.out
    width = ow if fast else _row_width(geom, o)
    weights = _grouped(w, groups)
    shift = 0 if bias is None else bias.reshape(o, 1, 1, 1)
    out = xp.empty((o, n, oh, ow), x.dtype)
    staging = None
    keep = fast is not None and _column_size(geom, width, n) * x.dtype.itemsize <= keep_bytes
    kept = [] if keep else None
    for chunk, cols in _columns(x, geom, groups, width, fast, keep=keep):
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
    return out.transpose(1, 0, 2, 3), kept


def _convolve_transpose_im2col(g, w, geom: Windows, groups: int):
    """The transposed convolution col2im(W^T @ g) of ``g`` (N, O, oh, ow) with ``w`` (O, C/G, kh, kw):
    the convolution's gradient in its input, an (N, C, H, W) array laid out channel-major."""
    if len(geom.kernel) != 2:
        return _convolve_transpose_nd(g, w, geom, groups)
    xp = xp_of(g)
    (n, c), (kh, kw), oh = geom.shape[:2], geom.kernel, geom.out[0]
    fast = _compiled_windows(g, geom, reads_image=False)  # it writes a new image
    # Junk columns of W^T @ g are exactly 0 (g's junk is 0) unless W holds an inf or NaN; they are added
    # onto real pixels, so with a non-finite W the columns are computed without junk.
    width = geom.out[1] if fast or not bool(xp.isfinite(w).all()) else _row_width(geom, w.shape[0])
    exact = geom.tiles_exactly
    weights_t = _grouped(w, groups).transpose(0, 2, 1)
    if fast:  # the compiled col2im adds the columns straight onto the unpadded image
        image = _allocate(xp, (n, c) + tuple(geom.shape[2:]), g.dtype, True, fill=0)
        planes, where = _kernel_arguments(image, geom)
    else:
        hp, wp = geom.padded_hw
        image = _allocate(xp, (n, c, hp + geom.slack_rows(width), wp), g.dtype, True, fill=None if exact else 0)
    buffer = None
    for chunk, rows in _output_rows(_channels_first(g), geom, width):
        images = chunk.stop - chunk.start
        size = c * kh * kw * images * oh * width
        buffer = xp.empty(size, g.dtype) if buffer is None else buffer
        cols = buffer[:size].reshape(groups, -1, images * oh * width)
        xp.matmul(weights_t, rows.reshape(groups, -1, images * oh * width), out=cols)
        if fast:
            fast.window_columns_f32(planes, cols.reshape(c, kh, kw, images, oh, width), chunk.start, *where, True)
            continue
        patches = cols.reshape(c, kh, kw, images, oh, width).transpose(3, 0, 1, 2, 4, 5)
        taps = geom.patches(image[chunk], width)  # writable windows of the image
        for a in range(kh):
            for b in range(kw):
                _put(taps[:, :, a, b], patches[:, :, a, b], not exact)
    return image if fast else geom.crop(image)


def _convolve_weight_grad_im2col(x, g, geom: Windows, groups: int, kept: list | None = None):
    """The convolution's gradient in its weight for the input ``x`` (N, C, H, W) and the output gradient
    ``g`` (N, O, oh, ow): g @ im2col(x)^T summed over the batch, shaped (O, C/G, kh, kw). ``kept``: x's
    columns as :func:`convolve` kept them, used instead of computing them again."""
    if len(geom.kernel) != 2:
        return _convolve_weight_grad_nd(x, g, geom, groups)
    xp = xp_of(x)
    o, (kh, kw) = g.shape[1], geom.kernel
    grad = _channels_first(g)  # (O, N, oh, ow)
    fast = _compiled_windows(x, geom)

    def summed(width):
        total = xp.zeros((groups, o // groups, x.shape[1] // groups * kh * kw), x.dtype)
        chunks = kept or (cols for _, cols in _columns(x, geom, groups, width, fast))
        for cols, (_, rows) in zip(chunks, _output_rows(grad, geom, width)):
            rows = rows.reshape(groups, o // groups, -1)
            # OpenBLAS is faster with the taller operand first
            if cols.shape[1] > rows.shape[1]:
                total += (cols @ rows.transpose(0, 2, 1)).transpose(0, 2, 1)
            else:
                total += rows @ cols.transpose(0, 2, 1)
        return total

    width = geom.out[1] if fast or kept else _row_width(geom, o)  # kept columns have no junk
    with np.errstate(invalid="ignore"):  # 0 * inf in the junk: caught below
        total = summed(width)
    if width != geom.out[1] and not bool(xp.isfinite(total).all()):
        total = summed(geom.out[1])  # junk columns hold pixels of x: g's zeros there times an inf are NaN
    return total.reshape(o, -1, kh, kw)


# ----- which path: pointwise convolutions, input gradients as flipped convolutions, or the above -----
#
# With a 1x1 kernel, stride 1 and no padding (Windows.pointwise: the 1x1 output layers, bottlenecks), x's
# columns are x itself with the channels first, (C, N*H*W): a view of a channel-major image, one copy of
# an NCHW one; the transposed convolution's columns are its channel-major image. Each of the three products
# is then one GEMM over the whole batch, with no im2col, no col2im and nothing to chunk. Any number of
# spatial axes.

def convolve(x, w, bias, geom: Windows, groups: int, keep_bytes: int = 0):
    """The convolution of ``x`` (N, C, *size) with ``w`` (O, C/G, *kernel), plus ``bias`` (O,) or None: an
    (N, O, *out) array laid out channel-major, and x's columns kept for :func:`convolve_weight_grad` (up to
    ``keep_bytes``) or None; see :func:`_convolve_im2col`."""
    if geom.pointwise:
        return _convolve_pointwise(x, _grouped(w, groups), bias), None
    return _convolve_im2col(x, w, bias, geom, groups, keep_bytes)


def convolve_transpose(g, w, geom: Windows, groups: int):
    """The transposed convolution of ``g`` (N, O, *out) with ``w`` (O, C/G, *kernel), the convolution's
    gradient in its input: an (N, C, *size) array laid out channel-major; see :func:`_convolve_transpose_im2col`."""
    if geom.pointwise:
        return _convolve_pointwise(g, _grouped(w, groups).transpose(0, 2, 1), None)
    flipped = _flipped_geometry(geom, w)
    if flipped is not None:
        return _convolve_im2col(g, _flipped_weight(w, groups), None, flipped, groups)[0]
    return _convolve_transpose_im2col(g, w, geom, groups)


def convolve_weight_grad(x, g, geom: Windows, groups: int, kept: list | None = None):
    """The convolution's gradient in its weight, (O, C/G, *kernel), for the input ``x`` and the output gradient
    ``g``, using the columns :func:`convolve` ``kept`` if any; see :func:`_convolve_weight_grad_im2col`."""
    if geom.pointwise:
        return _convolve_weight_grad_pointwise(x, g, geom, groups)
    return _convolve_weight_grad_im2col(x, g, geom, groups, kept)


# With stride 1 the convolution's input gradient is itself a convolution: of the output gradient (N, O, *out)
# padded by dilation * (kernel - 1) - padding, with the weight flipped in space and transposed per group. Its
# columns have O * prod(kernel) rows where col2im's have C * prod(kernel), and it adds nothing up, so it is
# the cheaper way when O <= C (the decoder convolutions of a U-Net; bench/ANALYSIS.md, "unet: the backend's
# convolution choices"). Not with an inf or NaN in the weight: its taps would also meet the padding's zeros
# (0 * inf is NaN) where col2im puts nothing.

def _flipped_geometry(geom: Windows, w) -> Windows | None:
    """The windows of the convolution that gives :func:`convolve_transpose` of ``geom`` with the weight ``w``
    (O, C/G, kh, kw), when that is the cheaper way: a 2-d stride-1 geometry, O <= C, padding at most the
    dilated kernel span, ``w`` finite; else None."""
    out_channels = w.shape[0]
    if len(geom.kernel) != 2 or any(s != 1 for s in geom.stride) or out_channels > geom.shape[1]:
        return None
    pad = []
    for axis, (k, d) in enumerate(zip(geom.kernel, geom.dilation)):
        before, size, windows = geom.pad[2 * axis], geom.shape[2 + axis], geom.out[axis]
        pad += [d * (k - 1) - before, size - windows + before]  # the second: rows past the last window too
    if min(pad) < 0 or not bool(xp_of(w).isfinite(w).all()):
        return None
    return Windows.for_conv((geom.shape[0], out_channels) + tuple(geom.out), geom.kernel, geom.stride,
                            geom.dilation, tuple(pad), "conv_transpose")


def _flipped_weight(w, groups: int):
    """The weight (O, C/G, kh, kw) flipped in space with each group's channels swapped: (C, O/G, kh, kw)."""
    o, cg = w.shape[:2]
    per_group = w.reshape((groups, o // groups, cg) + w.shape[2:]).transpose(0, 2, 1, 3, 4)[..., ::-1, ::-1]
    return xp_of(w).ascontiguousarray(per_group).reshape((cg * groups, o // groups) + w.shape[2:])


def _pointwise_rows(image, groups: int):
    """An (N, C, *size) image as (G, C/G, N*prod(size)), channels first (free for channel-major images)."""
    return _channels_first(image).reshape(groups, image.shape[1] // groups, image.size // max(1, image.shape[1]))


def _convolve_pointwise(x, weights, bias):
    """x (N, C, *size) times the matrices ``weights`` (G, O/G, C/G) per group of channels, plus ``bias``:
    (N, O, *size) laid out channel-major."""
    xp = xp_of(x)
    groups, o = weights.shape[0], weights.shape[0] * weights.shape[1]
    cols = _pointwise_rows(x, groups)
    out = xp.empty((o, x.shape[0]) + tuple(x.shape[2:]), x.dtype)
    xp.matmul(weights, cols, out=out.reshape(groups, o // groups, cols.shape[-1]))
    if bias is not None:
        out += bias.reshape((o,) + (1,) * (out.ndim - 1))
    return out.transpose((1, 0) + tuple(range(2, out.ndim)))


def _convolve_weight_grad_pointwise(x, g, geom: Windows, groups: int):
    c, o = x.shape[1], g.shape[1]
    total = _outer_sum(_pointwise_rows(g, groups), _pointwise_rows(x, groups))
    return total.reshape((o, c // groups) + geom.kernel)


def _outer_sum(rows, cols):
    """rows @ cols^T per group, for (G, O/G, L) rows and (G, R, L) columns; OpenBLAS is faster with the
    taller operand first."""
    if cols.shape[1] > rows.shape[1]:
        return (cols @ rows.transpose(0, 2, 1)).transpose(0, 2, 1)
    return rows @ cols.transpose(0, 2, 1)


# ----- convolution in 3-d (numpy only) ---------------------------------------------------------------
#
# The same three products over (N, C, D, H, W) images, written plainly: the columns of a chunk of images
# (G, C/G*kd*kh*kw, images*od*oh*ow) are one copy of the strided window view; outputs are channel-major.

def _nd_columns(x, geom: Windows, groups: int):
    """Yield ``(chunk, cols)``: the windows of ``x[chunk]`` as (G, C/G*prod(kernel), images*prod(out))."""
    xp = xp_of(x)
    c, nd = x.shape[1], len(geom.kernel)
    per_image = c * int(np.prod(geom.kernel)) * int(np.prod(geom.out))
    for chunk in _batch_chunks(x.shape[0], per_image * x.dtype.itemsize, _chunk_bytes(x)):
        patches = geom.patches(geom.padded(x[chunk]))  # (n, C, *kernel, *out)
        order = (1,) + tuple(range(2, 2 + nd)) + (0,) + tuple(range(2 + nd, 2 + 2 * nd))
        yield chunk, xp.ascontiguousarray(patches.transpose(order)).reshape(groups, per_image // groups // int(
            np.prod(geom.out)), -1)


def _convolve_nd(x, w, bias, geom: Windows, groups: int):
    xp = xp_of(x)
    n, o = geom.shape[0], w.shape[0]
    out = xp.empty((o, n) + geom.out, x.dtype)
    weights = _grouped(w, groups)
    for chunk, cols in _nd_columns(x, geom, groups):
        target = out[:, chunk]
        xp.matmul(weights, cols, out=target.reshape(groups, o // groups, -1))
        if bias is not None:
            target += bias.reshape((o,) + (1,) * (target.ndim - 1))
    return out.transpose((1, 0) + tuple(range(2, out.ndim)))


def _convolve_transpose_nd(g, w, geom: Windows, groups: int):
    xp = xp_of(g)
    n, c = geom.shape[:2]
    grad = _channels_first(g)  # (O, N, *out)
    weights_t = _grouped(w, groups).transpose(0, 2, 1)
    image = _allocate(xp, (n, c) + geom.padded_hw, g.dtype, True, fill=0)
    for chunk in _batch_chunks(n, c * int(np.prod(geom.kernel)) * int(np.prod(geom.out)) * g.dtype.itemsize,
                               _chunk_bytes(g)):
        images = chunk.stop - chunk.start
        rows = grad[:, chunk].reshape(groups, grad.shape[0] // groups, -1)
        cols = (weights_t @ rows).reshape((c,) + geom.kernel + (images,) + geom.out)
        taps = geom.patches(image[chunk])  # writable windows of the image
        for offset in itertools.product(*(range(k) for k in geom.kernel)):
            taps[(slice(None), slice(None)) + offset] += xp.moveaxis(cols[(slice(None),) + offset], 1, 0)
    return geom.crop(image)


def _convolve_weight_grad_nd(x, g, geom: Windows, groups: int):
    xp = xp_of(x)
    o = g.shape[1]
    grad = _channels_first(g)
    total = xp.zeros((groups, o // groups, x.shape[1] // groups * int(np.prod(geom.kernel))), x.dtype)
    for chunk, cols in _nd_columns(x, geom, groups):
        rows = grad[:, chunk].reshape(groups, o // groups, -1)
        total += rows @ cols.transpose(0, 2, 1)
    return total.reshape((o, -1) + geom.kernel)


# ----- window sums and maxima (pooling) -------------------------------------------------------------

def window_gather(x, geom: Windows, weights=None, scale=None):
    """out[n, c, i, j] = scale[..., i, j] * sum over taps (a, b) of weights[a, b][n, c, i, j] *
    padded_x[n, c, tap (a, b) of window (i, j)], in x's memory layout. ``weights`` (a mapping from each
    tap (a, b) to an array broadcastable to the output) and ``scale`` (a number or an array
    broadcastable to the output) may be None (= 1). Linear in ``x``; its adjoint is :func:`window_scatter`."""
    if weights is None and _gpu_kernels_take(geom, x):
        out = _allocate(xp_of(x), x.shape[:2] + geom.out, x.dtype, is_channels_major(x))
        gpu_kernels.window_sum(x, out, geom)
        if scale is not None:
            out *= scale
        return out
    padded = geom.padded(x)
    out = None
    for *offset, tap in geom.taps():
        term = padded[tap] if weights is None else padded[tap] * weights[tuple(offset)]
        if out is None:
            out = xp_of(term).array(term, order="K") if weights is None else term  # a copy in x's layout
        else:
            out += term
    if scale is not None:
        out *= scale
    return out


def window_scatter(g, geom: Windows, weights=None, scale=None, channels_major: bool | None = None):
    """The adjoint of :func:`window_gather`: each window's value in ``g`` (N, C, oh, ow), times its
    weight per tap and ``scale``, added onto the elements of that window; an (N, C, H, W) array laid out
    channel-major or not as asked (``g``'s layout when None)."""
    xp = xp_of(g)
    if channels_major is None:
        channels_major = is_channels_major(g)
    values = g
    if scale is not None or is_channels_major(g) != channels_major:
        # one pass over the (small) window values into the image's layout: the per-tap writes below
        # are much slower between mixed layouts
        values = _allocate(xp, tuple(g.shape), g.dtype, channels_major)
        if scale is None:
            values[...] = g
        else:
            xp.multiply(g, scale, out=values)
    if weights is None and _gpu_kernels_take(geom, values):
        image = _allocate(xp, geom.shape, values.dtype, channels_major)
        gpu_kernels.window_spread(values, image, geom)
        return image

    def write_tap(*tap):
        *offset, dest, accumulate = tap
        if weights is None:
            _put(dest, values, accumulate)
        elif accumulate:
            dest += values * weights[tuple(offset)]
        else:
            xp.multiply(values, weights[tuple(offset)], out=dest)

    return geom.scatter(write_tap, values.dtype, xp, channels_major)


def lowest(dtype):
    """The fill value for max pooling's padding: -inf, or the smallest integer."""
    return -np.inf if dtype.kind == "f" else np.iinfo(dtype).min


def _pool_planes(x, geom: Windows):
    """``(kernels, planes, channels_major)`` when the compiled 2 x 2 max-pooling kernels serve ``x``
    (2 x 2 windows tiling it, float32, one block of memory, large enough), else ``(None, None, None)``."""
    if geom.kernel != (2, 2) or not geom.tiles_exactly:
        return None, None, None
    planes, channels_major = _planes(x)
    fast = kernels.fused(planes) if planes is not None else None
    return (fast, planes, channels_major) if fast else (None, None, None)


def _over_planes(planes, work) -> None:
    parallel_for(planes.shape[0], planes[0].size, planes, work)


def max_pool(x, geom: Windows):
    """The maximum over each window of ``x`` (N, C, H, W), padding counting as the lowest value, in x's
    memory layout; a NaN in a window wins. numpy takes elementwise maxima of the taps' strided slices
    (far faster than a max over the small axes of a reshaped view)."""
    xp = xp_of(x)
    if _gpu_kernels_take(geom, x):
        out = _allocate(xp, x.shape[:2] + geom.out, x.dtype, is_channels_major(x))
        gpu_kernels.max_pool(x, out, geom)
        return out
    fast, planes, channels_major = _pool_planes(x, geom)
    if fast:
        out = xp.empty((planes.shape[0],) + geom.out, planes.dtype)
        _over_planes(planes, lambda lo, hi: fast.max_pool_2x2_f32(planes[lo:hi], out[lo:hi]))
        return _from_planes(out, x.shape[:2], channels_major)
    padded = geom.padded(x, lowest(x.dtype))
    out = None
    for *_, tap in geom.taps():
        if out is None:
            out = xp.array(padded[tap], order="K")  # a copy in x's layout
        else:
            xp.maximum(out, padded[tap], out=out)
    return out


def tie_shares(x, out, geom: Windows):
    """Where each window's maxima are, and each one's share of the window's gradient: per tap (a, b) a
    bool array, True where that tap holds its window's maximum ``out``; and 1 / (number of tied maxima)
    per window, or None when no window has a tie. Ties are common: after a relu, all-zero windows tie.
    A window whose maximum is NaN routes to its NaNs."""
    xp = xp_of(x)
    padded = geom.padded(x, lowest(x.dtype))
    hits = {tuple(offset): xp.equal(padded[tap], out) for *offset, tap in geom.taps()}
    if out.dtype.kind == "f":
        nan = xp.isnan(out)
        if nan.any():  # NaN != NaN
            for *offset, tap in geom.taps():
                hits[tuple(offset)] |= nan & xp.isnan(padded[tap])
    count = None  # maxima per window, in the gradient's float dtype (exact: a window has few taps)
    for hit in hits.values():
        count = hit.astype(out.dtype) if count is None else xp.add(count, hit, out=count)
    if float(count.max()) <= 1:
        return hits, None
    return hits, xp.reciprocal(count, out=count)


def max_pool_grad(x, out, g, geom: Windows):
    """The gradient of :func:`max_pool` in ``x`` for its output ``out`` and the output gradient ``g``:
    each window's gradient split evenly among the elements tied for its maximum, laid out as ``x``."""
    if _gpu_kernels_take(geom, x, out, g):
        return gpu_kernels.max_pool_grad(x, out, g, geom)
    fast, planes, channels_major = _pool_planes(x, geom)
    if fast:
        out_planes = _as_planes(out, channels_major)
        if not bool(xp_of(out).isnan(out_planes).any()):  # the kernel cannot route to NaN maxima
            g_planes = _as_planes(g, channels_major)  # a copy only if g's layout differs
            grad = xp_of(x).empty_like(planes)  # every element is written
            _over_planes(planes, lambda lo, hi: fast.max_pool_2x2_grad_f32(planes[lo:hi], out_planes[lo:hi],
                                                                             g_planes[lo:hi], grad[lo:hi]))
            return _from_planes(grad, x.shape[:2], channels_major)
    hits, share = tie_shares(x, out, geom)
    return window_scatter(g, geom, hits, share, is_channels_major(x))


def argmax_indices(image, geom: Windows):
    """Per window, the flat index (into H * W, or D * H * W) of its first maximum, NaN counting as maximal
    (PyTorch's rule)."""
    xp = xp_of(image)
    sizes, nd = geom.shape[2:], len(geom.kernel)
    starts = []
    first = 0  # the flat index of each window's first element inside the image
    for axis in range(nd):
        start = xp.arange(geom.out[axis]) * geom.stride[axis] - geom.pad[2 * axis]
        d = geom.dilation[axis]
        inside = start + (-start).clip(0) // d * d + ((-start).clip(0) % d > 0) * d
        shape = [1] * nd
        shape[axis] = -1
        starts.append(start.reshape(shape))
        first = first * sizes[axis] + inside.reshape(shape)
    padded = geom.padded(image, lowest(image.dtype))
    best = xp.full(geom.shape[:2] + geom.out, lowest(image.dtype), dtype=image.dtype)
    index = xp.broadcast_to(first, best.shape).astype(xp.int64)
    for *offset, tap in geom.taps():
        values = padded[tap]
        better = values > best
        if image.dtype.kind == "f":
            better |= xp.isnan(values)
        xp.copyto(best, values, where=better)
        position = 0
        for axis, a in enumerate(offset):
            position = position * sizes[axis] + starts[axis] + a * geom.dilation[axis]
        xp.copyto(index, xp.broadcast_to(position, index.shape), where=better)
    return index
