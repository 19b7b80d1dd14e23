"""``biject_to(constraint)`` and ``transform_to(constraint)``, as PyTorch's: a transform from unconstrained
reals onto the constrained set (bijective for ``biject_to``), so a parameter can be optimised freely and
mapped into its constraint. New constraint types are added with ``registry.register(constraint_type, factory)``."""

from __future__ import annotations

from numbers import Number

from chainrule.distributions import constraints
from chainrule.distributions import transforms as T

__all__ = ["ConstraintRegistry", "biject_to", "transform_to"]


class ConstraintRegistry:
    """Constraint type -> factory(constraint) -> Transform."""

    def __init__(self):
        self._registry: dict = {}

    def register(self, constraint, factory=None):
        if factory is None:  # used as a decorator
            return lambda f: self.register(constraint, f)
        if isinstance(constraint, constraints.Constraint):
            constraint = type(constraint)
        if not isinstance(constraint, type) or not issubclass(constraint, constraints.Constraint):
            raise TypeError(f"Expected constraint to be either a Constraint subclass or instance, but got "
                            f"{constraint}")
        self._registry[constraint] = factory
        return factory

    def __call__(self, constraint):
        factory = self._registry.get(type(constraint))
        if factory is None:
            raise NotImplementedError(f"Cannot transform {type(constraint).__name__} constraints")
        return factory(constraint)


biject_to = ConstraintRegistry()
transform_to = ConstraintRegistry()


def _both(constraint):
    def decorate(factory):
        biject_to.register(constraint, factory)
        transform_to.register(constraint, factory)
        return factory

    return decorate


@_both(constraints.real)
def _to_real(constraint):
    return T.identity_transform


@biject_to.register(constraints.independent)
def _biject_to_independent(constraint):
    return T.IndependentTransform(biject_to(constraint.base_constraint), constraint.reinterpreted_batch_ndims)


@transform_to.register(constraints.independent)
def _transform_to_independent(constraint):
    return T.IndependentTransform(transform_to(constraint.base_constraint), constraint.reinterpreted_batch_ndims)


@_both(constraints.greater_than)
@_both(constraints.greater_than_eq)
def _to_greater_than(constraint):
    return T.ComposeTransform([T.ExpTransform(), T.AffineTransform(constraint.lower_bound, 1)])


@_both(constraints.less_than)
def _to_less_than(constraint):
    return T.ComposeTransform([T.ExpTransform(), T.AffineTransform(constraint.upper_bound, -1)])


@_both(constraints.interval)
@_both(constraints.half_open_interval)
def _to_interval(constraint):
    lower, upper = constraint.lower_bound, constraint.upper_bound
    if isinstance(lower, Number) and lower == 0 and isinstance(upper, Number) and upper == 1:
        return T.SigmoidTransform()
    return T.ComposeTransform([T.SigmoidTransform(), T.AffineTransform(lower, upper - lower)])


biject_to.register(constraints.simplex, lambda constraint: T.StickBreakingTransform())
transform_to.register(constraints.simplex, lambda constraint: T.SoftmaxTransform())
transform_to.register(constraints.lower_cholesky, lambda constraint: T.LowerCholeskyTransform())
biject_to.register(constraints.corr_cholesky, lambda constraint: T.CorrCholeskyTransform())
transform_to.register(constraints.corr_cholesky, lambda constraint: T.CorrCholeskyTransform())
transform_to.register(constraints.positive_definite, lambda constraint: T.PositiveDefiniteTransform())
transform_to.register(constraints.positive_semidefinite, lambda constraint: T.PositiveDefiniteTransform())


def _register_pieces(registry: ConstraintRegistry) -> None:
    """cat and stack: each piece's transform, from the same registry."""
    registry.register(constraints.cat, lambda c: T.CatTransform([registry(p) for p in c.cseq], c.dim, c.lengths))
    registry.register(constraints.stack, lambda c: T.StackTransform([registry(p) for p in c.cseq], c.dim))


_register_pieces(biject_to)
_register_pieces(transform_to)
