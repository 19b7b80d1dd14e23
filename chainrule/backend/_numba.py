"""float32 kernels compiled by numba (imported only through :mod:`chainrule.backend.kernels`).

The numpy formula each one stands in for is in the function that calls it, in
:mod:`chainrule.backend.kernels` or :mod:`chainrule.backend.rows`. exp and tanh work in float64 and
round once to float32, so their results are within one ulp of the exact value (tests/backend/test_kernels.py
checks this against float64 numpy on millions of inputs), as accurate as numpy's own float32 ufuncs;
being plain loops that LLVM vectorises, they are several times faster on CPUs without AVX-512 (figures:
bench/ANALYSIS.md, "Kernels and fused ops").

``error_model="numpy"`` matters: with Python's error model every division checks for zero, and the
check stops LLVM from vectorising the loop.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, types
from numba.extending import intrinsic

_JIT = dict(nogil=True, cache=True, error_model="numpy", fastmath={"contract"})
# Row kernels may reorder their sums and maxima, which lets LLVM vectorise those loops (softmax's rows
# then take well under half the time). The flag stays on the instructions of the function it compiles,
# so the exact steps inside _exp64 and _exp32 (adding and subtracting 1.5 * 2**52, 1.5 * 2**23) are never
# folded away.
_ROW_JIT = dict(_JIT, fastmath={"contract", "reassoc"})
_VEC, _ROWS = "float32[::1]", "float32[:, ::1]"  # contiguous 1-D arrays and rows of 2-D ones
_SCALAR = "float32(float32)"
_UNARY = f"void({_VEC}, {_VEC})"
_IN_PLACE = f"void({_VEC})"


@intrinsic
def _bits_of(typingctx, value):
    """The int64 with the bits of a float64 (a register move, which vectorises; numpy's view cannot)."""
    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], context.get_value_type(types.int64))
    return types.int64(types.float64), codegen


@intrinsic
def _float_of(typingctx, bits):
    """The float64 with the bits of an int64."""
    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], context.get_value_type(types.float64))
    return types.float64(types.int64), codegen


@intrinsic
def _float32_of(typingctx, bits):
    """The float32 with the bits of an int32."""
    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], context.get_value_type(types.float32))
    return types.float32(types.int32), codegen


# exp(x) = 2**n * exp(r), n = round(x / ln 2), |r| <= ln(2) / 2. Adding 1.5 * 2**52 rounds x / ln 2 to
# an integer that sits in the low bits of the sum, from which 2**n is built by shifting it into the
# exponent field. exp(r) is its Taylor series to r**7 (remainder below 6e-9 relative, a tenth of a
# float32 ulp). Clamping to [-105, 90] keeps n in float64's normal range; float32 overflows to inf
# above 88.73 and underflows to 0 below -103.98 all the same.
_LOG2E = 1.4426950408889634
_LN2 = 0.6931471805599453
_SHIFTER = 6755399441055744.0
_SHIFTER_BITS = int(np.array(_SHIFTER).view(np.int64))
_E0, _E1, _E2, _E3, _E4, _E5, _E6, _E7 = (1.0 / math.factorial(k) for k in range(8))


@njit("float64(float64)", **_JIT)
def _exp64(v):
    """exp(v) to float32 accuracy (relative error below 1e-8), in float64."""
    c = min(max(v, -105.0), 90.0)
    shifted = c * _LOG2E + _SHIFTER
    n = shifted - _SHIFTER
    r = c - n * _LN2
    p = ((((((_E7 * r + _E6) * r + _E5) * r + _E4) * r + _E3) * r + _E2) * r + _E1) * r + _E0
    scale = _float_of((_bits_of(shifted) - _SHIFTER_BITS + 1023) << 52)
    return p * scale if v == v else v  # NaN stays NaN


@njit(_SCALAR, **_JIT)
def _exp(x):
    return np.float32(_exp64(np.float64(x)))


# tanh(u) = u P(u**2) / Q(u**2) on |u| <= 9 (beyond, tanh rounds to +-1 in float32). The rational was
# fitted by iteratively reweighted least squares on the relative error (200,000 points on [0, 9] and
# 20,000 log-spaced below 1): relative error 2.1e-8 in float64, i.e. within 0.85 float32 ulp after the
# final rounding (checked on 9.8 million float32 values from 1e-12 to 9.5).
_P0, _P1, _P2, _P3, _P4 = (0.999999979351068, 0.13381065001273562, 0.0034956359001501506,
                           2.060990469169655e-05, 1.3355865580155779e-08)
_Q1, _Q2, _Q3, _Q4 = (0.4671438054109351, 0.025877161387645755, 0.00032857145480488065, 7.777037562203826e-07)


@njit("float64(float64)", **_JIT)
def _tanh64(v):
    """tanh(v) to float32 accuracy (relative error below 2.1e-8), in float64."""
    u = min(max(v, -9.0), 9.0)  # a NaN passes through min and max
    s = u * u
    p = (((_P4 * s + _P3) * s + _P2) * s + _P1) * s + _P0
    q = (((_Q4 * s + _Q3) * s + _Q2) * s + _Q1) * s + 1.0
    return u * p / q


@njit(_SCALAR, **_JIT)
def _tanh(x):
    return np.float32(_tanh64(np.float64(x)))


# Each function has a loop from one array into another and one over an array in place: LLVM vectorises
# a loop between two arrays only after a run-time check that they do not overlap, and runs the scalar
# loop, several times slower, when they are the same array. They are written
# out, not made by a factory: numba's disk cache cannot reuse closures and would compile them anew in
# every process.

@njit(_UNARY, **_JIT)
def exp_f32(x, out):
    for i in range(x.size):
        out[i] = _exp(x[i])


@njit(_IN_PLACE, **_JIT)
def exp_f32_in_place(x):
    for i in range(x.size):
        x[i] = _exp(x[i])


@njit(_UNARY, **_JIT)
def tanh_f32(x, out):
    for i in range(x.size):
        out[i] = _tanh(x[i])


@njit(_IN_PLACE, **_JIT)
def tanh_f32_in_place(x):
    for i in range(x.size):
        x[i] = _tanh(x[i])


# ----- relu: exact, so bit for bit numpy's maximum(x, 0) and where(out > 0, g, 0) ------------------

@njit(_UNARY, **_JIT)
def relu_f32(x, out):
    for i in range(x.size):
        v = x[i]
        out[i] = v if (v > 0 or v != v) else np.float32(0)  # NaN stays NaN, -0.0 gives +0.0: numpy's maximum


@njit(f"void({_VEC}, {_VEC}, {_VEC})", **_JIT)
def relu_grad_f32(out, g, grad):
    for i in range(out.size):
        grad[i] = g[i] if out[i] > 0 else np.float32(0)


# ----- fused kernels: one pass where numpy makes several -----------------------------------------

# exp in float32 arithmetic (eight lanes per AVX2 vector where float64 has four), for GELU and softmax:
# the same reduction as _exp64 with ln 2 split in two parts, Taylor terms to r**6; within 2.7 ulp of exp
# on [-87, 88] (numpy's float32 exp: 2.4). Beyond, float32 overflows to inf or underflows to 0 anyway.
_F_LOG2E, _F_LN2_HI, _F_LN2_LO = np.float32(_LOG2E), np.float32(0.693359375), np.float32(-2.12194440e-4)
_F_SHIFTER = np.float32(12582912.0)  # 1.5 * 2**23: adding it rounds to an integer held in the low bits
_F0, _F1, _F2, _F3, _F4, _F5, _F6 = (np.float32(1.0 / math.factorial(k)) for k in range(7))
_F_LOW, _F_HIGH = np.float32(-87.0), np.float32(88.0)


@njit("float32(float32)", **_JIT)
def _exp32(v):
    c = min(max(v, _F_LOW), _F_HIGH)
    n = (c * _F_LOG2E + _F_SHIFTER) - _F_SHIFTER
    r = (c - n * _F_LN2_HI) - n * _F_LN2_LO
    p = (((((_F6 * r + _F5) * r + _F4) * r + _F3) * r + _F2) * r + _F1) * r + _F0
    # below -87 the result is 0 (float32's subnormals flushed): a masked score (-inf) must weigh nothing
    return np.float32(0.0) if v < _F_LOW else p * _float32_of((np.int32(n) + np.int32(127)) << np.int32(23))


# GELU(tanh) as 0.5 x (1 + tanh u) = x / (1 + exp(-2u)), u = sqrt(2/pi) (x + 0.044715 x**3), in float32.
# The sigmoid form has no cancellation where tanh u nears -1 (negative x), which both 0.5 x (1 + t) in
# float64 with a float32-accurate tanh and numpy's float32 passes suffer; it is also faster than the
# same formula in float64 (accuracy and timings: bench/ANALYSIS.md, "Kernels and fused ops").
_F_2K = np.float32(-2.0 * math.sqrt(2.0 / math.pi))  # -2 sqrt(2/pi): exp's argument is _F_2K (x + c x**3)
_F_K, _F_C, _F_3C = np.float32(math.sqrt(2.0 / math.pi)), np.float32(0.044715), np.float32(3 * 0.044715)
_F_ONE, _F_TWO, _F_HALF = np.float32(1.0), np.float32(2.0), np.float32(0.5)


@njit(f"void({_VEC}, {_VEC})", **_JIT)
def gelu_tanh_f32(x, out):
    """out = x / (1 + exp(-2u)) = 0.5 x (1 + tanh u)."""
    for i in range(x.size):
        v = x[i]
        out[i] = v / (_F_ONE + _exp32(_F_2K * (v + _F_C * v * v * v)))


@njit(f"void({_VEC}, {_VEC}, {_VEC})", **_JIT)
def gelu_tanh_grad_f32(x, g, out):
    """out = g * d gelu / dx = g (s + 2 x u' s (1 - s)), s = 1 / (1 + e), 1 - s = e s, e = exp(-2u),
    u' = sqrt(2/pi) (1 + 3 * 0.044715 x**2); computed from x alone (the forward keeps nothing more)."""
    for i in range(x.size):
        v = x[i]
        e = _exp32(_F_2K * (v + _F_C * v * v * v))
        s = _F_ONE / (_F_ONE + e)
        du = _F_K * (_F_ONE + _F_3C * v * v)
        out[i] = g[i] * (s + _F_TWO * v * du * s * (e * s))


@njit(f"void({_ROWS}, {_ROWS})", **_ROW_JIT)
def softmax_rows_f32(x, out):
    """Each row's softmax: exp(x - max) / sum, in float32 (_exp32; the sum in eight lanes, where a float64
    one costs half the time again). A row of -inf gives NaN, as numpy's."""
    for i in range(x.shape[0]):
        row, dest = x[i], out[i]
        top = row[0]
        for j in range(1, row.size):
            top = max(top, row[j])
        total = np.float32(0.0)
        for j in range(row.size):
            e = _exp32(row[j] - top)
            dest[j] = e
            total += e
        scale = _F_ONE / total
        for j in range(row.size):
            dest[j] *= scale


@njit(f"void({_ROWS}, {_ROWS}, {_ROWS})", **_ROW_JIT)
def softmax_vjp_rows_f32(g, p, out):
    """out = p (g - sum(g p)) per row: the softmax's vector-Jacobian product."""
    for i in range(g.shape[0]):
        total = 0.0
        for j in range(g.shape[1]):
            total += np.float64(g[i, j]) * np.float64(p[i, j])
        for j in range(g.shape[1]):
            out[i, j] = np.float32(np.float64(p[i, j]) * (np.float64(g[i, j]) - total))


_LAYER_NORM = f"void({_ROWS}, {_VEC}, {_VEC}, float64, {_ROWS}, {_ROWS}, {_ROWS})"


@njit(_LAYER_NORM, **_ROW_JIT)
def layer_norm_rows_f32(x, w, b, eps, out, mean, rstd):
    """Per row: (x - mean) / sqrt(var + eps) * w + b (w, b of size 0 when absent), keeping the mean and
    1/std of each row in ``mean`` and ``rstd`` (shape (rows, 1)); statistics in float64."""
    width = x.shape[1]
    for i in range(x.shape[0]):
        total = 0.0
        for j in range(width):
            total += np.float64(x[i, j])
        m = total / width
        spread = 0.0
        for j in range(width):
            d = np.float64(x[i, j]) - m
            spread += d * d
        r = 1.0 / math.sqrt(spread / width + eps)
        mean[i, 0] = np.float32(m)
        rstd[i, 0] = np.float32(r)
        for j in range(width):
            y = (np.float64(x[i, j]) - m) * r
            if w.size:
                y *= np.float64(w[j])
            if b.size:
                y += np.float64(b[j])
            out[i, j] = np.float32(y)


@njit(f"void({_ROWS}, {_ROWS}, {_ROWS}, {_ROWS}, {_ROWS}, {_ROWS}, {_ROWS})", **_JIT)
def lstm_cell_rows_f32(gx, gh, c, act, c_new, tc, hh):
    """One LSTM step per row from the two halves of the pre-activations (gate order i, f, g, o):
    act = (sigmoid i, sigmoid f, tanh g, sigmoid o) with sigmoid(v) = tanh(v / 2) / 2 + 1/2, then
    c_new = f c + i g, tc = tanh(c_new), hh = o tc."""
    H = c.shape[1]
    for b in range(c.shape[0]):
        for j in range(H):
            i = _tanh(_F_HALF * (gx[b, j] + gh[b, j])) * _F_HALF + _F_HALF
            f = _tanh(_F_HALF * (gx[b, H + j] + gh[b, H + j])) * _F_HALF + _F_HALF
            g = _tanh(gx[b, 2 * H + j] + gh[b, 2 * H + j])
            o = _tanh(_F_HALF * (gx[b, 3 * H + j] + gh[b, 3 * H + j])) * _F_HALF + _F_HALF
            act[b, j], act[b, H + j], act[b, 2 * H + j], act[b, 3 * H + j] = i, f, g, o
            cell = f * c[b, j] + i * g
            t = _tanh(cell)
            c_new[b, j], tc[b, j], hh[b, j] = cell, t, o * t


@njit(f"void({_ROWS}, {_ROWS}, {_ROWS}, {_ROWS}, {_ROWS}, {_ROWS}, {_ROWS})", **_JIT)
def lstm_cell_vjp_rows_f32(dh, dc, act, c, tc, dgates, dc_prev):
    """The LSTM step's vector-Jacobian product per row: with dct = dc + dh o (1 - tc^2), the gradients of
    the pre-activations (i, f, g, o) are dct g i (1 - i), dct c f (1 - f), dct i (1 - g^2), dh tc o (1 - o),
    and that of the previous cell state is dct f."""
    H = c.shape[1]
    for b in range(c.shape[0]):
        for j in range(H):
            i, f, g, o = act[b, j], act[b, H + j], act[b, 2 * H + j], act[b, 3 * H + j]
            t = tc[b, j]
            dct = dc[b, j] + dh[b, j] * o * (_F_ONE - t * t)
            dgates[b, j] = dct * g * i * (_F_ONE - i)
            dgates[b, H + j] = dct * c[b, j] * f * (_F_ONE - f)
            dgates[b, 2 * H + j] = dct * i * (_F_ONE - g * g)
            dgates[b, 3 * H + j] = dh[b, j] * t * o * (_F_ONE - o)
            dc_prev[b, j] = dct * f


_LAYER_NORM_VJP = f"void({_ROWS}, {_ROWS}, {_ROWS}, {_ROWS}, {_VEC}, {_ROWS}, {_ROWS})"


@njit(_LAYER_NORM_VJP, **_ROW_JIT)
def layer_norm_vjp_rows_f32(g, x, mean, rstd, w, xhat, gx):
    """Per row: xhat = (x - mean) rstd and gx = rstd (gxhat - mean(gxhat) - xhat mean(gxhat xhat)),
    gxhat = g w (w of size 0 when absent); gx of size 0 to compute xhat only."""
    width = x.shape[1]
    for i in range(x.shape[0]):
        m, r = np.float64(mean[i, 0]), np.float64(rstd[i, 0])
        for j in range(width):
            xhat[i, j] = np.float32((np.float64(x[i, j]) - m) * r)
        if gx.size == 0:
            continue
        total = 0.0
        weighted = 0.0
        for j in range(width):
            gh = np.float64(g[i, j]) * np.float64(w[j]) if w.size else np.float64(g[i, j])
            total += gh
            weighted += gh * np.float64(xhat[i, j])
        a, c = total / width, weighted / width
        for j in range(width):
            gh = np.float64(g[i, j]) * np.float64(w[j]) if w.size else np.float64(g[i, j])
            gx[i, j] = np.float32(r * (gh - a - np.float64(xhat[i, j]) * c))


# ----- max pooling over 2 x 2 windows with stride 2 (nn.MaxPool2d(2)), on (planes, H, W) arrays --------

_PLANES = "float32[:, :, ::1]"


@njit(f"void({_PLANES}, {_PLANES})", **_JIT)
def max_pool_2x2_f32(x, out):
    """out[p, i, j] = the maximum of x[p, 2i:2i+2, 2j:2j+2]; a NaN in the window wins, as numpy's maximum."""
    for p in range(out.shape[0]):
        for i in range(out.shape[1]):
            top, bottom, dest = x[p, 2 * i], x[p, 2 * i + 1], out[p, i]
            for j in range(out.shape[2]):
                a, b, c, d = top[2 * j], top[2 * j + 1], bottom[2 * j], bottom[2 * j + 1]
                upper = a if (a > b or a != a) else b
                lower = c if (c > d or c != c) else d
                dest[j] = upper if (upper > lower or upper != upper) else lower


@njit(f"void({_PLANES}, {_PLANES}, {_PLANES}, {_PLANES})", **_JIT)
def max_pool_2x2_grad_f32(x, out, g, grad):
    """grad (every element written) = each window's gradient split evenly among the elements equal to its
    maximum, zero elsewhere: chainrule's rule for ties. No maximum may be NaN (the caller checks).

    Two passes per pair of rows: 1 or 0 for each element (its window's maximum read at index k >> 1,
    a loop LLVM vectorises), then each window's share scales its four. One pass over the windows
    ran scalar and took twice as long, and so did a NaN test in the first loop."""
    for p in range(out.shape[0]):
        for i in range(out.shape[1]):
            top, bottom, high, gi = x[p, 2 * i], x[p, 2 * i + 1], out[p, i], g[p, i]
            up, down = grad[p, 2 * i], grad[p, 2 * i + 1]
            for k in range(top.shape[0]):
                m = high[k >> 1]
                up[k] = np.float32(top[k] == m)
                down[k] = np.float32(bottom[k] == m)
            for j in range(out.shape[2]):
                share = gi[j] / (up[2 * j] + up[2 * j + 1] + down[2 * j] + down[2 * j + 1])
                up[2 * j] *= share
                up[2 * j + 1] *= share
                down[2 * j] *= share
                down[2 * j + 1] *= share


# ----- convolution's window copies: im2col and col2im without a padded copy of the image ----------------
#
# ``planes`` holds the images as C-contiguous (planes, H, W); image n's channel c is plane
# c * pc + n * pn (pc, pn = 1, C for NCHW memory, N, 1 for channel-major). ``cols`` is the chunk of
# columns (C, kh, kw, images, oh, ow) of images first .. first + images - 1. Window (i, j)'s tap (a, b)
# reads pixel (i*sh + a*dh - top, j*sw + b*dw - left); outside the image that is padding: a zero in
# the columns, nothing added back.
# The pixel indices are cast to unsigned: they are never negative (the loops cover the windows inside
# the image only), but LLVM cannot prove it, and numba's handling of negative indices on signed ones
# keeps the loops scalar, several times slower (bench/ANALYSIS.md).

_COLS = "float32[:, :, :, :, :, ::1]"
_WINDOWS = f"void({_PLANES}, {_COLS}, int64, int64, int64, int64, int64, int64, int64, int64, int64, boolean)"


@njit(**_JIT)
def _tap_range(start, step, count, size):
    """The windows j in [lo, hi) of ``count`` whose pixel start + j * step lies in [0, size)."""
    lo = 0 if start >= 0 else (-start + step - 1) // step
    hi = 0 if start >= size else min(count, (size - 1 - start) // step + 1)
    return lo, max(lo, hi)


@njit(_WINDOWS, **_JIT)
def window_columns_f32(planes, cols, first, pc, pn, sh, sw, dh, dw, top, left, add_back):
    """im2col, or with ``add_back`` its adjoint col2im. im2col: cols[c, a, b, n, i, j] = image first + n's
    channel c at (i*sh + a*dh - top, j*sw + b*dw - left), 0 outside the image. col2im: each column value
    inside the image added onto that pixel, taps in (a, b) order."""
    height, width = planes.shape[1], planes.shape[2]
    kh, kw, images, oh, ow = cols.shape[1:]
    for c in range(cols.shape[0]):
        for n in range(images):
            image = planes[c * pc + (first + n) * pn]
            for a in range(kh):
                i0, i1 = _tap_range(a * dh - top, sh, oh, height)
                for b in range(kw):
                    j0, j1 = _tap_range(b * dw - left, sw, ow, width)
                    values = cols[c, a, b, n]
                    if add_back:
                        for i in range(i0, i1):
                            row = np.uint64(i * sh + a * dh - top)
                            for j in range(j0, j1):
                                image[row, np.uint64(j * sw + b * dw - left)] += values[np.uint64(i), np.uint64(j)]
                        continue
                    if i0 > 0 or i1 < oh or j0 > 0 or j1 < ow:  # some windows reach into the padding
                        for i in range(oh):
                            for j in range(ow):
                                values[i, j] = 0
                    for i in range(i0, i1):
                        row = np.uint64(i * sh + a * dh - top)
                        for j in range(j0, j1):
                            values[np.uint64(i), np.uint64(j)] = image[row, np.uint64(j * sw + b * dw - left)]
