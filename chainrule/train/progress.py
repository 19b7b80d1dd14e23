"""Progress output for the fit loop.

``verbose=0``: nothing. ``verbose=1``: a tqdm bar per epoch on stderr (steps, steps/s, ETA, and the
running loss and metrics), or, when tqdm is not installed (it is in the ``train`` extra), a plain line
on stdout every few seconds plus one per epoch. ``verbose=2``: one line per epoch on stdout.

The bar is refreshed at most every ``refresh_seconds`` (0.1 s by default): when steps take
microseconds, formatting the postfix every step would cost more than the step itself.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable

__all__ = ["Progress", "format_logs", "tqdm_or_none"]

_HIDDEN = ("epoch", "step", "seconds", "batch")


def tqdm_or_none():
    """The ``tqdm`` class, or None when tqdm is not installed."""
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    return tqdm


def _format_value(value) -> str:
    if isinstance(value, float):
        if value != 0 and math.isfinite(value) and (abs(value) < 1e-3 or abs(value) >= 1e5):
            return f"{value:.3e}"
        return f"{value:.4f}"
    return str(value)


def format_logs(logs: dict, separator: str = " - ") -> str:
    """``"loss: 0.1234 - accuracy: 0.9800 - lr: 1.000e-04"`` (counters and timings left out)."""
    return separator.join(f"{k}: {_format_value(v)}" for k, v in logs.items() if k not in _HIDDEN)


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m{seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


class Progress:
    """Shows training progress at the given verbosity; see the module docstring."""

    def __init__(self, verbose: int, *, refresh_seconds: float = 0.1, plain_every_seconds: float = 5.0):
        if isinstance(verbose, bool):
            verbose = int(verbose)
        if verbose not in (0, 1, 2):
            raise ValueError(f"fit: verbose must be 0 (silent), 1 (progress bar) or 2 (one line per epoch), got {verbose!r}")
        self.verbose = verbose
        self.tqdm = tqdm_or_none() if verbose == 1 else None
        self.refresh_seconds = refresh_seconds if self.tqdm is not None else plain_every_seconds
        self._bar = None
        self._pending = 0
        self._done = 0
        self._total: int | None = None
        self._label = ""
        self._started = 0.0
        self._last_refresh = 0.0

    def epoch_begin(self, epoch: int, epochs: int, total_steps: int | None) -> None:
        self._label = f"Epoch {epoch + 1}/{epochs}"
        self._total = total_steps
        self._done = self._pending = 0
        self._started = self._last_refresh = time.perf_counter()
        if self.tqdm is not None:
            self._bar = self.tqdm(total=total_steps, desc=self._label, unit="step", dynamic_ncols=True,
                                  leave=True, file=sys.stderr, mininterval=self.refresh_seconds)

    def step(self, running_logs: Callable[[], dict]) -> None:
        """One step done; ``running_logs()`` (only called when the display refreshes) gives the values to show."""
        self._pending += 1
        if self.verbose != 1:
            return
        now = time.perf_counter()
        if now - self._last_refresh < self.refresh_seconds:
            return
        self._last_refresh = now
        self._flush(running_logs())

    def _flush(self, logs: dict) -> None:
        self._done += self._pending
        if self._bar is not None:
            self._bar.set_postfix_str(format_logs(logs, ", "), refresh=False)
            self._bar.update(self._pending)
        else:
            elapsed = time.perf_counter() - self._started
            rate = self._done / elapsed if elapsed > 0 else 0.0
            where = f"step {self._done}" + (f"/{self._total}" if self._total else "")
            eta = f" - ETA {_duration((self._total - self._done) / rate)}" if self._total and rate > 0 else ""
            print(f"{self._label} - {where} - {format_logs(logs)} - {rate:.1f} steps/s{eta}", flush=True)
        self._pending = 0

    def epoch_end(self, logs: dict, seconds: float) -> None:
        """The epoch's final values (training and validation)."""
        if self.verbose == 0:
            return
        if self._bar is not None:
            self._done += self._pending
            self._bar.set_postfix_str(format_logs(logs, ", "), refresh=False)
            self._bar.update(self._pending)
            self._pending = 0
            self.close()
            return
        print(f"{self._label} - {_duration(seconds)} - {self._done + self._pending} steps - {format_logs(logs)}", flush=True)

    def message(self, text: str) -> None:
        """A line of text (e.g. resuming from a checkpoint), shown unless silent."""
        if self.verbose == 0:
            return
        if self._bar is not None:
            self._bar.write(text, file=sys.stderr)
        else:
            print(text, flush=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
