"""Backward primitives.

Every primitive has the same contract::

    <name>_backward(grad_output, *inputs, **options) -> tuple of gradients

``grad_output`` is the gradient of the loss with respect to the operation's output;
the result is a tuple holding one gradient per input, in input order, each a NumPy
array exactly the shape of its input (a list is read like a tuple; a lone array is
accepted when there is one input; a NumPy scalar counts as a 0-d array, which is
what NumPy's arithmetic on 0-d arrays returns). Where the forward pass broadcast an
input, ``unbroadcast`` sums the gradient back to the input's shape. Non-array
arguments (axis, index, exponent) arrive as keyword ``options``; some primitives
also accept the forward output as ``out=`` to avoid recomputing it. A primitive
never writes into its inputs: on the tape they are read-only.
"""
import numpy as np


def unbroadcast(grad, shape):
    """Sum ``grad`` over the axes NumPy broadcast when an array of ``shape`` was used."""
    shape = tuple(shape)
    if grad.shape == shape:
        return grad
    if shape and grad.shape[1:] == shape:  # the common case: a bias broadcast over the batch
        return grad.sum(axis=0)
    lead = grad.ndim - len(shape)
    if lead < 0 or any(n != 1 and n != g for n, g in zip(shape, grad.shape[lead:])):
        raise ValueError(f"unbroadcast: a gradient of shape {grad.shape} cannot come from an input of shape {shape}")
    axes = tuple(range(lead)) + tuple(
        lead + i for i, n in enumerate(shape) if n == 1 and grad.shape[lead + i] != 1
    )
    return grad.sum(axis=axes, keepdims=True).reshape(shape)


def _expand_reduced(grad, axis, keepdims):
    """Reinsert the axes a reduction over ``axis`` removed, so ``grad`` broadcasts to its input.

    A helper for reductions such as sum and max: ``axis`` is None, an int or a tuple.
    """
    if axis is None or keepdims:
        return grad
    return np.expand_dims(grad, axis)


def _reduced_count(shape, axis):
    """How many elements a reduction over ``axis`` combined into each output element."""
    if axis is None:
        return int(np.prod(shape))
    axes = (axis,) if np.ndim(axis) == 0 else axis
    return int(np.prod([shape[a] for a in axes]))


def _numpy2_dtype(grad, *arrays):
    """``grad`` in the dtype NumPy 2 gives it (NumPy 1.x makes float64 of float32 0-d math with Python numbers)."""
    return np.asarray(grad, dtype=np.result_type(*arrays))


def stable_sigmoid(x):
    """1 / (1 + exp(-x)) without overflow for large |x|."""
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e))


def stable_log_softmax(x, axis=-1):
    """log(softmax(x)) computed stably (finite for logits of any size)."""
    shifted = x - x.max(axis=axis, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))


# --------------------------------------------------------------------- worked examples
def identity_backward(grad_output, a):
    """out = a."""
    return (grad_output,)


def add_backward(grad_output, a, b):
    """out = a + b (with broadcasting)."""
    return unbroadcast(grad_output, a.shape), unbroadcast(grad_output, b.shape)


# --------------------------------------------------------------------- student primitives
def sub_backward(grad_output, a, b):
    """out = a - b (with broadcasting)."""
    # BEGIN SOLUTION
    return unbroadcast(grad_output, a.shape), unbroadcast(-grad_output, b.shape)
    # END SOLUTION


def mul_backward(grad_output, a, b):
    """out = a * b (elementwise, with broadcasting)."""
    # BEGIN SOLUTION
    return unbroadcast(grad_output * b, a.shape), unbroadcast(grad_output * a, b.shape)
    # END SOLUTION


def div_backward(grad_output, a, b):
    """out = a / b (elementwise, with broadcasting)."""
    # BEGIN SOLUTION
    grad_a = grad_output / b
    return unbroadcast(grad_a, a.shape), unbroadcast(-grad_a * a / b, b.shape)
    # END SOLUTION


def matmul_backward(grad_output, a, b):
    """out = a @ b (2-D, 1-D and batched operands, as np.matmul).

    For 2-D arrays ``np.dot(x, y)`` is ``x @ y``; NumPy's ``@`` is several times slower
    when the shared axis has length 1 (the outer product a batch of one gives).
    """
    # BEGIN SOLUTION
    if a.ndim == 2 and b.ndim == 2:
        grad_a = np.dot(grad_output, b.T)
        grad_b = np.dot(a.T, grad_output)
        return grad_a, grad_b
    # As np.matmul does, treat a 1-D a as a row and a 1-D b as a column; batch axes broadcast.
    a2 = a[np.newaxis, :] if a.ndim == 1 else a
    b2 = b[:, np.newaxis] if b.ndim == 1 else b
    g2 = grad_output[..., np.newaxis] if b.ndim == 1 else grad_output
    g2 = g2[..., np.newaxis, :] if a.ndim == 1 else g2
    grad_a = unbroadcast(g2 @ np.swapaxes(b2, -1, -2), a2.shape)
    grad_b = unbroadcast(np.swapaxes(a2, -1, -2) @ g2, b2.shape)
    return grad_a.reshape(a.shape), grad_b.reshape(b.shape)
    # END SOLUTION


def outer_backward(grad_output, a, b):
    """out = np.outer(a, b) (inputs are flattened, as np.outer does)."""
    # BEGIN SOLUTION
    grad_a = grad_output @ b.ravel()
    grad_b = a.ravel() @ grad_output
    return grad_a.reshape(a.shape), grad_b.reshape(b.shape)
    # END SOLUTION


def log_backward(grad_output, a):
    """out = np.log(a)."""
    # BEGIN SOLUTION
    return (grad_output / a,)
    # END SOLUTION


def exp_backward(grad_output, a, out=None):
    """out = np.exp(a); pass the forward output as ``out`` to avoid recomputing it."""
    # BEGIN SOLUTION
    if out is None:
        out = np.exp(a)
    return (grad_output * out,)
    # END SOLUTION


def sum_backward(grad_output, a, axis=None, keepdims=False):
    """out = np.sum(a, axis=axis, keepdims=keepdims)."""
    # BEGIN SOLUTION
    grad = _expand_reduced(grad_output, axis, keepdims)
    return (np.broadcast_to(grad, a.shape).copy(),)
    # END SOLUTION


def max_backward(grad_output, a, axis=None, keepdims=False, out=None):
    """out = np.max(a, axis=axis, keepdims=keepdims); ties share the gradient equally."""
    # BEGIN SOLUTION
    if out is None:
        out = np.max(a, axis=axis, keepdims=keepdims)
    out = _expand_reduced(np.asarray(out), axis, keepdims)
    grad = _expand_reduced(grad_output, axis, keepdims)
    winners = a == out
    count = winners.sum(axis=axis, keepdims=True, dtype=grad_output.dtype)
    return (winners * (grad / count),)
    # END SOLUTION


def SoftmaxCrossEntropy_backward(grad_output, y, y_hat, log_softmax=None):
    """out = mean over the batch of -sum(y * log_softmax(y_hat), axis=1), shape (1,).

    ``y`` are the targets (one-hot or probabilities), ``y_hat`` the logits, both
    (N, C). Pass the forward pass's log-softmax as ``log_softmax`` to reuse it.
    """
    # BEGIN SOLUTION
    if log_softmax is None:
        log_softmax = stable_log_softmax(y_hat)
    scale = grad_output / y_hat.shape[0]
    softmax = np.exp(log_softmax)
    grad_y_hat = (softmax * y.sum(axis=1, keepdims=True) - y) * scale
    grad_y = -log_softmax * scale
    return grad_y, grad_y_hat
    # END SOLUTION


# --------------------------------------------------------------------- given primitives
def neg_backward(grad_output, a):
    """out = -a."""
    return (-grad_output,)


def pow_backward(grad_output, a, exponent):
    """out = a ** exponent, for a scalar ``exponent`` (a keyword option, not an input)."""
    if exponent == 0:  # a ** -1 would turn 0 * inf into nan at a == 0
        return (np.zeros_like(grad_output),)
    return (_numpy2_dtype(grad_output * (exponent * a ** (exponent - 1)), grad_output, a),)


def sqrt_backward(grad_output, a, out=None):
    """out = np.sqrt(a)."""
    if out is None:
        out = np.sqrt(a)
    return (_numpy2_dtype(grad_output / (2 * out), grad_output, a),)


def tanh_backward(grad_output, a, out=None):
    """out = np.tanh(a)."""
    if out is None:
        out = np.tanh(a)
    return (_numpy2_dtype(grad_output * (1 - out * out), grad_output, a),)


def sigmoid_backward(grad_output, a, out=None):
    """out = 1 / (1 + np.exp(-a))."""
    if out is None:
        out = stable_sigmoid(a)
    return (_numpy2_dtype(grad_output * out * (1 - out), grad_output, a),)


def relu_backward(grad_output, a):
    """out = np.maximum(a, 0); the gradient at 0 is 0."""
    return (grad_output * (a > 0),)


def transpose_backward(grad_output, a, axes=None):
    """out = np.transpose(a, axes)."""
    if axes is None:
        return (np.transpose(grad_output),)
    return (np.transpose(grad_output, np.argsort([axis % a.ndim for axis in axes])),)


def reshape_backward(grad_output, a, shape=None):
    """out = np.reshape(a, shape)."""
    return (np.reshape(grad_output, a.shape),)


def mean_backward(grad_output, a, axis=None, keepdims=False):
    """out = np.mean(a, axis=axis, keepdims=keepdims).

    Over all elements, each one gets ``1 / a.size`` of ``grad_output``. Over some axes,
    a mean is a sum divided by the count, so its gradient is sum_backward's divided
    by the count.
    """
    count = np.asarray(_reduced_count(a.shape, axis), dtype=grad_output.dtype)  # float32 stays float32 on NumPy 1.x
    if axis is None:
        return (np.full(a.shape, grad_output / count, dtype=grad_output.dtype),)
    (grad,) = sum_backward(grad_output, a, axis=axis, keepdims=keepdims)
    return (grad / count,)


def _selects_each_once(index):
    """True if ``index`` (ints, slices, None, ..., boolean masks) cannot repeat an element."""
    parts = index if isinstance(index, tuple) else (index,)
    return all(
        p is None or p is Ellipsis or isinstance(p, (int, np.integer, slice))
        or (isinstance(p, np.ndarray) and p.dtype == bool)
        for p in parts
    )


def getitem_backward(grad_output, a, index):
    """out = a[index], for slicing, integer-array and boolean-mask indexing."""
    grad = np.zeros(a.shape, dtype=grad_output.dtype)
    if _selects_each_once(index):
        grad[index] = grad_output
    else:
        np.add.at(grad, index, grad_output)  # repeated indices accumulate
    return (grad,)
