"""PyTorch programs' first lines run with ``torch`` changed to ``chainrule``: torch.utils.data,
torch.utils.checkpoint, torch.cuda, torch.backends, torch.save/torch.load, device selection."""

import subprocess
import sys
import textwrap

import numpy as np
import pytest

import chainrule as cr
from chainrule import nn
from chainrule.io import CheckpointError
from chainrule.utils.checkpoint import checkpoint, checkpoint_sequential

# A typical PyTorch training script; the test runs it with only "torch" replaced by "chainrule".
TORCH_SCRIPT = """
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

torch.manual_seed(0)
torch.backends.cudnn.benchmark = True
torch.set_float32_matmul_precision("high")
device = torch.device("cuda" if torch.cuda.is_available() else "cpu")

x = torch.randn(64, 4)
y = (x.sum(1) > 0).long()
loader = DataLoader(TensorDataset(x, y), batch_size=16, shuffle=True)
model = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 2)).to(device)
opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
for epoch in range(3):
    for xb, yb in loader:
        xb, yb = xb.to(device, non_blocking=True), yb.to(device, non_blocking=True)
        loss = F.cross_entropy(model(xb), yb)
        opt.zero_grad()
        loss.backward()
        opt.step()
torch.save({"model": model.state_dict(), "optimizer": opt.state_dict(), "epoch": epoch}, PATH)
state = torch.load(PATH, map_location=device, weights_only=True)
model2 = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 2)).to(device)
model2.load_state_dict(state["model"])
opt2 = torch.optim.AdamW(model2.parameters(), lr=1e-2)
opt2.load_state_dict(state["optimizer"])
with torch.no_grad():
    assert bool((model(x) == model2(x)).all())
print("epoch", state["epoch"], "loss", float(loss))
"""


def test_pytorch_script_runs_with_only_the_import_changed(tmp_path):
    script = TORCH_SCRIPT.replace("torch", "chainrule").replace("PATH", repr(str(tmp_path / "ckpt.pt")))
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert run.stdout.startswith("epoch 2 loss")


def test_utils_data_is_chainrule_data():
    import chainrule.data as data
    import chainrule.utils.data as d

    for name in data.__all__:
        if name in d.__all__:
            assert getattr(d, name) is getattr(data, name), name
    from chainrule.utils.data import DataLoader, Dataset, default_collate, get_worker_info, random_split

    assert (DataLoader, Dataset, default_collate, get_worker_info, random_split) == (
        data.DataLoader, data.Dataset, data.default_collate, data.get_worker_info, data.random_split)
    assert cr.utils.data is d


def test_import_chainrule_stays_lazy():
    code = ("import sys, chainrule; print(any(m in sys.modules for m in "
            "('chainrule.utils', 'chainrule.cuda', 'chainrule.backends', 'chainrule.io', 'chainrule.nn')))")
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "False"


@pytest.mark.skipif(cr.cuda.is_available(), reason="about a machine without a cuda device; this run has one "
                                                  "(a GPU, or the stand-in of CHAINRULE_TEST_DEVICE=cuda)")
def test_cuda_and_backends_without_a_gpu():
    assert cr.cuda.is_available() is False and cr.cuda.device_count() == 0
    cr.cuda.manual_seed(1), cr.cuda.manual_seed_all(1), cr.cuda.synchronize(), cr.cuda.empty_cache()
    with pytest.raises(RuntimeError, match="no CUDA device"):
        cr.cuda.current_device()
    assert cr.device("cuda" if cr.cuda.is_available() else "cpu") == cr.cpu
    import chainrule.backends.cudnn as cudnn

    for flag in ("benchmark", "deterministic", "enabled"):
        setattr(cr.backends.cudnn, flag, True)
        assert getattr(cudnn, flag) is True
    cr.backends.cuda.matmul.allow_tf32 = True
    assert cr.backends.mps.is_available() is False
    cr.set_float32_matmul_precision("medium")
    assert cr.get_float32_matmul_precision() == "medium"
    cr.set_float32_matmul_precision("highest")
    with pytest.raises(RuntimeError, match="highest"):
        cr.set_float32_matmul_precision("fast")


def test_tensor_and_module_to_device(device):
    t = cr.randn(3)
    assert t.to(cr.device(device.type), non_blocking=True) is t and t.to(device) is t
    model = nn.Linear(2, 2)
    assert model.to(cr.device("cpu")) is model and model.to("cpu") is model


# ----- save / load -------------------------------------------------------------------------------------------

def test_save_load_round_trip_of_nested_state(tmp_path):
    model = nn.Sequential(nn.Linear(3, 4), nn.LayerNorm(4))
    opt = cr.optim.Adam(model.parameters())
    model(cr.randn(2, 3)).sum().backward()
    opt.step()
    obj = {"model": model.state_dict(), "optimizer": opt.state_dict(), "step": 7, "name": "run", "lr": 1e-3,
           "pair": (1, 2), "inf": float("inf"), "none": None, "ints": cr.tensor([1, 2], dtype=cr.int64)}
    path = tmp_path / "both.pt"
    cr.save(obj, path)
    back = cr.load(path, map_location="cpu", weights_only=True)
    assert back["step"] == 7 and back["name"] == "run" and back["pair"] == (1, 2) and back["inf"] == float("inf")
    assert back["none"] is None and back["ints"].dtype == cr.int64
    assert list(back["model"]) == list(obj["model"])
    for key, value in obj["model"].items():
        np.testing.assert_array_equal(back["model"][key].cpu().numpy(), value.cpu().numpy())
    assert back["optimizer"]["param_groups"] == obj["optimizer"]["param_groups"]
    state = back["optimizer"]["state"][0]
    np.testing.assert_array_equal(state["exp_avg"].cpu().numpy(), obj["optimizer"]["state"][0]["exp_avg"].cpu().numpy())
    opt.load_state_dict(back["optimizer"])
    model.load_state_dict(back["model"])
    cr.save(cr.ones(2), tmp_path / "t.pt")
    np.testing.assert_array_equal(cr.load(tmp_path / "t.pt").cpu().numpy(), np.ones(2, np.float32))


def test_saved_file_is_safetensors_readable_by_pytorch(tmp_path):
    safetensors_torch = pytest.importorskip("safetensors.torch")
    cr.save(nn.Linear(3, 2).state_dict(), tmp_path / "m.pt")
    assert sorted(safetensors_torch.load_file(str(tmp_path / "m.pt"))) == ["bias", "weight"]
    safetensors_torch.save_file({"w": __import__("torch").ones(2)}, str(tmp_path / "theirs.safetensors"))
    assert list(cr.load(tmp_path / "theirs.safetensors")) == ["w"]


def test_pytorch_pickle_files_are_refused(tmp_path):
    torch = pytest.importorskip("torch")
    torch.save({"w": torch.ones(2)}, tmp_path / "zip.pt")
    torch.save({"w": torch.ones(2)}, tmp_path / "legacy.pt", _use_new_zipfile_serialization=False)
    for name in ("zip.pt", "legacy.pt"):
        with pytest.raises(CheckpointError, match="never opens it") as info:
            cr.load(tmp_path / name)
        assert "\n" not in str(info.value)


def test_save_refuses_objects_and_leaves_no_file(tmp_path):
    with pytest.raises(TypeError, match="Linear"):
        cr.save({"model": nn.Linear(2, 2)}, tmp_path / "bad.pt")
    assert not (tmp_path / "bad.pt").exists()


# ----- checkpoint ----------------------------------------------------------------------------------------------

def _grads(modules):
    return [p.grad.cpu().numpy().copy() for m in modules for p in m.parameters()]


@pytest.mark.parametrize("use_reentrant", [False, True])
def test_checkpoint_gradients_equal_the_plain_run_with_dropout(use_reentrant):
    cr.manual_seed(0)
    pre = nn.Linear(6, 6).double()
    block = nn.Sequential(nn.Linear(6, 12), nn.GELU(), nn.Dropout(0.4), nn.LayerNorm(12), nn.Linear(12, 6)).double()
    x = cr.randn(5, 6, dtype=cr.float64, requires_grad=True)
    results = []
    for wrapped in (False, True):
        for m in (pre, block):
            m.zero_grad()
        x.grad = None
        cr.manual_seed(1)
        h = pre(x)
        y = checkpoint(block, h, use_reentrant=use_reentrant) if wrapped else block(h)
        ((y * h) ** 2).sum().backward()
        results.append((y.detach().cpu().numpy(), x.grad.cpu().numpy().copy(), _grads([pre, block])))
    (y0, gx0, g0), (y1, gx1, g1) = results
    np.testing.assert_array_equal(y0, y1)
    np.testing.assert_allclose(gx1, gx0, rtol=1e-12, atol=1e-14)
    for a, b in zip(g1, g0):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)


def test_checkpoint_reaches_closed_over_tensors_and_several_outputs():
    w = cr.randn(4, 4, dtype=cr.float64, requires_grad=True)
    x = cr.randn(3, 4, dtype=cr.float64, requires_grad=True)
    outer = {}

    def f(z):
        h = (z @ w).tanh() * outer["scale"]  # an intermediate of the caller's graph, not an argument
        return h, h.sum(1)

    grads = []
    for wrapped in (False, True):
        w.grad = x.grad = None
        outer["scale"] = (x * x).sum()
        a, b = checkpoint(f, x) if wrapped else f(x)
        (a.sum() + (b ** 2).sum()).backward()
        grads.append((w.grad.cpu().numpy().copy(), x.grad.cpu().numpy().copy()))
    for ours, plain in zip(grads[1], grads[0]):
        np.testing.assert_allclose(ours, plain, rtol=1e-12, atol=1e-14)
    outer["scale"] = (x * x).sum()
    (gw,) = cr.autograd.grad(checkpoint(f, x)[1].sum(), w)
    outer["scale"] = (x * x).sum()
    np.testing.assert_allclose(gw.cpu().numpy(), cr.autograd.grad(f(x)[1].sum(), w)[0].cpu().numpy(), rtol=1e-12)


def test_checkpoint_sequential_and_no_grad():
    seq = nn.Sequential(*[nn.Linear(5, 5) for _ in range(6)]).double()
    x = cr.randn(2, 5, dtype=cr.float64, requires_grad=True)
    checkpoint_sequential(seq, 3, x).sum().backward()
    ours = x.grad.cpu().numpy().copy(), _grads([seq])
    x.grad = None
    seq.zero_grad()
    seq(x).sum().backward()
    np.testing.assert_allclose(ours[0], x.grad.cpu().numpy(), rtol=1e-12)
    for a, b in zip(ours[1], _grads([seq])):
        np.testing.assert_allclose(a, b, rtol=1e-12)
    with cr.no_grad():
        assert checkpoint(seq, x).grad_fn is None


def test_checkpoint_keeps_less_memory_alive():
    script = textwrap.dedent("""
        import tracemalloc, chainrule as cr
        from chainrule.utils.checkpoint import checkpoint
        nn = cr.nn
        blocks = [nn.Sequential(nn.Linear(256, 256), nn.GELU(), nn.Linear(256, 256), nn.GELU()) for _ in range(8)]
        x = cr.randn(512, 256, requires_grad=True)
        def peak(wrapped):
            tracemalloc.start()
            h = x
            for b in blocks:
                h = checkpoint(b, h) if wrapped else b(h)
            held = tracemalloc.get_traced_memory()[0]
            tracemalloc.stop()
            return held
        print(peak(False), peak(True))
    """)
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    plain, wrapped = map(int, run.stdout.split())
    assert wrapped < plain / 2


def test_module_to_accepts_non_blocking_as_pytorch_programs_pass_it():
    model = cr.nn.Linear(3, 2)
    weight = model.weight
    assert model.to("cpu", non_blocking=True) is model and model.weight is weight
    assert model.to(cr.float64, non_blocking=True).weight.dtype == cr.float64
