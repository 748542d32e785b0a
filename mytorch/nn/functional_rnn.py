"""Backward primitives for sequence models: stacking, concatenation, expand and squeeze.

They follow the contract of ``mytorch.nn.functional``::

    <name>_backward(grad_output, *inputs, **options) -> tuple of gradients

one gradient per input, in input order, each exactly its input's shape and in the
input's gradient dtype (its own float dtype, float64 for integer inputs).
``stack`` and ``concatenate`` are recorded with any number of inputs (the arrays
given to ``np.stack``/``np.concatenate``) and return one gradient per input. The
axis travels as the keyword option ``axis``. Slicing is ``getitem_backward`` in
``mytorch.nn.functional``.
"""
import numpy as np

from mytorch.utils import gradient_dtype


def _as_gradient(grad, a):
    """``grad`` in the dtype ``a``'s gradient is kept in (no copy when it already is)."""
    return grad.astype(gradient_dtype(a), copy=False)


def _check_axis(name, axis, ndim):
    """``axis`` as a non-negative int for an array of ``ndim`` dimensions, or a ValueError naming ``name``."""
    if not -ndim <= axis < ndim:
        raise ValueError(f"{name}: axis {axis} is out of range for a gradient of {ndim} dimensions")
    return axis % ndim


def stack_backward(grad_output, *inputs, axis=0):
    """out = np.stack(inputs, axis=axis); every input has the same shape."""
    # BEGIN SOLUTION
    axis = _check_axis("stack_backward", axis, grad_output.ndim)
    if grad_output.shape[axis] != len(inputs):
        raise ValueError(
            f"stack_backward: a gradient of shape {grad_output.shape} has {grad_output.shape[axis]} "
            f"entries along axis {axis}, but {len(inputs)} inputs were stacked"
        )
    slices = np.moveaxis(grad_output, axis, 0)  # slices[i] is input i's gradient (a view)
    return tuple(_as_gradient(g, a) for g, a in zip(slices, inputs))
    # END SOLUTION


def concatenate_backward(grad_output, *inputs, axis=0):
    """out = np.concatenate(inputs, axis=axis); the inputs may differ in size along ``axis``."""
    # BEGIN SOLUTION
    axis = _check_axis("concatenate_backward", axis, grad_output.ndim)
    sizes = [a.shape[axis] for a in inputs]
    if sum(sizes) != grad_output.shape[axis]:
        raise ValueError(
            f"concatenate_backward: inputs of sizes {sizes} along axis {axis} do not add up to the "
            f"gradient's {grad_output.shape[axis]} (gradient shape {grad_output.shape})"
        )
    pieces = np.split(grad_output, np.cumsum(sizes)[:-1], axis=axis)
    return tuple(_as_gradient(piece, a) for piece, a in zip(pieces, inputs))
    # END SOLUTION


def expand_dims_backward(grad_output, a, axis):
    """out = np.expand_dims(a, axis) (``axis`` an int or a tuple of ints)."""
    return (_as_gradient(np.reshape(grad_output, a.shape), a),)


def squeeze_backward(grad_output, a, axis=None):
    """out = np.squeeze(a, axis) (``axis`` None, an int or a tuple of ints)."""
    return (_as_gradient(np.reshape(grad_output, a.shape), a),)
