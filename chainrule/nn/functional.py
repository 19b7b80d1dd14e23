"""Neural-network functions (``import chainrule.nn.functional as F``), as in ``torch.nn.functional``.

linear is a primitive here, softmax and log_softmax in ``chainrule.ops.logits``; the rest are composed
from primitives and get their gradients, of every order, for free.
Convolution and pooling come from ``chainrule.ops.conv`` (im2col + GEMM).
"""

from __future__ import annotations

import functools
import math

from chainrule.autograd.grad_mode import no_grad
from chainrule.backend import kernels, xp_of
from chainrule.backend.checks import indices_within
from chainrule.backend.rows import layer_norm_rows, layer_norm_vjp_rows, softmax_rows, softmax_vjp_rows
from chainrule.ops import elementwise as ew
from chainrule.ops._helpers import Tensor, describe, record, tensor_operand, wrap
from chainrule.ops.conv import (  # convolution and pooling: im2col + GEMM
    adaptive_avg_pool1d,
    adaptive_avg_pool2d,
    adaptive_avg_pool3d,
    adaptive_max_pool1d,
    adaptive_max_pool2d,
    adaptive_max_pool3d,
    avg_pool1d,
    avg_pool2d,
    avg_pool3d,
    conv1d,
    conv2d,
    conv3d,
    conv_transpose1d,
    conv_transpose2d,
    conv_transpose3d,
    fold,
    fractional_max_pool2d,
    fractional_max_pool3d,
    lp_pool1d,
    lp_pool2d,
    lp_pool3d,
    max_pool1d,
    max_pool2d,
    max_pool3d,
    max_unpool1d,
    max_unpool2d,
    max_unpool3d,
    unfold,
)
from chainrule.ops.elementwise import elu, gelu, hardtanh, leaky_relu, mish, relu, relu6, sigmoid, silu, softplus, tanh
from chainrule.ops.indexing import one_hot
from chainrule.ops.logits import _along_last_dim, _softmax_backward, log_softmax, softmax, softmin
from chainrule.ops.resample import affine_grid, grid_sample, interpolate, pixel_shuffle, pixel_unshuffle, upsample
from chainrule.ops.shape import pad
from chainrule.random import default_generator

__all__ = [
    "linear", "bilinear", "softmax", "log_softmax", "softmin", "dropout", "layer_norm", "rms_norm", "batch_norm",
    "embedding", "cross_entropy", "nll_loss", "mse_loss", "l1_loss", "smooth_l1_loss", "huber_loss",
    "binary_cross_entropy", "binary_cross_entropy_with_logits", "kl_div", "scaled_dot_product_attention",
    "normalize", "cosine_similarity", "one_hot", "pad", "relu", "relu6", "leaky_relu", "elu", "gelu", "silu",
    "mish", "softplus", "sigmoid", "tanh", "hardtanh", "logsigmoid", "softsign", "glu",
    "conv1d", "conv2d", "max_pool1d", "max_pool2d", "avg_pool1d", "avg_pool2d", "adaptive_avg_pool1d", "adaptive_avg_pool2d",
    "unfold", "fold",
]
__all__ += ["group_norm", "instance_norm", "local_response_norm", "interpolate", "upsample", "pixel_shuffle",
            "pixel_unshuffle", "grid_sample", "affine_grid"]
__all__ += ["conv_transpose1d", "conv_transpose2d"]
__all__ += ["adaptive_max_pool1d", "adaptive_max_pool2d", "max_unpool1d", "max_unpool2d", "lp_pool1d", "lp_pool2d"]
__all__ += ["conv3d", "conv_transpose3d", "max_pool3d", "avg_pool3d", "adaptive_avg_pool3d"]
__all__ += ["adaptive_max_pool3d", "max_unpool3d", "lp_pool3d", "fractional_max_pool2d", "fractional_max_pool3d"]
__all__ += ["pdist", "channel_shuffle", "upsample_nearest", "upsample_bilinear"]
__all__ += [f"{name}_with_indices" for name in ("max_pool1d", "max_pool2d", "max_pool3d", "adaptive_max_pool1d",
                                                "adaptive_max_pool2d", "adaptive_max_pool3d", "fractional_max_pool2d",
                                                "fractional_max_pool3d")]

_REDUCTIONS = ("mean", "sum", "none")


def _check_reduction(op: str, reduction: str) -> None:
    if reduction not in _REDUCTIONS:
        raise ValueError(f"{op}: reduction must be one of {_REDUCTIONS}, got {reduction!r}")


def _reduce(loss: Tensor, reduction: str) -> Tensor:
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    return loss


# ----- layers as functions --------------------------------------------------------------------------

def linear(input: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """``input @ weight.T + bias``; weight has shape (out_features, in_features).

    A primitive: the leading dims of ``input`` are folded into one GEMM (much faster than a batched
    product with numpy), and the weight gradient comes out as one contiguous (out, in) GEMM.
    """
    x = tensor_operand(input, "linear")
    if x.ndim == 0 or weight.ndim != 2 or x.shape[-1] != weight.shape[-1]:
        raise RuntimeError(
            f"linear: input {describe(x)} has {x.shape[-1] if x.ndim else 0} features but weight "
            f"{describe(weight)} expects {weight.shape[-1]} (weight shape is (out_features, in_features))"
        )
    if bias is not None and tuple(bias.shape) != (weight.shape[0],):
        raise RuntimeError(
            f"linear: bias {describe(bias)} must have shape ({weight.shape[0]},) to match weight {describe(weight)}"
        )
    if x._data.dtype != weight._data.dtype or (bias is not None and bias._data.dtype != weight._data.dtype):
        raise RuntimeError(
            f"linear: input {describe(x)}, weight {describe(weight)} and bias must have the same dtype"
        )
    lead, n_in, n_out = x.shape[:-1], weight.shape[1], weight.shape[0]
    flat = x._data.reshape(-1, n_in)
    out = flat @ weight._data.T
    if bias is not None:
        out += bias._data
    out = out.reshape(lead + (n_out,))
    inputs = (x, weight) if bias is None else (x, weight, bias)

    def rule(g, _):
        g2 = g.reshape(-1, n_out)
        grads = [g2.matmul(weight).reshape(x.shape) if x._rg else None,
                 g2.mT.matmul(x.reshape(-1, n_in)) if weight._rg else None]
        if bias is not None:
            grads.append(g2.sum(0) if bias._rg else None)
        return tuple(grads)

    return record(out, "linear", inputs, rule, (x, weight))


def bilinear(input1: Tensor, input2: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """``y_o = x1 W_o x2 + b_o`` with weight of shape (out, in1, in2)."""
    from chainrule.ops.linalg import einsum

    lead = input1.shape[:-1]
    out = einsum("bi,oij,bj->bo", input1.reshape(-1, input1.shape[-1]), weight, input2.reshape(-1, input2.shape[-1]))
    out = out.reshape(lead + (weight.shape[0],))
    return out if bias is None else out + bias


def logsigmoid(input: Tensor) -> Tensor:
    return -softplus(-input)


def softsign(input: Tensor) -> Tensor:
    return input / (input.abs() + 1)


def glu(input: Tensor, dim: int = -1) -> Tensor:
    a, b = input.chunk(2, dim)
    return a * b.sigmoid()


def dropout(input: Tensor, p: float = 0.5, training: bool = True, inplace: bool = False, generator=None) -> Tensor:
    """Zero each element with probability ``p`` and scale the rest by 1 / (1 - p) (identity when not training)."""
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout: probability has to be between 0 and 1, but got {p}")
    if not training or p == 0.0:
        return input
    if p == 1.0:
        return input * 0.0
    gen = (generator or default_generator).numpy
    keep = gen.random(input.shape) >= p
    scale = xp_of(input._data).asarray(keep / (1.0 - p), dtype=input._data.dtype)
    return input * wrap(scale)


def layer_norm(input: Tensor, normalized_shape, weight: Tensor | None = None, bias: Tensor | None = None,
               eps: float = 1e-5) -> Tensor:
    """Normalise over the trailing ``normalized_shape`` dims to zero mean and unit variance (biased), then
    scale and shift. A primitive (one node instead of nine, one pass per row in the backend); the forward
    keeps the mean and 1/std per row. Its rule recomputes them from primitives, so gradients of every order
    work; the fast entry uses the kept ones."""
    shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
    x = tensor_operand(input, "layer_norm")
    if x.ndim < len(shape) or tuple(x.shape[x.ndim - len(shape):]) != shape:
        raise RuntimeError(f"layer_norm: input {describe(x)} does not end with normalized_shape {list(shape)}")
    for name, p in (("weight", weight), ("bias", bias)):
        if p is not None and tuple(p.shape) != shape:
            raise RuntimeError(f"layer_norm: {name} {describe(p)} must have the normalized shape {list(shape)}")
    rows = xp_of(x._data).ascontiguousarray(x._data).reshape(-1, math.prod(shape))
    w = None if weight is None else weight._data.reshape(-1)
    out, mean, rstd = layer_norm_rows(rows, w, None if bias is None else bias._data.reshape(-1), eps)
    lead, dims = tuple(range(x.ndim - len(shape))), tuple(range(x.ndim - len(shape), x.ndim))
    params = (x, weight, bias)
    inputs = tuple(p for p in params if p is not None)

    def rule(g, _):
        xc = x - x.mean(dims, keepdim=True)
        r = ((xc * xc).mean(dims, keepdim=True) + eps).rsqrt()
        xhat = xc * r
        gxhat = g if weight is None else g * weight
        gx = r * (gxhat - gxhat.mean(dims, keepdim=True) - xhat * (gxhat * xhat).mean(dims, keepdim=True))
        return _given(params, (gx, (g * xhat).sum(lead), g.sum(lead)))

    def fast(g, _):
        return _given(params, layer_norm_vjp_rows(g, rows, mean, rstd, w, need_x=x._rg))

    return record(out.reshape(x.shape), "layer_norm", inputs, rule, inputs, fast=fast)


def _given(params: tuple, grads: tuple) -> tuple:
    """The gradients of the parameters that are given (not None), each in its parameter's shape."""
    return tuple(None if g is None else g.reshape(p.shape) for g, p in zip(grads, params) if p is not None)


def group_norm(input: Tensor, num_groups: int, weight: Tensor | None = None, bias: Tensor | None = None,
               eps: float = 1e-5) -> Tensor:
    """Normalise each group of ``num_groups`` channels (dim 1) of every sample over its channels and spatial
    dims (biased variance), then scale and shift per channel. Composite: gradients of every order come free."""
    x = tensor_operand(input, "group_norm")
    if x.ndim < 2:
        raise RuntimeError(f"group_norm: expected at least 2-D input (N, C, ...), got {describe(x)}")
    n, c = x.shape[0], x.shape[1]
    if c % num_groups:
        raise RuntimeError("Expected number of channels in input to be divisible by num_groups, but got input of "
                           f"shape {list(x.shape)} and num_groups={num_groups}")
    for name, p in (("weight", weight), ("bias", bias)):
        if p is not None and tuple(p.shape) != (c,):
            raise RuntimeError(f"Expected {name} to be a vector of size equal to the number of channels in input, "
                               f"but got {name} of shape {list(p.shape)} and input of shape {list(x.shape)}")
    _need_float("group_norm", x, "GroupNormKernelImpl")
    if n * (c // num_groups) * math.prod(x.shape[2:]) == 1:
        raise ValueError("Expected more than 1 value per channel when training, got input size "
                         f"{[n * c // num_groups, num_groups] + list(x.shape[2:])}")
    half = x.dtype.itemsize < 4  # float16/bfloat16: statistics in float32, as PyTorch's kernel keeps them
    out = _standardise((x.float() if half else x).reshape(n, num_groups, -1), (2,), eps).reshape(x.shape)
    return _per_channel_affine(out.to(x.dtype) if half else out, weight, bias)


def _need_float(op: str, x: Tensor, kernel: str) -> None:
    if not x.is_floating_point():
        names = {"int64": "Long", "int32": "Int", "int16": "Short", "int8": "Char", "uint8": "Byte", "bool": "Bool"}
        raise NotImplementedError(f"\"{kernel}\" not implemented for '{names.get(x.dtype.name, x.dtype.name)}' ({op})")


def _standardise(x: Tensor, dims: tuple, eps: float) -> Tensor:
    """(x - mean) / sqrt(biased var + eps) over ``dims``."""
    centered = x - x.mean(dims, keepdim=True)
    return centered * ((centered * centered).mean(dims, keepdim=True) + eps).rsqrt()


def _per_channel_affine(out: Tensor, weight: Tensor | None, bias: Tensor | None) -> Tensor:
    shape = [1, out.shape[1]] + [1] * (out.ndim - 2)
    if weight is not None:
        out = out * weight.reshape(shape)
    if bias is not None:
        out = out + bias.reshape(shape)
    return out


def instance_norm(input: Tensor, running_mean: Tensor | None = None, running_var: Tensor | None = None,
                  weight: Tensor | None = None, bias: Tensor | None = None, use_input_stats: bool = True,
                  momentum: float = 0.1, eps: float = 1e-5) -> Tensor:
    """Normalise each channel of each sample over its spatial dims. With ``use_input_stats`` the running
    stats (when given) move towards the batch average of the per-instance mean and unbiased variance, as
    PyTorch's; without, the running stats normalise."""
    x = tensor_operand(input, "instance_norm")
    if x.ndim < 3:
        raise ValueError(f"instance_norm: expected at least 3-D input (N, C, L, ...), got {describe(x)}")
    _need_float("instance_norm", x, "batch_norm")
    dims = tuple(range(2, x.ndim))
    shape = [1, x.shape[1]] + [1] * (x.ndim - 2)
    if use_input_stats:
        count = math.prod(x.shape[2:])
        if count <= 1:
            raise ValueError(f"Expected more than 1 spatial element when training, got input size {list(x.shape)}")
        mean, centered, var = _mean_and_variance(x, dims)
        if running_mean is not None and running_var is not None:  # the batch's average of the instances' statistics
            _update_running(running_mean, running_var, mean.detach().mean(0), var.detach().mean(0), momentum, count)
        out = centered * (var + eps).rsqrt()
    else:
        if running_mean is None or running_var is None:
            raise ValueError("Expected running_mean and running_var to be defined when use_input_stats is false")
        out = (x - running_mean.reshape(shape)) * (running_var.reshape(shape) + eps).rsqrt()
    return _per_channel_affine(out, weight, bias)


def local_response_norm(input: Tensor, size: int, alpha: float = 1e-4, beta: float = 0.75, k: float = 1.0) -> Tensor:
    """input / (k + alpha * mean of input**2 over a window of ``size`` channels) ** beta, the window running
    from c - size // 2 to c + (size - 1) // 2, zero-padded (PyTorch's). Composite: a sum of shifted slices."""
    x = tensor_operand(input, "local_response_norm")
    if x.ndim < 3:
        raise ValueError(f"Expected 3D or higher dimensionality                          input (got {x.ndim} dimensions)")
    if x.numel() == 0:
        return x
    if x.dtype.name == "bool":
        raise NotImplementedError("\"avg_pool3d_out_frame\" not implemented for 'Bool' (local_response_norm)")
    c = x.shape[1]
    sq = pad(x * x, [0, 0] * (x.ndim - 2) + [size // 2, (size - 1) // 2])
    window = sq[:, 0:c]
    for i in range(1, size):
        window = window + sq[:, i:i + c]
    mean = window / size if x.is_floating_point() else window // size  # PyTorch's integer avg_pool truncates
    div = (mean * alpha + k) ** beta
    return x / div


def rms_norm(input: Tensor, normalized_shape, weight: Tensor | None = None, eps: float | None = None) -> Tensor:
    """x / sqrt(mean(x**2) + eps) over the trailing dims, then scaled; eps defaults to the dtype's machine epsilon."""
    shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
    if tuple(input.shape[-len(shape):]) != shape:
        raise RuntimeError(f"rms_norm: input {describe(input)} does not end with normalized_shape {list(shape)}")
    if eps is None:
        eps = float(xp_of(input._data).finfo(input._data.dtype).eps)
    dims = tuple(range(input.ndim - len(shape), input.ndim))
    out = input * ((input * input).mean(dims, keepdim=True) + eps).rsqrt()
    return out if weight is None else out * weight


def _mean_and_variance(x: Tensor, dims: tuple) -> tuple:
    """The mean over ``dims``, ``x`` centred on it, and the biased variance (all keepdim)."""
    mean = x.mean(dims, keepdim=True)
    centered = x - mean
    return mean, centered, (centered * centered).mean(dims, keepdim=True)


def _update_running(running_mean: Tensor, running_var: Tensor, mean: Tensor, var: Tensor, momentum: float,
                    count: int) -> None:
    """running = (1 - momentum) running + momentum * statistic, in place; the variance made unbiased
    (each statistic is over ``count`` values), as PyTorch's running variance is."""
    with no_grad():
        running_mean.mul_(1 - momentum).add_(mean.reshape(-1) * momentum)
        running_var.mul_(1 - momentum).add_(var.reshape(-1) * (momentum * count / (count - 1)))


def batch_norm(input: Tensor, running_mean: Tensor | None, running_var: Tensor | None, weight: Tensor | None = None,
               bias: Tensor | None = None, training: bool = False, momentum: float = 0.1, eps: float = 1e-5) -> Tensor:
    """Normalise each channel (dim 1) over the batch and spatial dims. In training the batch statistics are
    used and the running ones updated in place (unbiased variance, as PyTorch); in eval the running ones."""
    if input.ndim < 2:
        raise ValueError(f"batch_norm: expected at least 2-D input (N, C, ...), got {describe(input)}")
    dims = (0,) + tuple(range(2, input.ndim))
    shape = [1, input.shape[1]] + [1] * (input.ndim - 2)
    if training:
        count = input.numel() // input.shape[1]
        if count <= 1:
            raise ValueError(f"batch_norm: expected more than 1 value per channel when training, got input {describe(input)}")
        mean, centered, var = _mean_and_variance(input, dims)
        if running_mean is not None and running_var is not None:
            _update_running(running_mean, running_var, mean.detach(), var.detach(), momentum, count)
        out = centered * (var + eps).rsqrt()
    else:
        if running_mean is None or running_var is None:
            raise ValueError("batch_norm: running_mean and running_var are required when training=False")
        out = (input - running_mean.reshape(shape)) * (running_var.reshape(shape) + eps).rsqrt()
    if weight is not None:
        out = out * weight.reshape(shape)
    if bias is not None:
        out = out + bias.reshape(shape)
    return out


def embedding(input: Tensor, weight: Tensor, padding_idx: int | None = None) -> Tensor:
    """Rows of ``weight`` picked by the integer tensor ``input``; rows at ``padding_idx`` get no gradient."""
    if input._data.dtype.kind not in "iu":
        raise RuntimeError(f"embedding: indices must be an integer tensor, got {describe(input)}")
    if input.device != weight.device:  # PyTorch refuses this (indexing a tensor with CPU indices it allows)
        raise RuntimeError(f"embedding: Expected all tensors to be on the same device, but found at least two devices, "
                           f"{weight.device} and {input.device}! (weight {describe(weight)}, indices {describe(input)}; "
                           "move the indices with .to(weight.device))")
    num = weight.shape[0]
    if not indices_within(input._data, -num, num):
        raise IndexError(
            f"embedding: index out of range: indices span [{int(input._data.min())}, {int(input._data.max())}] "
            f"but the table has {num} rows"
        )
    out = weight[input]
    if padding_idx is not None:
        keep = (input != (padding_idx % num)).unsqueeze(-1)
        out = ew.where(keep, out, out.detach())
    return out


# ----- losses ---------------------------------------------------------------------------------------

def _class_targets(op: str, input: Tensor, target: Tensor) -> None:
    if target._data.dtype.kind not in "iu":
        raise RuntimeError(f"{op}: expected class indices of an integer dtype, got target {describe(target)}")
    expected = (input.shape[0],) + input.shape[2:] if input.ndim >= 2 else ()
    if tuple(target.shape) != expected:
        raise ValueError(
            f"{op}: expected target of shape {expected} for input {describe(input)} (N, C, ...), got {describe(target)}"
        )


def nll_loss(input: Tensor, target: Tensor, weight: Tensor | None = None, ignore_index: int = -100,
             reduction: str = "mean") -> Tensor:
    """Negative log-likelihood of class indices given log-probabilities ``input`` (N, C, ...)."""
    _check_reduction("nll_loss", reduction)
    if input.ndim == 1:
        input, target = input.unsqueeze(0), target.reshape(1)
        squeeze = True
    else:
        squeeze = False
    _class_targets("nll_loss", input, target)
    n_classes = input.shape[1]
    ignored = target == ignore_index
    safe = ew.where(ignored, 0, target)
    if not indices_within(safe._data, 0, n_classes):
        raise IndexError(
            f"nll_loss: target values must be in [0, {n_classes}) or equal ignore_index={ignore_index}, got min "
            f"{int(safe._data.min())} and max {int(safe._data.max())}"
        )
    picked = -input.gather(1, safe.unsqueeze(1)).squeeze(1)
    w = ew.where(ignored, 0.0, weight[safe] if weight is not None else wrap(xp_of(input._data).ones(
        target.shape, dtype=input._data.dtype)))
    losses = picked * w
    if reduction == "none":
        return losses.squeeze(0) if squeeze else losses
    if reduction == "sum":
        return losses.sum()
    return losses.sum() / w.sum()


def cross_entropy(input: Tensor, target: Tensor, weight: Tensor | None = None, ignore_index: int = -100,
                  reduction: str = "mean", label_smoothing: float = 0.0) -> Tensor:
    """Softmax cross-entropy of logits ``input`` (N, C, ...) with class indices or class probabilities."""
    _check_reduction("cross_entropy", reduction)
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"cross_entropy: label_smoothing must be in [0, 1], got {label_smoothing}")
    class_dim = 0 if input.ndim == 1 else 1
    if target._data.dtype.kind in "iu" and weight is None and not label_smoothing and input.ndim == 2:
        _class_targets("cross_entropy", input, target)
        return _softmax_cross_entropy(input, target, ignore_index, reduction)
    logp = log_softmax(input, class_dim)
    n_classes = input.shape[class_dim]
    if target._data.dtype.kind == "f":  # class probabilities
        if target.shape != input.shape:
            raise ValueError(
                f"cross_entropy: probability targets must have the input's shape {describe(input)}, got {describe(target)}"
            )
        if label_smoothing:
            target = target * (1 - label_smoothing) + label_smoothing / n_classes
        per_class = logp * target
        if weight is not None:
            per_class = per_class * weight.reshape([-1] + [1] * (input.ndim - class_dim - 1))
        losses = -per_class.sum(class_dim)
        if reduction == "mean":
            return losses.sum() / max(input.numel() // n_classes, 1)
        return _reduce(losses, reduction)
    nll = nll_loss(logp, target, weight, ignore_index, reduction)
    if not label_smoothing:
        return nll
    # PyTorch's smoothing: mix in the mean of -log p over classes (weighted), normalised as nll is
    ignored = target == ignore_index
    per_class = logp if weight is None else logp * weight.reshape([-1] + [1] * (input.ndim - class_dim - 1))
    smooth = ew.where(ignored, 0.0, -per_class.sum(class_dim))
    if reduction == "mean":
        if weight is not None:
            safe = ew.where(ignored, 0, target)
            denom = ew.where(ignored, 0.0, weight[safe]).sum()
        else:
            denom = (~ignored).sum().to(input.dtype)
        smooth = smooth.sum() / denom
    elif reduction == "sum":
        smooth = smooth.sum()
    return nll * (1 - label_smoothing) + smooth * (label_smoothing / n_classes)


def _softmax_cross_entropy(logits: Tensor, target: Tensor, ignore_index: int, reduction: str) -> Tensor:
    """Cross-entropy of (N, C) logits with class indices, as one primitive (the common classifier and
    language-model case): the loss is logsumexp - the target's logit, the gradient softmax - one_hot."""
    x = logits
    if x._data.dtype.kind != "f":
        raise RuntimeError(f"cross_entropy: expected floating-point logits, got {describe(x)}")
    xp = xp_of(x._data)
    n, n_classes = x.shape
    labels, valid = _checked_labels(target._data, ignore_index, n_classes, xp)
    safe = labels if valid is None else xp.where(valid, labels, 0)
    shifted = x._data - x._data.max(axis=1, keepdims=True)
    probs = kernels.exp(shifted)
    total = probs.sum(axis=1, keepdims=True)
    rows = xp.arange(n)
    losses = xp.log(total[:, 0]) - shifted[rows, safe]
    probs /= total
    if valid is not None:
        losses *= valid
    count = n if valid is None else int(valid.sum())
    if reduction == "mean":
        out = losses.sum() / count if count else losses.sum() * float("nan")
    elif reduction == "sum":
        out = losses.sum()
    else:
        out = losses
    out = xp.asarray(out, dtype=x._data.dtype)
    keep = None if valid is None else valid[:, None].astype(probs.dtype)  # ignored rows get no gradient

    def per_row(g):  # the loss's gradient as a factor of each row's (a Tensor or an array)
        return g.reshape(-1, 1) if reduction == "none" else (g / count if reduction == "mean" else g)

    def rule(g, _):  # softmax - one_hot, in primitives
        one_hot = xp.zeros_like(probs)
        one_hot[rows, safe] = 1.0
        d = softmax(x, 1) - wrap(one_hot)
        return ((d if keep is None else d * wrap(keep)) * per_row(g),)

    def fast(g, _):  # the same from the kept softmax
        d = probs.copy()
        d[rows, safe] -= 1
        if keep is not None:
            d *= keep
        return (xp.multiply(d, per_row(g), out=d),)

    return record(out, "cross_entropy", (x,), rule, (x,), fast=fast)


def _checked_labels(labels, ignore_index: int, n_classes: int, xp):
    """The class labels and, when some may be ``ignore_index``, the mask of the others (None when every
    label is a class: the common case, with no masking work). Labels outside [0, n_classes) that are not
    ``ignore_index`` raise."""
    if not labels.size:
        return labels, labels != ignore_index
    if indices_within(labels, 0, n_classes) and not 0 <= ignore_index < n_classes:
        return labels, None
    valid = labels != ignore_index
    safe = xp.where(valid, labels, 0)
    if not indices_within(safe, 0, n_classes):
        raise IndexError(
            f"cross_entropy: target values must be in [0, {n_classes}) or equal ignore_index={ignore_index}, got min "
            f"{int(safe.min())} and max {int(safe.max())}"
        )
    return labels, valid


def _same_shape(op: str, input: Tensor, target: Tensor) -> None:
    if input.shape != target.shape:
        raise ValueError(
            f"{op}: target {describe(target)} must have the same shape as input {describe(input)} "
            "(broadcasting here is almost always a bug)"
        )


def mse_loss(input: Tensor, target: Tensor, reduction: str = "mean") -> Tensor:
    _check_reduction("mse_loss", reduction)
    _same_shape("mse_loss", input, target)
    diff = input - target
    return _reduce(diff * diff, reduction)


def l1_loss(input: Tensor, target: Tensor, reduction: str = "mean") -> Tensor:
    _check_reduction("l1_loss", reduction)
    _same_shape("l1_loss", input, target)
    return _reduce((input - target).abs(), reduction)


def huber_loss(input: Tensor, target: Tensor, reduction: str = "mean", delta: float = 1.0) -> Tensor:
    """0.5 d**2 where |d| < delta, else delta (|d| - 0.5 delta)."""
    _check_reduction("huber_loss", reduction)
    _same_shape("huber_loss", input, target)
    d = (input - target).abs()
    loss = ew.where(d < delta, 0.5 * d * d, delta * (d - 0.5 * delta))
    return _reduce(loss, reduction)


def smooth_l1_loss(input: Tensor, target: Tensor, reduction: str = "mean", beta: float = 1.0) -> Tensor:
    """0.5 d**2 / beta where |d| < beta, else |d| - 0.5 beta (huber_loss / beta)."""
    _check_reduction("smooth_l1_loss", reduction)
    _same_shape("smooth_l1_loss", input, target)
    d = (input - target).abs()
    if beta == 0:
        return _reduce(d, reduction)
    loss = ew.where(d < beta, 0.5 * d * d / beta, d - 0.5 * beta)
    return _reduce(loss, reduction)


def binary_cross_entropy(input: Tensor, target: Tensor, weight: Tensor | None = None, reduction: str = "mean") -> Tensor:
    """-(t log p + (1 - t) log(1 - p)) of probabilities ``input``; logs are clamped at -100 as in PyTorch."""
    _check_reduction("binary_cross_entropy", reduction)
    _same_shape("binary_cross_entropy", input, target)
    if input._data.size and (float(input._data.min()) < 0 or float(input._data.max()) > 1):
        raise RuntimeError(
            "binary_cross_entropy: all elements of input should be between 0 and 1 (for logits use the _with_logits version)"
        )
    log_p = input.log().clamp(min=-100.0)
    log_1mp = (1 - input).log().clamp(min=-100.0)
    loss = -(target * log_p + (1 - target) * log_1mp)
    if weight is not None:
        loss = loss * weight
    return _reduce(loss, reduction)


def binary_cross_entropy_with_logits(input: Tensor, target: Tensor, weight: Tensor | None = None,
                                     reduction: str = "mean", pos_weight: Tensor | None = None) -> Tensor:
    """Sigmoid + binary cross-entropy in one stable expression:
    (1 - t) x + (1 + (pos_weight - 1) t) * log(1 + exp(-x)), with log(1 + exp(-x)) = softplus(-x)."""
    _check_reduction("binary_cross_entropy_with_logits", reduction)
    _same_shape("binary_cross_entropy_with_logits", input, target)
    log_sigmoid_neg = softplus(-input)  # -log(sigmoid(x)) = log(1 + exp(-x))
    if pos_weight is not None:
        loss = (1 - target) * input + (1 + (pos_weight - 1) * target) * log_sigmoid_neg
    else:
        loss = (1 - target) * input + log_sigmoid_neg
    if weight is not None:
        loss = loss * weight
    return _reduce(loss, reduction)


def kl_div(input: Tensor, target: Tensor, reduction: str = "mean", log_target: bool = False) -> Tensor:
    """KL(target || exp(input)) pointwise: input holds log-probabilities. 'batchmean' divides by the batch size."""
    if log_target:
        loss = target.exp() * (target - input)
    else:
        loss = ew.where(target > 0, target * (target.clamp(min=1e-45).log() - input), 0.0)
    if reduction == "batchmean":
        return loss.sum() / input.shape[0]
    _check_reduction("kl_div", reduction)
    return _reduce(loss, reduction)


# ----- attention and similarity ---------------------------------------------------------------------

def scaled_dot_product_attention(query: Tensor, key: Tensor, value: Tensor, attn_mask: Tensor | None = None,
                                 dropout_p: float = 0.0, is_causal: bool = False, scale: float | None = None,
                                 enable_gqa: bool = False) -> Tensor:
    """softmax(q k^T * scale + mask) v over the last two dims. A bool ``attn_mask`` marks the pairs that
    may attend (True = keep), a float one is added to the scores; ``is_causal`` keeps j <= i.
    ``enable_gqa``: key and value have fewer heads (dim -3) than query, each shared by a group of query heads."""
    if enable_gqa and key.ndim >= 3 and key.shape[-3] != query.shape[-3]:
        heads, kv_heads = query.shape[-3], key.shape[-3]
        if heads % kv_heads or value.shape[-3] != kv_heads:
            raise RuntimeError(f"scaled_dot_product_attention: enable_gqa needs query's heads ({heads}) to be a "
                               f"multiple of key's ({kv_heads}) and value's ({value.shape[-3]}), which must agree")
        key, value = (_repeat_heads(t, heads // kv_heads) for t in (key, value))
    if query.shape[-1] != key.shape[-1] or key.shape[-2] != value.shape[-2]:
        raise RuntimeError(
            f"scaled_dot_product_attention: query {describe(query)}, key {describe(key)} and value {describe(value)} "
            "must agree: q and k in the last dim (E), k and v in the sequence dim (S)"
        )
    if is_causal and attn_mask is not None:
        raise RuntimeError("scaled_dot_product_attention: pass either attn_mask or is_causal, not both")
    scale = 1.0 / math.sqrt(query.shape[-1]) if scale is None else scale
    if is_causal:
        attn_mask = wrap(_causal_mask(query.shape[-2], key.shape[-2], query._data.dtype, xp_of(query._data)))
    elif attn_mask is not None and attn_mask._data.dtype.kind == "b":  # True = may attend: 0 there, -inf elsewhere
        attn_mask = wrap(xp_of(attn_mask._data).where(attn_mask._data, 0.0, float("-inf")).astype(query._data.dtype))
    scores_shape = tuple(query.shape[:-1]) + (key.shape[-2],)
    fusable = (dropout_p == 0.0 and query.shape[:-2] == key.shape[:-2] == value.shape[:-2]
               and query._data.dtype == key._data.dtype == value._data.dtype
               and (attn_mask is None or (not attn_mask._rg and attn_mask._data.dtype == query._data.dtype
                                          and _broadcasts_into(tuple(attn_mask.shape), scores_shape))))
    if fusable:
        return _attention(query, key, value, attn_mask, scale)
    weights = _attention_weights(query, key, attn_mask, scale)
    if dropout_p > 0.0:
        weights = dropout(weights, dropout_p)
    return weights.matmul(value)


def _repeat_heads(t: Tensor, times: int) -> Tensor:
    """(..., H, S, E) -> (..., H * times, S, E), each head repeated ``times`` times in a row (repeat_interleave)."""
    shape = tuple(t.shape)
    return t.unsqueeze(-3).expand(*shape[:-2], times, *shape[-2:]).reshape(*shape[:-3], shape[-3] * times, *shape[-2:])


def _broadcasts_into(shape: tuple, target: tuple) -> bool:
    """Whether an array of ``shape`` can be added in place into one of ``target``."""
    return len(shape) <= len(target) and all(s in (1, t) for s, t in zip(shape[::-1], target[::-1]))


def _attention_weights(query: Tensor, key: Tensor, additive_mask: Tensor | None, scale: float) -> Tensor:
    """softmax(q k^T * scale + mask) as a graph of differentiable ops."""
    scores = (query * scale).matmul(key.mT)
    return softmax(scores if additive_mask is None else scores + additive_mask, -1)


def _attention(query: Tensor, key: Tensor, value: Tensor, additive_mask: Tensor | None, scale: float) -> Tensor:
    """Primitive: softmax(q k^T * scale + mask) v, the scores scaled, masked and normalised in place (one
    (..., L, S) array instead of four, one node instead of six). With P the attention weights (kept by the
    forward) and dS = P * (g v^T - rowsum(g v^T * P)) the softmax's VJP: dq = scale dS k, dk = scale dS^T q,
    dv = P^T g. The rule recomputes P from primitives, so gradients of every order work."""
    q, k, v = query._data, key._data, value._data
    scores = q @ k.swapaxes(-1, -2)
    scores *= scale
    if additive_mask is not None:
        scores += additive_mask._data
    p = _along_last_dim(scores, scores.ndim - 1, softmax_rows)
    del scores

    def rule(g, _):
        weights = _attention_weights(query, key, additive_mask, scale)
        d_scores = _softmax_backward(g @ value.mT, weights, weights.ndim - 1)
        return d_scores @ key * scale, d_scores.mT @ query * scale, weights.mT @ g

    def fast(g, _):  # each gradient laid out in memory as its input is (_matmul_like)
        d_scores = _along_last_dim(g @ v.swapaxes(-1, -2), p.ndim - 1, softmax_vjp_rows, p)
        return (_matmul_like(q, d_scores, k, scale) if query._rg else None,
                _matmul_like(k, d_scores.swapaxes(-1, -2), q, scale) if key._rg else None,
                _matmul_like(v, p.swapaxes(-1, -2), g) if value._rg else None)

    return record(p @ v, "scaled_dot_product_attention", (query, key, value), rule, (query, key, value), fast=fast)


def _matmul_like(like, a, b, factor=None):
    """a @ b (times ``factor``) into an array laid out in memory as ``like`` is (``empty_like`` keeps the axis
    order). q, k and v are usually head views of one projection, (batch, length, heads, dim) in memory, and
    gradients in that order make the backward of the heads' transpose and reshape free views, not copies."""
    xp = xp_of(like)
    result = xp.empty_like(like)
    xp.matmul(a, b, out=result)
    if factor is not None:
        result *= factor
    return result


@functools.lru_cache(maxsize=32)
def _causal_mask(length: int, source_length: int, dtype, xp):
    """The additive causal mask (0 where j <= i, -inf above the diagonal), made once per shape: adding
    it costs one pass, and its gradient is the identity (a masked_fill's would need a select)."""
    mask = xp.triu(xp.full((length, source_length), float("-inf"), dtype=dtype), 1)
    mask.flags.writeable = False
    return mask


def normalize(input: Tensor, p: float = 2.0, dim: int = 1, eps: float = 1e-12) -> Tensor:
    """input / max(||input||_p, eps) along ``dim``."""
    return input / input.norm(p, dim, keepdim=True).clamp(min=eps)


def cosine_similarity(x1: Tensor, x2: Tensor, dim: int = 1, eps: float = 1e-8) -> Tensor:
    dot = (x1 * x2).sum(dim)
    n1 = x1.norm(2, dim).clamp(min=eps)
    n2 = x2.norm(2, dim).clamp(min=eps)
    return dot / (n1 * n2)


# ----- activations, dropout family, losses, distances, embedding_bag (issue 15) -----------------------
# All composites of differentiable primitives (gradients of every order for free), except where said.

def _floating(x, op: str) -> Tensor:
    from chainrule.ops._helpers import float_operand

    return float_operand(x, op)


def _in_place(input: Tensor, op: str, fn, *args) -> Tensor:
    """``fn(input, *args)`` written back into ``input`` (PyTorch's ``inplace=True`` and ``F.<op>_``)."""
    from chainrule.ops.inplace import apply_inplace

    return apply_inplace(input, op, fn, *args)


def _maybe_in_place(input: Tensor, inplace: bool, op: str, fn, *args) -> Tensor:
    return _in_place(input, op + "_", fn, *args) if inplace else fn(input, *args)


def prelu(input: Tensor, weight: Tensor) -> Tensor:
    """x where x > 0, else weight * x; ``weight`` has one slope or one per channel (dim 1)."""
    x = tensor_operand(input, "prelu")
    n = weight.numel()
    if n != 1:
        channels = x.shape[1] if x.ndim >= 2 else (x.shape[0] if x.ndim == 1 else 1)
        if x.ndim == 0 or n != channels:
            raise RuntimeError(
                f"Mismatch of parameter numbers and input channel size. Found parameter numbers = {n} and "
                f"channel size = {channels}.")
        weight = weight.reshape([n] + [1] * (x.ndim - 2)) if x.ndim >= 2 else weight.reshape(n)
    else:
        weight = weight.reshape(())
    return ew.where(x > 0, x, weight * x)


_SELU_ALPHA, _SELU_SCALE = 1.6732632423543772848170429916717, 1.0507009873554804934193349852946


def _selu(x: Tensor) -> Tensor:
    return elu(x, _SELU_ALPHA) * _SELU_SCALE


def selu(input: Tensor, inplace: bool = False) -> Tensor:
    """scale * elu(x, alpha) with the self-normalising constants."""
    return _maybe_in_place(input, inplace, "selu", _selu)


def selu_(input: Tensor) -> Tensor:
    return _in_place(input, "selu_", _selu)


def _celu(x: Tensor, alpha: float) -> Tensor:
    if alpha == 0:
        raise RuntimeError("ZeroDivisionError")
    return elu(x / alpha, 1.0) * alpha


def celu(input: Tensor, alpha: float = 1.0, inplace: bool = False) -> Tensor:
    """max(0, x) + min(0, alpha (exp(x / alpha) - 1)) = alpha * elu(x / alpha)."""
    return _maybe_in_place(input, inplace, "celu", _celu, alpha)


def celu_(input: Tensor, alpha: float = 1.0) -> Tensor:
    return _in_place(input, "celu_", _celu, alpha)


def _rrelu(x: Tensor, lower: float, upper: float, training: bool, generator=None) -> Tensor:
    x = _floating(x, "rrelu")
    if not training:
        return leaky_relu(x, (lower + upper) / 2)
    gen = (generator or default_generator).numpy
    xp = xp_of(x._data)
    slopes = xp.asarray(gen.uniform(lower, upper, x.shape), dtype=x._data.dtype)  # drawn on the host, then moved
    slopes = wrap(xp.where(x._data > 0, xp.asarray(1.0, dtype=slopes.dtype), slopes))
    return x * slopes  # the gradient is the slope each element used (1 where x > 0)


def rrelu(input: Tensor, lower: float = 1.0 / 8, upper: float = 1.0 / 3, training: bool = False,
          inplace: bool = False) -> Tensor:
    """Leaky relu whose negative slope is drawn from U(lower, upper) per element in training (chainrule's
    generator) and is (lower + upper) / 2 in eval."""
    if lower > upper:
        raise RuntimeError(f"Lower bound should be less than or equal to the upper bound, got lower={lower}, "
                           f"upper={upper}")
    return _maybe_in_place(input, inplace, "rrelu", _rrelu, lower, upper, training)


def rrelu_(input: Tensor, lower: float = 1.0 / 8, upper: float = 1.0 / 3, training: bool = False) -> Tensor:
    return rrelu(input, lower, upper, training, inplace=True)


def _hardsigmoid(x: Tensor) -> Tensor:
    return relu6(_floating(x, "hardsigmoid") + 3.0) / 6.0


def hardsigmoid(input: Tensor, inplace: bool = False) -> Tensor:
    """relu6(x + 3) / 6."""
    return _maybe_in_place(input, inplace, "hardsigmoid", _hardsigmoid)


def _hardswish(x: Tensor) -> Tensor:
    x = _floating(x, "hardswish")
    return x * (relu6(x + 3.0) / 6.0)


def hardswish(input: Tensor, inplace: bool = False) -> Tensor:
    """x * relu6(x + 3) / 6."""
    return _maybe_in_place(input, inplace, "hardswish", _hardswish)


def _check_lambd(lambd: float) -> None:
    if lambd < 0:
        raise RuntimeError(f"lambda must be in range [0, 3.40282e+38] for input dtype Float, but found {lambd:g}")


def hardshrink(input: Tensor, lambd: float = 0.5) -> Tensor:
    """x where |x| > lambd, else 0."""
    x = _floating(input, "hardshrink")
    return ew.where(x.abs() > lambd, x, 0.0)


def softshrink(input: Tensor, lambd: float = 0.5) -> Tensor:
    """x - lambd above lambd, x + lambd below -lambd, else 0."""
    _check_lambd(lambd)
    x = _floating(input, "softshrink")
    return ew.where(x > lambd, x - lambd, ew.where(x < -lambd, x + lambd, 0.0))


def tanhshrink(input: Tensor) -> Tensor:
    return input - tanh(input)


def _threshold(x: Tensor, threshold: float, value: float) -> Tensor:
    return ew.where(x > threshold, x, wrap(xp_of(x._data).asarray(value).astype(x._data.dtype)))


def threshold(input: Tensor, threshold: float, value: float, inplace: bool = False) -> Tensor:
    """x where x > threshold, else value."""
    return _maybe_in_place(input, inplace, "threshold", _threshold, threshold, value)


def threshold_(input: Tensor, threshold: float, value: float) -> Tensor:
    return _in_place(input, "threshold_", _threshold, threshold, value)


def relu_(input: Tensor) -> Tensor:
    return _in_place(input, "relu_", relu)


def elu_(input: Tensor, alpha: float = 1.0) -> Tensor:
    return _in_place(input, "elu_", elu, alpha)


def leaky_relu_(input: Tensor, negative_slope: float = 0.01) -> Tensor:
    return _in_place(input, "leaky_relu_", leaky_relu, negative_slope)


def hardtanh_(input: Tensor, min_val: float = -1.0, max_val: float = 1.0) -> Tensor:
    return _in_place(input, "hardtanh_", hardtanh, min_val, max_val)


def gumbel_softmax(logits: Tensor, tau: float = 1.0, hard: bool = False, eps: float = 1e-10, dim: int = -1,
                   generator=None) -> Tensor:
    """softmax((logits + g) / tau) with Gumbel(0, 1) noise g from chainrule's generator; ``hard`` returns the
    one-hot of the argmax with the soft sample's gradient (straight-through)."""
    x = _floating(logits, "gumbel_softmax")
    xp = xp_of(x._data)
    gen = (generator or default_generator).numpy
    gumbels = xp.asarray(-xp.log(gen.standard_exponential(x.shape)), dtype=x._data.dtype)
    y_soft = softmax((x + wrap(gumbels)) / tau, dim)
    if not hard:
        return y_soft
    index = xp.argmax(y_soft._data, axis=dim, keepdims=True)
    y_hard = xp.zeros_like(y_soft._data)
    xp.put_along_axis(y_hard, index, 1.0, axis=dim)
    return wrap(y_hard) - y_soft.detach() + y_soft


# dropout family: the mask is drawn from chainrule's generator; the gradient is the same mask applied

def _check_p(op: str, p: float) -> None:
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout probability has to be between 0 and 1, but got {p} ({op})")


def _feature_dropout(input: Tensor, p: float, training: bool, alpha: bool, generator=None) -> Tensor:
    """Dropout of whole channels: one draw per (N, C) (``alpha``: keeping SELU's mean and variance)."""
    if input.ndim < 2:
        raise RuntimeError("Feature dropout requires at least 2 dimensions in the input")
    return _dropout_with(input, p, training, alpha, tuple(input.shape[:2]) + (1,) * (input.ndim - 2), generator)


def _dropout_with(input: Tensor, p: float, training: bool, alpha: bool, noise_shape, generator=None) -> Tensor:
    if not training or p == 0.0 or input.numel() == 0:
        return input
    if p == 1.0:
        return input * 0.0
    xp = xp_of(input._data)
    keep = (generator or default_generator).numpy.random(noise_shape) >= p
    dtype = input._data.dtype
    if not alpha:
        return input * wrap(xp.asarray(keep / (1.0 - p), dtype=dtype))
    a_ = 1.7580993408473766  # -SELU's scale * alpha: the value dropped units take before the affine fix
    a = 1.0 / math.sqrt((a_ * a_ * p + 1) * (1 - p))
    b = (keep - 1.0) * (a_ * a) + a_ * a * p
    return input * wrap(xp.asarray(keep * a, dtype=dtype)) + wrap(xp.asarray(b, dtype=dtype))


def _channel_dropout(op: str, input: Tensor, p: float, training: bool, inplace: bool, spatial: int) -> Tensor:
    _check_p(op, p)
    ndim = input.ndim
    if ndim not in (spatial + 1, spatial + 2):
        raise RuntimeError(
            f"{op}: Expected {spatial + 1}D or {spatial + 2}D input, but received a {ndim}D input. Note that {op} exists to "
            f"provide channel-wise dropout on inputs with {spatial} spatial dimension{'s' if spatial > 1 else ''}, a "
            f"channel dimension, and an optional batch dimension (i.e. {spatial + 1}D or {spatial + 2}D inputs).")
    unbatched = ndim == spatial + 1
    x = input.unsqueeze(0) if unbatched else input
    fn = lambda t: _feature_dropout(t, p, training, False)  # noqa: E731
    out = _in_place(x, op + "_", fn) if inplace else fn(x)
    return out.squeeze(0) if unbatched else out


def dropout1d(input: Tensor, p: float = 0.5, training: bool = True, inplace: bool = False) -> Tensor:
    """Zero whole channels of (N, C, L) or (C, L) input with probability p, scaling the rest by 1 / (1 - p)."""
    return _channel_dropout("dropout1d", input, p, training, inplace, 1)


def dropout2d(input: Tensor, p: float = 0.5, training: bool = True, inplace: bool = False) -> Tensor:
    """Zero whole channels of (N, C, H, W) or (C, H, W) input."""
    return _channel_dropout("dropout2d", input, p, training, inplace, 2)


def dropout3d(input: Tensor, p: float = 0.5, training: bool = True, inplace: bool = False) -> Tensor:
    """Zero whole channels of (N, C, D, H, W) or (C, D, H, W) input."""
    return _channel_dropout("dropout3d", input, p, training, inplace, 3)


def alpha_dropout(input: Tensor, p: float = 0.5, training: bool = False, inplace: bool = False) -> Tensor:
    """Dropout for SELU networks: dropped units take SELU's negative saturation value and an affine map
    keeps the mean and variance."""
    _check_p("alpha_dropout", p)
    fn = lambda t: _dropout_with(t, p, training, True, tuple(t.shape))  # noqa: E731
    return _in_place(input, "alpha_dropout_", fn) if inplace else fn(input)


def feature_alpha_dropout(input: Tensor, p: float = 0.5, training: bool = False, inplace: bool = False) -> Tensor:
    """alpha_dropout of whole channels (one draw per (N, C))."""
    _check_p("feature_alpha_dropout", p)
    fn = lambda t: _feature_dropout(t, p, training, True) if training and p else t  # noqa: E731
    return _in_place(input, "feature_alpha_dropout_", fn) if inplace else fn(input)


# losses

def _float_loss(op: str, *tensors: Tensor) -> None:
    for t in tensors:
        if isinstance(t, Tensor) and t._data.dtype.kind != "f":
            raise RuntimeError(f"{op}: expected floating-point tensors, got {describe(t)}; convert with .float()")


def _loss_reduction(op: str, reduction: str, size_average=None, reduce=None) -> str:
    if size_average is not None or reduce is not None:  # PyTorch's deprecated pair
        size_average = True if size_average is None else size_average
        reduce = True if reduce is None else reduce
        reduction = "none" if not reduce else ("mean" if size_average else "sum")
    _check_reduction(op, reduction)
    return reduction


def poisson_nll_loss(input: Tensor, target: Tensor, log_input: bool = True, full: bool = False, size_average=None,
                     eps: float = 1e-8, reduce=None, reduction: str = "mean") -> Tensor:
    """exp(x) - t x (``log_input``) or x - t log(x + eps); ``full`` adds Stirling's t log t - t + log(2 pi t) / 2
    where t > 1."""
    reduction = _loss_reduction("poisson_nll_loss", reduction, size_average, reduce)
    loss = input.exp() - target * input if log_input else input - target * (input + eps).log()
    if full:
        safe = ew.where(target > 1, target, 1.0)
        stirling = safe * safe.log() - safe + 0.5 * (2 * math.pi * safe).log()
        loss = loss + ew.where(target > 1, stirling, 0.0)
    return _reduce(loss, reduction)


def gaussian_nll_loss(input: Tensor, target: Tensor, var, full: bool = False, eps: float = 1e-6,
                      reduction: str = "mean") -> Tensor:
    """(log(max(var, eps)) + (x - t)**2 / max(var, eps)) / 2 (+ log(2 pi) / 2 if ``full``); the clamp passes the
    gradient through unchanged, as PyTorch's."""
    _float_loss("gaussian_nll_loss", input, target, var)
    if not isinstance(var, Tensor):
        if var < 0:
            raise ValueError("var has negative entry/entries")
        var = wrap(xp_of(input._data).full((), var, dtype=input._data.dtype))
    if tuple(var.shape) != tuple(input.shape):
        if tuple(input.shape[:-1]) == tuple(var.shape):  # homoscedastic, one var per sample
            var = var.unsqueeze(-1)
        elif not (tuple(input.shape[:-1]) == tuple(var.shape[:-1]) and var.shape[-1] == 1) and var.ndim != 0:
            raise ValueError("var is of incorrect size")
    _check_reduction("gaussian_nll_loss", reduction)
    if var._data.size and bool((var._data < 0).any()):
        raise ValueError("var has negative entry/entries")
    var = var + (var.clamp(min=eps) - var).detach()  # clamped values, identity gradient
    loss = 0.5 * (var.log() + (input - target) ** 2 / var)
    if full:
        loss = loss + 0.5 * math.log(2 * math.pi)
    return _reduce(loss, reduction)


def _same_dims(op: str, *tensors: Tensor) -> None:
    if len({t.ndim for t in tensors}) != 1:
        names = ", ".join(f"{n}: {list(t.shape)}" for n, t in zip(("input1", "input2", "target"), tensors))
        raise RuntimeError(f"{op} : All input tensors should have same dimension but got sizes: {names} ")


def margin_ranking_loss(input1: Tensor, input2: Tensor, target: Tensor, margin: float = 0.0, size_average=None,
                        reduce=None, reduction: str = "mean") -> Tensor:
    """max(0, -y (x1 - x2) + margin)."""
    reduction = _loss_reduction("margin_ranking_loss", reduction, size_average, reduce)
    _same_dims("margin_ranking_loss", input1, input2, target)
    return _reduce((-target * (input1 - input2) + margin).clamp(min=0), reduction)


def hinge_embedding_loss(input: Tensor, target: Tensor, margin: float = 1.0, size_average=None, reduce=None,
                         reduction: str = "mean") -> Tensor:
    """x where y = 1, max(0, margin - x) where y = -1 (PyTorch's sum of the two terms for other y)."""
    reduction = _loss_reduction("hinge_embedding_loss", reduction, size_average, reduce)
    _float_loss("hinge_embedding_loss", input)
    margin_part = ew.where(target != 1, (margin - input).clamp(min=0), 0.0)
    self_part = ew.where(target != -1, input, 0.0)
    return _reduce(margin_part + self_part, reduction)


def soft_margin_loss(input: Tensor, target: Tensor, size_average=None, reduce=None, reduction: str = "mean") -> Tensor:
    """log(1 + exp(-y x)) = softplus(-y x)."""
    reduction = _loss_reduction("soft_margin_loss", reduction, size_average, reduce)
    _float_loss("soft_margin_loss", input, target)
    return _reduce(softplus(-target * input), reduction)


def cosine_embedding_loss(input1: Tensor, input2: Tensor, target: Tensor, margin: float = 0.0, size_average=None,
                          reduce=None, reduction: str = "mean") -> Tensor:
    """1 - cos(x1, x2) where y = 1, max(0, cos(x1, x2) - margin) where y = -1 (PyTorch's formula: squared norms
    plus 1e-12 under one square root)."""
    reduction = _loss_reduction("cosine_embedding_loss", reduction, size_average, reduce)
    if input1.ndim != input2.ndim or input1.ndim not in (1, 2):
        raise RuntimeError(f"cosine_embedding_loss(): input1 and input2 should be 1D or 2D with the same number of "
                           f"dims, got {input1.ndim}D and {input2.ndim}D")
    if target.ndim != input1.ndim - 1:
        raise RuntimeError(f"{input1.ndim}D target tensor expects {input1.ndim - 1}D input tensors, but found inputs "
                           f"with sizes {list(input1.shape)} and {list(input2.shape)}.")
    dim = input1.ndim - 1
    prod = (input1 * input2).sum(dim)
    mag = (((input1 * input1).sum(dim) + 1e-12) * ((input2 * input2).sum(dim) + 1e-12)).sqrt()
    cos = prod / mag
    loss = ew.where(target == 1, 1 - cos, 0.0) + ew.where(target == -1, (cos - margin).clamp(min=0), 0.0)
    return _reduce(loss, reduction)


def pairwise_distance(x1: Tensor, x2: Tensor, p: float = 2.0, eps: float = 1e-6, keepdim: bool = False) -> Tensor:
    """||x1 - x2 + eps||_p over the last dim."""
    dim = max(x1.ndim, x2.ndim) - 1
    diff = x1 - x2 + eps
    if dim < 0:
        return diff.abs() if not keepdim else diff.abs()
    return diff.norm(p, dim, keepdim=keepdim)


def pdist(input: Tensor, p: float = 2.0) -> Tensor:
    """The p-norm distance between every pair of rows i < j of the (N, M) ``input``, in row-major pair order
    (the condensed upper triangle of ``cdist(input, input)``)."""
    if input.ndim != 2:
        raise RuntimeError(f"pdist only supports 2D tensors, got: {input.ndim}D")
    if p < 0:
        raise RuntimeError("pdist only supports non-negative p values")
    first, second = input.xp.triu_indices(input.shape[0], 1)
    pairs = input[first] - input[second]
    return pairs.norm(p, -1)


def upsample_nearest(input: Tensor, size=None, scale_factor=None) -> Tensor:
    """Deprecated in PyTorch: ``interpolate(input, size, scale_factor, mode="nearest")``."""
    return interpolate(input, size, scale_factor, mode="nearest")


def upsample_bilinear(input: Tensor, size=None, scale_factor=None) -> Tensor:
    """Deprecated in PyTorch: ``interpolate(input, size, scale_factor, mode="bilinear", align_corners=True)``."""
    return interpolate(input, size, scale_factor, mode="bilinear", align_corners=True)


def _with_indices(pool):
    def pool_with_indices(input, *args, **kwargs):
        return pool(input, *args, **{**kwargs, "return_indices": True})

    pool_with_indices.__name__ = f"{pool.__name__}_with_indices"
    pool_with_indices.__doc__ = f"``{pool.__name__}(..., return_indices=True)``: the output and the maxima's indices."
    return pool_with_indices


(max_pool1d_with_indices, max_pool2d_with_indices, max_pool3d_with_indices, adaptive_max_pool1d_with_indices,
 adaptive_max_pool2d_with_indices, adaptive_max_pool3d_with_indices, fractional_max_pool2d_with_indices,
 fractional_max_pool3d_with_indices) = (_with_indices(pool) for pool in (
    max_pool1d, max_pool2d, max_pool3d, adaptive_max_pool1d, adaptive_max_pool2d, adaptive_max_pool3d,
    fractional_max_pool2d, fractional_max_pool3d))


def channel_shuffle(input: Tensor, groups: int) -> Tensor:
    """Interleave the channels of (N, C, *) ``input`` across ``groups`` groups (ShuffleNet's shuffle)."""
    if input.ndim < 3 or groups <= 0 or input.shape[1] % groups:
        raise RuntimeError(f"channel_shuffle: expects (N, C, *) input with C divisible by groups > 0, got shape "
                           f"{tuple(input.shape)} and groups={groups}")
    n, c, *rest = input.shape
    grouped = input.reshape(n, groups, c // groups, *rest)
    return grouped.transpose(1, 2).reshape(n, c, *rest)


def triplet_margin_loss(anchor: Tensor, positive: Tensor, negative: Tensor, margin: float = 1.0, p: float = 2,
                        eps: float = 1e-6, swap: bool = False, size_average=None, reduce=None,
                        reduction: str = "mean") -> Tensor:
    """max(0, margin + d(a, p) - d(a, n)) with d the pairwise p-distance (``swap``: d(a, n) -> min(d(a, n), d(p, n)))."""
    reduction = _loss_reduction("triplet_margin_loss", reduction, size_average, reduce)
    dims = (anchor.ndim, positive.ndim, negative.ndim)
    if len(set(dims)) != 1:
        raise RuntimeError(f"The anchor, positive, and negative tensors are expected to have the same number of "
                           f"dimensions, but got: anchor {dims[0]}D, positive {dims[1]}D, and negative {dims[2]}D inputs")
    d_pos = pairwise_distance(anchor, positive, p, eps)
    d_neg = pairwise_distance(anchor, negative, p, eps)
    if swap:
        d_neg = ew.minimum(d_neg, pairwise_distance(positive, negative, p, eps))
    return _reduce((margin + d_pos - d_neg).clamp(min=0), reduction)


def triplet_margin_with_distance_loss(anchor: Tensor, positive: Tensor, negative: Tensor, *, distance_function=None,
                                      margin: float = 1.0, swap: bool = False, reduction: str = "mean") -> Tensor:
    _check_reduction("triplet_margin_with_distance_loss", reduction)
    dist = distance_function or pairwise_distance
    d_pos, d_neg = dist(anchor, positive), dist(anchor, negative)
    if swap:
        d_neg = ew.minimum(d_neg, dist(positive, negative))
    return _reduce((margin + d_pos - d_neg).clamp(min=0), reduction)


def _batched_classes(op: str, input: Tensor, target: Tensor, target_ndim_offset: int):
    """(N, C) input and its target, and whether the input was one unbatched sample."""
    if input.ndim > 2:
        raise RuntimeError(f"{op}: expected 0D, 1D or 2D input, got {describe(input)}")
    single = input.ndim <= 1
    x = input.reshape(1, -1) if single else input
    t = target.reshape((1, -1) if target_ndim_offset else (1,)) if single else target
    return x, t, single


def multi_margin_loss(input: Tensor, target: Tensor, p: int = 1, margin: float = 1.0, weight: Tensor | None = None,
                      size_average=None, reduce=None, reduction: str = "mean") -> Tensor:
    """sum over i != y of max(0, margin - x[y] + x[i])**p / C (times weight[y])."""
    reduction = _loss_reduction("multi_margin_loss", reduction, size_average, reduce)
    if p not in (1, 2):
        raise ValueError("only p == 1 and p == 2 supported")
    if weight is not None and weight.ndim != 1:
        raise ValueError("weight must be one-dimensional")
    x, t, single = _batched_classes("multi_margin_loss", input, target, 0)
    n, c = x.shape
    if tuple(t.shape) != (n,):
        raise RuntimeError(f"inconsistent target size, expected {n} but got {list(target.shape)}")
    if t._data.size and (int(t._data.min()) < 0 or int(t._data.max()) >= c):
        raise IndexError(f"target out of range: targets must be in [0, {c}), got {t._data.min()}..{t._data.max()}")
    xy = x.gather(1, t.unsqueeze(1))
    z = (margin - xy + x).clamp(min=0)
    if p == 2:
        z = z * z
    others = wrap(xp_of(x._data).arange(c)[None, :] != t._data[:, None])
    z = ew.where(others, z, 0.0)
    if weight is not None:
        z = z * weight[t].unsqueeze(1)
    loss = z.sum(1) / c
    if single and reduction == "none":
        loss = loss.reshape(())
    return _reduce(loss, reduction)


def multilabel_margin_loss(input: Tensor, target: Tensor, size_average=None, reduce=None,
                           reduction: str = "mean") -> Tensor:
    """sum over target classes j (up to the first -1) and non-target classes i of max(0, 1 - (x[j] - x[i])) / C."""
    reduction = _loss_reduction("multilabel_margin_loss", reduction, size_average, reduce)
    x, t, single = _batched_classes("multilabel_margin_loss", input, target, 1)
    if tuple(t.shape) != tuple(x.shape):
        raise RuntimeError(f"inconsistent target size: {list(target.shape)} for input of size: {list(input.shape)}")
    xp = xp_of(x._data)
    n, c = x.shape
    labels = t._data
    valid = xp.cumprod(labels >= 0, axis=1).astype(bool)  # the targets before the first -1
    if (labels[valid] >= c).any():
        raise RuntimeError(f"multilabel_margin_loss: target values must be in [-1, {c}), got {labels.max()}")
    safe = xp.where(valid, labels, 0)
    is_target = xp.zeros((n, c), dtype=bool)
    rows = xp.broadcast_to(xp.arange(n)[:, None], (n, c))
    is_target[rows[valid], safe[valid]] = True
    pairs = wrap((valid[:, :, None] & ~is_target[:, None, :]).astype(x._data.dtype))
    xy = x.gather(1, wrap(safe))
    z = (1 - xy.unsqueeze(2) + x.unsqueeze(1)).clamp(min=0)
    loss = (z * pairs).sum((1, 2)) / c
    if single and reduction == "none":
        loss = loss.reshape(())
    return _reduce(loss, reduction)


def multilabel_soft_margin_loss(input: Tensor, target: Tensor, weight: Tensor | None = None, size_average=None,
                                reduce=None, reduction: str = "mean") -> Tensor:
    """-(y log sigmoid(x) + (1 - y) log sigmoid(-x)), averaged over the classes (the last dim)."""
    reduction = _loss_reduction("multilabel_soft_margin_loss", reduction, size_average, reduce)
    loss = -(target * logsigmoid(input) + (1 - target) * logsigmoid(-input))
    if weight is not None:
        loss = loss * weight
    loss = loss.sum(input.ndim - 1) / input.shape[-1]
    return _reduce(loss, reduction)


def ctc_loss(log_probs: Tensor, targets: Tensor, input_lengths, target_lengths, blank: int = 0,
             reduction: str = "mean", zero_infinity: bool = False) -> Tensor:
    """Connectionist temporal classification: -log of the total probability of the alignments of each target
    with its (T, C) log-probabilities, by the log-space alpha recursion over the blank-extended target
    (l' = blank, l1, blank, l2, ..., blank):

        alpha_t(s) = lp[t, l'_s] + logsumexp(alpha_{t-1}(s), alpha_{t-1}(s-1), alpha_{t-1}(s-2) if l'_s != l'_{s-2})
        loss = -logsumexp(alpha_{T-1}(S-1), alpha_{T-1}(S-2))

    A composite of logsumexp, gathers and adds, so the gradient (the alignment posteriors) and every higher
    order come from the engine. It is the true gradient with respect to ``log_probs``; PyTorch's kernel
    returns it already pushed through a log_softmax (exp(lp) - posterior), which agrees once ``log_probs``
    comes from log_softmax, as it must. 'mean' divides each loss by its target length, then averages."""
    from chainrule.ops.shape import cat, stack

    _check_reduction("ctc_loss", reduction)
    xp = xp_of(log_probs._data)
    unbatched = log_probs.ndim == 2
    lp = log_probs.unsqueeze(1) if unbatched else log_probs
    if lp.ndim != 3:
        raise RuntimeError(f"ctc_loss: expected log_probs of shape (T, N, C) or (T, C), got {describe(log_probs)}")
    steps, batch, n_classes = lp.shape
    in_lens = [int(v) for v in xp.asarray(getattr(input_lengths, "_data", input_lengths)).reshape(-1)]
    tg_lens = [int(v) for v in xp.asarray(getattr(target_lengths, "_data", target_lengths)).reshape(-1)]
    if len(in_lens) != batch or len(tg_lens) != batch:
        raise RuntimeError(f"input_lengths must be of size batch_size, got {len(in_lens)} and {len(tg_lens)} for "
                           f"batch size {batch}")
    if not 0 <= blank < n_classes:
        raise RuntimeError("blank must be in label range")
    labels = targets._data.reshape(1, -1) if unbatched and targets.ndim == 1 else targets._data
    starts = xp.concatenate([[0], xp.cumsum(tg_lens)[:-1]]).astype(int) if labels.ndim == 1 else None
    neg = wrap(xp.asarray(-1e30, dtype=lp._data.dtype))  # log(0), finite so that logsumexp's gradient stays 0
    losses = []
    for n in range(batch):
        t_len, l_len = in_lens[n], tg_lens[n]
        if t_len > steps:
            raise RuntimeError(f"Expected input_lengths to have value at most {steps}, but got value {t_len} "
                               f"(while checking arguments for ctc_loss_cpu)")
        seq = labels[n, :l_len] if labels.ndim == 2 else labels[starts[n]:starts[n] + l_len]
        seq = [int(v) for v in seq]
        ext = [blank] * (2 * l_len + 1)
        ext[1::2] = seq
        size = len(ext)
        repeats = sum(1 for a, b in zip(seq, seq[1:]) if a == b)
        if t_len < l_len + repeats or t_len == 0:  # no alignment fits (or nothing to align): infinite (or 0) loss
            if t_len == 0 and l_len == 0:
                losses.append(lp.sum() * 0.0)
                continue
            inf = lp[:, n].sum() * 0.0 + (0.0 if zero_infinity else float("inf"))
            losses.append(inf)
            continue
        emit = lp[:t_len, n].gather(1, wrap(xp.broadcast_to(xp.asarray(ext)[None, :], (t_len, size))))  # (t, S)
        skip = xp.zeros(size, dtype=bool)
        skip[2:] = [ext[s] != blank and ext[s] != ext[s - 2] for s in range(2, size)]
        skip_mask = wrap(skip)
        first = xp.full(size, False)
        first[:2] = True
        alpha = ew.where(wrap(first), emit[0], neg)
        for t in range(1, t_len):
            from_prev = cat([neg.reshape(1), alpha[:-1]]) if size > 1 else neg.reshape(1)
            from_skip = ew.where(skip_mask, cat([neg.reshape(1), neg.reshape(1), alpha[:-2]]), neg) if size > 2 \
                else neg.expand(size)
            alpha = emit[t] + stack([alpha, from_prev, from_skip]).logsumexp(0)
        losses.append(-alpha[max(size - 2, 0):].logsumexp(0))
    loss = stack(losses) if losses else lp.sum((0, 2)) * 0.0
    if reduction == "none":
        return loss.squeeze(0) if unbatched else loss
    if reduction == "sum":
        return loss.sum()
    lens = wrap(xp.asarray([max(v, 1) for v in tg_lens], dtype=lp._data.dtype))
    return (loss / lens).mean()


# distances and bags of embeddings

def embedding_bag(input: Tensor, weight: Tensor, offsets: Tensor | None = None, max_norm=None, norm_type: float = 2.0,
                  scale_grad_by_freq: bool = False, mode: str = "mean", sparse: bool = False,
                  per_sample_weights: Tensor | None = None, include_last_offset: bool = False,
                  padding_idx: int | None = None) -> Tensor:
    """Sum, mean or max of the rows of ``weight`` picked by each bag of indices: the rows of a 2-D ``input``,
    or the slices of a 1-D ``input`` that start at ``offsets``. Entries equal to ``padding_idx`` are left
    out (and not counted by the mean); an empty bag gives zeros. Composed of an index, a multiply and an
    ``index_add`` (sum, mean); max picks, per bag and column, the row holding the maximum (the gradient
    goes to it alone)."""
    if max_norm is not None or scale_grad_by_freq or sparse:
        raise NotImplementedError("embedding_bag: max_norm, scale_grad_by_freq and sparse are not supported")
    if mode not in ("sum", "mean", "max"):
        raise ValueError(f"mode has to be one of sum, mean or max, got {mode!r}")
    if input._data.dtype.kind not in "iu":
        raise RuntimeError(f"embedding_bag: expected indices of an integer dtype, got {describe(input)}")
    if weight.ndim != 2:
        raise ValueError(f"weight has to be a 2D Tensor, but got Tensor of dimension {weight.ndim}")
    if per_sample_weights is not None:
        if mode != "sum":
            raise NotImplementedError(
                f"embedding_bag: per_sample_weights was not None. per_sample_weights is only supported for mode='sum' "
                f"(got mode='{mode}'). Please open a feature request on GitHub.")
        if tuple(per_sample_weights.shape) != tuple(input.shape):
            raise ValueError(f"embedding_bag: If per_sample_weights ({list(per_sample_weights.shape)}) is not None, "
                             f"then it must have the same shape as the input ({list(input.shape)})")
    xp = xp_of(weight._data)
    num, dim = weight.shape
    idx = input._data
    if idx.ndim == 2:
        if offsets is not None:
            raise ValueError("if input is 2D, then offsets has to be None, as input is treated is a mini-batch of "
                             "fixed length sequences. However, found offsets of type Tensor")
        bags, length = idx.shape
        starts = xp.arange(bags) * length
        idx = idx.reshape(-1)
    elif idx.ndim == 1:
        if offsets is None:
            raise ValueError("offsets has to be a 1D Tensor but got None")
        starts = xp.asarray(offsets._data).reshape(-1).astype(xp.int64)
        if offsets.ndim != 1:
            raise ValueError("offsets has to be a 1D Tensor")
        if starts.size and int(starts[0]) != 0:
            raise RuntimeError(f"offsets[0] has to be 0, i.e., the first sequence in the mini-batch has to start from "
                               f"position 0. However, got {int(starts[0])}")
        if starts.size and int(starts[-1]) > idx.size:
            raise RuntimeError(f"offsets[-1] can not be greater than input's length ({idx.size}), but got "
                               f"offsets[-1] of {int(starts[-1])}")
        if include_last_offset:
            starts = starts[:-1]
        bags = starts.size
    else:
        raise ValueError(f"input has to be 1D or 2D Tensor, but got Tensor of dimension {idx.ndim}")
    if idx.size and (int(idx.min()) < 0 or int(idx.max()) >= num):
        raise IndexError(f"embedding_bag: index out of range: indices span [{int(idx.min())}, {int(idx.max())}] but the "
                         f"table has {num} rows")
    bag_of = xp.searchsorted(starts, xp.arange(idx.size), side="right") - 1  # the bag of each entry
    if include_last_offset and offsets is not None and idx.ndim == 1:
        ends = xp.asarray(offsets._data).reshape(-1).astype(xp.int64)[-1]
        keep = xp.arange(idx.size) < ends
    else:
        keep = xp.ones(idx.size, dtype=bool)
    if padding_idx is not None:
        keep &= idx != padding_idx % num
    used, used_bags = idx[keep], bag_of[keep]
    if mode == "max":
        return _bag_max(weight, used, used_bags, bags, xp)
    rows = weight[wrap(used)]
    if per_sample_weights is not None:
        rows = rows * per_sample_weights.reshape(-1)[wrap(xp.nonzero(keep)[0])].unsqueeze(1)
    out = wrap(xp.zeros((bags, dim), dtype=weight._data.dtype)).index_add(0, wrap(used_bags), rows)
    if mode == "mean":
        counts = xp.bincount(used_bags, minlength=bags)[:bags]
        out = out / wrap(xp.maximum(counts, 1).astype(weight._data.dtype)[:, None])
    return out


def _bag_max(weight: Tensor, used, used_bags, bags: int, xp) -> Tensor:
    """Per bag and column, the weight entry that is largest (gather of one element: its gradient alone)."""
    dim = weight.shape[1]
    vals = weight._data[used]  # (E, D)
    best = xp.full((bags, dim), -1, dtype=xp.int64)
    best_val = xp.full((bags, dim), -xp.inf, dtype=weight._data.dtype)
    for e in range(used.size):  # a short loop over the entries (the bags' maximum, first one on ties)
        b = used_bags[e]
        better = vals[e] > best_val[b]
        best_val[b] = xp.where(better, vals[e], best_val[b])
        best[b] = xp.where(better, used[e], best[b])
    empty = best < 0
    picked = weight[wrap(xp.where(empty, 0, best)), wrap(xp.broadcast_to(xp.arange(dim), (bags, dim)))]
    return ew.where(wrap(empty), 0.0, picked)


__all__ += [
    "prelu", "selu", "selu_", "celu", "celu_", "rrelu", "rrelu_", "hardsigmoid", "hardswish", "hardshrink",
    "softshrink", "tanhshrink", "threshold", "threshold_", "relu_", "elu_", "leaky_relu_", "hardtanh_",
    "gumbel_softmax", "dropout1d", "dropout2d", "dropout3d", "alpha_dropout", "feature_alpha_dropout",
    "poisson_nll_loss", "gaussian_nll_loss", "margin_ranking_loss", "hinge_embedding_loss", "soft_margin_loss",
    "cosine_embedding_loss", "pairwise_distance", "triplet_margin_loss", "triplet_margin_with_distance_loss",
    "multi_margin_loss", "multilabel_margin_loss", "multilabel_soft_margin_loss", "ctc_loss", "embedding_bag",
]
