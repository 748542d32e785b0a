"""Resampling recorded on an autograd tape: Downsample1d/2d (keep every k-th entry), Upsample1d/2d (insert zeros)."""
from mytorch.nn import functional_cnn as F
from mytorch.nn.modules._arguments import check_batch, check_engine, check_int


class _Resample:
    """Shared body: one recorded operation with the keyword option ``factor``."""

    dims = None
    resample = None
    resample_backward = None

    def __init__(self, factor, autograd_engine):
        name = type(self).__name__
        self.factor = check_int(name, "factor", factor)
        self.autograd_engine = check_engine(name, autograd_engine)

    def forward(self, x):
        check_batch(self, x, self.dims)
        # BEGIN SOLUTION
        out = self.resample(x, self.factor)
        self.autograd_engine.add_operation([x], out, [None], self.resample_backward, factor=self.factor)
        return out
        # END SOLUTION

    __call__ = forward

    def __repr__(self):
        return f"{type(self).__name__}(factor={self.factor})"


class Downsample1d(_Resample):
    """x (N, C, W) -> x[..., ::factor], width ceil(W / factor)."""

    dims = 1
    resample = staticmethod(F.downsampling1d)
    resample_backward = staticmethod(F.downsampling1d_backward)


class Downsample2d(_Resample):
    """x (N, C, H, W) -> x[..., ::factor, ::factor]."""

    dims = 2
    resample = staticmethod(F.downsampling2d)
    resample_backward = staticmethod(F.downsampling2d_backward)


class Upsample1d(_Resample):
    """x (N, C, W) -> (N, C, (W - 1) * factor + 1) with factor - 1 zeros between neighbours."""

    dims = 1
    resample = staticmethod(F.upsampling1d)
    resample_backward = staticmethod(F.upsampling1d_backward)


class Upsample2d(_Resample):
    """x (N, C, H, W) -> (N, C, (H - 1) * factor + 1, (W - 1) * factor + 1), zeros between neighbours."""

    dims = 2
    resample = staticmethod(F.upsampling2d)
    resample_backward = staticmethod(F.upsampling2d_backward)
