"""The training stack on the ``cuda`` device: Module.to, optimizers and schedulers on device state, pinned
memory and non-blocking copies, device-independent checkpoints, ``fit(device=)``.

Every test runs on any machine: the ``cuda`` device is CuPy on a GPU, or else the NumPy stand-in (which
refuses host/device mixing as CuPy does), installed for the test when the suite does not run on it.
The stand-in's arrays are numpy's, so results on it equal the CPU's bit for bit; on a real GPU they are
compared with a float32 tolerance.
"""

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import chainrule as cr
import chainrule.nn as nn
from chainrule import optim
from chainrule.backend import gpu
from chainrule.data import DataLoader, TensorDataset

# the ``cuda_device`` fixture (tests/conftest.py): CuPy on a GPU, else the stand-in device


def _close(a, b):
    """Equal on the stand-in (numpy underneath); within float32 rounding on a real GPU."""
    a, b = np.asarray(a.detach().cpu().numpy()), np.asarray(b.detach().cpu().numpy())
    if gpu.cupy_module() is None:
        np.testing.assert_array_equal(a, b)
    else:
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def _net():
    cr.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 3)).to("cpu")


def _data(n=16):
    rng = np.random.default_rng(0)
    x = cr.tensor(rng.standard_normal((n, 4)), dtype=cr.float32, device="cpu")
    y = cr.tensor(rng.integers(0, 3, n), device="cpu")
    return x, y


# ----- Module.to / .cuda() / .cpu() --------------------------------------------------------------------------

def test_module_to_moves_parameters_buffers_and_grads_keeping_the_parameter_objects(cuda_device):
    model = _net()
    x, y = _data()
    nn.functional.cross_entropy(model(x), y).backward()
    params = list(model.parameters())
    before = {name: t.detach().cpu().numpy().copy() for name, t in model.state_dict().items()}
    grads = [p.grad.cpu().numpy().copy() for p in params]
    assert model.cuda() is model
    assert [id(p) for p in model.parameters()] == [id(p) for p in params]  # the same Parameter objects
    for name, t in model.state_dict().items():
        assert t.device == cuda_device, name
        np.testing.assert_array_equal(t.cpu().numpy(), before[name])
    for p, g in zip(params, grads):
        assert p.grad.device == cuda_device and p.is_leaf and p.requires_grad
        np.testing.assert_array_equal(p.grad.cpu().numpy(), g)
    assert model[1].running_mean.device == cuda_device and model[1].num_batches_tracked.device == cuda_device
    model.cpu()
    assert all(t.device.type == "cpu" for t in model.state_dict().values())
    assert all(p.grad.device.type == "cpu" for p in params)
    model.to("cuda:0", cr.float64)
    assert all(p.device == cuda_device and p.dtype == cr.float64 for p in params)
    assert model[1].num_batches_tracked.dtype == cr.int64  # integer buffers keep their dtype


def test_optimizer_state_lives_on_the_parameters_device_and_training_there_equals_the_cpu(cuda_device):
    results = {}
    for where in ("cpu", "cuda"):
        model = _net().to(where)
        opt = optim.AdamW(model.parameters(), lr=0.01)
        sched = optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.5)
        x, y = (t.to(where) for t in _data())
        for _ in range(4):
            opt.zero_grad()
            nn.functional.cross_entropy(model(x), y).backward()
            opt.step()
            sched.step()
        for p in model.parameters():
            assert all(v.device.type == where for v in opt.state[p].values() if isinstance(v, cr.Tensor))
        results[where] = (model, sched.get_last_lr())
    (cpu_model, cpu_lr), (cuda_model, cuda_lr) = results["cpu"], results["cuda"]
    assert cpu_lr == cuda_lr == [0.0025]
    for a, b in zip(cpu_model.state_dict().values(), cuda_model.state_dict().values()):
        _close(b, a)


def test_optimizer_load_state_dict_moves_the_state_to_each_parameters_device(cuda_device):
    model = _net()
    opt = optim.Adam(model.parameters(), lr=0.01)
    x, y = _data()
    nn.functional.cross_entropy(model(x), y).backward()
    opt.step()
    saved = opt.state_dict()
    on_device = _net().cuda()
    opt2 = optim.Adam(on_device.parameters(), lr=0.01)
    opt2.load_state_dict(saved)
    for p_cpu, p_dev in zip(model.parameters(), on_device.parameters()):
        for key in ("exp_avg", "exp_avg_sq"):
            assert opt2.state[p_dev][key].device == cuda_device
            np.testing.assert_array_equal(opt2.state[p_dev][key].cpu().numpy(), opt.state[p_cpu][key].numpy())
    back = optim.Adam(_net().parameters(), lr=0.01)  # and from the device to the CPU
    back.load_state_dict(opt2.state_dict())
    assert all(v["exp_avg"].device.type == "cpu" for v in back.state.values())


# ----- pinned memory and non-blocking copies -------------------------------------------------------------------

def test_pin_memory_and_non_blocking_copies(cuda_device):
    x = cr.arange(12, dtype=cr.float32, device="cpu").reshape(3, 4)
    assert not x.is_pinned()
    pinned = x.pin_memory()
    assert pinned.is_pinned() and pinned[1:].is_pinned() and pinned.device.type == "cpu"
    assert pinned.pin_memory() is pinned
    np.testing.assert_array_equal(pinned.numpy(), x.numpy())
    moved = pinned.to("cuda", non_blocking=True)
    cr.cuda.synchronize()  # the copy was enqueued on the stream; wait before reading it another way
    assert moved.device == cuda_device and not moved.is_pinned()
    np.testing.assert_array_equal(moved.cpu().numpy(), x.numpy())
    with pytest.raises(RuntimeError, match="only dense CPU tensors can be pinned"):
        moved.pin_memory()
    w = cr.ones(3, 4, device="cpu", requires_grad=True)  # pinning and the copy pass gradients through
    (w.pin_memory().cuda(non_blocking=True) * 2).sum().backward()
    np.testing.assert_array_equal(w.grad.numpy(), np.full((3, 4), 2.0, np.float32))


def test_dataloader_pin_memory_gives_pinned_batches(cuda_device):
    x, y = _data(10)
    plain = list(DataLoader(TensorDataset(x, y), batch_size=4))
    pinned = list(DataLoader(TensorDataset(x, y), batch_size=4, pin_memory=True))
    assert len(plain) == len(pinned) == 3
    for (px, py), (qx, qy) in zip(plain, pinned):
        assert qx.is_pinned() and qy.is_pinned() and not px.is_pinned()
        np.testing.assert_array_equal(qx.numpy(), px.numpy())
        np.testing.assert_array_equal(qy.numpy(), py.numpy())
    batch = next(iter(DataLoader([{"a": np.ones(2, np.float32)}] * 2, batch_size=2, pin_memory=True)))
    assert batch["a"].device.type != "cpu" or batch["a"].is_pinned()  # dicts too (on the CPU when collated there)


# ----- checkpoints -----------------------------------------------------------------------------------------------

def test_save_on_the_device_load_on_the_cpu_and_back(cuda_device, tmp_path):
    data = {"w": cr.randn(3, 2, device="cuda"), "n": cr.tensor(5, device="cuda"), "host": cr.ones(2, device="cpu"),
            "nested": [cr.arange(3, device="cuda")]}
    path = tmp_path / "state.pt"
    cr.save(data, path)

    def check(loaded, expected_devices):
        for key, device in expected_devices.items():
            value = loaded[key][0] if key == "nested" else loaded[key]
            original = data[key][0] if key == "nested" else data[key]
            assert value.device.type == device, key
            np.testing.assert_array_equal(value.cpu().numpy(), original.cpu().numpy())

    check(cr.load(path), {"w": "cuda", "n": "cuda", "host": "cpu", "nested": "cuda"})  # where they were saved
    check(cr.load(path, map_location="cpu"), {"w": "cpu", "n": "cpu", "host": "cpu", "nested": "cpu"})
    check(cr.load(path, map_location=cr.device("cuda")), {"w": "cuda", "n": "cuda", "host": "cuda", "nested": "cuda"})
    check(cr.load(path, map_location={"cuda:0": "cpu"}), {"w": "cpu", "n": "cpu", "host": "cpu", "nested": "cpu"})
    check(cr.load(path, map_location={"cpu": "cuda"}), {"w": "cuda", "n": "cuda", "host": "cuda", "nested": "cuda"})
    seen = []

    def to_cpu_and_record(tensor, location):
        seen.append((tensor.device.type, location))
        return tensor  # the tensor as read: on the CPU

    check(cr.load(path, map_location=to_cpu_and_record), {"w": "cpu", "n": "cpu", "host": "cpu", "nested": "cpu"})
    assert sorted(seen) == [("cpu", "cpu")] + [("cpu", "cuda:0")] * 3
    check(cr.load(path, map_location=lambda tensor, location: None), {"w": "cuda", "host": "cpu"})


def test_a_model_checkpoint_saved_on_the_device_restores_on_the_cpu_and_back(cuda_device, tmp_path):
    model = _net().cuda()
    opt = optim.Adam(model.parameters(), lr=0.01)
    x, y = (t.cuda() for t in _data())
    nn.functional.cross_entropy(model(x), y).backward()
    opt.step()
    cr.io.save(model, tmp_path / "ckpt.safetensors", optimizer=opt, step=1)
    cr.save(model.state_dict(), tmp_path / "state.pt")
    cpu_model = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 3)).to("cpu")
    cpu_opt = optim.Adam(cpu_model.parameters(), lr=0.01)
    cr.io.load(tmp_path / "ckpt.safetensors").restore(cpu_model, optimizer=cpu_opt)
    for a, b in zip(cpu_model.state_dict().values(), model.state_dict().values()):
        assert a.device.type == "cpu"
        np.testing.assert_array_equal(a.numpy(), b.cpu().numpy())
    assert all(s["exp_avg"].device.type == "cpu" for s in cpu_opt.state.values())
    again = _net().cuda()  # and back onto the device, from the file written by cr.save
    again.load_state_dict(cr.load(tmp_path / "state.pt", map_location="cpu"))
    for a, b in zip(again.state_dict().values(), model.state_dict().values()):
        assert a.device == cuda_device
        np.testing.assert_array_equal(a.cpu().numpy(), b.cpu().numpy())


def test_without_a_gpu_pinning_does_nothing_and_a_device_checkpoint_needs_map_location(tmp_path, cuda_device):
    path = tmp_path / "state.pt"
    cr.save({"w": cr.ones(2, device="cuda")}, path)
    script = textwrap.dedent(f"""
        import warnings
        import chainrule as cr
        from chainrule.data import DataLoader
        try:
            cr.load({str(path)!r})
        except RuntimeError as err:
            print("load:", err)
        print("cpu:", cr.load({str(path)!r}, map_location="cpu")["w"].tolist())
        try:
            cr.ones(2).pin_memory()
        except RuntimeError as err:
            print("pin:", err)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            batch = next(iter(DataLoader([1.0, 2.0], batch_size=2, pin_memory=True)))
        print("loader:", batch.is_pinned(), [str(w.message) for w in caught])
    """)
    env = {k: v for k, v in os.environ.items() if k not in ("CHAINRULE_STANDIN_CUDA", "CHAINRULE_TEST_DEVICE")}
    env["CUDA_VISIBLE_DEVICES"] = ""  # no GPU for the child, even on a GPU machine
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].startswith("load: load: attempting to deserialize a tensor saved on cuda:0")
    assert "map_location='cpu'" in lines[0]
    assert lines[1] == "cpu: [1.0, 1.0]"
    assert lines[2] == "pin: pin_memory: Cannot access accelerator device when none is available."
    assert lines[3].startswith("loader: False") and "no accelerator is found" in lines[3]


# ----- fit(device=) ---------------------------------------------------------------------------------------------

def test_fit_with_a_device_moves_the_model_and_the_batches_and_matches_the_cpu(cuda_device):
    histories, models = {}, {}
    for where in ("cpu", "cuda"):
        model = _net()
        opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)  # made before fit moves the model
        x, y = _data(24)
        loader = DataLoader(TensorDataset(x, y), batch_size=8, pin_memory=where == "cuda")
        histories[where] = cr.train.fit(model, loader, loss="cross_entropy", optimizer=opt, epochs=2,
                                        metrics=["accuracy"], verbose=0, device=where, val_data=(x, y))
        models[where] = model
        assert all(p.device.type == where for p in model.parameters())
        predictions = cr.train.predict(model, x, device=where)
        assert predictions.device.type == where
    for a, b in zip(histories["cpu"].epochs, histories["cuda"].epochs):
        for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
            assert a[key] == pytest.approx(b[key], rel=0 if gpu.cupy_module() is None else 1e-5), key
    for a, b in zip(models["cpu"].parameters(), models["cuda"].parameters()):
        _close(b, a)
