"""What the gradient-flow monitor costs: the gpt workload's training step with and without
``chainrule.diagnostics.watch`` recording every step, interleaved in one process.

    python bench/monitor_overhead.py                  # 6 rounds of 5 steps each way, 2 threads
    python bench/monitor_overhead.py --model chainrule    # chainrule.models.GPT (GELU as a module,
                                                          # so activation statistics are recorded too)

Two identical models from the same seed; one is watched (gradient and weight norms, update ratios, and
activation statistics for the activation modules it has). Prints the median step time of each and the
overhead, median watched / median plain - 1 (the issue's target: under 10%).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import chainrule as cr  # noqa: E402
from bench import workloads  # noqa: E402
from chainrule import diagnostics  # noqa: E402
from chainrule.backend.allocator import keep_freed_memory  # noqa: E402


def _trainers(model_kind: str):
    """Two identical training steps (plain, watched) and the monitor."""
    if model_kind == "bench":
        plain = workloads.workloads("sdpa")["gpt"].trainer(cr, 0)
        watched = workloads.workloads("sdpa")["gpt"].trainer(cr, 0)
    else:
        plain, watched = _chainrule_gpt(), _chainrule_gpt()
    monitor = diagnostics.watch(watched.model, watched.optimizer)
    return plain, watched, monitor


def _chainrule_gpt():
    """chainrule.models.GPT with the gpt workload's size, data, loss and optimizer."""
    import numpy as np

    from chainrule.models import GPT

    cfg, batch = workloads.REFERENCE.gpt, workloads.REFERENCE.gpt_batch
    cr.manual_seed(0)
    model = GPT(vocab_size=cfg.vocab, block_size=cfg.context, n_layer=cfg.layers, n_head=cfg.heads, n_embd=cfg.d_model)
    inputs, targets = workloads._gpt_data(batch, cfg)(np.random.default_rng(0))
    return workloads.Trainer(model, cr.tensor(inputs), cr.tensor(targets), workloads._token_cross_entropy(cr),
                             workloads._adamw(cr, model.parameters()))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--steps", type=int, default=5, help="steps per round each way")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--model", choices=("bench", "chainrule"), default="bench",
                        help="the benchmark's gpt (F.gelu) or chainrule.models.GPT (nn.GELU modules)")
    args = parser.parse_args(argv)
    keep_freed_memory()  # as bench/run.py measures
    cr.set_num_threads(args.threads)
    plain, watched, monitor = _trainers(args.model)
    for trainer in (plain, watched):
        trainer.step()  # warm-up
    times: dict[str, list[float]] = {"plain": [], "watched": []}
    for _ in range(args.rounds):
        for name, trainer in (("plain", plain), ("watched", watched)):
            for _ in range(args.steps):
                start = time.perf_counter()
                trainer.step()
                times[name].append(time.perf_counter() - start)
    plain_ms, watched_ms = (statistics.median(times[k]) * 1e3 for k in ("plain", "watched"))
    print(f"model: {args.model}; {args.rounds} rounds x {args.steps} steps each way, {args.threads} threads")
    print(f"activation modules watched: {len(monitor.activations)}; steps recorded: {len(monitor.steps)}")
    print(f"median step: plain {plain_ms:.1f} ms, watched {watched_ms:.1f} ms; "
          f"overhead {100 * (watched_ms / plain_ms - 1):+.1f}%")
    monitor.remove()


if __name__ == "__main__":
    main()
