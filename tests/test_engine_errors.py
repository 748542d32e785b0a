"""Bad inputs: each raises the right error type with a message naming the operation and shapes."""
import re

import numpy as np
import pytest

from helpers import const, record
from mytorch import Autograd, GradientBuffer, gradcheck, nn
from mytorch.nn import functional as F
from mytorch.optim import SGD, Adam


def esc(text):
    return re.escape(str(text))


# --------------------------------------------------------------------------- add_operation
def test_mismatched_list_lengths(engine):
    """Two inputs, one gradients_to_update entry: the counts and the input shapes are named."""
    a, b = np.ones((2, 3)), np.ones(3)
    with pytest.raises(ValueError, match=r"operation #0 \(add_backward\).*2 inputs.*1 entr"):
        engine.add_operation([a, b], a + b, [None], F.add_backward)


def test_mismatched_list_lengths_names_the_input_shapes(engine):
    """The spec asks for the shapes involved: here the inputs' (2, 3) and (3,)."""
    a, b = np.ones((2, 3)), np.ones(3)
    with pytest.raises(ValueError) as info:
        engine.add_operation([a, b], a + b, [None], F.add_backward)
    assert re.search(r"operation #0 \(add_backward\)", str(info.value))
    assert re.search(esc((2, 3)), str(info.value)), str(info.value)
    assert re.search(esc((3,)), str(info.value)), str(info.value)


@pytest.mark.parametrize("bad, type_name", [([1.0, 2.0], "list"), (3.0, "float"), (None, "NoneType")])
def test_non_array_input(engine, bad, type_name):
    """A list, float or None where an array belongs: TypeError naming input index and type."""
    x = np.ones(2)
    engine.add_operation([x], -x, [None], F.neg_backward)  # operation #0 is fine
    with pytest.raises(TypeError, match=r"input 1 of operation #1 \(mul_backward\) is a %s" % type_name):
        engine.add_operation([x, bad], x * 2, [None, None], F.mul_backward)
    assert len(engine.operation_list) == 1  # nothing half-recorded


def test_non_numeric_input(engine):
    """A string array cannot be recorded."""
    with pytest.raises(TypeError, match=r"input 0 of operation #0 \(identity_backward\).*dtype <U1"):
        engine.add_operation([np.array(["a"])], np.ones(1), [None], F.identity_backward)


def test_non_array_output(engine):
    """A NumPy scalar output (as np.sum returns) is refused with a hint."""
    x = np.ones(3)
    with pytest.raises(TypeError, match=r"output of operation #0 \(sum_backward\) is a float64"):
        engine.add_operation([x], np.sum(x), [None], F.sum_backward)


def test_gradients_to_update_of_wrong_shape(engine):
    """dW given transposed: both shapes are named."""
    x, w = np.ones((4, 3)), np.ones((3, 2))
    with pytest.raises(ValueError, match=r"gradients_to_update\[1\] of operation #0 \(matmul_backward\) "
                                         r"has shape \(2, 3\), but input 1 has shape \(3, 2\)"):
        engine.add_operation([x, w], x @ w, [None, np.zeros((2, 3))], F.matmul_backward)


@pytest.mark.parametrize("target", ["int", "readonly", "list"])
def test_gradients_to_update_not_a_writeable_float_array(engine, target):
    """An int, read-only or non-array gradient target is refused, naming the operation."""
    x = np.ones(3)
    if target == "int":
        t = np.zeros(3, dtype=int)
    elif target == "readonly":
        t = np.zeros(3)
        t.flags.writeable = False
    else:
        t = [0.0, 0.0, 0.0]
    with pytest.raises(ValueError, match=r"gradients_to_update\[0\] of operation #0 \(neg_backward\)"):
        engine.add_operation([x], -x, [t], F.neg_backward)


def test_backward_operation_not_callable(engine):
    x = np.ones(2)
    with pytest.raises(TypeError, match=r"backward_operation of operation #0 .* not callable"):
        engine.add_operation([x], -x, [None], "neg_backward")


def test_output_is_an_input(engine):
    """The output object must differ from every input (else one gradient slot for two nodes)."""
    x = np.ones(2)
    with pytest.raises(ValueError, match=r"output of operation #0 \(identity_backward\) is the same "
                                         r"array object as input 0"):
        engine.add_operation([x], x, [None], F.identity_backward)


def test_output_recorded_twice(engine):
    x = np.ones(2)
    y = -x
    engine.add_operation([x], y, [None], F.neg_backward)
    with pytest.raises(ValueError, match=r"output of operation #1 \(neg_backward\) \(shape \(2,\)\) "
                                         r"is already the output"):
        engine.add_operation([x], y, [None], F.neg_backward)


def test_list_subclass_inputs_are_accepted(engine):
    """``inputs`` may be any list (a list subclass is a list) and is recorded normally."""

    class Inputs(list):
        pass

    x = np.ones(2)
    engine.add_operation(Inputs([x]), -x, Inputs([None]), F.neg_backward)
    engine.backward(1)
    np.testing.assert_array_equal(engine.gradient_buffer.get_param(x), [-1.0, -1.0])


def test_tuples_are_accepted(engine):
    """Tuples work as well as lists for inputs and gradients_to_update."""
    x = np.ones(2)
    engine.add_operation((x,), -x, (None,), F.neg_backward)
    engine.backward(1)
    np.testing.assert_array_equal(engine.gradient_buffer.get_param(x), [-1.0, -1.0])


# --------------------------------------------------------------------------- backward
def test_backward_on_empty_tape(engine):
    with pytest.raises(ValueError, match="tape is empty"):
        engine.backward(1)


def test_divergence_that_does_not_broadcast(engine):
    """backward(d) with d of shape (3,) for a (2, 2) output names both shapes and the operation."""
    x = np.ones((2, 2))
    record(engine, np.negative, F.neg_backward, [x])
    with pytest.raises(ValueError, match=r"divergence of shape \(3,\).*\(2, 2\) of operation #0 \(neg_backward\)"):
        engine.backward(np.ones(3))


def _record_with(engine, primitive, shapes=((2, 3), (3,))):
    arrays = [np.ones(s) for s in shapes]
    out = np.add(*arrays) if len(arrays) == 2 else -arrays[0]
    record(engine, np.negative, F.neg_backward, [np.ones(1)])  # operation #0, fine
    engine.add_operation(arrays, out, [None] * len(arrays), primitive)
    return arrays


def test_primitive_returns_too_few_gradients(engine):
    """One gradient for two inputs: named operation, counts."""

    def short_backward(grad_output, a, b):
        return (grad_output,)

    _record_with(engine, short_backward)
    with pytest.raises(ValueError, match=r"operation #1 \(short_backward\) returned 1 gradients? for 2 inputs"):
        engine.backward(1)


def test_primitive_returns_too_few_gradients_names_the_shapes(engine):
    """The spec asks for the shapes involved: the inputs' (2, 3) and (3,)."""

    def short_backward(grad_output, a, b):
        return (grad_output,)

    _record_with(engine, short_backward)
    with pytest.raises(ValueError) as info:
        engine.backward(1)
    message = str(info.value)
    assert re.search(r"operation #1 \(short_backward\)", message)
    assert re.search(esc((2, 3)), message) and re.search(esc((3,)), message), message


def test_primitive_returns_too_many_gradients(engine):
    def long_backward(grad_output, a, b):
        return grad_output, grad_output.sum(axis=0), grad_output

    _record_with(engine, long_backward)
    with pytest.raises(ValueError, match=r"operation #1 \(long_backward\) returned 3 gradients? for 2 inputs"):
        engine.backward(1)


def test_primitive_forgets_to_unbroadcast(engine):
    """Gradient (2, 3) for an input (3,): both shapes and the operation are named."""

    def lazy_add_backward(grad_output, a, b):
        return grad_output, grad_output

    _record_with(engine, lazy_add_backward)
    with pytest.raises(ValueError, match=r"operation #1 \(lazy_add_backward\) returned gradient 1 of "
                                         r"shape \(2, 3\), but input 1 has shape \(3,\)"):
        engine.backward(1)


@pytest.mark.parametrize("returned, type_name", [("text", "str"), (None, "NoneType")])
def test_primitive_returns_a_non_array(engine, returned, type_name):
    """A primitive whose result is not a tuple of arrays: TypeError naming it."""

    def odd_backward(grad_output, a):
        return returned

    _record_with(engine, odd_backward, shapes=((2,),))
    with pytest.raises(TypeError, match=r"operation #1 \(odd_backward\) returned a %s" % type_name):
        engine.backward(1)


def test_primitive_returns_a_lone_array_for_two_inputs(engine):
    def lone_backward(grad_output, a, b):
        return grad_output

    _record_with(engine, lone_backward)
    with pytest.raises(TypeError, match=r"operation #1 \(lone_backward\) returned a ndarray"):
        engine.backward(1)


def test_primitive_returns_non_array_entry(engine):
    def list_entry_backward(grad_output, a):
        return ([1.0, 2.0],)

    _record_with(engine, list_entry_backward, shapes=((2,),))
    with pytest.raises(TypeError, match=r"operation #1 \(list_entry_backward\) returned a list as gradient 0"):
        engine.backward(1)


def test_lone_array_and_scalar_for_0d_input_are_accepted(engine):
    """A lone array for one input, and a NumPy scalar for a 0-d input, are accepted."""
    x = np.ones(3)
    s = np.asarray(2.0)
    y = record(engine, lambda a: a * 1.0, lambda g, a: g * 1.0, [x])  # lone ndarray
    z = record(engine, lambda a, b: a * b, lambda g, a, b: (g * b, np.float64(np.sum(g * a))), [y, s])
    record(engine, np.sum, F.sum_backward, [z])
    engine.backward(1)
    np.testing.assert_array_equal(engine.gradient_buffer.get_param(x), [2.0, 2.0, 2.0])
    assert engine.gradient_buffer.get_param(s).shape == ()
    assert float(engine.gradient_buffer.get_param(s)) == 3.0


# --------------------------------------------------------------------------- buffer, modules, optim
def test_buffer_errors():
    """update_param/get_param/set_param on arrays without a spot, wrong shapes or types."""
    buf = GradientBuffer()
    a = np.ones((2, 3))
    for call in (lambda: buf.update_param(a, np.ones((2, 3))), lambda: buf.get_param(a),
                 lambda: buf.set_param(a, np.ones((2, 3)))):
        with pytest.raises(ValueError, match=r"shape \(2, 3\) has no spot"):
            call()
    buf.add_spot(a)
    with pytest.raises(ValueError, match=r"gradient shape \(3, 2\) differs from the array's shape \(2, 3\)"):
        buf.update_param(a, np.ones((3, 2)))
    with pytest.raises(TypeError, match="must be a numpy.ndarray, got list"):
        buf.update_param(a, [[1.0] * 3] * 2)
    with pytest.raises(ValueError, match=r"expected an array of shape \(2, 3\)"):
        buf.set_param(a, np.ones(3))


def test_linear_errors(engine):
    with pytest.raises(ValueError, match=r"sizes must be positive, got \(0, 3\)"):
        nn.Linear(0, 3, engine)
    layer = nn.Linear(4, 3, engine)
    with pytest.raises(ValueError, match=r"Linear\(4, 3\).*\(N, 4\), got shape \(5, 3\)"):
        layer(np.ones((5, 3)))
    with pytest.raises(ValueError, match=r"\(N, 4\), got shape \(4,\)"):
        layer(np.ones(4))
    assert engine.operation_list == []


@pytest.mark.parametrize("loss_cls", [nn.MSELoss, nn.SoftmaxCrossEntropy])
def test_loss_errors(engine, loss_cls):
    loss = loss_cls(engine)
    with pytest.raises(ValueError, match=r"y \(2, 3\) and y_hat \(2, 4\)"):
        loss(np.ones((2, 3)), np.ones((2, 4)))
    with pytest.raises(ValueError, match=r"y_hat must be an array of shape \(N, C\), got \(3,\)"):
        loss(np.ones((2, 3)), np.ones(3))


def test_optimizer_errors():
    p, g = np.ones(3), np.zeros(3)
    with pytest.raises(ValueError, match="no parameters"):
        SGD([], lr=0.1)
    with pytest.raises(ValueError, match="lr must be positive, got 0"):
        SGD([(p, g)], lr=0)
    with pytest.raises(ValueError, match=r"momentum must be in \[0, 1\), got 1.5"):
        SGD([(p, g)], lr=0.1, momentum=1.5)
    with pytest.raises(ValueError, match=r"pair 0 must be two arrays of one shape, got \(3,\) and \(2,\)"):
        Adam([(p, np.zeros(2))])
    with pytest.raises(ValueError, match="betas must be in"):
        Adam([(p, g)], betas=(1.0, 0.9))


def test_gradcheck_argument_errors():
    a = np.ones(3)
    with pytest.raises(ValueError, match="exactly one of backward= .* or engine="):
        gradcheck(np.negative, a)
    with pytest.raises(ValueError, match="exactly one of"):
        gradcheck(np.negative, a, backward=F.neg_backward, engine=Autograd())
    with pytest.raises(TypeError, match="argument 0 must be a float numpy array, got list"):
        gradcheck(np.negative, [1.0], backward=F.neg_backward)
    with pytest.raises(TypeError, match="argument 0 must be a float numpy array"):
        gradcheck(np.negative, np.arange(3), backward=F.neg_backward)


def test_recording_after_backward_names_the_operation(engine):
    x = np.ones(2)
    record(engine, lambda a, k: a * k, F.mul_backward, [x, const(3.0)])
    engine.backward(1)
    with pytest.raises(ValueError, match=r"cannot record operation #1 \(tanh_backward\): backward\(\) already ran"):
        engine.add_operation([x], np.tanh(x), [None], F.tanh_backward)
