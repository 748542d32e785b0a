"""What the engine cannot differentiate, it refuses: ndarray subclasses with their own operators,
cycles, calls made while backward runs, complex values. Each error names the operation (index and
primitive) and the shapes, and a refused call leaves the tape as it was.

The cases are the issue's silently wrong answers: d(a*b)/da with np.matrix inputs came out
[[12, 14], [12, 14]] instead of [[5, 6], [7, 8]]; backward called again from a primitive gave 6
instead of 2; an output that an earlier operation took as input gave d(x)/dx = 3.
"""
import re

import numpy as np
import pytest

from helpers import const, record
from mytorch.nn import functional as F

pytestmark = pytest.mark.filterwarnings("ignore:the matrix subclass:PendingDeprecationWarning")


def esc(value):
    return re.escape(str(value))


def refused(engine, error, pattern, call):
    """``call()`` raises ``error`` matching ``pattern``; the tape and the buffer are unchanged."""
    before = (list(engine.operation_list), dict(engine.gradient_buffer.memory))
    with pytest.raises(error, match=pattern) as info:
        call()
    assert (engine.operation_list, engine.gradient_buffer.memory) == before
    return str(info.value)


# --------------------------------------------------------------------------- ndarray subclasses
def test_np_matrix_inputs_are_refused_not_differentiated_wrongly(engine):
    """np.matrix's * is a matrix product: the tape would give [[12, 14], [12, 14]] for d(a*b)/da."""
    a, b = np.matrix([[1.0, 2.0], [3.0, 4.0]]), np.matrix([[5.0, 6.0], [7.0, 8.0]])
    record(engine, np.negative, F.neg_backward, [np.ones(1)])  # operation #0 is fine
    message = refused(engine, TypeError, r"input 0 of operation #1 \(mul_backward\) is a numpy\.matrix",
                      lambda: engine.add_operation([a, b], a * b, [None, None], F.mul_backward))
    assert "np.asarray" in message
    assert a.flags.writeable and b.flags.writeable  # nothing was frozen for the refused operation


@pytest.mark.parametrize("role", ["output", "gradient target", "gradient"])
def test_np_matrix_is_refused_wherever_it_appears(engine, role):
    x = np.ones((2, 2))
    m = np.matrix(np.zeros((2, 2)))
    if role == "output":
        refused(engine, TypeError, r"the output of operation #0 \(neg_backward\) is a numpy\.matrix",
                lambda: engine.add_operation([x], np.matrix(-x), [None], F.neg_backward))
    elif role == "gradient target":
        refused(engine, ValueError, r"gradients_to_update\[0\] of operation #0 \(neg_backward\) must be a "
                r"writeable numpy array of dtype float64.*got matrix",
                lambda: engine.add_operation([x], -x, [m], F.neg_backward))
    else:
        record(engine, np.negative, lambda g, a: (np.matrix(-g),), [x])
        with pytest.raises(TypeError, match=r"operation #0 \(<lambda>\) returned gradient 0, which is a "
                                            r"numpy\.matrix.*inputs: \[\(2, 2\)\]"):
            engine.backward(1)


def test_masked_arrays_are_refused(engine):
    """Masked arrays redefine the operators too."""
    x = np.ma.masked_array([1.0, 2.0], mask=[False, True])
    with pytest.raises(TypeError, match=r"input 0 of operation #0 \(neg_backward\) is a numpy\.ma(\.core)?\.MaskedArray, an "
                                        r"ndarray subclass"):
        engine.add_operation([x], -np.asarray(x), [None], F.neg_backward)


def test_a_subclass_keeping_numpys_operators_is_recorded(engine, tmp_path):
    """np.memmap redefines none of NumPy's operators: recorded and differentiated like an ndarray."""
    data = np.memmap(tmp_path / "x.bin", dtype=np.float64, mode="w+", shape=(3,))
    data[:] = [1.0, 2.0, 3.0]
    y = record(engine, lambda a, k: a * k, F.mul_backward, [data, const(4.0)])
    record(engine, np.sum, F.sum_backward, [y])
    engine.backward(1)
    np.testing.assert_array_equal(engine.gradient_buffer.get_param(data), [4.0, 4.0, 4.0])


# --------------------------------------------------------------------------- cycles
def test_an_output_that_an_earlier_operation_took_as_input_is_refused(engine):
    """x = f(x) after x was used: a cycle (the tape gave d(x)/dx = 3)."""
    x = np.ones((2, 3))
    record(engine, lambda a, k: a * k, F.mul_backward, [x, const(2.0)])
    message = refused(engine, ValueError, r"the output of operation #1 \(identity_backward\) \(shape \(2, 3\)\) is "
                                          r"already input 0 of operation #0 \(mul_backward\).*cycle",
                      lambda: engine.add_operation([const(1.0)], x, [None], F.identity_backward))
    assert "new array" in message


def test_an_output_that_is_its_own_input_is_refused(engine):
    """An in-place activation: np.maximum(x, 0, out=x) recorded with x as its output."""
    x = np.array([-1.0, 2.0])
    np.maximum(x, 0, out=x)
    refused(engine, ValueError, r"the output of operation #0 \(relu_backward\) is the same array object as input 0",
            lambda: engine.add_operation([x], x, [None], F.relu_backward))
    assert x.flags.writeable


# --------------------------------------------------------------------------- while backward runs
def reentrant(engine, action):
    """Record y = 2 x, then z = sum(y) whose primitive calls ``action(engine)`` first."""
    x = np.ones(2)
    y = record(engine, lambda a, k: a * k, F.mul_backward, [x, const(2.0)])

    def sum_calling_back(grad_output, a):
        action(engine)
        return F.sum_backward(grad_output, a)

    record(engine, np.sum, sum_calling_back, [y])
    return x, y


@pytest.mark.parametrize("action, pattern", [
    (lambda e: e.backward(1), r"backward: called while backward\(\) runs \(from inside a primitive\?\)"),
    (lambda e: e.zero_grad(), r"zero_grad: called while backward\(\) runs"),
    (lambda e: e.add_operation([np.ones(1)], np.ones(1), [None], F.identity_backward),
     r"cannot record operation #2 \(identity_backward\) while backward\(\) runs"),
], ids=["backward", "zero_grad", "add_operation"])
def test_backward_zero_grad_and_recording_from_inside_a_primitive_are_refused(engine, action, pattern):
    """A second backward from a primitive gave d(sum 2x)/dx = 6 instead of 2; now each call is refused."""
    x, y = reentrant(engine, action)
    with pytest.raises(ValueError, match=pattern) as info:
        engine.backward(1)
    notes = " ".join(getattr(info.value, "__notes__", []))
    assert not notes or "operation #1 (sum_calling_back)" in notes
    assert len(engine.operation_list) == 2  # nothing was recorded, nothing emptied
    assert x.flags.writeable and y.flags.writeable  # the failed backward still released the arrays
    with pytest.raises(ValueError, match=r"backward\(\) already ran"):
        engine.backward(1)
    engine.zero_grad()  # allowed again once backward is over
    assert engine.operation_list == []


def test_a_primitive_that_catches_the_refusal_cannot_corrupt_the_result(engine):
    """Even if the primitive swallows the error, the gradient is the right one."""

    def try_backward(e):
        try:
            e.backward(1)
        except ValueError:
            pass

    x, _ = reentrant(engine, try_backward)
    engine.backward(1)
    np.testing.assert_array_equal(engine.gradient_buffer.get_param(x), [2.0, 2.0])


# --------------------------------------------------------------------------- complex values
@pytest.mark.parametrize("where", ["input", "output"])
def test_complex_arrays_are_refused(engine, where):
    x = np.ones((2, 2))
    z = np.ones((2, 2), dtype=complex)
    if where == "input":
        refused(engine, TypeError, r"input 0 of operation #0 \(neg_backward\) is complex \(complex128\)",
                lambda: engine.add_operation([z], -x, [None], F.neg_backward))
    else:
        refused(engine, TypeError, r"the output of operation #0 \(neg_backward\) is complex \(complex128\)",
                lambda: engine.add_operation([x], -z, [None], F.neg_backward))


@pytest.mark.parametrize("divergence", [1j, np.complex64(2 + 0j), np.ones((2, 3), dtype=complex), [1 + 1j, 0, 0]],
                         ids=["python", "numpy scalar", "array", "list"])
def test_a_complex_divergence_is_refused(engine, divergence):
    """It gave 0 with only a ComplexWarning; even an imaginary part of 0 is refused."""
    x = np.ones((2, 3))
    record(engine, np.negative, F.neg_backward, [x])
    with pytest.raises(TypeError, match=r"backward: the divergence is complex.*output of operation #0 "
                                        r"\(neg_backward\)"):
        engine.backward(divergence)
    assert not x.flags.writeable  # nothing ran: the tape is still whole, and a real divergence works
    engine.backward(np.full((2, 3), 2.0))
    np.testing.assert_array_equal(engine.gradient_buffer.get_param(x), np.full((2, 3), -2.0))


def test_a_complex_gradient_from_a_primitive_is_refused(engine):
    """The imaginary part used to be dropped silently."""
    x = np.ones((2, 3))
    record(engine, np.negative, lambda g, a: (-g + 1j,), [x])
    with pytest.raises(TypeError, match=r"operation #0 \(<lambda>\) returned gradient 0, which is complex "
                                        r"\(complex128\).*inputs: \[\(2, 3\)\], output: \(2, 3\)"):
        engine.backward(1)


def test_a_complex_gradient_target_is_refused(engine):
    x = np.ones(3)
    refused(engine, ValueError, r"gradients_to_update\[0\] of operation #0 \(neg_backward\) must be a writeable "
                                r"numpy array of dtype float64.*dtype complex128",
            lambda: engine.add_operation([x], -x, [np.zeros(3, dtype=complex)], F.neg_backward))


# --------------------------------------------------------------------------- what was already refused
@pytest.mark.parametrize("target_dtype, input_dtype", [(np.float32, np.float64), (np.float64, np.float32)])
def test_a_gradient_target_must_have_its_inputs_gradient_dtype(engine, target_dtype, input_dtype):
    x = np.ones(3, dtype=input_dtype)
    refused(engine, ValueError, r"gradients_to_update\[0\] of operation #0 \(neg_backward\) must be a writeable "
                                r"numpy array of dtype %s" % np.dtype(input_dtype),
            lambda: engine.add_operation([x], -x, [np.zeros(3, dtype=target_dtype)], F.neg_backward))


def test_a_refused_operation_freezes_nothing_and_the_tape_goes_on(engine):
    """After a refusal the engine records and differentiates as if the bad call never happened."""
    x = np.array([1.0, 2.0])
    y = record(engine, np.exp, F.exp_backward, [x])
    with pytest.raises(TypeError):
        engine.add_operation([y, [1.0, 2.0]], y * 2, [None, None], F.mul_backward)
    z = record(engine, np.sum, F.sum_backward, [y])
    engine.backward(1)
    np.testing.assert_allclose(engine.gradient_buffer.get_param(x), np.exp(x), rtol=1e-15)
    assert z.flags.writeable
