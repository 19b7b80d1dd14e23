"""backend.to_host: the one place a backend array becomes a numpy array."""

import numpy as np

import chainrule as cr
from chainrule.backend import to_host


class _DeviceArray:
    """Stands in for a CuPy array: ``.get()`` copies it to the host."""

    def __init__(self, host):
        self.host = host

    def get(self):
        return self.host.copy()


def test_a_numpy_array_comes_back_as_itself():
    a = np.arange(6.0).reshape(2, 3)
    assert to_host(a) is a


def test_a_device_array_is_copied_with_get():
    a = np.arange(4, dtype=np.float32)
    host = to_host(_DeviceArray(a))
    assert isinstance(host, np.ndarray) and host is not a
    np.testing.assert_array_equal(host, a)


def test_anything_else_goes_through_asarray():
    np.testing.assert_array_equal(to_host([1, 2, 3]), np.array([1, 2, 3]))


def test_tensors_reach_the_host_through_it():
    t = cr.tensor([[1.0, 2.0], [3.0, 4.0]], device="cpu")  # a CPU tensor's memory is the host's: shared
    assert np.shares_memory(np.asarray(t), t._data)
    np.testing.assert_array_equal(np.array(t), [[1.0, 2.0], [3.0, 4.0]])
    assert "tensor([[1., 2.]," in repr(t)
