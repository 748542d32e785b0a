"""A reverse-mode autograd engine built as a linear tape.

Every forward computation is recorded as an ``Operation`` appended to
``Autograd.operation_list``. ``Autograd.backward`` walks that list in reverse and
calls each operation's backward primitive (see ``mytorch.nn.functional``), adding
the gradients it returns either to the engine's ``GradientBuffer`` or to arrays the
caller owns (such as a layer's ``dW``).
"""
import contextlib
import warnings

import numpy as np

from mytorch.utils import GradientBuffer, gradient_dtype

_NUMERIC_KINDS = "biuf"  # bool, signed and unsigned int, float


class UnusedOperationWarning(RuntimeWarning):
    """An operation's output received no gradient, so its backward was skipped."""


def _shape_list(arrays):
    return ", ".join(str(np.shape(a)) for a in arrays)


def _name(function):
    return getattr(function, "__name__", repr(function))


class Operation:
    """One recorded step of the forward pass.

    ``inputs`` are arrays, ``output`` is the array the step produced,
    ``gradients_to_update[i]`` is None (the engine keeps input i's gradient in its
    buffer) or an array that input i's gradient is added to in place.
    ``backward_operation(grad_output, *inputs, **kwargs)`` returns one gradient per
    input; ``kwargs`` holds non-array arguments (axis, index, exponent, out, ...).
    """

    def __init__(self, inputs, output, gradients_to_update, backward_operation, kwargs=None):
        self.inputs = inputs
        self.output = output
        self.gradients_to_update = gradients_to_update
        self.backward_operation = backward_operation
        self.kwargs = kwargs if kwargs is not None else {}

    @property
    def name(self):
        """The backward primitive's name."""
        return _name(self.backward_operation)

    def __repr__(self):
        updates = ", ".join("buffer" if t is None else f"array{t.shape}" for t in self.gradients_to_update)
        extra = "".join(f", {k}={v!r}" for k, v in self.kwargs.items() if not isinstance(v, np.ndarray))
        return (
            f"Operation({self.name}: inputs [{_shape_list(self.inputs)}] -> output "
            f"{self.output.shape}, gradients to [{updates}]{extra})"
        )


class Autograd:
    """A tape of operations and the buffer holding their intermediate gradients.

    Several engines may exist at once; each has its own tape and buffer.
    While an array is recorded on the tape it (and the array it is a view of) is
    made read-only, so it cannot change before ``backward`` uses it; ``backward``
    and ``zero_grad`` make it writeable again. An array that was already
    read-only for another reason (another engine, the user) is copied instead,
    and ``backward`` raises if it changed.
    """

    def __init__(self):
        self.operation_list = []
        self.gradient_buffer = GradientBuffer()
        self._paused = 0  # depth of nested no_grad() blocks
        self._outputs = set()  # ids of recorded outputs (each array is produced once)
        self._frozen = {}  # id -> array this engine made read-only
        self._snapshots = {}  # id -> (array, its bytes, where recorded) for arrays read-only already
        self._backward_done = False

    # ------------------------------------------------------------------ recording
    def add_operation(self, inputs, output, gradients_to_update, backward_operation, **kwargs):
        """Record one operation.

        ``inputs`` is a list of arrays, ``output`` the array computed from them,
        ``gradients_to_update`` one entry per input (None, or the caller's own
        gradient array for that input, incremented in place by ``backward``),
        ``backward_operation`` the primitive that computes the input gradients.
        Extra keyword arguments are stored and passed to the primitive.
        """
        if self._paused:
            return
        self._check_operation(inputs, output, gradients_to_update, backward_operation)
        # BEGIN SOLUTION
        for array, target in zip(inputs, gradients_to_update):
            if target is None:
                self.gradient_buffer.add_spot(array)
        self.operation_list.append(
            Operation(inputs, output, gradients_to_update, backward_operation, kwargs)
        )
        # END SOLUTION
        self._freeze(inputs, output)

    @contextlib.contextmanager
    def no_grad(self):
        """Inside this block nothing is recorded (use it for evaluation passes)."""
        self._paused += 1
        try:
            yield self
        finally:
            self._paused -= 1

    # ------------------------------------------------------------------ backward
    def backward(self, divergence=1):
        """Propagate gradients through the tape, last operation first.

        The last operation's upstream gradient is ``divergence`` broadcast to its
        output's shape (so ``backward(1)`` differentiates ``output.sum()``); every
        earlier operation gets the gradient accumulated for its output.
        """
        self._check_backward()
        try:
            # BEGIN SOLUTION
            last = len(self.operation_list) - 1
            for index in range(last, -1, -1):
                operation = self.operation_list[index]
                if index == last:
                    grad_output = self._divergence_gradient(index, operation, divergence)
                elif self.gradient_buffer.has_gradient(operation.output):
                    grad_output = self.gradient_buffer.get_param(operation.output)
                else:
                    self._warn_unused(index, operation)
                    continue
                gradients = self._run_primitive(index, operation, grad_output)
                for array, target, grad in zip(operation.inputs, operation.gradients_to_update, gradients):
                    if target is None:
                        self.gradient_buffer.update_param(array, grad)
                    else:
                        target += grad
            # END SOLUTION
        finally:
            self._backward_done = True
            self._thaw()

    def zero_grad(self):
        """Empty the tape and the buffer (recorded arrays become writeable again)."""
        self._thaw()
        self.gradient_buffer.clear()
        self.operation_list = []
        self._outputs = set()
        self._snapshots = {}
        self._backward_done = False

    # ------------------------------------------------------------------ helpers
    def _where(self, index, backward_operation):
        return f"operation #{index} ({_name(backward_operation)})"

    def _check_operation(self, inputs, output, gradients_to_update, backward_operation):
        """Raise TypeError/ValueError naming the operation if its arguments are wrong."""
        ok = (
            not self._backward_done
            and isinstance(inputs, (list, tuple))
            and isinstance(gradients_to_update, (list, tuple))
            and len(inputs) == len(gradients_to_update)
            and isinstance(output, np.ndarray)
            and id(output) not in self._outputs
            and callable(backward_operation)
        )
        if ok:
            for array, target in zip(inputs, gradients_to_update):
                if not (
                    isinstance(array, np.ndarray)
                    and array.dtype.kind in _NUMERIC_KINDS
                    and array is not output
                    and (target is None or (
                        isinstance(target, np.ndarray)
                        and target.shape == array.shape
                        and target.dtype.kind == "f"
                        and target.flags.writeable
                    ))
                ):
                    ok = False
                    break
        if not ok:  # find the first problem and describe it
            self._raise_bad_operation(inputs, output, gradients_to_update, backward_operation)

    def _describe(self, inputs, output):
        return f"(inputs: [{_shape_list(inputs)}], output: {np.shape(output)})"

    def _raise_bad_operation(self, inputs, output, gradients_to_update, backward_operation):
        where = self._where(len(self.operation_list), backward_operation)
        if self._backward_done:
            raise ValueError(
                f"add_operation: cannot record {where}: backward() already ran on this tape; "
                "call zero_grad() before recording a new forward pass"
            )
        if not callable(backward_operation):
            raise TypeError(f"add_operation: backward_operation of {where} is not callable")
        if not isinstance(inputs, (list, tuple)) or not isinstance(gradients_to_update, (list, tuple)):
            raise TypeError(f"add_operation: inputs and gradients_to_update of {where} must be lists")
        if len(inputs) != len(gradients_to_update):
            raise ValueError(
                f"add_operation: {where} has {len(inputs)} inputs but {len(gradients_to_update)} "
                "entries in gradients_to_update (one per input, None to use the buffer) "
                f"{self._describe(inputs, output)}"
            )
        for i, (array, target) in enumerate(zip(inputs, gradients_to_update)):
            if not isinstance(array, np.ndarray):
                raise TypeError(
                    f"add_operation: input {i} of {where} is a {type(array).__name__}, not a "
                    "numpy.ndarray (wrap constants with np.asarray; pass axis, shape, index "
                    "or exponent as keyword arguments)"
                )
            if array.dtype.kind not in _NUMERIC_KINDS:
                raise TypeError(
                    f"add_operation: input {i} of {where} has dtype {array.dtype}; only real "
                    "numeric arrays can be recorded"
                )
            if array is output:
                raise ValueError(
                    f"add_operation: the output of {where} is the same array object as input {i}; "
                    "return a new array (e.g. x.view()) so the two get separate gradients"
                )
            if target is None:
                continue
            if not isinstance(target, np.ndarray) or target.shape != array.shape:
                raise ValueError(
                    f"add_operation: gradients_to_update[{i}] of {where} has shape "
                    f"{np.shape(target)}, but input {i} has shape {array.shape}"
                )
            if target.dtype.kind != "f" or not target.flags.writeable:
                raise ValueError(
                    f"add_operation: gradients_to_update[{i}] of {where} must be a writeable "
                    f"float array (got dtype {target.dtype}, writeable={target.flags.writeable})"
                )
        if not isinstance(output, np.ndarray):
            raise TypeError(
                f"add_operation: the output of {where} is a {type(output).__name__}, not a "
                "numpy.ndarray (NumPy reductions return scalars: wrap them with np.asarray)"
            )
        if id(output) in self._outputs:
            raise ValueError(
                f"add_operation: the output of {where} (shape {output.shape}) is already the "
                "output of an earlier operation; every operation must produce a new array"
            )

    def _freeze(self, inputs, output):
        """Make recorded arrays, and the arrays they view, read-only until backward."""
        self._outputs.add(id(output))
        index = len(self.operation_list) - 1
        for position, array in enumerate(inputs):
            self._freeze_array(array, index, position)
        self._freeze_array(output, index, None)

    def _freeze_array(self, array, index, position):
        """Make ``array`` and the array it views read-only; snapshot it if it is read-only already."""
        key = id(array)
        if key in self._frozen or key in self._snapshots:
            return
        base = array.base if isinstance(array.base, np.ndarray) else None
        if array.flags.writeable:
            array.setflags(write=False)
            self._frozen[key] = array
        elif base is not None and id(base) in self._frozen:
            self._frozen[key] = array  # a view made read-only by freezing its base earlier
        else:  # read-only already: someone else may make it writeable, so remember its bytes
            self._snapshots[key] = (array, array.tobytes(), index, position)
        if base is not None and id(base) not in self._frozen and base.flags.writeable:
            base.setflags(write=False)
            self._frozen[id(base)] = base

    def _thaw(self):
        """Make writeable again every array ``_freeze`` made read-only."""
        frozen, self._frozen = list(self._frozen.values()), {}
        retry = []
        for array in frozen:
            try:
                array.setflags(write=True)
            except ValueError:  # a view whose base is still read-only: retry after the others
                retry.append(array)
        for array in retry:
            try:
                array.setflags(write=True)
            except ValueError:  # its base was made read-only by someone else
                pass

    def _check_backward(self):
        if not self.operation_list:
            raise ValueError(
                "backward: the tape is empty: no operation was recorded (was the forward pass "
                "run inside no_grad(), or after zero_grad()?)"
            )
        if self._backward_done:
            raise ValueError(
                "backward: backward() already ran on this tape and its arrays are writeable "
                "again; call zero_grad() and run the forward pass again"
            )
        for array, saved, index, position in self._snapshots.values():
            if array.tobytes() != saved:
                what = "the output" if position is None else f"input {position}"
                where = self._where(index, self.operation_list[index].backward_operation)
                raise ValueError(
                    f"backward: {what} of {where} (shape {array.shape}) changed after it was "
                    "recorded, so its gradients would be wrong; it was read-only when recorded "
                    "and something (another engine's backward?) made it writeable; call "
                    "zero_grad() and run the forward pass again"
                )

    def _divergence_gradient(self, index, operation, divergence):
        """The upstream gradient of the last operation: divergence broadcast to its output."""
        output = operation.output
        if isinstance(divergence, (int, float)):
            return np.full(output.shape, divergence, dtype=gradient_dtype(output))
        try:
            grad = np.broadcast_to(np.asarray(divergence, dtype=gradient_dtype(output)), output.shape)
        except (ValueError, TypeError) as error:
            raise ValueError(
                f"backward: divergence of shape {np.shape(divergence)} cannot be broadcast to the "
                f"output {output.shape} of {self._where(index, operation.backward_operation)}"
            ) from error
        return grad.copy()

    def _run_primitive(self, index, operation, grad_output):
        """Call the operation's primitive and check it returned one right-shaped gradient per input."""
        inputs = operation.inputs
        try:
            gradients = operation.backward_operation(grad_output, *inputs, **operation.kwargs)
        except Exception as error:
            if hasattr(error, "add_note"):  # Python >= 3.11
                error.add_note(f"(in backward of {self._where(index, operation.backward_operation)})")
            raise
        if type(gradients) is not tuple:
            if isinstance(gradients, list):
                gradients = tuple(gradients)
            elif len(inputs) == 1:  # a lone gradient for a lone input
                gradients = (gradients,)
            else:
                raise TypeError(
                    f"backward: {self._where(index, operation.backward_operation)} returned a "
                    f"{type(gradients).__name__}; a primitive returns a tuple with one gradient "
                    f"per input ({len(inputs)}) {self._describe(inputs, operation.output)}"
                )
        if len(gradients) != len(inputs):
            raise ValueError(
                f"backward: {self._where(index, operation.backward_operation)} returned "
                f"{len(gradients)} gradients for {len(inputs)} inputs "
                f"{self._describe(inputs, operation.output)}"
            )
        for i, (grad, array) in enumerate(zip(gradients, inputs)):
            if type(grad) is not np.ndarray or grad.shape != array.shape:
                gradients = self._fix_gradient(index, operation, gradients, i)
        return gradients

    def _fix_gradient(self, index, operation, gradients, i):
        """Accept a NumPy scalar for a 0-d input; otherwise raise naming the mismatch."""
        grad, array = gradients[i], operation.inputs[i]
        where = self._where(index, operation.backward_operation)
        if isinstance(grad, (np.generic, float, int)) and not isinstance(grad, bool):
            grad = np.asarray(grad)
        if not isinstance(grad, np.ndarray):
            raise TypeError(
                f"backward: {where} returned a {type(grad).__name__} as gradient {i}; "
                "expected a numpy.ndarray"
            )
        if grad.shape != array.shape:
            raise ValueError(
                f"backward: {where} returned gradient {i} of shape {grad.shape}, but input {i} "
                f"has shape {array.shape} {self._describe(operation.inputs, operation.output)}; "
                "undo broadcasting with unbroadcast()"
            )
        return gradients[:i] + (grad,) + gradients[i + 1:]

    def _warn_unused(self, index, operation):
        warnings.warn(
            f"backward: {self._where(index, operation.backward_operation)} with output "
            f"{operation.output.shape} received no gradient in the buffer: no later recorded "
            "operation used its output with a buffer spot (a copy or an unrecorded computation "
            "may have broken the chain); its backward was skipped",
            UnusedOperationWarning,
            stacklevel=3,
        )

    def __repr__(self):
        lines = [f"Autograd: {len(self.operation_list)} operations, {len(self.gradient_buffer)} buffered arrays"]
        for index, operation in enumerate(self.operation_list):
            ins = _shape_list(operation.inputs)
            lines.append(f"  #{index:<3} {operation.name:<30} [{ins}] -> {operation.output.shape}")
        return "\n".join(lines)
