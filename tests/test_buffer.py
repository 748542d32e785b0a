"""GradientBuffer: identity keys, kept-alive arrays, accumulation without aliasing, dtypes."""
import gc
import weakref

import numpy as np
import pytest

from mytorch import GradientBuffer


def test_key_is_identity_not_data_pointer():
    """Two views of one buffer have one data pointer but two keys."""
    buf = GradientBuffer()
    x = np.zeros((2, 3))
    v = x.view()
    assert x.ctypes.data == v.ctypes.data
    assert buf.get_memory_loc(x) == id(x) and buf.get_memory_loc(v) == id(v)
    buf.add_spot(x)
    assert buf.is_in_memory(x) and not buf.is_in_memory(v)
    buf.add_spot(v)
    buf.update_param(x, np.ones((2, 3)))
    buf.update_param(v, np.full((2, 3), 5.0))
    np.testing.assert_array_equal(buf.get_param(x), np.ones((2, 3)))
    np.testing.assert_array_equal(buf.get_param(v), np.full((2, 3), 5.0))
    assert len(buf.memory) == 2


def test_add_spot_is_idempotent_and_starts_at_zero():
    buf = GradientBuffer()
    a = np.arange(4.0)
    buf.add_spot(a)
    buf.update_param(a, np.ones(4))
    buf.add_spot(a)  # must not reset the gradient
    assert len(buf.memory) == 1
    np.testing.assert_array_equal(buf.get_param(a), np.ones(4))
    b = np.arange(3.0)
    buf.add_spot(b)
    got = buf.get_param(b)
    assert got.shape == (3,) and got.dtype == np.float64
    np.testing.assert_array_equal(got, np.zeros(3))


def test_buffer_keeps_arrays_alive_until_clear():
    """While its spot lives, an array cannot be freed (so its id cannot be reused)."""
    buf = GradientBuffer()
    a = np.ones(5)
    ref = weakref.ref(a)
    buf.add_spot(a)
    key = id(a)
    del a
    gc.collect()
    assert ref() is not None and id(ref()) == key
    buf.clear()
    gc.collect()
    assert ref() is None
    assert len(buf.memory) == 0


def test_accumulation_never_writes_into_a_shared_gradient():
    """One array handed to two spots (as add_backward does) is never modified by accumulation."""
    buf = GradientBuffer()
    a, b = np.zeros(3), np.zeros(3)
    buf.add_spot(a)
    buf.add_spot(b)
    g = np.array([1.0, 2.0, 3.0])
    buf.update_param(a, g)
    buf.update_param(b, g)
    buf.update_param(a, np.full(3, 10.0))
    buf.update_param(a, np.full(3, 100.0))
    np.testing.assert_array_equal(g, [1.0, 2.0, 3.0])
    np.testing.assert_array_equal(buf.get_param(b), [1.0, 2.0, 3.0])
    np.testing.assert_array_equal(buf.get_param(a), [111.0, 112.0, 113.0])
    buf.update_param(b, np.ones(3))
    np.testing.assert_array_equal(g, [1.0, 2.0, 3.0])
    np.testing.assert_array_equal(buf.get_param(b), [2.0, 3.0, 4.0])


def test_accumulation_never_writes_into_a_read_only_gradient():
    """A read-only first gradient (e.g. a broadcast view) can still be accumulated onto."""
    buf = GradientBuffer()
    a = np.zeros((2, 3))
    buf.add_spot(a)
    first = np.broadcast_to(np.arange(3.0), (2, 3))
    assert not first.flags.writeable
    buf.update_param(a, first)
    buf.update_param(a, np.ones((2, 3)))
    np.testing.assert_array_equal(buf.get_param(a), np.tile(np.arange(3.0) + 1.0, (2, 1)))


def test_set_param_replaces_and_later_updates_do_not_touch_the_given_array():
    buf = GradientBuffer()
    a = np.zeros(2)
    buf.add_spot(a)
    buf.update_param(a, np.ones(2))
    mine = np.array([7.0, 8.0])
    buf.set_param(a, mine)
    np.testing.assert_array_equal(buf.get_param(a), [7.0, 8.0])
    buf.update_param(a, np.ones(2))
    np.testing.assert_array_equal(buf.get_param(a), [8.0, 9.0])
    np.testing.assert_array_equal(mine, [7.0, 8.0])


@pytest.mark.parametrize("array_dtype, grad_dtype, expected", [
    (np.float32, np.float32, np.float32),
    (np.float32, np.float64, np.float32),
    (np.float64, np.float32, np.float64),
    (np.int64, np.float64, np.float64),
    (np.int32, np.int32, np.float64),
    (np.bool_, np.float64, np.float64),
])
def test_gradient_dtype_follows_the_array(array_dtype, grad_dtype, expected):
    """Float arrays keep their own dtype; other arrays get float64 gradients."""
    buf = GradientBuffer()
    a = np.ones(3, dtype=array_dtype)
    buf.add_spot(a)
    buf.update_param(a, np.full(3, 2, dtype=grad_dtype))
    assert buf.get_param(a).dtype == np.dtype(expected)
    buf.update_param(a, np.full(3, 3, dtype=grad_dtype))
    got = buf.get_param(a)
    assert got.dtype == np.dtype(expected)
    np.testing.assert_array_equal(got, np.full(3, 5.0))
    b = np.ones(2, dtype=array_dtype)
    buf.add_spot(b)
    assert buf.get_param(b).dtype == np.dtype(expected)


def test_clear_empties_the_memory():
    buf = GradientBuffer()
    arrays = [np.ones(i + 1) for i in range(5)]
    for a in arrays:
        buf.add_spot(a)
    assert len(buf.memory) == 5 and len(buf) == 5
    buf.clear()
    assert len(buf.memory) == 0
    assert not any(buf.is_in_memory(a) for a in arrays)
