"""Memory over many training steps of the tape engine: RSS, peak RSS, tape and buffer sizes must stay flat.

    python benchmarks/bench_memory.py                  # 10,000 steps, batch 32, float64
    python benchmarks/bench_memory.py --steps 2000 --batch 128

Runs the same step as bench_step.py (MLP 784-128-64-10, ReLU, softmax
cross-entropy, SGD through ``mytorch``). After every step it reads the tape's
length and the gradient buffer's size; every ``--every`` steps it prints the
resident set size (current and peak, from /proc and getrusage) and the number of
objects the garbage collector tracks. Exits with status 1 if the tape or the
buffer changed size between steps, or if RSS or the tracked objects grew by more
than ``--tolerance-mb`` / 1% between the first checkpoint and the last.
"""
import os
import sys

for _variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_variable] = "1"

import argparse  # noqa: E402
import gc  # noqa: E402
import resource  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from step_impls import TapeStep, make_problem  # noqa: E402


def rss_mb():
    """The current resident set size in MB (Linux /proc; 0 elsewhere)."""
    try:
        with open("/proc/self/statm") as file:
            pages = int(file.read().split()[1])
    except OSError:
        return 0.0
    return pages * os.sysconf("SC_PAGE_SIZE") / 2 ** 20


def peak_rss_mb():
    """The largest resident set size so far in MB (ru_maxrss is in KB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=10000)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--dtype", choices=["float64", "float32"], default="float64")
    parser.add_argument("--every", type=int, default=1000, help="steps between printed checkpoints")
    parser.add_argument("--tolerance-mb", type=float, default=2.0, help="allowed RSS growth")
    args = parser.parse_args(argv)

    weights, x, y = make_problem(args.batch, np.dtype(args.dtype))
    tape = TapeStep(weights, x, y, lr=1e-3)
    malloc = {k: v for k, v in os.environ.items() if k.startswith("MALLOC_")} or "glibc defaults"
    print(f"{args.steps} steps, batch {args.batch}, {args.dtype}; malloc: {malloc}")
    print(f"{'step':>6} {'RSS MB':>8} {'peak RSS MB':>12} {'tape ops':>9} {'buffer arrays':>14} {'gc objects':>11}")
    tape_sizes, buffer_sizes = set(), set()
    # Checkpoints go into a preallocated array, which the garbage collector does not track,
    # so the benchmark's own bookkeeping does not show up as growth.
    checkpoints = np.zeros((args.steps // args.every + 2, 6))
    count = 0
    for step in range(1, args.steps + 1):
        tape.step()
        tape_sizes.add(len(tape.engine.operation_list))
        buffer_sizes.add(len(tape.engine.gradient_buffer))
        if step % args.every == 0 or step == 1:
            row = (step, rss_mb(), peak_rss_mb(), len(tape.engine.operation_list),
                   len(tape.engine.gradient_buffer), len(gc.get_objects()))
            checkpoints[count] = row
            count += 1
            print(f"{row[0]:>6} {row[1]:>8.1f} {row[2]:>12.1f} {row[3]:>9} {row[4]:>14} {row[5]:>11}", flush=True)

    first, last = checkpoints[min(1, count - 1)], checkpoints[count - 1]
    problems = []
    if len(tape_sizes) != 1 or len(buffer_sizes) != 1:
        problems.append(f"tape lengths {sorted(tape_sizes)}, buffer sizes {sorted(buffer_sizes)} varied")
    if last[1] - first[1] > args.tolerance_mb or last[2] - first[2] > args.tolerance_mb:
        problems.append(f"RSS grew from {first[1]:.1f} to {last[1]:.1f} MB (peak {first[2]:.1f} to "
                        f"{last[2]:.1f} MB) between steps {first[0]:.0f} and {last[0]:.0f}")
    if last[5] > 1.01 * first[5]:
        problems.append(f"tracked objects grew from {first[5]:.0f} to {last[5]:.0f}")
    if problems:
        print("NOT FLAT: " + "; ".join(problems))
        return 1
    print(f"flat: every step left {tape_sizes.pop()} operations on the tape and {buffer_sizes.pop()} arrays "
          f"in the buffer; from step {first[0]:.0f} to {last[0]:.0f} RSS went {first[1]:.1f} -> {last[1]:.1f} "
          f"MB, peak {first[2]:.1f} -> {last[2]:.1f} MB, tracked objects {first[5]:.0f} -> {last[5]:.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
