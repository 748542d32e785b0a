"""A GRU classifier trained with the mytorch autograd engine: it reads each image row by row.

A 28x28 digit is a sequence of 28 time steps of 28 features (its rows, top to
bottom). A ``GRUCell`` unrolled over the rows (``nn.Recurrent``) gives a last hidden
state that summarizes the image; a ``Linear`` layer turns it into 10 class scores.
Every step is recorded on the engine's tape, so ``backward`` is backpropagation
through time. One training step is::

    model.zero_grads()          # empty the tape, set every gradient to zero
    model.forward(x)            # record 28 GRU steps and the Linear layer
    model.total_loss(labels)    # record the loss (labels: one-hot rows)
    model.backward()            # run the tape backwards: fills every gradient
    model.step()                # update the parameters (Adam)

This file needs only NumPy and mytorch; hw/rnn_runner.py trains the classifier with
the training loop of hw/trainer.py.
"""
import numpy as np

from mytorch import nn, optim


class GRUClassifier:
    """GRU over the rows of each image, then Linear on the last hidden state, softmax cross-entropy.

    ``forward(x)`` takes a batch of images as flat rows (N, steps * input_size),
    row-major (the data set's layout), or as (N, steps, input_size). Parameters
    are kept in ``dtype`` (float32 by default: same accuracy, less memory
    traffic), drawn from ``rng`` (a ``np.random.Generator``); ``step`` applies
    Adam with learning rate ``lr``.
    """

    def __init__(self, input_size, hidden_size, output_size, autograd_engine, lr, steps=None,
                 rng=None, dtype=np.float32):
        self.input_size, self.hidden_size, self.output_size = input_size, hidden_size, output_size
        self.steps = steps
        self.autograd_engine = autograd_engine
        self.dtype = np.dtype(dtype)
        self.rnn = nn.Recurrent(nn.GRUCell(input_size, hidden_size, autograd_engine, rng=rng, dtype=dtype))
        self.linear = nn.Linear(hidden_size, output_size, autograd_engine, rng=rng, dtype=dtype)
        self.criterion = nn.SoftmaxCrossEntropy(autograd_engine)
        self.optimizer = optim.Adam(self.parameters(), lr=lr)
        self.output = None

    def parameters(self):
        """(parameter, gradient) pairs: the GRU cell's four, then the Linear layer's two."""
        return self.rnn.parameters() + self.linear.parameters()

    def sequences(self, x):
        """``x`` as a batch of sequences (N, T, input_size) in the model's dtype (not recorded: data)."""
        if isinstance(x, np.ndarray) and x.ndim == 2 and x.shape[1] % self.input_size == 0:
            x = x.reshape(len(x), -1, self.input_size)
        if not isinstance(x, np.ndarray) or x.ndim != 3 or x.shape[2] != self.input_size \
                or (self.steps is not None and x.shape[1] != self.steps):
            steps = "T" if self.steps is None else self.steps
            raise ValueError(
                f"GRUClassifier.forward: expected images of shape (N, {steps} * {self.input_size}) or "
                f"(N, {steps}, {self.input_size}), got shape {np.shape(x)}"
            )
        return x.astype(self.dtype, copy=False)

    def forward(self, x):
        """Class scores (N, output_size) for a batch of images; kept in ``output``."""
        # BEGIN SOLUTION
        self.output = self.linear(self.rnn(self.sequences(x)))
        return self.output
        # END SOLUTION

    def __call__(self, x):
        return self.forward(x)

    def zero_grads(self):
        """Empty the engine's tape and set every parameter's gradient to zero."""
        self.autograd_engine.zero_grad()
        self.optimizer.zero_grad()

    def total_loss(self, labels):
        """The loss of the last output against one-hot ``labels``, summed over the batch (a float)."""
        return float(self.criterion(labels, self.output)[0]) * len(labels)

    def step(self):
        """One Adam update of every parameter, in place."""
        self.optimizer.step()

    def backward(self):
        """Run the tape backwards from the loss ``total_loss`` recorded (backpropagation through time)."""
        self.criterion.backward()

    def error(self, labels):
        """How many rows of the last output do not pick the class that one-hot ``labels`` mark."""
        return int(np.sum(np.argmax(self.output, axis=1) != np.argmax(labels, axis=1)))

    def train(self):
        """Training mode, kept for the course's API: no layer here behaves differently, so it changes nothing."""
        return self

    def eval(self):
        """Evaluation mode (see ``train``); evaluation passes record nothing under ``autograd_engine.no_grad()``."""
        return self

    def __repr__(self):
        return (f"GRUClassifier(GRUCell({self.input_size}, {self.hidden_size}) over "
                f"{self.steps or 'T'} steps, Linear({self.hidden_size}, {self.output_size}), {self.dtype.name})")

