"""chainrule.viz: the DOT source of the backward graph (parsed back and checked node by node), grouping
by module, truncation, and writing files with and without the `dot` program."""

import json
import re
import shutil
import warnings

import pytest

import chainrule as cr
from chainrule import io, nn, viz
from chainrule.nn import functional as F

graphviz = pytest.importorskip("graphviz")

HAS_DOT = shutil.which("dot") is not None
PNG = b"\x89PNG\r\n\x1a\n"


def parse_dot(source: str):
    """{id: label} and [(src, dst)] from a Digraph's source."""
    nodes = {m.group(1): m.group(2) for m in re.finditer(r'^\s*(\w+) \[label="((?:[^"\\]|\\.)*)"', source, re.M)}
    edges = re.findall(r"^\s*(\w+) -> (\w+)", source, re.M)
    return nodes, edges


def _by_first_line(nodes):
    out = {}
    for node_id, label in nodes.items():
        out.setdefault(label.split("\n")[0], []).append(node_id)
    return out


def test_small_graph_has_one_node_per_operation_with_shapes_and_the_edges_of_the_forward_pass():
    x = cr.tensor([[1.0, 2.0]], requires_grad=True)
    w = cr.tensor([[0.5], [-1.0]], requires_grad=True)
    out = (x @ w).tanh().sum()
    nodes, edges = parse_dot(viz.draw_graph(out, params={"x": x, "w": w}).source)
    names = _by_first_line(nodes)
    assert set(names) == {"matmul", "tanh", "sum", "x", "w"}
    assert "(1, 1) float32" in nodes[names["matmul"][0]] and "() float32" in nodes[names["sum"][0]]
    assert "(1, 2) float32" in nodes[names["x"][0]]
    (mm,), (th,), (sm,), (xs,), (ws,) = (names[k] for k in ("matmul", "tanh", "sum", "x", "w"))
    assert sorted(edges) == sorted([(xs, mm), (ws, mm), (mm, th), (th, sm)])


def test_show_values_writes_data_and_gradients_micrograd_style():
    a = cr.tensor(2.0, requires_grad=True)
    b = cr.tensor(-3.0, requires_grad=True)
    out = (a * b) ** 2  # square reads its input: the graph holds the product
    nodes, _ = parse_dot(viz.draw_graph(out, params={"a": a, "b": b}, show_values=True).source)
    labels = {label.split("\n")[0]: label for label in nodes.values()}
    assert "data 2" in labels["a"] and "grad 36" in labels["a"]  # d((ab)^2)/da = 2ab * b
    assert "data -3" in labels["b"] and "grad -24" in labels["b"]
    assert "data -6" in labels["mul"] and "grad -12" in labels["mul"]
    assert "data 36" in labels["square"] and "grad 1" in labels["square"]
    assert a.grad is None and b.grad is None


def test_show_values_leaves_out_values_no_rule_holds():
    # add reads neither input, so the graph (like PyTorch's) does not keep the product alive; its
    # gradient and shape are still shown
    a = cr.tensor(2.0, requires_grad=True)
    b = cr.tensor(-3.0, requires_grad=True)
    nodes, _ = parse_dot(viz.draw_graph(a * b + a, params={"a": a, "b": b}, show_values=True).source)
    labels = {label.split("\n")[0]: label for label in nodes.values()}
    assert "data" not in labels["mul"] and "() float32" in labels["mul"] and "grad 1" in labels["mul"]
    assert "data -4" in labels["add"]  # the output itself is known


def test_shared_inputs_and_unnamed_leaves():
    x = cr.randn(3, requires_grad=True)
    out = (x * x).sum()
    nodes, edges = parse_dot(viz.draw_graph(out).source)
    names = _by_first_line(nodes)
    assert names.keys() == {"mul", "sum", "leaf"}
    assert edges.count((names["leaf"][0], names["mul"][0])) == 1  # one edge even though x is used twice


class _Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)
        self.act = nn.ReLU()

    def forward(self, x):
        return x + self.act(self.fc(x))


class _Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Linear(3, 4)
        self.blocks = nn.Sequential(_Block(), _Block())
        self.head = nn.Linear(4, 2)

    def forward(self, x):
        return self.head(self.blocks(self.stem(x)))


def _net_graph(**kwargs):
    cr.manual_seed(0)
    net = _Net()
    y = cr.tensor([0, 1])
    return net, viz.draw_model(net, cr.randn(2, 3), loss_fn=lambda out: F.cross_entropy(out, y), **kwargs)


def test_grouping_by_module_collapses_each_depth():
    _, graph = _net_graph(depth=1)
    nodes, edges = parse_dot(graph.source)
    groups = {label.split("\n")[0]: node_id for node_id, label in nodes.items() if ": " in label.split("\n")[0]}
    assert set(groups) == {"stem: Linear", "blocks: Sequential", "head: Linear"}
    assert (groups["stem: Linear"], groups["blocks: Sequential"]) in edges
    assert (groups["blocks: Sequential"], groups["head: Linear"]) in edges
    assert "out (2, 4) float32" in nodes[groups["blocks: Sequential"]]
    assert not any(label.startswith(("stem.weight", "head.bias")) for label in nodes.values())  # folded into boxes
    deeper, _ = parse_dot(_net_graph(depth=2)[1].source)
    assert {"blocks.0: _Block", "blocks.1: _Block"} <= {label.split("\n")[0] for label in deeper.values()}
    deepest, _ = parse_dot(_net_graph(depth=3)[1].source)
    assert {"blocks.0.fc: Linear", "blocks.1.act: ReLU"} <= {label.split("\n")[0] for label in deepest.values()}


def test_expand_opens_one_module():
    _, graph = _net_graph(depth=2, expand=["blocks.1"])
    nodes, _ = parse_dot(graph.source)
    firsts = {label.split("\n")[0] for label in nodes.values()}
    assert "blocks.0: _Block" in firsts and "blocks.1: _Block" not in firsts
    assert {"blocks.1.fc: Linear", "blocks.1.act: ReLU"} <= firsts
    assert "add" in firsts  # the residual add made by blocks.1 itself is a single op


def test_auto_depth_fits_max_nodes_and_truncation_says_what_is_left_out():
    _, graph = _net_graph(max_nodes=12)
    nodes, _ = parse_dot(graph.source)
    assert len(nodes) <= 12 and not any("more nodes" in label for label in nodes.values())
    x = cr.randn(4, requires_grad=True)
    out = x
    for _ in range(30):
        out = out * 1.01
    nodes, edges = parse_dot(viz.draw_graph(out.sum(), max_nodes=10).source)
    assert len(nodes) == 10
    more = next(node_id for node_id, label in nodes.items() if label.startswith("... 23 more nodes"))
    assert any(src == more for src, _ in edges)


def test_gpt_graph_shapes_are_all_known():
    from chainrule.models import GPT

    cr.manual_seed(0)
    model = GPT(vocab_size=11, block_size=8, n_layer=1, n_head=2, n_embd=8)
    idx = cr.randint(0, 11, (2, 8))
    loss = F.cross_entropy(model(idx).reshape(-1, 11), idx.reshape(-1))
    nodes, _ = parse_dot(viz.draw_graph(loss, params=dict(model.named_parameters()), max_nodes=500).source)
    assert not any("shape unknown" in label for label in nodes.values())
    firsts = {label.split("\n")[0] for label in nodes.values()}
    assert {"head.weight", "tok_emb.weight", "blocks.0.attn.qkv.weight", "scaled_dot_product_attention"} <= firsts


@pytest.mark.skipif(not HAS_DOT, reason="the Graphviz 'dot' program is not installed")
def test_save_graph_renders_png_and_svg(tmp_path):
    _, graph = _net_graph(depth=1)
    assert viz.save_graph(graph, tmp_path / "g.png").read_bytes()[:8] == PNG
    assert "<svg" in viz.save_graph(graph, tmp_path / "sub" / "g.svg").read_text()


def test_save_graph_without_dot_writes_the_source_and_says_how_to_render(tmp_path, monkeypatch):
    _, graph = _net_graph(depth=1)
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.warns(RuntimeWarning, match=r"dot -Tpng .*g\.dot -o .*g\.png"):
        written = viz.save_graph(graph, tmp_path / "g.png")
    assert written == tmp_path / "g.dot" and written.read_text() == graph.source
    assert not (tmp_path / "g.png").exists()


def test_render_run_graph_of_a_run_folder(tmp_path):
    config = {"in_features": 64, "width": 16, "depth": 2, "num_classes": 10, "activation": "relu", "dropout": 0.0}
    from chainrule.models import MLP

    io.save(MLP(**config), tmp_path / "best.safetensors")
    (tmp_path / "config.json").write_text(json.dumps({"kind": "mlp", "model": config, "train": {}}))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # without dot it writes graph.dot
        written = viz.render_run_graph(tmp_path, tmp_path / "graph.dot")  # small: drawn op by op
        grouped = viz.render_run_graph(tmp_path, tmp_path / "grouped.dot", depth=1)
    source = written.read_text()
    assert "net.1.weight" in source and "cross_entropy" in source and "(8, 16) float32" in source
    assert "net: Sequential" in grouped.read_text() and "net.1.weight" not in grouped.read_text()


def test_a_graph_whose_backward_fails_is_still_drawn():
    w = cr.randn(3, requires_grad=True)
    h = w * 1
    out = (h * h).sum()
    with cr.no_grad():
        h.add_(1.0)  # backward would raise: shapes come from what the nodes hold
    nodes, _ = parse_dot(viz.draw_graph(out, show_values=True).source)
    assert {label.split("\n")[0] for label in nodes.values()} == {"mul", "sum", "leaf"}


def test_errors():
    with pytest.raises(ValueError, match="no grad_fn"):
        viz.draw_graph(cr.ones(2))
    with pytest.raises(TypeError, match="trace_modules"):
        viz.draw_graph(cr.ones(2, requires_grad=True).sum(), group_modules=object())
    with pytest.raises(ValueError, match="max_nodes"):
        viz.draw_graph(cr.ones(2, requires_grad=True).sum(), max_nodes=1)
    with pytest.raises(ValueError, match="suffix"):
        viz.save_graph(viz.draw_graph(cr.ones(2, requires_grad=True).sum()), "graph")
