"""Flatten: (N, ...) -> (N, prod(...)), recorded on an autograd tape."""
from mytorch.nn import functional_cnn as F
from mytorch.nn.modules._arguments import check_engine


class Flatten:
    """Turns a batch (N, C, ...) into rows (N, C * ...), e.g. between convolutions and a Linear layer."""

    def __init__(self, autograd_engine):
        self.autograd_engine = check_engine("Flatten", autograd_engine)

    def forward(self, x):
        # BEGIN SOLUTION
        out = F.flatten(x)
        self.autograd_engine.add_operation([x], out, [None], F.flatten_backward)
        return out
        # END SOLUTION

    __call__ = forward

    def __repr__(self):
        return "Flatten()"
