"""Function transforms, as ``torch.func``: ``grad``, ``value_and_grad``, ``vjp``, ``jvp``, ``jacrev``
(also ``jacobian``) and ``hessian``."""

from chainrule.autograd.transforms import grad, hessian, jacobian, jacrev, jvp, value_and_grad, vjp

jacfwd = jacrev  # same Jacobian, computed in reverse mode

__all__ = ["grad", "value_and_grad", "vjp", "jvp", "jacrev", "jacfwd", "jacobian", "hessian"]
