from mytorch.nn import functional
from mytorch.nn.modules import (
    Activation,
    Identity,
    Linear,
    LossFN,
    MSELoss,
    ReLU,
    Sigmoid,
    SoftmaxCrossEntropy,
    Tanh,
)

__all__ = [
    "functional", "Activation", "Identity", "Linear", "LossFN", "MSELoss", "ReLU", "Sigmoid",
    "SoftmaxCrossEntropy", "Tanh",
]
