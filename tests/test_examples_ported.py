"""The ported PyTorch example programs in examples/: each model and training step, built once with
torch and once with chainrule from the same weights, gives the same losses and parameters after a few
steps on the same batch; and each script's main runs end to end with tiny settings."""

import importlib
import sys
from pathlib import Path

import numpy as np
import pytest

import chainrule as cr

torch = pytest.importorskip("torch")

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
sys.path.insert(0, str(EXAMPLES))

TOLERANCE = {"float64": 1e-8, "float32": 2e-4}
STEPS = 3


def example(name):
    return importlib.import_module(name)


def copy_weights(theirs, ours, dtype):
    ours.to(dtype)
    ours.load_state_dict({k: cr.tensor(v.detach().cpu().numpy()) for k, v in theirs.state_dict().items()})


def as_lib(lib, array, dtype=None):
    t = lib.tensor(array)
    return t.to(getattr(lib, dtype)) if dtype else t


def assert_same(theirs, ours, t_losses, c_losses, rtol, label):
    np.testing.assert_allclose(c_losses, t_losses, rtol=rtol, atol=rtol * 1e-2, err_msg=f"{label}: losses")
    reference = {k: v.detach().cpu().numpy() for k, v in theirs.state_dict().items()}
    mine = {k: v.detach().cpu().numpy() for k, v in ours.state_dict().items()}
    assert mine.keys() == reference.keys()
    for name, value in reference.items():
        np.testing.assert_allclose(mine[name], value, rtol=rtol, atol=rtol * 1e-2, err_msg=f"{label}: {name}")


def twin(build, dtype, *args, **kwargs):
    """The same model in both libraries, chainrule's carrying torch's initial weights."""
    torch.manual_seed(0)
    theirs = build(torch, *args, **kwargs).to(getattr(torch, dtype))
    ours = build(cr, *args, **kwargs)
    copy_weights(theirs, ours, dtype)
    return theirs, ours


@pytest.mark.parametrize("dtype", sorted(TOLERANCE))
def test_char_lstm_matches_pytorch(dtype):
    m = example("char_lstm")
    theirs, ours = twin(lambda lib, **kw: m.build_model(lib.nn, **kw), dtype, vocab_size=11, embed=6, hidden=10)
    rng = np.random.default_rng(0)
    ids = rng.integers(0, 11, (4, 9))
    x, y = ids[:, :-1], ids[:, 1:]
    t_opt, c_opt = torch.optim.Adam(theirs.parameters(), lr=1e-2), cr.optim.Adam(ours.parameters(), lr=1e-2)
    t_losses = [m.train_step(torch, theirs, t_opt, torch.tensor(x), torch.tensor(y), clip=0.5) for _ in range(STEPS)]
    c_losses = [m.train_step(cr, ours, c_opt, cr.tensor(x), cr.tensor(y), clip=0.5) for _ in range(STEPS)]
    assert_same(theirs, ours, t_losses, c_losses, TOLERANCE[dtype], "char_lstm")


@pytest.mark.parametrize("dtype", sorted(TOLERANCE))
def test_dcgan_matches_pytorch(dtype):
    m = example("dcgan_digits")
    torch.manual_seed(0)
    t_g, t_d = (net.to(getattr(torch, dtype)) for net in m.build_models(torch.nn, nz=5, ngf=4, ndf=4))
    c_g, c_d = m.build_models(cr.nn, nz=5, ngf=4, ndf=4)
    t_g.apply(m.weights_init)
    t_d.apply(m.weights_init)
    copy_weights(t_g, c_g, dtype)
    copy_weights(t_d, c_d, dtype)
    rng = np.random.default_rng(0)
    real = rng.uniform(-1, 1, (6, 1, 16, 16))
    noise = rng.standard_normal((6, 5, 1, 1))
    t_opts = [torch.optim.Adam(n.parameters(), lr=2e-3, betas=(0.5, 0.999)) for n in (t_g, t_d)]
    c_opts = [cr.optim.Adam(n.parameters(), lr=2e-3, betas=(0.5, 0.999)) for n in (c_g, c_d)]
    t_losses = [m.train_step(torch, t_g, t_d, *t_opts, as_lib(torch, real, dtype), as_lib(torch, noise, dtype))
                for _ in range(STEPS)]
    c_losses = [m.train_step(cr, c_g, c_d, *c_opts, as_lib(cr, real, dtype), as_lib(cr, noise, dtype))
                for _ in range(STEPS)]
    assert_same(t_g, c_g, t_losses, c_losses, TOLERANCE[dtype], "dcgan generator")
    assert_same(t_d, c_d, t_losses, c_losses, TOLERANCE[dtype], "dcgan discriminator")


@pytest.mark.parametrize("dtype", sorted(TOLERANCE))
def test_vae_matches_pytorch(dtype):
    m = example("vae")
    theirs, ours = twin(m.build_model, dtype, pixels=12, hidden=10, latent=3)
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, (5, 12))
    eps = [rng.standard_normal((5, 3)) for _ in range(STEPS)]
    t_opt, c_opt = torch.optim.Adam(theirs.parameters(), lr=1e-2), cr.optim.Adam(ours.parameters(), lr=1e-2)
    t_losses = [m.train_step(torch, theirs, t_opt, as_lib(torch, x, dtype), as_lib(torch, e, dtype)) for e in eps]
    c_losses = [m.train_step(cr, ours, c_opt, as_lib(cr, x, dtype), as_lib(cr, e, dtype)) for e in eps]
    assert_same(theirs, ours, t_losses, c_losses, TOLERANCE[dtype], "vae")


@pytest.mark.parametrize("dtype", sorted(TOLERANCE))
def test_unet_matches_pytorch(dtype):
    m = example("unet_denoise")
    theirs, ours = twin(m.build_model, dtype, width=4, groups=2)
    rng = np.random.default_rng(0)
    clean = rng.uniform(0, 1, (3, 1, 8, 8))
    noisy = clean + 0.3 * rng.standard_normal(clean.shape)
    t_opt, c_opt = torch.optim.AdamW(theirs.parameters(), lr=1e-2), cr.optim.AdamW(ours.parameters(), lr=1e-2)
    t_losses = [m.train_step(torch, theirs, t_opt, as_lib(torch, noisy, dtype), as_lib(torch, clean, dtype))
                for _ in range(STEPS)]
    c_losses = [m.train_step(cr, ours, c_opt, as_lib(cr, noisy, dtype), as_lib(cr, clean, dtype))
                for _ in range(STEPS)]
    assert_same(theirs, ours, t_losses, c_losses, TOLERANCE[dtype], "unet")


@pytest.mark.parametrize("dtype", sorted(TOLERANCE))
def test_seq2seq_transformer_matches_pytorch(dtype):
    m = example("seq2seq_transformer")
    theirs, ours = twin(m.build_model, dtype, d_model=8, nhead=2, layers=1, dim_feedforward=12)
    src, tgt = m.make_batch(np.random.default_rng(0), 5, max_len=5)
    t_opt, c_opt = torch.optim.Adam(theirs.parameters(), lr=1e-2), cr.optim.Adam(ours.parameters(), lr=1e-2)
    t_losses = [m.train_step(torch, theirs, t_opt, torch.tensor(src), torch.tensor(tgt)) for _ in range(STEPS)]
    c_losses = [m.train_step(cr, ours, c_opt, cr.tensor(src), cr.tensor(tgt)) for _ in range(STEPS)]
    # the key projection's bias adds one constant to all scores of a query, which softmax ignores: its
    # exact gradient is 0 and both libraries update it from rounding noise, so it is left out
    for net in (theirs, ours):
        for name, p in net.named_parameters():
            if name.endswith("in_proj_bias"):
                p.data[8:16] = 0
    assert_same(theirs, ours, t_losses, c_losses, TOLERANCE[dtype], "seq2seq")
    # greedy decoding agrees too
    t_out = m.greedy_decode(torch, theirs, torch.tensor(src), 4).cpu().numpy()
    c_out = m.greedy_decode(cr, ours, cr.tensor(src), 4).cpu().numpy()
    np.testing.assert_array_equal(c_out, t_out)


@pytest.mark.parametrize("name, argv", [
    ("char_lstm", ["--steps", "2", "--batch-size", "4", "--block-size", "8", "--sample-length", "10"]),
    ("dcgan_digits", ["--steps", "2", "--batch-size", "8"]),
    ("vae", ["--epochs", "1"]),
    ("unet_denoise", ["--steps", "2", "--batch-size", "4"]),
    ("seq2seq_transformer", ["--steps", "2", "--batch-size", "8"]),
])
def test_example_main_runs(name, argv, capsys, tmp_path):
    pytest.importorskip("matplotlib")
    result = example(name).main(argv + ["--log-every", "1", "--plot", str(tmp_path / "curve.png")]
                                if name != "vae" else argv + ["--plot", str(tmp_path / "curve.png")])
    out = capsys.readouterr().out
    assert np.isfinite(result)
    assert "loss" in out
    assert (tmp_path / "curve.png").stat().st_size > 0
