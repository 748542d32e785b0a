from mytorch.nn.modules.activation import Activation, Identity, ReLU, Sigmoid, Tanh
from mytorch.nn.modules.linear import Linear
from mytorch.nn.modules.loss import LossFN, MSELoss, SoftmaxCrossEntropy

__all__ = ["Activation", "Identity", "ReLU", "Sigmoid", "Tanh", "Linear", "LossFN", "MSELoss", "SoftmaxCrossEntropy"]

# The homework handouts keep only the blocks of the packs they hold (autograder/packs.py).
# BEGIN PACK cnn
from mytorch.nn.modules.conv import Conv1d, Conv2d  # noqa: E402
from mytorch.nn.modules.flatten import Flatten  # noqa: E402
from mytorch.nn.modules.pool import MaxPool2d, MeanPool2d  # noqa: E402
from mytorch.nn.modules.resampling import Downsample1d, Downsample2d, Upsample1d, Upsample2d  # noqa: E402

__all__ += ["Conv1d", "Conv2d", "Flatten", "MaxPool2d", "MeanPool2d", "Downsample1d", "Downsample2d", "Upsample1d",
            "Upsample2d"]
# END PACK cnn
# BEGIN PACK rnn
from mytorch.nn.modules.rnn import GRUCell, Recurrent, RecurrentCell, RNNCell  # noqa: E402

__all__ += ["RecurrentCell", "RNNCell", "GRUCell", "Recurrent"]
# END PACK rnn
