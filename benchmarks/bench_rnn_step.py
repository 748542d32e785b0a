"""Time one training step of the default GRU classifier (hw/rnn.py): the mytorch tape vs PyTorch eager.

    python benchmarks/bench_rnn_step.py            # batch 1/32/128, float32 and float64, 10 s each
    python benchmarks/bench_rnn_step.py --quick    # a smoke test (seconds, not a measurement)
    python benchmarks/bench_rnn_step.py --batches 32 --dtypes float32 --seconds 60

The step is the trainer's: a GRU 28->128 (the runner's --hidden-size) reading 28 rows of 28 pixels, Linear 128->10
on the last hidden state, softmax cross-entropy, backpropagation through time and
one Adam update. PyTorch runs ``torch.nn.GRU(batch_first=True)``, ``torch.nn.Linear``,
``F.cross_entropy`` and ``torch.optim.Adam`` on the same shapes and weights, with
the input's gradient as the tape computes it (``x.requires_grad``). Method as in
bench_step.py: one BLAS thread (set before NumPy loads, ``torch.set_num_threads(1)``),
the gradients of one step of each are checked against each other first, then the
two run interleaved in blocks of about 20 ms, the order alternating every round.
Reported: median ms per step and the median over rounds of torch / tape (with its
interquartile range). glibc's malloc keeps freed memory in the heap, as the
trainer does (``keep_heap_memory``).
"""
import os
import sys

for _variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_variable] = "1"

import json  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_step import machine_description, time_steps, timing_arguments, timing_parser  # noqa: E402
from step_impls import REPO_ROOT, torch_available  # noqa: E402

if REPO_ROOT not in sys.path:
    sys.path.append(REPO_ROOT)
from hw.trainer import keep_heap_memory, one_hot  # noqa: E402
from hw.rnn import GRUClassifier  # noqa: E402
from hw.rnn_runner import build_parser  # noqa: E402
from mytorch import Autograd  # noqa: E402

STEPS, ROW_SIZE, CLASSES = 28, 28, 10
DEFAULTS = vars(build_parser().parse_args([]))  # the runner's hidden_size and lr
TOLERANCE = {"float64": 1e-9, "float32": 2e-4}  # relative to each gradient's largest entry


def make_problem(batch, dtype, hidden=DEFAULTS["hidden_size"], seed=0):
    """A model's initial parameters (GRU cell's four, Linear's W and b), a batch of images and labels."""
    model = GRUClassifier(ROW_SIZE, hidden, CLASSES, Autograd(), DEFAULTS["lr"], steps=STEPS,
                          rng=np.random.default_rng(seed), dtype=dtype)
    rng = np.random.default_rng(seed + 1)
    x = rng.random((batch, STEPS * ROW_SIZE)).astype(dtype)
    labels = rng.integers(0, CLASSES, batch)
    return [p.copy() for p, _ in model.parameters()], x, labels


class TapeStep:
    """hw/rnn.py's GRUClassifier, one step as get_training_stats runs it."""

    name = "tape"

    def __init__(self, params, x, labels):
        hidden = params[1].shape[1]
        self.model = GRUClassifier(ROW_SIZE, hidden, CLASSES, Autograd(), DEFAULTS["lr"], steps=STEPS,
                                   dtype=x.dtype)
        for (p, _), value in zip(self.model.parameters(), params):
            p[...] = value
        self.x, self.y = x.copy(), one_hot(labels, CLASSES, x.dtype)

    def step(self):
        model = self.model
        model.zero_grads()
        model.forward(self.x)
        loss = model.total_loss(self.y)
        model.backward()
        model.step()
        return loss

    def gradients(self):
        return [g.copy() for _, g in self.model.parameters()]


class TorchStep:
    """torch.nn.GRU + torch.nn.Linear, cross_entropy, Adam; the input's gradient too."""

    name = "torch"

    def __init__(self, params, x, labels):
        import torch

        self.torch = torch
        dtype = torch.float64 if x.dtype == np.float64 else torch.float32
        hidden = params[1].shape[1]
        self.gru = torch.nn.GRU(ROW_SIZE, hidden, batch_first=True, dtype=dtype)
        self.linear = torch.nn.Linear(hidden, CLASSES, dtype=dtype)
        self.params = [self.gru.weight_ih_l0, self.gru.weight_hh_l0, self.gru.bias_ih_l0, self.gru.bias_hh_l0,
                       self.linear.weight, self.linear.bias]
        with torch.no_grad():
            for p, value in zip(self.params, params):
                p.copy_(torch.from_numpy(value))
        self.optimizer = torch.optim.Adam(self.params, lr=DEFAULTS["lr"])
        self.x = torch.from_numpy(x.reshape(len(x), STEPS, ROW_SIZE).copy()).requires_grad_(True)
        self.target = torch.from_numpy(labels)

    def step(self):
        self.optimizer.zero_grad()
        self.x.grad = None
        _, h_n = self.gru(self.x)
        loss = self.torch.nn.functional.cross_entropy(self.linear(h_n[0]), self.target)
        loss.backward()
        self.optimizer.step()
        return loss

    def gradients(self):
        return [p.grad.numpy().copy() for p in self.params]


def check_gradients(impl_classes, params, x, labels):
    """One step of each from the same start; raise if any parameter's gradient disagrees."""
    (first, *others) = [cls(params, x, labels) for cls in impl_classes]
    first.step()
    reference = first.gradients()
    names = ["dweight_ih", "dweight_hh", "dbias_ih", "dbias_hh", "dW", "db"]
    for impl in others:
        impl.step()
        for name, got, want in zip(names, impl.gradients(), reference):
            error = float(np.abs(got.astype(np.float64) - want).max()) / max(float(np.abs(want).max()), 1e-30)
            if got.shape != want.shape or error > TOLERANCE[x.dtype.name]:
                raise AssertionError(f"{impl.name} and {first.name} disagree on {name} ({x.dtype.name}, "
                                     f"batch {len(x)}): relative error {error:.2e}")


def measure(dtype, batch, impl_classes, seconds, min_rounds, block_seconds):
    """{name: [seconds per step, one per round]}, the implementations interleaved."""
    params, x, labels = make_problem(batch, np.dtype(dtype))
    check_gradients(impl_classes, params, x, labels)
    impls = [cls(params, x, labels) for cls in impl_classes]
    steps = {}
    for impl in impls:
        time_steps(impl, 3)
        steps[impl.name] = max(1, int(block_seconds / time_steps(impl, 3)))
    times = {impl.name: [] for impl in impls}
    deadline, rounds = time.perf_counter() + seconds, 0
    while rounds < min_rounds or time.perf_counter() < deadline:
        order = impls if rounds % 2 == 0 else impls[::-1]
        for impl in order:
            times[impl.name].append(time_steps(impl, steps[impl.name]))
        rounds += 1
    return times


def summarize(dtype, batch, times):
    row = {"dtype": dtype, "batch": batch, "rounds": len(times["tape"]),
           **{f"{name}_ms": 1e3 * float(np.median(t)) for name, t in times.items()}}
    if "torch" in times:
        ratios = np.array(times["torch"]) / np.array(times["tape"])
        row["torch_over_tape"] = float(np.median(ratios))
        row["torch_over_tape_q1"], row["torch_over_tape_q3"] = (float(q) for q in np.percentile(ratios, [25, 75]))
    return row


def markdown_table(rows):
    has_torch = any("torch_ms" in row for row in rows)
    header = ["dtype", "batch", "tape ms"] + (["torch ms", "torch / tape"] if has_torch else []) + ["rounds"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        cells = [row["dtype"], str(row["batch"]), f"{row['tape_ms']:.2f}"]
        if has_torch:
            cells += [f"{row['torch_ms']:.2f}",
                      f"{row['torch_over_tape']:.2f} ({row['torch_over_tape_q1']:.2f}-{row['torch_over_tape_q3']:.2f})"]
        lines.append("| " + " | ".join(cells + [str(row["rounds"])]) + " |")
    return "\n".join(lines)


def main(argv=None):
    parser = timing_parser(__doc__.split("\n")[0], batches=[1, 32, 128], dtypes=["float32", "float64"],
                           seconds=10.0, min_rounds=20, block_ms=20.0, quick=(0.5, 3))
    parser.add_argument("--json", help="also write the raw results to this file")
    args = timing_arguments(parser, argv, TOLERANCE)
    keep_heap_memory()
    impl_classes = [TapeStep]
    if not args.no_torch and torch_available():
        import torch

        torch.set_num_threads(1)
        impl_classes.append(TorchStep)
    print("\n".join(machine_description()))
    print(f"one training step of GRU {ROW_SIZE}->{DEFAULTS['hidden_size']} x {STEPS} steps + Linear -> {CLASSES}, "
          f"Adam; one BLAS thread; {args.seconds:g} s (at least {args.min_rounds} rounds) per configuration, "
          f"interleaved ~{args.block_ms:g} ms blocks; load average {os.getloadavg()[0]:.2f} at the start\n")
    rows = []
    for dtype in args.dtypes:
        for batch in args.batches:
            times = measure(dtype, batch, impl_classes, args.seconds, args.min_rounds, args.block_ms / 1e3)
            rows.append(summarize(dtype, batch, times))
            print(f"  {dtype} batch {batch} done", file=sys.stderr, flush=True)
    print(markdown_table(rows))
    print(f"\nload average {os.getloadavg()[0]:.2f} at the end")
    if args.json:
        with open(args.json, "w") as file:
            json.dump({"machine": machine_description(), "rows": rows}, file, indent=2)
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
