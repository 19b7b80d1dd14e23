"""L-BFGS: ``torch.optim.LBFGS``'s algorithm, iteration for iteration.

All parameters form one flat vector ``x``; ``g`` is the gradient the closure leaves. One ``step(closure)``
runs up to ``max_iter`` iterations::

    d = -g                                          the very first iteration
    d = -H g                                        later: the two-loop recursion over the last
                                                    history_size pairs (s, y), H0 = s.y / y.y
    t = min(1, 1 / sum|g|) * lr on the very first iteration, else lr
    stop if g.d > -tolerance_change                 (no descent left along d)
    x = x + t d, then f, g = closure()              line_search_fn="strong_wolfe": t from a line search
                                                    meeting the strong Wolfe conditions
    s, y = t d, g - g_prev                          kept only when y.s > 1e-10
    stop at max_iter or max_eval, or when max|g| <= tolerance_grad, max|t d| <= tolerance_change
    or |f - f_prev| < tolerance_change

The state (one entry, under the first parameter, as PyTorch keeps it) carries the history from one
``step`` to the next. Scalars (t, H_diag, ro, al) are numpy scalars of the parameters' dtype, so they
round as PyTorch's 0-d tensors do; in ``state_dict()`` they are 0-d Tensors, the arrays Tensors.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

from chainrule.autograd.grad_mode import enable_grad
from chainrule.backend import ARRAY_TYPES, np, to_host, xp_of
from chainrule.optim.optimizer import Optimizer, ParamsT, group_scalar
from chainrule.tensor import Tensor, wrap

__all__ = ["LBFGS"]


class LBFGS(Optimizer):
    """L-BFGS (limited-memory BFGS, after minFunc), as ``torch.optim.LBFGS``.

    Each ``step(closure)`` runs several iterations, calling the closure (which must zero the
    gradients, compute the loss, call ``backward`` and return the loss) whenever it needs the loss
    and gradient at a new point; it returns the loss of the first call. One param group only.

    Args:
        params: the parameters to optimize (one group).
        lr: learning rate: the step length tried along each direction (default 1).
        max_iter: iterations per ``step`` at most (default 20).
        max_eval: closure calls per ``step`` at most (default ``max_iter * 5 // 4``).
        tolerance_grad: stop when the largest gradient entry is at most this (default 1e-7).
        tolerance_change: stop when the loss or the step changes less than this (default 1e-9).
        history_size: how many (step, gradient change) pairs approximate the inverse Hessian (default 100).
        line_search_fn: None (fixed step ``lr``) or ``"strong_wolfe"``.

    State (under the first parameter): ``func_evals``, ``n_iter``, ``d``, ``t``, ``old_dirs``, ``old_stps``,
    ``ro``, ``H_diag``, ``prev_flat_grad``, ``prev_loss`` and ``al``, as PyTorch's.
    """

    def __init__(self, params: ParamsT, lr: float = 1, max_iter: int = 20, max_eval: int | None = None,
                 tolerance_grad: float = 1e-7, tolerance_change: float = 1e-9, history_size: int = 100,
                 line_search_fn: str | None = None) -> None:
        if max_eval is None:
            max_eval = max_iter * 5 // 4
        defaults = dict(lr=lr, max_iter=max_iter, max_eval=max_eval, tolerance_grad=tolerance_grad,
                        tolerance_change=tolerance_change, history_size=history_size, line_search_fn=line_search_fn)
        super().__init__(params, defaults)

    def _validate_group(self, group: dict[str, Any]) -> None:
        super()._validate_group(group)
        for key in ("max_iter", "max_eval", "history_size"):
            value = group.get(key, 1)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"LBFGS: Invalid {key}: {value!r} (must be an integer >= 1)")
        for key in ("tolerance_grad", "tolerance_change"):
            value = group.get(key, 0)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not value >= 0:
                raise ValueError(f"LBFGS: Invalid {key}: {value!r} (must be a number >= 0)")
        if group.get("line_search_fn") not in (None, "strong_wolfe"):
            raise ValueError(f"LBFGS: Invalid line_search_fn: {group['line_search_fn']!r} "
                             "(only 'strong_wolfe' is supported, or None for a fixed step)")

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        if self.param_groups:
            raise ValueError("LBFGS doesn't support per-parameter options (parameter groups)")
        super().add_param_group(param_group)

    @property
    def _params(self) -> list[Tensor]:
        return self.param_groups[0]["params"]

    # ----- the flat vector x and its gradient ---------------------------------------------------
    def _flat_grad(self):
        xp = self._params[0].xp
        return xp.concatenate([p._grad._data.reshape(-1) if p.grad is not None else xp.zeros(p.numel(), p._data.dtype)
                               for p in self._params])

    def _add_step(self, t, d) -> None:
        """x += t * d, in place on every parameter."""
        offset = 0
        for p in self._params:
            n = p.numel()
            p._data += d[offset:offset + n].reshape(p.shape) * t
            p._bump_version()
            offset += n

    def _set_params(self, arrays) -> None:
        for p, a in zip(self._params, arrays):
            p._data[...] = a
            p._bump_version()

    def _evaluate_along(self, closure: Callable, x0, d) -> Callable:
        """``evaluate(t)``: the loss and flat gradient at ``x0 + t d``, leaving the parameters at ``x0``."""
        def evaluate(t):
            self._add_step(t, d)
            loss = float(closure())
            g = self._flat_grad()
            self._set_params(x0)
            return loss, g
        return evaluate

    # ----- the step -----------------------------------------------------------------------------
    def step(self, closure: Callable[[], Any] | None = None):
        """Run up to ``max_iter`` L-BFGS iterations; returns the closure's first loss."""
        if closure is None:
            raise TypeError("LBFGS.step: needs a closure that zeroes the gradients, computes the loss, calls "
                               "backward() and returns the loss: opt.step(closure)")
        closure = enable_grad()(closure)
        group = self.param_groups[0]
        lr = group_scalar(group["lr"])
        tolerance_grad, tolerance_change = group["tolerance_grad"], group["tolerance_change"]
        state = self.state[self._params[0]]
        state.setdefault("func_evals", 0)
        state.setdefault("n_iter", 0)

        orig_loss = closure()
        loss = float(orig_loss)
        evals = 1
        state["func_evals"] += 1
        g = self._flat_grad()
        if _abs_max(g) <= tolerance_grad:
            return orig_loss

        d, t, prev_g, H_diag = state.get("d"), state.get("t"), state.get("prev_flat_grad"), state.get("H_diag")
        old_dirs, old_stps, ro = state.get("old_dirs"), state.get("old_stps"), state.get("ro")
        prev_loss = state.get("prev_loss")
        n_iter, optimal = 0, False
        while n_iter < group["max_iter"]:
            n_iter += 1
            state["n_iter"] += 1
            if state["n_iter"] == 1:
                d = -g
                old_dirs, old_stps, ro, H_diag = [], [], [], 1
            else:
                H_diag = _remember(old_dirs, old_stps, ro, H_diag, g - prev_g, d * t, group["history_size"])
                al = state.setdefault("al", [None] * group["history_size"])
                d = _two_loop_direction(g, old_dirs, old_stps, ro, H_diag, al)
            if prev_g is None:
                prev_g = g.copy()
            else:
                prev_g[...] = g
            prev_loss = loss

            t = min(1.0, 1.0 / _num(abs(g).sum())) * lr if state["n_iter"] == 1 else lr
            gtd = _num(g.dot(d))
            if gtd > -tolerance_change:
                break

            if group["line_search_fn"] is not None:
                x0 = [p._data.copy() for p in self._params]
                # (PyTorch passes the search the default tolerance_change, 1e-9, not the group's)
                loss, g, t, ls_evals = _strong_wolfe(self._evaluate_along(closure, x0, d), t, d, loss, g, gtd,
                                                     max_ls=group["max_eval"] - evals)
                self._add_step(t, d)
                optimal = _abs_max(g) <= tolerance_grad
            else:
                self._add_step(t, d)
                ls_evals = 0
                if n_iter != group["max_iter"]:  # the last iteration's loss would go unused
                    loss = float(closure())
                    g = self._flat_grad()
                    optimal = _abs_max(g) <= tolerance_grad
                    ls_evals = 1
            evals += ls_evals
            state["func_evals"] += ls_evals

            if n_iter == group["max_iter"] or evals >= group["max_eval"] or optimal:
                break
            if _abs_max(d * t) <= tolerance_change or abs(loss - prev_loss) < tolerance_change:
                break

        state.update(d=d, t=t, old_dirs=old_dirs, old_stps=old_stps, ro=ro, H_diag=H_diag, prev_flat_grad=prev_g,
                     prev_loss=prev_loss)
        return orig_loss

    # ----- state dicts (PyTorch's layout) -------------------------------------------------------
    def _state_value_for_dict(self, param: Tensor, key: str, value):
        """Arrays as Tensor copies, the scalars t, H_diag, ro and al as 0-d Tensors."""
        return _saved(value)

    def _restore_state_value(self, param: Tensor, key: str, value, index, where: str):
        """A saved value as ``step`` works on it: flat arrays (one element per parameter element) of the
        parameters' dtype and device, scalars as numpy scalars of that dtype, numbers as they are; only
        the first parameter holds state."""
        if param is not self._params[0]:
            raise ValueError(f"{where}: L-BFGS keeps its state under the first parameter only, but the state dict "
                             f"has state for parameter {index!r}")
        if isinstance(value, (list, tuple)):
            return [self._restore_state_value(param, key, v, index, where) for v in value]
        if isinstance(value, Tensor):
            value = value._data
        if type(value) not in ARRAY_TYPES and not isinstance(value, np.generic):
            return value
        dtype = param._data.dtype
        if value.ndim == 0:
            return dtype.type(value.item())
        n = sum(q.numel() for q in self._params)
        if value.shape != (n,):
            raise ValueError(f"{where}: state '{key}' has shape {tuple(value.shape)}, but the parameters have {n} "
                             "elements in all; the state dict belongs to a different model")
        return param.xp.array(to_host(value) if param.xp is np else value, dtype=dtype, copy=True)

class _Point(NamedTuple):
    """A trial step length ``t`` with the loss, flat gradient and directional derivative there."""
    t: Any
    f: float
    g: Any
    gtd: Any


class _WolfeSearch:
    """What the two phases of the strong-Wolfe line search share: the start, the tests, the count."""

    def __init__(self, evaluate: Callable, d, f: float, g, gtd, c1: float, c2: float) -> None:
        self.evaluate, self.d, self.c1, self.c2 = evaluate, d, c1, c2
        self.start = _Point(0, f, g, gtd)
        self.evals = 0

    def at(self, t) -> _Point:
        self.evals += 1
        f, g = self.evaluate(t)
        return _Point(t, f, g, _num(g.dot(self.d)))

    def armijo_fails(self, p: _Point) -> bool:
        """Not enough decrease: ``f(t) > f(0) + c1 t f'(0)``."""
        return p.f > self.start.f + self.c1 * p.t * self.start.gtd

    def curvature_holds(self, p: _Point) -> bool:
        """``|f'(t)| <= -c2 f'(0)``."""
        return abs(p.gtd) <= -self.c2 * self.start.gtd


def _strong_wolfe(evaluate: Callable, t, d, f: float, g, gtd, c1: float = 1e-4, c2: float = 0.9,
                  tolerance_change: float = 1e-9, max_ls: int = 25):
    """A step length along ``d`` meeting the strong Wolfe conditions (sufficient decrease and
    ``|f'(t)| <= -c2 f'(0)``), as PyTorch's ``_strong_wolfe`` (minFunc's lswolfe): grow ``t`` until an
    interval brackets such a point, then shrink the interval by cubic interpolation. ``evaluate(t)``
    returns the loss and flat gradient at ``x + t d``. Returns ``(loss, gradient, t, evaluations)``."""
    search = _WolfeSearch(evaluate, d, f, g, gtd, c1, c2)
    bracket, done = _bracket(search, t, max_ls)
    best = _zoom(search, bracket, done, _abs_max(d), tolerance_change, max_ls)
    return best.f, best.g, best.t, search.evals


def _bracket(search: _WolfeSearch, t, max_ls: int) -> tuple[list[_Point], bool]:
    """Try longer steps until one meets the conditions (``[point], True``) or two bracket such a step
    (``[a, b], False``); out of evaluations, ``[start, last]``."""
    prev, new = search.start, search.at(t)
    for ls_iter in range(max_ls):
        if search.armijo_fails(new) or (ls_iter > 1 and new.f >= prev.f):
            return [prev, new], False
        if search.curvature_holds(new):
            return [new], True
        if new.gtd >= 0:
            return [prev, new], False
        bounds = (new.t + 0.01 * (new.t - prev.t), new.t * 10)
        t = _cubic_interpolate(prev.t, prev.f, prev.gtd, new.t, new.f, new.gtd, bounds=bounds)
        prev, new = new, search.at(t)
    return [search.start, new], False


def _zoom(search: _WolfeSearch, bracket: list[_Point], done: bool, d_norm, tolerance_change: float,
          max_ls: int) -> _Point:
    """Shrink a bracketing interval ``[low, high]`` (low: the lower loss) until a point in it meets the
    conditions, the interval is shorter than ``tolerance_change`` or the evaluations run out; returns low."""
    low, high = (0, 1) if bracket[0].f <= bracket[-1].f else (1, 0)
    insufficient_progress = False
    while not done and search.evals - 1 < max_ls:  # evaluations after the first: PyTorch's ls_iter
        a, b = bracket
        if abs(b.t - a.t) * d_norm < tolerance_change:
            break
        t = _cubic_interpolate(a.t, a.f, a.gtd, b.t, b.f, b.gtd)
        t, insufficient_progress = _off_the_ends(t, a.t, b.t, insufficient_progress)
        new = search.at(t)
        if search.armijo_fails(new) or new.f >= bracket[low].f:
            bracket[high] = new
            low, high = (0, 1) if bracket[0].f <= bracket[1].f else (1, 0)
        else:
            done = search.curvature_holds(new)
            if not done and new.gtd * (bracket[high].t - bracket[low].t) >= 0:
                bracket[high] = bracket[low]  # the old high end becomes the new low end
            bracket[low] = new
    return bracket[low]


def _off_the_ends(t, a, b, insufficient_progress: bool):
    """Keep a trial step off the ends of ``[a, b]``: one within a tenth of the interval from an end is
    moved to that tenth when it is at or past an end, or was close to one the time before."""
    lo, hi = min(a, b), max(a, b)
    eps = 0.1 * (hi - lo)
    if min(hi - t, t - lo) >= eps:
        return t, False
    if insufficient_progress or t >= hi or t <= lo:
        return (hi - eps if abs(t - hi) < abs(t - lo) else lo + eps), False
    return t, True


def _cubic_interpolate(x1, f1, g1, x2, f2, g2, bounds=None):
    """The minimizer, clamped to ``bounds`` (default: between x1 and x2), of the cubic through two points
    with their values f and derivatives g; the middle of the bounds when the cubic has no minimum."""
    xmin_bound, xmax_bound = bounds if bounds is not None else ((x1, x2) if x1 <= x2 else (x2, x1))
    d1 = g1 + g2 - 3 * (f1 - f2) / (x1 - x2)
    d2_square = d1**2 - g1 * g2
    if d2_square < 0:
        return (xmin_bound + xmax_bound) / 2.0
    d2 = np.sqrt(d2_square)
    if x1 <= x2:
        min_pos = x2 - (x2 - x1) * ((g2 + d2 - d1) / (g2 - g1 + 2 * d2))
    else:
        min_pos = x1 - (x1 - x2) * ((g1 + d2 - d1) / (g1 - g2 + 2 * d2))
    return min(max(min_pos, xmin_bound), xmax_bound)


def _remember(old_dirs: list, old_stps: list, ro: list, H_diag, y, s, history_size: int):
    """Add the pair (s, y) to the history when ``y.s > 1e-10`` (curvature positive enough), dropping the
    oldest beyond ``history_size``; returns the new initial inverse-Hessian scale ``y.s / y.y``."""
    ys = _num(y.dot(s))
    if ys > 1e-10:
        if len(old_dirs) == history_size:
            del old_dirs[0], old_stps[0], ro[0]
        old_dirs.append(y)
        old_stps.append(s)
        ro.append(1.0 / ys)
        H_diag = ys / _num(y.dot(y))
    return H_diag


def _two_loop_direction(g, old_dirs: list, old_stps: list, ro: list, H_diag, al: list):
    """``-H g`` for the L-BFGS inverse-Hessian approximation ``H`` of the history (Nocedal's two-loop
    recursion, in one buffer); ``al`` receives the first loop's coefficients."""
    xp = xp_of(g)
    q = -g
    tmp = xp.empty_like(q)
    for i in range(len(old_dirs) - 1, -1, -1):
        al[i] = _num(old_stps[i].dot(q)) * ro[i]
        q -= xp.multiply(old_dirs[i], al[i], out=tmp)
    r = q
    r *= H_diag
    for i in range(len(old_dirs)):
        be_i = _num(old_dirs[i].dot(r)) * ro[i]
        r += xp.multiply(old_stps[i], al[i] - be_i, out=tmp)
    return r


def _num(x):
    """A 0-d result (a dot product, a sum) as a host numpy scalar of its dtype: arithmetic on it then rounds
    in the parameters' dtype, as on PyTorch's 0-d tensors."""
    return x.dtype.type(x.item())


def _abs_max(a):
    return _num(abs(a).max())


def _saved(value):
    if isinstance(value, list):
        return [_saved(v) for v in value]
    if type(value) in ARRAY_TYPES:
        return wrap(value.copy())
    if isinstance(value, np.generic):
        return wrap(np.asarray(value))
    return value
