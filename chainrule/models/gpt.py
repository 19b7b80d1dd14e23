"""A character-level decoder-only transformer (GPT): token and position embeddings, pre-LayerNorm blocks of
causal self-attention and a GELU MLP, a final LayerNorm and a linear head (optionally tied to the embedding)."""

from __future__ import annotations

import math

import chainrule as cr
from chainrule import nn
from chainrule.nn import functional as F


class CausalSelfAttention(nn.Module):
    def __init__(self, n_embd: int, n_head: int, dropout: float):
        super().__init__()
        self.n_head = n_head
        self.qkv = nn.Linear(n_embd, 3 * n_embd)
        self.proj = nn.Linear(n_embd, n_embd)
        self.dropout = dropout

    def forward(self, x):
        b, t, c = x.shape
        q, k, v = self.qkv(x).reshape(b, t, 3, self.n_head, c // self.n_head).permute(2, 0, 3, 1, 4).unbind(0)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True, dropout_p=self.dropout if self.training else 0.0)
        return self.proj(y.transpose(1, 2).reshape(b, t, c))


# activation name -> GELU's approximation: GPT-2's "gelu_new" is the tanh form; nanoGPT-style weights use the exact one
ACTIVATIONS = {"gelu_tanh": "tanh", "gelu": "none"}


class Block(nn.Module):
    def __init__(self, n_embd: int, n_head: int, dropout: float, n_inner: int | None = None,
                 layer_norm_eps: float = 1e-5, activation: str = "gelu_tanh"):
        super().__init__()
        hidden = n_inner or 4 * n_embd
        self.ln1 = nn.LayerNorm(n_embd, eps=layer_norm_eps)
        self.attn = CausalSelfAttention(n_embd, n_head, dropout)
        self.ln2 = nn.LayerNorm(n_embd, eps=layer_norm_eps)
        self.fc = nn.Linear(n_embd, hidden)
        self.act = nn.GELU(approximate=ACTIVATIONS[activation])  # a module, so diagnostics.watch sees its activations
        self.fc2 = nn.Linear(hidden, n_embd)
        self.drop = nn.Dropout(dropout)

    def forward(self, x):
        x = x + self.drop(self.attn(self.ln1(x)))
        return x + self.drop(self.fc2(self.act(self.fc(self.ln2(x)))))


class GPT(nn.Module):
    """GPT-2's architecture. ``n_inner`` (default 4 * n_embd), ``layer_norm_eps`` and ``activation`` ('gelu_tanh',
    GPT-2's; 'gelu', exact) let it hold any GPT-2 checkpoint: see :meth:`from_pretrained` and
    :meth:`save_pretrained`."""

    def __init__(self, vocab_size: int = 65, block_size: int = 64, n_layer: int = 4, n_head: int = 4, n_embd: int = 128,
                 dropout: float = 0.0, tie_weights: bool = False, n_inner: int | None = None,
                 layer_norm_eps: float = 1e-5, activation: str = "gelu_tanh"):
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(f"GPT: unknown activation {activation!r}; choose one of {sorted(ACTIVATIONS)}")
        if n_embd % n_head:
            raise ValueError(f"GPT: n_embd ({n_embd}) must be divisible by n_head ({n_head})")
        if min(vocab_size, block_size, n_layer, n_head, n_embd, n_inner or 1) < 1:
            raise ValueError("GPT: vocab_size, block_size, n_layer, n_head, n_embd and n_inner must all be positive")
        self.block_size = block_size
        self.tok_emb = nn.Embedding(vocab_size, n_embd)
        self.pos_emb = nn.Embedding(block_size, n_embd)
        self.drop = nn.Dropout(dropout)
        self.blocks = nn.ModuleList([Block(n_embd, n_head, dropout, n_inner, layer_norm_eps, activation)
                                     for _ in range(n_layer)])
        self.ln_f = nn.LayerNorm(n_embd, eps=layer_norm_eps)
        self.head = nn.Linear(n_embd, vocab_size, bias=False)
        self._init_weights(n_layer)
        if tie_weights:
            self.head.weight = self.tok_emb.weight

    def _init_weights(self, n_layer: int) -> None:
        """GPT-2's scheme: N(0, 0.02) weights, zero biases, residual projections scaled by 1/sqrt(2 n_layer)."""
        for name, p in self.named_parameters():
            if name.endswith("bias"):
                nn.init.zeros_(p)
            elif p.ndim == 2:
                std = 0.02 / math.sqrt(2 * n_layer) if name.endswith(("proj.weight", "fc2.weight")) else 0.02
                nn.init.normal_(p, 0.0, std)

    def forward(self, idx):
        b, t = idx.shape
        if t > self.block_size:
            raise ValueError(f"GPT: sequence length {t} exceeds block_size {self.block_size}")
        x = self.drop(self.tok_emb(idx) + self.pos_emb(cr.arange(t, device=idx.device)))
        for block in self.blocks:
            x = block(x)
        return self.head(self.ln_f(x))

    @cr.no_grad()
    def generate(self, idx, max_new_tokens: int, temperature: float = 1.0, top_k: int | None = None, generator=None):
        """Extend ``idx`` (B, T) by sampling one token at a time from the model's predictions."""
        from chainrule.random import default_generator

        if temperature <= 0:
            raise ValueError(f"generate: temperature must be positive, got {temperature}")
        rng = (generator or default_generator).numpy
        was_training = self.training
        self.eval()
        for _ in range(max_new_tokens):
            logits = self(idx[:, -self.block_size:])[:, -1, :] / temperature
            if top_k is not None:
                kth = logits.topk(min(top_k, logits.shape[-1]), -1).values[:, -1:]
                logits = logits.masked_fill(logits < kth, float("-inf"))
            probs = F.softmax(logits.double(), -1).cpu().numpy()  # drawn on the host by the numpy generator
            choice = [rng.choice(probs.shape[-1], p=row / row.sum()) for row in probs]
            idx = cr.cat([idx, cr.tensor(choice, device=idx.device)[:, None]], 1)
        self.train(was_training)
        return idx

    @classmethod
    def from_pretrained(cls, folder, dtype=None) -> GPT:
        """A GPT-2 checkpoint folder as Hugging Face transformers writes it (``config.json`` and
        ``model.safetensors`` or shards with their index), in float32 unless ``dtype`` says otherwise."""
        from chainrule.models.hf_gpt2 import load_gpt2

        return load_gpt2(folder, dtype=dtype)

    def save_pretrained(self, folder) -> None:
        """Write this model as a GPT-2 folder that transformers' ``GPT2LMHeadModel.from_pretrained`` loads."""
        from chainrule.models.hf_gpt2 import save_gpt2

        save_gpt2(self, folder)
