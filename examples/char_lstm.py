"""A character-level LSTM language model on tiny Shakespeare (embedding -> 2-layer LSTM -> linear),
in the style of PyTorch's word_language_model / char-rnn examples; only the import differs.

    python examples/char_lstm.py                  # ~35 s on two cores: loss every 20 steps, then a sample
    python examples/char_lstm.py --steps 400 --plot lstm.png

The model and the training step take the library as an argument (``chainrule`` or ``torch``), so
tests/test_examples_ported.py runs the very same code in both and compares the numbers.
"""

import argparse
import math

import chainrule as torch
from chainrule.data import load_tinyshakespeare, sample_batch
from chainrule.train import plot_history


def build_model(nn, vocab_size=65, embed=32, hidden=128, layers=2, dropout=0.0):
    class CharLSTM(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = nn.Embedding(vocab_size, embed)
            self.lstm = nn.LSTM(embed, hidden, num_layers=layers, batch_first=True, dropout=dropout)
            self.head = nn.Linear(hidden, vocab_size)

        def forward(self, x, state=None):
            out, state = self.lstm(self.embed(x), state)
            return self.head(out), state

    return CharLSTM()


def train_step(torch, model, optimizer, x, y, clip=1.0):
    """One step of next-character prediction on ids ``x`` -> ``y`` (both (B, T)); returns the loss."""
    model.train()
    optimizer.zero_grad()
    logits, _ = model(x)
    loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
    optimizer.step()
    return loss.item()


def sample(torch, model, vocab, prompt="ROMEO:\n", length=200, temperature=0.8):
    """Feed ``prompt`` and then draw ``length`` characters one at a time, carrying the LSTM state."""
    model.eval()
    with torch.no_grad():
        ids = torch.tensor([vocab.encode(prompt)])
        logits, state = model(ids)
        out = []
        for _ in range(length):
            probs = torch.softmax(logits[0, -1] / temperature, dim=-1)
            # chainrule has no torch.multinomial (reported as missing): draw one index by inverting the
            # cumulative distribution with a uniform number, which is the same distribution
            nxt = int((probs.cumsum(0) < torch.rand(1)).sum().item())
            nxt = min(nxt, len(vocab) - 1)
            out.append(nxt)
            logits, state = model(torch.tensor([[nxt]]), state)
    return prompt + vocab.decode(out)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--block-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--log-every", type=int, default=20)
    parser.add_argument("--sample-length", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--plot", help="save the learning curve to this image (needs matplotlib)")
    args = parser.parse_args(argv)

    torch.manual_seed(args.seed)
    train_ids, vocab = load_tinyshakespeare("train")
    val_ids, _ = load_tinyshakespeare("val")
    model = build_model(torch.nn, vocab_size=len(vocab))
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)

    losses = []
    for step in range(1, args.steps + 1):
        x, y = sample_batch(train_ids, args.batch_size, args.block_size)
        losses.append(train_step(torch, model, optimizer, x, y))
        if step % args.log_every == 0 or step == args.steps:
            print(f"step {step:5d}  loss {sum(losses[-args.log_every:]) / len(losses[-args.log_every:]):.4f}")

    model.eval()
    with torch.no_grad():
        x, y = sample_batch(val_ids, 64, args.block_size)
        logits, _ = model(x)
        val = torch.nn.functional.cross_entropy(logits.reshape(-1, len(vocab)), y.reshape(-1)).item()
    print(f"validation loss {val:.4f}  (perplexity {math.exp(val):.2f}; uniform guessing gives {math.log(len(vocab)):.4f})")
    print(sample(torch, model, vocab, length=args.sample_length))
    if args.plot:  # chainrule's own plotter; a torch user would call matplotlib here
        plot_history({"steps": [{"step": i + 1, "loss": v} for i, v in enumerate(losses)]}, args.plot, title="char-LSTM")
    return val


if __name__ == "__main__":
    main()
