"""The CNN pack against PyTorch: every primitive and module, float64 to ~1e-10 and float32,
max-pooling ties, and the default CNN's training steps.

PyTorch is only a test oracle; the whole file is skipped when it is not installed.
"""
import numpy as np
import pytest

torch = pytest.importorskip(
    "torch", reason="PyTorch (the test oracle, `pip install torch==2.13.0`) is not installed")

from cnn_cases import FORWARDS, MODULE_CASES, PRIMITIVE_CASES  # noqa: E402
from helpers import TORCH_TOL, scaled_tol  # noqa: E402
from hw.cnn import default_cnn  # noqa: E402
from hw.trainer import one_hot  # noqa: E402
from mytorch import Autograd  # noqa: E402
from mytorch.nn import functional_cnn as F  # noqa: E402

TORCH_DTYPE = {np.dtype(np.float64): torch.float64, np.dtype(np.float32): torch.float32}
TOL = {np.dtype(np.float64): TORCH_TOL, np.dtype(np.float32): dict(rtol=1e-5, atol=1e-5)}
DTYPES = [np.float64, np.float32]
DTYPE_IDS = ["float64", "float32"]


def leaf(array):
    """A leaf tensor (requires_grad) holding a copy of ``array``, in its dtype."""
    return torch.tensor(array, dtype=TORCH_DTYPE[array.dtype], requires_grad=True)


def assert_close(got, expected, what):
    """Shape and dtype first, then values, with the tolerance of ``got``'s dtype (relative to the largest entry)."""
    expected = np.asarray(expected)
    assert got.shape == expected.shape, f"{what}: shape {got.shape}, expected {expected.shape}"
    assert got.dtype == expected.dtype, f"{what}: dtype {got.dtype}, expected {expected.dtype}"
    np.testing.assert_allclose(got, expected, err_msg=what, **scaled_tol(expected, TOL[got.dtype]))


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("case", PRIMITIVE_CASES, ids=repr)
def test_primitive_matches_torch(case, dtype):
    """Forward output and every input's gradient equal torch's for the same upstream gradient."""
    inputs = case.inputs(dtype)
    out = FORWARDS[case.primitive](*inputs, **case.kwargs)
    g = case.upstream(out)
    result = case.primitive(g, *inputs, **case.call_kwargs(inputs, out))
    tensors = [leaf(x) for x in inputs]
    t_out = case.torch_forward(*tensors)
    assert_close(out, t_out.detach().numpy(), "forward output")
    t_out.backward(torch.from_numpy(g))
    assert len(result) == len(inputs)
    for i, (grad, t) in enumerate(zip(result, tensors)):
        assert_close(grad, t.grad.numpy(), f"gradient {i}")


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("case", MODULE_CASES, ids=repr)
def test_module_matches_torch(case, dtype):
    """The module's output, input gradient and parameter gradients equal its torch.nn twin's."""
    engine = Autograd()
    module = case.make(engine, np.random.default_rng(0), dtype)
    x = case.input(dtype)
    out = module(x)
    g = np.random.default_rng(1).standard_normal(out.shape).astype(dtype)
    engine.backward(g)
    twin = case.torch_make(module)
    if isinstance(twin, torch.nn.Module):
        twin = twin.to(TORCH_DTYPE[np.dtype(dtype)])
    tx = leaf(x)
    t_out = twin(tx)
    t_out.backward(torch.from_numpy(g))
    assert_close(out, t_out.detach().numpy(), "output")
    assert_close(engine.gradient_buffer.get_param(x), tx.grad.numpy(), "input gradient")
    if hasattr(module, "parameters"):
        assert_close(module.dW, twin.weight.grad.numpy(), "dW")
        assert_close(module.db, twin.bias.grad.numpy(), "db")


@pytest.mark.parametrize("shape, kernel, stride", [
    ((2, 3, 6, 6), 2, 2), ((1, 2, 7, 5), 3, 2), ((2, 1, 5, 6), 2, 1), ((1, 1, 4, 4), 4, 4), ((1, 2, 6, 7), 2, 3),
])
def test_maxpool_ties_match_torch(shape, kernel, stride):
    """Inputs full of ties (ReLU'd integers, many all-zero windows): gradients equal torch.nn.MaxPool2d's."""
    rng = np.random.default_rng(6)
    x = np.maximum(rng.integers(-2, 3, shape), 0).astype(np.float64)
    out = F.maxpool2d(x, kernel, stride)
    g = rng.standard_normal(out.shape)
    tx = leaf(x)
    t_out = torch.nn.MaxPool2d(kernel, stride)(tx)
    t_out.backward(torch.from_numpy(g))
    np.testing.assert_array_equal(out, t_out.detach().numpy())
    grad = F.maxpool2d_backward(g, x, kernel_size=kernel, stride=stride)[0]
    np.testing.assert_allclose(grad, tx.grad.numpy(), rtol=1e-12, atol=1e-12)  # overlaps add in another order


def torch_twin(cnn):
    """torch.nn.Sequential of the CNN's layers with float64 copies of its parameters."""
    layers = []
    for layer in cnn.layers:
        name = type(layer).__name__
        if name == "Conv2d":
            twin = torch.nn.Conv2d(layer.in_channels, layer.out_channels, layer.kernel_size)
        elif name == "Linear":
            twin = torch.nn.Linear(layer.in_features, layer.out_features)
        else:
            twin = {"ReLU": torch.nn.ReLU(), "MaxPool2d": torch.nn.MaxPool2d(2), "Flatten": torch.nn.Flatten()}[name]
        if hasattr(layer, "W"):
            twin = twin.double()
            with torch.no_grad():
                twin.weight.copy_(torch.from_numpy(layer.W))
                twin.bias.copy_(torch.from_numpy(layer.b))
        layers.append(twin)
    return torch.nn.Sequential(*layers)


def test_default_cnn_training_steps_match_torch():
    """The default CNN in float64: loss, input and parameter gradients of one step equal torch's,
    and the weights after three SGD-with-momentum steps equal torch.optim.SGD's."""
    rng = np.random.default_rng(7)
    engine = Autograd()
    cnn = default_cnn(engine, rng=rng, dtype=np.float64)
    twin = torch_twin(cnn)
    optimizer = torch.optim.SGD(twin.parameters(), lr=cnn.lr, momentum=cnn.momentum)
    for step in range(3):
        x = rng.random((4, 1, 28, 28))
        labels = one_hot(rng.integers(0, 10, 4), 10)
        cnn.zero_grads()
        cnn.forward(x)
        loss = cnn.total_loss(labels)
        cnn.backward()
        optimizer.zero_grad()
        tx = leaf(x)
        t_loss = torch.nn.functional.cross_entropy(twin(tx), torch.from_numpy(labels))
        t_loss.backward()
        assert loss / 4 == pytest.approx(t_loss.item(), rel=1e-10)
        if step == 0:
            assert_close(engine.gradient_buffer.get_param(x), tx.grad.numpy(), "input gradient")
            twins = [m for m in twin if hasattr(m, "weight")]
            for layer, t_layer in zip(cnn.parameter_layers, twins):
                assert_close(layer.dW, t_layer.weight.grad.numpy(), f"dW of {layer!r}")
                assert_close(layer.db, t_layer.bias.grad.numpy(), f"db of {layer!r}")
        cnn.step()
        optimizer.step()
    for layer, t_layer in zip(cnn.parameter_layers, [m for m in twin if hasattr(m, "weight")]):
        assert_close(layer.W, t_layer.weight.detach().numpy(), f"W of {layer!r} after 3 steps")
        assert_close(layer.b, t_layer.bias.detach().numpy(), f"b of {layer!r} after 3 steps")
