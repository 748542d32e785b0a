"""Test helpers: the primitive case table, input generators, finite differences, tolerances.

One table (``CASES``) drives the finite-difference tests (tests/test_functional.py) and the
PyTorch oracle tests (tests/test_torch_oracle.py). Every forward function here is written
with plain NumPy (and its PyTorch twin), independently of ``mytorch``.
"""
import zlib

import numpy as np

from mytorch.nn import functional as F

# --------------------------------------------------------------------------- tolerances
# Finite differences in float64 with a central step of 1e-6: truncation ~1e-12 and
# round-off ~1e-10 relative to the loss, so 1e-7 relative to the largest entry is safe.
FD_EPS = 1e-6
FD_TOL = {
    np.dtype(np.float64): dict(rtol=1e-6, atol=1e-7),
    np.dtype(np.float32): dict(rtol=1e-4, atol=1e-4),
}
TORCH_TOL = dict(rtol=1e-10, atol=1e-10)


def scaled_tol(expected, tol):
    """``tol`` with ``atol`` scaled by the largest magnitude in ``expected`` (at least 1)."""
    scale = max(1.0, float(np.max(np.abs(expected)))) if np.size(expected) else 1.0
    return dict(rtol=tol["rtol"], atol=tol["atol"] * scale)


def max_rel_error(got, expected):
    """Largest |got - expected| divided by max(1, max |expected|)."""
    got = np.asarray(got, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    if expected.size == 0:
        return 0.0
    return float(np.max(np.abs(got - expected)) / max(1.0, float(np.max(np.abs(expected)))))


# --------------------------------------------------------------------------- finite differences
def numeric_gradient(loss, x, eps=FD_EPS):
    """Central differences of the scalar ``loss()`` w.r.t. each entry of ``x`` (changed in place, then restored)."""
    grad = np.zeros(x.shape)
    for idx in np.ndindex(x.shape):
        saved = x[idx]
        x[idx] = saved + eps
        plus = loss()
        x[idx] = saved - eps
        minus = loss()
        x[idx] = saved
        grad[idx] = (plus - minus) / (2 * eps)
    return grad


def numeric_gradients(fn, inputs, g, eps=FD_EPS):
    """Central differences (in float64) of ``sum(fn(*inputs) * g)`` w.r.t. every input."""
    xs = [np.array(x, dtype=np.float64) for x in inputs]
    g64 = np.asarray(g, dtype=np.float64)

    def loss():
        return float(np.sum(np.asarray(fn(*xs), dtype=np.float64) * g64))

    return [numeric_gradient(loss, x, eps) for x in xs]


# --------------------------------------------------------------------------- input generators
def make_input(kind, shape, rng):
    """A float64 array of ``shape`` suited to the primitive under test."""
    size = int(np.prod(shape))
    if kind == "normal":
        return rng.standard_normal(shape)
    if kind == "positive":  # log, sqrt, denominators, fractional powers
        return rng.uniform(0.5, 2.0, shape)
    if kind == "away0":  # relu: no entry within 0.2 of the kink
        return rng.choice([-1.0, 1.0], size=shape) * rng.uniform(0.2, 2.0, shape)
    if kind == "distinct":  # max: entries at least 0.2 apart, so no ties within a step
        values = rng.permutation(size) * 0.25 + rng.uniform(0, 0.05, size) - size * 0.125
        return values.reshape(shape)
    if kind == "onehot":
        n, c = shape
        y = np.zeros(shape)
        y[np.arange(n), rng.integers(0, c, n)] = 1.0
        return y
    if kind == "soft":  # probability rows
        n, c = shape
        return rng.dirichlet(np.ones(c), n)
    if kind == "fortran":  # a transposed C array: F-contiguous, like Linear's W.T
        return np.ascontiguousarray(rng.standard_normal(shape[::-1])).T
    raise ValueError(kind)


# --------------------------------------------------------------------------- the table
class Case:
    """One primitive check: ``primitive`` must give the gradients of ``forward``.

    ``forward(*inputs)`` is the NumPy forward pass, ``torch_forward(*tensors)`` the PyTorch
    one (None: not comparable with torch), ``shapes``/``kinds`` describe the inputs,
    ``kwargs`` go to the primitive, ``pass_out`` names the keyword under which the
    forward output (or, for softmax cross-entropy, the log-softmax) is handed over.
    ``fd`` is False where finite differences are invalid (ties in max).
    """

    def __init__(self, name, primitive, forward, shapes, torch_forward=None, kwargs=None,
                 kinds=None, extra_kwargs=None, fd=True):
        self.name = name
        self.primitive = primitive
        self.forward = forward
        self.torch_forward = torch_forward
        self.shapes = [tuple(s) for s in shapes]
        self.kwargs = dict(kwargs or {})
        self.kinds = list(kinds) if kinds is not None else ["normal"] * len(shapes)
        self.extra_kwargs = extra_kwargs  # f(inputs, out) -> dict, e.g. out=
        self.fd = fd
        self.fixed_inputs = None

    def inputs(self, dtype=np.float64):
        """Deterministic inputs (seeded by the case name) in ``dtype``."""
        if self.fixed_inputs is not None:
            return [np.array(x, dtype=dtype) for x in self.fixed_inputs]
        rng = np.random.default_rng(zlib.crc32(self.name.encode()))
        return [np.array(make_input(k, s, rng), dtype=dtype, order="K")
                for k, s in zip(self.kinds, self.shapes)]

    def upstream(self, out):
        """A fixed random upstream gradient of the output's shape and dtype."""
        rng = np.random.default_rng(zlib.crc32(self.name.encode()) + 1)
        return np.asarray(rng.standard_normal(np.shape(out))).astype(np.asarray(out).dtype)

    def call_kwargs(self, inputs, out):
        kwargs = dict(self.kwargs)
        if self.extra_kwargs is not None:
            kwargs.update(self.extra_kwargs(inputs, out))
        return kwargs

    def __repr__(self):
        return self.name


def run_case(case, dtype=np.float64):
    """Forward, upstream gradient and primitive result of ``case`` in ``dtype``."""
    inputs = case.inputs(dtype)
    out = np.asarray(case.forward(*inputs))
    g = case.upstream(out)
    result = case.primitive(g, *inputs, **case.call_kwargs(inputs, out))
    return inputs, out, g, result


def fd_errors(case, dtype=np.float64):
    """(primitive gradients, finite-difference gradients) of ``case``."""
    inputs, out, g, result = run_case(case, dtype)
    numeric = numeric_gradients(case.forward, inputs, g)
    return result, numeric


def _out(inputs, out):
    return {"out": out}


def np_log_softmax(z):
    """log(softmax(z)) along axis 1, shifted by the row max (independent of mytorch)."""
    m = np.max(z, axis=1, keepdims=True)
    return z - m - np.log(np.sum(np.exp(z - m), axis=1, keepdims=True))


def np_softmax_xent(y, z):
    """Mean over rows of -sum(y * log_softmax(z)), as an array of shape (1,)."""
    return np.reshape(np.mean(-np.sum(y * np_log_softmax(z), axis=1)), (1,))


def _torch():
    import torch

    return torch


def _t_reduce(name, t, axis, keepdims):
    torch = _torch()
    fn = {"sum": torch.sum, "mean": torch.mean, "max": torch.amax}[name]
    if axis is None:
        r = fn(t)
        return r.reshape((1,) * t.dim()) if keepdims else r
    return fn(t, dim=axis, keepdim=keepdims)


def _t_index(index):
    """A NumPy index converted for torch (arrays become tensors)."""
    torch = _torch()
    if isinstance(index, tuple):
        return tuple(_t_index(i) for i in index)
    if isinstance(index, np.ndarray):
        return torch.from_numpy(index)
    return index


def _t_softmax_xent(y, z):
    torch = _torch()
    return (-(y * torch.log_softmax(z, dim=1)).sum(dim=1)).mean().reshape(1)


def _build_cases():
    cases = []
    add = cases.append

    # identity and elementwise binary ops with broadcasting
    for shape in [(3, 4), (), (1, 1)]:
        add(Case("identity-%s" % (shape,), F.identity_backward, lambda a: a.copy(), [shape],
                 torch_forward=lambda a: a * 1))
    binary = [
        ("add", F.add_backward, np.add, lambda a, b: a + b, None),
        ("sub", F.sub_backward, np.subtract, lambda a, b: a - b, None),
        ("mul", F.mul_backward, np.multiply, lambda a, b: a * b, None),
        ("div", F.div_backward, np.divide, lambda a, b: a / b, ["normal", "positive"]),
    ]
    pairs = [((3, 4), (4,)), ((4,), (3, 4)), ((3, 1), (1, 4)), ((), (2, 3)), ((1, 1), (3, 1)),
             ((1, 5), (1, 5)), ((2, 3, 4), (3, 1)), ((), ()), ((3, 4), (3, 4))]
    for name, prim, np_fn, t_fn, kinds in binary:
        for sa, sb in pairs:
            add(Case("%s-%s-%s" % (name, sa, sb), prim, np_fn, [sa, sb], torch_forward=t_fn,
                     kinds=kinds))

    for shape in [(3, 4), (), (1, 4)]:
        add(Case("neg-%s" % (shape,), F.neg_backward, np.negative, [shape],
                 torch_forward=lambda a: -a))

    for shape, exponent, kind in [((3, 4), 3, "normal"), ((3, 4), 0.5, "positive"),
                                  ((2, 2), -2.0, "positive"), ((1, 1), 2, "normal"),
                                  ((), 1.5, "positive")]:
        add(Case("pow-%s-exp%s" % (shape, exponent), F.pow_backward,
                 (lambda e: lambda a: a ** e)(exponent), [shape],
                 torch_forward=(lambda e: lambda a: a ** e)(exponent),
                 kwargs={"exponent": exponent}, kinds=[kind]))

    matmul_shapes = [((3, 4), (4, 5)), ((1, 4), (4, 1)), ((4, 1), (1, 3)), ((1, 1), (1, 1)),
                     ((4,), (4, 3)), ((3, 4), (4,)), ((4,), (4,)), ((2, 3, 4), (4, 5)),
                     ((2, 3, 4), (2, 4, 5)), ((4,), (2, 4, 3)), ((2, 3, 4), (4,)),
                     ((2, 1, 3, 4), (5, 4, 2))]
    for sa, sb in matmul_shapes:
        add(Case("matmul-%s-%s" % (sa, sb), F.matmul_backward, np.matmul, [sa, sb],
                 torch_forward=lambda a, b: a @ b))
    # Linear's layout: x @ W.T with W.T an F-contiguous view
    add(Case("matmul-(5, 4)-F(4, 3)", F.matmul_backward, np.matmul, [(5, 4), (4, 3)],
             torch_forward=lambda a, b: a @ b, kinds=["normal", "fortran"]))

    for sa, sb in [((3,), (4,)), ((2, 2), (3,)), ((), (3,)), ((1,), (1,))]:
        add(Case("outer-%s-%s" % (sa, sb), F.outer_backward, np.outer, [sa, sb],
                 torch_forward=lambda a, b: _torch().outer(a.reshape(-1), b.reshape(-1))))

    for shape, axes in [((3, 4), None), ((2, 3, 4), (1, 2, 0)), ((2, 3, 4), None), ((1, 1), None),
                        ((4,), None), ((2, 3, 4), (-1, 0, 1))]:
        add(Case("transpose-%s-axes%s" % (shape, axes), F.transpose_backward,
                 (lambda ax: lambda a: np.transpose(a, ax))(axes), [shape],
                 torch_forward=(lambda ax: lambda a: a.permute(*(ax if ax is not None else
                                                                  range(a.dim())[::-1])))(axes),
                 kwargs={"axes": axes}))

    for shape, new in [((3, 4), (2, 6)), ((12,), (3, -1)), ((), (1,)), ((1, 1), ()),
                       ((2, 3, 4), (4, 6))]:
        add(Case("reshape-%s-to%s" % (shape, new), F.reshape_backward,
                 (lambda n: lambda a: np.reshape(a, n))(new), [shape],
                 torch_forward=(lambda n: lambda a: a.reshape(n))(new), kwargs={"shape": new}))

    reductions = [((3, 4), None, False), ((3, 4), None, True), ((3, 4), 0, False),
                  ((3, 4), 1, True), ((3, 4), -1, False), ((2, 3, 4), (0, 2), False),
                  ((2, 3, 4), (0, 2), True), ((), None, False), ((1, 1), 0, False),
                  ((5,), 0, True), ((1, 4), 1, False)]
    np_reduce = {"sum": np.sum, "mean": np.mean, "max": np.max}
    prims = {"sum": F.sum_backward, "mean": F.mean_backward, "max": F.max_backward}
    for name in ("sum", "mean", "max"):
        for shape, axis, keepdims in reductions:
            for pass_out in ((False, True) if name == "max" else (False,)):
                add(Case("%s-%s-axis%s-keep%s%s" % (name, shape, axis, keepdims,
                                                    "-out" if pass_out else ""),
                         prims[name],
                         (lambda f, ax, kd: lambda a: f(a, axis=ax, keepdims=kd))(
                             np_reduce[name], axis, keepdims),
                         [shape],
                         torch_forward=(lambda n, ax, kd: lambda a: _t_reduce(n, a, ax, kd))(
                             name, axis, keepdims),
                         kwargs={"axis": axis, "keepdims": keepdims},
                         kinds=["distinct" if name == "max" else "normal"],
                         extra_kwargs=_out if pass_out else None))

    # max with ties: finite differences do not apply; torch.amax shares equally too
    for values, axis in [([[1.0, 3.0, 3.0], [2.0, 2.0, 2.0]], 1), ([[1.0, 3.0, 3.0], [2.0, 2.0, 2.0]], None),
                         ([[5.0, 5.0], [5.0, 1.0]], 0)]:
        case = Case("max-ties-%s-axis%s" % (np.shape(values), axis), F.max_backward,
                    (lambda ax: lambda a: np.max(a, axis=ax))(axis), [np.shape(values)],
                    torch_forward=(lambda ax: lambda a: _t_reduce("max", a, ax, False))(axis),
                    kwargs={"axis": axis}, fd=False)
        case.fixed_inputs = [np.array(values)]
        add(case)

    unary = [
        ("exp", F.exp_backward, np.exp, "exp", "normal", True),
        ("log", F.log_backward, np.log, "log", "positive", False),
        ("sqrt", F.sqrt_backward, np.sqrt, "sqrt", "positive", True),
        ("tanh", F.tanh_backward, np.tanh, "tanh", "normal", True),
        ("sigmoid", F.sigmoid_backward, lambda a: 1.0 / (1.0 + np.exp(-a)), "sigmoid", "normal", True),
        ("relu", F.relu_backward, lambda a: np.maximum(a, 0), "relu", "away0", False),
    ]
    for name, prim, np_fn, t_name, kind, has_out in unary:
        for shape in [(3, 4), (), (1, 1), (5,)]:
            for pass_out in ((False, True) if has_out else (False,)):
                add(Case("%s-%s%s" % (name, shape, "-out" if pass_out else ""), prim, np_fn,
                         [shape], torch_forward=(lambda n: lambda a: getattr(_torch(), n)(a))(t_name),
                         kinds=[kind], extra_kwargs=_out if pass_out else None))

    mask = np.array([[True, False, True], [False, False, True], [True, True, False],
                     [False, True, False], [True, False, False]])
    indexes = [
        ("slice", (5, 3), slice(1, 4)),
        ("col", (5, 3), (slice(None), 1)),
        ("int", (5,), 2),
        ("repeats", (5, 3), np.array([0, 0, 2, 4, 2])),
        ("repeats-list", (5,), [1, 1, 1, 3]),
        ("pairs-repeat", (5, 3), (np.array([0, 0, 1, 0]), np.array([2, 2, 0, 2]))),
        ("mask", (5, 3), mask),
        ("row-mask", (5, 3), mask[:, 0]),
        ("newaxis-ellipsis", (2, 3), (None, Ellipsis, 1)),
        ("step", (6, 2), slice(None, None, 2)),
        ("negative-int", (3, 4), (-1, slice(1, 3))),
    ]
    for label, shape, index in indexes:
        add(Case("getitem-%s-%s" % (label, shape), F.getitem_backward,
                 (lambda ix: lambda a: a[ix])(index), [shape],
                 torch_forward=(lambda ix: lambda a: a[_t_index(ix)])(index),
                 kwargs={"index": index}))
    add(Case("getitem-reversed-(4, 2)", F.getitem_backward, lambda a: a[::-1], [(4, 2)],
             torch_forward=lambda a: _torch().flip(a, dims=(0,)),
             kwargs={"index": slice(None, None, -1)}))

    xent = F.SoftmaxCrossEntropy_backward
    for shape, ykind in [((4, 3), "onehot"), ((4, 3), "soft"), ((1, 5), "onehot"), ((3, 2), "normal"),
                         ((2, 1), "onehot")]:
        for pass_log in (False, True):
            add(Case("xent-%s-%s%s" % (shape, ykind, "-logsoftmax" if pass_log else ""), xent,
                     np_softmax_xent, [shape, shape], torch_forward=_t_softmax_xent,
                     kinds=[ykind, "normal"],
                     extra_kwargs=(lambda ins, out: {"log_softmax": np_log_softmax(ins[1])})
                     if pass_log else None))
    return cases


CASES = _build_cases()
FD_CASES = [c for c in CASES if c.fd]
TORCH_CASES = [c for c in CASES if c.torch_forward is not None]


# --------------------------------------------------------------------------- recording
def record(engine, forward, primitive, inputs, targets=None, **kwargs):
    """Compute ``forward(*inputs)`` as a new array, record it on ``engine`` and return it."""
    out = np.asarray(forward(*inputs))
    if targets is None:
        targets = [None] * len(inputs)
    engine.add_operation(list(inputs), out, list(targets), primitive, **kwargs)
    return out


def const(value):
    """A constant operand as a 0-d float64 array."""
    return np.asarray(value, dtype=np.float64)
