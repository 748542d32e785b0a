"""The hidden tests: the public tests' probes on other data.

Other seeds and shapes, batches larger than one, broadcasting on both sides,
float32 inputs (whose gradients must stay float32), extreme values and logits,
fan-out through views. ``make_fixtures.py`` writes their expected values to
``hidden/hidden.json`` and ``hidden/hidden.npz``.
"""
import numpy as np

from autograder.catalog import (
    CHAIN, CURVES, F32, MLP_STEP_USES, activation_case, away_from_zero, binary_case, case, check, extremes,
    graph_case, linear_case, loss_case, mlp_params, mlp_weights, normal, one_hot, op, positive, primitive_case,
    softmax_case, test, training_data,
)


def functional_tests():
    n = normal
    return [
        test("functional/sub_backward", 2, ["sub_backward"], "out = a - b: float32, both sides broadcast", [
            binary_case("sub_backward", n(1001, (2, 3), F32), n(1002, (2, 1), F32), 1003),
            binary_case("sub_backward", n(1004, (4, 1, 3)), n(1005, (2, 3)), 1006, "(4, 1, 3) - (2, 3)"),
        ]),
        test("functional/mul_backward", 2, ["mul_backward"], "out = a * b: float32, both sides broadcast", [
            binary_case("mul_backward", n(1011, (3, 2), F32), n(1012, (3, 2), F32), 1013),
            binary_case("mul_backward", n(1014, (2, 1, 4)), n(1015, (3, 1)), 1016, "(2, 1, 4) * (3, 1)"),
        ]),
        test("functional/div_backward", 2, ["div_backward"], "out = a / b: float32, both sides broadcast", [
            binary_case("div_backward", n(1021, (2, 4), F32), away_from_zero(1022, (2, 4), F32), 1023),
            binary_case("div_backward", n(1024, (3, 1)), away_from_zero(1025, (1, 4)), 1026, "(3, 1) / (1, 4)"),
        ]),
        test("functional/matmul_backward", 2, ["matmul_backward"], "out = a @ b: float32, vectors", [
            binary_case("matmul_backward", n(1031, (5, 2), F32), n(1032, (2, 3), F32), 1033),
            binary_case("matmul_backward", n(1034, (4,)), n(1035, (4, 3)), 1036, "vector (4,) @ (4, 3)"),
            binary_case("matmul_backward", n(1037, (3, 4)), n(1038, (4,)), 1039, "(3, 4) @ vector (4,)"),
        ]),
        test("functional/outer_backward", 2, ["outer_backward"], "np.outer: flattened inputs, float32", [
            binary_case("outer_backward", n(1041, (2, 3)), n(1042, (4,)), 1043, "a (2, 3) is flattened"),
            binary_case("outer_backward", n(1044, (3,), F32), n(1045, (2,), F32), 1046),
        ]),
        test("functional/log_backward", 2, ["log_backward"], "np.log: float32, 3-D", [
            primitive_case("log_backward", [positive(1051, (4, 2), F32)], "a (4, 2) float32", 1052),
            primitive_case("log_backward", [positive(1053, (2, 3, 2))], "a (2, 3, 2)", 1054),
        ]),
        test("functional/exp_backward", 2, ["exp_backward"], "np.exp: float32 with out=, 3-D", [
            primitive_case("exp_backward", [n(1061, (3, 2), F32)], "a (3, 2) float32 with out=", 1062,
                           array_kwargs={"out": np.exp(n(1061, (3, 2), F32))}),
            primitive_case("exp_backward", [n(1063, (2, 2, 3))], "a (2, 2, 3)", 1064),
        ]),
        test("functional/sum_backward", 2, ["sum_backward"], "np.sum: float32, negative and tuple axes", [
            primitive_case("sum_backward", [n(1071, (4, 3), F32)], "axis=0, float32", 1072, kwargs={"axis": 0}),
            primitive_case("sum_backward", [n(1073, (2, 3, 4))], "axis=-1, keepdims=True", 1074,
                           kwargs={"axis": -1, "keepdims": True}),
            primitive_case("sum_backward", [n(1075, (2, 3, 4))], "axis=(1, 2)", 1076, kwargs={"axis": [1, 2]}),
        ]),
        test("functional/max_backward", 2, ["max_backward"], "np.max: float32, all ties, keepdims", [
            primitive_case("max_backward", [n(1081, (4, 3), F32)], "axis=0, float32", 1082, kwargs={"axis": 0}),
            primitive_case("max_backward", [np.full((2, 3), 1.5)], "axis=None, every entry equal", 1083),
            primitive_case("max_backward", [n(1084, (2, 3, 2))], "axis=1, keepdims=True", 1085,
                           kwargs={"axis": 1, "keepdims": True}),
        ]),
        test("functional/SoftmaxCrossEntropy_backward", 2, ["SoftmaxCrossEntropy_backward"],
             "extreme logits, soft targets, float32", [
                 softmax_case(one_hot(1091, 3, 4), n(1092, (3, 4), scale=1e4), "logits of size 1e4", 1093, np.ones(1)),
                 softmax_case(np.array([[0.2, 0.5, 0.3], [0.0, 0.1, 0.9]]), n(1094, (2, 3)),
                              "probability targets (not one-hot)", 1095, np.array([0.7])),
                 softmax_case(one_hot(1096, 4, 3, F32), n(1097, (4, 3), F32, scale=3.0), "float32", 1098,
                              np.ones(1, F32)),
             ]),
    ]


def autograd_tests():
    both = ["Autograd.add_operation", "Autograd.backward"]
    return [
        test("autograd/views_and_fan_out", 2, both, "two views of one array are two nodes; deep fan-out", [
            graph_case([op("identity", ["x"], "v1"), op("identity", ["x"], "v2"), op("tanh", ["v1"], "t"),
                        op("add", ["t", "v2"], "s"), op("add", ["s", "x"], "r"), op("mean", ["r"], "m")],
                       {"x": normal(1101, (3, 3))}, "mean(tanh(view1) + view2 + x)",
                       [check("gradients of x and its views", ["grad/x", "grad/v1", "grad/v2"], 2.0)],
                       grads=["x", "v1", "v2"]),
        ]),
        test("autograd/float32_chain", 2, both, "a float32 chain keeps float32 gradients", [
            graph_case(CHAIN, {"x": normal(1102, (5, 2), F32), "y": normal(1103, (1, 2), F32)},
                       "mean(tanh(x + y) ** 2), float32, y (1, 2)",
                       [check("gradients of x and y", ["grad/x", "grad/y"], 2.0)], grads=["x", "y"]),
        ]),
    ]


def activation_tests():
    x = extremes(big=800.0)
    return [test(f"activation/{name}", 1, [f"{name}.forward"], f"{name}: float32 and extreme inputs", [
        activation_case(name, normal(1201 + i, (3, 4), F32, 4.0), 1210 + i, "x (3, 4) float32"),
        activation_case(name, x, 1220 + i, "x with values of +-800, +-30 and near 0"),
    ]) for i, name in enumerate(("Sigmoid", "Tanh", "ReLU"))]


def module_tests():
    return [
        test("linear/batch_one_and_float32", 2, ["Linear.forward", "matmul_backward"], "batch of 1, float32", [
            linear_case(1301, 1, 3, 2, [check("y", ["y"]), check("dx, dW, db", ["dx", "dW", "db"])], "batch of 1"),
            linear_case(1311, 7, 2, 3, [check("y", ["y"]), check("dx, dW, db", ["dx", "dW", "db"])],
                        "batch of 7, float32", dtype=F32),
        ]),
        test("loss/MSELoss", 2, ["MSELoss.forward", "sub_backward", "mul_backward"], "batch of 1, float32", [
            loss_case("MSELoss", one_hot(1401, 1, 5), normal(1402, (1, 5)), "batch of 1"),
            loss_case("MSELoss", one_hot(1403, 6, 2, F32), normal(1404, (6, 2), F32), "float32"),
        ]),
        test("loss/SoftmaxCrossEntropy", 2, ["SoftmaxCrossEntropy.forward", "SoftmaxCrossEntropy_backward"],
             "stable for logits of 1e4; float32", [
                 loss_case("SoftmaxCrossEntropy", one_hot(1411, 3, 4), normal(1412, (3, 4), scale=1e4),
                           "logits of size 1e4"),
                 loss_case("SoftmaxCrossEntropy", one_hot(1413, 5, 3, F32), normal(1414, (5, 3), F32, 3.0),
                           "float32"),
             ]),
    ]


def hidden_mlp_tests():
    deep = (5, 7, 6, 4)
    return [
        test("mlp/train_step", 2, MLP_STEP_USES + ["Tanh.forward", "ReLU.forward", "SoftmaxCrossEntropy.forward",
                                                   "SoftmaxCrossEntropy_backward"],
             "a deeper network, momentum", [
                 case("mlp", mlp_params(deep, ["Tanh", "ReLU", "Identity"], lr=0.05, momentum=0.9,
                                        mode="train_step"),
                      dict(mlp_weights(1501, deep), x=normal(1502, (10, 5)), labels=one_hot(1503, 10, 4)),
                      [check("total loss", ["total_loss"]), check("W and b", [f"{a}{i}" for i in range(3)
                                                                               for a in "Wb"], 2.0)],
                      "5-7-6-4 with Tanh, ReLU, Identity, batch of 10"),
             ]),
        test("mlp/training_stats", 2, MLP_STEP_USES + [
            "get_training_stats", "Autograd.add_operation", "Autograd.backward", "Sigmoid.forward",
            "MSELoss.forward", "sub_backward", "mul_backward"], "MSE loss, uneven last batch", [
                case("mlp", mlp_params((3, 4, 2), ["Sigmoid", "Identity"], criterion="MSELoss", lr=0.1,
                                       momentum=0.5, engine="student", mode="training_stats", epochs=3,
                                       batch_size=4),
                     dict(mlp_weights(1511, (3, 4, 2)), **training_data(1512, (3, 4, 2), 10, 5, 3)),
                     [check("learning curves", CURVES)],
                     "3-4-2, 10 examples in batches of 4, 3 epochs"),
            ]),
    ]


def hidden_tests():
    """All hidden tests; names may repeat public ones (the report marks them hidden)."""
    return autograd_tests() + functional_tests() + activation_tests() + module_tests() + hidden_mlp_tests()
