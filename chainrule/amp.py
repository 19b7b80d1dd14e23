"""Mixed precision, as ``torch.amp``: :class:`autocast` runs chosen ops in float16, and :class:`GradScaler`
scales the loss so float16 gradients do not underflow, skipping the steps whose gradients overflowed.

    scaler = cr.amp.GradScaler("cuda")
    for x, y in loader:
        with cr.autocast("cuda"):
            loss = F.cross_entropy(model(x), y)      # linear/matmul/conv in float16, the loss in float32
        scaler.scale(loss).backward()
        scaler.unscale_(opt)                          # optional: true gradients, e.g. to clip them
        cr.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        scaler.step(opt)                              # skipped when a gradient is inf or NaN
        scaler.update()
        opt.zero_grad()

**Policies.** :data:`POLICIES` is the one table: op name -> its policy on ``cuda`` and on ``cpu`` tensors,
PyTorch's lists (the "autocast op reference" of torch.amp's documentation, and the few ops its source lists
add: einsum, vecdot, scaled_dot_product_attention, huber_loss, logsumexp, the linalg norms). ``LOWER`` casts
the floating inputs to the autocast dtype, ``FLOAT32`` to float32, ``PROMOTE`` to the widest floating type
among them, ``BANNED`` refuses the op (binary_cross_entropy on CUDA, as PyTorch). An op with no policy on a
device type runs in its inputs' types. Left out: the linear algebra, FFT, quantile, stft, ctc_loss and 3-d
pooling ops that PyTorch's CPU list runs in float32 (only float16 inputs would change, and those are rare
there). Only float16 and float32 inputs are cast (float64 and integer inputs never are), only for out-of-place
calls (not with ``out=``, nor with an explicit ``dtype=``), and only when the tensors are on a device type
whose autocast is on: ``autocast("cuda")`` leaves CPU tensors alone. The ops a policied op calls inside run
without autocast (PyTorch's kernels are not re-dispatched through it either). The cast is the differentiable
``Tensor.to``, so each input's gradient comes back in its own dtype. Within a region, the float16 copy of a
float32 leaf that requires grad (a parameter) is made once and reused (``cache_enabled``).

**dtypes.** numpy and CuPy have no bfloat16, so neither has chainrule: ``dtype=bfloat16`` is refused with a
TypeError. PyTorch's CPU default (bfloat16) is therefore replaced by float16: ``autocast("cpu")`` runs in
float16, on CPU lists that are PyTorch's CPU lists (fewer ops in float32 than on CUDA). Other dtypes disable
the region with a warning, as PyTorch does. numpy has no float16 GEMM (its float16 products are plain loops,
far slower than float32's BLAS), so CPU autocast is for running PyTorch's mixed-precision programs and
matching their numbers, not for speed; on the GPU, CuPy's float16 products run on cuBLAS.

**Where it hooks in (the seam).** Autocast must reach every public spelling of a listed op (``cr.matmul``,
``x.matmul``, ``x @ w``, ``F.linear``, ``cr.linalg.multi_dot``) without a branch in op bodies and without
costing the eager path anything outside a region. So while an enabled region is open in some thread, the
public bindings of the listed names (in the ``chainrule``, ``chainrule.nn.functional``, ``chainrule.linalg``
and torch-level namespaces, and ``Tensor``'s methods and operators) are thin entries
(:func:`_autocast_entry`) that apply the policy; the first region to open puts them in place and the last
to close puts the ops' own functions back (about 200 attribute writes each way). Outside regions the eager
path is exactly what it was (an entry left in place to test a flag cost each tiny op a call frame:
bench/ANALYSIS.md, "autocast's seam"). An entry kept beyond its region (``f = cr.exp`` taken inside one)
tests ``_ACTIVE`` and calls the op. Internal calls between op modules keep the ops' own functions, so
composites that are not on a list (gelu built from tanh, for instance) keep their inputs' types, as
PyTorch's kernels do.

**GradScaler** keeps its scale as a Python float rounded to float32 (the loss is multiplied by it; no device
tensor to read back), unscales gradients in place on their device, and checks them for inf/NaN there too; the one host
read per step is the combined found-inf flag in :meth:`GradScaler.step`, which must decide whether to step.
"""

from __future__ import annotations

import functools
import threading
import types
import warnings
from collections.abc import Callable

from chainrule import dtypes as _dt
from chainrule.tensor import Tensor

__all__ = ["autocast", "GradScaler", "is_autocast_enabled", "get_autocast_dtype", "custom_fwd", "custom_bwd", "POLICIES",
           "LOWER", "FLOAT32", "PROMOTE", "BANNED", "is_autocast_available"]

LOWER, FLOAT32, PROMOTE, BANNED = "lower", "float32", "promote", "banned"

_MATMULS = ("matmul", "__matmul__", "mm", "bmm", "addmm", "baddbmm", "addbmm", "chain_matmul", "multi_dot", "einsum",
            "vecdot", "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d", "conv_transpose3d",
            "linear", "prelu", "scaled_dot_product_attention")
_LOSSES = ("cross_entropy", "nll_loss", "mse_loss", "l1_loss", "smooth_l1_loss", "huber_loss", "kl_div",
           "binary_cross_entropy_with_logits", "poisson_nll_loss", "soft_margin_loss", "margin_ranking_loss",
           "hinge_embedding_loss", "cosine_embedding_loss", "triplet_margin_loss", "multi_margin_loss",
           "multilabel_margin_loss")
_CUDA_FLOAT32 = ("__pow__", "__rpow__", "__rtruediv__", "pow", "acos", "asin", "cosh", "sinh", "tan", "exp", "expm1",
                 "log", "log10", "log1p", "log2", "erfinv", "reciprocal", "rsqrt", "cumsum", "cumprod", "sum", "norm",
                 "vector_norm", "matrix_norm", "logsumexp", "dist", "renorm", "pdist", "softmax", "log_softmax",
                 "softmin", "softplus", "layer_norm", "group_norm", "normalize", "cosine_similarity")
_CUDA_PROMOTE = ("addcmul", "addcdiv", "atan2", "cross", "dot", "tensordot", "bilinear", "index_put", "scatter_add")

# op name -> (policy on cuda tensors, policy on cpu tensors); None: the op runs in its inputs' types there.
POLICIES: dict[str, tuple[str | None, str | None]] = {
    **{name: (LOWER, LOWER) for name in _MATMULS},
    **{name: (LOWER, None) for name in ("mv", "addmv", "addr")},
    **{name: (FLOAT32, FLOAT32) for name in _LOSSES},
    **{name: (FLOAT32, None) for name in _CUDA_FLOAT32},
    "prod": (FLOAT32, FLOAT32), "cdist": (FLOAT32, FLOAT32),
    "binary_cross_entropy": (BANNED, FLOAT32),
    **{name: (PROMOTE, None) for name in _CUDA_PROMOTE},
    "grid_sample": (PROMOTE, FLOAT32),
    **{name: (PROMOTE, PROMOTE) for name in ("cat", "stack", "index_copy")},
    # the one primitive behind nn.RNN/LSTM/GRU, their cells and torch.lstm_cell & co. (chainrule.nn.modules.rnn):
    # float16 on CUDA, as PyTorch's cells and fused layers; on the CPU PyTorch's cells keep float32
    "recurrent_layer": (LOWER, None),
}

_DEFAULT_DTYPE = {"cuda": _dt.float16, "cpu": _dt.float16}  # cpu: PyTorch's bfloat16, which chainrule lacks

# The number of enabled autocast regions open in all threads (the op entries are in place while it is > 0).
_ACTIVE = [0]
_ACTIVE_LOCK = threading.Lock()


class _ThreadState(threading.local):
    """Autocast is per thread, as PyTorch's: the autocast dtype of each device type whose autocast is on,
    whether casts are cached, the cache, and how deep the regions are nested."""

    def __init__(self):
        self.dtypes: dict[str, _dt.DType] = {}
        self.cache_enabled = True
        self.cache: dict[int, tuple[Tensor, Tensor]] = {}
        self.nesting = 0


_STATE = _ThreadState()


# ----- the seam: the listed ops' public bindings -------------------------------------------------------------

_BINDINGS: list[tuple] = []  # (namespace, name, the op's own function, its entry), found on first use


def _namespaces() -> tuple:
    import chainrule
    import chainrule.linalg
    import chainrule.nn.functional
    import chainrule.nn.modules.rnn
    import chainrule.torch_level

    return (chainrule, chainrule.nn.functional, chainrule.linalg, chainrule.torch_level, chainrule.nn.modules.rnn,
            Tensor)


def _bindings() -> list[tuple]:
    if not _BINDINGS:
        entries: dict[int, Callable] = {}  # one entry per function object, so names that were one object stay one
        for namespace in _namespaces():
            for name, policies in POLICIES.items():
                fn = vars(namespace).get(name)
                if callable(fn):
                    if id(fn) not in entries:
                        entries[id(fn)] = _autocast_entry(fn, name, policies)
                    _BINDINGS.append((namespace, name, fn, entries[id(fn)]))
    return _BINDINGS


def _route_through_entries(on: bool) -> None:
    """Put the entries in place of the ops' own functions (``on``) or back; a binding someone else replaced
    meanwhile is left as they made it."""
    for namespace, name, fn, entry in _bindings():
        now, new = (fn, entry) if on else (entry, fn)
        if vars(namespace).get(name) is now:
            setattr(namespace, name, new)


def _autocast_entry(fn: Callable, name: str, policies: tuple) -> Callable:
    """``fn`` running under its autocast policy inside a region, and as itself outside one."""

    @functools.wraps(fn)
    def entry(*args, **kwargs):
        if _ACTIVE[0]:
            return _autocast_call(fn, name, policies, args, kwargs)
        return fn(*args, **kwargs)

    entry.__autocast_wrapped__ = fn
    return entry


def _autocast_call(fn: Callable, name: str, policies: tuple, args: tuple, kwargs: dict):
    state = _STATE
    if not state.dtypes or kwargs.get("out") is not None or kwargs.get("dtype") is not None:
        return fn(*args, **kwargs)
    device_type = _device_type_of(args) or _device_type_of(tuple(kwargs.values()))
    autocast_dtype = state.dtypes.get(device_type)
    policy = policies[0] if device_type == "cuda" else policies[1]
    if autocast_dtype is None or policy is None:
        return fn(*args, **kwargs)
    if policy == BANNED:
        raise RuntimeError(
            f"{name}: unsafe to autocast (a float16 probability near 0 or 1 loses the precision its log needs). "
            "Usually a sigmoid precedes it: use binary_cross_entropy_with_logits (nn.BCEWithLogitsLoss) on the "
            "logits instead, which autocast runs in float32; or call it outside the autocast region on .float() "
            "inputs")
    if policy == LOWER:
        target = autocast_dtype
    elif policy == FLOAT32:
        target = _dt.float32
    else:  # PROMOTE: the widest eligible input's type, at least the autocast dtype
        target = _dt.float32 if _dt.float32 in _eligible_dtypes((*args, *kwargs.values())) else autocast_dtype
    cast = functools.partial(_cast, target=target, cache=state.cache if policy == LOWER and state.cache_enabled
                             else None)
    args = tuple(_cast_tree(a, cast) for a in args)
    kwargs = {k: _cast_tree(v, cast) for k, v in kwargs.items()}
    saved, state.dtypes = state.dtypes, {}  # the ops it calls inside are not autocast again
    try:
        return fn(*args, **kwargs)
    finally:
        state.dtypes = saved


def _device_type_of(values: tuple) -> str | None:
    """The device type of the first tensor among ``values`` (looking one level into lists and tuples)."""
    for value in values:
        if isinstance(value, Tensor):
            return value.device.type
        if isinstance(value, (list, tuple)):
            for item in value:
                if isinstance(item, Tensor):
                    return item.device.type
    return None


def _eligible(value) -> bool:
    return isinstance(value, Tensor) and value.dtype in (_dt.float16, _dt.float32)


def _eligible_dtypes(values: tuple) -> set:
    """The dtypes of the tensors autocast may cast among ``values`` (looking one level into lists and tuples)."""
    found = set()
    for value in values:
        for item in value if isinstance(value, (list, tuple)) else (value,):
            if _eligible(item):
                found.add(item.dtype)
    return found


def _cast_tree(value, cast: Callable):
    if _eligible(value):
        return cast(value)
    if isinstance(value, (list, tuple)) and any(_eligible(item) for item in value):
        return type(value)(cast(item) if _eligible(item) else item for item in value)
    return value


def _cast(t: Tensor, target: _dt.DType, cache: dict | None) -> Tensor:
    if t.dtype is target:
        return t
    if cache is None or not (t.dtype is _dt.float32 and t.requires_grad and t.is_leaf):
        return t.to(target)
    hit = cache.get(id(t))
    if hit is None or hit[0] is not t:
        hit = cache[id(t)] = (t, t.to(target))  # holding t keeps its id from being reused while cached
    return hit[1]


# ----- the region ------------------------------------------------------------------------------------------

def _device_type(device_type, op: str = "autocast") -> str:
    if not isinstance(device_type, str):
        raise TypeError(f"{op}: expected device_type of type str, got {type(device_type).__name__} "
                        f"({device_type!r}); pass 'cuda' or 'cpu'")
    kind = device_type.split(":")[0]
    if kind not in ("cuda", "cpu"):
        raise RuntimeError(f"{op}: unsupported device_type {device_type!r}; chainrule has 'cuda' and 'cpu'")
    return kind


def _refuse_bfloat16(dtype, op: str) -> None:
    name = dtype if isinstance(dtype, str) else getattr(dtype, "name", None) or str(dtype)
    if "bfloat16" in str(name):
        raise TypeError(f"{op}: dtype bfloat16 is not available: chainrule's arrays are numpy's (and CuPy's), "
                        "which have no bfloat16 type; use dtype=chainrule.float16 (with a GradScaler)")


def _autocast_dtype(device_type: str, dtype) -> tuple[_dt.DType | None, bool]:
    """The region's dtype, and whether the region may be enabled with it (PyTorch warns and disables for
    dtypes other than the lower-precision ones)."""
    if dtype is None:
        return _DEFAULT_DTYPE[device_type], True
    _refuse_bfloat16(dtype, "autocast")
    dtype = _dt.to_dtype(dtype)
    if dtype is not _dt.float16:
        warnings.warn(f"autocast: chainrule's {device_type} autocast supports only chainrule.float16 (bfloat16 "
                      f"does not exist in numpy), got {dtype}; autocast is disabled in this region", stacklevel=4)
        return dtype, False
    return dtype, True


def is_autocast_available(device_type: str) -> bool:
    return isinstance(device_type, str) and device_type.split(":")[0] in ("cuda", "cpu")


class autocast:  # noqa: N801  (PyTorch's name)
    """``torch.autocast(device_type, dtype=None, enabled=True, cache_enabled=True)``: a context manager and a
    decorator inside which the listed ops (:data:`POLICIES`) on ``device_type``'s tensors run in mixed
    precision. Regions nest; ``enabled=False`` inside turns autocast off for its body. ``dtype`` defaults to
    float16 on both device types (see the module's docstring for CPU)."""

    def __init__(self, device_type: str, dtype=None, enabled: bool = True, cache_enabled: bool | None = None):
        self.device = _device_type(device_type)
        self.fast_dtype, dtype_ok = _autocast_dtype(self.device, dtype)
        self._enabled = bool(enabled) and dtype_ok and self._device_present()
        self._cache_enabled = True if cache_enabled is None else bool(cache_enabled)
        self._saved = None

    def _device_present(self) -> bool:
        if self.device == "cpu":
            return True
        from chainrule import cuda

        if not cuda.is_available():
            warnings.warn("autocast: device_type 'cuda' was given but no CUDA device is available; autocast is "
                          "disabled in this region", stacklevel=4)
            return False
        return True

    def __enter__(self):
        state = _STATE
        self._saved = (dict(state.dtypes), state.cache_enabled)
        if self._enabled:
            state.dtypes[self.device] = self.fast_dtype
        else:
            state.dtypes.pop(self.device, None)
        state.cache_enabled = self._cache_enabled
        state.nesting += 1
        if self._enabled:
            with _ACTIVE_LOCK:
                _ACTIVE[0] += 1
                if _ACTIVE[0] == 1:
                    _route_through_entries(True)
        return self

    def __exit__(self, *exc) -> bool:
        state = _STATE
        state.dtypes, state.cache_enabled = self._saved
        state.nesting -= 1
        if state.nesting == 0:
            state.cache.clear()  # the float16 copies of the parameters belong to this forward pass
        if self._enabled:
            with _ACTIVE_LOCK:
                _ACTIVE[0] -= 1
                if _ACTIVE[0] == 0:
                    _route_through_entries(False)
        return False

    def __call__(self, fn: Callable) -> Callable:
        @functools.wraps(fn)
        def in_region(*args, **kwargs):
            dtype = self.fast_dtype if self._enabled else None  # a refused dtype was warned about once, above
            with autocast(self.device, dtype, self._enabled, self._cache_enabled):
                return fn(*args, **kwargs)

        return in_region


def is_autocast_enabled(device_type: str = "cuda") -> bool:
    """Whether autocast is on for ``device_type`` in this thread (PyTorch's default device type: cuda)."""
    return _device_type(device_type, "is_autocast_enabled") in _STATE.dtypes


def autocast_key() -> tuple:
    """This thread's autocast state as a value, for cr.compile's guards: a program captured inside a region has
    its casts baked in, so it must not be replayed outside one (or inside another)."""
    return tuple(sorted((kind, dtype.name) for kind, dtype in _STATE.dtypes.items())) if _ACTIVE[0] else ()


def get_autocast_dtype(device_type: str) -> _dt.DType:
    """The dtype autocast on ``device_type`` uses in this thread (its default outside a region)."""
    kind = _device_type(device_type, "get_autocast_dtype")
    return _STATE.dtypes.get(kind, _DEFAULT_DTYPE[kind])


# ----- custom autograd Functions ----------------------------------------------------------------------------

def custom_fwd(fwd: Callable | None = None, *, device_type: str, cast_inputs=None) -> Callable:
    """``torch.amp.custom_fwd``: decorates a custom ``Function``'s ``forward``. Without ``cast_inputs`` the
    forward runs in the caller's autocast state, and :func:`custom_bwd` gives the backward the same state; with
    ``cast_inputs`` (a floating dtype), inside an autocast region of ``device_type`` the floating inputs on that
    device type (float64 aside) are cast to it and the forward and backward run with autocast off."""
    if fwd is None:
        return functools.partial(custom_fwd, device_type=device_type, cast_inputs=cast_inputs)
    kind = _device_type(device_type, "custom_fwd")
    target = None if cast_inputs is None else _dt.to_dtype(cast_inputs)

    @functools.wraps(fwd)
    def forward(ctx, *args, **kwargs):
        ctx._fwd_used_autocast = kind in _STATE.dtypes
        ctx._dtype = get_autocast_dtype(kind)
        if target is None or not ctx._fwd_used_autocast:
            return fwd(ctx, *args, **kwargs)
        ctx._fwd_used_autocast = False

        def cast(t: Tensor) -> Tensor:
            return t.to(target) if t.device.type == kind else t

        with autocast(kind, enabled=False):
            return fwd(ctx, *(_cast_tree(a, cast) for a in args), **{k: _cast_tree(v, cast) for k, v in kwargs.items()})

    return forward


def custom_bwd(bwd: Callable | None = None, *, device_type: str) -> Callable:
    """``torch.amp.custom_bwd``: runs a custom ``Function``'s ``backward`` in the autocast state its forward
    (decorated with :func:`custom_fwd`) ran in."""
    if bwd is None:
        return functools.partial(custom_bwd, device_type=device_type)
    kind = _device_type(device_type, "custom_bwd")

    @functools.wraps(bwd)
    def backward(ctx, *grad_outputs):
        with autocast(kind, dtype=ctx._dtype, enabled=ctx._fwd_used_autocast):
            return bwd(ctx, *grad_outputs)

    return backward


# ----- GradScaler -------------------------------------------------------------------------------------------

_READY, _UNSCALED, _STEPPED = "ready", "unscaled", "stepped"


def _float32(value) -> float:
    """``value`` rounded to float32, the precision of PyTorch's scale tensor, so scales follow PyTorch's exactly."""
    return float(_dt.float32.np.type(value))


class GradScaler:
    """``torch.amp.GradScaler``: dynamic loss scaling. :meth:`scale` multiplies the loss by the scale;
    :meth:`unscale_` divides the optimizer's gradients by it in place and records whether any is inf/NaN;
    :meth:`step` unscales (if not done) and steps unless one was; :meth:`update` multiplies the scale by
    ``backoff_factor`` after such a step, and by ``growth_factor`` after ``growth_interval`` clean steps in a
    row. With ``enabled=False`` every method passes through."""

    def __init__(self, device: str = "cuda", init_scale: float = 2.0 ** 16, growth_factor: float = 2.0,
                 backoff_factor: float = 0.5, growth_interval: int = 2000, enabled: bool = True):
        self._device = _device_type(device, "GradScaler")
        if enabled and self._device == "cuda":
            from chainrule import cuda

            if not cuda.is_available():
                warnings.warn("GradScaler: device 'cuda' was given but no CUDA device is available; the scaler is "
                              "disabled", stacklevel=2)
                enabled = False
        if growth_factor <= 1.0:
            raise ValueError(f"GradScaler: growth_factor should be > 1, got {growth_factor}")
        if not 0.0 < backoff_factor < 1.0:
            raise ValueError(f"GradScaler: backoff_factor should be in (0, 1), got {backoff_factor}")
        if not isinstance(growth_interval, int) or growth_interval <= 0:
            raise ValueError(f"GradScaler: growth_interval should be a positive int, got {growth_interval!r}")
        self._enabled = bool(enabled)
        self._scale = _float32(init_scale)
        self._growth_factor = float(growth_factor)
        self._backoff_factor = float(backoff_factor)
        self._growth_interval = growth_interval
        self._growth_tracker = 0
        self._per_optimizer: dict[int, dict] = {}

    # --- the four steps of a training step ---
    def scale(self, outputs):
        """``outputs`` (a tensor, or lists/tuples of them) multiplied by the scale."""
        if not self._enabled:
            return outputs
        if isinstance(outputs, Tensor):
            return outputs * self._scale
        if isinstance(outputs, (list, tuple)):
            return type(outputs)(self.scale(o) for o in outputs)
        raise ValueError(f"GradScaler.scale: outputs must be a Tensor or an iterable of Tensors, got "
                         f"{type(outputs).__name__}")

    def unscale_(self, optimizer) -> None:
        """Divide ``optimizer``'s gradients by the scale in place (once between two :meth:`update` calls)."""
        if not self._enabled:
            return
        state = self._optimizer_state(optimizer)
        if state["stage"] is _UNSCALED:
            raise RuntimeError("unscale_() has already been called on this optimizer since the last update().")
        if state["stage"] is _STEPPED:
            raise RuntimeError("unscale_() is being called after step().")
        state["found_inf"] = self._unscale_grads(optimizer, 1.0 / self._scale)
        state["stage"] = _UNSCALED

    def step(self, optimizer, *args, **kwargs):
        """``optimizer.step(*args, **kwargs)`` unless a gradient is inf or NaN (then None is returned)."""
        if not self._enabled:
            return optimizer.step(*args, **kwargs)
        if "closure" in kwargs:
            raise RuntimeError("Closure use is not currently supported if GradScaler is enabled.")
        state = self._optimizer_state(optimizer)
        if state["stage"] is _STEPPED:
            raise RuntimeError("step() has already been called since the last update().")
        if state["stage"] is _READY:
            self.unscale_(optimizer)
        state["found_inf"] = bool(state["found_inf"])  # the step's one read of the device
        state["stage"] = _STEPPED
        return None if state["found_inf"] else optimizer.step(*args, **kwargs)

    def update(self, new_scale=None) -> None:
        """Set the scale for the next step: ``new_scale`` when given, else back off after an inf/NaN or grow
        after ``growth_interval`` clean steps."""
        if not self._enabled:
            return
        if new_scale is not None:
            self._scale = self._new_scale_value(new_scale)
        else:
            flags = [s["found_inf"] for s in self._per_optimizer.values() if s["found_inf"] is not None]
            if not flags:
                raise RuntimeError("No inf checks were recorded prior to update.")
            if any(bool(flag) for flag in flags):
                self._scale = _float32(self._scale * self._backoff_factor)
                self._growth_tracker = 0
            else:
                self._growth_tracker += 1
                if self._growth_tracker == self._growth_interval:
                    grown = _float32(self._scale * self._growth_factor)
                    if grown != float("inf"):
                        self._scale = grown
                    self._growth_tracker = 0
        self._per_optimizer.clear()

    @staticmethod
    def _new_scale_value(new_scale) -> float:
        if isinstance(new_scale, Tensor):
            if new_scale.numel() != 1 or not new_scale.dtype.is_floating_point:
                raise ValueError(f"GradScaler.update: new_scale should be a float or a 1-element floating tensor, "
                                 f"got shape {tuple(new_scale.shape)}, {new_scale.dtype}")
            return _float32(new_scale.item())
        return _float32(new_scale)

    def _optimizer_state(self, optimizer) -> dict:
        return self._per_optimizer.setdefault(id(optimizer), {"stage": _READY, "found_inf": None})

    @staticmethod
    def _unscale_grads(optimizer, inv_scale: float):
        """Multiply every gradient by ``inv_scale`` in place; the flag "some gradient was not finite", as an
        array on the gradients' device (not read here: :meth:`step` reads it once)."""
        found_inf = False
        for group in optimizer.param_groups:
            for p in group["params"]:
                g = p.grad
                if g is None:
                    continue
                if g.dtype is _dt.float16:
                    raise ValueError("Attempting to unscale FP16 gradients.")
                data = g._data
                xp = g.device.xp
                not_finite = ~xp.isfinite(data).all()
                found_inf = not_finite if found_inf is False else found_inf | not_finite
                data *= data.dtype.type(inv_scale)
        return found_inf

    # --- queries and settings ---
    def get_scale(self) -> float:
        return self._scale if self._enabled else 1.0

    def get_growth_factor(self) -> float:
        return self._growth_factor

    def set_growth_factor(self, new_factor: float) -> None:
        self._growth_factor = float(new_factor)

    def get_backoff_factor(self) -> float:
        return self._backoff_factor

    def set_backoff_factor(self, new_factor: float) -> None:
        self._backoff_factor = float(new_factor)

    def get_growth_interval(self) -> int:
        return self._growth_interval

    def set_growth_interval(self, new_interval: int) -> None:
        self._growth_interval = int(new_interval)

    def is_enabled(self) -> bool:
        return self._enabled

    def state_dict(self) -> dict:
        """The scale and its schedule (empty when disabled, as PyTorch's)."""
        if not self._enabled:
            return {}
        return {"scale": self._scale, "growth_factor": self._growth_factor, "backoff_factor": self._backoff_factor,
                "growth_interval": self._growth_interval, "_growth_tracker": self._growth_tracker}

    def load_state_dict(self, state_dict: dict) -> None:
        if not self._enabled:
            return
        if len(state_dict) == 0:
            raise RuntimeError("The source state dict is empty, possibly because it was saved from a disabled "
                               "instance of GradScaler.")
        self._scale = _float32(state_dict["scale"])
        self._growth_factor = float(state_dict["growth_factor"])
        self._backoff_factor = float(state_dict["backoff_factor"])
        self._growth_interval = int(state_dict["growth_interval"])
        self._growth_tracker = int(state_dict["_growth_tracker"])


# ----- torch.cuda.amp's deprecated spellings ----------------------------------------------------------------

def _cuda_autocast(enabled: bool = True, dtype=_dt.float16, cache_enabled: bool = True) -> autocast:
    """``torch.cuda.amp.autocast(...)``, deprecated for ``autocast("cuda", ...)``."""
    warnings.warn("chainrule.cuda.amp.autocast(args...) is deprecated; use chainrule.amp.autocast('cuda', args...)",
                  FutureWarning, stacklevel=2)
    return autocast("cuda", dtype=dtype, enabled=enabled, cache_enabled=cache_enabled)


def _cuda_grad_scaler(init_scale: float = 2.0 ** 16, growth_factor: float = 2.0, backoff_factor: float = 0.5,
                      growth_interval: int = 2000, enabled: bool = True) -> GradScaler:
    """``torch.cuda.amp.GradScaler(...)``, deprecated for ``GradScaler("cuda", ...)``."""
    warnings.warn("chainrule.cuda.amp.GradScaler(args...) is deprecated; use chainrule.amp.GradScaler('cuda', "
                  "args...)", FutureWarning, stacklevel=2)
    return GradScaler("cuda", init_scale, growth_factor, backoff_factor, growth_interval, enabled)


def _cuda_custom_fwd(fwd: Callable | None = None, *, cast_inputs=None) -> Callable:
    """``torch.cuda.amp.custom_fwd``, deprecated for ``custom_fwd(device_type="cuda")``."""
    warnings.warn("chainrule.cuda.amp.custom_fwd(args...) is deprecated; use chainrule.amp.custom_fwd(args..., "
                  "device_type='cuda')", FutureWarning, stacklevel=2)
    return custom_fwd(fwd, device_type="cuda", cast_inputs=cast_inputs)


def _cuda_custom_bwd(bwd: Callable) -> Callable:
    """``torch.cuda.amp.custom_bwd``, deprecated for ``custom_bwd(device_type="cuda")``."""
    warnings.warn("chainrule.cuda.amp.custom_bwd(args...) is deprecated; use chainrule.amp.custom_bwd(args..., "
                  "device_type='cuda')", FutureWarning, stacklevel=2)
    return custom_bwd(bwd, device_type="cuda")


cuda_amp = types.ModuleType("chainrule.cuda.amp", "torch.cuda.amp's deprecated spellings of chainrule.amp's names.")
cuda_amp.autocast, cuda_amp.GradScaler = _cuda_autocast, _cuda_grad_scaler
cuda_amp.custom_fwd, cuda_amp.custom_bwd = _cuda_custom_fwd, _cuda_custom_bwd
