"""chainrule.distributions.constraints against torch.distributions.constraints: check() on the same values,
repr, event_dim, is_discrete; and each family's support and arg_constraints as PyTorch's."""

import numpy as np
import pytest
import torch

import chainrule as cr
from chainrule import distributions as D
from chainrule.distributions import constraints as C

TC = torch.distributions.constraints
RNG = np.random.default_rng(3)

SCALARS = np.array([-np.inf, -2.0, -0.5, 0.0, 0.3, 1.0, 1.5, 2.0, 3.0, np.inf, np.nan])
VECTORS = np.array([[0.2, 0.3, 0.5], [1.0, 0.0, 0.0], [0.5, 0.6, -0.1], [0.0, 0.0, 0.0], [2.0, 1.0, 0.0]])


def matrices():
    a = RNG.standard_normal((3, 3))
    spd = a @ a.T + np.eye(3)
    L = np.linalg.cholesky(spd)
    corr = L / np.linalg.norm(L, axis=1, keepdims=True)
    psd = np.diag([1.0, 0.0, 2.0])
    return np.stack([spd, L, L.T, corr, psd, -spd, a])


def symmetric_matrices():
    """PyTorch's positive (semi)definite checks fall back to the symmetry check alone for the whole batch
    when any matrix in it is not symmetric; chainrule checks each matrix fully. Compared on symmetric ones."""
    m = matrices()
    return np.stack([m[0], m[4], -m[0], m[3] @ m[3].T, np.eye(3), np.zeros((3, 3))])


CASES = [  # (name, args, values)
    ("real", None, SCALARS), ("positive", None, SCALARS), ("nonnegative", None, SCALARS),
    ("unit_interval", None, SCALARS), ("boolean", None, SCALARS), ("nonnegative_integer", None, SCALARS),
    ("positive_integer", None, SCALARS), ("greater_than", (1.0,), SCALARS), ("greater_than_eq", (1.0,), SCALARS),
    ("less_than", (1.0,), SCALARS), ("interval", (-0.5, 2.0), SCALARS), ("half_open_interval", (-0.5, 2.0), SCALARS),
    ("integer_interval", (0, 2), SCALARS), ("simplex", None, VECTORS), ("one_hot", None, VECTORS),
    ("real_vector", None, VECTORS), ("multinomial", (2,), VECTORS),
    ("positive_definite", None, symmetric_matrices()), ("positive_semidefinite", None, symmetric_matrices()),
    ("lower_cholesky", None, matrices()), ("lower_triangular", None, matrices()), ("symmetric", None, matrices()),
    ("square", None, matrices()), ("corr_cholesky", None, matrices()),
]


@pytest.mark.parametrize("name, args, values", CASES, ids=[c[0] for c in CASES])
def test_constraint_as_torch(name, args, values):
    ours = getattr(C, name) if args is None else getattr(C, name)(*args)
    theirs = getattr(TC, name) if args is None else getattr(TC, name)(*args)
    assert repr(ours) == repr(theirs)
    assert (ours.event_dim, ours.is_discrete) == (theirs.event_dim, theirs.is_discrete)
    got = ours.check(cr.tensor(values, dtype=cr.float64)).cpu().numpy()
    expected = theirs.check(torch.tensor(values, dtype=torch.float64)).cpu().numpy()
    np.testing.assert_array_equal(got, expected)


def test_definite_checks_each_matrix():
    m = matrices()  # spd, L, L^T, corr, psd, -spd, a: only the first is positive definite
    np.testing.assert_array_equal(C.positive_definite.check(cr.tensor(m)).cpu().numpy(), [1, 0, 0, 0, 0, 0, 0])
    np.testing.assert_array_equal(C.positive_semidefinite.check(cr.tensor(m)).cpu().numpy(), [1, 0, 0, 0, 1, 0, 0])


def test_independent_cat_stack_dependent():
    values = np.array([[1.0, 2.0], [1.0, -1.0]])
    for ours, theirs in [(C.independent(C.positive, 1), TC.independent(TC.positive, 1)),
                         (C.cat([C.positive, C.real], 1, [1, 1]), TC.cat([TC.positive, TC.real], 1, [1, 1])),
                         (C.stack([C.real, C.positive], 1), TC.stack([TC.real, TC.positive], 1))]:
        np.testing.assert_array_equal(ours.check(cr.tensor(values)).cpu().numpy(),
                                      theirs.check(torch.tensor(values)).numpy())
        assert ours.event_dim == theirs.event_dim
    assert repr(C.independent(C.positive, 1)) == repr(TC.independent(TC.positive, 1))
    assert C.is_dependent(C.dependent) and not C.is_dependent(C.real)
    with pytest.raises(ValueError, match="dependent constraint"):
        C.dependent.check(cr.tensor(1.0))


def family_pairs():
    p = RNG.uniform(0.1, 0.9, 3)
    return [
        ("Normal", (0.0, 1.0), {}), ("Uniform", (0.0, 2.0), {}), ("Exponential", (1.0,), {}),
        ("Bernoulli", (), {"probs": p}), ("Categorical", (), {"probs": p}), ("OneHotCategorical", (), {"probs": p}),
        ("Gamma", (1.0, 2.0), {}), ("Chi2", (3.0,), {}), ("Beta", (1.0, 2.0), {}), ("Dirichlet", (p,), {}),
        ("MultivariateNormal", (np.zeros(2),), {"covariance_matrix": np.eye(2)}), ("Laplace", (0.0, 1.0), {}),
        ("LogNormal", (0.0, 1.0), {}), ("StudentT", (3.0,), {}), ("Poisson", (2.0,), {}),
        ("Binomial", (5.0,), {"probs": p}), ("Geometric", (), {"probs": p}),
    ]


@pytest.mark.parametrize("name, args, kwargs", family_pairs(), ids=[f[0] for f in family_pairs()])
def test_family_support_and_arg_constraints_as_torch(name, args, kwargs, cpu_repr):
    def make(lib, T):
        return getattr(lib, name)(*[T(np.asarray(a, dtype=np.float64)) for a in args],
                                  **{k: T(np.asarray(v, dtype=np.float64)) for k, v in kwargs.items()})

    ours, theirs = make(D, cr.tensor), make(torch.distributions, torch.tensor)

    def same_repr(a, b):  # tensors in a bound print their library's dtype name
        assert cpu_repr(a).replace("chainrule.", "torch.") == repr(b)

    same_repr(ours.support, theirs.support)
    assert (ours.support.event_dim, ours.support.is_discrete) == (theirs.support.event_dim,
                                                                  theirs.support.is_discrete)
    # class-level tables (both of probs/logits), or the instance's where PyTorch computes them (Uniform)
    our_table, their_table = (type(ours).arg_constraints, type(theirs).arg_constraints) if isinstance(
        type(theirs).arg_constraints, dict) else (ours.arg_constraints, theirs.arg_constraints)
    assert our_table.keys() == their_table.keys()
    for key, constraint in their_table.items():
        if not TC.is_dependent(constraint):
            same_repr(our_table[key], constraint)
    assert ours.has_enumerate_support == theirs.has_enumerate_support


def test_utils_as_torch():
    from torch.distributions import utils as TU

    from chainrule.distributions import utils as CU

    probs = RNG.uniform(0, 1, (2, 3))
    probs[0, 0], probs[1, 2] = 0.0, 1.0
    c, t = cr.tensor(probs), torch.tensor(probs)
    for binary in (False, True):
        np.testing.assert_allclose(CU.probs_to_logits(c, binary).cpu().numpy(), TU.probs_to_logits(t, binary).cpu().numpy(),
                                   rtol=1e-12)
        np.testing.assert_allclose(CU.logits_to_probs(c, binary).cpu().numpy(), TU.logits_to_probs(t, binary).cpu().numpy(),
                                   rtol=1e-12)
    np.testing.assert_array_equal(CU.clamp_probs(c).cpu().numpy(), TU.clamp_probs(t).cpu().numpy())
    mats = RNG.standard_normal((2, 4, 4))
    for diag in (-2, -1, 0, 1):
        vec_c, vec_t = CU.tril_matrix_to_vec(cr.tensor(mats), diag), TU.tril_matrix_to_vec(torch.tensor(mats), diag)
        np.testing.assert_array_equal(vec_c.cpu().numpy(), vec_t.cpu().numpy())
        np.testing.assert_array_equal(CU.vec_to_tril_matrix(vec_c, diag).cpu().numpy(),
                                      TU.vec_to_tril_matrix(vec_t, diag).cpu().numpy())
    assert CU.euler_constant == TU.euler_constant and CU.is_tensor_like(c)

    class Thing:
        calls = 0

        @CU.lazy_property
        def value(self):
            Thing.calls += 1
            return 42

    thing = Thing()
    assert thing.value == 42 and thing.value == 42 and Thing.calls == 1
