"""One SGD training step of an MLP 784-128-64-10 (ReLU, softmax cross-entropy), three ways.

* ``TapeStep``: the mytorch engine (``nn.Linear``, ``nn.ReLU``, ``nn.SoftmaxCrossEntropy``,
  ``optim.SGD``), the way a student's training loop drives it.
* ``NumpyStep``: the same forward pass and gradients written by hand in NumPy,
  including the gradient of the input batch (the tape computes it too).
* ``TorchStep``: PyTorch eager mode (only if torch is installed), also with the
  input's gradient (``x.requires_grad``).

Each takes the same initial weights, so one step of each gives the same gradients
(``gradients()`` returns them for checking), and ``step()`` runs one full step:
zero the gradients, forward, loss, backward, update.
"""
import os
import sys

import numpy as np

# The repository's mytorch, unless PYTHONPATH (or an install) provides another copy to measure.
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO_ROOT not in sys.path:
    sys.path.append(REPO_ROOT)

from mytorch import Autograd, nn, optim  # noqa: E402

SIZES = (784, 128, 64, 10)


def make_problem(batch, dtype, seed=0):
    """Initial weights [(W, b), ...], a batch x (batch, 784) and its one-hot labels, all of ``dtype``."""
    rng = np.random.default_rng(seed)
    weights = []
    for n_in, n_out in zip(SIZES[:-1], SIZES[1:]):
        bound = 1 / np.sqrt(n_in)
        weights.append((rng.uniform(-bound, bound, (n_out, n_in)).astype(dtype),
                        rng.uniform(-bound, bound, n_out).astype(dtype)))
    x = rng.random((batch, SIZES[0])).astype(dtype)
    labels = rng.integers(0, SIZES[-1], batch)
    y = np.zeros((batch, SIZES[-1]), dtype=dtype)
    y[np.arange(batch), labels] = 1
    return weights, x, y


class TapeStep:
    """The mytorch engine: Linear, ReLU, Linear, ReLU, Linear, SoftmaxCrossEntropy; SGD."""

    name = "tape"

    def __init__(self, weights, x, y, lr):
        self.engine = Autograd()
        self.layers = []
        for W, b in weights:
            layer = nn.Linear(W.shape[1], W.shape[0], self.engine, dtype=W.dtype)
            layer.W[...] = W
            layer.b[...] = b
            self.layers.append(layer)
        self.relus = [nn.ReLU(self.engine) for _ in self.layers[:-1]]
        self.criterion = nn.SoftmaxCrossEntropy(self.engine)
        self.optimizer = optim.SGD([pair for layer in self.layers for pair in layer.parameters()], lr)
        self.x, self.y = x.copy(), y.copy()

    def step(self):
        self.engine.zero_grad()
        self.optimizer.zero_grad()
        out = self.x
        for layer, relu in zip(self.layers[:-1], self.relus):
            out = relu(layer(out))
        loss = self.criterion(self.y, self.layers[-1](out))
        self.criterion.backward()
        self.optimizer.step()
        return loss[0]

    def gradients(self):
        """[dW1, db1, dW2, db2, dW3, db3, dx] of the last step."""
        grads = [g.copy() for layer in self.layers for _, g in layer.parameters()]
        return grads + [self.engine.gradient_buffer.get_param(self.x).copy()]


class NumpyStep:
    """The same step with the gradients derived by hand."""

    name = "numpy"

    def __init__(self, weights, x, y, lr):
        self.params = [(W.copy(), b.copy()) for W, b in weights]
        self.x, self.y, self.lr = x.copy(), y.copy(), lr
        self.grads = None

    def step(self):
        (W1, b1), (W2, b2), (W3, b3) = self.params
        x, y = self.x, self.y
        z1 = x @ W1.T + b1
        h1 = np.maximum(z1, 0)
        z2 = h1 @ W2.T + b2
        h2 = np.maximum(z2, 0)
        z3 = h2 @ W3.T + b3
        shifted = z3 - z3.max(axis=1, keepdims=True)
        log_p = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
        loss = -np.sum(y * log_p) / len(x)
        g3 = (np.exp(log_p) - y) / len(x)  # d loss / d z3
        g2 = (g3 @ W3) * (z2 > 0)
        g1 = (g2 @ W2) * (z1 > 0)
        self.grads = [g1.T @ x, g1.sum(axis=0), g2.T @ h1, g2.sum(axis=0), g3.T @ h2, g3.sum(axis=0),
                      g1 @ W1]
        for (W, b), dW, db in zip(self.params, self.grads[0:6:2], self.grads[1:6:2]):
            W -= self.lr * dW
            b -= self.lr * db
        return loss

    def gradients(self):
        return [g.copy() for g in self.grads]


class TorchStep:
    """PyTorch eager: three torch.nn.Linear, relu, cross_entropy, torch.optim.SGD."""

    name = "torch"

    def __init__(self, weights, x, y, lr):
        import torch

        self.torch = torch
        dtype = torch.float64 if x.dtype == np.float64 else torch.float32
        self.layers = []
        for W, b in weights:
            layer = torch.nn.Linear(W.shape[1], W.shape[0], dtype=dtype)
            with torch.no_grad():
                layer.weight.copy_(torch.from_numpy(W))
                layer.bias.copy_(torch.from_numpy(b))
            self.layers.append(layer)
        self.optimizer = torch.optim.SGD([p for layer in self.layers for p in layer.parameters()], lr=lr)
        self.x = torch.from_numpy(x.copy()).requires_grad_(True)
        self.target = torch.from_numpy(np.argmax(y, axis=1))

    def step(self):
        functional = self.torch.nn.functional
        self.optimizer.zero_grad()
        self.x.grad = None
        out = self.x
        for layer in self.layers[:-1]:
            out = functional.relu(layer(out))
        loss = functional.cross_entropy(self.layers[-1](out), self.target)
        loss.backward()
        self.optimizer.step()
        return loss

    def gradients(self):
        grads = [p.grad.numpy().copy() for layer in self.layers for p in (layer.weight, layer.bias)]
        return grads + [self.x.grad.numpy().copy()]


def torch_available():
    """True if ``import torch`` works (it is an optional benchmark dependency)."""
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True
