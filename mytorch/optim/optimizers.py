"""SGD with momentum and Adam, updating (parameter, gradient) pairs in place."""
import numpy as np


class Optimizer:
    """Holds (param, grad) pairs; ``zero_grad`` fills every grad with zeros."""

    def __init__(self, params, lr):
        self.params = [(p, g) for p, g in params]
        if not self.params:
            raise ValueError(f"{type(self).__name__}: no parameters given")
        if not lr > 0:
            raise ValueError(f"{type(self).__name__}: lr must be positive, got {lr}")
        for i, (p, g) in enumerate(self.params):
            if not isinstance(p, np.ndarray) or not isinstance(g, np.ndarray) or p.shape != g.shape:
                raise ValueError(
                    f"{type(self).__name__}: pair {i} must be two arrays of one shape, got "
                    f"{np.shape(p)} and {np.shape(g)}"
                )
        self.lr = lr

    def zero_grad(self):
        for _, g in self.params:
            g.fill(0)

    def _check_writeable(self):
        for i, (p, _) in enumerate(self.params):
            if not p.flags.writeable:
                raise ValueError(
                    f"{type(self).__name__}.step: parameter {i} {p.shape} is read-only: it is still "
                    "recorded on an autograd tape; call backward() or zero_grad() first"
                )

    def step(self):
        raise NotImplementedError


class SGD(Optimizer):
    """v = momentum * v - lr * grad; param += v (plain SGD when momentum is 0)."""

    def __init__(self, params, lr, momentum=0.0):
        super().__init__(params, lr)
        if not 0 <= momentum < 1:
            raise ValueError(f"SGD: momentum must be in [0, 1), got {momentum}")
        self.momentum = momentum
        self.velocity = [np.zeros_like(p) for p, _ in self.params] if momentum else None

    def step(self):
        self._check_writeable()
        if not self.momentum:
            for p, g in self.params:
                p -= self.lr * g
            return
        for (p, g), v in zip(self.params, self.velocity):
            v *= self.momentum
            v -= self.lr * g
            p += v


class Adam(Optimizer):
    """Adam (Kingma and Ba, 2015) with bias correction."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8):
        super().__init__(params, lr)
        if not (0 <= betas[0] < 1 and 0 <= betas[1] < 1):
            raise ValueError(f"Adam: betas must be in [0, 1), got {betas}")
        self.betas, self.eps, self.t = betas, eps, 0
        self.m = [np.zeros_like(p) for p, _ in self.params]
        self.v = [np.zeros_like(p) for p, _ in self.params]

    def step(self):
        self._check_writeable()
        self.t += 1
        beta1, beta2 = self.betas
        for (p, g), m, v in zip(self.params, self.m, self.v):
            m *= beta1
            m += (1 - beta1) * g
            v *= beta2
            v += (1 - beta2) * g * g
            m_hat = m / (1 - beta1 ** self.t)
            v_hat = v / (1 - beta2 ** self.t)
            p -= self.lr * m_hat / (np.sqrt(v_hat) + self.eps)
