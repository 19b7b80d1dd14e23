"""A sequence-to-sequence nn.Transformer that learns to reverse digit sequences of varying length,
in the style of PyTorch's "Language Translation with nn.Transformer" tutorial: token + positional
embeddings, a causal target mask, key-padding masks for source and target, teacher forcing with
cross-entropy that ignores padding, and greedy decoding at the end.

    python examples/seq2seq_transformer.py               # ~30 s: loss every 25 steps, then accuracy
    python examples/seq2seq_transformer.py --steps 800 --plot s2s.png

``build_model`` and ``train_step`` take the library (``chainrule`` or ``torch``) as an argument, so
tests/test_examples_ported.py runs the same code in both and compares the numbers.
"""

import argparse

import numpy as np

import chainrule as torch
from chainrule.train import plot_history

PAD, BOS, EOS = 0, 1, 2
VOCAB = 13  # the three specials and the digits 0..9 as tokens 3..12


def make_batch(rng, batch_size, min_len=3, max_len=8):
    """(src, tgt) int64 arrays: src = digits then EOS, tgt = BOS, the digits reversed, EOS; padded with PAD."""
    lengths = rng.integers(min_len, max_len + 1, batch_size)
    src = np.full((batch_size, max_len + 1), PAD, dtype=np.int64)
    tgt = np.full((batch_size, max_len + 2), PAD, dtype=np.int64)
    for i, n in enumerate(lengths):
        digits = rng.integers(3, VOCAB, n)
        src[i, :n], src[i, n] = digits, EOS
        tgt[i, 0], tgt[i, 1:n + 1], tgt[i, n + 1] = BOS, digits[::-1], EOS
    return src, tgt


def build_model(torch, d_model=32, nhead=4, layers=2, dim_feedforward=64, dropout=0.0, max_len=16):
    nn = torch.nn

    class Seq2SeqTransformer(nn.Module):
        def __init__(self):
            super().__init__()
            self.src_embed = nn.Embedding(VOCAB, d_model, padding_idx=PAD)
            self.tgt_embed = nn.Embedding(VOCAB, d_model, padding_idx=PAD)
            self.pos = nn.Embedding(max_len, d_model)
            self.transformer = nn.Transformer(d_model, nhead, layers, layers, dim_feedforward, dropout,
                                              batch_first=True)
            self.generator = nn.Linear(d_model, VOCAB)

        def embed(self, table, tokens):
            return table(tokens) * d_model ** 0.5 + self.pos(torch.arange(tokens.shape[1]))

        def encode(self, src):
            return self.transformer.encoder(self.embed(self.src_embed, src), src_key_padding_mask=src == PAD)

        def decode(self, tgt, memory, src):
            mask = nn.Transformer.generate_square_subsequent_mask(tgt.shape[1])
            out = self.transformer.decoder(self.embed(self.tgt_embed, tgt), memory, tgt_mask=mask,
                                           tgt_key_padding_mask=tgt == PAD, memory_key_padding_mask=src == PAD,
                                           tgt_is_causal=True)
            return self.generator(out)

        def forward(self, src, tgt):
            mask = nn.Transformer.generate_square_subsequent_mask(tgt.shape[1])
            out = self.transformer(self.embed(self.src_embed, src), self.embed(self.tgt_embed, tgt),
                                   tgt_mask=mask, src_key_padding_mask=src == PAD,
                                   tgt_key_padding_mask=tgt == PAD, memory_key_padding_mask=src == PAD)
            return self.generator(out)

    return Seq2SeqTransformer()


def train_step(torch, model, optimizer, src, tgt):
    """Teacher forcing: predict tgt[:, 1:] from tgt[:, :-1]; padding positions do not count."""
    model.train()
    optimizer.zero_grad()
    logits = model(src, tgt[:, :-1])
    loss = torch.nn.functional.cross_entropy(logits.reshape(-1, VOCAB), tgt[:, 1:].reshape(-1), ignore_index=PAD)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    optimizer.step()
    return loss.item()


def greedy_decode(torch, model, src, max_new):
    """Feed BOS, then append the most likely next token until every row has produced EOS."""
    model.eval()
    with torch.no_grad():
        memory = model.encode(src)
        ys = torch.full((src.shape[0], 1), BOS, dtype=torch.int64)
        for _ in range(max_new):
            nxt = model.decode(ys, memory, src)[:, -1].argmax(-1)
            ys = torch.cat([ys, nxt[:, None]], dim=1)
            if bool((ys == EOS).any(1).all()):
                break
    return ys


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=250)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--log-every", type=int, default=25)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--plot", help="save the learning curve to this image (needs matplotlib)")
    args = parser.parse_args(argv)

    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    model = build_model(torch)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr, betas=(0.9, 0.98), eps=1e-9)

    records = []
    for step in range(1, args.steps + 1):
        src, tgt = (torch.as_tensor(a) for a in make_batch(rng, args.batch_size))  # on the default device
        records.append({"step": step, "loss": train_step(torch, model, optimizer, src, tgt)})
        if step % args.log_every == 0 or step == args.steps:
            print(f"step {step:5d}  loss {records[-1]['loss']:.4f}")

    src, tgt = make_batch(np.random.default_rng(12345), 200)
    out = greedy_decode(torch, model, torch.as_tensor(src), tgt.shape[1] - 1).cpu().numpy()
    correct = 0
    for row, want in zip(out, tgt):
        want = want[1:list(want).index(EOS) + 1]
        correct += len(row) > len(want) and bool((row[1:len(want) + 1] == want).all())
    print(f"exact-match accuracy of greedy decoding on 200 new sequences: {correct / len(tgt):.3f}")
    for row, s in list(zip(out, src))[:3]:
        digits = [str(t - 3) for t in s if t > EOS]
        answer = [str(t - 3) for t in row[1:] if t > EOS][:len(digits)]
        print(f"  {' '.join(digits):<16} -> {' '.join(answer)}")
    if args.plot:  # chainrule's own plotter; a torch user would call matplotlib here
        plot_history({"steps": records}, args.plot, title="Transformer reversing digit sequences")
    return correct / len(tgt)


if __name__ == "__main__":
    main()
