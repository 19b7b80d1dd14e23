"""The thresholds of the gradient-flow health checks, in one place."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace

__all__ = ["HealthConfig"]


@dataclass(frozen=True)
class HealthConfig:
    """What the monitor counts as saturated, and what the health report flags.

    Pass one to :func:`~chainrule.diagnostics.watch` (``config=``) or to ``monitor.report(config)``;
    ``HealthConfig().replace(dead_fraction=0.2)`` changes one threshold. Every check reads the median
    over the last ``window`` recorded steps, so one noisy batch does not raise an issue.

    Activations (measured on every recorded step):
        tanh_saturation: ``|y| > tanh_saturation`` counts a Tanh/Hardtanh/Softsign output as saturated
            (its derivative ``1 - y**2`` is then below 0.02). Hardtanh counts values at its bounds.
        sigmoid_saturation: a Sigmoid output below this, or above ``1 - sigmoid_saturation``, is
            saturated (its derivative ``y (1 - y)`` is then below 0.01).

    Report thresholds:
        window: how many of the last recorded steps each check summarises (their median).
        vanishing_ratio: vanishing gradients when the gradient norm of the first third of the weight
            layers (geometric mean, in forward order) is below this fraction of the last third's.
        grad_floor: vanishing gradients also when a weight layer's gradient norm is below this.
        exploding_ratio: exploding gradients when the first third's norm exceeds the last third's by
            more than this factor (gradients grow on their way back to the input).
        growth_ratio: exploding gradients when the total gradient norm of the last ``window`` steps
            exceeds that of the first ``window`` recorded steps by more than this factor.
        dead_fraction: dead units when more than this fraction of an activation's units output exactly
            zero for every sample of the batch (ReLU units that no longer learn).
        saturation_fraction: saturated activations when more than this fraction of the outputs are
            saturated.
        update_ratio_low / update_ratio_high: a parameter's update-to-weight ratio
            ``||w_after - w_before|| / ||w_before||`` below / above these is flagged (healthy training
            is typically around 1e-3).
        update_ratio_min_ndim: only parameters with at least this many dimensions (weight matrices,
            convolution kernels, embeddings) get the update-ratio check; biases and norm scales start
            at 0 or 1 and move differently.
    """

    tanh_saturation: float = 0.99
    sigmoid_saturation: float = 0.01
    window: int = 10
    vanishing_ratio: float = 1e-3
    grad_floor: float = 1e-8
    exploding_ratio: float = 1e3
    growth_ratio: float = 1e3
    dead_fraction: float = 0.5
    saturation_fraction: float = 0.3
    update_ratio_low: float = 1e-5
    update_ratio_high: float = 1e-1
    update_ratio_min_ndim: int = 2

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not value > 0:
                raise ValueError(f"HealthConfig: {f.name} must be a positive number, got {value!r}")
        for name in ("tanh_saturation", "dead_fraction", "saturation_fraction"):
            if getattr(self, name) >= 1:
                raise ValueError(f"HealthConfig: {name} must be below 1, got {getattr(self, name)!r}")
        if self.sigmoid_saturation >= 0.5:
            raise ValueError(f"HealthConfig: sigmoid_saturation must be below 0.5, got {self.sigmoid_saturation!r}")
        if self.update_ratio_low >= self.update_ratio_high:
            raise ValueError(
                f"HealthConfig: update_ratio_low ({self.update_ratio_low}) must be below update_ratio_high "
                f"({self.update_ratio_high})"
            )

    def replace(self, **changes) -> HealthConfig:
        """A copy with some thresholds changed."""
        unknown = sorted(set(changes) - {f.name for f in fields(self)})
        if unknown:
            raise TypeError(f"HealthConfig.replace: unknown thresholds {unknown}; known: {[f.name for f in fields(self)]}")
        return replace(self, **changes)

    def to_dict(self) -> dict:
        return asdict(self)
