"""The CNN homework's hidden tests: the public tests' probes on other data of the same kinds.

Other seeds and shapes for every primitive and layer, float32, batches of 1, ties in max
pooling, kernels as wide as the input, strides and padding; the model on other sizes.
"""
from autograder.catalog import F32, case, check, normal, primitive_case, test
from autograder.catalog_cnn import (
    CNN_FORWARD_USES, CNN_STEP_USES, CONV, CONV1D_USES, CONV2D_USES, RESAMPLING_USES, cnn_arrays, cnn_params,
    conv_case, layer_case, layer_names, pool_case, resampling_case, ties, train_case,
)

SMALL = ((1, 9, 7), (2,), (2,), 3)  # input (C, H, W), channels, kernels, classes
DEEP = ((1, 14, 14), (2, 3), (3, 3), 5)


def functional_tests():
    n = normal
    return [
        test("functional/conv1d_stride1_backward", 2, CONV, "other sizes, float32, a kernel as wide as the input", [
            conv_case(3001, (3, 2, 9), (2, 2, 4), "x (3, 2, 9), W (2, 2, 4)"),
            conv_case(3005, (1, 3, 5), (2, 3, 5), "float32, batch of 1, the kernel as wide as the input", F32),
        ]),
        test("functional/conv2d_stride1_backward", 3, CONV, "other sizes, float32, one channel", [
            conv_case(3011, (3, 2, 5, 6), (2, 2, 2, 4), "x (3, 2, 5, 6), W (2, 2, 2, 4)"),
            conv_case(3015, (1, 1, 3, 3), (1, 1, 3, 3), "batch of 1, one channel, the kernel as large as the input"),
            conv_case(3019, (2, 3, 4, 5), (2, 3, 3, 3), "float32", F32),
        ]),
        test("functional/downsampling1d_backward", 1, ["downsampling1d_backward"], "other widths and factors", [
            resampling_case("downsampling1d_backward", 3021, (3, 2, 10), 3, "factor 3, width 10"),
            resampling_case("downsampling1d_backward", 3023, (1, 1, 5), 2, "float32, batch of 1", F32),
        ]),
        test("functional/downsampling2d_backward", 1, ["downsampling2d_backward"], "other sizes and factors", [
            resampling_case("downsampling2d_backward", 3031, (2, 2, 5, 8), 2, "factor 2 on 5x8"),
            resampling_case("downsampling2d_backward", 3033, (1, 1, 6, 6), 3, "float32, batch of 1, factor 3", F32),
        ]),
        test("functional/upsampling1d_backward", 1, ["upsampling1d_backward"], "other widths and factors", [
            resampling_case("upsampling1d_backward", 3041, (2, 2, 3), 4, "factor 4"),
            resampling_case("upsampling1d_backward", 3043, (1, 1, 6), 2, "float32, batch of 1", F32),
        ]),
        test("functional/upsampling2d_backward", 1, ["upsampling2d_backward"], "other sizes and factors", [
            resampling_case("upsampling2d_backward", 3051, (2, 1, 3, 2), 3, "factor 3 on 3x2"),
            resampling_case("upsampling2d_backward", 3053, (1, 2, 2, 2), 2, "float32, batch of 1", F32),
        ]),
        test("functional/flatten_backward", 1, ["flatten_backward"], "other shapes, float32", [
            primitive_case("flatten_backward", [n(3061, (4, 2, 3))], "x (4, 2, 3)", 3062, names=("x",),
                           module="functional_cnn"),
            primitive_case("flatten_backward", [n(3063, (1, 3, 2, 2), F32)], "float32, batch of 1", 3064,
                           names=("x",), module="functional_cnn"),
        ]),
        test("functional/maxpool2d_backward", 2, ["maxpool2d_backward"], "ties, overlaps, float32", [
            pool_case("maxpool2d_backward", ties(3071, (2, 3, 6, 5)), 3, 1, "ties, overlapping 3x3 windows", 3072),
            pool_case("maxpool2d_backward", n(3073, (1, 2, 7, 7), F32), 2, 3, "float32, batch of 1, windows 3 apart",
                      3074, out=True),
        ]),
        test("functional/meanpool2d_backward", 2, ["meanpool2d_backward"], "overlaps, float32", [
            pool_case("meanpool2d_backward", n(3081, (2, 3, 7, 5)), 3, 2, "3x3 windows, stride 2", 3082),
            pool_case("meanpool2d_backward", n(3083, (1, 1, 6, 6), F32), 6, 1, "float32, one window as large as "
                      "the input", 3084),
        ]),
    ]


def layer_tests():
    return [
        test("layers/Conv1d", 3, CONV1D_USES, "other sizes, strides and padding", [
            layer_case("Conv1d", {"stride": 2, "padding": 1}, 3201, (3, 2, 10), "stride 2, padding 1", (3, 2, 4)),
            layer_case("Conv1d", {"stride": 3}, 3205, (1, 1, 6), "float32, batch of 1, stride 3, the kernel as wide "
                       "as the input", (2, 1, 6), F32),
        ]),
        test("layers/Conv2d", 3, CONV2D_USES, "other sizes, strides and padding", [
            layer_case("Conv2d", {"stride": 2, "padding": 2}, 3211, (2, 2, 5, 6), "stride 2, padding 2", (3, 2, 3, 3)),
            layer_case("Conv2d", {"stride": 3}, 3215, (1, 1, 7, 7), "float32, batch of 1, one channel, stride 3",
                       (1, 1, 3, 3), F32),
        ]),
        test("layers/MaxPool2d", 1, ["_Pool2d.forward", "maxpool2d_backward"], "ties, float32", [
            case("layer", {"module": "MaxPool2d", "options": {"kernel_size": 2, "stride": 1}},
                 {"x": ties(3221, (2, 2, 4, 5)), "grad_output": normal(3222, (2, 2, 3, 4))},
                 [check("forward output y", ["y"], 2.0), check("gradient of x", ["dx"], 2.0)],
                 "ties, overlapping 2x2 windows"),
            layer_case("MaxPool2d", {"kernel_size": 3}, 3225, (1, 3, 7, 6), "float32, batch of 1", dtype=F32),
        ]),
        test("layers/MeanPool2d", 1, ["_Pool2d.forward", "meanpool2d_backward"], "other sizes, float32", [
            layer_case("MeanPool2d", {"kernel_size": 2, "stride": 1}, 3231, (2, 2, 5, 4), "stride 1"),
            layer_case("MeanPool2d", {"kernel_size": 3}, 3235, (1, 1, 7, 7), "float32, batch of 1", dtype=F32),
        ]),
        test("layers/Flatten", 1, ["Flatten.forward", "flatten_backward"], "other shapes", [
            layer_case("Flatten", {}, 3241, (3, 2, 2, 5), "x (3, 2, 2, 5)"),
            layer_case("Flatten", {}, 3245, (1, 4, 2), "float32, batch of 1", dtype=F32),
        ]),
        test("layers/resampling", 1, RESAMPLING_USES, "other factors", [
            layer_case("Downsample2d", {"factor": 2}, 3251, (2, 3, 5, 6), "Downsample2d(2)"),
            layer_case("Upsample1d", {"factor": 2}, 3255, (3, 1, 6), "Upsample1d(2)"),
        ]),
    ]


def cnn_tests():
    forward = cnn_params(*DEEP, mode="forward")
    return [
        test("cnn/forward", 2, CNN_FORWARD_USES, "other sizes", [
            case("model", forward, cnn_arrays(3301, forward, batch=4),
                 [check("output (returned and cnn.output)", ["output", "cnn.output"])],
                 "two blocks on (1, 14, 14) images, batch of 4"),
        ]),
        test("cnn/step", 1, ["CNN.step"], "one step, momentum", [
            case("model", cnn_params(*SMALL, mode="step", lr=0.05, momentum=0.5, steps=1),
                 cnn_arrays(3311, cnn_params(*SMALL, mode="step"), extra=("dW", "db", "momentum_W", "momentum_b")),
                 [check("W and b", layer_names(2, ("W", "b")), 2.0),
                  check("momentum_W and momentum_b", layer_names(2, ("momentum_W", "momentum_b")), 1.0)],
                 "one step, lr 0.05, momentum 0.5"),
        ]),
        test("cnn/train_step", 2, CNN_STEP_USES, "other sizes, float32, batch of 1", [
            train_case(SMALL, 3321, "float32, batch of 1, momentum 0.9", dtype=F32, batch=1, momentum=0.9),
            train_case(DEEP, 3325, "two blocks, batch of 3", lr=0.05),
        ]),
        test("cnn/train_step_on_your_engine", 1, CNN_STEP_USES + ["Autograd.add_operation", "Autograd.backward"],
             "on your engine, other sizes", [
                 train_case(SMALL, 3331, "one block, batch of 3", momentum=0.9, engine="student"),
             ]),
    ]


def hidden_tests():
    """All hidden tests of the CNN homework; names may repeat public ones (the report marks them hidden)."""
    return functional_tests() + layer_tests() + cnn_tests()
