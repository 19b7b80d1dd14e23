"""Interop with PyTorch through the official safetensors package: files torch writes load here with the same
values, and our checkpoints load in torch with the same values."""

import numpy as np
import pytest

import chainrule as cr
from chainrule.io import CheckpointError, load, load_state_dict, save

torch = pytest.importorskip("torch")
st_torch = pytest.importorskip("safetensors.torch")

TORCH_DTYPES = [torch.float16, torch.float32, torch.float64, torch.int8, torch.int16, torch.int32, torch.int64,
                torch.uint8, torch.bool]


def _torch_tensors():
    generator = torch.Generator().manual_seed(0)
    out = {}
    for dtype in TORCH_DTYPES:
        name = str(dtype).removeprefix("torch.")
        values = torch.randn(3, 4, generator=generator) * 50
        out[f"{name}.matrix"] = values.to(dtype)
        out[f"{name}.scalar"] = values[0, 0].to(dtype).clone()
        out[f"{name}.empty"] = torch.zeros(2, 0, dtype=dtype)
    return out


def test_torch_written_file_loads_with_identical_values(tmp_path):
    tensors = _torch_tensors()
    st_torch.save_file(tensors, tmp_path / "t.safetensors", metadata={"format": "pt"})
    got = load_state_dict(tmp_path / "t.safetensors")
    assert got.keys() == tensors.keys()
    for name, value in tensors.items():
        want = value.cpu().numpy()
        assert got[name].shape == want.shape and got[name].dtype.np == want.dtype
        assert got[name].cpu().numpy().tobytes() == want.tobytes()


def test_our_checkpoint_loads_in_torch_with_identical_values(tmp_path):
    generator = cr.Generator(0)
    tensors = {"w": cr.randn(4, 3, generator=generator), "b": cr.randn(4, dtype=cr.float64, generator=generator),
               "h": cr.randn(2, 2, generator=generator).half(), "ids": cr.arange(5), "mask": cr.tensor([True, False]),
               "scalar": cr.tensor(7, dtype=cr.int32), "empty": cr.zeros(0, 3)}
    save(tensors, tmp_path / "c.safetensors", config={"width": 3}, step=4)
    loaded = st_torch.load_file(tmp_path / "c.safetensors")
    assert set(tensors) <= set(loaded)
    assert all(name.startswith("__") for name in set(loaded) - set(tensors))  # only our reserved entries added
    for name, value in tensors.items():
        assert loaded[name].cpu().numpy().tobytes() == value.cpu().numpy().tobytes()
        assert tuple(loaded[name].shape) == value.shape


def test_torch_module_weights_restore_into_matching_model(tmp_path):
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2))
    st_torch.save_model(net, tmp_path / "net.safetensors")

    class Stand:
        def __init__(self):
            self.tensors = {"0.weight": cr.zeros(4, 3), "0.bias": cr.zeros(4), "2.weight": cr.zeros(2, 4), "2.bias": cr.zeros(2)}

        def state_dict(self):
            return dict(self.tensors)

        def load_state_dict(self, state_dict, strict=True):
            for key, value in state_dict.items():
                self.tensors[key].copy_(value)  # into the tensor's memory, on its own device

    model = Stand()
    load(tmp_path / "net.safetensors").restore(model)
    for key, value in net.state_dict().items():
        np.testing.assert_array_equal(model.tensors[key].cpu().numpy(), value.detach().cpu().numpy())


def test_torch_bfloat16_file_is_refused_clearly(tmp_path):
    st_torch.save_file({"w": torch.ones(3, dtype=torch.bfloat16)}, tmp_path / "bf.safetensors")
    with pytest.raises(CheckpointError, match=r"bf\.safetensors.*'w' has dtype BF16.*F32"):
        load_state_dict(tmp_path / "bf.safetensors")
