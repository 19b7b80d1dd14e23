"""Finite-difference checks (first and second order, float64) of chainrule.nn.functional, and the
errors its functions give for bad input."""

import numpy as np
import pytest

import chainrule as cr
import chainrule.nn.functional as F
from chainrule.autograd import gradcheck, gradgradcheck


def t(*shape, scale=1.0):
    return (cr.randn(*shape, dtype=cr.float64) * scale).requires_grad_()


TARGETS = cr.tensor([2, 0, 1])
MASK = cr.tensor([[0.5, -1.0, 0.0, 2.0], [0.0, 0.0, -1.0, 0.3], [1.0, 0.2, -0.7, 0.0]], dtype=cr.float64)
CASES = {
    "linear_2d": (lambda x, w, b: F.linear(x, w, b), lambda: (t(3, 4), t(2, 4), t(2))),
    "linear_3d_no_bias": (lambda x, w: F.linear(x, w), lambda: (t(2, 3, 4), t(5, 4))),
    "softmax": (lambda x: F.softmax(x, -1), lambda: (t(3, 4),)),
    "log_softmax_dim0": (lambda x: F.log_softmax(x, 0), lambda: (t(3, 4),)),
    "layer_norm": (lambda x, w, b: F.layer_norm(x, (4,), w, b), lambda: (t(3, 4), t(4), t(4))),
    "rms_norm": (lambda x, w: F.rms_norm(x, 4, w, eps=1e-6), lambda: (t(3, 4), t(4))),
    "batch_norm_train": (lambda x, w, b: F.batch_norm(x, None, None, w, b, training=True), lambda: (t(4, 3), t(3), t(3))),
    "cross_entropy": (lambda x: F.cross_entropy(x, TARGETS), lambda: (t(3, 4),)),
    "cross_entropy_smooth": (lambda x: F.cross_entropy(x, TARGETS, label_smoothing=0.3), lambda: (t(3, 4),)),
    "cross_entropy_probs": (lambda x, p: F.cross_entropy(x, F.softmax(p, -1)), lambda: (t(3, 4), t(3, 4))),
    "mse": (lambda x, y: F.mse_loss(x, y), lambda: (t(3, 2), t(3, 2))),
    "huber": (lambda x, y: F.huber_loss(x, y, delta=0.5), lambda: (t(3, 2), t(3, 2))),
    "bce_logits": (lambda x, y: F.binary_cross_entropy_with_logits(x, y.sigmoid()), lambda: (t(3, 2), t(3, 2))),
    "sdpa_causal": (lambda q, k, v: F.scaled_dot_product_attention(q, k, v, is_causal=True),
                    lambda: (t(1, 2, 3, 2), t(1, 2, 3, 2), t(1, 2, 3, 2))),
    "sdpa_float_mask": (lambda q, k, v, m: F.scaled_dot_product_attention(q, k, v, attn_mask=m),
                        lambda: (t(2, 3, 2), t(2, 4, 2), t(2, 4, 2), t(3, 4))),
    # a mask that needs no gradient takes the fused attention primitive (the cases above build a graph)
    "sdpa_fixed_float_mask": (lambda q, k, v: F.scaled_dot_product_attention(q, k, v, attn_mask=MASK),
                              lambda: (t(2, 3, 2), t(2, 4, 2), t(2, 4, 2))),
    "sdpa_bool_mask": (lambda q, k, v: F.scaled_dot_product_attention(q, k, v, attn_mask=MASK > -0.5),
                       lambda: (t(2, 3, 2), t(2, 4, 2), t(2, 4, 2))),
    "embedding": (lambda w: F.embedding(cr.tensor([[0, 2], [2, 2]]), w), lambda: (t(3, 2),)),
    "normalize": (lambda x: F.normalize(x, dim=1), lambda: (t(3, 4),)),
    "bilinear": (lambda a, b, w: F.bilinear(a, b, w), lambda: (t(2, 3), t(2, 2), t(2, 3, 2))),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_functional_gradients(name):
    fn, inputs = CASES[name]
    args = inputs()
    assert gradcheck(fn, args)
    assert gradgradcheck(fn, args)


def test_embedding_padding_row_gets_no_gradient():
    w = t(3, 2)
    F.embedding(cr.tensor([1, 1, 0]), w, padding_idx=1).sum().backward()
    assert np.all(w.grad.cpu().numpy()[1] == 0) and np.all(w.grad.cpu().numpy()[0] == 1)


def test_softmax_is_stable_for_huge_logits():
    x = cr.tensor([[1000.0, 0.0, -1000.0]])
    assert np.allclose(F.softmax(x, -1).cpu().numpy(), [[1, 0, 0]])
    assert np.isfinite(F.log_softmax(x, -1).cpu().numpy()).all()


def test_float32_stays_float32():
    x = cr.randn(4, 3, requires_grad=True)
    w = cr.randn(2, 3, requires_grad=True)
    loss = F.cross_entropy(F.layer_norm(F.linear(x, w), (2,)), cr.tensor([0, 1, 1, 0]))
    loss.backward()
    assert loss.dtype == cr.float32 and x.grad.dtype == cr.float32 and w.grad.dtype == cr.float32


@pytest.mark.parametrize("call, message", [
    (lambda: F.linear(cr.randn(3, 4), cr.randn(2, 5)), r"linear: input .* has 4 features but weight"),
    (lambda: F.linear(cr.randn(3, 4), cr.randn(2, 4), cr.randn(3)), r"bias .* must have shape \(2,\)"),
    (lambda: F.linear(cr.randn(3, 4), cr.randn(2, 4, dtype=cr.float64)), "same dtype"),
    (lambda: F.cross_entropy(cr.randn(3, 4), cr.tensor([0, 1])), r"expected target of shape \(3,\)"),
    (lambda: F.cross_entropy(cr.randn(3, 4), cr.tensor([0, 1, 4])), r"target values must be in \[0, 4\)"),
    (lambda: F.mse_loss(cr.randn(3), cr.randn(3, 1)), "must have the same shape"),
    (lambda: F.layer_norm(cr.randn(3, 4), (5,)), "does not end with normalized_shape"),
    (lambda: F.dropout(cr.randn(3), 1.5), "between 0 and 1"),
    (lambda: F.embedding(cr.tensor([5]), cr.randn(3, 2)), "index out of range"),
    (lambda: F.scaled_dot_product_attention(cr.randn(2, 3), cr.randn(2, 4), cr.randn(2, 4)), "must agree"),
])
def test_bad_input_errors(call, message):
    with pytest.raises((RuntimeError, ValueError, IndexError), match=message):
        call()


@pytest.mark.parametrize("mask", ["causal", "float", "bool", None])
def test_fused_attention_matches_the_graph_of_ops(mask):
    """The attention primitive and the composite (the path taken with dropout or a mask that needs a
    gradient) give the same values and gradients."""
    q, k, v = t(2, 3, 5, 4), t(2, 3, 6, 4), t(2, 3, 6, 4)
    attn_mask = {"causal": None, "float": cr.randn(5, 6, dtype=cr.float64), "bool": cr.randn(5, 6) > -0.5, None: None}[mask]
    fused = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, is_causal=mask == "causal")
    assert fused.grad_fn.name() == "ScaledDotProductAttentionBackward0"
    additive = None
    if mask == "causal":
        additive = cr.tensor(np.triu(np.full((5, 6), -np.inf), 1))
    elif mask == "float":
        additive = attn_mask
    elif mask == "bool":
        additive = cr.tensor(np.where(attn_mask.cpu().numpy(), 0.0, -np.inf))
    composite = F._attention_weights(q, k, additive, 0.5).matmul(v)
    g = cr.randn(2, 3, 5, 4, dtype=cr.float64)
    got = cr.autograd.grad(fused, (q, k, v), g)
    want = cr.autograd.grad(composite, (q, k, v), g)
    np.testing.assert_allclose(fused.detach().cpu().numpy(), composite.detach().cpu().numpy(), rtol=1e-12, atol=1e-12)
    for a, b in zip(got, want):
        np.testing.assert_allclose(a.cpu().numpy(), b.cpu().numpy(), rtol=1e-10, atol=1e-12)


def test_attention_gradients_of_head_views_are_laid_out_like_the_views():
    # q, k, v as heads of one projection (batch, length, heads, dim in memory): their gradients come back
    # in that memory order, so the heads' transpose and reshape cost no copy in the backward
    qkv = cr.tensor(np.random.default_rng(1).standard_normal((2, 5, 3 * 8)), requires_grad=True)
    q, k, v = (part.view(2, 5, 2, 4).transpose(1, 2) for part in qkv.split(8, dim=-1))
    out = F.scaled_dot_product_attention(q, k, v, is_causal=True)
    g = cr.randn(*out.shape, dtype=cr.float64)
    grads = cr.autograd.grad(out, (q, k, v), g)
    for grad, head_view in zip(grads, (q, k, v)):
        assert np.argsort(grad.stride()).tolist() == np.argsort(head_view.stride()).tolist()
        assert grad.transpose(1, 2).is_contiguous()
    composite = F._attention_weights(q, k, cr.tensor(np.triu(np.full((5, 5), -np.inf), 1)), 0.5).matmul(v)
    for a, b in zip(grads, cr.autograd.grad(composite, (q, k, v), g)):
        np.testing.assert_allclose(a.cpu().numpy(), b.cpu().numpy(), rtol=1e-10, atol=1e-12)


def test_attention_with_a_mask_larger_than_the_scores_broadcasts_them():
    """A batched mask with unbatched q, k, v: the scores broadcast up to the mask (the graph of ops)."""
    q, k, v = t(3, 2), t(4, 2), t(4, 2)
    mask = cr.randn(5, 3, 4, dtype=cr.float64)
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    assert out.shape == (5, 3, 2)
    assert gradcheck(lambda q, k, v: F.scaled_dot_product_attention(q, k, v, attn_mask=mask), (q, k, v))
