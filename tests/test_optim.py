"""SGD (with momentum) and Adam against steps computed here, element by element."""
import math

import numpy as np
import pytest

from mytorch import Autograd, nn
from mytorch.optim import SGD, Adam

GRADS = [[0.5, -1.0, 2.0], [0.25, 0.0, -3.0], [-1.0, 1.5, 0.5], [2.0, -0.5, 0.0]]
START = [1.0, -2.0, 0.5]


def run(optimizer_factory, grads=GRADS, start=START):
    p = np.array(start)
    g = np.zeros_like(p)
    opt = optimizer_factory([(p, g)])
    history = []
    for step_grad in grads:
        g[...] = step_grad
        opt.step()
        history.append(p.copy())
    return p, history


@pytest.mark.parametrize("lr", [0.1, 0.03])
def test_sgd_plain(lr):
    """p <- p - lr * g, element by element."""
    _, history = run(lambda params: SGD(params, lr=lr))
    p = list(START)
    for step_grad, got in zip(GRADS, history):
        p = [pi - lr * gi for pi, gi in zip(p, step_grad)]
        np.testing.assert_allclose(got, p, rtol=1e-15, atol=1e-15)


@pytest.mark.parametrize("momentum", [0.5, 0.9])
def test_sgd_momentum(momentum):
    """v <- momentum v - lr g; p <- p + v."""
    lr = 0.1
    _, history = run(lambda params: SGD(params, lr=lr, momentum=momentum))
    p, v = list(START), [0.0] * 3
    for step_grad, got in zip(GRADS, history):
        v = [momentum * vi - lr * gi for vi, gi in zip(v, step_grad)]
        p = [pi + vi for pi, vi in zip(p, v)]
        np.testing.assert_allclose(got, p, rtol=1e-14, atol=1e-15)


def test_adam_steps():
    """m, v moving averages with bias correction; p <- p - lr m_hat / (sqrt(v_hat) + eps)."""
    lr, b1, b2, eps = 0.01, 0.9, 0.999, 1e-8
    _, history = run(lambda params: Adam(params, lr=lr, betas=(b1, b2), eps=eps))
    p, m, v = list(START), [0.0] * 3, [0.0] * 3
    for t, (step_grad, got) in enumerate(zip(GRADS, history), start=1):
        for i, gi in enumerate(step_grad):
            m[i] = b1 * m[i] + (1 - b1) * gi
            v[i] = b2 * v[i] + (1 - b2) * gi * gi
            m_hat = m[i] / (1 - b1 ** t)
            v_hat = v[i] / (1 - b2 ** t)
            p[i] -= lr * m_hat / (math.sqrt(v_hat) + eps)
        np.testing.assert_allclose(got, p, rtol=1e-13, atol=1e-15)


def test_adam_first_step_is_lr_times_sign():
    """With bias correction the first step is lr * g / (|g| + eps): lr * sign(g) for |g| >> eps."""
    p, _ = run(lambda params: Adam(params, lr=0.05), grads=[[3.0, -1e-3, 0.0]])
    np.testing.assert_allclose(p - np.array(START), [-0.05 * 3 / (3 + 1e-8), 0.05 * 1e-3 / (1e-3 + 1e-8), 0.0],
                               rtol=1e-12, atol=1e-15)


def test_zero_grad_and_in_place_updates():
    """zero_grad fills the gradient arrays; step updates the parameter arrays in place."""
    engine = Autograd()
    layer = nn.Linear(3, 2, engine, rng=np.random.default_rng(0))
    W_id, dW_id = id(layer.W), id(layer.dW)
    opt = SGD(layer.parameters(), lr=0.5)
    layer(np.ones((4, 3)))
    engine.backward(1)
    assert np.any(layer.dW != 0)
    W0 = layer.W.copy()
    opt.step()
    assert id(layer.W) == W_id
    np.testing.assert_allclose(layer.W, W0 - 0.5 * layer.dW, rtol=1e-15)
    opt.zero_grad()
    assert id(layer.dW) == dW_id
    np.testing.assert_array_equal(layer.dW, np.zeros((2, 3)))
    np.testing.assert_array_equal(layer.db, np.zeros(2))


@pytest.mark.parametrize("make", [lambda ps: SGD(ps, lr=0.1, momentum=0.9), lambda ps: Adam(ps, lr=0.1)],
                         ids=["SGD", "Adam"])
def test_float32_parameters_stay_float32(make):
    p = np.ones(3, dtype=np.float32)
    g = np.full(3, 0.5, dtype=np.float32)
    opt = make([(p, g)])
    opt.step()
    opt.step()
    assert p.dtype == np.float32
    assert np.all(p < 1)


@pytest.mark.parametrize("make", [lambda ps: SGD(ps, lr=0.05, momentum=0.9), lambda ps: Adam(ps, lr=0.05)],
                         ids=["SGD-momentum", "Adam"])
def test_optimizer_fits_a_linear_map(make):
    """A Linear layer with MSE learns y = x A^T + c: the loss falls by 100x within 300 steps."""
    rng = np.random.default_rng(3)
    engine = Autograd()
    layer = nn.Linear(3, 2, engine, rng=rng)
    A, c = rng.standard_normal((2, 3)), rng.standard_normal(2)
    x = rng.standard_normal((32, 3))
    y = x @ A.T + c
    opt = make(layer.parameters())
    loss = nn.MSELoss(engine)
    losses = []
    for _ in range(300):
        engine.zero_grad()
        opt.zero_grad()
        losses.append(float(loss(y, layer(x))[0]))
        loss.backward()
        opt.step()
    assert losses[-1] < losses[0] / 100
