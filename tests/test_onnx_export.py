"""ONNX export checked by onnx itself (full check, strict shape inference) and run in onnxruntime against
chainrule's own forward, at batch and sequence sizes other than the export's example."""

import json

import numpy as np
import pytest

import chainrule as cr
import chainrule.onnx  # noqa: F401  (cr.onnx)
from chainrule import nn
from chainrule.models import GPT, MLP, LeNet

onnx = pytest.importorskip("onnx", reason="onnx is in the onnx extra")
ort = pytest.importorskip("onnxruntime", reason="onnxruntime is in the test extra")


def _perturbed(model, scale):
    """Random offsets on every parameter, so that no mistake hides behind zero biases or unit norms."""
    with cr.no_grad():
        for p in model.parameters():
            p.add_(cr.randn(*p.shape) * scale)
    return model


def _mlp():
    return _perturbed(MLP(in_features=20, width=32, depth=2, activation="gelu"), 0.05), (20,), {0: "batch"}


def _lenet():
    return _perturbed(LeNet(channels=(4, 8), hidden=(32, 16)), 0.05), (1, 28, 28), {0: "N"}


def _gpt(tied):
    model = GPT(vocab_size=50, block_size=16, n_layer=2, n_head=2, n_embd=16, tie_weights=tied)
    return _perturbed(model, 0.3), None, {0: "batch", 1: "seq"}


_MODELS = {"mlp": _mlp, "lenet": _lenet, "gpt_tied": lambda: _gpt(True), "gpt_untied": lambda: _gpt(False)}


def _inputs(kind, feature_shape, batch, seq=8):
    if kind.startswith("gpt"):
        return cr.randint(0, 50, (batch, seq))
    return cr.randn(batch, *feature_shape)


def _run(path, name, x):
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {name: x.cpu().numpy()})[0]


@pytest.mark.parametrize("opset", [17, 18, 21])
@pytest.mark.parametrize("kind", list(_MODELS))
def test_bundled_models_in_onnxruntime(tmp_path, kind, opset):
    model, features, axes = _MODELS[kind]()
    path = tmp_path / f"{kind}.onnx"
    cr.onnx.export(model, (_inputs(kind, features, 2),), path, input_names=["x"], output_names=["y"],
                   dynamic_axes={"x": axes, "y": dict(axes)}, opset_version=opset)
    proto = onnx.load(path)
    onnx.checker.check_model(proto, full_check=True)
    inferred = onnx.shape_inference.infer_shapes(proto, strict_mode=True)
    assert proto.ir_version == cr.onnx.IR_VERSION[opset]
    assert [d.dim_param for d in inferred.graph.input[0].type.tensor_type.shape.dim][:len(axes)] == list(axes.values())
    assert [d.dim_param for d in inferred.graph.output[0].type.tensor_type.shape.dim][:len(axes)] == list(axes.values())
    state = model.state_dict()
    named = {t.name for t in proto.graph.initializer if t.name in state}
    for t in proto.graph.initializer:
        if t.name in state:
            np.testing.assert_array_equal(onnx.numpy_helper.to_array(t), state[t.name].cpu().numpy())
    if kind == "gpt_tied":
        assert "tok_emb.weight" in named and "head.weight" not in named  # one copy of the tied matrix
    sizes = [(1, 1), (3, 16)] if kind.startswith("gpt") else [(1, 8), (5, 8)]
    model.eval()
    for batch, seq in sizes:
        x = _inputs(kind, features, batch, seq)
        np.testing.assert_allclose(_run(path, "x", x), model(x).detach().cpu().numpy(), rtol=1e-5, atol=1e-5)


def test_reference_evaluator_agrees_without_onnxruntime(tmp_path):
    from onnx.reference import ReferenceEvaluator

    model, _, axes = _gpt(True)
    path = tmp_path / "gpt.onnx"
    cr.onnx.export(model, (cr.randint(0, 50, (2, 8)),), path, input_names=["idx"], dynamic_axes={"idx": axes})
    x = cr.randint(0, 50, (3, 5))
    got = ReferenceEvaluator(onnx.load(path)).run(None, {"idx": x.cpu().numpy()})[0]
    np.testing.assert_allclose(got, model.eval()(x).detach().cpu().numpy(), rtol=1e-5, atol=1e-5)


def _layer_zoo():
    one_d = nn.Sequential(
        nn.Conv1d(3, 6, 3, padding=1, stride=2), nn.BatchNorm1d(6), nn.LeakyReLU(0.2),
        nn.MaxPool1d(3, 2, padding=1, ceil_mode=True),
        nn.Conv1d(6, 6, 3, padding="same", dilation=2, groups=3), nn.ELU(0.7), nn.AvgPool1d(2, padding=1),
        nn.SiLU(), nn.AdaptiveAvgPool1d(1), nn.Flatten(), nn.Linear(6, 5), nn.Softplus(), nn.Hardtanh(-0.5, 0.5),
        nn.Tanh(), nn.Dropout(0.5), nn.Linear(5, 4), nn.LogSoftmax(1))
    two_d = nn.Sequential(
        nn.Conv2d(2, 4, (3, 2), padding="same"), nn.BatchNorm2d(4), nn.GELU(),
        nn.AvgPool2d(2, count_include_pad=False, padding=1),
        nn.Sigmoid(), nn.MaxPool2d(2, dilation=1), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Identity(), nn.Softmax(-1))
    tokens = nn.Sequential(nn.Embedding(30, 8), nn.LayerNorm(8, elementwise_affine=False), nn.Linear(8, 6),
                           nn.GELU(approximate="tanh"), nn.LayerNorm(6), nn.Flatten(0))
    three_d = nn.Sequential(nn.Conv3d(2, 3, 3, padding=1), nn.BatchNorm3d(3), nn.ReLU6(), nn.MaxPool3d(2),
                            nn.AvgPool3d(2, ceil_mode=True), nn.SELU(), nn.AdaptiveAvgPool3d(1), nn.Flatten())
    upsampling = nn.Sequential(
        nn.ConvTranspose2d(3, 4, 3, stride=2, padding=1, output_padding=1), nn.Hardswish(), nn.Mish(), nn.CELU(0.5),
        nn.Hardsigmoid(), nn.Flatten(2), nn.ConvTranspose1d(4, 2, 2, stride=2, groups=2), nn.RMSNorm(72),
        nn.Softsign(), nn.LogSigmoid(), nn.RMSNorm([2, 72], eps=1e-3, elementwise_affine=False))
    return [(one_d, cr.randn(2, 3, 17)), (two_d, cr.randn(2, 2, 9, 8)), (tokens, cr.randint(0, 30, (2, 5))),
            (three_d, cr.randn(2, 2, 6, 7, 8)), (upsampling, cr.randn(2, 3, 3, 3))]


@pytest.mark.parametrize("opset", [17, 20, 23])
@pytest.mark.parametrize("which", range(5))
def test_layers(tmp_path, which, opset):
    model, x = _layer_zoo()[which]
    _perturbed(model, 0.2)
    model.train()
    for _ in range(2):  # nontrivial running statistics
        model(x)
    path = tmp_path / "zoo.onnx"
    cr.onnx.export(model, (x,), path, opset_version=opset, verify=True)
    assert model.training  # the mode is restored
    onnx.shape_inference.infer_shapes(onnx.load(path), strict_mode=True)
    np.testing.assert_allclose(_run(path, "input", x), model.eval()(x).detach().cpu().numpy(), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("norm_first, batch_first, activation", [(False, False, "relu"), (True, True, "gelu"),
                                                                  (False, True, nn.GELU(approximate="tanh"))])
def test_transformer_encoder(tmp_path, norm_first, batch_first, activation):
    layer = nn.TransformerEncoderLayer(16, 4, dim_feedforward=24, dropout=0.1, activation=activation,
                                       norm_first=norm_first, batch_first=batch_first)
    model = _perturbed(nn.TransformerEncoder(layer, 2, norm=nn.LayerNorm(16)), 0.1)
    shape = (2, 5, 16) if batch_first else (5, 2, 16)
    axes = {0: "batch", 1: "seq"} if batch_first else {0: "seq", 1: "batch"}
    path = tmp_path / "encoder.onnx"
    cr.onnx.export(model, (cr.randn(*shape),), path, dynamic_axes={"input": axes, "output": axes}, verify=True)
    x = cr.randn(7, 3, 16)
    np.testing.assert_allclose(_run(path, "input", x), model.eval()(x).detach().cpu().numpy(), rtol=1e-5, atol=1e-5)


def test_float64_models(tmp_path):
    # the constants of decomposed ops (GELU before opset 20, the attention scale and mask) take the model's type
    model = _gpt(False)[0].double()
    path = tmp_path / "gpt64.onnx"
    cr.onnx.export(model, (cr.randint(0, 50, (2, 8)),), path, opset_version=17, verify=True,
                   dynamic_axes={"input": {0: "b", 1: "t"}})
    x = cr.randint(0, 50, (3, 11))
    np.testing.assert_allclose(_run(path, "input", x), model.eval()(x).detach().cpu().numpy(), rtol=1e-9, atol=1e-9)


def test_unsupported_modules_are_refused_by_path_and_type(tmp_path):
    model = nn.Sequential(nn.Linear(4, 4), nn.Sequential(nn.ReLU(), nn.GRU(4, 4)))
    with pytest.raises(cr.onnx.UnsupportedModuleError, match=r"'1\.1' is a GRU.*register"):
        cr.onnx.export(model, (cr.randn(2, 4),), tmp_path / "m.onnx")
    with pytest.raises(cr.onnx.ExportError, match="'0'.*return_indices"):
        pool = nn.Sequential(nn.MaxPool2d(2, return_indices=True))
        cr.onnx.export(pool, (cr.randn(1, 1, 4, 4),), tmp_path / "m.onnx")
    with pytest.raises(cr.onnx.ExportError, match="opset_version"):
        cr.onnx.export(nn.Linear(2, 2), (cr.randn(1, 2),), tmp_path / "m.onnx", opset_version=13)
    with pytest.raises(cr.onnx.ExportError, match="dynamic_axes"):
        cr.onnx.export(nn.Linear(2, 2), (cr.randn(1, 2),), tmp_path / "m.onnx", dynamic_axes={"nope": {0: "b"}})


class _Scale(nn.Module):
    def __init__(self):
        super().__init__()
        self.gain = nn.Parameter(cr.tensor([2.0, 3.0]))

    def forward(self, x):
        return x * self.gain


def test_registered_converter_and_verify(tmp_path, monkeypatch):
    from chainrule.onnx import modules, ops

    @cr.onnx.register(_Scale)
    def _convert(g, module, x):
        return g.op("Mul", [x, g.param(module.gain)], g.rank(x))

    monkeypatch.setitem(modules.CONVERTERS, _Scale, _convert)
    model = nn.Sequential(_Scale(), nn.Tanh())
    cr.onnx.export(model, (cr.randn(3, 2),), tmp_path / "ok.onnx", verify=True)
    assert {t.name for t in onnx.load(tmp_path / "ok.onnx").graph.initializer} == {"0.gain"}
    monkeypatch.setitem(modules.CONVERTERS, _Scale, lambda g, m, x: ops.unary(g, "Relu", x))  # a wrong converter
    with pytest.raises(cr.onnx.ExportError, match="differs from chainrule's forward"):
        cr.onnx.export(model, (cr.randn(3, 2),), tmp_path / "bad.onnx", verify=True)


def test_external_data(tmp_path):
    model = _mlp()[0]
    path = tmp_path / "mlp.onnx"
    cr.onnx.export(model, (cr.randn(2, 20),), path, external_data=True, dynamic_axes={"input": [0]})
    assert onnx.load(path).graph.input[0].type.tensor_type.shape.dim[0].dim_param == "input_dim0"
    assert (tmp_path / "mlp.onnx.data").stat().st_size > path.stat().st_size
    x = cr.randn(4, 20)
    np.testing.assert_allclose(_run(path, "input", x), model.eval()(x).detach().cpu().numpy(), rtol=1e-5, atol=1e-5)


def test_cli_export(tmp_path, capsys):
    from chainrule.cli import main

    run = tmp_path / "mlp"
    assert main(["train", "mlp", "--out", str(run), "--epochs", "1", "--width", "16", "--quiet"]) == 0
    capsys.readouterr()
    assert main(["export", str(run), "--format", "onnx", "--opset", "17"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["max_abs_diff"] <= 1e-4 and (run / "model.onnx").exists()
    (run / "best.safetensors").write_bytes(b"garbage")
    assert main(["export", str(run), "--format", "onnx", "--checkpoint", "best.safetensors"]) == 2
    assert "best.safetensors" in capsys.readouterr().err
