"""The CUDA kernels (chainrule.backend.gpu_kernels) against the numpy formulas they stand in for.

Three kinds of test:
- every kernel's CUDA source compiles with NVRTC for sm_90 (H100), in float32 and float64: needs CuPy and the
  NVRTC library, not a GPU;
- the dispatch seam: numpy arrays and the stand-in device's arrays take the numpy formulas, and an array that
  :func:`chainrule.backend.gpu.on_gpu` calls a GPU array reaches its kernel from every backend function that
  has one (on any machine);
- each kernel against its numpy reference (random inputs, odd sizes, float32 and float64) on a GPU (skipped
  without one), and the same tests with the CUDA source compiled as C++ and run on the CPU (cuda_emulator.py:
  the kernels' indexing, reductions and synchronization, not CUDA's math library); TF32 switched by
  ``backends.cuda.matmul.allow_tf32`` and the scatter-add (cupyx) on a GPU only.
"""

import importlib.util
import math

import cuda_emulator  # beside this file
import numpy as np
import pytest

import chainrule as cr
from chainrule.backend import gpu, gpu_kernels, kernels, rows, scatter, standin
from chainrule.backend import windows as W

rng = np.random.default_rng(0)


@pytest.fixture
def kernels_switch_restored():
    """kernels.set_enabled as it was, after the test."""
    before = kernels._STATE["wanted"]
    yield
    kernels.set_enabled(before)


# ----- the CUDA source compiles (no GPU needed) ------------------------------------------------------------

def _nvrtc():
    if importlib.util.find_spec("cupy") is None:
        pytest.skip("CuPy is not installed (pip install cupy-cuda12x)")
    from cupy.cuda import nvrtc

    try:
        nvrtc.getVersion()
    except Exception as error:  # the NVRTC library is a separate wheel (nvidia-cuda-nvrtc-cu12)
        pytest.skip(f"the NVRTC library is not available: {type(error).__name__}: {str(error).splitlines()[0]}")
    return nvrtc


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_every_kernel_compiles_for_sm90(dtype):
    nvrtc = _nvrtc()
    program = nvrtc.createProgram(gpu_kernels.source_for(dtype), "gpu_kernels.cu", [], [])
    try:
        nvrtc.compileProgram(program, ["-arch=compute_90", "--std=c++14"])
    except Exception:
        pytest.fail(f"NVRTC rejected the {np.dtype(dtype).name} source:\n{nvrtc.getProgramLog(program)}")
    ptx = nvrtc.getPTX(program)
    ptx = ptx.decode() if isinstance(ptx, bytes) else ptx
    entries = {chunk.split("(")[0].strip() for chunk in ptx.split(".entry ")[1:]}
    assert entries == set(gpu_kernels.KERNEL_NAMES)
    if dtype is np.float32:  # float32 kernels compute in float: no double-precision instruction slipped in
        assert ".f64" not in ptx


# ----- the dispatch seam (any machine) ---------------------------------------------------------------------

@pytest.fixture
def stand_in():
    """The stand-in device installed (for this test only, unless the suite runs on it), so that its arrays
    compute in its namespace."""
    if gpu.install() is not None:
        pytest.skip("a real GPU holds the cuda device here, so the stand-in cannot be installed beside it")
    was_installed = standin.installed()
    standin.install()
    yield standin.namespace
    if not was_installed:
        standin.uninstall()


def _conv_geometry():
    return W.Windows.for_conv((2, 3, 7, 6), (3, 2), (2, 1), (1, 2), (1, 0, 2, 1), "test")


def _pool_geometry():
    return W.Windows.for_pool((2, 3, 7, 6), (3, 2), (2, 1), (1, 1), (1, 1), True, "test")


def _seam_calls(to_device):
    """Run every backend function that has a GPU kernel on arrays made by ``to_device`` (from host arrays)."""
    x = to_device(rng.standard_normal((5, 33)))
    w, b = to_device(rng.standard_normal(33)), to_device(rng.standard_normal(33))
    p = rows.softmax_rows(x)
    rows.softmax_vjp_rows(x, p)
    out, mean, rstd = rows.layer_norm_rows(x, w, b)
    rows.layer_norm_vjp_rows(x, x, mean, rstd, w)
    kernels.gelu(x, "none")
    kernels.gelu_grad(x, x, "tanh")
    conv, pool = _conv_geometry(), _pool_geometry()
    image = to_device(rng.standard_normal(conv.shape))
    cols = W.window_columns(image, conv)
    W.add_window_columns(cols, conv)
    weight = to_device(rng.standard_normal((4, 3, 3, 2)))
    y, _ = W.convolve(image, weight, None, conv, 1)
    W.convolve_transpose(y, weight, conv, 1)
    pooled = W.max_pool(to_device(rng.standard_normal(pool.shape)), pool)
    W.max_pool_grad(to_device(rng.standard_normal(pool.shape)), pooled, pooled, pool)
    W.window_scatter(W.window_gather(image, pool), pool)
    scatter.add_rows_at(x, to_device(np.array([0, 2, 2, 1, 0])), 3)


SEAM_KERNELS = ["softmax_rows", "softmax_vjp_rows", "layer_norm_rows", "layer_norm_vjp_rows", "gelu", "gelu_grad",
                "window_columns", "add_window_columns", "window_sum", "window_spread", "max_pool", "max_pool_grad",
                "add_rows_at"]


@pytest.fixture
def gpu_kernel_calls(monkeypatch):
    """The GPU kernels replaced by recorders (no GPU here to run them): the names called, in order."""
    calls = []

    def recorder(name):
        def record(*args, **kwargs):
            calls.append(name)
            raise _Reached(name)
        return record

    for name in SEAM_KERNELS:
        monkeypatch.setattr(gpu_kernels, name, recorder(name))
    monkeypatch.setattr(gpu_kernels.WINDOW_COLUMNS, "window_columns_f32", recorder("window_columns_f32"), raising=False)
    return calls


class _Reached(Exception):
    pass


@pytest.mark.parametrize("make", ["numpy", "stand-in"])
def test_host_and_stand_in_arrays_take_the_numpy_formulas(make, gpu_kernel_calls, stand_in):
    to_device = np.asarray if make == "numpy" else stand_in.asarray
    assert not gpu.on_gpu(to_device(np.zeros(3)))
    _seam_calls(to_device)
    assert gpu_kernel_calls == []


def test_an_array_on_the_gpu_reaches_every_kernel(gpu_kernel_calls, monkeypatch, stand_in):
    # the stand-in's array type plays CuPy's: every backend function must hand it to its kernel
    monkeypatch.setattr(gpu, "_ARRAY_TYPE", [standin.StandInArray])
    reached = []
    for call in _each_seam_call():
        with pytest.raises(_Reached) as hit:
            call(stand_in.asarray)
        reached.append(str(hit.value))
    assert reached == ["softmax_rows", "softmax_vjp_rows", "layer_norm_rows", "layer_norm_vjp_rows", "gelu",
                       "gelu_grad", "window_columns", "add_window_columns", "window_columns_f32",
                       "window_columns_f32", "max_pool", "max_pool_grad", "window_sum", "window_spread",
                       "add_rows_at"]


def test_switched_off_kernels_leave_gpu_arrays_to_the_formulas(monkeypatch, kernels_switch_restored, stand_in):
    monkeypatch.setattr(gpu, "_ARRAY_TYPE", [standin.StandInArray])
    assert gpu_kernels.takes(stand_in.zeros((2, 3)))
    kernels.set_enabled(False)
    assert not gpu_kernels.takes(stand_in.zeros((2, 3)))
    assert not gpu_kernels.takes_any_layout(stand_in.zeros((2, 3)))


def _each_seam_call():
    """One call per kernel, each a function of ``to_device`` (inputs that need other kernels' outputs are made
    with numpy on the host, then moved)."""
    conv, pool = _conv_geometry(), _pool_geometry()
    x, w, b = rng.standard_normal((5, 33)), rng.standard_normal(33), rng.standard_normal(33)
    p = rows.softmax_rows(x)
    _, mean, rstd = rows.layer_norm_rows(x, w, b)
    image, weight = rng.standard_normal(conv.shape), rng.standard_normal((4, 3, 3, 2))
    y = W.convolve(image, weight, None, conv, 1)[0]
    cols = W.window_columns(image, conv)
    pool_x = rng.standard_normal(pool.shape)
    pooled = W.max_pool(pool_x, pool)
    return [
        lambda d: rows.softmax_rows(d(x)),
        lambda d: rows.softmax_vjp_rows(d(x), d(p)),
        lambda d: rows.layer_norm_rows(d(x), d(w), d(b)),
        lambda d: rows.layer_norm_vjp_rows(d(x), d(x), d(mean), d(rstd), d(w)),
        lambda d: kernels.gelu(d(x), "none"),
        lambda d: kernels.gelu_grad(d(x), d(x), "tanh"),
        lambda d: W.window_columns(d(image), conv),
        lambda d: W.add_window_columns(d(cols), conv),
        lambda d: W.convolve(d(image), d(weight), None, conv, 1),
        lambda d: W.convolve_transpose(d(y), d(weight), conv, 1),
        lambda d: W.max_pool(d(pool_x), pool),
        lambda d: W.max_pool_grad(d(pool_x), d(pooled), d(pooled), pool),
        lambda d: W.window_gather(d(pool_x), pool, scale=0.5),
        lambda d: W.window_scatter(d(pooled), pool, scale=0.5),
        lambda d: scatter.add_rows_at(d(x), d(np.array([0, 2, 2, 1, 0])), 3),
    ]


# ----- each kernel against its numpy reference: on a GPU, and emulated on the CPU --------------------------

@pytest.fixture
def real_gpu():
    if gpu.install() is None:
        pytest.skip("needs a CUDA GPU with CuPy (cupy-cuda12x); none here")
    return gpu.cupy_module()


@pytest.fixture(params=["cuda", "emulated"])
def cp(request, monkeypatch):
    """The array module the kernels run on: CuPy on a real GPU, or the kernels' CUDA source compiled for the CPU
    (tests/backend/cuda_emulator.py) behind the stand-in device's arrays, which the dispatch then takes for GPU
    arrays. Each test runs in both modes where it can."""
    if request.param == "cuda":
        return request.getfixturevalue("real_gpu")
    reason = cuda_emulator.available()
    if reason:
        pytest.skip(reason)
    namespace = request.getfixturevalue("stand_in")
    monkeypatch.setattr(gpu, "_ARRAY_TYPE", [standin.StandInArray])
    monkeypatch.setattr(gpu_kernels, "cupy_module", lambda: namespace)
    LAUNCHED.clear()

    def emulated(name, dtype):
        LAUNCHED.append(name)
        return cuda_emulator.kernel(name, dtype)

    monkeypatch.setattr(gpu_kernels, "_kernel", emulated)
    return namespace


LAUNCHED: list[str] = []  # the emulated kernels launched in the current test


DTYPES = [np.float32, np.float64]


def _tolerance(dtype):
    return {"rtol": 2e-5, "atol": 2e-6} if dtype == np.float32 else {"rtol": 1e-12, "atol": 1e-13}


def _on_gpu_and_host(cp, function, *arrays, **kwargs):
    """``function`` on GPU copies of ``arrays`` (its CUDA kernel), then on the host arrays with numpy's formulas;
    each result (or each of a tuple of results) as a pair of host arrays."""
    device = function(*(cp.asarray(a) if isinstance(a, np.ndarray) else a for a in arrays), **kwargs)
    before = kernels._STATE["wanted"]
    kernels.set_enabled(False)
    try:
        host = function(*arrays, **kwargs)
    finally:
        kernels.set_enabled(before)
    pairs = zip(device, host) if isinstance(host, tuple) else [(device, host)]
    return [(None if d is None else cp.asnumpy(d), h) for d, h in pairs if not (d is None and h is None)]


def _agree(cp, dtype, function, *arrays, **kwargs):
    for device, host in _on_gpu_and_host(cp, function, *arrays, **kwargs):
        assert device is not None and device.dtype == host.dtype and device.shape == host.shape
        scale = max(1.0, float(np.nanmax(np.abs(host), initial=0.0)))
        tol = _tolerance(dtype)
        np.testing.assert_allclose(device, host, rtol=tol["rtol"], atol=tol["atol"] * scale)


def _random(shape, dtype, scale=1.0):
    return (scale * rng.standard_normal(shape)).astype(dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("approximate", ["none", "tanh"])
@pytest.mark.parametrize("shape", [(1,), (7, 13), (3, 1000, 37)])
def test_gelu_and_its_gradient(cp, dtype, approximate, shape):
    x = _random(shape, dtype, 3.0)
    _agree(cp, dtype, lambda a: kernels.gelu(a, approximate)[0], x)
    _agree(cp, dtype, lambda a, g: kernels.gelu_grad(a, g, approximate), x, _random(shape, dtype))
    _agree(cp, dtype, lambda a: kernels.gelu_grad(a, None, approximate), x)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(1, 1), (3, 65), (257, 31), (2, 4097)])
def test_softmax_rows_and_vjp(cp, dtype, shape):
    x = _random(shape, dtype, 4.0)
    _agree(cp, dtype, rows.softmax_rows, x)
    p = rows.softmax_rows(x)
    _agree(cp, dtype, rows.softmax_vjp_rows, _random(shape, dtype), p)


def test_softmax_rows_of_minus_inf_and_nan_give_nan(cp):
    x = np.array([[-np.inf, -np.inf, -np.inf], [0.0, np.nan, 1.0], [1.0, 2.0, -np.inf]], np.float32)
    device = cp.asnumpy(rows.softmax_rows(cp.asarray(x)))
    assert np.isnan(device[:2]).all()
    np.testing.assert_allclose(device[2], rows.softmax_rows(x)[2], rtol=1e-6)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(1, 1), (5, 33), (300, 512), (3, 4099)])
@pytest.mark.parametrize("affine", ["none", "weight", "both"])
def test_layer_norm_rows_and_vjp(cp, dtype, shape, affine):
    x = _random(shape, dtype, 2.0) + 3.0
    weight = _random(shape[1], dtype) if affine != "none" else None
    bias = _random(shape[1], dtype) if affine == "both" else None
    _agree(cp, dtype, lambda a, *p: rows.layer_norm_rows(a, *p, eps=1e-5), x, weight, bias)
    _, mean, rstd = rows.layer_norm_rows(x, weight, bias)
    g = _random(shape, dtype)
    for need_x in (True, False):
        _agree(cp, dtype, lambda *a, need_x=need_x: rows.layer_norm_vjp_rows(*a, need_x=need_x), g, x, mean, rstd, weight)


# (x shape, weight shape, stride, padding (top, bottom, left, right), dilation, groups)
CONV_CASES = [
    ((2, 3, 7, 6), (4, 3, 3, 2), (2, 1), (1, 0, 2, 1), (1, 2), 1),
    ((3, 4, 11, 9), (6, 2, 3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 2),
    ((1, 2, 5, 5), (2, 2, 5, 5), (1, 1), (2, 2, 2, 2), (1, 1), 1),
    ((4, 5, 13, 10), (3, 5, 2, 3), (3, 2), (0, 0, 1, 1), (2, 1), 1),
]


def _channels_major(a):
    return np.ascontiguousarray(a.transpose(1, 0, 2, 3)).transpose(1, 0, 2, 3)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", range(len(CONV_CASES)))
def test_window_columns_and_convolution(cp, dtype, case):
    shape, wshape, stride, pad, dilation, groups = CONV_CASES[case]
    geom = W.Windows.for_conv(shape, wshape[2:], stride, dilation, pad, "test")
    x, weight, bias = _random(shape, dtype), _random(wshape, dtype), _random(wshape[0], dtype)
    _agree(cp, dtype, lambda a: W.window_columns(a, geom), x)
    cols = _random((shape[0], shape[1] * wshape[2] * wshape[3], geom.out[0] * geom.out[1]), dtype)
    _agree(cp, dtype, lambda c: W.add_window_columns(c, geom), cols)
    for image in (x, _channels_major(x)):
        _agree(cp, dtype, lambda a, w, b: W.convolve(a, w, b, geom, groups)[0], image, weight, bias)
    g = _random((shape[0], wshape[0]) + geom.out, dtype)
    _agree(cp, dtype, lambda g, w: W.convolve_transpose(g, w, geom, groups), g, weight)
    _agree(cp, dtype, lambda a, g: W.convolve_weight_grad(a, g, geom, groups), x, g)


# (shape, kernel, stride, dilation, padding, ceil_mode)
POOL_CASES = [
    ((2, 3, 8, 8), (2, 2), (2, 2), (1, 1), (0, 0), False),
    ((2, 3, 7, 6), (3, 2), (2, 1), (1, 1), (1, 1), True),
    ((1, 4, 9, 11), (3, 3), (2, 3), (2, 1), (1, 0), False),
    ((3, 2, 5, 5), (5, 5), (1, 1), (1, 1), (2, 2), False),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", range(len(POOL_CASES)))
def test_pooling_forward_and_gradient(cp, dtype, case):
    shape, kernel, stride, dilation, padding, ceil_mode = POOL_CASES[case]
    geom = W.Windows.for_pool(shape, kernel, stride, dilation, padding, ceil_mode, "test")
    x = _random(shape, dtype)
    x[0, 0, :2, :2] = 0.5  # ties
    x[-1, -1, -1, -1] = np.nan
    out_shape = shape[:2] + geom.out
    for image in (x, _channels_major(x)):
        _agree(cp, dtype, lambda a: W.max_pool(a, geom), image)
        pooled = W.max_pool(image, geom)
        _agree(cp, dtype, lambda a, o, g: W.max_pool_grad(a, o, g, geom), image, pooled, _random(out_shape, dtype))
    scale = _random(geom.out, dtype)
    on_device = cp.asarray(scale)
    for image in (x, _channels_major(x)):
        _agree(cp, dtype, lambda a: W.window_gather(a, geom, scale=on_device if gpu.on_gpu(a) else scale), image)
    _agree(cp, dtype, lambda g: W.window_scatter(g, geom, scale=on_device if gpu.on_gpu(g) else scale,
                                                 channels_major=True), _random(out_shape, dtype))


@pytest.mark.parametrize("dtype", DTYPES)
def test_add_rows_at(real_gpu, dtype):  # cupyx.scatter_add: not emulated
    values = _random((1001, 7), dtype)
    index = rng.integers(0, 13, 1001)
    _agree(real_gpu, dtype, lambda v, i: scatter.add_rows_at(v, i, 13), values, index)


def test_tf32_follows_allow_tf32(real_gpu):
    cp = real_gpu
    a, b = _random((1024, 1024), np.float32), _random((1024, 1024), np.float32)
    exact = a.astype(np.float64) @ b.astype(np.float64)

    def error():
        product = cp.asnumpy(cp.asarray(a) @ cp.asarray(b))
        return float(np.abs(product - exact).max() / np.abs(exact).max())

    assert not cr.backends.cuda.matmul.allow_tf32
    full = error()
    cr.backends.cuda.matmul.allow_tf32 = True
    try:
        reduced = error()
    finally:
        cr.backends.cuda.matmul.allow_tf32 = False
    assert full < 1e-5 < reduced  # TF32 keeps 10 mantissa bits: errors near 1e-3 of the largest value
    assert error() == pytest.approx(full)
    assert math.isfinite(reduced)


class _SmallNet(cr.nn.Module):
    """A convolution, both poolings, layer norm, GELU (both forms), softmax and attention: every fused kernel
    on its way through the ops."""

    def __init__(self):
        super().__init__()
        self.conv = cr.nn.Conv2d(2, 4, 3, padding=1)
        self.pool, self.avg = cr.nn.MaxPool2d(2), cr.nn.AvgPool2d(3, 2, padding=1, count_include_pad=False)
        self.norm = cr.nn.LayerNorm(16)
        self.head = cr.nn.Linear(16, 5)

    def forward(self, x):
        h = self.avg(self.pool(cr.relu(self.conv(x)))).flatten(1)  # (N, 4, 8, 8) -> (N, 16)
        h = cr.nn.functional.gelu(self.norm(h)) + cr.nn.functional.gelu(h, approximate="tanh")
        q = h.reshape(-1, 1, 4, 4)
        h = h + cr.nn.functional.scaled_dot_product_attention(q, q, q, is_causal=True).flatten(1)
        h = h * cr.softmax(h.reshape(-1, 4, 4), -1).flatten(1)
        return self.head(h)


@pytest.mark.parametrize("dtype", [cr.float32, cr.float64])
def test_a_small_model_computes_the_same_through_the_kernels(cp, dtype):
    cr.manual_seed(0)
    host_model = _SmallNet().to("cpu", dtype)  # the numpy formulas
    device_model = _SmallNet().to("cpu", dtype)
    device_model.load_state_dict(host_model.state_dict())
    device_model.to("cuda")
    x = cr.tensor(_random((3, 2, 8, 8), np.float64), device="cpu").to(dtype)
    labels = cr.tensor(np.array([0, 4, 2]), device="cpu")
    results = []
    for model, device in ((host_model, "cpu"), (device_model, "cuda")):
        inputs = x.to(device).detach().requires_grad_()
        loss = cr.nn.functional.cross_entropy(model(inputs), labels.to(device))
        loss.backward()
        results.append([loss.detach().cpu().numpy(), inputs.grad.cpu().numpy()]
                       + [p.grad.cpu().numpy() for p in model.parameters()])
    tol = _tolerance(np.float32 if dtype == cr.float32 else np.float64)
    for device_value, host_value in zip(results[1], results[0]):
        np.testing.assert_allclose(device_value, host_value, rtol=100 * tol["rtol"], atol=100 * tol["atol"])
    if cuda_emulator.available() is None and not gpu.cupy_module():
        assert {"im2col", "col2im", "window_reduce", "max_pool_shares", "max_pool_grad", "layer_norm_rows",
                "layer_norm_vjp_rows", "gelu", "gelu_grad", "softmax_rows", "softmax_vjp_rows"} <= set(LAUNCHED)


def test_allow_tf32_and_the_float32_matmul_precision_are_one_setting_as_in_pytorch():
    # PyTorch's legacy API (torch 2.13 checked by hand; it refuses some mixes with its newer fp32_precision API,
    # so it is not called here): allow_tf32 True reads back "high", False "highest"; any precision but
    # "highest" reads back as allow_tf32
    before = cr.get_float32_matmul_precision()
    seen = []
    try:
        for step in ("high", False, True, "medium", "highest"):
            if isinstance(step, bool):
                cr.backends.cuda.matmul.allow_tf32 = step
            else:
                cr.set_float32_matmul_precision(step)
            seen.append((cr.backends.cuda.matmul.allow_tf32, cr.get_float32_matmul_precision()))
    finally:
        cr.set_float32_matmul_precision(before)
    assert seen == [(True, "high"), (False, "highest"), (True, "high"), (True, "medium"), (False, "highest")]
    with pytest.raises(RuntimeError, match="'highest', 'high' or 'medium'"):
        cr.set_float32_matmul_precision("fastest")
