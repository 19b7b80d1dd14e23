"""Why does this tensor get no gradient? :func:`explain_grad` answers from the recorded graph.

    loss = model(x).sum()
    print(explain_grad(loss, model.fc.weight))      # str() is the message
    explain_grad(loss, h).reason                    # a code from REASONS

Call it before ``loss.backward()`` (or after ``backward(retain_graph=True)``): to tell a zero gradient
from a healthy one it runs the backward pass once itself (``autograd.grad``, so no ``.grad`` changes)
and looks at the gradient that reaches every operation between the tensor and the output.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from chainrule.autograd.grad_mode import no_grad
from chainrule.autograd.graph import Node
from chainrule.autograd.provenance import Origin, origin_of
from chainrule.diagnostics._graph import (
    capture_gradients,
    consumed_tensors,
    graph_is_freed,
    nodes_leading_to,
    walk_nodes,
)
from chainrule.diagnostics.stats import squared_norm
from chainrule.tensor import Tensor

__all__ = ["explain_grad", "GradExplanation", "REASONS"]

REASONS = {
    "ok": "the tensor gets a nonzero gradient",
    "not_leaf": "a gradient reaches it, but it is not a leaf and does not retain_grad(), so .grad stays None",
    "integer_dtype": "integer and bool tensors cannot have gradients",
    "requires_grad_false": "it does not require grad (made without requires_grad=True, or computed under no_grad())",
    "output_not_tracked": "the output has no graph (computed under no_grad(), or from tensors that do not require grad)",
    "detached": "the output uses a detached copy of it (detach() or .data), which cuts the graph",
    "not_connected": "the output does not depend on it through any recorded operation",
    "non_differentiable": "the output depends on it only through operations without a gradient (comparisons, "
                          "argmax/argmin, sort indices, integer casts), which record no graph",
    "zero_gradient": "it is connected, but every path passes a zero gradient",
    "graph_freed": "the graph was freed by an earlier backward(), so the gradient cannot be evaluated",
    "backward_error": "backpropagating from the output fails (e.g. a saved tensor was modified in place)",
}

# piecewise-constant operations: recorded, with a zero derivative everywhere
_ZERO_DERIVATIVE_OPS = {"sign", "floor", "ceil", "round", "trunc", "div", "floor_divide"}
_MAX_LISTED = 5


@dataclass
class GradExplanation:
    """Why ``tensor`` gets (or does not get) a gradient from ``output``.

    ``reason`` is a key of :data:`REASONS`; ``message`` says it in words, with the fix; ``op`` names
    the operation at fault when there is one (the op consuming a detached copy, the op that zeroes the
    gradient); ``grad_norm`` is the norm of the gradient when it was computed; ``details`` holds the
    rest of the evidence."""

    reason: str
    message: str
    op: str | None = None
    grad_norm: float | None = None
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.reason == "ok"

    def __str__(self) -> str:
        return self.message


def explain_grad(output: Tensor, tensor: Tensor, name: str | None = None) -> GradExplanation:
    """Explain why ``tensor`` gets no gradient, or a zero one, from ``output`` (or confirm that it
    gets a nonzero one). ``name`` is used in the message (default: the tensor's shape and dtype)."""
    for what, value in (("output", output), ("tensor", tensor)):
        if not isinstance(value, Tensor):
            raise TypeError(f"explain_grad: {what} must be a Tensor, got {type(value).__name__}")
    label = name or f"the tensor of shape {tuple(tensor.shape)} ({tensor.dtype})"

    if not tensor.dtype.is_floating_point:
        return GradExplanation("integer_dtype", (
            f"{label} has dtype {tensor.dtype}: only floating-point tensors can have gradients (integer and bool "
            "values are not differentiable). Convert it first, e.g. x = x.float().requires_grad_(), before the "
            "computation that uses it."))
    if output._node is None and not output._rg:
        return GradExplanation("output_not_tracked", (
            "the output has no grad_fn and does not require grad, so nothing can be backpropagated from it: it was "
            "computed under no_grad()/inference_mode(), or only from tensors that do not require grad. Compute it "
            "with grad mode on from tensors with requires_grad=True."))

    nodes = walk_nodes(output._node)
    if not tensor._rg:
        return _not_requiring_grad(label, tensor, nodes)
    if not _is_connected(output, tensor, nodes):
        return _unconnected(label, tensor, nodes)
    return _connected(label, output, tensor, nodes)


# ----- the tensor does not require grad --------------------------------------------------------------

def _not_requiring_grad(label: str, tensor: Tensor, nodes: list[Node]) -> GradExplanation:
    uses = [node for node in nodes if any(t is tensor for t in consumed_tensors(node))]
    where = f" It enters the output's graph as a constant at operation '{uses[0].op}'." if uses else ""
    from chainrule.nn.parameter import Parameter

    if isinstance(tensor, Parameter):
        return GradExplanation("requires_grad_false", (
            f"{label} is a frozen parameter (requires_grad=False).{where} Unfreeze it with "
            "param.requires_grad_(True) (and give it to the optimizer) to train it."),
            op=uses[0].op if uses else None, details={"frozen_parameter": True})
    return GradExplanation("requires_grad_false", (
        f"{label} does not require grad and has no grad_fn, so autograd does not track it.{where} Either it was "
        "created under no_grad() or inference_mode() (results computed there record nothing and start a new, "
        "untracked tensor), or it was made without requires_grad=True. Create it with requires_grad=True (a leaf "
        "you want .grad on), or compute it outside no_grad() from tensors that require grad."),
        op=uses[0].op if uses else None)


# ----- not connected: detached, or never used ----------------------------------------------------------

def _is_connected(output: Tensor, tensor: Tensor, nodes: list[Node]) -> bool:
    return tensor is output or _feeds(tensor, nodes)


def _feeds(tensor: Tensor, nodes: list[Node]) -> bool:
    """Whether ``tensor`` is computed by one of ``nodes`` or is a leaf input of one."""
    if tensor._node is not None:
        return any(node is tensor._node for node in nodes)
    return any(parent is tensor for node in nodes for parent in node.parents)


def _shares_data(candidate: Tensor, tensor: Tensor) -> bool:
    if candidate._data is tensor._data or (candidate._vc is not None and candidate._vc is tensor._vc):
        return True
    if type(candidate._data) is not type(tensor._data):
        return False
    return bool(tensor.xp.may_share_memory(candidate._data, tensor._data))


def _unconnected(label: str, tensor: Tensor, nodes: list[Node]) -> GradExplanation:
    for node in nodes:
        for t in consumed_tensors(node):
            if t is not tensor and not t._rg and _shares_data(t, tensor):
                return GradExplanation("detached", (
                    f"{label} is cut from the output by detach() (or .data): operation '{node.op}' ({node.name()}) "
                    f"uses a detached copy of it (shape {tuple(t.shape)}, sharing its memory but outside the graph)"
                    f"{_callsite(node)}. Use the tensor itself there instead of tensor.detach() if its gradient "
                    "should flow."), op=node.op, details={"copy_shape": tuple(t.shape)})
    op = _op_without_gradient_between(tensor, nodes)
    if op is not None:
        return GradExplanation("non_differentiable", (
            f"{label} reaches the output only through '{op}', an operation without a gradient: comparisons (x > 0), "
            "argmax/argmin, sort indices and integer casts record no graph (as in PyTorch), so its gradient is None, "
            "not zero. To train through it, use a differentiable stand-in (a sigmoid instead of a hard threshold, "
            "softmax weights instead of argmax)."), op=op)
    constants = _constants(nodes)
    hint = ""
    if constants:
        listed = "; ".join(f"'{op}' gets a {kind} tensor {shape}" for op, kind, shape in constants[:_MAX_LISTED])
        hint = (f" The graph takes in untracked tensors: {listed}. If one of them was computed from {label}, "
                "that computation was not recorded: it ran under no_grad(), through detach(), or through an operation "
                "that has no gradient (comparisons like x > 0, argmax/argmin, integer casts, .item()/.tolist()/.numpy()).")
    return GradExplanation("not_connected", (
        f"{label} is not connected to the output: no recorded operation between them uses it, so its gradient is None "
        f"(not zero).{hint} If the output should depend on it, check that it is actually used in the computation; "
        "comparisons, argmax/argmin and integer casts are not differentiable and record no graph."),
        details={"untracked_inputs": constants[:_MAX_LISTED]})


def _op_without_gradient_between(tensor: Tensor, nodes: list[Node]) -> str | None:
    """The gradient-free operation through which ``tensor`` reaches the graph of ``nodes``, if any, found from
    the origins noted for the untracked tensors the graph consumed and for its indexing nodes
    (:mod:`chainrule.autograd.provenance`)."""
    pending = [origin_of(t) for node in nodes for t in consumed_tensors(node) if not t._rg]
    pending += [origin_of(node) for node in nodes]
    seen: set[int] = set()
    while pending:
        origin = pending.pop()
        if origin is None or id(origin) in seen:
            continue
        seen.add(id(origin))
        for source in origin.live_sources():
            if isinstance(source, Origin):
                pending.append(source)
            elif _depends_on(source, tensor):
                return origin.op
    return None


def _depends_on(source: Tensor | Node, tensor: Tensor) -> bool:
    """Whether ``source`` (a tensor, or the node of one) is ``tensor`` or was computed from it."""
    if source is tensor or (tensor._node is not None and source is tensor._node):
        return True
    node = source if isinstance(source, Node) else source._node
    return node is not None and _feeds(tensor, walk_nodes(node))


def _constants(nodes: list[Node]) -> list[tuple[str, str, tuple]]:
    """(op, kind, shape) of the untracked tensors the graph's operations consumed."""
    found, seen = [], set()
    for node in nodes:
        for t in consumed_tensors(node):
            if not t._rg and id(t) not in seen:
                seen.add(id(t))
                kind = str(t.dtype) if not t.dtype.is_floating_point else f"{t.dtype} (no grad)"
                found.append((node.op, kind, tuple(t.shape)))
    return found


# ----- connected: evaluate the gradient -------------------------------------------------------------

def _connected(label: str, output: Tensor, tensor: Tensor, nodes: list[Node]) -> GradExplanation:
    path = nodes_leading_to(nodes, tensor)
    if graph_is_freed(path):
        return _freed(label, tensor, path)
    try:
        received, (grad,) = capture_gradients(output, [tensor], path)
    except RuntimeError as err:  # what backward() itself would raise: the answer, not a failure of ours
        return GradExplanation("backward_error", (
            f"{label} is connected to the output, but backpropagating from the output fails, so no gradient can "
            f"reach it: {err}"), details={"error": str(err)})
    norm = math.sqrt(squared_norm(grad._data)) if grad is not None else 0.0
    if grad is None or norm == 0.0:
        return _zero(label, tensor, path, received)
    if not math.isfinite(norm):
        return GradExplanation("ok", (
            f"{label} gets a gradient, but it is not finite (norm {norm}). Run the forward and backward pass under "
            "chainrule.autograd.detect_anomaly() to find the operation that produced the NaN/Inf."), grad_norm=norm)
    if tensor._node is not None and not tensor.retains_grad:
        return GradExplanation("not_leaf", (
            f"{label} gets a nonzero gradient (norm {norm:.4g}), but it is not a leaf (it was made by "
            f"{tensor._node.name()}) and retain_grad() was not called, so backward() leaves its .grad as None. "
            "Call tensor.retain_grad() before backward(), or get it with chainrule.autograd.grad(output, tensor)."),
            op=tensor._node.op, grad_norm=norm)
    return GradExplanation("ok", (
        f"{label} gets a nonzero gradient from the output (norm {norm:.4g}); backward() will "
        f"{'accumulate it into' if tensor._node is None else 'keep it in'} its .grad."), grad_norm=norm)


def _freed(label: str, tensor: Tensor, path: set[Node]) -> GradExplanation:
    grad = tensor.grad
    if grad is not None:
        norm = math.sqrt(squared_norm(grad._data))
        state = "a nonzero" if norm > 0 else "an all-zero"
        return GradExplanation("ok" if norm > 0 else "zero_gradient", (
            f"the graph was already freed by backward(), but {label} has {state} .grad (norm {norm:.4g}) from it. "
            "To find where a gradient is lost, call explain_grad before backward() or use backward(retain_graph=True)."),
            grad_norm=norm)
    return GradExplanation("graph_freed", (
        f"{label} is connected to the output, but backward() already ran without retain_graph=True and freed the "
        "graph's saved values, so the gradient cannot be evaluated. Call explain_grad before backward(), or use "
        "backward(retain_graph=True)."))


def _zero(label: str, tensor: Tensor, path: set[Node], received: dict) -> GradExplanation:
    blockers = []
    for node in path:
        g = received.get(node)
        if g is None or squared_norm(g._data) == 0.0:
            continue
        for index, (parent, pg) in enumerate(zip(node.parents, _input_grads(node, g))):
            leads = parent is tensor or (type(parent) is Node and parent in path)
            if leads and (pg is None or squared_norm(pg._data) == 0.0):
                blockers.append((node, index))
    if not blockers:
        return GradExplanation("zero_gradient", (
            f"{label} is connected to the output, but its gradient is exactly zero: the gradients along its paths "
            "cancel out (e.g. x - x), or the gradient arriving from the output is already zero."),
            grad_norm=0.0)
    described = [_describe_blocker(node, index) for node, index in blockers[:_MAX_LISTED]]
    first = blockers[0][0]
    return GradExplanation("zero_gradient", (
        f"{label} is connected to the output only through operations that pass a zero gradient: "
        + "; ".join(described) + ". Its gradient is all zeros."), op=first.op, grad_norm=0.0,
        details={"blocking_ops": [node.op for node, _ in blockers]})


def _input_grads(node: Node, g: Tensor) -> tuple:
    """What ``node``'s rule sends to each input for output gradient ``g`` (the graph is retained)."""
    with no_grad():
        return node.apply(g, plain=False)  # the rule (never a fast entry's placed gradients)


def _describe_blocker(node: Node, index: int) -> str:
    where = _callsite(node)
    if node.op in _ZERO_DERIVATIVE_OPS:
        return (f"'{node.op}' is piecewise constant, its derivative is zero everywhere{where} (use a smooth "
                "surrogate, or a straight-through estimator: x + (op(x) - x).detach())")
    if node.op == "relu" and node.out is not None:
        zeros = _zero_fraction(node.out)
        return (f"'relu' is in its dead region: {zeros:.0%} of its inputs are <= 0, where relu' = 0{where} "
                "(check the initialisation and the biases, or use LeakyReLU/GELU)")
    return (f"'{node.op}' ({node.name()}) sends a zero gradient to its input {index}{where} (e.g. it is multiplied "
            "by zero, masked out by where(), or clamped)")


def _zero_fraction(array) -> float:
    from chainrule.backend import xp_of

    return 1.0 - float(xp_of(array).count_nonzero(array)) / max(array.size, 1)


def _callsite(node: Node) -> str:
    return f" (created at {node.callsite})" if node.callsite else ""
