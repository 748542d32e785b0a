"""The CNN homework's public tests, as data (the machinery is ``catalog.py``'s).

The primitives of ``mytorch/nn/functional_cnn.py`` on odd sizes (a kernel as wide as the
input, strides above 1, one and several channels, a batch of 1, float32, ties in max
pooling); the layers recorded on the grader's tape (``GraderTape``), so their tests do
not depend on the student's engine; the CNN model of ``hw/cnn.py``. The hidden tests
(``hidden/catalog_cnn.py``) use the same helpers on other data.
"""
import numpy as np

from autograder.catalog import F32, case, check, normal, primitive_case, test
from autograder.probes import FORWARD


def ties(seed, shape, dtype=np.float64):
    """Small whole numbers: pooling windows often hold their maximum twice."""
    return np.random.default_rng(seed).integers(0, 3, shape).astype(dtype)


# --------------------------------------------------------------------- primitives
def conv_case(seed, x_shape, w_shape, note, dtype=np.float64):
    name = f"conv{len(x_shape) - 2}d_stride1_backward"
    x, W, b = normal(seed, x_shape, dtype), normal(seed + 1, w_shape, dtype), normal(seed + 2, w_shape[:1], dtype)
    return primitive_case(name, [x, W, b], note, seed + 3, weights=[2.0, 2.0, 1.0], names=("x", "W", "b"),
                          module="functional_cnn")


def resampling_case(name, seed, shape, factor, note, dtype=np.float64):
    return primitive_case(name, [normal(seed, shape, dtype)], note, seed + 1, kwargs={"factor": factor},
                          names=("x",), module="functional_cnn")


def pool_case(name, x, kernel_size, stride, note, seed, out=False):
    """A pooling case; ``out``: pass the forward output as ``out=``, as the module does."""
    kwargs = {"kernel_size": kernel_size, "stride": stride}
    more = {"out": FORWARD[name[:-len("_backward")]](x, **kwargs)} if out else None
    return primitive_case(name, [x], note, seed, kwargs=kwargs, array_kwargs=more, names=("x",),
                          module="functional_cnn")


CONV = ["conv_stride1_backward"]


def functional_tests():
    """The public tests of the CNN primitives (50 points)."""
    n = normal
    return [
        test("functional/conv1d_stride1_backward", 8, CONV, "out[n, o, i] = b[o] + sum W[o, c, k] x[n, c, i + k]", [
            conv_case(2001, (2, 3, 7), (4, 3, 3), "x (2, 3, 7), W (4, 3, 3)"),
            conv_case(2005, (2, 2, 5), (3, 2, 5), "the kernel as wide as the input: x (2, 2, 5), W (3, 2, 5)"),
            conv_case(2009, (1, 1, 6), (1, 1, 2), "batch of 1, one channel in and out: x (1, 1, 6), W (1, 1, 2)"),
            conv_case(2013, (3, 2, 6), (2, 2, 3), "float32: x (3, 2, 6), W (2, 2, 3)", F32),
        ]),
        test("functional/conv2d_stride1_backward", 10, CONV, "the same over two spatial axes (H, W)", [
            conv_case(2021, (2, 3, 6, 5), (4, 3, 3, 2), "x (2, 3, 6, 5), a 3x2 kernel W (4, 3, 3, 2)"),
            conv_case(2025, (1, 2, 4, 4), (3, 2, 4, 4), "batch of 1, the kernel as large as the input: W (3, 2, 4, 4)"),
            conv_case(2029, (2, 1, 5, 5), (1, 1, 1, 1), "one channel in and out, a 1x1 kernel"),
            conv_case(2033, (2, 2, 5, 4), (3, 2, 2, 3), "float32: x (2, 2, 5, 4), W (3, 2, 2, 3)", F32),
        ]),
        test("functional/downsampling1d_backward", 4, ["downsampling1d_backward"], "out = x[..., ::factor]", [
            resampling_case("downsampling1d_backward", 2041, (2, 3, 7), 2, "factor 2, width 7 (not a multiple)"),
            resampling_case("downsampling1d_backward", 2043, (1, 2, 9), 3, "batch of 1, factor 3, width 9"),
            resampling_case("downsampling1d_backward", 2045, (2, 1, 4), 1, "factor 1"),
            resampling_case("downsampling1d_backward", 2047, (2, 2, 8), 2, "float32, factor 2", F32),
        ]),
        test("functional/downsampling2d_backward", 4, ["downsampling2d_backward"], "out = x[..., ::factor, ::factor]", [
            resampling_case("downsampling2d_backward", 2051, (2, 3, 7, 6), 2, "factor 2 on 7x6"),
            resampling_case("downsampling2d_backward", 2053, (1, 1, 9, 5), 3, "batch of 1, factor 3 on 9x5"),
            resampling_case("downsampling2d_backward", 2055, (2, 2, 4, 6), 2, "float32, factor 2 on 4x6", F32),
        ]),
        test("functional/upsampling1d_backward", 4, ["upsampling1d_backward"],
             "factor - 1 zeros inserted between neighbours", [
                 resampling_case("upsampling1d_backward", 2061, (2, 3, 4), 2, "factor 2, width 4"),
                 resampling_case("upsampling1d_backward", 2063, (1, 1, 5), 3, "batch of 1, one channel, factor 3"),
                 resampling_case("upsampling1d_backward", 2065, (2, 2, 3), 1, "factor 1"),
                 resampling_case("upsampling1d_backward", 2067, (3, 2, 4), 2, "float32, factor 2", F32),
             ]),
        test("functional/upsampling2d_backward", 4, ["upsampling2d_backward"],
             "factor - 1 zero rows and columns inserted between neighbours", [
                 resampling_case("upsampling2d_backward", 2071, (2, 2, 3, 4), 2, "factor 2 on 3x4"),
                 resampling_case("upsampling2d_backward", 2073, (1, 1, 2, 3), 3, "batch of 1, factor 3 on 2x3"),
                 resampling_case("upsampling2d_backward", 2075, (2, 3, 3, 3), 2, "float32, factor 2 on 3x3", F32),
             ]),
        test("functional/flatten_backward", 2, ["flatten_backward"], "out = x.reshape(N, -1)", [
            primitive_case("flatten_backward", [n(2081, (2, 3, 4, 5))], "x (2, 3, 4, 5)", 2082, names=("x",),
                           module="functional_cnn"),
            primitive_case("flatten_backward", [n(2083, (1, 2, 3))], "batch of 1, x (1, 2, 3)", 2084, names=("x",),
                           module="functional_cnn"),
            primitive_case("flatten_backward", [n(2085, (3, 2, 2, 2), F32)], "float32", 2086, names=("x",),
                           module="functional_cnn"),
        ]),
        test("functional/maxpool2d_backward", 8, ["maxpool2d_backward"],
             "each window's gradient to its largest entry (ties: the first, row by row, as PyTorch)", [
                 pool_case("maxpool2d_backward", n(2091, (2, 3, 6, 6)), 2, 2, "2x2 windows, stride 2, on 6x6", 2092),
                 pool_case("maxpool2d_backward", ties(2093, (2, 2, 5, 5)), 2, 1,
                           "ties (whole numbers 0-2), overlapping 2x2 windows, stride 1", 2094),
                 pool_case("maxpool2d_backward", n(2095, (1, 1, 7, 6)), 3, 2,
                           "batch of 1, 3x3 windows, stride 2, on 7x6, with out= (the forward output)", 2096, out=True),
                 pool_case("maxpool2d_backward", n(2097, (2, 2, 8, 7), F32), 2, 3,
                           "float32, 2x2 windows 3 apart (some entries in no window)", 2098),
                 pool_case("maxpool2d_backward", n(2099, (1, 2, 4, 4)), 4, 1, "one window as large as the input", 2100),
             ]),
        test("functional/meanpool2d_backward", 6, ["meanpool2d_backward"], "each window's entries get 1/k^2 of its "
             "gradient", [
                 pool_case("meanpool2d_backward", n(2111, (2, 3, 6, 6)), 2, 2, "2x2 windows, stride 2, on 6x6", 2112),
                 pool_case("meanpool2d_backward", n(2113, (2, 2, 5, 5)), 3, 1, "overlapping 3x3 windows, stride 1",
                           2114),
                 pool_case("meanpool2d_backward", n(2115, (1, 1, 7, 6), F32), 2, 3,
                           "batch of 1, float32, 2x2 windows 3 apart on 7x6", 2116),
                 pool_case("meanpool2d_backward", n(2117, (1, 2, 4, 4)), 4, 1, "one window as large as the input",
                           2118),
             ]),
    ]


# --------------------------------------------------------------------- layers
def layer_case(module, options, seed, x_shape, note, w_shape=None, dtype=np.float64):
    """A layer forward on the grader's tape, then backward: checks y, dx (and a convolution's dW, db)."""
    x = normal(seed, x_shape, dtype)
    arrays = {"x": x}
    checks = [check("forward output y", ["y"], 2.0), check("gradient of x", ["dx"], 2.0)]
    if w_shape:
        arrays.update(W=normal(seed + 1, w_shape, dtype, scale=0.5), b=normal(seed + 2, w_shape[:1], dtype))
        checks += [check("dW", ["dW"], 2.0), check("db", ["db"], 1.0)]
    forward = FORWARD_OF[module](arrays, options)
    arrays["grad_output"] = normal(seed + 3, forward.shape, dtype)
    return case("layer", {"module": module, "options": options}, arrays, checks, note)


def conv_forward(arrays, options):
    """The output of a padded, strided convolution (for the shape of grad_output)."""
    x, W, b = arrays["x"], arrays["W"], arrays["b"]
    padding, stride = options.get("padding", 0), options.get("stride", 1)
    padded = np.pad(x, [(0, 0), (0, 0)] + [(padding, padding)] * (x.ndim - 2))
    full = FORWARD[f"conv{x.ndim - 2}d_stride1"](padded, W, b)
    return full[(Ellipsis,) + (slice(None, None, stride),) * (x.ndim - 2)]


FORWARD_OF = {
    "Conv1d": conv_forward, "Conv2d": conv_forward,
    "MaxPool2d": lambda a, o: FORWARD["maxpool2d"](a["x"], o["kernel_size"], o.get("stride") or o["kernel_size"]),
    "MeanPool2d": lambda a, o: FORWARD["meanpool2d"](a["x"], o["kernel_size"], o.get("stride") or o["kernel_size"]),
    "Flatten": lambda a, o: FORWARD["flatten"](a["x"]),
    "Downsample1d": lambda a, o: FORWARD["downsampling1d"](a["x"], o["factor"]),
    "Downsample2d": lambda a, o: FORWARD["downsampling2d"](a["x"], o["factor"]),
    "Upsample1d": lambda a, o: FORWARD["upsampling1d"](a["x"], o["factor"]),
    "Upsample2d": lambda a, o: FORWARD["upsampling2d"](a["x"], o["factor"]),
}
CONV1D_USES = ["_ConvNd.forward", "conv_stride1_backward", "downsampling1d_backward"]
CONV2D_USES = ["_ConvNd.forward", "conv_stride1_backward", "downsampling2d_backward"]
RESAMPLING_USES = ["_Resample.forward", "downsampling1d_backward", "downsampling2d_backward", "upsampling1d_backward",
                   "upsampling2d_backward"]


def layer_tests():
    """The public tests of the layers, on the grader's tape (30 points)."""
    return [
        test("layers/Conv1d", 8, CONV1D_USES, "Conv1d(in, out, kernel_size, stride, padding): pad, a stride-1 "
             "convolution, downsampling", [
                 layer_case("Conv1d", {}, 2201, (2, 3, 8), "stride 1: x (2, 3, 8), W (4, 3, 3)", (4, 3, 3)),
                 layer_case("Conv1d", {"stride": 2}, 2205, (2, 2, 9), "stride 2: x (2, 2, 9), W (3, 2, 3)", (3, 2, 3)),
                 layer_case("Conv1d", {"stride": 3, "padding": 1}, 2209, (1, 1, 7),
                            "batch of 1, one channel, stride 3, padding 1: x (1, 1, 7), W (2, 1, 4)", (2, 1, 4)),
                 layer_case("Conv1d", {"stride": 2, "padding": 2}, 2213, (2, 2, 6),
                            "float32, stride 2, padding 2, the kernel as wide as the padded input", (2, 2, 10), F32),
             ]),
        test("layers/Conv2d", 10, CONV2D_USES, "Conv2d(in, out, kernel_size, stride, padding) on (N, C, H, W)", [
            layer_case("Conv2d", {}, 2221, (2, 2, 6, 5), "stride 1: x (2, 2, 6, 5), W (3, 2, 3, 3)", (3, 2, 3, 3)),
            layer_case("Conv2d", {"stride": 2, "padding": 1}, 2225, (2, 3, 7, 7), "stride 2, padding 1: x (2, 3, 7, 7)",
                       (4, 3, 3, 3)),
            layer_case("Conv2d", {"stride": 2}, 2229, (1, 1, 5, 5),
                       "batch of 1, one channel in and out, the kernel as large as the input", (1, 1, 5, 5)),
            layer_case("Conv2d", {"stride": 3, "padding": 2}, 2233, (2, 2, 6, 7),
                       "float32, stride 3, padding 2: x (2, 2, 6, 7), W (2, 2, 4, 4)", (2, 2, 4, 4), F32),
        ]),
        test("layers/MaxPool2d", 4, ["_Pool2d.forward", "maxpool2d_backward"], "MaxPool2d(kernel_size, stride)", [
            layer_case("MaxPool2d", {"kernel_size": 2}, 2241, (2, 3, 6, 6), "kernel 2 (stride 2 by default)"),
            case("layer", {"module": "MaxPool2d", "options": {"kernel_size": 3, "stride": 2}},
                 {"x": ties(2245, (1, 2, 7, 7)), "grad_output": normal(2246, (1, 2, 3, 3))},
                 [check("forward output y", ["y"], 2.0), check("gradient of x", ["dx"], 2.0)],
                 "batch of 1, ties (whole numbers 0-2), 3x3 windows, stride 2"),
            layer_case("MaxPool2d", {"kernel_size": 2}, 2247, (2, 2, 5, 4), "float32, stride 2 on 5x4 (the last row "
                       "in no window)", dtype=F32),
        ]),
        test("layers/MeanPool2d", 4, ["_Pool2d.forward", "meanpool2d_backward"], "MeanPool2d(kernel_size, stride)", [
            layer_case("MeanPool2d", {"kernel_size": 2}, 2251, (2, 3, 6, 6), "kernel 2 (stride 2 by default)"),
            layer_case("MeanPool2d", {"kernel_size": 3, "stride": 2}, 2255, (1, 2, 7, 7),
                       "batch of 1, 3x3 windows, stride 2"),
            layer_case("MeanPool2d", {"kernel_size": 2, "stride": 3}, 2259, (2, 1, 8, 7),
                       "float32, one channel, 2x2 windows 3 apart", dtype=F32),
        ]),
        test("layers/Flatten", 2, ["Flatten.forward", "flatten_backward"], "Flatten: (N, C, ...) -> (N, C * ...)", [
            layer_case("Flatten", {}, 2261, (2, 3, 4, 4), "x (2, 3, 4, 4)"),
            layer_case("Flatten", {}, 2265, (1, 2, 3), "batch of 1, x (1, 2, 3)"),
            layer_case("Flatten", {}, 2269, (3, 2, 2, 3), "float32", dtype=F32),
        ]),
        test("layers/resampling", 2, RESAMPLING_USES, "Downsample1d/2d and Upsample1d/2d(factor)", [
            layer_case("Downsample1d", {"factor": 2}, 2271, (2, 3, 7), "Downsample1d(2), width 7"),
            layer_case("Downsample2d", {"factor": 3}, 2275, (1, 2, 7, 6), "Downsample2d(3), batch of 1"),
            layer_case("Upsample1d", {"factor": 3}, 2279, (2, 1, 4), "Upsample1d(3)"),
            layer_case("Upsample2d", {"factor": 2}, 2283, (2, 2, 3, 4), "Upsample2d(2), float32", dtype=F32),
        ]),
    ]


# --------------------------------------------------------------------- the CNN model
def cnn_params(input_shape, channels, kernels, output, mode, lr=0.1, momentum=0.0, engine="grader", **more):
    params = {"model": "CNN", "input_shape": list(input_shape), "channels": list(channels),
              "kernel_sizes": list(kernels), "output_size": output, "lr": lr, "momentum": momentum,
              "engine": engine, "mode": mode}
    params.update(more)
    return params


def cnn_shapes(input_shape, channels, kernels, output):
    """The (W, b) shapes of each convolution (each followed by ReLU and 2x2 max pooling), then of the Linear."""
    shapes, size, c_in = [], input_shape[1:], input_shape[0]
    for c_out, k in zip(channels, kernels):
        shapes.append(((c_out, c_in, k, k), (c_out,)))
        size, c_in = tuple((n - k + 1) // 2 for n in size), c_out
    shapes.append(((output, c_in * int(np.prod(size))), (output,)))
    return shapes


def cnn_arrays(seed, params, extra=(), dtype=np.float64, batch=None):
    """W{i}, b{i} of every layer, the per-layer arrays named in ``extra`` (dW, momentum_b, ...), and with
    ``batch`` images x and a gradient for the output."""
    arrays = {}
    shapes = cnn_shapes(params["input_shape"], params["channels"], params["kernel_sizes"], params["output_size"])
    for i, (w_shape, b_shape) in enumerate(shapes):
        for k, name in enumerate(("W", "b") + tuple(extra)):
            arrays[f"{name}{i}"] = normal(seed + 10 * i + k, w_shape if name.endswith("W") else b_shape, dtype,
                                          scale=0.5)
    if batch:
        arrays["x"] = normal(seed + 1000, (batch,) + tuple(params["input_shape"]), dtype)
        arrays["grad_output"] = normal(seed + 1001, (batch, params["output_size"]), dtype)
    return arrays


def layer_names(count, attributes):
    return [f"{a}{i}" for i in range(count) for a in attributes]


CNN_FORWARD_USES = ["CNN.forward", "_ConvNd.forward", "ReLU.forward", "_Pool2d.forward", "Flatten.forward",
                    "Linear.forward"]
CNN_STEP_USES = CNN_FORWARD_USES + ["CNN.zero_grads", "CNN.step", "conv_stride1_backward", "maxpool2d_backward",
                                    "flatten_backward", "matmul_backward"]
ONE_BLOCK = ((1, 8, 8), (3,), (3,), 4)  # input (C, H, W), channels, kernels, classes
TWO_BLOCKS = ((2, 12, 10), (3, 4), (3, 2), 3)


def train_case(shape, seed, note, dtype=np.float64, batch=3, **more):
    """A training step of the CNN of ``shape`` (input, channels, kernels, classes) from a given output gradient."""
    params = cnn_params(*shape, mode="train_step", **more)
    return case("model", params, cnn_arrays(seed, params, dtype=dtype, batch=batch),
                [check("output", ["output"], 1.0),
                 check("W and b after the step", layer_names(len(shape[1]) + 1, ("W", "b")), 2.0)], note)


def cnn_tests():
    """The public tests of hw/cnn.py's CNN (20 points)."""
    one, two = cnn_params(*ONE_BLOCK, mode="forward"), cnn_params(*TWO_BLOCKS, mode="forward")
    forward = [check("output (returned and cnn.output)", ["output", "cnn.output"])]
    return [
        test("cnn/forward", 5, CNN_FORWARD_USES, "forward through every layer", [
            case("model", one, cnn_arrays(2301, one, batch=3), forward,
                 "input (1, 8, 8), Conv2d(1, 3, 3), ReLU, MaxPool2d(2), Flatten, Linear(27, 4); batch of 3"),
            case("model", two, cnn_arrays(2305, two, dtype=F32, batch=1), forward,
                 "float32, batch of 1, two convolution blocks on (2, 12, 10) images"),
        ]),
        test("cnn/zero_grads", 3, ["CNN.zero_grads"], "zero_grads empties the tape and zeroes every dW, db", [
            case("model", cnn_params(*TWO_BLOCKS, mode="zero_grads"),
                 cnn_arrays(2311, cnn_params(*TWO_BLOCKS, mode="zero_grads"), extra=("dW", "db")),
                 [check("tape emptied, dW and db zero", ["tape_length"] + layer_names(3, ("dW", "db")))],
                 "two convolution blocks and the Linear, dW and db start non-zero"),
        ]),
        test("cnn/step", 4, ["CNN.step"], "SGD with momentum on every layer: v = momentum * v - lr * grad; W += v", [
            case("model", cnn_params(*ONE_BLOCK, mode="step", lr=0.1, momentum=0.9, steps=2),
                 cnn_arrays(2321, cnn_params(*ONE_BLOCK, mode="step"), extra=("dW", "db", "momentum_W", "momentum_b")),
                 [check("W and b", layer_names(2, ("W", "b")), 2.0),
                  check("momentum_W and momentum_b", layer_names(2, ("momentum_W", "momentum_b")), 1.0)],
                 "two steps, lr 0.1, momentum 0.9, non-zero starting momentum"),
        ]),
        test("cnn/train_step", 5, CNN_STEP_USES, "zero_grads, forward, backward (from a given gradient of the "
             "output), step", [
                 train_case(ONE_BLOCK, 2331, "one block, batch of 3, lr 0.1, momentum 0.5", momentum=0.5),
                 train_case(TWO_BLOCKS, 2335, "float32, two blocks, batch of 1, lr 0.05, momentum 0.9", dtype=F32,
                       batch=1, lr=0.05, momentum=0.9),
             ]),
        test("cnn/train_step_on_your_engine", 3, CNN_STEP_USES + ["Autograd.add_operation", "Autograd.backward"],
             "the same training step on your own Autograd engine", [
                 train_case(TWO_BLOCKS, 2341, "two blocks, batch of 2, lr 0.1, momentum 0.9", batch=2, momentum=0.9,
                       engine="student"),
             ]),
    ]


def public_tests():
    """All public tests of the CNN homework, in report order; their points add up to 100."""
    return functional_tests() + layer_tests() + cnn_tests()
