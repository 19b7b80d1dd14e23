"""F.grid_sample and F.affine_grid against PyTorch: every mode, padding mode and align_corners in 2-d and
3-d, float64 and float32, forward and both gradients; second derivatives (PyTorch's are defined too);
a spatial transformer trained a few steps; the error messages. (The op-table cases in
tests/ops/op_cases.py gradcheck and gradgradcheck them and run the hypothesis oracle.)"""

import itertools
import re
import warnings

import numpy as np
import pytest

import chainrule as cr
import chainrule.nn.functional as F

torch = pytest.importorskip("torch")
TF = torch.nn.functional

_COMBINATIONS = [(nd, mode, padding, align) for nd, mode, padding, align in
                 itertools.product((2, 3), ("bilinear", "nearest", "bicubic"), ("zeros", "border", "reflection"),
                                   (False, True)) if not (mode == "bicubic" and nd == 3)]


def _tolerance(dtype):
    return 1e-10 if dtype == np.float64 else 1e-4


def _sample_both(x, grid, dtype, **kw):
    """Output and the gradients of input and grid, chainrule's and torch's, for one random cotangent."""
    cx, cg = cr.tensor(x.astype(dtype), requires_grad=True), cr.tensor(grid.astype(dtype), requires_grad=True)
    tx, tg = torch.tensor(x.astype(dtype), requires_grad=True), torch.tensor(grid.astype(dtype), requires_grad=True)
    c, t = F.grid_sample(cx, cg, **kw), TF.grid_sample(tx, tg, **kw)
    w = np.random.default_rng(2).standard_normal(tuple(t.shape)).astype(dtype)
    (c * cr.tensor(w)).sum().backward()
    t.backward(torch.tensor(w))
    assert c.dtype.name == str(t.dtype).removeprefix("torch.")
    return [(c.detach().cpu().numpy(), t.detach().cpu().numpy()), (cx.grad.cpu().numpy(), tx.grad.cpu().numpy()),
            (cg.grad.cpu().numpy(), tg.grad.cpu().numpy())]


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("nd, mode, padding, align", _COMBINATIONS,
                         ids=[f"{n}d-{m}-{p}-{'align' if a else 'noalign'}" for n, m, p, a in _COMBINATIONS])
def test_grid_sample_matches_torch(nd, mode, padding, align, dtype):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3) + (5, 4, 3)[:nd])
    grid = rng.uniform(-1.6, 1.6, (2,) + (3, 4, 2)[:nd] + (nd,))  # a third of the points outside [-1, 1]
    for c, t in _sample_both(x, grid, dtype, mode=mode, padding_mode=padding, align_corners=align):
        assert c.shape == t.shape
        np.testing.assert_allclose(c, t, rtol=_tolerance(dtype), atol=_tolerance(dtype))


@pytest.mark.parametrize("mode", ["bilinear", "nearest", "bicubic"])
def test_grid_sample_on_points_at_pixel_centres_and_far_outside(mode):
    """Exact pixel centres (integer source coordinates, where floor steps) and points far outside, with
    every padding mode: the values agree with torch (gradients at those kinks are PyTorch's choice). Far
    points that land on a half pixel are avoided: there nearest's rounding tie depends on whether torch's
    kernel fuses the multiply-add of the unnormalisation."""
    x = np.random.default_rng(1).standard_normal((1, 2, 4, 5))
    xs, ys = np.linspace(-1, 1, 5), np.linspace(-1, 1, 4)
    centres = np.stack(np.meshgrid(xs, ys), axis=-1)[None]
    far = np.array([[[[-7.03, 0.21], [9.47, -0.33], [0.13, 30.7], [-2.37, -5.13], [1e6 + 0.3, 0.01]]]])
    for padding in ("zeros", "border", "reflection"):
        for grid, align in ((centres, True), (far, False), (far, True)):
            c = F.grid_sample(cr.tensor(x), cr.tensor(grid), mode=mode, padding_mode=padding, align_corners=align)
            t = TF.grid_sample(torch.tensor(x), torch.tensor(grid), mode=mode, padding_mode=padding,
                               align_corners=align)
            np.testing.assert_allclose(c.cpu().numpy(), t.cpu().numpy(), rtol=1e-10, atol=1e-10, err_msg=padding)


def test_nearest_gives_the_grid_a_zero_gradient_as_torch():
    x = cr.randn(1, 2, 3, 4, requires_grad=True)
    grid = cr.tensor(np.random.default_rng(0).uniform(-1, 1, (1, 2, 2, 2)).astype(np.float32), requires_grad=True)
    F.grid_sample(x, grid, mode="nearest", align_corners=False).sum().backward()
    assert grid.grad is not None and not grid.grad.cpu().numpy().any()


def test_zero_size_batch_channels_and_output():
    for x_shape, grid_shape, out_shape in [((0, 2, 3, 4), (0, 2, 3, 2), (0, 2, 2, 3)),
                                           ((1, 0, 3, 4), (1, 2, 3, 2), (1, 0, 2, 3)),
                                           ((1, 2, 3, 4), (1, 0, 3, 2), (1, 2, 0, 3)),
                                           ((2, 1, 2, 3, 4), (2, 1, 0, 2, 3), (2, 1, 1, 0, 2))]:
        x, grid = cr.randn(*x_shape, requires_grad=True), cr.rand(*grid_shape, requires_grad=True)
        out = F.grid_sample(x, grid, align_corners=True)
        expected = TF.grid_sample(torch.randn(*x_shape), torch.rand(*grid_shape), align_corners=True).shape
        assert tuple(out.shape) == out_shape == tuple(expected)
        out.sum().backward()
        assert x.grad.shape == x.shape and grid.grad.shape == grid.shape


@pytest.mark.parametrize("mode", ["bilinear", "bicubic", "nearest"])
@pytest.mark.parametrize("padding", ["zeros", "border", "reflection"])
def test_second_derivatives_match_torch(mode, padding):
    """The gradient of (input's gradient . u + grid's gradient . v) w.r.t. input and grid: torch's
    grid_sample is twice differentiable, and chainrule's, a composite of differentiable ops, is too."""
    rng = np.random.default_rng(3)
    x, grid = rng.standard_normal((2, 2, 4, 5)), rng.uniform(-1.3, 1.3, (2, 3, 2, 2))
    w, u, v = rng.standard_normal((2, 2, 3, 2)), rng.standard_normal(x.shape), rng.standard_normal(grid.shape)
    results = []
    for lib, fn in ((cr, F.grid_sample), (torch, TF.grid_sample)):
        xs, gs = lib.tensor(x, requires_grad=True), lib.tensor(grid, requires_grad=True)
        out = fn(xs, gs, mode=mode, padding_mode=padding, align_corners=False)
        gx, gg = lib.autograd.grad((out * lib.tensor(w)).sum(), (xs, gs), create_graph=True)
        second = lib.autograd.grad((gx * lib.tensor(u)).sum() + (gg * lib.tensor(v)).sum(), (xs, gs),
                                   allow_unused=True)
        results.append([np.zeros(a.shape) if s is None else s.detach().cpu().numpy() for s, a in zip(second, (x, grid))])
    for c, t in zip(*results):
        np.testing.assert_allclose(c, t, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("nd", [2, 3])
@pytest.mark.parametrize("align", [False, True])
def test_affine_grid_matches_torch(nd, align, dtype):
    rng = np.random.default_rng(4)
    theta = rng.standard_normal((3, nd, nd + 1)).astype(dtype)
    for size in [(3, 2, 4, 5, 3)[:nd + 2], (3, 1, 1, 6, 2)[:nd + 2], (3, 1, 2, 1, 1)[:nd + 2]]:
        ct, tt = cr.tensor(theta, requires_grad=True), torch.tensor(theta, requires_grad=True)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # unit-size grids with align_corners warn in both
            c, t = F.affine_grid(ct, size, align_corners=align), TF.affine_grid(tt, size, align_corners=align)
        w = rng.standard_normal(tuple(t.shape)).astype(dtype)
        (c * cr.tensor(w)).sum().backward()
        t.backward(torch.tensor(w))
        tol = _tolerance(dtype)
        np.testing.assert_allclose(c.detach().cpu().numpy(), t.detach().cpu().numpy(), rtol=tol, atol=tol, err_msg=str(size))
        np.testing.assert_allclose(ct.grad.cpu().numpy(), tt.grad.cpu().numpy(), rtol=tol, atol=tol, err_msg=str(size))


def _transformer(nn, lib):
    """A spatial transformer: a linear localisation net predicts theta, the input is resampled by it."""

    class SpatialTransformer(nn.Module):
        def __init__(self):
            super().__init__()
            self.loc = nn.Linear(2 * 6 * 7, 6)
            self.head = nn.Conv2d(2, 3, 3, padding=1)

        def forward(self, x):
            theta = self.loc(x.flatten(1)).reshape(-1, 2, 3)
            functional = F if lib is cr else TF
            grid = functional.affine_grid(theta, (x.shape[0], 2, 5, 4), align_corners=False)
            return self.head(functional.grid_sample(x, grid, padding_mode="border", align_corners=False))

    return SpatialTransformer()


def test_spatial_transformer_trains_as_in_torch():
    """Three SGD steps of the same spatial transformer (affine_grid then grid_sample between two learned
    layers) in both libraries from the same weights: the same losses and the same weights after."""
    tm = _transformer(torch.nn, torch).double()
    cm = _transformer(cr.nn, cr).to("float64")
    cm.load_state_dict({k: cr.tensor(v.cpu().numpy()) for k, v in tm.state_dict().items()})
    topt, copt = torch.optim.SGD(tm.parameters(), lr=0.05), cr.optim.SGD(cm.parameters(), lr=0.05)
    rng = np.random.default_rng(5)
    for _ in range(3):
        x = rng.standard_normal((4, 2, 6, 7))
        t_loss, c_loss = (tm(torch.tensor(x)) ** 2).mean(), (cm(cr.tensor(x)) ** 2).mean()
        np.testing.assert_allclose(c_loss.item(), t_loss.item(), rtol=1e-10)
        t_loss.backward(), c_loss.backward()
        topt.step(), copt.step(), topt.zero_grad(), copt.zero_grad()
    for name, value in tm.state_dict().items():
        np.testing.assert_allclose(cm.state_dict()[name].cpu().numpy(), value.cpu().numpy(), rtol=1e-10, atol=1e-12,
                                   err_msg=name)


def _error(call, lib):
    try:
        call(lib)
    except Exception as err:  # noqa: BLE001 (the type is compared with torch's)
        return type(err), str(err)
    return None, None


def _inputs(lib, x_shape, grid_shape, x_dtype="float32", grid_dtype="float32"):
    return lib.zeros(*x_shape, dtype=getattr(lib, x_dtype)), lib.zeros(*grid_shape, dtype=getattr(lib, grid_dtype))


def _functional(lib):
    return F if lib is cr else TF


_SAME_MESSAGE = [
    lambda m: _functional(m).grid_sample(*_inputs(m, (1, 2, 3, 4), (2, 2, 3, 2)), align_corners=False),
    lambda m: _functional(m).grid_sample(*_inputs(m, (1, 2, 3, 4), (1, 2, 3, 3)), align_corners=False),
    lambda m: _functional(m).grid_sample(*_inputs(m, (1, 2, 3), (1, 2, 1)), align_corners=False),
    lambda m: _functional(m).grid_sample(*_inputs(m, (1, 2, 3, 4), (1, 2, 3, 2, 2)), align_corners=False),
    lambda m: _functional(m).grid_sample(*_inputs(m, (1, 2, 0, 4), (1, 2, 3, 2)), align_corners=False),
    lambda m: _functional(m).grid_sample(*_inputs(m, (1, 2, 3, 4, 2), (1, 2, 3, 2, 3)), mode="bicubic",
                                         align_corners=False),
    lambda m: _functional(m).grid_sample(*_inputs(m, (1, 2, 3, 4), (1, 2, 3, 2)), mode="area", align_corners=False),
    lambda m: _functional(m).grid_sample(*_inputs(m, (1, 2, 3, 4), (1, 2, 3, 2)), padding_mode="wrap",
                                         align_corners=False),
    lambda m: _functional(m).affine_grid(m.zeros(1, 2, 3), (1, 2, 3), align_corners=False),
    lambda m: _functional(m).affine_grid(m.zeros(1, 2, 3), (1, 2, 0, 3), align_corners=False),
]


@pytest.mark.parametrize("call", _SAME_MESSAGE, ids=lambda c: "")
def test_errors_as_torch(call):
    t_type, t_msg = _error(call, torch)
    c_type, c_msg = _error(call, cr)
    assert t_type is not None and c_type is t_type and c_msg == t_msg, (c_type, c_msg, t_type, t_msg)


@pytest.mark.parametrize("call, pattern", [
    (lambda m: _functional(m).grid_sample(*_inputs(m, (1, 2, 3, 4), (1, 2, 3, 2), grid_dtype="float64"),
                                          align_corners=False), r"grid_sampler.*float32.*float64"),
    (lambda m: _functional(m).affine_grid(m.zeros(1, 2, 3, dtype=m.int64), (1, 2, 3, 3), align_corners=False),
     r"Expected theta to have floating point type, but got .*int64"),
    (lambda m: _functional(m).affine_grid(m.zeros(1, 3, 3), (1, 2, 3, 3), align_corners=False),
     r"Expected a batch of 2D affine matrices of shape Nx2x3 for size \(1, 2, 3, 3\)\. Got .*\(1, 3, 3\)"),
    (lambda m: _functional(m).affine_grid(m.zeros(1, 3, 4), (2, 1, 3, 3, 2), align_corners=False),
     r"affine_grid.*1 matri.*batch of 2|batch2"),
], ids=["grid_sample-dtypes", "affine_grid-integer-theta", "affine_grid-theta-shape", "affine_grid-batch"])
def test_errors_name_the_operation_and_the_dtypes_or_shapes(call, pattern):
    """Where PyTorch's message differs (its dtype and batch checks come from deeper layers), the type is
    PyTorch's and the message names the operation and the offending dtypes or shapes."""
    t_type, _ = _error(call, torch)
    c_type, c_msg = _error(call, cr)
    assert t_type is not None and c_type is t_type, (c_type, t_type)
    assert c_msg is not None and re.search(pattern, c_msg), c_msg


def test_align_corners_left_unset_warns_as_torch_and_means_false():
    x, grid = cr.randn(1, 1, 3, 3), cr.rand(1, 2, 2, 2) * 2 - 1
    with pytest.warns(UserWarning, match="align_corners=False since 1.3.0"):
        unset = F.grid_sample(x, grid)
    np.testing.assert_array_equal(unset.cpu().numpy(), F.grid_sample(x, grid, align_corners=False).cpu().numpy())
    with pytest.warns(UserWarning, match="align_corners=False since 1.3.0"):
        F.affine_grid(cr.zeros(1, 2, 3), (1, 1, 2, 2))
