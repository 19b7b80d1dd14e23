"""Checking backward rules against finite differences.

``gradcheck`` compares, for every output element and every input element, the Jacobian entry that
backpropagation gives with a central difference (f(x + eps) - f(x - eps)) / (2 eps) in float64.
``gradgradcheck`` does the same for the gradient itself (the backward of the backward).

Complex inputs and outputs (complex128) are checked as pairs of real numbers, as torch.autograd.gradcheck
does: the real and the imaginary part of each input element are perturbed in turn, each output's real and
imaginary parts are compared, and backpropagation's column for them is read from the gradient a seed of
1 (for the real part) or i (for the imaginary part) gives, by PyTorch's convention for complex gradients
(grad = dL/dRe + i dL/dIm).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from chainrule.autograd.engine import grad as _grad
from chainrule.backend import np, to_host, xp_of
from chainrule.tensor import Tensor, wrap

__all__ = ["gradcheck", "gradgradcheck", "GradcheckError"]


class GradcheckError(AssertionError):
    """The analytical and numerical Jacobians differ."""


def _as_tuple(x) -> tuple:
    return tuple(x) if isinstance(x, (tuple, list)) else (x,)


def _outputs(fn: Callable, inputs: tuple) -> tuple:
    return tuple(o for o in _as_tuple(fn(*inputs)) if isinstance(o, Tensor))


def _as_reals(array):
    """A float64 host vector of the array's numbers, a complex one as (real, imaginary) pairs (the Jacobians
    are compared on the host, whatever device the function runs on)."""
    array = to_host(array)
    if array.dtype.kind == "c":
        return np.ascontiguousarray(array, dtype=np.complex128).reshape(-1).view(np.float64)
    return array.astype(np.float64).reshape(-1)


def _real_size(array) -> int:
    return array.size * (2 if array.dtype.kind == "c" else 1)


def _numerical_jacobian(fn, inputs: tuple, k: int, out_index: int, eps: float):
    data = inputs[k]._data  # perturbed in place, one number at a time, then restored
    steps = (eps, eps * 1j) if data.dtype.kind == "c" else (eps,)  # a complex element: its real, then imaginary part
    columns = []
    # grad mode stays on: gradgradcheck's function computes gradients itself
    for i in range(data.size):
        where = np.unravel_index(i, data.shape)
        orig = data[where].item()
        for step in steps:
            data[where] = orig + step
            plus = _as_reals(_outputs(fn, inputs)[out_index]._data)
            data[where] = orig - step
            minus = _as_reals(_outputs(fn, inputs)[out_index]._data)
            data[where] = orig
            columns.append((plus - minus) / (2 * eps))
    out_size = _real_size(_outputs(fn, inputs)[out_index]._data)
    return np.stack(columns, axis=1) if columns else np.zeros((out_size, 0))


def _analytical_jacobian(fn, inputs: tuple, k: int, out_index: int):
    out = _outputs(fn, inputs)[out_index]
    parts = 2 if out._data.dtype.kind == "c" else 1  # a complex output: rows for its real, then imaginary part
    in_size = _real_size(inputs[k]._data)
    rows = []
    for j in range(out._data.size * parts):
        seed = xp_of(out._data).zeros(out._data.size, dtype=out._data.dtype)  # on the output's device
        seed[j // parts] = 1j if j % parts else 1.0
        (g,) = _grad(out, inputs[k], grad_outputs=wrap(seed.reshape(out.shape)), retain_graph=True,
                     allow_unused=True)
        rows.append(np.zeros(in_size) if g is None else _as_reals(g._data))
    return np.stack(rows, axis=0) if rows else np.zeros((0, in_size))


def gradcheck(fn: Callable, inputs: Sequence | Tensor, eps: float = 1e-6, atol: float = 1e-5,
              rtol: float = 1e-3, raise_exception: bool = True) -> bool:
    """True when backprop's Jacobian of ``fn`` matches central differences for every input that
    requires grad; else raises :class:`GradcheckError` naming the worst element (or returns False)."""
    inputs = _as_tuple(inputs)
    for k, x in enumerate(inputs):
        if isinstance(x, Tensor) and x.requires_grad and x.dtype.name not in ("float64", "complex128"):
            raise GradcheckError(
                f"gradcheck: input {k} is {x.dtype}; finite differences need float64 (or complex128) inputs to "
                "be meaningful"
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
                out_el = _element_name(worst[0], _outputs(fn, inputs)[out_index])
                in_el = _element_name(worst[1], x)
                raise GradcheckError(
                    f"gradcheck: Jacobian mismatch for output {out_index} with respect to input {k}: "
                    f"{int(bad.sum())} of {bad.size} entries differ. Worst: d output{out_el} / "
                    f"d input{in_el}: analytical {analytical[worst]:.10g}, numerical "
                    f"{numerical[worst]:.10g} (abs error {err[worst]:.3g}; atol {atol}, rtol {rtol})"
                )
    return True


def _element_name(real_index: int, t: Tensor) -> str:
    """'[1, 2]' for the element of ``t`` a Jacobian row or column is about; '[1, 2].imag' for a complex
    tensor's imaginary part."""
    complex_ = t._data.dtype.kind == "c"
    index = real_index // 2 if complex_ else real_index
    name = str([int(i) for i in np.unravel_index(index, t.shape or (1,))])
    return name + ((".imag" if real_index % 2 else ".real") if complex_ else "")


def gradgradcheck(fn: Callable, inputs: Sequence | Tensor, grad_outputs: Sequence | None = None,
                  eps: float = 1e-6, atol: float = 1e-5, rtol: float = 1e-3, raise_exception: bool = True,
                  seed: int = 0) -> bool:
    """gradcheck of the map (inputs, grad_outputs) -> vector-Jacobian products, i.e. of backward itself.
    Random ``grad_outputs`` (float64, seeded) are used unless given."""
    inputs = _as_tuple(inputs)
    outputs = _outputs(fn, inputs)
    if grad_outputs is None:
        rng = np.random.default_rng(seed)
        grad_outputs = tuple(wrap(xp_of(o._data).asarray(_random_like(rng, o))).requires_grad_() for o in outputs)
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


def _random_like(rng, t: Tensor):
    """Standard normal float64 numbers of ``t``'s shape; complex128 with both parts random for a complex ``t``."""
    if t._data.dtype.kind == "c":
        return np.asarray(rng.standard_normal(t.shape) + 1j * rng.standard_normal(t.shape))
    return rng.standard_normal(t.shape)
