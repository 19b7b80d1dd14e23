"""The compiled float32 kernels behind chainrule.backend.kernels (numba, the 'fast' extra): accuracy
against float64 references, special values, and the same results as the numpy path in every op that
uses them (forward and gradients); the prebuilt object file against numba in process, its cache and
its fallback. The fallbacks without numba or without a writable cache run in subprocesses."""

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import chainrule as cr
import chainrule.nn.functional as F
from chainrule.backend import kernels
from chainrule.backend import rows as kernels_rows
from chainrule.backend.parallel import get_workers, set_workers
from chainrule.nn.modules.rnn import recurrent_layer as _recurrent_layer

compiled = pytest.mark.skipif(not kernels.enabled(), reason="numba is not installed (the 'fast' extra)")


@pytest.fixture
def numpy_path():
    """Switch the compiled kernels off for the test's duration."""
    before = kernels._STATE["wanted"]
    kernels.set_enabled(False)
    yield
    kernels.set_enabled(before)


def _compiled_and_numpy(run):
    """``run()`` with the compiled kernels, then with numpy's code only."""
    fast = run()
    kernels.set_enabled(False)
    try:
        return fast, run()
    finally:
        kernels.set_enabled(True)


def _ulps(result, exact):
    """|result - exact| in float32 ulps of the exact value (float64 reference)."""
    spacing = np.spacing(np.abs(exact).astype(np.float32)).astype(np.float64)
    return np.abs(result.astype(np.float64) - exact) / spacing


@compiled
def test_exp_within_one_ulp_over_the_float32_range():
    rng = np.random.default_rng(0)
    x = np.concatenate([np.linspace(-87.3, 88.7, 2_000_001), rng.standard_normal(500_000) * 10]).astype(np.float32)
    exact = np.exp(x.astype(np.float64))
    result = kernels.exp(x)
    assert _ulps(result, exact).max() <= 1.0
    tiny = np.linspace(-103.9, -87.4, 100_001).astype(np.float32)  # results subnormal in float32
    error = np.abs(kernels.exp(tiny).astype(np.float64) - np.exp(tiny.astype(np.float64)))
    assert error.max() <= 2.0 ** -149  # one subnormal step


@compiled
def test_tanh_within_one_ulp():
    rng = np.random.default_rng(1)
    x = np.concatenate([np.linspace(-12, 12, 2_000_001), np.geomspace(1e-30, 1, 200_001),
                        -np.geomspace(1e-30, 1, 200_001), rng.standard_normal(500_000) * 3]).astype(np.float32)
    assert _ulps(kernels.tanh(x), np.tanh(x.astype(np.float64))).max() <= 1.0


@compiled
@pytest.mark.parametrize("name", ["exp", "tanh"])
def test_special_values_as_numpy(name):
    special = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 88.72, 88.73, 89.0, -103.97, -104.0, -150.0, 9.5, -9.5,
                        1e-40, -1e-40], np.float32)
    x = np.tile(special, kernels.MIN_SIZE // special.size + 1)
    with np.errstate(over="ignore"):
        expected = getattr(np, name)(x)
    result = getattr(kernels, name)(x)
    np.testing.assert_array_equal(np.isnan(result), np.isnan(expected))
    finite = np.isfinite(expected)
    np.testing.assert_array_equal(result[~finite & ~np.isnan(expected)], expected[~finite & ~np.isnan(expected)])
    np.testing.assert_allclose(result[finite], expected[finite], rtol=3e-7, atol=1e-45)
    if name == "tanh":  # the sign of zero survives
        np.testing.assert_array_equal(np.signbit(result[x == 0]), np.signbit(x[x == 0]))


@compiled
@pytest.mark.parametrize("name", ["exp", "tanh"])
def test_out_in_place_and_fallbacks(name):
    x = np.random.default_rng(2).standard_normal(2 * kernels.MIN_SIZE).astype(np.float32)
    fresh = getattr(kernels, name)(x)
    out = np.empty_like(x)
    assert getattr(kernels, name)(x, out=out) is out
    np.testing.assert_array_equal(out, fresh)
    inplace = x.copy()
    getattr(kernels, name)(inplace, out=inplace)
    np.testing.assert_array_equal(inplace, fresh)
    ufunc = getattr(np, name)
    # strided, small, float64 and overlapping-but-not-identical arrays go to numpy's ufunc
    np.testing.assert_array_equal(getattr(kernels, name)(x[::2]), ufunc(x[::2]))
    np.testing.assert_array_equal(getattr(kernels, name)(x[:100]), ufunc(x[:100]))
    np.testing.assert_array_equal(getattr(kernels, name)(x.astype(np.float64)), ufunc(x.astype(np.float64)))
    shifted = x.copy()
    getattr(kernels, name)(shifted[1:], out=shifted[:-1])
    np.testing.assert_array_equal(shifted[:-1], ufunc(x[1:]))


@compiled
def test_small_arrays_never_load_the_kernels():
    out = _python("""
        import sys, numpy as np, chainrule as cr
        import chainrule.nn.functional as F
        from chainrule.backend import kernels
        x = cr.tensor(np.random.default_rng(0).standard_normal((128, 10)).astype(np.float32), requires_grad=True)
        F.cross_entropy(F.gelu(x, approximate="tanh"), cr.tensor(np.arange(128) % 10)).backward()
        # relu's kernels are used only where the kernels are loaded already: a large relu does not load them
        big = cr.tensor(np.random.default_rng(1).standard_normal((512, 2048)).astype(np.float32), requires_grad=True)
        big.relu().sum().backward()
        print(kernels._STATE["module"] is None, 'llvmlite' in sys.modules, 'numba' in sys.modules)
    """)
    assert out.split() == ["True", "False", "False"]


@compiled
@pytest.mark.parametrize("layout", ["nchw", "channel_major", "strided"])
def test_relu_kernels_equal_numpy_bit_for_bit(layout):
    kernels.exp(np.zeros(kernels.MIN_SIZE, np.float32))  # kernels loaded, as by a model's GELU or softmax
    rng = np.random.default_rng(3)
    x0 = rng.standard_normal((16, 8, 20, 20)).astype(np.float32)
    x0.flat[:6] = [-0.0, 0.0, np.nan, -np.nan, np.inf, -np.inf]
    g0 = rng.standard_normal(x0.shape).astype(np.float32)
    x0.flat[10:14], g0.flat[10:14] = [-1, -2, 3, 4], [np.inf, np.nan, -np.inf, np.nan]  # masked away or kept
    arrange = {"nchw": lambda a: a, "strided": lambda a: a[:, :, ::2],
               "channel_major": lambda a: np.ascontiguousarray(a.transpose(1, 0, 2, 3)).transpose(1, 0, 2, 3)}[layout]

    def run():
        x = cr.tensor(arrange(x0), requires_grad=True)
        y = F.relu(x)
        y.backward(cr.tensor(arrange(g0)))
        return y.detach().cpu().numpy(), x.grad.cpu().numpy()

    fast, slow = _compiled_and_numpy(run)
    for f, s in zip(fast, slow):
        np.testing.assert_array_equal(f.view(np.int32), s.view(np.int32))  # NaN signs and -0.0 included


@compiled
def test_switched_off_is_numpy_bit_for_bit(numpy_path):
    x = np.random.default_rng(3).standard_normal((64, 100)).astype(np.float32)
    assert not kernels.enabled()
    np.testing.assert_array_equal(cr.tensor(x).tanh().cpu().numpy(), np.tanh(x))
    np.testing.assert_array_equal(cr.tensor(x).exp().cpu().numpy(), np.exp(x))


# ----- each backend function: its compiled loop and its numpy formula agree --------------------------

def _agree(fast, slow, scale=1.0):
    """Arrays from the compiled and the numpy path: NaN at the same places, values within the op tests' tolerance."""
    for f, s in zip(fast, slow):
        assert f.shape == s.shape and f.dtype == s.dtype
        np.testing.assert_array_equal(np.isnan(f), np.isnan(s))
        np.testing.assert_allclose(f, s, rtol=2e-5, atol=2e-6 * scale)


@compiled
def test_relu_and_relu_grad_compiled_equal_numpy():
    kernels.exp(np.zeros(kernels.MIN_SIZE, np.float32))  # relu's loops serve only once the kernels are loaded
    rng = np.random.default_rng(20)
    x = np.ascontiguousarray(rng.standard_normal((32, 40, 64)).astype(np.float32).transpose(1, 0, 2)).transpose(1, 0, 2)
    x.flat[:6] = [-0.0, 0.0, np.nan, -np.nan, np.inf, -np.inf]
    g = np.empty_like(x)  # laid out as x is, as the engine's gradients are
    g[...] = rng.standard_normal(x.shape)
    fast, slow = _compiled_and_numpy(lambda: (kernels.relu(x), kernels.relu_grad(kernels.relu(x), g)))
    np.testing.assert_array_equal(fast[0].view(np.int32), slow[0].view(np.int32))  # bit for bit
    assert fast[0].strides == x.strides  # in x's memory order
    # numpy's masked multiply gives -0.0 where a negative g is masked, the loop +0.0: equal as numbers
    np.testing.assert_array_equal(fast[1], slow[1])
    g.flat[100] = np.inf  # with an inf the numpy path takes where: bit for bit again
    fast, slow = _compiled_and_numpy(lambda: kernels.relu_grad(kernels.relu(x), g))
    np.testing.assert_array_equal(fast.view(np.int32), slow.view(np.int32))


def test_relu_grad_and_where_zero_on_numpy():
    mask = np.array([True, False, True, False])
    g = np.array([1.5, -2.0, np.inf, np.nan], np.float32)
    np.testing.assert_array_equal(kernels.where_zero(mask, g), [1.5, 0.0, np.inf, 0.0])  # no inf * 0 = NaN
    np.testing.assert_array_equal(kernels.where_zero(mask, g[:2].repeat(2)), [1.5, 0.0, -2.0, 0.0])
    np.testing.assert_array_equal(kernels.where_zero(mask, np.arange(4)), [0, 0, 2, 0])
    np.testing.assert_array_equal(kernels.where_zero(mask[:, None], np.full(3, 2.0)),
                                  np.where(mask[:, None], np.full(3, 2.0), 0.0))  # x broadcast: where
    with pytest.raises(ValueError):
        kernels.where_zero(mask, np.ones(3))
    out = np.array([1.0, 0.0, -1.0, 2.0], np.float32)
    np.testing.assert_array_equal(kernels.relu_grad(out, g), [1.5, 0.0, 0.0, np.nan])  # relu'(0) = 0
    assert kernels.relu_grad(np.float32(1.0), np.float32(3.0)) == 3.0  # 0-d


@compiled
@pytest.mark.parametrize("approximate", ["tanh", "none"])
def test_gelu_and_gelu_grad_compiled_equal_numpy(approximate):
    rng = np.random.default_rng(21)
    x = (rng.standard_normal((64, 1024)) * 3).astype(np.float32)
    g = rng.standard_normal(x.shape).astype(np.float32)

    def run():
        out, inner = kernels.gelu(x, approximate)
        return out, kernels.gelu_grad(x, g, approximate, inner), kernels.gelu_grad(x, g, approximate)

    fast, slow = _compiled_and_numpy(run)
    _agree(fast, slow, scale=10.0)
    np.testing.assert_array_equal(slow[1], slow[2])  # the kept erf or tanh values equal those computed again
    kernels.set_enabled(False)
    try:
        slope = kernels.gelu_grad(x, None, approximate)  # the slope alone, as gelu's recorded rule asks for it
    finally:
        kernels.set_enabled(True)
    np.testing.assert_array_equal(slope * g, slow[1])


@compiled
def test_softmax_rows_and_vjp_compiled_equal_numpy():
    rng = np.random.default_rng(22)
    x = _masked_scores(rng).reshape(-1, 40)
    g = rng.standard_normal(x.shape).astype(np.float32)

    def run():
        p = kernels_rows.softmax_rows(x)
        out = np.empty_like(p)
        assert kernels_rows.softmax_vjp_rows(g, p, out) is out
        return p, out

    fast, slow = _compiled_and_numpy(run)
    _agree(fast, slow)


@compiled
@pytest.mark.parametrize("affine", [True, False])
def test_layer_norm_rows_and_vjp_compiled_equal_numpy(affine):
    rng = np.random.default_rng(23)
    x = (rng.standard_normal((512, 128)) * 2 + 1).astype(np.float32)
    w, b = (rng.standard_normal(128).astype(np.float32) for _ in range(2)) if affine else (None, None)
    g = rng.standard_normal((8, 64, 128)).astype(np.float32)  # any shape of x's size

    def run():
        out, mean, rstd = kernels_rows.layer_norm_rows(x, w, b, 1e-5)
        gx, gw, gb = kernels_rows.layer_norm_vjp_rows(g, x, mean, rstd, w)
        no_gx, gw2, gb2 = kernels_rows.layer_norm_vjp_rows(g, x, mean, rstd, w, need_x=False)
        assert no_gx is None and (gw is None) == (w is None)
        np.testing.assert_array_equal(gb2, gb)
        return [a for a in (out, mean, rstd, gx, gw, gb, gw2) if a is not None]

    fast, slow = _compiled_and_numpy(run)
    _agree(fast, slow, scale=100.0)


@compiled
def test_lstm_cell_rows_and_vjp_compiled_equal_numpy_and_float64():
    rng = np.random.default_rng(24)
    B, H = 32, 256  # the lstm workload's step: 32 x 1024 gate pre-activations
    gx, gh = ((rng.standard_normal((B, 4 * H)) * 2).astype(np.float32) for _ in range(2))
    c, dh, dc = (rng.standard_normal((B, H)).astype(np.float32) for _ in range(3))

    def run(gx=gx, gh=gh, c=c, dh=dh, dc=dc):
        act, c_new, tc, hh = kernels_rows.lstm_cell_rows(gx, gh, c)
        return [act, c_new, tc, hh, *kernels_rows.lstm_cell_vjp_rows(dh, dc, act, c, tc)]

    fast, slow = _compiled_and_numpy(run)
    _agree(fast, slow)
    exact = run(*(a.astype(np.float64) for a in (gx, gh, c, dh, dc)))  # float64 never takes the kernels
    for f, e in zip(fast, exact):
        np.testing.assert_allclose(f, e, rtol=1e-5, atol=1e-6)
    i, f_gate, g, o = np.split(exact[0], 4, axis=1)  # the formulas themselves, in float64
    pre = gx.astype(np.float64) + gh.astype(np.float64)
    np.testing.assert_allclose(i, 1 / (1 + np.exp(-pre[:, :H])), rtol=1e-12, atol=1e-15)  # tanh(v/2)/2 + 1/2
    np.testing.assert_allclose(g, np.tanh(pre[:, 2 * H:3 * H]), rtol=1e-12)
    np.testing.assert_allclose(exact[1], f_gate * c + i * g, rtol=1e-12)
    np.testing.assert_allclose(exact[3], o * np.tanh(exact[1]), rtol=1e-12)


# ----- every op that uses a kernel: compiled and numpy paths agree, forward and gradients ----------

def _gpt_like(rng, shape):
    return rng.standard_normal(shape).astype(np.float32)


def _run(fn, arrays):
    """fn's output and the gradients of sum(output * weights) for its float inputs, as numpy arrays."""
    tensors = [cr.tensor(a, requires_grad=a.dtype.kind == "f") for a in arrays]
    out = fn(*tensors)
    weights = np.random.default_rng(99).standard_normal(out.shape).astype(np.float32)
    (out * cr.tensor(weights)).sum().backward()
    return [out.detach().cpu().numpy()] + [t.grad.cpu().numpy() for t in tensors if t.requires_grad]


def _masked_scores(rng):
    scores = _gpt_like(rng, (8, 3, 64, 40)) * 4
    scores[0, 0, 3] = -np.inf  # a fully masked row: NaN on both paths
    scores[1, 2, :, 30:] = -np.inf
    return scores


OP_CASES = {
    "gelu_tanh": (lambda x: F.gelu(x, approximate="tanh"), lambda r: [_gpt_like(r, (64, 512)) * 3]),
    "softmax": (lambda x: F.softmax(x, -1), lambda r: [_masked_scores(r)]),
    "softmax_dim0": (lambda x: F.softmax(x, 0), lambda r: [_gpt_like(r, (3000, 20))]),
    "log_softmax": (lambda x: F.log_softmax(x, -1), lambda r: [_gpt_like(r, (1000, 65)) * 5]),
    "layer_norm": (lambda x, w, b: F.layer_norm(x, (128,), w, b),
                   lambda r: [_gpt_like(r, (8, 64, 128)) * 2 + 1, _gpt_like(r, (128,)), _gpt_like(r, (128,))]),
    "layer_norm_plain": (lambda x: F.layer_norm(x, (32, 4)), lambda r: [_gpt_like(r, (500, 32, 4)) + 3]),
    "attention_causal": (lambda q, k, v: F.scaled_dot_product_attention(q, k, v, is_causal=True),
                         lambda r: [_gpt_like(r, (4, 4, 64, 32)) for _ in range(3)]),
    "cross_entropy": (lambda x, t: F.cross_entropy(x, t),
                      lambda r: [_gpt_like(r, (2048, 65)) * 3, r.integers(0, 65, 2048)]),
    "exp": (lambda x: x.exp(), lambda r: [_gpt_like(r, (40000,)) * 5]),
    "tanh": (lambda x: x.tanh(), lambda r: [_gpt_like(r, (40000,)) * 2]),
    "sigmoid": (lambda x: x.sigmoid(), lambda r: [_gpt_like(r, (40000,)) * 6]),
    "logsumexp": (lambda x: x.logsumexp(1), lambda r: [_gpt_like(r, (1000, 50)) * 8]),
    # ties: relu's zeros share a window's gradient evenly
    "max_pool2x2": (lambda x: F.max_pool2d(x.relu(), 2), lambda r: [_gpt_like(r, (16, 8, 28, 28))]),
    "max_pool2x2_after_conv": (lambda x, w: F.max_pool2d(F.conv2d(x, w, padding=1).relu(), 2),
                               lambda r: [_gpt_like(r, (16, 3, 28, 28)), _gpt_like(r, (8, 3, 3, 3))]),
    # convolution's compiled im2col / col2im: padding read as zeros, no junk columns
    "conv2d_padded_bias": (lambda x, w, b: F.conv2d(x, w, b, padding=1),
                           lambda r: [_gpt_like(r, (16, 8, 20, 20)), _gpt_like(r, (12, 8, 3, 3)), _gpt_like(r, (12,))]),
    "conv2d_stride_dilation_groups": (
        lambda x, w: F.conv2d(x, w, stride=(2, 3), padding=(2, 1), dilation=(2, 1), groups=2),
        lambda r: [_gpt_like(r, (8, 4, 31, 40)), _gpt_like(r, (6, 2, 3, 4))]),
    "conv2d_channel_major_input": (lambda x, w1, w2: F.conv2d(F.conv2d(x, w1, padding=1), w2, padding=(0, 2)),
                                   lambda r: [_gpt_like(r, (8, 3, 24, 24)), _gpt_like(r, (6, 3, 3, 3)),
                                              _gpt_like(r, (5, 6, 5, 3))]),
    "conv2d_input_view": (lambda x, w: F.conv2d(x[:, :, 1:, 2:], w, padding=2),  # not contiguous: numpy path
                          lambda r: [_gpt_like(r, (8, 4, 30, 30)), _gpt_like(r, (4, 4, 3, 3))]),
    "conv1d": (lambda x, w: F.conv1d(x, w, padding=2), lambda r: [_gpt_like(r, (16, 8, 500)), _gpt_like(r, (8, 8, 5))]),
    # the LSTM's fused cell, forward and backward through time, and its contiguous recurrent weight
    "lstm_layer": (lambda x, h0, c0, w_ih, w_hh, b: _recurrent_layer("LSTM", x, h0, c0, w_ih, w_hh, b, b),
                   lambda r: [_gpt_like(r, (5, 32, 16)), _gpt_like(r, (32, 256)), _gpt_like(r, (32, 256)),
                              _gpt_like(r, (1024, 16)) * 0.2, _gpt_like(r, (1024, 256)) * 0.1, _gpt_like(r, (1024,))]),
}


@compiled
@pytest.mark.parametrize("case", sorted(OP_CASES))
def test_op_same_results_with_and_without_kernels(case):
    fn, make = OP_CASES[case]
    arrays = make(np.random.default_rng(7))
    fast, slow = _compiled_and_numpy(lambda: _run(fn, arrays))
    exact = _run(fn, [a.astype(np.float64) if a.dtype.kind == "f" else a for a in arrays])  # no float64 kernels
    for f, s, e in zip(fast, slow, exact):
        np.testing.assert_array_equal(np.isnan(f), np.isnan(s))
        ok = ~np.isnan(e)
        scale = max(1.0, float(np.abs(e[ok]).max()))
        np.testing.assert_allclose(f[ok], s[ok], rtol=2e-5, atol=2e-6 * scale)
        # the compiled path is no less accurate than numpy's against a float64 run
        assert np.abs(f[ok] - e[ok]).max() <= 2 * np.abs(s[ok] - e[ok]).max() + 1e-6 * scale


@compiled
@pytest.mark.parametrize("case", sorted(OP_CASES))
def test_prebuilt_kernels_equal_numba_in_process_bit_for_bit(case):
    # the same machine code by two routes: the object file loaded without numba (the default) and
    # numba's own dispatchers; any slip in the entries' pointers, shapes, strides or scalars shows here
    from chainrule.backend import _numba

    fn, make = OP_CASES[case]
    arrays = make(np.random.default_rng(7))
    prebuilt = kernels._compiled()
    assert prebuilt is not _numba, "the kernels should load from the prebuilt object file"
    first = _run(fn, arrays)
    kernels._STATE["module"] = _numba
    try:
        second = _run(fn, arrays)
    finally:
        kernels._STATE["module"] = prebuilt
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a, b)


@compiled
def test_prebuilt_entries_refuse_arrays_their_kernel_was_not_compiled_for():
    exp_f32 = kernels._compiled().exp_f32
    x = np.ones(8, np.float32)
    for bad in (np.ones(8), np.ones(16, np.float32)[::2], np.ones((2, 4), np.float32), [1.0] * 8):
        with pytest.raises(TypeError, match="exp_f32: expected a C-contiguous float32 array of 1 dims"):
            exp_f32(bad, x)
    with pytest.raises(TypeError, match="takes 2 arguments, got 1"):
        exp_f32(x)
    out = np.empty_like(x)
    exp_f32(x, out)
    np.testing.assert_allclose(out, np.e, rtol=1e-7)


@compiled
def test_kernels_run_in_a_process_that_never_imports_numba():
    out = _python("""
        import sys, numpy as np, chainrule as cr
        import chainrule.nn.functional as F
        from chainrule.backend import kernels
        x = cr.tensor(np.random.default_rng(0).standard_normal((512, 128)).astype(np.float32), requires_grad=True)
        F.softmax(F.gelu(F.layer_norm(x, (128,)), approximate="tanh"), -1).sum().backward()
        print(kernels.enabled(), 'numba' in sys.modules, 'scipy' in sys.modules)
    """)
    assert out.split() == ["True", "False", "False"]


@compiled
def test_the_first_process_builds_into_the_cache_folder_and_the_next_reuses_it(tmp_path):
    script = """
        import numpy as np
        from chainrule.backend import kernels
        x = np.linspace(-5, 5, 40000, dtype=np.float32)
        np.testing.assert_allclose(kernels.tanh(x), np.tanh(x), rtol=2e-7, atol=1e-7)
        print(kernels.enabled())
    """
    assert _python(script, CHAINRULE_CACHE_DIR=str(tmp_path)).strip() == "True"
    built = sorted(p.name for p in tmp_path.iterdir())
    assert [name.rsplit(".", 1)[1] for name in built] == ["json", "o"]  # no temporary files left
    stamps = {p.name: p.stat().st_mtime_ns for p in tmp_path.iterdir()}
    assert _python(script, CHAINRULE_CACHE_DIR=str(tmp_path)).strip() == "True"
    assert {p.name: p.stat().st_mtime_ns for p in tmp_path.iterdir()} == stamps  # loaded, not built again


@compiled
def test_an_unwritable_cache_folder_falls_back_to_numba_in_this_process(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    result = subprocess.run([sys.executable, "-c", textwrap.dedent("""
        import sys, numpy as np
        from chainrule.backend import kernels
        x = np.linspace(-5, 5, 40000, dtype=np.float32)
        np.testing.assert_allclose(kernels.exp(x), np.exp(x), rtol=2e-7)
        print(kernels.enabled(), 'numba' in sys.modules)
    """)], capture_output=True, text=True, timeout=300, env={**os.environ, "CHAINRULE_CACHE_DIR": str(blocker / "cache")})
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["True", "True"]
    assert "prebuilt kernels unavailable" in result.stderr and "a_file" in result.stderr


@compiled
def test_compiled_gelu_keeps_no_second_activation_for_its_backward(numpy_path):
    # the compiled backward computes the tanh again instead of keeping it (PyTorch keeps x only);
    # numpy's path keeps it, as computing it again would cost more than the memory
    import tracemalloc

    x = cr.tensor(np.random.default_rng(2).standard_normal((256, 1024)).astype(np.float32), requires_grad=True,
                  device="cpu")  # the compiled CPU kernel, and host memory traced

    def held_after_forward():
        tracemalloc.start()
        y = F.gelu(x, approximate="tanh")
        held = tracemalloc.get_traced_memory()[0]
        tracemalloc.stop()
        return held, y

    numpy_held, y_slow = held_after_forward()
    kernels.set_enabled(True)
    fast_held, y_fast = held_after_forward()
    assert fast_held < 1.2 * x._data.nbytes < 1.8 * x._data.nbytes < numpy_held
    (g_fast,) = cr.autograd.grad(y_fast.sum(), x)
    kernels.set_enabled(False)
    (g_slow,) = cr.autograd.grad(y_slow.sum(), x)
    x64 = cr.tensor(x._data.astype(np.float64), requires_grad=True, device="cpu")
    (exact,) = cr.autograd.grad(F.gelu(x64, approximate="tanh").sum(), x64)
    # d slope / dt reaches ~3.4 where 1 + t cancels: both paths err there, the compiled one less
    fast_error, slow_error = (np.abs(g.cpu().numpy() - exact.cpu().numpy()).max() for g in (g_fast, g_slow))
    assert fast_error <= slow_error < 1e-6, (fast_error, slow_error)


@compiled
def test_gelu_kernels_keep_their_accuracy_in_the_negative_tail():
    # 0.5 x (1 + tanh u) cancels where tanh u nears -1; the kernels' sigmoid form does not
    x = np.concatenate([np.linspace(-100, -3, 50000), np.linspace(-3, 12, 50000)]).astype(np.float32)
    out, inner = kernels.gelu(x, "tanh")
    assert inner is None  # the compiled loop, which keeps nothing beside x
    slope = kernels.gelu_grad(x, np.ones_like(x), "tanh")
    x64 = x.astype(np.float64)
    u = np.sqrt(2 / np.pi) * (x64 + 0.044715 * x64**3)
    t = np.tanh(u)
    exact = x64 / (1 + np.exp(-2 * u))
    exact_slope = 0.5 * (1 + t) + 0.5 * x64 * (1 - t * t) * np.sqrt(2 / np.pi) * (1 + 3 * 0.044715 * x64**2)
    visible = np.abs(exact) > 1e-6
    np.testing.assert_allclose(out[visible], exact[visible], rtol=4e-6)
    assert np.abs(out[~visible] - exact[~visible]).max() < 1e-11
    np.testing.assert_allclose(slope, exact_slope, rtol=0, atol=3e-7)


@compiled
def test_softmax_kernel_in_float32_weighs_masked_scores_exactly_zero():
    x = np.random.default_rng(9).standard_normal((4096, 64)).astype(np.float32) * 4
    x[:, 50:] = -np.inf  # masked, as causal attention's scores
    x[:, 0] = -95.0  # exp(-95 - max) is below float32's normal range: 0 here, a subnormal in numpy's path
    assert kernels.fused(x) is not None
    out = F.softmax(cr.tensor(x), -1).cpu().numpy()
    assert (out[:, 50:] == 0).all()
    x64 = x.astype(np.float64)
    exact = np.exp(x64 - x64.max(1, keepdims=True))
    exact /= exact.sum(1, keepdims=True)
    np.testing.assert_allclose(out, exact, rtol=1.5e-6, atol=1e-37)  # numpy's path: 1.3e-6 here


@compiled
def test_gelu_second_order_through_the_fused_forward():
    x0 = np.random.default_rng(5).standard_normal(40000).astype(np.float32) * 2

    def grads(x0):
        x = cr.tensor(x0, requires_grad=True)
        (g,) = cr.autograd.grad(F.gelu(x, approximate="tanh").sum(), x, create_graph=True)
        (gg,) = cr.autograd.grad((g * g).sum(), x)
        return g.detach().cpu().numpy(), gg.cpu().numpy()

    fast, slow = _compiled_and_numpy(lambda: grads(x0))
    exact = grads(x0.astype(np.float64))
    # 1 - tanh**2 from a float32 tanh cancels for |x| > 3 on both paths: compare errors, not values
    for f, s, e in zip(fast, slow, exact):
        assert np.abs(f - e).max() <= 2 * np.abs(s - e).max() + 1e-6


@compiled
def test_results_do_not_depend_on_the_thread_count():
    rng = np.random.default_rng(11)
    arrays = [_gpt_like(rng, (16, 64, 128)), _gpt_like(rng, (128,)), _gpt_like(rng, (128,))]
    before = get_workers()
    runs = []
    try:
        for workers in (1, 3):
            set_workers(workers)
            runs.append(_run(lambda x, w, b: F.gelu(F.layer_norm(x, (128,), w, b), approximate="tanh").softmax(-1),
                             arrays))
    finally:
        set_workers(before)
    for one, three in zip(*runs):
        np.testing.assert_array_equal(one, three)


def _python(code: str, **env) -> str:
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                            env={**os.environ, **env}, timeout=300)
    assert result.returncode == 0, result.stderr
    return result.stdout


FALLBACK_SCRIPT = """
    import numpy as np
    import chainrule as cr
    import chainrule.nn.functional as F
    from chainrule.backend import kernels
    x = cr.tensor(np.random.default_rng(0).standard_normal((512, 128)).astype(np.float32), requires_grad=True)
    y = F.softmax(F.gelu(F.layer_norm(x, (128,)), approximate="tanh"), -1).sum()
    y.backward()
    assert np.isfinite(x.grad.cpu().numpy()).all()
    np.testing.assert_array_equal(x.detach().tanh().cpu().numpy(), np.tanh(x.detach().cpu().numpy()))
    print(kernels.enabled())
"""


def test_without_numba_everything_runs_on_numpy():
    # numba and its llvmlite made unimportable, as on a machine without the 'fast' extra
    unimportable = "import sys; sys.modules['numba'] = sys.modules['llvmlite'] = None\n"
    assert _python(unimportable + textwrap.dedent(FALLBACK_SCRIPT)).strip() == "False"


@compiled
def test_environment_variable_switches_the_kernels_off():
    assert _python(FALLBACK_SCRIPT, CHAINRULE_KERNELS="numpy").strip() == "False"



@compiled
def test_a_second_process_loads_every_kernel_from_the_disk_cache():
    # numba recompiles what its cache cannot reuse (closures, for one) in every process: seconds of
    # start-up each time, and a cache folder that grows
    script = """
        from numba.core.registry import CPUDispatcher
        from chainrule.backend import _numba
        kernels = [f for f in vars(_numba).values() if isinstance(f, CPUDispatcher)]
        print(len(kernels), sum(sum(f.stats.cache_misses.values()) for f in kernels))
    """
    _python(script)  # fills the cache if this is the first use on this machine
    count, misses = _python(script).split()
    assert int(count) >= 10 and int(misses) == 0


@compiled
def test_conv_weight_gradient_from_kept_columns_when_the_kernels_are_switched_off_before_backward():
    rng = np.random.default_rng(4)
    x0, w0 = _gpt_like(rng, (16, 8, 20, 20)), _gpt_like(rng, (12, 8, 3, 3))

    def weight_grad(switch_off_before_backward):
        w = cr.tensor(w0, requires_grad=True)
        y = F.conv2d(cr.tensor(x0), w, padding=1)  # the forward keeps the columns (no junk, no padding)
        kernels.set_enabled(not switch_off_before_backward)
        try:
            y.backward(cr.ones(y.shape))
        finally:
            kernels.set_enabled(True)
        return w.grad.cpu().numpy()

    np.testing.assert_allclose(weight_grad(True), weight_grad(False), rtol=1e-5, atol=1e-4)


@compiled
def test_conv_weight_gradient_the_same_when_the_columns_are_too_large_to_keep(monkeypatch):
    from chainrule.ops import conv

    rng = np.random.default_rng(6)
    x0, w0 = _gpt_like(rng, (16, 8, 20, 20)), _gpt_like(rng, (12, 8, 3, 3))

    def weight_grad():
        w = cr.tensor(w0, requires_grad=True)
        F.conv2d(cr.tensor(x0), w, padding=1).sum().backward()
        return w.grad.cpu().numpy()

    kept = weight_grad()
    monkeypatch.setattr(conv, "_KEEP_COLUMNS_BYTES", 0)  # computed again in the backward
    np.testing.assert_array_equal(weight_grad(), kept)


@compiled
@pytest.mark.parametrize("with_nan", [False, True])
def test_max_pool_2x2_and_a_recorded_backward_match_the_numpy_path(with_nan):
    x0 = np.maximum(np.random.default_rng(8).standard_normal((8, 8, 32, 32)).astype(np.float32), 0)
    if with_nan:  # windows whose maximum is NaN route their gradient to the NaNs (the numpy path does it)
        x0[0, 0, 0, :3] = np.nan
    g0 = np.random.default_rng(9).standard_normal((8, 8, 16, 16)).astype(np.float32)

    def run():
        x = cr.tensor(x0, requires_grad=True)
        y = F.max_pool2d(x, 2)
        g = cr.tensor(g0, requires_grad=True)
        (recorded,) = cr.autograd.grad(y, x, g, create_graph=True)  # the rule's graph-building form
        plain = cr.tensor(x0, requires_grad=True)
        F.max_pool2d(plain, 2).backward(cr.tensor(g0))
        return y.detach().cpu().numpy(), recorded.detach().cpu().numpy(), plain.grad.cpu().numpy()

    fast, slow = _compiled_and_numpy(run)
    np.testing.assert_array_equal(fast[1], fast[2])  # the compiled backward equals the recorded one
    for f, s in zip(fast, slow):
        np.testing.assert_array_equal(f, s)  # the same ties, the same shares: bit for bit
