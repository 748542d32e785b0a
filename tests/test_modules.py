"""Layers, activations and losses against values computed here with plain NumPy formulas."""
import warnings

import numpy as np
import pytest

from helpers import const, record
from mytorch import Autograd, nn
from mytorch.nn import functional as F


def grad(engine, array):
    return engine.gradient_buffer.get_param(array)


def small_linear(engine):
    """Linear(2, 3) with hand-set weights."""
    layer = nn.Linear(2, 3, engine)
    layer.W[...] = [[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]
    layer.b[...] = [0.5, -1.0, 2.0]
    return layer


X = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [2.0, -1.0]])
G = np.array([[1.0, 0.0, -1.0], [0.5, 2.0, 0.0], [0.0, 1.0, 1.0], [-1.0, 0.0, 3.0]])


# --------------------------------------------------------------------------- Linear
def test_linear_init_shapes_bounds_and_buffers(rng):
    """W (out, in) and b (out,) drawn in [-1/sqrt(in), 1/sqrt(in)]; dW, db, momenta are zeros."""
    engine = Autograd()
    layer = nn.Linear(16, 5, engine, rng=rng)
    bound = 1 / np.sqrt(16)
    assert layer.W.shape == (5, 16) and layer.b.shape == (5,)
    assert np.all(np.abs(layer.W) <= bound) and np.all(np.abs(layer.b) <= bound)
    assert layer.W.std() > bound / 4  # really random, not all zeros
    for name, shape in (("dW", (5, 16)), ("db", (5,)), ("momentum_W", (5, 16)), ("momentum_b", (5,))):
        array = getattr(layer, name)
        assert array.shape == shape and array.dtype == np.float64
        np.testing.assert_array_equal(array, np.zeros(shape))
    params = layer.parameters()
    assert params[0][0] is layer.W and params[0][1] is layer.dW
    assert params[1][0] is layer.b and params[1][1] is layer.db
    assert layer.autograd_engine is engine


def test_linear_init_is_reproducible_with_a_generator():
    """The same seed gives the same weights; another seed does not."""
    a = nn.Linear(3, 4, Autograd(), rng=np.random.default_rng(1))
    b = nn.Linear(3, 4, Autograd(), rng=np.random.default_rng(1))
    c = nn.Linear(3, 4, Autograd(), rng=np.random.default_rng(2))
    np.testing.assert_array_equal(a.W, b.W)
    np.testing.assert_array_equal(a.b, b.b)
    assert not np.array_equal(a.W, c.W)


def test_linear_forward_and_backward_by_hand(engine):
    """y[n, o] = sum_i x[n, i] W[o, i] + b[o]; dW = g^T x, db = sum_n g, dx = g W."""
    layer = small_linear(engine)
    W, b = layer.W.copy(), layer.b.copy()
    y = layer(X)
    expected = np.zeros((4, 3))
    for n in range(4):
        for o in range(3):
            expected[n, o] = sum(X[n, i] * W[o, i] for i in range(2)) + b[o]
    np.testing.assert_allclose(y, expected, rtol=0, atol=1e-14)
    engine.backward(G)
    np.testing.assert_allclose(layer.dW, np.einsum("no,ni->oi", G, X), rtol=0, atol=1e-14)
    np.testing.assert_allclose(layer.db, G.sum(axis=0), rtol=0, atol=1e-14)
    np.testing.assert_allclose(grad(engine, X), np.einsum("no,oi->ni", G, W), rtol=0, atol=1e-14)
    assert layer.dW.shape == layer.W.shape and layer.db.shape == layer.b.shape


def test_linear_gradients_accumulate_until_zeroed(engine):
    """Two passes without zeroing dW/db add up (the engine increments them in place)."""
    layer = small_linear(engine)
    x = X.copy()
    for _ in range(2):
        layer(x)
        engine.backward(G)
        engine.zero_grad()
    np.testing.assert_allclose(layer.dW, 2 * np.einsum("no,ni->oi", G, x), rtol=1e-15)
    np.testing.assert_allclose(layer.db, 2 * G.sum(axis=0), rtol=1e-15)


def test_linear_used_twice_in_one_graph_sums_both_uses(engine):
    """Weight sharing: z = L(L'(x)) with one square layer; dW sums both uses (hand formula)."""
    layer = nn.Linear(2, 2, engine)
    layer.W[...] = [[1.0, -1.0], [0.5, 2.0]]
    layer.b[...] = [0.1, -0.2]
    W, b = layer.W.copy(), layer.b.copy()
    x = np.array([[1.0, 2.0], [-1.0, 0.5], [0.0, 1.0]])
    h = layer(x)
    layer(h)
    g = np.array([[1.0, 0.0], [0.0, 1.0], [2.0, -1.0]])
    engine.backward(g)
    h_expected = x @ W.T + b
    dh = g @ W
    np.testing.assert_allclose(layer.dW, g.T @ h_expected + dh.T @ x, rtol=1e-14)
    np.testing.assert_allclose(layer.db, g.sum(axis=0) + dh.sum(axis=0), rtol=1e-14)
    np.testing.assert_allclose(grad(engine, x), dh @ W, rtol=1e-14)


def test_linear_float32(rng):
    """dtype=float32: parameters, outputs and gradients stay float32."""
    engine = Autograd()
    layer = nn.Linear(3, 2, engine, rng=rng, dtype=np.float32)
    x = rng.standard_normal((4, 3)).astype(np.float32)
    y = layer(x)
    assert y.dtype == np.float32
    engine.backward(1)
    assert layer.dW.dtype == np.float32 and grad(engine, x).dtype == np.float32
    np.testing.assert_allclose(layer.dW, np.ones((2, 4)) @ x, rtol=1e-6)


# --------------------------------------------------------------------------- activations
XA = np.array([[-3.0, -0.5, 0.0], [0.5, 2.0, 40.0]])
GA = np.array([[1.0, -2.0, 0.5], [3.0, 0.25, -1.0]])


@pytest.mark.parametrize("name", ["Identity", "Sigmoid", "Tanh", "ReLU"])
def test_activation_by_hand(engine, name):
    """Output (kept in .state) and input gradient from the textbook formulas."""
    formulas = {
        "Identity": (lambda x: x, lambda x: np.ones_like(x)),
        "Sigmoid": (lambda x: 1 / (1 + np.exp(-x)),
                    lambda x: np.exp(-x) / (1 + np.exp(-x)) ** 2),
        "Tanh": (lambda x: (np.exp(x) - np.exp(-x)) / (np.exp(x) + np.exp(-x)),
                 lambda x: 4 / (np.exp(x) + np.exp(-x)) ** 2),
        "ReLU": (lambda x: np.where(x > 0, x, 0.0), lambda x: np.where(x > 0, 1.0, 0.0)),
    }
    f, df = formulas[name]
    act = getattr(nn, name)(engine)
    assert act.state is None
    x = XA.copy()
    out = act(x)
    assert out is act.state and out is not x
    np.testing.assert_allclose(out, f(XA), rtol=1e-14, atol=1e-15)
    engine.backward(GA)
    np.testing.assert_allclose(grad(engine, x), GA * df(XA), rtol=1e-12, atol=1e-15)
    np.testing.assert_array_equal(x, XA)  # the input is untouched


def test_identity_output_is_a_separate_node(engine):
    """Identity's output shares memory with x but has its own gradient."""
    x = np.array([1.0, 2.0, 3.0])
    y = nn.Identity(engine)(x)
    assert np.shares_memory(x, y) and y is not x
    record(engine, lambda a, k: a * k, F.mul_backward, [y, const(4.0)])
    engine.backward(1)
    np.testing.assert_array_equal(grad(engine, y), [4.0, 4.0, 4.0])
    np.testing.assert_array_equal(grad(engine, x), [4.0, 4.0, 4.0])
    assert engine.gradient_buffer.get_memory_loc(x) != engine.gradient_buffer.get_memory_loc(y)


def test_sigmoid_and_tanh_modules_are_stable(engine):
    """No overflow warnings at +-1000, outputs exactly 0/1 and -1/1, gradients 0."""
    x = np.array([[-1000.0, 1000.0]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        s = nn.Sigmoid(engine)(x)
        t = nn.Tanh(engine)(x)
        total = record(engine, np.add, F.add_backward, [s, t])
        record(engine, np.sum, F.sum_backward, [total])
        engine.backward(1)
    np.testing.assert_array_equal(s, [[0.0, 1.0]])
    np.testing.assert_array_equal(t, [[-1.0, 1.0]])
    np.testing.assert_array_equal(grad(engine, x), [[0.0, 0.0]])


# --------------------------------------------------------------------------- losses
Y = np.array([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
Z = np.array([[0.5, 1.5, -1.0], [2.0, 0.0, 1.0]])


def test_mse_by_hand(engine):
    """loss = sum((y_hat - y)^2) / (N C); d/dy_hat = 2 (y_hat - y) / (N C) = -d/dy."""
    loss = nn.MSELoss(engine)
    y, z = Y.copy(), Z.copy()
    value = loss(y, z)
    expected = sum((Z[n, c] - Y[n, c]) ** 2 for n in range(2) for c in range(3)) / 6
    assert value.shape == (1,) and loss.loss_val is value
    np.testing.assert_allclose(value[0], expected, rtol=1e-15)
    loss.backward()
    np.testing.assert_allclose(grad(engine, z), 2 * (Z - Y) / 6, rtol=1e-15)
    np.testing.assert_allclose(grad(engine, y), -2 * (Z - Y) / 6, rtol=1e-15)


def test_softmax_cross_entropy_by_hand(engine):
    """loss = -(1/N) sum_n log(e^{z[n, t_n]} / sum_c e^{z[n, c]}); d/dz = (softmax - y) / N."""
    loss = nn.SoftmaxCrossEntropy(engine)
    y, z = Y.copy(), Z.copy()
    value = loss(y, z)
    targets = [1, 0]
    per_row = [-np.log(np.exp(Z[n, targets[n]]) / np.exp(Z[n]).sum()) for n in range(2)]
    assert value.shape == (1,) and loss.loss_val is value
    np.testing.assert_allclose(value[0], sum(per_row) / 2, rtol=1e-15)
    loss.backward()
    softmax = np.exp(Z) / np.exp(Z).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(grad(engine, z), (softmax - Y) / 2, rtol=1e-14, atol=1e-16)
    np.testing.assert_allclose(grad(engine, y), -np.log(softmax) / 2, rtol=1e-14)


def test_softmax_cross_entropy_soft_targets(engine):
    """Probability targets: loss = -(1/N) sum y log softmax; d/dz = (softmax - y) / N."""
    y = np.array([[0.2, 0.5, 0.3], [0.0, 0.25, 0.75]])
    z = Z.copy()
    loss = nn.SoftmaxCrossEntropy(engine)
    value = loss(y, z)
    softmax = np.exp(Z) / np.exp(Z).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(value[0], -np.sum(y * np.log(softmax)) / 2, rtol=1e-14)
    loss.backward()
    np.testing.assert_allclose(grad(engine, z), (softmax - y) / 2, rtol=1e-13, atol=1e-16)


def test_softmax_cross_entropy_logits_1e4_stay_finite(engine):
    """Logits +-1e4: loss 0 for the right class, 1e4 and 2e4 for the others; finite gradients."""
    z = np.array([[1e4, 0.0, -1e4], [1e4, 0.0, -1e4], [1e4, 0.0, -1e4]])
    y = np.eye(3)
    loss = nn.SoftmaxCrossEntropy(engine)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        value = loss(y, z)
        loss.backward()
    # -log softmax = logsumexp(z) - z = 1e4 - z (the other terms underflow to exactly 0)
    np.testing.assert_allclose(value[0], (0.0 + 1e4 + 2e4) / 3, rtol=1e-15)
    g = grad(engine, z)
    assert np.all(np.isfinite(g))
    softmax = np.array([1.0, 0.0, 0.0])
    np.testing.assert_allclose(g, (softmax - y) / 3, rtol=0, atol=1e-300)


def test_loss_backward_is_engine_backward_of_one(rng):
    """loss.backward() equals engine.backward(1) on the same graph."""
    results = []
    for use_loss_backward in (True, False):
        engine = Autograd()
        layer = nn.Linear(3, 2, engine, rng=np.random.default_rng(0))
        x = np.arange(6.0).reshape(2, 3)
        loss = nn.MSELoss(engine)
        loss(np.ones((2, 2)), layer(x))
        if use_loss_backward:
            loss.backward()
        else:
            engine.backward(1)
        results.append(layer.dW.copy())
    np.testing.assert_array_equal(results[0], results[1])
    assert np.any(results[0] != 0)


def test_module_reprs():
    engine = Autograd()
    assert repr(nn.Linear(3, 2, engine)) == "Linear(in_features=3, out_features=2)"
    assert repr(nn.ReLU(engine)) == "ReLU()"
    assert repr(nn.SoftmaxCrossEntropy(engine)) == "SoftmaxCrossEntropy()"
