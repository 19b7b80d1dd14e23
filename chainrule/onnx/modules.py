"""Module converters: for each module type, how its forward is written with the ops of ``ops.py``.

A converter is ``fn(g, module, x) -> output name``. Types are looked up exactly (a subclass may compute
something else: ``Softmin`` is a ``Softmax``), so a module without a converter of its own is refused with its
path and type; ``register`` adds converters for user modules.
"""

from __future__ import annotations

from collections.abc import Callable

from chainrule import nn
from chainrule.backend import np
from chainrule.models.cnn import LeNet
from chainrule.models.gpt import GPT, Block, CausalSelfAttention
from chainrule.models.mlp import MLP
from chainrule.onnx import ops
from chainrule.onnx.graph import ExportError, GraphBuilder, UnsupportedModuleError

__all__ = ["register", "convert", "CONVERTERS"]

CONVERTERS: dict[type, Callable] = {}


def register(module_type: type):
    """Decorator: ``@register(MyBlock) def convert_my_block(g, module, x): ...`` makes ``MyBlock`` exportable;
    inside, ``convert(g, child, x, path)`` converts a child and the functions of ``chainrule.onnx.ops`` emit ops."""
    def add(fn: Callable) -> Callable:
        CONVERTERS[module_type] = fn
        return fn
    return add


def convert(g: GraphBuilder, module: nn.Module, x: str, path: str = "") -> str:
    """The output of ``module(x)`` in the graph; ``path`` is the module's dotted name, for error messages."""
    fn = CONVERTERS.get(type(module))
    if fn is None:
        where = f"'{path}'" if path else "the model"
        raise UnsupportedModuleError(
            f"onnx export: {where} is a {type(module).__name__}, which has no ONNX converter; register one with "
            f"@chainrule.onnx.register({type(module).__name__})")
    g.path = path
    return fn(g, module, x)


def _child(g: GraphBuilder, parent_path: str, name: str, module: nn.Module, x: str) -> str:
    return convert(g, module, x, f"{parent_path}.{name}" if parent_path else name)


def _optional(g: GraphBuilder, tensor) -> str | None:
    return None if tensor is None else g.param(tensor)


# ----- containers and bundled models ------------------------------------------------------------------------

@register(nn.Sequential)
def _sequential(g, module, x):
    path = g.path
    for name, child in module.named_children():
        x = _child(g, path, name, child, x)
    return x


@register(MLP)
def _mlp(g, module, x):
    return _child(g, g.path, "net", module.net, x)


@register(LeNet)
def _lenet(g, module, x):
    path = g.path
    return _child(g, path, "classifier", module.classifier, _child(g, path, "features", module.features, x))


@register(GPT)
def _gpt(g, model, idx):
    """Token plus position embeddings (positions from the run-time sequence length), blocks, final norm, head.
    A sequence longer than block_size fails in the position Gather, as the eager model refuses it."""
    path = g.path
    tokens = ops.embedding(g, idx, g.param(model.tok_emb.weight))
    positions = ops.embedding(g, ops.arange(g, ops.dim_size(g, idx, 1)), g.param(model.pos_emb.weight))
    x = ops.add(g, tokens, positions)
    for i, block in enumerate(model.blocks):
        x = _child(g, path, f"blocks.{i}", block, x)
    return _child(g, path, "head", model.head, _child(g, path, "ln_f", model.ln_f, x))


@register(Block)
def _block(g, block, x):
    path = g.path
    x = ops.add(g, x, _child(g, path, "attn", block.attn, _child(g, path, "ln1", block.ln1, x)))
    hidden = _child(g, path, "act", block.act, _child(g, path, "fc", block.fc, _child(g, path, "ln2", block.ln2, x)))
    return ops.add(g, x, _child(g, path, "fc2", block.fc2, hidden))


@register(CausalSelfAttention)
def _causal_self_attention(g, attn, x):
    return ops.self_attention(g, x, g.param(attn.qkv.weight), _optional(g, attn.qkv.bias), g.param(attn.proj.weight),
                              _optional(g, attn.proj.bias), attn.n_head, attn.proj.weight.shape[0], is_causal=True)


@register(nn.TransformerEncoder)
def _transformer_encoder(g, stack, x):
    """The encoder stack without masks (the module walk sees only the input; a mask argument is not exported)."""
    path = g.path
    for i, layer in enumerate(stack.layers):
        x = _child(g, path, f"layers.{i}", layer, x)
    return x if stack.norm is None else _child(g, path, "norm", stack.norm, x)


@register(nn.TransformerEncoderLayer)
def _transformer_encoder_layer(g, layer, x):
    path = g.path
    attend = lambda h: _self_attention(g, layer.self_attn, h)  # noqa: E731
    feed_forward = lambda h: _child(  # noqa: E731
        g, path, "linear2", layer.linear2, _activation(g, layer, path, _child(g, path, "linear1", layer.linear1, h)))
    norm1 = lambda h: _child(g, path, "norm1", layer.norm1, h)  # noqa: E731
    norm2 = lambda h: _child(g, path, "norm2", layer.norm2, h)  # noqa: E731
    if layer.norm_first:
        x = ops.add(g, x, attend(norm1(x)))
        return ops.add(g, x, feed_forward(norm2(x)))
    x = norm1(ops.add(g, x, attend(x)))
    return norm2(ops.add(g, x, feed_forward(x)))


def _self_attention(g, mha, x):
    """nn.MultiheadAttention(x, x, x) without masks, on (seq, batch, embed) input unless batch_first."""
    if not mha.batch_first:
        x = ops.permute(g, x, [1, 0, 2])
    y = ops.self_attention(g, x, g.param(mha.in_proj_weight), _optional(g, mha.in_proj_bias),
                           g.param(mha.out_proj.weight), _optional(g, mha.out_proj.bias), mha.num_heads,
                           mha.embed_dim, is_causal=False)
    return y if mha.batch_first else ops.permute(g, y, [1, 0, 2])


def _activation(g, layer, path: str, x):
    """A transformer layer's activation: F.relu, F.gelu or a module."""
    from chainrule.nn import functional as F

    activation = layer.activation
    if activation is F.relu:
        return ops.unary(g, "Relu", x)
    if activation is F.gelu:
        return ops.gelu(g, x)
    if isinstance(activation, nn.Module):
        return convert(g, activation, x, f"{path}.activation")
    raise ExportError(f"onnx export: '{path}' has the activation {activation!r}, a function the exporter does "
                      "not know; pass a module (nn.GELU()) or 'relu'/'gelu'")


# ----- layers -----------------------------------------------------------------------------------------------

@register(nn.Linear)
def _linear(g, m, x):
    return ops.linear(g, x, g.param(m.weight), _optional(g, m.bias))


@register(nn.Conv1d)
@register(nn.Conv2d)
@register(nn.Conv3d)
def _conv(g, m, x):
    return ops.conv(g, x, g.param(m.weight), _optional(g, m.bias), m.stride, m.padding, m.dilation, m.groups,
                    m.kernel_size)


@register(nn.ConvTranspose1d)
@register(nn.ConvTranspose2d)
@register(nn.ConvTranspose3d)
def _conv_transpose(g, m, x):
    return ops.conv_transpose(g, x, g.param(m.weight), _optional(g, m.bias), m.stride, m.padding, m.output_padding,
                              m.dilation, m.groups, m.kernel_size)


# how many spatial dims each pooling layer works on (the 3-d classes subclass the 2-d ones)
_SPATIAL_DIMS = {nn.MaxPool1d: 1, nn.MaxPool2d: 2, nn.MaxPool3d: 3, nn.AvgPool1d: 1, nn.AvgPool2d: 2, nn.AvgPool3d: 3}


def _spatial(value, n: int) -> tuple:
    return tuple(value) if isinstance(value, (tuple, list)) else (value,) * n


def _pool_geometry(m, n: int):
    kernel = _spatial(m.kernel_size, n)
    stride = _spatial(m.stride if m.stride is not None else m.kernel_size, n)
    return kernel, stride, _spatial(m.padding, n)


@register(nn.MaxPool1d)
@register(nn.MaxPool2d)
@register(nn.MaxPool3d)
def _max_pool(g, m, x):
    if m.options["return_indices"]:
        raise ExportError(f"onnx export: '{g.path}' is a {type(m).__name__} with return_indices=True, which ONNX "
                          "export does not support")
    n = _SPATIAL_DIMS[type(m)]
    kernel, stride, padding = _pool_geometry(m, n)
    return ops.max_pool(g, x, kernel, stride, padding, _spatial(m.options["dilation"], n), m.options["ceil_mode"])


@register(nn.AvgPool1d)
@register(nn.AvgPool2d)
@register(nn.AvgPool3d)
def _avg_pool(g, m, x):
    if m.options.get("divisor_override") is not None:
        raise ExportError(f"onnx export: '{g.path}' ({type(m).__name__}) has divisor_override, which ONNX lacks")
    n = _SPATIAL_DIMS[type(m)]
    kernel, stride, padding = _pool_geometry(m, n)
    return ops.avg_pool(g, x, kernel, stride, padding, m.options["ceil_mode"], m.options["count_include_pad"])


@register(nn.AdaptiveAvgPool1d)
@register(nn.AdaptiveAvgPool2d)
@register(nn.AdaptiveAvgPool3d)
def _adaptive_avg_pool(g, m, x):
    sizes = m.output_size if isinstance(m.output_size, (tuple, list)) else (m.output_size,)
    if any(s != 1 for s in sizes):
        raise ExportError(f"onnx export: '{g.path}' is {type(m).__name__}(output_size={m.output_size}); only output "
                          "size 1 (global average pooling) is supported")
    return ops.global_avg_pool(g, x)


@register(nn.BatchNorm1d)
@register(nn.BatchNorm2d)
@register(nn.BatchNorm3d)
def _batch_norm(g, m, x):
    if m.running_mean is None:
        raise ExportError(f"onnx export: '{g.path}' ({type(m).__name__}) has track_running_stats=False, so its "
                          "inference output depends on the batch; ONNX export needs running statistics")
    scale, shift = _affine(g, m, (m.num_features,))
    return ops.batch_norm(g, x, g.param(m.running_mean), g.param(m.running_var), scale, shift, m.eps)


@register(nn.LayerNorm)
def _layer_norm(g, m, x):
    scale, shift = _affine(g, m, tuple(m.normalized_shape))
    return ops.layer_norm(g, x, m.normalized_shape, scale, shift, m.eps)


@register(nn.RMSNorm)
def _rms_norm(g, m, x):
    weight = getattr(m, "weight", None)
    eps = m.eps if m.eps is not None else float(np.finfo(weight.dtype.np if weight is not None else np.float32).eps)
    return ops.rms_norm(g, x, m.normalized_shape, _optional(g, weight), eps)


def _affine(g, m, shape) -> tuple[str, str]:
    """The scale and shift of a norm layer; ones and zeros when it has none."""
    weight, bias = getattr(m, "weight", None), getattr(m, "bias", None)
    scale = g.param(weight) if weight is not None else g.const(np.ones(shape))
    return scale, g.param(bias) if bias is not None else g.const(np.zeros(shape))


@register(nn.Embedding)
def _embedding(g, m, idx):
    if getattr(m, "max_norm", None) is not None:
        raise ExportError(f"onnx export: '{g.path}' (Embedding) has max_norm, which renormalizes weights in place")
    return ops.embedding(g, idx, g.param(m.weight))


@register(nn.GELU)
def _gelu(g, m, x):
    return ops.gelu(g, x, m.approximate)


@register(nn.Flatten)
def _flatten(g, m, x):
    return ops.flatten(g, x, m.start_dim, m.end_dim)


@register(nn.Softmax)
def _softmax(g, m, x):
    return ops.softmax(g, x, m.dim)


@register(nn.LogSoftmax)
def _log_softmax(g, m, x):
    return ops.softmax(g, x, m.dim, log=True)


@register(nn.Hardtanh)
def _hardtanh(g, m, x):
    return ops.hardtanh(g, x, m.min_val, m.max_val)


@register(nn.Softplus)
def _softplus(g, m, x):
    if m.beta != 1:  # ONNX's Softplus is log(1 + e^x); PyTorch's linear tail above threshold differs by < 1e-8
        raise ExportError(f"onnx export: '{g.path}' is Softplus(beta={m.beta}); only beta=1 is supported")
    return ops.unary(g, "Softplus", x)


@register(nn.SiLU)
def _silu(g, m, x):
    return ops.silu(g, x)


# SELU's constants as PyTorch writes them (ONNX's defaults are their float32 roundings)
_SELU = {"alpha": 1.6732632423543772848170429916717, "gamma": 1.0507009873554804934193349852946}
# module type -> the ONNX op with the same meaning, and its fixed attributes
_UNARY = {nn.ReLU: ("Relu", {}), nn.Tanh: ("Tanh", {}), nn.Sigmoid: ("Sigmoid", {}), nn.Softsign: ("Softsign", {}),
          nn.Hardswish: ("HardSwish", {}), nn.Hardsigmoid: ("HardSigmoid", {"alpha": 1.0 / 6.0, "beta": 0.5}),
          nn.SELU: ("Selu", _SELU)}
for _type, (_op, _attrs) in _UNARY.items():
    register(_type)(lambda g, m, x, _op=_op, _attrs=_attrs: ops.unary(g, _op, x, **_attrs))
register(nn.CELU)(lambda g, m, x: ops.unary(g, "Celu", x, alpha=float(m.alpha)))
register(nn.ReLU6)(lambda g, m, x: ops.hardtanh(g, x, 0.0, 6.0))
register(nn.Mish)(lambda g, m, x: ops.mish(g, x))
register(nn.LogSigmoid)(lambda g, m, x: ops.logsigmoid(g, x))
register(nn.LeakyReLU)(lambda g, m, x: ops.unary(g, "LeakyRelu", x, alpha=float(m.negative_slope)))
register(nn.ELU)(lambda g, m, x: ops.unary(g, "Elu", x, alpha=float(m.alpha)))
for _type in (nn.Dropout, nn.Identity):  # eval mode: the identity
    register(_type)(lambda g, m, x: x)
