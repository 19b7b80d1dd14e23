"""Functions of the rows of 2-D float arrays: softmax, layer norm and the LSTM cell, forward and
vector-Jacobian product.

Each is its numpy formula with a compiled one-pass twin in :mod:`chainrule.backend._numba` (float32, rows
C-contiguous, at least ``MIN_SIZE`` elements: see :mod:`chainrule.backend.kernels`), run in row chunks on
worker threads (:func:`chainrule.backend.parallel.parallel_for`). Callers move the dim to reduce last and
flatten the rest into rows.
"""

from __future__ import annotations

from chainrule.backend import gpu_kernels, xp_of
from chainrule.backend.gpu import on_gpu
from chainrule.backend.kernels import exp, fused, tanh
from chainrule.backend.parallel import parallel_for

__all__ = ["softmax_rows", "softmax_vjp_rows", "layer_norm_rows", "layer_norm_vjp_rows", "lstm_cell_rows",
           "lstm_cell_vjp_rows"]


def softmax_rows(x, out=None):
    """Each row's softmax, exp(x - max) / sum, into ``out`` (new when None). A row of -inf gives NaN."""
    xp = xp_of(x)
    out = xp.empty_like(x) if out is None else out
    if on_gpu(x) and gpu_kernels.takes(x, out):
        return gpu_kernels.softmax_rows(x, out)
    module = fused(x, out)

    def work(lo, hi):
        rows, o = x[lo:hi], out[lo:hi]
        if module:
            module.softmax_rows_f32(rows, o)
            return
        xp.subtract(rows, rows.max(axis=-1, keepdims=True), out=o)
        exp(o, out=o)
        o /= o.sum(axis=-1, keepdims=True)

    parallel_for(x.shape[0], x.shape[1], x, work)
    return out


def softmax_vjp_rows(g, p, out=None):
    """The softmax's vector-Jacobian product per row, p (g - sum(g p)), for the softmax ``p`` of each row and
    the gradient ``g`` of it, into ``out`` (new when None)."""
    xp = xp_of(g)
    out = xp.empty_like(g) if out is None else out
    if on_gpu(g) and gpu_kernels.takes(g, p, out):
        return gpu_kernels.softmax_vjp_rows(g, p, out)
    module = fused(g, p, out)

    def work(lo, hi):
        rows_g, rows_p, o = g[lo:hi], p[lo:hi], out[lo:hi]
        if module:
            module.softmax_vjp_rows_f32(rows_g, rows_p, o)
            return
        xp.multiply(rows_g, rows_p, out=o)
        s = o.sum(axis=-1, keepdims=True)
        xp.subtract(rows_g, s, out=o)
        o *= rows_p

    parallel_for(g.shape[0], g.shape[1], g, work)
    return out


def layer_norm_rows(x, weight=None, bias=None, eps: float = 1e-5) -> tuple:
    """Each row normalised to zero mean and unit (biased) variance, then times ``weight`` plus ``bias`` (1-D of
    the row's width, or None): ``(out, mean, rstd)``, the mean and 1/std of each row of shape (rows, 1), all
    :func:`layer_norm_vjp_rows` needs besides ``x``. Statistics in float64 in the compiled loop."""
    if on_gpu(x) and gpu_kernels.takes(x, *(p for p in (weight, bias) if p is not None)):
        return gpu_kernels.layer_norm_rows(x, weight, bias, eps)
    xp = xp_of(x)
    out = xp.empty_like(x)
    mean = xp.empty((x.shape[0], 1), dtype=x.dtype)
    rstd = xp.empty_like(mean)
    module = fused(x, *(p for p in (weight, bias) if p is not None))
    if module:
        absent = xp.empty(0, x.dtype)  # the compiled loop's "no weight", "no bias"
        w, b = absent if weight is None else weight, absent if bias is None else bias

    def work(lo, hi):
        rows, o, m, s = x[lo:hi], out[lo:hi], mean[lo:hi], rstd[lo:hi]
        if module:
            module.layer_norm_rows_f32(rows, w, b, eps, o, m, s)
            return
        rows.mean(axis=1, keepdims=True, out=m)
        xp.subtract(rows, m, out=o)
        xp.multiply(o, o).mean(axis=1, keepdims=True, out=s)
        s += eps
        xp.sqrt(s, out=s)
        xp.reciprocal(s, out=s)
        o *= s
        if weight is not None:
            o *= weight
        if bias is not None:
            o += bias

    parallel_for(x.shape[0], x.shape[1], x, work)
    return out, mean, rstd


def layer_norm_vjp_rows(g, x, mean, rstd, weight=None, need_x: bool = True) -> tuple:
    """Gradients of :func:`layer_norm_rows` for ``x``, ``weight`` and ``bias`` given the gradient ``g`` of its
    output (any shape of x's size): ``(gx, gw, gb)``, gx None unless ``need_x``, gw None without a weight.
    With xhat = (x - mean) rstd and gxhat = g weight: gx = rstd (gxhat - mean(gxhat) - xhat mean(gxhat xhat)),
    gw = sum(g xhat) and gb = sum(g) over the rows."""
    xp = xp_of(x)
    g = xp.ascontiguousarray(g).reshape(x.shape)
    if on_gpu(x) and gpu_kernels.takes(g, x, mean, rstd, *(a for a in (weight,) if a is not None)):
        return gpu_kernels.layer_norm_vjp_rows(g, x, mean, rstd, weight, need_x)
    xhat = xp.empty_like(x)
    gx = xp.empty_like(x) if need_x else None
    module = fused(g, x, mean, rstd, *(a for a in (weight,) if a is not None))
    if module:
        w = xp.empty(0, x.dtype) if weight is None else weight  # size 0: the compiled loop's "no weight"
        no_gx = xp.empty((0, 0), x.dtype)  # size 0: xhat only

    def work(lo, hi):
        xh = xhat[lo:hi]
        if module:
            module.layer_norm_vjp_rows_f32(g[lo:hi], x[lo:hi], mean[lo:hi], rstd[lo:hi], w, xh,
                                           no_gx if gx is None else gx[lo:hi])
            return
        xp.subtract(x[lo:hi], mean[lo:hi], out=xh)
        xh *= rstd[lo:hi]
        if gx is None:
            return
        gxhat = g[lo:hi] * weight if weight is not None else g[lo:hi]
        out = gx[lo:hi]
        xp.multiply(gxhat, xh, out=out)
        b = out.mean(axis=1, keepdims=True)
        xp.multiply(xh, b, out=out)
        xp.subtract(gxhat, out, out=out)
        out -= gxhat.mean(axis=1, keepdims=True)
        out *= rstd[lo:hi]

    parallel_for(x.shape[0], x.shape[1], x, work)
    gw = None if weight is None else xp.einsum("ij,ij->j", g, xhat)
    return gx, gw, g.sum(axis=0)


def lstm_cell_rows(gx, gh, c) -> tuple:
    """One LSTM time step for a batch of rows, from the input and hidden halves of the gate pre-activations
    ``gx``, ``gh`` (B, 4H; gate order i, f, g, o) and the cell state ``c`` (B, H): ``(act, c_new, tc, hh)`` with
    act the activated gates (sigmoid i, f, o; tanh g), c_new = f c + i g, tc = tanh(c_new), hh = o tc."""
    xp = xp_of(c)
    H = c.shape[1]
    act, c_new, tc, hh = xp.empty_like(gx), xp.empty_like(c), xp.empty_like(c), xp.empty_like(c)
    module = fused(gx, gh, c)

    def work(lo, hi):
        if module:
            module.lstm_cell_rows_f32(gx[lo:hi], gh[lo:hi], c[lo:hi], act[lo:hi], c_new[lo:hi], tc[lo:hi],
                                      hh[lo:hi])
            return
        a = act[lo:hi]
        xp.add(gx[lo:hi], gh[lo:hi], out=a)
        a[:, 2 * H:3 * H] *= 2.0  # sigmoid(v) = tanh(v / 2) / 2 + 1/2: one tanh over all four gates
        a *= 0.5
        tanh(a, out=a)
        g = a[:, 2 * H:3 * H].copy()
        a *= 0.5
        a += 0.5
        a[:, 2 * H:3 * H] = g
        i, f, o = a[:, :H], a[:, H:2 * H], a[:, 3 * H:]
        xp.multiply(f, c[lo:hi], out=c_new[lo:hi])
        c_new[lo:hi] += i * g
        tanh(c_new[lo:hi], out=tc[lo:hi])
        xp.multiply(o, tc[lo:hi], out=hh[lo:hi])

    parallel_for(c.shape[0], gx.shape[1], c, work)
    return act, c_new, tc, hh


def lstm_cell_vjp_rows(dh, dc, act, c, tc) -> tuple:
    """The vector-Jacobian product of :func:`lstm_cell_rows` given the gradients ``dh`` of hh and ``dc`` of
    c_new: ``(dgates, dc_prev)``, the gradients of the gate pre-activations (B, 4H) and of ``c``."""
    xp = xp_of(c)
    H = c.shape[1]
    dgates, dc_prev = xp.empty_like(act), xp.empty_like(c)
    module = fused(dh, dc, act, c, tc)

    def work(lo, hi):
        if module:
            module.lstm_cell_vjp_rows_f32(dh[lo:hi], dc[lo:hi], act[lo:hi], c[lo:hi], tc[lo:hi], dgates[lo:hi],
                                          dc_prev[lo:hi])
            return
        a, d, t = act[lo:hi], dgates[lo:hi], tc[lo:hi]
        i, f, g, o = a[:, :H], a[:, H:2 * H], a[:, 2 * H:3 * H], a[:, 3 * H:]
        dct = dc[lo:hi] + dh[lo:hi] * o * (1 - t * t)
        d[:, :H] = dct * g * i * (1 - i)
        d[:, H:2 * H] = dct * c[lo:hi] * f * (1 - f)
        d[:, 2 * H:3 * H] = dct * i * (1 - g * g)
        d[:, 3 * H:] = dh[lo:hi] * t * o * (1 - o)
        xp.multiply(dct, f, out=dc_prev[lo:hi])

    parallel_for(c.shape[0], act.shape[1], c, work)
    return dgates, dc_prev
