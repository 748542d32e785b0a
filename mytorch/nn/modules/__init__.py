from mytorch.nn.modules.activation import Activation, Identity, ReLU, Sigmoid, Tanh
from mytorch.nn.modules.linear import Linear
from mytorch.nn.modules.loss import LossFN, MSELoss, SoftmaxCrossEntropy
from mytorch.nn.modules.rnn import GRUCell, Recurrent, RecurrentCell, RNNCell

__all__ = [
    "Activation", "Identity", "ReLU", "Sigmoid", "Tanh", "Linear", "LossFN", "MSELoss",
    "SoftmaxCrossEntropy",
    "RecurrentCell", "RNNCell", "GRUCell", "Recurrent",
]
