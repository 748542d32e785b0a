from mytorch.nn.modules.activation import Activation, Identity, ReLU, Sigmoid, Tanh
from mytorch.nn.modules.conv import Conv1d, Conv2d
from mytorch.nn.modules.flatten import Flatten
from mytorch.nn.modules.linear import Linear
from mytorch.nn.modules.loss import LossFN, MSELoss, SoftmaxCrossEntropy
from mytorch.nn.modules.pool import MaxPool2d, MeanPool2d
from mytorch.nn.modules.resampling import Downsample1d, Downsample2d, Upsample1d, Upsample2d
from mytorch.nn.modules.rnn import GRUCell, Recurrent, RecurrentCell, RNNCell

__all__ = [
    "Activation", "Identity", "ReLU", "Sigmoid", "Tanh", "Linear", "LossFN", "MSELoss",
    "SoftmaxCrossEntropy",
    "Conv1d", "Conv2d", "Flatten", "MaxPool2d", "MeanPool2d", "Downsample1d", "Downsample2d", "Upsample1d",
    "Upsample2d",
    "RecurrentCell", "RNNCell", "GRUCell", "Recurrent",
]
