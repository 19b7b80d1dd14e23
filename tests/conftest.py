"""Shared test helpers.

``CHAINRULE_TEST_DEVICE=cuda`` runs the whole suite with ``cuda`` as the default device: CuPy on a real
GPU, else the NumPy stand-in device (chainrule.backend.standin), whose arrays refuse to mix with host
arrays as CuPy's do, so host/device mixing bugs show on every machine.
"""

import os

import pytest

import chainrule as cr
from chainrule.backend import gpu, standin

TEST_DEVICE = os.environ.get("CHAINRULE_TEST_DEVICE", "cpu")
if TEST_DEVICE == "cuda":
    if gpu.install() is None:
        standin.install()
    cr.set_default_device("cuda")
elif TEST_DEVICE != "cpu":
    raise RuntimeError(f"CHAINRULE_TEST_DEVICE must be 'cpu' or 'cuda', got {TEST_DEVICE!r}")


def pytest_collection_modifyitems(config, items):
    """Under a cuda test device, tests marked ``cpu_only`` (host memory itself) are skipped with their reason."""
    if TEST_DEVICE == "cpu":
        return
    for item in items:
        marker = item.get_closest_marker("cpu_only")
        if marker is not None:
            reason = marker.kwargs.get("reason") or (marker.args[0] if marker.args else "about host memory")
            item.add_marker(pytest.mark.skip(reason=f"cpu_only: {reason}"))


@pytest.fixture
def device():
    """The device the suite runs on (cpu, or cuda under CHAINRULE_TEST_DEVICE=cuda)."""
    return cr.device(TEST_DEVICE)


@pytest.fixture
def cpu_repr():
    """``repr`` as it reads for the same values on the CPU, for comparing objects that hold tensors (a
    distribution's support) with PyTorch's on the CPU: a device tensor's repr differs only by its device
    suffix, which test_tensor.py checks against PyTorch's rule."""
    suffix = f", device='{cr.get_default_device()}'" if TEST_DEVICE != "cpu" else None
    return lambda obj: repr(obj).replace(suffix, "") if suffix else repr(obj)


@pytest.fixture
def cuda_device():
    """The cuda device on any machine: CuPy on a GPU or the suite's stand-in, else the stand-in installed for this
    test only (its arrays refuse host/device mixing as CuPy's do)."""
    if gpu.install() is not None or standin.installed():
        yield cr.device("cuda")
        return
    standin.install()
    try:
        yield cr.device("cuda")
    finally:
        standin.uninstall()


@pytest.fixture(autouse=True)
def _seeded():
    """Every test starts from the same seed, so failures reproduce."""
    cr.manual_seed(0)
    yield


@pytest.fixture(autouse=True)
def _hypothesis_settings_do_not_pile_up(request):
    """hypothesis' pytest plugin gives a parametrized ``@given`` test a child of its settings on every
    invocation and stores it on the function, so the op table's thousands of cases built a chain of
    parents that overflowed Python's recursion limit (RecursionError in ``settings.database``). The
    function's settings are put back after each test."""
    function = getattr(request.function, "__func__", request.function) if request.function else None
    original = getattr(function, "_hypothesis_internal_use_settings", None)
    yield
    if original is not None:
        function._hypothesis_internal_use_settings = original
