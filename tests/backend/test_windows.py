"""The window functions behind convolution and pooling (chainrule.backend.windows): each one's compiled
float32 path agrees with its numpy formula, in both memory layouts, and the functions that are each
other's adjoints are."""

import numpy as np
import pytest

from chainrule.backend import kernels
from chainrule.backend import windows as W

compiled = pytest.mark.skipif(not kernels.enabled(), reason="numba is not installed (the 'fast' extra)")

rng = np.random.default_rng(0)


def _compiled_and_numpy(run):
    """``run()`` with the compiled kernels, then with numpy's code only."""
    before = kernels._STATE["wanted"]
    kernels.set_enabled(True)
    try:
        fast = run()
        kernels.set_enabled(False)
        return fast, run()
    finally:
        kernels.set_enabled(before)


def _channels_major(a):
    """The same values laid out (C, N, H, W) in memory, as convolution outputs are."""
    return np.ascontiguousarray(a.transpose(1, 0, 2, 3)).transpose(1, 0, 2, 3)


def _close(fast, slow):
    scale = max(1.0, float(np.abs(slow).max()))
    np.testing.assert_allclose(fast, slow, rtol=2e-5, atol=2e-6 * scale)


# (x shape, weight shape, stride, padding (top, bottom, left, right), dilation, groups)
CONV_CASES = {
    "padded": ((16, 8, 20, 20), (12, 8, 3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 1),
    "one_channel_in": ((64, 1, 28, 28), (16, 1, 3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 1),
    "stride_dilation_groups": ((8, 4, 31, 40), (6, 2, 3, 4), (2, 3), (2, 2, 1, 1), (2, 1), 2),
    "uneven_padding": ((8, 6, 24, 24), (5, 6, 5, 3), (1, 1), (0, 1, 2, 0), (1, 1), 1),
}


def _conv_case(name, layout):
    xshape, wshape, stride, pad, dilation, groups = CONV_CASES[name]
    geom = W.Windows.for_conv(xshape, wshape[2:], stride, dilation, pad, "test")
    x = rng.standard_normal(xshape).astype(np.float32)
    x = _channels_major(x) if layout == "channel_major" else x
    w = rng.standard_normal(wshape).astype(np.float32)
    b = rng.standard_normal(wshape[0]).astype(np.float32)
    g = rng.standard_normal((xshape[0], wshape[0]) + geom.out).astype(np.float32)
    return x, w, b, g, geom, groups


@compiled
@pytest.mark.parametrize("layout", ["nchw", "channel_major"])
@pytest.mark.parametrize("case", sorted(CONV_CASES))
def test_convolution_and_its_adjoints_agree_compiled_and_numpy(case, layout):
    x, w, b, g, geom, groups = _conv_case(case, layout)
    assert W._compiled_windows(x, geom) is not None  # the case runs the compiled path

    def run():
        out, kept = W.convolve(x, w, b, geom, groups)
        assert kept is None  # no budget, nothing kept
        return (out, W.convolve_transpose(g, w, geom, groups), W.convolve_weight_grad(x, g, geom, groups))

    for fast, slow in zip(*_compiled_and_numpy(run)):
        assert W.is_channels_major(fast) == W.is_channels_major(slow)
        _close(fast, slow)


@compiled
def test_kept_columns_give_the_weight_gradient_computed_again():
    x, w, b, g, geom, groups = _conv_case("padded", "nchw")
    _, kept = W.convolve(x, w, b, geom, groups, keep_bytes=1 << 30)
    assert kept and len(kept) == len(W._batch_chunks(x.shape[0], W._column_size(geom, geom.out[1], 1) * 4))
    assert W.convolve(x, w, b, geom, groups, keep_bytes=1000)[1] is None  # over the budget
    np.testing.assert_array_equal(W.convolve_weight_grad(x, g, geom, groups, kept),
                                  W.convolve_weight_grad(x, g, geom, groups))
    kernels.set_enabled(False)
    try:  # numpy's columns have junk and are reused chunk to chunk: never kept
        assert W.convolve(x, w, b, geom, groups, keep_bytes=1 << 30)[1] is None
    finally:
        kernels.set_enabled(True)


def test_convolution_equals_its_matrix_formula_in_float64():
    x, w, b, g, geom, groups = _conv_case("stride_dilation_groups", "nchw")
    x, w, b, g = (a.astype(np.float64) for a in (x, w, b, g))
    cols = W.window_columns(x, geom).reshape(x.shape[0], groups, -1, geom.out[0] * geom.out[1])
    wg = w.reshape(groups, w.shape[0] // groups, -1)
    expected = np.einsum("gok,ngkl->ngol", wg, cols).reshape(g.shape) + b[:, None, None]
    np.testing.assert_allclose(W.convolve(x, w, b, geom, groups)[0], expected, rtol=1e-12, atol=1e-12)
    # the adjoints: <convolve(x), g> = <x, convolve_transpose(g)> = <w, convolve_weight_grad(x, g)>
    inner = float((W.convolve(x, w, None, geom, groups)[0] * g).sum())
    assert np.isclose(inner, float((x * W.convolve_transpose(g, w, geom, groups)).sum()), rtol=1e-10)
    assert np.isclose(inner, float((w * W.convolve_weight_grad(x, g, geom, groups)).sum()), rtol=1e-10)


def test_batch_chunks_split_evenly(monkeypatch):
    monkeypatch.setattr(W, "_CHUNK_BYTES", 20)
    assert W._batch_chunks(5, 10) == [slice(0, 2), slice(2, 4), slice(4, 5)]
    assert W._batch_chunks(3, 50) == [slice(0, 1), slice(1, 2), slice(2, 3)]  # images larger than a chunk
    assert W._batch_chunks(3, 1) == [slice(0, 3)]
    assert W._batch_chunks(0, 10) == []


def test_window_columns_and_add_window_columns_are_adjoint():
    geom = W.Windows.for_conv((2, 3, 7, 6), (3, 2), (2, 1), (1, 2), (1, 0, 2, 1), "test")
    x = rng.standard_normal(geom.shape)
    cols = rng.standard_normal((2, 3 * 3 * 2, geom.out[0] * geom.out[1]))
    lhs = float((W.window_columns(x, geom) * cols).sum())
    assert np.isclose(lhs, float((x * W.add_window_columns(cols, geom)).sum()), rtol=1e-12)


def test_window_gather_and_scatter_are_adjoint():
    geom = W.Windows.for_pool((2, 3, 7, 6), (3, 2), (2, 1), (1, 1), (1, 1), True, "test")
    x = rng.standard_normal(geom.shape)
    g = rng.standard_normal(geom.shape[:2] + geom.out)
    weights = {(a, b): rng.standard_normal(g.shape) for a, b, _ in geom.taps()}
    scale = rng.standard_normal(geom.out)
    lhs = float((W.window_gather(x, geom, weights, scale) * g).sum())
    assert np.isclose(lhs, float((x * W.window_scatter(g, geom, weights, scale)).sum()), rtol=1e-12)


def _pool_input(layout, with_nan=False):
    x = np.maximum(rng.standard_normal((8, 8, 32, 32)).astype(np.float32), 0)  # after a relu: ties
    if with_nan:
        x[0, 0, 0, :3] = np.nan
    return _channels_major(x) if layout == "channel_major" else x


@compiled
@pytest.mark.parametrize("with_nan", [False, True])
@pytest.mark.parametrize("layout", ["nchw", "channel_major"])
def test_max_pool_2x2_and_its_gradient_agree_compiled_and_numpy_bit_for_bit(layout, with_nan):
    x = _pool_input(layout, with_nan)
    geom = W.Windows.for_pool(x.shape, (2, 2), (2, 2), (1, 1), (0, 0), False, "test")
    g = rng.standard_normal(x.shape[:2] + geom.out).astype(np.float32)
    assert W._pool_planes(x, geom)[0] is not None  # the case runs the compiled path

    def run():
        out = W.max_pool(x, geom)
        return out, W.max_pool_grad(x, out, g, geom)

    for fast, slow in zip(*_compiled_and_numpy(run)):
        assert W.is_channels_major(fast) == W.is_channels_major(slow) == (layout == "channel_major")
        np.testing.assert_array_equal(fast, slow)  # the same ties, the same shares


def test_max_pool_gradient_splits_ties_evenly_and_routes_to_nan():
    x = np.array([[[[1.0, 1.0, 0.0], [0.0, 1.0, np.nan], [2.0, 0.0, 1.0]]]])
    geom = W.Windows.for_pool(x.shape, (2, 2), (1, 1), (1, 1), (0, 0), False, "test")
    out = W.max_pool(x, geom)
    np.testing.assert_array_equal(out, [[[[1.0, np.nan], [2.0, np.nan]]]])
    grad = W.max_pool_grad(x, out, np.ones_like(out), geom)
    expected = [[1 / 3, 1 / 3, 0.0], [0.0, 1 / 3, 2.0], [1.0, 0.0, 0.0]]  # the NaN takes its two windows whole
    np.testing.assert_allclose(grad[0, 0], expected)
