"""Fixtures for the fit-loop tests."""

import pytest
from train_helpers import separable


@pytest.fixture
def data():
    """(train, val) pairs of a separable problem: 192 and 64 samples."""
    x, y = separable(256)
    return (x[:192], y[:192]), (x[192:], y[192:])
