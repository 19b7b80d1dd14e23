"""The reference models, written once against a framework namespace.

Every builder takes ``lib``, the top-level module of the framework (``chainrule`` or ``torch``), and
uses only ``lib.nn``, ``lib.nn.functional`` and ``lib.arange``/``lib.tensor``. Because chainrule follows
PyTorch's API, the same source builds both models: the algorithm is identical by construction and the
parameter names and shapes match, so a torch ``state_dict`` loads into the chainrule model unchanged.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = ["GPTConfig", "chain", "mlp", "cnn", "gpt", "lstm", "unet"]


def chain(lib, width: int, n_ops: int, seed: int):
    """``n_ops`` elementwise ops cycling (mul by a parameter, add a parameter, tanh) on a (width,)
    input: a graph of many tiny nodes that measures per-operation overhead. Each mul/add has its own
    parameter; the initial values come from numpy (seeded), so both frameworks start identical."""
    nn = lib.nn
    rng = np.random.default_rng(seed)
    n_mul = len(range(0, n_ops, 3))
    n_add = len(range(1, n_ops, 3))

    def params(count: int, center: float) -> list:
        return [nn.Parameter(lib.tensor((center + 0.1 * rng.standard_normal(width)).astype(np.float32)))
                for _ in range(count)]

    class Chain(nn.Module):
        def __init__(self):
            super().__init__()
            self.scales = nn.ParameterList(params(n_mul, 1.0))
            self.shifts = nn.ParameterList(params(n_add, 0.0))

        def forward(self, x):
            # index plain lists: ParameterList.__getitem__ would add container overhead to every op
            scales, shifts = list(self.scales), list(self.shifts)
            h = x
            for i in range(n_ops):
                kind, k = i % 3, i // 3
                if kind == 0:
                    h = h * scales[k]
                elif kind == 1:
                    h = h + shifts[k]
                else:
                    h = lib.tanh(h)
            return h

    return Chain()


def mlp(lib, sizes: tuple[int, ...]):
    """Linear layers of the given sizes with ReLU between them (none after the last)."""
    nn = lib.nn
    layers = []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(n_in, n_out))
        if i < len(sizes) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def cnn(lib):
    """conv(1->16, 3x3, pad 1), relu, maxpool 2, conv(16->32), relu, maxpool 2, flatten, linear(1568->10)."""
    nn = lib.nn
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(32 * 7 * 7, 10),
    )


@dataclass(frozen=True)
class GPTConfig:
    vocab: int = 65
    context: int = 64
    d_model: int = 128
    heads: int = 4
    layers: int = 4
    attention: str = "sdpa"  # "sdpa": F.scaled_dot_product_attention(is_causal=True); "explicit": masked softmax


def gpt(lib, cfg: GPTConfig):
    """A decoder-only character transformer: token + learned position embeddings, pre-LayerNorm blocks
    of causal self-attention and a 4x GELU(tanh) MLP, a final LayerNorm and a linear head."""
    if cfg.attention not in ("sdpa", "explicit"):
        raise ValueError(f"gpt: attention must be 'sdpa' or 'explicit', got {cfg.attention!r}")
    if cfg.d_model % cfg.heads:
        raise ValueError(f"gpt: d_model {cfg.d_model} must be divisible by heads {cfg.heads}")
    nn, F = lib.nn, lib.nn.functional
    d, heads = cfg.d_model, cfg.heads

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.ln1 = nn.LayerNorm(d)
            self.qkv = nn.Linear(d, 3 * d)
            self.proj = nn.Linear(d, d)
            self.ln2 = nn.LayerNorm(d)
            self.fc = nn.Linear(d, 4 * d)
            self.fc2 = nn.Linear(4 * d, d)
            if cfg.attention == "explicit":
                above = np.triu(np.ones((cfg.context, cfg.context), dtype=bool), k=1)
                self.register_buffer("future", lib.tensor(above), persistent=False)

        def attend(self, x):
            batch, length, _ = x.shape
            q, k, v = self.qkv(x).split(d, dim=-1)
            q, k, v = (t.view(batch, length, heads, d // heads).transpose(1, 2) for t in (q, k, v))
            if cfg.attention == "sdpa":
                y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
            else:
                scores = q.matmul(k.transpose(-2, -1)) * (1.0 / math.sqrt(d // heads))
                scores = scores.masked_fill(self.future[:length, :length], float("-inf"))
                y = F.softmax(scores, dim=-1).matmul(v)
            return self.proj(y.transpose(1, 2).reshape(batch, length, d))

        def forward(self, x):
            x = x + self.attend(self.ln1(x))
            return x + self.fc2(F.gelu(self.fc(self.ln2(x)), approximate="tanh"))

    class GPT(nn.Module):
        def __init__(self):
            super().__init__()
            self.tok_emb = nn.Embedding(cfg.vocab, d)
            self.pos_emb = nn.Embedding(cfg.context, d)
            self.blocks = nn.ModuleList([Block() for _ in range(cfg.layers)])
            self.ln_f = nn.LayerNorm(d)
            self.head = nn.Linear(d, cfg.vocab)

        def forward(self, idx):
            x = self.tok_emb(idx) + self.pos_emb(lib.arange(idx.shape[1], device=idx.device))
            for block in self.blocks:
                x = block(x)
            return self.head(self.ln_f(x))

    return GPT()


def lstm(lib, vocab: int, embed: int, hidden: int, layers: int):
    """A character LSTM language model: embedding, a ``layers``-deep batch-first LSTM, a linear head over
    every step's output."""
    nn = lib.nn

    class CharLSTM(nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = nn.Embedding(vocab, embed)
            self.rnn = nn.LSTM(embed, hidden, num_layers=layers, batch_first=True)
            self.head = nn.Linear(hidden, vocab)

        def forward(self, idx):
            out, _ = self.rnn(self.emb(idx))
            return self.head(out)

    return CharLSTM()


def unet(lib, width: int, groups: int):
    """A two-level U-Net: conv-GroupNorm-ReLU blocks, stride-2 convolutions down, 2x2 stride-2 transposed
    convolutions up, each level's encoder output concatenated onto the decoder's (the skip connections),
    and a 1x1 convolution to one channel. Channels: width, 2 width, 4 width at the bottom."""
    nn = lib.nn
    w = width

    def block(c_in: int, c_out: int, stride: int = 1):
        return nn.Sequential(nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1), nn.GroupNorm(groups, c_out), nn.ReLU())

    class UNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.enc1, self.down1, self.down2 = block(1, w), block(w, 2 * w, 2), block(2 * w, 4 * w, 2)
            self.up2, self.dec2 = nn.ConvTranspose2d(4 * w, 2 * w, 2, stride=2), block(4 * w, 2 * w)
            self.up1, self.dec1 = nn.ConvTranspose2d(2 * w, w, 2, stride=2), block(2 * w, w)
            self.out = nn.Conv2d(w, 1, 1)

        def forward(self, x):
            e1 = self.enc1(x)
            e2 = self.down1(e1)
            d2 = self.dec2(lib.cat([self.up2(self.down2(e2)), e2], dim=1))
            d1 = self.dec1(lib.cat([self.up1(d2), e1], dim=1))
            return self.out(d1)

    return UNet()
