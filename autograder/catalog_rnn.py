"""The RNN homework's public tests, as data (the machinery is ``catalog.py``'s).

The primitives of ``mytorch/nn/functional_rnn.py`` (stacking and concatenation, any
number of inputs, any axis); ``RNNCell`` and ``GRUCell`` forward and gradients on the
grader's tape (``GraderTape``), so their tests do not depend on the student's engine;
the unrolled sequence model (backpropagation through time) on the grader's tape and on
the student's engine; ``hw/rnn.py``'s ``GRUClassifier.forward``. The hidden tests
(``hidden/catalog_rnn.py``) use the same helpers on other data.
"""
import numpy as np

from autograder.catalog import F32, case, check, normal, primitive_case, test
from autograder.probes import FORWARD


# --------------------------------------------------------------------- primitives
def joined_case(name, shapes, seed, note, axis=None, dtype=np.float64):
    """np.stack or np.concatenate of arrays of ``shapes`` along ``axis`` (None: the default, 0, not passed)."""
    inputs = [normal(seed + i, shape, dtype) for i, shape in enumerate(shapes)]
    kwargs = {} if axis is None else {"axis": axis}
    return primitive_case(name, inputs, note, seed + 100, kwargs=kwargs,
                          names=[f"input {i}" for i in range(len(inputs))], module="functional_rnn")


def functional_tests():
    """The public tests of the RNN primitives (20 points)."""
    stack, concatenate = "stack_backward", "concatenate_backward"
    return [
        test("functional/stack_backward", 10, [stack], "out = np.stack(inputs, axis): one gradient per input", [
            joined_case(stack, [(2, 3)] * 3, 4001, "three (2, 3) arrays, axis 0", axis=0),
            joined_case(stack, [(2, 3)] * 4, 4011, "four (2, 3) arrays, axis 1: (2, 4, 3), as a sequence's hidden "
                        "states", axis=1),
            joined_case(stack, [(3, 2)] * 2, 4021, "float32, two (3, 2) arrays, axis -1", axis=-1, dtype=F32),
            joined_case(stack, [(4,)], 4031, "one input, axis 0", axis=0),
            joined_case(stack, [()] * 4, 4041, "four 0-d arrays, the default axis"),
        ]),
        test("functional/concatenate_backward", 10, [concatenate], "out = np.concatenate(inputs, axis): the inputs "
             "may differ in size along the axis", [
                 joined_case(concatenate, [(2, 3), (4, 3)], 4051, "(2, 3) and (4, 3), axis 0", axis=0),
                 joined_case(concatenate, [(2, 1), (2, 3), (2, 2)], 4061, "three inputs of widths 1, 3, 2, axis 1",
                             axis=1),
                 joined_case(concatenate, [(2, 3, 1), (2, 3, 2)], 4071, "float32, axis -1", axis=-1, dtype=F32),
                 joined_case(concatenate, [(3, 4)], 4081, "one input, axis 1", axis=1),
                 joined_case(concatenate, [(1, 5), (1, 5)], 4091, "two (1, 5) arrays, the default axis"),
             ]),
    ]


# --------------------------------------------------------------------- cells and sequences
GATES = {"RNNCell": 1, "GRUCell": 3}
PARAMETER_CHECKS = [check("dweight_ih and dweight_hh", ["dweight_ih", "dweight_hh"], 2.0),
                    check("dbias_ih and dbias_hh", ["dbias_ih", "dbias_hh"], 1.0)]


def recurrent_params(cell, engine="grader", sequence=None, **options):
    params = {"cell": cell, "options": options, "engine": engine}
    if sequence is not None:
        params["sequence"] = sequence
    return params


def cell_forward(params, arrays):
    """h' of one RNNCell or GRUCell step (PyTorch's equations), or of the unrolled sequence."""
    W_ih, W_hh, b_ih, b_hh = (arrays[name] for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"))
    x = arrays["x"]
    h = arrays.get("h")
    if h is None:
        h = np.zeros((len(x), W_hh.shape[1]), x.dtype)

    def step(x_t, h):
        gi, gh = x_t @ W_ih.T + b_ih, h @ W_hh.T + b_hh
        if params["cell"] == "RNNCell":
            pre = gi + gh
            return np.tanh(pre) if params["options"].get("nonlinearity", "tanh") == "tanh" else np.maximum(pre, 0)
        H = h.shape[1]
        r = 1 / (1 + np.exp(-(gi[:, :H] + gh[:, :H])))
        z = 1 / (1 + np.exp(-(gi[:, H:2 * H] + gh[:, H:2 * H])))
        n = np.tanh(gi[:, 2 * H:] + r * gh[:, 2 * H:])
        return (1 - z) * n + z * h

    if params.get("sequence") is None:
        return step(x, h)
    states = []
    for t in range(x.shape[1]):
        h = step(x[:, t], h)
        states.append(h)
    return FORWARD["stack"](*states, axis=1) if params["sequence"].get("return_sequence") else h


def recurrent_case(params, seed, batch, input_size, hidden_size, note, steps=None, with_h=True, dtype=np.float64,
                   scale=1.0):
    """A cell step (``steps`` None) or a sequence of ``steps`` time steps, forward then backward."""
    rows = GATES[params["cell"]] * hidden_size
    arrays = {"weight_ih": normal(seed, (rows, input_size), dtype, 0.5),
              "weight_hh": normal(seed + 1, (rows, hidden_size), dtype, 0.5),
              "bias_ih": normal(seed + 2, (rows,), dtype, 0.5), "bias_hh": normal(seed + 3, (rows,), dtype, 0.5),
              "x": normal(seed + 4, (batch, input_size) if steps is None else (batch, steps, input_size), dtype, scale)}
    if with_h:
        arrays["h"] = normal(seed + 5, (batch, hidden_size), dtype)
    arrays["grad_output"] = normal(seed + 6, cell_forward(params, arrays).shape, dtype)
    checks = [check("forward output (h', or the hidden states)", ["y"], 2.0),
              check("gradients of x and h" if with_h else "gradient of x", ["dx", "dh"] if with_h else ["dx"], 2.0)]
    return case("recurrent", params, arrays, checks + PARAMETER_CHECKS, note)


RNN_CELL_USES = ["RNNCell.forward", "matmul_backward"]
GRU_CELL_USES = ["GRUCell.forward", "matmul_backward", "mul_backward", "sub_backward"]
BPTT_USES = ["Recurrent.forward", "GRUCell.forward", "RNNCell.forward", "stack_backward", "matmul_backward",
             "mul_backward", "sub_backward"]
ON_YOUR_ENGINE = ["Autograd.add_operation", "Autograd.backward"]
LAST, EVERY = {"return_sequence": False}, {"return_sequence": True}


def cell_tests():
    """The public tests of RNNCell and GRUCell on the grader's tape (40 points)."""
    rnn, gru = recurrent_params("RNNCell"), recurrent_params("GRUCell")
    return [
        test("cells/RNNCell", 15, RNN_CELL_USES, "h' = tanh or relu(x W_ih^T + b_ih + h W_hh^T + b_hh)", [
            recurrent_case(rnn, 4101, 3, 4, 5, "tanh, batch of 3, input 4, hidden 5"),
            recurrent_case(recurrent_params("RNNCell", nonlinearity="relu"), 4111, 2, 3, 4, "relu, batch of 2"),
            recurrent_case(rnn, 4121, 1, 3, 2, "tanh, batch of 1, no h (zeros)", with_h=False),
            recurrent_case(rnn, 4131, 3, 2, 3, "float32, tanh", dtype=F32),
        ]),
        test("cells/GRUCell", 25, GRU_CELL_USES, "PyTorch's GRUCell: gates r, z, n stacked in that order", [
            recurrent_case(gru, 4201, 3, 4, 5, "batch of 3, input 4, hidden 5"),
            recurrent_case(gru, 4211, 2, 2, 3, "no h (zeros)", with_h=False),
            recurrent_case(gru, 4221, 1, 3, 2, "batch of 1, large inputs (|x| up to 100s: the gates saturate)",
                           scale=200.0),
            recurrent_case(gru, 4231, 3, 2, 3, "float32", dtype=F32),
        ]),
    ]


def sequence_tests():
    """The public tests of the unrolled sequence model, backpropagation through time (25 points)."""
    def gru(sequence, engine="grader"):
        return recurrent_params("GRUCell", engine, sequence)

    return [
        test("sequence/bptt", 15, BPTT_USES, "nn.Recurrent(cell) unrolled over (N, T, input_size), gradients through "
             "time", [
                 recurrent_case(gru(LAST), 4301, 2, 3, 4, "GRU, batch of 2, 4 steps, no h0: the last hidden state",
                                steps=4, with_h=False),
                 recurrent_case(recurrent_params("RNNCell", sequence=EVERY), 4311, 1, 2, 3,
                                "float32, RNN (tanh), batch of 1, 5 steps, h0 given, every step's hidden state",
                                steps=5, dtype=F32),
                 recurrent_case(gru(LAST), 4321, 1, 3, 2, "GRU, batch of 1, one time step, h0 given", steps=1),
                 recurrent_case(gru(EVERY), 4331, 2, 2, 3, "float32, GRU, 3 steps, every step's hidden state",
                                steps=3, dtype=F32),
             ]),
        test("sequence/bptt_on_your_engine", 10, BPTT_USES + ON_YOUR_ENGINE, "the same on your own Autograd engine", [
            recurrent_case(gru(LAST, "student"), 4401, 2, 3, 2, "GRU, 3 steps, h0 given", steps=3),
            recurrent_case(recurrent_params("RNNCell", "student", EVERY, nonlinearity="relu"), 4411, 2, 2, 3,
                           "RNN (relu), 4 steps, no h0, every step's hidden state", steps=4, with_h=False),
        ]),
    ]


# --------------------------------------------------------------------- the GRU classifier
GRU_CLASSIFIER_USES = ["GRUClassifier.forward", "Recurrent.forward", "GRUCell.forward", "Linear.forward",
                       "matmul_backward", "mul_backward", "sub_backward"]


def classifier_case(seed, batch, steps, input_size, hidden_size, classes, note, flat=True, dtype=F32):
    """GRUClassifier with given parameters (p0 .. p5 in parameters() order) reading images of ``steps`` rows."""
    rows = 3 * hidden_size
    shapes = [(rows, input_size), (rows, hidden_size), (rows,), (rows,), (classes, hidden_size), (classes,)]
    arrays = {f"p{i}": normal(seed + i, shape, dtype, 0.5) for i, shape in enumerate(shapes)}
    x = normal(seed + 10, (batch, steps, input_size), dtype)
    arrays["x"] = x.reshape(batch, -1) if flat else x
    arrays["grad_output"] = normal(seed + 11, (batch, classes), dtype)
    params = {"model": "GRUClassifier", "mode": "forward", "engine": "grader", "input_size": input_size,
              "hidden_size": hidden_size, "output_size": classes, "steps": steps, "lr": 0.01}
    return case("model", params, arrays, [
        check("output", ["output"], 2.0),
        check("gradients of the GRU cell's parameters", ["dweight_ih", "dweight_hh", "dbias_ih", "dbias_hh"], 2.0),
        check("gradients of the Linear layer's dW and db", ["dW", "db"], 1.0)], note)


def gru_tests():
    """The public tests of hw/rnn.py's GRUClassifier.forward (15 points)."""
    return [
        test("gru/forward", 15, GRU_CLASSIFIER_USES, "the GRU over the image rows, then Linear on the last hidden "
             "state (recorded: backward fills every gradient)", [
                 classifier_case(4501, 3, 4, 3, 5, 4, "float32 (the default), images as flat rows (3, 4 * 3)"),
                 classifier_case(4521, 1, 3, 2, 3, 3, "float64, batch of 1, images as sequences (1, 3, 2)",
                                 flat=False, dtype=np.float64),
                 classifier_case(4541, 2, 6, 2, 3, 3, "float32, 6 rows of 2 pixels, batch of 2"),
             ]),
    ]


def public_tests():
    """All public tests of the RNN homework, in report order; their points add up to 100."""
    return functional_tests() + cell_tests() + sequence_tests() + gru_tests()
