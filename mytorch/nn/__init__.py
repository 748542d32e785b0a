from mytorch.nn import functional, functional_rnn
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
from mytorch.nn.modules import GRUCell, Recurrent, RecurrentCell, RNNCell

__all__ = [
    "functional", "Activation", "Identity", "Linear", "LossFN", "MSELoss", "ReLU", "Sigmoid",
    "SoftmaxCrossEntropy", "Tanh",
    "functional_rnn", "RecurrentCell", "RNNCell", "GRUCell", "Recurrent",
]
