"""The glibc malloc tuning (chainrule.backend.allocator) is opt-in: importing chainrule never calls
mallopt; the `chainrule` command and Trainer.fit do, once. Each case runs in a fresh interpreter, with
ctypes.CDLL wrapped so that every look-up of ``mallopt`` is counted."""

import json
import os
import platform
import subprocess
import sys
import textwrap

import pytest

glibc = pytest.mark.skipif(not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc",
                           reason="mallopt is glibc's")

SPY = """
import ctypes, json

looked_up = []

class _CDLL(ctypes.CDLL):
    def __getattr__(self, name):
        if name == "mallopt":
            looked_up.append(name)
        return super().__getattr__(name)

ctypes.CDLL = _CDLL
"""

REPORT = """
from chainrule.backend import allocator
print(json.dumps({"mallopt": len(looked_up), "applied": allocator.applied()}))
"""


def _run(body: str, env: dict | None = None) -> dict:
    code = SPY + textwrap.dedent(body) + REPORT
    environment = {k: v for k, v in os.environ.items() if k != "CHAINRULE_MALLOC_TUNING"}
    environment.update(env or {})
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=environment)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_importing_chainrule_leaves_malloc_alone():
    seen = _run("""
        import chainrule, chainrule.nn, chainrule.optim, chainrule.train, chainrule.cli  # noqa: F401
        x = chainrule.randn(300, 300, requires_grad=True)
        (x @ x).sum().backward()
    """)
    assert seen == {"mallopt": 0, "applied": False}


FIT = """
    import chainrule as cr
    from chainrule import nn, optim
    from chainrule.train import fit

    model = nn.Linear(4, 2)
    fit(model, (cr.randn(8, 4), cr.randn(8, 2)), loss="mse", optimizer=optim.SGD(model.parameters(), lr=0.1),
        epochs=2, verbose=0)
    fit(model, (cr.randn(8, 4), cr.randn(8, 2)), loss="mse", optimizer=optim.SGD(model.parameters(), lr=0.1),
        verbose=0)
"""


@glibc
def test_fit_turns_it_on_once():
    assert _run(FIT) == {"mallopt": 1, "applied": True}


@glibc
def test_the_command_turns_it_on():
    seen = _run("""
        from chainrule.cli import main
        assert main(["evaluate", "/nonexistent/run"]) == 2
    """)
    assert seen == {"mallopt": 1, "applied": True}


def test_the_environment_variable_keeps_it_off():
    assert _run(FIT, {"CHAINRULE_MALLOC_TUNING": "0"}) == {"mallopt": 0, "applied": False}
