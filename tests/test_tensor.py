"""The Tensor class: attributes, conversions, autograd state, printing, operators and type promotion."""

import operator

import numpy as np
import pytest
import torch

import chainrule as cr

# ----- attributes and conversions ------------------------------------------------------------------


def test_shape_ndim_dtype_device_size_numel(device):
    x = cr.zeros(2, 3, 4)
    assert x.shape == (2, 3, 4) and x.ndim == 3 and x.dim() == 3
    assert x.dtype is cr.float32 and x.device == device
    cpu = cr.zeros(1, device="cpu").device
    assert cpu == "cpu" and str(cpu) == "cpu" and cpu == cr.cpu and repr(cpu) == repr(torch.zeros(1).device)
    assert x.size() == (2, 3, 4) and x.size(1) == 3 and x.size(-1) == 4
    assert x.numel() == 24 and cr.tensor(1.0).numel() == 1 and cr.zeros(0, 3).numel() == 0
    with pytest.raises(IndexError, match=r"size: dimension out of range \(expected to be in range of \[-3, 2\], but got 3\)"):
        x.size(3)


def test_item_tolist_numpy():
    x = cr.tensor([[1.0, 2.0], [3.0, 4.0]])
    assert x[1, 0].item() == 3.0 and isinstance(x[1, 0].item(), float)
    assert cr.tensor([7]).item() == 7 and isinstance(cr.tensor([7]).item(), int)
    assert x.tolist() == [[1.0, 2.0], [3.0, 4.0]]
    with pytest.raises(RuntimeError, match=r"item: a Tensor with 4 elements \(shape \(2, 2\)\) cannot be converted"):
        x.item()
    host = x.cpu()
    array = host.numpy()
    assert array.dtype == np.float32
    array[0, 0] = -1.0  # numpy() shares a CPU tensor's memory, as in PyTorch
    assert host[0, 0].item() == -1.0


def test_numpy_of_a_tensor_that_requires_grad_says_to_detach():
    x = cr.ones(2, requires_grad=True)
    with pytest.raises(RuntimeError, match=r"use tensor.detach\(\).numpy\(\)"):
        x.cpu().numpy()
    assert x.detach().cpu().numpy().tolist() == [1.0, 1.0]
    assert x[0].item() == 1.0  # item() is fine


def test_array_protocol_copies_unless_asked_not_to():
    x = cr.tensor([1.0, 2.0], device="cpu")  # the memory np.asarray shares is the host's
    copied = np.array(x)
    copied[0] = 50.0
    assert x[0].item() == 1.0
    shared = np.asarray(x)
    shared[0] = 60.0
    assert x[0].item() == 60.0
    assert np.asarray(x, dtype=np.float64).dtype == np.float64
    with pytest.raises(ValueError, match="needs a copy"):
        x.__array__(np.float64, copy=False)


def test_len_iteration_and_scalar_conversions():
    x = cr.tensor([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])
    assert len(x) == 3
    rows = list(x)
    assert [r.tolist() for r in rows] == x.tolist()
    with pytest.raises(TypeError, match="len\\(\\) of a 0-d tensor"):
        len(cr.tensor(1.0))
    with pytest.raises(TypeError, match="iteration over a 0-d tensor"):
        iter(cr.tensor(1.0))
    assert bool(cr.tensor([1.0])) is True and bool(cr.tensor(0.0)) is False
    assert float(cr.tensor([2.5])) == 2.5 and int(cr.tensor(2.7)) == 2
    assert [10, 20, 30][cr.tensor(1)] == 20  # __index__
    for convert in (bool, float, int):
        with pytest.raises(RuntimeError, match=r"one-element tensor can be converted to a Python scalar, got shape \(3, 2\)"):
            convert(x)
    with pytest.raises(TypeError, match="only one-element integer tensors can be used as an index"):
        [1, 2][cr.tensor(1.0)]
    assert f"{cr.tensor(2.0) / 3:.3f}" == "0.667"


def test_tensors_are_hashable_and_compare_to_none_like_python_objects():
    x, y = cr.ones(2), cr.ones(2)
    assert len({x, y}) == 2 and {x: 1}[x] == 1
    assert (x == None) is False and (x != None) is True  # noqa: E711
    assert None not in [x] and x in [x]
    assert (x == "a") is False


# ----- autograd state ------------------------------------------------------------------------------


def test_requires_grad_leaf_and_grad_fn():
    x = cr.tensor([1.0, 2.0])
    assert not x.requires_grad and x.is_leaf and x.grad_fn is None
    assert x.requires_grad_() is x and x.requires_grad and x.is_leaf
    y = x * 2
    assert y.requires_grad and not y.is_leaf and y.grad_fn.name() == "MulBackward0"
    x.requires_grad = False
    assert not x.requires_grad
    z = cr.tensor([1.0]) * 2  # made from tensors that do not require grad: a leaf, as in PyTorch
    assert z.is_leaf and z.grad_fn is None


def test_requires_grad_refusals():
    with pytest.raises(RuntimeError, match="only floating-point tensors can require gradients, got chainrule.int64"):
        cr.tensor([1, 2]).requires_grad_()
    with pytest.raises(RuntimeError, match="only floating-point tensors can require gradients"):
        cr.tensor([True], requires_grad=True)
    y = cr.ones(2, requires_grad=True) * 2
    with pytest.raises(RuntimeError, match="only change requires_grad of leaf tensors.*MulBackward0.*detach"):
        y.requires_grad_(False)
    with pytest.raises(RuntimeError, match="can't retain_grad on a tensor that does not require grad"):
        cr.ones(2).retain_grad()


def test_detach_shares_data_and_version_but_leaves_the_graph():
    x = cr.tensor([1.0, 2.0], requires_grad=True)
    y = x * 3
    d = y.detach()
    assert d.is_leaf and not d.requires_grad and d.grad_fn is None
    assert d.xp.shares_memory(d._data, y._data)  # asked of the tensors' own array namespace (any device)
    with cr.no_grad():
        d.add_(1)
    assert y.tolist() == [4.0, 7.0] and y._version == d._version == 1


def test_clone_copies_and_passes_gradient():
    x = cr.tensor([1.0, 2.0], requires_grad=True)
    c = x.clone()
    assert c.grad_fn.name() == "CloneBackward0" and not np.shares_memory(c.detach().cpu().numpy(), x.detach().cpu().numpy())
    (c * c).sum().backward()
    assert x.grad.tolist() == [2.0, 4.0]


def test_grad_and_retain_grad():
    x = cr.tensor([1.0, 2.0], requires_grad=True)
    h = x * 3
    h.retain_grad()
    k = x * 2
    (h * k).sum().backward()
    assert h.retains_grad and not k.retains_grad
    assert h.grad.tolist() == [2.0, 4.0] and k.grad is None
    assert x.grad.tolist() == [12.0, 24.0]


# ----- printing ------------------------------------------------------------------------------------


_REPR_CASES = [
    (lambda: cr.tensor([1.0, 2.0]), "tensor([1., 2.])"),
    (lambda: cr.tensor([1.5, -2.0]), "tensor([ 1.5000, -2.0000])"),
    (lambda: cr.tensor(3), "tensor(3)"),
    (lambda: cr.tensor([True, False]), "tensor([ True, False])"),
    (lambda: cr.tensor([1e-5, 1.0]), "tensor([1.0000e-05, 1.0000e+00])"),
    (lambda: cr.tensor([1, 2], dtype=cr.int32), "tensor([1, 2], dtype=chainrule.int32)"),
    (lambda: cr.tensor([[1.0, 2.0], [3.0, 4.0]], dtype=cr.float64),
     "tensor([[1., 2.],\n        [3., 4.]], dtype=chainrule.float64)"),
    (lambda: cr.tensor([1.0], requires_grad=True), "tensor([1.], requires_grad=True)"),
    (lambda: cr.tensor([1.0], requires_grad=True).exp(), "tensor([2.7183], grad_fn=<ExpBackward0>)"),
    (lambda: cr.zeros(0), "tensor([])"),
    (lambda: cr.zeros(2, 0, dtype=cr.int64), "tensor([], size=(2, 0), dtype=chainrule.int64)"),
    (lambda: cr.tensor([float("nan"), float("inf"), 1.5]), "tensor([   nan,    inf, 1.5000])"),
]


@pytest.mark.parametrize("make, expected", _REPR_CASES)
def test_repr_follows_pytorch(make, expected):
    with cr.device("cpu"):
        assert repr(make()) == expected


@pytest.mark.parametrize("make, expected", _REPR_CASES)
def test_repr_of_a_cuda_tensor_names_its_device_first_as_pytorch(make, expected, cuda_device):
    """PyTorch prints a CUDA tensor's device (``cuda:0``, its index included) as the first suffix."""
    with cuda_device:
        text = repr(make())
    suffixes = [expected.find(", " + s) for s in ("size=", "dtype=", "requires_grad=", "grad_fn=")]
    at = min([i for i in suffixes if i >= 0], default=len(expected) - 1)
    assert text == expected[:at] + f", device='{torch.device('cuda', 0)}'" + expected[at:]
    assert repr(cr.ones(1, device=cuda_device).device) == repr(torch.device("cuda", 0))
    assert repr(cr.device("cuda")) == repr(torch.device("cuda")) and str(cr.device("cuda")) == str(torch.device("cuda"))


def test_devices_are_named_as_pytorchs(cuda_device):
    for spelling in (("cuda",), ("cuda:0",), ("cuda", 0), ("cpu",)):
        ours, theirs = cr.device(*spelling), torch.device(*spelling)
        assert (repr(ours), str(ours), ours.type, ours.index) == (repr(theirs), str(theirs), theirs.type, theirs.index)
    assert cr.ones(1, device="cuda").device.index == 0 and cr.ones(1, device="cpu").device.index is None
    # one device of each type here: the type alone and index 0 name the same device (PyTorch tells them apart)
    bare, indexed = cr.device("cuda"), cr.device("cuda:0")
    assert bare == indexed and bare == "cuda:0" and indexed == "cuda" and indexed != "cpu" and bare != cr.cpu
    with cr.device("cuda"):
        assert cr.ones(1).device == cuda_device
    with pytest.raises(RuntimeError, match="only index 0 exists"):
        cr.device("cuda:1")


def test_repr_of_a_large_tensor_is_summarized():
    with cr.device("cpu"):
        text = repr(cr.arange(5000))
        assert text == "tensor([   0,    1,    2,  ..., 4997, 4998, 4999])"
    assert "..." in repr(cr.zeros(100, 100)) and len(repr(cr.zeros(100, 100)).splitlines()) == 7


# ----- operators -----------------------------------------------------------------------------------

_BINARY = ["add", "sub", "mul", "truediv", "floordiv", "mod", "pow"]


@pytest.mark.parametrize("name", _BINARY)
def test_arithmetic_operators_forward_and_reflected(name):
    fn = getattr(operator, name)
    a_np, b_np = np.array([1.5, 2.0, 3.0], np.float32), np.array([0.5, 4.0, 2.5], np.float32)
    a, b = cr.tensor(a_np), cr.tensor(b_np)
    np.testing.assert_allclose(fn(a, b).cpu().numpy(), fn(a_np, b_np), rtol=1e-6)
    np.testing.assert_allclose(fn(a, 2.0).cpu().numpy(), fn(a_np, np.float32(2.0)), rtol=1e-6)
    np.testing.assert_allclose(fn(2.0, b).cpu().numpy(), fn(np.float32(2.0), b_np), rtol=1e-6)
    assert fn(a, b).dtype is fn(a, 2).dtype is fn(2, a).dtype is cr.float32


@pytest.mark.parametrize("name", _BINARY + ["matmul"])
def test_every_arithmetic_operator_is_differentiable(name):
    fn = getattr(operator, name)
    a = cr.tensor([[1.5, 2.0], [0.7, 3.0]], dtype=cr.float64, requires_grad=True)
    b = cr.tensor([[0.5, 1.2], [2.5, 0.9]], dtype=cr.float64, requires_grad=True)
    if name in ("floordiv", "mod"):
        return  # piecewise constant / kinked: gradients are checked by the op tests
    assert cr.autograd.gradcheck(fn, (a, b))
    if name != "matmul":  # with a Python number on either side
        assert cr.autograd.gradcheck(lambda t: fn(t, 1.7), (a,))
        assert cr.autograd.gradcheck(lambda t: fn(1.7, t), (b,))


def test_integer_and_bitwise_operators():
    a, b = cr.tensor([5, -3, 7]), cr.tensor([2, 2, -3])
    assert (a // b).tolist() == [2, -2, -3] and (a % b).tolist() == [1, 1, -2]
    assert (a & b).tolist() == [0, 0, 5] and (a | b).tolist() == [7, -1, -1] and (a ^ b).tolist() == [7, -1, -6]
    assert (~cr.tensor([True, False])).tolist() == [False, True]
    assert (a / b).dtype is cr.float32  # true division of integers gives the default float
    assert (a * 2).dtype is cr.int64 and (a * 2.5).dtype is cr.float32


def test_unary_operators_and_matmul():
    x = cr.tensor([[1.0, -2.0], [3.0, 4.0]])
    assert (-x).tolist() == [[-1.0, 2.0], [-3.0, -4.0]] and (+x) is x
    assert abs(x).tolist() == [[1.0, 2.0], [3.0, 4.0]]
    assert (x @ x).tolist() == [[-5.0, -10.0], [15.0, 10.0]]
    assert (np.eye(2, dtype=np.float32) @ x).tolist() == x.tolist()  # reflected through numpy


def test_comparisons_give_bool_tensors_without_gradient():
    x = cr.tensor([1.0, 2.0, 3.0], requires_grad=True)
    for fn, expected in [(operator.lt, [True, False, False]), (operator.le, [True, True, False]),
                         (operator.gt, [False, False, True]), (operator.ge, [False, True, True]),
                         (operator.eq, [False, True, False]), (operator.ne, [True, False, True])]:
        out = fn(x, 2.0)
        assert out.dtype is cr.bool and out.tolist() == expected and not out.requires_grad
        assert fn(x, cr.tensor([2.0, 2.0, 2.0])).tolist() == expected
    assert (2.0 < x).tolist() == [False, False, True]


def test_in_place_operators_keep_identity_dtype_and_memory():
    x = cr.tensor([1.0, 2.0])
    ident, array = id(x), x._data
    x += 1
    x *= 3
    x -= 1
    x /= 2
    x **= 2
    x //= 1
    x %= 7
    assert id(x) == ident and x._data is array and x.dtype is cr.float32
    expected = ((((np.array([1.0, 2.0]) + 1) * 3 - 1) / 2) ** 2 // 1) % 7
    assert x.tolist() == expected.tolist()
    assert x._version == 7
    i = cr.tensor([6, 3])
    i &= 2
    i |= 1
    i ^= 1
    assert i.tolist() == [2, 2] and i.dtype is cr.int64


def test_in_place_dtype_rules_and_errors_leave_the_tensor_unchanged():
    i = cr.tensor([1, 2])
    expected = "add_: result type chainrule.float32 can't be cast to the desired output type chainrule.int64"
    with pytest.raises(RuntimeError, match=expected):
        i += 1.5
    with pytest.raises(RuntimeError, match="div_: result type chainrule.float32 can't be cast to .*int64"):
        i /= 2
    with pytest.raises(RuntimeError, match="result type chainrule.int64 can't be cast to the desired output type chainrule.bool"):
        b = cr.tensor([True])
        b += 1
    assert i.tolist() == [1, 2] and i._version == 0
    f = cr.tensor([1.0, 2.0])
    f += cr.tensor([1.0, 1.0], dtype=cr.float64)  # same kind: cast back to the tensor's dtype
    assert f.dtype is cr.float32 and f.tolist() == [2.0, 3.0]
    with pytest.raises(RuntimeError, match=r"add_: output with shape \(2,\) doesn't match the broadcast shape \(3, 2\)"):
        f += cr.ones(3, 2)
    assert f.tolist() == [2.0, 3.0]


def test_getitem_and_setitem():
    x = cr.arange(12.0).reshape(3, 4)
    assert x[1, 2].item() == 6.0 and x[:, 0].tolist() == [0.0, 4.0, 8.0] and x[None].shape == (1, 3, 4)
    assert x[x > 9].tolist() == [10.0, 11.0] and x[[0, 2]].shape == (2, 4) and x[..., -1].tolist() == [3.0, 7.0, 11.0]
    x[0] = 1.0
    x[1, :2] = cr.tensor([9.0, 8.0])
    x[x > 10] = 0.0
    assert x.tolist() == [[1.0] * 4, [9.0, 8.0, 6.0, 7.0], [8.0, 9.0, 10.0, 0.0]]
    assert x._version == 3


# ----- type promotion ------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype, scalar, expected", [
    (cr.float32, 2.5, cr.float32), (cr.float16, 2.5, cr.float16), (cr.float64, 2, cr.float64),
    (cr.int32, 2, cr.int32), (cr.int32, 2.5, cr.float32), (cr.bool, 1, cr.int64), (cr.bool, True, cr.bool),
    (cr.int64, True, cr.int64),
])
def test_python_scalars_adopt_the_tensor_dtype(dtype, scalar, expected):
    t = cr.ones(3, dtype=dtype)
    assert (t + scalar).dtype is expected and (scalar * t).dtype is expected


@pytest.mark.parametrize("a, a_dims, b, b_dims, expected", [
    (cr.float32, 1, cr.float64, 1, cr.float64), (cr.int32, 1, cr.float16, 1, cr.float16),
    (cr.int64, 1, cr.float32, 1, cr.float32), (cr.float32, 1, cr.float64, 0, cr.float32),
    (cr.int64, 1, cr.float64, 0, cr.float64), (cr.int32, 1, cr.int64, 0, cr.int32),
    (cr.bool, 1, cr.int32, 1, cr.int32), (cr.float16, 0, cr.float64, 0, cr.float64),
])
def test_tensor_tensor_promotion(a, a_dims, b, b_dims, expected):
    x = cr.ones(*([2] * a_dims), dtype=a)
    y = cr.ones(*([2] * b_dims), dtype=b)
    assert (x + y).dtype is expected and (y * x).dtype is expected


def test_dtype_conversions(device):
    x = cr.tensor([1.7, -2.2])
    assert x.to(cr.int64).tolist() == [1, -2] and x.long().dtype is cr.int64
    assert x.double().dtype is cr.float64 and x.half().dtype is cr.float16 and x.int().dtype is cr.int32
    assert x.bool().tolist() == [True, True] and cr.tensor([1, 0]).float().dtype is cr.float32
    assert x.to("float64").dtype is cr.float64 and x.to("cpu", cr.float64).dtype is cr.float64
    assert x.to(dtype=cr.float16).dtype is cr.float16 and x.to(cr.ones(1, dtype=cr.float64)).dtype is cr.float64
    assert x.to(cr.float32) is x and x.to(device) is x and x.to(device.type) is x
    assert x.to(cr.float32, copy=True) is not x
    assert x.type_as(cr.ones(1, dtype=cr.int32)).dtype is cr.int32


def test_dtype_conversion_is_differentiable_and_grads_keep_the_leaf_dtype():
    x = cr.tensor([1.0, 2.0], requires_grad=True)
    (x.double() * cr.tensor([3.0, 4.0], dtype=cr.float64)).sum().backward()
    assert x.grad.dtype is cr.float32 and x.grad.tolist() == [3.0, 4.0]
    assert not x.long().requires_grad  # integer results carry no graph


def test_numpy_scalars_combine_like_python_numbers():
    x, i, b = cr.tensor([1.0, 2.0]), cr.tensor([1, 2]), cr.tensor([True])
    assert (x + np.float32(1)).dtype is cr.float32 and (x + np.float32(1)).tolist() == [2.0, 3.0]
    assert (i + np.int32(1)).dtype is cr.int64 and (b + np.bool_(True)).dtype is cr.bool
    assert (i * np.float32(1.5)).dtype is cr.float32


def test_numpy_float64_and_int64_scalars_do_not_up_cast_a_float32_tensor():
    x = cr.tensor([1.0, 2.0])
    assert (x * np.float64(2.0)).dtype is cr.float32
    assert (x + np.int64(1)).dtype is cr.float32
