"""What autocast's seam costs (chainrule/amp.py): an op entry called in place of the op's own function (what
every call would pay if the entries stayed in place outside regions), and opening and closing a region (the
outermost one puts the entries in place and takes them away).

    python bench/amp_overhead.py
"""

from __future__ import annotations

import sys
import timeit
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import chainrule as cr  # noqa: E402
import chainrule.nn.functional as F  # noqa: E402


def _best_us(fn, number: int) -> float:
    return min(timeit.repeat(fn, number=number, repeat=7)) / number * 1e6


def main() -> int:
    x, w, b = cr.randn(16), cr.randn(16, 16), cr.randn(16)
    with cr.autocast("cpu", dtype=cr.float16):
        entries = {"exp": (cr.exp, (x,)), "Tensor.sum": (cr.Tensor.sum, (x,)), "linear": (F.linear, (x, w, b))}
    for name, (entry, args) in entries.items():
        own = entry.__autocast_wrapped__
        with_entry = _best_us(lambda fn=entry, a=args: fn(*a), 20000)
        without = _best_us(lambda fn=own, a=args: fn(*a), 20000)
        print(f"{name} of 16 numbers, outside any region: through the entry {with_entry:.2f} us, the op itself "
              f"{without:.2f} us (+{(with_entry - without) * 1e3:.0f} ns a call)")

    def region():
        with cr.autocast("cpu"):
            pass

    print(f"an empty outermost region (entries in place and back): {_best_us(region, 2000):.1f} us")
    with cr.autocast("cpu"):
        print(f"an empty nested region: {_best_us(region, 2000):.1f} us")
    return 0


if __name__ == "__main__":
    sys.exit(main())
