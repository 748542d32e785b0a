"""The RNN pack against PyTorch: primitives, torch.nn.RNNCell/GRUCell, and unrolls vs torch.nn.RNN/GRU.

float64 to about 1e-10; float32 against torch in float32. Skipped when torch is not installed.
"""
import numpy as np
import pytest

torch = pytest.importorskip(
    "torch", reason="PyTorch (the test oracle, `pip install torch==2.13.0`) is not installed")

from helpers import TORCH_TOL, run_case, scaled_tol  # noqa: E402
from rnn_helpers import MODULE_CASES, PARAMETER_NAMES, PRIMITIVE_CASES  # noqa: E402

TORCH_DTYPES = {np.dtype(np.float64): torch.float64, np.dtype(np.float32): torch.float32}
TOLERANCES = {np.dtype(np.float64): TORCH_TOL, np.dtype(np.float32): {"rtol": 2e-5, "atol": 2e-5}}


@pytest.mark.parametrize("case", PRIMITIVE_CASES, ids=repr)
def test_primitive_matches_torch(case):
    inputs, out, g, result = run_case(case, np.float64)
    tensors = [torch.tensor(x, dtype=torch.float64, requires_grad=True) for x in inputs]
    t_out = case.torch_forward(*tensors)
    np.testing.assert_array_equal(t_out.detach().numpy(), out)
    t_out.backward(torch.from_numpy(np.array(g)))
    for i, (grad, t) in enumerate(zip(result, tensors)):
        expected = t.grad.numpy()
        assert grad.shape == expected.shape
        np.testing.assert_allclose(grad, expected, err_msg=f"gradient {i}", **scaled_tol(expected, TORCH_TOL))


def _torch_cell(case, cell, dtype):
    """torch.nn.RNNCell/GRUCell with ``cell``'s parameters."""
    if case.cell == "gru":
        module = torch.nn.GRUCell(case.input_size, case.hidden_size, dtype=dtype)
    else:
        module = torch.nn.RNNCell(case.input_size, case.hidden_size, nonlinearity=case.cell[4:], dtype=dtype)
    with torch.no_grad():
        for name in PARAMETER_NAMES:
            getattr(module, name).copy_(torch.from_numpy(getattr(cell, name)))
    return module, {name: getattr(module, name) for name in PARAMETER_NAMES}


def _torch_sequence(case, cell, dtype):
    """torch.nn.RNN/GRU (one layer, batch_first) with ``cell``'s parameters."""
    if case.cell == "gru":
        module = torch.nn.GRU(case.input_size, case.hidden_size, batch_first=True, dtype=dtype)
    else:
        module = torch.nn.RNN(case.input_size, case.hidden_size, nonlinearity=case.cell[4:], batch_first=True,
                              dtype=dtype)
    with torch.no_grad():
        for name in PARAMETER_NAMES:
            getattr(module, name + "_l0").copy_(torch.from_numpy(getattr(cell, name)))
    return module, {name: getattr(module, name + "_l0") for name in PARAMETER_NAMES}


def _run_torch(case, cell, inputs, dtype, flavour):
    """Torch's output and gradients for the mytorch case; ``flavour`` "module" or "loop" for unrolls."""
    t_dtype = TORCH_DTYPES[np.dtype(dtype)]
    x = torch.tensor(inputs["x"], dtype=t_dtype, requires_grad=True)
    h = torch.tensor(inputs["h"], dtype=t_dtype, requires_grad=True) if "h" in inputs else None
    if case.steps is None or flavour == "loop":
        module, params = _torch_cell(case, cell, t_dtype)
        if case.steps is None:
            out = module(x, h)
        else:
            state, hiddens = h, []
            for t in range(case.steps):
                state = module(x[:, t], state)
                hiddens.append(state)
            out = torch.stack(hiddens, dim=1) if case.return_sequence else state
    else:
        module, params = _torch_sequence(case, cell, t_dtype)
        output, h_n = module(x, None if h is None else h.unsqueeze(0))
        out = output if case.return_sequence else h_n[0]
    leaves = {"x": x, **({"h": h} if h is not None else {}), **params}
    return out, leaves


def _check_against_torch(case, dtype, flavour):
    cell, out, g, inputs, grads = case.run(dtype)
    t_out, leaves = _run_torch(case, cell, inputs, dtype, flavour)
    tol = TOLERANCES[np.dtype(dtype)]
    expected = t_out.detach().numpy()
    assert out.shape == expected.shape and out.dtype == expected.dtype
    np.testing.assert_allclose(out, expected, err_msg="output", **scaled_tol(expected, tol))
    t_out.backward(torch.from_numpy(g))
    assert list(grads) == list(leaves)
    for name, grad in grads.items():
        expected = leaves[name].grad.numpy()
        assert grad.dtype == expected.dtype
        np.testing.assert_allclose(grad, expected, err_msg=name, **scaled_tol(expected, tol))


CELL_CASES = [c for c in MODULE_CASES if c.steps is None]
SEQUENCE_CASES = [c for c in MODULE_CASES if c.steps is not None]


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("case", CELL_CASES, ids=repr)
def test_cell_matches_torch(case, dtype):
    """RNNCell/GRUCell: h', dx, dh and every parameter gradient equal torch.nn.RNNCell/GRUCell's."""
    _check_against_torch(case, dtype, "cell")


@pytest.mark.parametrize("flavour", ["module", "loop"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("case", SEQUENCE_CASES, ids=repr)
def test_unroll_matches_torch(case, dtype, flavour):
    """Recurrent(cell) over T steps equals torch.nn.RNN/GRU(batch_first=True) ("module") and a Python
    loop of torch.nn.RNNCell/GRUCell ("loop"): the output and every gradient, through time."""
    _check_against_torch(case, dtype, flavour)


def test_classifier_matches_torch():
    """The homework model (GRU over 28 rows, Linear, softmax cross-entropy): loss and every gradient."""
    from hw.mlp import one_hot
    from hw.rnn import GRUClassifier
    from mytorch import Autograd

    rng = np.random.default_rng(0)
    model = GRUClassifier(28, 6, 10, Autograd(), lr=0.01, steps=28, rng=rng, dtype=np.float64)
    x, labels = rng.random((3, 784)), rng.integers(0, 10, 3)
    model.forward(x)
    loss = model.total_loss(one_hot(labels, 10)) / 3
    model.backward()
    gru = torch.nn.GRU(28, 6, batch_first=True, dtype=torch.float64)
    linear = torch.nn.Linear(6, 10, dtype=torch.float64)
    with torch.no_grad():
        for name in PARAMETER_NAMES:
            getattr(gru, name + "_l0").copy_(torch.from_numpy(getattr(model.rnn.cell, name)))
        linear.weight.copy_(torch.from_numpy(model.linear.W))
        linear.bias.copy_(torch.from_numpy(model.linear.b))
    _, h_n = gru(torch.from_numpy(x.reshape(3, 28, 28)))
    t_loss = torch.nn.functional.cross_entropy(linear(h_n[0]), torch.from_numpy(labels))
    t_loss.backward()
    assert loss == pytest.approx(t_loss.item(), rel=1e-12)
    expected = [getattr(gru, name + "_l0").grad for name in PARAMETER_NAMES] + [linear.weight.grad, linear.bias.grad]
    for (_, grad), want in zip(model.parameters(), expected):
        np.testing.assert_allclose(grad, want.numpy(), **scaled_tol(want.numpy(), TORCH_TOL))
