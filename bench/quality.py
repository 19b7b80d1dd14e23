"""The quality bars of the `chainrule` command, measured: each recipe trained with its defaults, timed,
and checked against its bar.

    python bench/quality.py            # all three (about 15 minutes on 2 cores)
    python bench/quality.py mlp cnn    # some of them

Bars (defaults, 2 CPU cores): mlp on digits >= 97% test accuracy in under 30 s; cnn on mnist5k >= 97%
test accuracy in under 3 minutes; gpt on tiny Shakespeare validation loss <= 1.75 nats/char within 10
minutes, with samples that look like a play (names followed by colons, line structure). The time is the
training time (validation included, from the run's metrics log) until the first evaluation that met the
bar; the whole run's time is printed beside it.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
import time
from pathlib import Path

BARS = {
    "mlp": {"metric": "test_accuracy", "at_least": 0.97, "seconds": 30},
    "cnn": {"metric": "test_accuracy", "at_least": 0.97, "seconds": 180},
    "gpt": {"metric": "val_loss", "at_most": 1.75, "seconds": 600},
}


def looks_like_a_play(text: str) -> bool:
    """Speaker names in capitals followed by a colon at the start of a line, and several lines."""
    speakers = re.findall(r"^[A-Z][A-Za-z ]+:", text, flags=re.MULTILINE)
    return len(speakers) >= 2 and text.count("\n") >= 5


def seconds_to_reach(out: Path, bar: dict) -> float | None:
    """Training seconds (validation included) until the first evaluation that met the bar, from the
    run's metrics log; None if none did."""
    elapsed = 0.0
    key = "val_" + bar["metric"].split("_", 1)[1]
    for line in (out / "metrics.jsonl").read_text().splitlines():
        record = json.loads(line)
        elapsed += record["seconds"]
        value = record.get(key)
        if value is not None and (value >= bar["at_least"] if "at_least" in bar else value <= bar["at_most"]):
            return elapsed
    return None


def measure(kind: str, out: Path) -> dict:
    from chainrule import recipes

    started = time.perf_counter()
    summary = recipes.train_run(kind, out, overwrite=True, verbose=0)
    seconds = time.perf_counter() - started
    bar = BARS[kind]
    value = summary[bar["metric"]]
    good = value >= bar["at_least"] if "at_least" in bar else value <= bar["at_most"]
    reached = seconds_to_reach(out, bar)
    row = {"kind": kind, "metric": bar["metric"], "value": value, "seconds": round(seconds, 1),
           "seconds_to_bar": None if reached is None else round(reached, 1), "metric_met": good,
           "time_met": reached is not None and reached <= bar["seconds"]}
    if kind == "gpt":
        sample = recipes.sample_run(out, "ROMEO:", 300)
        row["sample"] = sample
        row["sample_looks_like_a_play"] = looks_like_a_play(sample)
    return row


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("kinds", nargs="*", metavar="KIND", help=f"which recipes (default: all of {', '.join(BARS)})")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args(argv)
    unknown = [k for k in args.kinds if k not in BARS]
    if unknown:
        parser.error(f"unknown recipe(s) {unknown}; choose from {list(BARS)}")
    args.kinds = args.kinds or list(BARS)
    import chainrule as cr

    cr.set_num_threads(args.threads)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for kind in args.kinds:
            rows.append(measure(kind, Path(tmp) / kind))
            row = rows[-1]
            bar = BARS[kind]
            target = f">= {bar['at_least']}" if "at_least" in bar else f"<= {bar['at_most']}"
            print(f"{kind}: {row['metric']} {row['value']:.4f} (bar {target}: {'met' if row['metric_met'] else 'MISSED'}); "
                  f"bar reached after {row['seconds_to_bar']} s of training (limit {bar['seconds']} s: "
                  f"{'met' if row['time_met'] else 'MISSED'}); whole run {row['seconds']} s", flush=True)
            if "sample" in row:
                print(f"  sample looks like a play: {row['sample_looks_like_a_play']}\n" + row["sample"])
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))
    return 0 if all(r["metric_met"] and r["time_met"] and r.get("sample_looks_like_a_play", True) for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
