"""Time one training step of the default CNN (hw/cnn.py): the mytorch tape vs PyTorch eager.

    python benchmarks/bench_cnn_step.py             # batch 1, 64, 256; float32 and float64
    python benchmarks/bench_cnn_step.py --quick     # a smoke test (seconds, not a measurement)
    python benchmarks/bench_cnn_step.py --batches 64 --dtypes float32 --seconds 30

The step: zero the gradients, forward (Conv2d 1->16 5x5, ReLU, MaxPool2d 2, Conv2d 16->32 5x5,
ReLU, MaxPool2d 2, Flatten, Linear 512->10), softmax cross-entropy, backward, SGD with momentum
0.9. Both compute the input batch's gradient too (the tape always does; torch is given
``x.requires_grad_(True)``). Method as benchmarks/bench_step.py: one BLAS thread (set before
NumPy loads; ``torch.set_num_threads(1)``), the same initial weights, gradients checked against
each other before timing, then interleaved blocks of steps in one process with the order rotating
every round. Reported: median wall time per step, median of the per-round ratios torch / tape
(with its interquartile range) and the same ratio over process CPU time, which a busy machine
disturbs less. glibc's malloc keeps freed memory in its heap here (as in hw/cnn_runner.py,
``--malloc default`` to leave it alone).
"""
import os
import sys

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, BENCH_DIR)
import bench_step  # noqa: E402  (sets one BLAS thread before NumPy loads)

import time  # noqa: E402

import numpy as np  # noqa: E402

from step_impls import torch_available  # noqa: E402  (also puts the repository on the path)
from hw.cnn import default_cnn  # noqa: E402
from hw.trainer import keep_heap_memory, one_hot  # noqa: E402
from mytorch import Autograd  # noqa: E402

LEARNING_RATE, MOMENTUM = 0.01, 0.9
TOLERANCE = {"float64": 1e-9, "float32": 1e-3}  # relative to the gradient's largest entry


def make_problem(batch, dtype, seed=0):
    """A batch of images (batch, 1, 28, 28) and one-hot labels, in ``dtype``."""
    rng = np.random.default_rng(seed)
    return rng.random((batch, 1, 28, 28)).astype(dtype), one_hot(rng.integers(0, 10, batch), 10, dtype)


class TapeCNNStep:
    """The homework CNN on the mytorch tape, driven as hw/mlp.py's training loop drives it."""

    name = "tape"

    def __init__(self, dtype, x, y):
        self.cnn = default_cnn(Autograd(), rng=np.random.default_rng(0), lr=LEARNING_RATE, momentum=MOMENTUM,
                               dtype=dtype)
        self.x, self.y = x, y

    def step(self):
        cnn = self.cnn
        cnn.zero_grads()
        cnn.forward(self.x)
        cnn.total_loss(self.y)
        cnn.backward()
        cnn.step()

    def gradients(self):
        grads = [grad for layer in self.cnn.parameter_layers for _, grad in layer.parameters()]
        return grads + [self.cnn.autograd_engine.gradient_buffer.get_param(self.x)]


class TorchCNNStep:
    """The same network, weights and update in PyTorch eager mode."""

    name = "torch"

    def __init__(self, tape, x, y):
        import torch

        self.torch = torch
        nn = torch.nn
        self.model = nn.Sequential(nn.Conv2d(1, 16, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(16, 32, 5), nn.ReLU(),
                                   nn.MaxPool2d(2), nn.Flatten(), nn.Linear(512, 10)).to(torch.from_numpy(x).dtype)
        parameters = [p for layer in tape.cnn.parameter_layers for p in (layer.W, layer.b)]
        with torch.no_grad():
            for mine, theirs in zip(parameters, self.model.parameters()):
                theirs.copy_(torch.from_numpy(mine))
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=LEARNING_RATE, momentum=MOMENTUM)
        self.x = torch.from_numpy(x.copy()).requires_grad_(True)
        self.labels = torch.from_numpy(y.argmax(axis=1))

    def step(self):
        self.optimizer.zero_grad()
        self.x.grad = None
        loss = self.torch.nn.functional.cross_entropy(self.model(self.x), self.labels)
        loss.backward()
        self.optimizer.step()

    def gradients(self):
        return [p.grad.numpy() for p in self.model.parameters()] + [self.x.grad.numpy()]


def check_gradients(tape, torch_step, dtype):
    """One step of each from the same weights; raise if any gradient disagrees."""
    tape.step()
    torch_step.step()
    for i, (mine, theirs) in enumerate(zip(tape.gradients(), torch_step.gradients())):
        scale = max(float(np.abs(theirs).max()), 1e-30)
        error = float(np.abs(mine.astype(np.float64) - theirs).max()) / scale
        if mine.shape != theirs.shape or error > TOLERANCE[dtype]:
            raise AssertionError(f"tape and torch disagree on gradient {i} ({dtype}): relative error {error:.2e}")


def timed(impl, steps):
    """(wall seconds, CPU seconds) per step over ``steps`` consecutive steps."""
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(steps):
        impl.step()
    return (time.perf_counter() - wall) / steps, (time.process_time() - cpu) / steps


def measure(dtype, batch, seconds, min_rounds, block_seconds, with_torch):
    """{name: [(wall, cpu) per step, one per round]} of interleaved blocks."""
    x, y = make_problem(batch, dtype)
    impls = [TapeCNNStep(dtype, x, y)]
    if with_torch:
        impls.append(TorchCNNStep(impls[0], x, y))
        check_gradients(impls[0], impls[1], dtype)
    steps = {}
    for impl in impls:  # warm up, and size each block to about block_seconds
        timed(impl, 3)
        steps[impl.name] = max(1, int(block_seconds / timed(impl, 3)[0]))
    times = {impl.name: [] for impl in impls}
    deadline = time.perf_counter() + seconds
    rounds = 0
    while rounds < min_rounds or time.perf_counter() < deadline:
        shift = rounds % len(impls)
        for impl in impls[shift:] + impls[:shift]:
            times[impl.name].append(timed(impl, steps[impl.name]))
        rounds += 1
    return times


def table_row(dtype, batch, times):
    """One Markdown row: medians (ms per step) and the per-round torch / tape ratios."""
    tape = np.array(times["tape"])
    cells = [dtype, str(batch), f"{1e3 * np.median(tape[:, 0]):.2f}", f"{1e3 * np.median(tape[:, 1]):.2f}"]
    if "torch" in times:
        torch_times = np.array(times["torch"])
        wall_ratio, cpu_ratio = torch_times[:, 0] / tape[:, 0], torch_times[:, 1] / tape[:, 1]
        q1, q3 = np.percentile(wall_ratio, [25, 75])
        cells += [f"{1e3 * np.median(torch_times[:, 0]):.2f}", f"{1e3 * np.median(torch_times[:, 1]):.2f}",
                  f"{np.median(wall_ratio):.2f} ({q1:.2f}-{q3:.2f})", f"{np.median(cpu_ratio):.2f}"]
    return "| " + " | ".join(cells + [str(len(tape))]) + " |"


def main(argv=None):
    parser = bench_step.timing_parser(__doc__.split("\n")[0], batches=[1, 64, 256], dtypes=["float32", "float64"],
                                      seconds=20.0, min_rounds=20, block_ms=50.0, quick=(1.0, 3))
    parser.add_argument("--malloc", choices=["tuned", "default"], default="tuned",
                        help="tuned: keep freed memory in glibc's heap, as hw/cnn_runner.py does")
    args = bench_step.timing_arguments(parser, argv, TOLERANCE)
    with_torch = not args.no_torch and torch_available()
    if with_torch:
        import torch

        torch.set_num_threads(1)
    if args.malloc == "tuned":
        keep_heap_memory()
    print("\n".join(bench_step.machine_description()))
    print(f"one BLAS thread; malloc {args.malloc}; per configuration {args.seconds:g} s (at least "
          f"{args.min_rounds} rounds) of interleaved ~{args.block_ms:g} ms blocks; load average at start "
          f"{' '.join(f'{v:.2f}' for v in os.getloadavg())}\n")
    header = ["dtype", "batch", "tape ms", "tape CPU ms"]
    if with_torch:
        header += ["torch ms", "torch CPU ms", "torch / tape", "torch / tape (CPU)"]
    header.append("rounds")
    print("| " + " | ".join(header) + " |\n|" + "---|" * len(header), flush=True)
    for dtype in args.dtypes:
        for batch in args.batches:
            times = measure(dtype, batch, args.seconds, args.min_rounds, args.block_ms / 1e3, with_torch)
            print(table_row(dtype, batch, times), flush=True)
    print(f"\nload average at the end {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
