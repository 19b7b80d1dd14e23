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
from chainrule.backend.rows import layer_norm_rows, layer_norm_vjp_rows, softmax_rows, softmax_vjp_rows
from chainrule.ops import elementwise as ew
from chainrule.ops._helpers import Tensor, describe, record, tensor_operand, wrap
from chainrule.ops.conv import (  # convolution and pooling: im2col + GEMM
    adaptive_avg_pool1d,
    adaptive_avg_pool2d,
    avg_pool1d,
    avg_pool2d,
    conv1d,
    conv2d,
    conv_transpose1d,
    conv_transpose2d,
    fold,
    max_pool1d,
    max_pool2d,
    unfold,
)
from chainrule.ops.elementwise import elu, gelu, hardtanh, leaky_relu, mish, relu, relu6, sigmoid, silu, softplus, tanh
from chainrule.ops.indexing import one_hot
from chainrule.ops.logits import _along_last_dim, _softmax_backward, log_softmax, softmax, softmin
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
__all__ += ["conv_transpose1d", "conv_transpose2d"]

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
        mean = input.mean(dims, keepdim=True)
        centered = input - mean
        var = (centered * centered).mean(dims, keepdim=True)
        if running_mean is not None and running_var is not None:
            with no_grad():
                running_mean.mul_(1 - momentum).add_(mean.detach().reshape(-1) * momentum)
                running_var.mul_(1 - momentum).add_(var.detach().reshape(-1) * (momentum * count / (count - 1)))
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
    num = weight.shape[0]
    if input._data.size and (int(input._data.min()) < -num or int(input._data.max()) >= num):
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
    if safe._data.size and (int(safe._data.min()) < 0 or int(safe._data.max()) >= n_classes):
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
    low, high = int(labels.min()), int(labels.max())
    if low >= 0 and high < n_classes and not 0 <= ignore_index < n_classes:
        return labels, None
    valid = labels != ignore_index
    safe = xp.where(valid, labels, 0)
    if int(safe.min()) < 0 or int(safe.max()) >= n_classes:
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
                                 dropout_p: float = 0.0, is_causal: bool = False, scale: float | None = None) -> Tensor:
    """softmax(q k^T * scale + mask) v over the last two dims. A bool ``attn_mask`` marks the pairs that
    may attend (True = keep), a float one is added to the scores; ``is_causal`` keeps j <= i."""
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
