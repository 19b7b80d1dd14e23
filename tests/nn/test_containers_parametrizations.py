"""ParameterDict, lazy modules, parametrize / weight_norm / spectral_norm against PyTorch, from the same weights."""

import numpy as np
import pytest

import chainrule as cr
from chainrule import nn
from chainrule.nn.utils import parametrizations as P
from chainrule.nn.utils import parametrize
from tests.nn._oracle import copy_weights, run_both

torch = pytest.importorskip("torch")
tnn = torch.nn


def _close(pairs, tol=1e-9):
    for name, ours, theirs in pairs:
        np.testing.assert_allclose(ours, theirs, rtol=tol, atol=tol, err_msg=name)


def _state(module):
    return {k: cr.tensor(v.detach().cpu().detach().cpu().numpy()) for k, v in module.state_dict().items()}


def _torch_state(module):
    return {k: torch.tensor(v.detach().cpu().numpy()) for k, v in module.state_dict().items()}


# ----- ParameterDict --------------------------------------------------------------------------------------
def test_parameter_dict_keys_methods_and_gradients_as_pytorch():
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal(3), rng.standard_normal((2, 3))
    ours = nn.ParameterDict({"w": cr.tensor(b), "a": nn.Parameter(cr.tensor(a))})
    theirs = tnn.ParameterDict({"w": torch.tensor(b), "a": tnn.Parameter(torch.tensor(a))})
    assert list(ours.keys()) == list(theirs.keys()) == ["a", "w"]  # a plain dict is sorted, as PyTorch
    assert list(ours.state_dict()) == list(theirs.state_dict())
    assert isinstance(ours["w"], nn.Parameter) and ours["w"].requires_grad
    ours.update([("z", cr.zeros(1))])
    theirs.update([("z", torch.zeros(1))])
    assert list(ours) == list(theirs) == ["a", "w", "z"]
    assert "z" in ours and len(ours) == 3 and ours.get("missing") is None
    assert ours.pop("z").shape == (1,) and "z" not in ours and "z" not in ours.state_dict()
    theirs.pop("z")
    assert ours.setdefault("k", cr.ones(2)).shape == (2,)
    assert ours.popitem()[0] == "k"
    merged = ours | nn.ParameterDict({"q": cr.ones(1)})
    assert list(merged) == ["a", "w", "q"] and merged["a"] is ours["a"]
    (ours["w"] @ ours["a"]).sum().backward()
    (theirs["w"] @ theirs["a"]).sum().backward()
    np.testing.assert_allclose(ours["a"].grad.detach().cpu().numpy(), theirs["a"].grad.detach().cpu().numpy())
    assert len(list(ours.parameters())) == 2
    theirs_state = {k: torch.tensor(v.detach().cpu().numpy()) for k, v in ours.state_dict().items()}
    assert theirs.load_state_dict(theirs_state) is not None
    ours.clear()
    assert len(ours) == 0 and not list(ours.parameters())


def test_parameter_dict_in_a_module_state_dict_both_ways():
    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.p = nn.ParameterDict({"x": cr.ones(2), "y": cr.zeros(3)})

    class T(tnn.Module):
        def __init__(self):
            super().__init__()
            self.p = tnn.ParameterDict({"x": torch.randn(2), "y": torch.randn(3)})

    ours, theirs = M(), T()
    assert list(ours.state_dict()) == list(theirs.state_dict()) == ["p.x", "p.y"]
    ours.load_state_dict(_state(theirs))
    np.testing.assert_allclose(ours.p["y"].detach().cpu().numpy(), theirs.p["y"].detach().cpu().numpy(), rtol=1e-6)
    theirs.load_state_dict(_torch_state(M()))
    assert float(theirs.p["x"].sum()) == 2.0


# ----- lazy modules ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("make, shape", [
    (lambda m: m.LazyLinear(5), (3, 7)),
    (lambda m: m.LazyLinear(5, bias=False), (2, 4, 6)),
    (lambda m: m.LazyConv1d(4, 3, stride=2), (2, 6, 11)),
    (lambda m: m.LazyConv2d(6, 3, padding=1, groups=2), (2, 4, 5, 5)),
    (lambda m: m.LazyConv2d(3, 2), (4, 6, 6)),  # unbatched
    (lambda m: m.LazyConvTranspose1d(4, 3), (2, 5, 7)),
    (lambda m: m.LazyConvTranspose2d(6, 3, groups=3, stride=2), (1, 9, 4, 4)),
    (lambda m: m.LazyBatchNorm1d(), (8, 5)),
    (lambda m: m.LazyBatchNorm2d(affine=False), (4, 3, 2, 2)),
    (lambda m: m.LazyConv3d(4, 2, padding=1), (2, 3, 4, 3, 5)),
    (lambda m: m.LazyConv3d(2, (1, 2, 2)), (3, 3, 4, 4)),  # unbatched
    (lambda m: m.LazyConvTranspose3d(4, 2, stride=2, groups=2), (1, 2, 3, 2, 3)),
    (lambda m: m.LazyBatchNorm3d(), (4, 3, 2, 2, 2)),
    (lambda m: m.LazyInstanceNorm1d(), (2, 3, 5)),
    (lambda m: m.LazyInstanceNorm2d(track_running_stats=False), (2, 3, 4, 4)),
    (lambda m: m.LazyInstanceNorm3d(affine=False), (2, 4, 3, 2, 3)),
])
def test_lazy_modules_materialise_as_pytorch(make, shape):
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    ours, theirs = make(nn), make(tnn)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    assert isinstance(ours.weight, nn.UninitializedParameter) or ours.weight is None
    ours(cr.tensor(x))
    theirs(torch.tensor(x))
    assert type(ours).__name__ == type(theirs).__name__
    # PyTorch 2.13's norm layers show a bias= flag in their repr that chainrule's do not have
    assert repr(ours) == repr(theirs) or type(ours).__name__.startswith(("BatchNorm", "InstanceNorm"))
    for (k, a), (k2, b) in zip(ours.state_dict().items(), theirs.state_dict().items()):
        assert k == k2 and tuple(a.shape) == tuple(b.shape), k
    for p in ours.parameters():
        assert type(p) is nn.Parameter and p.requires_grad
    # once materialised, the same weights give the same numbers
    if not isinstance(ours, nn.BatchNorm1d | nn.BatchNorm2d | nn.BatchNorm3d):
        ours.load_state_dict(_state(theirs))
        np.testing.assert_allclose(ours(cr.tensor(x)).detach().cpu().numpy(), theirs(torch.tensor(x)).detach().cpu().numpy(),
                                   rtol=1e-4, atol=1e-5)


def test_lazy_linear_initialises_as_linear_and_an_early_optimizer_trains_it():
    # PyTorch accepts an optimizer built before the first forward: the same parameter objects materialise
    layer = nn.LazyLinear(3)
    weight = layer.weight
    opt = cr.optim.Adam(layer.parameters(), lr=0.1)
    x = cr.randn(16, 8)
    loss = layer(x).pow(2).mean()
    assert layer.weight is weight and tuple(weight.shape) == (3, 8)
    bound = 1 / np.sqrt(8)
    assert np.abs(weight.detach().cpu().numpy()).max() <= bound and weight.detach().cpu().numpy().std() > bound / 4
    loss.backward()
    opt.step()
    assert float(layer(x).pow(2).mean().item()) < float(loss.item())
    assert isinstance(layer, nn.Linear) and not isinstance(layer, nn.LazyLinear)


def test_lazy_module_loads_a_state_dict_before_any_forward():
    theirs = tnn.Linear(6, 2)
    ours = nn.LazyLinear(2)
    ours.load_state_dict(_state(theirs))
    x = np.random.default_rng(0).standard_normal((3, 6)).astype(np.float32)
    np.testing.assert_allclose(ours(cr.tensor(x)).detach().cpu().numpy(), theirs(torch.tensor(x)).detach().numpy(), rtol=1e-5)
    lazy = tnn.LazyLinear(2)
    lazy.load_state_dict(theirs.state_dict())
    lazy(torch.tensor(x))
    assert type(ours) is nn.Linear and ours.in_features == lazy.in_features  # 0: PyTorch leaves it unset


def test_lazy_module_errors_name_the_layer():
    with pytest.raises(ValueError, match="LazyConv2d"):
        nn.LazyConv2d(4, 3)(cr.randn(2, 3))
    with pytest.raises(RuntimeError, match="uninitialized"):
        _ = nn.LazyLinear(2).weight.shape


# ----- weight_norm ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("dim", [0, 1, None, -1])
def test_weight_norm_parametrization_matches_pytorch(dim):
    torch.manual_seed(0)
    theirs = torch.nn.utils.parametrizations.weight_norm(tnn.Linear(5, 4), dim=dim)
    ours = P.weight_norm(nn.Linear(5, 4), dim=dim)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    assert type(ours).__name__ == type(theirs).__name__ == "ParametrizedLinear"
    g_t = theirs.parametrizations.weight.original0
    assert tuple(ours.parametrizations.weight.original0.shape) == tuple(g_t.shape)
    x = np.random.default_rng(1).standard_normal((3, 5))
    _close(run_both(torch, theirs, ours, x))
    np.testing.assert_allclose(ours.weight.detach().cpu().numpy(), theirs.weight.detach().cpu().numpy(), rtol=1e-10)


def test_weight_norm_conv_and_state_dict_both_ways():
    torch.manual_seed(0)
    theirs = torch.nn.utils.parametrizations.weight_norm(tnn.Conv2d(3, 4, 3))
    ours = P.weight_norm(nn.Conv2d(3, 4, 3))
    x = np.random.default_rng(2).standard_normal((2, 3, 6, 6))
    _close(run_both(torch, theirs, ours, x), tol=1e-8)
    # ours -> theirs
    back = torch.nn.utils.parametrizations.weight_norm(tnn.Conv2d(3, 4, 3)).double()
    back.load_state_dict(_torch_state(ours))
    np.testing.assert_allclose(back.weight.detach().cpu().numpy(), ours.weight.detach().cpu().numpy(), rtol=1e-12)


def test_assigning_a_parametrized_weight_calls_right_inverse():
    ours = P.weight_norm(nn.Linear(3, 2))
    target = cr.tensor(np.arange(6.0, dtype=np.float32).reshape(2, 3) + 1)
    ours.weight = target
    np.testing.assert_allclose(ours.weight.detach().cpu().numpy(), target.detach().cpu().numpy(), rtol=1e-6)
    np.testing.assert_allclose(ours.parametrizations.weight.original1.detach().cpu().numpy(), target.detach().cpu().numpy())


def test_remove_parametrizations_restores_a_plain_module():
    ours = P.weight_norm(nn.Linear(3, 2))
    value = ours.weight.detach().cpu().numpy()
    parametrize.remove_parametrizations(ours, "weight")
    theirs = torch.nn.utils.parametrizations.weight_norm(tnn.Linear(3, 2))
    torch.nn.utils.parametrize.remove_parametrizations(theirs, "weight")
    assert type(ours) is nn.Linear and list(ours.state_dict()) == list(theirs.state_dict()) == ["bias", "weight"]
    assert isinstance(ours.weight, nn.Parameter)
    np.testing.assert_allclose(ours.weight.detach().cpu().numpy(), value, rtol=1e-6)
    with pytest.raises(ValueError, match="leave_parametrized"):
        parametrize.remove_parametrizations(P.weight_norm(nn.Linear(3, 2)), "weight", leave_parametrized=False)


def test_register_parametrization_custom_and_chained():
    class Symmetric(nn.Module):
        def forward(self, x):
            return x.triu() + x.triu(1).mT

    class TSymmetric(tnn.Module):
        def forward(self, x):
            return x.triu() + x.triu(1).mT

    class Scale(nn.Module):
        def forward(self, x):
            return 2 * x

        def right_inverse(self, x):
            return x / 2

    class TScale(tnn.Module):
        def forward(self, x):
            return 2 * x

        def right_inverse(self, x):
            return x / 2

    theirs = tnn.Linear(3, 3)
    torch.nn.utils.parametrize.register_parametrization(theirs, "weight", TSymmetric())
    torch.nn.utils.parametrize.register_parametrization(theirs, "weight", TScale())
    ours = nn.Linear(3, 3)
    parametrize.register_parametrization(ours, "weight", Symmetric())
    parametrize.register_parametrization(ours, "weight", Scale())
    assert list(ours.state_dict()) == list(theirs.state_dict())
    assert parametrize.is_parametrized(ours, "weight") and not parametrize.is_parametrized(ours, "bias")
    x = np.random.default_rng(3).standard_normal((2, 3))
    _close(run_both(torch, theirs, ours, x))
    with parametrize.cached():
        assert ours.weight is ours.weight
    with pytest.raises(ValueError, match="does not have a parameter"):
        parametrize.register_parametrization(ours, "nothing", Scale())


# ----- spectral_norm --------------------------------------------------------------------------------------
@pytest.mark.parametrize("make, shape, iters", [
    (lambda m: m.Linear(6, 4), (3, 6), 1),
    (lambda m: m.Linear(4, 7), (2, 4), 3),
    (lambda m: m.Conv2d(3, 5, 3), (2, 3, 5, 5), 1),
    (lambda m: m.ConvTranspose2d(3, 4, 2), (1, 3, 4, 4), 2),
])
def test_spectral_norm_matches_pytorch_from_the_same_u_v(make, shape, iters):
    torch.manual_seed(0)
    theirs = torch.nn.utils.parametrizations.spectral_norm(make(tnn), n_power_iterations=iters)
    ours = P.spectral_norm(make(nn), n_power_iterations=iters)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    assert ours.parametrizations.weight[0].dim == theirs.parametrizations.weight[0].dim
    x = np.random.default_rng(4).standard_normal(shape)
    # training mode: one power-iteration step from torch's u, v (copied with the state dict) on both sides
    _close(run_both(torch, theirs, ours, x), tol=1e-8)
    sd = theirs.state_dict()
    for key in ("_u", "_v"):
        np.testing.assert_allclose(getattr(ours.parametrizations.weight[0], key).cpu().numpy(),
                                   sd[f"parametrizations.weight.0.{key}"].cpu().numpy(), rtol=1e-9, atol=1e-12)
    # eval mode: no iteration, the same weight
    ours.eval()
    theirs.eval()
    np.testing.assert_allclose(ours.weight.detach().cpu().numpy(), theirs.weight.detach().cpu().numpy(), rtol=1e-9)


def test_spectral_norm_converges_to_unit_spectral_norm():
    layer = P.spectral_norm(nn.Linear(8, 5))
    w = layer.weight.detach().cpu().numpy()
    assert abs(np.linalg.svd(w, compute_uv=False)[0] - 1) < 1e-2


# ----- legacy weight_norm ---------------------------------------------------------------------------------
def test_legacy_weight_norm_matches_pytorch():
    torch.manual_seed(0)
    theirs = torch.nn.utils.weight_norm(tnn.Linear(5, 3))
    ours = nn.utils.weight_norm(nn.Linear(5, 3))
    assert list(ours.state_dict()) == list(theirs.state_dict()) == ["bias", "weight_g", "weight_v"]
    x = np.random.default_rng(5).standard_normal((4, 5))
    _close(run_both(torch, theirs, ours, x))
    nn.utils.remove_weight_norm(ours)
    torch.nn.utils.remove_weight_norm(theirs)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    np.testing.assert_allclose(ours.weight.detach().cpu().numpy(), theirs.weight.detach().cpu().numpy(), rtol=1e-10)


def test_copy_weights_helper_is_used_by_name():
    # state dicts cross over by name: a parametrized torch model loads into ours directly
    theirs = torch.nn.utils.parametrizations.weight_norm(tnn.Linear(2, 2))
    ours = P.weight_norm(nn.Linear(2, 2))
    copy_weights(theirs, ours)
    np.testing.assert_allclose(ours.weight.detach().cpu().numpy(), theirs.weight.detach().cpu().numpy(), rtol=1e-6)
