"""The reductions the monitor computes, on backend arrays (numpy or cupy), outside the graph.

Each returns Python floats, so the records are plain data (JSON-ready) and keep no array alive.
"""

from __future__ import annotations

import math

from chainrule.backend import np, to_host, xp_of

__all__ = ["squared_norm", "diff_squared_norm", "activation_stats", "unit_axis", "sample_values"]


def squared_norm(array) -> float:
    """``sum(array ** 2)`` as a float (inf or nan when the array holds them)."""
    flat = array.reshape(-1)
    if flat.dtype.kind != "f":
        flat = flat.astype(np.float64)
    return float(xp_of(flat).vdot(flat, flat).real)


def diff_squared_norm(a, b, scratch) -> float:
    """``sum((a - b) ** 2)`` using ``scratch`` (an array like ``a``) for the difference."""
    xp = xp_of(a)
    xp.subtract(a, b, out=scratch)
    return squared_norm(scratch)


def unit_axis(ndim: int) -> int | None:
    """Which axis holds the units (features) of an activation: channels (axis 1) for 4-d NCHW
    convolution maps, the last axis otherwise ((N, F) or (B, T, F)); None for 0-d and 1-d arrays."""
    if ndim < 2:
        return None
    return 1 if ndim == 4 else ndim - 1


def activation_stats(array, saturation: str | None, tanh_level: float, sigmoid_level: float,
                     bounds: tuple[float, float] | None = None) -> tuple[dict, object]:
    """Summary of one activation output: mean, std, fraction of exact zeros, fraction of units dead for
    the whole batch (zero for every sample and position), and fraction saturated (``None`` for
    activations that do not saturate). Also returns the per-unit "was active" mask (or None)."""
    xp = xp_of(array)
    size = array.size
    if size == 0:
        return {"mean": math.nan, "std": math.nan, "zero_fraction": math.nan, "dead_fraction": math.nan,
                "saturated_fraction": None, "numel": 0}, None
    x = array if array.dtype.kind == "f" else array.astype(np.float32)
    mean = x.mean()
    centered = (x - mean).reshape(-1)  # two-pass variance: accurate when the mean dwarfs the spread
    stats = {
        "mean": float(mean),
        "std": math.sqrt(squared_norm(centered) / size),
        "zero_fraction": 1.0 - float(xp.count_nonzero(x)) / size,
        "dead_fraction": math.nan,
        "saturated_fraction": _saturated_fraction(x, saturation, tanh_level, sigmoid_level, bounds),
        "numel": int(size),
    }
    axis = unit_axis(x.ndim)
    active = None
    if axis is not None:
        other = tuple(i for i in range(x.ndim) if i != axis)
        active = xp.any(x != 0, axis=other)
        stats["dead_fraction"] = 1.0 - float(xp.count_nonzero(active)) / active.size
    return stats, active


def _saturated_fraction(x, saturation: str | None, tanh_level: float, sigmoid_level: float,
                        bounds: tuple[float, float] | None) -> float | None:
    xp = xp_of(x)
    size = x.size
    if saturation == "tanh":
        return float(xp.count_nonzero(xp.abs(x) > tanh_level)) / size
    if saturation == "sigmoid":
        return float(xp.count_nonzero((x < sigmoid_level) | (x > 1.0 - sigmoid_level))) / size
    if saturation == "bounds" and bounds is not None:
        low, high = bounds
        return float(xp.count_nonzero((x <= low) | (x >= high))) / size
    return None


def sample_values(array, limit: int):
    """At most ``limit`` values of ``array`` as a float32 host (numpy) array, evenly strided, for
    histograms."""
    flat = array.reshape(-1)
    stride = max(1, flat.size // max(limit, 1))
    picked = to_host(flat[::stride][:limit])
    return np.asarray(picked, dtype=np.float32).copy()
