"""A GRU classifier trained with the mytorch autograd engine: it reads each image row by row.

A 28x28 digit is a sequence of 28 time steps of 28 features (its rows, top to
bottom). A ``GRUCell`` unrolled over the rows (``nn.Recurrent``) gives a last hidden
state that summarizes the image; a ``Linear`` layer turns it into 10 class scores.
Every step is recorded on the engine's tape, so ``backward`` is backpropagation
through time. One training step is the same as the MLP's (see hw/mlp.py)::

    model.zero_grads()          # empty the tape, set every gradient to zero
    model.forward(x)            # record 28 GRU steps and the Linear layer
    model.total_loss(labels)    # record the loss
    model.backward()            # run the tape backwards: fills every gradient
    model.step()                # update the parameters (Adam)

The model has the interface ``hw.mlp.get_training_stats`` and ``hw.mlp.evaluate``
use, so the MLP's training loop trains it as it is.
"""
import numpy as np

from hw.mlp import MLP, get_training_stats
from mytorch import Autograd, TapePicture, nn, optim

ROW_SIZE = 28  # pixels per image row: the features of one time step
DEFAULTS = dict(hidden_size=128, epochs=8, batch_size=32, lr=0.005, lr_decay=0.8, seed=0, dtype="float32")


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
        self.train_mode = True
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

    # The rest is the MLP's bookkeeping: backward() runs the tape from the recorded loss
    # (backpropagation through time here), error(labels) counts mistakes, train()/eval().
    backward, error, train, eval = MLP.backward, MLP.error, MLP.train, MLP.eval

    def __repr__(self):
        return (f"GRUClassifier(GRUCell({self.input_size}, {self.hidden_size}) over "
                f"{self.steps or 'T'} steps, Linear({self.hidden_size}, {self.output_size}), {self.dtype.name})")


def train_gru(dset, hidden_size=DEFAULTS["hidden_size"], epochs=DEFAULTS["epochs"],
              batch_size=DEFAULTS["batch_size"], lr=DEFAULTS["lr"], lr_decay=DEFAULTS["lr_decay"],
              seed=DEFAULTS["seed"], dtype=DEFAULTS["dtype"], input_size=ROW_SIZE, on_batch=None,
              on_epoch=None):
    """Train a ``GRUClassifier`` on ``dset`` = (train, val, test) of (images, labels); return (model, curves).

    Images are flat rows of ``T * input_size`` pixels. ``curves`` are the four
    per-epoch lists of ``hw.mlp.get_training_stats`` (train loss, train error,
    val loss, val error); ``on_batch``/``on_epoch`` are its progress callbacks.
    Adam's learning rate is multiplied by ``lr_decay`` after every epoch. The
    same seed gives the same numbers.
    """
    (train_x, train_labels), val = dset[0], dset[1]
    num_classes = int(max(train_labels.max(), val[1].max())) + 1
    dtype = np.dtype(dtype)
    splits = tuple(None if split is None else (split[0].astype(dtype, copy=False), split[1]) for split in dset)
    rng = np.random.default_rng(seed)
    model = GRUClassifier(input_size, hidden_size, num_classes, Autograd(), lr,
                          steps=train_x.shape[1] // input_size, rng=rng, dtype=dtype)

    def after_epoch(*stats):
        model.optimizer.lr *= lr_decay
        if on_epoch is not None:
            on_epoch(*stats)

    curves = get_training_stats(model, splits, epochs, batch_size, rng=rng, on_batch=on_batch,
                                on_epoch=after_epoch)
    return model, curves


def picture_of_one_step(model, x, labels):
    """A ``TapePicture`` of one training step on ``x`` and one-hot ``labels``, with its gradient norms.

    The step stops after ``backward``: the parameters are not updated, and the
    tape and gradients are cleared again afterwards.
    """
    model.zero_grads()
    model.forward(x)
    model.total_loss(labels)
    picture = TapePicture(model.autograd_engine)
    model.backward()
    picture.read_gradients()
    model.zero_grads()
    return picture
