"""chainrule: reverse-mode automatic differentiation and deep learning on numpy.

    import chainrule as cr
    x = cr.tensor([1.0, 2.0], requires_grad=True)
    (x * x).sum().backward()
    x.grad  # tensor([2., 4.])
"""

from chainrule._version import __version__
from chainrule.dtypes import (DType, bool_, complex64, complex128, float16, float32, float64, get_default_dtype, int8,
                              int16, int32, int64, set_default_dtype, uint8)
from chainrule.tensor import Tensor
from chainrule.random import Generator, get_rng_state, initial_seed, manual_seed, seed, set_rng_state
from chainrule.creation import *  # noqa: F401,F403
from chainrule import autograd
from chainrule.autograd import enable_grad, inference_mode, is_grad_enabled, no_grad, set_grad_enabled
from chainrule.ops import *  # noqa: F401,F403
from chainrule.backend import Device, cpu, get_default_device, set_default_device
from chainrule import func
from chainrule.threads import get_num_threads, set_num_threads

bool = bool_  # noqa: A001  (cr.bool, as torch.bool)
half, double, long, int = float16, float64, int64, int32  # noqa: A001
cfloat, cdouble = complex64, complex128
float = float32  # noqa: A001


def device(type, index=None) -> Device:
    """``torch.device``: ``device("cuda")`` names the type (printed ``cuda``), ``device("cuda:0")`` or
    ``device("cuda", 0)`` the indexed device (printed ``cuda:0``, as a cuda tensor's ``.device`` is)."""
    from chainrule.backend import Device, get_device

    if isinstance(type, Device):
        return type
    if index is not None:
        if ":" in str(type):
            raise RuntimeError(f"device: type {type!r} already has an index; don't pass index={index} as well")
        type = f"{type}:{index}"
    home = get_device(type)  # refuses any index but 0, the one device of each type
    return home.named(0 if ":" in str(type) else None)


# The layers above the core load on first use (``cr.nn.Linear``, ``cr.optim.AdamW``), as torch.nn
# and torch.optim are reachable from ``import torch``, without slowing ``import chainrule``.
_SUBPACKAGES = ("nn", "optim", "data", "train", "io", "diagnostics", "models", "viz", "recipes", "utils", "cuda", "special",
                "backends", "distributions", "linalg", "fft", "compiler", "onnx", "amp")
globals().pop("linalg", None)  # chainrule.ops' star import left chainrule.ops.linalg here; cr.linalg is torch.linalg's
# torch.* functions that live in those layers: name -> module defining it.
_LAZY_FUNCTIONS = {"save": "chainrule.io.serialization", "load": "chainrule.io.serialization",
                   "compile": "chainrule.compiler", "CompileError": "chainrule.compiler",
                   "set_float32_matmul_precision": "chainrule.backends",
                   "get_float32_matmul_precision": "chainrule.backends",
                   "autocast": "chainrule.amp", "is_autocast_enabled": "chainrule.amp",
                   "get_autocast_dtype": "chainrule.amp", "is_autocast_available": "chainrule.amp"}


def __getattr__(name: str):
    if name in _SUBPACKAGES:
        import importlib

        return importlib.import_module(f"chainrule.{name}")
    if name in _LAZY_FUNCTIONS:
        import importlib

        return getattr(importlib.import_module(_LAZY_FUNCTIONS[name]), name)
    if not name.startswith("_") and name != "torch_level":
        import importlib

        # torch.* spellings of functions defined elsewhere (loads nn.functional on the first such name)
        torch_level = importlib.import_module("chainrule.torch_level")
        if name in torch_level.__all__:
            return getattr(torch_level, name)
    raise AttributeError(f"module 'chainrule' has no attribute {name!r}")
