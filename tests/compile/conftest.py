"""The compiled mode replays numpy programs on the CPU; on a cuda device a compiled function runs eagerly
with one warning (tests/compile/test_on_device.py). The other tests here are about replayed programs, so
they are CPU-only."""

import pytest


def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.path.parent.name == "compile" and item.path.name != "test_on_device.py":
            item.add_marker(pytest.mark.cpu_only(reason="compiled programs replay on the CPU only"))
