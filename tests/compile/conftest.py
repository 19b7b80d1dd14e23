"""The compiled mode replays numpy programs on the CPU; on a cuda device a compiled function runs eagerly
with one warning (tests/compile/test_on_device.py). The other tests here are about replayed programs, so
they are CPU-only."""

import pytest


def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.path.parent.name == "compile" and item.path.name != "test_on_device.py":
            item.add_marker(pytest.mark.cpu_only(reason="compiled programs replay on the CPU only"))


@pytest.fixture(params=["default", "all per replay"])
def buffer_plans(request, monkeypatch):
    """Runs a test with the default plan (buffers of PER_REPLAY_BYTES or more made per replay, smaller
    ones in the arena; most test models here are small enough to be all arena) and again with every
    buffer made per replay, so both kinds of buffer meet every behaviour."""
    if request.param != "default":
        from chainrule.compiler import program

        monkeypatch.setattr(program, "PER_REPLAY_BYTES", 0)
    return request.param
