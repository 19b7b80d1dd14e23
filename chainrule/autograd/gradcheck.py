"""Checking backward rules against finite differences.

``gradcheck`` compares, for every output element and every input element, the Jacobian entry that
backpropagation gives with a central difference (f(x + eps) - f(x - eps)) / (2 eps) in float64.
``gradgradcheck`` does the same for the gradient itself (the backward of the backward).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from chainrule.autograd.engine import grad as _grad
from chainrule.backend import np
from chainrule.tensor import Tensor, wrap

__all__ = ["gradcheck", "gradgradcheck", "GradcheckError"]


class GradcheckError(AssertionError):
    """The analytical and numerical Jacobians differ."""


def _as_tuple(x) -> tuple:
    return tuple(x) if isinstance(x, (tuple, list)) else (x,)


def _outputs(fn: Callable, inputs: tuple) -> tuple:
    return tuple(o for o in _as_tuple(fn(*inputs)) if isinstance(o, Tensor))


def _numerical_jacobian(fn, inputs: tuple, k: int, out_index: int, eps: float):
    data = inputs[k]._data  # perturbed in place, one element at a time, then restored
    columns = []
    # grad mode stays on: gradgradcheck's function computes gradients itself
    for i in range(data.size):
        where = np.unravel_index(i, data.shape)
        orig = data[where].item()
        data[where] = orig + eps
        plus = _outputs(fn, inputs)[out_index]._data.astype(np.float64).reshape(-1)
        data[where] = orig - eps
        minus = _outputs(fn, inputs)[out_index]._data.astype(np.float64).reshape(-1)
        data[where] = orig
        columns.append((plus - minus) / (2 * eps))
    out_size = _outputs(fn, inputs)[out_index]._data.size
    return np.stack(columns, axis=1) if columns else np.zeros((out_size, 0))


def _analytical_jacobian(fn, inputs: tuple, k: int, out_index: int):
    out = _outputs(fn, inputs)[out_index]
    rows = []
    for j in range(out._data.size):
        seed = np.zeros(out._data.size, dtype=out._data.dtype)
        seed[j] = 1.0
        (g,) = _grad(out, inputs[k], grad_outputs=wrap(seed.reshape(out.shape)), retain_graph=True,
                     allow_unused=True)
        rows.append(np.zeros(inputs[k]._data.size) if g is None else g._data.astype(np.float64).reshape(-1))
    return np.stack(rows, axis=0) if rows else np.zeros((0, inputs[k]._data.size))


def gradcheck(fn: Callable, inputs: Sequence | Tensor, eps: float = 1e-6, atol: float = 1e-5,
              rtol: float = 1e-3, raise_exception: bool = True) -> bool:
    """True when backprop's Jacobian of ``fn`` matches central differences for every input that
    requires grad; else raises :class:`GradcheckError` naming the worst element (or returns False)."""
    inputs = _as_tuple(inputs)
    for k, x in enumerate(inputs):
        if isinstance(x, Tensor) and x.requires_grad and x.dtype.name != "float64":
            raise GradcheckError(
                f"gradcheck: input {k} is {x.dtype}; finite differences need float64 inputs to be meaningful"
            )
    n_outputs = len(_outputs(fn, inputs))
    for out_index in range(n_outputs):
        if not _outputs(fn, inputs)[out_index].requires_grad:
            continue
        for k, x in enumerate(inputs):
            if not (isinstance(x, Tensor) and x.requires_grad):
                continue
            numerical = _numerical_jacobian(fn, inputs, k, out_index, eps)
            analytical = _analytical_jacobian(fn, inputs, k, out_index)
            if numerical.shape != analytical.shape:
                raise GradcheckError(f"gradcheck: Jacobian shapes differ: {numerical.shape} vs {analytical.shape}")
            err = np.abs(analytical - numerical)
            bad = err > atol + rtol * np.abs(numerical)
            if bad.any():
                if not raise_exception:
                    return False
                worst = np.unravel_index(np.argmax(err - (atol + rtol * np.abs(numerical))), err.shape)
                out_el = [int(i) for i in np.unravel_index(worst[0], _outputs(fn, inputs)[out_index].shape or (1,))]
                in_el = [int(i) for i in np.unravel_index(worst[1], x.shape or (1,))]
                raise GradcheckError(
                    f"gradcheck: Jacobian mismatch for output {out_index} with respect to input {k}: "
                    f"{int(bad.sum())} of {bad.size} entries differ. Worst: d output{out_el} / "
                    f"d input{in_el}: analytical {analytical[worst]:.10g}, numerical "
                    f"{numerical[worst]:.10g} (abs error {err[worst]:.3g}; atol {atol}, rtol {rtol})"
                )
    return True


def gradgradcheck(fn: Callable, inputs: Sequence | Tensor, grad_outputs: Sequence | None = None,
                  eps: float = 1e-6, atol: float = 1e-5, rtol: float = 1e-3, raise_exception: bool = True,
                  seed: int = 0) -> bool:
    """gradcheck of the map (inputs, grad_outputs) -> vector-Jacobian products, i.e. of backward itself.
    Random ``grad_outputs`` (float64, seeded) are used unless given."""
    inputs = _as_tuple(inputs)
    outputs = _outputs(fn, inputs)
    if grad_outputs is None:
        rng = np.random.default_rng(seed)
        grad_outputs = tuple(wrap(rng.standard_normal(o.shape)).requires_grad_() for o in outputs)
    grad_outputs = _as_tuple(grad_outputs)
    diff_positions = [i for i, x in enumerate(inputs) if isinstance(x, Tensor) and x.requires_grad]
    n_inputs = len(inputs)

    def backward_of_fn(*args):
        xs, gos = args[:n_inputs], args[n_inputs:]
        outs = [o for o in _outputs(fn, xs) if o.requires_grad]
        grads = _grad(outs, [xs[i] for i in diff_positions], grad_outputs=list(gos[:len(outs)]),
                      create_graph=True, allow_unused=True)
        return tuple(g for g in grads if g is not None)

    return gradcheck(backward_of_fn, inputs + grad_outputs, eps=eps, atol=atol, rtol=rtol,
                     raise_exception=raise_exception)
