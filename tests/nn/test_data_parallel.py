"""nn.DataParallel against PyTorch's on a machine without GPUs: a transparent wrapper whose forward calls the
module and whose state_dict carries the module's keys under ``module.``."""

import numpy as np
import pytest

import chainrule as cr
from chainrule import nn

torch = pytest.importorskip("torch")
tnn = torch.nn

pytestmark = pytest.mark.oracle


def model(lib):
    return lib.Sequential(lib.Linear(4, 8), lib.BatchNorm1d(8), lib.ReLU(), lib.Linear(8, 3))


@pytest.fixture
def pair():
    torch.manual_seed(0)
    theirs = tnn.DataParallel(model(tnn).double())
    ours = nn.DataParallel(model(nn).double())
    ours.load_state_dict({k: cr.tensor(v.detach().cpu().numpy()) for k, v in theirs.state_dict().items()})
    return ours, theirs


def test_state_dict_keys_match_torch(pair):
    ours, theirs = pair
    assert list(ours.state_dict()) == list(theirs.state_dict())
    assert all(k.startswith("module.") for k in ours.state_dict())
    assert [n for n, _ in ours.named_parameters()] == [n for n, _ in theirs.named_parameters()]
    assert list(ours.module.state_dict()) == list(theirs.module.state_dict())


def test_forward_backward_and_modes_match_torch(pair):
    ours, theirs = pair
    x = np.random.default_rng(1).standard_normal((5, 4))
    for train in (True, False):
        ours.train(train)
        theirs.train(train)
        assert ours.module.training is train
        cx, tx = cr.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
        c_out, t_out = ours(cx), theirs(tx)
        np.testing.assert_allclose(c_out.detach().cpu().numpy(), t_out.detach().cpu().numpy(), rtol=1e-12, atol=1e-12)
        c_out.sum().backward()
        t_out.sum().backward()
        np.testing.assert_allclose(cx.grad.cpu().numpy(), tx.grad.cpu().numpy(), rtol=1e-12, atol=1e-12)
    reference = dict(theirs.named_parameters())
    for name, p in ours.named_parameters():
        np.testing.assert_allclose(p.grad.cpu().numpy(), reference[name].grad.cpu().numpy(), rtol=1e-12, atol=1e-12)
    for name, buf in ours.state_dict().items():  # running statistics updated through the wrapper
        np.testing.assert_allclose(buf.cpu().numpy(), theirs.state_dict()[name].cpu().numpy(), rtol=1e-12, atol=1e-12)


def test_wrapper_attributes_and_names():
    inner = nn.Linear(2, 2)
    wrapped = nn.DataParallel(inner, device_ids=[0, 1], output_device=0, dim=1)
    theirs = tnn.DataParallel(tnn.Linear(2, 2), device_ids=[0, 1], output_device=0, dim=1)
    assert wrapped.module is inner and wrapped.device_ids == theirs.device_ids == []
    assert nn.parallel.DataParallel is nn.DataParallel
    assert list(wrapped.parameters()) == list(inner.parameters())
    assert repr(wrapped).startswith("DataParallel(\n  (module): Linear(")
    with pytest.raises(TypeError, match="nn.Module"):
        nn.DataParallel(lambda x: x)


def test_forward_passes_keyword_arguments():
    class Scale(nn.Module):
        def forward(self, x, *, factor=1.0):
            return x * factor, "extra"

    out, extra = nn.DataParallel(Scale())(cr.tensor([1.0, 2.0]), factor=3.0)
    assert out.tolist() == [3.0, 6.0] and extra == "extra"


def test_checkpoint_of_the_wrapper_loads_into_the_bare_module(pair):
    ours, _ = pair
    bare = model(nn).double()
    bare.load_state_dict({k.removeprefix("module."): v for k, v in ours.state_dict().items()})
    x = cr.tensor(np.ones((2, 4)))
    ours.eval()
    bare.eval()
    assert ours(x).tolist() == bare(x).tolist()
