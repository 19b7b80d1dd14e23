"""chainrule.backend.scatter: take_rows and add_rows_at against numpy's take and add.at (repeated
indices summed, every dtype kept, empty inputs), and the two as each other's transpose."""

import numpy as np
import pytest

from chainrule.backend.scatter import add_rows_at, take_rows


@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.float16])
def test_add_rows_at_sums_repeated_rows_as_add_at_rounding_once(dtype):
    rng = np.random.default_rng(0)
    index = rng.integers(0, 7, 40)  # every row hit several times, some maybe never
    values = rng.standard_normal((40, 3)).astype(dtype)
    expected = np.zeros((7, 3))
    np.add.at(expected, index, values.astype(np.float64))  # the exact sums (add.at in float16 rounds each step)
    out = add_rows_at(values, index, 7)
    assert out.shape == (7, 3) and out.dtype == dtype
    np.testing.assert_allclose(out, expected.astype(dtype), rtol=float(np.finfo(dtype).eps), atol=0)


def test_empty_values_give_zero_rows_and_no_columns_give_empty_rows():
    assert not add_rows_at(np.zeros((0, 4)), np.zeros(0, np.int64), 5).any()
    assert add_rows_at(np.zeros((0, 4)), np.zeros(0, np.int64), 5).shape == (5, 4)
    assert add_rows_at(np.zeros((6, 0)), np.arange(6), 6).shape == (6, 0)


def test_take_rows_and_add_rows_at_are_each_others_transpose():
    """<take_rows(a), v> == <a, add_rows_at(v)> for any a and v: the pair grid_sample's gradient rests on."""
    rng = np.random.default_rng(1)
    index = rng.integers(0, 9, 25)
    a, v = rng.standard_normal((9, 4)), rng.standard_normal((25, 4))
    np.testing.assert_array_equal(take_rows(a, index), a[index])
    assert np.isclose((take_rows(a, index) * v).sum(), (a * add_rows_at(v, index, 9)).sum(), rtol=1e-12)
