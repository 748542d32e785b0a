"""Recurrent cells and a sequence model, recorded on an autograd tape.

``RNNCell`` and ``GRUCell`` follow PyTorch's equations and parameter names
(``weight_ih``, ``weight_hh``, ``bias_ih``, ``bias_hh``; the GRU's gates are
stacked r, z, n along the first axis, as in ``torch.nn.GRUCell``). Every step of
their forward pass is one recorded primitive operation, so ``backward`` fills
``dweight_ih``, ``dweight_hh``, ``dbias_ih`` and ``dbias_hh``. ``Recurrent``
unrolls a cell over the time steps of a batch of sequences on the same tape:
backpropagation through time is the ordinary ``backward``.
"""
import numpy as np

from mytorch.nn.functional import (
    add_backward,
    getitem_backward,
    matmul_backward,
    mul_backward,
    relu_backward,
    sigmoid_backward,
    stable_sigmoid,
    sub_backward,
    tanh_backward,
)
from mytorch.nn.functional_rnn import stack_backward

PARAMETER_NAMES = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")


class RecurrentCell:
    """Base class: the parameters of ``gates`` stacked gates and the helpers that record operations.

    ``weight_ih`` is (gates * hidden_size, input_size), ``weight_hh`` (gates *
    hidden_size, hidden_size), ``bias_ih`` and ``bias_hh`` (gates * hidden_size,),
    all drawn from U(-1/sqrt(hidden_size), 1/sqrt(hidden_size)) as in PyTorch;
    ``d<name>`` holds each one's gradient. ``rng`` is a ``np.random.Generator``
    (default: the ``np.random`` module).
    """

    gates = 1

    def __init__(self, input_size, hidden_size, autograd_engine, rng=None, dtype=np.float64):
        if input_size < 1 or hidden_size < 1:
            raise ValueError(
                f"{type(self).__name__}: sizes must be positive, got input_size={input_size}, "
                f"hidden_size={hidden_size}"
            )
        rng = np.random if rng is None else rng
        self.input_size, self.hidden_size = input_size, hidden_size
        self.autograd_engine = autograd_engine
        rows, bound = self.gates * hidden_size, np.sqrt(1 / hidden_size)
        shapes = {"weight_ih": (rows, input_size), "weight_hh": (rows, hidden_size),
                  "bias_ih": (rows,), "bias_hh": (rows,)}
        for name in PARAMETER_NAMES:
            # Column-major, as Linear's W: the gradient matmul_backward computes for weight.T is then
            # added into dweight.T in one contiguous pass.
            value = rng.uniform(-bound, bound, size=shapes[name]).astype(dtype, order="F")
            setattr(self, name, value)
            setattr(self, "d" + name, np.zeros_like(value))

    def parameters(self):
        """(parameter, gradient) pairs in PyTorch's order, for the optimizers in ``mytorch.optim``."""
        return [(getattr(self, name), getattr(self, "d" + name)) for name in PARAMETER_NAMES]

    def __call__(self, x, h=None):
        return self.forward(x, h)

    def forward(self, x, h=None):
        raise NotImplementedError

    # ------------------------------------------------------------------ helpers
    def _check(self, x, h):
        """Raise ValueError unless x is (N, input_size) and h is None or (N, hidden_size); return h."""
        name = f"{type(self).__name__}({self.input_size}, {self.hidden_size}).forward"
        if not isinstance(x, np.ndarray) or x.ndim != 2 or x.shape[1] != self.input_size:
            raise ValueError(f"{name}: expected x of shape (N, {self.input_size}), got shape {np.shape(x)}")
        if h is None:  # PyTorch's default: a zero initial state
            return np.zeros((x.shape[0], self.hidden_size), dtype=self.weight_hh.dtype)
        if not isinstance(h, np.ndarray) or h.shape != (x.shape[0], self.hidden_size):
            raise ValueError(
                f"{name}: expected h of shape ({x.shape[0]}, {self.hidden_size}) for x of shape "
                f"{x.shape}, got shape {np.shape(h)}"
            )
        return h

    def _record(self, primitive, output, *inputs, **options):
        """Record ``output`` = f(``inputs``) (each input gets a buffer spot) and return ``output``."""
        self.autograd_engine.add_operation(list(inputs), output, [None] * len(inputs), primitive, **options)
        return output

    def _affine(self, x, side):
        """Record x @ weight_<side>.T + bias_<side> (side "ih" or "hh"); gradients go to d<name>."""
        weight, bias = getattr(self, "weight_" + side), getattr(self, "bias_" + side)
        dweight, dbias = getattr(self, "dweight_" + side), getattr(self, "dbias_" + side)
        weight_T = weight.T
        product = x @ weight_T
        self.autograd_engine.add_operation([x, weight_T], product, [None, dweight.T], matmul_backward)
        out = product + bias
        self.autograd_engine.add_operation([product, bias], out, [None, dbias], add_backward)
        return out

    def _gate(self, stacked, k):
        """Record the k-th block of hidden_size columns of ``stacked`` (N, gates * hidden_size)."""
        index = (slice(None), slice(k * self.hidden_size, (k + 1) * self.hidden_size))
        return self._record(getitem_backward, stacked[index], stacked, index=index)

    def _add(self, a, b):
        return self._record(add_backward, a + b, a, b)

    def _mul(self, a, b):
        return self._record(mul_backward, a * b, a, b)

    def _sigmoid(self, a):
        out = stable_sigmoid(a)
        return self._record(sigmoid_backward, out, a, out=out)

    def _tanh(self, a):
        out = np.tanh(a)
        return self._record(tanh_backward, out, a, out=out)

    def __repr__(self):
        return f"{type(self).__name__}(input_size={self.input_size}, hidden_size={self.hidden_size})"


class RNNCell(RecurrentCell):
    """h' = nonlinearity(x @ weight_ih.T + bias_ih + h @ weight_hh.T + bias_hh), as torch.nn.RNNCell.

    ``nonlinearity`` is "tanh" or "relu".
    """

    def __init__(self, input_size, hidden_size, autograd_engine, nonlinearity="tanh", rng=None,
                 dtype=np.float64):
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"RNNCell: nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
        super().__init__(input_size, hidden_size, autograd_engine, rng=rng, dtype=dtype)
        self.nonlinearity = nonlinearity

    def forward(self, x, h=None):
        """One step: x (N, input_size), h (N, hidden_size) or None (zeros) -> h' (N, hidden_size)."""
        h = self._check(x, h)
        # BEGIN SOLUTION
        pre = self._add(self._affine(x, "ih"), self._affine(h, "hh"))
        if self.nonlinearity == "tanh":
            return self._tanh(pre)
        return self._record(relu_backward, np.maximum(pre, 0), pre)
        # END SOLUTION

    def __repr__(self):
        return f"RNNCell(input_size={self.input_size}, hidden_size={self.hidden_size}, " \
               f"nonlinearity={self.nonlinearity!r})"


class GRUCell(RecurrentCell):
    """A gated recurrent unit step, as torch.nn.GRUCell (gates stacked r, z, n)::

        r  = sigmoid(x W_ir^T + b_ir + h W_hr^T + b_hr)
        z  = sigmoid(x W_iz^T + b_iz + h W_hz^T + b_hz)
        n  = tanh(x W_in^T + b_in + r * (h W_hn^T + b_hn))
        h' = (1 - z) * n + z * h

    where W_ir, W_iz, W_in are the three blocks of hidden_size rows of ``weight_ih``
    (the same for ``weight_hh``, ``bias_ih``, ``bias_hh``).
    """

    gates = 3

    def forward(self, x, h=None):
        """One step: x (N, input_size), h (N, hidden_size) or None (zeros) -> h' (N, hidden_size)."""
        h = self._check(x, h)
        # BEGIN SOLUTION
        gi = self._affine(x, "ih")  # (N, 3H): the input's share of r, z, n
        gh = self._affine(h, "hh")  # (N, 3H): the hidden state's share
        r = self._sigmoid(self._add(self._gate(gi, 0), self._gate(gh, 0)))
        z = self._sigmoid(self._add(self._gate(gi, 1), self._gate(gh, 1)))
        n = self._tanh(self._add(self._gate(gi, 2), self._mul(r, self._gate(gh, 2))))
        # (1 - z) * n + z * h, written as n + z * (h - n): one operation fewer
        h_minus_n = self._record(sub_backward, h - n, h, n)
        return self._add(n, self._mul(z, h_minus_n))
        # END SOLUTION


class Recurrent:
    """Unrolls ``cell`` over time on the cell's tape: h_t = cell(x[:, t], h_{t-1}).

    ``forward(x, h0=None)`` takes a batch of sequences x of shape (N, T, input_size)
    (batch first) and returns the last hidden state (N, hidden_size), or with
    ``return_sequence=True`` every step's hidden state stacked as (N, T, hidden_size)
    (``torch.nn.GRU(..., batch_first=True)``'s output). ``hiddens`` keeps the list of
    hidden states of the last forward pass. Each time step's input ``x[:, t]`` is a
    recorded slice, so the input's gradient is computed too.
    """

    def __init__(self, cell):
        self.cell = cell
        self.autograd_engine = cell.autograd_engine
        self.hiddens = []

    def parameters(self):
        return self.cell.parameters()

    def __call__(self, x, h0=None, return_sequence=False):
        return self.forward(x, h0, return_sequence)

    def forward(self, x, h0=None, return_sequence=False):
        cell = self.cell
        if not isinstance(x, np.ndarray) or x.ndim != 3 or x.shape[2] != cell.input_size or x.shape[1] < 1:
            raise ValueError(
                f"Recurrent({cell!r}).forward: expected x of shape (N, T, {cell.input_size}) with "
                f"T >= 1 (batch first), got shape {np.shape(x)}"
            )
        engine = self.autograd_engine
        # BEGIN SOLUTION
        h = h0
        self.hiddens = []
        for t in range(x.shape[1]):
            index = (slice(None), t)
            x_t = x[index]
            engine.add_operation([x], x_t, [None], getitem_backward, index=index)
            h = cell(x_t, h)
            self.hiddens.append(h)
        if not return_sequence:
            return h
        out = np.stack(self.hiddens, axis=1)
        engine.add_operation(list(self.hiddens), out, [None] * len(self.hiddens), stack_backward, axis=1)
        return out
        # END SOLUTION

    def __repr__(self):
        return f"Recurrent({self.cell!r})"
