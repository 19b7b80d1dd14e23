"""CUDA twins of the fused CPU kernels, for CuPy arrays: GELU and its gradient, softmax and layer norm over
rows with their vector-Jacobian products, convolution's window columns (im2col / col2im), window sums and
maxima (average and max pooling, forward and gradient), and the scatter-add of rows.

Each function here computes what the numpy formula of the same name computes (in
:mod:`chainrule.backend.kernels`, :mod:`~chainrule.backend.rows`, :mod:`~chainrule.backend.windows` and
:mod:`~chainrule.backend.scatter`), for float32 and float64 arrays on the GPU; those modules call it when
their array is a CuPy array (:func:`chainrule.backend.gpu.on_gpu`) that :func:`takes`, and ops never see
which one ran. exp, tanh and relu need no kernel of their own: CuPy's ufuncs are one kernel each.

All kernels are CUDA source in :data:`SOURCE` (raw kernels rather than CuPy's generated elementwise and
reduction kernels, so that the whole source can be compiled by NVRTC and run on the CPU by the tests'
emulator, tests/backend/cuda_emulator.py, on machines without a GPU), compiled once per dtype (``T`` the
element type, ``ACC`` the type sums are kept in) on first use, never at import: nothing here imports CuPy
before a GPU array exists. ``CHAINRULE_KERNELS=numpy`` (or ``kernels.set_enabled(False)``) switches them off here too,
so the xp formulas run on the GPU instead. Results equal the numpy formulas to the dtype's rounding; the
window sums add their terms in the numpy code's order, so pooling and col2im agree exactly.
"""

from __future__ import annotations

import functools

import numpy as np

from chainrule.backend.gpu import cupy_module, on_gpu

__all__ = ["SOURCE", "source_for", "takes", "takes_any_layout", "gelu", "gelu_grad", "softmax_rows", "softmax_vjp_rows",
           "layer_norm_rows", "layer_norm_vjp_rows", "WINDOW_COLUMNS", "window_columns", "add_window_columns",
           "window_sum", "window_spread", "max_pool", "max_pool_grad", "add_rows_at"]

DTYPES = {np.dtype(np.float32): "float", np.dtype(np.float64): "double"}

SOURCE = r"""
#define LOOP(i, n) for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < (n); \
                        i += (long long)blockDim.x * gridDim.x)
#define ROWS(r, rows) for (long long r = blockIdx.x; r < (rows); r += gridDim.x)
#define COLUMNS(j, width) for (long long j = threadIdx.x; j < (width); j += blockDim.x)

__device__ __forceinline__ ACC neg_inf() { return (ACC)__longlong_as_double(0xfff0000000000000ULL); }

// numpy's maximum: a NaN on either side wins
__device__ __forceinline__ ACC nan_max(ACC a, ACC b) { return (a != a || a >= b) ? a : b; }

__device__ __forceinline__ ACC warp_sum(ACC v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

__device__ __forceinline__ ACC warp_max(ACC v) {
    for (int o = 16; o > 0; o >>= 1) v = nan_max(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

// The sum (or maximum) of v over the block (a whole number of warps); every thread gets it.
__device__ ACC block_sum(ACC v, ACC* shared) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
    v = warp_sum(v);
    __syncthreads();  // the previous reduction's reads of shared are done
    if (lane == 0) shared[warp] = v;
    __syncthreads();
    return warp_sum(lane < warps ? shared[lane] : (ACC)0);
}

__device__ ACC block_max(ACC v, ACC* shared) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
    v = warp_max(v);
    __syncthreads();
    if (lane == 0) shared[warp] = v;
    __syncthreads();
    return warp_max(lane < warps ? shared[lane] : neg_inf());
}

// ----- GELU: 0.5 x (1 + erf(x / sqrt 2)), or 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))

#define SQRT_HALF 0.70710678118654752440
#define SQRT_2_OVER_PI 0.79788456080286535588
#define INV_SQRT_2PI 0.39894228040143267794
#define GELU_C 0.044715

extern "C" __global__ void gelu(const T* x, T* y, long long n, int tanh_form) {
    LOOP(i, n) {
        const ACC v = x[i];
        const ACC inner = tanh_form ? tanh((ACC)SQRT_2_OVER_PI * (v + (ACC)GELU_C * v * v * v))
                                    : erf(v * (ACC)SQRT_HALF);
        y[i] = (T)((ACC)0.5 * v * ((ACC)1 + inner));
    }
}

// slope = gelu'(x), times g when has_g
extern "C" __global__ void gelu_grad(const T* x, const T* g, T* slope, long long n, int tanh_form, int has_g) {
    LOOP(i, n) {
        const ACC v = x[i];
        ACC s;
        if (tanh_form) {
            const ACC t = tanh((ACC)SQRT_2_OVER_PI * (v + (ACC)GELU_C * v * v * v));
            const ACC du = (ACC)SQRT_2_OVER_PI * ((ACC)1 + (ACC)(3 * GELU_C) * v * v);
            s = (ACC)0.5 * ((ACC)1 + t) + (ACC)0.5 * v * ((ACC)1 - t * t) * du;
        } else {
            s = (ACC)0.5 * ((ACC)1 + erf(v * (ACC)SQRT_HALF)) + v * exp((ACC)-0.5 * v * v) * (ACC)INV_SQRT_2PI;
        }
        slope[i] = (T)(has_g ? s * (ACC)g[i] : s);
    }
}

// ----- rows: one block per row (C-contiguous rows of `width`)

extern "C" __global__ void softmax_rows(const T* x, T* out, long long rows, long long width) {
    __shared__ ACC shared[32];
    ROWS(r, rows) {
        const T* row = x + r * width;
        T* o = out + r * width;
        ACC m = neg_inf();
        COLUMNS(j, width) m = nan_max(m, (ACC)row[j]);
        m = block_max(m, shared);
        ACC s = 0;
        COLUMNS(j, width) {
            const T e = (T)exp((ACC)row[j] - m);
            o[j] = e;
            s += (ACC)e;
        }
        s = block_sum(s, shared);
        COLUMNS(j, width) o[j] = (T)((ACC)o[j] / s);
    }
}

// p (g - sum(g p)) per row
extern "C" __global__ void softmax_vjp_rows(const T* g, const T* p, T* out, long long rows, long long width) {
    __shared__ ACC shared[32];
    ROWS(r, rows) {
        const T* gr = g + r * width;
        const T* pr = p + r * width;
        ACC s = 0;
        COLUMNS(j, width) s += (ACC)gr[j] * (ACC)pr[j];
        s = block_sum(s, shared);
        COLUMNS(j, width) out[r * width + j] = (T)(((ACC)gr[j] - s) * (ACC)pr[j]);
    }
}

extern "C" __global__ void layer_norm_rows(const T* x, const T* weight, const T* bias, T* out, T* mean, T* rstd,
                                           long long rows, long long width, ACC eps, int has_weight, int has_bias) {
    __shared__ ACC shared[32];
    ROWS(r, rows) {
        const T* row = x + r * width;
        ACC s = 0;
        COLUMNS(j, width) s += (ACC)row[j];
        const ACC mu = block_sum(s, shared) / (ACC)width;
        ACC v = 0;
        COLUMNS(j, width) {
            const ACC d = (ACC)row[j] - mu;
            v += d * d;
        }
        const ACC rs = (ACC)1 / sqrt(block_sum(v, shared) / (ACC)width + eps);
        COLUMNS(j, width) {
            ACC y = ((ACC)row[j] - mu) * rs;
            if (has_weight) y *= (ACC)weight[j];
            if (has_bias) y += (ACC)bias[j];
            out[r * width + j] = (T)y;
        }
        if (threadIdx.x == 0) {
            mean[r] = (T)mu;
            rstd[r] = (T)rs;
        }
    }
}

// xhat = (x - mean) rstd; with need_x, gx = rstd (gxhat - mean(gxhat) - xhat mean(gxhat xhat)), gxhat = g weight
extern "C" __global__ void layer_norm_vjp_rows(const T* g, const T* x, const T* mean, const T* rstd, const T* weight,
                                               T* xhat, T* gx, long long rows, long long width, int has_weight,
                                               int need_x) {
    __shared__ ACC shared[32];
    ROWS(r, rows) {
        const long long base = r * width;
        const ACC mu = mean[r], rs = rstd[r];
        ACC sa = 0, sb = 0;
        COLUMNS(j, width) {
            const ACC xh = (T)(((ACC)x[base + j] - mu) * rs);
            xhat[base + j] = (T)xh;
            const ACC gxh = has_weight ? (ACC)g[base + j] * (ACC)weight[j] : (ACC)g[base + j];
            sa += gxh * xh;
            sb += gxh;
        }
        if (!need_x) continue;  // the same for every thread of the block
        const ACC a = block_sum(sa, shared) / (ACC)width;
        const ACC b = block_sum(sb, shared) / (ACC)width;
        COLUMNS(j, width) {
            const ACC gxh = has_weight ? (ACC)g[base + j] * (ACC)weight[j] : (ACC)g[base + j];
            gx[base + j] = (T)((gxh - (ACC)xhat[base + j] * a - b) * rs);
        }
    }
}

// ----- windows over (N, C, H, W) images, any strides (in elements)
//
// The columns are indexed (c, a, b, n, i, j): tap (a, b) of channel c in window (i, j) of image n, which
// reads pixel (i*sh + a*dh - top, j*sw + b*dw - left); outside the image it reads 0 (or -inf for maxima).

#define WINDOW_ARGS long long C, long long KH, long long KW, long long N, long long OH, long long OW, \
    long long H, long long W, long long isn, long long isc, long long isy, long long isx, \
    long long csc, long long csa, long long csb, long long csn, long long csi, long long csj, \
    long long sh, long long sw, long long dh, long long dw, long long top, long long left

#define PIXEL(n, c, y, x) ((n) * isn + (c) * isc + (y) * isy + (x) * isx)
#define COLUMN(c, a, b, n, i, j) ((c) * csc + (a) * csa + (b) * csb + (n) * csn + (i) * csi + (j) * csj)

// cols = im2col(image)
extern "C" __global__ void im2col(const T* image, T* cols, long long total, WINDOW_ARGS) {
    LOOP(k, total) {
        long long rest = k;
        const long long j = rest % OW; rest /= OW;
        const long long i = rest % OH; rest /= OH;
        const long long n = rest % N; rest /= N;
        const long long b = rest % KW; rest /= KW;
        const long long a = rest % KH;
        const long long c = rest / KH;
        const long long y = i * sh + a * dh - top, x = j * sw + b * dw - left;
        cols[COLUMN(c, a, b, n, i, j)] = (y >= 0 && y < H && x >= 0 && x < W) ? image[PIXEL(n, c, y, x)] : (T)0;
    }
}

// col2im: each pixel gets the sum of its column values, taps in (a, b) order (added to it when accumulate).
// Gathered per pixel, so no two threads write one element.
extern "C" __global__ void col2im(const T* cols, T* image, long long total, WINDOW_ARGS, int accumulate) {
    LOOP(k, total) {
        long long rest = k;
        const long long x = rest % W; rest /= W;
        const long long y = rest % H; rest /= H;
        const long long c = rest % C;
        const long long n = rest / C;
        T s = 0;
        for (long long a = 0; a < KH; ++a) {
            const long long ty = y + top - a * dh;
            if (ty < 0 || ty % sh || ty / sh >= OH) continue;
            for (long long b = 0; b < KW; ++b) {
                const long long tx = x + left - b * dw;
                if (tx < 0 || tx % sw || tx / sw >= OW) continue;
                s += cols[COLUMN(c, a, b, n, ty / sh, tx / sw)];
            }
        }
        const long long at = PIXEL(n, c, y, x);
        image[at] = accumulate ? (T)(image[at] + s) : s;
    }
}

// The sum (maximum = 0) or the NaN-propagating maximum (maximum = 1) over each window; out is (N, C, OH, OW)
// with strides csn, csc, csi, csj (csa, csb unused).
extern "C" __global__ void window_reduce(const T* image, T* out, long long total, WINDOW_ARGS, int maximum) {
    LOOP(k, total) {
        long long rest = k;
        const long long j = rest % OW; rest /= OW;
        const long long i = rest % OH; rest /= OH;
        const long long c = rest % C;
        const long long n = rest / C;
        const T outside = maximum ? (T)neg_inf() : (T)0;
        T m = outside;
        for (long long a = 0; a < KH; ++a) {
            const long long y = i * sh + a * dh - top;
            for (long long b = 0; b < KW; ++b) {
                const long long x = j * sw + b * dw - left;
                const T v = (y >= 0 && y < H && x >= 0 && x < W) ? image[PIXEL(n, c, y, x)] : outside;
                if (a == 0 && b == 0) m = v;
                else if (!maximum) m += v;
                else if (m == m && (v != v || v > m)) m = v;
            }
        }
        out[COLUMN(c, 0, 0, n, i, j)] = m;
    }
}

__device__ __forceinline__ bool is_max(T v, T m) { return v == m || (v != v && m != m); }

// share = 1 / (taps holding the window's maximum), padding (-inf) included, as windows.tie_shares counts
extern "C" __global__ void max_pool_shares(const T* image, const T* pooled, T* share, long long total,
                                           WINDOW_ARGS) {
    LOOP(k, total) {
        long long rest = k;
        const long long j = rest % OW; rest /= OW;
        const long long i = rest % OH; rest /= OH;
        const long long c = rest % C;
        const long long n = rest / C;
        const long long at = COLUMN(c, 0, 0, n, i, j);
        const T m = pooled[at];
        T count = 0;
        for (long long a = 0; a < KH; ++a) {
            const long long y = i * sh + a * dh - top;
            for (long long b = 0; b < KW; ++b) {
                const long long x = j * sw + b * dw - left;
                const T v = (y >= 0 && y < H && x >= 0 && x < W) ? image[PIXEL(n, c, y, x)] : (T)neg_inf();
                count += is_max(v, m) ? (T)1 : (T)0;
            }
        }
        share[at] = (T)1 / count;
    }
}

// grad (the image's layout, strides is*) = each window's g times its share, added onto the pixels holding its
// maximum, windows in tap order; pooled, g and share have the window strides cs*
extern "C" __global__ void max_pool_grad(const T* image, const T* pooled, const T* g, const T* share, T* grad,
                                         long long total, WINDOW_ARGS) {
    LOOP(k, total) {
        long long rest = k;
        const long long x = rest % W; rest /= W;
        const long long y = rest % H; rest /= H;
        const long long c = rest % C;
        const long long n = rest / C;
        const T v = image[PIXEL(n, c, y, x)];
        T s = 0;
        for (long long a = 0; a < KH; ++a) {
            const long long ty = y + top - a * dh;
            if (ty < 0 || ty % sh || ty / sh >= OH) continue;
            for (long long b = 0; b < KW; ++b) {
                const long long tx = x + left - b * dw;
                if (tx < 0 || tx % sw || tx / sw >= OW) continue;
                const long long at = COLUMN(c, 0, 0, n, ty / sh, tx / sw);
                if (is_max(v, pooled[at])) s += (T)(g[at] * share[at]);
            }
        }
        grad[PIXEL(n, c, y, x)] = s;
    }
}
"""

KERNEL_NAMES = ("gelu", "gelu_grad", "softmax_rows", "softmax_vjp_rows", "layer_norm_rows", "layer_norm_vjp_rows",
                "im2col", "col2im", "window_reduce", "max_pool_shares", "max_pool_grad")

_THREADS = 256
_MAX_BLOCKS = 1 << 16  # the grid-stride loops cover the rest


def source_for(dtype) -> str:
    """The CUDA source of every kernel for arrays of ``dtype`` (float32 sums in float, float64 in double)."""
    name = DTYPES[np.dtype(dtype)]
    return f"typedef {name} T;\ntypedef {name} ACC;\n" + SOURCE


@functools.cache
def _module(dtype_name: str):
    return cupy_module().RawModule(code=source_for(dtype_name), options=("--std=c++14",))


def _kernel(name: str, dtype):
    return _module(np.dtype(dtype).name).get_function(name)


def takes(*arrays, any_layout: bool = False) -> bool:
    """Whether the kernels here serve ``arrays``: CuPy arrays of one dtype, float32 or float64, C-contiguous
    unless ``any_layout``, with the kernels not switched off (``CHAINRULE_KERNELS=numpy``)."""
    from chainrule.backend.kernels import _STATE

    first = arrays[0]
    if not _STATE["wanted"] or first.dtype not in DTYPES:
        return False
    return all(on_gpu(a) and a.dtype == first.dtype and (any_layout or a.flags.c_contiguous) for a in arrays)


def takes_any_layout(*arrays) -> bool:
    """:func:`takes` for the kernels that read and write any strides (the windows), or copy to C order first
    (GELU)."""
    return takes(*arrays, any_layout=True)


def _launch_flat(name: str, dtype, arrays: tuple, total: int, *rest) -> None:
    """A grid-stride kernel over ``total`` elements, given ``(*arrays, total, *rest)``."""
    if total:
        blocks = min(_MAX_BLOCKS, -(-total // _THREADS))
        _kernel(name, dtype)((blocks,), (_THREADS,), (*arrays, np.int64(total), *rest))


def _launch_rows(name: str, dtype, rows: int, width: int, args) -> None:
    """A kernel with one block per row (a whole number of warps, at most 8, over the row's ``width``)."""
    if rows and width:
        threads = 32 * min(8, -(-width // 32))
        _kernel(name, dtype)((min(rows, _MAX_BLOCKS),), (threads,), args)


def _flag(value) -> np.int32:
    return np.int32(1 if value else 0)


# ----- GELU ---------------------------------------------------------------------------------------------------

def gelu(x, approximate: str):
    """As :func:`chainrule.backend.kernels.gelu`: ``(out, None)`` (the gradient computes erf or tanh again)."""
    cp = cupy_module()
    x = cp.ascontiguousarray(x)
    out = cp.empty_like(x)
    _launch_flat("gelu", x.dtype, (x, out), x.size, _flag(approximate == "tanh"))
    return out, None


def gelu_grad(x, g, approximate: str):
    """As :func:`chainrule.backend.kernels.gelu_grad`: ``g * gelu'(x)``, or ``gelu'(x)`` when ``g`` is None."""
    cp = cupy_module()
    x = cp.ascontiguousarray(x)
    g = None if g is None else cp.ascontiguousarray(g).reshape(x.shape)
    slope = cp.empty_like(x)
    _launch_flat("gelu_grad", x.dtype, (x, x if g is None else g, slope), x.size, _flag(approximate == "tanh"),
                 _flag(g is not None))
    return slope


# ----- rows ---------------------------------------------------------------------------------------------------

def softmax_rows(x, out):
    """As :func:`chainrule.backend.rows.softmax_rows` (``out`` given)."""
    rows, width = x.shape
    _launch_rows("softmax_rows", x.dtype, rows, width, (x, out, np.int64(rows), np.int64(width)))
    return out


def softmax_vjp_rows(g, p, out):
    """As :func:`chainrule.backend.rows.softmax_vjp_rows` (``out`` given)."""
    rows, width = g.shape
    _launch_rows("softmax_vjp_rows", g.dtype, rows, width, (g, p, out, np.int64(rows), np.int64(width)))
    return out


def layer_norm_rows(x, weight, bias, eps: float) -> tuple:
    """As :func:`chainrule.backend.rows.layer_norm_rows`: ``(out, mean, rstd)``, statistics summed in the dtype."""
    cp = cupy_module()
    rows, width = x.shape
    out, mean, rstd = cp.empty_like(x), cp.empty((rows, 1), x.dtype), cp.empty((rows, 1), x.dtype)
    _launch_rows("layer_norm_rows", x.dtype, rows, width,
                 (x, x if weight is None else weight, x if bias is None else bias, out, mean, rstd, np.int64(rows),
                  np.int64(width), x.dtype.type(eps), _flag(weight is not None), _flag(bias is not None)))
    return out, mean, rstd


def layer_norm_vjp_rows(g, x, mean, rstd, weight, need_x: bool) -> tuple:
    """As :func:`chainrule.backend.rows.layer_norm_vjp_rows` (``g`` already of x's shape, C-contiguous)."""
    cp = cupy_module()
    rows, width = x.shape
    xhat = cp.empty_like(x)
    gx = cp.empty_like(x) if need_x else None
    _launch_rows("layer_norm_vjp_rows", x.dtype, rows, width,
                 (g, x, mean, rstd, x if weight is None else weight, xhat, xhat if gx is None else gx,
                  np.int64(rows), np.int64(width), _flag(weight is not None), _flag(need_x)))
    gw = None if weight is None else cp.einsum("ij,ij->j", g, xhat)
    return gx, gw, g.sum(axis=0)


# ----- windows ------------------------------------------------------------------------------------------------

def _elements(array) -> tuple:
    """``array``'s strides in elements."""
    return tuple(np.int64(s // array.itemsize) for s in array.strides)


def _window_args(geom, image_strides: tuple, column_strides: tuple) -> tuple:
    """The WINDOW_ARGS of the kernels: sizes, the image's (n, c, y, x) and the columns' (c, a, b, n, i, j)
    strides in elements, stride, dilation, top and left padding."""
    (n, c, h, w), (kh, kw), (oh, ow) = geom.shape, geom.kernel, geom.out
    sizes = (c, kh, kw, n, oh, ow, h, w)
    where = geom.stride + geom.dilation + (geom.pad[0], geom.pad[2])
    return tuple(np.int64(v) for v in sizes) + image_strides + column_strides + tuple(np.int64(v) for v in where)


def _window_strides(windows) -> tuple:
    """An (N, C, OH, OW) array's strides in the columns' (c, a, b, n, i, j) order, with no tap axes."""
    sn, sc, si, sj = _elements(windows)
    return sc, np.int64(0), np.int64(0), sn, si, sj


def window_columns(image, cols, geom, accumulate: bool = False) -> None:
    """im2col of ``image`` (N, C, H, W) into ``cols`` (C, kh, kw, N, oh, ow), any strides; with ``accumulate``
    the adjoint, col2im: ``cols`` added onto ``image``."""
    args = _window_args(geom, _elements(image), _elements(cols))
    if accumulate:
        _launch_flat("col2im", image.dtype, (cols, image), image.size, *args, _flag(True))
    else:
        _launch_flat("im2col", image.dtype, (image, cols), cols.size, *args)


class _WindowColumns:
    """The compiled CPU kernel's interface to :func:`window_columns`, so that the chunked convolution in
    :mod:`chainrule.backend.windows` drives either (its name is the CPU kernel's; float32 and float64 here)."""

    @staticmethod
    def window_columns_f32(planes, cols, first, pc, pn, sh, sw, dh, dw, top, left, add_back) -> None:
        """As :func:`chainrule.backend._numba.window_columns_f32`: the chunk of images from ``first`` of the
        (planes, H, W) image memory, channel c of image n at plane c*pc + n*pn; ``cols`` (C, kh, kw, n, oh, ow)."""
        from chainrule.backend.windows import Windows

        c, kh, kw, images, oh, ow = cols.shape
        h, w = planes.shape[1:]
        geom = Windows((images, c, h, w), (kh, kw), (sh, sw), (dh, dw), (top, 0, left, 0), (oh, ow))
        image = cupy_module().lib.stride_tricks.as_strided(
            planes[first * pn:], (images, c, h, w), (pn * h * w * planes.itemsize, pc * h * w * planes.itemsize,
                                                      w * planes.itemsize, planes.itemsize))
        window_columns(image, cols, geom, add_back)


WINDOW_COLUMNS = _WindowColumns()


def add_window_columns(cols, image, geom) -> None:
    """col2im writing ``image`` (N, C, H, W, any strides) from ``cols`` (C, kh, kw, N, oh, ow): every pixel set."""
    args = _window_args(geom, _elements(image), _elements(cols))
    _launch_flat("col2im", image.dtype, (cols, image), image.size, *args, _flag(False))


def window_sum(image, out, geom) -> None:
    """``out`` (N, C, oh, ow) = the sum over each window of ``image``, padding 0, taps in (a, b) order."""
    args = _window_args(geom, _elements(image), _window_strides(out))
    _launch_flat("window_reduce", image.dtype, (image, out), out.size, *args, _flag(False))


def window_spread(values, image, geom) -> None:
    """The adjoint of :func:`window_sum`: ``image`` (every pixel written) = the sum of the ``values`` (N, C, oh,
    ow) of the windows holding each pixel."""
    args = _window_args(geom, _elements(image), _window_strides(values))
    _launch_flat("col2im", image.dtype, (values, image), image.size, *args, _flag(False))


def max_pool(image, out, geom) -> None:
    """``out`` (N, C, oh, ow) = the maximum over each window of ``image``, padding -inf, a NaN winning."""
    args = _window_args(geom, _elements(image), _window_strides(out))
    _launch_flat("window_reduce", image.dtype, (image, out), out.size, *args, _flag(True))


def max_pool_grad(image, pooled, g, geom):
    """The gradient in ``image`` (laid out as it): each window's ``g`` split evenly among the taps tied for
    its maximum ``pooled`` (as :func:`chainrule.backend.windows.max_pool_grad`)."""
    cp = cupy_module()
    pooled, g = cp.ascontiguousarray(pooled), cp.ascontiguousarray(g)
    share = cp.empty_like(pooled)
    grad = cp.empty_like(image)
    if grad.strides != image.strides:  # an image with gaps: the kernel reads and writes one layout
        image = cp.ascontiguousarray(image)
        grad = cp.empty_like(image)
    args = _window_args(geom, _elements(image), _window_strides(pooled))
    _launch_flat("max_pool_shares", image.dtype, (image, pooled, share), pooled.size, *args)
    _launch_flat("max_pool_grad", image.dtype, (image, pooled, g, share, grad), image.size, *args)
    return grad


# ----- scatter ------------------------------------------------------------------------------------------------

def add_rows_at(values, index, rows: int):
    """As :func:`chainrule.backend.scatter.add_rows_at`: zeros of (rows, K) with row j of ``values`` added at
    row ``index[j]`` (CuPy's scatter-add, atomic adds in values' dtype)."""
    cp = cupy_module()
    import cupyx

    out = cp.zeros((rows, values.shape[1]), values.dtype)
    cupyx.scatter_add(out, index, values)
    return out
