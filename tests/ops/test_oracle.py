"""Oracle tests: every operation in the shared table against PyTorch, on hypothesis-drawn shapes
(broadcasting, 0-d, size-one and zero-size dims, negative dims) and parameters, in float32 and
float64: forward values, output shapes and dtypes, and the gradient of every input for the same
random output gradients."""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from op_cases import CASES, compare_with_torch

torch = pytest.importorskip("torch")

# numpy's and torch's warnings about inf/nan results and torch's deprecations are expected here
pytestmark = [pytest.mark.oracle, pytest.mark.filterwarnings("ignore::RuntimeWarning"),
              pytest.mark.filterwarnings("ignore::UserWarning")]

# derandomized, so a run is reproducible; raise max_examples locally to search harder
_settings = settings(max_examples=6, deadline=None, derandomize=True, database=None,
                     suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c.kind}-{c.name}")
@_settings
@given(data=st.data())
def test_matches_torch(case, dtype, data):
    shapes, params = data.draw(case.strategy, label="shapes, params")
    seed = data.draw(st.integers(0, 2**16), label="seed")
    compare_with_torch(case, shapes, params, dtype, seed)


@pytest.mark.parametrize("case", [c for c in CASES if c.configs and "torch_fails_on_configs" not in c.tags],
                         ids=lambda c: f"{c.kind}-{c.name}")
def test_matches_torch_on_the_gradcheck_shapes(case):
    """The hand-picked gradcheck shapes too (0-d, (3,1) with (1,4), zero-size, ...), in float64."""
    for shapes, params in case.configs:
        compare_with_torch(case, shapes, params, np.float64)
