"""Finite-difference gradient checking for primitives and for recorded modules."""
import contextlib

import numpy as np

from mytorch._tape_rules import gradient_tuple

_DEFAULTS = {  # dtype itemsize -> (eps, atol, rtol)
    8: (1e-6, 1e-6, 1e-5),
    4: (1e-3, 1e-2, 1e-2),
}


def _numeric_gradient(loss, array, eps):
    """Central differences of the scalar ``loss()`` with respect to each element of ``array``."""
    grad = np.zeros(array.shape, dtype=np.float64)
    for index in np.ndindex(array.shape):
        saved = array[index].copy()
        array[index] = saved + eps
        plus = loss()
        array[index] = saved - eps
        minus = loss()
        array[index] = saved
        grad[index] = (plus - minus) / (2 * eps)
    return grad


def gradcheck(fn, *inputs, backward=None, engine=None, params=(), eps=None, atol=None, rtol=None,
              seed=0, **kwargs):
    """Compare analytic gradients with central finite differences; return True or raise ValueError.

    Two ways to call it:

    * a primitive: ``gradcheck(np.multiply, a, b, backward=mul_backward)``; ``kwargs``
      (axis=..., exponent=...) go to both ``fn`` and ``backward``, whose result is read
      by the engine's return contract (a TypeError or ValueError says what breaks it).
    * a module or any recorded computation: ``gradcheck(layer.forward, x,
      engine=layer.autograd_engine, params=layer.parameters())``; inputs must be
      recorded with a buffer spot (``None`` in gradients_to_update), and each
      (param, grad) pair in ``params`` is checked too. The engine is zeroed first.

    The checked scalar is ``sum(fn(*inputs) * g)`` for a fixed random ``g``.
    """
    if (backward is None) == (engine is None):
        raise ValueError("gradcheck: give exactly one of backward= (a primitive) or engine= (a module)")
    arrays = list(inputs) + [p for p, _ in params]
    for i, a in enumerate(arrays):
        if not isinstance(a, np.ndarray) or a.dtype.kind != "f":
            raise TypeError(f"gradcheck: argument {i} must be a float numpy array, got {type(a).__name__}")
    default = _DEFAULTS.get(min(a.dtype.itemsize for a in arrays), _DEFAULTS[4])
    eps = default[0] if eps is None else eps
    atol = default[1] if atol is None else atol
    rtol = default[2] if rtol is None else rtol

    if backward is not None:
        out = np.asarray(fn(*inputs, **kwargs))
        g = np.random.default_rng(seed).standard_normal(out.shape).astype(out.dtype)
        name = getattr(backward, "__name__", "backward")
        analytic = gradient_tuple(backward(g, *inputs, **kwargs), len(inputs), f"gradcheck: {name}")
        recording_off = contextlib.nullcontext
    else:
        engine.zero_grad()
        for _, grad in params:
            grad.fill(0)
        out = fn(*inputs, **kwargs)
        g = np.random.default_rng(seed).standard_normal(out.shape).astype(out.dtype)
        engine.backward(g)
        analytic = [engine.gradient_buffer.get_param(x).copy() for x in inputs]
        analytic += [grad.copy() for _, grad in params]
        engine.zero_grad()
        recording_off = engine.no_grad

    def loss():
        with recording_off():
            return float(np.sum(np.asarray(fn(*inputs, **kwargs), dtype=np.float64) * g))

    failures = []
    for i, (array, grad) in enumerate(zip(arrays, analytic)):
        what = f"input {i}" if i < len(inputs) else f"param {i - len(inputs)}"
        if np.shape(grad) != array.shape:
            failures.append(f"{what}: gradient shape {np.shape(grad)}, expected {array.shape}")
            continue
        numeric = _numeric_gradient(loss, array, eps)
        error = np.abs(np.asarray(grad, dtype=np.float64) - numeric)
        bad = error > atol + rtol * np.abs(numeric)
        if bad.any():
            worst = np.unravel_index(np.argmax(error), error.shape)
            failures.append(
                f"{what} {array.shape}: {int(bad.sum())} of {array.size} entries differ; worst at "
                f"{tuple(int(k) for k in worst)}: analytic {grad[worst]:.6g}, numeric {numeric[worst]:.6g}"
            )
    if failures:
        raise ValueError("gradcheck failed:\n  " + "\n  ".join(failures))
    return True
