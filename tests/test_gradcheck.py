"""mytorch.gradcheck: passes on correct gradients, names what is wrong otherwise."""
import numpy as np
import pytest

from mytorch import Autograd, gradcheck, nn
from mytorch.nn import functional as F
from mytorch.nn.functional import unbroadcast


def test_passes_on_correct_primitives(rng):
    """Several correct primitives, with broadcasting and keyword options."""
    a, b = rng.standard_normal((3, 4)), rng.standard_normal(4)
    pos = rng.uniform(0.5, 2.0, (3, 4))
    assert gradcheck(np.multiply, a, b, backward=F.mul_backward) is True
    assert gradcheck(np.divide, a, pos, backward=F.div_backward) is True
    assert gradcheck(np.matmul, a, rng.standard_normal((4, 2)), backward=F.matmul_backward) is True
    assert gradcheck(lambda x, axis: np.sum(x, axis=axis), a, axis=1,
                     backward=lambda g, x, axis: F.sum_backward(g, x, axis=axis)) is True
    assert gradcheck(lambda x, exponent: x ** exponent, pos, exponent=1.5, backward=F.pow_backward) is True


def wrong_mul_backward(grad_output, a, b):
    """Correct for a, but forgets grad_output for b."""
    return unbroadcast(grad_output * b, a.shape), unbroadcast(a * np.ones_like(grad_output), b.shape)


def test_names_the_wrong_input(rng):
    """A primitive wrong only for input 1: ValueError naming input 1 and its shape, not input 0."""
    a, b = rng.standard_normal((3, 4)), rng.standard_normal(4)
    with pytest.raises(ValueError, match=r"gradcheck failed:\s+input 1 \(4,\): \d+ of 4 entries differ") as info:
        gradcheck(np.multiply, a, b, backward=wrong_mul_backward)
    assert "input 0" not in str(info.value)


def test_sign_error_is_caught(rng):
    def sign_error_sub_backward(grad_output, a, b):
        return unbroadcast(grad_output, a.shape), unbroadcast(grad_output, b.shape)

    with pytest.raises(ValueError, match=r"input 1 \(2, 3\): 6 of 6 entries differ"):
        gradcheck(np.subtract, rng.standard_normal((2, 3)), rng.standard_normal((2, 3)),
                  backward=sign_error_sub_backward)


def test_names_a_wrong_gradient_shape(rng):
    """Forgetting unbroadcast: the shape mismatch is reported for that input."""

    def no_unbroadcast_add_backward(grad_output, a, b):
        return grad_output, grad_output

    with pytest.raises(ValueError, match=r"input 1: gradient shape \(3, 4\), expected \(4,\)"):
        gradcheck(np.add, rng.standard_normal((3, 4)), rng.standard_normal(4),
                  backward=no_unbroadcast_add_backward)


def test_wrong_gradient_count(rng):
    with pytest.raises(ValueError, match="returned 1 gradients for 2 inputs"):
        gradcheck(np.add, rng.standard_normal(3), rng.standard_normal(3),
                  backward=lambda g, a, b: (g,))


def test_float32_defaults(rng):
    """float32 inputs use looser defaults: a correct primitive passes, a wrong one fails."""
    a = rng.standard_normal((3, 3)).astype(np.float32)
    assert gradcheck(np.tanh, a, backward=F.tanh_backward) is True
    with pytest.raises(ValueError, match=r"input 0 \(3, 3\)"):
        gradcheck(np.tanh, a, backward=lambda g, x: (g * (1 - x * x),))


def test_inputs_are_restored_exactly(rng):
    """The perturbed inputs are put back bit for bit."""
    a, b = rng.standard_normal((2, 3)), rng.standard_normal(3)
    a0, b0 = a.copy(), b.copy()
    gradcheck(np.multiply, a, b, backward=F.mul_backward)
    with pytest.raises(ValueError):
        gradcheck(np.multiply, a, b, backward=wrong_mul_backward)
    np.testing.assert_array_equal(a, a0)
    np.testing.assert_array_equal(b, b0)


# --------------------------------------------------------------------------- module mode
def test_module_mode_checks_inputs_and_parameters(rng):
    engine = Autograd()
    layer = nn.Linear(3, 2, engine, rng=rng)
    x = rng.standard_normal((4, 3))
    assert gradcheck(layer.forward, x, engine=engine, params=layer.parameters()) is True
    assert engine.operation_list == []  # it leaves the engine empty
    assert x.flags.writeable and layer.W.flags.writeable


def test_module_mode_on_a_small_network(rng):
    """Linear-Tanh-Linear-Sigmoid-Linear into softmax cross-entropy, with a layer used twice."""
    engine = Autograd()
    l1, l2 = nn.Linear(4, 4, engine, rng=rng), nn.Linear(4, 3, engine, rng=rng)
    tanh, sig = nn.Tanh(engine), nn.Sigmoid(engine)
    loss = nn.SoftmaxCrossEntropy(engine)
    y = np.eye(3)[[0, 2, 1, 1, 0]]

    def network(x):
        return loss(y, l2(sig(l1(tanh(l1(x))))))

    x = rng.standard_normal((5, 4))
    assert gradcheck(network, x, engine=engine, params=l1.parameters() + l2.parameters()) is True


class BrokenLinear(nn.Linear):
    """A Linear whose W gradient is doubled."""

    def forward(self, x):
        def doubled_matmul_backward(grad_output, a, b):
            ga, gb = F.matmul_backward(grad_output, a, b)
            return ga, 2 * gb

        W_T = self.W.T
        y = x @ W_T
        self.autograd_engine.add_operation([x, W_T], y, [None, self.dW.T], doubled_matmul_backward)
        out = y + self.b
        self.autograd_engine.add_operation([y, self.b], out, [None, self.db], F.add_backward)
        return out

    __call__ = forward


def test_module_mode_names_the_wrong_parameter(rng):
    engine = Autograd()
    layer = BrokenLinear(3, 2, engine, rng=rng)
    x = rng.standard_normal((4, 3))
    with pytest.raises(ValueError, match=r"param 0 \(2, 3\)") as info:
        gradcheck(layer.forward, x, engine=engine, params=layer.parameters())
    message = str(info.value)
    assert "input 0" not in message and "param 1" not in message


def test_fortran_order_and_transposed_inputs(rng):
    """Inputs that are not C-contiguous (x.T, as Linear records W.T) are checked, not refused."""
    x = rng.standard_normal((3, 4))
    assert gradcheck(np.tanh, x.T, backward=F.tanh_backward)
    a, w = rng.standard_normal((2, 3)), rng.standard_normal((4, 3))
    assert gradcheck(np.matmul, a, w.T, backward=F.matmul_backward)
    with pytest.raises(ValueError, match="input 1"):
        gradcheck(np.matmul, a, w.T, backward=lambda g, a, b: (g @ b.T, -(a.T @ g)))
