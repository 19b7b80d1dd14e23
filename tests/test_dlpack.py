"""DLPack and array interchange: chainrule tensors lent to PyTorch and numpy without copies, and their arrays
borrowed back, with PyTorch and numpy as the oracles (same memory, writes visible both ways)."""

import subprocess
import sys

import numpy as np
import pytest

import chainrule as cr
from chainrule.backend import standin

torch = pytest.importorskip("torch")

_DTYPES = ["float16", "float32", "float64", "uint8", "int8", "int16", "int32", "int64", "bool"]


@pytest.fixture(autouse=True)
def _on_the_cpu():
    """DLPack here lends and borrows host memory: these tests' tensors are CPU tensors on any test device
    (what a device tensor exports is checked apart, in test_a_cuda_tensor_exports_only_real_device_memory)."""
    with cr.device("cpu"):
        yield


def _address(t: cr.Tensor) -> int:
    return t.numpy().__array_interface__["data"][0]


def test_a_cuda_tensor_exports_only_real_device_memory(cuda_device):
    t = cr.ones(2, device=cuda_device)
    if standin.installed():  # host memory posing as a GPU's: no DLPack device to name, so no export
        for export in (t.__dlpack__, t.__dlpack_device__, lambda: torch.from_dlpack(t), lambda: np.from_dlpack(t)):
            with pytest.raises(BufferError, match="stand-in cuda device has no DLPack device"):
                export()
    else:  # CuPy's memory, kDLCUDA, and back through CuPy's from_dlpack
        assert tuple(t.__dlpack_device__()) == (2, 0)
        back = cr.from_dlpack(t)
        assert back.device == cuda_device and back.tolist() == [1.0, 1.0]


def test_torch_from_dlpack_shares_memory_both_ways():
    t = cr.arange(6.0).reshape(2, 3)
    seen = torch.from_dlpack(t)
    assert seen.data_ptr() == _address(t)
    seen[0, 0] = 9.0
    assert t[0, 0].item() == 9.0
    t.add_(1.0)
    assert seen[1, 2].item() == 6.0


def test_chainrule_from_dlpack_shares_memory_with_torch():
    x = torch.arange(6.0).reshape(2, 3)
    t = cr.from_dlpack(x)
    assert _address(t) == x.data_ptr()
    assert (t.shape, t.dtype, t.requires_grad) == ((2, 3), cr.float32, False)
    x[1, 1] = -5.0
    assert t[1, 1].item() == -5.0
    t[0, 0] = 7.0
    assert x[0, 0].item() == 7.0


def test_numpy_from_dlpack_both_ways():
    t = cr.arange(4, dtype=cr.int32)
    a = np.from_dlpack(t)
    assert a.__array_interface__["data"][0] == _address(t)
    b = np.arange(3.0)
    back = cr.from_dlpack(b)
    b[2] = 10.0
    assert back.tolist() == [0.0, 1.0, 10.0]


@pytest.mark.parametrize("view", [
    lambda t: t.t(), lambda t: t[:, ::2], lambda t: t[..., 0], lambda t: t[:, :1].expand(3, 5),
    lambda t: t[1:, 2:],
])
def test_views_keep_their_strides(view):
    base = cr.arange(15.0).reshape(3, 5)
    v = view(base)
    seen = torch.from_dlpack(v)
    assert seen.data_ptr() == _address(v)
    assert seen.stride() == tuple(s // 4 for s in v.numpy().strides)
    np.testing.assert_array_equal(seen.numpy(), v.numpy())


def test_negative_strides_are_exported_as_a_copy():
    # torch 2.13 aborts the interpreter on a negative-stride capsule, so a regression must not take pytest down
    code = ("import chainrule as cr, torch\n"
            "t = cr.arange(5.0)[::-1]\n"
            "assert t.numpy().strides[0] < 0\n"
            "seen = torch.from_dlpack(t)\n"
            "assert seen.tolist() == [4.0, 3.0, 2.0, 1.0, 0.0], seen\n"
            "print('ok')\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]


def test_negative_strides_with_copy_false_are_refused():
    with pytest.raises(BufferError, match="negative strides"):
        cr.arange(5.0)[::-1].__dlpack__(copy=False)


@pytest.mark.parametrize("dtype", _DTYPES)
@pytest.mark.parametrize("shape", [(), (0,), (2, 0, 3), (3, 2)])
def test_dtypes_and_shapes_round_trip(dtype, shape):
    t = (cr.rand(*shape) * 3).to(getattr(cr, dtype if dtype != "bool" else "bool_"))
    seen = torch.from_dlpack(t)
    assert str(seen.dtype) == f"torch.{dtype}" and tuple(seen.shape) == shape
    back = cr.from_dlpack(seen)
    assert back.dtype == t.dtype and back.shape == shape
    np.testing.assert_array_equal(back.numpy(), t.numpy())


def test_requires_grad_is_refused_like_pytorch():
    w = cr.ones(3, requires_grad=True)
    with pytest.raises(BufferError, match="requires grad"):
        torch.from_dlpack(w)
    assert torch.from_dlpack(w.detach()).tolist() == [1.0, 1.0, 1.0]
    with pytest.raises(BufferError):  # PyTorch's own refusal, passed through
        cr.from_dlpack(torch.ones(2, requires_grad=True))


def test_copy_flag():
    t = cr.arange(3.0)
    copied = np.from_dlpack(t, copy=True)
    assert copied.__array_interface__["data"][0] != _address(t)
    x = torch.arange(3.0)
    mine = cr.from_dlpack(x, copy=True)
    x[0] = 100.0
    assert mine[0].item() == 0.0


def test_bfloat16_is_refused_with_a_clear_error():
    with pytest.raises(TypeError, match="from_dlpack"):
        cr.from_dlpack(torch.ones(2, dtype=torch.bfloat16))


def test_not_a_dlpack_object():
    with pytest.raises(TypeError, match="__dlpack__"):
        cr.from_dlpack([1, 2, 3])


def test_dlpack_device_and_stream():
    t = cr.ones(2)
    assert tuple(t.__dlpack_device__()) == (1, 0)
    assert np.from_dlpack(t).tolist() == [1.0, 1.0]
    t.__dlpack__(stream=-1)  # what a consumer passes for "no synchronisation"


def test_torch_tensor_and_as_tensor():
    # these failed with "TypeError: len() of a 0-d tensor" before chainrule spoke DLPack
    t = cr.tensor([[1.0, 2.0], [3.0, 4.0]])
    copied, shared = torch.tensor(t), torch.as_tensor(t)
    assert copied.tolist() == shared.tolist() == t.tolist()
    assert shared.data_ptr() == _address(t) != copied.data_ptr()
    assert torch.as_tensor(cr.tensor(3, dtype=cr.int16)).dtype == torch.int16


def test_numpy_force():
    w = cr.randn(3, requires_grad=True)
    with pytest.raises(RuntimeError, match="requires grad"):
        w.numpy()
    forced = w.numpy(force=True)
    np.testing.assert_array_equal(forced, w.detach().numpy())
    assert forced.__array_interface__["data"][0] == _address(w.detach())


def test_array_protocol_copy():
    t = cr.arange(3.0)
    assert np.asarray(t).__array_interface__["data"][0] == _address(t)
    assert np.array(t).__array_interface__["data"][0] != _address(t)
    assert np.array(t, copy=False).__array_interface__["data"][0] == _address(t)
    with pytest.raises(ValueError, match="copy=False"):
        np.array(t, dtype=np.int32, copy=False)


def test_imported_tensor_in_autograd():
    x = torch.tensor([1.0, 2.0, 3.0])
    w = cr.from_dlpack(x).requires_grad_()  # a leaf of chainrule's own, memory still shared
    (w * w).sum().backward()
    np.testing.assert_array_equal(w.grad.numpy(), [2.0, 4.0, 6.0])
    a = cr.from_dlpack(torch.tensor([1.0, 2.0]))
    w2 = cr.ones(2, requires_grad=True)
    y = w2 * a
    a.mul_(2.0)  # chainrule's in-place ops on imported data are tracked like any other
    with pytest.raises(RuntimeError, match="modified by an inplace operation|version"):
        y.sum().backward()


def test_capsules_through_utils_dlpack():
    from chainrule.utils.dlpack import from_dlpack, to_dlpack

    x = torch.arange(4.0)
    t = from_dlpack(torch.utils.dlpack.to_dlpack(x))
    x[0] = 8.0
    assert t.tolist() == [8.0, 1.0, 2.0, 3.0]
    mine = cr.arange(3.0)
    seen = torch.utils.dlpack.from_dlpack(to_dlpack(mine))
    assert seen.data_ptr() == _address(mine)
