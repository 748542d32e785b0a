"""The rules of an autograd tape, written once for every tape that needs them.

``mytorch.Autograd`` and the autograder's own tape (``GraderTape`` in
``autograder/probes.py``, which loads the grader's copy of this file by its path,
never a submission's) each hold a ``TapeRules`` and call it at the same points, so
the two enforce the same rules:

* ``check_operation`` before an operation is recorded: ``inputs`` and
  ``gradients_to_update`` are lists of one length; every input and the output are
  plain NumPy arrays of real numbers (no ``np.matrix``, no complex values); the
  output is a new array, neither one of its own inputs nor an array recorded by an
  earlier operation (that would make a cycle); each ``gradients_to_update`` entry is
  None or a writeable float array of its input's shape and gradient dtype; nothing
  is recorded while ``backward`` runs or after it ran.
* ``freeze`` after it is recorded: its arrays, and the arrays they are views of,
  become read-only until ``backward`` ends or ``zero_grad`` runs, so they cannot
  change before their gradients are computed. An array that was read-only already
  (another tape holds it, or its owner made it so), or a view of such an array, is
  copied instead, and ``start_backward`` refuses to go on if it changed.
* ``start_backward`` / ``call_primitive`` / ``warn_unused`` / ``end_backward``
  while ``backward`` runs: one ``backward`` per tape, never from inside a
  primitive; the divergence is real and broadcasts to the last output; each
  primitive returns one real gradient per input, of the input's shape.
* ``reset`` for ``zero_grad`` (refused while ``backward`` runs).

The return contract of a primitive (``gradient_tuple``): a tuple (or list) with one
gradient per input; a lone gradient when the operation has one input; each
gradient a NumPy array, where a NumPy scalar counts as a 0-d array (NumPy's
arithmetic on 0-d arrays returns one). Gradients are kept in their input's dtype
(``gradient_dtype``). Errors are TypeError (wrong kind of thing) or ValueError
(wrong shape or state) and name the operation as ``operation #index (primitive)``.

This file uses only NumPy and the standard library, so it can be loaded on its own.
"""
import warnings

import numpy as np

REAL_KINDS = "biuf"  # bool, signed and unsigned integers, floats: the dtypes a tape records
# What an ndarray subclass must not redefine to be recorded: with these NumPy's own, its
# arithmetic is NumPy's elementwise arithmetic (np.matrix redefines * and **, masked arrays
# most operators; np.memmap redefines none of them).
ARRAY_OPERATORS = (
    "__add__", "__radd__", "__sub__", "__rsub__", "__mul__", "__rmul__", "__truediv__",
    "__rtruediv__", "__matmul__", "__rmatmul__", "__pow__", "__rpow__", "__neg__", "__iadd__",
    "__array_ufunc__", "__array_function__",
)


class UnusedOperationWarning(RuntimeWarning):
    """An operation's output received no gradient, so its backward was skipped."""


def gradient_dtype(array):
    """The dtype a gradient of ``array`` is kept in: its own float dtype, else float64."""
    return array.dtype if array.dtype.kind == "f" else np.dtype(np.float64)


def name_of(function):
    """A primitive's name, for messages."""
    return getattr(function, "__name__", repr(function))


def where(index, function):
    """How messages name an operation: ``operation #3 (mul_backward)``."""
    return f"operation #{index} ({name_of(function)})"


def shape_list(arrays):
    return ", ".join(str(np.shape(a)) for a in arrays)


def is_plain_array(value):
    """True for a numpy.ndarray whose arithmetic is NumPy's (an ndarray or a subclass keeping its operators)."""
    if type(value) is np.ndarray:
        return True
    kind = type(value)
    return isinstance(value, np.ndarray) and all(
        getattr(kind, name, None) is getattr(np.ndarray, name) for name in ARRAY_OPERATORS)


def array_problem(value):
    """Why ``value`` cannot be recorded or used as a gradient, or None if it can."""
    if not isinstance(value, np.ndarray):
        return f"is a {type(value).__name__}, not a numpy.ndarray"
    if not is_plain_array(value):
        return (f"is a {type(value).__module__}.{type(value).__name__}, an ndarray subclass whose "
                "operators are not NumPy's elementwise ones (np.matrix's * is a matrix product); "
                "convert it with np.asarray")
    if value.dtype.kind == "c":
        return f"is complex ({value.dtype}); the tape differentiates real numbers only"
    if value.dtype.kind not in REAL_KINDS:
        return f"has dtype {value.dtype}; only arrays of real numbers can be used"
    return None


def gradient_tuple(result, count, what, context=""):
    """What a primitive returned, as a tuple of ``count`` arrays (the return contract); else raise.

    ``what`` names the primitive and ``context`` (appended) the shapes involved, in
    messages. The gradients' shapes are not checked here.
    """
    if isinstance(result, (np.ndarray, np.generic)) and count == 1:
        result = (result,)
    elif not isinstance(result, (tuple, list)):
        raise TypeError(f"{what} returned a {type(result).__name__}; a primitive returns a tuple with one "
                        f"gradient per input ({count}){context}")
    if len(result) != count:
        raise ValueError(f"{what} returned {len(result)} gradients for {count} inputs{context}")
    gradients = []
    for i, grad in enumerate(result):
        if isinstance(grad, np.generic):
            grad = np.asarray(grad)
        if not isinstance(grad, np.ndarray):
            raise TypeError(f"{what} returned a {type(grad).__name__} as gradient {i}; expected a numpy "
                            f"array{context}")
        problem = array_problem(grad)
        if problem is not None:
            raise TypeError(f"{what} returned gradient {i}, which {problem}{context}")
        gradients.append(grad)
    return tuple(gradients)


class TapeRules:
    """What one tape needs to enforce the rules: what it recorded, what it froze, whether backward runs.

    ``count`` is the number of operations recorded (the next one's index).
    """

    def __init__(self):
        self.running = False  # backward is running
        self._clear()

    def _clear(self):
        self.count = 0
        self.done = False  # backward ran; only reset() (zero_grad) allows recording again
        self._primitives = []  # the primitive of each operation recorded, by index
        self._last_output = None
        self._recorded = {}  # id -> (array, index, position) of every recorded array (kept alive: ids stay unique)
        self._locked = {}  # id -> array this tape made read-only, bases before their views
        self._snapshots = []  # (array, its bytes, index, position) for arrays read-only already

    # ------------------------------------------------------------------ recording
    def check_operation(self, inputs, output, gradients_to_update, backward_operation):
        """Raise TypeError or ValueError, naming the operation, unless it may be recorded."""
        def here():
            return where(self.count, backward_operation)

        if self.running:
            raise ValueError(f"add_operation: cannot record {here()} while backward() runs (a primitive "
                             "must not record operations)")
        if self.done:
            raise ValueError(f"add_operation: cannot record {here()}: backward() already ran on this tape; "
                             "call zero_grad() before recording a new forward pass")
        if not callable(backward_operation):
            raise TypeError(f"add_operation: backward_operation of {here()} is not callable")
        if not isinstance(inputs, (list, tuple)) or not isinstance(gradients_to_update, (list, tuple)):
            raise TypeError(f"add_operation: inputs and gradients_to_update of {here()} must be lists")
        if len(inputs) != len(gradients_to_update):
            raise ValueError(
                f"add_operation: {here()} has {len(inputs)} inputs but {len(gradients_to_update)} entries "
                "in gradients_to_update (one per input, None to use the buffer) "
                f"(inputs: [{shape_list(inputs)}], output: {np.shape(output)})")
        for i, (array, target) in enumerate(zip(inputs, gradients_to_update)):
            if type(array) is not np.ndarray or array.dtype.kind not in REAL_KINDS:
                problem = array_problem(array)
                if problem is not None:
                    hint = "" if isinstance(array, np.ndarray) else (
                        " (wrap constants with np.asarray; pass axis, shape, index or exponent as keyword "
                        "arguments)")
                    raise TypeError(f"add_operation: input {i} of {here()} {problem}{hint}")
            if array is output:
                raise ValueError(f"add_operation: the output of {here()} is the same array object as input "
                                 f"{i}; return a new array (e.g. x.view(), or compute without out=x) so the "
                                 "two get separate gradients")
            if target is not None and not (  # the usual case, a float array like its input, checked quickly
                    type(target) is np.ndarray and target.shape == array.shape and target.dtype == array.dtype
                    and target.dtype.kind == "f" and target.flags.writeable):
                self._check_target(i, target, array, here)
        if type(output) is not np.ndarray or output.dtype.kind not in REAL_KINDS:
            problem = array_problem(output)
            if problem is not None:
                hint = " (NumPy reductions return scalars: wrap them with np.asarray)" if isinstance(
                    output, np.generic) else ""
                raise TypeError(f"add_operation: the output of {here()} {problem}{hint}")
        seen = self._recorded.get(id(output))
        if seen is not None:
            _, index, position = seen
            role = "the output" if position is None else f"input {position}"
            raise ValueError(f"add_operation: the output of {here()} (shape {output.shape}) is already {role} "
                             f"of {where(index, self._primitives[index])}; recording it again would make a "
                             "cycle: every operation must produce a new array")

    def _check_target(self, i, target, array, here):
        """Raise unless ``target`` can receive input ``i``'s gradient in place."""
        if not isinstance(target, np.ndarray):
            raise ValueError(f"add_operation: gradients_to_update[{i}] of {here()} is a "
                             f"{type(target).__name__}; give None or a numpy array of input {i}'s shape "
                             f"{array.shape}")
        if target.shape != array.shape:
            raise ValueError(f"add_operation: gradients_to_update[{i}] of {here()} has shape "
                             f"{target.shape}, but input {i} has shape {array.shape}")
        dtype = gradient_dtype(array)
        if target.dtype != dtype or not target.flags.writeable or not is_plain_array(target):
            raise ValueError(f"add_operation: gradients_to_update[{i}] of {here()} must be a writeable "
                             f"numpy array of dtype {dtype}, the gradient dtype of input {i} (got "
                             f"{type(target).__name__} of dtype {target.dtype}, "
                             f"writeable={target.flags.writeable})")

    def freeze(self, inputs, output, backward_operation):
        """Count the operation just recorded and keep its arrays from changing until backward ends."""
        index = self.count
        self.count = index + 1
        self._primitives.append(backward_operation)
        self._last_output = output
        recorded = self._recorded
        for position, array in enumerate(inputs):
            if id(array) not in recorded:
                self._protect(array, index, position)
        self._protect(output, index, None)

    def _protect(self, array, index, position):
        """Make ``array`` (and the array it views) read-only, or remember its bytes if we cannot."""
        self._recorded[id(array)] = (array, index, position)
        locked = self._locked
        base = array.base
        if base is not None and isinstance(base, np.ndarray) and id(base) not in locked:
            if not base.flags.writeable:  # someone else's read-only data: we could not release a view of it
                self._snapshots.append((array, array.tobytes(), index, position))
                return
            base.setflags(write=False)
            locked[id(base)] = base
        if array.flags.writeable:
            array.setflags(write=False)
            locked[id(array)] = array
        elif isinstance(base, np.ndarray):
            locked[id(array)] = array  # a view born read-only because we locked its base
        else:  # read-only already (another tape, or its owner): it may become writeable behind us
            self._snapshots.append((array, array.tobytes(), index, position))

    def _release(self):
        """Make writeable again every array this tape made read-only (bases first, then their views)."""
        locked, self._locked = self._locked, {}
        for array in locked.values():
            try:
                array.setflags(write=True)  # (setflags is faster than assigning to .flags)
            except ValueError:  # a view whose base someone else made read-only since
                pass

    # ------------------------------------------------------------------ backward
    def start_backward(self, divergence):
        """Check the tape may run backward now; return the last operation's upstream gradient.

        That gradient is ``divergence`` broadcast to the last output's shape, in its
        gradient dtype (so ``backward(1)`` differentiates ``output.sum()``).
        """
        if self.running:
            raise ValueError("backward: called while backward() runs (from inside a primitive?); a "
                             "primitive computes gradients and must not call backward() or zero_grad()")
        if not self.count:
            raise ValueError("backward: the tape is empty: no operation was recorded (was the forward pass "
                             "run inside no_grad(), or after zero_grad()?)")
        if self.done:
            raise ValueError("backward: backward() already ran on this tape and its arrays are writeable "
                             "again; call zero_grad() and run the forward pass again")
        for array, saved, index, position in self._snapshots:
            if array.tobytes() != saved:
                what = "the output" if position is None else f"input {position}"
                raise ValueError(
                    f"backward: {what} of {where(index, self._primitives[index])} (shape {array.shape}) "
                    "changed after it was "
                    "recorded, so its gradients would be wrong; it was read-only when recorded and "
                    "something (another tape's backward?) made it writeable; call zero_grad() and run "
                    "the forward pass again")
        grad = self._divergence(divergence)
        self.running = True
        return grad

    def _divergence(self, divergence):
        output = self._last_output
        dtype = gradient_dtype(output)
        if type(divergence) in (int, float):
            return np.full(output.shape, divergence, dtype=dtype)
        here = where(self.count - 1, self._primitives[-1])
        if np.iscomplexobj(divergence):
            raise TypeError(f"backward: the divergence is complex; the tape differentiates real numbers "
                            f"only (output of {here})")
        value = np.asarray(divergence)
        if value.dtype.kind not in REAL_KINDS:
            raise TypeError(f"backward: the divergence has dtype {value.dtype}; expected real numbers")
        try:
            return np.broadcast_to(value, output.shape).astype(dtype)
        except ValueError as error:
            raise ValueError(f"backward: divergence of shape {value.shape} cannot be broadcast to the "
                             f"output {output.shape} of {here}") from error

    def call_primitive(self, index, operation, grad_output):
        """Run the operation's primitive on ``grad_output``; return its gradients, one per input, checked.

        The primitive is called as ``backward_operation(grad_output, *inputs, **kwargs)``;
        what it returns must follow the return contract, each gradient real and of its
        input's shape. An exception from the primitive gets a note naming the operation.
        """
        inputs = operation.inputs
        try:
            result = operation.backward_operation(grad_output, *inputs, **operation.kwargs)
        except Exception as error:
            if hasattr(error, "add_note"):  # Python >= 3.11
                error.add_note(f"(in backward of {where(index, operation.backward_operation)})")
            raise
        if type(result) is tuple and len(result) == len(inputs):  # the usual case, checked quickly
            for grad, array in zip(result, inputs):
                if type(grad) is not np.ndarray or grad.shape != array.shape or grad.dtype.kind != "f":
                    break
            else:
                return result
        here = where(index, operation.backward_operation)
        shapes = f" (inputs: [{shape_list(inputs)}], output: {operation.output.shape})"
        gradients = gradient_tuple(result, len(inputs), f"backward: {here}", shapes)
        for i, (grad, array) in enumerate(zip(gradients, inputs)):
            if grad.shape != array.shape:
                raise ValueError(f"backward: {here} returned gradient {i} of shape {grad.shape}, but input {i} "
                                 f"has shape {array.shape}{shapes}; undo broadcasting with unbroadcast()")
        return gradients

    def warn_unused(self, index, operation):
        """Warn that an operation's output received no gradient, so its backward is skipped."""
        warnings.warn(
            f"backward: {where(index, operation.backward_operation)} with output {operation.output.shape} "
            "received no gradient: no later recorded operation used its output with a buffer spot (a copy "
            "or an unrecorded computation may have broken the chain); its backward was skipped",
            UnusedOperationWarning, stacklevel=3)

    def end_backward(self):
        """Backward is over (finished or failed): the tape is spent and its arrays writeable again."""
        self.running = False
        self.done = True
        self._release()

    # ------------------------------------------------------------------ zero_grad
    def reset(self):
        """Forget the tape (for zero_grad): release its arrays; refused while backward runs."""
        if self.running:
            raise ValueError("zero_grad: called while backward() runs (from inside a primitive?); call it "
                             "after backward() returns")
        self._release()
        self._clear()
