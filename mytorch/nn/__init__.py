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

# The homework handouts keep only the blocks of the packs they hold (autograder/packs.py).
# BEGIN PACK cnn
from mytorch.nn import functional_cnn  # noqa: E402
from mytorch.nn.modules import (  # noqa: E402
    Conv1d, Conv2d, Downsample1d, Downsample2d, Flatten, MaxPool2d, MeanPool2d, Upsample1d, Upsample2d,
)

__all__ += ["functional_cnn", "Conv1d", "Conv2d", "Flatten", "MaxPool2d", "MeanPool2d", "Downsample1d",
            "Downsample2d", "Upsample1d", "Upsample2d"]
# END PACK cnn
# BEGIN PACK rnn
from mytorch.nn import functional_rnn  # noqa: E402
from mytorch.nn.modules import GRUCell, Recurrent, RecurrentCell, RNNCell  # noqa: E402

__all__ += ["functional_rnn", "RecurrentCell", "RNNCell", "GRUCell", "Recurrent"]
# END PACK rnn
