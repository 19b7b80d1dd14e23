"""Weights PyTorch writes with safetensors.torch.save_file load into the same architecture built from
chainrule.nn, and the two models then compute the same outputs."""

import numpy as np
import pytest

import chainrule as cr
from chainrule import io, nn

torch = pytest.importorskip("torch")
st_torch = pytest.importorskip("safetensors.torch")


def cnn(lib):
    return lib.Sequential(lib.Conv2d(1, 4, 3, padding=1), lib.BatchNorm2d(4), lib.ReLU(), lib.MaxPool2d(2),
                          lib.Flatten(), lib.Linear(4 * 4 * 4, 3))


def encoder(lib):
    return lib.Sequential(lib.TransformerEncoderLayer(8, 2, 16, dropout=0.0, batch_first=True, norm_first=True),
                          lib.LayerNorm(8), lib.Linear(8, 5))


@pytest.mark.parametrize("build, shape", [(cnn, (2, 1, 8, 8)), (encoder, (2, 6, 8))])
def test_pytorch_saved_weights_give_the_same_outputs(tmp_path, build, shape):
    torch.manual_seed(0)
    theirs = build(torch.nn).eval()
    if isinstance(theirs[1], torch.nn.BatchNorm2d):  # non-trivial running statistics
        theirs[1].running_mean.uniform_(-1, 1)
        theirs[1].running_var.uniform_(0.5, 2)
    path = tmp_path / "weights.safetensors"
    st_torch.save_file({k: v.contiguous() for k, v in theirs.state_dict().items()}, str(path))

    ours = build(nn).eval()
    ours.load_state_dict(io.load_state_dict(path))
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    with torch.no_grad():
        expected = theirs(torch.tensor(x)).cpu().numpy()
    np.testing.assert_allclose(ours(cr.tensor(x)).detach().cpu().numpy(), expected, rtol=1e-4, atol=1e-5)
