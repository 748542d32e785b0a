"""Time one training step of an MLP 784-128-64-10: the mytorch tape vs NumPy by hand vs PyTorch eager.

    python benchmarks/bench_step.py             # 3 runs, both malloc settings, batch 1/32/128/512, float64/float32
    python benchmarks/bench_step.py --quick     # a smoke test (seconds, not a measurement)
    python benchmarks/bench_step.py --malloc default --batches 1,32,512 --runs 3 \
        --engine before=/tmp/mytorch-before --engine after=.   # two engines, runs alternating

The step is SGD on ReLU layers with softmax cross-entropy (see ``step_impls.py``).
Method: one BLAS thread (``OPENBLAS_NUM_THREADS=1`` etc., set before NumPy loads,
and ``torch.set_num_threads(1)``); for every dtype and batch size the three
implementations start from the same weights, their gradients are checked against
each other, and then they run interleaved in the same process: each round times a
block of steps of each implementation (the order rotates every round). A run
reports, per configuration, the median time per step over the rounds and the
median over rounds of the per-round ratios (tape / NumPy and tape / torch).

Each run is its own child process, and ``--runs`` of them are made (3 by default;
with several ``--engine``s the engines take turns, run by run). The tables give the
median over the runs of each figure and, in brackets, the lowest and highest run's
ratio, which shows how much the machine's load moved it; the load average is
printed before and after every run.

glibc's malloc is reported twice, each in its own child processes, because glibc
reads its settings when a process starts:

* ``default``: ``MALLOC_MMAP_THRESHOLD_`` and ``MALLOC_TRIM_THRESHOLD_`` unset;
  blocks over 128 KiB (a threshold glibc raises as it sees them freed) are mmapped,
  and the top of the heap is returned to the kernel once more than the trim
  threshold is free, so step-sized temporaries can cost page faults every step.
* ``tuned``: ``MALLOC_MMAP_THRESHOLD_=16777216`` (16 MiB) and
  ``MALLOC_TRIM_THRESHOLD_=134217728`` (128 MiB): temporaries are reused from the
  heap, which stops growing and shrinking.
"""
import os
import sys

# One BLAS thread, set before NumPy (or torch) is imported.
BLAS_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
for _variable in BLAS_VARIABLES:
    os.environ[_variable] = "1"

import argparse  # noqa: E402
import datetime  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import subprocess  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from step_impls import NumpyStep, TapeStep, TorchStep, make_problem, torch_available  # noqa: E402

MALLOC_SETTINGS = {
    "default": {},
    "tuned": {"MALLOC_MMAP_THRESHOLD_": str(16 << 20), "MALLOC_TRIM_THRESHOLD_": str(128 << 20)},
}
MALLOC_VARIABLES = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_",
                    "MALLOC_ARENA_MAX", "GLIBC_TUNABLES")
LEARNING_RATE = 1e-3
TOLERANCE = {"float64": 1e-9, "float32": 2e-4}  # relative to the gradient's largest entry


# ---------------------------------------------------------------------------- measuring (child)
def check_gradients(impls, weights, x, y):
    """Run one step of each implementation from the same start; raise if any gradient disagrees."""
    reference = None
    for impl_class in impls:
        impl = impl_class(weights, x, y, LEARNING_RATE)
        impl.step()
        grads = impl.gradients()
        if reference is None:
            reference_name, reference = impl.name, grads
            continue
        names = ["dW1", "db1", "dW2", "db2", "dW3", "db3", "dx"]
        for name, got, want in zip(names, grads, reference):
            scale = max(float(np.abs(want).max()), 1e-30)
            error = float(np.abs(np.asarray(got, dtype=np.float64) - want).max()) / scale
            if got.shape != want.shape or error > TOLERANCE[x.dtype.name]:
                raise AssertionError(f"{impl.name} and {reference_name} disagree on {name} "
                                     f"({x.dtype.name}, batch {len(x)}): relative error {error:.2e}")


def time_steps(impl, steps):
    """Seconds per step over ``steps`` consecutive steps."""
    start = time.perf_counter()
    for _ in range(steps):
        impl.step()
    return (time.perf_counter() - start) / steps


def measure(dtype, batch, impl_classes, seconds, min_rounds, block_seconds):
    """Interleaved timings of each implementation: {name: [seconds per step, one per round]}.

    Rounds continue for ``seconds`` (at least ``min_rounds`` of them); in each, every
    implementation runs a block of about ``block_seconds`` of steps, in a rotating order.
    """
    weights, x, y = make_problem(batch, np.dtype(dtype))
    check_gradients(impl_classes, weights, x, y)
    impls = [impl_class(weights, x, y, LEARNING_RATE) for impl_class in impl_classes]
    steps = {}
    for impl in impls:  # warm up, and size each block to about block_seconds
        time_steps(impl, 10)
        steps[impl.name] = max(1, int(block_seconds / time_steps(impl, 10)))
    times = {impl.name: [] for impl in impls}
    deadline = time.perf_counter() + seconds
    round_index = 0
    while round_index < min_rounds or time.perf_counter() < deadline:
        shift = round_index % len(impls)
        for impl in impls[shift:] + impls[:shift]:
            times[impl.name].append(time_steps(impl, steps[impl.name]))
        round_index += 1
    return times


def summarize(times):
    """Medians (ms per step) and medians of the per-round ratios."""
    row = {f"{name}_ms": 1e3 * float(np.median(t)) for name, t in times.items()}
    row.update({f"{name}_q1_ms": 1e3 * float(np.percentile(t, 25)) for name, t in times.items()})
    row.update({f"{name}_q3_ms": 1e3 * float(np.percentile(t, 75)) for name, t in times.items()})
    tape = np.array(times["tape"])
    ratios = {"tape_over_numpy": tape / np.array(times["numpy"])}
    if "torch" in times:
        ratios["tape_over_torch"] = tape / np.array(times["torch"])
    for name, values in ratios.items():
        row[name] = float(np.median(values))
        row[name + "_q1"], row[name + "_q3"] = (float(q) for q in np.percentile(values, [25, 75]))
    return row


def run_child(args):
    """Measure every (dtype, batch) in this process and print the results as JSON."""
    import mytorch

    impl_classes = [NumpyStep, TapeStep]
    if not args.no_torch and torch_available():
        import torch

        torch.set_num_threads(1)
        impl_classes.append(TorchStep)
    load_before = os.getloadavg()[0]
    rows = []
    for dtype in args.dtypes:
        for batch in args.batches:
            times = measure(dtype, batch, impl_classes, args.seconds, args.min_rounds, args.block_ms / 1e3)
            rows.append(dict(dtype=dtype, batch=batch, rounds=len(times["tape"]), **summarize(times)))
            print(f"  {args.child}: {dtype} batch {batch} done", file=sys.stderr, flush=True)
    environment = {name: os.environ.get(name) for name in MALLOC_VARIABLES + BLAS_VARIABLES}
    print(json.dumps({"malloc": args.child, "environment": environment, "rows": rows,
                      "mytorch": os.path.dirname(mytorch.__file__), "load": [load_before, os.getloadavg()[0]]}))


# ---------------------------------------------------------------------------- reporting (parent)
def machine_description():
    """A few lines naming the machine, the libraries and the date."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as file:
            cpu = next(line.split(":", 1)[1].strip() for line in file if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    blas = "unknown BLAS"
    try:
        from threadpoolctl import threadpool_info

        blas = ", ".join(f"{i['internal_api']} {i['version']}" for i in threadpool_info()
                         if i["user_api"] == "blas") or blas
    except ImportError:
        pass
    lines = [
        f"date: {datetime.date.today().isoformat()}",
        f"machine: {cpu}, {os.cpu_count()} cores, {platform.system()} {platform.release()}",
        f"python {platform.python_version()}, numpy {np.__version__} ({blas}), "
        f"glibc {platform.libc_ver()[1] or 'unknown'}",
    ]
    if torch_available():
        import torch

        lines[-1] += f", torch {torch.__version__}"
    return lines


GOALS = {  # SPEC section 7: (ratio, batch) -> the largest median ratio allowed
    ("tape_over_numpy", 32): 1.25,
    ("tape_over_numpy", 512): 1.10,
    ("tape_over_torch", 1): 0.85,
    ("tape_over_torch", 32): 0.95,
}
RATIO_NAMES = {"tape_over_numpy": "tape/NumPy", "tape_over_torch": "tape/torch"}


def goal_notes(row):
    """SPEC section 7 goals for this row: 'ok' or 'MISS' per applicable goal."""
    notes = []
    for (ratio, batch), limit in GOALS.items():
        if batch == row["batch"] and ratio in row:
            notes.append(f"{RATIO_NAMES[ratio]} <= {limit}: {'ok' if row[ratio] <= limit else 'MISS'}")
    return "; ".join(notes)


def combine(runs):
    """One row per (dtype, batch): the median over runs of each figure, and each ratio's lowest and highest run."""
    rows = []
    for position, first in enumerate(runs[0]["rows"]):
        same = [run["rows"][position] for run in runs]
        row = {"dtype": first["dtype"], "batch": first["batch"], "rounds": sum(r["rounds"] for r in same)}
        for key in first:
            if key.endswith("_ms") or key in RATIO_NAMES:
                row[key] = float(np.median([r[key] for r in same]))
        for ratio in RATIO_NAMES:
            if ratio in first:
                row[ratio + "_low"] = min(r[ratio] for r in same)
                row[ratio + "_high"] = max(r[ratio] for r in same)
        rows.append(row)
    return rows


def markdown_table(rows, runs):
    """Combined rows of one engine and malloc setting as a Markdown table."""
    has_torch = any("torch_ms" in row for row in rows)
    ratios = ["tape_over_numpy"] + (["tape_over_torch"] if has_torch else [])
    header = ["dtype", "batch", "NumPy ms", "tape ms"] + (["torch ms"] if has_torch else [])
    header += [f"{RATIO_NAMES[r]} (runs' range)" for r in ratios] + ["rounds", "SPEC 7 goals"]
    lines = [f"median of {runs} run(s)", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        cells = [row["dtype"], str(row["batch"]), f"{row['numpy_ms']:.3f}", f"{row['tape_ms']:.3f}"]
        if has_torch:
            cells.append(f"{row['torch_ms']:.3f}")
        cells += [f"{row[r]:.2f} ({row[r + '_low']:.2f}-{row[r + '_high']:.2f})" for r in ratios]
        cells += [str(row["rounds"]), goal_notes(row)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def comparison_table(tables):
    """{engine label: rows}: the ratios of every engine side by side, one row per (dtype, batch)."""
    labels = list(tables)
    first = tables[labels[0]]
    ratios = [r for r in RATIO_NAMES if r in first[0]]
    header = ["dtype", "batch"] + [f"{RATIO_NAMES[r]} {label}" for r in ratios for label in labels]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for position, row in enumerate(first):
        cells = [row["dtype"], str(row["batch"])]
        for ratio in ratios:
            for label in labels:
                other = tables[label][position]
                cells.append(f"{other[ratio]:.2f} ({other[ratio + '_low']:.2f}-{other[ratio + '_high']:.2f})")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def child_environment(setting, engine_path):
    """This process's environment with the malloc variables of ``setting`` and ``engine_path`` first on PYTHONPATH."""
    environment = {k: v for k, v in os.environ.items() if k not in MALLOC_VARIABLES}
    environment.update(MALLOC_SETTINGS[setting])
    if engine_path:
        environment["PYTHONPATH"] = os.pathsep.join(
            [os.path.abspath(engine_path)] + [p for p in [os.environ.get("PYTHONPATH")] if p])
    return environment


def run_parent(args):
    settings = list(MALLOC_SETTINGS) if args.malloc == "both" else [args.malloc]
    engines = args.engine or [("this checkout", None)]
    passed = ["--seconds", str(args.seconds), "--min-rounds", str(args.min_rounds), "--block-ms", str(args.block_ms),
              "--batches", ",".join(map(str, args.batches)), "--dtypes", ",".join(args.dtypes)]
    if args.no_torch:
        passed.append("--no-torch")
    print("\n".join(machine_description()))
    print(f"one BLAS thread ({', '.join(v + '=1' for v in BLAS_VARIABLES)}); per configuration and run, "
          f"{args.seconds:g} s (at least {args.min_rounds} rounds) of interleaved ~{args.block_ms:g} ms blocks "
          f"of each implementation; {args.runs} run(s) per engine and malloc setting")
    results = []
    for setting in settings:
        runs = {label: [] for label, _ in engines}
        for run in range(args.runs):
            for label, path in (engines if run % 2 == 0 else engines[::-1]):
                command = [sys.executable, os.path.abspath(__file__), "--child", setting] + passed
                completed = subprocess.run(command, env=child_environment(setting, path), stdout=subprocess.PIPE,
                                           universal_newlines=True)
                if completed.returncode != 0:
                    print(f"bench_step.py: the {setting} run of {label} failed (exit {completed.returncode})",
                          file=sys.stderr)
                    return 1
                result = json.loads(completed.stdout.strip().splitlines()[-1])
                print(f"run {run + 1}, {setting}, {label}: mytorch from {result['mytorch']}; load average "
                      f"{result['load'][0]:.2f} before, {result['load'][1]:.2f} after", flush=True)
                runs[label].append(result)
        variables = ", ".join(f"{k}={v}" for k, v in MALLOC_SETTINGS[setting].items()) or \
            "MALLOC_MMAP_THRESHOLD_ and MALLOC_TRIM_THRESHOLD_ unset"
        tables = {label: combine(engine_runs) for label, engine_runs in runs.items()}
        for label, rows in tables.items():
            print(f"\nmalloc {setting}: {variables}; engine: {label}\n")
            print(markdown_table(rows, args.runs))
        if len(tables) > 1:
            print(f"\nmalloc {setting}: the engines side by side (median of {args.runs} runs; runs' range)\n")
            print(comparison_table(tables))
        results.append({"malloc": setting, "runs": runs, "combined": tables})
    if args.json:
        with open(args.json, "w") as file:
            json.dump({"machine": machine_description(), "results": results}, file, indent=2)
        print(f"\nwrote {args.json}")
    return 0


def engine_option(text):
    """``LABEL=PATH`` (a folder holding a mytorch package) for --engine."""
    label, _, path = text.partition("=")
    if not path or not os.path.isdir(os.path.join(path, "mytorch")):
        raise argparse.ArgumentTypeError(f"expected LABEL=PATH with PATH/mytorch a folder, got {text!r}")
    return label, path


def comma_list(convert):
    return lambda text: [convert(part) for part in text.split(",")]


def timing_parser(description, batches, dtypes, seconds, min_rounds, block_ms, quick):
    """The options every step benchmark shares: batches, dtypes, how long and how finely to time, --quick
    (``quick`` = (seconds, rounds): a smoke test, not a measurement) and --no-torch."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--batches", type=comma_list(int), default=batches)
    parser.add_argument("--dtypes", type=comma_list(str), default=dtypes)
    parser.add_argument("--seconds", type=float, default=seconds, help="time spent measuring each configuration")
    parser.add_argument("--min-rounds", type=int, default=min_rounds, help="interleaved rounds at least")
    parser.add_argument("--block-ms", type=float, default=block_ms, help="about how long one timed block runs")
    parser.add_argument("--quick", action="store_const", const=quick, help=f"{quick[0]:g} s and {quick[1]} rounds "
                        "per configuration (a smoke test, not a measurement)")
    parser.add_argument("--no-torch", action="store_true", help="leave PyTorch out even if installed")
    return parser


def timing_arguments(parser, argv, tolerance):
    """``parser``'s arguments, with --quick applied and every dtype checked against ``tolerance``'s keys."""
    args = parser.parse_args(argv)
    if args.quick:
        args.seconds, args.min_rounds = args.quick
    for dtype in args.dtypes:
        if dtype not in tolerance:
            parser.error(f"--dtypes: {dtype!r} is not one of {sorted(tolerance)}")
    return args


def main(argv=None):
    parser = timing_parser(__doc__.split("\n")[0], batches=[1, 32, 128, 512], dtypes=["float64", "float32"],
                           seconds=10.0, min_rounds=50, block_ms=2.0, quick=(0.5, 5))
    parser.add_argument("--malloc", choices=["both"] + list(MALLOC_SETTINGS), default="both")
    parser.add_argument("--runs", type=int, default=3, help="child processes per engine and malloc setting")
    parser.add_argument("--engine", action="append", type=engine_option, metavar="LABEL=PATH",
                        help="measure the mytorch in PATH (repeat to compare engines; default: this checkout)")
    parser.add_argument("--json", help="also write the raw results to this file")
    parser.add_argument("--child", choices=list(MALLOC_SETTINGS), help=argparse.SUPPRESS)
    args = timing_arguments(parser, argv, TOLERANCE)
    if args.quick:
        args.runs = 1
    if args.child:
        run_child(args)
        return 0
    return run_parent(args)


if __name__ == "__main__":
    sys.exit(main())
