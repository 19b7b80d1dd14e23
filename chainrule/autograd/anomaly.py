"""Anomaly mode: find the first NaN or Inf and the line of user code that produced it.

With ``detect_anomaly()`` on, every recorded operation remembers where the user's code called it;
a NaN/Inf produced by a forward operation (when ``check_forward``) or by a backward rule raises at
once, naming the operation, that place, and summary statistics of the values that went in.
"""

from __future__ import annotations

import linecache
import os
import sys

from chainrule.autograd.graph import ANOMALY, RECORD_OBSERVERS, PlacedGrad
from chainrule.backend import xp_of

__all__ = ["detect_anomaly", "set_detect_anomaly", "is_anomaly_enabled", "is_anomaly_check_nan_enabled",
           "AnomalyError"]

_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_CHECK_FORWARD = [True]


class AnomalyError(RuntimeError):
    """A NaN or Inf appeared while anomaly detection was on."""


class detect_anomaly:
    """Context manager (and decorator): record call sites and raise on the first NaN/Inf.

    ``check_nan=False`` keeps the call sites (for error messages) without the NaN checks;
    ``check_forward=False`` checks only the backward pass, as PyTorch does.
    """

    def __init__(self, check_nan: bool = True, check_forward: bool = True):
        self.check_nan = check_nan
        self.check_forward = check_forward

    def __enter__(self):
        self._prev = (ANOMALY[0], _CHECK_NAN[0], _CHECK_FORWARD[0])
        _switch(True, self.check_nan, self.check_forward)
        return self

    def __exit__(self, *exc):
        _switch(*self._prev)
        return False

    def __call__(self, fn):
        import functools

        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with detect_anomaly(self.check_nan, self.check_forward):
                return fn(*args, **kwargs)

        return wrapper


_CHECK_NAN = [True]


def set_detect_anomaly(mode: bool, check_nan: bool = True) -> None:
    _switch(bool(mode), check_nan, _CHECK_FORWARD[0])


def _switch(mode: bool, check_nan: bool, check_forward: bool) -> None:
    """Turn anomaly mode on or off: the flag backward reads, and the observer of the forward pass."""
    ANOMALY[0], _CHECK_NAN[0], _CHECK_FORWARD[0] = mode, check_nan, check_forward
    if mode and _on_record not in RECORD_OBSERVERS:
        RECORD_OBSERVERS.append(_on_record)
    elif not mode and _on_record in RECORD_OBSERVERS:
        RECORD_OBSERVERS.remove(_on_record)


def is_anomaly_enabled() -> bool:
    return ANOMALY[0]


def is_anomaly_check_nan_enabled() -> bool:
    """Whether anomaly mode, when on, also checks backward results for NaN."""
    return _CHECK_NAN[0]


def user_callsite() -> str | None:
    """'file:line in function: source' of the innermost frame outside the chainrule package."""
    frame = sys._getframe(1)
    while frame is not None:
        filename = os.path.abspath(frame.f_code.co_filename)
        if not filename.startswith(_PACKAGE_DIR + os.sep):
            line = linecache.getline(filename, frame.f_lineno).strip()
            return f'File "{filename}", line {frame.f_lineno}, in {frame.f_code.co_name}: {line}'
        frame = frame.f_back
    return None


def _bad_count(array) -> tuple[int, int]:
    xp = xp_of(array)
    if array.dtype.kind != "f":
        return 0, 0
    return int(xp.isnan(array).sum()), int(xp.isinf(array).sum())


def summarize(array) -> str:
    """min, max and the counts of NaN and Inf of one array, for error messages."""
    xp = xp_of(array)
    nans, infs = _bad_count(array)
    finite = array[xp.isfinite(array)] if array.dtype.kind == "f" else array
    if finite.size:
        span = f"min {float(finite.min()):.4g}, max {float(finite.max()):.4g}"
    else:
        span = "no finite values"
    return f"shape {tuple(array.shape)}, {array.dtype}, {span}, {nans} NaN, {infs} Inf"


def _on_record(result, op: str, inputs) -> None:
    """Observes ``record`` while anomaly mode is on: a new node remembers the user's line that made it,
    and a NaN/Inf made in the forward pass raises."""
    node = result._node
    if node is None:
        return
    out = result._data
    node.callsite = user_callsite()
    if not (_CHECK_NAN[0] and _CHECK_FORWARD[0] and any(_bad_count(out))):
        return
    bad_inputs = [i for i, x in enumerate(inputs) if any(_bad_count(x._data))]
    if bad_inputs and all(inputs[i]._rg for i in bad_inputs):
        return  # the NaN/Inf came from a recorded op, which raised when it made it
    described = "\n".join(f"  input {i}: {summarize(x._data)}" for i, x in enumerate(inputs))
    untracked = [i for i in bad_inputs if not inputs[i]._rg]
    origin = (f"input {untracked[0]} does not require grad and already holds NaN/Inf: it was made outside the "
              "graph (before detect_anomaly, under no_grad, or from data)" if untracked else "produced NaN/Inf")
    raise AnomalyError(
        f"anomaly: operation '{node.op}' {'received NaN/Inf: ' + origin if untracked else origin} in the forward "
        f"pass (output {summarize(out)}).\n  called at {node.callsite}\n{described}"
    )


def check_backward(node, grad_out, grads) -> None:
    """Raise when the backward rule of ``node`` returned NaN/Inf."""
    if not _CHECK_NAN[0]:
        return
    if any(_bad_count(grad_out._data)):
        raise AnomalyError(
            f"anomaly: the gradient flowing into {node.name()} (of the forward operation '{node.op}') already holds "
            "NaN/Inf: it came from the gradient passed to backward() or from a hook, not from a backward rule.\n"
            f"  forward operation called at {node.callsite or '(unknown: created before detect_anomaly)'}\n"
            f"  incoming gradient: {summarize(grad_out._data)}"
        )
    for i, g in enumerate(grads):
        if isinstance(g, PlacedGrad):
            g = g.materialize()
        values = getattr(g, "_data", g)  # fast entries return arrays
        if values is not None and any(_bad_count(values)):
            raise AnomalyError(
                f"anomaly: the backward rule {node.name()} returned NaN/Inf for input {i} of the "
                f"forward operation '{node.op}'.\n"
                f"  forward operation called at {node.callsite or '(unknown: created before detect_anomaly)'}\n"
                f"  incoming gradient: {summarize(grad_out._data)}\n"
                f"  gradient for input {i}: {summarize(values)}"
            )
