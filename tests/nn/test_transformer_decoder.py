"""TransformerDecoderLayer, TransformerDecoder and Transformer against PyTorch from the same state dict,
and scaled_dot_product_attention's enable_gqa."""

import numpy as np
import pytest

import chainrule as cr
from chainrule import nn
from tests.nn._oracle import copy_weights

torch = pytest.importorskip("torch")
tnn = torch.nn

rng = np.random.default_rng(0)
E, H, FF = 8, 2, 16


def _compare(theirs, ours, inputs, call, dtype="float64", masks=()):
    """Forward ``call(module, *inputs, *masks)`` in both, backward one random cotangent, and compare the
    output and every input and parameter gradient."""
    tdtype = getattr(torch, dtype)
    theirs.to(tdtype)
    ours.to(dtype)
    copy_weights(theirs, ours)
    t_in = [torch.tensor(x, dtype=tdtype, requires_grad=True) for x in inputs]
    c_in = [cr.tensor(x, dtype=dtype, requires_grad=True) for x in inputs]
    t_masks = [None if m is None else torch.tensor(m) for m in masks]
    c_masks = [None if m is None else cr.tensor(m) for m in masks]
    t_out, c_out = call(theirs, *t_in, *t_masks), call(ours, *c_in, *c_masks)
    cot = rng.standard_normal(tuple(t_out.shape))
    t_out.backward(torch.tensor(cot, dtype=tdtype))
    c_out.backward(cr.tensor(cot, dtype=dtype))
    rtol, atol = (1e-10, 1e-10) if dtype == "float64" else (2e-4, 2e-5)
    np.testing.assert_allclose(c_out.detach().cpu().numpy(), t_out.detach().cpu().numpy(), rtol=rtol, atol=atol, err_msg="output")
    for i, (c, t) in enumerate(zip(c_in, t_in)):
        np.testing.assert_allclose(c.grad.cpu().numpy(), t.grad.cpu().numpy(), rtol=rtol, atol=atol, err_msg=f"input {i} grad")
    mine = dict(ours.named_parameters())
    assert list(mine) == [name for name, _ in theirs.named_parameters()]
    for name, p in theirs.named_parameters():
        np.testing.assert_allclose(mine[name].grad.cpu().numpy(), p.grad.cpu().numpy(), rtol=rtol, atol=atol, err_msg=name)


def _layer_kwargs(norm_first, batch_first, activation="relu"):
    return dict(d_model=E, nhead=H, dim_feedforward=FF, dropout=0.0, batch_first=batch_first, norm_first=norm_first,
                activation=activation)


def _shape(batch_first, length, n=2):
    return (n, length, E) if batch_first else (length, n, E)


def _causal(length):
    return np.triu(np.ones((length, length), dtype=bool), 1)  # True = may not attend


def _padding(n, length):
    pad = np.zeros((n, length), dtype=bool)
    pad[1, -2:] = True
    return pad


def _decode(m, tgt, memory, tgt_mask, tgt_pad, mem_pad):
    return m(tgt, memory, tgt_mask=tgt_mask, tgt_key_padding_mask=tgt_pad, memory_key_padding_mask=mem_pad)


@pytest.mark.parametrize("norm_first", [False, True])
@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("activation", ["relu", "gelu"])
def test_decoder_layer_matches_pytorch_with_causal_and_padding_masks(norm_first, batch_first, activation):
    torch.manual_seed(0)
    kwargs = _layer_kwargs(norm_first, batch_first, activation)
    theirs, ours = tnn.TransformerDecoderLayer(**kwargs), nn.TransformerDecoderLayer(**kwargs)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    inputs = rng.standard_normal(_shape(batch_first, 5)), rng.standard_normal(_shape(batch_first, 6))
    _compare(theirs, ours, inputs, _decode, masks=(_causal(5), _padding(2, 5), _padding(2, 6)))


def test_decoder_layer_float_mask_memory_mask_and_float32():
    torch.manual_seed(1)
    kwargs = _layer_kwargs(False, True)
    theirs, ours = tnn.TransformerDecoderLayer(**kwargs), nn.TransformerDecoderLayer(**kwargs)
    inputs = rng.standard_normal((2, 4, E)), rng.standard_normal((2, 3, E))
    float_mask = np.where(_causal(4), -np.inf, 0.0)
    memory_mask = rng.standard_normal((4, 3))

    def call(m, tgt, memory, tgt_mask, mem_mask):
        return m(tgt, memory, tgt_mask=tgt_mask.to(tgt.dtype), memory_mask=mem_mask.to(tgt.dtype))
    _compare(theirs, ours, inputs, call, masks=(float_mask, memory_mask))
    _compare(theirs, ours, inputs, call, dtype="float32", masks=(float_mask, memory_mask))


@pytest.mark.parametrize("norm_first", [False, True])
def test_decoder_stack_with_norm_matches_pytorch(norm_first):
    torch.manual_seed(2)
    kwargs = _layer_kwargs(norm_first, False)
    theirs = tnn.TransformerDecoder(tnn.TransformerDecoderLayer(**kwargs), 2, norm=tnn.LayerNorm(E))
    ours = nn.TransformerDecoder(nn.TransformerDecoderLayer(**kwargs), 2, norm=nn.LayerNorm(E))
    assert list(ours.state_dict()) == list(theirs.state_dict())
    inputs = rng.standard_normal((5, 2, E)), rng.standard_normal((6, 2, E))

    def call(m, tgt, memory, tgt_mask):
        return m(tgt, memory, tgt_mask=tgt_mask, tgt_is_causal=True)
    _compare(theirs, ours, inputs, call, masks=(_causal(5),))


@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("norm_first", [False, True])
def test_transformer_matches_pytorch(batch_first, norm_first):
    torch.manual_seed(3)
    kwargs = dict(d_model=E, nhead=H, num_encoder_layers=2, num_decoder_layers=2, dim_feedforward=FF, dropout=0.0,
                  batch_first=batch_first, norm_first=norm_first)
    theirs, ours = tnn.Transformer(**kwargs), nn.Transformer(**kwargs)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    src, tgt = rng.standard_normal(_shape(batch_first, 6)), rng.standard_normal(_shape(batch_first, 5))
    causal = tnn.Transformer.generate_square_subsequent_mask(5, dtype=torch.float64).cpu().numpy()
    np.testing.assert_array_equal(nn.Transformer.generate_square_subsequent_mask(5, dtype=cr.float64).cpu().numpy(), causal)

    def call(m, src, tgt, tgt_mask, src_pad, tgt_pad):
        return m(src, tgt, tgt_mask=tgt_mask, src_key_padding_mask=src_pad, tgt_key_padding_mask=tgt_pad,
                 memory_key_padding_mask=src_pad, tgt_is_causal=True)
    _compare(theirs, ours, (src, tgt), call, masks=(causal, _padding(2, 6), _padding(2, 5)))


def test_transformer_initialises_matrices_xavier_and_checks_shapes():
    cr.manual_seed(0)
    model = nn.Transformer(d_model=E, nhead=H, num_encoder_layers=1, num_decoder_layers=1, dim_feedforward=FF)
    w = model.decoder.layers[0].linear1.weight.detach().cpu().numpy()
    assert np.abs(w).max() <= np.sqrt(6 / (E + FF)) + 1e-7
    with pytest.raises(RuntimeError, match="batch number"):
        model(cr.randn(4, 2, E), cr.randn(3, 3, E))
    with pytest.raises(RuntimeError, match="d_model"):
        model(cr.randn(4, 2, E + 1), cr.randn(3, 2, E))


def test_decoder_layer_dropout_trains_and_eval_is_deterministic():
    layer = nn.TransformerDecoderLayer(E, H, FF, dropout=0.5)
    tgt, memory = cr.randn(3, 2, E), cr.randn(4, 2, E)
    assert not np.allclose(layer(tgt, memory).detach().cpu().numpy(), layer(tgt, memory).detach().cpu().numpy())
    layer.eval()
    np.testing.assert_array_equal(layer(tgt, memory).detach().cpu().numpy(), layer(tgt, memory).detach().cpu().numpy())


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_sdpa_enable_gqa_scale_and_causal_match_pytorch(dtype):
    q, k, v = rng.standard_normal((2, 6, 5, 4)), rng.standard_normal((2, 2, 7, 4)), rng.standard_normal((2, 2, 7, 3))
    tdtype = getattr(torch, dtype)
    t_in = [torch.tensor(a, dtype=tdtype, requires_grad=True) for a in (q, k, v)]
    c_in = [cr.tensor(a, dtype=dtype, requires_grad=True) for a in (q, k, v)]
    t_out = torch.nn.functional.scaled_dot_product_attention(*t_in, enable_gqa=True, scale=0.3, is_causal=True)
    c_out = nn.functional.scaled_dot_product_attention(*c_in, enable_gqa=True, scale=0.3, is_causal=True)
    cot = rng.standard_normal(tuple(t_out.shape))
    t_out.backward(torch.tensor(cot, dtype=tdtype))
    c_out.backward(cr.tensor(cot, dtype=dtype))
    tol = 1e-10 if dtype == "float64" else 1e-5
    np.testing.assert_allclose(c_out.detach().cpu().numpy(), t_out.detach().cpu().numpy(), atol=tol)
    for c, t in zip(c_in, t_in):
        np.testing.assert_allclose(c.grad.cpu().numpy(), t.grad.cpu().numpy(), atol=tol)


def test_sdpa_enable_gqa_refuses_heads_that_do_not_divide():
    q, k = cr.randn(1, 6, 3, 4), cr.randn(1, 4, 3, 4)
    with pytest.raises(RuntimeError, match="multiple"):
        nn.functional.scaled_dot_product_attention(q, k, k, enable_gqa=True)
