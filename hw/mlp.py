"""A multi-layer perceptron trained with the mytorch autograd engine.

Every forward pass is recorded on the engine's tape; one training step is::

    mlp.zero_grads()            # empty the tape, set every dW and db to zero
    mlp.forward(x)              # record the layers
    mlp.total_loss(labels)      # record the loss
    mlp.backward()              # run the tape backwards: fills dW and db
    mlp.step()                  # update W and b (SGD with momentum)

Evaluation passes run under ``autograd_engine.no_grad()`` so they record nothing.
"""
import numpy as np

from mytorch import nn


class TrainingDiverged(ValueError):
    """The loss stopped being a finite number (usually: the learning rate is too large).

    ``batch`` is the training batch (counted from 1) whose loss was not finite, or
    None when it was the validation loss after the epoch.
    """

    def __init__(self, epoch, batch, loss):
        self.epoch, self.batch, self.loss = epoch, batch, loss
        where = f"the training loss became {loss} at epoch {epoch}, batch {batch}" if batch is not None \
            else f"the validation loss became {loss} after epoch {epoch}"
        super().__init__(where)


def one_hot(labels, num_classes, dtype=np.float64):
    """Integer labels of shape (N,) as one-hot rows of shape (N, num_classes)."""
    rows = np.zeros((len(labels), num_classes), dtype=dtype)
    rows[np.arange(len(labels)), labels] = 1
    return rows


class MLP:
    """Linear layers, each followed by its activation, and a loss on the last output.

    ``hiddens`` lists the hidden layer sizes; ``activations`` holds one activation
    module per linear layer (``len(hiddens) + 1`` of them, the last one usually
    ``nn.Identity``); ``criterion`` is a loss module such as ``nn.SoftmaxCrossEntropy``.
    All of them must record on ``autograd_engine``. ``step`` applies SGD with
    ``momentum`` through each layer's ``momentum_W`` and ``momentum_b``.
    ``rng`` (a ``np.random.Generator``) draws the initial weights.
    """

    def __init__(self, input_size, output_size, hiddens, activations, criterion, lr,
                 autograd_engine, momentum=0.0, rng=None):
        hiddens = list(hiddens)
        if len(activations) != len(hiddens) + 1:
            raise ValueError(
                f"MLP: {len(hiddens)} hidden layers need {len(hiddens) + 1} activations "
                f"(one per linear layer), got {len(activations)}"
            )
        if not lr > 0:
            raise ValueError(f"MLP: lr must be positive, got {lr}")
        if not 0 <= momentum < 1:
            raise ValueError(f"MLP: momentum must be in [0, 1), got {momentum}")
        self.input_size = input_size
        self.output_size = output_size
        self.activations = list(activations)
        self.criterion = criterion
        self.lr = lr
        self.momentum = momentum
        self.autograd_engine = autograd_engine
        sizes = [input_size] + hiddens + [output_size]
        self.linear_layers = [
            nn.Linear(n_in, n_out, autograd_engine, rng=rng) for n_in, n_out in zip(sizes[:-1], sizes[1:])
        ]
        self.output = None

    def forward(self, x):
        """Run x of shape (N, input_size) through every layer; keep and return the (N, output_size) output."""
        # BEGIN SOLUTION
        out = x
        for linear, activation in zip(self.linear_layers, self.activations):
            out = activation(linear(out))
        self.output = out
        return out
        # END SOLUTION

    def __call__(self, x):
        return self.forward(x)

    def zero_grads(self):
        """Empty the engine's tape and set every layer's dW and db to zero."""
        # BEGIN SOLUTION
        self.autograd_engine.zero_grad()
        for layer in self.linear_layers:
            layer.dW.fill(0.0)
            layer.db.fill(0.0)
        # END SOLUTION

    def step(self):
        """SGD with momentum, in place: v = momentum * v - lr * grad; param += v."""
        # BEGIN SOLUTION
        for layer in self.linear_layers:
            layer.momentum_W *= self.momentum
            layer.momentum_W -= self.lr * layer.dW
            layer.W += layer.momentum_W
            layer.momentum_b *= self.momentum
            layer.momentum_b -= self.lr * layer.db
            layer.b += layer.momentum_b
        # END SOLUTION

    def total_loss(self, labels):
        """The loss of the last output against one-hot ``labels``, summed over the batch (a float).

        The criterion is recorded on the tape (unless under ``no_grad()``), so
        ``backward()`` can follow.
        """
        # BEGIN SOLUTION
        batch_mean = self.criterion(labels, self.output)
        return float(batch_mean[0]) * len(labels)
        # END SOLUTION

    def backward(self):
        """Run the tape backwards from the loss ``total_loss`` recorded: fills every dW and db."""
        self.criterion.backward()

    def error(self, labels):
        """How many rows of the last output do not pick the class that one-hot ``labels`` mark."""
        return int(np.sum(np.argmax(self.output, axis=1) != np.argmax(labels, axis=1)))

    def train(self):
        """Training mode, kept for the course's API: no layer here (no dropout, no batch norm)
        behaves differently in training and evaluation, so it changes nothing."""
        return self

    def eval(self):
        """Evaluation mode, kept for the course's API (see ``train``); evaluation passes record
        nothing because they run under ``autograd_engine.no_grad()``."""
        return self

    def __repr__(self):
        sizes = [self.input_size] + [layer.out_features for layer in self.linear_layers]
        names = ", ".join(type(a).__name__ for a in self.activations)
        return f"MLP({'-'.join(map(str, sizes))}, activations [{names}], {type(self.criterion).__name__})"


def evaluate(mlp, x, labels, batch_size=1000):
    """Mean loss and error rate (fraction misclassified) of ``mlp`` on integer ``labels``.

    Runs under ``no_grad()``, so nothing is recorded.
    """
    loss_sum, errors = 0.0, 0
    with mlp.autograd_engine.no_grad():
        for start in range(0, len(x), batch_size):
            batch_labels = one_hot(labels[start:start + batch_size], mlp.output_size, x.dtype)
            mlp.forward(x[start:start + batch_size])
            loss_sum += mlp.total_loss(batch_labels)
            errors += mlp.error(batch_labels)
    return loss_sum / len(x), errors / len(x)


def get_training_stats(mlp, dset, nepochs, batch_size, rng=None, on_batch=None, on_epoch=None):
    """Train ``mlp`` for ``nepochs`` epochs of mini-batches and return its learning curves.

    ``dset`` is ``(train, val, test)``, each an ``(x, labels)`` pair with integer
    labels (test is not used here). Each epoch visits the training set in an
    order drawn from ``rng`` (a ``np.random.Generator``), then evaluates on the
    validation set. Returns four lists, one entry per epoch: training loss,
    training error, validation loss, validation error (losses are means per
    example; errors are fractions misclassified; the training figures are
    averaged over the epoch's batches as they were trained).

    ``on_batch(epoch, done, total, mean_loss)`` is called after every batch and
    ``on_epoch(epoch, train_loss, train_error, val_loss, val_error)`` after every
    epoch (epochs count from 1). Raises ``TrainingDiverged`` as soon as a batch's
    loss, or the validation loss, is not finite.
    """
    (train_x, train_labels), (val_x, val_labels) = dset[0], dset[1]
    rng = np.random.default_rng() if rng is None else rng
    n = len(train_x)
    training_losses, training_errors = [], []
    validation_losses, validation_errors = [], []
    for epoch in range(1, nepochs + 1):
        order = rng.permutation(n)
        loss_sum, errors = 0.0, 0
        for batch_index, start in enumerate(range(0, n, batch_size)):
            rows = order[start:start + batch_size]
            x = train_x[rows]
            labels = one_hot(train_labels[rows], mlp.output_size, train_x.dtype)
            # Train on one batch: set batch_loss (its total loss) and batch_errors.
            # BEGIN SOLUTION
            mlp.zero_grads()
            mlp.forward(x)
            batch_loss = mlp.total_loss(labels)
            batch_errors = mlp.error(labels)
            mlp.backward()
            mlp.step()
            # END SOLUTION
            if not np.isfinite(batch_loss):
                raise TrainingDiverged(epoch, batch_index + 1, batch_loss)
            loss_sum += batch_loss
            errors += batch_errors
            done = start + len(rows)
            if on_batch is not None:
                on_batch(epoch, done, n, loss_sum / done)
        mlp.zero_grads()  # release the last batch's tape before evaluating
        val_loss, val_error = evaluate(mlp, val_x, val_labels)
        if not np.isfinite(val_loss):
            raise TrainingDiverged(epoch, None, val_loss)
        training_losses.append(loss_sum / n)
        training_errors.append(errors / n)
        validation_losses.append(val_loss)
        validation_errors.append(val_error)
        if on_epoch is not None:
            on_epoch(epoch, training_losses[-1], training_errors[-1], val_loss, val_error)
    return training_losses, training_errors, validation_losses, validation_errors
