"""Helpers for the tests of the homework trainers (hw/*_runner.py on hw/trainer.py)."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STAT_KEYS = {"train_loss", "train_error", "val_loss", "val_error"}


def write_image_folder(folder, side=8, sizes=(("train", 60), ("val", 15), ("test", 15)), seed=0):
    """A learnable 3-class problem of ``side`` x ``side`` uint8 images in the course layout: each class
    lights its own band of pixels (pixels 0-19, 20-39 and 40-59 of an 8x8 image). Returns ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    pixels = side * side
    band = pixels * 5 // 16
    for split, n in sizes:
        labels = np.arange(n) % 3
        images = rng.integers(0, 60, (n, pixels))
        images[np.arange(n)[:, None], labels[:, None] * band + np.arange(band)] += 180
        np.save(folder / f"{split}_data.npy", images.astype(np.uint8))
        np.save(folder / f"{split}_labels.npy", labels)
    return folder


def run_main(main, capsys, *argv):
    """Call a runner's ``main`` in-process; return (exit status, stdout, stderr)."""
    status = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return status, out, err


def exit_status_of_bad_flags(main, capsys, *argv):
    """Call ``main`` with flags argparse refuses; return (its exit status, stderr)."""
    with pytest.raises(SystemExit) as exit_info:
        main([str(a) for a in argv])
    return exit_info.value.code, capsys.readouterr().err


def stats_of(outdir):
    with open(os.path.join(str(outdir), "stats.json")) as file:
        return json.load(file)


def run_script(runner, cwd, *argv, root=REPO_ROOT):
    """Run ``python ROOT/hw/RUNNER ARGV`` from ``cwd``, without the repository on PYTHONPATH, the way students do."""
    environment = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run([sys.executable, os.path.join(str(root), "hw", runner)] + [str(a) for a in argv],
                          cwd=str(cwd), env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True, timeout=300)
