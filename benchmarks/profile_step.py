"""Where the time of one tape step goes, compared with the same step by hand in NumPy.

    python benchmarks/profile_step.py                # batch 32, float64
    python benchmarks/profile_step.py --batch 512 --cprofile 0

Three parts, all in one process with one BLAS thread:

1. Stages: the median time of each stage of a tape step (engine.zero_grad, zeroing
   dW/db, forward, loss, backward, SGD update) beside the same tape step with the
   tape's rules switched off (no checks, no read-only freezing: what they cost) and
   the matching stages of the hand-written NumPy step, interleaved.
2. The step's contract: a NumPy step that also does the array work the course API
   asks of the tape (zero every dW/db, then *add* each gradient into it, and the
   loss primitive's gradient for the labels). The gap between it and plain NumPy
   is array work, not engine overhead; the gap between the tape and it is the
   engine's Python overhead.
3. cProfile of the tape step, sorted by own time.
"""
import os
import sys

for _variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_variable] = "1"

import argparse  # noqa: E402
import cProfile  # noqa: E402
import io  # noqa: E402
import pstats  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from step_impls import NumpyStep, TapeStep, make_problem  # noqa: E402

import mytorch  # noqa: E402
from mytorch._tape_rules import TapeRules  # noqa: E402


class RulesOff(TapeRules):
    """For measuring what the tape's rules cost: counts operations, checks nothing, freezes nothing."""

    def check_operation(self, inputs, output, gradients_to_update, backward_operation):
        pass

    def freeze(self, inputs, output, backward_operation):
        self.count += 1
        self._primitives.append(backward_operation)
        self._last_output = output

    def call_primitive(self, index, operation, grad_output):
        return operation.backward_operation(grad_output, *operation.inputs, **operation.kwargs)


class TimedTapeStep(TapeStep):
    """TapeStep with a clock read between its stages; ``rules=False`` switches the tape's rules off."""

    stages = ("engine.zero_grad", "zero dW, db", "forward", "loss", "backward", "SGD update")

    def __init__(self, weights, x, y, lr, rules=True):
        super().__init__(weights, x, y, lr)
        if not rules:
            self.engine._rules = RulesOff()

    def timed_step(self):
        clock = [time.perf_counter()]
        self.engine.zero_grad()
        clock.append(time.perf_counter())
        self.optimizer.zero_grad()
        clock.append(time.perf_counter())
        out = self.x
        for layer, relu in zip(self.layers[:-1], self.relus):
            out = relu(layer(out))
        logits = self.layers[-1](out)
        clock.append(time.perf_counter())
        self.criterion(self.y, logits)
        clock.append(time.perf_counter())
        self.criterion.backward()
        clock.append(time.perf_counter())
        self.optimizer.step()
        clock.append(time.perf_counter())
        return np.diff(clock)


class TimedNumpyStep(NumpyStep):
    """NumpyStep split into the same stages; ``contract=True`` adds the tape's extra array work."""

    stages = ("-", "zero dW, db", "forward", "loss", "backward", "SGD update")

    def __init__(self, weights, x, y, lr, contract=False):
        super().__init__(weights, x, y, lr)
        self.contract = contract
        self.grads = [np.zeros_like(a) for W, b in self.params for a in (W, b)] + [np.zeros_like(self.x)]

    def timed_step(self):
        (W1, b1), (W2, b2), (W3, b3) = self.params
        x, y, n = self.x, self.y, len(self.x)
        clock = [time.perf_counter()]
        clock.append(time.perf_counter())
        if self.contract:  # zero_grads: every dW and db is filled with zeros
            for grad in self.grads[:6]:
                grad.fill(0)
        clock.append(time.perf_counter())
        z1 = x @ W1.T + b1
        h1 = np.maximum(z1, 0)
        z2 = h1 @ W2.T + b2
        h2 = np.maximum(z2, 0)
        z3 = h2 @ W3.T + b3
        clock.append(time.perf_counter())
        shifted = z3 - z3.max(axis=1, keepdims=True)
        log_p = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
        loss = -np.sum(y * log_p) / n  # noqa: F841
        clock.append(time.perf_counter())
        g3 = (np.exp(log_p) - y) / n
        g2 = (g3 @ W3) * (z2 > 0)
        g1 = (g2 @ W2) * (z1 > 0)
        new = [g1.T @ x, g1.sum(axis=0), g2.T @ h1, g2.sum(axis=0), g3.T @ h2, g3.sum(axis=0), g1 @ W1]
        if self.contract:  # gradients_to_update are incremented in place; the labels get a gradient too
            for grad, value in zip(self.grads[:6], new[:6]):
                grad += value
            self.grads[6] = new[6]
            self.grad_y = -log_p / n
        else:
            self.grads = new
        clock.append(time.perf_counter())
        for (W, b), dW, db in zip(self.params, self.grads[0:6:2], self.grads[1:6:2]):
            W -= self.lr * dW
            b -= self.lr * db
        clock.append(time.perf_counter())
        return np.diff(clock)


def stage_table(batch, dtype, rounds):
    weights, x, y = make_problem(batch, np.dtype(dtype))
    impls = {
        "tape": TimedTapeStep(weights, x, y, 1e-3),
        "tape, rules off": TimedTapeStep(weights, x, y, 1e-3, rules=False),
        "numpy": TimedNumpyStep(weights, x, y, 1e-3),
        "numpy + contract": TimedNumpyStep(weights, x, y, 1e-3, contract=True),
    }
    columns = ("tape", "tape, rules off", "numpy + contract", "numpy")
    samples = {name: [] for name in impls}
    names = list(impls)
    for round_index in range(rounds + 50):
        shift = round_index % len(names)
        for name in names[shift:] + names[:shift]:
            stages = impls[name].timed_step()
            if round_index >= 50:  # the first rounds warm up
                samples[name].append(stages)
    medians = {name: np.median(np.array(s), axis=0) * 1e6 for name, s in samples.items()}
    totals = {name: np.median(np.array(s).sum(axis=1)) * 1e6 for name, s in samples.items()}
    print(f"\nStages of one step, batch {batch}, {dtype}: median microseconds over {rounds} interleaved rounds\n")
    print("| stage | tape | tape, rules off | NumPy + contract | NumPy |")
    print("|---|---|---|---|---|")
    for i, stage in enumerate(TimedTapeStep.stages):
        cells = [f"{medians[name][i]:.0f}" for name in columns]
        print(f"| {stage} | " + " | ".join(cells) + " |")
    print("| **step (median of sums)** | " + " | ".join(f"**{totals[name]:.0f}**" for name in columns) + " |")
    print(f"\ntape / NumPy {totals['tape'] / totals['numpy']:.2f}; "
          f"NumPy + contract / NumPy {totals['numpy + contract'] / totals['numpy']:.2f} (array work the API asks for); "
          f"tape / (NumPy + contract) {totals['tape'] / totals['numpy + contract']:.2f} (engine overhead); "
          f"tape / tape with rules off {totals['tape'] / totals['tape, rules off']:.2f} (what the rules cost)")


def profile(batch, dtype, steps, top):
    weights, x, y = make_problem(batch, np.dtype(dtype))
    tape = TapeStep(weights, x, y, 1e-3)
    for _ in range(50):
        tape.step()
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(steps):
        tape.step()
    profiler.disable()
    text = io.StringIO()
    stats = pstats.Stats(profiler, stream=text)
    stats.sort_stats("tottime").print_stats(top)
    print(f"\ncProfile of {steps} tape steps, batch {batch}, {dtype} (own time; profiling inflates "
          f"Python-heavy functions):\n")
    lines = text.getvalue().splitlines()
    start = next(i for i, line in enumerate(lines) if line.lstrip().startswith("ncalls"))
    print("\n".join(line.replace(os.path.dirname(os.path.dirname(mytorch.__file__)) + os.sep, "")
                    for line in lines[start:] if line.strip()))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--dtype", choices=["float64", "float32"], default="float64")
    parser.add_argument("--rounds", type=int, default=1000)
    parser.add_argument("--cprofile", type=int, default=2000, help="tape steps to profile (0: skip)")
    parser.add_argument("--top", type=int, default=20)
    args = parser.parse_args(argv)
    print(f"mytorch from {os.path.dirname(mytorch.__file__)}; malloc: "
          f"{ {k: v for k, v in os.environ.items() if k.startswith('MALLOC_')} or 'glibc defaults'}")
    stage_table(args.batch, args.dtype, args.rounds)
    if args.cprofile:
        profile(args.batch, args.dtype, args.cprofile, args.top)
    return 0


if __name__ == "__main__":
    sys.exit(main())
