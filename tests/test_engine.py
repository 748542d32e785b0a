"""The tape: backward, accumulation, views, read-only protection, no_grad, warnings, printing."""
import contextlib
import gc
import re
import sys
import warnings

import numpy as np
import pytest

from helpers import const, numeric_gradients, record
from mytorch import Autograd, Operation, UnusedOperationWarning, nn
from mytorch.nn import functional as F
from mytorch.optim import SGD, Adam


@contextlib.contextmanager
def no_unused_warnings():
    """A context in which an UnusedOperationWarning fails the test."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", UnusedOperationWarning)
        yield


def grad(engine, array):
    return engine.gradient_buffer.get_param(array)


# --------------------------------------------------------------------------- backward
def test_chain_rule_matches_finite_differences(engine, rng):
    """sum(tanh(x @ w + b) * x[:, :1]) recorded op by op: gradients of x, w and b."""
    x, w, b = rng.standard_normal((4, 3)), rng.standard_normal((3, 2)), rng.standard_normal(2)

    def forward(x, w, b):
        return np.sum(np.tanh(x @ w + b) * x[:, :1])

    u = record(engine, np.matmul, F.matmul_backward, [x, w])
    v = record(engine, np.add, F.add_backward, [u, b])
    t = np.tanh(v)
    engine.add_operation([v], t, [None], F.tanh_backward, out=t)
    col = record(engine, lambda a: a[:, :1], F.getitem_backward, [x], index=(slice(None), slice(None, 1)))
    p = record(engine, np.multiply, F.mul_backward, [t, col])
    record(engine, np.sum, F.sum_backward, [p])
    with no_unused_warnings():
        engine.backward(1)
    expected = numeric_gradients(forward, [x, w, b], np.ones(()))
    for array, exp in zip((x, w, b), expected):
        np.testing.assert_allclose(grad(engine, array), exp, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("divergence", [1, 3.5, "array", "row"])
def test_divergence_is_broadcast_to_the_last_output(engine, rng, divergence):
    """backward(d): the last operation's upstream gradient is d broadcast to its output."""
    x = rng.standard_normal((2, 3))
    record(engine, lambda a, c: a * c, F.mul_backward, [x, const(2.0)])
    if divergence == "array":
        divergence = rng.standard_normal((2, 3))
    elif divergence == "row":
        divergence = rng.standard_normal(3)
    saved = np.array(divergence, copy=True)
    engine.backward(divergence)
    np.testing.assert_array_equal(grad(engine, x), 2.0 * np.broadcast_to(saved, (2, 3)))
    np.testing.assert_array_equal(np.asarray(divergence), saved)  # the caller's array is untouched


def test_backward_of_a_0d_output(engine, rng):
    """A scalar (0-d) loss: backward(1) gives d(sum x**2)/dx = 2x."""
    x = rng.standard_normal(5)
    sq = record(engine, lambda a: a ** 2, F.pow_backward, [x], exponent=2)
    total = record(engine, np.sum, F.sum_backward, [sq])
    assert total.shape == ()
    engine.backward(1)
    np.testing.assert_allclose(grad(engine, x), 2 * x, rtol=1e-15)


def test_gradients_to_update_are_incremented_in_place_and_get_no_spot(engine, rng):
    """A caller-owned gradient array is added to in place; only None inputs get buffer spots."""
    x, w = rng.standard_normal((4, 3)), rng.standard_normal((3, 2))
    dw = np.ones((3, 2))
    dw_id = id(dw)
    out = record(engine, np.matmul, F.matmul_backward, [x, w], targets=[None, dw])
    g = rng.standard_normal(out.shape)
    engine.backward(g)
    assert id(dw) == dw_id
    np.testing.assert_allclose(dw, 1.0 + x.T @ g, rtol=1e-14)
    np.testing.assert_allclose(grad(engine, x), g @ w.T, rtol=1e-14)
    assert engine.gradient_buffer.is_in_memory(x)
    assert not engine.gradient_buffer.is_in_memory(w)
    assert not engine.gradient_buffer.is_in_memory(out)
    assert len(engine.gradient_buffer.memory) == 1


def test_fan_out_accumulates(engine, rng):
    """x used by three operations (once twice in the same one): d/dx = c + exp(x) + 2."""
    x = rng.standard_normal(4)
    c = rng.standard_normal(4)
    y1 = record(engine, np.multiply, F.mul_backward, [x, c])
    y2 = np.exp(x)
    engine.add_operation([x], y2, [None], F.exp_backward, out=y2)
    y3 = record(engine, np.add, F.add_backward, [x, x])
    s = record(engine, np.add, F.add_backward, [y1, y2])
    record(engine, np.add, F.add_backward, [s, y3])
    with no_unused_warnings():
        engine.backward(1)
    np.testing.assert_allclose(grad(engine, x), c + np.exp(x) + 2, rtol=1e-14)
    np.testing.assert_array_equal(grad(engine, c), x)


def test_shared_first_gradient_is_never_corrupted(engine):
    """add_backward hands the same array to two inputs; accumulating into one leaves the other.

    out = p + r with r = 2p, p = 1.5a: p receives G then 2G, r must keep G, a gets 4.5G.
    """
    a = np.array([1.0, -2.0, 3.0])
    p = record(engine, lambda x, k: x * k, F.mul_backward, [a, const(1.5)])
    r = record(engine, lambda x, k: x * k, F.mul_backward, [p, const(2.0)])
    record(engine, np.add, F.add_backward, [p, r])
    G = np.array([0.5, 0.25, -1.0])
    with no_unused_warnings():
        engine.backward(G)
    np.testing.assert_array_equal(grad(engine, r), G)
    np.testing.assert_array_equal(grad(engine, p), 3 * G)
    np.testing.assert_array_equal(grad(engine, a), 4.5 * G)
    np.testing.assert_array_equal(G, [0.5, 0.25, -1.0])


def test_identity_chain_with_fan_out_keeps_each_gradient(engine):
    """y = identity(x) (a view), z = y + y, w = x * 3, out = z + w: dx = 2 + 3, dy = 2."""
    x = np.array([1.0, 2.0])
    y = x.view()
    engine.add_operation([x], y, [None], F.identity_backward)
    z = record(engine, np.add, F.add_backward, [y, y])
    w = record(engine, lambda a, k: a * k, F.mul_backward, [x, const(3.0)])
    record(engine, np.add, F.add_backward, [z, w])
    engine.backward(1)
    np.testing.assert_array_equal(grad(engine, y), [2.0, 2.0])
    np.testing.assert_array_equal(grad(engine, z), [1.0, 1.0])
    np.testing.assert_array_equal(grad(engine, w), [1.0, 1.0])
    np.testing.assert_array_equal(grad(engine, x), [5.0, 5.0])


# --------------------------------------------------------------------------- identity keys
def test_views_of_one_buffer_are_separate_nodes(engine, rng):
    """x, x.view(), x.T and x.reshape(3, 2) share memory but each gets its own gradient."""
    x = rng.standard_normal((2, 3))
    views = [x, x.view(), x.T, x.reshape(3, 2)]
    assert all(np.shares_memory(v, x) for v in views)
    assert len({v.ctypes.data for v in views}) == 1  # one data pointer for all four
    factors = [2.0, 3.0, 5.0, 7.0]
    total = None
    for v, k in zip(views, factors):
        s = record(engine, lambda a, c: np.sum(a * c), lambda g, a, c: (g * c * np.ones_like(a),
                                                                         np.asarray(np.sum(g * a))),
                   [v, const(k)])
        total = s if total is None else record(engine, np.add, F.add_backward, [total, s])
    engine.backward(1)
    for v, k in zip(views, factors):
        got = grad(engine, v)
        assert got.shape == v.shape
        np.testing.assert_array_equal(got, np.full(v.shape, k))


def test_reused_addresses_never_mix_gradients_within_a_tape(engine):
    """Arrays whose only reference is the tape keep their ids, so gradients stay separate."""
    ids = set()
    for i in range(300):  # without an engine, CPython hands freed addresses out again
        a = np.full(4, float(i))
        ids.add(id(a))
        del a
    if len(ids) == 300:
        pytest.skip("this interpreter did not reuse object addresses")
    total = None
    for i in range(300):
        a = np.full(4, float(i))
        y = record(engine, lambda x, k: x * k, F.mul_backward, [a, const(i + 1.0)])
        s = record(engine, np.sum, F.sum_backward, [y])
        total = s if total is None else record(engine, np.add, F.add_backward, [total, s])
        del a, y, s
    gc.collect()
    with no_unused_warnings():
        engine.backward(1)
    muls = [op for op in engine.operation_list if op.backward_operation is F.mul_backward]
    assert len(muls) == 300
    assert len({id(op.inputs[0]) for op in muls}) == 300
    for i, op in enumerate(muls):
        a = op.inputs[0]
        np.testing.assert_array_equal(a, np.full(4, float(i)))
        np.testing.assert_array_equal(grad(engine, a), np.full(4, i + 1.0))


def test_reused_addresses_never_leak_across_steps(engine):
    """Each step's fresh input (often at a freed array's address) gets only its own gradient."""
    seen = set()
    for step in range(200):
        x = np.full(3, float(step))
        seen.add(id(x))
        record(engine, lambda a, k: a * k, F.mul_backward, [x, const(step + 2.0)])
        engine.backward(1)
        np.testing.assert_array_equal(grad(engine, x), np.full(3, step + 2.0))
        engine.zero_grad()
        assert not engine.gradient_buffer.is_in_memory(x)
        del x
    assert len(seen) < 200, "no address was reused, so this test proved nothing"


# --------------------------------------------------------------------------- read-only arrays
def test_recorded_arrays_are_read_only_until_backward(engine, rng):
    """Inputs, outputs, a Linear's W (through W.T) and a view's base refuse writes."""
    data = rng.standard_normal((6, 3))
    x = data[:4]  # a view: its base is frozen too
    layer = nn.Linear(3, 2, engine, rng=rng)
    out = layer(x)
    act = nn.ReLU(engine)
    h = act(out)
    for name, array in (("x", x), ("data", data), ("W", layer.W), ("b", layer.b), ("out", out),
                        ("h", h)):
        with pytest.raises(ValueError, match="read-only"):
            array[...] = 0.0
        with pytest.raises(ValueError, match="read-only"):
            array += 1.0
    engine.backward(1)
    for array in (x, data, layer.W, layer.b, out, h):
        assert array.flags.writeable
        array[...] = 0.0  # really writeable now


def test_zero_grad_without_backward_makes_arrays_writeable(engine, rng):
    """zero_grad() alone releases the recorded arrays."""
    x = rng.standard_normal(3)
    y = record(engine, np.negative, F.neg_backward, [x])
    assert not x.flags.writeable and not y.flags.writeable
    engine.zero_grad()
    assert x.flags.writeable and y.flags.writeable


def test_arrays_read_only_before_recording_stay_read_only(engine):
    """The engine only releases what it locked itself."""
    x = np.arange(3.0)
    x.flags.writeable = False
    y = record(engine, np.negative, F.neg_backward, [x])
    engine.backward(1)
    assert not x.flags.writeable
    assert y.flags.writeable


def test_failed_backward_still_releases_arrays(engine):
    """A primitive that raises: the error surfaces, names the operation, arrays are writeable."""
    x = np.ones(3)

    def broken_backward(grad_output, a):
        raise RuntimeError("boom")

    y = record(engine, np.negative, broken_backward, [x])
    with pytest.raises(RuntimeError, match="boom") as info:
        engine.backward(1)
    if sys.version_info >= (3, 11):
        notes = " ".join(getattr(info.value, "__notes__", []))
        assert re.search(r"operation #0 \(broken_backward\)", notes)
    assert x.flags.writeable and y.flags.writeable


def test_every_recorded_array_is_writeable_after_backward_mlp(engine, rng):
    """Linear, Sigmoid, Tanh, ReLU, SoftmaxCrossEntropy: nothing on the tape stays read-only."""
    x = rng.standard_normal((5, 4))
    y = np.eye(3)[rng.integers(0, 3, 5)]
    h = x
    for layer in (nn.Linear(4, 6, engine, rng=rng), nn.Sigmoid(engine), nn.Linear(6, 5, engine, rng=rng),
                  nn.Tanh(engine), nn.ReLU(engine), nn.Linear(5, 3, engine, rng=rng)):
        h = layer(h)
    loss = nn.SoftmaxCrossEntropy(engine)
    loss(y, h)
    loss.backward()
    locked = [(i, a.shape) for i, op in enumerate(engine.operation_list)
              for a in (*op.inputs, op.output) if not a.flags.writeable]
    assert locked == []
    assert loss.loss_val.flags.writeable


@pytest.mark.parametrize("module", ["Identity", "MSELoss"])
def test_every_recorded_array_is_writeable_after_backward_views(engine, rng, module):
    """Modules whose output is a view of an already-recorded array release it too.

    Identity returns ``x.view()`` and MSELoss ``mean.reshape(1)`` of arrays that are already
    read-only, so the new view is born read-only.
    """
    x = rng.standard_normal((5, 4))
    h = nn.Linear(4, 3, engine, rng=rng)(x)
    if module == "Identity":
        h = nn.Identity(engine)(h)
        record(engine, np.sum, F.sum_backward, [h])
    else:
        nn.MSELoss(engine)(np.zeros((5, 3)), h)
    engine.backward(1)
    locked = [(i, op.name, a.shape) for i, op in enumerate(engine.operation_list)
              for a in (*op.inputs, op.output) if not a.flags.writeable]
    assert locked == [], "still read-only after backward: %s" % locked


def test_view_recorded_as_output_is_writeable_after_backward(engine):
    """Minimal engine-level form of the case above: y = 2x, v = y.view() recorded as output."""
    x = np.ones(3)
    y = record(engine, lambda a, k: a * k, F.mul_backward, [x, const(2.0)])
    v = y.view()
    engine.add_operation([y], v, [None], F.identity_backward)
    engine.backward(1)
    assert y.flags.writeable
    assert v.flags.writeable


def test_optimizers_refuse_to_step_a_recorded_parameter(engine, rng):
    """SGD/Adam.step() on a parameter still on the tape raises a clear error; after backward it works."""
    layer = nn.Linear(3, 2, engine, rng=rng)
    layer(rng.standard_normal((4, 3)))
    for opt in (SGD(layer.parameters(), lr=0.1, momentum=0.5), Adam(layer.parameters(), lr=0.1)):
        with pytest.raises(ValueError, match=r"parameter 0 \(2, 3\) is read-only.*backward\(\) or zero_grad\(\)"):
            opt.step()
    engine.backward(1)
    W0 = layer.W.copy()
    SGD(layer.parameters(), lr=0.1).step()
    np.testing.assert_allclose(layer.W, W0 - 0.1 * layer.dW, rtol=1e-15)


# --------------------------------------------------------------------------- tape rules
def test_second_backward_and_recording_after_backward_raise(engine):
    """One backward per tape; zero_grad() starts a new one."""
    x = np.ones(2)
    record(engine, np.negative, F.neg_backward, [x])
    engine.backward(1)
    with pytest.raises(ValueError, match=r"backward\(\) already ran"):
        engine.backward(1)
    with pytest.raises(ValueError, match=r"operation #1 \(exp_backward\).*zero_grad\(\)"):
        record(engine, np.exp, F.exp_backward, [x])
    engine.zero_grad()
    assert engine.operation_list == [] and len(engine.gradient_buffer.memory) == 0
    record(engine, np.exp, F.exp_backward, [x])
    engine.backward(1)
    np.testing.assert_allclose(grad(engine, x), np.exp(x), rtol=1e-15)


def test_no_grad_records_nothing(engine, rng):
    """Inside no_grad (nested too, and after an exception) nothing is recorded or locked."""
    layer = nn.Linear(3, 2, engine, rng=rng)
    x = rng.standard_normal((4, 3))
    with engine.no_grad():
        out = layer(x)
        with engine.no_grad():
            nn.ReLU(engine)(out)
        layer(x)
    assert engine.operation_list == [] and len(engine.gradient_buffer.memory) == 0
    assert x.flags.writeable and layer.W.flags.writeable and out.flags.writeable
    with pytest.raises(KeyError):
        with engine.no_grad():
            raise KeyError("inside")
    with pytest.raises(ValueError, match="tape is empty"):
        engine.backward(1)
    layer(x)  # recording is back on
    assert len(engine.operation_list) == 2


def test_broken_chain_warns_and_names_the_operations(engine, rng):
    """A .copy() between a layer and the loss: UnusedOperationWarning per skipped operation."""
    layer = nn.Linear(3, 2, engine, rng=rng)
    x = rng.standard_normal((4, 3))
    y = np.eye(2)[[0, 1, 1, 0]]
    out = layer(x).copy()  # breaks the chain
    loss = nn.SoftmaxCrossEntropy(engine)
    loss(y, out)
    with pytest.warns(UnusedOperationWarning) as caught:
        loss.backward()
    messages = [str(w.message) for w in caught if issubclass(w.category, UnusedOperationWarning)]
    assert any(re.search(r"operation #1 \(add_backward\) with output \(4, 2\)", m) for m in messages)
    assert any(re.search(r"operation #0 \(matmul_backward\) with output \(4, 2\)", m) for m in messages)
    assert len(messages) == 2
    np.testing.assert_array_equal(layer.dW, np.zeros((2, 3)))  # nothing flowed, nothing invented
    np.testing.assert_array_equal(layer.db, np.zeros(2))
    # the loss's own gradient did flow: (softmax - y) / N
    e = np.exp(out - out.max(axis=1, keepdims=True))
    np.testing.assert_allclose(grad(engine, out), (e / e.sum(axis=1, keepdims=True) - y) / 4, rtol=1e-13)


def test_several_engines_are_independent(rng):
    """Two engines recording interleaved graphs keep separate tapes, buffers and locks."""
    a_engine, b_engine = Autograd(), Autograd()
    x, z = rng.standard_normal(3), rng.standard_normal(3)
    ya = record(a_engine, np.exp, F.exp_backward, [x])
    yb = record(b_engine, np.tanh, F.tanh_backward, [z])
    record(a_engine, np.sum, F.sum_backward, [ya])
    record(b_engine, lambda t: t ** 3, F.pow_backward, [yb], exponent=3)
    assert len(a_engine.operation_list) == 2 and len(b_engine.operation_list) == 2
    a_engine.backward(1)
    assert x.flags.writeable
    assert not z.flags.writeable and not yb.flags.writeable  # b's tape is still open
    assert not a_engine.gradient_buffer.is_in_memory(z)
    b_engine.backward(1)
    np.testing.assert_allclose(grad(a_engine, x), np.exp(x), rtol=1e-15)
    t = np.tanh(z)
    np.testing.assert_allclose(grad(b_engine, z), 3 * t ** 2 * (1 - t ** 2), rtol=1e-14)


def test_input_shared_by_two_engines_is_never_silently_wrong(rng):
    """x on two tapes: the engine that froze x keeps it read-only; once it releases x, a write makes the other raise."""
    a_engine, b_engine = Autograd(), Autograd()
    x = rng.standard_normal(3)
    record(a_engine, lambda t, k: t * k, F.mul_backward, [x, const(2.0)])  # a freezes x
    record(b_engine, lambda t: t ** 2, F.pow_backward, [x], exponent=2)  # b finds x read-only
    b_engine.backward(1)
    with pytest.raises(ValueError, match="read-only"):
        x[0] = 100.0  # still recorded on a's tape
    a_engine.backward(1)
    x[0] = 100.0  # released by a
    b_engine.zero_grad()
    c_engine = Autograd()
    record(c_engine, lambda t: t ** 2, F.pow_backward, [x], exponent=2)
    record(b_engine, lambda t: t ** 2, F.pow_backward, [x], exponent=2)  # b finds x read-only again
    c_engine.backward(1)
    x[1] = -5.0  # c released it; b's copy of x no longer matches
    with pytest.raises(ValueError, match=r"input 0 of operation #0 \(pow_backward\) \(shape \(3,\)\) changed after it was recorded"):
        b_engine.backward(1)


def test_input_shared_by_two_engines_unchanged_gives_both_gradients(rng):
    """Without a write in between, both engines differentiate the shared x correctly."""
    a_engine, b_engine = Autograd(), Autograd()
    x = rng.standard_normal(3)
    record(a_engine, lambda t, k: t * k, F.mul_backward, [x, const(2.0)])
    record(b_engine, lambda t: t ** 2, F.pow_backward, [x], exponent=2)
    a_engine.backward(1)
    b_engine.backward(1)
    np.testing.assert_allclose(grad(a_engine, x), np.full(3, 2.0), rtol=1e-15)
    np.testing.assert_allclose(grad(b_engine, x), 2 * x, rtol=1e-15)


def test_view_of_read_only_data_is_checked_on_its_own_rows_only(rng):
    """A batch view of read-only data: a change inside the batch is caught, one outside it is not an error."""
    data = rng.standard_normal((10, 3))
    data.setflags(write=False)  # e.g. a dataset loaded read-only
    engine = Autograd()
    batch = data[2:4]
    record(engine, lambda s, t: s * t, F.mul_backward, [batch, batch])
    data.setflags(write=True)
    data[7] = 5.0  # outside the recorded rows: the gradient is still right
    engine.backward(1)
    np.testing.assert_allclose(grad(engine, batch), 2 * batch, rtol=1e-15)
    engine.zero_grad()
    data.setflags(write=False)
    batch = data[2:4]
    record(engine, lambda s, t: s * t, F.mul_backward, [batch, batch])
    data.setflags(write=True)
    data[3, 0] = 5.0  # inside the recorded rows
    with pytest.raises(ValueError, match=r"input 0 of operation #0 \(mul_backward\) \(shape \(2, 3\)\) changed"):
        engine.backward(1)


# --------------------------------------------------------------------------- dtype
def test_float32_stays_float32_through_the_engine(engine, rng):
    """A float32 model: outputs, buffer gradients and dW/db are float32."""
    x = rng.standard_normal((4, 3)).astype(np.float32)
    layer = nn.Linear(3, 2, engine, rng=rng, dtype=np.float32)
    assert layer.W.dtype == np.float32 and layer.dW.dtype == np.float32
    h = nn.Sigmoid(engine)(layer(x))
    s = record(engine, np.sum, F.sum_backward, [h])
    assert h.dtype == np.float32 and s.dtype == np.float32
    engine.backward(1)
    for array in (x, h):
        assert grad(engine, array).dtype == np.float32
    assert layer.dW.dtype == np.float32 and layer.db.dtype == np.float32
    # values: float32 gradients close to the float64 computation
    W, b = layer.W.astype(np.float64), layer.b.astype(np.float64)
    sig = 1 / (1 + np.exp(-(x.astype(np.float64) @ W.T + b)))
    np.testing.assert_allclose(layer.db, np.sum(sig * (1 - sig), axis=0), rtol=1e-5)


def test_integer_inputs_get_float64_gradients(engine):
    """An int array on the tape gets a float64 gradient."""
    labels = np.array([[0, 1], [1, 0]])
    z = np.array([[0.5, -0.5], [2.0, 1.0]])
    loss = nn.SoftmaxCrossEntropy(engine)
    loss(labels, z)
    loss.backward()
    g = grad(engine, labels)
    assert g.dtype == np.float64 and g.shape == (2, 2)
    e = np.exp(z - z.max(axis=1, keepdims=True))
    np.testing.assert_allclose(g, -np.log(e / e.sum(axis=1, keepdims=True)) / 2, rtol=1e-14)


# --------------------------------------------------------------------------- printing
def test_print_engine_shows_the_tape(engine, rng, capsys):
    """print(engine): one line per operation with index, primitive, input and output shapes."""
    layer = nn.Linear(4, 3, engine, rng=rng)
    nn.ReLU(engine)(layer(rng.standard_normal((5, 4))))
    print(engine)
    text = capsys.readouterr().out
    assert re.search(r"#0\s+matmul_backward\s+\[\(5, 4\), \(4, 3\)\] -> \(5, 3\)", text)
    assert re.search(r"#1\s+add_backward\s+\[\(5, 3\), \(3,\)\] -> \(5, 3\)", text)
    assert re.search(r"#2\s+relu_backward\s+\[\(5, 3\)\] -> \(5, 3\)", text)
    assert "3 operations" in text


def test_operation_repr_names_primitive_shapes_and_options(engine):
    """repr(Operation): primitive, input shapes, output shape, where gradients go, options."""
    x = np.ones((2, 3))
    dx = np.zeros((2, 3))
    record(engine, lambda a: np.sum(a, axis=1), F.sum_backward, [x], targets=[dx], axis=1)
    op = engine.operation_list[0]
    assert isinstance(op, Operation)
    text = repr(op)
    assert re.search(r"sum_backward.*\(2, 3\).*->.*\(2,\)", text)
    assert "axis=1" in text
    assert "(2, 3)" in text.split("gradients")[-1]  # the caller's array is shown by shape
