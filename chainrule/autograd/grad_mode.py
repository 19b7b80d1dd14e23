"""Whether operations record the graph: ``no_grad``, ``enable_grad``, ``set_grad_enabled``,
``inference_mode``. Each works as a context manager and as a decorator (``@no_grad()`` or, as in
PyTorch, ``@no_grad`` without parentheses); decorated generator functions run every step in the mode."""

from __future__ import annotations

import functools
import inspect
import threading

__all__ = ["is_grad_enabled", "no_grad", "enable_grad", "set_grad_enabled", "inference_mode"]

# One mutable cell read on every operation: a list lookup is the cheapest shared flag in Python.
GRAD_ENABLED = [True]
# The flag is process-wide (PyTorch's is per thread). DataLoader worker threads run dataset code while the
# main thread trains: a no_grad() there would switch recording off under the training step, so in those
# threads mode changes are ignored (data code has no graph to record).
_THREAD = threading.local()


def _set(mode: bool) -> None:
    if not getattr(_THREAD, "ignore_mode_changes", False):
        GRAD_ENABLED[0] = mode


def ignore_mode_changes_in_this_thread() -> None:
    """Make no_grad()/enable_grad()/set_grad_enabled() no-ops in the calling thread (DataLoader workers)."""
    _THREAD.ignore_mode_changes = True


def is_grad_enabled() -> bool:
    return GRAD_ENABLED[0]


class _GradMode:
    """Base: sets the flag on enter and restores the previous value on exit (a stack of previous
    values, so one instance can be entered again while it is active)."""

    _mode = True

    def __enter__(self):
        if "_prevs" not in self.__dict__:
            self._prevs = []
        self._prevs.append(GRAD_ENABLED[0])
        _set(self._mode)
        return self

    def __exit__(self, *exc):
        _set(self._prevs.pop())
        return False

    def __call__(self, fn):
        if inspect.isgeneratorfunction(fn):
            return self._wrap_generator(fn)

        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with self._fresh():
                return fn(*args, **kwargs)

        return wrapper

    def _wrap_generator(self, fn):
        """Each resumption of the generator runs in the mode; the caller's code between steps does not."""

        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            gen = fn(*args, **kwargs)
            to_send = None
            while True:
                try:
                    with self._fresh():
                        item = gen.send(to_send)
                except StopIteration as stop:
                    return stop.value
                to_send = yield item

        return wrapper

    def _fresh(self):
        return self.__class__()


class _NoArgMode(_GradMode):
    """A mode that takes no argument, so ``@mode`` without parentheses decorates directly."""

    def __new__(cls, fn=None):
        self = super().__new__(cls)
        if fn is None:
            return self
        if not callable(fn):
            raise TypeError(f"{cls.__name__}() takes no arguments (got {fn!r})")
        return self(fn)


class no_grad(_NoArgMode):
    """Operations inside record nothing: results do not require grad."""

    _mode = False


class enable_grad(_NoArgMode):
    """Turn recording back on inside a ``no_grad`` block."""

    _mode = True


class inference_mode(_GradMode):
    """Like ``no_grad`` (chainrule has no separate inference tensors); ``inference_mode(False)``
    leaves the mode unchanged."""

    def __new__(cls, mode=True):
        self = super().__new__(cls)
        if callable(mode):  # @inference_mode without parentheses
            self.__init__(True)
            return self(mode)
        return self

    def __init__(self, mode: bool = True):
        if callable(mode):
            return  # already set up by __new__
        self._arg = bool(mode)

    def __enter__(self):
        # inference_mode(False) keeps whatever mode is active
        self._mode = False if self._arg else GRAD_ENABLED[0]
        return super().__enter__()

    def _fresh(self):
        return inference_mode(self._arg)


class set_grad_enabled(_GradMode):
    """``set_grad_enabled(False)`` works as a function call (takes effect at once) and as a
    context manager (restores on exit), like PyTorch's."""

    def __init__(self, mode: bool):
        self._prev = GRAD_ENABLED[0]
        self._mode = bool(mode)
        _set(self._mode)

    def __enter__(self):
        if "_prevs" not in self.__dict__:  # first entry: restore the value from before the constructor
            self._prevs = [self._prev]
        else:  # entered again: the mode may have been restored in between
            self._prevs.append(GRAD_ENABLED[0])
        _set(self._mode)
        return self

    def __call__(self, fn):
        _set(self._prev)  # used as a decorator: only calls of fn change the mode
        return super().__call__(fn)

    def _fresh(self):
        return _Scoped(self._mode)


class _Scoped(_GradMode):
    """The plain context manager that ``set_grad_enabled`` uses for each call of a decorated function."""

    def __init__(self, mode: bool):
        self._mode = mode
