"""Whether operations record the graph: ``no_grad``, ``enable_grad``, ``set_grad_enabled``,
``inference_mode``. Each works as a context manager and as a decorator."""

from __future__ import annotations

import functools

__all__ = ["is_grad_enabled", "no_grad", "enable_grad", "set_grad_enabled", "inference_mode"]

# One mutable cell read on every operation: a list lookup is the cheapest shared flag in Python.
GRAD_ENABLED = [True]


def is_grad_enabled() -> bool:
    return GRAD_ENABLED[0]


class _GradMode:
    """Base: sets the flag on enter and restores the previous value on exit."""

    _mode = True

    def __enter__(self):
        self._prev = GRAD_ENABLED[0]
        GRAD_ENABLED[0] = self._mode
        return self

    def __exit__(self, *exc):
        GRAD_ENABLED[0] = self._prev
        return False

    def __call__(self, fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with self._fresh():
                return fn(*args, **kwargs)

        return wrapper

    def _fresh(self):
        return self.__class__()


class no_grad(_GradMode):
    """Operations inside record nothing: results do not require grad."""

    _mode = False


class enable_grad(_GradMode):
    """Turn recording back on inside a ``no_grad`` block."""

    _mode = True


class inference_mode(_GradMode):
    """Like ``no_grad`` (chainrule has no separate inference tensors); ``inference_mode(False)``
    leaves the mode unchanged."""

    def __init__(self, mode: bool = True):
        self._mode = not mode if mode else GRAD_ENABLED[0]
        self._arg = mode

    def __enter__(self):
        if not self._arg:
            self._mode = GRAD_ENABLED[0]
        return super().__enter__()

    def _fresh(self):
        return inference_mode(self._arg)


class set_grad_enabled(_GradMode):
    """``set_grad_enabled(False)`` works as a function call (takes effect at once) and as a
    context manager (restores on exit), like PyTorch's."""

    def __init__(self, mode: bool):
        self._prev = GRAD_ENABLED[0]
        self._mode = bool(mode)
        GRAD_ENABLED[0] = self._mode

    def __enter__(self):
        return self

    def __call__(self, fn):
        GRAD_ENABLED[0] = self._prev  # used as a decorator: only calls of fn change the mode
        return super().__call__(fn)

    def _fresh(self):
        return set_grad_enabled(self._mode)
