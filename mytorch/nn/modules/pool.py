"""2-D pooling recorded on an autograd tape: MaxPool2d and MeanPool2d."""
from mytorch.nn import functional_cnn as F
from mytorch.nn.modules._arguments import check_batch, check_engine, check_int


class _Pool2d:
    """Shared body: ``kernel_size`` x ``kernel_size`` windows, ``stride`` apart (default: kernel_size)."""

    pool = None
    pool_backward = None

    @staticmethod
    def reuse(out):
        """Extra keyword options for ``pool_backward``: what it can reuse from the forward pass."""
        return {}

    def __init__(self, kernel_size, stride=None, autograd_engine=None):
        name = type(self).__name__
        self.kernel_size = check_int(name, "kernel_size", kernel_size)
        self.stride = self.kernel_size if stride is None else check_int(name, "stride", stride)
        self.autograd_engine = check_engine(name, autograd_engine)

    def forward(self, x):
        """Record the pooling of x (N, C, H, W); return (N, C, (H - k) // s + 1, (W - k) // s + 1)."""
        check_batch(self, x, 2)
        # BEGIN SOLUTION
        out = self.pool(x, self.kernel_size, self.stride)
        self.autograd_engine.add_operation([x], out, [None], self.pool_backward,
                                           kernel_size=self.kernel_size, stride=self.stride, **self.reuse(out))
        return out
        # END SOLUTION

    __call__ = forward

    def __repr__(self):
        return f"{type(self).__name__}(kernel_size={self.kernel_size}, stride={self.stride})"


class MaxPool2d(_Pool2d):
    """The largest entry of each window, as ``torch.nn.MaxPool2d(kernel_size, stride)``.

    A tie sends the window's gradient to its first largest entry (row-major), as PyTorch.
    """

    pool = staticmethod(F.maxpool2d)
    pool_backward = staticmethod(F.maxpool2d_backward)

    @staticmethod
    def reuse(out):
        return {"out": out}  # the maxima: the backward needs them


class MeanPool2d(_Pool2d):
    """The mean of each window, as ``torch.nn.AvgPool2d(kernel_size, stride)``."""

    pool = staticmethod(F.meanpool2d)
    pool_backward = staticmethod(F.meanpool2d_backward)
