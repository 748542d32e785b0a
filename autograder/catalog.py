"""The public tests, as data: seeded inputs, the probe that runs them and the checks that score them.

``make_fixtures.py`` runs every case through the reference solution to get the
expected outputs and writes both into ``fixtures/``. The hidden tests
(``hidden/catalog.py``) are built with the same helpers on other data.

A test is ``{name, section, points, uses, description, cases}``; ``uses`` names the
solution blocks the test runs (as ``handout.py`` names them), a case is
``{probe, params, inputs, checks, note}`` and a check ``{label, outputs, weight}``:
a test earns ``points * (weight of the passed checks) / (total weight)``.
"""
import numpy as np

FORWARD_SHAPES = {  # the forward pass of each student primitive, to shape its upstream gradient
    "sub_backward": lambda a, b, **k: np.subtract(a, b),
    "mul_backward": lambda a, b, **k: np.multiply(a, b),
    "div_backward": lambda a, b, **k: np.divide(a, b),
    "matmul_backward": lambda a, b, **k: np.matmul(a, b),
    "outer_backward": lambda a, b, **k: np.outer(a, b),
    "log_backward": lambda a, **k: np.log(a),
    "exp_backward": lambda a, **k: np.exp(a),
    "sum_backward": lambda a, axis=None, keepdims=False: np.sum(a, axis=axis, keepdims=keepdims),
    "max_backward": lambda a, axis=None, keepdims=False, **k: np.max(a, axis=axis, keepdims=keepdims),
    "SoftmaxCrossEntropy_backward": lambda y, y_hat, **k: np.zeros(1, y_hat.dtype),
}


def test(name, points, uses, description, cases):
    """A test definition; its section is the part of ``name`` before the slash."""
    return {"name": name, "section": name.split("/")[0], "points": points, "uses": list(uses),
            "description": description, "cases": cases}


def check(label, outputs, weight=1.0):
    return {"label": label, "outputs": list(outputs), "weight": weight}


def case(probe, params, inputs, checks, note):
    return {"probe": probe, "params": params, "inputs": inputs, "checks": checks, "note": note}


def normal(seed, shape, dtype=np.float64, scale=1.0):
    return (np.random.default_rng(seed).standard_normal(shape) * scale).astype(dtype)


def away_from_zero(seed, shape, dtype=np.float64):
    """Values in +-[0.5, 2]: safe divisors."""
    rng = np.random.default_rng(seed)
    return (rng.uniform(0.5, 2.0, shape) * rng.choice([-1.0, 1.0], shape)).astype(dtype)


def positive(seed, shape, dtype=np.float64):
    return np.random.default_rng(seed).uniform(0.2, 3.0, shape).astype(dtype)


def one_hot(seed, rows, classes, dtype=np.float64):
    labels = np.random.default_rng(seed).integers(0, classes, rows)
    return np.eye(classes, dtype=dtype)[labels]


# --------------------------------------------------------------------- primitives
def primitive_case(name, inputs, note, seed, kwargs=None, array_kwargs=None, weights=None, grad_output=None):
    """A case calling ``name(grad_output, *inputs, **kwargs)``; one check per input gradient."""
    kwargs = kwargs or {}
    arrays = {f"in{i}": a for i, a in enumerate(inputs)}
    forward_kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in kwargs.items()}
    out = np.asarray(FORWARD_SHAPES[name](*inputs, **forward_kwargs))
    if grad_output is None:
        grad_output = normal(seed, out.shape, out.dtype if out.dtype.kind == "f" else np.float64)
    arrays["grad_output"] = grad_output
    for key, value in (array_kwargs or {}).items():
        arrays[key] = value
    weights = weights or [1.0] * len(inputs)
    checks = [check(f"gradient of input {i} {a.shape}", [f"grad{i}"], w)
              for i, (a, w) in enumerate(zip(inputs, weights)) if w]
    params = {"name": name, "n_inputs": len(inputs), "kwargs": kwargs,
              "array_kwargs": {k: k for k in (array_kwargs or {})}}
    return case("primitive", params, arrays, checks, note)


def describe_shapes(*arrays):
    return " and ".join(f"{a.shape} {a.dtype}" for a in arrays)


def binary_case(name, a, b, seed, note=None, weights=None):
    return primitive_case(name, [a, b], note or f"inputs {describe_shapes(a, b)}", seed, weights=weights)


def functional_tests():
    """The public tests of the student primitives in mytorch/nn/functional.py (4 points each)."""
    n = normal
    tests = [
        test("functional/sub_backward", 4, ["sub_backward"], "out = a - b, with broadcasting", [
            binary_case("sub_backward", n(1, (3, 4)), n(2, (3, 4)), 3),
            binary_case("sub_backward", n(4, (2, 3, 4)), n(5, (4,)), 6, "b broadcast from (4,) to (2, 3, 4)"),
        ]),
        test("functional/mul_backward", 4, ["mul_backward"], "out = a * b, with broadcasting", [
            binary_case("mul_backward", n(11, (3, 4)), n(12, (3, 4)), 13),
            binary_case("mul_backward", n(14, (3, 4)), n(15, (3, 1)), 16, "b broadcast from (3, 1) to (3, 4)"),
        ]),
        test("functional/div_backward", 4, ["div_backward"], "out = a / b, with broadcasting", [
            binary_case("div_backward", n(21, (3, 4)), away_from_zero(22, (3, 4)), 23),
            binary_case("div_backward", n(24, (2, 3)), away_from_zero(25, (1, 3)), 26,
                        "b broadcast from (1, 3) to (2, 3)"),
        ]),
        test("functional/matmul_backward", 4, ["matmul_backward"], "out = a @ b", [
            binary_case("matmul_backward", n(31, (3, 4)), n(32, (4, 5)), 33, "a (3, 4) @ b (4, 5)"),
            binary_case("matmul_backward", n(34, (2, 3, 4)), n(35, (4, 2)), 36,
                        "batched: a (2, 3, 4) @ b (4, 2), b shared by the batch"),
        ]),
        test("functional/outer_backward", 4, ["outer_backward"], "out = np.outer(a, b)", [
            binary_case("outer_backward", n(41, (3,)), n(42, (4,)), 43),
            binary_case("outer_backward", n(44, (5,)), n(45, (2,)), 46),
        ]),
        test("functional/log_backward", 4, ["log_backward"], "out = np.log(a)", [
            primitive_case("log_backward", [positive(51, (3, 4))], "a (3, 4), positive", 52),
            primitive_case("log_backward", [positive(53, (5,))], "a (5,), positive", 54),
        ]),
        test("functional/exp_backward", 4, ["exp_backward"], "out = np.exp(a)", [
            primitive_case("exp_backward", [n(61, (3, 4))], "a (3, 4), without out=", 62),
            primitive_case("exp_backward", [n(63, (2, 3))], "a (2, 3), with the forward output as out=", 64,
                           array_kwargs={"out": np.exp(n(63, (2, 3)))}),
        ]),
        test("functional/sum_backward", 4, ["sum_backward"], "out = np.sum(a, axis, keepdims)", [
            primitive_case("sum_backward", [n(71, (3, 4))], "axis=None (sum of everything)", 72),
            primitive_case("sum_backward", [n(73, (3, 4))], "axis=1", 74, kwargs={"axis": 1}),
            primitive_case("sum_backward", [n(75, (2, 3, 4))], "axis=(0, 2), keepdims=True", 76,
                           kwargs={"axis": [0, 2], "keepdims": True}),
        ]),
        test("functional/max_backward", 4, ["max_backward"], "out = np.max(a, axis, keepdims); ties share", [
            primitive_case("max_backward", [n(81, (3, 4))], "axis=None", 82),
            primitive_case("max_backward", [n(83, (3, 5))], "axis=1", 84, kwargs={"axis": 1}),
            primitive_case("max_backward", [np.array([[1.0, 3.0, 3.0], [2.0, 0.0, 2.0], [1.0, 1.0, 1.0]])],
                           "axis=1 with ties (equal maxima share the gradient equally)", 85, kwargs={"axis": 1}),
        ]),
        test("functional/SoftmaxCrossEntropy_backward", 4, ["SoftmaxCrossEntropy_backward"],
             "mean over the batch of -sum(y * log_softmax(y_hat)); gradients for y and y_hat", [
                 primitive_case("SoftmaxCrossEntropy_backward", [one_hot(91, 4, 5), n(92, (4, 5), scale=2.0)],
                                "batch of 4, 5 classes, grad_output 1", 93, weights=[1.0, 3.0],
                                grad_output=np.ones(1)),
                 primitive_case("SoftmaxCrossEntropy_backward", [one_hot(94, 3, 4), n(95, (3, 4), scale=2.0)],
                                "batch of 3, grad_output 2.5, log_softmax passed in", 96, weights=[1.0, 3.0],
                                grad_output=np.array([2.5]),
                                array_kwargs={"log_softmax": log_softmax(n(95, (3, 4), scale=2.0))}),
             ]),
    ]
    return tests


def log_softmax(x):
    shifted = x - x.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


# --------------------------------------------------------------------- the engine
def op(fn, inputs, out, update=None, **kwargs):
    """One recorded operation of a graph case (``update``: per input None or a target array's name)."""
    return {"fn": fn, "in": list(inputs), "out": out, "update": update or [None] * len(inputs), "kwargs": kwargs}


def graph_case(ops, arrays, note, checks, mode="backward", grads=(), targets=(), report=(), divergence=1):
    params = {"ops": ops, "mode": mode, "grads": list(grads), "targets": list(targets), "report": list(report),
              "divergence": divergence}
    return case("graph", params, arrays, checks, note)


CHAIN = [op("add", ["x", "y"], "a"), op("tanh", ["a"], "t"), op("pow", ["t"], "p", exponent=2),
         op("mean", ["p"], "m")]


def autograd_tests():
    """The public tests of Autograd.add_operation and Autograd.backward (4 points each).

    They record only the given primitives (add, tanh, pow, mean, identity, ...), so
    they do not depend on the student's primitives.
    """
    record = ["Autograd.add_operation"]
    both = ["Autograd.add_operation", "Autograd.backward"]
    x, y = normal(101, (3, 4)), normal(102, (4,))
    return [
        test("autograd/add_operation", 4, record, "add_operation records an Operation and makes buffer spots", [
            graph_case([op("add", ["x", "y"], "a", update=[None, "dy"]), op("tanh", ["a"], "t"),
                        op("pow", ["t"], "p", exponent=2), op("mean", ["p"], "m")],
                       {"x": x, "y": y, "dy": np.zeros(4)}, "add (y's gradient goes to the caller's dy), tanh, "
                       "pow, mean", [check("the tape", ["n_ops", "tape_problems"], 2.0),
                                     check("the buffer spots", ["in_buffer"], 2.0)],
                       mode="record", report=["x", "y", "a", "t", "p", "m", "dy"]),
        ]),
        test("autograd/backward_chain", 4, both, "backward walks the tape in reverse through a chain", [
            graph_case(CHAIN, {"x": x, "y": y}, "mean(tanh(x + y) ** 2) with y broadcast",
                       [check("gradients of the inputs x and y", ["grad/x", "grad/y"], 2.0),
                        check("gradients of the intermediates", ["grad/a", "grad/t", "grad/p"], 2.0)],
                       grads=["x", "y", "a", "t", "p"]),
        ]),
        test("autograd/fan_out", 4, both, "gradients of an array used several times accumulate", [
            graph_case([op("add", ["x", "x"], "a"), op("tanh", ["x"], "t"), op("add", ["a", "t"], "s"),
                        op("mean", ["s"], "m")], {"x": normal(103, (2, 3))}, "mean((x + x) + tanh(x))",
                       [check("gradient of x", ["grad/x"], 2.0)], grads=["x"]),
            graph_case([op("tanh", ["x"], "h"), op("add", ["h", "x"], "r"), op("pow", ["r"], "q", exponent=2),
                        op("mean", ["q"], "m")], {"x": normal(104, (3, 2))}, "skip connection: mean((tanh(x) + x) ** 2)",
                       [check("gradient of x", ["grad/x"], 2.0)], grads=["x"]),
        ]),
        test("autograd/gradients_to_update", 4, both, "caller-owned gradient arrays are incremented in place", [
            graph_case([op("add", ["x", "b"], "z", update=[None, "db"]), op("tanh", ["z"], "t"),
                        op("mean", ["t"], "m")], {"x": normal(105, (4, 3)), "b": normal(106, (3,)),
                                                  "db": normal(107, (3,))},
                       "db starts non-zero and must be added to", [check("db", ["target/db"], 2.0)],
                       targets=["db"]),
            graph_case([op("add", ["x", "b"], "z", update=[None, "db"]), op("add", ["z", "b"], "w", update=[None, "db"]),
                        op("mean", ["w"], "m")], {"x": normal(108, (2, 3)), "b": normal(109, (3,)),
                                                 "db": np.zeros(3)},
                       "b used by two operations, both adding to db", [check("db", ["target/db"], 2.0)],
                       targets=["db"]),
        ]),
        test("autograd/divergence", 4, both, "backward(divergence) seeds the last operation's gradient", [
            graph_case([op("tanh", ["x"], "t"), op("pow", ["t"], "p", exponent=3)],
                       {"x": normal(110, (3, 4)), "g": normal(111, (3, 4))}, "backward(g) with g of the output's shape",
                       [check("gradient of x", ["grad/x"], 2.0)], grads=["x"], divergence="g"),
            graph_case([op("tanh", ["x"], "t"), op("add", ["t", "x"], "s")], {"x": normal(112, (2, 5))},
                       "backward(2.5): a number is broadcast to the output's shape",
                       [check("gradient of x", ["grad/x"], 2.0)], grads=["x"], divergence=2.5),
        ]),
    ]


# --------------------------------------------------------------------- modules
def activation_case(name, x, seed, note, weights=(2.0, 1.0)):
    arrays = {"x": x, "grad_output": normal(seed, x.shape, x.dtype)}
    return case("module", {"kind": "activation", "module": name}, arrays,
                [check("forward output (and .state)", ["y", "state"], weights[0]),
                 check("gradient of x", ["dx"], weights[1])], note)


def activation_tests():
    x = normal(201, (4, 5), scale=3.0)
    x[0, 0] = 0.0
    return [test(f"activation/{name}", 3, [f"{name}.forward"], f"{name} forward, recorded for backward",
                 [activation_case(name, x, 202 + i, "x (4, 5), one entry exactly 0")])
            for i, name in enumerate(("Sigmoid", "Tanh", "ReLU"))]


def linear_case(seed, batch, n_in, n_out, checks, note, dtype=np.float64):
    arrays = {"x": normal(seed, (batch, n_in), dtype), "W": normal(seed + 1, (n_out, n_in), dtype),
              "b": normal(seed + 2, (n_out,), dtype), "grad_output": normal(seed + 3, (batch, n_out), dtype)}
    return case("module", {"kind": "linear", "module": "Linear"}, arrays, checks, note)


def linear_tests():
    return [
        test("linear/forward", 3, ["Linear.forward"], "y = x @ W.T + b", [
            linear_case(301, 4, 3, 5, [check("forward output y", ["y"])], "x (4, 3), W (5, 3), b (5,)"),
        ]),
        test("linear/backward", 5, ["Linear.forward", "matmul_backward"], "dx, and dW and db summed over the batch", [
            linear_case(311, 6, 4, 2, [check("gradient of x", ["dx"], 2.0), check("dW", ["dW"], 2.0),
                                       check("db", ["db"], 1.0)], "x (6, 4), W (2, 4), b (2,)"),
        ]),
    ]


def loss_case(name, y, y_hat, note):
    return case("module", {"kind": "loss", "module": name}, {"y": y, "y_hat": y_hat},
                [check("loss value (returned and .loss_val)", ["loss", "loss_val"], 2.0),
                 check("gradient of y_hat", ["dy_hat"], 2.0)], note)


def loss_tests():
    return [
        test("loss/MSELoss", 4, ["MSELoss.forward", "sub_backward", "mul_backward"], "mean((y_hat - y) ** 2)", [
            loss_case("MSELoss", one_hot(401, 4, 3), normal(402, (4, 3)), "batch of 4, 3 classes"),
        ]),
        test("loss/SoftmaxCrossEntropy", 4, ["SoftmaxCrossEntropy.forward", "SoftmaxCrossEntropy_backward"],
             "mean over the batch of -sum(y * log_softmax(y_hat))", [
                 loss_case("SoftmaxCrossEntropy", one_hot(411, 5, 4), normal(412, (5, 4), scale=3.0),
                           "batch of 5, 4 classes"),
             ]),
    ]


# --------------------------------------------------------------------- the MLP
def mlp_params(sizes, activations, criterion="SoftmaxCrossEntropy", lr=0.1, momentum=0.0, engine="grader", **more):
    params = {"input_size": sizes[0], "output_size": sizes[-1], "hiddens": list(sizes[1:-1]),
              "activations": list(activations), "criterion": criterion, "lr": lr, "momentum": momentum,
              "engine": engine}
    params.update(more)
    return params


def mlp_weights(seed, sizes, extra=(), dtype=np.float64):
    """W{i}, b{i} for every layer, plus the per-layer arrays named in ``extra`` (dW, momentum_b, ...).

    Names ending in W get the layer's weight shape, the others its bias shape.
    """
    arrays = {}
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        for k, name in enumerate(("W", "b") + tuple(extra)):
            shape = (n_out, n_in) if name.endswith("W") else (n_out,)
            arrays[f"{name}{i}"] = normal(seed + 10 * i + k, shape, dtype, scale=0.5)
    return arrays


def layer_outputs(sizes, attributes):
    return [f"{a}{i}" for i in range(len(sizes) - 1) for a in attributes]


def training_data(seed, sizes, n_train, n_val, epochs, dtype=np.float64):
    rng = np.random.default_rng(seed)
    return {"train_x": rng.standard_normal((n_train, sizes[0])).astype(dtype),
            "train_labels": rng.integers(0, sizes[-1], n_train),
            "val_x": rng.standard_normal((n_val, sizes[0])).astype(dtype),
            "val_labels": rng.integers(0, sizes[-1], n_val),
            "orders": np.array([rng.permutation(n_train) for _ in range(epochs)])}


MLP_STEP_USES = ["MLP.zero_grads", "MLP.forward", "MLP.total_loss", "MLP.step", "Linear.forward",
                 "matmul_backward"]


def mlp_tests():
    sizes = (6, 5, 4, 3)
    acts = ["ReLU", "Tanh", "Identity"]
    small = (6, 5, 3)
    return [
        test("mlp/forward", 3, ["MLP.forward", "Linear.forward", "ReLU.forward", "Tanh.forward"],
             "forward through every layer and activation", [
                 case("mlp", mlp_params(sizes, acts, mode="forward"),
                      dict(mlp_weights(501, sizes), x=normal(502, (4, 6))),
                      [check("output (returned and mlp.output)", ["output", "mlp.output"], 1.0)],
                      "6-5-4-3 with ReLU, Tanh, Identity, batch of 4"),
             ]),
        test("mlp/zero_grads", 2, ["MLP.zero_grads"], "zero_grads empties the tape and zeroes dW, db", [
            case("mlp", mlp_params(small, ["ReLU", "Identity"], mode="zero_grads"),
                 mlp_weights(511, small, extra=("dW", "db")),
                 [check("tape emptied, dW and db zero", ["tape_length"] + layer_outputs(small, ("dW", "db")))],
                 "6-5-3, dW and db start non-zero"),
        ]),
        test("mlp/step", 3, ["MLP.step"], "SGD with momentum: v = momentum * v - lr * grad; W += v", [
            case("mlp", mlp_params(small, ["ReLU", "Identity"], lr=0.1, momentum=0.9, mode="step", steps=2),
                 mlp_weights(521, small, extra=("dW", "db", "momentum_W", "momentum_b")),
                 [check("W and b", layer_outputs(small, ("W", "b")), 2.0),
                  check("momentum_W and momentum_b", layer_outputs(small, ("momentum_W", "momentum_b")), 1.0)],
                 "two steps, lr 0.1, momentum 0.9, non-zero starting momentum"),
        ]),
        test("mlp/total_loss", 2, ["MLP.total_loss", "SoftmaxCrossEntropy.forward"],
             "the criterion's batch mean times the batch size", [
                 case("mlp", mlp_params(small, ["ReLU", "Identity"], mode="total_loss"),
                      dict(mlp_weights(531, small), output=normal(532, (4, 3), scale=2.0), labels=one_hot(533, 4, 3)),
                      [check("total loss", ["total_loss"])], "batch of 4, 3 classes"),
             ]),
        test("mlp/train_step", 3, MLP_STEP_USES + ["Sigmoid.forward", "SoftmaxCrossEntropy.forward",
                                                   "SoftmaxCrossEntropy_backward"],
             "one training step: zero_grads, forward, total_loss, backward, step", [
                 case("mlp", mlp_params(small, ["Sigmoid", "Identity"], lr=0.1, momentum=0.5, mode="train_step"),
                      dict(mlp_weights(541, small), x=normal(542, (8, 6)), labels=one_hot(543, 8, 3)),
                      [check("total loss", ["total_loss"], 1.0),
                       check("W and b after the step", layer_outputs(small, ("W", "b")), 2.0)],
                      "6-5-3 with Sigmoid, batch of 8, lr 0.1, momentum 0.5"),
             ]),
        test("mlp/training_stats", 2, MLP_STEP_USES + [
            "get_training_stats", "Autograd.add_operation", "Autograd.backward", "ReLU.forward",
            "SoftmaxCrossEntropy.forward", "SoftmaxCrossEntropy_backward"],
             "get_training_stats on your own Autograd engine", [
                 case("mlp", mlp_params((4, 6, 3), ["ReLU", "Identity"], lr=0.05, momentum=0.9, engine="student",
                                        mode="training_stats", epochs=2, batch_size=4),
                      dict(mlp_weights(551, (4, 6, 3)), **training_data(552, (4, 6, 3), 12, 6, 2)),
                      [check("learning curves", ["train_loss", "train_error", "val_loss", "val_error"])],
                      "4-6-3, 12 training and 6 validation examples, batches of 4, 2 epochs"),
             ]),
    ]


def public_tests():
    """All public tests, in report order; their points add up to 100."""
    return autograd_tests() + functional_tests() + activation_tests() + linear_tests() + loss_tests() + mlp_tests()
