"""nn.utils.skip_init: a module built without initialising its parameters, as torch.nn.utils.skip_init."""

import numpy as np
import pytest

import chainrule as cr
from chainrule import nn
from chainrule.nn.utils import skip_init


def test_skip_init_draws_no_random_numbers_and_leaves_init_working():
    cr.manual_seed(3)
    untouched = cr.rand(4).cpu().numpy()
    cr.manual_seed(3)
    layer = skip_init(nn.Linear, 5, 3, bias=True)
    embedding = skip_init(nn.Embedding, 7, 4)
    assert (layer.weight.shape, layer.bias.shape, embedding.weight.shape) == ((3, 5), (3,), (7, 4))
    np.testing.assert_array_equal(cr.rand(4).cpu().numpy(), untouched)  # the generator was not advanced
    cr.manual_seed(3)
    expected = nn.Linear(5, 3).weight.detach().cpu().numpy().copy()
    cr.manual_seed(3)
    np.testing.assert_array_equal(nn.Linear(5, 3).weight.detach().cpu().numpy(), expected)  # initialising again after it
    assert not np.array_equal(expected, 0)


def test_skip_init_restores_initialisation_after_an_error():
    with pytest.raises((ValueError, RuntimeError)):
        skip_init(nn.Linear, 5, -3)
    assert float(nn.init.ones_(cr.zeros(2)).sum()) == 2.0


def test_initialisers_under_skipping_init_return_the_tensor_untouched():
    t = cr.full((3,), 7.0)
    with nn.init.skipping_init():
        assert nn.init.normal_(t) is t and nn.init.zeros_(tensor=t) is t
    assert t.tolist() == [7.0, 7.0, 7.0]
    assert nn.init.zeros_(tensor=t).tolist() == [0.0, 0.0, 0.0]
