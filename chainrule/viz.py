"""Drawing the backward graph with Graphviz.

    import chainrule as cr
    from chainrule import viz

    x = cr.tensor([2.0], requires_grad=True); w = cr.tensor([-3.0], requires_grad=True)
    out = (x * w).tanh()
    g = viz.draw_graph(out, params={"x": x, "w": w}, show_values=True)   # a graphviz.Digraph
    viz.save_graph(g, "graph.svg")        # .svg/.png/.pdf via the `dot` program, else writes graph.dot

    # a model, one node per module (grouped by forward hooks), expanded down to depth 2:
    g = viz.draw_model(model, x, loss_fn=lambda out: F.cross_entropy(out, y), depth=2)
    # or, by hand:
    with viz.trace_modules(model) as trace:
        loss = F.cross_entropy(model(x), y)
    g = viz.draw_graph(loss, params=dict(model.named_parameters()), group_modules=trace, depth=1)

    viz.render_run_graph("runs/mlp", "runs/mlp/graph.svg")    # a run folder's model on one batch

Every recorded operation is a box with its name, output shape and dtype; leaves that require grad are
ellipses (named when ``params`` names them); the output's box is highlighted. Edges point the way
values flow in the forward pass (inputs to consumers); backpropagation walks them in reverse.

Output shapes and dtypes are the nodes' own. Values (``show_values``) are those the graph still holds:
the tensors each consumer's backward rule reads (its saved inputs and closure) and outputs kept for
the rule; gradients come from one extra backward pass run with node hooks (``autograd.grad`` with
``retain_graph=True``, so no ``.grad`` changes), unless a ``backward()`` freed the graph already.

The ``graphviz`` Python package (``pip install graphviz``, in the ``viz`` extra) is imported only when
drawing; rendering to an image also needs the Graphviz ``dot`` program (``apt-get install graphviz``,
``brew install graphviz``).
"""

from __future__ import annotations

import shutil
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chainrule.autograd.graph import Node
from chainrule.backend import to_host
from chainrule.diagnostics._graph import capture_gradients, consumed_tensors, graph_is_freed, leaves_of, walk_nodes
from chainrule.tensor import Tensor, wrap

__all__ = ["draw_graph", "build_graph", "save_graph", "trace_modules", "ModuleTrace", "draw_model", "render_run_graph",
           "GraphSpec", "Vertex"]

_VALUE_LIMIT = 6  # show_values prints arrays up to this many elements, summaries beyond
_OP_STYLE = {"shape": "box", "style": "rounded,filled", "fillcolor": "#eef3fb", "fontname": "Helvetica", "fontsize": "10"}
_OUTPUT_STYLE = {**_OP_STYLE, "fillcolor": "#ffd9a8", "penwidth": "2"}
_PARAM_STYLE = {"shape": "ellipse", "style": "filled", "fillcolor": "#d8f0d2", "fontname": "Helvetica", "fontsize": "10"}
_LEAF_STYLE = {**_PARAM_STYLE, "fillcolor": "#f4f4f4"}
_GROUP_STYLE = {"shape": "box3d", "style": "filled", "fillcolor": "#e8e0f5", "fontname": "Helvetica", "fontsize": "10"}
_MORE_STYLE = {"shape": "note", "style": "dashed", "fontname": "Helvetica", "fontsize": "10"}


# ----- the drawing as plain data ---------------------------------------------------------------------

@dataclass
class Vertex:
    """One drawn box: ``kind`` is "op", "leaf", "param", "group" or "more"; ``ops`` lists the graph
    node names it stands for (one for an op, all of a module's for a group)."""

    id: str
    kind: str
    label: str
    attrs: dict[str, str] = field(default_factory=dict)
    ops: list[str] = field(default_factory=list)


@dataclass
class GraphSpec:
    """The graph to draw, before Graphviz: vertices by id (in drawing order) and directed edges."""

    vertices: dict[str, Vertex]
    edges: list[tuple[str, str]]
    depth: int | None = None

    def find(self, label_part: str) -> list[Vertex]:
        """The vertices whose label contains ``label_part``."""
        return [v for v in self.vertices.values() if label_part in v.label]


# ----- module tracing --------------------------------------------------------------------------------

@dataclass
class ModuleCall:
    """One call of a module's forward while tracing."""

    index: int
    name: str
    type_name: str
    parent: int | None
    level: int
    input_nodes: set = field(default_factory=set)
    out_shape: tuple | None = None
    out_dtype: str | None = None
    params: int = 0


class ModuleTrace:
    """Records which graph nodes each module call created (made by :func:`trace_modules`).

    A node belongs to the innermost module call whose outputs reach it without passing through that
    call's positional tensor inputs. Nodes made outside any module (e.g. the loss) belong to none.
    Limitation: tensors passed as keyword arguments are not seen by forward hooks, so the walk may go
    past them into nodes made earlier that no module owns yet."""

    def __init__(self, model):
        from chainrule.nn import Module

        if not isinstance(model, Module):
            raise TypeError(f"trace_modules: model must be a chainrule.nn.Module, got {type(model).__name__}")
        self.model = model
        self.calls: list[ModuleCall] = []
        self.owner: dict[Node, int] = {}
        self._names = {id(m): name for name, m in model.named_modules()}
        self._stack: list[int] = []
        self._handles: list = []
        self._call_counts: dict[str, int] = {}

    def __enter__(self) -> ModuleTrace:
        for _, module in self.model.named_modules():
            self._handles.append(module.register_forward_pre_hook(self._enter_call))
            self._handles.append(module.register_forward_hook(self._exit_call))
        return self

    def __exit__(self, *exc) -> bool:
        for handle in self._handles:
            handle.remove()
        self._handles = []
        self._stack = []
        return False

    def _enter_call(self, module, args) -> None:
        name = self._names.get(id(module), type(module).__name__) or type(module).__name__
        count = self._call_counts.get(name, 0) + 1
        self._call_counts[name] = count
        call = ModuleCall(len(self.calls), name if count == 1 else f"{name}#{count}", type(module).__name__,
                          self._stack[-1] if self._stack else None, len(self._stack),
                          {t._node for t in _tensors_in(args) if t._node is not None},
                          params=sum(p.numel() for p in module.parameters()))
        self.calls.append(call)
        self._stack.append(call.index)

    def _exit_call(self, module, args, output) -> None:
        if not self._stack:
            return
        call = self.calls[self._stack.pop()]
        outputs = _tensors_in(output)
        if outputs:
            call.out_shape, call.out_dtype = tuple(outputs[0].shape), _dtype_name(outputs[0])
        self._claim(call, [t._node for t in outputs if t._node is not None])

    def _claim(self, call: ModuleCall, starts: list[Node]) -> None:
        """Give the call every unowned node between its outputs and its inputs (iterative walk)."""
        seen: set = set()
        stack = [n for n in starts if n not in call.input_nodes]
        while stack:
            node = stack.pop()
            if node in seen:
                continue
            seen.add(node)
            owner = self.owner.get(node)
            if owner is None:
                self.owner[node] = call.index
            elif not self._inside(owner, call.index):
                continue  # made by an earlier call outside this one: the walk left this call's nodes
            for parent in node.parents:
                if type(parent) is Node and parent not in call.input_nodes and parent not in seen:
                    stack.append(parent)

    def _inside(self, index: int, ancestor: int) -> bool:
        while index is not None:
            if index == ancestor:
                return True
            index = self.calls[index].parent
        return False

    def chain(self, index: int) -> list[ModuleCall]:
        """The call and its enclosing calls, outermost first."""
        out = []
        while index is not None:
            out.append(self.calls[index])
            index = self.calls[index].parent
        return out[::-1]

    @property
    def max_level(self) -> int:
        return max((c.level for c in self.calls), default=0)


def trace_modules(model) -> ModuleTrace:
    """A context manager that records which module call made which graph node, for
    ``draw_graph(..., group_modules=trace)``: run the forward (and the loss) inside it."""
    return ModuleTrace(model)


def _tensors_in(value) -> list[Tensor]:
    if isinstance(value, Tensor):
        return [value]
    if isinstance(value, (tuple, list)):
        return [t for item in value for t in _tensors_in(item)]
    if isinstance(value, dict):
        return [t for item in value.values() for t in _tensors_in(item)]
    return []


# ----- building the drawing ----------------------------------------------------------------------------

def build_graph(output: Tensor, params: dict[str, Tensor] | None = None, show_values: bool = False,
                max_nodes: int = 150, group_modules: ModuleTrace | None = None, depth: int | None = None,
                expand: Iterable[str] = ()) -> GraphSpec:
    """The drawing of ``output``'s backward graph as plain data (see :func:`draw_graph` for the arguments)."""
    if not isinstance(output, Tensor):
        raise TypeError(f"draw_graph: output must be a Tensor, got {type(output).__name__}")
    if output._node is None:
        raise ValueError(
            f"draw_graph: the output (shape {tuple(output.shape)}, {output.dtype}) has no grad_fn, so there is no graph: "
            "it was computed under no_grad() or from tensors that do not require grad"
        )
    if not isinstance(max_nodes, int) or max_nodes < 2:
        raise ValueError(f"draw_graph: max_nodes must be an integer >= 2, got {max_nodes!r}")
    if group_modules is not None and not isinstance(group_modules, ModuleTrace):
        raise TypeError("draw_graph: group_modules must be a ModuleTrace from chainrule.viz.trace_modules(model), "
                        f"got {type(group_modules).__name__}")
    nodes = walk_nodes(output._node)
    names = _param_names(params)
    facts = _node_facts(output, nodes, show_values)
    expand = tuple(expand)
    if group_modules is None:
        spec = _assemble(nodes, facts, names, show_values, None, None, expand)
    elif depth is not None:
        spec = _assemble(nodes, facts, names, show_values, group_modules, depth, expand)
    else:  # the deepest expansion that fits
        spec = None
        for level in range(group_modules.max_level + 1, 0, -1):
            spec = _assemble(nodes, facts, names, show_values, group_modules, level, expand)
            if len(spec.vertices) <= max_nodes:
                break
    return _truncate(spec, max_nodes)


def _param_names(params) -> dict[int, str]:
    if params is None:
        return {}
    if not isinstance(params, dict):
        params = dict(params)  # named_parameters() pairs
    return {id(t): name for name, t in params.items() if isinstance(t, Tensor)}


@dataclass
class _Facts:
    values: dict      # Node -> Tensor (its output), where known
    grads: dict       # Node -> gradient of its output; leaf id -> gradient
    shapes: dict      # Node -> (shape, dtype name)


def _node_facts(output: Tensor, nodes: list[Node], show_values: bool) -> _Facts:
    values: dict = {output._node: output}
    for node in nodes:
        if node.out is not None and node not in values:
            values[node] = wrap(node.out)
        for t in consumed_tensors(node):
            if t._node is not None and t._node not in values:
                values[t._node] = t
    shapes = {node: (node.shape, str(node.dtype)) for node in nodes}
    grads: dict = {}
    if show_values and not graph_is_freed(nodes):
        leaves = leaves_of(nodes)
        try:
            received, leaf_grads = capture_gradients(output, leaves, nodes)
        except RuntimeError:  # backward itself fails (in-place change, anomaly): draw what is known without it
            return _Facts(values, grads, shapes)
        grads.update(received)
        grads.update({id(leaf): g for leaf, g in zip(leaves, leaf_grads) if g is not None})
    return _Facts(values, grads, shapes)


def _assemble(nodes, facts: _Facts, names: dict, show_values: bool, trace: ModuleTrace | None, depth: int | None,
              expand: tuple) -> GraphSpec:
    vertices: dict[str, Vertex] = {}
    edges: dict[tuple[str, str], None] = {}
    node_vertex: dict[Node, str] = {}
    group_of = _grouping(nodes, trace, depth, expand) if trace is not None else {}
    group_members: dict[str, list[Node]] = {}
    for node in nodes:
        key = group_of.get(node)
        if key is not None:
            group_members.setdefault(key, []).append(node)
    root = nodes[0]
    for node in nodes:  # output first: the order Graphviz sees, and the order truncation keeps
        key = group_of.get(node)
        if key is None:
            vid = f"n{len(node_vertex)}"
            vertices[vid] = Vertex(vid, "op", _op_label(node, facts, show_values),
                                   dict(_OUTPUT_STYLE if node is root else _OP_STYLE), [node.name()])
            node_vertex[node] = vid
        else:
            vid = "g_" + _safe_id(key)
            if vid not in vertices:
                vertices[vid] = _group_vertex(vid, key, group_members[key], trace, root)
            vertices[vid].ops.append(node.name())
            node_vertex[node] = vid
    _add_leaves(nodes, vertices, edges, node_vertex, names, facts, show_values, group_of)
    for node in nodes:
        for parent in node.parents:
            if type(parent) is Node:
                _link(edges, node_vertex[parent], node_vertex[node])
    return GraphSpec(_nearest_first(vertices, edges), list(edges), depth)


def _nearest_first(vertices: dict[str, Vertex], edges: dict) -> dict[str, Vertex]:
    """Each leaf placed right after the first box that consumes it, so truncation keeps the leaves
    next to the operations it keeps."""
    rank = {vid: float(i) for i, vid in enumerate(v for v in vertices if vertices[v].kind in ("op", "group"))}
    for src, dst in edges:
        if src not in rank and dst in rank:
            rank[src] = min(rank.get(src, float("inf")), rank[dst] + 0.5)
    return dict(sorted(vertices.items(), key=lambda item: rank.get(item[0], float("inf"))))


def _add_leaves(nodes, vertices, edges, node_vertex, names, facts, show_values, group_of) -> None:
    consumers: dict[int, list[Node]] = {}
    leaves: dict[int, Tensor] = {}
    for node in nodes:
        for parent in node.parents:
            if isinstance(parent, Tensor):
                leaves[id(parent)] = parent
                consumers.setdefault(id(parent), []).append(node)
    for key, leaf in leaves.items():
        users = consumers[key]
        groups = {group_of.get(n) for n in users}
        name = names.get(key)
        if name is not None and len(groups) == 1 and None not in groups:
            continue  # a parameter used inside one module only: counted in that module's box
        vid = f"l{len(vertices)}"
        label = _leaf_label(leaf, name, facts.grads.get(key), show_values)
        vertices[vid] = Vertex(vid, "param" if name else "leaf", label, dict(_PARAM_STYLE if name else _LEAF_STYLE))
        for user in users:
            _link(edges, vid, node_vertex[user])


def _link(edges: dict, src: str, dst: str) -> None:
    if src != dst:
        edges[(src, dst)] = None


def _grouping(nodes, trace: ModuleTrace, depth: int, expand: tuple) -> dict[Node, str]:
    """Node -> name of the module call at ``depth`` (deeper inside expanded modules) that made it."""
    if not isinstance(depth, int) or depth < 0:
        raise ValueError(f"draw_graph: depth must be a non-negative integer, got {depth!r}")
    out = {}
    for node in nodes:
        index = trace.owner.get(node)
        if index is None:
            continue
        chain = trace.chain(index)
        level = depth
        while level < len(chain) and chain[level].name in expand:
            level += 1  # an expanded module: its children become the boxes, its own ops single ops
        if level < len(chain):
            out[node] = chain[level].name
        # a node made directly by a call shallower than depth (or by an expanded one) stays a single op
    return out


def _group_vertex(vid: str, key: str, members: list[Node], trace: ModuleTrace, root: Node) -> Vertex:
    call = next(c for c in trace.calls if c.name == key)
    lines = [f"{key}: {call.type_name}" if key != call.type_name else key,
             f"{len(members)} op" + ("s" if len(members) != 1 else "")]
    if call.params:
        lines[-1] += f", {_count(call.params)} params"
    if call.out_shape is not None:
        lines.append(f"out {_shape(call.out_shape)} {call.out_dtype}")
    attrs = dict(_GROUP_STYLE)
    if root in members:
        attrs["penwidth"] = "2"
    return Vertex(vid, "group", "\n".join(lines), attrs)


def _truncate(spec: GraphSpec, max_nodes: int) -> GraphSpec:
    if len(spec.vertices) <= max_nodes:
        return spec
    kept = dict(list(spec.vertices.items())[: max_nodes - 1])
    dropped = len(spec.vertices) - len(kept)
    more = Vertex("more", "more", f"... {dropped} more nodes\n(raise max_nodes, or group by module)", dict(_MORE_STYLE))
    edges: dict[tuple[str, str], None] = {}
    for src, dst in spec.edges:
        if src in kept and dst in kept:
            edges[(src, dst)] = None
        elif dst in kept:
            edges[("more", dst)] = None
    kept["more"] = more
    return GraphSpec(kept, list(edges), spec.depth)


# ----- labels ---------------------------------------------------------------------------------------------

def _op_label(node: Node, facts: _Facts, show_values: bool) -> str:
    shape, dtype = facts.shapes.get(node, (None, None))
    lines = [node.op, f"{_shape(shape)} {dtype}" if shape is not None else "? (shape unknown)"]
    if node.callsite:
        lines.append(_short_callsite(node.callsite))
    if show_values:
        value = facts.values.get(node)
        if value is not None:
            lines.append("data " + _values(value))
        grad = facts.grads.get(node)
        if grad is not None:
            lines.append("grad " + _values(grad))
    return "\n".join(lines)


def _leaf_label(leaf: Tensor, name: str | None, grad, show_values: bool) -> str:
    lines = [name or "leaf", f"{_shape(tuple(leaf.shape))} {_dtype_name(leaf)}"]
    if show_values:
        lines.append("data " + _values(leaf))
        if grad is not None:
            lines.append("grad " + _values(grad))
    return "\n".join(lines)


def _values(t: Tensor) -> str:
    arr = to_host(t._data)
    if arr.size == 1:
        return f"{float(arr.reshape(-1)[0]):.4g}"
    if arr.size <= _VALUE_LIMIT:
        return "[" + ", ".join(f"{float(v):.3g}" for v in arr.reshape(-1)) + "]"
    if arr.dtype.kind != "f":
        return f"{arr.size} values"
    return f"mean {float(arr.mean()):.3g}, std {float(arr.std()):.3g}"


def _shape(shape) -> str:
    if shape is None:
        return "?"
    return "(" + ", ".join(str(s) for s in shape) + ("," if len(shape) == 1 else "") + ")"


def _dtype_name(t: Tensor) -> str:
    return str(t._data.dtype)


def _count(n: int) -> str:
    return f"{n / 1e6:.1f}M" if n >= 1e6 else f"{n / 1e3:.1f}k" if n >= 1e3 else str(n)


def _short_callsite(callsite: str) -> str:
    # 'File "/path/x.py", line 12, in f: code' -> 'x.py:12'
    try:
        path = callsite.split('"')[1]
        line = callsite.split("line ")[1].split(",")[0]
        return f"{Path(path).name}:{line}"
    except IndexError:
        return callsite[:40]


def _safe_id(text: str) -> str:
    return "".join(ch if ch.isalnum() else "_" for ch in text)


# ----- Graphviz ----------------------------------------------------------------------------------------------

def _graphviz():
    try:
        import graphviz
    except ImportError:
        raise ImportError(
            "draw_graph needs the 'graphviz' Python package, which is not installed; install it with "
            "pip install 'chainrule[viz]' (or pip install graphviz). Rendering images also needs the Graphviz "
            "'dot' program (apt-get install graphviz / brew install graphviz)."
        ) from None
    return graphviz


def draw_graph(output: Tensor, params: dict[str, Tensor] | None = None, show_values: bool = False,
               max_nodes: int = 150, group_modules: ModuleTrace | None = None, depth: int | None = None,
               expand: Iterable[str] = (), rankdir: str = "TB"):
    """The backward graph of ``output`` as a ``graphviz.Digraph``.

    Args:
        output: the tensor whose graph to draw (usually the loss).
        params: names for leaf tensors, e.g. ``dict(model.named_parameters())`` (or its pairs).
        show_values: also write each node's value and gradient (micrograd style; arrays of more than
            six elements as mean/std). Runs one backward pass (``autograd.grad``; ``.grad`` untouched).
        max_nodes: at most this many boxes; past it the graph is cut (furthest from the output first)
            and a "... N more nodes" box says so.
        group_modules: a :class:`ModuleTrace` (``with trace_modules(model) as trace:`` around the
            forward) to draw one box per module call instead of one per operation.
        depth: with ``group_modules``: the module depth to collapse at (1 = the model's direct
            submodules, 2 = theirs, ...); None picks the deepest that fits ``max_nodes``.
        expand: names of module calls to open one level further (e.g. ``["blocks.0"]`` at depth 1
            draws that block's submodules as boxes and its own operations as single ops); list a
            name's submodules too to go deeper.
        rankdir: Graphviz layout direction ("TB" top to bottom, "LR" left to right).
    """
    graphviz = _graphviz()
    spec = build_graph(output, params, show_values, max_nodes, group_modules, depth, expand)
    return to_digraph(spec, graphviz, rankdir)


def to_digraph(spec: GraphSpec, graphviz=None, rankdir: str = "TB"):
    """A :class:`GraphSpec` as a ``graphviz.Digraph``."""
    graphviz = graphviz or _graphviz()
    dot = graphviz.Digraph("backward_graph", graph_attr={"rankdir": rankdir, "nodesep": "0.25", "ranksep": "0.35"})
    for vertex in spec.vertices.values():
        dot.node(vertex.id, vertex.label, **vertex.attrs)
    for src, dst in spec.edges:
        dot.edge(src, dst)
    return dot


def save_graph(graph, path: str | Path) -> Path:
    """Write ``graph`` (a ``graphviz.Digraph``) to ``path``: rendered to .svg/.png/.pdf/... (the
    suffix) with the ``dot`` program when it is installed. Without ``dot``, or for a ``.dot``/``.gv``
    path, the DOT source is written instead, and a warning says how to render it. Returns the path
    written."""
    path = Path(path)
    source = getattr(graph, "source", None)
    if source is None:
        raise TypeError(f"save_graph: expected a graphviz.Digraph (from draw_graph), got {type(graph).__name__}")
    path.parent.mkdir(parents=True, exist_ok=True)
    fmt = path.suffix.lstrip(".").lower()
    if fmt in ("dot", "gv"):
        path.write_text(source, encoding="utf-8")
        return path
    if not fmt:
        raise ValueError(f"save_graph: {path} has no suffix; use .svg, .png, .pdf or .dot")
    if shutil.which("dot") is None:
        dot_path = path.with_suffix(".dot")
        dot_path.write_text(source, encoding="utf-8")
        warnings.warn(
            f"save_graph: the Graphviz 'dot' program is not installed, so {path.name} was not rendered; wrote the "
            f"graph's DOT source to {dot_path} instead. Install Graphviz (apt-get install graphviz, brew install "
            f"graphviz) and render it with: dot -T{fmt} {dot_path} -o {path}", RuntimeWarning, stacklevel=2)
        return dot_path
    try:
        data = graph.pipe(format=fmt)
    except Exception as err:  # graphviz raises its own error types for unknown formats and dot failures
        raise ValueError(f"save_graph: dot could not render {path.name} as '{fmt}': {err}") from None
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)
    return path


# ----- models and run folders -------------------------------------------------------------------------------

def draw_model(model, *inputs, loss_fn: Callable[[Any], Tensor] | None = None, **kwargs):
    """Run ``model(*inputs)`` (and ``loss_fn(output)``) under :func:`trace_modules` and draw the graph
    with parameter names and one box per module; ``kwargs`` go to :func:`draw_graph`."""
    with trace_modules(model) as trace:
        out = model(*inputs)
    if loss_fn is not None:
        out = loss_fn(out)
    kwargs.setdefault("params", dict(model.named_parameters()))
    return draw_graph(out, group_modules=trace, **kwargs)


def render_run_graph(run_dir: str | Path, out_path: str | Path | None = None, depth: int | None = None,
                     max_nodes: int = 60, checkpoint: str | None = None) -> Path:
    """Render the graph of a run folder's loss on one batch of its data (the model grouped by module)
    to ``out_path`` (default ``<run_dir>/graph.svg``); returns the path written (a .dot file when
    the ``dot`` program is missing)."""
    import chainrule as cr
    from chainrule import data
    from chainrule.nn import functional as F
    from chainrule.recipes import load_run

    config, model, _ = load_run(run_dir, checkpoint)
    kind = config["kind"]
    gen = cr.Generator(0)
    if kind == "gpt":
        ids, _ = data.load_tinyshakespeare("val")
        x, y = data.sample_batch(ids, 2, model.block_size, generator=gen)

        def loss_fn(logits):
            return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))
    else:
        images, labels = data.load_digits("test", flatten=True) if kind == "mlp" else data.load_mnist5k("test")
        x, y = images[:8], labels[:8]

        def loss_fn(logits):
            return F.cross_entropy(logits, y)
    model.train()
    graph = draw_model(model, x, loss_fn=loss_fn, depth=depth, max_nodes=max_nodes)
    return save_graph(graph, Path(run_dir) / "graph.svg" if out_path is None else out_path)
