"""The CNN pack's primitives: convolution, resampling, padding, flattening and pooling.

Each operation has a forward function and a backward primitive with the contract of
``mytorch.nn.functional``::

    <name>_backward(grad_output, *inputs, **options) -> tuple of gradients

one gradient per input, in input order, each of its input's shape and float dtype.
Options (``factor``, ``padding``, ``kernel_size``, ``stride``) are keyword arguments.

Layouts are PyTorch's: inputs ``(N, C, W)`` (1-D) and ``(N, C, H, W)`` (2-D), weights
``(C_out, C_in, K)`` and ``(C_out, C_in, KH, KW)``, bias ``(C_out,)``. "Convolution"
is cross-correlation, as in PyTorch: ``out[n, o, i] = b[o] + sum_{c,k} W[o, c, k] x[n, c, i + k]``.

Speed: a convolution copies the input's windows into columns (``im2col``) and does
one batched matrix product; its input gradient is one matrix product followed by
``col2im``, which adds the windows back with one vectorized addition per kernel
offset (measured faster here than a second ``im2col`` of the padded gradient).
No Python loop runs over output positions.
"""
import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from mytorch.utils import gradient_dtype

SPATIAL = {1: "(N, C, W)", 2: "(N, C, H, W)"}


# --------------------------------------------------------------------------- helpers
def _as_gradient_of(grad, array):
    """``grad`` in the gradient dtype of ``array`` (its float dtype, else float64)."""
    return grad.astype(gradient_dtype(array), copy=False)


def _check_input(name, x, dims):
    """Raise unless ``x`` is a real array laid out (N, C, *spatial) with ``dims`` spatial axes."""
    if not isinstance(x, np.ndarray) or x.ndim != dims + 2 or x.dtype.kind not in "biuf":
        raise ValueError(
            f"{name}: x must be a real array of shape {SPATIAL[dims]}, got "
            f"{type(x).__name__} of shape {np.shape(x)}"
        )


def _check_window(name, spatial, window, what="kernel"):
    """Raise unless a ``window`` (one size per spatial axis) fits inside the input's ``spatial`` sizes."""
    if any(k < 1 for k in window) or any(k > n for k, n in zip(window, spatial)):
        raise ValueError(
            f"{name}: the {what} {tuple(window)} does not fit the input's spatial size "
            f"{tuple(spatial)} (each side must be between 1 and the input's)"
        )


def _check_factor(name, factor):
    if isinstance(factor, bool) or not isinstance(factor, (int, np.integer)) or factor < 1:
        raise ValueError(f"{name}: factor must be a positive int, got {factor!r}")


def _every(factor, dims):
    """An index taking every ``factor``-th entry along the last ``dims`` axes."""
    return (Ellipsis,) + (slice(None, None, factor),) * dims


def windows(x, kernel, stride=1):
    """A read-only view (N, C, *out, *kernel) of the windows of ``x`` (N, C, *spatial).

    ``out[i] = (spatial[i] - kernel[i]) // stride + 1``; window ``(j, ...)`` starts at
    ``stride * j``. No data is copied.
    """
    spatial_axes = tuple(range(2, x.ndim))
    view = sliding_window_view(x, tuple(kernel), axis=spatial_axes)
    return view[(slice(None), slice(None)) + (slice(None, None, stride),) * len(kernel)]


def im2col(x, kernel):
    """The stride-1 windows of ``x`` (N, C, *spatial) as columns: a new array (N, C * prod(kernel), L).

    Row ``c * prod(kernel) + k`` holds channel ``c`` at kernel offset ``k`` (row-major) for
    each of the L output positions (row-major), matching ``W.reshape(C_out, -1)``.
    """
    dims = len(kernel)
    view = windows(x, kernel)  # (N, C, *out, *kernel)
    order = (0, 1) + tuple(range(2 + dims, 2 + 2 * dims)) + tuple(range(2, 2 + dims))
    n, c = x.shape[:2]
    return view.transpose(order).reshape(n, c * int(np.prod(kernel)), -1)


def col2im(grad_windows, shape, stride=1):
    """Add window gradients (N, C, *out, *kernel) back into an array of ``shape`` (the adjoint of ``windows``).

    An entry of the input covered by several windows gets the sum of their gradients.
    One vectorized addition per kernel offset.
    """
    dims = len(shape) - 2
    out_size = grad_windows.shape[2:2 + dims]
    kernel = grad_windows.shape[2 + dims:]
    grad = np.zeros(shape, dtype=grad_windows.dtype)
    for offset in np.ndindex(*kernel):
        region = tuple(slice(k, k + stride * (n - 1) + 1, stride) for k, n in zip(offset, out_size))
        grad[(slice(None), slice(None)) + region] += grad_windows[(Ellipsis,) + offset]
    return grad


# --------------------------------------------------------------------------- convolution
def _conv_stride1(name, x, W, b, dims):
    """Check the operands, then ``b + correlate(x, W)`` as one batched matrix product."""
    _check_input(name, x, dims)
    if not isinstance(W, np.ndarray) or W.ndim != dims + 2 or W.shape[1] != x.shape[1]:
        kernel = "K" if dims == 1 else "KH, KW"
        raise ValueError(
            f"{name}: W must have shape (C_out, C_in, {kernel}) with C_in = {x.shape[1]} "
            f"(the channels of x {x.shape}), got {np.shape(W)}"
        )
    if not isinstance(b, np.ndarray) or b.shape != W.shape[:1]:
        raise ValueError(f"{name}: b must have shape ({W.shape[0]},) (one per output channel of W "
                         f"{W.shape}), got {np.shape(b)}")
    kernel = W.shape[2:]
    _check_window(name, x.shape[2:], kernel)
    out_size = tuple(n - k + 1 for n, k in zip(x.shape[2:], kernel))
    out = W.reshape(W.shape[0], -1) @ im2col(x, kernel)  # (N, C_out, L)
    out += b[:, np.newaxis]
    return out.reshape(x.shape[:1] + W.shape[:1] + out_size)


def conv1d_stride1(x, W, b):
    """Stride-1 1-D convolution: x (N, C_in, W_in), W (C_out, C_in, K), b (C_out,) -> (N, C_out, W_in - K + 1)."""
    return _conv_stride1("conv1d_stride1", x, W, b, 1)


def conv2d_stride1(x, W, b):
    """Stride-1 2-D convolution: x (N, C_in, H, W), W (C_out, C_in, KH, KW), b (C_out,).

    The output is (N, C_out, H - KH + 1, W - KW + 1).
    """
    return _conv_stride1("conv2d_stride1", x, W, b, 2)


def conv_stride1_backward(grad_output, x, W, b):
    """Gradients (x, W, b) of a stride-1 convolution with any number of spatial axes.

    With ``cols = im2col(x)`` (N, C_in * K, L) and ``g`` = grad_output as (N, C_out, L),
    the forward pass was ``out = W2 @ cols + b`` with ``W2 = W.reshape(C_out, -1)``, so
    ``dW2 = sum_n g[n] @ cols[n].T``, ``db = sum of g over n and L`` and
    ``dx = col2im(W2.T @ g)``.
    """
    # BEGIN SOLUTION
    n, c_out = grad_output.shape[:2]
    kernel = W.shape[2:]
    g = grad_output.reshape(n, c_out, -1)  # (N, C_out, L)
    cols = im2col(x, kernel)  # (N, C_in * K, L)
    grad_W = (g @ cols.transpose(0, 2, 1)).sum(axis=0).reshape(W.shape)
    grad_b = g.sum(axis=(0, 2))
    grad_cols = W.reshape(c_out, -1).T @ g  # (N, C_in * K, L)
    dims = len(kernel)
    grad_windows = grad_cols.reshape(x.shape[:2] + kernel + grad_output.shape[2:])
    # col2im wants (N, C, *out, *kernel): move the kernel axes last (a view, no copy)
    order = (0, 1) + tuple(range(2 + dims, 2 + 2 * dims)) + tuple(range(2, 2 + dims))
    grad_x = col2im(grad_windows.transpose(order), x.shape)
    # END SOLUTION
    return _as_gradient_of(grad_x, x), _as_gradient_of(grad_W, W), _as_gradient_of(grad_b, b)


def conv1d_stride1_backward(grad_output, x, W, b):
    """out = conv1d_stride1(x, W, b): gradients for x (N, C_in, W_in), W (C_out, C_in, K), b (C_out,)."""
    return conv_stride1_backward(grad_output, x, W, b)


def conv2d_stride1_backward(grad_output, x, W, b):
    """out = conv2d_stride1(x, W, b): gradients for x (N, C_in, H, W), W (C_out, C_in, KH, KW), b (C_out,)."""
    return conv_stride1_backward(grad_output, x, W, b)


# --------------------------------------------------------------------------- resampling
def _downsampling(name, x, factor, dims):
    _check_input(name, x, dims)
    _check_factor(name, factor)
    return x[_every(factor, dims)].copy()


def _upsampling(name, x, factor, dims):
    _check_input(name, x, dims)
    _check_factor(name, factor)
    out = np.zeros(x.shape[:2] + tuple((n - 1) * factor + 1 for n in x.shape[2:]), dtype=x.dtype)
    out[_every(factor, dims)] = x
    return out


def downsampling1d(x, factor):
    """Keep every ``factor``-th entry of x (N, C, W): shape (N, C, ceil(W / factor)), entries x[..., ::factor]."""
    return _downsampling("downsampling1d", x, factor, 1)


def downsampling2d(x, factor):
    """Keep every ``factor``-th row and column of x (N, C, H, W): x[..., ::factor, ::factor]."""
    return _downsampling("downsampling2d", x, factor, 2)


def upsampling1d(x, factor):
    """Insert ``factor - 1`` zeros between neighbours of x (N, C, W): shape (N, C, (W - 1) * factor + 1)."""
    return _upsampling("upsampling1d", x, factor, 1)


def upsampling2d(x, factor):
    """Insert ``factor - 1`` zero rows and columns between neighbours of x (N, C, H, W)."""
    return _upsampling("upsampling2d", x, factor, 2)


def downsampling1d_backward(grad_output, x, factor):
    """out = downsampling1d(x, factor): the kept entries get the gradient, the dropped ones 0."""
    # BEGIN SOLUTION
    grad = np.zeros(x.shape, dtype=grad_output.dtype)
    grad[..., ::factor] = grad_output
    # END SOLUTION
    return (_as_gradient_of(grad, x),)


def downsampling2d_backward(grad_output, x, factor):
    """out = downsampling2d(x, factor): the kept entries get the gradient, the dropped ones 0."""
    # BEGIN SOLUTION
    grad = np.zeros(x.shape, dtype=grad_output.dtype)
    grad[..., ::factor, ::factor] = grad_output
    # END SOLUTION
    return (_as_gradient_of(grad, x),)


def upsampling1d_backward(grad_output, x, factor):
    """out = upsampling1d(x, factor): each entry of x gets the gradient of the place it went to."""
    # BEGIN SOLUTION
    grad = grad_output[..., ::factor]
    # END SOLUTION
    return (_as_gradient_of(grad, x),)


def upsampling2d_backward(grad_output, x, factor):
    """out = upsampling2d(x, factor): each entry of x gets the gradient of the place it went to."""
    # BEGIN SOLUTION
    grad = grad_output[..., ::factor, ::factor]
    # END SOLUTION
    return (_as_gradient_of(grad, x),)


# --------------------------------------------------------------------------- padding and flattening
def pad(x, padding):
    """x (N, C, *spatial) with ``padding`` zeros added on both sides of every spatial axis."""
    if not isinstance(x, np.ndarray) or x.ndim < 3:
        raise ValueError(f"pad: x must be an array (N, C, *spatial), got shape {np.shape(x)}")
    if isinstance(padding, bool) or not isinstance(padding, (int, np.integer)) or padding < 0:
        raise ValueError(f"pad: padding must be an int >= 0, got {padding!r}")
    return np.pad(x, [(0, 0), (0, 0)] + [(padding, padding)] * (x.ndim - 2))


def pad_backward(grad_output, x, padding):
    """out = pad(x, padding): the gradient of x is the middle of grad_output."""
    middle = (slice(None), slice(None)) + tuple(slice(padding, padding + n) for n in x.shape[2:])
    return (_as_gradient_of(grad_output[middle], x),)


def flatten(x):
    """x (N, ...) as rows (N, prod(...)), in C order (a view when x is contiguous)."""
    if not isinstance(x, np.ndarray) or x.ndim < 1:
        raise ValueError(f"flatten: x must be an array with a batch axis, got shape {np.shape(x)}")
    return x.reshape(x.shape[0], -1)


def flatten_backward(grad_output, x):
    """out = flatten(x): the gradient takes x's shape back."""
    # BEGIN SOLUTION
    grad = grad_output.reshape(x.shape)
    # END SOLUTION
    return (_as_gradient_of(grad, x),)


# --------------------------------------------------------------------------- pooling
def _pool_windows(name, x, kernel_size, stride):
    """The (N, C, H_out, W_out, k, k) windows of a 2-D pooling, after checking its arguments."""
    _check_input(name, x, 2)
    for option, value in (("kernel_size", kernel_size), ("stride", stride)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{name}: {option} must be a positive int, got {value!r}")
    _check_window(name, x.shape[2:], (kernel_size, kernel_size), "window")
    return windows(x, (kernel_size, kernel_size), stride)


def maxpool2d(x, kernel_size, stride):
    """The largest entry of each kernel_size x kernel_size window, windows ``stride`` apart.

    x (N, C, H, W) -> (N, C, (H - k) // stride + 1, (W - k) // stride + 1), as
    ``torch.nn.MaxPool2d(k, stride)`` without padding. One elementwise maximum per
    kernel offset (a reduction over the windows' strided axes is many times slower).
    """
    view = _pool_windows("maxpool2d", x, kernel_size, stride)
    offsets = list(np.ndindex(kernel_size, kernel_size))
    out = view[(Ellipsis,) + offsets[0]].copy()
    for offset in offsets[1:]:
        np.maximum(out, view[(Ellipsis,) + offset], out=out)
    return out


def meanpool2d(x, kernel_size, stride):
    """The mean of each kernel_size x kernel_size window, windows ``stride`` apart (as ``torch.nn.AvgPool2d``)."""
    view = _pool_windows("meanpool2d", x, kernel_size, stride)
    total = np.zeros(view.shape[:4], dtype=np.result_type(x.dtype, np.float32))
    for offset in np.ndindex(kernel_size, kernel_size):
        total += view[(Ellipsis,) + offset]
    return total / (kernel_size * kernel_size)


def maxpool2d_backward(grad_output, x, kernel_size, stride, out=None):
    """out = maxpool2d(x, kernel_size, stride); pass the forward output as ``out`` to reuse it.

    Each window's gradient goes to its largest entry. Ties: the first largest entry in
    the window, in row-major order, gets all of it (as ``torch.nn.MaxPool2d``; after a
    ReLU, all-zero windows are common). An entry that is the maximum of several
    overlapping windows gets the sum of their gradients.
    """
    # BEGIN SOLUTION
    if out is None:
        out = maxpool2d(x, kernel_size, stride)
    view = windows(x, (kernel_size, kernel_size), stride)  # (N, C, H_out, W_out, k, k)
    grad_windows = np.zeros(view.shape, dtype=grad_output.dtype)
    found = np.zeros(out.shape, dtype=bool)  # windows whose maximum was already given the gradient
    for offset in np.ndindex(kernel_size, kernel_size):  # row-major: the first maximum wins
        winner = (view[(Ellipsis,) + offset] == out) & ~found
        found |= winner
        grad_windows[(Ellipsis,) + offset] = winner * grad_output
    grad = col2im(grad_windows, x.shape, stride)
    # END SOLUTION
    return (_as_gradient_of(grad, x),)


def meanpool2d_backward(grad_output, x, kernel_size, stride):
    """out = meanpool2d(x, kernel_size, stride): each window's entries get 1 / k**2 of its gradient."""
    # BEGIN SOLUTION
    share = grad_output / (kernel_size * kernel_size)
    view_shape = grad_output.shape + (kernel_size, kernel_size)
    grad_windows = np.broadcast_to(share[..., np.newaxis, np.newaxis], view_shape)
    grad = col2im(grad_windows, x.shape, stride)
    # END SOLUTION
    return (_as_gradient_of(grad, x),)
