"""Probes: small functions that run the student's code on given inputs.

They run in the sandboxed test process (never in the process that scores). A
probe gets the imported submission, the input arrays and JSON parameters of one
case, and fills ``out`` (name -> array or JSON value) with what the student's code
produced; the scoring process compares ``out`` with the expected values it keeps.
Whatever a probe put in ``out`` before an exception is still sent back, so the
checks that did not need the failing step keep their credit.

The zygote runs a ``seal``-ed copy of this module, made before any student code is
imported: a submission that swaps this module's functions, its classes' methods or
the entries of ``PROBES`` or ``FORWARD`` changes nothing the test process runs.
"""
import contextlib
import importlib.util
import os
import sys
import traceback
import types

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))


def load_tape_rules():
    """The grader's own copy of the tape rules (``mytorch/_tape_rules.py``), loaded by its path.

    The handout builder ships it as ``autograder/tape_rules.py`` in the handout and in
    the Gradescope bundle; the project's checkout has none there and uses the reference
    solution's ``mytorch/_tape_rules.py`` beside this folder (only there: the checkout is
    recognised by ``make_fixtures.py``, which is never shipped). A submission's copy is
    never loaded: submissions are graded from a sandbox copy, and this runs when the
    probes are imported, before any student code.
    """
    path = os.path.join(HERE, "tape_rules.py")
    if not os.path.isfile(path) and os.path.isfile(os.path.join(HERE, "make_fixtures.py")):
        path = os.path.join(os.path.dirname(HERE), "mytorch", "_tape_rules.py")
    if not os.path.isfile(path):
        raise ImportError(f"{os.path.join(HERE, 'tape_rules.py')} is missing: build the handout or the "
                          "bundle again with autograder/handout.py")
    spec = importlib.util.spec_from_file_location("autograder.tape_rules", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


tape_rules = load_tape_rules()
SEALED_ALONG = ("autograder.tape_rules",)  # modules whose sealed copy a sealed copy of this one uses


class ProbeFailure(Exception):
    """The student's code returned something unusable (wrong type or count); not a crash."""


class Missing:
    """An output the probe could not produce; ``reason`` tells the student why."""

    def __init__(self, reason):
        self.reason = reason


def seal(namespace):
    """A private copy of a module's ``namespace`` (its ``globals()``), to take before student code runs.

    The module's own functions, also those kept in its dicts (``FORWARD``'s lambdas),
    are re-created to look up global names in the copy; its classes with methods become
    subclasses holding such copies of their methods; its dicts become read-only copies; the
    modules named in ``SEALED_ALONG`` (the tape rules) become sealed copies too.
    So swapping the module's attributes, its classes' methods or its dict entries later
    changes nothing the copy runs. Other shared objects (other modules such as numpy,
    builtins, the objects the copy creates) are not copied: code that rewrites those in
    memory reaches the copy too.
    """
    copy = {}

    def private(value):
        if isinstance(value, types.FunctionType) and value.__globals__ is namespace:
            function = types.FunctionType(value.__code__, copy, value.__name__, value.__defaults__, value.__closure__)
            function.__kwdefaults__ = None if value.__kwdefaults__ is None else dict(value.__kwdefaults__)
            return function
        if isinstance(value, type) and value.__module__ == namespace.get("__name__"):
            methods = {name: private(item) for name, item in vars(value).items()
                       if isinstance(item, types.FunctionType)}
            return type(value.__name__, (value,), methods) if methods else value
        if isinstance(value, dict):
            return types.MappingProxyType({key: private(item) for key, item in value.items()})
        if isinstance(value, types.ModuleType) and value.__name__ in SEALED_ALONG:
            return seal(vars(value))
        return value

    for name, value in namespace.items():
        copy[name] = value if name.startswith("__") else private(value)
    return types.SimpleNamespace(**copy)


# --------------------------------------------------------------------- the submission
class Submission:
    """The student's imported ``mytorch`` (``Autograd``, ``nn``, ``F``) and, on demand, its other primitive
    files (``functional``) and its files under ``hw/`` (``hw``)."""

    def __init__(self, root, mytorch):
        self.root = root
        self.Autograd = mytorch.autograd_engine.Autograd
        self.nn = mytorch.nn
        self.F = mytorch.nn.functional
        self._hw = {}

    def functional(self, name):
        """The submission's ``mytorch/nn/<name>.py`` (``functional``, ``functional_cnn``, ...)."""
        module = importlib.import_module(f"mytorch.nn.{name}")
        check_location(self.root)
        return module

    def hw(self, name):
        """The submission's ``hw/<name>.py`` (as the module ``hw.<name>``), loaded from its file on first use.

        An exception raised while importing it is marked (``failed_import``), so its feedback
        says the import failed and the report shows it once for all the tests it stops.
        """
        if name not in self._hw:
            relpath, module_name = f"hw/{name}.py", f"hw.{name}"
            path = os.path.join(self.root, "hw", f"{name}.py")
            try:
                if not os.path.isfile(path):
                    raise ImportError(f"{relpath} is missing from the submission")
                spec = importlib.util.spec_from_file_location(module_name, path)
                module = importlib.util.module_from_spec(spec)
                sys.modules[module_name] = module
                spec.loader.exec_module(module)
            except BaseException as error:
                sys.modules.pop(module_name, None)
                error.failed_import = relpath
                raise
            self._hw[name] = module
        return self._hw[name]

    def mlp(self):
        """The submission's ``hw/mlp.py`` (see ``hw``)."""
        return self.hw("mlp")


def load_submission(root):
    """The student's ``mytorch``, imported from ``root`` (which must be first on ``sys.path``).

    Raises ImportError if ``mytorch`` is not found, or is found anywhere but under
    ``root`` (an installed or editable copy must never be graded).
    """
    root = os.path.realpath(root)
    import mytorch  # noqa: F401  (the submission's, checked just below)
    import mytorch.autograd_engine
    import mytorch.nn
    import mytorch.nn.functional

    check_location(root)
    return Submission(root, mytorch)


def check_location(root):
    """ImportError unless every loaded ``mytorch`` module comes from a file under ``root``."""
    for name, module in sorted(sys.modules.items()):
        if name != "mytorch" and not name.startswith("mytorch."):
            continue
        where = getattr(module, "__file__", None)
        if where is None or not os.path.realpath(where).startswith(root + os.sep):
            raise ImportError(
                f"{name} was imported from {where or 'a namespace package'}, not from the "
                f"submission in {root}: is mytorch/__init__.py missing from the submission?"
            )


def student_traceback(error, root):
    """The traceback of ``error`` trimmed to the frames in files under ``root``, paths relative to it."""
    root = os.path.realpath(root) + os.sep
    frames = [
        frame for frame in traceback.extract_tb(error.__traceback__)
        if os.path.realpath(frame.filename).startswith(root)
    ]
    failed_import = getattr(error, "failed_import", None)
    lines = [f"importing {failed_import} failed:"] if failed_import else []
    for frame in frames:
        where = os.path.relpath(os.path.realpath(frame.filename), root)
        lines.append(f'  File "{where}", line {frame.lineno}, in {frame.name}')
        if frame.line:
            lines.append(f"    {frame.line.strip()}")
    if not frames and error.__traceback__ is not None and not isinstance(error, SyntaxError):
        last = traceback.extract_tb(error.__traceback__)[-1].name
        lines.append(f"  (raised outside your files, in the grader's {last}(): look at what your code returned, "
                     "recorded or left undefined)")
    message = "".join(traceback.format_exception_only(type(error), error)).rstrip()
    # Python 3.11+ prints an exception's notes (the engine's "(in backward of operation #i ...)") in
    # format_exception_only already; before 3.11 they are added here, once.
    notes = [] if sys.version_info >= (3, 11) else [str(note) for note in getattr(error, "__notes__", None) or []]
    return "\n".join(lines + [message] + notes).replace(root, "")  # e.g. a SyntaxError's path


# --------------------------------------------------------------------- helpers
def frozen(array):
    """A read-only copy of ``array``: primitives must not modify their inputs."""
    array = np.array(array)
    array.flags.writeable = False
    return array


def as_tuples(value):
    """JSON lists become tuples (axis=(0, 2), shape=(3, 4)); everything else is kept."""
    if isinstance(value, list):
        return tuple(as_tuples(v) for v in value)
    return value


def gradients_of(result, count, what):
    """The ``count`` gradients a primitive returned, as arrays, read as the engine reads them
    (``tape_rules.gradient_tuple``: a tuple or list, a lone array for one input, a NumPy
    scalar as a 0-d array); ProbeFailure if unusable. Shapes are left to the comparison."""
    try:
        return list(tape_rules.gradient_tuple(result, count, what))
    except (TypeError, ValueError) as error:
        raise ProbeFailure(str(error)) from None


def snapshot(value, missing_reason):
    """A copy of an array to send back, or Missing(reason) if ``value`` is not an array."""
    if isinstance(value, np.generic):
        value = np.asarray(value)
    if not isinstance(value, np.ndarray):
        return Missing(f"{missing_reason} (got {type(value).__name__})")
    return np.array(value)


# --------------------------------------------------------------------- the grader's own tape
class GraderTape:
    """A minimal correct autograd tape, so module tests do not depend on the student's engine.

    It has the engine's interface (``add_operation``, ``backward``, ``zero_grad``,
    ``no_grad``, ``operation_list``) and enforces the engine's rules from the same
    definition, ``tape_rules.TapeRules`` (the grader's copy of mytorch/_tape_rules.py),
    called at the same points: it refuses what the engine refuses, with the same
    message, and keeps recorded arrays read-only until ``backward``. Gradients of
    untracked inputs are kept by ``id`` (with the array itself, so the id stays
    unique) in the input's gradient dtype, and read with ``grad``.
    """

    def __init__(self):
        self.operation_list = []
        self._grads = {}
        self._paused = 0
        self._rules = tape_rules.TapeRules()

    def add_operation(self, inputs, output, gradients_to_update, backward_operation, **kwargs):
        if self._paused:
            return
        self._rules.check_operation(inputs, output, gradients_to_update, backward_operation)
        self.operation_list.append(types.SimpleNamespace(
            inputs=list(inputs), output=output, gradients_to_update=list(gradients_to_update),
            backward_operation=backward_operation, kwargs=kwargs))
        self._rules.freeze(inputs, output, backward_operation)

    @contextlib.contextmanager
    def no_grad(self):
        self._paused += 1
        try:
            yield self
        finally:
            self._paused -= 1

    def zero_grad(self):
        self._rules.reset()
        self.operation_list = []
        self._grads = {}

    def grad(self, array):
        """The gradient accumulated for ``array``, or None if it received none."""
        entry = self._grads.get(id(array))
        return None if entry is None else entry[1]

    def backward(self, divergence=1):
        last_gradient = self._rules.start_backward(divergence)
        try:
            last = len(self.operation_list) - 1
            for index in range(last, -1, -1):
                operation = self.operation_list[index]
                if index == last:
                    grad_output = last_gradient
                elif id(operation.output) in self._grads:
                    grad_output = self._grads[id(operation.output)][1]
                else:
                    self._rules.warn_unused(index, operation)
                    continue
                gradients = self._rules.call_primitive(index, operation, grad_output)
                for array, target, grad in zip(operation.inputs, operation.gradients_to_update, gradients):
                    if target is not None:
                        target += grad
                    else:
                        self._accumulate(array, grad)
        finally:
            self._rules.end_backward()

    def _accumulate(self, array, grad):
        dtype = tape_rules.gradient_dtype(array)
        entry = self._grads.get(id(array))
        if entry is None:
            self._grads[id(array)] = [array, grad.astype(dtype)]  # a copy: the student may share grad
        else:
            entry[1] = np.add(entry[1], grad, dtype=dtype)


# --------------------------------------------------------------------- probes
def probe_primitive(sub, arrays, params, out):
    """Call ``F.<name>(grad_output, *inputs, **kwargs)`` on read-only arrays; out: grad0, grad1, ...

    ``F`` is ``mytorch/nn/functional.py``, or the file ``params["module"]`` names (``functional_cnn``, ...).
    """
    function = getattr(sub.functional(params.get("module", "functional")), params["name"])
    inputs = [frozen(arrays[f"in{i}"]) for i in range(params["n_inputs"])]
    kwargs = {key: as_tuples(value) for key, value in params.get("kwargs", {}).items()}
    for key, name in params.get("array_kwargs", {}).items():
        kwargs[key] = frozen(arrays[name])
    result = function(frozen(arrays["grad_output"]), *inputs, **kwargs)
    for i, grad in enumerate(gradients_of(result, len(inputs), params["name"])):
        out[f"grad{i}"] = np.array(grad)


def log_softmax(x):
    """log(softmax(x)) over the last axis, computed stably."""
    shifted = x - x.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def windows(x, kernel, stride=1):
    """The windows of ``x`` (N, C, *spatial): a read-only view (N, C, *out, *kernel), ``stride`` apart."""
    view = np.lib.stride_tricks.sliding_window_view(x, tuple(kernel), axis=tuple(range(2, x.ndim)))
    return view[(slice(None), slice(None)) + (slice(None, None, stride),) * len(kernel)]


def conv_stride1(x, W, b):
    """Cross-correlation of x (N, C_in, *spatial) with W (C_out, C_in, *kernel), plus b (C_out,), as PyTorch's."""
    dims = W.ndim - 2
    positions, offsets = "pq"[:dims], "kl"[:dims]
    out = np.einsum(f"nc{positions}{offsets},oc{offsets}->no{positions}", windows(x, W.shape[2:]), W)
    return out + b.reshape((-1,) + (1,) * dims)


def upsampling(x, factor):
    """x (N, C, *spatial) with ``factor - 1`` zeros inserted between neighbours along each spatial axis."""
    out = np.zeros(x.shape[:2] + tuple((n - 1) * factor + 1 for n in x.shape[2:]), dtype=x.dtype)
    out[(Ellipsis,) + (slice(None, None, factor),) * (x.ndim - 2)] = x
    return out


FORWARD = {  # the forward computation of each primitive ``<name>_backward`` a test may call or record
    "identity": lambda a: a.view(),
    "add": np.add,
    "sub": np.subtract,
    "mul": np.multiply,
    "div": np.divide,
    "neg": np.negative,
    "matmul": np.matmul,
    "outer": np.outer,
    "pow": lambda a, exponent: np.power(a, exponent),
    "tanh": np.tanh,
    "exp": np.exp,
    "log": np.log,
    "relu": lambda a: np.maximum(a, 0),
    "sum": lambda a, axis=None, keepdims=False: np.asarray(np.sum(a, axis=axis, keepdims=keepdims)),
    "mean": lambda a, axis=None, keepdims=False: np.asarray(np.mean(a, axis=axis, keepdims=keepdims)),
    "max": lambda a, axis=None, keepdims=False: np.asarray(np.max(a, axis=axis, keepdims=keepdims)),
    "reshape": lambda a, shape: np.reshape(a, shape).copy(),
    "transpose": lambda a, axes=None: np.transpose(a, axes),
    "SoftmaxCrossEntropy": lambda y, y_hat: np.reshape(-np.sum(y * log_softmax(y_hat)) / y_hat.dtype.type(len(y_hat)),
                                                       (1,)),
    # the CNN pack's (mytorch/nn/functional_cnn.py)
    "conv1d_stride1": conv_stride1,
    "conv2d_stride1": conv_stride1,
    "downsampling1d": lambda x, factor: x[..., ::factor].copy(),
    "downsampling2d": lambda x, factor: x[..., ::factor, ::factor].copy(),
    "upsampling1d": upsampling,
    "upsampling2d": upsampling,
    "flatten": lambda x: x.reshape(len(x), -1).copy(),
    "maxpool2d": lambda x, kernel_size, stride: windows(x, (kernel_size, kernel_size), stride).max(axis=(-2, -1)),
    "meanpool2d": lambda x, kernel_size, stride: windows(x, (kernel_size, kernel_size), stride).mean(axis=(-2, -1)),
    # the RNN pack's (mytorch/nn/functional_rnn.py)
    "stack": lambda *arrays, axis=0: np.stack(arrays, axis=axis),
    "concatenate": lambda *arrays, axis=0: np.concatenate(arrays, axis=axis),
}


def probe_graph(sub, arrays, params, out):
    """Record ``params["ops"]`` on the student's Autograd, then report the tape or run backward.

    Each op is ``{"fn", "in": [names], "out": name, "update": [None or target name], "kwargs"}``.
    In "record" mode out holds ``n_ops``, ``tape_problems`` and ``in_buffer``; in
    "backward" mode ``grad/<name>`` (from the buffer) and ``target/<name>``.
    """
    engine = sub.Autograd()
    values = {name: np.array(value) for name, value in arrays.items()}
    recorded = []
    for op in params["ops"]:
        kwargs = {key: as_tuples(value) for key, value in op.get("kwargs", {}).items()}
        inputs = [values[name] for name in op["in"]]
        values[op["out"]] = FORWARD[op["fn"]](*inputs, **kwargs)
        updates = [None if target is None else values[target] for target in op["update"]]
        function = getattr(sub.F, op["fn"] + "_backward")
        engine.add_operation(inputs, values[op["out"]], updates, function, **kwargs)
        recorded.append((inputs, values[op["out"]], updates, function, kwargs))
    if params["mode"] == "record":
        out["n_ops"] = len(engine.operation_list)
        out["tape_problems"] = tape_problems(engine.operation_list, recorded)
        out["in_buffer"] = {
            name: bool(engine.gradient_buffer.is_in_memory(values[name])) for name in params["report"]
        }
        return
    divergence = params["divergence"]
    engine.backward(values[divergence] if isinstance(divergence, str) else divergence)
    for name in params["grads"]:
        out[f"grad/{name}"] = snapshot(engine.gradient_buffer.get_param(values[name]),
                                       f"the buffer holds no array for {name}")
    for name in params.get("targets", []):
        out[f"target/{name}"] = np.array(values[name])


def same_objects(got, expected):
    """True if ``got`` is a list or tuple holding exactly the objects of ``expected``, in order."""
    return (isinstance(got, (list, tuple)) and len(got) == len(expected)
            and all(a is b for a, b in zip(got, expected)))


def tape_problems(operations, recorded):
    """What differs between the recorded Operations and the add_operation calls that made them."""
    problems = []
    for index, (operation, (inputs, output, updates, function, kwargs)) in enumerate(zip(operations, recorded)):
        where = f"operation_list[{index}]"
        if getattr(operation, "backward_operation", None) is not function:
            problems.append(f"{where}.backward_operation is not the primitive passed to add_operation")
        if not same_objects(getattr(operation, "inputs", None), inputs):
            problems.append(f"{where}.inputs are not the arrays passed to add_operation")
        if getattr(operation, "output", None) is not output:
            problems.append(f"{where}.output is not the array passed to add_operation")
        if not same_objects(getattr(operation, "gradients_to_update", None), updates):
            problems.append(f"{where}.gradients_to_update is not the list passed to add_operation")
        op_kwargs = getattr(operation, "kwargs", None)
        if not isinstance(op_kwargs, dict) or set(op_kwargs) != set(kwargs):
            problems.append(f"{where}.kwargs do not hold the keyword arguments passed to add_operation")
    return problems


def add_note(error, note):
    """Add ``note`` to ``error``'s notes (shown after its message), also before Python 3.11."""
    if hasattr(error, "add_note"):
        error.add_note(note)
    else:
        error.__notes__ = list(getattr(error, "__notes__", None) or []) + [note]


def with_update_hint(engine, run):
    """Run ``run()``; if it raises, note on the error any ``gradients_to_update`` entry recorded on
    ``engine`` with the transposed shape of its input (Linear passing ``dW`` for the input ``W.T``)."""
    calls, record = [], engine.add_operation

    def add_operation(*args, **kwargs):
        calls.append((args[0] if args else kwargs.get("inputs"),
                      args[2] if len(args) > 2 else kwargs.get("gradients_to_update")))
        return record(*args, **kwargs)

    try:
        engine.add_operation = add_operation
    except AttributeError:  # an engine class with __slots__: no hint
        return run()
    try:
        return run()
    except BaseException as error:
        hint = transposed_update(calls)
        if hint:
            add_note(error, hint)
        raise


def transposed_update(calls):
    """The hint for the first recorded gradients_to_update entry shaped as its input transposed, or None."""
    for inputs, updates in calls:
        try:
            pairs = list(zip(inputs, updates))
        except TypeError:
            continue
        for i, (array, target) in enumerate(pairs):
            if (isinstance(array, np.ndarray) and isinstance(target, np.ndarray) and array.ndim == 2
                    and target.shape != array.shape and target.shape == array.shape[::-1]):
                return (f"hint: gradients_to_update[{i}] has shape {target.shape} but input {i} has shape "
                        f"{array.shape}, its transpose: for the input self.W.T pass self.dW.T (a transposed view "
                        "of dW, so the engine adds into dW), not self.dW")
    return None


def probe_module(sub, arrays, params, out):
    """Run an activation, Linear or loss forward on the grader's tape, then backward."""
    engine = GraderTape()
    with_update_hint(engine, lambda: module_case(sub, engine, arrays, params, out))


def module_case(sub, engine, arrays, params, out):
    kind, name = params["kind"], params["module"]
    if kind == "activation":
        module = getattr(sub.nn, name)(engine)
        x = np.array(arrays["x"])
        out["y"] = snapshot(module.forward(x), "forward did not return an array")
        out["state"] = snapshot(module.state, "forward did not keep its output in .state")
        engine.backward(arrays["grad_output"])
        out["dx"] = gradient(engine, x, "x")
    elif kind == "linear":
        module = sub.nn.Linear(arrays["W"].shape[1], arrays["W"].shape[0], engine)
        module.W, module.b = np.array(arrays["W"]), np.array(arrays["b"])
        module.dW, module.db = np.zeros_like(module.W), np.zeros_like(module.b)
        x = np.array(arrays["x"])
        out["y"] = snapshot(module.forward(x), "forward did not return an array")
        engine.backward(arrays["grad_output"])
        out["dx"] = gradient(engine, x, "x")
        out["dW"] = np.array(module.dW)
        out["db"] = np.array(module.db)
    elif kind == "loss":
        module = getattr(sub.nn, name)(engine)
        y, y_hat = np.array(arrays["y"]), np.array(arrays["y_hat"])
        out["loss"] = snapshot(module.forward(y, y_hat), "forward did not return an array")
        out["loss_val"] = snapshot(module.loss_val, "forward did not keep the loss in .loss_val")
        engine.backward(1)
        out["dy_hat"] = gradient(engine, y_hat, "y_hat")
    else:
        raise ValueError(f"probe_module: unknown kind {kind!r}")


def gradient(engine, array, name):
    grad = engine.grad(array)
    if grad is None:
        return Missing(f"{name} received no gradient: forward recorded no operation with {name} as an input")
    return np.array(grad)


class FixedOrder:
    """Stands in for ``np.random.Generator`` in get_training_stats: returns the given orders."""

    def __init__(self, orders):
        self.orders = list(orders)

    def permutation(self, n):
        order = self.orders.pop(0)
        if len(order) != n:
            raise ValueError(f"FixedOrder.permutation: asked for {n} items, have an order of {len(order)}")
        return np.array(order)


def probe_mlp(sub, arrays, params, out):
    """Build hw/mlp.py's MLP with given weights and run one of its methods (``params["mode"]``)."""
    mlp_module = sub.mlp()
    engine = GraderTape() if params["engine"] == "grader" else sub.Autograd()
    activations = [getattr(sub.nn, name)(engine) for name in params["activations"]]
    criterion = getattr(sub.nn, params["criterion"])(engine)
    mlp = mlp_module.MLP(params["input_size"], params["output_size"], params["hiddens"], activations,
                         criterion, params["lr"], engine, momentum=params["momentum"])
    with_update_hint(engine, lambda: mlp_case(sub, mlp_module, mlp, engine, arrays, params, out))


def give_layers(layers, arrays):
    """Give layer i ``W{i}``, ``b{i}`` and ``dW{i}``, ``db{i}``, ``momentum_W{i}``, ``momentum_b{i}`` (zeros
    when not in ``arrays``)."""
    for i, layer in enumerate(layers):
        layer.W, layer.b = np.array(arrays[f"W{i}"]), np.array(arrays[f"b{i}"])
        for attribute, source in (("dW", "W"), ("db", "b"), ("momentum_W", "W"), ("momentum_b", "b")):
            given = arrays.get(f"{attribute}{i}")
            setattr(layer, attribute, np.zeros_like(getattr(layer, source)) if given is None else np.array(given))


def shared_mode(sub, engine, model, layers, arrays, params, out, name):
    """The modes the MLP and the CNN (``name``: "mlp", "cnn") share: forward, zero_grads, step; False for
    another mode."""
    mode = params["mode"]
    if mode == "forward":
        out["output"] = snapshot(model.forward(np.array(arrays["x"])), "forward did not return an array")
        out[f"{name}.output"] = snapshot(model.output, f"forward did not keep its result in {name}.output")
    elif mode == "zero_grads":
        dummy = np.ones(2)
        engine.add_operation([dummy], dummy.view(), [None], sub.F.identity_backward)
        model.zero_grads()
        out["tape_length"] = len(engine.operation_list)
        report_layers(layers, out, ("dW", "db"))
    elif mode == "step":
        for _ in range(params["steps"]):
            model.step()
        report_layers(layers, out, ("W", "b", "momentum_W", "momentum_b"))
    else:
        return False
    return True


def mlp_case(sub, mlp_module, mlp, engine, arrays, params, out):
    layers = mlp.linear_layers
    give_layers(layers, arrays)
    mode = params["mode"]
    if shared_mode(sub, engine, mlp, layers, arrays, params, out, "mlp"):
        return
    if mode == "total_loss":
        mlp.output = np.array(arrays["output"])
        out["total_loss"] = number(mlp.total_loss(np.array(arrays["labels"])), "MLP.total_loss")
    elif mode == "train_step":
        mlp.zero_grads()
        mlp.forward(np.array(arrays["x"]))
        out["total_loss"] = number(mlp.total_loss(np.array(arrays["labels"])), "MLP.total_loss")
        mlp.backward()
        mlp.step()
        report_layers(layers, out, ("W", "b"))
    elif mode == "training_stats":
        data = ((arrays["train_x"], arrays["train_labels"]), (arrays["val_x"], arrays["val_labels"]), None)
        rng = FixedOrder(arrays["orders"].tolist())
        stats = mlp_module.get_training_stats(mlp, data, params["epochs"], params["batch_size"], rng=rng)
        if not isinstance(stats, (tuple, list)) or len(stats) != 4:
            raise ProbeFailure(f"get_training_stats returned {type(stats).__name__}; it returns four lists "
                               "(train_loss, train_error, val_loss, val_error)")
        for name, values in zip(("train_loss", "train_error", "val_loss", "val_error"), stats):
            out[name] = number(values, f"get_training_stats's {name}")
    else:
        raise ValueError(f"probe_mlp: unknown mode {mode!r}")


def number(value, what):
    """``value`` (a number, or a list of them) as a float64 array; ProbeFailure naming ``what`` otherwise."""
    try:
        return np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise ProbeFailure(f"{what} returned {type(value).__name__}, not a number (or a list of numbers)") from None


def report_layers(layers, out, attributes):
    for i, layer in enumerate(layers):
        for attribute in attributes:
            out[f"{attribute}{i}"] = snapshot(getattr(layer, attribute, None), f"layer {i} has no array {attribute}")


# --------------------------------------------------------------------- the CNN and RNN packs
def tape_for(sub, params):
    """The grader's tape, or with ``params["engine"] == "student"`` the student's own Autograd."""
    return sub.Autograd() if params.get("engine") == "student" else GraderTape()


def gradient_on(engine, array, name):
    """The gradient ``engine`` (the grader's tape or the student's Autograd) accumulated for ``array``."""
    if isinstance(engine, GraderTape):
        return gradient(engine, array, name)
    return snapshot(engine.gradient_buffer.get_param(array), f"the buffer holds no array for {name}")


def set_parameters(module, arrays, names, suffix=""):
    """Give ``module`` the parameters ``names`` from ``arrays`` (``arrays[name + suffix]``), each with a zero
    gradient array ``d<name>``."""
    for name in names:
        value = np.array(arrays[name + suffix])
        setattr(module, name, value)
        setattr(module, "d" + name, np.zeros_like(value))


def probe_layer(sub, arrays, params, out):
    """Run a CNN layer (``params["module"]`` of ``nn`` with ``params["options"]``) forward on the grader's tape,
    then backward from ``grad_output``; out: y, dx, and a convolution's dW and db.

    A convolution gets its sizes from the given ``W`` (C_out, C_in, K, ...) and that ``W`` and ``b``.
    """
    engine = GraderTape()
    with_update_hint(engine, lambda: layer_case(sub, engine, arrays, params, out))


def layer_case(sub, engine, arrays, params, out):
    cls, options = getattr(sub.nn, params["module"]), params.get("options", {})
    if "W" in arrays:
        W = arrays["W"]
        module = cls(W.shape[1], W.shape[0], W.shape[2], autograd_engine=engine, **options)
        set_parameters(module, arrays, ("W", "b"))
    else:
        module = cls(autograd_engine=engine, **options)
    x = np.array(arrays["x"])
    out["y"] = snapshot(module.forward(x), "forward did not return an array")
    engine.backward(arrays["grad_output"])
    out["dx"] = gradient(engine, x, "x")
    if "W" in arrays:
        out["dW"], out["db"] = np.array(module.dW), np.array(module.db)


RECURRENT_PARAMETERS = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")


def probe_recurrent(sub, arrays, params, out):
    """Run an RNNCell or GRUCell (``params["cell"]``) one step, or unrolled over a sequence by ``nn.Recurrent``
    (``params["sequence"]``: its options), forward then backward from ``grad_output``, on the grader's tape or
    the student's engine; out: y, dx, dh (when ``h`` is given) and each parameter's gradient."""
    engine = tape_for(sub, params)
    with_update_hint(engine, lambda: recurrent_case(sub, engine, arrays, params, out))


def recurrent_case(sub, engine, arrays, params, out):
    input_size, hidden_size = arrays["weight_ih"].shape[1], arrays["weight_hh"].shape[1]
    cell = getattr(sub.nn, params["cell"])(input_size, hidden_size, engine, **params.get("options", {}))
    set_parameters(cell, arrays, RECURRENT_PARAMETERS)
    x = np.array(arrays["x"])
    h = np.array(arrays["h"]) if "h" in arrays else None
    if params.get("sequence") is None:
        y = cell.forward(x, h)
    else:
        y = sub.nn.Recurrent(cell).forward(x, h, **params["sequence"])
    out["y"] = snapshot(y, "forward did not return an array")
    engine.backward(arrays["grad_output"])
    out["dx"] = gradient_on(engine, x, "x")
    if h is not None:
        out["dh"] = gradient_on(engine, h, "h")
    for name in RECURRENT_PARAMETERS:
        out["d" + name] = snapshot(getattr(cell, "d" + name, None), f"the cell has no array d{name}")


def probe_model(sub, arrays, params, out):
    """Build the pack's model (hw/cnn.py's CNN, hw/rnn.py's GRUClassifier) with given parameters and run
    ``params["mode"]`` on the grader's tape or the student's engine."""
    engine = tape_for(sub, params)
    case_of = {"CNN": cnn_case, "GRUClassifier": gru_classifier_case}[params["model"]]
    with_update_hint(engine, lambda: case_of(sub, engine, arrays, params, out))


def cnn_case(sub, engine, arrays, params, out):
    """The CNN's forward, zero_grads, step, or a training step whose loss gradient is ``grad_output``."""
    cnn = sub.hw("cnn").CNN(tuple(params["input_shape"]), params["output_size"], params["channels"],
                            params["kernel_sizes"], sub.nn.SoftmaxCrossEntropy(engine), params["lr"], engine,
                            momentum=params["momentum"], dtype=arrays["W0"].dtype)
    layers = [layer for layer in cnn.layers if hasattr(layer, "W")]  # the convolutions, then the Linear
    give_layers(layers, arrays)
    mode = params["mode"]
    if shared_mode(sub, engine, cnn, layers, arrays, params, out, "cnn"):
        return
    if mode == "train_step":
        cnn.zero_grads()
        out["output"] = snapshot(cnn.forward(np.array(arrays["x"])), "forward did not return an array")
        engine.backward(arrays["grad_output"])
        cnn.step()
        report_layers(layers, out, ("W", "b"))
    else:
        raise ValueError(f"probe_model: unknown mode {mode!r}")


GRU_CLASSIFIER_GRADIENTS = ("dweight_ih", "dweight_hh", "dbias_ih", "dbias_hh", "dW", "db")


def gru_classifier_case(sub, engine, arrays, params, out):
    """GRUClassifier.forward with given parameters (``p0`` ... ``p5`` in ``parameters()`` order), then backward
    from ``grad_output``: out: output and the gradient of each parameter."""
    model = sub.hw("rnn").GRUClassifier(params["input_size"], params["hidden_size"], params["output_size"], engine,
                                        params["lr"], steps=params.get("steps"), dtype=arrays["p0"].dtype)
    pairs = model.parameters()
    if len(pairs) != len(GRU_CLASSIFIER_GRADIENTS):
        raise ProbeFailure(f"GRUClassifier.parameters() gave {len(pairs)} pairs; it gives the GRU cell's four "
                           "then the Linear layer's two")
    for i, (param, grad) in enumerate(pairs):
        param[...] = arrays[f"p{i}"]
        grad[...] = 0
    out["output"] = snapshot(model.forward(np.array(arrays["x"])), "forward did not return an array")
    engine.backward(arrays["grad_output"])
    for name, (_, grad) in zip(GRU_CLASSIFIER_GRADIENTS, pairs):
        out[name] = np.array(grad)


PROBES = {
    "primitive": probe_primitive,
    "graph": probe_graph,
    "module": probe_module,
    "mlp": probe_mlp,
    "layer": probe_layer,
    "recurrent": probe_recurrent,
    "model": probe_model,
}


def set_promotion(state):
    """Set NumPy's type promotion state ("weak" is NumPy 2's NEP 50); returns the one before.

    NumPy 1.24-1.26 promote with value-based casting unless told otherwise, so there
    ``np.float32(x) / 4`` and a float32 0-d array divided by 4 are float64: code that keeps
    float32 on NumPy 2 would fail float32 checks on NumPy 1.x. The grader runs every case
    with NumPy 2's rules, which the expected values follow. On NumPy 2 this does nothing.
    """
    get = getattr(np, "_get_promotion_state", None)
    before = get() if get is not None else "weak"
    if before != state:
        np._set_promotion_state(state)
    return before


def run_case(sub, probe, arrays, params):
    """Run one case (with NumPy 2's type promotion); returns (out, error), error None or the exception raised."""
    out, before = {}, set_promotion("weak")
    try:
        PROBES[probe](sub, arrays, params, out)
    except BaseException as error:  # SystemExit too: a student's sys.exit costs this case only
        return out, error
    finally:
        set_promotion(before)
    return out, None
