"""A fully connected layer recorded on an autograd tape."""
import numpy as np

from mytorch.nn.functional import add_backward, matmul_backward


class Linear:
    """y = x @ W.T + b for a batch x of shape (N, in_features).

    ``W`` is (out_features, in_features) and ``b`` (out_features,), both drawn from
    U(-1/sqrt(in), 1/sqrt(in)); ``backward`` adds their gradients into ``dW`` and
    ``db``. ``rng`` is a ``np.random.Generator`` (default: the ``np.random`` module).

    ``W``, ``dW`` and ``momentum_W`` are stored in column-major (Fortran) order, so
    their transposes are ordinary row-major arrays, laid out like the gradients NumPy
    computes for them: adding such a gradient is then one pass over contiguous memory.
    (Any layout gives the same numbers; this one is faster.)
    """

    def __init__(self, in_features, out_features, autograd_engine, rng=None, dtype=np.float64):
        if in_features < 1 or out_features < 1:
            raise ValueError(f"Linear: sizes must be positive, got ({in_features}, {out_features})")
        rng = np.random if rng is None else rng
        bound = np.sqrt(1 / in_features)
        self.in_features, self.out_features = in_features, out_features
        self.W = rng.uniform(-bound, bound, size=(out_features, in_features)).astype(dtype, order="F")
        self.b = rng.uniform(-bound, bound, size=out_features).astype(dtype)
        self.dW = np.zeros_like(self.W)
        self.db = np.zeros_like(self.b)
        self.momentum_W = np.zeros_like(self.W)
        self.momentum_b = np.zeros_like(self.b)
        self.autograd_engine = autograd_engine

    def parameters(self):
        """(parameter, gradient) pairs, for the optimizers in ``mytorch.optim``."""
        return [(self.W, self.dW), (self.b, self.db)]

    def forward(self, x):
        if not isinstance(x, np.ndarray) or x.ndim != 2 or x.shape[1] != self.in_features:
            raise ValueError(
                f"Linear({self.in_features}, {self.out_features}).forward: expected an array of "
                f"shape (N, {self.in_features}), got shape {np.shape(x)}"
            )
        # BEGIN SOLUTION
        W_T = self.W.T
        y = x @ W_T
        self.autograd_engine.add_operation([x, W_T], y, [None, self.dW.T], matmul_backward)
        out = y + self.b
        self.autograd_engine.add_operation([y, self.b], out, [None, self.db], add_backward)
        return out
        # END SOLUTION

    __call__ = forward

    def __repr__(self):
        return f"Linear(in_features={self.in_features}, out_features={self.out_features})"
