"""Complex tensors and chainrule.fft: the table's complex and FFT cases under float64 gradcheck and
gradgradcheck (complex128 inside), then what the table cannot say: dtypes and promotion, creation and
printing, PyTorch's convention for complex gradients on complex leaves, every transform against torch.fft
(complex128/float64 and complex64/float32, n/s, dim and norm), and the error messages."""

import numpy as np
import pytest
from op_cases import check_gradients, gradcheck_params

import chainrule as cr
from chainrule.autograd import GradcheckError, gradcheck, gradgradcheck

torch = pytest.importorskip("torch")

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")


@pytest.mark.parametrize("case, shapes, params", gradcheck_params("complex") + gradcheck_params("fft"))
def test_gradcheck(case, shapes, params):
    check_gradients(case, shapes, params)


@pytest.mark.parametrize("case, shapes, params",
                         gradcheck_params("complex", twice_only=True) + gradcheck_params("fft", twice_only=True))
def test_gradgradcheck(case, shapes, params):
    check_gradients(case, shapes, params, second_order=True)


def _complex_array(rng, shape, dtype=np.complex128):
    return (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)).astype(dtype)


def _numpy(t):
    return t.detach().resolve_conj().cpu().numpy() if isinstance(t, torch.Tensor) else t.detach().cpu().numpy()


# ----- dtypes, promotion, creation, printing ------------------------------------------------------------

@pytest.mark.parametrize("left, right", [("float32", "complex64"), ("float64", "complex64"), ("float32", "complex128"),
                                         ("int64", "complex64"), ("bool", "complex128"), ("complex64", "complex128")])
@pytest.mark.parametrize("left_dims, right_dims", [(1, 1), (1, 0), (0, 1)])
def test_promotion_of_tensors_follows_torch(left, right, left_dims, right_dims):
    def make(lib, name, ndim):
        return lib.ones((2,) * ndim, dtype=getattr(lib, name))

    ours = (make(cr, left, left_dims) + make(cr, right, right_dims)).dtype
    theirs = (make(torch, left, left_dims) + make(torch, right, right_dims)).dtype
    assert ours.name == str(theirs).removeprefix("torch.")


@pytest.mark.parametrize("dtype", ["float32", "float64", "int64", "complex64", "complex128"])
@pytest.mark.parametrize("default", ["float32", "float64"])
def test_python_complex_numbers_promote_as_in_torch(dtype, default):
    cr.set_default_dtype(getattr(cr, default))
    torch.set_default_dtype(getattr(torch, default))
    try:
        ours = (cr.ones(2, dtype=getattr(cr, dtype)) * (1 + 2j)).dtype
        theirs = (torch.ones(2, dtype=getattr(torch, dtype)) * (1 + 2j)).dtype
        assert ours.name == str(theirs).removeprefix("torch.")
        assert cr.tensor([1 + 2j]).dtype.name == str(torch.tensor([1 + 2j]).dtype).removeprefix("torch.")
    finally:
        cr.set_default_dtype(cr.float32)
        torch.set_default_dtype(torch.float32)


def test_dtype_objects_and_aliases():
    assert cr.cfloat is cr.complex64 and cr.cdouble is cr.complex128
    assert cr.complex64.is_complex and not cr.complex64.is_floating_point
    z = cr.zeros(2, dtype=cr.complex64)
    assert z.is_complex() and not z.is_floating_point() and z.dtype is cr.complex64
    assert not cr.ones(2).is_complex()
    assert cr.tensor([1, 2], dtype="complex128").dtype is cr.complex128
    assert cr.tensor(np.array([1j])).dtype is cr.complex128  # a numpy array keeps its dtype


@pytest.mark.parametrize("data", [[1 + 2j, 3.5 - 1e-5j], [[1 + 2j, 3], [1e5, -2j]], [0j, 0j], [1.5 + 2j, -3 - 0.25j],
                                  2 - 1j])
def test_printing_matches_torch(data):
    with cr.device("cpu"):  # torch's tensors here are CPU ones; test_tensor.py checks the device suffix
        assert repr(cr.tensor(data)) == repr(torch.tensor(data))
        assert repr(cr.tensor(data, dtype=cr.complex128)) == repr(torch.tensor(data, dtype=torch.complex128)).replace(
            "torch.", "chainrule.")


def test_creation_functions():
    np.testing.assert_array_equal(cr.complex(cr.tensor([1.0, 2.0]), cr.tensor([3.0, 4.0])).cpu().numpy(), [1 + 3j, 2 + 4j])
    r, theta = np.array([1.0, 2.0]), np.array([0.3, -2.0])
    np.testing.assert_allclose(cr.polar(cr.tensor(r), cr.tensor(theta)).cpu().numpy(),
                               torch.polar(torch.tensor(r), torch.tensor(theta)).cpu().numpy())
    assert cr.full((2,), 1 + 1j).dtype is cr.complex64
    z = cr.randn(4000, dtype=cr.complex128)
    assert z.dtype is cr.complex128 and abs(float((z.abs() ** 2).mean()) - 1.0) < 0.1  # E|z|^2 = 1, as torch
    assert cr.rand(3, dtype=cr.complex64).dtype is cr.complex64


def test_requires_grad_is_allowed_on_complex_and_only_real_losses_backpropagate_implicitly():
    z = cr.tensor([1 + 1j], requires_grad=True)
    assert z.requires_grad
    with pytest.raises(RuntimeError, match="only for real scalar outputs"):
        (z * 2).sum().backward()


# ----- PyTorch's convention for complex gradients, on complex leaves ---------------------------------------

_LOSSES = {
    "abs of product": lambda lib, z, w, x: (z * w).abs().sum(),
    "division": lambda lib, z, w, x: (z / w).real.sum() + (1 / z).imag.sum(),
    "exp": lambda lib, z, w, x: (z.exp() * w).imag.sum(),
    "log, sqrt": lambda lib, z, w, x: z.log().abs().sum() + (z.sqrt() * w).real.sum(),
    "trigonometric": lambda lib, z, w, x: (z.sin() + z.cos() + z.tanh() * w).abs().sum(),
    "powers": lambda lib, z, w, x: (z ** 3 + z ** 2 + z.square() * w + z.reciprocal()).abs().sum(),
    "real meets complex": lambda lib, z, w, x: (x * z + x).abs().sum() + (z * x).angle().sum(),
    "matmul": lambda lib, z, w, x: (z.reshape(2, 2) @ w.reshape(2, 2)).abs().sum(),
    "mean and sum": lambda lib, z, w, x: (z * w).mean().abs() + z.sum().real,
    "conj": lambda lib, z, w, x: (z.conj() * w).imag.sum() + (z.reshape(2, 2).mH @ w.reshape(2, 2)).real.sum()
    + (z.reshape(2, 2).adjoint() * w.reshape(2, 2).H).imag.sum(),
    "from parts": lambda lib, z, w, x: (lib.complex(x, x * 2) * z).abs().sum() + lib.polar(x.abs(), x).imag.sum(),
    "view_as_real/complex": lambda lib, z, w, x: (lib.view_as_real(z * w) ** 2).sum()
    + (lib.view_as_complex(lib.stack([x, x * x], -1)) * z).real.sum(),
    "sgn": lambda lib, z, w, x: (z.sgn() * w).real.sum(),
    "indexing": lambda lib, z, w, x: (z[1:3] * w[::2]).abs().sum() + z.reshape(2, 2).t().flatten()[0].real,
    "vdot": lambda lib, z, w, x: lib.vdot(z, w).imag,
    "fft": lambda lib, z, w, x: (lib.fft.fft(z, norm="ortho") * w).abs().sum() + lib.fft.irfft(w, n=5).square().sum(),
}


@pytest.mark.parametrize("name", list(_LOSSES))
@pytest.mark.parametrize("dtype", [np.complex128, np.complex64])
def test_gradients_of_real_losses_on_complex_leaves_match_torch(name, dtype):
    rng = np.random.default_rng(3)
    arrays = [_complex_array(rng, 4, dtype), _complex_array(rng, 4, dtype), rng.standard_normal(4).astype(
        np.float64 if dtype == np.complex128 else np.float32)]
    grads = []
    for lib in (cr, torch):
        leaves = [lib.tensor(a, requires_grad=True) for a in arrays]
        loss = _LOSSES[name](lib, *leaves)
        loss.backward()
        grads.append([None if t.grad is None else _numpy(t.grad) for t in leaves])
    tol = 1e-10 if dtype == np.complex128 else 1e-4
    for ours, theirs, leaf in zip(*grads, arrays):
        if theirs is None:
            assert ours is None
            continue
        assert ours.dtype == leaf.dtype
        np.testing.assert_allclose(ours, theirs, rtol=tol, atol=tol)


def test_holomorphic_rules_multiply_by_the_conjugate_derivative():
    # z * w with L = Re(z * w): dL/dRe z + i dL/dIm z = conj(w)
    z = cr.tensor([1 + 2j], dtype=cr.complex128, requires_grad=True)
    w = cr.tensor([3 - 1j], dtype=cr.complex128)
    (z * w).real.sum().backward()
    np.testing.assert_allclose(z.grad.cpu().numpy(), [3 + 1j])


def test_complex_gradcheck_catches_a_wrong_rule():
    from chainrule.ops._helpers import record

    def conj_with_a_wrong_rule(z):
        return record(z._data.conj(), "bad_conj", (z,), lambda g, _: (g,))

    z = cr.tensor(_complex_array(np.random.default_rng(0), 3), requires_grad=True)
    assert gradcheck(lambda z: z.conj(), (z,)) and gradgradcheck(lambda z: z.conj() * z, (z,))
    with pytest.raises(GradcheckError, match=r"d output\[\d\]\.imag / d input\[\d\]\.imag"):
        gradcheck(conj_with_a_wrong_rule, (z,))
    with pytest.raises(GradcheckError, match="float64 \\(or complex128\\)"):
        gradcheck(lambda z: z * 2, (cr.tensor([1j], requires_grad=True),))


def test_real_imag_angle_and_views():
    a = _complex_array(np.random.default_rng(1), (2, 3))
    z, t = cr.tensor(a), torch.tensor(a)
    for name in ("real", "imag"):
        np.testing.assert_array_equal(getattr(z, name).cpu().numpy(), getattr(t, name).cpu().numpy())
        np.testing.assert_array_equal(getattr(cr, name)(z).cpu().numpy(), getattr(torch, name)(t).cpu().numpy())
    np.testing.assert_allclose(z.angle().cpu().numpy(), t.angle().cpu().numpy())
    np.testing.assert_allclose(cr.angle(cr.tensor([-1.0, 0.0, 2.0])).cpu().numpy(), torch.angle(torch.tensor([-1.0, 0.0, 2.0])))
    np.testing.assert_array_equal(cr.view_as_real(z).cpu().numpy(), torch.view_as_real(t).cpu().numpy())
    np.testing.assert_array_equal(z.conj().cpu().numpy(), t.conj().resolve_conj().cpu().numpy())
    assert z.resolve_conj() is z and not z.is_conj() and z.conj_physical().dtype is cr.complex128
    assert z.abs().dtype is cr.float64 and cr.tensor(a.astype(np.complex64)).abs().dtype is cr.float32
    x = cr.ones(3)
    assert x.real is x and x.conj() is x


def test_angle_gradient_at_zero_is_zero_as_in_torch():
    z = cr.tensor([0j, 1 + 1j], dtype=cr.complex128, requires_grad=True)
    z.angle().sum().backward()
    t = torch.tensor([0j, 1 + 1j], dtype=torch.complex128, requires_grad=True)
    t.angle().sum().backward()
    np.testing.assert_allclose(z.grad.cpu().numpy(), t.grad.cpu().numpy())


@pytest.mark.parametrize("fn", [lambda lib, z: z < 1, lambda lib, z: z.max(), lambda lib, z: lib.relu(z),
                                lambda lib, z: lib.maximum(z, z), lambda lib, z: z.clamp(0, 1), lambda lib, z: z.sort(),
                                lambda lib, z: z.argmax(), lambda lib, z: z.floor(), lambda lib, z: z.amin()],
                         ids=["lt", "max", "relu", "maximum", "clamp", "sort", "argmax", "floor", "amin"])
def test_operations_torch_refuses_for_complex_raise_a_clear_error(fn):
    with pytest.raises((RuntimeError, NotImplementedError)):
        fn(torch, torch.ones(2, dtype=torch.complex64))
    with pytest.raises(NotImplementedError, match="complex"):
        fn(cr, cr.ones(2, dtype=cr.complex64))


@pytest.mark.parametrize("fn, message", [
    (lambda: cr.ones(2).imag, "imag: not implemented for tensors with non-complex dtypes"),
    (lambda: cr.view_as_real(cr.ones(2)), "view_as_real: only supported for complex tensors"),
    (lambda: cr.view_as_complex(cr.ones(2, 3)), "view_as_complex: Tensor must have a last dimension of size 2"),
    (lambda: cr.complex(cr.ones(2), cr.ones(2, dtype=cr.float64)), "complex: expected both inputs of the same dtype"),
    (lambda: cr.complex(cr.ones(2), cr.ones(2, dtype=cr.int64)), "complex: expected both inputs to be float32 or"),
    (lambda: cr.ones(2, dtype=cr.complex64).sign(), "sign: not supported for complex input.*use sgn"),
])
def test_bad_complex_input_messages(fn, message):
    with pytest.raises(RuntimeError, match=message):
        fn()


# ----- chainrule.fft against torch.fft -------------------------------------------------------------------

_TRANSFORMS = [
    ("fft", {}, (5,), True), ("fft", {"n": 8}, (5,), True), ("fft", {"n": 3, "norm": "ortho"}, (2, 5), False),
    ("ifft", {"norm": "forward", "dim": 0}, (4, 3), True), ("fft2", {}, (3, 4), True),
    ("ifft2", {"s": (5, 2)}, (2, 3, 4), True), ("fftn", {}, (2, 3, 4), False), ("fftn", {"s": (3, 6)}, (2, 3, 4), True),
    ("ifftn", {"dim": (0, 2), "norm": "ortho"}, (2, 3, 4), True), ("rfft", {}, (6,), False),
    ("rfft", {"n": 7}, (6,), False), ("rfft", {"norm": "ortho", "dim": 0}, (5, 3), False), ("irfft", {}, (4,), True),
    ("irfft", {"n": 7}, (4,), True), ("irfft", {"n": 4, "norm": "forward"}, (2, 4), True),
    ("irfft", {"n": 2}, (5,), True), ("rfft2", {}, (4, 6), False), ("irfft2", {}, (4, 4), True),
    ("irfft2", {"s": (3, 5), "norm": "ortho"}, (4, 4), True), ("rfftn", {}, (2, 3, 4), False),
    ("rfftn", {"s": (4, 5)}, (2, 3, 4), False), ("irfftn", {}, (2, 3, 4), True),
    ("irfftn", {"s": (3, 3, 7), "norm": "forward"}, (2, 3, 4), True), ("hfft", {}, (4,), True),
    ("hfft", {"n": 5, "norm": "ortho"}, (4,), True), ("ihfft", {}, (6,), False),
    ("ihfft", {"n": 5, "norm": "forward"}, (6,), False), ("fftn", {"dim": (-1,), "s": (-1,)}, (2, 3), True),
    ("hfft2", {}, (3, 4), True), ("hfft2", {"s": (3, 3), "norm": "forward"}, (2, 3, 4), True),
    ("hfftn", {"s": (4, 7)}, (3, 4, 5), True), ("hfftn", {"dim": (0, 2), "norm": "ortho"}, (3, 4, 5), True),
    ("ihfft2", {}, (4, 6), False), ("ihfftn", {"s": (4, 7)}, (3, 4, 6), False),
    ("ihfftn", {"dim": (0, 2), "norm": "ortho"}, (3, 4, 6), False),
]


@pytest.mark.parametrize("name, params, shape, complex_input", _TRANSFORMS,
                         ids=[f"{n}-{p}-{s}" for n, p, s, _ in _TRANSFORMS])
@pytest.mark.parametrize("precision", ["double", "single"])
def test_transforms_and_their_gradients_match_torch(name, params, shape, complex_input, precision):
    rng = np.random.default_rng(4)
    real_dtype, complex_dtype = (np.float64, np.complex128) if precision == "double" else (np.float32, np.complex64)
    data = _complex_array(rng, shape, complex_dtype) if complex_input else rng.standard_normal(shape).astype(real_dtype)
    results = []
    for lib in (cr, torch):
        x = lib.tensor(data, requires_grad=True)
        y = getattr(lib.fft, name)(x, **params)
        weights = lib.tensor(np.random.default_rng(5).standard_normal(tuple(y.shape)) * (1 + 0.5j)).to(y.dtype) \
            if y.dtype.is_complex else lib.tensor(np.random.default_rng(5).standard_normal(tuple(y.shape))).to(y.dtype)
        loss = (y * weights).real.sum() if y.dtype.is_complex else (y * weights).sum()
        loss.backward()
        results.append((_numpy(y), str(y.dtype).split(".")[-1], _numpy(x.grad)))
    (y, dtype, grad), (t_y, t_dtype, t_grad) = results
    tol = 1e-10 if precision == "double" else 2e-4
    assert dtype == t_dtype and y.shape == t_y.shape and grad.dtype == t_grad.dtype
    np.testing.assert_allclose(y, t_y, rtol=tol, atol=tol)
    np.testing.assert_allclose(grad, t_grad, rtol=tol, atol=tol)


@pytest.mark.parametrize("name, shape", [("fft", (4,)), ("rfft", (4,)), ("fft2", (2, 3)), ("rfftn", (2, 3))])
@pytest.mark.parametrize("dtype", ["int64", "bool", "float32", "float64"])
def test_result_dtypes_follow_torch(name, shape, dtype):
    data = np.arange(int(np.prod(shape))).reshape(shape).astype(dtype)
    ours = getattr(cr.fft, name)(cr.tensor(data))
    theirs = getattr(torch.fft, name)(torch.tensor(data))
    assert ours.dtype.name == str(theirs.dtype).removeprefix("torch.")
    np.testing.assert_allclose(ours.cpu().numpy(), theirs.cpu().numpy(), rtol=1e-6, atol=1e-5)


def test_a_forward_then_inverse_transform_is_the_identity_for_every_norm():
    x = cr.tensor(np.random.default_rng(6).standard_normal((3, 4)))
    for norm in ("backward", "ortho", "forward"):
        np.testing.assert_allclose(cr.fft.ifft2(cr.fft.fft2(x, norm=norm), norm=norm).real.cpu().numpy(), x.cpu().numpy(),
                                   atol=1e-12)
        np.testing.assert_allclose(cr.fft.irfftn(cr.fft.rfftn(x, norm=norm), s=(3, 4), norm=norm).cpu().numpy(), x.cpu().numpy(),
                                   atol=1e-12)


@pytest.mark.parametrize("name, args, kwargs", [
    ("fftfreq", (5,), {}), ("fftfreq", (6, 0.5), {}), ("rfftfreq", (6, 0.5), {}), ("rfftfreq", (7,), {}),
    ("fftfreq", (4,), {"dtype": "float64"}),
])
def test_frequencies_match_torch(name, args, kwargs):
    ours = getattr(cr.fft, name)(*args, **{k: getattr(cr, v) for k, v in kwargs.items()})
    theirs = getattr(torch.fft, name)(*args, **{k: getattr(torch, v) for k, v in kwargs.items()})
    assert ours.dtype.name == str(theirs.dtype).removeprefix("torch.")
    np.testing.assert_allclose(ours.cpu().numpy(), theirs.cpu().numpy(), rtol=1e-6)


@pytest.mark.parametrize("dim", [None, 0, -1, (0, 1)])
@pytest.mark.parametrize("name", ["fftshift", "ifftshift"])
def test_shifts_match_torch(name, dim):
    data = np.arange(15).reshape(3, 5)
    np.testing.assert_array_equal(getattr(cr.fft, name)(cr.tensor(data), dim=dim).cpu().numpy(),
                                  getattr(torch.fft, name)(torch.tensor(data), dim=dim).cpu().numpy())


@pytest.mark.parametrize("fn, error, message", [
    (lambda fft, x: fft.fft(x, norm="foo"), RuntimeError, 'fft: Invalid normalization mode: "foo"'),
    (lambda fft, x: fft.fft(x, n=0), RuntimeError, r"fft: Invalid number of data points \(0\)"),
    (lambda fft, x: fft.fftn(x.reshape(2, 2), dim=(0, 0)), RuntimeError, "fftn: FFT dims must be unique"),
    (lambda fft, x: fft.fftn(x.reshape(2, 2), s=(2,), dim=(0, 1)), RuntimeError,
     "fftn: When given, dim and shape arguments must have the same length"),
    (lambda fft, x: fft.fft(x, dim=3), IndexError, "fft: dimension out of range"),
    (lambda fft, x: fft.rfft(x * 1j), RuntimeError, "rfft: expects a real input tensor"),
    (lambda fft, x: fft.irfft(x[:1]), RuntimeError, r"irfft: Invalid number of data points \(0\)"),
    (lambda fft, x: fft.fft(x.sum()), IndexError, "fft: Dimension specified as -1 but tensor has no dimensions"),
    (lambda fft, x: fft.rfftn(x, dim=()), RuntimeError, "rfftn: must transform at least one axis"),
    (lambda fft, x: fft.irfftn(x, dim=()), RuntimeError, "irfftn: must transform at least one axis"),
])
def test_bad_fft_arguments_are_refused_as_by_torch(fn, error, message):
    with pytest.raises(error):
        fn(torch.fft, torch.ones(4))
    with pytest.raises(error, match=message):
        fn(cr.fft, cr.ones(4))
