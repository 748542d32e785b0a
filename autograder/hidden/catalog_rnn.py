"""The RNN homework's hidden tests: the public tests' probes on other data of the same kinds.

Other seeds, sizes, axes and numbers of inputs for the primitives; other cells, batches and
sequence lengths, float32, saturated gates, on the grader's tape and on the student's
engine; the classifier on other sizes.
"""
import numpy as np

from autograder.catalog import F32, test
from autograder.catalog_rnn import (
    BPTT_USES, EVERY, GRU_CELL_USES, GRU_CLASSIFIER_USES, LAST, ON_YOUR_ENGINE, RNN_CELL_USES, classifier_case,
    joined_case, recurrent_case, recurrent_params,
)


def functional_tests():
    stack, concatenate = "stack_backward", "concatenate_backward"
    return [
        test("functional/stack_backward", 3, [stack], "other shapes, axes and counts", [
            joined_case(stack, [(3, 2)] * 5, 5001, "five (3, 2) arrays, axis 1", axis=1),
            joined_case(stack, [(2, 4)] * 3, 5011, "float32, three (2, 4) arrays, axis -1", axis=-1, dtype=F32),
            joined_case(stack, [(3,)], 5021, "one input, the default axis"),
        ]),
        test("functional/concatenate_backward", 3, [concatenate], "other sizes and axes", [
            joined_case(concatenate, [(1, 2), (3, 2), (2, 2)], 5031, "sizes 1, 3, 2 along axis 0", axis=0),
            joined_case(concatenate, [(2, 2, 3), (2, 1, 3)], 5041, "float32, sizes 2 and 1 along axis 1 of 3-D arrays",
                        axis=1, dtype=F32),
            joined_case(concatenate, [(2, 2)], 5051, "one input, the default axis"),
        ]),
    ]


def cell_tests():
    rnn, gru = recurrent_params("RNNCell"), recurrent_params("GRUCell")
    return [
        test("cells/RNNCell", 5, RNN_CELL_USES, "other sizes, relu, float32, no h", [
            recurrent_case(recurrent_params("RNNCell", nonlinearity="relu"), 5101, 4, 2, 3, "relu, batch of 4",
                           dtype=F32),
            recurrent_case(rnn, 5111, 1, 4, 3, "tanh, batch of 1, no h", with_h=False),
        ]),
        test("cells/GRUCell", 8, GRU_CELL_USES, "other sizes, float32, saturated gates, no h", [
            recurrent_case(gru, 5201, 4, 3, 2, "batch of 4", dtype=F32),
            recurrent_case(gru, 5211, 1, 2, 4, "batch of 1, no h", with_h=False),
            recurrent_case(gru, 5221, 2, 3, 3, "large inputs", scale=150.0),
        ]),
    ]


def sequence_tests():
    return [
        test("sequence/bptt", 5, BPTT_USES, "other lengths and cells", [
            recurrent_case(recurrent_params("GRUCell", sequence=EVERY), 5301, 3, 2, 2, "GRU, 6 steps, every state",
                           steps=6, with_h=False),
            recurrent_case(recurrent_params("RNNCell", sequence=LAST), 5311, 1, 3, 4, "RNN, float32, batch of 1",
                           steps=2, dtype=F32),
        ]),
        test("sequence/bptt_on_your_engine", 3, BPTT_USES + ON_YOUR_ENGINE, "on your engine, other lengths", [
            recurrent_case(recurrent_params("GRUCell", "student", LAST), 5401, 3, 2, 3, "GRU, 5 steps, no h0",
                           steps=5, with_h=False),
        ]),
    ]


def gru_tests():
    return [
        test("gru/forward", 3, GRU_CLASSIFIER_USES, "other sizes", [
            classifier_case(5501, 4, 5, 3, 4, 2, "float32, flat rows, batch of 4"),
            classifier_case(5521, 2, 2, 4, 2, 3, "float64, sequences", flat=False, dtype=np.float64),
        ]),
    ]


def hidden_tests():
    """All hidden tests of the RNN homework; names may repeat public ones (the report marks them hidden)."""
    return functional_tests() + cell_tests() + sequence_tests() + gru_tests()
