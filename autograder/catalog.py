"""The public tests, as data: seeded inputs, the probe that runs them and the checks that score them.

``make_fixtures.py`` runs every case through the reference solution to get the
expected outputs and writes both into ``fixtures/``. The hidden tests
(``hidden/catalog.py``) are built with the same helpers on other data.

A ``CatalogTest`` holds ``Case``s; a case runs one probe (``probes.PROBES``) on seeded
inputs and scores named groups of its outputs, its ``Check``s: a test earns
``points * (weight of the passed checks) / (total weight)``. ``uses`` names the
solution blocks the test runs (as ``handout.py`` names them).

Every case also has *kinds*, derived from its data (``kinds_of``): what sort of
input it shows the function under test (float32, both sides broadcast, a
negative axis, logits of 1e4, ...). The hidden tests only use kinds some public
test shows, so a hidden test catches hard-coding, never a kind of input the
student had no way to try (``tests/test_grader_fairness.py`` checks it).
"""
from dataclasses import dataclass, field

import numpy as np

from autograder.probes import FORWARD, log_softmax


@dataclass(frozen=True)
class Check:
    """A named group of a case's outputs; the case earns ``weight`` when all of them match."""

    label: str
    outputs: tuple
    weight: float = 1.0


@dataclass
class Case:
    """One run of ``probe`` on ``inputs`` (arrays) with JSON ``params``; ``note`` describes it in feedback."""

    probe: str
    params: dict
    inputs: dict
    checks: list
    note: str

    @property
    def unit(self):
        """What the case tests: a primitive, a module, the engine, or one use of the MLP."""
        return unit_of(self.probe, self.params)

    @property
    def kinds(self):
        """The kinds of input this case shows its unit (sorted words)."""
        return sorted(kinds_of(self.probe, self.params, self.inputs))

    @property
    def scales(self):
        """{what: size} a wrong result may be scaled by: the batch size, and for MSE the number of elements."""
        if self.probe == "primitive":
            name = self.params["name"]
            return {"the batch size": len(self.inputs["in1"])} if name == "SoftmaxCrossEntropy_backward" else {}
        rows = next((self.inputs[name] for name in ("x", "y_hat", "output") if name in self.inputs), None)
        if rows is None or self.params.get("kind") == "activation":
            return {}
        scales = {"the batch size": len(rows)}
        if self.params.get("module") == "MSELoss":
            scales["the number of elements (N x C)"] = rows.size
        return scales


@dataclass
class CatalogTest:
    """A graded test: its cases and the points they share."""

    name: str
    points: float
    uses: list
    description: str
    cases: list = field(default_factory=list)

    @property
    def section(self):
        return self.name.split("/")[0]


def test(name, points, uses, description, cases):
    return CatalogTest(name, points, list(uses), description, list(cases))


test.__test__ = False  # keep pytest from collecting it where a test module imports it


def check(label, outputs, weight=1.0):
    return Check(label, tuple(outputs), weight)


def case(probe, params, inputs, checks, note):
    return Case(probe, params, inputs, list(checks), note)


# --------------------------------------------------------------------- kinds of input
LARGE = 100.0  # |x| from which values count as large (exp overflows near 710, softmax needs shifting)
NEAR_ZERO = 1e-6


def unit_of(probe, params):
    if probe == "primitive":
        return params["name"]
    if probe in ("module", "layer"):
        return params["module"]
    if probe == "graph":
        return "Autograd"
    if probe == "recurrent":
        return params["cell"] if params.get("sequence") is None else f"Recurrent({params['cell']})"
    return f"{params.get('model', 'MLP')} {params['mode']}"


def kinds_of(probe, params, inputs):
    """The kinds of input a case shows, as short phrases, derived from its data and parameters."""
    finder = {"primitive": primitive_kinds, "module": module_kinds, "graph": graph_kinds, "mlp": mlp_kinds,
              "layer": layer_kinds, "recurrent": recurrent_kinds, "model": model_kinds}[probe]
    return set(finder(params, inputs))


def value_kinds(arrays):
    """dtype, dimensions and value ranges of the float ``arrays``."""
    floats = [a for a in arrays if a.dtype.kind == "f"]
    found = {str(a.dtype) for a in floats}
    if any(a.ndim >= 3 for a in floats):
        found.add("3-D or more")
    if any(a.size and np.abs(a).max() >= LARGE for a in floats):
        found.add(f"large values (|x| >= {LARGE:g})")
    return found


def axis_kind(kwargs):
    """How a reduction's axis is given: 'axis=None', 'axis an int', 'axis a negative int', 'axis a tuple'."""
    axis = kwargs.get("axis")
    if axis is None:
        kind = "axis=None"
    elif isinstance(axis, (list, tuple)):
        kind = "axis a tuple"
    else:
        kind = "axis a negative int" if axis < 0 else "axis an int"
    return kind + (", keepdims" if kwargs.get("keepdims") else "")


def broadcast_kinds(shapes):
    """How the inputs of an elementwise operation were broadcast, per side (a, b)."""
    out = np.broadcast_shapes(*shapes)
    found, stretched = set(), 0
    for side, shape in zip("ab", shapes):
        if len(shape) < len(out):
            found.add(f"{side} gains leading axes")
        if any(n == 1 != m for n, m in zip(shape, out[len(out) - len(shape):])):
            found.add(f"{side} stretched along a size-1 axis")
        stretched += tuple(shape) != tuple(out)
    found.add({0: "same shapes", 1: "one side broadcast", 2: "both sides broadcast"}[stretched])
    return found


def is_one_hot(y):
    return bool(np.all((y == 0) | (y == 1)) and np.all(y.sum(axis=-1) == 1))


def primitive_kinds(params, inputs):
    name, n = params["name"], params["n_inputs"]
    args = [inputs[f"in{i}"] for i in range(n)]
    kwargs = params.get("kwargs", {})
    found = value_kinds(args)
    found |= {f"{key}= given" for key in params.get("array_kwargs", {})}
    if name in ("sub_backward", "mul_backward", "div_backward"):
        found |= broadcast_kinds([a.shape for a in args])
    elif name == "matmul_backward":
        found |= {f"{side} is a vector" for side, a in zip("ab", args) if a.ndim == 1}
        found |= {"batched"} if max(a.ndim for a in args) > 2 else set()
    elif name == "outer_backward":
        found |= {"an input is not 1-D (flattened)"} if any(a.ndim != 1 for a in args) else set()
    elif name in ("sum_backward", "max_backward"):
        found.add(axis_kind(kwargs))
    if name == "max_backward":
        found |= tie_kinds(args[0], kwargs.get("axis"))
    if name == "SoftmaxCrossEntropy_backward":
        found.add("one-hot targets" if is_one_hot(args[0]) else "probability targets")
        if not np.all(inputs["grad_output"] == 1):
            found.add("grad_output is not 1")
    if name in ("stack_backward", "concatenate_backward"):
        found |= sequence_kinds(name, args, kwargs)
    elif params.get("module") == "functional_cnn":
        found |= cnn_primitive_kinds(name, args, kwargs)
    return found


def layout_kinds(x):
    """The batch, channels and spatial sizes of an input laid out (N, C, *spatial)."""
    found = {"batch of 1"} if len(x) == 1 else set()
    found.add("one channel" if x.shape[1] == 1 else "several channels")
    if any(n % 2 for n in x.shape[2:]):
        found.add("an odd size")
    if len(set(x.shape[2:])) > 1:
        found.add("not square")
    return found


def window_kinds(spatial, window, stride):
    """How windows of sizes ``window``, ``stride`` apart, cover an input of sizes ``spatial``."""
    found = {"stride > 1"} if stride > 1 else set()
    if any(k == n for k, n in zip(window, spatial)):
        found.add("window as wide as the input")
    if all(k == 1 for k in window):
        found.add("window of 1")
    if stride < max(window):
        found.add("overlapping windows")
    if stride > min(window):
        found.add("windows skip entries")
    if any((n - k) % stride for n, k in zip(spatial, window)):
        found.add("entries after the last window")
    return found


def factor_kinds(spatial, factor, down):
    found = {"factor 1"} if factor == 1 else {"factor > 1"}
    if down and any(n % factor for n in spatial):
        found.add("size not a multiple of the factor")
    return found


def pool_ties(x, kernel_size, stride):
    """'ties' when a pooling window of ``x`` holds its maximum more than once."""
    view = np.lib.stride_tricks.sliding_window_view(x, (kernel_size, kernel_size), axis=(2, 3))[
        :, :, ::stride, ::stride]
    count = np.sum(view == view.max(axis=(-2, -1), keepdims=True), axis=(-2, -1))
    return {"ties"} if np.any(count > 1) else set()


def cnn_primitive_kinds(name, args, kwargs):
    x = args[0]
    found = layout_kinds(x)
    if name.startswith("conv"):
        W = args[1]
        found |= window_kinds(x.shape[2:], W.shape[2:], 1)
        found.add("one output channel" if W.shape[0] == 1 else "several output channels")
    elif name.startswith(("downsampling", "upsampling")):
        found |= factor_kinds(x.shape[2:], kwargs["factor"], name.startswith("down"))
    elif name.startswith(("maxpool", "meanpool")):
        found |= window_kinds(x.shape[2:], (kwargs["kernel_size"],) * 2, kwargs["stride"])
        if name.startswith("max"):
            found |= pool_ties(x, kwargs["kernel_size"], kwargs["stride"])
    return found


def sequence_kinds(name, args, kwargs):
    found = {axis_kind(kwargs).replace("axis=None", "axis 0 (the default)")}
    found.add("one input" if len(args) == 1 else "several inputs")
    if any(a.ndim == 0 for a in args):
        found.add("0-d inputs")
    axis = kwargs.get("axis", 0)
    if name == "concatenate_backward" and len({a.shape[axis] for a in args}) > 1:
        found.add("inputs of different sizes along the axis")
    return found


def layer_kinds(params, inputs):
    x, options, name = inputs["x"], params.get("options", {}), params["module"]
    found = value_kinds([x]) - {"3-D or more"}
    if x.ndim >= 3:
        found |= layout_kinds(x)
    if name in ("Conv1d", "Conv2d"):
        padding, W = options.get("padding", 0), inputs["W"]
        found |= {"padding"} if padding else set()
        found |= window_kinds([n + 2 * padding for n in x.shape[2:]], W.shape[2:], options.get("stride", 1))
        found.add("one output channel" if W.shape[0] == 1 else "several output channels")
    elif name in ("MaxPool2d", "MeanPool2d"):
        kernel = options["kernel_size"]
        stride = options.get("stride") or kernel
        found |= window_kinds(x.shape[2:], (kernel, kernel), stride)
        if name == "MaxPool2d":
            found |= pool_ties(x, kernel, stride)
    elif name == "Flatten":
        found.add(f"{x.ndim}-D input")
    else:  # the resampling modules
        found |= factor_kinds(x.shape[2:], options["factor"], name.startswith("Down"))
    return found


def recurrent_kinds(params, inputs):
    x = inputs["x"]
    found = value_kinds([x] + [inputs[name] for name in ("h", "weight_ih") if name in inputs])
    found.discard("3-D or more")  # a sequence is always 3-D
    if len(x) == 1:
        found.add("batch of 1")
    found.add("h given" if "h" in inputs else "no h (zeros)")
    if params["cell"] == "RNNCell":
        found.add(f"{params.get('options', {}).get('nonlinearity', 'tanh')} nonlinearity")
    sequence = params.get("sequence")
    if sequence is not None:
        found.add("one time step" if x.shape[1] == 1 else "several time steps")
        if sequence.get("return_sequence"):
            found.add("every step's hidden state returned")
    if params.get("engine") == "student":
        found.add("on your engine")
    return found


def model_kinds(params, inputs):
    first = inputs["W0"] if params["model"] == "CNN" else inputs["p0"]
    found = value_kinds([first])
    found.discard("3-D or more")  # convolution weights always are
    if "x" in inputs and len(inputs["x"]) == 1:
        found.add("batch of 1")
    if params["model"] == "CNN":
        found.add(f"{len(params['channels'])} convolution block{'s' * (len(params['channels']) > 1)}")
        if params["momentum"]:
            found.add("momentum")
    elif "x" in inputs:
        found.add("images as flat rows" if inputs["x"].ndim == 2 else "images as sequences (N, T, I)")
    if params.get("engine") == "student":
        found.add("on your engine")
    return found


def tie_kinds(a, axis):
    """'ties' when a reduced group has several maxima, 'all entries equal' when one is constant."""
    axis = tuple(axis) if isinstance(axis, list) else axis
    count = np.sum(a == np.max(a, axis=axis, keepdims=True), axis=axis)
    group = a.size // np.size(count)
    found = {"ties"} if np.any(count > 1) else set()
    if group > 1 and np.any(count == group):
        found.add("all entries equal")
    return found


def module_kinds(params, inputs):
    kind = params["kind"]
    if kind == "activation":
        x = inputs["x"]
        found = value_kinds([x])
        if np.any(x == 0):
            found.add("an entry exactly 0")
        if np.any((x != 0) & (np.abs(x) < NEAR_ZERO)):
            found.add(f"entries within {NEAR_ZERO:g} of 0")
        return found
    data = [inputs["x"]] if kind == "linear" else [inputs["y"], inputs["y_hat"]]
    found = value_kinds(data)
    if len(data[0]) == 1:
        found.add("batch of 1")
    if kind == "loss" and not is_one_hot(inputs["y"]):
        found.add("probability targets")
    return found


def graph_kinds(params, inputs):
    found = value_kinds(list(inputs.values()))
    values, uses = dict(inputs), {}
    for op in params["ops"]:
        args = [values[name] for name in op["in"]]
        kwargs = {key: tuple(v) if isinstance(v, list) else v for key, v in op["kwargs"].items()}
        values[op["out"]] = FORWARD[op["fn"]](*args, **kwargs)
        for name in op["in"]:
            uses[name] = uses.get(name, 0) + 1
        if len({a.shape for a in args}) > 1:
            found.add("broadcasting")
        if op["fn"] == "identity":
            found.add("views")
        if any(op["update"]):
            found.add("gradients_to_update")
    most = max(uses.values())
    if most >= 2:
        found.add("fan-out to 3 or more uses" if most >= 3 else "fan-out")
    divergence = params.get("divergence", 1)
    if divergence != 1:
        found.add("divergence an array" if isinstance(divergence, str) else "divergence a number")
    if params["mode"] == "record":
        found.add("recording only")
    return found


def mlp_kinds(params, inputs):
    found = value_kinds([inputs["W0"]])
    found |= {f"{name} activation" for name in params["activations"]}
    if params["activations"][-1] != "Identity":
        found.add("last activation not Identity")
    if len(params["activations"]) >= 3:
        found.add("3 or more layers")
    found.add(params["criterion"])
    if params["momentum"]:
        found.add("momentum")
    if "x" in inputs and len(inputs["x"]) == 1:
        found.add("batch of 1")
    if params["mode"] == "training_stats" and len(inputs["train_x"]) % params["batch_size"]:
        found.add("uneven last batch")
    return found


# --------------------------------------------------------------------- data
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


def probabilities(seed, rows, classes):
    """Soft targets: each row a probability distribution (not one-hot)."""
    weights = np.random.default_rng(seed).uniform(0.1, 1.0, (rows, classes))
    return weights / weights.sum(axis=1, keepdims=True)


def extremes(dtype=np.float64, big=800.0):
    """Activation inputs far out (+-big, +-30), exactly 0 and within 1e-9 of it."""
    return np.array([[-big, -30.0, -1e-9, 0.0], [1e-9, 2.0, 30.0, big]], dtype)


# --------------------------------------------------------------------- primitives
INPUT_NAMES = {1: ("a",), 2: ("a", "b")}


def primitive_case(name, inputs, note, seed, kwargs=None, array_kwargs=None, weights=None, grad_output=None,
                   names=None, module=None):
    """A case calling ``name(grad_output, *inputs, **kwargs)``; one check per input gradient.

    ``module`` names the primitive's file under mytorch/nn/ when it is not functional.py.
    """
    kwargs = kwargs or {}
    arrays = {f"in{i}": a for i, a in enumerate(inputs)}
    forward_kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in kwargs.items()}
    out = np.asarray(FORWARD[name[:-len("_backward")]](*inputs, **forward_kwargs))
    if grad_output is None:
        grad_output = normal(seed, out.shape, out.dtype if out.dtype.kind == "f" else np.float64)
    arrays["grad_output"] = grad_output
    arrays.update(array_kwargs or {})
    weights = weights or [1.0] * len(inputs)
    names = names or INPUT_NAMES[len(inputs)]
    checks = [check(f"the gradient of {label}", [f"grad{i}"], w)
              for i, (label, w) in enumerate(zip(names, weights)) if w]
    params = {"name": name, "n_inputs": len(inputs), "kwargs": kwargs,
              "array_kwargs": {k: k for k in (array_kwargs or {})}}
    if module:
        params["module"] = module
    return case("primitive", params, arrays, checks, note)


def describe_shapes(*arrays):
    return " and ".join(f"{a.shape} {a.dtype}" for a in arrays)


def binary_case(name, a, b, seed, note=None, weights=None):
    return primitive_case(name, [a, b], note or f"inputs {describe_shapes(a, b)}", seed, weights=weights)


def softmax_case(y, y_hat, note, seed, grad_output, **more):
    return primitive_case("SoftmaxCrossEntropy_backward", [y, y_hat], note, seed, weights=[1.0, 3.0],
                          grad_output=grad_output, names=("y", "y_hat"), **more)


F32 = np.float32


def functional_tests():
    """The public tests of the student primitives in mytorch/nn/functional.py (4 points each)."""
    n = normal
    return [
        test("functional/sub_backward", 4, ["sub_backward"], "out = a - b, with broadcasting", [
            binary_case("sub_backward", n(1, (3, 4)), n(2, (3, 4)), 3),
            binary_case("sub_backward", n(4, (2, 3, 4)), n(5, (4,)), 6, "b broadcast from (4,) to (2, 3, 4)"),
            binary_case("sub_backward", n(7, (3, 2), F32), n(8, (3, 1), F32), 9,
                        "float32: b broadcast from (3, 1) to (3, 2)"),
            binary_case("sub_backward", n(601, (2, 1, 3)), n(602, (4, 3)), 603,
                        "both sides broadcast: (2, 1, 3) - (4, 3) is (2, 4, 3)"),
        ]),
        test("functional/mul_backward", 4, ["mul_backward"], "out = a * b, with broadcasting", [
            binary_case("mul_backward", n(11, (3, 4)), n(12, (3, 4)), 13),
            binary_case("mul_backward", n(14, (3, 4)), n(15, (3, 1)), 16, "b broadcast from (3, 1) to (3, 4)"),
            binary_case("mul_backward", n(17, (2, 3), F32), n(18, (2, 3), F32), 19, "float32"),
            binary_case("mul_backward", n(611, (3, 1, 2)), n(612, (4, 1)), 613,
                        "both sides broadcast: (3, 1, 2) * (4, 1) is (3, 4, 2)"),
        ]),
        test("functional/div_backward", 4, ["div_backward"], "out = a / b, with broadcasting", [
            binary_case("div_backward", n(21, (3, 4)), away_from_zero(22, (3, 4)), 23),
            binary_case("div_backward", n(24, (2, 3)), away_from_zero(25, (1, 3)), 26,
                        "b broadcast from (1, 3) to (2, 3)"),
            binary_case("div_backward", n(27, (3, 2), F32), away_from_zero(28, (3, 2), F32), 29, "float32"),
            binary_case("div_backward", n(621, (1, 3)), away_from_zero(622, (2, 1)), 623,
                        "both sides broadcast: (1, 3) / (2, 1) is (2, 3)"),
        ]),
        test("functional/matmul_backward", 4, ["matmul_backward"], "out = a @ b (2-D, batched, vectors)", [
            binary_case("matmul_backward", n(31, (3, 4)), n(32, (4, 5)), 33, "a (3, 4) @ b (4, 5)"),
            binary_case("matmul_backward", n(34, (2, 3, 4)), n(35, (4, 2)), 36,
                        "batched: a (2, 3, 4) @ b (4, 2), b shared by the batch"),
            binary_case("matmul_backward", n(37, (2, 3), F32), n(38, (3, 4), F32), 39, "float32"),
            binary_case("matmul_backward", n(631, (3,)), n(632, (3, 2)), 633, "a vector (3,) @ b (3, 2)"),
            binary_case("matmul_backward", n(634, (2, 5)), n(635, (5,)), 636, "a (2, 5) @ a vector b (5,)"),
        ]),
        test("functional/outer_backward", 4, ["outer_backward"], "out = np.outer(a, b) (inputs flattened)", [
            binary_case("outer_backward", n(41, (3,)), n(42, (4,)), 43),
            binary_case("outer_backward", n(44, (5,)), n(45, (2,)), 46),
            binary_case("outer_backward", n(47, (2, 2)), n(48, (3,)), 49, "a (2, 2) is flattened, as np.outer does"),
            binary_case("outer_backward", n(641, (4,), F32), n(642, (3,), F32), 643, "float32"),
        ]),
        test("functional/log_backward", 4, ["log_backward"], "out = np.log(a)", [
            primitive_case("log_backward", [positive(51, (3, 4))], "a (3, 4), positive", 52),
            primitive_case("log_backward", [positive(53, (5,))], "a (5,), positive", 54),
            primitive_case("log_backward", [positive(55, (2, 3), F32)], "a (2, 3) float32", 56),
            primitive_case("log_backward", [positive(57, (2, 2, 3))], "a (2, 2, 3)", 58),
        ]),
        test("functional/exp_backward", 4, ["exp_backward"], "out = np.exp(a)", [
            primitive_case("exp_backward", [n(61, (3, 4))], "a (3, 4), without out=", 62),
            primitive_case("exp_backward", [n(63, (2, 3))], "a (2, 3), with the forward output as out=", 64,
                           array_kwargs={"out": np.exp(n(63, (2, 3)))}),
            primitive_case("exp_backward", [n(65, (4, 2), F32)], "a (4, 2) float32, with out=", 66,
                           array_kwargs={"out": np.exp(n(65, (4, 2), F32))}),
            primitive_case("exp_backward", [n(67, (3, 2, 2))], "a (3, 2, 2)", 68),
        ]),
        test("functional/sum_backward", 4, ["sum_backward"], "out = np.sum(a, axis, keepdims)", [
            primitive_case("sum_backward", [n(71, (3, 4))], "axis=None (sum of everything)", 72),
            primitive_case("sum_backward", [n(73, (3, 4))], "axis=1", 74, kwargs={"axis": 1}),
            primitive_case("sum_backward", [n(75, (2, 3, 4))], "axis=(0, 2), keepdims=True", 76,
                           kwargs={"axis": [0, 2], "keepdims": True}),
            primitive_case("sum_backward", [n(77, (2, 3, 2))], "axis=(0, 1)", 78, kwargs={"axis": [0, 1]}),
            primitive_case("sum_backward", [n(79, (3, 2, 4))], "axis=-2, keepdims=True", 80,
                           kwargs={"axis": -2, "keepdims": True}),
            primitive_case("sum_backward", [n(651, (3, 5), F32)], "axis=1, float32", 652, kwargs={"axis": 1}),
        ]),
        test("functional/max_backward", 4, ["max_backward"], "out = np.max(a, axis, keepdims); ties share", [
            primitive_case("max_backward", [n(81, (3, 4))], "axis=None", 82),
            primitive_case("max_backward", [n(83, (3, 5))], "axis=1", 84, kwargs={"axis": 1}),
            primitive_case("max_backward", [np.array([[1.0, 3.0, 3.0], [2.0, 0.0, 2.0], [1.0, 1.0, 1.0]])],
                           "axis=1 with ties (equal maxima share the gradient equally)", 85, kwargs={"axis": 1}),
            primitive_case("max_backward", [np.full((3, 2), -0.5)], "axis=None, every entry equal", 86),
            primitive_case("max_backward", [n(87, (2, 2, 3))], "axis=2, keepdims=True", 88,
                           kwargs={"axis": 2, "keepdims": True}),
            primitive_case("max_backward", [n(661, (4, 3), F32)], "axis=1, float32", 662, kwargs={"axis": 1}),
        ]),
        test("functional/SoftmaxCrossEntropy_backward", 4, ["SoftmaxCrossEntropy_backward"],
             "mean over the batch of -sum(y * log_softmax(y_hat)); gradients for y and y_hat", [
                 softmax_case(one_hot(91, 4, 5), n(92, (4, 5), scale=2.0), "batch of 4, 5 classes, grad_output 1",
                              93, np.ones(1)),
                 softmax_case(one_hot(94, 3, 4), n(95, (3, 4), scale=2.0),
                              "batch of 3, grad_output 2.5, log_softmax passed in", 96, np.array([2.5]),
                              array_kwargs={"log_softmax": log_softmax(n(95, (3, 4), scale=2.0))}),
                 softmax_case(one_hot(97, 2, 3), n(98, (2, 3), scale=1e4), "logits of size 1e4 (must stay finite)",
                              99, np.ones(1)),
                 softmax_case(probabilities(671, 3, 4), n(672, (3, 4)), "probability targets (rows are not one-hot), "
                              "grad_output 0.5", 673, np.array([0.5])),
                 softmax_case(one_hot(674, 3, 2, F32), n(675, (3, 2), F32, 2.0), "float32", 676, np.ones(1, F32)),
             ]),
    ]


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
            graph_case(CHAIN, {"x": normal(113, (4, 3), F32), "y": normal(114, (1, 3), F32)},
                       "the same in float32 (float32 gradients), y (1, 3)",
                       [check("gradients of x and y", ["grad/x", "grad/y"], 2.0)], grads=["x", "y"]),
        ]),
        test("autograd/fan_out", 4, both, "gradients of an array used several times accumulate", [
            graph_case([op("add", ["x", "x"], "a"), op("tanh", ["x"], "t"), op("add", ["a", "t"], "s"),
                        op("mean", ["s"], "m")], {"x": normal(103, (2, 3))}, "mean((x + x) + tanh(x))",
                       [check("gradient of x", ["grad/x"], 2.0)], grads=["x"]),
            graph_case([op("tanh", ["x"], "h"), op("add", ["h", "x"], "r"), op("pow", ["r"], "q", exponent=2),
                        op("mean", ["q"], "m")], {"x": normal(104, (3, 2))}, "skip connection: mean((tanh(x) + x) ** 2)",
                       [check("gradient of x", ["grad/x"], 2.0)], grads=["x"]),
            graph_case([op("identity", ["x"], "v1"), op("identity", ["x"], "v2"), op("add", ["v1", "v2"], "s"),
                        op("tanh", ["s"], "t"), op("add", ["t", "x"], "r"), op("pow", ["r"], "q", exponent=2),
                        op("mean", ["q"], "m")], {"x": normal(115, (2, 4))},
                       "two views of x are two nodes: mean((tanh(view1 + view2) + x) ** 2)",
                       [check("gradients of x and its views", ["grad/x", "grad/v1", "grad/v2"], 2.0)],
                       grads=["x", "v1", "v2"]),
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
    return [test(f"activation/{name}", 3, [f"{name}.forward"], f"{name} forward, recorded for backward", [
        activation_case(name, x, 202 + i, "x (4, 5), one entry exactly 0"),
        activation_case(name, normal(205 + i, (2, 5), F32, 3.0), 208 + i, "x (2, 5) float32"),
        activation_case(name, extremes(big=1000.0), 211 + i, "x with values of +-1000, +-30, 0 and +-1e-9"),
    ]) for i, name in enumerate(("Sigmoid", "Tanh", "ReLU"))]


def linear_case(seed, batch, n_in, n_out, checks, note, dtype=np.float64):
    arrays = {"x": normal(seed, (batch, n_in), dtype), "W": normal(seed + 1, (n_out, n_in), dtype),
              "b": normal(seed + 2, (n_out,), dtype), "grad_output": normal(seed + 3, (batch, n_out), dtype)}
    return case("module", {"kind": "linear", "module": "Linear"}, arrays, checks, note)


def linear_tests():
    backward_checks = [check("gradient of x", ["dx"], 2.0), check("dW", ["dW"], 2.0), check("db", ["db"], 1.0)]
    return [
        test("linear/forward", 3, ["Linear.forward"], "y = x @ W.T + b", [
            linear_case(301, 4, 3, 5, [check("forward output y", ["y"])], "x (4, 3), W (5, 3), b (5,)"),
            linear_case(305, 1, 4, 2, [check("forward output y", ["y"])], "batch of 1, float32", dtype=F32),
        ]),
        test("linear/backward", 5, ["Linear.forward", "matmul_backward"], "dx, and dW and db summed over the batch", [
            linear_case(311, 6, 4, 2, backward_checks, "x (6, 4), W (2, 4), b (2,)"),
            linear_case(315, 1, 3, 2, backward_checks, "batch of 1: x (1, 3)"),
            linear_case(319, 5, 2, 3, backward_checks, "float32, x (5, 2)", dtype=F32),
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
            loss_case("MSELoss", one_hot(403, 1, 4), normal(404, (1, 4)), "batch of 1"),
            loss_case("MSELoss", one_hot(405, 3, 2, F32), normal(406, (3, 2), F32), "float32"),
        ]),
        test("loss/SoftmaxCrossEntropy", 4, ["SoftmaxCrossEntropy.forward", "SoftmaxCrossEntropy_backward"],
             "mean over the batch of -sum(y * log_softmax(y_hat)), stable for any logits", [
                 loss_case("SoftmaxCrossEntropy", one_hot(411, 5, 4), normal(412, (5, 4), scale=3.0),
                           "batch of 5, 4 classes"),
                 loss_case("SoftmaxCrossEntropy", one_hot(413, 2, 3), normal(414, (2, 3), scale=1e4),
                           "logits of size 1e4 (must stay finite)"),
                 loss_case("SoftmaxCrossEntropy", one_hot(415, 4, 3, F32), normal(416, (4, 3), F32, 3.0), "float32"),
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
CURVES = ["train_loss", "train_error", "val_loss", "val_error"]


def mlp_tests():
    sizes = (6, 5, 4, 3)
    acts = ["ReLU", "Tanh", "Identity"]
    small = (6, 5, 3)
    deep = (4, 6, 5, 3)
    return [
        test("mlp/forward", 3, ["MLP.forward", "Linear.forward", "ReLU.forward", "Tanh.forward", "Sigmoid.forward"],
             "forward through every layer and activation", [
                 case("mlp", mlp_params(sizes, acts, mode="forward"),
                      dict(mlp_weights(501, sizes), x=normal(502, (4, 6))),
                      [check("output (returned and mlp.output)", ["output", "mlp.output"], 1.0)],
                      "6-5-4-3 with ReLU, Tanh, Identity, batch of 4"),
                 case("mlp", mlp_params((4, 3, 2), ["Tanh", "Sigmoid"], mode="forward"),
                      dict(mlp_weights(505, (4, 3, 2)), x=normal(506, (3, 4))),
                      [check("output (returned and mlp.output)", ["output", "mlp.output"], 1.0)],
                      "4-3-2 with Tanh, Sigmoid: the last activation is not Identity"),
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
        test("mlp/train_step", 3, MLP_STEP_USES + ["Sigmoid.forward", "Tanh.forward", "ReLU.forward",
                                                   "SoftmaxCrossEntropy.forward", "SoftmaxCrossEntropy_backward"],
             "one training step: zero_grads, forward, total_loss, backward, step", [
                 case("mlp", mlp_params(small, ["Sigmoid", "Identity"], lr=0.1, momentum=0.5, mode="train_step"),
                      dict(mlp_weights(541, small), x=normal(542, (8, 6)), labels=one_hot(543, 8, 3)),
                      [check("total loss", ["total_loss"], 1.0),
                       check("W and b after the step", layer_outputs(small, ("W", "b")), 2.0)],
                      "6-5-3 with Sigmoid, batch of 8, lr 0.1, momentum 0.5"),
                 case("mlp", mlp_params(deep, ["Tanh", "ReLU", "Identity"], lr=0.05, momentum=0.9, mode="train_step"),
                      dict(mlp_weights(545, deep), x=normal(546, (6, 4)), labels=one_hot(547, 6, 3)),
                      [check("total loss", ["total_loss"], 1.0),
                       check("W and b after the step", layer_outputs(deep, ("W", "b")), 2.0)],
                      "4-6-5-3 with Tanh, ReLU, Identity, batch of 6, lr 0.05, momentum 0.9"),
             ]),
        test("mlp/training_stats", 2, MLP_STEP_USES + [
            "get_training_stats", "Autograd.add_operation", "Autograd.backward", "ReLU.forward", "Sigmoid.forward",
            "SoftmaxCrossEntropy.forward", "SoftmaxCrossEntropy_backward", "MSELoss.forward", "sub_backward",
            "mul_backward"],
             "get_training_stats on your own Autograd engine", [
                 case("mlp", mlp_params((4, 6, 3), ["ReLU", "Identity"], lr=0.05, momentum=0.9, engine="student",
                                        mode="training_stats", epochs=2, batch_size=4),
                      dict(mlp_weights(551, (4, 6, 3)), **training_data(552, (4, 6, 3), 12, 6, 2)),
                      [check("learning curves", CURVES)],
                      "4-6-3, 12 training and 6 validation examples, batches of 4, 2 epochs"),
                 case("mlp", mlp_params((3, 5, 2), ["Sigmoid", "Identity"], criterion="MSELoss", lr=0.1, momentum=0.5,
                                        engine="student", mode="training_stats", epochs=2, batch_size=4),
                      dict(mlp_weights(555, (3, 5, 2)), **training_data(556, (3, 5, 2), 11, 4, 2)),
                      [check("learning curves", CURVES)],
                      "3-5-2 with MSELoss, 11 training examples in batches of 4 (the last one has 3), 2 epochs"),
             ]),
    ]


def public_tests():
    """All public tests, in report order; their points add up to 100."""
    return autograd_tests() + functional_tests() + activation_tests() + linear_tests() + loss_tests() + mlp_tests()
