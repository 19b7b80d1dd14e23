"""Reverse-mode automatic differentiation: the graph walk, grad modes, custom Functions, hooks,
gradient checking, anomaly detection and function transforms."""

from chainrule.autograd import functional  # noqa: F401
from chainrule.autograd.anomaly import AnomalyError, detect_anomaly, is_anomaly_enabled, set_detect_anomaly
from chainrule.autograd.engine import backward, grad, queue_callback
from chainrule.autograd.function import Function, FunctionCtx
from chainrule.autograd.grad_mode import enable_grad, inference_mode, is_grad_enabled, no_grad, set_grad_enabled
from chainrule.autograd.gradcheck import GradcheckError, gradcheck, gradgradcheck
from chainrule.autograd.graph import HookHandle, Node
from chainrule.autograd.variable import Variable

__all__ = [
    "backward", "grad", "queue_callback", "Variable", "Function", "FunctionCtx", "no_grad", "enable_grad", "set_grad_enabled",
    "inference_mode", "is_grad_enabled", "gradcheck", "gradgradcheck", "GradcheckError", "detect_anomaly",
    "set_detect_anomaly", "is_anomaly_enabled", "AnomalyError", "Node", "HookHandle", "functional",
]
