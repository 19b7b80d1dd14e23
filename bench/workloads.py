"""The reference workloads: what one training step is, its data, and its matmul FLOPs.

A workload builds a :class:`Trainer` for one framework (``lib`` is ``chainrule`` or ``torch``). Data and
the overhead chain's parameters come from numpy with a fixed seed, so they are identical on both sides;
the other models take PyTorch's initialisation and, when a torch model is given as ``init_from``, the
chainrule model loads its ``state_dict`` so both start from the same weights.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

from bench import models

__all__ = ["Trainer", "Workload", "Sizes", "workloads", "OVERHEAD_OPS"]

OVERHEAD_OPS = 200


class Trainer:
    """One training step: zero the gradients, forward, loss, backward, optimizer update (when there is
    an optimizer). Keeps the loss of the first two steps as Python floats for the equal-work check."""

    def __init__(self, model, inputs, targets, loss_fn: Callable, optimizer=None):
        self.model, self.inputs, self.targets = model, inputs, targets
        self.loss_fn, self.optimizer = loss_fn, optimizer
        self.losses: list[float] = []

    def step(self, marks: list | None = None):
        """One step; with ``marks``, ``time.perf_counter()`` is appended after each phase (zero_grad,
        forward, loss, backward, update) for bench/phases.py."""
        if self.optimizer is not None:
            self.optimizer.zero_grad()
        else:
            self.model.zero_grad()
        if marks is not None:
            marks.append(time.perf_counter())
        output = self.model(self.inputs)
        if marks is not None:
            marks.append(time.perf_counter())
        loss = self.loss_fn(output, self.targets)
        if marks is not None:
            marks.append(time.perf_counter())
        loss.backward()
        if marks is not None:
            marks.append(time.perf_counter())
        if self.optimizer is not None:
            self.optimizer.step()
        if marks is not None:
            marks.append(time.perf_counter())
        if len(self.losses) < 2:
            self.losses.append(float(loss.item()))
        return loss


@dataclass(frozen=True)
class Workload:
    name: str
    summary: str
    build_model: Callable  # (lib, seed) -> module
    make_data: Callable  # (rng) -> (inputs, targets) as numpy arrays
    make_loss: Callable  # (lib) -> loss function of (output, targets)
    make_optimizer: Callable | None  # (lib, params) -> optimizer, None for no update
    matmul_flops: int  # per step: forward and backward GEMMs (0 when there are none)
    target_vs_torch: float  # chainrule time / torch time to aim for
    steps_per_round: int
    target_vs_gemm: float | None = None  # chainrule time / GEMM-limited time to aim for
    per_op: int | None = None  # report step time / per_op as time per op

    def trainer(self, lib, seed: int, init_from=None, device=None) -> Trainer:
        """Build model, data, loss and optimizer for ``lib``. With ``init_from`` (a torch module of the same
        architecture) the model's weights are loaded from it before the optimizer is made. ``device`` (e.g.
        "cuda"; None: the library's default) is where the model, its data and the optimizer's state live."""
        lib.manual_seed(seed)
        model = self.build_model(lib, seed)
        if init_from is not None:
            model.load_state_dict({k: lib.tensor(v.detach().cpu().numpy()) for k, v in init_from.state_dict().items()})
        if device is not None:
            model.to(device)
        inputs, targets = self.make_data(np.random.default_rng(seed))
        optimizer = self.make_optimizer(lib, model.parameters()) if self.make_optimizer else None
        return Trainer(model, lib.tensor(inputs, device=device), lib.tensor(targets, device=device),
                       self.make_loss(lib), optimizer)


def _gemm(m: int, k: int, n: int) -> int:
    """FLOPs of an (m, k) @ (k, n) product."""
    return 2 * m * k * n


def _dense_flops(batch: int, sizes: tuple[int, ...]) -> int:
    """Forward, weight-gradient and input-gradient GEMMs of a stack of Linear layers. The first layer's
    input is data, so its input gradient is not needed (neither framework computes it)."""
    layers = list(zip(sizes[:-1], sizes[1:]))
    forward = sum(_gemm(batch, i, o) for i, o in layers)
    input_grads = sum(_gemm(batch, o, i) for i, o in layers[1:])
    return 2 * forward + input_grads


def _cnn_flops(batch: int) -> int:
    """Convolutions as im2col GEMMs (out_channels x in_channels*9 x pixels) plus the linear head."""
    conv1 = _gemm(16, 1 * 9, batch * 28 * 28)
    conv2 = _gemm(32, 16 * 9, batch * 14 * 14)
    head = _gemm(batch, 32 * 7 * 7, 10)
    return 2 * conv1 + 3 * conv2 + 3 * head  # conv1 needs no input gradient


def _gpt_flops(batch: int, cfg: models.GPTConfig) -> int:
    """Linear layers of every block and the head, plus q k^T and weights @ v over the full L x L square
    (the causal half is still computed by a masked softmax); everything runs forward, then backward twice
    (gradient of both operands: activations require gradients from the embeddings on)."""
    tokens, d, length = batch * cfg.context, cfg.d_model, cfg.context
    per_block = _gemm(tokens, d, 3 * d) + _gemm(tokens, d, d) + _gemm(tokens, d, 4 * d) + _gemm(tokens, 4 * d, d)
    attention = 2 * _gemm(batch * length, d, length)  # summed over heads: d = heads * head_dim
    head = _gemm(tokens, d, cfg.vocab)
    return 3 * (cfg.layers * (per_block + attention) + head)


def _lstm_flops(batch: int, context: int, embed: int, hidden: int, layers: int, vocab: int) -> int:
    """Per layer, the input projection of all steps at once and the recurrent product of every step (all
    four gates together), plus the head; everything forward, then backward twice (the embedding's weights
    need the first layer's input gradient)."""
    tokens = batch * context
    per_layer = [_gemm(tokens, embed if k == 0 else hidden, 4 * hidden) + _gemm(tokens, hidden, 4 * hidden)
                 for k in range(layers)]
    return 3 * (sum(per_layer) + _gemm(tokens, hidden, vocab))


def _unet_flops(batch: int, size: int, w: int) -> int:
    """Convolutions as im2col GEMMs (out_channels x in_channels*k*k x pixels), transposed ones as the GEMM
    of their input (out_channels*k*k x in_channels x input pixels); forward, weight and input gradients
    (the first convolution's input is data: no input gradient)."""
    full, half, quarter = batch * size * size, batch * (size // 2) ** 2, batch * (size // 4) ** 2
    enc1 = _gemm(w, 1 * 9, full)
    rest = (_gemm(2 * w, w * 9, half) + _gemm(4 * w, 2 * w * 9, quarter)  # down1, down2
            + _gemm(2 * w * 4, 4 * w, quarter) + _gemm(2 * w, 4 * w * 9, half)  # up2, dec2
            + _gemm(w * 4, 2 * w, half) + _gemm(w, 2 * w * 9, full) + _gemm(1, w, full))  # up1, dec1, out
    return 2 * enc1 + 3 * rest


def _chain_data(rng):
    return rng.standard_normal(16).astype(np.float32), np.zeros((), dtype=np.float32)


def _classification_data(shape: tuple[int, ...], classes: int):
    def make(rng):
        return rng.standard_normal(shape).astype(np.float32), rng.integers(0, classes, shape[0]).astype(np.int64)
    return make


def _token_data(batch: int, context: int, vocab: int):
    """Random token sequences and the same sequences shifted by one (next-token targets)."""
    def make(rng):
        tokens = rng.integers(0, vocab, (batch, context + 1)).astype(np.int64)
        return tokens[:, :-1].copy(), tokens[:, 1:].copy()
    return make


def _gpt_data(batch: int, cfg: models.GPTConfig):
    return _token_data(batch, cfg.context, cfg.vocab)


def _denoising_data(batch: int, size: int):
    """A smooth random image per sample (the target) and the same image with noise added (the input)."""
    def make(rng):
        coarse = rng.standard_normal((batch, 1, size // 8, size // 8)).astype(np.float32)
        clean = np.repeat(np.repeat(coarse, 8, axis=2), 8, axis=3)
        return clean + 0.5 * rng.standard_normal(clean.shape).astype(np.float32), clean
    return make


def _regression_data(batch: int, width_in: int, width_out: int):
    def make(rng):
        x = rng.standard_normal((batch, width_in)).astype(np.float32)
        return x, rng.standard_normal((batch, width_out)).astype(np.float32)
    return make


def _sum_loss(lib):
    return lambda out, _target: out.sum()


def _cross_entropy(lib):
    return lib.nn.CrossEntropyLoss()


def _token_cross_entropy(lib):
    loss = lib.nn.CrossEntropyLoss()
    return lambda logits, targets: loss(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))


def _mse(lib):
    return lib.nn.MSELoss()


def _sgd(lr: float):
    return lambda lib, params: lib.optim.SGD(params, lr=lr)


def _adam(lib, params):
    return lib.optim.Adam(params, lr=1e-3)


def _adamw(lib, params):
    return lib.optim.AdamW(params, lr=3e-4, weight_decay=0.01)


@dataclass(frozen=True)
class Sizes:
    """The shapes of the workloads: the reference sizes, or small ones for ``--quick`` smoke runs."""

    mlp: tuple[int, ...] = (784, 512, 512, 10)
    mlp_batch: int = 128
    cnn_batch: int = 64
    gpt: models.GPTConfig = models.GPTConfig()
    gpt_batch: int = 32
    wide: tuple[int, ...] = (2048, 2048, 2048, 2048)
    wide_batch: int = 512
    lstm: tuple[int, int, int, int] = (65, 128, 256, 2)  # vocab, embedding, hidden, layers
    lstm_context: int = 64
    lstm_batch: int = 32
    unet_width: int = 16  # channels at the top level (2x and 4x below)
    unet_size: int = 64
    unet_batch: int = 16


REFERENCE = Sizes()
SMALL = Sizes(mlp=(784, 64, 64, 10), mlp_batch=16, cnn_batch=4,
              gpt=models.GPTConfig(context=16, d_model=32, heads=4, layers=2), gpt_batch=4,
              wide=(256, 256, 256, 256), wide_batch=64, lstm=(65, 16, 32, 2), lstm_context=8, lstm_batch=4,
              unet_width=8, unet_size=16, unet_batch=2)
UNET_GROUPS = 4


def _arrow(sizes: tuple[int, ...]) -> str:
    return "-".join(str(n) for n in sizes)


def workloads(gpt_attention: str = "sdpa", small: bool = False) -> dict[str, Workload]:
    """All reference workloads by name, in report order. ``small`` shrinks every shape (same structure,
    same checks) so that a smoke run takes seconds; ``gpt_attention`` picks how the GPT computes attention."""
    z = SMALL if small else REFERENCE
    g = replace(z.gpt, attention=gpt_attention)
    vocab, embed, hidden, layers = z.lstm
    uw = z.unet_width
    table = [
        Workload("overhead", f"x of shape (16,), {OVERHEAD_OPS} chained mul/add/tanh ops with (16,) parameters, sum, "
                 "backward (no optimizer; gradients reset to None each step)",
                 lambda lib, seed: models.chain(lib, 16, OVERHEAD_OPS, seed), _chain_data, _sum_loss, None,
                 matmul_flops=0, target_vs_torch=0.5, steps_per_round=40, per_op=OVERHEAD_OPS),
        Workload("mlp", f"{_arrow(z.mlp)} ReLU MLP, batch {z.mlp_batch}, cross-entropy, SGD lr 0.1",
                 lambda lib, seed: models.mlp(lib, z.mlp), _classification_data((z.mlp_batch, z.mlp[0]), z.mlp[-1]),
                 _cross_entropy, _sgd(0.1), matmul_flops=_dense_flops(z.mlp_batch, z.mlp), target_vs_torch=1.0,
                 steps_per_round=10),
        Workload("cnn", "conv(1->16,3x3,pad 1)-relu-maxpool 2-conv(16->32,3x3,pad 1)-relu-maxpool 2-linear(1568->10), "
                 f"batch {z.cnn_batch} of 1x28x28, cross-entropy, SGD lr 0.05",
                 lambda lib, seed: models.cnn(lib), _classification_data((z.cnn_batch, 1, 28, 28), 10), _cross_entropy,
                 _sgd(0.05), matmul_flops=_cnn_flops(z.cnn_batch), target_vs_torch=1.0, steps_per_round=5),
        Workload("gpt", f"char transformer: vocab {g.vocab}, context {g.context}, d_model {g.d_model}, {g.heads} heads, "
                 f"{g.layers} layers, pre-LN, GELU(tanh) MLP 4x, learned positions, batch {z.gpt_batch}, "
                 f"AdamW lr 3e-4 wd 0.01, attention={gpt_attention}",
                 lambda lib, seed: models.gpt(lib, g), _gpt_data(z.gpt_batch, g), _token_cross_entropy, _adamw,
                 matmul_flops=_gpt_flops(z.gpt_batch, g), target_vs_torch=1.0, steps_per_round=3),
        Workload("wide", f"{_arrow(z.wide)} ReLU MLP, batch {z.wide_batch}, MSE, SGD lr 0.01 (GEMM-bound)",
                 lambda lib, seed: models.mlp(lib, z.wide), _regression_data(z.wide_batch, z.wide[0], z.wide[-1]), _mse,
                 _sgd(0.01), matmul_flops=_dense_flops(z.wide_batch, z.wide), target_vs_torch=1.1, steps_per_round=2,
                 target_vs_gemm=1.2),
        Workload("lstm", f"char LSTM: vocab {vocab}, embedding {embed}, {layers}-layer LSTM hidden {hidden}, "
                 f"sequence {z.lstm_context}, batch {z.lstm_batch}, linear head, cross-entropy, Adam lr 1e-3",
                 lambda lib, seed: models.lstm(lib, vocab, embed, hidden, layers),
                 _token_data(z.lstm_batch, z.lstm_context, vocab), _token_cross_entropy, _adam,
                 matmul_flops=_lstm_flops(z.lstm_batch, z.lstm_context, embed, hidden, layers, vocab),
                 target_vs_torch=1.0, steps_per_round=3),
        Workload("unet", f"U-Net: conv3x3-GroupNorm({UNET_GROUPS})-ReLU blocks of {uw}/{2 * uw}/{4 * uw} channels, "
                 "stride-2 conv down, ConvTranspose2d(2, stride 2) up, concatenated skips, 1x1 conv out, "
                 f"batch {z.unet_batch} of 1x{z.unet_size}x{z.unet_size} (denoising), MSE, Adam lr 1e-3",
                 lambda lib, seed: models.unet(lib, uw, UNET_GROUPS), _denoising_data(z.unet_batch, z.unet_size),
                 _mse, _adam, matmul_flops=_unet_flops(z.unet_batch, z.unet_size, uw), target_vs_torch=1.0,
                 steps_per_round=2),
    ]
    return {w.name: w for w in table}
