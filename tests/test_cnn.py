"""The CNN pack: primitives and modules against finite differences and hand-computed values,
argument errors and the CNN model (the PyTorch oracle is tests/test_cnn_torch_oracle.py; the
runner, hw/cnn_runner.py, is tested in tests/test_hw_runners.py)."""
import re

import numpy as np
import pytest

from cnn_cases import FORWARDS, MODULE_CASES, PRIMITIVE_CASES
from helpers import scaled_tol
from hw import trainer
from hw.cnn import CNN, default_cnn
from hw.dataset import load_dataset
from mytorch import Autograd, gradcheck, nn
from mytorch.nn import functional_cnn as F
from mytorch.nn.functional import add_backward
from test_functional import test_primitive_matches_finite_differences as check_against_finite_differences

DTYPES = [np.float64, np.float32]
DTYPE_IDS = ["float64", "float32"]


# --------------------------------------------------------------------------- primitives
@pytest.mark.parametrize("case", PRIMITIVE_CASES, ids=repr)
def test_forward_matches_the_loop_reference(case):
    """mytorch's forward function equals the case's loop-by-loop NumPy reference."""
    inputs = case.inputs(np.float64)
    got = FORWARDS[case.primitive](*inputs, **case.kwargs)
    expected = case.forward(*inputs)
    assert got.shape == expected.shape and got.dtype == expected.dtype
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("case", PRIMITIVE_CASES, ids=repr)
def test_primitive_matches_finite_differences(case, dtype):
    """One gradient per input, of its shape and dtype, inputs untouched, values as central differences
    (the check of tests/test_functional.py, run on this pack's table)."""
    check_against_finite_differences(case, dtype)


def test_resampling_by_hand():
    """Zero insertion and every-k-th selection on small arrays, and their gradients."""
    x = np.array([[[1.0, 2.0, 3.0]]])
    np.testing.assert_array_equal(F.upsampling1d(x, 2), [[[1, 0, 2, 0, 3]]])
    np.testing.assert_array_equal(F.upsampling1d_backward(np.array([[[1.0, 2, 3, 4, 5]]]), x, factor=2)[0],
                                  [[[1, 3, 5]]])
    y = np.arange(7.0).reshape(1, 1, 7)
    np.testing.assert_array_equal(F.downsampling1d(y, 3), [[[0, 3, 6]]])
    np.testing.assert_array_equal(F.downsampling1d_backward(np.array([[[1.0, 2, 3]]]), y, factor=3)[0],
                                  [[[1, 0, 0, 2, 0, 0, 3]]])
    z = np.arange(4.0).reshape(1, 1, 2, 2)
    np.testing.assert_array_equal(F.upsampling2d(z, 2)[0, 0], [[0, 0, 1], [0, 0, 0], [2, 0, 3]])
    np.testing.assert_array_equal(F.downsampling2d(F.upsampling2d(z, 3), 3), z)


def test_maxpool_tie_sends_the_gradient_to_the_first_maximum():
    """Tied maxima: the first in row-major window order gets all of the window's gradient."""
    x = np.array([[[[0.0, 0.0, 5.0, 1.0],
                    [0.0, 0.0, 2.0, 5.0],
                    [3.0, 7.0, 4.0, 4.0],
                    [7.0, 1.0, 4.0, 4.0]]]])
    g = np.array([[[[1.0, 2.0], [3.0, 4.0]]]])
    np.testing.assert_array_equal(F.maxpool2d(x, 2, 2), [[[[0, 5], [7, 4]]]])
    expected = np.array([[[[1.0, 0, 2, 0],
                           [0, 0, 0, 0],
                           [0, 3, 4, 0],
                           [0, 0, 0, 0]]]])
    for options in ({}, {"out": F.maxpool2d(x, 2, 2)}):
        np.testing.assert_array_equal(F.maxpool2d_backward(g, x, kernel_size=2, stride=2, **options)[0], expected)


def test_maxpool_overlapping_windows_add_up():
    """An entry that is the maximum of several overlapping windows gets the sum of their gradients."""
    x = np.zeros((1, 1, 3, 3))
    x[0, 0, 1, 1] = 1.0
    g = np.array([[[[1.0, 2.0], [3.0, 4.0]]]])
    grad = F.maxpool2d_backward(g, x, kernel_size=2, stride=1)[0]
    expected = np.zeros((1, 1, 3, 3))
    expected[0, 0, 1, 1] = 10.0
    np.testing.assert_array_equal(grad, expected)


def test_meanpool_skipped_rows_get_no_gradient():
    """Rows and columns no window covers (size 5, kernel 2, stride 2) get a zero gradient."""
    x = np.ones((1, 1, 5, 5))
    grad = F.meanpool2d_backward(np.ones((1, 1, 2, 2)), x, kernel_size=2, stride=2)[0]
    np.testing.assert_array_equal(grad[0, 0, :4, :4], np.full((4, 4), 0.25))
    np.testing.assert_array_equal(grad[0, 0, 4], 0)
    np.testing.assert_array_equal(grad[0, 0, :, 4], 0)


def test_col2im_is_the_adjoint_of_windows():
    """<windows(x), w> == <x, col2im(w)> for overlapping, strided windows."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 3, 7, 6))
    view = F.windows(x, (3, 2), stride=2)
    w = rng.standard_normal(view.shape)
    np.testing.assert_allclose(np.sum(view * w), np.sum(x * F.col2im(w, x.shape, stride=2)), rtol=1e-12)


BAD_CALLS = [
    (lambda: F.conv2d_stride1(np.zeros((2, 3, 5, 5)), np.zeros((4, 2, 3, 3)), np.zeros(4)), ValueError,
     ["conv2d_stride1", "C_in = 3", "(4, 2, 3, 3)"]),
    (lambda: F.conv2d_stride1(np.zeros((2, 3, 5)), np.zeros((4, 3, 3, 3)), np.zeros(4)), ValueError,
     ["conv2d_stride1", "(N, C, H, W)", "(2, 3, 5)"]),
    (lambda: F.conv1d_stride1(np.zeros((2, 3, 5)), np.zeros((4, 3, 6)), np.zeros(4)), ValueError,
     ["conv1d_stride1", "kernel (6,)", "(5,)"]),
    (lambda: F.conv1d_stride1(np.zeros((2, 3, 5)), np.zeros((4, 3, 2)), np.zeros(3)), ValueError,
     ["conv1d_stride1", "b must have shape (4,)", "(3,)"]),
    (lambda: F.downsampling2d(np.zeros((1, 1, 4, 4)), 0), ValueError, ["downsampling2d", "factor", "0"]),
    (lambda: F.upsampling1d(np.zeros((1, 1, 4)), 1.5), ValueError, ["upsampling1d", "factor", "1.5"]),
    (lambda: F.maxpool2d(np.zeros((1, 1, 3, 3)), 4, 4), ValueError, ["maxpool2d", "window (4, 4)", "(3, 3)"]),
    (lambda: F.meanpool2d(np.zeros((1, 1, 3, 3)), 2, 0), ValueError, ["meanpool2d", "stride", "0"]),
    (lambda: F.pad(np.zeros((1, 1, 3)), -1), ValueError, ["pad", "padding", "-1"]),
    (lambda: nn.Conv2d(1, 2, 3), TypeError, ["Conv2d", "autograd_engine is required"]),
    (lambda: nn.Conv2d(1, 2, 3, Autograd()), ValueError, ["Conv2d", "stride", "autograd_engine=..."]),
    (lambda: nn.Conv1d(1, 0, 3, autograd_engine=Autograd()), ValueError, ["Conv1d", "out_channels", "0"]),
    (lambda: nn.Conv1d(1, 2, 3, padding=-1, autograd_engine=Autograd()), ValueError, ["padding", ">= 0"]),
    (lambda: nn.MaxPool2d(0, autograd_engine=Autograd()), ValueError, ["MaxPool2d", "kernel_size"]),
    (lambda: nn.MeanPool2d(2, 2, None), TypeError, ["MeanPool2d", "autograd_engine is required"]),
    (lambda: nn.Upsample2d(2, None), TypeError, ["Upsample2d", "autograd_engine"]),
    (lambda: nn.Flatten("engine"), TypeError, ["Flatten", "str"]),
    (lambda: nn.Conv2d(3, 2, 3, autograd_engine=Autograd())(np.zeros((2, 1, 5, 5))), ValueError,
     ["Conv2d(3, 2, kernel_size=3", "(N, 3, H, W)", "(2, 1, 5, 5)"]),
    (lambda: nn.Conv1d(1, 2, 5, padding=1, autograd_engine=Autograd())(np.zeros((2, 1, 2))), ValueError,
     ["Conv1d(1, 2", "(2,)", "smaller than the kernel (5)"]),
    (lambda: nn.MaxPool2d(2, autograd_engine=Autograd())(np.zeros((2, 3, 4))), ValueError,
     ["MaxPool2d(kernel_size=2, stride=2).forward", "(N, C, H, W)", "(2, 3, 4)"]),
    (lambda: nn.Downsample1d(2, Autograd())(np.zeros((2, 3, 4, 4))), ValueError,
     ["Downsample1d(factor=2)", "(N, C, W)"]),
]


@pytest.mark.parametrize("call, error, fragments", BAD_CALLS,
                         ids=[f"{i}-{fragments[0]}" for i, (_, _, fragments) in enumerate(BAD_CALLS)])
def test_bad_arguments_are_named(call, error, fragments):
    """Each mistake raises the documented exception type, naming the operation, the argument and the shapes."""
    with pytest.raises(error) as info:
        call()
    for fragment in fragments:
        assert fragment in str(info.value)


# --------------------------------------------------------------------------- modules
def params_of(module):
    """The module's (parameter, gradient) pairs; none for modules without parameters."""
    return module.parameters() if hasattr(module, "parameters") else []


@pytest.mark.parametrize("case", MODULE_CASES, ids=repr)
def test_module_matches_finite_differences(case):
    """The input's and every parameter's gradient (float64) against central differences."""
    engine = Autograd()
    module = case.make(engine, np.random.default_rng(0), np.float64)
    assert gradcheck(module.forward, case.input(np.float64), engine=engine, params=params_of(module))


@pytest.mark.parametrize("case", MODULE_CASES, ids=repr)
def test_module_float32_stays_float32(case):
    """float32 parameters and input give float32 output and gradients, close to the float64 ones."""
    results = {}
    for dtype in DTYPES:
        engine = Autograd()
        module = case.make(engine, np.random.default_rng(0), dtype)
        x = case.input(dtype)
        out = module(x)
        engine.backward(np.random.default_rng(1).standard_normal(out.shape).astype(dtype))
        results[dtype] = [out, engine.gradient_buffer.get_param(x)] + [grad for _, grad in params_of(module)]
    for got, expected in zip(results[np.float32], results[np.float64]):
        assert got.dtype == np.float32 and got.shape == expected.shape
        np.testing.assert_allclose(got, expected, **scaled_tol(expected, dict(rtol=1e-5, atol=1e-5)))


@pytest.mark.parametrize("cls, fan_in, shape", [(nn.Conv1d, 3 * 4, (5, 3, 4)), (nn.Conv2d, 3 * 16, (5, 3, 4, 4))])
def test_conv_initialisation(cls, fan_in, shape):
    """W (out, in, K...) and b (out,) ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in)); zeros elsewhere; reproducible."""
    make = lambda seed: cls(3, 5, 4, autograd_engine=Autograd(), rng=np.random.default_rng(seed))  # noqa: E731
    layer = make(0)
    bound = 1 / np.sqrt(fan_in)
    assert layer.W.shape == shape and layer.b.shape == (5,)
    assert np.all(np.abs(layer.W) <= bound) and np.all(np.abs(layer.b) <= bound)
    assert layer.W.std() > bound / 4
    for name in ("dW", "db", "momentum_W", "momentum_b"):
        array, like = getattr(layer, name), (layer.W if name.endswith("W") else layer.b)
        assert array.shape == like.shape and array.dtype == np.float64
        np.testing.assert_array_equal(array, 0)
    (W, dW), (b, db) = layer.parameters()
    assert W is layer.W and dW is layer.dW and b is layer.b and db is layer.db
    np.testing.assert_array_equal(make(0).W, layer.W)
    assert not np.array_equal(make(1).W, layer.W)


@pytest.mark.parametrize("stride, padding, names", [
    (1, 0, ["conv2d_stride1_backward"]),
    (2, 0, ["conv2d_stride1_backward", "downsampling2d_backward"]),
    (2, 1, ["pad_backward", "conv2d_stride1_backward", "downsampling2d_backward"]),
])
def test_conv_records_padding_convolution_downsampling(stride, padding, names):
    """A strided, padded convolution is a pad, a stride-1 convolution and a downsampling on the tape."""
    engine = Autograd()
    conv = nn.Conv2d(2, 3, 3, stride=stride, padding=padding, autograd_engine=engine)
    out = conv(np.zeros((1, 2, 7, 7)))
    assert [op.name for op in engine.operation_list] == names
    side = (7 + 2 * padding - 3) // stride + 1
    assert out.shape == (1, 3, side, side)
    assert engine.operation_list[-1].output is out


def test_conv_used_twice_on_one_tape_accumulates():
    """One input through the same layer twice, outputs added: dx, dW and db are twice a single use's."""
    rng = np.random.default_rng(4)
    x, g = rng.standard_normal((2, 2, 6)), rng.standard_normal((2, 3, 4))
    grads = []
    for uses in (1, 2):
        engine = Autograd()
        conv = nn.Conv1d(2, 3, 3, autograd_engine=engine, rng=np.random.default_rng(5))
        outs = [conv(x) for _ in range(uses)]
        if uses == 2:
            total = outs[0] + outs[1]
            engine.add_operation(outs, total, [None, None], add_backward)
        engine.backward(g)
        grads.append((engine.gradient_buffer.get_param(x).copy(), conv.dW.copy(), conv.db.copy()))
    for once, twice in zip(*grads):
        np.testing.assert_allclose(twice, 2 * once, rtol=1e-12)


# --------------------------------------------------------------------------- the CNN model
def small_cnn(engine, dtype=np.float64, seed=0):
    """Images (1, 9, 9): Conv2d(1, 2, 3) ReLU MaxPool2d(2) -> (2, 3, 3), Flatten, Linear(18, 4)."""
    return CNN((1, 9, 9), 4, [2], [3], nn.SoftmaxCrossEntropy(engine), lr=0.1, autograd_engine=engine,
               momentum=0.5, rng=np.random.default_rng(seed), dtype=dtype)


def test_default_cnn_layers_and_shapes():
    """The default network: two conv blocks, Flatten, Linear(512, 10); logits (N, 10); 14 operations."""
    engine = Autograd()
    cnn = default_cnn(engine, rng=np.random.default_rng(0))
    assert [type(layer).__name__ for layer in cnn.layers] == [
        "Conv2d", "ReLU", "MaxPool2d", "Conv2d", "ReLU", "MaxPool2d", "Flatten", "Linear"]
    assert [layer.W.shape for layer in cnn.parameter_layers] == [(16, 1, 5, 5), (32, 16, 5, 5), (10, 512)]
    assert all(layer.W.dtype == np.float32 for layer in cnn.parameter_layers)
    out = cnn(np.zeros((3, 1, 28, 28), dtype=np.float32))
    assert out.shape == (3, 10) and out.dtype == np.float32 and cnn.output is out
    assert len(engine.operation_list) == 2 * 3 + 1 + 2


def test_cnn_gradients_match_finite_differences():
    """Every parameter's gradient through the whole network (float64) against central differences."""
    engine = Autograd()
    cnn = small_cnn(engine)
    x = np.random.default_rng(1).standard_normal((3, 1, 9, 9))
    params = [pair for layer in cnn.parameter_layers for pair in layer.parameters()]
    assert gradcheck(cnn.forward, x, engine=engine, params=params)


def test_cnn_step_zero_grads_and_loss():
    """total_loss is the batch sum; step is SGD with momentum; zero_grads empties the tape and the gradients."""
    engine = Autograd()
    cnn = small_cnn(engine)
    rng = np.random.default_rng(2)
    x, labels = rng.standard_normal((5, 1, 9, 9)), np.eye(4)[rng.integers(0, 4, 5)]
    cnn.forward(x)
    loss = cnn.total_loss(labels)
    assert loss == pytest.approx(float(cnn.criterion.loss_val[0]) * 5)
    cnn.backward()
    before = [(layer.W.copy(), layer.dW.copy()) for layer in cnn.parameter_layers]
    cnn.step()
    cnn.step()  # the same gradient twice: v1 = -lr g, v2 = momentum v1 - lr g
    for layer, (W, dW) in zip(cnn.parameter_layers, before):
        np.testing.assert_allclose(layer.W, W - cnn.lr * dW - (cnn.momentum * cnn.lr * dW + cnn.lr * dW),
                                   rtol=1e-12, atol=1e-15)
    cnn.zero_grads()
    assert engine.operation_list == [] and len(engine.gradient_buffer) == 0
    for layer in cnn.parameter_layers:
        np.testing.assert_array_equal(layer.dW, 0)
        np.testing.assert_array_equal(layer.db, 0)
    assert cnn.error(labels) == int(np.sum(cnn.output.argmax(1) != labels.argmax(1)))


@pytest.mark.parametrize("args, message", [
    (dict(channels=[2, 3], kernel_sizes=[3]), "2 channel counts need as many kernel sizes"),
    (dict(channels=[2, 3], kernel_sizes=[5, 5]), "too small"),
    (dict(lr=0), "lr must be positive"),
    (dict(momentum=1.0), "momentum must be in [0, 1)"),
])
def test_cnn_rejects_bad_arguments(args, message):
    engine = Autograd()
    kwargs = dict(input_shape=(1, 12, 12), output_size=3, channels=[2], kernel_sizes=[3],
                  criterion=nn.SoftmaxCrossEntropy(engine), lr=0.1, autograd_engine=engine)
    kwargs.update(args)
    with pytest.raises(ValueError, match=re.escape(message)):
        CNN(**kwargs)


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_cnn_learns_on_a_digit_sample(dtype):
    """Three epochs of the trainers' loop on 600 bundled digits: the training loss falls every epoch,
    validation error drops below 30%."""
    data = load_dataset(trainer.DEFAULT_DATA)
    rng = np.random.default_rng(0)
    engine = Autograd()
    cnn = CNN((1, 28, 28), 10, [4], [5], nn.SoftmaxCrossEntropy(engine), lr=0.05, autograd_engine=engine,
              momentum=0.9, rng=rng, dtype=dtype)
    split = lambda x, labels, n: (x[:n].reshape(n, 1, 28, 28).astype(dtype), labels[:n])  # noqa: E731
    losses, _, _, val_errors = trainer.train_model(cnn, split(*data.train, 600), split(*data.val, 200), 3, 32, rng)
    assert losses[0] > losses[1] > losses[2]
    assert val_errors[-1] < 0.3
    assert engine.operation_list == []  # evaluation recorded nothing
