"""Pooling layers beyond max/avg 1-d/2-d (adaptive max, max unpooling, power-average) and the 3-d
convolution and pooling layers: values and gradients against PyTorch (float64 to 1e-10, float32) over a
grid of settings, return_indices, unbatched inputs, parameter names, init and repr, error messages, and
the compiled kernels switched off (``CHAINRULE_KERNELS=numpy``) against the default.
Gradcheck / gradgradcheck of the functional forms are the shared table's "conv" cases (tests/ops)."""

import itertools

import numpy as np
import pytest

import chainrule as cr
from chainrule import nn
from chainrule.backend import kernels
from chainrule.nn import functional as F

torch = pytest.importorskip("torch")
TF = torch.nn.functional

TOL = {"float32": dict(rtol=1e-4, atol=1e-5), "float64": dict(rtol=1e-10, atol=1e-12)}


def distinct(shape, seed=0):
    """Values without ties (max pooling's gradient is then unique)."""
    rng = np.random.default_rng(seed)
    n = int(np.prod(shape))
    return (rng.permutation(n) * 0.37 - n * 0.15 + rng.uniform(-0.05, 0.05, n)).reshape(shape)


def run_both(ours, theirs, arrays, dtype, outputs=1):
    """Values (and indices) and each input's gradient for one random cotangent, against PyTorch."""
    xs = [cr.tensor(a, dtype=dtype, requires_grad=True) for a in arrays]
    ts = [torch.tensor(a, dtype=getattr(torch, dtype), requires_grad=True) for a in arrays]
    out, expected = ours(*xs), theirs(*ts)
    if isinstance(expected, tuple):
        out, index = out
        expected, t_index = expected
        assert index.dtype.name == "int64"
        np.testing.assert_array_equal(index.cpu().numpy(), t_index.cpu().numpy())
    assert tuple(out.shape) == tuple(expected.shape) and out.dtype.name == dtype
    np.testing.assert_allclose(out.detach().cpu().numpy(), expected.detach().cpu().numpy(), **TOL[dtype])
    seed = np.random.default_rng(1).standard_normal(tuple(expected.shape))
    out.backward(cr.tensor(seed, dtype=dtype))
    expected.backward(torch.tensor(seed, dtype=getattr(torch, dtype)))
    for a, b in zip(xs, ts):
        np.testing.assert_allclose(a.grad.cpu().numpy(), b.grad.cpu().numpy(), **TOL[dtype])


def pair(name, *args, **kw):
    """The same module built in chainrule and in torch."""
    return getattr(nn, name)(*args, **kw), getattr(torch.nn, name)(*args, **kw)


DTYPES = ["float64", "float32"]


# ----- adaptive max pooling ----------------------------------------------------------------------

@pytest.mark.oracle
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("spatial, shape, size", [
    (2, (2, 3, 7, 5), (3, 2)), (2, (2, 3, 4, 4), 2), (2, (1, 2, 5, 5), (5, None)), (2, (3, 6, 9), (4, 7)),
    (2, (1, 1, 3, 3), (5, 6)), (1, (2, 2, 7), 3), (1, (3, 9), 4), (1, (2, 5), 5),
    (3, (2, 3, 5, 4, 6), (2, 3, 4)), (3, (2, 4, 5, 3), 2), (3, (1, 1, 2, 3, 2), (3, None, 1))])
@pytest.mark.parametrize("return_indices", [False, True])
def test_adaptive_max_pool_matches_torch(dtype, spatial, shape, size, return_indices):
    ours, theirs = pair(f"AdaptiveMaxPool{spatial}d", size, return_indices=return_indices)
    run_both(ours, theirs, [distinct(shape)], dtype)


def test_adaptive_max_pool_indices_pick_the_first_maximum_and_nans():
    x = np.array([[[1.0, 3.0, 3.0, 0.0, np.nan, 2.0]]])
    out, index = F.adaptive_max_pool1d(cr.tensor(x), 2, return_indices=True)
    t_out, t_index = TF.adaptive_max_pool1d(torch.tensor(x), 2, return_indices=True)
    np.testing.assert_array_equal(index.cpu().numpy(), t_index.cpu().numpy())
    np.testing.assert_array_equal(out.cpu().numpy(), t_out.cpu().numpy())


# ----- max unpooling -----------------------------------------------------------------------------

@pytest.mark.oracle
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("spatial, shape, kernel, stride, padding, with_size", [
    (2, (2, 3, 4, 6), 2, None, 0, False), (2, (2, 5, 5), 2, 3, 1, True), (2, (1, 2, 6, 7), (2, 3), (2, 3), (1, 0), True),
    (1, (2, 3, 8), 2, None, 0, False), (1, (3, 7), 3, 3, 1, True), (1, (1, 2, 9), 2, 4, 1, True),
    (3, (2, 2, 4, 6, 4), 2, None, 0, False), (3, (2, 5, 4, 5), 2, 3, 1, True),
    (3, (1, 2, 5, 6, 7), (2, 3, 2), (2, 3, 3), (1, 0, 1), True)])
def test_max_unpool_matches_torch(dtype, spatial, shape, kernel, stride, padding, with_size):
    size = tuple(shape[-spatial:]) if with_size else None
    pool = (getattr(nn, f"MaxPool{spatial}d")(kernel, stride, padding, return_indices=True),
            getattr(torch.nn, f"MaxPool{spatial}d")(kernel, stride, padding, return_indices=True))
    unpool = pair(f"MaxUnpool{spatial}d", kernel, stride, padding)

    def through(p, u):
        return lambda x: u(*p(x), output_size=size)

    run_both(through(pool[0], unpool[0]), through(pool[1], unpool[1]), [distinct(shape)], dtype)


def test_max_unpool_errors_match_torch():
    x = cr.tensor(np.ones((1, 1, 2, 2)))
    with pytest.raises(RuntimeError, match="int64"):
        F.max_unpool2d(x, cr.zeros(1, 1, 2, 2), 2)
    with pytest.raises(RuntimeError, match="invalid max index: 9"):
        F.max_unpool2d(x, cr.tensor(np.full((1, 1, 2, 2), 9)), 2, output_size=(3, 3))
    with pytest.raises(ValueError, match="must be between"):
        F.max_unpool2d(x, cr.zeros(1, 1, 2, 2, dtype=cr.int64), 2, output_size=(7, 7))
    with pytest.raises(ValueError, match="2 or 4 elements"):
        F.max_unpool2d(x, cr.zeros(1, 1, 2, 2, dtype=cr.int64), 2, output_size=(4,))
    with pytest.raises(RuntimeError, match="same as that of the input"):
        F.max_unpool2d(x, cr.zeros(1, 1, 2, 3, dtype=cr.int64), 2)


# ----- power-average pooling ---------------------------------------------------------------------

@pytest.mark.oracle
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("norm_type, kernel, stride, ceil_mode", list(itertools.product(
    [1.0, 2.0, 3.5, float("inf")], [2, 3], [None, 1, 2], [False, True])))
@pytest.mark.parametrize("spatial", [1, 2, 3])
def test_lp_pool_matches_torch(dtype, spatial, norm_type, kernel, stride, ceil_mode):
    shape = {1: (2, 3, 7), 2: (2, 3, 7, 6), 3: (2, 2, 5, 6, 4)}[spatial]
    ours, theirs = pair(f"LPPool{spatial}d", norm_type, kernel, stride, ceil_mode)
    x = np.abs(distinct(shape)) + 0.1
    run_both(ours, theirs, [x], dtype)


# ----- fractional max pooling ---------------------------------------------------------------------

def _samples(shape, spatial, seed=2):
    planes = shape[:2] if len(shape) == spatial + 2 else (1, shape[0])
    return np.random.default_rng(seed).random(planes + (spatial,))


@pytest.mark.oracle
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("spatial, shape, kernel, kw", [
    (2, (2, 3, 9, 8), 2, {"output_size": (4, 5)}), (2, (2, 3, 9, 8), (3, 2), {"output_size": (7, 3)}),
    (2, (2, 3, 9, 8), 3, {"output_ratio": (0.5, 0.7)}), (2, (3, 7, 6), 2, {"output_size": (6, 5)}),  # unbatched
    (2, (1, 2, 5, 5), 1, {"output_size": 5}), (2, (2, 1, 6, 4), 2, {"output_size": (1, 3)}),
    (3, (2, 2, 6, 7, 5), 2, {"output_size": (3, 4, 2)}), (3, (2, 2, 6, 7, 5), (3, 1, 2), {"output_ratio": 0.5}),
    (3, (2, 5, 6, 7), (2, 3, 1), {"output_size": (3, 2, 6)})])
@pytest.mark.parametrize("return_indices", [False, True])
def test_fractional_max_pool_matches_torch_with_the_same_samples(dtype, spatial, shape, kernel, kw, return_indices):
    samples = _samples(shape, spatial)
    name = f"FractionalMaxPool{spatial}d"
    ours = getattr(nn, name)(kernel, return_indices=return_indices, _random_samples=cr.tensor(samples, dtype=dtype),
                             **kw)
    theirs = getattr(torch.nn, name)(kernel, return_indices=return_indices,
                                     _random_samples=torch.tensor(samples, dtype=getattr(torch, dtype)), **kw)
    run_both(ours, theirs, [distinct(shape)], dtype)
    assert list(ours.state_dict()) == list(theirs.state_dict()) == ["_random_samples"]


@pytest.mark.parametrize("spatial", [2, 3])
def test_fractional_max_pool_sends_a_tied_window_s_gradient_to_its_first_maximum_as_torch(spatial):
    """Rounded values tie within windows, and windows overlap: the gradient goes to each window's first
    maximum alone and adds up where windows share it, element for element as PyTorch's."""
    shape = (2, 2) + (7, 6, 6)[:spatial]
    x = np.round(np.random.default_rng(3).standard_normal(shape))
    samples = _samples(shape, spatial, seed=4)
    grads = []
    for lib, functional in ((cr, F), (torch, TF)):
        xs = lib.tensor(x, requires_grad=True)
        out = getattr(functional, f"fractional_max_pool{spatial}d")(xs, 3, output_size=(4, 3, 3)[:spatial],
                                                                     _random_samples=lib.tensor(samples))
        (out * lib.tensor(np.arange(out.numel(), dtype=np.float64).reshape(tuple(out.shape)))).sum().backward()
        grads.append(xs.grad.cpu().numpy())
    np.testing.assert_array_equal(*grads)


@pytest.mark.parametrize("spatial", [2, 3])
def test_fractional_max_pool_without_samples_pools_random_windows(spatial):
    """Samples drawn from chainrule's generator: each output is the maximum of a kernel-sized window that
    its index points at, and the first and last windows sit at the input's edges."""
    shape, kernel = (2, 3) + (9, 8, 7)[:spatial], 2
    x = cr.tensor(distinct(shape))
    out, index = F.__dict__[f"fractional_max_pool{spatial}d"](x, kernel, output_ratio=0.5, return_indices=True)
    flat = x.cpu().numpy().reshape(2, 3, -1)
    np.testing.assert_array_equal(np.take_along_axis(flat, index.cpu().numpy().reshape(2, 3, -1), 2),
                                  out.cpu().numpy().reshape(2, 3, -1))
    assert tuple(out.shape) == (2, 3) + tuple(int(s * 0.5) for s in shape[2:])
    edges = [[0] * spatial, [s - kernel for s in shape[2:]]]
    for corner, i in zip(edges, (0, -1)):
        window = x.cpu().numpy()[(slice(None), slice(None)) + tuple(slice(c, c + kernel) for c in corner)]
        np.testing.assert_array_equal(out.cpu().numpy()[(slice(None), slice(None)) + (i,) * spatial],
                                      window.reshape(2, 3, -1).max(-1))


def _fractional_call(F, lib, spatial, shape, kernel, samples_shape=None, samples_dtype="float32", **kw):
    x = lib.zeros(*shape, dtype=lib.float32)
    samples = None if samples_shape is None else lib.zeros(*samples_shape, dtype=getattr(lib, samples_dtype))
    return getattr(F, f"fractional_max_pool{spatial}d")(x, kernel, _random_samples=samples, **kw)


@pytest.mark.parametrize("spatial, shape, kernel, kw", [
    (2, (2, 3, 7, 6), 3, {"output_size": (6, 3)}), (2, (2, 3, 7, 6), 2, {"output_size": (3, 6)}),
    (3, (2, 3, 5, 6, 7), 2, {"output_size": (4, 2, 2)}), (3, (2, 3, 5, 6, 7), 2, {"output_size": (2, 5, 2)}),
    (3, (2, 3, 5, 6, 7), 2, {"output_size": (2, 2, 6)}),
    (2, (2, 0, 7, 6), 2, {"output_size": 2}), (3, (2, 0, 5, 6, 7), 2, {"output_size": 2}),
    (2, (2, 3, 7, 6), 2, {"output_size": 2, "samples_shape": (2, 3, 3)}),
    (3, (2, 3, 5, 6, 7), 2, {"output_size": 2, "samples_shape": (2, 3, 2)}),
    (2, (2, 3, 7, 6), 2, {"output_size": 2, "samples_shape": (1, 3, 2)}),
    (2, (2, 3, 7, 6), 2, {"output_size": 2, "samples_shape": (2, 2, 2)}),
    (2, (2, 3, 7, 6), 2, {"output_size": 2, "samples_shape": (2, 3)}),
    (2, (2, 3, 7, 6), 2, {}),
], ids=["2d-height", "2d-width", "3d-time", "3d-height", "3d-width", "2d-empty", "3d-empty", "2d-samples-size2",
        "3d-samples-size2", "samples-batch", "samples-channels", "samples-ndim", "no-size"])
def test_fractional_max_pool_errors_as_torch(spatial, shape, kernel, kw):
    errors = []
    for lib, functional in ((cr, F), (torch, TF)):
        try:
            _fractional_call(functional, lib, spatial, shape, kernel, **kw)
        except (RuntimeError, ValueError) as err:
            errors.append((type(err), str(err)))
    assert len(errors) == 2 and errors[0] == errors[1], errors


def test_fractional_max_pool_refuses_samples_of_another_dtype_by_name():
    with pytest.raises(RuntimeError, match="same dtype as input.*float32.*float64"):
        F.fractional_max_pool2d(cr.zeros(1, 1, 4, 4), 2, output_size=2, _random_samples=cr.zeros(1, 1, 2,
                                                                                                 dtype=cr.float64))


def test_fractional_max_pool_modules_refuse_what_torch_refuses():
    for kw, message in [({}, "requires specifying either an output size, or a pooling ratio"),
                        ({"output_size": 2, "output_ratio": 0.5}, "only one of output_size and output_ratio"),
                        ({"output_ratio": 1.5}, r"output_ratio must be between 0 and 1 \(got 1.5\)")]:
        for lib in (nn, torch.nn):
            with pytest.raises(ValueError, match=message):
                lib.FractionalMaxPool2d(2, **kw)


# ----- the modules themselves --------------------------------------------------------------------

MODULES = [
    ("AdaptiveAvgPool1d", (3,), {}), ("AdaptiveMaxPool1d", (3,), {"return_indices": True}),
    ("AdaptiveMaxPool2d", ((2, 3),), {}), ("MaxUnpool1d", (2,), {}), ("MaxUnpool2d", (3, 2, 1), {}),
    ("LPPool1d", (2, 3), {}), ("LPPool2d", (1.5, (2, 3), 1, True), {}),
    ("AdaptiveMaxPool3d", ((2, None, 3),), {}), ("MaxUnpool3d", (3, 2, 1), {}), ("LPPool3d", (2, (2, 3, 1), 2), {}),
    ("FractionalMaxPool2d", (3,), {"output_ratio": 0.5}), ("FractionalMaxPool3d", (2,), {"output_size": (2, 3, 1)}),
]


@pytest.mark.parametrize("name, args, kw", MODULES, ids=[m[0] for m in MODULES])
def test_modules_repr_and_attributes_match_torch(name, args, kw):
    ours, theirs = pair(name, *args, **kw)
    assert repr(ours) == repr(theirs)
    assert not list(ours.parameters())


@pytest.mark.oracle
@pytest.mark.parametrize("dtype", DTYPES)
def test_adaptive_avg_pool1d_module_matches_torch(dtype):
    run_both(*pair("AdaptiveAvgPool1d", 3), [distinct((2, 3, 7))], dtype)
    run_both(*pair("AdaptiveAvgPool1d", 4), [distinct((3, 8))], dtype)


def _agree_with_the_kernels_off(x, fns, tol: float) -> None:
    """Each ``fn``'s output and input gradient are the same with the compiled kernels on and off."""
    for fn in fns:
        results = []
        for on in (True, False):
            previous = kernels.enabled()
            kernels.set_enabled(on)
            try:
                t = cr.tensor(x, requires_grad=True)
                out = fn(t)
                out.sum().backward()
                results.append((out.detach().cpu().numpy(), t.grad.cpu().numpy()))
            finally:
                kernels.set_enabled(previous)
        for a, b in zip(*results):
            np.testing.assert_allclose(a, b, rtol=tol, atol=tol)


def test_pools_agree_with_the_compiled_kernels_off():
    x = distinct((2, 3, 8, 8)).astype(np.float32)
    fns = [lambda t: F.adaptive_max_pool2d(t, 3), lambda t: F.lp_pool2d(t.abs() + 0.1, 2.0, 2),
           lambda t: F.max_unpool2d(*F.max_pool2d(t, 2, return_indices=True), 2)]
    _agree_with_the_kernels_off(x, fns, tol=1e-6)


# ----- 3-d convolution and pooling ---------------------------------------------------------------

@pytest.mark.oracle
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("stride, padding, dilation, groups", list(itertools.product((1, (1, 2, 1)), (0, 1), (1, 2),
                                                                                     (1, 2))))
@pytest.mark.parametrize("transposed", [False, True])
def test_conv3d_modules_match_torch(dtype, stride, padding, dilation, groups, transposed):
    name = "ConvTranspose3d" if transposed else "Conv3d"
    kw = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
    if transposed and stride != 1:
        kw["output_padding"] = (0, 1, 0)
    ours, theirs = pair(name, 2 * groups, 3 * groups, (2, 3, 2), **kw)
    theirs = theirs.double() if dtype == "float64" else theirs
    with torch.no_grad():
        for p in theirs.parameters():
            p.copy_(torch.tensor(np.random.default_rng(2).standard_normal(tuple(p.shape))))
    params = [p.detach().cpu().numpy() for p in theirs.parameters()]

    def ours_fn(x, w, b):
        return getattr(F, "conv_transpose3d" if transposed else "conv3d")(x, w, b, **kw)

    def theirs_fn(x, w, b):
        return getattr(TF, "conv_transpose3d" if transposed else "conv3d")(x, w, b, **kw)

    run_both(ours_fn, theirs_fn, [distinct((2, 2 * groups, 4, 6, 5)) / 100] + params, dtype)
    assert [n for n, _ in ours.named_parameters()] == [n for n, _ in theirs.named_parameters()]
    assert [tuple(p.shape) for p in ours.parameters()] == [tuple(p.shape) for p in theirs.parameters()]
    assert repr(ours) == repr(theirs)


@pytest.mark.oracle
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name, args, kw", [
    ("MaxPool3d", (2,), {}), ("MaxPool3d", ((2, 3, 2), (1, 2, 2), 1), {"ceil_mode": True, "return_indices": True}),
    ("MaxPool3d", (2,), {"dilation": 2, "stride": 1}), ("AvgPool3d", (3, 2, 1), {"ceil_mode": True}),
    ("AvgPool3d", (3, 2, 1), {"count_include_pad": False}), ("AvgPool3d", (2,), {"divisor_override": 3}),
    ("AdaptiveAvgPool3d", ((3, 4, 2),), {}), ("AdaptiveAvgPool3d", (2,), {})])
@pytest.mark.parametrize("batched", [True, False])
def test_pool3d_modules_match_torch(dtype, name, args, kw, batched):
    ours, theirs = pair(name, *args, **kw)
    assert repr(ours) == repr(theirs)
    run_both(ours, theirs, [distinct(((2,) if batched else ()) + (3, 5, 6, 7))], dtype)


def test_3d_ops_agree_with_the_compiled_kernels_off():
    x = distinct((2, 2, 5, 6, 7)).astype(np.float32)
    w = np.random.default_rng(3).standard_normal((3, 2, 2, 3, 2)).astype(np.float32)
    fns = [lambda t: F.conv3d(t, cr.tensor(w), padding=1), lambda t: F.max_pool3d(t, 2),
           lambda t: F.avg_pool3d(t, 3, 2, 1), lambda t: F.conv_transpose3d(t, cr.tensor(w.transpose(1, 0, 2, 3, 4)))]
    _agree_with_the_kernels_off(x, fns, tol=1e-5)
