"""Every operation is reachable as ``cr.<name>``, and as a Tensor method wherever PyTorch's Tensor
has that method; the method and the function give the same result."""

import numpy as np
import pytest

import chainrule as cr
from chainrule.ops import elementwise, elementwise_more, indexing, linalg, linalg_more, logits, reduction, search, shape, sorting

torch = pytest.importorskip("torch")

# the shared input is outside the domain of asin, acos and logit: numpy warns of the nan results
pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")

_ALL = sorted(set(elementwise.__all__ + elementwise_more.__all__ + reduction.__all__ + shape.__all__
                  + indexing.__all__ + linalg.__all__ + linalg_more.__all__
                  + logits.__all__ + sorting.__all__ + search.__all__))


@pytest.mark.parametrize("name", _ALL)
def test_every_operation_is_a_chainrule_function(name):
    assert callable(getattr(cr, name))


@pytest.mark.parametrize("name", [n for n in _ALL if hasattr(torch.Tensor, n)])
def test_tensor_has_the_method_wherever_torch_tensor_does(name):
    assert hasattr(cr.Tensor, name)


_X = np.array([[0.5, 1.5, 2.0], [1.0, 0.25, 3.0]])
_IDX = cr.tensor([[0, 2], [1, 1]])
# method name -> extra arguments after self (default: none)
_ONES = {shape: cr.ones(*shape, dtype=cr.float64) for shape in [(2, 2), (2, 1), (3, 2), (3,)]}
_ARGS = {
    "add": (cr.tensor(2.0),), "sub": (1.0,), "mul": (3.0,), "div": (2.0,), "true_divide": (2.0,),
    "floor_divide": (0.5,), "pow": (2,), "maximum": (cr.tensor(1.0),), "minimum": (cr.tensor(1.0),),
    "clamp": (0.6, 1.8), "clip": (0.6, 1.8), "atan2": (cr.tensor(1.0),), "remainder": (0.7,),
    "lerp": (cr.tensor(1.0), 0.5), "addcmul": (cr.tensor(2.0), cr.tensor(3.0)), "addcdiv": (cr.tensor(2.0), cr.tensor(4.0)),
    "reshape": (3, 2), "view": (3, 2), "permute": (1, 0), "transpose": (0, 1), "swapaxes": (0, 1),
    "unsqueeze": (-1,), "expand": (2, 2, 3), "broadcast_to": ((2, 2, 3),), "repeat": (1, 2), "tile": ((2,),),
    "split": (1,), "chunk": (2,), "flip": ((0,),), "roll": (1, 1), "tril": (), "triu": (1,),
    "movedim": (0, 1), "narrow": (1, 0, 2), "select": (1, 0), "unflatten": (1, (3, 1)),
    "gather": (1, _IDX), "index_select": (1, cr.tensor([2, 0])), "take_along_dim": (_IDX, 1),
    "scatter_add": (1, _IDX, _ONES[2, 2]), "scatter": (1, cr.tensor([[0], [1]]), _ONES[2, 1]),
    "index_add": (1, cr.tensor([0, 0]), _ONES[2, 2]), "masked_fill": (cr.tensor([True, False, True]), 0.0),
    "masked_select": (cr.tensor([True, False, True]),), "matmul": (_ONES[3, 2],), "mm": (_ONES[3, 2],),
    "inner": (_ONES[3,],), "cumsum": (1,), "cumprod": (1,), "logsumexp": (1,), "expand_as": (cr.ones(2, 2, 3),),
    "sum_to": ((1, 3),), "eq": (1.0,), "ne": (1.0,), "lt": (1.0,), "le": (1.0,), "gt": (1.0,), "ge": (1.0,),
    "logical_and": (cr.tensor(True),), "logical_or": (cr.tensor(False),), "logical_xor": (cr.tensor(True),),
    "logaddexp": (cr.tensor(1.0),), "logaddexp2": (cr.tensor(1.0),), "hypot": (cr.tensor(1.0),),
    "copysign": (cr.tensor(-1.0),), "xlogy": (cr.tensor(2.0),), "float_power": (2,),
    "isclose": (cr.tensor(1.0, dtype=cr.float64),),
    "allclose": (cr.tensor(1.0, dtype=cr.float64),), "equal": (cr.tensor(1.0),),
    "cummax": (1,), "cummin": (1,), "logcumsumexp": (1,), "kthvalue": (2,), "quantile": (0.5,),
    "nanquantile": (0.5,), "repeat_interleave": (2,), "tensor_split": (2,), "hsplit": (3,), "vsplit": (2,),
    "kron": (_ONES[2, 2],),
    "scatter_reduce": (1, _IDX, _ONES[2, 2], "amax"), "index_copy": (1, cr.tensor([2, 0]), _ONES[2, 2]),
    "index_fill": (1, cr.tensor([0]), -1.0), "index_reduce": (1, cr.tensor([2, 2]), _ONES[2, 2], "amax"),
    "masked_scatter": (cr.tensor([True, False, True]), _ONES[2, 2]),
    "take": (cr.tensor([0, 5, 5]),), "put": (cr.tensor([1, 4]), _ONES[2, 1].reshape(-1)),
    "fmax": (cr.tensor(1.0),), "fmin": (cr.tensor(1.0),), "ldexp": (cr.tensor(2),), "nextafter": (cr.tensor(1.0),),
    "heaviside": (cr.tensor(0.5, dtype=cr.float64),), "igamma": (cr.tensor(2.0),), "igammac": (cr.tensor(2.0),),
    "mvlgamma": (2,),
    "addmm": (_ONES[2, 2], cr.ones(2, 3, dtype=cr.float64)), "addr": (_ONES[2, 1].reshape(-1), _ONES[3,]),
    "addbmm": (cr.ones(2, 2, 1, dtype=cr.float64), cr.ones(2, 1, 3, dtype=cr.float64)),
    "baddbmm": (cr.ones(2, 2, 1, dtype=cr.float64), cr.ones(2, 1, 3, dtype=cr.float64)), "mv": (_ONES[3,],),
    "dist": (cr.tensor(1.0),), "renorm": (2, 0, 1.0), "triangular_solve": (_ONES[2, 2].triu() * 2,),
    "cholesky_solve": (_ONES[2, 2].tril() * 2,), "cross": (cr.ones(2, 3, dtype=cr.float64) * 2, 1),
    "ormqr": (_ONES[2, 1].reshape(-1) * 0.5, _ONES[2, 2]),
    "fmod": (0.7,), "topk": (2,), "softmax": (1,), "log_softmax": (1,), "sort": (1,), "argsort": (1,),
}
_NOT_ON_MATRICES = {"t", "dot", "outer", "vdot", "bmm", "bitwise_not", "bitwise_and", "bitwise_or", "bitwise_xor",
                    "bitwise_left_shift", "bitwise_right_shift",
                    "to_dtype", "to_device", "index_put", "T", "mT", "dsplit",  # dsplit needs 3 dims
                    "where",  # x.where(condition, y): see test_properties_and_operators
                    "gcd", "lcm",  # integers only
                    "addmv", "ger",  # a vector's functions
                    "det", "slogdet", "logdet", "inverse", "matrix_exp", "matrix_power", "cholesky",  # square only
                    "cholesky_inverse", "lu_solve", "orgqr",  # orgqr: m >= n
                    "polygamma",  # x.polygamma(n) is polygamma(n, x)
                    "bincount"}  # counts a 1-d integer tensor


@pytest.mark.parametrize("name", [n for n in _ALL if hasattr(torch.Tensor, n) and hasattr(cr.Tensor, n)
                                  and n not in _NOT_ON_MATRICES])
def test_method_and_function_agree(name):
    x = cr.tensor(_X, dtype=cr.float64)
    args = _ARGS.get(name, ())
    by_method, by_function = getattr(x, name)(*args), getattr(cr, name)(x, *args)
    method_out = by_method if isinstance(by_method, (tuple, list)) else (by_method,)
    function_out = by_function if isinstance(by_function, (tuple, list)) else (by_function,)
    assert len(method_out) == len(function_out)
    for m, f in zip(method_out, function_out):
        np.testing.assert_array_equal(np.asarray(m), np.asarray(f))


def test_properties_and_operators():
    x = cr.tensor(_X)
    np.testing.assert_array_equal(x.T.cpu().numpy(), _X.T)
    np.testing.assert_array_equal(cr.ones(2, 2, 3).mT.cpu().numpy(), np.ones((2, 3, 2)))
    np.testing.assert_array_equal((x @ x.T).cpu().numpy(), cr.matmul(x, x.T).cpu().numpy())
    np.testing.assert_array_equal((x ** 2).cpu().numpy(), cr.pow(x, 2).cpu().numpy())
    np.testing.assert_array_equal(x[0, 1:].cpu().numpy(), _X[0, 1:])
    np.testing.assert_array_equal(x.where(x > 1, 0.0).cpu().numpy(), np.where(_X > 1, _X, 0.0))


def test_sort_topk_fmod_and_shifts_match_torch():
    x = np.array([[3.0, -1.0, 2.0, 2.5], [0.5, 4.0, -2.0, 1.0]])
    for descending in (False, True):
        ours = cr.tensor(x).sort(-1, descending=descending)
        theirs = torch.tensor(x).sort(-1, descending=descending)
        assert np.array_equal(ours.values.cpu().numpy(), theirs.values.cpu().numpy())
        assert np.array_equal(ours.indices.cpu().numpy(), theirs.indices.cpu().numpy())
    ours, theirs = cr.tensor(x).topk(2, dim=1), torch.tensor(x).topk(2, dim=1)
    assert np.array_equal(ours.values.cpu().numpy(), theirs.values.cpu().numpy())
    assert np.array_equal(ours.indices.cpu().numpy(), theirs.indices.cpu().numpy())
    a, b = np.array([-7.0, 7.0, -7.5]), np.array([2.0, -2.0, 2.0])
    assert np.allclose(cr.fmod(cr.tensor(a), cr.tensor(b)).cpu().numpy(), torch.fmod(torch.tensor(a), torch.tensor(b)).numpy())
    i = np.array([1, 2, 8])
    assert np.array_equal((cr.tensor(i) << 2).cpu().numpy(), (torch.tensor(i) << 2).cpu().numpy())
    shifted = (cr.tensor(i) >> cr.tensor([0, 1, 2])).cpu().numpy()
    assert np.array_equal(shifted, (torch.tensor(i) >> torch.tensor([0, 1, 2])).numpy())


def test_sort_and_topk_gradients_scatter_back():
    from chainrule.autograd import gradcheck

    x = cr.tensor([[3.0, -1.0, 2.0, 2.5], [0.5, 4.0, -2.0, 1.0]], dtype=cr.float64, requires_grad=True)
    assert gradcheck(lambda t: t.sort(1).values * cr.arange(4, dtype=cr.float64), (x,))
    assert gradcheck(lambda t: t.topk(2).values, (x,))
    assert gradcheck(lambda t: cr.fmod(t, 1.3), (x,))
