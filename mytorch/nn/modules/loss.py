"""Losses: ``loss(y, y_hat)`` returns the batch-mean loss as an array of shape (1,)."""
import numpy as np

from mytorch.nn.functional import (
    SoftmaxCrossEntropy_backward,
    mean_backward,
    mul_backward,
    reshape_backward,
    stable_log_softmax,
    sub_backward,
)


class LossFN:
    """Base class: ``forward(y, y_hat)`` records the loss, ``backward()`` runs the engine."""

    def __init__(self, autograd_engine):
        self.autograd_engine = autograd_engine
        self.loss_val = None

    def __call__(self, y, y_hat):
        return self.forward(y, y_hat)

    def forward(self, y, y_hat):
        raise NotImplementedError

    def backward(self):
        """Gradients of ``loss_val`` with respect to everything recorded on the tape."""
        self.autograd_engine.backward(1)

    def _check(self, y, y_hat):
        for name, array in (("y", y), ("y_hat", y_hat)):
            if not isinstance(array, np.ndarray) or array.ndim != 2:
                raise ValueError(
                    f"{type(self).__name__}: {name} must be an array of shape (N, C), got {np.shape(array)}"
                )
        if y.shape != y_hat.shape:
            raise ValueError(
                f"{type(self).__name__}: y {y.shape} and y_hat {y_hat.shape} must have the same shape "
                "(y is one-hot)"
            )

    def __repr__(self):
        return f"{type(self).__name__}()"


class MSELoss(LossFN):
    """mean((y_hat - y) ** 2) over all N * C elements."""

    def forward(self, y, y_hat):
        self._check(y, y_hat)
        # BEGIN SOLUTION
        engine = self.autograd_engine
        diff = y_hat - y
        engine.add_operation([y_hat, y], diff, [None, None], sub_backward)
        squared = diff * diff
        engine.add_operation([diff, diff], squared, [None, None], mul_backward)
        mean = np.asarray(np.mean(squared))
        engine.add_operation([squared], mean, [None], mean_backward)
        self.loss_val = mean.reshape(1)
        engine.add_operation([mean], self.loss_val, [None], reshape_backward)
        return self.loss_val
        # END SOLUTION


class SoftmaxCrossEntropy(LossFN):
    """mean over the batch of -sum(y * log_softmax(y_hat)), stable for any logits."""

    def forward(self, y, y_hat):
        self._check(y, y_hat)
        # BEGIN SOLUTION
        log_softmax = stable_log_softmax(y_hat)
        self.loss_val = np.reshape(-np.mean(np.sum(y * log_softmax, axis=1)), (1,))
        self.autograd_engine.add_operation(
            [y, y_hat], self.loss_val, [None, None], SoftmaxCrossEntropy_backward, log_softmax=log_softmax
        )
        return self.loss_val
        # END SOLUTION
