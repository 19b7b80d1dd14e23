"""Normalisation, resampling and padding against PyTorch: the op-table cases of kind
'norm_resample_pad' gradchecked and gradgradchecked in float64; interpolation over a grid of modes,
align_corners and scale factors in float64 and float32; modules' state dicts and running stats after a
few training steps; error messages as PyTorch's."""

import re
import sys
from pathlib import Path

import numpy as np
import pytest

import chainrule as cr
import chainrule.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "ops"))
from op_cases import check_gradients, gradcheck_params  # noqa: E402

torch = pytest.importorskip("torch")
TF = torch.nn.functional

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


@pytest.mark.parametrize("case, shapes, params", gradcheck_params("norm_resample_pad"))
def test_gradcheck(case, shapes, params):
    check_gradients(case, shapes, params)


@pytest.mark.parametrize("case, shapes, params", gradcheck_params("norm_resample_pad", twice_only=True))
def test_gradgradcheck(case, shapes, params):
    check_gradients(case, shapes, params, second_order=True)


_MODES = [("nearest", 1), ("nearest", 2), ("nearest", 3), ("nearest-exact", 1), ("nearest-exact", 2),
          ("nearest-exact", 3), ("linear", 1), ("bilinear", 2), ("bicubic", 2), ("trilinear", 3)]
_SIZES = [{"size": 7}, {"size": 2}, {"size": 1}, {"scale_factor": 2.0}, {"scale_factor": 0.5},
          {"scale_factor": 1.7}, {"scale_factor": 3.0}, {"scale_factor": 0.6, "recompute_scale_factor": True},
          {"scale_factor": 2.3, "recompute_scale_factor": True}]


def _both(fn_c, fn_t, x, dtype):
    """Output and input gradient of chainrule's fn and torch's on the same input and cotangent."""
    xt = torch.tensor(x.astype(dtype), requires_grad=True)
    xc = cr.tensor(x.astype(dtype), requires_grad=True)
    t, c = fn_t(xt), fn_c(xc)
    g = np.random.default_rng(1).standard_normal(tuple(t.shape)).astype(dtype)
    t.backward(torch.tensor(g))
    (c * cr.tensor(g)).sum().backward()
    assert tuple(c.shape) == tuple(t.shape) and c.dtype.name == str(t.dtype).removeprefix("torch.")
    return [(c.detach().cpu().numpy(), t.detach().cpu().numpy()), (xc.grad.cpu().numpy(), xt.grad.cpu().numpy())]


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("mode, nd", _MODES, ids=[f"{m}-{n}d" for m, n in _MODES])
def test_interpolate_matches_torch_on_a_grid(mode, nd, dtype):
    x = np.random.default_rng(0).standard_normal((2, 3) + (5, 4, 3)[:nd])
    tol = 1e-10 if dtype == np.float64 else 1e-5
    for align in ([None] if mode.startswith("nearest") else [False, True]):
        for kw in _SIZES:
            pairs = _both(lambda t, a=align, k=kw: F.interpolate(t, mode=mode, align_corners=a, **k),
                          lambda t, a=align, k=kw: TF.interpolate(t, mode=mode, align_corners=a, **k), x, dtype)
            for c, t in pairs:
                np.testing.assert_allclose(c, t, rtol=tol, atol=tol, err_msg=f"{mode} {align} {kw}")


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("mode", ["constant", "reflect", "replicate", "circular"])
def test_pad_modes_match_torch_with_asymmetric_pads(mode, dtype):
    rng = np.random.default_rng(0)
    tol = 1e-10 if dtype == np.float64 else 1e-5
    for shape, pad in [((3, 5), (2, 1)), ((2, 3, 5), (0, 3)), ((2, 3, 5), (-1, 2)), ((2, 2, 4, 5), (3, 1, 0, 2)),
                       ((1, 2, 4, 5), (1, -2, 2, 1)), ((2, 3, 4, 5), (2, 0, 1, 3, 1, 2)),
                       ((1, 2, 3, 4, 5), (1, 2, 0, 1, 2, 1))]:
        for c, t in _both(lambda x, p=pad: F.pad(x, p, mode=mode), lambda x, p=pad: TF.pad(x, p, mode=mode),
                          rng.standard_normal(shape), dtype):
            np.testing.assert_allclose(c, t, rtol=tol, atol=tol, err_msg=f"{mode} {shape} {pad}")


_AREA_AND_ANTIALIAS = [("area", 1, None), ("area", 2, None), ("area", 3, None), ("bilinear", 2, False),
                       ("bilinear", 2, True), ("bicubic", 2, False), ("bicubic", 2, True)]


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("mode, nd, align", _AREA_AND_ANTIALIAS, ids=[f"{m}-{n}d-{a}" for m, n, a in _AREA_AND_ANTIALIAS])
def test_area_and_antialiased_interpolation_match_torch_on_a_grid(mode, nd, align, dtype):
    """Area (adaptive average pooling) in 1-3 d and antialiased bilinear/bicubic (PyTorch's stretched,
    normalised filters) down- and upsampling, forward and input gradient."""
    x = np.random.default_rng(0).standard_normal((2, 3) + (9, 8, 5)[:nd])
    tol = 1e-10 if dtype == np.float64 else 1e-5
    antialias = {} if mode == "area" else {"antialias": True}
    for kw in [{"size": 7}, {"size": 2}, {"size": 3}, {"scale_factor": 0.5}, {"scale_factor": 0.3},
               {"scale_factor": 2.0}, {"scale_factor": 1.7}, {"scale_factor": 0.45, "recompute_scale_factor": True}]:
        pairs = _both(lambda t, k=kw: F.interpolate(t, mode=mode, align_corners=align, **antialias, **k),
                      lambda t, k=kw: TF.interpolate(t, mode=mode, align_corners=align, **antialias, **k), x, dtype)
        for c, t in pairs:
            np.testing.assert_allclose(c, t, rtol=tol, atol=tol, err_msg=f"{mode} {align} {kw}")


@pytest.mark.parametrize("mode", ["bilinear", "bicubic"])
def test_antialias_to_one_column_is_the_transpose_of_antialias_to_one_row(mode):
    """To a one-pixel-wide output, PyTorch's antialiased CPU kernel repeats the first row (it gives
    [0, 0, 0] for the column [0, 1, 2, 3] resized to 3 rows); chainrule's resize of a column equals torch's
    resize of the same values laid out as a row, which that kernel gets right."""
    x = np.random.default_rng(1).standard_normal((2, 3, 7, 4))
    c = F.interpolate(cr.tensor(x), size=(5, 1), mode=mode, antialias=True)
    t = TF.interpolate(torch.tensor(x).transpose(2, 3), size=(1, 5), mode=mode, antialias=True).transpose(2, 3)
    np.testing.assert_allclose(c.cpu().numpy(), t.cpu().numpy(), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("call, error, pattern", [
    (lambda F, x: F.interpolate(x, size=3, mode="nearest", antialias=True), ValueError,
     r"Anti-alias option is restricted to bilinear and bicubic modes and requires a 4-D tensor"),
    (lambda F, x: F.interpolate(x, size=3, mode="linear", antialias=True), ValueError, r"Anti-alias option"),
    (lambda F, x: F.interpolate(x, size=3, mode="area", align_corners=True), ValueError,
     r"align_corners option can only be set with the interpolating modes"),
    (lambda F, x: F.interpolate(x.reshape(1, 1, 3, 2), size=3, mode="bilinear", antialias=True), None, None),
], ids=["nearest", "linear", "area-align", "bilinear-4d-accepted"])
def test_antialias_and_area_refuse_what_torch_refuses(call, error, pattern):
    x = np.random.default_rng(0).standard_normal((1, 3, 2))
    t_type, _ = _error(lambda v: call(TF, v), torch.tensor(x))
    c_type, c_msg = _error(lambda v: call(F, v), cr.tensor(x))
    assert c_type is t_type is error
    if pattern:
        assert re.search(pattern, c_msg), c_msg


def test_linear_and_cubic_modes_refuse_uint8_images_by_name():
    """PyTorch resamples uint8 in fixed point with its own rounding; chainrule says so rather than differ."""
    x = cr.tensor(np.arange(16, dtype=np.uint8).reshape(1, 1, 4, 4))
    assert F.interpolate(x, size=2).dtype == cr.uint8
    for mode in ("bilinear", "bicubic"):
        with pytest.raises(NotImplementedError, match=f"mode '{mode}' on uint8 input is not supported"):
            F.interpolate(x, size=2, mode=mode)


def _error(fn, lib_x):
    try:
        fn(lib_x)
    except Exception as err:  # noqa: BLE001 (the type is compared with torch's)
        return type(err), str(err)
    return None, None


@pytest.mark.parametrize("call", [
    lambda F, x: F.pad(x, (3, 1), mode="reflect"), lambda F, x: F.pad(x, (1, 3), mode="reflect"),
    lambda F, x: F.pad(x, (4, 1), mode="circular"), lambda F, x: F.pad(x, (1, 1, 1, 1, 1, 1), mode="replicate"),
    lambda F, x: F.pad(x[0, 0], (1, 1), mode="reflect"), lambda F, x: F.pad(x, (1, 1), mode="foo"),
    lambda F, x: F.pad(x, (1,), mode="reflect"),
    lambda F, x: F.interpolate(x, size=4, scale_factor=2.0), lambda F, x: F.interpolate(x),
    lambda F, x: F.interpolate(x, size=4, align_corners=True), lambda F, x: F.interpolate(x, size=(4, 4)),
    lambda F, x: F.interpolate(x, scale_factor=(2.0, 2.0)), lambda F, x: F.interpolate(x, size=4, mode="bilinear"),
    lambda F, x: F.pixel_shuffle(x.reshape(1, 3, 2, 1), 2), lambda F, x: F.pixel_shuffle(x[0], 2),
    lambda F, x: F.pixel_unshuffle(x.reshape(1, 1, 3, 2), 2), lambda F, x: F.pixel_unshuffle(x.reshape(1, 1, 2, 3), 2),
    lambda F, x: F.group_norm(x, 2), lambda F, x: F.local_response_norm(x[0], 2),
    lambda F, x: F.instance_norm(x.reshape(2, 3, 1)),
], ids=lambda c: "")
def test_errors_as_torch(call):
    x = np.random.default_rng(0).standard_normal((1, 3, 2))
    t_type, t_msg = _error(lambda v: call(TF, v), torch.tensor(x))
    c_type, c_msg = _error(lambda v: call(F, v), cr.tensor(x))
    t_msg = t_msg and t_msg.replace("torch.Size([", "[").replace("])", "]")
    assert t_type is not None and c_type is t_type and c_msg == t_msg, (c_type, c_msg, t_type, t_msg)


def test_module_errors_as_torch():
    with pytest.raises(ValueError, match=r"num_channels \(5\) must be divisible by num_groups \(2\)"):
        cr.nn.GroupNorm(2, 5)
    with pytest.raises(ValueError, match=r"expected input's size at dim=1 to match num_features \(3\), but got: 4"):
        cr.nn.InstanceNorm1d(3, affine=True)(cr.randn(2, 4, 5))


def _train_both(make, shape, steps=3, extra=None):
    """A few SGD steps of the same module in both libraries; returns both."""
    tm, cm = make(torch.nn).double(), make(cr.nn).to("float64")
    cm.load_state_dict({k: cr.tensor(v.cpu().numpy()) for k, v in tm.state_dict().items()})
    topt = torch.optim.SGD(tm.parameters(), lr=0.1) if list(tm.parameters()) else None
    copt = cr.optim.SGD(cm.parameters(), lr=0.1) if list(cm.parameters()) else None
    rng = np.random.default_rng(0)
    for _ in range(steps):
        x = rng.standard_normal(shape) * 2 + 0.5
        xt, xc = torch.tensor(x, requires_grad=True), cr.tensor(x, requires_grad=True)
        t, c = tm(xt), cm(xc)
        np.testing.assert_allclose(c.detach().cpu().numpy(), t.detach().cpu().numpy(), rtol=1e-10, atol=1e-10)
        (t * t).sum().backward()
        (c * c).sum().backward()
        np.testing.assert_allclose(xc.grad.cpu().numpy(), xt.grad.cpu().numpy(), rtol=1e-10, atol=1e-10)
        if topt:
            topt.step(), copt.step(), topt.zero_grad(), copt.zero_grad()
    return tm, cm


def _same_state(tm, cm):
    ts, cs = tm.state_dict(), cm.state_dict()
    assert list(ts) == list(cs)
    for k in ts:
        np.testing.assert_allclose(np.asarray(cs[k]), ts[k].cpu().numpy(), rtol=1e-10, atol=1e-12, err_msg=k)


@pytest.mark.parametrize("make, shape", [
    (lambda nn: nn.GroupNorm(2, 4), (3, 4, 5)), (lambda nn: nn.GroupNorm(3, 6, affine=False), (2, 6, 2, 3)),
    (lambda nn: nn.InstanceNorm1d(3), (2, 3, 5)), (lambda nn: nn.InstanceNorm1d(3), (3, 5)),
    (lambda nn: nn.InstanceNorm2d(3, affine=True, track_running_stats=True), (2, 3, 4, 3)),
    (lambda nn: nn.InstanceNorm3d(2, affine=True, track_running_stats=True, momentum=None), (2, 2, 3, 2, 2)),
    (lambda nn: nn.InstanceNorm1d(4, track_running_stats=True, momentum=0.3), (4, 6)),
    (lambda nn: nn.BatchNorm3d(3), (2, 3, 2, 3, 2)), (lambda nn: nn.LocalResponseNorm(3), (2, 5, 3, 3)),
    (lambda nn: nn.LocalResponseNorm(2, alpha=0.5, beta=0.5, k=2.0), (2, 4, 5)),
    (lambda nn: nn.Upsample(scale_factor=2, mode="bilinear"), (1, 2, 3, 3)),
    (lambda nn: nn.Upsample(size=(3, 4, 5), mode="trilinear", align_corners=True), (1, 2, 2, 3, 2)),
    (lambda nn: nn.UpsamplingNearest2d(scale_factor=3), (1, 2, 2, 3)),
    (lambda nn: nn.UpsamplingBilinear2d(size=(5, 4)), (1, 2, 2, 3)),
    (lambda nn: nn.PixelShuffle(2), (1, 8, 2, 3)), (lambda nn: nn.PixelUnshuffle(2), (1, 2, 4, 6)),
    (lambda nn: nn.ZeroPad2d((1, 2, 0, 3)), (1, 2, 3, 3)), (lambda nn: nn.ConstantPad1d(2, 1.5), (2, 3)),
    (lambda nn: nn.ConstantPad3d((1, 0, 2, 1, 0, 1), -1.0), (1, 1, 2, 2, 2)),
    (lambda nn: nn.ReflectionPad1d((2, 1)), (1, 2, 4)), (lambda nn: nn.ReflectionPad2d(1), (1, 2, 3, 3)),
    (lambda nn: nn.ReflectionPad3d((1, 0, 1, 1, 0, 1)), (1, 1, 2, 3, 2)),
    (lambda nn: nn.ReplicationPad1d((0, 3)), (1, 2, 3)), (lambda nn: nn.ReplicationPad2d((1, 2, 3, 0)), (1, 3, 3)),
    (lambda nn: nn.ReplicationPad3d(1), (1, 1, 2, 2, 2)), (lambda nn: nn.CircularPad1d((1, 2)), (1, 2, 3)),
    (lambda nn: nn.CircularPad2d((1, 0, 2, 1)), (1, 1, 3, 3)), (lambda nn: nn.CircularPad3d(1), (1, 1, 2, 2, 2)),
])
def test_modules_match_torch_after_training_steps(make, shape):
    tm, cm = _train_both(make, shape)
    _same_state(tm, cm)
    tm.eval(), cm.eval()
    x = np.random.default_rng(5).standard_normal(shape)
    np.testing.assert_allclose(cm(cr.tensor(x)).detach().cpu().numpy(), tm(torch.tensor(x)).detach().cpu().numpy(), rtol=1e-10,
                               atol=1e-10)


def test_modules_have_torch_parameter_and_buffer_names():
    for make in (lambda nn: nn.GroupNorm(2, 4), lambda nn: nn.InstanceNorm2d(4, affine=True, track_running_stats=True),
                 lambda nn: nn.BatchNorm3d(4), lambda nn: nn.InstanceNorm1d(4)):
        assert list(make(cr.nn).state_dict()) == list(make(torch.nn).state_dict())
