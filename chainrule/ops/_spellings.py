"""numpy's argument names that PyTorch accepts for its own: ``axis=`` for ``dim=`` and ``keepdims=`` for
``keepdim=`` (``x.max(axis=0)``, ``cr.cumsum(x, axis=1)``, ``x.any(axis=0, keepdims=True)``).

Functions that name the numpy spellings themselves (``sum``, ``mean``, ``std``...) are left as they are;
the others are wrapped where they are bound as methods and exported, so calls without numpy names go
straight to the function after one dictionary check.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable

__all__ = ["with_numpy_spellings"]

_ALIASES = {"axis": "dim", "keepdims": "keepdim"}


def with_numpy_spellings(fn: Callable) -> Callable:
    """``fn`` accepting ``axis``/``keepdims`` for its ``dim``/``keepdim`` (``fn`` itself when it has neither
    parameter, or already names the numpy spellings)."""
    try:
        parameters = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return fn
    renames = {numpy: ours for numpy, ours in _ALIASES.items() if ours in parameters and numpy not in parameters}
    if not renames or any(p.kind is p.VAR_KEYWORD for p in parameters.values()):
        return fn

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        if kwargs:
            for numpy, ours in renames.items():
                if numpy in kwargs:
                    if ours in kwargs:
                        raise TypeError(f"{fn.__name__}(): got both {ours!r} and its numpy spelling {numpy!r}")
                    kwargs[ours] = kwargs.pop(numpy)
        return fn(*args, **kwargs)

    wrapper.__wrapped_for_numpy__ = fn
    return wrapper
