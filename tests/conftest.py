"""Shared test helpers."""

import pytest

import chainrule as cr


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
