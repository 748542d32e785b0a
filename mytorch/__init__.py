"""MyTorch: a small reverse-mode autograd engine on NumPy, built as a linear tape."""
from mytorch import nn, optim, tape_picture
from mytorch.autograd_engine import Autograd, Operation, UnusedOperationWarning
from mytorch.gradcheck import gradcheck
from mytorch.tape_picture import TapePicture
from mytorch.utils import GradientBuffer

__version__ = "0.1.0"
__all__ = ["Autograd", "Operation", "GradientBuffer", "UnusedOperationWarning", "gradcheck", "nn", "optim",
           "TapePicture", "tape_picture"]
