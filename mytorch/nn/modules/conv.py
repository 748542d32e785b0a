"""Convolution layers recorded on an autograd tape: Conv1d and Conv2d (any stride, zero padding)."""
import numpy as np

from mytorch.nn import functional_cnn as F
from mytorch.nn.modules._arguments import check_batch, check_engine, check_int


class _ConvNd:
    """The shared body of Conv1d and Conv2d; ``dims`` is the number of spatial axes.

    A convolution with stride s and padding p is recorded as (up to) three
    operations: ``pad`` (when p > 0), a stride-1 convolution, and ``downsampling``
    by s (when s > 1), which keeps every s-th output position, as PyTorch's strided
    convolution does.
    """

    dims = None
    conv = None
    conv_backward = None
    downsampling = None
    downsampling_backward = None

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, autograd_engine=None,
                 rng=None, dtype=np.float64):
        name = type(self).__name__
        self.in_channels = check_int(name, "in_channels", in_channels)
        self.out_channels = check_int(name, "out_channels", out_channels)
        self.kernel_size = check_int(name, "kernel_size", kernel_size)
        self.stride = check_int(name, "stride", stride)
        self.padding = check_int(name, "padding", padding, minimum=0)
        self.autograd_engine = check_engine(name, autograd_engine)
        rng = np.random if rng is None else rng
        bound = 1 / np.sqrt(in_channels * kernel_size ** self.dims)  # PyTorch's: 1 / sqrt(fan_in)
        shape = (out_channels, in_channels) + (kernel_size,) * self.dims
        self.W = rng.uniform(-bound, bound, size=shape).astype(dtype)
        self.b = rng.uniform(-bound, bound, size=out_channels).astype(dtype)
        self.dW = np.zeros_like(self.W)
        self.db = np.zeros_like(self.b)
        self.momentum_W = np.zeros_like(self.W)
        self.momentum_b = np.zeros_like(self.b)

    def parameters(self):
        """(parameter, gradient) pairs, for the optimizers in ``mytorch.optim``."""
        return [(self.W, self.dW), (self.b, self.db)]

    def forward(self, x):
        """Record the convolution of x (N, in_channels, *spatial) and return (N, out_channels, *out)."""
        check_batch(self, x, self.dims, self.in_channels)
        padded = tuple(n + 2 * self.padding for n in x.shape[2:])
        if min(padded) < self.kernel_size:
            raise ValueError(
                f"{self!r}.forward: the input's spatial size {x.shape[2:]} (with padding "
                f"{self.padding}: {padded}) is smaller than the kernel ({self.kernel_size})"
            )
        # BEGIN SOLUTION
        engine = self.autograd_engine
        if self.padding > 0:
            x_padded = F.pad(x, self.padding)
            engine.add_operation([x], x_padded, [None], F.pad_backward, padding=self.padding)
            x = x_padded
        out = self.conv(x, self.W, self.b)
        engine.add_operation([x, self.W, self.b], out, [None, self.dW, self.db], self.conv_backward)
        if self.stride > 1:
            strided = self.downsampling(out, self.stride)
            engine.add_operation([out], strided, [None], self.downsampling_backward, factor=self.stride)
            out = strided
        return out
        # END SOLUTION

    __call__ = forward

    def __repr__(self):
        return (f"{type(self).__name__}({self.in_channels}, {self.out_channels}, "
                f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding})")


class Conv1d(_ConvNd):
    """1-D convolution of x (N, in_channels, W): W (out, in, K), b (out,) ~ U(-1/sqrt(in * K), 1/sqrt(in * K)).

    ``Conv1d(in_channels, out_channels, kernel_size, stride=1, padding=0,
    autograd_engine=engine, rng=None, dtype=np.float64)``; the output width is
    ``(W + 2 * padding - K) // stride + 1``, as ``torch.nn.Conv1d``. ``backward`` adds
    the parameters' gradients into ``dW`` and ``db``.
    """

    dims = 1
    conv = staticmethod(F.conv1d_stride1)
    conv_backward = staticmethod(F.conv1d_stride1_backward)
    downsampling = staticmethod(F.downsampling1d)
    downsampling_backward = staticmethod(F.downsampling1d_backward)


class Conv2d(_ConvNd):
    """2-D convolution of x (N, in_channels, H, W) with square K x K kernels, as ``torch.nn.Conv2d``.

    W is (out, in, K, K), b (out,), both ~ U(-1/sqrt(in * K * K), 1/sqrt(in * K * K));
    the output is (N, out, (H + 2p - K) // s + 1, (W + 2p - K) // s + 1).
    """

    dims = 2
    conv = staticmethod(F.conv2d_stride1)
    conv_backward = staticmethod(F.conv2d_stride1_backward)
    downsampling = staticmethod(F.downsampling2d)
    downsampling_backward = staticmethod(F.downsampling2d_backward)
