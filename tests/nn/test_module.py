"""Module mechanics: registration, traversal, modes, state dicts, hooks, repr, conversion."""

import copy

import numpy as np
import pytest

import chainrule as cr
import chainrule.nn as nn


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(3, 4)
        self.scale = nn.Parameter(cr.ones(4))
        self.register_buffer("count", cr.zeros(1))
        self.register_buffer("scratch", cr.zeros(2), persistent=False)

    def forward(self, x):
        return self.fc(x) * self.scale


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.first = Block()
        self.second = Block()
        self.head = nn.Linear(4, 2)

    def forward(self, x):
        return self.head(self.second(x) + self.first(x))


def test_registration_and_traversal_order():
    net = Net()
    names = [n for n, _ in net.named_parameters()]
    # PyTorch's order: modules in pre-order, each module's own parameters first
    assert names == ["first.scale", "first.fc.weight", "first.fc.bias", "second.scale", "second.fc.weight",
                     "second.fc.bias", "head.weight", "head.bias"]
    assert list(net.state_dict()) == ["first.scale", "first.count", "first.fc.weight", "first.fc.bias", "second.scale",
                                      "second.count", "second.fc.weight", "second.fc.bias", "head.weight", "head.bias"]
    assert [n for n, _ in net.named_buffers()] == ["first.count", "first.scratch", "second.count", "second.scratch"]
    assert [n for n, _ in net.named_children()] == ["first", "second", "head"]
    assert [n for n, _ in net.named_modules()] == ["", "first", "first.fc", "second", "second.fc", "head"]
    assert len(list(net.parameters())) == 8


def test_shared_parameter_counted_once():
    a = nn.Linear(3, 3)
    seq = nn.Sequential(a, nn.ReLU(), a)
    assert len(list(seq.parameters())) == 2
    assert len(list(seq.modules())) == 3  # Sequential, Linear (once), ReLU


def test_state_dict_skips_non_persistent_buffers_and_detaches():
    net = Net()
    sd = net.state_dict()
    assert "first.count" in sd and "first.scratch" not in sd
    assert all(not t.requires_grad for t in sd.values())
    with cr.no_grad():  # the entries share the parameters' memory: a write to one shows in the other
        net.head.weight.fill_(7.0)
    assert (sd["head.weight"].cpu().numpy() == 7.0).all()


def test_load_state_dict_round_trip():
    a, b = Net(), Net()
    result = b.load_state_dict(a.state_dict())
    assert result.missing_keys == [] and result.unexpected_keys == []
    for (na, pa), (nb, pb) in zip(a.named_parameters(), b.named_parameters()):
        assert na == nb and np.array_equal(pa.detach().cpu().numpy(), pb.detach().cpu().numpy())


def test_load_state_dict_errors_list_every_problem_and_load_nothing():
    a, b = Net(), Net()
    before = {k: v.cpu().numpy().copy() for k, v in b.state_dict().items()}
    sd = a.state_dict()
    del sd["head.bias"]
    sd["extra.weight"] = cr.zeros(1)
    sd["first.fc.weight"] = cr.zeros(5, 3)
    with pytest.raises(RuntimeError) as info:
        b.load_state_dict(sd)
    message = str(info.value)
    assert "missing keys: head.bias" in message
    assert "unexpected keys: extra.weight" in message
    assert "size mismatch for first.fc.weight" in message and "(5, 3)" in message
    assert "nothing was loaded" in message
    for k, v in b.state_dict().items():
        assert np.array_equal(v.cpu().numpy(), before[k]), k


def test_load_state_dict_non_strict_reports_keys():
    a, b = Net(), Net()
    sd = a.state_dict()
    del sd["head.bias"]
    sd["extra"] = cr.zeros(1)
    result = b.load_state_dict(sd, strict=False)
    assert result.missing_keys == ["head.bias"] and result.unexpected_keys == ["extra"]
    assert np.array_equal(b.head.weight.detach().cpu().numpy(), a.head.weight.detach().cpu().numpy())


def test_train_eval_requires_grad_zero_grad():
    net = Net()
    net.eval()
    assert not any(m.training for m in net.modules())
    net.train()
    assert all(m.training for m in net.modules())
    net(cr.randn(2, 3)).sum().backward()
    assert all(p.grad is not None for p in net.parameters())
    net.zero_grad(set_to_none=False)
    assert all(np.all(p.grad.cpu().numpy() == 0) for p in net.parameters())
    net.zero_grad()
    assert all(p.grad is None for p in net.parameters())
    net.requires_grad_(False)
    assert not any(p.requires_grad for p in net.parameters())


def test_to_dtype_keeps_parameter_identity():
    net = Net()
    params = list(net.parameters())
    net.double()
    assert [id(p) for p in net.parameters()] == [id(p) for p in params]
    assert all(p.dtype == cr.float64 for p in net.parameters())
    assert net.first.count.dtype == cr.float64
    assert net(cr.randn(2, 3, dtype=cr.float64)).dtype == cr.float64


def test_apply_visits_every_module():
    seen = []
    Net().apply(lambda m: seen.append(type(m).__name__))
    assert seen == ["Linear", "Block", "Linear", "Block", "Linear", "Net"]


def test_forward_hooks_replace_output_and_remove():
    lin = nn.Linear(2, 2)
    calls = []
    handle = lin.register_forward_hook(lambda m, inputs, out: calls.append(out.shape) or out * 0)
    out = lin(cr.ones(1, 2))
    assert calls == [(1, 2)] and np.all(out.detach().cpu().numpy() == 0)
    handle.remove()
    assert np.any(lin(cr.ones(1, 2)).detach().cpu().numpy() != 0)
    pre = lin.register_forward_pre_hook(lambda m, inputs: (inputs[0] * 0,))
    assert np.allclose(lin(cr.ones(1, 2)).detach().cpu().numpy(), lin.bias.detach().cpu().numpy())
    pre.remove()


def test_assigning_wrong_type_to_parameter_slot_refuses():
    lin = nn.Linear(2, 2)
    with pytest.raises(TypeError, match="parameter 'weight'"):
        lin.weight = cr.zeros(2, 2)


def test_attribute_before_init_is_a_clear_error():
    class Broken(nn.Module):
        def __init__(self):
            self.fc = nn.Linear(1, 1)

    with pytest.raises(AttributeError, match="super\\(\\).__init__"):
        Broken()


def test_containers():
    seq = nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1))
    assert len(seq) == 3 and isinstance(seq[-1], nn.Linear) and len(seq[:2]) == 2
    ml = nn.ModuleList([nn.Linear(1, 1) for _ in range(3)])
    assert len(list(ml.parameters())) == 6
    md = nn.ModuleDict({"a": nn.Linear(1, 2), "b": nn.ReLU()})
    assert "a" in md and list(md.keys()) == ["a", "b"]
    with pytest.raises(IndexError):
        seq[3]


def test_deepcopy_gives_independent_parameters():
    net = Net()
    twin = copy.deepcopy(net)
    with cr.no_grad():
        twin.head.weight.fill_(0.0)
    assert not np.all(net.head.weight.detach().cpu().numpy() == 0)
    assert isinstance(twin.head.weight, nn.Parameter)


def test_get_submodule_and_parameter():
    net = Net()
    assert net.get_submodule("first.fc") is net.first.fc
    assert net.get_parameter("second.scale") is net.second.scale
    with pytest.raises(AttributeError, match="no submodule 'nope'"):
        net.get_submodule("first.nope")


def test_default_linear_init_matches_pytorch_bounds():
    lin = nn.Linear(400, 300)
    w = lin.weight.detach().cpu().numpy()
    bound = 1 / np.sqrt(400)
    assert w.min() >= -bound and w.max() <= bound
    assert abs(w.std() - bound / np.sqrt(3)) < 0.02 * bound  # uniform(-b, b) has std b / sqrt(3)
    assert np.abs(lin.bias.detach().cpu().numpy()).max() <= bound


def test_replacing_a_submodule_parameter_or_buffer_keeps_its_place():
    """As in PyTorch: a Sequential's layer swapped for another (what convert_sync_batchnorm does) stays where
    it was, and so do a re-assigned parameter and a re-registered buffer."""
    seq = nn.Sequential(nn.Linear(2, 2), nn.ReLU(), nn.Linear(2, 3))
    setattr(seq, "1", nn.Sigmoid())
    seq.add_module("0", nn.Tanh())
    assert [type(m).__name__ for m in seq] == ["Tanh", "Sigmoid", "Linear"]
    assert seq(cr.zeros(1, 2)).shape == (1, 3)
    lin = nn.Linear(2, 2)
    lin.weight = nn.Parameter(cr.zeros(2, 2))
    lin.register_buffer("first", cr.zeros(1))
    lin.register_buffer("second", cr.zeros(1))
    lin.register_buffer("first", cr.ones(1))
    assert list(lin.state_dict()) == ["weight", "bias", "first", "second"]
