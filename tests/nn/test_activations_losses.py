"""Activations, the dropout family, losses, distances and EmbeddingBag (issue 15): the op-table cases of
kinds 'activation' and 'loss' gradchecked and gradgradchecked in float64 (their PyTorch oracle runs in
tests/ops), modules and the cases the table can't draw against PyTorch, random ones by their statistics
and by the mask they used, and errors as PyTorch's."""

import sys
from pathlib import Path

import numpy as np
import pytest

import chainrule as cr
import chainrule.nn as nn
import chainrule.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "ops"))
from op_cases import check_gradients, gradcheck_params  # noqa: E402

torch = pytest.importorskip("torch")
TF = torch.nn.functional


@pytest.mark.parametrize("case, shapes, params", gradcheck_params("activation") + gradcheck_params("loss"))
def test_gradcheck(case, shapes, params):
    check_gradients(case, shapes, params)


@pytest.mark.parametrize("case, shapes, params",
                         gradcheck_params("activation", twice_only=True) + gradcheck_params("loss", twice_only=True))
def test_gradgradcheck(case, shapes, params):
    check_gradients(case, shapes, params, second_order=True)


def _both(fn_c, fn_t, *arrays, dtype="float64", ints=(), loose=False):
    """Outputs and input gradients of chainrule and torch on the same arrays (indices in ``ints`` as int64)."""
    cx = [cr.tensor(a) if i in ints else cr.tensor(a, dtype=dtype, requires_grad=True) for i, a in enumerate(arrays)]
    tx = [torch.tensor(a) if i in ints else torch.tensor(a, dtype=getattr(torch, dtype), requires_grad=True)
          for i, a in enumerate(arrays)]
    co, to = fn_c(*cx), fn_t(*tx)
    seed = np.random.default_rng(3).standard_normal(tuple(to.shape))
    (co * cr.tensor(seed, dtype=dtype)).sum().backward()
    (to * torch.tensor(seed, dtype=getattr(torch, dtype))).sum().backward()
    tol = {"rtol": 1e-10, "atol": 1e-12} if dtype == "float64" else {"rtol": 2e-4, "atol": 1e-5}
    if loose and dtype == "float64":  # torch's CELU and Hardsigmoid gradients differ from the exact ones by ~1e-8
        tol = {"rtol": 1e-7, "atol": 1e-9}
    np.testing.assert_allclose(co.detach().cpu().numpy(), to.detach().cpu().numpy(), **tol)
    for i, (c, t) in enumerate(zip(cx, tx)):
        if i not in ints and t.grad is not None:
            np.testing.assert_allclose(c.grad.cpu().numpy(), t.grad.cpu().numpy(), err_msg=f"grad {i}", **tol)
    return cx, tx


RNG = np.random.default_rng(0)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("name, make", [
    ("PReLU", lambda m: m.PReLU(3, init=0.1)), ("SELU", lambda m: m.SELU()), ("CELU", lambda m: m.CELU(0.7)),
    ("Hardsigmoid", lambda m: m.Hardsigmoid()), ("Hardswish", lambda m: m.Hardswish()),
    ("Hardshrink", lambda m: m.Hardshrink(0.3)), ("Softshrink", lambda m: m.Softshrink(0.3)),
    ("Tanhshrink", lambda m: m.Tanhshrink()), ("Threshold", lambda m: m.Threshold(0.1, 20.0)),
    ("Softmin", lambda m: m.Softmin(1)), ("Softmax2d", lambda m: m.Softmax2d()),
    ("RReLU-eval", lambda m: m.RReLU(0.1, 0.3).eval()),
])
def test_activation_modules_match_torch(name, make, dtype):
    x = RNG.standard_normal((2, 3, 4, 2)) * 3
    mod, tmod = make(nn), make(torch.nn)
    if name == "PReLU":
        tmod.weight.data = torch.tensor([0.1, -0.2, 0.4])
        mod.weight.data = cr.tensor([0.1, -0.2, 0.4])
        tmod.to(getattr(torch, dtype))
        mod.to(dtype)
        out_c, out_t = mod(cr.tensor(x, dtype=dtype, requires_grad=True)), tmod(torch.tensor(x, dtype=getattr(torch, dtype)))
        out_c.sum().backward()
        out_t.sum().backward()
        np.testing.assert_allclose(mod.weight.grad.cpu().numpy(), tmod.weight.grad.cpu().numpy(), rtol=1e-4)
    _both(mod, tmod, x, dtype=dtype, loose=name in ("CELU", "Hardsigmoid"))


@pytest.mark.parametrize("fn", ["relu_", "elu_", "leaky_relu_", "hardtanh_", "selu_", "celu_", "threshold_"])
def test_inplace_functional_variants_write_into_the_tensor_and_carry_gradients(fn):
    args = (0.2, -1.0) if fn == "threshold_" else ()
    x = RNG.standard_normal((3, 4))
    leaf_c, leaf_t = cr.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    yc, yt = leaf_c * 2, leaf_t * 2
    rc, rt = getattr(F, fn)(yc, *args), getattr(TF, fn)(yt, *args)
    assert rc is yc
    np.testing.assert_allclose(yc.detach().cpu().numpy(), yt.detach().cpu().numpy(), rtol=1e-12)
    rc.sum().backward()
    rt.sum().backward()
    np.testing.assert_allclose(leaf_c.grad.cpu().numpy(), leaf_t.grad.cpu().numpy(), rtol=1e-12)
    with pytest.raises(RuntimeError, match="leaf"):
        getattr(F, fn)(cr.tensor(x, requires_grad=True), *args)


@pytest.mark.parametrize("make", [lambda m: m.ReLU(inplace=True), lambda m: m.SELU(inplace=True),
                                  lambda m: m.Hardswish(inplace=True), lambda m: m.ELU(inplace=True),
                                  lambda m: m.Threshold(0.0, 1.0, inplace=True)])
def test_inplace_modules_change_their_input(make):
    x = cr.tensor(RNG.standard_normal(6))
    expect = make(torch.nn)(torch.tensor(x.cpu().numpy()))
    assert make(nn)(x) is x
    np.testing.assert_allclose(x.cpu().numpy(), expect.cpu().numpy(), rtol=1e-6)


def test_rrelu_training_uses_random_slopes_in_range_and_the_gradient_is_the_slope_used():
    cr.manual_seed(0)
    x = cr.tensor(-np.abs(RNG.standard_normal(20000)) - 0.1, requires_grad=True)
    y = F.rrelu(x, 0.1, 0.3, training=True)
    slopes = (y / x).detach().cpu().numpy()
    assert slopes.min() >= 0.1 and slopes.max() <= 0.3 and abs(slopes.mean() - 0.2) < 0.005
    y.sum().backward()
    np.testing.assert_allclose(x.grad.cpu().numpy(), slopes, rtol=1e-12)
    pos = cr.tensor([1.0, 2.0])
    np.testing.assert_array_equal(F.rrelu(pos, training=True).cpu().numpy(), [1.0, 2.0])
    np.testing.assert_allclose(nn.RReLU(0.1, 0.3).eval()(cr.tensor([-1.0])).cpu().numpy(), [-0.2])


@pytest.mark.parametrize("hard", [False, True])
def test_gumbel_softmax_samples_and_straight_through(hard):
    cr.manual_seed(1)
    logits = cr.tensor(np.log([0.1, 0.2, 0.7]).repeat(1).reshape(1, 3).repeat(4000, 0), requires_grad=True)
    y = F.gumbel_softmax(logits, tau=0.5, hard=hard)
    np.testing.assert_allclose(y.detach().cpu().numpy().sum(-1), 1.0, rtol=1e-12)
    if hard:
        assert set(np.unique(y.detach().cpu().numpy())) <= {0.0, 1.0}
        freq = y.detach().cpu().numpy().mean(0)
        np.testing.assert_allclose(freq, [0.1, 0.2, 0.7], atol=0.03)  # Gumbel-max: argmax ~ Categorical(softmax)
    w = cr.tensor(RNG.standard_normal((4000, 3)))
    (y * w).sum().backward()
    assert logits.grad is not None and np.isfinite(logits.grad.cpu().numpy()).all()
    assert np.abs(logits.grad.cpu().numpy().sum(-1)).max() < 1e-9  # softmax's gradient sums to zero per row


@pytest.mark.parametrize("fn, shape, spatial", [(F.dropout1d, (8, 50, 3), 1), (F.dropout2d, (8, 50, 3, 2), 2),
                                                (F.dropout3d, (8, 50, 2, 2, 2), 3)])
def test_channel_dropout_zeroes_whole_channels_and_the_gradient_is_the_mask(fn, shape, spatial):
    cr.manual_seed(2)
    x = cr.tensor(RNG.uniform(1, 2, shape), requires_grad=True)
    y = fn(x, p=0.3)
    kept = (y.detach().cpu().numpy() != 0)
    per_channel = kept.reshape(kept.shape[:-spatial] + (-1,))
    assert (per_channel.all(-1) | ~per_channel.any(-1)).all()  # all or nothing per channel
    assert abs(per_channel.any(-1).mean() - 0.7) < 0.1
    y.sum().backward()
    np.testing.assert_allclose(x.grad.cpu().numpy(), kept / 0.7, rtol=1e-12)
    assert fn(x, 0.3, training=False) is x


def test_alpha_dropouts_keep_mean_and_variance_and_the_gradient_is_the_mask():
    cr.manual_seed(3)
    x = cr.tensor(RNG.standard_normal(200000), requires_grad=True)
    y = F.alpha_dropout(x, 0.2, training=True)
    out = y.detach().cpu().numpy()
    assert abs(out.mean()) < 0.01 and abs(out.std() - 1) < 0.01
    y.sum().backward()
    a = 1 / np.sqrt((1.7580993408473766 ** 2 * 0.2 + 1) * 0.8)
    kept = x.grad.cpu().numpy() != 0
    np.testing.assert_allclose(x.grad.cpu().numpy()[kept], a, rtol=1e-12)
    assert abs(kept.mean() - 0.8) < 0.01
    z = F.feature_alpha_dropout(cr.tensor(RNG.standard_normal((400, 30, 5))), 0.5, training=True).cpu().numpy()
    const = np.isclose(z, z[..., :1]).all(-1)  # dropped channels take one value
    assert abs(const.mean() - 0.5) < 0.05
    assert F.alpha_dropout(x, 0.2) is x  # training=False by default, as PyTorch
    for mod, shape in ((nn.Dropout1d(0.5), (2, 3, 2)), (nn.Dropout2d(), (2, 3, 2, 2)), (nn.Dropout3d(), (2, 3, 2, 2, 2)),
                       (nn.AlphaDropout(), (2, 3)), (nn.FeatureAlphaDropout(), (2, 3, 2))):
        t = cr.tensor(RNG.standard_normal(shape))
        assert mod.eval()(t) is t


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("zero_infinity", [False, True])
def test_ctc_loss_matches_torch_with_ragged_lengths(dtype, reduction, zero_infinity):
    steps, batch, classes = 12, 4, 5
    logits = RNG.standard_normal((steps, batch, classes))
    in_lens, tg_lens = [12, 9, 2, 7], [4, 3, 3, 0]  # sample 2 can't fit its target (inf), sample 3 is empty
    targets = np.array([[1, 2, 2, 3], [4, 4, 1, 0], [1, 2, 3, 0], [0, 0, 0, 0]])
    for flat in (False, True):
        tg = np.concatenate([targets[i, :n] for i, n in enumerate(tg_lens)]) if flat else targets

        def run(lib_f, lib, x, t):
            return lib_f.ctc_loss(x.log_softmax(2), t, lib.tensor(in_lens), lib.tensor(tg_lens), blank=0,
                                  reduction=reduction, zero_infinity=zero_infinity)

        if not zero_infinity and reduction != "none":
            c = run(F, cr, cr.tensor(logits), cr.tensor(tg))
            assert np.isinf(c.cpu().numpy())
            continue
        if not zero_infinity:  # per-sample: compare the finite ones, backward through them
            c = run(F, cr, cr.tensor(logits), cr.tensor(tg)).cpu().numpy()
            t = run(TF, torch, torch.tensor(logits), torch.tensor(tg)).cpu().numpy()
            np.testing.assert_allclose(c, t, rtol=1e-10)
            continue
        _both(lambda x, t: run(F, cr, x, t), lambda x, t: run(TF, torch, x, t), logits, tg, dtype=dtype, ints=(1,))


def test_ctc_loss_blank_and_unbatched_and_module():
    logits = RNG.standard_normal((6, 4))
    _both(lambda x, t: nn.CTCLoss(blank=3)(x.log_softmax(1), t, cr.tensor([6]), cr.tensor([2])),
          lambda x, t: torch.nn.CTCLoss(blank=3)(x.log_softmax(1), t, torch.tensor([6]), torch.tensor([2])),
          logits, np.array([1, 1]), ints=(1,))


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("name, make, arrays", [
    ("PoissonNLLLoss", lambda m: m.PoissonNLLLoss(full=True),
     lambda: (RNG.standard_normal((3, 4)), RNG.integers(0, 5, (3, 4)) * 1.0)),
    ("GaussianNLLLoss", lambda m: m.GaussianNLLLoss(reduction="sum"),
     lambda: (RNG.standard_normal((3, 4)), RNG.standard_normal((3, 4)), RNG.uniform(0.1, 2, (3, 1)))),
    ("MarginRankingLoss", lambda m: m.MarginRankingLoss(0.2), lambda: (RNG.standard_normal(5), RNG.standard_normal(5),
                                                                          np.sign(RNG.standard_normal(5)))),
    ("HingeEmbeddingLoss", lambda m: m.HingeEmbeddingLoss(), lambda: (RNG.standard_normal(5), np.sign(RNG.standard_normal(5)))),
    ("CosineEmbeddingLoss", lambda m: m.CosineEmbeddingLoss(0.1),
     lambda: (RNG.standard_normal((4, 3)), RNG.standard_normal((4, 3)), np.sign(RNG.standard_normal(4)))),
    ("TripletMarginLoss", lambda m: m.TripletMarginLoss(swap=True), lambda: tuple(RNG.standard_normal((4, 3)) for _ in range(3))),
    ("MultiLabelSoftMarginLoss", lambda m: m.MultiLabelSoftMarginLoss(), lambda: (RNG.standard_normal((3, 4)),
                                                                                   RNG.integers(0, 2, (3, 4)) * 1.0)),
    ("SoftMarginLoss", lambda m: m.SoftMarginLoss(), lambda: (RNG.standard_normal((3, 4)), np.sign(RNG.standard_normal((3, 4))))),
    ("PairwiseDistance", lambda m: m.PairwiseDistance(p=1.5, keepdim=True), lambda: (RNG.standard_normal((4, 3)),
                                                                                      RNG.standard_normal((4, 3)))),
    ("CosineSimilarity", lambda m: m.CosineSimilarity(dim=0), lambda: (RNG.standard_normal((4, 3)), RNG.standard_normal((4, 3)))),
])
def test_loss_and_distance_modules_match_torch(name, make, arrays, dtype):
    xs = arrays()
    n_grad = 1 if name in ("PoissonNLLLoss", "HingeEmbeddingLoss", "SoftMarginLoss", "MultiLabelSoftMarginLoss") else None
    ints = ()
    if n_grad:  # targets without gradients (torch refuses or differs on the target's gradient)
        mod, tmod = make(nn), make(torch.nn)
        _both(lambda x: mod(x, cr.tensor(xs[1], dtype=dtype)),
              lambda x: tmod(x, torch.tensor(xs[1], dtype=getattr(torch, dtype))), xs[0], dtype=dtype)
        return
    if name in ("MarginRankingLoss", "CosineEmbeddingLoss"):
        mod, tmod = make(nn), make(torch.nn)
        _both(lambda a, b: mod(a, b, cr.tensor(xs[2], dtype=dtype)),
              lambda a, b: tmod(a, b, torch.tensor(xs[2], dtype=getattr(torch, dtype))), *xs[:2], dtype=dtype)
        return
    _both(make(nn), make(torch.nn), *xs, dtype=dtype, ints=ints)


@pytest.mark.parametrize("p, margin", [(1, 1.0), (2, 0.5)])
def test_multi_margin_and_multilabel_margin_modules(p, margin):
    x = RNG.standard_normal((4, 5))
    w = RNG.uniform(0.5, 2, 5)
    t = np.array([0, 3, 4, 1])
    _both(lambda a: nn.MultiMarginLoss(p, margin, cr.tensor(w))(a, cr.tensor(t)),
          lambda a: torch.nn.MultiMarginLoss(p, margin, torch.tensor(w))(a, torch.tensor(t)), x)
    ml = np.array([[3, 0, -1, 1, 2], [1, 2, 3, 4, 0], [-1, 1, 2, 3, 4], [4, 4, -1, 0, 0]])
    _both(lambda a: nn.MultiLabelMarginLoss(reduction="none")(a, cr.tensor(ml)),
          lambda a: torch.nn.MultiLabelMarginLoss(reduction="none")(a, torch.tensor(ml)), x)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("mode", ["sum", "mean", "max"])
@pytest.mark.parametrize("padding_idx", [None, 2])
@pytest.mark.parametrize("last", [False, True])
def test_embedding_bag_matches_torch(mode, padding_idx, last, dtype):
    weight = RNG.standard_normal((6, 3))
    idx = np.array([1, 2, 4, 5, 4, 3, 2, 2, 0, 1])
    offsets = np.array([0, 3, 3, 7] + ([10] if last else []))  # an empty bag too
    psw = RNG.standard_normal(10) if mode == "sum" else None

    def run(lib_f, lib, w, *extra):
        return lib_f.embedding_bag(lib.tensor(idx), w, lib.tensor(offsets), mode=mode, padding_idx=padding_idx,
                                   include_last_offset=last, per_sample_weights=extra[0] if extra else None)

    arrays = (weight,) if psw is None else (weight, psw)
    _both(lambda *a: run(F, cr, *a), lambda *a: run(TF, torch, *a), *arrays, dtype=dtype)
    two_d = idx.reshape(2, 5)
    _both(lambda w: F.embedding_bag(cr.tensor(two_d), w, mode=mode, padding_idx=padding_idx),
          lambda w: TF.embedding_bag(torch.tensor(two_d), w, mode=mode, padding_idx=padding_idx), weight, dtype=dtype)


def test_embedding_bag_module():
    bag, tbag = nn.EmbeddingBag(6, 3, mode="sum", padding_idx=0), torch.nn.EmbeddingBag(6, 3, mode="sum", padding_idx=0)
    assert np.all(bag.weight.detach().cpu().numpy()[0] == 0)
    bag.weight.data = cr.tensor(tbag.weight.detach().cpu().numpy())
    idx, off = np.array([0, 1, 2, 3]), np.array([0, 2])
    np.testing.assert_allclose(bag(cr.tensor(idx), cr.tensor(off)).detach().cpu().numpy(),
                               tbag(torch.tensor(idx), torch.tensor(off)).detach().cpu().numpy(), rtol=1e-6)


def _same_error(fn_c, fn_t, exc=Exception):
    with pytest.raises(exc) as te:
        fn_t()
    with pytest.raises(type(te.value)) as ce:
        fn_c()
    first = str(te.value).splitlines()[0][:45]  # (torch then names sizes as torch.Size, chainrule as lists)
    assert str(ce.value).splitlines()[0][:45] == first, (str(ce.value), first)


@pytest.mark.parametrize("make", [
    lambda lib, f: f.dropout1d(lib.ones(2), 0.5),
    lambda lib, f: f.dropout1d(lib.ones(2, 2), 1.5),
    lambda lib, f: f.softshrink(lib.ones(2), -1.0),
    lambda lib, f: f.multi_margin_loss(lib.ones(2, 3), lib.tensor([0, 1]), p=3),
    lambda lib, f: lib.cdist(lib.ones(2, 3), lib.ones(2, 4)),
    lambda lib, f: lib.cdist(lib.ones(2, 3), lib.ones(2, 3), p=-1.0),
    lambda lib, f: f.embedding_bag(lib.tensor([1, 2]), lib.ones(3, 2), lib.tensor([1])),
    lambda lib, f: f.embedding_bag(lib.tensor([1, 2]), lib.ones(3, 2), lib.tensor([0]), mode="mean",
                                   per_sample_weights=lib.ones(2)),
    lambda lib, f: f.gaussian_nll_loss(lib.ones(3, 2), lib.ones(3, 2), lib.ones(2, 2)),
    lambda lib, f: f.gaussian_nll_loss(lib.ones(3, 2), lib.ones(3, 2), -lib.ones(3, 2)),
    lambda lib, f: f.margin_ranking_loss(lib.ones(3), lib.ones(3), lib.ones(1, 3)),
    lambda lib, f: f.prelu(lib.ones(2, 3), lib.ones(2)),
])
def test_errors_as_torch(make):
    _same_error(lambda: make(cr, F), lambda: make(torch, TF))


def test_softmax2d_and_ctc_refuse_bad_shapes():
    with pytest.raises(ValueError, match="3D or 4D"):
        nn.Softmax2d()(cr.ones(2, 2))
    with pytest.raises(RuntimeError, match="at most"):
        F.ctc_loss(cr.zeros(3, 1, 2), cr.tensor([[1]]), [4], [1])
