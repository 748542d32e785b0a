"""The scoring process on the worst hand-ins: its peak memory and wall time for each.

    python benchmarks/bench_handins.py [--hidden]

Each hand-in is built with the builders of tests/test_grader_handins.py, then graded
by ``grading.grade`` in a fresh Python process, which reports its own peak resident
set (VmHWM in /proc/self/status: the scoring process only, since its exec, not the
sandbox processes; ``ru_maxrss`` would include this script's memory at the fork)
before and after ``grade``, and the wall time of ``grade`` (reading the hand-in, and
grading it when it can be graded). The first row, the reference's handin.tar, is the
baseline: what grading an ordinary hand-in costs.
"""
import argparse
import bz2
import gzip
import json
import lzma
import os
import subprocess
import sys
import tarfile
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [ROOT, os.path.join(ROOT, "tests")]

import test_grader_handins as handins  # noqa: E402
from test_grader_handins import member, tar_bytes, zip_bytes  # noqa: E402

SCORE = """
import json, sys, time
sys.path.insert(0, sys.argv[1])
from autograder import grading

def peak_mb():
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmHWM:")) / 1024

tests = grading.select_tests(hidden=sys.argv[3] == "hidden")
before = peak_mb()
start = time.perf_counter()
rep = grading.grade(sys.argv[2], tests, grading.Options())
elapsed = time.perf_counter() - start
print(json.dumps({"seconds": elapsed, "before_mb": before, "peak_mb": peak_mb(),
                  "outcome": rep.error or f"graded {rep.total():g}/{rep.max_total():g}, {len(rep.notes)} notes"}))
"""


def worst_handins():
    """(description, file name, bytes) of each hand-in."""
    long_name = member("docs/x", size=1)
    long_name.name = "x" * (2 ** 20 - 600)  # a GNU long-name header just under the 1 MB limit
    link = member("mytorch/link.py", tarfile.SYMTYPE, link="/etc/passwd")
    flood = member("docs/link", tarfile.SYMTYPE, link="x").tobuf(tarfile.GNU_FORMAT)
    return [
        ("the reference (baseline)", "handin.tar", tar_bytes()),
        ("gzip bomb: 1,000 streams of 8 MB entries (8 GB)", "handin.tar", handins.entries_bomb(gzip.compress)),
        ("bzip2 bomb: 1,000 streams of 8 MB entries (8 GB)", "handin.tar", handins.entries_bomb(bz2.compress)),
        ("xz bomb: 1,000 streams of 8 MB entries (8 GB)", "handin.tar", handins.entries_bomb(lzma.compress)),
        ("gzip: the reference, then 8 GB of zeros", "handin.tgz", handins.zeros_bomb(gzip.compress)),
        ("bzip2: the reference, then 8 GB of zeros", "handin.tbz", handins.zeros_bomb(bz2.compress)),
        ("xz: the reference, then 8 GB of zeros", "handin.txz", handins.zeros_bomb(lzma.compress)),
        ("bzip2: 2.4 million empty streams (32 MB)", "handin.tar", handins.streams_bomb(bz2.compress)),
        ("100,001 link entries (gzip)", "handin.tgz", gzip.compress(flood * 100_001, compresslevel=1)),
        ("the reference and 20,000 links", "handin.tgz", gzip.compress(tar_bytes(extra=[(link, None)] * 20_000))),
        ("60 GNU long names of 1 MB each", "handin.tgz",
         gzip.compress(tar_bytes(fmt=tarfile.GNU_FORMAT, extra=[(long_name, b"x")] * 60))),
        ("the reference in a zip with a 2 MB directory", "handin.zip",
         zip_bytes(prefix="hw1/", extra=[(f"junk/{i:06d}.txt", b"") for i in range(33_000)])),
        ("the reference and 31 MB of data (plain tar)", "handin.tar",
         tar_bytes(extra=[(member("data.bin", size=31 * 2 ** 20), os.urandom(31 * 2 ** 20))])),
    ]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hidden", action="store_true", help="grade with the hidden tests too")
    args = parser.parse_args()
    print(f"{'hand-in':<48} {'upload':>9} {'grade() s':>9} {'peak MB before/after grade()':>28}  outcome")
    with tempfile.TemporaryDirectory() as tmp:
        for description, name, data in worst_handins():
            path = os.path.join(tmp, name)
            with open(path, "wb") as handle:
                handle.write(data)
            run = subprocess.run([sys.executable, "-c", SCORE, ROOT, path, "hidden" if args.hidden else "public"],
                                 capture_output=True, text=True, check=True)
            result = json.loads(run.stdout.strip().splitlines()[-1])
            peak = f"{result['before_mb']:.1f} / {result['peak_mb']:.1f}"
            print(f"{description:<48} {len(data) / 2 ** 20:>7.2f}MB {result['seconds']:>9.2f} {peak:>28}  "
                  f"{result['outcome'][:70]}", flush=True)
            os.unlink(path)


if __name__ == "__main__":
    main()
