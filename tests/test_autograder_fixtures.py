"""The autograder's expected values: up to date, and right by PyTorch and by finite differences.

The fixtures come from the reference solution (autograder/make_fixtures.py); here
every stored expectation, public and hidden, is recomputed independently: with
PyTorch autograd (skipped without torch) and, for the float64 primitives and the
engine graphs, with central finite differences in plain NumPy.
"""
import numpy as np
import pytest

from autograder import grading, make_fixtures, probes
from helpers import numeric_gradient

TESTS = grading.select_tests(hidden=True)
CASES = [(f"{'hidden ' if t.hidden else ''}{t.name} case {i + 1}", c) for t in TESTS for i, c in enumerate(t.cases)]


def cases_of(probe):
    return [pytest.param(c, id=name) for name, c in CASES if c["probe"] == probe]


def close(got, expected, what):
    expected = np.asarray(expected)
    tol = dict(rtol=1e-9, atol=1e-12) if expected.dtype != np.float32 else dict(rtol=1e-4, atol=1e-5)
    scale = max(1.0, float(np.max(np.abs(expected)))) if expected.size else 1.0
    np.testing.assert_allclose(np.asarray(got, dtype=np.float64), expected.astype(np.float64),
                               rtol=tol["rtol"], atol=tol["atol"] * scale, err_msg=what)


def test_fixtures_are_up_to_date_with_the_reference():
    assert make_fixtures.main(["--check"]) == 0


def test_public_points_add_up_to_100_and_every_test_names_its_blocks():
    public = [t for t in TESTS if not t.hidden]
    assert sum(t.points for t in public) == 100
    assert all(t.uses and t.cases for t in TESTS)
    assert {t.section for t in TESTS} == set(grading.SECTIONS)


# --------------------------------------------------------------------- PyTorch
def need_torch():
    """torch, imported on first use (the finite-difference tests run without it)."""
    return pytest.importorskip("torch")


def torch_forward(T, name, inputs, kwargs):
    """The forward pass of a primitive in PyTorch."""
    axis = kwargs.get("axis")
    dims = tuple(axis) if isinstance(axis, list) else axis
    keep = kwargs.get("keepdims", False)
    if name == "outer_backward":
        return T.outer(inputs[0].flatten(), inputs[1].flatten())
    if name == "sum_backward":
        return inputs[0].sum() if dims is None else inputs[0].sum(dim=dims, keepdim=keep)
    if name == "max_backward":
        return T.amax(inputs[0], dim=tuple(range(inputs[0].dim())) if dims is None else dims, keepdim=keep)
    if name == "SoftmaxCrossEntropy_backward":
        return xent(T, inputs[0], inputs[1]).reshape(1)
    ops = {"sub_backward": T.sub, "mul_backward": T.mul, "div_backward": T.div, "matmul_backward": T.matmul,
           "log_backward": T.log, "exp_backward": T.exp}
    return ops[name](*inputs)


def xent(T, y, y_hat):
    return -(y * T.log_softmax(y_hat, dim=1)).sum(dim=1).mean()


def leaves(T, arrays, names):
    return [T.tensor(arrays[n], requires_grad=True) for n in names]


@pytest.mark.parametrize("case", cases_of("primitive"))
def test_primitive_expectations_match_torch(case):
    T = need_torch()
    params = case["params"]
    inputs = leaves(T, case["inputs"], [f"in{i}" for i in range(params["n_inputs"])])
    out = torch_forward(T, params["name"], inputs, params["kwargs"])
    out.backward(T.tensor(case["inputs"]["grad_output"]).reshape(out.shape))
    for i, tensor in enumerate(inputs):
        expected = case["expected"][f"grad{i}"]
        assert expected.dtype == case["inputs"][f"in{i}"].dtype
        close(tensor.grad.numpy(), expected, f"grad{i}")


@pytest.mark.parametrize("case", cases_of("module"))
def test_module_expectations_match_torch(case):
    T = need_torch()
    kind, name, arrays, expected = case["params"]["kind"], case["params"]["module"], case["inputs"], case["expected"]
    if kind == "activation":
        (x,) = leaves(T, arrays, ["x"])
        y = {"Sigmoid": T.sigmoid, "Tanh": T.tanh, "ReLU": T.relu}[name](x)
        y.backward(T.tensor(arrays["grad_output"]))
        close(y.detach().numpy(), expected["y"], "y")
        close(x.grad.numpy(), expected["dx"], "dx")
    elif kind == "linear":
        x, W, b = leaves(T, arrays, ["x", "W", "b"])
        y = x @ W.T + b
        y.backward(T.tensor(arrays["grad_output"]))
        for key, value in (("y", y.detach()), ("dx", x.grad), ("dW", W.grad), ("db", b.grad)):
            if key in expected:
                close(value.numpy(), expected[key], key)
    else:
        y, y_hat = leaves(T, arrays, ["y", "y_hat"])
        loss = ((y_hat - y) ** 2).mean() if name == "MSELoss" else xent(T, y, y_hat)
        loss.backward()
        close(loss.detach().numpy().reshape(1), expected["loss"], "loss")
        close(y_hat.grad.numpy(), expected["dy_hat"], "dy_hat")


TORCH_GRAPH = {
    "identity": lambda T, a: a.view_as(a), "add": lambda T, a, b: a + b, "tanh": lambda T, a: T.tanh(a),
    "pow": lambda T, a, exponent: a ** exponent, "mean": lambda T, a: a.mean(),
}


@pytest.mark.parametrize("case", [c for c in cases_of("graph") if c.values[0]["params"]["mode"] == "backward"])
def test_engine_graph_expectations_match_torch(case):
    T = need_torch()
    params = case["params"]
    values = {name: T.tensor(a, requires_grad=True) for name, a in case["inputs"].items()}
    for op in params["ops"]:
        values[op["out"]] = TORCH_GRAPH[op["fn"]](T, *[values[n] for n in op["in"]], **op["kwargs"])
        values[op["out"]].retain_grad()
    final = values[params["ops"][-1]["out"]]
    divergence = params["divergence"]
    seed = T.tensor(case["inputs"][divergence]) if isinstance(divergence, str) else T.full_like(final, divergence)
    final.backward(seed)
    for name in params["grads"]:
        close(values[name].grad.numpy(), case["expected"][f"grad/{name}"], name)
    for name in params["targets"]:
        updated = [op["in"][i] for op in params["ops"] for i, t in enumerate(op["update"]) if t == name][0]
        close(case["inputs"][name] + values[updated].grad.numpy(), case["expected"][f"target/{name}"], name)


def torch_mlp(T, params, arrays):
    layers = [(T.tensor(arrays[f"W{i}"], requires_grad=True), T.tensor(arrays[f"b{i}"], requires_grad=True))
              for i in range(len(params["hiddens"]) + 1)]
    acts = {"ReLU": T.relu, "Tanh": T.tanh, "Sigmoid": T.sigmoid, "Identity": lambda v: v}

    def forward(x):
        out = T.tensor(x)
        for (W, b), act in zip(layers, params["activations"]):
            out = acts[act](out @ W.T + b)
        return out

    def loss(y, out):
        y = T.tensor(y)
        return ((out - y) ** 2).mean() if params["criterion"] == "MSELoss" else xent(T, y, out)

    return layers, forward, loss


def sgd(T, layers, velocity, params):
    with T.no_grad():
        for (W, b), v in zip(layers, velocity):
            for p, vp in ((W, v[0]), (b, v[1])):
                vp.mul_(params["momentum"]).sub_(params["lr"] * p.grad)
                p.add_(vp)
                p.grad = None


@pytest.mark.parametrize("case", cases_of("mlp"))
def test_mlp_expectations_match_torch(case):
    T = need_torch()
    params, arrays, expected = case["params"], case["inputs"], case["expected"]
    layers, forward, loss = torch_mlp(T, params, arrays)
    velocity = [[T.zeros_like(W), T.zeros_like(b)] for W, b in layers]
    mode = params["mode"]
    if mode == "forward":
        close(forward(arrays["x"]).detach().numpy(), expected["output"], "output")
    elif mode == "zero_grads":
        assert expected["tape_length"] == 0 and all(not expected[k].any() for k in expected if k[:2] in ("dW", "db"))
    elif mode == "step":
        for i in range(len(layers)):
            W, b = arrays[f"W{i}"].copy(), arrays[f"b{i}"].copy()
            vW, vb = arrays[f"momentum_W{i}"].copy(), arrays[f"momentum_b{i}"].copy()
            for _ in range(params["steps"]):
                vW = params["momentum"] * vW - params["lr"] * arrays[f"dW{i}"]
                vb = params["momentum"] * vb - params["lr"] * arrays[f"db{i}"]
                W, b = W + vW, b + vb
            for key, value in ((f"W{i}", W), (f"b{i}", b), (f"momentum_W{i}", vW), (f"momentum_b{i}", vb)):
                close(value, expected[key], key)
    elif mode == "total_loss":
        total = loss(arrays["labels"], T.tensor(arrays["output"])).item() * len(arrays["labels"])
        close(total, expected["total_loss"], "total_loss")
    elif mode == "train_step":
        value = loss(arrays["labels"], forward(arrays["x"]))
        value.backward()
        sgd(T, layers, velocity, params)
        close(value.item() * len(arrays["x"]), expected["total_loss"], "total_loss")
        for i, (W, b) in enumerate(layers):
            close(W.detach().numpy(), expected[f"W{i}"], f"W{i}")
            close(b.detach().numpy(), expected[f"b{i}"], f"b{i}")
    else:
        curves = {"train_loss": [], "train_error": [], "val_loss": [], "val_error": []}
        classes = params["output_size"]
        for order in arrays["orders"]:
            loss_sum, errors = 0.0, 0
            for start in range(0, len(order), params["batch_size"]):
                rows = order[start:start + params["batch_size"]]
                labels = np.eye(classes)[arrays["train_labels"][rows]]
                out = forward(arrays["train_x"][rows])
                value = loss(labels, out)
                value.backward()
                sgd(T, layers, velocity, params)
                loss_sum += value.item() * len(rows)
                errors += int((out.argmax(1).numpy() != arrays["train_labels"][rows]).sum())
            with T.no_grad():
                out = forward(arrays["val_x"])
                val_loss = loss(np.eye(classes)[arrays["val_labels"]], out).item()
                val_errors = int((out.argmax(1).numpy() != arrays["val_labels"]).sum())
            n, m = len(order), len(arrays["val_x"])
            for key, value in (("train_loss", loss_sum / n), ("train_error", errors / n), ("val_loss", val_loss),
                               ("val_error", val_errors / m)):
                curves[key].append(value)
        for key, values in curves.items():
            close(values, expected[key], key)


# --------------------------------------------------------------------- finite differences
def fd_forward(name):
    """The forward pass of primitive ``name`` (probes.FORWARD, the table the grader uses too)."""
    return probes.FORWARD[name[:-len("_backward")]]


@pytest.mark.parametrize("case", [c for c in cases_of("primitive") if c.values[0]["params"]["name"] != "max_backward"
                                  and c.values[0]["inputs"]["in0"].dtype == np.float64
                                  and np.abs(c.values[0]["inputs"].get("in1", 0)).max() < 100])
def test_primitive_expectations_match_finite_differences(case):
    params = case["params"]
    inputs = [case["inputs"][f"in{i}"].copy() for i in range(params["n_inputs"])]
    kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in params["kwargs"].items()}
    g = case["inputs"]["grad_output"]
    for i, array in enumerate(inputs):
        numeric = numeric_gradient(lambda: float(np.sum(fd_forward(params["name"])(*inputs, **kwargs) * g)), array)
        np.testing.assert_allclose(case["expected"][f"grad{i}"], numeric, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("case", [c for c in cases_of("graph") if c.values[0]["params"]["mode"] == "backward"])
def test_engine_graph_expectations_match_finite_differences(case):
    params = case["params"]
    leaves_ = {name: np.array(a, dtype=np.float64) for name, a in case["inputs"].items()}
    divergence = params["divergence"]

    def scalar():
        values = dict(leaves_)
        for op in params["ops"]:
            kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in op["kwargs"].items()}
            values[op["out"]] = probes.FORWARD[op["fn"]](*[values[n] for n in op["in"]], **kwargs)
        seed = leaves_[divergence] if isinstance(divergence, str) else divergence
        return float(np.sum(values[params["ops"][-1]["out"]] * seed))

    tol = dict(rtol=1e-5, atol=1e-6) if case["inputs"]["x"].dtype == np.float64 else dict(rtol=1e-3, atol=1e-3)
    for name in [n for n in params["grads"] if n in case["inputs"]]:
        np.testing.assert_allclose(case["expected"][f"grad/{name}"], numeric_gradient(scalar, leaves_[name]), **tol)


@pytest.mark.parametrize("case", [c for c in cases_of("graph") if c.values[0]["params"]["mode"] == "record"])
def test_recording_expectations_follow_the_spec(case):
    # A spot is made for every input whose gradients_to_update entry is None, and for nothing else.
    ops = case["params"]["ops"]
    tracked = {name for op in ops for name, target in zip(op["in"], op["update"]) if target is None}
    expected = case["expected"]
    assert expected["n_ops"] == len(ops) and expected["tape_problems"] == []
    assert expected["in_buffer"] == {name: name in tracked for name in case["params"]["report"]}
