"""Convolution and pooling (chainrule.ops.conv): gradcheck and gradgradcheck in float64, PyTorch as the
oracle for values and gradients (float32 and float64, fixed and hypothesis-drawn configurations), the
tie policy of max pooling, and the error messages.

The oracle tests take PyTorch through the ``torch`` fixture (``pytest.importorskip``), so the
gradient checks and policy tests in this module still run where PyTorch is not installed.
"""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import chainrule as cr
from chainrule.autograd import gradcheck, gradgradcheck
from chainrule.backend import windows as W
from chainrule.ops import conv as C

rng = np.random.default_rng(0)


@pytest.fixture(scope="module")
def torch():
    return pytest.importorskip("torch")


def leaf(*shape, dtype="float64"):
    return cr.tensor(rng.standard_normal(shape), dtype=dtype, requires_grad=True)


def check_grads(fn, *inputs):
    assert gradcheck(fn, inputs)
    assert gradgradcheck(fn, inputs)


# ----- gradcheck / gradgradcheck (float64, tiny inputs) ---------------------------------------------

@pytest.mark.parametrize("kw", [
    dict(kernel_size=2),
    dict(kernel_size=(2, 3), stride=(2, 1), padding=1, dilation=(1, 2)),
])
def test_unfold_gradients(kw):
    check_grads(lambda x: C.unfold(x, **kw), leaf(1, 2, 4, 5))


@pytest.mark.parametrize("kw, shape", [
    (dict(output_size=(4, 5), kernel_size=2), (1, 8, 12)),
    (dict(output_size=(4, 4), kernel_size=(2, 3), stride=2, padding=1, dilation=(1, 2)), (1, 6, 3)),
])
def test_fold_gradients(kw, shape):
    check_grads(lambda c: C.fold(c, **kw), leaf(*shape))


CONV2D_CONFIGS = [
    ((1, 2, 4, 4), (3, 2, 2, 2), True, dict()),
    ((2, 2, 5, 4), (2, 2, 3, 3), True, dict(stride=2, padding=1)),
    ((1, 4, 5, 5), (4, 2, 2, 3), False, dict(dilation=(2, 1), groups=2, padding=(1, 0))),
    ((1, 2, 4, 3), (2, 1, 2, 3), True, dict(padding="same", groups=2)),
    ((1, 1, 4, 4), (2, 1, 3, 3), False, dict(padding="valid", stride=(1, 2))),
]


@pytest.mark.parametrize("xshape, wshape, with_bias, kw", CONV2D_CONFIGS)
def test_conv2d_gradients(xshape, wshape, with_bias, kw):
    inputs = (leaf(*xshape), leaf(*wshape)) + ((leaf(wshape[0]),) if with_bias else ())
    check_grads(lambda x, w, *b: C.conv2d(x, w, *b, **kw), *inputs)


@pytest.mark.parametrize("xshape, wshape, with_bias, kw", [
    ((2, 2, 6), (3, 2, 2), True, dict(stride=2, padding=1)),
    ((1, 4, 7), (2, 2, 3), False, dict(dilation=2, groups=2, padding="same")),
])
def test_conv1d_gradients(xshape, wshape, with_bias, kw):
    inputs = (leaf(*xshape), leaf(*wshape)) + ((leaf(wshape[0]),) if with_bias else ())
    check_grads(lambda x, w, *b: C.conv1d(x, w, *b, **kw), *inputs)


PRIMITIVE_CONFIGS = [  # x shape, weight shape, stride, padding (top, bottom, left, right), dilation, groups
    ((2, 2, 5, 4), (3, 2, 3, 2), (2, 1), (1, 0, 1, 1), (1, 2), 1),
    ((1, 4, 4, 5), (4, 2, 2, 2), (1, 1), (0, 0, 0, 0), (1, 1), 2),
    ((2, 2, 4, 4), (2, 2, 2, 2), (2, 2), (0, 0, 0, 0), (1, 1), 1),  # windows tile the image exactly
    ((2, 4, 3, 5), (6, 2, 1, 1), (1, 1), (0, 0, 0, 0), (1, 1), 2),  # pointwise: one GEMM per group
]


@pytest.mark.parametrize("xshape, wshape, stride, pad, dilation, groups", PRIMITIVE_CONFIGS)
def test_conv_gradient_primitives_are_differentiable(xshape, wshape, stride, pad, dilation, groups):
    """The transposed convolution (gradient in x) and the weight gradient are primitives of their own;
    their rules (each other and the forward convolution) must hold to second order too."""
    geom = W.Windows.for_conv(xshape, wshape[2:], stride, dilation, pad, "test")
    x, w, g = leaf(*xshape), leaf(*wshape), leaf(xshape[0], wshape[0], *geom.out)
    check_grads(lambda g, w: C._conv_input_grad(g, w, geom, groups), g, w)
    check_grads(lambda x, g: C._conv_weight_grad(x, g, geom, groups), x, g)


POOL_GRAD_CASES = [
    ("max2d tiled", lambda x: C.max_pool2d(x, 2), (1, 2, 4, 4)),
    ("max2d general", lambda x: C.max_pool2d(x, (3, 2), stride=(2, 1), padding=1, dilation=(1, 2)), (1, 1, 5, 5)),
    ("max2d ceil", lambda x: C.max_pool2d(x, 2, ceil_mode=True), (1, 1, 5, 3)),
    ("max1d", lambda x: C.max_pool1d(x, 3, stride=2, padding=1), (2, 1, 6)),
    ("avg2d tiled", lambda x: C.avg_pool2d(x, 2), (1, 2, 4, 4)),
    ("avg2d exclude pad, ceil", lambda x: C.avg_pool2d(x, 3, 2, 1, ceil_mode=True, count_include_pad=False),
     (1, 1, 6, 5)),
    ("avg2d divisor", lambda x: C.avg_pool2d(x, 2, 1, divisor_override=3), (1, 1, 3, 3)),
    ("avg1d", lambda x: C.avg_pool1d(x, 2, padding=1), (1, 2, 5)),
    ("adaptive uneven", lambda x: C.adaptive_avg_pool2d(x, (3, 2)), (1, 1, 5, 5)),
    ("adaptive even", lambda x: C.adaptive_avg_pool2d(x, 2), (1, 2, 4, 4)),
    ("adaptive1d", lambda x: C.adaptive_avg_pool1d(x, 3), (1, 2, 5)),
]


@pytest.mark.parametrize("name, fn, shape", POOL_GRAD_CASES, ids=[c[0] for c in POOL_GRAD_CASES])
def test_pool_gradients(name, fn, shape):
    # distinct, well-separated values: no ties, and no maximum changes under the finite-difference step
    x = cr.tensor(rng.permutation(np.prod(shape)).reshape(shape) * 0.1, dtype="float64", requires_grad=True)
    check_grads(fn, x)


def test_unfold_and_fold_are_adjoint():
    x, cols = leaf(2, 3, 5, 4), leaf(2, 3 * 2 * 3, 3 * 4)
    kw = dict(kernel_size=(2, 3), stride=(2, 1), padding=1, dilation=1)
    lhs = (C.unfold(x, **kw) * cols).sum().item()
    rhs = (x * C.fold(cols, (5, 4), **kw)).sum().item()
    assert lhs == pytest.approx(rhs, rel=1e-12)


def test_fold_of_unfold_counts_blocks_per_pixel():
    ones = cr.ones(1, 1, 3, 3)
    counts = C.fold(C.unfold(ones, 2), (3, 3), 2).cpu().numpy()[0, 0]
    np.testing.assert_array_equal(counts, [[1, 2, 1], [2, 4, 2], [1, 2, 1]])


# ----- oracle: PyTorch's values and gradients -------------------------------------------------------

TOL = {"float32": dict(rtol=1e-4, atol=1e-5), "float64": dict(rtol=1e-10, atol=1e-12)}


def run_both(torch, fn_ours, fn_torch, arrays, dtype):
    """Forward both on the same arrays, backward one random cotangent; assert values and all input
    gradients match."""
    ours = [cr.tensor(a, dtype=dtype, requires_grad=True) for a in arrays]
    theirs = [torch.tensor(a, dtype=getattr(torch, dtype), requires_grad=True) for a in arrays]
    out, expected = fn_ours(*ours), fn_torch(*theirs)
    assert tuple(out.shape) == tuple(expected.shape)
    assert out.dtype.name == dtype
    np.testing.assert_allclose(out.detach().cpu().numpy(), expected.detach().cpu().numpy(), **TOL[dtype])
    seed = np.random.default_rng(1).standard_normal(tuple(expected.shape))
    out.backward(cr.tensor(seed, dtype=dtype))
    expected.backward(torch.tensor(seed, dtype=getattr(torch, dtype)))
    for a, b in zip(ours, theirs):
        assert a.grad.dtype.name == dtype
        np.testing.assert_allclose(a.grad.cpu().numpy(), b.grad.cpu().numpy(), **TOL[dtype])


@pytest.mark.oracle
@pytest.mark.filterwarnings("ignore:Using padding='same'")
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("xshape, wshape, with_bias, kw", CONV2D_CONFIGS + [
    ((3, 6, 9, 8), (6, 1, 3, 3), True, dict(groups=6, padding=1)),  # depthwise
    ((2, 3, 8, 8), (4, 3, 1, 1), True, dict()),  # 1x1
    ((2, 4, 7, 6), (4, 4, 4, 2), False, dict(padding="same", dilation=(1, 3))),  # even kernel, 'same'
    ((2, 3, 10, 9), (5, 3, 3, 3), True, dict(stride=(3, 2), padding=(2, 0), dilation=2)),
])
def test_conv2d_matches_torch(torch, dtype, xshape, wshape, with_bias, kw):
    arrays = [rng.standard_normal(xshape), rng.standard_normal(wshape)] + ([rng.standard_normal(wshape[0])] if with_bias else [])
    run_both(torch, lambda *t: C.conv2d(*t, **kw), lambda *t: torch.nn.functional.conv2d(*t, **kw), arrays, dtype)


@pytest.mark.oracle
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("xshape, wshape, kw", [
    ((2, 3, 10), (4, 3, 3), dict(stride=2, padding=1)),
    ((1, 4, 9), (6, 2, 4), dict(groups=2, dilation=2, padding="same")),
    ((3, 2, 5), (2, 2, 5), dict(padding="valid")),
])
def test_conv1d_matches_torch(torch, dtype, xshape, wshape, kw):
    arrays = [rng.standard_normal(xshape), rng.standard_normal(wshape), rng.standard_normal(wshape[0])]
    run_both(torch, lambda *t: C.conv1d(*t, **kw), lambda *t: torch.nn.functional.conv1d(*t, **kw), arrays, dtype)


@pytest.mark.oracle
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("kw", [
    dict(kernel_size=3),
    dict(kernel_size=(2, 3), stride=(1, 2), padding=(1, 0), dilation=(2, 1)),
])
def test_unfold_and_fold_match_torch(torch, dtype, kw):
    x = rng.standard_normal((2, 3, 7, 6))
    run_both(torch, lambda t: C.unfold(t, **kw), lambda t: torch.nn.functional.unfold(t, **kw), [x], dtype)
    blocks = torch.nn.functional.unfold(torch.zeros(1, 3, 7, 6), **kw).shape[-1]
    cols = rng.standard_normal((2, 3 * np.prod(kw["kernel_size"]), blocks))
    run_both(torch, lambda t: C.fold(t, (7, 6), **kw), lambda t: torch.nn.functional.fold(t, (7, 6), **kw), [cols], dtype)


POOL_KWARGS = [
    dict(kernel_size=2),
    dict(kernel_size=3, stride=2, padding=1),
    dict(kernel_size=3, stride=2, ceil_mode=True),
    dict(kernel_size=(2, 3), stride=(1, 2), padding=(1, 1), ceil_mode=True),
    dict(kernel_size=[3, 2], stride=[3, 1]),
]


@pytest.mark.oracle
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("kw", POOL_KWARGS + [dict(kernel_size=(2, 3), dilation=(2, 1), padding=1, ceil_mode=True)])
def test_max_pool2d_matches_torch(torch, dtype, kw):
    x = rng.standard_normal((2, 3, 7, 6))
    run_both(torch, lambda t: C.max_pool2d(t, **kw), lambda t: torch.nn.functional.max_pool2d(t, **kw), [x], dtype)
    _, indices = C.max_pool2d(cr.tensor(x), return_indices=True, **kw)
    _, expected = torch.nn.functional.max_pool2d(torch.tensor(x), return_indices=True, **kw)
    assert indices.dtype == cr.int64
    np.testing.assert_array_equal(indices.cpu().numpy(), expected.cpu().numpy())


@pytest.mark.oracle
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("kw", POOL_KWARGS)
@pytest.mark.parametrize("count_include_pad", [True, False])
def test_avg_pool2d_matches_torch(torch, dtype, kw, count_include_pad):
    x = rng.standard_normal((2, 3, 7, 6))
    run_both(torch, lambda t: C.avg_pool2d(t, count_include_pad=count_include_pad, **kw),
             lambda t: torch.nn.functional.avg_pool2d(t, count_include_pad=count_include_pad, **kw), [x], dtype)


@pytest.mark.oracle
def test_avg_pool2d_divisor_override_matches_torch(torch):
    x = rng.standard_normal((1, 2, 5, 5))
    run_both(torch, lambda t: C.avg_pool2d(t, 3, 2, 1, divisor_override=4),
             lambda t: torch.nn.functional.avg_pool2d(t, 3, 2, 1, divisor_override=4), [x], "float64")


@pytest.mark.oracle
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("kw", [dict(kernel_size=2), dict(kernel_size=3, stride=2, padding=1, ceil_mode=True)])
def test_pool1d_matches_torch(torch, dtype, kw):
    x = rng.standard_normal((2, 3, 9))
    F = torch.nn.functional
    run_both(torch, lambda t: C.max_pool1d(t, **kw), lambda t: F.max_pool1d(t, **kw), [x], dtype)
    run_both(torch, lambda t: C.avg_pool1d(t, **kw), lambda t: F.avg_pool1d(t, **kw), [x], dtype)
    _, indices = C.max_pool1d(cr.tensor(x), return_indices=True, **kw)
    np.testing.assert_array_equal(indices.cpu().numpy(), F.max_pool1d(torch.tensor(x), return_indices=True, **kw)[1].numpy())


@pytest.mark.oracle
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("size", [1, (3, 2), (7, 6), (4, 5), (None, 4), (5, None)])
def test_adaptive_avg_pool_matches_torch(torch, dtype, size):
    x = rng.standard_normal((2, 3, 7, 6))
    F = torch.nn.functional
    run_both(torch, lambda t: C.adaptive_avg_pool2d(t, size), lambda t: F.adaptive_avg_pool2d(t, size), [x], dtype)
    if isinstance(size, int):
        run_both(torch, lambda t: C.adaptive_avg_pool1d(t[:, :, 0], size),
                 lambda t: F.adaptive_avg_pool1d(t[:, :, 0], size), [x], dtype)


@st.composite
def conv_configs(draw):
    groups = draw(st.sampled_from([1, 1, 2, 3]))
    cin, cout = groups * draw(st.integers(1, 2)), groups * draw(st.integers(1, 2))
    kh, kw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    dh, dw = draw(st.integers(1, 2)), draw(st.integers(1, 2))
    ph, pw = draw(st.integers(0, 2)), draw(st.integers(0, 2))
    h = draw(st.integers(max(1, dh * (kh - 1) + 1 - 2 * ph), 8))
    w = draw(st.integers(max(1, dw * (kw - 1) + 1 - 2 * pw), 8))
    kwargs = dict(stride=(draw(st.integers(1, 3)), draw(st.integers(1, 3))), padding=(ph, pw), dilation=(dh, dw),
                  groups=groups)
    return (draw(st.integers(1, 3)), cin, h, w), (cout, cin // groups, kh, kw), kwargs


@pytest.mark.oracle
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(config=conv_configs(), with_bias=st.booleans())
def test_conv2d_matches_torch_on_drawn_shapes(torch, config, with_bias):
    xshape, wshape, kw = config
    arrays = [rng.standard_normal(xshape), rng.standard_normal(wshape)] + ([rng.standard_normal(wshape[0])] if with_bias else [])
    run_both(torch, lambda *t: C.conv2d(*t, **kw), lambda *t: torch.nn.functional.conv2d(*t, **kw), arrays, "float64")


@st.composite
def pool_configs(draw):
    k = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    pad = (draw(st.integers(0, k[0] // 2)), draw(st.integers(0, k[1] // 2)))
    shape = (draw(st.integers(1, 2)), draw(st.integers(1, 3)), draw(st.integers(k[0], 8)), draw(st.integers(k[1], 8)))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    return shape, dict(kernel_size=k, stride=stride, padding=pad, ceil_mode=draw(st.booleans()))


@pytest.mark.oracle
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(config=pool_configs(), count_include_pad=st.booleans())
def test_pools_match_torch_on_drawn_shapes(torch, config, count_include_pad):
    shape, kw = config
    x = rng.standard_normal(shape)
    F = torch.nn.functional
    run_both(torch, lambda t: C.max_pool2d(t, **kw), lambda t: F.max_pool2d(t, **kw), [x], "float64")
    run_both(torch, lambda t: C.avg_pool2d(t, count_include_pad=count_include_pad, **kw),
             lambda t: F.avg_pool2d(t, count_include_pad=count_include_pad, **kw), [x], "float64")


@pytest.mark.oracle
def test_unbatched_inputs_match_torch(torch):
    F = torch.nn.functional
    x, w, b = rng.standard_normal((3, 6, 5)), rng.standard_normal((2, 3, 3, 3)), rng.standard_normal(2)
    run_both(torch, lambda *t: C.conv2d(*t, padding=1), lambda *t: F.conv2d(*t, padding=1), [x, w, b], "float64")
    run_both(torch, lambda *t: C.conv1d(*t), lambda *t: F.conv1d(*t), [x[0], w[:, :, 0].repeat(2, axis=1), b], "float64")
    run_both(torch, lambda t: C.max_pool1d(t, 2), lambda t: F.max_pool1d(t, 2), [x[0]], "float64")
    run_both(torch, lambda t: C.max_pool2d(t, 2), lambda t: F.max_pool2d(t, 2), [x], "float64")
    run_both(torch, lambda t: C.avg_pool2d(t, 2), lambda t: F.avg_pool2d(t, 2), [x], "float64")
    run_both(torch, lambda t: C.unfold(t, 2), lambda t: F.unfold(t, 2), [x], "float64")


@pytest.mark.oracle
def test_non_contiguous_inputs_match_torch(torch):
    """Windows are strided views of the input's own strides: permuted and flipped inputs work too."""
    F = torch.nn.functional
    x, w = rng.standard_normal((2, 3, 6, 7)), rng.standard_normal((4, 3, 3, 3))

    def scrambled(t):
        return t.permute(0, 1, 3, 2).flip(3).flip(1)

    run_both(torch, lambda t, v: C.conv2d(scrambled(t), v, padding=1), lambda t, v: F.conv2d(scrambled(t), v, padding=1),
             [x, w], "float64")
    run_both(torch, lambda t: C.max_pool2d(scrambled(t), 3, 2, 1), lambda t: F.max_pool2d(scrambled(t), 3, 2, 1), [x], "float64")
    run_both(torch, lambda t: C.unfold(scrambled(t), 2), lambda t: F.unfold(scrambled(t), 2), [x], "float64")


@pytest.mark.oracle
def test_second_derivative_of_conv_matches_torch(torch):
    """d/dw of sum((d loss/dx)^2): a gradient of a gradient through im2col, matmul and col2im."""
    x, w = rng.standard_normal((2, 2, 5, 5)), rng.standard_normal((3, 2, 3, 3))

    def penalty_grad(lib, grad_fn, conv, x, w):
        loss = (conv(x, w, padding=1, stride=2) ** 3).sum()
        (gx,) = grad_fn(loss, x, create_graph=True)
        (gw,) = grad_fn((gx * gx).sum(), w)
        return gw

    ours = penalty_grad(cr, lambda o, i, **k: cr.autograd.grad(o, [i], **k), C.conv2d,
                        cr.tensor(x, requires_grad=True), cr.tensor(w, requires_grad=True))
    theirs = penalty_grad(torch, lambda o, i, **k: torch.autograd.grad(o, [i], **k), torch.nn.functional.conv2d,
                          torch.tensor(x, requires_grad=True), torch.tensor(w, requires_grad=True))
    np.testing.assert_allclose(ours.cpu().numpy(), theirs.cpu().numpy(), rtol=1e-10, atol=1e-10)


@pytest.mark.oracle
def test_conv_in_uneven_batch_chunks_matches_torch(torch, monkeypatch):
    """Convolution runs a few images at a time; chunks of 2, 2 and 1 images give PyTorch's values,
    gradients and second derivatives."""
    F = torch.nn.functional
    x, w, b = rng.standard_normal((5, 3, 6, 7)), rng.standard_normal((4, 3, 3, 3)), rng.standard_normal(4)
    monkeypatch.setattr(W, "_CHUNK_BYTES", 2 * 3 * 9 * 6 * 7 * 8)  # the columns of two float64 images
    assert len(W._batch_chunks(5, 3 * 9 * 6 * 7 * 8)) == 3
    run_both(torch, lambda *t: C.conv2d(*t, padding=1), lambda *t: F.conv2d(*t, padding=1), [x, w, b], "float64")

    def penalty_grad(lib, conv, x, w):
        (gx,) = lib.autograd.grad((conv(x, w, padding=1) ** 3).sum(), [x], create_graph=True)
        return lib.autograd.grad((gx * gx).sum(), [w])[0]

    ours = penalty_grad(cr, C.conv2d, cr.tensor(x, requires_grad=True), cr.tensor(w, requires_grad=True))
    theirs = penalty_grad(torch, F.conv2d, torch.tensor(x, requires_grad=True), torch.tensor(w, requires_grad=True))
    np.testing.assert_allclose(ours.cpu().numpy(), theirs.cpu().numpy(), rtol=1e-10, atol=1e-10)


def test_conv_gradients_keep_non_finite_values_where_they_belong():
    """Stride-1 columns run whole padded rows, whose extra columns are junk (windows wrapping into the
    next row); an inf in x or a NaN in w must not leak through them onto other pixels or taps: the
    gradients equal the unfold/fold formulas, inf and NaN in the same places."""
    x_np, w_np, g_np = rng.standard_normal((2, 3, 6, 7)), rng.standard_normal((2, 3, 3, 3)), rng.standard_normal((2, 2, 4, 5))
    x_np[0, 1, 2, 0] = np.inf  # in the windows of taps (a, 0) only; the junk of taps (a, 1) reads it
    w_np[1, 2, 0, 2] = np.nan  # reaches rows 0-3, columns 2-6 of channel 2; its junk lands on columns 0-1
    geom = W.Windows.for_conv(x_np.shape, (3, 3), (1, 1), (1, 1), (0, 0, 0, 0), "test")
    assert W._row_width(geom, 2) == 7  # the padded-width layout is the one under test
    x, w = cr.tensor(x_np, requires_grad=True), cr.tensor(w_np, requires_grad=True)
    C.conv2d(x, w).backward(cr.tensor(g_np))
    cols, g2 = C.unfold(cr.tensor(x_np), 3).cpu().numpy(), g_np.reshape(2, 2, -1)
    expected_gw = np.einsum("nol,nkl->ok", g2, cols).reshape(w_np.shape)
    expected_gx = C.fold(cr.tensor(np.einsum("ok,nol->nkl", w_np.reshape(2, -1), g2)), (6, 7), 3).cpu().numpy()
    assert np.isinf(expected_gw).sum() == 6 and np.isnan(expected_gx).sum() == 2 * 4 * 5
    np.testing.assert_allclose(w.grad.cpu().numpy(), expected_gw, rtol=1e-10)
    np.testing.assert_allclose(x.grad.cpu().numpy(), expected_gx, rtol=1e-10)


def channels_major(t):
    """The same values laid out (C, N, H, W) in memory, as convolution outputs are."""
    return t.permute(1, 0, 2, 3).contiguous().permute(1, 0, 2, 3)


@pytest.mark.oracle
@pytest.mark.parametrize("kw", [dict(kernel_size=2), dict(kernel_size=3, stride=2, padding=1, ceil_mode=True)])
def test_pools_of_channel_major_inputs_match_torch(torch, kw):
    F = torch.nn.functional
    x = rng.standard_normal((3, 4, 6, 7))
    run_both(torch, lambda t: C.max_pool2d(channels_major(t), **kw), lambda t: F.max_pool2d(t, **kw), [x], "float32")
    run_both(torch, lambda t: C.avg_pool2d(channels_major(t), count_include_pad=False, **kw),
             lambda t: F.avg_pool2d(t, count_include_pad=False, **kw), [x], "float32")


def test_conv_and_pool_outputs_keep_the_channel_major_layout():
    """Pooling and its gradient keep the layout of a convolution's output, so the elementwise ops in
    between (relu and its backward) see operands of one layout."""
    x, w = cr.randn(2, 3, 6, 6), cr.randn(4, 3, 3, 3, requires_grad=True)
    y = C.conv2d(x, w, padding=1).relu()
    pooled = C.max_pool2d(y, 2)
    (gy,) = cr.autograd.grad(pooled.sum(), [y])
    for t in (y, pooled, gy):
        assert W.is_channels_major(t._data)


def reference_max_pool_grad(x: np.ndarray, k: int, g: np.ndarray) -> np.ndarray:
    """Windows tiling the image: each window's gradient split evenly among its maxima (by loops)."""
    grad = np.zeros_like(x)
    for n, c, i, j in np.ndindex(g.shape):
        window = x[n, c, i * k:(i + 1) * k, j * k:(j + 1) * k]
        hits = window == window.max()
        grad[n, c, i * k:(i + 1) * k, j * k:(j + 1) * k] = hits * g[n, c, i, j] / hits.sum()
    return grad


def test_max_pool_after_relu_splits_zero_windows_evenly():
    """After a relu many windows are all zeros: every element of such a window gets a quarter."""
    x_np = np.maximum(rng.standard_normal((3, 4, 6, 8)), 0).round(1)  # zeros and repeated values: ties
    x = cr.tensor(x_np, requires_grad=True)
    g = rng.standard_normal((3, 4, 3, 4))
    C.max_pool2d(channels_major(x), 2).backward(cr.tensor(g))
    np.testing.assert_allclose(x.grad.cpu().numpy(), reference_max_pool_grad(x_np, 2, g), rtol=1e-12)


# ----- the tie policy of max pooling ----------------------------------------------------------------

def test_max_pool_splits_gradient_among_tied_maxima():
    x = cr.tensor([[[[1.0, 3.0, 3.0, 0.0],
                     [3.0, 3.0, 2.0, 5.0]]]], requires_grad=True)
    C.max_pool2d(x, 2).sum().backward()
    np.testing.assert_allclose(x.grad.cpu().numpy(), [[[[0, 1 / 3, 0, 0], [1 / 3, 1 / 3, 0, 1]]]])


def test_overlapping_windows_add_their_tie_shares():
    x = cr.tensor([[[1.0, 1.0, 1.0]]], requires_grad=True)
    C.max_pool1d(x, 2, stride=1).sum().backward()  # windows (x0, x1) and (x1, x2), each tied
    np.testing.assert_allclose(x.grad.cpu().numpy(), [[[0.5, 1.0, 0.5]]])


def test_max_pool_indices_pick_the_first_tied_maximum():
    x = cr.tensor([[[[2.0, 2.0], [2.0, 1.0]]]])
    _, indices = C.max_pool2d(x, 2, return_indices=True)
    assert indices.tolist() == [[[[0]]]]


def test_max_pool_routes_a_nan_window_to_its_nan():
    x = cr.tensor([[[[1.0, float("nan")], [3.0, 2.0]]]], requires_grad=True)
    out = C.max_pool2d(x, 2)
    assert np.isnan(out.item())
    out.sum().backward()
    np.testing.assert_array_equal(x.grad.cpu().numpy(), [[[[0, 1], [0, 0]]]])


def test_max_pool_ties_survive_double_backward():
    x = cr.tensor([[[[1.0, 1.0], [0.0, 1.0]]]], requires_grad=True)
    g = cr.tensor([[[[6.0]]]], requires_grad=True)
    (gx,) = cr.autograd.grad(C.max_pool2d(x, 2), [x], grad_outputs=[g], create_graph=True)
    np.testing.assert_allclose(gx.detach().cpu().numpy(), [[[[2, 2], [0, 2]]]])
    (gg,) = cr.autograd.grad((gx * cr.tensor([[[[1.0, 2.0], [5.0, 3.0]]]])).sum(), [g])
    assert gg.item() == pytest.approx((1 + 2 + 3) / 3)


# ----- layouts, dtypes, spellings ------------------------------------------------------------------

def test_float32_stays_float32():
    x, w, b = leaf(2, 3, 6, 6, dtype="float32"), leaf(4, 3, 3, 3, dtype="float32"), leaf(4, dtype="float32")
    out = C.max_pool2d(C.conv2d(x, w, b, padding=1), 2)
    out = C.avg_pool2d(out, 3, 1, 1, count_include_pad=False)
    assert out.dtype == cr.float32
    out.sum().backward()
    assert x.grad.dtype == w.grad.dtype == b.grad.dtype == cr.float32


def test_sizes_accept_ints_tuples_lists_and_numpy_ints():
    x = leaf(1, 2, 6, 6)
    w = leaf(3, 2, 3, 3)
    reference = C.conv2d(x, w, stride=2, padding=1).detach().cpu().numpy()
    for stride, padding in [((2, 2), [1, 1]), (np.int64(2), (np.int32(1),))]:
        np.testing.assert_array_equal(C.conv2d(x, w, stride=stride, padding=padding).detach().cpu().numpy(), reference)
    np.testing.assert_array_equal(C.max_pool2d(x, [2, 2]).detach().cpu().numpy(),
                                  C.max_pool2d(x, 2, stride=2).detach().cpu().numpy())


def test_conv_output_is_usable_as_nchw():
    x, w = cr.randn(2, 3, 5, 5), cr.randn(4, 3, 3, 3)
    out = C.conv2d(x, w)
    flat = out.reshape(2, -1)
    np.testing.assert_array_equal(flat.cpu().numpy(), np.ascontiguousarray(out.cpu().numpy()).reshape(2, -1))
    assert out.contiguous().cpu().numpy().flags.c_contiguous


def test_empty_batch():
    out = C.conv2d(cr.zeros(0, 2, 5, 5), cr.zeros(3, 2, 3, 3), padding=1)
    assert tuple(out.shape) == (0, 3, 5, 5)
    assert tuple(C.max_pool2d(cr.zeros(0, 2, 4, 4), 2).shape) == (0, 2, 2, 2)


def test_unfold_does_not_alias_its_input():
    x = cr.randn(1, 1, 3, 3)
    cols = C.unfold(x, 1)
    x.cpu().numpy()[...] = 0
    assert np.abs(cols.cpu().numpy()).sum() > 0


# ----- errors ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("call, message", [
    (lambda: C.conv2d(cr.zeros(1, 4, 5, 5), cr.zeros(2, 3, 3, 3)), r"conv2d: given groups=1 and weight of shape \(2, 3, 3, 3\), "
     r"expected input of shape \(1, 4, 5, 5\) to have weight.shape\[1\] \* groups = 3 channels, but it has 4"),
    (lambda: C.conv2d(cr.zeros(1, 4, 5, 5), cr.zeros(3, 2, 3, 3), groups=2), r"out_channels \(3, weight shape \(3, 2, 3, 3\)\) "
     r"must be divisible by groups=2"),
    (lambda: C.conv2d(cr.zeros(1, 1, 2, 2), cr.zeros(1, 1, 3, 3), padding=0, dilation=1),
     r"conv2d: the kernel \(3, 3\) .* larger than the padded input \(2, 2\) \(input shape \(1, 1, 2, 2\)"),
    (lambda: C.conv2d(cr.zeros(5, 5), cr.zeros(1, 1, 3, 3)), r"conv2d: expected a 3-D \(unbatched\) or 4-D .* shape \(5, 5\)"),
    (lambda: C.conv2d(cr.zeros(1, 1, 5, 5), cr.zeros(1, 1, 3)), r"conv2d: expected a 4-D weight .* shape \(1, 1, 3\)"),
    (lambda: C.conv1d(cr.zeros(1, 1, 5, 5), cr.zeros(1, 1, 3)), r"conv1d: expected a 2-D \(unbatched\) or 3-D"),
    (lambda: C.conv2d(cr.zeros(1, 1, 5, 5), cr.zeros(1, 1, 3, 3, dtype=cr.float64)),
     r"conv2d: input \(shape \(1, 1, 5, 5\), .*float32\) and weight \(shape \(1, 1, 3, 3\), .*float64\) must have the same"),
    (lambda: C.conv2d(cr.zeros(1, 1, 5, 5), cr.zeros(2, 1, 3, 3), cr.zeros(3)), r"expected bias of shape \(2,\)"),
    (lambda: C.conv2d(cr.zeros(1, 1, 5, 5), cr.zeros(1, 1, 3, 3), padding="same", stride=2),
     r"padding='same' is not supported for strided convolutions"),
    (lambda: C.conv2d(cr.zeros(1, 1, 5, 5), cr.zeros(1, 1, 3, 3), padding=-1), r"conv2d: padding must be non-negative"),
    (lambda: C.conv2d(cr.zeros(1, 1, 5, 5), cr.zeros(1, 1, 3, 3), stride=0), r"conv2d: stride must be positive"),
    (lambda: C.conv2d(cr.zeros(1, 1, 5, 5), cr.zeros(1, 1, 3, 3), stride=(1, 1, 1)), r"stride must be an int or a tuple of 2"),
    (lambda: C.conv2d(cr.zeros(1, 2, 5, 5), cr.zeros(2, 1, 3, 3), groups=0), r"groups must be a positive int"),
    (lambda: C.unfold(cr.zeros(1, 1, 5, 5), 7), r"unfold: the kernel \(7, 7\)"),
    (lambda: C.fold(cr.zeros(1, 9, 5), (4, 4), 3), r"fold: .* give 2 \* 2 = 4 blocks, but the input .* has L=5"),
    (lambda: C.fold(cr.zeros(1, 8, 4), (4, 4), 3), r"fold: expected the size of input dimension 1 \(8"),
    (lambda: C.max_pool2d(cr.zeros(1, 1, 5, 5), 3, padding=2), r"max_pool2d: padding should be at most half"),
    (lambda: C.max_pool2d(cr.zeros(1, 1, 2, 2), 3), r"max_pool2d: input of shape \(1, 1, 2, 2\) is too small"),
    (lambda: C.avg_pool2d(cr.zeros(1, 1, 4, 4, dtype=cr.int64), 2), r"avg_pool2d: expected a floating-point input"),
    (lambda: C.avg_pool2d(cr.zeros(1, 1, 4, 4), 2, divisor_override=0), r"divisor_override must be a non-zero int"),
    (lambda: C.adaptive_avg_pool2d(cr.zeros(1, 1, 4, 4), (2, 2, 2)), r"output_size must be an int or a tuple of 2"),
])
def test_errors_name_the_operation_and_shapes(call, message):
    with pytest.raises((RuntimeError, TypeError, ValueError), match=message):
        call()


def test_bad_padding_string():
    with pytest.raises(ValueError, match=r"conv2d: padding must be an int, a tuple of ints, 'valid' or 'same', got 'full'"):
        C.conv2d(cr.zeros(1, 1, 5, 5), cr.zeros(1, 1, 3, 3), padding="full")


# ----- the backend's choices: pointwise (1x1) convolutions, input gradients as convolutions ---------

def _pointwise_operands(dtype, spatial, groups, batch, layout):
    """x (batch, C, *size) laid out NCHW or channel-major, a 1x1 weight, a bias and an output gradient."""
    size = {1: (1, 7), 2: (3, 5), 3: (2, 3, 5)}[spatial]  # 1-d runs as 2-d of height 1
    c, o = 2 * groups, 3 * groups
    x = rng.standard_normal((c, batch) + size).astype(dtype).swapaxes(0, 1)  # channel-major
    x = np.ascontiguousarray(x) if layout == "nchw" else x
    w = rng.standard_normal((o, 2) + (1,) * len(size)).astype(dtype)
    g = rng.standard_normal((batch, o) + size).astype(dtype)
    return x, w, rng.standard_normal(o).astype(dtype), g


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("spatial", [1, 2, 3])
@pytest.mark.parametrize("groups", [1, 2])
@pytest.mark.parametrize("batch", [0, 1, 3])
@pytest.mark.parametrize("layout", ["nchw", "channels-major"])
def test_pointwise_path_equals_the_im2col_path(dtype, spatial, groups, batch, layout):
    """The backend's 1x1 path (columns = the image, channels first) against its general im2col path, for the
    forward, the input gradient and the weight gradient: float64 to 1e-12, float32 to its rounding."""
    x, w, b, g = _pointwise_operands(dtype, spatial, groups, batch, layout)
    kernel = (1,) * (x.ndim - 2)
    geom = W.Windows.for_conv(x.shape, kernel, kernel, (2,) * len(kernel), (0,) * 2 * len(kernel), "test")
    assert geom.pointwise
    pairs = [(W.convolve(x, w, b, geom, groups)[0], W._convolve_im2col(x, w, b, geom, groups)[0]),
             (W.convolve_transpose(g, w, geom, groups), W._convolve_transpose_im2col(g, w, geom, groups)),
             (W.convolve_weight_grad(x, g, geom, groups), W._convolve_weight_grad_im2col(x, g, geom, groups))]
    tol = dict(rtol=1e-12, atol=1e-12) if dtype == "float64" else dict(rtol=1e-5, atol=1e-5)
    for fast, general in pairs:
        assert fast.shape == general.shape and fast.dtype == general.dtype
        np.testing.assert_allclose(fast, general, **tol)
    assert all(W.is_channels_major(a) for a, _ in pairs[:2] if a.ndim in (4, 5) and batch > 1)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("kernel, dilation, pad", [((3, 3), (1, 1), (1, 1, 1, 1)), ((2, 3), (2, 1), (0, 1, 1, 0)),
                                                   ((3, 1), (1, 1), (0, 0, 0, 0)), ((3, 3), (1, 2), (2, 2, 0, 3))])
@pytest.mark.parametrize("groups, batch, layout", [(1, 1, "nchw"), (2, 3, "channels-major"), (1, 2, "channels-major")])
def test_input_gradient_as_a_flipped_convolution_equals_col2im(dtype, kernel, dilation, pad, groups, batch, layout):
    """Stride 1 and out_channels <= in_channels: the backend's input gradient runs as a convolution of the output
    gradient with the flipped weight; against its col2im path (asymmetric padding, dilation, odd sizes)."""
    c, o = 4 * groups, 2 * groups
    geom = W.Windows.for_conv((batch, c, 5, 7), kernel, (1, 1), dilation, pad, "test")
    g = rng.standard_normal((o, batch) + geom.out).astype(dtype).swapaxes(0, 1)
    g = np.ascontiguousarray(g) if layout == "nchw" else g
    w = rng.standard_normal((o, c // groups) + kernel).astype(dtype)
    assert W._flipped_geometry(geom, w) is not None
    fast, general = W.convolve_transpose(g, w, geom, groups), W._convolve_transpose_im2col(g, w, geom, groups)
    assert fast.shape == general.shape == (batch, c, 5, 7) and fast.dtype == general.dtype
    tol = dict(rtol=1e-12, atol=1e-12) if dtype == "float64" else dict(rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(fast, general, **tol)


def test_input_gradient_is_a_flipped_convolution_only_where_cheaper():
    def flipped(out_channels, stride=(1, 1), pad=(1, 1, 1, 1), bad=None):
        geom = W.Windows.for_conv((2, 4, 6, 6), (3, 3), stride, (1, 1), pad, "test")
        w = np.ones((out_channels, 4, 3, 3))
        w[0, 0, 0, 0] = w[0, 0, 0, 0] if bad is None else bad
        return W._flipped_geometry(geom, w) is not None

    assert flipped(4) and flipped(2)
    assert not flipped(8)  # more output channels: col2im moves fewer rows
    assert not flipped(2, stride=(2, 1))
    assert not flipped(2, pad=(3, 3, 1, 1))  # windows reaching past the dilated kernel span
    assert not flipped(2, bad=np.nan) and not flipped(2, bad=-np.inf)  # see the non-finite test above


def test_only_one_element_windows_are_pointwise():
    def geom(kernel, stride=(1, 1), pad=(0, 0, 0, 0)):
        return W.Windows.for_conv((2, 3, 6, 6), kernel, stride, (1, 1), pad, "test")

    assert geom((1, 1)).pointwise
    assert not geom((1, 1), stride=(2, 1)).pointwise
    assert not geom((1, 1), pad=(1, 1, 0, 0)).pointwise
    assert not geom((2, 2), stride=(2, 2)).pointwise
    # output_padding: a row past the last window, which only the bias reaches
    assert not W.Windows.for_transpose((2, 3, 4, 4), 2, (1, 1), (1, 1), (2, 2), (0, 0), (1, 0), "test").pointwise


@pytest.mark.oracle
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("spatial", [1, 2, 3])
@pytest.mark.parametrize("groups, batch, layout", [(1, 1, "nchw"), (2, 3, "nchw"), (1, 2, "channels-major"),
                                                   (2, 1, "channels-major")])
def test_pointwise_convolutions_match_torch(torch, dtype, spatial, groups, batch, layout):
    """conv1d/2d/3d with a 1x1 kernel: values and the gradients of input, weight and bias."""
    x, w, b, _ = _pointwise_operands("float64", spatial, groups, batch, "nchw")
    if spatial == 1:
        x, w = x[:, :, 0], w[:, :, 0]
    conv = f"conv{spatial}d"

    def ours(x, w, b):
        if layout == "channels-major":  # the same values laid out (C, N, ...) in memory
            x = x.transpose(0, 1).contiguous().transpose(0, 1)
        return getattr(C, conv)(x, w, b, groups=groups)

    run_both(torch, ours, lambda *t: getattr(torch.nn.functional, conv)(*t, groups=groups), [x, w, b], dtype)


def test_pointwise_conv_gradients():
    x, w, b = leaf(2, 4, 3, 5), leaf(6, 2, 1, 1), leaf(6)
    check_grads(lambda x, w, b: C.conv2d(x, w, b, groups=2), x, w, b)

