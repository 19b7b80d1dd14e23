"""RNN, LSTM, GRU and their cells, following torch.nn (parameter names, shapes, init and gate order).

Gate order (rows of ``weight_ih_l{k}`` / ``weight_hh_l{k}``): LSTM i, f, g, o; GRU r, z, n.

    LSTM:  i, f, o = sigmoid(.)   g = tanh(.)   c' = f*c + i*g   h' = o*tanh(c')   (h' = h' W_hr^T with proj_size)
    GRU:   r, z = sigmoid(x W_i{r,z}^T + b_i{r,z} + h W_h{r,z}^T + b_h{r,z})
           n = tanh(x W_in^T + b_in + r * (h W_hn^T + b_hn))              h' = (1 - z)*n + z*h
    RNN:   h' = tanh or relu(x W_ih^T + b_ih + h W_hh^T + b_hh)

One layer in one direction over the whole sequence is one primitive (:func:`recurrent_layer`): the input
projections of all time steps are one GEMM, each step one GEMM ``h W_hh^T`` for all gates together, and the
time loop runs on backend arrays, so a step costs a dozen array operations and no graph nodes. It is a
primitive rather than a composite because the composite records ~15 nodes per step and its backward walks
them one by one, markedly slower (see bench/ANALYSIS.md). The forward and the backward through time are each
written once, over a small namespace (:class:`_Arrays` / :class:`_Tensors`): the fast entry runs the backward
on the arrays kept by the forward; the rule recomputes the forward with tensor operations and runs the same
backward on tensors, so gradients of every order work.

Packed sequences (and the cells) use the same primitive with a mask: a sequence that has ended keeps its
state, so the last state of the padded run is each sequence's state at its true last step (the reverse
direction starts from h0 at each sequence's own last step).
"""

from __future__ import annotations

import math
import warnings

import chainrule as _cr
from chainrule.backend import kernels, rows, xp_of
from chainrule.creation import empty, zeros
from chainrule.nn import functional as F
from chainrule.nn import init
from chainrule.nn.module import Module
from chainrule.nn.parameter import Parameter
from chainrule.ops._helpers import describe, record
from chainrule.tensor import Tensor, wrap

__all__ = ["RNNBase", "RNN", "LSTM", "GRU", "RNNCellBase", "RNNCell", "LSTMCell", "GRUCell"]

_GATES = {"RNN_TANH": 1, "RNN_RELU": 1, "LSTM": 4, "GRU": 3}


# ----- the recurrence, written once over arrays or tensors ----------------------------------------------

class _Arrays:
    """Backend arrays: the forward of the primitive and its fast entry."""

    @staticmethod
    def sigmoid(a):
        return kernels.tanh(a * 0.5) * 0.5 + 0.5  # one compiled tanh instead of exp, where and two divisions

    @staticmethod
    def lstm_cell(gx, gh, c):
        """One LSTM step: what its backward keeps (the activated gates, c, tanh(c'), h' before any
        projection: h' last), c' and h' (one pass over the rows: :func:`chainrule.backend.rows.lstm_cell_rows`)."""
        act, c_new, tc, hh = rows.lstm_cell_rows(gx, gh, c)
        return (act, c, tc, hh), c_new, hh

    @staticmethod
    def lstm_cell_vjp(dh, dc, kept):
        act, c, tc, _ = kept
        return rows.lstm_cell_vjp_rows(dh, dc, act, c, tc)

    @staticmethod
    def transposed(w):
        """``w.T`` in memory of its own: BLAS runs the per-step product h @ w_hh.T markedly faster from a
        C-contiguous right operand than from the transposed view (bench/ANALYSIS.md, "lstm and unet")."""
        return xp_of(w).ascontiguousarray(w.T)

    tanh = staticmethod(kernels.tanh)
    relu = staticmethod(kernels.relu)

    @staticmethod
    def relu_grad(g, out):
        return kernels.relu_grad(out, g)

    @staticmethod
    def stack(items):
        return xp_of(items[0]).stack(items)

    @staticmethod
    def cat(items):
        return xp_of(items[0]).concatenate(items, axis=-1)

    @staticmethod
    def where(m, a, b):
        return xp_of(a).where(m, a, b)


class _Tensors:
    """Differentiable tensor operations: the rule."""

    sigmoid = staticmethod(_cr.sigmoid)
    tanh = staticmethod(_cr.tanh)
    relu = staticmethod(_cr.relu)

    @staticmethod
    def lstm_cell(gx, gh, c):
        gates = gx + gh
        H = c.shape[1]
        act = _cr.sigmoid(gates)
        i, f, g, o = act[:, :H], act[:, H:2 * H], _cr.tanh(gates[:, 2 * H:3 * H]), act[:, 3 * H:]
        c_new = f * c + i * g
        tc = _cr.tanh(c_new)
        hh = o * tc
        return (i, f, g, o, c, tc, hh), c_new, hh

    @staticmethod
    def lstm_cell_vjp(dh, dc, kept):
        i, f, g, o, c, tc, _ = kept
        dc = dc + dh * o * (1 - tc * tc)
        dgates = _cr.cat([dc * g * i * (1 - i), dc * c * f * (1 - f), dc * i * (1 - g * g), dh * tc * o * (1 - o)], -1)
        return dgates, dc * f

    @staticmethod
    def transposed(w):
        return w.T

    @staticmethod
    def relu_grad(g, out):
        return _cr.where(out > 0, g, g * 0.0)

    @staticmethod
    def stack(items):
        return _cr.stack(items)

    @staticmethod
    def cat(items):
        return _cr.cat(items, -1)

    @staticmethod
    def where(m, a, b):
        return _cr.where(m, a, b)


def _steps(T: int, reverse: bool):
    return range(T - 1, -1, -1) if reverse else range(T)


def _layer_forward(K, mode, x, h, c, w_ih, w_hh, b_ih, b_hh, w_hr, mask, reverse):
    """All states of one layer in one direction, ``S`` (T, B, Hr [+ H for LSTM's cell]), and what the
    backward needs. ``mask`` (T, B, 1) bool or None: where False the state is carried unchanged."""
    T, B = x.shape[0], x.shape[1]
    H = w_hh.shape[1] if w_hr is None else w_hr.shape[1]
    gx = (x.reshape(T * B, x.shape[2]) @ w_ih.T).reshape(T, B, w_ih.shape[0])  # every step's input projection
    if b_ih is not None:
        gx = gx + (b_ih if mode == "GRU" else b_ih + b_hh)
    w_hh_t = K.transposed(w_hh)
    out, keep, h_prev = [None] * T, [None] * T, [None] * T
    for t in _steps(T, reverse):
        h_prev[t] = h
        gh = h @ w_hh_t
        if mode == "LSTM":
            keep[t], c_new, hh = K.lstm_cell(gx[t], gh, c)
            h_new = hh if w_hr is None else hh @ w_hr.T
            if mask is not None:
                c_new = K.where(mask[t], c_new, c)
            c = c_new
        elif mode == "GRU":
            if b_hh is not None:
                gh = gh + b_hh
            rz = K.sigmoid(gx[t][:, :2 * H] + gh[:, :2 * H])
            r, z = rz[:, :H], rz[:, H:]
            ghn = gh[:, 2 * H:]
            n = K.tanh(gx[t][:, 2 * H:] + r * ghn)
            h_new = n + z * (h - n)
            keep[t] = (r, z, n, ghn)
        else:
            pre = gx[t] + gh
            h_new = K.tanh(pre) if mode == "RNN_TANH" else K.relu(pre)
            keep[t] = h_new
        if mask is not None:
            h_new = K.where(mask[t], h_new, h)
        h = h_new
        out[t] = K.cat([h, c]) if mode == "LSTM" else h
    return K.stack(out), (keep, h_prev)


def _layer_backward(K, mode, gS, saved, x, h0, c0, w_ih, w_hh, b_ih, b_hh, w_hr, mask, reverse, need_x):
    """Backward through time: the gradients of (x, h0, c0, w_ih, w_hh, b_ih, b_hh, w_hr) given that of S."""
    keep, h_prev = saved
    T, B = x.shape[0], x.shape[1]
    Hr = w_hh.shape[1]
    H = Hr if w_hr is None else w_hr.shape[1]
    dgx, dgh, dhs = [None] * T, [None] * T, [None] * T
    dh = dc = None
    for t in _steps(T, not reverse):
        dh = gS[t][:, :Hr] if dh is None else gS[t][:, :Hr] + dh
        if mode == "LSTM":
            dc = gS[t][:, Hr:] if dc is None else gS[t][:, Hr:] + dc
        if mask is not None:  # ended sequences: the gradient flows past the step to the carried state
            zero = dh * 0.0
            dh_carry, dh = K.where(mask[t], zero, dh), K.where(mask[t], dh, zero)
            if mode == "LSTM":
                zero_c = dc * 0.0
                dc_carry, dc = K.where(mask[t], zero_c, dc), K.where(mask[t], dc, zero_c)
        if mode == "LSTM":
            if w_hr is not None:
                dhs[t] = dh
                dh = dh @ w_hr
            dgx[t], dc = K.lstm_cell_vjp(dh, dc, keep[t])
            dh = dgx[t] @ w_hh
        elif mode == "GRU":
            r, z, n, ghn = keep[t]
            dn = dh * (1 - z) * (1 - n * n)
            dz = dh * (h_prev[t] - n) * z * (1 - z)
            dr = dn * ghn * r * (1 - r)
            dgx[t] = K.cat([dr, dz, dn])
            dgh[t] = K.cat([dr, dz, dn * r])
            dh = dh * z + dgh[t] @ w_hh
        else:
            out = keep[t]
            da = dh * (1 - out * out) if mode == "RNN_TANH" else K.relu_grad(dh, out)
            dgx[t] = da
            dh = da @ w_hh
        if mask is not None:
            dh = dh + dh_carry
            if mode == "LSTM":
                dc = dc + dc_carry
    G = w_ih.shape[0]
    DGx = K.stack(dgx).reshape(T * B, G)
    DGh = DGx if mode != "GRU" else K.stack(dgh).reshape(T * B, G)
    Hp = K.stack(h_prev).reshape(T * B, Hr)
    dx = (DGx @ w_ih).reshape(T, B, x.shape[2]) if need_x else None
    dw_ih = DGx.T @ x.reshape(T * B, x.shape[2])
    dw_hh = DGh.T @ Hp
    db_ih = None if b_ih is None else DGx.sum(0)
    db_hh = None if b_hh is None else DGh.sum(0)
    dw_hr = None
    if w_hr is not None:
        hh = K.stack([k[-1] for k in keep]).reshape(T * B, H)
        dw_hr = K.stack(dhs).reshape(T * B, w_hr.shape[0]).T @ hh
    return dx, dh, dc, dw_ih, dw_hh, db_ih, db_hh, dw_hr


def recurrent_layer(mode: str, x: Tensor, h0: Tensor, c0: Tensor | None, w_ih: Tensor, w_hh: Tensor,
                    b_ih: Tensor | None, b_hh: Tensor | None, w_hr: Tensor | None = None, mask=None,
                    reverse: bool = False) -> Tensor:
    """One layer, one direction, over a (T, B, I) sequence: all states S, (T, B, Hr) or, for LSTM,
    (T, B, Hr + H) with the cell state after the output. ``mask``: an optional (T, B, 1) bool array
    (False: the sequence has ended; its state is carried). A primitive (see the module docstring)."""
    params = (x, h0, c0, w_ih, w_hh, b_ih, b_hh, w_hr)
    inputs = tuple(p for p in params if p is not None)
    arrays = tuple(None if p is None else p._data for p in params)
    S, saved = _layer_forward(_Arrays, mode, *arrays, mask, reverse)

    def present(grads):
        return tuple(g for g, p in zip(grads, params) if p is not None)

    def rule(g, _):
        tmask = None if mask is None else wrap(mask)
        _, again = _layer_forward(_Tensors, mode, *params, tmask, reverse)
        return present(_layer_backward(_Tensors, mode, g, again, *params, tmask, reverse, x._rg))

    def fast(g, _):
        return present(_layer_backward(_Arrays, mode, g, saved, *arrays, mask, reverse, x._rg))

    return record(S, mode.lower(), inputs, rule, inputs, fast=fast)


# ----- the layers ---------------------------------------------------------------------------------------

def _packed_type():
    from chainrule.nn.utils.rnn import PackedSequence

    return PackedSequence


class RNNBase(Module):
    """The multi-layer recurrent network shared by RNN, LSTM and GRU (PyTorch's ``nn.RNNBase``)."""

    def __init__(self, mode: str, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False, proj_size: int = 0,
                 device=None, dtype=None):
        super().__init__()
        name = type(self).__name__
        if mode not in _GATES:
            raise ValueError(f"{name}: unknown mode {mode!r}; expected one of {sorted(_GATES)}")
        if not isinstance(dropout, (int, float)) or isinstance(dropout, bool) or not 0 <= dropout <= 1:
            raise ValueError("dropout should be a number in range [0, 1] representing the probability of an "
                             f"element being zeroed, got {dropout}")
        if not isinstance(hidden_size, int) or hidden_size <= 0:
            raise ValueError(f"{name}: hidden_size must be a positive integer, got {hidden_size}")
        if not isinstance(num_layers, int) or num_layers <= 0:
            raise ValueError(f"{name}: num_layers must be a positive integer, got {num_layers}")
        if proj_size < 0:
            raise ValueError(f"{name}: proj_size should be a positive integer or zero to disable projections")
        if proj_size >= hidden_size:
            raise ValueError(f"{name}: proj_size has to be smaller than hidden_size ({proj_size} >= {hidden_size})")
        if proj_size and mode != "LSTM":
            raise ValueError("proj_size argument is only supported for LSTM, not RNN or GRU")
        if dropout > 0 and num_layers == 1:
            warnings.warn("dropout option adds dropout after all but last recurrent layer, so non-zero dropout "
                          f"expects num_layers greater than 1, but got dropout={dropout} and num_layers={num_layers}",
                          stacklevel=2)
        self.mode, self.input_size, self.hidden_size, self.num_layers = mode, input_size, hidden_size, num_layers
        self.bias, self.batch_first, self.dropout = bias, batch_first, float(dropout)
        self.bidirectional, self.proj_size = bidirectional, proj_size
        directions = 2 if bidirectional else 1
        real_hidden = proj_size or hidden_size
        gates = _GATES[mode] * hidden_size
        self._flat_weights_names = []
        for layer in range(num_layers):
            layer_input = input_size if layer == 0 else real_hidden * directions
            for direction in range(directions):
                suffix = f"_l{layer}" + ("_reverse" if direction else "")
                shapes = [("weight_ih", (gates, layer_input)), ("weight_hh", (gates, real_hidden))]
                if bias:
                    shapes += [("bias_ih", (gates,)), ("bias_hh", (gates,))]
                if proj_size:
                    shapes.append(("weight_hr", (proj_size, hidden_size)))
                for base, shape in shapes:
                    setattr(self, base + suffix, Parameter(empty(*shape, dtype=dtype, device=device)))
                    self._flat_weights_names.append(base + suffix)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        bound = 1.0 / math.sqrt(self.hidden_size) if self.hidden_size > 0 else 0.0
        for p in self.parameters():
            init.uniform_(p, -bound, bound)

    @property
    def all_weights(self) -> list:
        per = len(self._flat_weights_names) // (self.num_layers * (2 if self.bidirectional else 1))
        names = self._flat_weights_names
        return [[getattr(self, n) for n in names[k:k + per]] for k in range(0, len(names), per)]

    def _weights(self, layer: int, direction: int):
        suffix = f"_l{layer}" + ("_reverse" if direction else "")
        get = lambda base: getattr(self, base + suffix, None)  # noqa: E731
        return get("weight_ih"), get("weight_hh"), get("bias_ih"), get("bias_hh"), get("weight_hr")

    def _check_hidden(self, h: Tensor, expected: tuple, what: str) -> None:
        if tuple(h.shape) != expected:
            raise RuntimeError(f"{type(self).__name__}: Expected {what} size {expected}, got {list(h.shape)}")

    def forward(self, input, hx=None):
        name = type(self).__name__
        lstm = self.mode == "LSTM"
        packed = isinstance(input, _packed_type())
        mask = None
        if packed:
            x, lengths = _padded_from_packed(input)
            T = x.shape[0]
            mask = xp_of(x._data).asarray((_arange(T)[:, None] < lengths[None, :])[:, :, None])
            batched = True
        else:
            if not isinstance(input, Tensor):
                raise TypeError(f"{name}: input must be a Tensor or a PackedSequence, got {type(input).__name__}")
            if input.ndim not in (2, 3):
                raise ValueError(f"{name}: Expected input to be 2D or 3D, got {input.ndim}D tensor instead")
            batched = input.ndim == 3
            x = input if not batched else (input.transpose(0, 1) if self.batch_first else input)
            if not batched:
                x = x.unsqueeze(1)
        if x.shape[-1] != self.input_size:
            raise RuntimeError(f"{name}: input.size(-1) must be equal to input_size. Expected {self.input_size}, "
                               f"got {x.shape[-1]}")
        directions = 2 if self.bidirectional else 1
        B = x.shape[1]
        real_hidden = self.proj_size or self.hidden_size
        h_shape = (self.num_layers * directions, B, real_hidden)
        c_shape = (self.num_layers * directions, B, self.hidden_size)
        if hx is None:
            h0 = zeros(*h_shape, dtype=x.dtype, device=x.device)
            c0 = zeros(*c_shape, dtype=x.dtype, device=x.device) if lstm else None
        else:
            if lstm:
                if not isinstance(hx, (tuple, list)) or len(hx) != 2:
                    raise RuntimeError(f"{name}: hx must be a tuple (h_0, c_0) for LSTM, got {type(hx).__name__}")
                h0, c0 = hx
            else:
                if not isinstance(hx, Tensor):
                    raise RuntimeError(f"{name}: hx must be a Tensor, got {type(hx).__name__}")
                h0, c0 = hx, None
            for h in (h0, c0):
                if h is None:
                    continue
                if not batched and h.ndim != 2:
                    raise RuntimeError(f"{name}: For unbatched 2-D input, hx should also be 2-D but got "
                                       f"{h.ndim}-D tensor")
                if batched and h.ndim != 3:
                    raise RuntimeError(f"{name}: For batched 3-D input, hx should also be 3-D but got "
                                       f"{h.ndim}-D tensor")
            if not batched:
                h0 = h0.unsqueeze(1)
                c0 = None if c0 is None else c0.unsqueeze(1)
            if packed and input.sorted_indices is not None:
                h0 = h0.index_select(1, input.sorted_indices)
                c0 = None if c0 is None else c0.index_select(1, input.sorted_indices)
            self._check_hidden(h0, h_shape, "hidden[0]" if lstm else "hidden")
            if lstm:
                self._check_hidden(c0, c_shape, "hidden[1]")
        hs, cs = [], []
        layer_input = x
        for layer in range(self.num_layers):
            outs = []
            for direction in range(directions):
                k = layer * directions + direction
                w_ih, w_hh, b_ih, b_hh, w_hr = self._weights(layer, direction)
                S = recurrent_layer(self.mode, layer_input, h0[k], None if c0 is None else c0[k], w_ih, w_hh,
                                    b_ih, b_hh, w_hr, mask, reverse=direction == 1)
                last = S[0] if direction else S[-1]
                if lstm:
                    outs.append(S[:, :, :real_hidden])
                    hs.append(last[:, :real_hidden])
                    cs.append(last[:, real_hidden:])
                else:
                    outs.append(S)
                    hs.append(last)
            layer_input = outs[0] if directions == 1 else _cr.cat(outs, -1)
            if self.dropout and self.training and layer < self.num_layers - 1:
                layer_input = F.dropout(layer_input, self.dropout, True)
        output = layer_input
        h_n = _cr.stack(hs)
        c_n = _cr.stack(cs) if lstm else None
        if packed:
            output = _packed_from_padded(output, input)
            if input.unsorted_indices is not None:
                h_n = h_n.index_select(1, input.unsorted_indices)
                c_n = None if c_n is None else c_n.index_select(1, input.unsorted_indices)
        elif not batched:
            output, h_n = output.squeeze(1), h_n.squeeze(1)
            c_n = None if c_n is None else c_n.squeeze(1)
        elif self.batch_first:
            output = output.transpose(0, 1)
        return output, ((h_n, c_n) if lstm else h_n)

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}"
        if self.proj_size:
            s += f", proj_size={self.proj_size}"
        if self.num_layers != 1:
            s += f", num_layers={self.num_layers}"
        if not self.bias:
            s += ", bias=False"
        if self.batch_first:
            s += ", batch_first=True"
        if self.dropout:
            s += f", dropout={self.dropout}"
        if self.bidirectional:
            s += ", bidirectional=True"
        return s


def _arange(n: int):
    import numpy as np  # host-side index bookkeeping only

    return np.arange(n)


def _padded_from_packed(packed):
    """(T, B, *) padded sequences in the packed (sorted) batch order, and each one's length (host array):
    a gather from the packed rows plus one zero row for the padding (differentiable in the data)."""
    from chainrule.nn.utils.rnn import _packed_layout

    rows, lengths, T, B = _packed_layout(packed.batch_sizes)
    data = packed.data
    source = _arange(T * B) * 0 + len(rows)  # the zero row
    source[rows] = _arange(len(rows))
    with_zero_row = _cr.cat([data, zeros(1, *data.shape[1:], dtype=data.dtype, device=data.device)])
    padded = with_zero_row[_cr.tensor(source, device=data.device)]
    return padded.reshape(T, B, *data.shape[1:]), lengths


def _packed_from_padded(output: Tensor, packed):
    from chainrule.nn.utils.rnn import PackedSequence, _packed_layout

    rows, _, T, B = _packed_layout(packed.batch_sizes)
    data = output.reshape(T * B, *output.shape[2:])[_cr.tensor(rows, device=output.device)]
    return PackedSequence(data, packed.batch_sizes, packed.sorted_indices, packed.unsorted_indices)


class RNN(RNNBase):
    """Elman RNN with tanh or relu: h' = act(x W_ih^T + b_ih + h W_hh^T + b_hh)."""

    def __init__(self, *args, **kwargs):
        nonlinearity = kwargs.pop("nonlinearity", "tanh")
        if len(args) > 3:
            nonlinearity = args[3]
            args = args[:3] + args[4:]
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"RNN: Unknown nonlinearity '{nonlinearity}'. Select from 'tanh' or 'relu'.")
        self.nonlinearity = nonlinearity
        super().__init__("RNN_TANH" if nonlinearity == "tanh" else "RNN_RELU", *args, **kwargs)


class LSTM(RNNBase):
    """Long short-term memory, with optional projection of the hidden state (``proj_size``)."""

    def __init__(self, *args, **kwargs):
        super().__init__("LSTM", *args, **kwargs)


class GRU(RNNBase):
    """Gated recurrent unit."""

    def __init__(self, *args, **kwargs):
        super().__init__("GRU", *args, **kwargs)


# ----- cells --------------------------------------------------------------------------------------------

class RNNCellBase(Module):
    def __init__(self, input_size: int, hidden_size: int, bias: bool, num_chunks: int, device=None, dtype=None):
        super().__init__()
        self.input_size, self.hidden_size, self.bias = input_size, hidden_size, bias
        self.weight_ih = Parameter(empty(num_chunks * hidden_size, input_size, dtype=dtype, device=device))
        self.weight_hh = Parameter(empty(num_chunks * hidden_size, hidden_size, dtype=dtype, device=device))
        if bias:
            self.bias_ih = Parameter(empty(num_chunks * hidden_size, dtype=dtype, device=device))
            self.bias_hh = Parameter(empty(num_chunks * hidden_size, dtype=dtype, device=device))
        else:
            self.register_parameter("bias_ih", None)
            self.register_parameter("bias_hh", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        bound = 1.0 / math.sqrt(self.hidden_size) if self.hidden_size > 0 else 0.0
        for p in self.parameters():
            init.uniform_(p, -bound, bound)

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}"
        if not self.bias:
            s += ", bias=False"
        if getattr(self, "nonlinearity", "tanh") != "tanh":
            s += f", nonlinearity={self.nonlinearity}"
        return s

    def _step(self, mode: str, input: Tensor, hx):
        """One step as a length-1 run of the layer primitive; returns the state(s), unbatched if the input was."""
        name = type(self).__name__
        if not isinstance(input, Tensor) or input.ndim not in (1, 2):
            got = f"{input.ndim}D" if isinstance(input, Tensor) else type(input).__name__
            raise ValueError(f"{name}: Expected input to be 1D or 2D, got {got} instead")
        if input.shape[-1] != self.input_size:
            raise RuntimeError(f"{name}: input has inconsistent input_size: got {input.shape[-1]} expected "
                               f"{self.input_size}")
        batched = input.ndim == 2
        x = input if batched else input.unsqueeze(0)
        B, H = x.shape[0], self.hidden_size
        states = list(hx) if isinstance(hx, (tuple, list)) else [hx]
        count = 2 if mode == "LSTM" else 1
        if hx is None:
            states = [zeros(B, H, dtype=x.dtype, device=x.device) for _ in range(count)]
        else:
            for k, h in enumerate(states):
                if h.ndim != input.ndim:
                    raise RuntimeError(f"{name}: hidden state {k} must be {input.ndim}D like the input, got "
                                       f"{describe(h)}")
                h = h if batched else h.unsqueeze(0)
                if tuple(h.shape) != (B, H):
                    raise RuntimeError(f"{name}: hidden state {k} has inconsistent hidden_size or batch: got "
                                       f"{list(h.shape)}, expected {[B, H]}")
                states[k] = h
        S = recurrent_layer(mode, x.unsqueeze(0), states[0], states[1] if count == 2 else None, self.weight_ih,
                            self.weight_hh, self.bias_ih, self.bias_hh)[0]
        outs = (S[:, :H], S[:, H:]) if mode == "LSTM" else (S,)
        if not batched:
            outs = tuple(o.squeeze(0) for o in outs)
        return outs if mode == "LSTM" else outs[0]


class RNNCell(RNNCellBase):
    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, nonlinearity: str = "tanh",
                 device=None, dtype=None):
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"RNNCell: Unknown nonlinearity: {nonlinearity}")
        self.nonlinearity = nonlinearity
        super().__init__(input_size, hidden_size, bias, 1, device, dtype)

    def forward(self, input, hx=None):
        return self._step("RNN_TANH" if self.nonlinearity == "tanh" else "RNN_RELU", input, hx)


class LSTMCell(RNNCellBase):
    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, device=None, dtype=None):
        super().__init__(input_size, hidden_size, bias, 4, device, dtype)

    def forward(self, input, hx=None):
        return self._step("LSTM", input, hx)


class GRUCell(RNNCellBase):
    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, device=None, dtype=None):
        super().__init__(input_size, hidden_size, bias, 3, device, dtype)

    def forward(self, input, hx=None):
        return self._step("GRU", input, hx)
