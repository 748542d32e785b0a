from mytorch.nn import functional, functional_cnn, functional_rnn
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
from mytorch.nn.modules import (  # the CNN pack
    Conv1d, Conv2d, Downsample1d, Downsample2d, Flatten, MaxPool2d, MeanPool2d, Upsample1d, Upsample2d,
)
from mytorch.nn.modules import GRUCell, Recurrent, RecurrentCell, RNNCell  # the RNN pack

__all__ = [
    "functional", "Activation", "Identity", "Linear", "LossFN", "MSELoss", "ReLU", "Sigmoid",
    "SoftmaxCrossEntropy", "Tanh",
    "functional_cnn", "Conv1d", "Conv2d", "Flatten", "MaxPool2d", "MeanPool2d", "Downsample1d", "Downsample2d",
    "Upsample1d", "Upsample2d",
    "functional_rnn", "RecurrentCell", "RNNCell", "GRUCell", "Recurrent",
]
