"""Every layer against PyTorch's with the same weights: outputs, input gradients, parameter gradients."""

import numpy as np
import pytest

import chainrule as cr
import chainrule.nn as nn

from ._oracle import assert_pairs_close, run_both

torch = pytest.importorskip("torch")
tnn = torch.nn

rng = np.random.default_rng(0)


def randn(*shape):
    return rng.standard_normal(shape)


LAYERS = {
    "linear": (lambda m: m.Linear(5, 3), lambda: (randn(4, 5),)),
    "linear_3d_no_bias": (lambda m: m.Linear(5, 3, bias=False), lambda: (randn(2, 4, 5),)),
    "bilinear": (lambda m: m.Bilinear(3, 4, 2), lambda: (randn(5, 3), randn(5, 4))),
    "layernorm": (lambda m: m.LayerNorm(6), lambda: (randn(3, 4, 6),)),
    "layernorm_2d_shape": (lambda m: m.LayerNorm((4, 6)), lambda: (randn(3, 4, 6),)),
    "rmsnorm": (lambda m: m.RMSNorm(6, eps=1e-6), lambda: (randn(3, 6),)),
    "batchnorm1d": (lambda m: m.BatchNorm1d(4), lambda: (randn(8, 4),)),
    "batchnorm1d_3d": (lambda m: m.BatchNorm1d(4), lambda: (randn(8, 4, 3),)),
    "batchnorm2d": (lambda m: m.BatchNorm2d(3), lambda: (randn(4, 3, 5, 5),)),
    "embedding": (lambda m: m.Embedding(10, 4), lambda: (rng.integers(0, 10, (3, 5)),)),
    "embedding_padding": (lambda m: m.Embedding(10, 4, padding_idx=2), lambda: (np.array([[2, 3, 2], [1, 2, 9]]),)),
    "conv2d": (lambda m: m.Conv2d(2, 4, 3, padding=1), lambda: (randn(2, 2, 6, 6),)),
    "conv2d_stride_groups": (lambda m: m.Conv2d(4, 6, (3, 2), stride=2, groups=2, bias=False), lambda: (randn(2, 4, 7, 6),)),
    "conv1d_dilation": (lambda m: m.Conv1d(3, 5, 3, dilation=2, padding="same"), lambda: (randn(2, 3, 9),)),
    "lenet_like": (lambda m: m.Sequential(m.Conv2d(1, 3, 5, padding=2), m.ReLU(), m.MaxPool2d(2), m.Conv2d(3, 4, 3),
                                          m.ReLU(), m.AvgPool2d(2), m.Flatten(), m.Linear(16, 5)),
                   lambda: (randn(3, 1, 12, 12),)),
    "adaptive_pool": (lambda m: m.Sequential(m.Conv2d(2, 3, 3), m.AdaptiveAvgPool2d((2, 3)), m.Flatten()),
                      lambda: (randn(2, 2, 7, 8),)),
    "flatten": (lambda m: m.Sequential(m.Flatten(), m.Linear(12, 2)), lambda: (randn(2, 3, 4),)),
    "mlp": (lambda m: m.Sequential(m.Linear(4, 8), m.Tanh(), m.Linear(8, 8), m.GELU(approximate="tanh"),
                                   m.Linear(8, 2), m.LogSoftmax(dim=1)), lambda: (randn(6, 4),)),
    "activations": (lambda m: m.Sequential(m.Linear(4, 8), m.SiLU(), m.Linear(8, 8), m.ELU(0.7), m.Linear(8, 8),
                                           m.LeakyReLU(0.2), m.Linear(8, 8), m.Softplus(2.0), m.Linear(8, 8), m.Sigmoid(),
                                           m.Linear(8, 8), m.Mish(), m.Linear(8, 8), m.GELU(), m.Softmax(-1)),
                    lambda: (randn(5, 4),)),
}


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("name", sorted(LAYERS))
def test_layer_matches_pytorch(name, dtype):
    build, inputs = LAYERS[name]
    torch.manual_seed(0)
    theirs, ours = build(tnn), build(nn)
    assert_pairs_close(run_both(torch, theirs, ours, *inputs(), dtype=dtype), dtype)


def test_batchnorm_running_stats_and_eval_match_pytorch():
    theirs, ours = tnn.BatchNorm2d(3, momentum=0.3).double(), nn.BatchNorm2d(3, momentum=0.3).double()
    for _ in range(3):
        x = randn(4, 3, 2, 2)
        theirs(torch.tensor(x))
        ours(cr.tensor(x))
    np.testing.assert_allclose(ours.running_mean.cpu().numpy(), theirs.running_mean.cpu().numpy(), rtol=1e-12)
    np.testing.assert_allclose(ours.running_var.cpu().numpy(), theirs.running_var.cpu().numpy(), rtol=1e-12)
    assert ours.num_batches_tracked.item() == 3
    theirs.eval()
    ours.eval()
    x = randn(2, 3, 2, 2)
    np.testing.assert_allclose(ours(cr.tensor(x)).detach().cpu().numpy(), theirs(torch.tensor(x)).detach().numpy(), rtol=1e-12)


@pytest.mark.parametrize("batch_first", [True, False])
@pytest.mark.parametrize("mask", ["none", "causal_bool", "float", "padding"])
def test_multihead_attention_matches_pytorch(batch_first, mask):
    torch.manual_seed(0)
    theirs = tnn.MultiheadAttention(8, 2, batch_first=batch_first).double()
    ours = nn.MultiheadAttention(8, 2, batch_first=batch_first).double()
    x = randn(2, 5, 8) if batch_first else randn(5, 2, 8)
    kwargs_t, kwargs_c = {}, {}
    if mask == "causal_bool":
        m = np.triu(np.ones((5, 5), dtype=bool), 1)
        kwargs_t["attn_mask"], kwargs_c["attn_mask"] = torch.tensor(m), cr.tensor(m)
    elif mask == "float":
        m = randn(5, 5)
        kwargs_t["attn_mask"], kwargs_c["attn_mask"] = torch.tensor(m), cr.tensor(m)
    elif mask == "padding":
        m = np.array([[False] * 5, [False, False, False, True, True]])
        kwargs_t["key_padding_mask"], kwargs_c["key_padding_mask"] = torch.tensor(m), cr.tensor(m)
    from ._oracle import copy_weights

    copy_weights(theirs, ours)
    xt = torch.tensor(x, requires_grad=True)
    xc = cr.tensor(x, requires_grad=True)
    out_t, w_t = theirs(xt, xt, xt, **kwargs_t)
    out_c, w_c = ours(xc, xc, xc, **kwargs_c)
    np.testing.assert_allclose(out_c.detach().cpu().numpy(), out_t.detach().cpu().numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(w_c.detach().cpu().numpy(), w_t.detach().cpu().numpy(), rtol=1e-10, atol=1e-12)
    out_t.sum().backward()
    out_c.sum().backward()
    np.testing.assert_allclose(xc.grad.cpu().numpy(), xt.grad.cpu().numpy(), rtol=1e-9, atol=1e-11)
    np.testing.assert_allclose(ours.in_proj_weight.grad.cpu().numpy(), theirs.in_proj_weight.grad.numpy(), rtol=1e-9, atol=1e-11)


def test_cross_attention_with_distinct_key_value():
    torch.manual_seed(0)
    theirs, ours = tnn.MultiheadAttention(6, 3, batch_first=True).double(), nn.MultiheadAttention(6, 3, batch_first=True).double()
    from ._oracle import copy_weights

    copy_weights(theirs, ours)
    q, k, v = randn(2, 4, 6), randn(2, 7, 6), randn(2, 7, 6)
    out_t, _ = theirs(torch.tensor(q), torch.tensor(k), torch.tensor(v))
    out_c, _ = ours(cr.tensor(q), cr.tensor(k), cr.tensor(v))
    np.testing.assert_allclose(out_c.detach().cpu().numpy(), out_t.detach().cpu().numpy(), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("norm_first", [True, False])
@pytest.mark.parametrize("activation", ["relu", "gelu"])
def test_transformer_encoder_layer_matches_pytorch(norm_first, activation):
    torch.manual_seed(0)
    kwargs = dict(d_model=8, nhead=2, dim_feedforward=16, dropout=0.0, batch_first=True, norm_first=norm_first,
                  activation=activation)
    theirs, ours = tnn.TransformerEncoderLayer(**kwargs), nn.TransformerEncoderLayer(**kwargs)
    assert_pairs_close(run_both(torch, theirs, ours, randn(2, 5, 8)), "float64")


def test_transformer_encoder_stack_state_dict_names_match_pytorch():
    layer_t = tnn.TransformerEncoderLayer(8, 2, 16, dropout=0.0, batch_first=True)
    layer_c = nn.TransformerEncoderLayer(8, 2, 16, dropout=0.0, batch_first=True)
    theirs, ours = tnn.TransformerEncoder(layer_t, 2, enable_nested_tensor=False), nn.TransformerEncoder(layer_c, 2)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    assert_pairs_close(run_both(torch, theirs, ours, randn(2, 3, 8)), "float64")


LOSSES = {
    "ce": (lambda m: m.CrossEntropyLoss(), lambda: (randn(6, 4), rng.integers(0, 4, 6))),
    "ce_smooth_weight_ignore": (
        lambda m: m.CrossEntropyLoss(weight=_weights(m), ignore_index=1, label_smoothing=0.2),
        lambda: (randn(6, 4), np.array([0, 1, 2, 3, 1, 2]))),
    "ce_sum_spatial": (lambda m: m.CrossEntropyLoss(reduction="sum", label_smoothing=0.1),
                       lambda: (randn(2, 4, 3, 3), rng.integers(0, 4, (2, 3, 3)))),
    "ce_ignore_index_sum": (lambda m: m.CrossEntropyLoss(ignore_index=1, reduction="sum"),
                            lambda: (randn(6, 4), np.array([0, 1, 2, 3, 1, 2]))),
    "ce_ignore_index_mean": (lambda m: m.CrossEntropyLoss(ignore_index=3), lambda: (randn(6, 4), np.array([0, 1, 2, 3, 1, 3]))),
    "ce_none": (lambda m: m.CrossEntropyLoss(reduction="none"), lambda: (randn(5, 3), rng.integers(0, 3, 5))),
    "ce_probabilities": (lambda m: m.CrossEntropyLoss(label_smoothing=0.1),
                         lambda: (randn(5, 3), rng.dirichlet(np.ones(3), 5))),
    "nll_weight": (lambda m: m.NLLLoss(weight=_weights(m)), lambda: (randn(6, 4), rng.integers(0, 4, 6))),
    "mse": (lambda m: m.MSELoss(), lambda: (randn(4, 3), randn(4, 3))),
    "l1_sum": (lambda m: m.L1Loss(reduction="sum"), lambda: (randn(4, 3), randn(4, 3))),
    "huber": (lambda m: m.HuberLoss(delta=0.5), lambda: (randn(4, 3), randn(4, 3))),
    "smooth_l1": (lambda m: m.SmoothL1Loss(beta=0.7), lambda: (randn(4, 3), randn(4, 3))),
    "bce": (lambda m: m.BCELoss(), lambda: (rng.uniform(0.05, 0.95, (4, 3)), rng.uniform(0, 1, (4, 3)))),
    "bce_logits_pos_weight": (lambda m: m.BCEWithLogitsLoss(pos_weight=_pos_weight(m)),
                              lambda: (randn(4, 3) * 5, rng.uniform(0, 1, (4, 3)))),
    "kl_batchmean": (lambda m: m.KLDivLoss(reduction="batchmean"),
                     lambda: (np.log(rng.dirichlet(np.ones(3), 4)), rng.dirichlet(np.ones(3), 4))),
}


def _weights(m):
    w = np.array([0.5, 2.0, 1.0, 3.0])
    return torch.tensor(w) if m is tnn else cr.tensor(w)


def _pos_weight(m):
    w = np.array([1.0, 2.0, 0.5])
    return torch.tensor(w) if m is tnn else cr.tensor(w)


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_loss_matches_pytorch(name):
    build, inputs = LOSSES[name]
    x, target = inputs()
    theirs, ours = build(tnn), build(nn)
    xt = torch.tensor(x, requires_grad=True)
    xc = cr.tensor(x, requires_grad=True)
    lt = theirs(xt, torch.tensor(target))
    lc = ours(xc, cr.tensor(target))
    np.testing.assert_allclose(lc.detach().cpu().numpy(), lt.detach().cpu().numpy(), rtol=1e-10, atol=1e-12)
    lt.sum().backward()
    lc.sum().backward()
    np.testing.assert_allclose(xc.grad.cpu().numpy(), xt.grad.cpu().numpy(), rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("ignore_index, reduction", [(-100, "mean"), (3, "mean"), (1, "sum"), (-100, "none")])
def test_cross_entropy_primitive_first_and_second_order(ignore_index, reduction):
    # class-index targets on (N, C) logits take the fused primitive: its plain backward works on arrays,
    # its recorded one (create_graph) on ops; every label valid skips the masking work entirely
    x = cr.tensor(np.random.default_rng(2).standard_normal((5, 4)), requires_grad=True)
    target = cr.tensor(np.array([0, 1, 2, 3, 1]))

    def loss(x):
        return cr.nn.functional.cross_entropy(x, target, ignore_index=ignore_index, reduction=reduction)

    assert cr.autograd.gradcheck(loss, (x,))
    assert cr.autograd.gradgradcheck(loss, (x,))


def test_dropout_train_statistics_and_eval_identity():
    drop = nn.Dropout(0.25)
    x = cr.ones(200, 200)
    y = drop(x).cpu().numpy()
    kept = y != 0
    assert abs(kept.mean() - 0.75) < 0.01
    np.testing.assert_allclose(y[kept], 1 / 0.75, rtol=1e-6)
    drop.eval()
    assert drop(x) is x
