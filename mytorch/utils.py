"""GradientBuffer: the gradients of the arrays an engine tracks itself."""
import numpy as np

from mytorch._tape_rules import REAL_KINDS, gradient_dtype

__all__ = ["GradientBuffer", "gradient_dtype"]


class _Slot:
    """One buffer entry: the array (kept alive), its gradient so far, and whether we own it."""

    __slots__ = ("array", "grad", "owned")

    def __init__(self, array):
        self.array = array  # holding the array keeps id(array) from being reused
        self.grad = None  # None until the first gradient arrives
        self.owned = False  # True once ``grad`` is an array only this slot refers to


class GradientBuffer:
    """Gradients of intermediate arrays, keyed by the array object's identity.

    ``memory`` maps ``id(array)`` to a slot that also holds the array itself, so the
    id cannot be reused by another array while the entry lives, and two views of
    one block of memory are two different entries.
    """

    def __init__(self):
        self.memory = {}

    @staticmethod
    def get_memory_loc(np_array):
        """The key of ``np_array``: its identity, not its data pointer."""
        return id(np_array)

    def is_in_memory(self, np_array):
        return id(np_array) in self.memory

    def add_spot(self, np_array):
        """Make an empty gradient spot for ``np_array`` unless it has one.

        ``get_param`` reads zeros from a spot until a gradient arrives.
        """
        key = id(np_array)
        if key not in self.memory:
            self.memory[key] = _Slot(np_array)

    def _missing(self, np_array, action):
        return ValueError(
            f"GradientBuffer.{action}: the array of shape {np.shape(np_array)} has no spot "
            "in the buffer (add_spot it first; views and copies are different arrays)"
        )

    def update_param(self, np_array, gradient):
        """Add ``gradient`` to the gradient of ``np_array``."""
        slot = self.memory.get(id(np_array))
        if slot is None:
            raise self._missing(np_array, "update_param")
        if not isinstance(gradient, np.ndarray):
            raise TypeError(
                f"GradientBuffer.update_param: gradient must be a numpy.ndarray, got {type(gradient).__name__}"
            )
        if gradient.dtype.kind not in REAL_KINDS:
            raise TypeError(
                f"GradientBuffer.update_param: gradient must hold real numbers, got dtype {gradient.dtype}"
            )
        if gradient.shape != np_array.shape:
            raise ValueError(
                f"GradientBuffer.update_param: gradient shape {gradient.shape} differs from "
                f"the array's shape {np_array.shape}"
            )
        dtype = gradient_dtype(np_array)
        if slot.grad is None:
            # Stored without copying: the array may be shared (e.g. a primitive that
            # returned grad_output itself), so it is copied on the first accumulation.
            if gradient.dtype == dtype:
                slot.grad = gradient
            else:
                slot.grad, slot.owned = gradient.astype(dtype), True
        elif slot.owned:
            slot.grad += gradient
        else:
            slot.grad, slot.owned = np.add(slot.grad, gradient, dtype=dtype), True

    def has_gradient(self, np_array):
        """True once some gradient has been added for ``np_array``."""
        slot = self.memory.get(id(np_array))
        return slot is not None and slot.grad is not None

    def get_param(self, np_array):
        """The gradient of ``np_array`` (zeros if its spot received nothing yet).

        The stored array is returned, not a copy, and it may be shared with other
        entries (a primitive may pass one gradient to several inputs): copy it
        before changing it in place.
        """
        slot = self.memory.get(id(np_array))
        if slot is None:
            raise self._missing(np_array, "get_param")
        if slot.grad is None:
            slot.grad = np.zeros(np_array.shape, dtype=gradient_dtype(np_array))
            slot.owned = True
        return slot.grad

    def set_param(self, np_array, gradient):
        """Replace the gradient of ``np_array``."""
        slot = self.memory.get(id(np_array))
        if slot is None:
            raise self._missing(np_array, "set_param")
        if not isinstance(gradient, np.ndarray) or gradient.shape != np_array.shape:
            raise ValueError(
                f"GradientBuffer.set_param: expected an array of shape {np_array.shape}, "
                f"got {type(gradient).__name__} of shape {np.shape(gradient)}"
            )
        slot.grad = gradient
        slot.owned = False

    def clear(self):
        self.memory.clear()

    def __len__(self):
        return len(self.memory)

    def __repr__(self):
        return f"GradientBuffer({len(self.memory)} arrays)"
