"""The RNN pack's case tables: new primitives and recurrent modules, with NumPy and PyTorch twins.

``PRIMITIVE_CASES`` (``helpers.Case`` rows) drive the finite-difference tests
(tests/test_rnn.py) and the PyTorch oracle (tests/test_rnn_torch_oracle.py), as the
engine's own table does. ``MODULE_CASES`` describe RNNCell, GRUCell and unrolled
sequences; their reference forward passes below are plain NumPy, written from
PyTorch's documented equations, independently of ``mytorch``.
"""
import zlib

import numpy as np

from helpers import Case
from mytorch import Autograd, nn
from mytorch.nn import functional_rnn as R

PARAMETER_NAMES = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")


def _torch():
    import torch

    return torch


# --------------------------------------------------------------------------- primitives
def _t_expand_dims(t, axis):
    """torch twin of np.expand_dims: unsqueeze at each output position, lowest first."""
    axes = (axis,) if np.ndim(axis) == 0 else axis
    ndim = t.dim() + len(axes)
    for a in sorted(a % ndim for a in axes):
        t = t.unsqueeze(a)
    return t


def _t_squeeze(t, axis):
    return t.squeeze() if axis is None else t.squeeze(axis)


def _build_primitive_cases():
    cases = []
    for shapes, axis in [([(3, 4), (3, 4)], 0), ([(3, 4), (3, 4), (3, 4)], 1), ([(2, 3)] * 4, -1),
                         ([(2, 3)] * 3, 2), ([(5,)], 0), ([()] * 4, 0), ([(1, 1), (1, 1)], 1),
                         ([(1, 6)] * 5, 1)]:
        cases.append(Case(f"stack-{len(shapes)}x{shapes[0]}-axis{axis}", R.stack_backward,
                          (lambda ax: lambda *xs: np.stack(xs, axis=ax))(axis), shapes,
                          torch_forward=(lambda ax: lambda *ts: _torch().stack(ts, dim=ax))(axis),
                          kwargs={"axis": axis}))
    for shapes, axis in [([(2, 3), (4, 3)], 0), ([(2, 1), (2, 3), (2, 2)], 1), ([(2, 3, 1), (2, 3, 2)], -1),
                         ([(3, 4)], 1), ([(1, 5), (1, 5)], 0), ([(1, 1), (1, 1), (1, 1)], 1)]:
        cases.append(Case(f"concatenate-{shapes}-axis{axis}", R.concatenate_backward,
                          (lambda ax: lambda *xs: np.concatenate(xs, axis=ax))(axis), shapes,
                          torch_forward=(lambda ax: lambda *ts: _torch().cat(ts, dim=ax))(axis),
                          kwargs={"axis": axis}))
    for shape, axis in [((3, 4), 0), ((3, 4), 1), ((3, 4), -1), ((3, 4), (0, 2)), ((), 0), ((1, 1), (-1, 0))]:
        cases.append(Case(f"expand_dims-{shape}-axis{axis}", R.expand_dims_backward,
                          (lambda ax: lambda a: np.expand_dims(a, ax))(axis), [shape],
                          torch_forward=(lambda ax: lambda t: _t_expand_dims(t, ax))(axis),
                          kwargs={"axis": axis}))
    for shape, axis in [((1, 3, 1, 4), None), ((1, 3, 1, 4), 0), ((1, 3, 1, 4), (0, 2)), ((1, 3, 1, 4), -2),
                        ((1, 1), None), ((3, 1), 1), ((5,), None)]:
        cases.append(Case(f"squeeze-{shape}-axis{axis}", R.squeeze_backward,
                          (lambda ax: lambda a: np.squeeze(a, ax))(axis), [shape],
                          torch_forward=(lambda ax: lambda t: _t_squeeze(t, ax))(axis),
                          kwargs={"axis": axis}))
    return cases


PRIMITIVE_CASES = _build_primitive_cases()


# --------------------------------------------------------------------------- NumPy references
def np_sigmoid(a):
    return 1.0 / (1.0 + np.exp(-a))


def np_rnn_cell(x, h, weight_ih, weight_hh, bias_ih, bias_hh, nonlinearity="tanh"):
    """torch.nn.RNNCell: act(x W_ih^T + b_ih + h W_hh^T + b_hh)."""
    pre = x @ weight_ih.T + bias_ih + h @ weight_hh.T + bias_hh
    return np.tanh(pre) if nonlinearity == "tanh" else np.maximum(pre, 0.0)


def np_gru_cell(x, h, weight_ih, weight_hh, bias_ih, bias_hh):
    """torch.nn.GRUCell, gates stacked r, z, n."""
    i_r, i_z, i_n = np.split(x @ weight_ih.T + bias_ih, 3, axis=1)
    h_r, h_z, h_n = np.split(h @ weight_hh.T + bias_hh, 3, axis=1)
    r = np_sigmoid(i_r + h_r)
    z = np_sigmoid(i_z + h_z)
    n = np.tanh(i_n + r * h_n)
    return (1.0 - z) * n + z * h


# --------------------------------------------------------------------------- modules
class ModuleCase:
    """One recurrent module check.

    ``cell`` is "rnn_tanh", "rnn_relu" or "gru"; ``steps`` None checks one cell
    step ``cell(x, h)``, otherwise ``nn.Recurrent(cell)`` over x of shape
    (batch, steps, input_size) (``return_sequence`` chooses the output).
    ``with_h`` False leaves the initial state to the default (zeros).
    """

    def __init__(self, cell, batch, input_size=3, hidden_size=4, steps=None, with_h=True,
                 return_sequence=False):
        self.cell, self.batch, self.steps = cell, batch, steps
        self.input_size, self.hidden_size = input_size, hidden_size
        self.with_h, self.return_sequence = with_h, return_sequence
        self.name = (f"{cell}-N{batch}-I{input_size}-H{hidden_size}"
                     + ("" if steps is None else f"-T{steps}" + ("-seq" if return_sequence else "-last"))
                     + ("" if with_h else "-h0none"))

    def __repr__(self):
        return self.name

    def _rng(self, salt=0):
        return np.random.default_rng(zlib.crc32(self.name.encode()) + salt)

    def make_cell(self, engine, dtype):
        """The mytorch cell, its parameters drawn from this case's seed."""
        rng = self._rng()
        if self.cell == "gru":
            return nn.GRUCell(self.input_size, self.hidden_size, engine, rng=rng, dtype=dtype)
        return nn.RNNCell(self.input_size, self.hidden_size, engine, nonlinearity=self.cell[4:], rng=rng,
                          dtype=dtype)

    def data(self, dtype):
        """(x, h or None) in ``dtype``."""
        rng = self._rng(1)
        shape = (self.batch, self.input_size) if self.steps is None else (self.batch, self.steps, self.input_size)
        x = rng.standard_normal(shape).astype(dtype)
        h = rng.standard_normal((self.batch, self.hidden_size)).astype(dtype) if self.with_h else None
        return x, h

    def forward(self, module, x, h):
        if self.steps is None:
            return module(x, h)
        return module(x, h, return_sequence=self.return_sequence)

    def reference(self, x, h, *params):
        """The NumPy forward pass (h None means zeros)."""
        if h is None:
            h = np.zeros((x.shape[0], self.hidden_size), dtype=x.dtype)
        if self.cell == "gru":
            step = np_gru_cell
        else:
            def step(x, h, *p):
                return np_rnn_cell(x, h, *p, nonlinearity=self.cell[4:])
        if self.steps is None:
            return step(x, h, *params)
        hiddens = []
        for t in range(self.steps):
            h = step(x[:, t], h, *params)
            hiddens.append(h)
        return np.stack(hiddens, axis=1) if self.return_sequence else h

    def upstream(self, out):
        return self._rng(2).standard_normal(out.shape).astype(out.dtype)

    def run(self, dtype):
        """Forward and backward on a fresh engine.

        Returns (cell, out, g, inputs, grads): ``inputs`` maps "x" (and "h" when
        given) and each parameter name to its array, ``grads`` each to its gradient.
        """
        engine = Autograd()
        cell = self.make_cell(engine, dtype)
        module = cell if self.steps is None else nn.Recurrent(cell)
        x, h = self.data(dtype)
        out = self.forward(module, x, h)
        g = self.upstream(out)
        engine.backward(g)
        inputs, grads = {"x": x}, {"x": engine.gradient_buffer.get_param(x).copy()}
        if h is not None:
            inputs["h"], grads["h"] = h, engine.gradient_buffer.get_param(h).copy()
        for name in PARAMETER_NAMES:
            inputs[name], grads[name] = getattr(cell, name), getattr(cell, "d" + name).copy()
        return cell, out, g, inputs, grads

    def reference_of(self, inputs):
        """A function of the arrays in ``inputs`` (same keys, same order) computing ``reference``."""
        has_h = "h" in inputs

        def fn(*arrays):
            x, rest = arrays[0], arrays[1:]
            h = rest[0] if has_h else None
            return self.reference(x, h, *rest[1 if has_h else 0:])
        return fn


MODULE_CASES = [
    ModuleCase("rnn_tanh", 1), ModuleCase("rnn_tanh", 3), ModuleCase("rnn_relu", 3),
    ModuleCase("rnn_tanh", 2, with_h=False), ModuleCase("gru", 1), ModuleCase("gru", 3),
    ModuleCase("gru", 2, input_size=5, hidden_size=2, with_h=False), ModuleCase("gru", 1, input_size=1, hidden_size=1),
    ModuleCase("rnn_tanh", 2, steps=4), ModuleCase("rnn_relu", 3, steps=3, return_sequence=True),
    ModuleCase("gru", 1, steps=5), ModuleCase("gru", 3, steps=4, return_sequence=True),
    ModuleCase("gru", 2, steps=3, with_h=False, return_sequence=True), ModuleCase("gru", 2, steps=1),
]
