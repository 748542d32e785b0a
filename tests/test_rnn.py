"""The RNN pack: new primitives, RNNCell/GRUCell/Recurrent against NumPy and finite differences, the GRU classifier.

The PyTorch oracle for the same tables is tests/test_rnn_torch_oracle.py; the runner,
hw/rnn_runner.py, is tested in tests/test_hw_runners.py.
"""
import warnings

import numpy as np
import pytest

from helpers import FD_TOL, numeric_gradients, scaled_tol
from rnn_helpers import MODULE_CASES, PARAMETER_NAMES, PRIMITIVE_CASES, ModuleCase
from test_functional import check_structure
from mytorch import Autograd, UnusedOperationWarning, gradcheck, nn
from mytorch.nn import functional_rnn as R
from mytorch.nn.modules import rnn as rnn_module

DTYPES = [np.float64, np.float32]
DTYPE_IDS = ["float64", "float32"]


# --------------------------------------------------------------------------- primitives
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("case", PRIMITIVE_CASES, ids=repr)
def test_primitive_matches_finite_differences(case, dtype):
    """One gradient per input, each its input's shape and dtype, equal to central differences."""
    inputs = case.inputs(dtype)
    out = np.asarray(case.forward(*inputs))
    g = case.upstream(out)
    g_saved = g.copy()
    result = case.primitive(g, *inputs, **case.kwargs)
    check_structure(result, inputs, dtype)
    np.testing.assert_array_equal(g, g_saved, err_msg="the primitive modified grad_output")
    for i, (grad, expected) in enumerate(zip(result, numeric_gradients(case.forward, inputs, g))):
        np.testing.assert_allclose(grad, expected, err_msg=f"gradient {i}",
                                   **scaled_tol(expected, FD_TOL[np.dtype(dtype)]))


@pytest.mark.parametrize("case", PRIMITIVE_CASES, ids=repr)
def test_primitive_recorded_on_the_engine(case):
    """Recorded with its inputs (any number of them) and options, backward gives the primitive's gradients."""
    inputs = case.inputs()
    out = np.asarray(case.forward(*inputs))
    g = case.upstream(out)
    direct = case.primitive(g, *inputs, **case.kwargs)
    if any(out is x for x in inputs):  # np.squeeze returns its input when there is nothing to squeeze
        out = out.view()
    engine = Autograd()
    engine.add_operation(list(inputs), out, [None] * len(inputs), case.primitive, **case.kwargs)
    engine.backward(g)
    for x, expected in zip(inputs, direct):
        np.testing.assert_array_equal(engine.gradient_buffer.get_param(x), expected)


@pytest.mark.parametrize("primitive, forward", [
    (R.stack_backward, lambda xs: np.stack(xs, axis=1)),
    (R.concatenate_backward, lambda xs: np.concatenate(xs, axis=1)),
], ids=["stack", "concatenate"])
def test_an_array_given_twice_accumulates_both_gradients(primitive, forward):
    """stack([a, b, a]): a's gradient is the sum of its two slices."""
    a, b = np.arange(6.0).reshape(2, 3), np.ones((2, 3))
    out = forward([a, b, a])
    engine = Autograd()
    engine.add_operation([a, b, a], out, [None] * 3, primitive, axis=1)
    g = np.arange(out.size, dtype=float).reshape(out.shape)
    engine.backward(g)
    parts = [g[:, k] for k in range(3)] if primitive is R.stack_backward else np.split(g, 3, axis=1)
    np.testing.assert_array_equal(engine.gradient_buffer.get_param(a), parts[0] + parts[2])
    np.testing.assert_array_equal(engine.gradient_buffer.get_param(b), parts[1])


@pytest.mark.parametrize("primitive", [R.stack_backward, R.concatenate_backward], ids=["stack", "concatenate"])
def test_gradients_keep_each_inputs_dtype(primitive):
    """Mixed float32, float64 and integer inputs: float32 stays float32, integers get float64."""
    inputs = [np.ones((2, 3), np.float32), np.ones((2, 3)), np.ones((2, 3), np.int64)]
    g = np.ones((2, 3, 3) if primitive is R.stack_backward else (2, 9))
    grads = primitive(g, *inputs, axis=-1)
    assert [grad.dtype for grad in grads] == [np.float32, np.float64, np.float64]
    assert all(grad.shape == (2, 3) for grad in grads)


@pytest.mark.parametrize("primitive, a, g, kwargs, message", [
    (R.stack_backward, [np.ones(3)] * 2, np.ones((3, 3)), {"axis": 0}, "3 entries along axis 0, but 2 inputs"),
    (R.stack_backward, [np.ones(3)] * 2, np.ones((2, 3)), {"axis": 2}, "axis 2 is out of range"),
    (R.concatenate_backward, [np.ones((2, 3))] * 2, np.ones((2, 5)), {"axis": 1},
     "inputs of sizes [3, 3] along axis 1 do not add up to the gradient's 5"),
    (R.concatenate_backward, [np.ones((2, 3))], np.ones((2, 3)), {"axis": -3}, "axis -3 is out of range"),
], ids=["stack-count", "stack-axis", "concatenate-sizes", "concatenate-axis"])
def test_primitive_errors_name_the_primitive_and_the_shapes(primitive, a, g, kwargs, message):
    with pytest.raises(ValueError, match=primitive.__name__) as error:
        primitive(g, *a, **kwargs)
    assert message in str(error.value)


# --------------------------------------------------------------------------- modules
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("case", MODULE_CASES, ids=repr)
def test_module_forward_matches_numpy(case, dtype):
    """The output equals the NumPy reference of PyTorch's equations, in the parameters' dtype."""
    cell, out, _, inputs, grads = case.run(dtype)
    expected = case.reference_of(inputs)(*[np.asarray(a, np.float64) for a in inputs.values()])
    assert out.shape == expected.shape and out.dtype == np.dtype(dtype)
    np.testing.assert_allclose(out, expected, **scaled_tol(expected, {"rtol": 1e-12, "atol": 1e-12}
                                                          if dtype == np.float64 else FD_TOL[np.dtype(dtype)]))
    for name, grad in grads.items():
        assert grad.shape == inputs[name].shape and grad.dtype == np.dtype(dtype), name


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("case", MODULE_CASES, ids=repr)
def test_module_gradients_match_finite_differences(case, dtype):
    """dx, dh (when given) and every d<parameter> equal central differences of the NumPy reference."""
    cell, out, g, inputs, grads = case.run(dtype)
    numeric = numeric_gradients(case.reference_of(inputs), list(inputs.values()), g)
    for (name, grad), expected in zip(grads.items(), numeric):
        np.testing.assert_allclose(grad, expected, err_msg=name,
                                   **scaled_tol(expected, FD_TOL[np.dtype(dtype)]))


@pytest.mark.parametrize("cls, gates", [(nn.RNNCell, 1), (nn.GRUCell, 3)])
def test_parameters_have_pytorchs_names_shapes_and_initial_range(cls, gates):
    rng = np.random.default_rng(0)
    cell = cls(7, 5, Autograd(), rng=rng)
    shapes = {"weight_ih": (gates * 5, 7), "weight_hh": (gates * 5, 5), "bias_ih": (gates * 5,),
              "bias_hh": (gates * 5,)}
    pairs = cell.parameters()
    assert [p.shape for p, _ in pairs] == [shapes[name] for name in PARAMETER_NAMES]
    for (param, grad), name in zip(pairs, PARAMETER_NAMES):
        assert param is getattr(cell, name) and grad is getattr(cell, "d" + name)
        assert grad.shape == param.shape and not grad.any()
        assert np.abs(param).max() <= 1 / np.sqrt(5) and param.std() > 0.1 / np.sqrt(5)
    again = cls(7, 5, Autograd(), rng=np.random.default_rng(0))
    assert all(np.array_equal(p, q) for (p, _), (q, _) in zip(pairs, again.parameters()))
    assert cls(7, 5, Autograd(), dtype=np.float32).weight_ih.dtype == np.float32


def _names(engine):
    return [operation.name for operation in engine.operation_list]


def test_cells_record_one_operation_per_step_of_their_equations():
    """RNNCell: 2 affine maps, add, tanh. GRUCell: 2 affine maps, 6 gate slices, 10 elementwise steps."""
    engine = Autograd()
    nn.RNNCell(3, 4, engine)(np.ones((2, 3)))
    assert _names(engine) == ["matmul_backward", "add_backward"] * 2 + ["add_backward", "tanh_backward"]
    engine = Autograd()
    nn.GRUCell(3, 4, engine)(np.ones((2, 3)), np.ones((2, 4)))
    names = _names(engine)
    assert names[:4] == ["matmul_backward", "add_backward"] * 2 and len(names) == 20
    assert names.count("getitem_backward") == 6 and names.count("sigmoid_backward") == 2
    assert names.count("tanh_backward") == 1 and names[-1] == "add_backward"


@pytest.mark.parametrize("return_sequence", [False, True])
def test_recurrent_unrolls_the_cell_on_one_tape(return_sequence):
    """T steps: a recorded slice x[:, t] and the cell's operations each; the sequence is one stack."""
    engine = Autograd()
    seq = nn.Recurrent(nn.RNNCell(3, 4, engine))
    out = seq(np.ones((2, 5, 3)), return_sequence=return_sequence)
    names = _names(engine)
    assert names.count("getitem_backward") == 5 and names.count("tanh_backward") == 5
    assert len(seq.hiddens) == 5 and seq.hiddens[-1].shape == (2, 4)
    if return_sequence:
        assert out.shape == (2, 5, 4) and names[-1] == "stack_backward"
        np.testing.assert_array_equal(out[:, 2], seq.hiddens[2])
    else:
        assert out is seq.hiddens[-1] and "stack_backward" not in names
    with warnings.catch_warnings():
        warnings.simplefilter("error", UnusedOperationWarning)  # every operation reaches the output
        engine.backward(np.ones(out.shape))


def test_backpropagation_through_time_reaches_every_step():
    """Each time step's input gets a gradient, and changing the first row changes the last state."""
    engine = Autograd()
    seq = nn.Recurrent(nn.GRUCell(2, 3, engine, rng=np.random.default_rng(1)))
    x = np.random.default_rng(2).standard_normal((1, 6, 2))
    seq(x)
    engine.backward(1)
    dx = engine.gradient_buffer.get_param(x)
    assert np.all(np.abs(dx).sum(axis=2) > 0)


def test_no_grad_records_nothing_and_gives_the_same_output():
    engine = Autograd()
    seq = nn.Recurrent(nn.GRUCell(3, 4, engine, rng=np.random.default_rng(0)))
    x = np.random.default_rng(1).standard_normal((2, 3, 3))
    with engine.no_grad():
        quiet = seq(x, return_sequence=True)
    assert engine.operation_list == []
    np.testing.assert_array_equal(seq(x, return_sequence=True), quiet)


def test_gradcheck_accepts_a_cell():
    """The students' tool checks a cell's inputs and parameters in one call."""
    engine = Autograd()
    cell = nn.GRUCell(3, 2, engine, rng=np.random.default_rng(0))
    rng = np.random.default_rng(1)
    assert gradcheck(cell.forward, rng.standard_normal((2, 3)), rng.standard_normal((2, 2)), engine=engine,
                     params=cell.parameters())


def test_a_wrong_gate_order_is_caught():
    """Guard for the tests themselves: swapping the r and z blocks of the weights changes the output."""
    case = ModuleCase("gru", 2)
    _, out, _, inputs, _ = case.run(np.float64)
    swapped = {k: v.copy() for k, v in inputs.items()}
    for name in PARAMETER_NAMES:
        blocks = np.split(swapped[name], 3, axis=0)
        swapped[name] = np.concatenate([blocks[1], blocks[0], blocks[2]], axis=0)
    assert not np.allclose(case.reference_of(inputs)(*swapped.values()), out)


@pytest.mark.parametrize("call, message", [
    (lambda e: nn.GRUCell(3, 4, e)(np.ones((2, 5))),
     r"GRUCell\(3, 4\).forward: expected x of shape \(N, 3\), got shape \(2, 5\)"),
    (lambda e: nn.GRUCell(3, 4, e)(np.ones(3)), r"expected x of shape \(N, 3\), got shape \(3,\)"),
    (lambda e: nn.RNNCell(3, 4, e)(np.ones((2, 3)), np.ones((3, 4))),
     r"RNNCell\(3, 4\).forward: expected h of shape \(2, 4\) for x of shape \(2, 3\), got shape \(3, 4\)"),
    (lambda e: nn.RNNCell(3, 4, e, nonlinearity="sigmoid"), "nonlinearity must be 'tanh' or 'relu', got 'sigmoid'"),
    (lambda e: nn.GRUCell(0, 4, e), "sizes must be positive, got input_size=0, hidden_size=4"),
    (lambda e: nn.Recurrent(nn.GRUCell(3, 4, e))(np.ones((2, 3))),
     r"expected x of shape \(N, T, 3\) with T >= 1 \(batch first\), got shape \(2, 3\)"),
    (lambda e: nn.Recurrent(nn.GRUCell(3, 4, e))(np.ones((2, 0, 3))), r"got shape \(2, 0, 3\)"),
], ids=["x-width", "x-1d", "h-shape", "nonlinearity", "size", "sequence-2d", "sequence-empty"])
def test_bad_input_names_the_module_and_the_shapes(call, message):
    with pytest.raises(ValueError, match=message):
        call(Autograd())


def test_base_cell_forward_is_abstract():
    with pytest.raises(NotImplementedError):
        rnn_module.RecurrentCell(2, 2, Autograd())(np.ones((1, 2)))


# --------------------------------------------------------------------------- the classifier
def _tiny_split(rng, n, dtype=np.float64):
    return rng.random((n, 28 * 28)).astype(dtype), rng.integers(0, 10, n)


def test_classifier_reads_rows_as_time_steps():
    """(N, 784) and (N, 28, 28) give the same scores; float32 parameters keep float32 gradients."""
    from hw.rnn import GRUClassifier
    from hw.trainer import one_hot

    engine = Autograd()
    model = GRUClassifier(28, 8, 10, engine, lr=0.01, steps=28, rng=np.random.default_rng(0))
    x, labels = _tiny_split(np.random.default_rng(1), 4)
    with engine.no_grad():
        flat = model.forward(x).copy()
        np.testing.assert_array_equal(model.forward(x.reshape(4, 28, 28)), flat)
    assert flat.shape == (4, 10) and flat.dtype == np.float32
    model.zero_grads()
    model.forward(x)
    model.total_loss(one_hot(labels, 10, np.float32))
    model.backward()
    assert all(g.dtype == np.float32 and g.any() for _, g in model.parameters())
    with pytest.raises(ValueError, match=r"expected images of shape \(N, 28 \* 28\) or \(N, 28, 28\), got "
                                         r"shape \(4, 30\)"):
        model.forward(np.ones((4, 30)))
