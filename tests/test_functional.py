"""Backward primitives against central finite differences (one table: tests/helpers.py)."""
import warnings

import numpy as np
import pytest

from helpers import CASES, FD_CASES, FD_TOL, numeric_gradients, run_case, scaled_tol
from mytorch import Autograd, UnusedOperationWarning
from mytorch.nn import functional as F

DTYPES = [np.float64, np.float32]


def check_structure(result, inputs, dtype):
    """A tuple with one gradient per input, each of the input's shape and ``dtype``.

    A NumPy scalar is accepted for a 0-d input (the engine documents that it accepts one).
    """
    assert isinstance(result, tuple), "primitive returned %s, not a tuple" % type(result).__name__
    assert len(result) == len(inputs)
    for i, (grad, x) in enumerate(zip(result, inputs)):
        allowed = (np.ndarray, np.generic) if x.ndim == 0 else np.ndarray
        assert isinstance(grad, allowed), "gradient %d is a %s" % (i, type(grad).__name__)
        assert grad.shape == x.shape, "gradient %d has shape %s, input %s" % (i, grad.shape, x.shape)
        assert grad.dtype == np.dtype(dtype), "gradient %d has dtype %s" % (i, grad.dtype)


@pytest.mark.parametrize("dtype", DTYPES, ids=["float64", "float32"])
@pytest.mark.parametrize("case", FD_CASES, ids=repr)
def test_primitive_matches_finite_differences(case, dtype):
    """Shapes and dtype first, then values against central differences."""
    inputs = case.inputs(dtype)
    saved = [x.copy() for x in inputs]
    out = np.asarray(case.forward(*inputs), dtype=dtype)  # NumPy 1.x makes float64 of some float32 0-d results
    g = case.upstream(out)
    g_saved = g.copy()
    result = case.primitive(g, *inputs, **case.call_kwargs(inputs, out))
    check_structure(result, inputs, dtype)
    for x, x0 in zip(inputs, saved):
        np.testing.assert_array_equal(x, x0, err_msg="the primitive modified an input")
    np.testing.assert_array_equal(g, g_saved, err_msg="the primitive modified grad_output")
    numeric = numeric_gradients(case.forward, inputs, g)
    for i, (grad, expected) in enumerate(zip(result, numeric)):
        np.testing.assert_allclose(grad, expected, err_msg="gradient %d" % i,
                                   **scaled_tol(expected, FD_TOL[np.dtype(dtype)]))


@pytest.mark.parametrize("case", CASES, ids=repr)
def test_engine_passes_options_to_primitive(case):
    """Recorded with its keyword options, the case gives the primitive's own gradients."""
    inputs, out, g, direct = run_case(case)
    engine = Autograd()
    engine.add_operation(inputs, out, [None] * len(inputs), case.primitive,
                         **case.call_kwargs(inputs, out))
    with warnings.catch_warnings():
        warnings.simplefilter("error", UnusedOperationWarning)
        engine.backward(g)
    for x, expected in zip(inputs, direct):
        got = engine.gradient_buffer.get_param(x)
        assert got.shape == x.shape and got.dtype == x.dtype
        np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("values, axis, keepdims", [
    ([[1.0, 3.0, 3.0], [2.0, 2.0, 2.0]], 1, False),
    ([[1.0, 3.0, 3.0], [2.0, 2.0, 2.0]], 1, True),
    ([[1.0, 3.0, 3.0], [2.0, 2.0, 3.0]], None, False),
    ([[4.0, 4.0], [4.0, 4.0]], 0, False),
    ([[1.0, 2.0], [2.0, 0.0]], (0, 1), True),
])
def test_max_ties_share_gradient_equally(values, axis, keepdims):
    """Each of k tied maxima gets 1/k of the upstream gradient."""
    a = np.array(values)
    out = np.max(a, axis=axis, keepdims=keepdims)
    g = np.arange(1.0, np.size(out) + 1).reshape(np.shape(out))
    # independent rule: for every output slot, its upstream value / number of winners
    g_full = np.broadcast_to(g if keepdims or axis is None else np.expand_dims(g, axis), a.shape)
    m_full = np.broadcast_to(np.max(a, axis=axis, keepdims=True), a.shape)
    winners = (a == m_full).astype(float)
    counts = np.broadcast_to(np.sum(winners, axis=axis, keepdims=True), a.shape)
    expected = winners * g_full / counts
    for kwargs in ({}, {"out": out}):
        (grad,) = F.max_backward(g, a, axis=axis, keepdims=keepdims, **kwargs)
        assert grad.shape == a.shape
        np.testing.assert_allclose(grad, expected, rtol=0, atol=1e-15)


def test_relu_gradient_at_zero_is_zero():
    """relu'(0) is 0 (and 1 for positive, 0 for negative inputs)."""
    a = np.array([-1.0, 0.0, 2.0, -0.0])
    g = np.array([5.0, 7.0, 11.0, 13.0])
    (grad,) = F.relu_backward(g, a)
    np.testing.assert_array_equal(grad, [0.0, 0.0, 11.0, 0.0])


def test_getitem_repeated_indices_accumulate():
    """a[[0, 0, 2, 0]]: element 0 gets the sum of its three upstream entries."""
    a = np.arange(4.0)
    index = np.array([0, 0, 2, 0])
    g = np.array([1.0, 10.0, 100.0, 1000.0])
    (grad,) = F.getitem_backward(g, a, index=index)
    expected = np.bincount(index, weights=g, minlength=4)
    np.testing.assert_array_equal(grad, expected)


@pytest.mark.parametrize("grad_shape, shape", [
    ((3, 4), (4,)), ((3, 4), (3, 1)), ((3, 4), (1, 4)), ((3, 4), ()), ((3, 4), (1, 1)),
    ((2, 3, 4), (3, 1)), ((2, 3, 4), (2, 1, 4)), ((5,), (1,)), ((3, 4), (3, 4)), ((5,), ()),
])
def test_unbroadcast_sums_broadcast_axes(grad_shape, shape, rng):
    """unbroadcast(g, shape) is an array equal to the gradient of sum(broadcast_to(x, g.shape) * g)."""
    g = rng.standard_normal(grad_shape)
    got = F.unbroadcast(g, shape)
    assert isinstance(got, np.ndarray) and got.shape == tuple(shape)
    # independent: d/dx sum(broadcast(x) * g) computed by finite differences (linear, exact)
    x = np.zeros(shape)
    (expected,) = numeric_gradients(lambda x: np.broadcast_to(x, grad_shape), [x], g)
    np.testing.assert_allclose(got, expected, rtol=1e-8, atol=1e-8)


@pytest.mark.parametrize("grad_shape, shape", [((3, 4), (3,)), ((3, 4), (2, 4)), ((4,), (3, 4))])
def test_unbroadcast_rejects_impossible_shapes(grad_shape, shape):
    """A gradient that cannot come from ``shape`` is an error naming both shapes."""
    with pytest.raises(ValueError, match=r"unbroadcast.*%s.*%s" % (
            _re(grad_shape), _re(shape))):
        F.unbroadcast(np.zeros(grad_shape), shape)


def _re(shape):
    return str(tuple(shape)).replace("(", r"\(").replace(")", r"\)")


def test_sigmoid_and_tanh_backward_are_finite_for_huge_inputs():
    """No overflow warnings or NaN at |x| = 1e4; the gradient there is 0 to double precision."""
    a = np.array([-1e4, -50.0, 0.0, 50.0, 1e4])
    g = np.ones_like(a)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        (gs,) = F.sigmoid_backward(g, a)
        (gt,) = F.tanh_backward(g, a)
        s = F.stable_sigmoid(a)
    assert np.all(np.isfinite(gs)) and np.all(np.isfinite(gt)) and np.all(np.isfinite(s))
    np.testing.assert_allclose(s, [0.0, np.exp(-50.0) / (1 + np.exp(-50.0)), 0.5,
                                   1 / (1 + np.exp(-50.0)), 1.0], rtol=1e-15, atol=0)
    np.testing.assert_allclose(gs[2], 0.25, rtol=1e-15)
    np.testing.assert_allclose(gt[2], 1.0, rtol=1e-15)
    assert gs[0] == 0 and gs[-1] == 0 and gt[0] == 0 and gt[-1] == 0


def test_softmax_cross_entropy_backward_stable_for_logits_1e4():
    """Logits of 1e4 give finite gradients equal to (softmax - y) / N and -log_softmax / N."""
    z = np.array([[1e4, 0.0, -1e4], [0.0, 1e4, 1e4]])
    y = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        grad_y, grad_z = F.SoftmaxCrossEntropy_backward(np.ones(1), y, z)
    assert grad_y.shape == y.shape and grad_z.shape == z.shape
    assert np.all(np.isfinite(grad_y)) and np.all(np.isfinite(grad_z))
    softmax = np.array([[1.0, 0.0, 0.0], [0.0, 0.5, 0.5]])  # exp(-1e4) underflows to 0
    np.testing.assert_allclose(grad_z, (softmax - y) / 2, rtol=0, atol=1e-300)
    log_softmax = np.array([[0.0, -1e4, -2e4], [-1e4 - np.log(2), -np.log(2), -np.log(2)]])
    np.testing.assert_allclose(grad_y, -log_softmax / 2, rtol=1e-15, atol=0)


def test_pow_with_exponent_zero_has_zero_gradient():
    """x ** 0 is the constant 1 (NumPy and torch agree that 0 ** 0 == 1), so its gradient is 0
    everywhere, including at x = 0, where exponent * x ** -1 would give 0 * inf = NaN."""
    a = np.array([0.0, 1.0, -2.0])
    np.testing.assert_array_equal(a ** 0, np.ones(3))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        (grad,) = F.pow_backward(np.ones(3), a, exponent=0)
    np.testing.assert_array_equal(grad, np.zeros(3))
