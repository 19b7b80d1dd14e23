"""chainrule.linalg against torch.linalg: values (float64 to 1e-10, float32), gradients via backward,
gradcheck / gradgradcheck in float64, singular inputs, and shape errors."""

import numpy as np
import pytest
import torch

import chainrule as cr
from chainrule.autograd import gradcheck, gradgradcheck

RNG = np.random.default_rng(0)


def well(*shape, spd=False, sym=False):
    """A well-conditioned matrix: identity-dominant (SPD or symmetric when asked)."""
    a = RNG.standard_normal(shape)
    n = shape[-1]
    if spd:
        return a @ np.swapaxes(a, -1, -2) + n * np.eye(n)
    if sym:
        return a + np.swapaxes(a, -1, -2)
    if shape[-1] == shape[-2]:
        return a + 2 * np.sqrt(n) * np.eye(n)
    return a


def both(arrays, dtype="float64"):
    c = [cr.tensor(a.astype(dtype), requires_grad=True) for a in arrays]
    t = [torch.tensor(a.astype(dtype), requires_grad=True) for a in arrays]
    return c, t


def flat(out):
    return list(out) if isinstance(out, tuple) else [out]


def compare(cfn, tfn, arrays, dtype="float64", grad=True, tol=None, grad_of=None):
    tol = tol or (1e-10 if dtype == "float64" else 2e-4)
    c, t = both(arrays, dtype)
    co, to = flat(cfn(*c)), flat(tfn(*t))
    for x, y in zip(co, to):
        np.testing.assert_allclose(x.detach().cpu().numpy(), y.detach().cpu().numpy(), rtol=tol, atol=tol)
    if not grad:
        return
    pick = grad_of if grad_of is not None else range(len(co))
    w = [RNG.standard_normal(tuple(to[i].shape)) for i in pick]
    lc = sum((co[i] * cr.tensor(wi.astype(dtype))).sum() for i, wi in zip(pick, w))
    lt = sum((to[i] * torch.tensor(wi.astype(dtype))).sum() for i, wi in zip(pick, w))
    lc.backward()
    lt.backward()
    for x, y in zip(c, t):
        np.testing.assert_allclose(x.grad.cpu().numpy(), y.grad.cpu().numpy(), rtol=tol * 10, atol=tol * 10)


def checks(fn, arrays):
    c = [cr.tensor(a.astype("float64"), requires_grad=True) for a in arrays]
    assert gradcheck(fn, c)
    assert gradgradcheck(fn, c)


SQ = [(3, 3), (2, 4, 4)]


@pytest.mark.parametrize("shape", SQ)
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("name", ["inv", "det", "matrix_exp"])
def test_square_unary(name, shape, dtype):
    compare(getattr(cr.linalg, name), getattr(torch.linalg, name), [well(*shape)], dtype)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("shape", SQ)
def test_slogdet(shape, dtype):
    a = well(*shape)
    a[..., 0, :] *= -1
    compare(cr.linalg.slogdet, torch.linalg.slogdet, [a], dtype, grad_of=[1])


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("shapes", [((3, 3), (3, 2)), ((2, 3, 3), (2, 3, 4)), ((2, 3, 3), (3, 1)),
                                    ((3, 3), (3,)), ((2, 3, 3), (2, 3))])
def test_solve(shapes, dtype):
    arrays = [well(*shapes[0]), RNG.standard_normal(shapes[1])]
    compare(cr.linalg.solve, torch.linalg.solve, arrays, dtype)


def test_solve_right():
    compare(lambda a, b: cr.linalg.solve(a, b, left=False), lambda a, b: torch.linalg.solve(a, b, left=False),
            [well(3, 3), RNG.standard_normal((2, 3))])


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("shape", SQ)
@pytest.mark.parametrize("upper", [False, True])
def test_cholesky(shape, dtype, upper):
    compare(lambda a: cr.linalg.cholesky(a, upper=upper), lambda a: torch.linalg.cholesky(a, upper=upper),
            [well(*shape, spd=True)], dtype)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("shape", SQ)
def test_eigh(shape, dtype):
    # eigenvectors are defined up to sign: compare V * sign(V[0]) and a sign-invariant loss
    def norm_sign(out):
        L, V = out
        return L, V * V[..., :1, :].sign()

    compare(lambda a: norm_sign(cr.linalg.eigh(a)), lambda a: norm_sign(torch.linalg.eigh(a)),
            [well(*shape, sym=True)], dtype, tol=1e-9 if dtype == "float64" else 1e-3)
    compare(cr.linalg.eigvalsh, torch.linalg.eigvalsh, [well(*shape, sym=True)], dtype)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("shape", [(3, 3), (4, 2), (2, 4), (2, 5, 3)])
@pytest.mark.parametrize("full", [False, True])
def test_svd(shape, dtype, full):
    def fix(out):
        U, S, Vh = out
        k = S.shape[-1]
        sg = U[..., :1, :k].sign()
        return U[..., :, :k] * sg, S, Vh[..., :k, :] * sg.mT

    compare(lambda a: fix(cr.linalg.svd(a, full_matrices=full)), lambda a: fix(torch.linalg.svd(a, full_matrices=full)),
            [well(*shape)], dtype, tol=1e-9 if dtype == "float64" else 1e-3)
    compare(cr.linalg.svdvals, torch.linalg.svdvals, [well(*shape)], dtype)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("ord", ["fro", "nuc", 2, -2, 1, -1, np.inf, -np.inf])
def test_matrix_norm(ord, dtype):
    compare(lambda a: cr.linalg.matrix_norm(a, ord), lambda a: torch.linalg.matrix_norm(a, ord),
            [well(2, 4, 3)], dtype)
    compare(lambda a: cr.linalg.matrix_norm(a, ord, dim=(0, 2), keepdim=True),
            lambda a: torch.linalg.matrix_norm(a, ord, dim=(0, 2), keepdim=True), [well(4, 2, 3)], dtype)


@pytest.mark.parametrize("ord", [2, 1, 3, np.inf, -np.inf, 0.5])
@pytest.mark.parametrize("dim", [None, 1, (0, 1)])
def test_vector_norm(ord, dim):
    compare(lambda a: cr.linalg.vector_norm(a, ord, dim), lambda a: torch.linalg.vector_norm(a, ord, dim),
            [RNG.standard_normal((3, 4))])


@pytest.mark.parametrize("args", [dict(), dict(ord="fro"), dict(ord=2), dict(dim=1), dict(ord=1, dim=0),
                                  dict(ord="nuc", dim=(0, 1))])
def test_norm(args):
    compare(lambda a: cr.linalg.norm(a, **args), lambda a: torch.linalg.norm(a, **args), [well(3, 4)])


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("upper", [False, True])
@pytest.mark.parametrize("left", [False, True])
@pytest.mark.parametrize("unit", [False, True])
def test_solve_triangular(upper, left, unit, dtype):
    a = well(2, 3, 3)
    b = RNG.standard_normal((2, 3, 4) if left else (2, 4, 3))
    kw = dict(upper=upper, left=left, unitriangular=unit)
    compare(lambda a, b: cr.linalg.solve_triangular(a, b, **kw), lambda a, b: torch.linalg.solve_triangular(a, b, **kw),
            [a, b], dtype)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("shape", [(3, 3), (4, 2), (2, 2, 4)])
def test_pinv(shape, dtype):
    compare(cr.linalg.pinv, torch.linalg.pinv, [well(*shape)], dtype, tol=1e-9 if dtype == "float64" else 1e-3)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_cross(dtype):
    compare(cr.linalg.cross, torch.linalg.cross, [RNG.standard_normal((4, 3)), RNG.standard_normal((1, 3))], dtype)
    compare(lambda a, b: cr.linalg.cross(a, b, dim=0), lambda a, b: torch.linalg.cross(a, b, dim=0),
            [RNG.standard_normal((3, 2)), RNG.standard_normal((3, 2))], dtype)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("shape", [(4, 4), (5, 3), (2, 4, 3)])
def test_qr(shape, dtype):
    compare(cr.linalg.qr, torch.linalg.qr, [well(*shape)], dtype, tol=1e-9 if dtype == "float64" else 1e-3)


def test_qr_complete_square_and_r():
    compare(lambda a: cr.linalg.qr(a, "complete"), lambda a: torch.linalg.qr(a, "complete"), [well(3, 3)])
    compare(lambda a: cr.linalg.qr(a, "complete"), lambda a: torch.linalg.qr(a, "complete"), [well(4, 2)],
            grad=False)
    compare(lambda a: cr.linalg.qr(a, "r")[1], lambda a: torch.linalg.qr(a, "r")[1], [well(4, 2)], grad=False)


@pytest.mark.parametrize("shapes", [((5, 3), (5, 2)), ((2, 4, 3), (2, 4, 1)), ((3, 3), (3, 2))])
def test_lstsq(shapes):
    compare(lambda a, b: cr.linalg.lstsq(a, b).solution, lambda a, b: torch.linalg.lstsq(a, b).solution,
            [well(*shapes[0]), RNG.standard_normal(shapes[1])], tol=1e-9)
    a = well(*shapes[0])
    b = RNG.standard_normal(shapes[1])
    assert np.array_equal(cr.linalg.lstsq(cr.tensor(a), cr.tensor(b)).rank.cpu().numpy(),
                          torch.linalg.lstsq(torch.tensor(a), torch.tensor(b)).rank.cpu().numpy())


def test_top_level_aliases():
    a = well(3, 3)
    for name in ("det", "inverse", "logdet"):
        np.testing.assert_allclose(getattr(cr, name)(cr.tensor(a)).cpu().numpy(), getattr(torch, name)(torch.tensor(a)).numpy(),
                                   rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(cr.trace(cr.tensor(a)).cpu().numpy(), torch.trace(torch.tensor(a)).cpu().numpy())
    s = well(3, 3, spd=True)
    np.testing.assert_allclose(cr.cholesky(cr.tensor(s)).cpu().numpy(), torch.cholesky(torch.tensor(s)).cpu().numpy(), rtol=1e-10)
    np.testing.assert_allclose(cr.slogdet(cr.tensor(a))[1].cpu().numpy(), torch.slogdet(torch.tensor(a))[1].cpu().numpy())


# ----- gradcheck / gradgradcheck (float64) ------------------------------------------------------------

def _spd(x):
    return x @ x.mT + 3 * cr.eye(x.shape[-1], dtype=x.dtype)


def _sym(x):
    return x + x.mT


CHECKS = {
    "inv": (cr.linalg.inv, [well(2, 3, 3)]),
    "det": (cr.linalg.det, [well(3, 3)]),
    "slogdet": (lambda a: cr.linalg.slogdet(a).logabsdet, [well(2, 3, 3)]),
    "solve": (cr.linalg.solve, [well(3, 3), RNG.standard_normal((2, 3, 2))]),
    "cholesky": (lambda x: cr.linalg.cholesky(_spd(x)), [RNG.standard_normal((3, 3))]),
    "cholesky_upper": (lambda x: cr.linalg.cholesky(_spd(x), upper=True), [RNG.standard_normal((2, 3, 3))]),
    "eigh": (lambda x: (lambda r: (r[0], r[1] * r[1][..., :1, :].sign()))(cr.linalg.eigh(_sym(x))),
             [RNG.standard_normal((3, 3))]),
    "eigvalsh": (lambda x: cr.linalg.eigvalsh(_sym(x)), [RNG.standard_normal((2, 3, 3))]),
    "svd": (lambda x: (lambda r: (r[0] * r[0][..., :1, :].sign(), r[1], r[2] * r[0][..., :1, :].sign().mT))(
        cr.linalg.svd(x, full_matrices=False)), [RNG.standard_normal((4, 3))]),
    "svd_wide": (lambda x: (lambda r: (r[0] * r[0][..., :1, :].sign(), r[1], r[2] * r[0][..., :1, :].sign().mT))(
        cr.linalg.svd(x, full_matrices=False)), [RNG.standard_normal((2, 4))]),
    "svdvals": (cr.linalg.svdvals, [RNG.standard_normal((2, 3, 4))]),
    "matrix_norm_nuc": (lambda x: cr.linalg.matrix_norm(x, "nuc"), [RNG.standard_normal((3, 4))]),
    "vector_norm": (lambda x: cr.linalg.vector_norm(x, 3), [RNG.standard_normal((3, 4))]),
    "solve_triangular": (lambda a, b: cr.linalg.solve_triangular(a, b, upper=True), [well(3, 3),
                                                                                     RNG.standard_normal((3, 2))]),
    "solve_triangular_right_unit": (lambda a, b: cr.linalg.solve_triangular(a, b, upper=False, left=False,
                                                                            unitriangular=True),
                                    [well(3, 3), RNG.standard_normal((2, 3))]),
    "pinv": (cr.linalg.pinv, [well(4, 3)]),
    "cross": (cr.linalg.cross, [RNG.standard_normal((2, 3)), RNG.standard_normal((2, 3))]),
    "matrix_exp": (cr.linalg.matrix_exp, [RNG.standard_normal((3, 3))]),
    "qr": (lambda x: tuple(cr.linalg.qr(x)), [well(4, 3)]),
    "lstsq": (lambda a, b: cr.linalg.lstsq(a, b).solution, [well(4, 3), RNG.standard_normal((4, 2))]),
}


@pytest.mark.parametrize("name", sorted(CHECKS))
def test_gradcheck_gradgradcheck(name):
    fn, arrays = CHECKS[name]
    checks(fn, arrays)


# ----- degenerate / singular inputs -------------------------------------------------------------------

def test_singular_errors_as_torch():
    s = np.array([[1.0, 2.0], [2.0, 4.0]])
    with pytest.raises(RuntimeError):
        torch.linalg.inv(torch.tensor(s))
    with pytest.raises(cr.linalg.LinAlgError, match="singular"):
        cr.linalg.inv(cr.tensor(s))
    with pytest.raises(RuntimeError, match="singular"):
        cr.linalg.solve(cr.tensor(s), cr.tensor([1.0, 2.0], dtype=cr.float64))
    with pytest.raises(RuntimeError, match="positive-definite"):
        cr.linalg.cholesky(cr.tensor(-np.eye(2)))
    # det and slogdet of a singular matrix are values, not errors
    assert float(cr.linalg.det(cr.tensor(s))) == pytest.approx(float(torch.linalg.det(torch.tensor(s))), abs=1e-12)
    sign, logabs = cr.linalg.slogdet(cr.tensor(np.zeros((2, 2))))
    tsign, tlogabs = torch.linalg.slogdet(torch.tensor(np.zeros((2, 2))))
    assert float(sign) == float(tsign) and float(logabs) == float(tlogabs) == -np.inf
    # a zero on a triangular diagonal gives inf/nan, as PyTorch
    t = np.array([[1.0, 0.0], [1.0, 0.0]])
    b = np.ones((2, 1))
    ours = cr.linalg.solve_triangular(cr.tensor(t), cr.tensor(b), upper=False).cpu().numpy()
    theirs = torch.linalg.solve_triangular(torch.tensor(t), torch.tensor(b), upper=False).cpu().numpy()
    assert np.array_equal(np.isfinite(ours), np.isfinite(theirs))


def test_near_singular_values():
    a = np.array([[1.0, 1.0], [1.0, 1.0 + 1e-9]])
    np.testing.assert_allclose(cr.linalg.inv(cr.tensor(a)).cpu().numpy(), torch.linalg.inv(torch.tensor(a)).cpu().numpy(),
                               rtol=1e-6)
    np.testing.assert_allclose(cr.linalg.pinv(cr.tensor(np.ones((3, 2)))).cpu().numpy(),
                               torch.linalg.pinv(torch.tensor(np.ones((3, 2)))).cpu().numpy(), atol=1e-12)


def test_eigh_degenerate_policy():
    """Repeated eigenvalues: eigenvalue-only gradients are finite (no division); eigenvector gradients
    divide by the zero gap, as PyTorch's (not finite)."""
    a = np.eye(3)
    c, t = both([a])
    cr.linalg.eigvalsh(c[0]).sum().backward()
    torch.linalg.eigvalsh(t[0]).sum().backward()
    np.testing.assert_allclose(c[0].grad.cpu().numpy(), t[0].grad.cpu().numpy(), atol=1e-12)
    c, t = both([a])
    L, V = cr.linalg.eigh(c[0])
    (L.sum() + V[0, 0]).backward()
    tL, tV = torch.linalg.eigh(t[0])
    (tL.sum() + tV[0, 0]).backward()
    assert not np.isfinite(c[0].grad.cpu().numpy()).all() and not np.isfinite(t[0].grad.cpu().numpy()).all()


# ----- bad shapes and dtypes --------------------------------------------------------------------------

@pytest.mark.parametrize("fn", [cr.linalg.inv, cr.linalg.det, cr.linalg.cholesky, cr.linalg.eigh,
                                cr.linalg.matrix_exp, cr.linalg.slogdet])
def test_non_square_errors(fn):
    with pytest.raises(RuntimeError, match="square"):
        fn(cr.randn(2, 3, dtype=cr.float64))
    with pytest.raises(RuntimeError, match="at least 2 dimensions"):
        fn(cr.randn(3, dtype=cr.float64))


def test_other_errors():
    with pytest.raises(RuntimeError, match="floating point"):
        cr.linalg.inv(cr.ones(2, 2, dtype=cr.int64))
    with pytest.raises(RuntimeError, match="Incompatible shapes"):
        cr.linalg.solve(cr.randn(3, 3, dtype=cr.float64), cr.randn(4, 2, dtype=cr.float64))
    with pytest.raises(RuntimeError, match="same dtype"):
        cr.linalg.solve(cr.randn(3, 3, dtype=cr.float64), cr.randn(3, 2))
    with pytest.raises(RuntimeError, match="length 3"):
        cr.linalg.cross(cr.randn(2, 4), cr.randn(2, 4))
    with pytest.raises(RuntimeError, match="1D or 2D"):
        cr.linalg.norm(cr.randn(2, 2, 2), ord=2)
    with pytest.raises(RuntimeError, match="UPLO"):
        cr.linalg.eigh(cr.eye(2), UPLO="X")
    with pytest.raises(RuntimeError, match="unrecognized mode"):
        cr.linalg.qr(cr.eye(2), mode="bad")
    x = cr.tensor(well(2, 3), requires_grad=True)
    with pytest.raises(NotImplementedError, match="m >= n"):
        cr.linalg.qr(x)[0].sum().backward()


def test_solve_triangular_with_a_zero_on_the_diagonal_gives_torchs_inf_and_nan():
    a = np.array([[2.0, 0.0, 0.0], [1.0, 0.0, 0.0], [3.0, 1.0, 4.0]])
    b = np.array([[1.0], [2.0], [3.0]])
    ours = cr.linalg.solve_triangular(cr.tensor(a), cr.tensor(b), upper=False).cpu().numpy()
    theirs = torch.linalg.solve_triangular(torch.tensor(a), torch.tensor(b), upper=False).numpy()
    assert not np.isfinite(theirs).all()
    np.testing.assert_allclose(ours, theirs, equal_nan=True)
