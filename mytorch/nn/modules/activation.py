"""Activations, each recorded on an autograd tape as one primitive operation."""
import numpy as np

from mytorch.nn.functional import (
    identity_backward,
    relu_backward,
    sigmoid_backward,
    stable_sigmoid,
    tanh_backward,
)


class Activation:
    """Base class: keeps the engine and the last output in ``state``."""

    def __init__(self, autograd_engine):
        self.autograd_engine = autograd_engine
        self.state = None

    def __call__(self, x):
        return self.forward(x)

    def forward(self, x):
        raise NotImplementedError

    def __repr__(self):
        return f"{type(self).__name__}()"


class Identity(Activation):
    """f(x) = x. The output is a new view, so input and output keep separate gradients."""

    def forward(self, x):
        self.state = x.view()
        self.autograd_engine.add_operation([x], self.state, [None], identity_backward)
        return self.state


class Sigmoid(Activation):
    """f(x) = 1 / (1 + exp(-x))."""

    def forward(self, x):
        # BEGIN SOLUTION
        self.state = stable_sigmoid(x)
        self.autograd_engine.add_operation([x], self.state, [None], sigmoid_backward, out=self.state)
        return self.state
        # END SOLUTION


class Tanh(Activation):
    """f(x) = tanh(x)."""

    def forward(self, x):
        # BEGIN SOLUTION
        self.state = np.tanh(x)
        self.autograd_engine.add_operation([x], self.state, [None], tanh_backward, out=self.state)
        return self.state
        # END SOLUTION


class ReLU(Activation):
    """f(x) = max(x, 0)."""

    def forward(self, x):
        # BEGIN SOLUTION
        self.state = np.maximum(x, 0)
        self.autograd_engine.add_operation([x], self.state, [None], relu_backward)
        return self.state
        # END SOLUTION
