"""Making tensors: from data, filled, ranges, random, *_like; dtypes and the seeded generator."""

import numpy as np
import pytest

import chainrule as cr

# ----- dtypes --------------------------------------------------------------------------------------


def test_dtype_objects_and_aliases():
    assert (cr.float32.name, cr.float64.name, cr.float16.name) == ("float32", "float64", "float16")
    assert (cr.int32.name, cr.int64.name, cr.bool.name) == ("int32", "int64", "bool")
    assert cr.float is cr.float32 and cr.double is cr.float64 and cr.half is cr.float16
    assert cr.long is cr.int64 and cr.int is cr.int32 and cr.bool is cr.bool_
    assert cr.float32.is_floating_point and not cr.int64.is_floating_point and not cr.bool.is_floating_point
    assert repr(cr.float64) == "chainrule.float64"


@pytest.mark.parametrize("spec, expected", [
    ("float32", cr.float32), ("torch.float64", cr.float64), ("long", cr.int64), ("half", cr.float16),
    (np.float64, cr.float64), (np.dtype("int32"), cr.int32), (float, cr.float64), (int, cr.int64), (bool, cr.bool),
])
def test_dtype_specs_are_accepted_wherever_a_dtype_is(spec, expected):
    assert cr.zeros(2, dtype=spec).dtype is expected


def test_unknown_dtype_names_and_unsupported_numpy_dtypes_are_refused():
    with pytest.raises(TypeError, match="unknown dtype name 'float128'"):
        cr.zeros(2, dtype="float128")
    with pytest.raises(TypeError, match="uint16 is not supported"):
        cr.from_numpy(np.ones(2, dtype=np.uint16))


def test_default_dtype_decides_float_data_and_filled_tensors():
    try:
        cr.set_default_dtype(cr.float64)
        assert cr.tensor([1.5]).dtype is cr.float64
        assert cr.zeros(2).dtype is cr.float64 and cr.randn(2).dtype is cr.float64
        assert cr.tensor([1]).dtype is cr.int64  # integers are not affected
    finally:
        cr.set_default_dtype(cr.float32)
    assert cr.tensor([1.5]).dtype is cr.float32
    with pytest.raises(TypeError, match="only floating dtypes"):
        cr.set_default_dtype(cr.int64)


# ----- from data -----------------------------------------------------------------------------------


@pytest.mark.parametrize("data, dtype", [
    ([1.0, 2.0], cr.float32), ([1, 2], cr.int64), ([True, False], cr.bool), ([1, 2.5], cr.float32),
    ([True, 2], cr.int64), (3.0, cr.float32), (3, cr.int64), (True, cr.bool), ([], cr.float32),
    ((1.0, 2.0), cr.float32), (range(3), cr.int64),
    (np.array([1.0]), cr.float64), (np.array([1], dtype=np.int32), cr.int32),
    (np.array([1.0], dtype=np.float16), cr.float16),
    (np.float64(1.5), cr.float64), (np.int32(2), cr.int32), (np.float32(1.5), cr.float32), (np.bool_(True), cr.bool),
])
def test_tensor_infers_dtype_like_pytorch(data, dtype):
    assert cr.tensor(data).dtype is dtype


def test_tensor_copies_its_data_and_is_a_leaf():
    source = np.array([1.0, 2.0], dtype=np.float32)
    t = cr.tensor(source)
    source[0] = 99.0
    assert t.tolist() == [1.0, 2.0]
    assert t.is_leaf and not t.requires_grad and t.grad is None
    other = cr.tensor(t)
    t.add_(1)
    assert other.tolist() == [1.0, 2.0]


def test_tensor_from_a_tensor_that_requires_grad_is_a_fresh_leaf():
    x = cr.tensor([1.0, 2.0], requires_grad=True)
    y = cr.tensor(x * 2)
    assert y.is_leaf and not y.requires_grad and y.tolist() == [2.0, 4.0]


def test_tensor_of_tensors_and_explicit_dtype():
    assert cr.tensor([cr.tensor(1.0), cr.tensor(2.0)]).tolist() == [1.0, 2.0]
    t = cr.tensor([1, 2], dtype=cr.float64, requires_grad=True)
    assert t.dtype is cr.float64 and t.requires_grad and t.is_leaf


@pytest.mark.parametrize("data, error, message", [
    ([[1, 2], [3]], ValueError, "can't build a tensor"),
    ("abc", TypeError, "can't convert data of type str"),
    ([None], TypeError, "can't convert"),
])
def test_tensor_refuses_data_it_cannot_hold(data, error, message):
    with pytest.raises(error, match=message):
        cr.tensor(data)


def test_as_tensor_shares_memory_when_it_can():
    array = np.zeros(3)
    t = cr.as_tensor(array, device="cpu")  # host memory is shared with a CPU tensor only
    array[0] = 5.0
    assert t[0].item() == 5.0 and t.dtype is cr.float64
    converted = cr.as_tensor(array, dtype=cr.float32, device="cpu")  # a different dtype needs a copy
    array[1] = 7.0
    assert converted.dtype is cr.float32 and converted[1].item() == 0.0
    x = cr.ones(2)
    assert cr.as_tensor(x) is x
    assert cr.as_tensor(x, dtype=cr.float64).dtype is cr.float64
    assert cr.as_tensor([1, 2]).dtype is cr.int64


def test_from_numpy_shares_memory_both_ways():
    array = np.arange(4.0)
    t = cr.from_numpy(array)
    assert t.dtype is cr.float64 and t.shape == (4,)
    array[0] = -1.0
    assert t[0].item() == -1.0
    t[1] = 10.0
    assert array[1] == 10.0
    assert np.shares_memory(t.cpu().numpy(), array)
    with pytest.raises(TypeError, match="expected a numpy.ndarray, got list"):
        cr.from_numpy([1.0, 2.0])


# ----- filled --------------------------------------------------------------------------------------


@pytest.mark.parametrize("make", [cr.zeros, cr.ones, cr.empty])
def test_filled_tensors_take_sizes_as_varargs_tuple_or_list(make):
    for size in [(2, 3), ((2, 3),), ([2, 3],)]:
        t = make(*size)
        assert t.shape == (2, 3) and t.dtype is cr.float32
    assert make(()).shape == () and make(0).shape == (0,)
    assert make(2, dtype=cr.int32).dtype is cr.int32


def test_zeros_ones_full_eye_values():
    assert cr.zeros(2, 2).tolist() == [[0.0, 0.0], [0.0, 0.0]]
    assert cr.ones(3, dtype=cr.int64).tolist() == [1, 1, 1]
    assert cr.full((2,), 7).tolist() == [7, 7] and cr.full((2,), 7).dtype is cr.int64
    assert cr.full((2,), 1.5).dtype is cr.float32
    assert cr.full((2,), True).dtype is cr.bool
    assert cr.full([2, 1], 2.0, dtype=cr.float64).dtype is cr.float64
    assert cr.full((), 3.0).shape == ()
    assert cr.eye(3).tolist() == np.eye(3).tolist()
    assert cr.eye(2, 3).tolist() == [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]
    assert cr.eye(2, dtype=cr.int64).dtype is cr.int64


def test_filled_tensors_can_be_leaves_that_require_grad():
    t = cr.zeros(2, requires_grad=True)
    assert t.requires_grad and t.is_leaf
    assert cr.full((2,), 1.0, requires_grad=True).requires_grad
    with pytest.raises(RuntimeError, match="only floating-point tensors can require gradients, got chainrule.int64"):
        cr.zeros(2, dtype=cr.int64, requires_grad=True)


@pytest.mark.parametrize("size, error, message", [
    ((2.5,), TypeError, "zeros: size must be a tuple of ints"),
    ((-1,), RuntimeError, "zeros: negative dimension"),
    ((2, "3"), TypeError, "size must be a tuple of ints"),
])
def test_bad_sizes_are_refused(size, error, message):
    with pytest.raises(error, match=message):
        cr.zeros(*size)


# ----- ranges --------------------------------------------------------------------------------------


def test_arange_dtype_and_values():
    assert cr.arange(5).tolist() == [0, 1, 2, 3, 4] and cr.arange(5).dtype is cr.int64
    assert cr.arange(1, 4, 0.5).dtype is cr.float32
    np.testing.assert_allclose(cr.arange(1, 4, 0.5).cpu().numpy(), [1.0, 1.5, 2.0, 2.5, 3.0, 3.5])
    assert cr.arange(5, 0, -2).tolist() == [5, 3, 1]
    assert cr.arange(0, 1, 0.1, dtype=cr.float64).shape == (10,)
    assert cr.arange(3, dtype=cr.float32).dtype is cr.float32
    assert cr.arange(2, 2).shape == (0,)


def test_arange_refuses_impossible_ranges():
    with pytest.raises(RuntimeError, match="step must be nonzero"):
        cr.arange(0, 5, 0)
    with pytest.raises(RuntimeError, match="inconsistent with step sign"):
        cr.arange(5, 0)


def test_linspace():
    t = cr.linspace(0.0, 1.0, 5)
    assert t.dtype is cr.float32 and t.tolist() == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert cr.linspace(2, 3, 1).tolist() == [2.0]
    assert cr.linspace(0, 1, 3, dtype=cr.float64).dtype is cr.float64
    with pytest.raises(RuntimeError, match="number of steps must be non-negative"):
        cr.linspace(0, 1, -1)


# ----- random --------------------------------------------------------------------------------------


def test_rand_randn_randint_shapes_dtypes_and_ranges():
    u = cr.rand(1000)
    assert u.dtype is cr.float32 and 0.0 <= u.min().item() and u.max().item() < 1.0
    n = cr.randn(20, 50, dtype=cr.float64)
    assert n.shape == (20, 50) and n.dtype is cr.float64
    assert abs(n.mean().item()) < 0.15 and 0.85 < n.std().item() < 1.15
    assert cr.randn((2, 3)).shape == (2, 3) and cr.randn(()).shape == ()
    r = cr.randint(3, 7, (500,))
    assert r.dtype is cr.int64 and set(r.tolist()) == {3, 4, 5, 6}
    assert cr.randint(5, (2, 2)).shape == (2, 2)
    assert cr.randint(0, 5, (3,), dtype=cr.int32).dtype is cr.int32
    assert sorted(cr.randperm(5).tolist()) == [0, 1, 2, 3, 4]
    assert cr.rand(3, requires_grad=True).requires_grad


def test_random_creation_refuses_bad_arguments():
    with pytest.raises(TypeError, match="rand: samples are floating point"):
        cr.rand(2, dtype=cr.int64)
    with pytest.raises(TypeError, match="randn: samples are floating point"):
        cr.randn_like(cr.tensor([1, 2]))
    with pytest.raises(RuntimeError, match="randint: expected low < high, got low=5, high=2"):
        cr.randint(5, 2, (3,))


def test_manual_seed_makes_every_draw_reproducible():
    def draws():
        return (cr.rand(3).tolist(), cr.randn(2, 2).tolist(), cr.randint(0, 100, (4,)).tolist(),
                cr.randperm(6).tolist(), cr.zeros(3).uniform_(-1, 1).tolist())

    cr.manual_seed(123)
    first = draws()
    cr.manual_seed(123)
    assert draws() == first
    cr.manual_seed(124)
    assert draws() != first
    assert cr.initial_seed() == 124


def test_rng_state_round_trips_and_generators_are_independent():
    cr.manual_seed(5)
    state = cr.get_rng_state()
    a = cr.randn(4).tolist()
    cr.set_rng_state(state)
    assert cr.randn(4).tolist() == a
    gen = cr.Generator(5)
    cr.manual_seed(99)
    assert cr.randn(4, generator=gen).tolist() == a  # its own stream, untouched by the default one


# ----- *_like --------------------------------------------------------------------------------------


def test_like_functions_inherit_shape_dtype_and_device():
    base = cr.ones(2, 3, dtype=cr.float64)
    for make in (cr.zeros_like, cr.ones_like, cr.empty_like, cr.rand_like, cr.randn_like):
        t = make(base)
        assert t.shape == (2, 3) and t.dtype is cr.float64 and t.device == base.device and t.is_leaf
    assert cr.zeros_like(base).sum().item() == 0 and cr.ones_like(base).sum().item() == 6
    assert cr.full_like(base, 2.5).tolist() == [[2.5] * 3] * 2
    assert cr.full_like(cr.tensor([1, 2]), 2.7).tolist() == [2, 2]
    assert cr.zeros_like(base, dtype=cr.int32).dtype is cr.int32
    assert cr.ones_like(base, requires_grad=True).requires_grad
    assert not cr.zeros_like(cr.ones(2, requires_grad=True)).requires_grad
    r = cr.randint_like(cr.zeros(100), 2, 4)
    assert r.dtype is cr.float32 and set(r.tolist()) == {2.0, 3.0}
