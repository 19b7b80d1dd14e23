"""PyTorch's top-level names that chainrule defines elsewhere or spells differently, so ``torch.X`` ports as
``cr.X``: nn.functional's operations in the argument order of ``torch.*`` (``torch.embedding(weight, input)``,
``torch.batch_norm(input, weight, bias, running_mean, ...)``, losses whose ``reduction`` is aten's integer
code), the function forms of in-place methods (``torch.sin_(x)``), and global switches that programs set
(deterministic algorithms, inter-op threads, anomaly mode, print options).

Loaded on first use through ``chainrule.__getattr__``; each function here only rearranges arguments and
calls chainrule's own definition.
"""

from __future__ import annotations

import chainrule as cr
from chainrule import dtypes as _dt
from chainrule.backend import to_host
from chainrule.nn import functional as F
from chainrule.spectral import istft, stft  # noqa: F401  (torch.stft, torch.istft)
from chainrule.tensor import (
    set_printoptions,  # noqa: F401  (torch.set_printoptions)
    wrap,
)

# nn.functional's operations whose torch.* form takes the same arguments
_SAME_AS_FUNCTIONAL = ("adaptive_avg_pool1d", "alpha_dropout", "avg_pool1d", "bilinear", "celu", "channel_shuffle",
                       "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d", "conv_transpose3d",
                       "cosine_similarity", "dropout", "feature_alpha_dropout", "group_norm", "hardshrink",
                       "layer_norm", "max_pool1d", "max_pool2d", "max_pool3d", "pairwise_distance", "pdist",
                       "pixel_shuffle", "pixel_unshuffle", "prelu", "rms_norm", "rrelu", "selu", "threshold")
globals().update({name: getattr(F, name) for name in _SAME_AS_FUNCTIONAL})

# aten's integer codes for a loss's reduction
_REDUCTIONS = {0: "none", 1: "mean", 2: "sum"}


def _reduction(code, op: str) -> str:
    if isinstance(code, str):
        return code
    if code not in _REDUCTIONS:
        raise ValueError(f"{op}: reduction must be 0 (none), 1 (mean) or 2 (sum), got {code!r}")
    return _REDUCTIONS[code]


# ----- nn.functional in torch.*'s argument order ------------------------------------------------------

def embedding(weight, input, padding_idx: int = -1, scale_grad_by_freq: bool = False, sparse: bool = False):
    """``torch.embedding(weight, indices)``: F.embedding with the table first (padding_idx -1 means none)."""
    if scale_grad_by_freq or sparse:
        raise NotImplementedError("embedding: scale_grad_by_freq and sparse gradients are not supported in chainrule")
    return F.embedding(input, weight, padding_idx=None if padding_idx == -1 else padding_idx)


def batch_norm(input, weight, bias, running_mean, running_var, training: bool, momentum: float, eps: float,
               cudnn_enabled: bool = True):
    return F.batch_norm(input, running_mean, running_var, weight, bias, training, momentum, eps)


def instance_norm(input, weight, bias, running_mean, running_var, use_input_stats: bool, momentum: float,
                  eps: float, cudnn_enabled: bool = True):
    return F.instance_norm(input, running_mean, running_var, weight, bias, use_input_stats, momentum, eps)


def kl_div(input, target, reduction=1, log_target: bool = False):
    return F.kl_div(input, target, reduction=_reduction(reduction, "kl_div"), log_target=log_target)


def margin_ranking_loss(input1, input2, target, margin: float = 0.0, reduction=1):
    return F.margin_ranking_loss(input1, input2, target, margin, reduction=_reduction(reduction, "margin_ranking_loss"))


def hinge_embedding_loss(input, target, margin: float = 1.0, reduction=1):
    return F.hinge_embedding_loss(input, target, margin, reduction=_reduction(reduction, "hinge_embedding_loss"))


def cosine_embedding_loss(input1, input2, target, margin: float = 0.0, reduction=1):
    return F.cosine_embedding_loss(input1, input2, target, margin,
                                   reduction=_reduction(reduction, "cosine_embedding_loss"))


def triplet_margin_loss(anchor, positive, negative, margin: float = 1.0, p: float = 2.0, eps: float = 1e-6,
                        swap: bool = False, reduction=1):
    return F.triplet_margin_loss(anchor, positive, negative, margin, p, eps, swap,
                                 reduction=_reduction(reduction, "triplet_margin_loss"))


def poisson_nll_loss(input, target, log_input: bool, full: bool, eps: float, reduction):
    return F.poisson_nll_loss(input, target, log_input, full, eps=eps, reduction=_reduction(reduction, "poisson_nll_loss"))


def ctc_loss(log_probs, targets, input_lengths, target_lengths, blank: int = 0, reduction=1,
             zero_infinity: bool = False):
    return F.ctc_loss(log_probs, targets, input_lengths, target_lengths, blank,
                      reduction=_reduction(reduction, "ctc_loss"), zero_infinity=zero_infinity)


def binary_cross_entropy_with_logits(input, target, weight=None, pos_weight=None, reduction=1):
    return F.binary_cross_entropy_with_logits(input, target, weight, reduction=_reduction(
        reduction, "binary_cross_entropy_with_logits"), pos_weight=pos_weight)


def adaptive_max_pool1d(input, output_size):
    """``torch.adaptive_max_pool1d`` returns the indices too."""
    return F.adaptive_max_pool1d(input, output_size, return_indices=True)


def convolution(input, weight, bias, stride, padding, dilation, transposed: bool, output_padding, groups: int):
    """The general convolution: ``conv{1,2,3}d`` or, with ``transposed``, ``conv_transpose{1,2,3}d``."""
    spatial = weight.ndim - 2
    if spatial not in (1, 2, 3):
        raise RuntimeError(f"convolution: weight must have 3, 4 or 5 dimensions, got shape {tuple(weight.shape)}")
    if transposed:
        return getattr(F, f"conv_transpose{spatial}d")(input, weight, bias, stride, padding, output_padding, groups,
                                                        dilation)
    return getattr(F, f"conv{spatial}d")(input, weight, bias, stride, padding, dilation, groups)


def constant_pad_nd(input, pad, value: float = 0.0):
    return F.pad(input, list(pad), mode="constant", value=value)


def _inplace_activation(name: str):
    def fn(input, *args, **kwargs):
        return getattr(F, name)(input, *args, **kwargs, inplace=True)

    fn.__name__ = f"{name}_"
    fn.__doc__ = f"``{name}`` written into ``input``."
    return fn


dropout_, alpha_dropout_, feature_alpha_dropout_ = (_inplace_activation(n) for n in
                                                    ("dropout", "alpha_dropout", "feature_alpha_dropout"))
celu_, selu_, rrelu_, threshold_ = (_inplace_activation(n) for n in ("celu", "selu", "rrelu", "threshold"))


def _recurrent_cell(mode: str):
    def cell(input, hx, w_ih, w_hh, b_ih=None, b_hh=None):
        from chainrule.nn.modules.rnn import recurrent_layer

        states = list(hx) if isinstance(hx, (tuple, list)) else [hx]
        S = recurrent_layer(mode, input.unsqueeze(0), states[0], states[1] if mode == "LSTM" else None, w_ih, w_hh,
                            b_ih, b_hh)[0]
        H = w_hh.shape[1]
        return (S[..., :H], S[..., H:]) if mode == "LSTM" else S

    cell.__name__ = {"LSTM": "lstm_cell", "GRU": "gru_cell", "RNN_TANH": "rnn_tanh_cell", "RNN_RELU": "rnn_relu_cell"}[mode]
    cell.__doc__ = f"One step of ``nn.{mode.split('_')[0].title()}Cell``'s recurrence with the weights given (batched input)."
    return cell


lstm_cell, gru_cell, rnn_tanh_cell, rnn_relu_cell = (_recurrent_cell(m) for m in ("LSTM", "GRU", "RNN_TANH", "RNN_RELU"))


def max_pool1d_with_indices(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode: bool = False):
    return F.max_pool1d(input, kernel_size, stride, padding, dilation, ceil_mode, return_indices=True)


def feature_dropout(input, p: float, train: bool):
    """Dropout of whole channels (dim 1) of an (N, C, *) input, as ``torch.feature_dropout``."""
    if not train or p == 0:
        return input
    shape = (input.shape[0], input.shape[1]) + (1,) * (input.ndim - 2)
    keep = cr.bernoulli(cr.full(shape, 1.0 - p, dtype=input.dtype, device=input.device))
    return input * keep / (1.0 - p) if p < 1 else input * 0.0


def feature_dropout_(input, p: float, train: bool):
    return input.copy_(feature_dropout(input, p, train)) if train and p else input


def to_dlpack(tensor):
    """A DLPack capsule of ``tensor`` (``torch.utils.dlpack.to_dlpack``); prefer passing the tensor itself to
    ``from_dlpack``, which speaks the current protocol."""
    return tensor.__dlpack__()


def binomial(count, prob, generator=None):
    """Draws of Binomial(count, prob), elementwise (float, as PyTorch), from chainrule's generator."""
    from chainrule.random import default_generator

    gen = (generator or default_generator).numpy
    draws = gen.binomial(to_host(count._data).astype("int64"), to_host(prob._data))  # drawn on the host
    return cr.tensor(draws.astype(prob._data.dtype), device=prob.device)


def empty_permuted(size, physical_layout, *, dtype=None, device=None, requires_grad: bool = False):
    """An uninitialised tensor of shape ``size`` whose memory is laid out in the dimension order
    ``physical_layout`` (outermost first), as ``torch.empty_permuted``."""
    size, order = tuple(size), tuple(physical_layout)
    if sorted(order) != list(range(len(size))):
        raise RuntimeError(f"empty_permuted: physical_layout {order} is not a permutation of {len(size)} dims")
    physical = cr.empty(tuple(size[d] for d in order), dtype=dtype, device=device)
    inverse = tuple(order.index(d) for d in range(len(size)))
    result = physical.permute(*inverse)
    return result.requires_grad_() if requires_grad else result


# ----- function forms of tensor methods ---------------------------------------------------------------

def _method_as_function(name: str):
    def fn(input, *args, **kwargs):
        return getattr(input, name)(*args, **kwargs)

    fn.__name__ = name
    fn.__doc__ = f"``input.{name}(...)``."
    return fn


# torch.* names that are a tensor's method called as a function (mostly in-place forms)
_METHOD_FUNCTIONS = (
    "abs_", "acos_", "acosh_", "arccos_", "arccosh_", "arcsin_", "arcsinh_", "arctan_", "arctanh_", "asin_",
    "asinh_", "atan_", "atanh_", "ceil_", "clamp_", "clamp_max_", "clamp_min_", "clip_", "cos_", "cosh_", "deg2rad_",
    "erf_", "erfc_", "exp2_", "exp_", "expm1_", "fill_", "fix_", "floor_", "frac_", "gcd_", "i0_", "lcm_", "ldexp_",
    "log10_", "log1p_", "log2_", "log_", "logit_", "nan_to_num_", "neg_", "negative_", "rad2deg_", "reciprocal_",
    "relu_", "round_", "rsqrt_", "sigmoid_", "sin_", "sinc_", "sinh_", "sqrt_", "square_", "tan_", "tanh_", "trunc_",
    "xlogy_", "zero_", "detach", "detach_", "index_put_", "addmv_", "conj_physical_", "arctan2",
    "clamp_min", "clamp_max", "greater", "greater_equal", "less", "less_equal", "not_equal", "multiply", "divide",
    "subtract", "negative", "absolute", "arccos", "arcsin", "arctan", "swapdims", "is_floating_point", "is_signed",
    "is_nonzero", "is_same_size", "get_device",
)
globals().update({name: _method_as_function(name) for name in _METHOD_FUNCTIONS})


def fill(input, value):
    """A new tensor of ``input``'s shape and dtype filled with ``value`` (``torch.fill``)."""
    return cr.full_like(input, value)


def isin(elements, test_elements, *, assume_unique: bool = False, invert: bool = False):
    """Whether each element of ``elements`` occurs in ``test_elements`` (either may be a number)."""
    if not isinstance(elements, cr.Tensor) and not isinstance(test_elements, cr.Tensor):
        raise TypeError("isin: at least one of elements and test_elements must be a tensor")
    values = elements._data if isinstance(elements, cr.Tensor) else elements
    tests = test_elements._data if isinstance(test_elements, cr.Tensor) else test_elements
    xp = (elements if isinstance(elements, cr.Tensor) else test_elements).xp
    return wrap(xp.isin(values, tests, assume_unique=assume_unique, invert=invert))


# ----- dtypes and shapes -------------------------------------------------------------------------------------------

dtype = _dt.DType  # torch.dtype: the class of cr.float32 and the others


class Size(tuple):
    """A shape: a tuple of ints with ``numel()`` (``torch.Size``; ``Tensor.shape`` itself is a plain tuple)."""

    def numel(self) -> int:
        count = 1
        for n in self:
            count *= n
        return count

    def __repr__(self) -> str:
        return f"chainrule.Size({list(self)})"


class finfo:
    """Machine limits of a floating dtype (``torch.finfo``): bits, eps, max, min, tiny, smallest_normal,
    resolution, dtype."""

    def __init__(self, type=None):  # noqa: A002  (PyTorch's argument name)
        self.dtype = _dt.get_default_dtype() if type is None else _dt.to_dtype(type)
        if self.dtype._kind < 2:
            raise TypeError(f"finfo: {self.dtype} is not a floating point dtype; use iinfo")
        info = _dt.np.finfo(self.dtype.np)
        self.bits, self.resolution = int(info.bits), 10.0 ** -int(info.precision)  # exactly 1e-6, as PyTorch
        self.eps, self.max, self.min = float(info.eps), float(info.max), float(info.min)
        self.tiny = self.smallest_normal = float(info.smallest_normal)

    def __repr__(self) -> str:
        return (f"finfo(resolution={self.resolution:g}, min={self.min:g}, max={self.max:g}, eps={self.eps:g}, "
                f"smallest_normal={self.tiny:g}, tiny={self.tiny:g}, dtype={self.dtype.name})")


class iinfo:
    """Limits of an integer dtype (``torch.iinfo``): bits, min, max, dtype."""

    def __init__(self, type):  # noqa: A002
        self.dtype = _dt.to_dtype(type)
        if self.dtype._kind != 1:
            raise TypeError(f"iinfo: {self.dtype} is not supported (an integer dtype is; use finfo for floats)")
        info = _dt.np.iinfo(self.dtype.np)
        self.bits, self.min, self.max = int(info.bits), int(info.min), int(info.max)

    def __repr__(self) -> str:
        return f"iinfo(min={self.min}, max={self.max}, dtype={self.dtype.name})"


def _dtype_and_dim(x) -> tuple:
    if isinstance(x, cr.Tensor):
        return x.dtype, x.ndim
    if isinstance(x, _dt.DType):
        return x, 1
    return _dt.scalar_dtype(x), 0  # a Python number ranks as a 0-d tensor below dimensioned ones


def result_type(tensor1, tensor2) -> _dt.DType:
    """The dtype an arithmetic op on ``tensor1`` and ``tensor2`` (tensors or numbers) gives."""
    (a, a_dim), (b, b_dim) = _dtype_and_dim(tensor1), _dtype_and_dim(tensor2)
    if not isinstance(tensor1, cr.Tensor) and not isinstance(tensor2, cr.Tensor):
        a_dim = b_dim = 0
    if isinstance(tensor1, cr.Tensor) != isinstance(tensor2, cr.Tensor):
        tensor, number = (tensor1, tensor2) if isinstance(tensor1, cr.Tensor) else (tensor2, tensor1)
        return _dt.scalar_result_type(tensor.dtype, number)
    return _dt.result_type(a, a_dim, b, b_dim)


def promote_types(type1, type2) -> _dt.DType:
    """The smallest dtype both ``type1`` and ``type2`` convert to (PyTorch's promotion of two tensors)."""
    return _dt.result_type(_dt.to_dtype(type1), 1, _dt.to_dtype(type2), 1)


def can_cast(from_, to) -> bool:
    """Whether PyTorch's casting rules allow ``from_`` into ``to`` for in-place results: never to a lower
    kind (complex -> float, float -> integer, integer -> bool)."""
    return _dt.to_dtype(from_)._kind <= _dt.to_dtype(to)._kind


# ----- global switches ------------------------------------------------------------------------------------

_DETERMINISTIC = {"mode": False, "warn_only": False}


def use_deterministic_algorithms(mode: bool, *, warn_only: bool = False) -> None:
    """Accepted: chainrule's CPU kernels are deterministic already (the same inputs give the same bits)."""
    _DETERMINISTIC.update(mode=bool(mode), warn_only=bool(warn_only))


def are_deterministic_algorithms_enabled() -> bool:
    return _DETERMINISTIC["mode"]


def is_deterministic_algorithms_warn_only_enabled() -> bool:
    return _DETERMINISTIC["warn_only"]


def set_deterministic_debug_mode(debug_mode) -> None:
    modes = {"default": 0, "warn": 1, "error": 2}
    level = modes.get(debug_mode, debug_mode)
    if level not in (0, 1, 2):
        raise RuntimeError(f"set_deterministic_debug_mode: expected 'default', 'warn', 'error' or 0-2, got {debug_mode!r}")
    use_deterministic_algorithms(level > 0, warn_only=level == 1)


def get_deterministic_debug_mode() -> int:
    if not _DETERMINISTIC["mode"]:
        return 0
    return 1 if _DETERMINISTIC["warn_only"] else 2


_INTEROP_THREADS = [1]


def set_num_interop_threads(n: int) -> None:
    """Accepted: chainrule runs no inter-op thread pool (each op runs to completion before the next)."""
    if int(n) < 1:
        raise RuntimeError(f"set_num_interop_threads: expected a positive number of threads, got {n}")
    _INTEROP_THREADS[0] = int(n)


def get_num_interop_threads() -> int:
    return _INTEROP_THREADS[0]


def is_anomaly_enabled() -> bool:
    from chainrule.autograd.anomaly import is_anomaly_enabled as enabled

    return enabled()


def set_anomaly_enabled(enabled: bool, check_nan: bool = True) -> None:
    from chainrule.autograd.anomaly import set_detect_anomaly

    set_detect_anomaly(enabled, check_nan)


def is_anomaly_check_nan_enabled() -> bool:
    from chainrule.autograd.anomaly import is_anomaly_check_nan_enabled as checks_nan

    return checks_nan()


__all__ = sorted(name for name, value in globals().items()
                 if callable(value) and not name.startswith("_") and name not in ("F", "annotations"))
