"""A reverse-mode autograd engine built as a linear tape.

Every forward computation is recorded as an ``Operation`` appended to
``Autograd.operation_list``. ``Autograd.backward`` walks that list in reverse and
calls each operation's backward primitive (see ``mytorch.nn.functional``), adding
the gradients it returns either to the engine's ``GradientBuffer`` or to arrays the
caller owns (such as a layer's ``dW``).

The tape's rules (what may be recorded, what a primitive must return, recorded
arrays kept read-only until ``backward``) live in ``mytorch/_tape_rules.py``;
the engine calls them at the marked places, and you do not need to read them.
"""
import contextlib

import numpy as np

from mytorch._tape_rules import TapeRules, UnusedOperationWarning, shape_list
from mytorch.utils import GradientBuffer

__all__ = ["Operation", "Autograd", "UnusedOperationWarning"]


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
        return getattr(self.backward_operation, "__name__", repr(self.backward_operation))

    def __repr__(self):
        updates = ", ".join("buffer" if t is None else f"array{t.shape}" for t in self.gradients_to_update)
        extra = "".join(f", {k}={v!r}" for k, v in self.kwargs.items() if not isinstance(v, np.ndarray))
        return (f"Operation({self.name}: inputs [{shape_list(self.inputs)}] -> output "
                f"{self.output.shape}, gradients to [{updates}]{extra})")


class Autograd:
    """A tape of operations and the buffer holding their intermediate gradients.

    Several engines may exist at once; each has its own tape and buffer. From the
    moment an array is recorded until ``backward`` or ``zero_grad``, it (and the
    array it is a view of) is read-only, so it cannot change before its gradient
    is computed.
    """

    def __init__(self):
        self.operation_list = []
        self.gradient_buffer = GradientBuffer()
        self._rules = TapeRules()  # checks each operation and primitive, freezes recorded arrays
        self._paused = 0  # depth of nested no_grad() blocks

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
        self._rules.check_operation(inputs, output, gradients_to_update, backward_operation)
        # Make a buffer spot for each input whose gradients_to_update entry is None,
        # then append the Operation (with kwargs) to operation_list.
        # BEGIN SOLUTION
        for array, target in zip(inputs, gradients_to_update):
            if target is None:
                self.gradient_buffer.add_spot(array)
        self.operation_list.append(Operation(inputs, output, gradients_to_update, backward_operation, kwargs))
        # END SOLUTION
        self._rules.freeze(inputs, output, backward_operation)

    @contextlib.contextmanager
    def no_grad(self):
        """Inside this block nothing is recorded (use it for evaluation passes)."""
        self._paused += 1
        try:
            yield self
        finally:
            self._paused -= 1

    def backward(self, divergence=1):
        """Propagate gradients through the tape, last operation first.

        The last operation's upstream gradient is ``divergence`` broadcast to its
        output's shape (so ``backward(1)`` differentiates ``output.sum()``); every
        earlier operation gets the gradient accumulated for its output.
        """
        last_gradient = self._rules.start_backward(divergence)  # divergence broadcast to the last output
        try:
            # For each operation, from the last one recorded to the first (index counts from 0):
            # 1. its upstream gradient grad_output: last_gradient for the last operation; for the
            #    others, the gradient the buffer accumulated for its output (has_gradient/get_param);
            #    if there is none, call self._rules.warn_unused(index, operation) and skip it;
            # 2. gradients = self._rules.call_primitive(index, operation, grad_output): the
            #    primitive's gradients, one per input, checked;
            # 3. add each input's gradient where it belongs: into the buffer (update_param) if its
            #    gradients_to_update entry is None, else in place into that array (+=).
            # BEGIN SOLUTION
            last = len(self.operation_list) - 1
            for index in range(last, -1, -1):
                operation = self.operation_list[index]
                if index == last:
                    grad_output = last_gradient
                elif self.gradient_buffer.has_gradient(operation.output):
                    grad_output = self.gradient_buffer.get_param(operation.output)
                else:
                    self._rules.warn_unused(index, operation)
                    continue
                gradients = self._rules.call_primitive(index, operation, grad_output)
                for array, target, grad in zip(operation.inputs, operation.gradients_to_update, gradients):
                    if target is None:
                        self.gradient_buffer.update_param(array, grad)
                    else:
                        target += grad
            # END SOLUTION
        finally:
            self._rules.end_backward()  # the tape is spent; its arrays are writeable again

    def zero_grad(self):
        """Empty the tape and the buffer (recorded arrays become writeable again)."""
        self._rules.reset()
        self.gradient_buffer.clear()
        self.operation_list = []

    def __repr__(self):
        lines = [f"Autograd: {len(self.operation_list)} operations, {len(self.gradient_buffer)} buffered arrays"]
        for index, operation in enumerate(self.operation_list):
            ins = shape_list(operation.inputs)
            lines.append(f"  #{index:<3} {operation.name:<30} [{ins}] -> {operation.output.shape}")
        return "\n".join(lines)
