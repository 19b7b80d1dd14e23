"""ONNX forms of chainrule's functional ops, one function per op with ``chainrule.nn.functional``'s name and
arguments (``linear(g, x, weight, bias)``, ``layer_norm(g, x, normalized_shape, weight, bias, eps)``, ...).

Inputs and outputs are value names in a :class:`~chainrule.onnx.graph.GraphBuilder`. Module converters
(``modules.py``) call these; a tracer that records the forward's ops with their arguments could call them in the
same way, one per recorded op, which is how a general exporter would reuse them. Nothing here bakes a traced
batch or sequence size into the graph: sizes come from ``Shape`` at run time, reshapes use 0 (copy) and -1.
"""

from __future__ import annotations

import math

from chainrule.backend import np
from chainrule.onnx.graph import ExportError, GraphBuilder

_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)


def linear(g: GraphBuilder, x: str, weight: str, bias: str | None) -> str:
    """x @ W^T + b. Gemm for 2-D input; MatMul on the transposed weight otherwise (the weight keeps its
    (out, in) layout and its name, so the file's initializers equal the state dict)."""
    if g.rank(x) == 2:
        return g.op("Gemm", [x, weight] + ([bias] if bias else []), 2, transB=1)
    out = g.op("MatMul", [x, g.op("Transpose", [weight], 2, perm=[1, 0])], g.rank(x))
    return g.op("Add", [out, bias], g.rank(x)) if bias else out


def conv(g: GraphBuilder, x: str, weight: str, bias: str | None, stride, padding, dilation, groups: int,
         kernel_size) -> str:
    spatial = len(kernel_size)
    if isinstance(padding, str):
        if padding == "valid":
            padding = (0,) * spatial
        elif any(s != 1 for s in stride):
            raise ExportError("onnx export: conv with padding='same' and a stride other than 1")
        else:  # 'same': PyTorch puts the odd extra padding at the end, which explicit pads can say exactly
            total = [d * (k - 1) for d, k in zip(dilation, kernel_size)]
            return g.op("Conv", [x, weight] + ([bias] if bias else []), g.rank(x), kernel_shape=list(kernel_size),
                        strides=list(stride), dilations=list(dilation), group=groups,
                        pads=[t // 2 for t in total] + [t - t // 2 for t in total])
    return g.op("Conv", [x, weight] + ([bias] if bias else []), g.rank(x), kernel_shape=list(kernel_size),
                strides=list(stride), dilations=list(dilation), group=groups, pads=list(padding) * 2)


def conv_transpose(g: GraphBuilder, x: str, weight: str, bias: str | None, stride, padding, output_padding, dilation,
                   groups: int, kernel_size) -> str:
    """The transposed convolution; the weight's (in, out / groups, *kernel) layout is ONNX's too."""
    return g.op("ConvTranspose", [x, weight] + ([bias] if bias else []), g.rank(x), kernel_shape=list(kernel_size),
                strides=list(stride), dilations=list(dilation), group=groups, pads=list(padding) * 2,
                output_padding=list(output_padding))


def max_pool(g: GraphBuilder, x: str, kernel_size, stride, padding, dilation, ceil_mode: bool) -> str:
    return g.op("MaxPool", [x], g.rank(x), kernel_shape=list(kernel_size), strides=list(stride), pads=list(padding) * 2,
                dilations=list(dilation), ceil_mode=int(ceil_mode))


def avg_pool(g: GraphBuilder, x: str, kernel_size, stride, padding, ceil_mode: bool, count_include_pad: bool) -> str:
    # ONNX's count_include_pad defaults to 0, PyTorch's to True: always say it
    return g.op("AveragePool", [x], g.rank(x), kernel_shape=list(kernel_size), strides=list(stride),
                pads=list(padding) * 2, ceil_mode=int(ceil_mode), count_include_pad=int(count_include_pad))


def global_avg_pool(g: GraphBuilder, x: str) -> str:
    return g.op("GlobalAveragePool", [x], g.rank(x))


def batch_norm(g: GraphBuilder, x: str, running_mean: str, running_var: str, weight: str, bias: str, eps: float) -> str:
    """Inference-mode batch norm (the running statistics); export always runs the model in eval mode."""
    return g.op("BatchNormalization", [x, weight, bias, running_mean, running_var], g.rank(x), epsilon=eps)


def layer_norm(g: GraphBuilder, x: str, normalized_shape, weight: str, bias: str, eps: float) -> str:
    return g.op("LayerNormalization", [x, weight, bias], g.rank(x), axis=-len(normalized_shape), epsilon=eps)


def rms_norm(g: GraphBuilder, x: str, normalized_shape, weight: str | None, eps: float) -> str:
    """x / sqrt(mean(x^2 over the trailing dims) + eps), times the weight: RMSNormalization from opset 23."""
    r, axes = g.rank(x), list(range(-len(normalized_shape), 0))
    if g.opset >= 23 and weight is not None:
        return g.op("RMSNormalization", [x, weight], r, axis=axes[0], epsilon=eps)
    square = g.op("Mul", [x, x], r)
    if g.opset >= 18:  # ReduceMean takes its axes as an input from opset 18, as an attribute before
        mean = g.op("ReduceMean", [square, g.const(axes, np.int64)], r, keepdims=1)
    else:
        mean = g.op("ReduceMean", [square], r, axes=axes, keepdims=1)
    out = g.op("Div", [x, g.op("Sqrt", [g.op("Add", [mean, g.const(eps)], r)], r)], r)
    return g.op("Mul", [out, weight], r) if weight is not None else out


def gelu(g: GraphBuilder, x: str, approximate: str = "none") -> str:
    if g.opset >= 20:
        return g.op("Gelu", [x], g.rank(x), approximate=approximate)
    r = g.rank(x)
    half_x = g.op("Mul", [x, g.const(0.5)], r)
    if approximate == "tanh":  # 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
        cube = g.op("Mul", [g.op("Mul", [x, x], r), x], r)
        inner = g.op("Add", [x, g.op("Mul", [cube, g.const(0.044715)], r)], r)
        core = g.op("Tanh", [g.op("Mul", [inner, g.const(_SQRT_2_OVER_PI)], r)], r)
    else:  # 0.5 x (1 + erf(x / sqrt 2))
        core = g.op("Erf", [g.op("Mul", [x, g.const(1.0 / math.sqrt(2.0))], r)], r)
    return g.op("Mul", [half_x, g.op("Add", [core, g.const(1.0)], r)], r)


def silu(g: GraphBuilder, x: str) -> str:
    return g.op("Mul", [x, g.op("Sigmoid", [x], g.rank(x))], g.rank(x))


def unary(g: GraphBuilder, op_type: str, x: str, **attrs) -> str:
    """An elementwise ONNX op with the same meaning as chainrule's (Relu, Tanh, Sigmoid, LeakyRelu, Elu...)."""
    return g.op(op_type, [x], g.rank(x), **attrs)


def hardtanh(g: GraphBuilder, x: str, min_val: float, max_val: float) -> str:
    return g.op("Clip", [x, g.const(min_val), g.const(max_val)], g.rank(x))


def mish(g: GraphBuilder, x: str) -> str:
    if g.opset >= 18:
        return g.op("Mish", [x], g.rank(x))
    return g.op("Mul", [x, g.op("Tanh", [g.op("Softplus", [x], g.rank(x))], g.rank(x))], g.rank(x))


def logsigmoid(g: GraphBuilder, x: str) -> str:
    """log sigmoid(x) = -softplus(-x)."""
    return g.op("Neg", [g.op("Softplus", [g.op("Neg", [x], g.rank(x))], g.rank(x))], g.rank(x))


def softmax(g: GraphBuilder, x: str, dim: int, log: bool = False) -> str:
    return g.op("LogSoftmax" if log else "Softmax", [x], g.rank(x), axis=dim)


def embedding(g: GraphBuilder, idx: str, weight: str) -> str:
    return g.op("Gather", [weight, idx], g.rank(idx) + 1)


def flatten(g: GraphBuilder, x: str, start_dim: int, end_dim: int) -> str:
    if end_dim != -1:
        raise ExportError(f"onnx export: flatten with end_dim={end_dim} (only end_dim=-1 is supported)")
    if start_dim < 0:
        start_dim += g.rank(x)
    if start_dim == 0:
        return reshape(g, x, [-1])
    return g.op("Flatten", [x], 2, axis=start_dim) if start_dim == 1 else reshape(g, x, [0] * start_dim + [-1])


def add(g: GraphBuilder, a: str, b: str) -> str:
    return g.op("Add", [a, b], max(g.rank(a), g.rank(b)))


def dim_size(g: GraphBuilder, x: str, dim: int) -> str:
    """``x.shape[dim]`` at run time, as a 0-d int64."""
    return g.op("Gather", [g.op("Shape", [x], 1), g.const(dim, np.int64)], 0, axis=0)


def arange(g: GraphBuilder, end: str) -> str:
    """``arange(end)`` for a run-time 0-d int64 ``end``."""
    return g.op("Range", [g.const(0, np.int64), end, g.const(1, np.int64)], 1)


def reshape(g: GraphBuilder, x: str, shape) -> str:
    """Reshape to ``shape``, where 0 copies the input's size there and -1 is inferred (never a traced size)."""
    return g.op("Reshape", [x, g.const(list(shape), np.int64)], len(shape))


def permute(g: GraphBuilder, x: str, dims) -> str:
    return g.op("Transpose", [x], len(dims), perm=list(dims))


def select(g: GraphBuilder, x: str, dim: int, index: int) -> str:
    """``x.select(dim, index)``: Gather with a 0-d index drops the axis."""
    return g.op("Gather", [x, g.const(index, np.int64)], g.rank(x) - 1, axis=dim)


def scaled_dot_product_attention(g: GraphBuilder, q: str, k: str, v: str, is_causal: bool, head_dim: int,
                                 scale: float | None = None) -> str:
    """softmax(q k^T * scale + causal mask) v for (..., T, D) inputs; the mask is built from the run-time T."""
    r = g.rank(q)
    scores = g.op("MatMul", [q, permute(g, k, [*range(r - 2), r - 1, r - 2])], r)
    scores = g.op("Mul", [scores, g.const(scale if scale is not None else 1.0 / math.sqrt(head_dim))], r)
    if is_causal:
        positions = arange(g, dim_size(g, q, r - 2))
        rows = g.op("Unsqueeze", [positions, g.const([1], np.int64)], 2)
        cols = g.op("Unsqueeze", [positions, g.const([0], np.int64)], 2)
        future = g.op("Less", [rows, cols], 2)  # key after query: masked
        scores = g.op("Where", [future, g.const(-np.inf), scores], r)
    return g.op("MatMul", [softmax(g, scores, -1), v], r)


def self_attention(g: GraphBuilder, x: str, qkv_weight: str, qkv_bias: str | None, out_weight: str,
                   out_bias: str | None, n_head: int, embed_dim: int, is_causal: bool) -> str:
    """Multi-head self-attention on (batch, seq, embed) input: one projection to q, k and v (stacked in that order
    along the output features, heads inside each), attention per head, then the output projection."""
    head_dim = embed_dim // n_head
    qkv = linear(g, x, qkv_weight, qkv_bias)
    heads = permute(g, reshape(g, qkv, [0, 0, 3, n_head, head_dim]), [2, 0, 3, 1, 4])
    q, k, v = (select(g, heads, 0, i) for i in range(3))
    y = scaled_dot_product_attention(g, q, k, v, is_causal=is_causal, head_dim=head_dim)
    return linear(g, reshape(g, permute(g, y, [0, 2, 1, 3]), [0, 0, embed_dim]), out_weight, out_bias)
