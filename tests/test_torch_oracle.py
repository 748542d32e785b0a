"""Primitives and modules against PyTorch autograd in float64 (to about 1e-10).

PyTorch is only a test oracle: ``mytorch`` never imports it. The whole file is skipped
when torch is not installed.
"""
import sys

import numpy as np
import pytest

torch = pytest.importorskip(
    "torch", reason="PyTorch (the test oracle, `pip install torch==2.13.0`) is not installed")

from helpers import TORCH_CASES, TORCH_TOL, run_case, scaled_tol  # noqa: E402
from mytorch import Autograd  # noqa: E402
from mytorch import nn  # noqa: E402

TF = torch.nn.functional


def test_mytorch_never_imports_torch():
    """Importing mytorch in a fresh interpreter does not import torch."""
    import subprocess

    code = "import sys, mytorch, mytorch.nn, mytorch.optim; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=_repo_root(), check=True)
    assert out.stdout.strip() == "False"


def _repo_root():
    import os

    return os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def t64(array, grad=True):
    """A float64 leaf tensor holding a copy of ``array``."""
    return torch.tensor(np.asarray(array, dtype=np.float64), dtype=torch.float64, requires_grad=grad)


@pytest.mark.parametrize("case", TORCH_CASES, ids=repr)
def test_primitive_matches_torch(case):
    """The primitive's gradients equal torch's for the same forward and upstream gradient."""
    inputs, out, g, result = run_case(case, np.float64)
    tensors = [t64(x) for x in inputs]
    t_out = case.torch_forward(*tensors)
    assert tuple(t_out.shape) == out.shape
    np.testing.assert_allclose(t_out.detach().numpy(), out, **scaled_tol(out, TORCH_TOL))
    t_out.backward(torch.from_numpy(np.array(g, dtype=np.float64)))
    assert len(result) == len(inputs)
    for i, (grad, t) in enumerate(zip(result, tensors)):
        expected = t.grad.numpy() if t.grad is not None else np.zeros(t.shape)
        assert np.shape(grad) == expected.shape
        np.testing.assert_allclose(grad, expected, err_msg="gradient %d" % i,
                                   **scaled_tol(expected, TORCH_TOL))


def _engine_grads(build, arrays):
    """Run ``build(engine, *arrays)``, backward with a fixed upstream, return (out, g, grads)."""
    engine = Autograd()
    out = build(engine, *arrays)
    g = np.random.default_rng(7).standard_normal(out.shape)
    engine.backward(g)
    return engine, out, g


def test_linear_matches_torch():
    """Linear: output, dx, dW and db equal torch.nn.functional.linear's."""
    rng = np.random.default_rng(1)
    engine = Autograd()
    layer = nn.Linear(4, 3, engine, rng=rng)
    x = rng.standard_normal((5, 4))
    out = layer(x)
    g = rng.standard_normal(out.shape)
    engine.backward(g)
    tx, tW, tb = t64(x), t64(layer.W), t64(layer.b)
    t_out = TF.linear(tx, tW, tb)
    t_out.backward(torch.from_numpy(g))
    np.testing.assert_allclose(out, t_out.detach().numpy(), **TORCH_TOL)
    np.testing.assert_allclose(engine.gradient_buffer.get_param(x), tx.grad.numpy(), **TORCH_TOL)
    np.testing.assert_allclose(layer.dW, tW.grad.numpy(), **TORCH_TOL)
    np.testing.assert_allclose(layer.db, tb.grad.numpy(), **TORCH_TOL)


@pytest.mark.parametrize("module, t_fn", [
    (nn.Identity, lambda t: t * 1), (nn.Sigmoid, torch.sigmoid), (nn.Tanh, torch.tanh),
    (nn.ReLU, torch.relu)], ids=["Identity", "Sigmoid", "Tanh", "ReLU"])
def test_activation_matches_torch(module, t_fn):
    """Each activation's output (``state``) and input gradient equal torch's."""
    rng = np.random.default_rng(2)
    x = rng.standard_normal((4, 6)) * 3
    x[0, 0] = 0.0  # relu's kink: both give 0
    engine = Autograd()
    act = module(engine)
    out = act(x)
    assert act.state is out
    g = rng.standard_normal(out.shape)
    engine.backward(g)
    tx = t64(x)
    t_out = t_fn(tx)
    t_out.backward(torch.from_numpy(g))
    np.testing.assert_allclose(out, t_out.detach().numpy(), **TORCH_TOL)
    np.testing.assert_allclose(engine.gradient_buffer.get_param(x), tx.grad.numpy(), **TORCH_TOL)


def loss_and_torch(module, torch_loss, y, y_hat):
    """(ours, torch's): each the loss value and the gradients for (y, y_hat), after backward."""
    engine = Autograd()
    loss = module(engine)
    value = loss(y, y_hat)
    loss.backward()
    ty, tyh = t64(y), t64(y_hat)
    t_val = torch_loss(tyh, ty)
    t_val.backward()
    ours = (value, engine.gradient_buffer.get_param(y), engine.gradient_buffer.get_param(y_hat))
    return ours, (t_val.item(), ty.grad.numpy(), tyh.grad.numpy())


def test_mse_loss_matches_torch():
    """MSELoss equals F.mse_loss (mean over all elements), gradients for both arguments too."""
    rng = np.random.default_rng(3)
    y, y_hat = rng.standard_normal((4, 3)), rng.standard_normal((4, 3))
    (value, grad_y, grad_y_hat), (t_val, t_grad_y, t_grad_y_hat) = loss_and_torch(nn.MSELoss, TF.mse_loss, y, y_hat)
    assert value.shape == (1,)
    np.testing.assert_allclose(value[0], t_val, **TORCH_TOL)
    np.testing.assert_allclose(grad_y_hat, t_grad_y_hat, **TORCH_TOL)
    np.testing.assert_allclose(grad_y, t_grad_y, **TORCH_TOL)


@pytest.mark.parametrize("targets", ["onehot", "soft"])
@pytest.mark.parametrize("scale", [1.0, 1e4])
def test_softmax_cross_entropy_matches_torch(targets, scale):
    """SoftmaxCrossEntropy equals F.cross_entropy (probability targets), even for logits ~1e4."""
    rng = np.random.default_rng(4)
    n, c = 5, 4
    z = rng.standard_normal((n, c)) * scale
    if targets == "onehot":
        y = np.eye(c)[rng.integers(0, c, n)]
    else:
        y = rng.dirichlet(np.ones(c), n)
    (value, grad_y, grad_z), (t_val, t_grad_y, t_grad_z) = loss_and_torch(
        nn.SoftmaxCrossEntropy, TF.cross_entropy, y, z)
    assert value.shape == (1,) and np.all(np.isfinite(value))
    assert np.all(np.isfinite(grad_z)) and np.all(np.isfinite(grad_y))
    np.testing.assert_allclose(value[0], t_val, rtol=1e-10, atol=1e-10 * scale)
    np.testing.assert_allclose(grad_z, t_grad_z, **TORCH_TOL)
    np.testing.assert_allclose(grad_y, t_grad_y, rtol=1e-10, atol=1e-10 * scale)


def test_mlp_training_step_matches_torch():
    """Linear-ReLU-Linear-Tanh-Linear + softmax cross-entropy: every parameter gradient."""
    rng = np.random.default_rng(5)
    engine = Autograd()
    layers = [nn.Linear(6, 5, engine, rng=rng), nn.ReLU(engine), nn.Linear(5, 4, engine, rng=rng),
              nn.Tanh(engine), nn.Linear(4, 3, engine, rng=rng)]
    x = rng.standard_normal((8, 6))
    y = np.eye(3)[rng.integers(0, 3, 8)]
    h = x
    for layer in layers:
        h = layer(h)
    loss = nn.SoftmaxCrossEntropy(engine)
    value = loss(y, h)
    loss.backward()

    linears = [layers[0], layers[2], layers[4]]
    tparams = [(t64(l.W), t64(l.b)) for l in linears]
    tx = t64(x)
    th = TF.linear(tx, *tparams[0]).relu()
    th = TF.linear(th, *tparams[1]).tanh()
    th = TF.linear(th, *tparams[2])
    t_val = TF.cross_entropy(th, torch.from_numpy(y))
    t_val.backward()
    np.testing.assert_allclose(value[0], t_val.item(), **TORCH_TOL)
    np.testing.assert_allclose(engine.gradient_buffer.get_param(x), tx.grad.numpy(), **TORCH_TOL)
    for layer, (tW, tb) in zip(linears, tparams):
        np.testing.assert_allclose(layer.dW, tW.grad.numpy(), **TORCH_TOL)
        np.testing.assert_allclose(layer.db, tb.grad.numpy(), **TORCH_TOL)


def steps_against_torch(ours, theirs, shape, steps, seed):
    """(our parameter, torch's) after ``steps`` optimizer steps on the same random gradients.

    ``ours(params)`` builds a mytorch optimizer over (param, grad) pairs, ``theirs(tensors)``
    the torch one.
    """
    rng = np.random.default_rng(seed)
    p = rng.standard_normal(shape)
    grads = [rng.standard_normal(shape) for _ in range(steps)]
    g = np.zeros_like(p)
    opt = ours([(p, g)])
    tp = t64(p)
    t_opt = theirs([tp])
    for grad in grads:
        g[...] = grad
        opt.step()
        tp.grad = torch.from_numpy(grad.copy())
        t_opt.step()
    return p, tp.detach().numpy()


def test_adam_matches_torch():
    """Five Adam steps on fixed gradients give torch.optim.Adam's parameters."""
    from mytorch.optim import Adam

    p, tp = steps_against_torch(lambda params: Adam(params, lr=0.01, betas=(0.8, 0.99), eps=1e-6),
                                lambda params: torch.optim.Adam(params, lr=0.01, betas=(0.8, 0.99), eps=1e-6),
                                (3, 2), 5, seed=6)
    np.testing.assert_allclose(p, tp, rtol=1e-12, atol=1e-12)


def test_sgd_momentum_matches_torch():
    """Four SGD-with-momentum steps equal torch.optim.SGD's (dampening 0, no Nesterov)."""
    from mytorch.optim import SGD

    p, tp = steps_against_torch(lambda params: SGD(params, lr=0.1, momentum=0.9),
                                lambda params: torch.optim.SGD(params, lr=0.1, momentum=0.9),
                                (4,), 4, seed=8)
    np.testing.assert_allclose(p, tp, rtol=1e-12, atol=1e-12)
