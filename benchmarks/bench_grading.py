"""Grading speed: the local public run, a batch of submissions graded two at a time, and what one
sandbox costs to start and close with namespaces and without.

    python benchmarks/bench_grading.py [--runs 5] [--submissions 100] [--jobs 2] [--hidden] [--starts 20]

The spec's goals (SPEC section 7): the local public run under 3 s of wall time, a
batch of 100 submissions under 2 minutes on 2 cores. The batch holds handin.tar
files of the reference solution, every fifth one with a wrong primitive, so both
passing and failing feedback is produced. Wall times come from time.perf_counter
around the runner's own command line, so they include Python start-up. The sandbox
starts alternate between namespaces and none (``Options(namespaces=False)``), so load
changes hit both alike.
"""
import argparse
import io
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RUNNER = os.path.join(ROOT, "autograder", "runner.py")
sys.path.insert(0, ROOT)

from autograder import grading, sandbox, submission  # noqa: E402


def timed(command, cwd):
    start = time.perf_counter()
    done = subprocess.run(command, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stderr}")
    return elapsed, done.stdout


def make_batch(folder, count):
    files, _ = submission.read_submission(ROOT)
    wrong = dict(files)
    functional = "mytorch/nn/functional.py"
    wrong[functional] = files[functional].replace(b"return (grad_output / a,)", b"return (grad_output * a,)")
    for i in range(count):
        chosen = wrong if i % 5 == 4 else files
        with tarfile.open(os.path.join(folder, f"student{i:03d}.tar"), "w") as archive:
            for relpath, data in chosen.items():
                info = tarfile.TarInfo(relpath)
                info.size = len(data)
                archive.addfile(info, fileobj=io.BytesIO(data))


def sandbox_starts(count):
    """{kind: [seconds]} to start a zygote on the reference and close its sandbox, with and without namespaces."""
    files, _ = submission.read_submission(ROOT)
    times = {"namespaces": [], "no namespaces": []}
    for _ in range(count):
        for kind in times:
            start = time.perf_counter()
            with sandbox.Sandbox(files) as box:
                hide = grading.hidden_folders(box, ROOT)
                with sandbox.Zygote(box, hide=hide, namespaces=kind == "namespaces") as zygote:
                    zygote.start()
            times[kind].append(time.perf_counter() - start)
    return times


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="local runs to time (default 5)")
    parser.add_argument("--submissions", type=int, default=100, help="submissions in the batch (default 100)")
    parser.add_argument("--jobs", type=int, default=2, help="--jobs for the batch (default 2)")
    parser.add_argument("--hidden", action="store_true", help="grade the batch with the hidden tests too")
    parser.add_argument("--starts", type=int, default=20, help="sandbox starts to time of each kind (default 20)")
    args = parser.parse_args()

    local = [timed([sys.executable, RUNNER], ROOT)[0] for _ in range(args.runs)]
    print(f"local public run (python autograder/runner.py): median {statistics.median(local):.2f} s, "
          f"min {min(local):.2f} s, max {max(local):.2f} s over {args.runs} runs (goal < 3 s)")

    with tempfile.TemporaryDirectory() as tmp:
        batch = os.path.join(tmp, "batch")
        os.mkdir(batch)
        make_batch(batch, args.submissions)
        command = [sys.executable, RUNNER, "--batch", batch, "--csv", os.path.join(tmp, "grades.csv"),
                   "--jobs", str(args.jobs)] + (["--hidden"] if args.hidden else [])
        elapsed, out = timed(command, ROOT)
        with open(os.path.join(tmp, "grades.csv")) as handle:
            rows = handle.read().strip().splitlines()[1:]
    print(f"batch of {args.submissions} ({'public and hidden' if args.hidden else 'public'} tests, --jobs "
          f"{args.jobs}): {elapsed:.1f} s, {elapsed / args.submissions:.2f} s per submission, "
          f"{len(rows)} gradebook rows (goal < 120 s for 100 on 2 cores)")
    if args.starts:
        starts = sandbox_starts(args.starts)
        print("sandbox start and close: " + ", ".join(
            f"{kind} median {statistics.median(v) * 1000:.0f} ms (min {min(v) * 1000:.0f} ms)"
            for kind, v in starts.items()) + f" over {args.starts} each")


if __name__ == "__main__":
    main()
