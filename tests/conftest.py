"""Shared test helpers."""

import pytest

import chainrule as cr


@pytest.fixture(autouse=True)
def _seeded():
    """Every test starts from the same seed, so failures reproduce."""
    cr.manual_seed(0)
    yield
