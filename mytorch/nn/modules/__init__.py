from mytorch.nn.modules.activation import Activation, Identity, ReLU, Sigmoid, Tanh
from mytorch.nn.modules.linear import Linear
from mytorch.nn.modules.loss import LossFN, MSELoss, SoftmaxCrossEntropy

__all__ = [
    "Activation", "Identity", "ReLU", "Sigmoid", "Tanh", "Linear", "LossFN", "MSELoss",
    "SoftmaxCrossEntropy",
]
