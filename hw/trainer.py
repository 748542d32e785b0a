"""The command-line trainer shared by the homework runners (hw/mlp_runner.py, and the CNN and GRU ones).

A runner supplies its model; this module does the rest: the common flags, the data,
the --outdir checks, the progress line, one line per epoch, divergence, stats.json
and the plots. Every bad input is refused with a message and exit status 2 before
training starts. A runner looks like::

    parser = trainer.build_parser("cnn_runner.py", "Train a CNN ...", epochs=5, lr=0.01)
    parser.add_argument("--channels", type=trainer.int_list, default="8,16", help="...")
    return trainer.run(parser, argv, "CNN", build, fit, evaluate)

with three functions of its own:

- ``build(data, args, rng) -> (model, description)``: the model for ``data`` (a
  ``hw.dataset.Dataset``) and one line describing it and its optimizer.
- ``fit(model, data, args, rng, on_batch, on_epoch) -> (train_loss, train_error,
  val_loss, val_error)``: trains for ``args.epochs`` epochs of ``args.batch_size``
  examples, calling ``on_batch(epoch, done, total, mean_loss)`` after every batch
  (``mean_loss``: the mean loss per example of the epoch so far) and
  ``on_epoch(epoch, train_loss, train_error, val_loss, val_error)`` after every epoch;
  returns the four per-epoch lists (losses are means per example, errors fractions
  misclassified). It raises ``Diverged`` if it notices a non-finite loss itself; the
  trainer also checks every value it is given.
- ``evaluate(model, x, labels) -> (mean loss, error)`` on the test split.

Exit statuses of ``run``: 0 training finished; 1 the loss became NaN or infinite or
exploded (the message suggests a smaller --lr), a part of the homework is not written
yet, or the outputs could not be written; 2 bad arguments, data or --outdir.
"""
import argparse
import ctypes
import json
import math
import os
import sys
import tempfile
import time
import traceback

import numpy as np

from hw.dataset import load_dataset

DEFAULT_DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "mnist5k.npz")
STAT_NAMES = ("train_loss", "train_error", "val_loss", "val_error")
OUTPUT_FILES = ("stats.json", "loss.png", "error.png")
EXPLOSION_FACTOR = 10.0  # a batch loss above this many times the first batch's (at least 0.1) diverged


class Diverged(Exception):
    """Training stopped because a loss was NaN, infinite or exploded; the message says which and where."""


# ---------------------------------------------------------------------------- arguments
def number_type(convert, is_valid, requirement):
    """An argparse type: ``convert(text)``, refused unless ``is_valid(value)``."""
    kind = "a whole number" if convert is int else "a number"

    def parse(text):
        try:
            value = convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {kind}, got {text!r}") from None
        if not is_valid(value):
            raise argparse.ArgumentTypeError(f"must be {requirement}, got {text}")
        return value

    return parse


positive_int = number_type(int, lambda value: value >= 1, "at least 1")
non_negative_int = number_type(int, lambda value: value >= 0, "0 or more")
positive_float = number_type(float, lambda value: math.isfinite(value) and value > 0, "a positive number")
momentum_value = number_type(float, lambda value: 0 <= value < 1, "in [0, 1)")


def int_list(text):
    """argparse type: comma-separated sizes ("128,64") as a list of ints; "" or "none" for an empty list."""
    if text.strip().lower() in ("", "none"):
        return []
    sizes = []
    for part in text.split(","):
        try:
            size = int(part)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected comma-separated whole numbers such as 128,64, got {text!r}") from None
        if size < 1:
            raise argparse.ArgumentTypeError(f"layer sizes must be at least 1, got {size} in {text!r}")
        sizes.append(size)
    return sizes


def build_parser(prog, description, epochs=10, batch_size=64, lr=0.05, momentum=0.9, seed=0):
    """The common flags with these defaults (``momentum=None`` leaves --momentum out).

    String defaults go through the flag's type, so ``--help`` shows them in the form
    the flag accepts; runners add their model's flags the same way
    (``default="128,64"`` with ``type=int_list``).
    """
    parser = argparse.ArgumentParser(
        prog=prog, description=description, formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        epilog="Exit status: 0 done; 1 the loss became NaN or infinite or exploded, the homework is unfinished, "
               "or the outputs could not be written; 2 bad arguments, data or --outdir.")
    parser.add_argument("--epochs", type=positive_int, default=epochs, help="passes over the training set")
    parser.add_argument("--batch-size", type=positive_int, default=batch_size, help="examples per step")
    parser.add_argument("--lr", type=positive_float, default=lr, help="learning rate")
    if momentum is not None:
        parser.add_argument("--momentum", type=momentum_value, default=momentum, help="SGD momentum, in [0, 1)")
    parser.add_argument("--seed", type=non_negative_int, default=seed,
                        help="seeds the initial weights and the order of the batches")
    parser.add_argument("--data", default=DEFAULT_DATA,
                        help="an .npz file or a folder with train_data.npy, train_labels.npy, "
                             "val_data.npy, val_labels.npy (test_data.npy, test_labels.npy optional)")
    parser.add_argument("--outdir", default="out", help="where stats.json and the plots are written")
    return parser


def prepare_outdir(outdir):
    """Create ``outdir`` if needed and make sure the outputs can be written there; raise ValueError saying why not."""
    if os.path.exists(outdir) and not os.path.isdir(outdir):
        raise ValueError(f"--outdir {outdir}: is a file, not a folder; give a folder (it is created if needed)")
    try:
        os.makedirs(outdir, exist_ok=True)
        handle, probe = tempfile.mkstemp(dir=outdir, prefix=".write-test-")
        os.close(handle)
        os.unlink(probe)
    except OSError as error:
        raise ValueError(f"--outdir {outdir}: cannot write there ({error.strerror or error}); "
                         f"give a folder you can write to") from None
    for name in OUTPUT_FILES:
        path = os.path.join(outdir, name)
        if os.path.isdir(path):
            raise ValueError(f"--outdir {outdir}: {path} is a folder, so it cannot be written; "
                             f"remove it or give another --outdir")


# ---------------------------------------------------------------------------- output
class ProgressLine:
    """Rewrites one terminal line with the running epoch's progress, at most every ``interval`` s.

    Writes nothing when ``stream`` is not a terminal (a log file gets the epoch lines only).
    ``start_epoch`` starts the epoch's clock; ``update`` also records the training speed.
    """

    def __init__(self, stream, nepochs, interval=0.1):
        self.stream = stream
        self.enabled = stream.isatty()
        self.nepochs = nepochs
        self.interval = interval
        self.width = 0
        self.start_epoch()

    def start_epoch(self):
        self.epoch_start = self.last_shown = time.perf_counter()
        self.samples_per_second = 0.0

    def elapsed(self):
        return time.perf_counter() - self.epoch_start

    def update(self, epoch, done, total, mean_loss):
        """Note the speed; show examples done, speed and mean training loss so far (throttled)."""
        now = time.perf_counter()
        self.samples_per_second = done / max(now - self.epoch_start, 1e-9)
        if not self.enabled or (now - self.last_shown < self.interval and done < total):
            return
        self.last_shown = now
        filled = 20 * done // total
        text = (f"epoch {epoch:>{len(str(self.nepochs))}}/{self.nepochs} "
                f"[{'#' * filled}{'.' * (20 - filled)}] {done}/{total}  "
                f"{self.samples_per_second:,.0f} samples/s  loss {mean_loss:.4f}")
        self.stream.write("\r" + text.ljust(self.width))
        self.stream.flush()
        self.width = len(text)

    def clear(self):
        """Erase the progress line so the next print starts on a clean line."""
        if self.enabled and self.width:
            self.stream.write("\r" + " " * self.width + "\r")
            self.stream.flush()
            self.width = 0


class DivergenceWatch:
    """Raises ``Diverged`` when a loss is NaN or infinite, or explodes.

    A loss explodes when it exceeds ``factor`` times the first batch's loss (the
    loss of the untrained model; at least 0.1, so a model that starts near zero
    loss may still fluctuate). ``batch`` and ``epoch`` take the callbacks' arguments.
    """

    def __init__(self, factor=EXPLOSION_FACTOR):
        self.factor = factor
        self.first = None  # the first batch's mean loss per example
        self.epoch_number, self.batches, self.done, self.total_loss = None, 0, 0, 0.0

    def batch(self, epoch, done, total, mean_loss):
        if epoch != self.epoch_number or done < self.done:  # a new epoch
            self.epoch_number, self.batches, self.done, self.total_loss = epoch, 0, 0, 0.0
        self.batches += 1
        epoch_total = mean_loss * done
        if done > self.done and math.isfinite(epoch_total):
            loss = (epoch_total - self.total_loss) / (done - self.done)  # this batch's mean loss
        else:
            loss = mean_loss
        self.done, self.total_loss = done, epoch_total
        self.check("training loss", f"at epoch {epoch}, batch {self.batches}", loss)

    def epoch(self, epoch, train_loss, train_error, val_loss, val_error):
        self.check("training loss", f"in epoch {epoch}", train_loss)
        self.check("validation loss", f"after epoch {epoch}", val_loss)

    def check(self, what, where, loss):
        loss = float(loss)
        if not math.isfinite(loss):
            raise Diverged(f"the {what} became {loss} {where}")
        if self.first is None:
            self.first = loss
        elif loss > self.factor * max(self.first, 0.1):
            raise Diverged(f"the {what} exploded to {loss:.4g} {where} (the first batch's was {self.first:.4g})")


def write_stats(stats, outdir):
    """Write the per-epoch lists to OUTDIR/stats.json; return the file's path."""
    path = os.path.join(outdir, "stats.json")
    with open(path, "w") as file:
        json.dump({name: [float(v) for v in stats[name]] for name in STAT_NAMES}, file, indent=2)
        file.write("\n")
    return path


def write_plots(stats, outdir, model_name):
    """Plot losses and errors per epoch to OUTDIR/loss.png and OUTDIR/error.png.

    Returns the paths written, or None when matplotlib is not installed.
    """
    try:
        from matplotlib.figure import Figure
        from matplotlib.ticker import MaxNLocator
    except ImportError:
        return None
    epochs = range(1, len(stats["train_loss"]) + 1)
    paths = []
    for quantity, label in (("loss", "mean loss"), ("error", "error (fraction misclassified)")):
        figure = Figure(figsize=(6, 4), dpi=100)
        axes = figure.add_subplot()
        axes.plot(epochs, stats["train_" + quantity], marker="o", label="train")
        axes.plot(epochs, stats["val_" + quantity], marker="o", label="validation")
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
        axes.set_xlabel("epoch")
        axes.set_ylabel(label)
        axes.set_title(f"{model_name} {quantity} per epoch")
        axes.grid(alpha=0.3)
        axes.legend()
        figure.tight_layout()
        path = os.path.join(outdir, quantity + ".png")
        figure.savefig(path)
        paths.append(path)
    return paths


def keep_heap_memory():
    """On glibc, keep freed memory in the heap instead of returning it to the kernel (this process only).

    Every step frees and reallocates temporaries of up to a few MB. With glibc's
    default settings the large ones are mmapped and the heap is trimmed, so each
    step pays for fresh pages; this makes a run up to twice as slow and erratic
    (see benchmarks/README.md). Same effect as MALLOC_MMAP_THRESHOLD_=16777216
    MALLOC_TRIM_THRESHOLD_=134217728 in the environment. Call it from a runner's
    ``if __name__ == "__main__":`` block, never from a library.
    """
    if not sys.platform.startswith("linux"):
        return
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # not glibc: nothing to tune
        return
    m_trim_threshold, m_mmap_threshold = -1, -3  # from glibc's malloc.h
    mallopt(m_mmap_threshold, 16 << 20)
    mallopt(m_trim_threshold, 128 << 20)


# ---------------------------------------------------------------------------- the run
def run(parser, argv, model_name, build, fit, evaluate):
    """Parse ``argv`` (None: the command line) with ``parser`` (from ``build_parser``, plus the
    runner's flags), load the data, check --outdir, build, train, report and write the outputs;
    return the exit status (argparse exits with status 2 itself on a bad flag).

    ``model_name`` titles the plots; ``build``, ``fit`` and ``evaluate`` are described in
    the module's docstring.
    """
    started = time.perf_counter()
    args = parser.parse_args(argv)

    def fail(message, status):
        print(f"{parser.prog}: error: {message}", file=sys.stderr)
        return status

    try:
        data = load_dataset(args.data)
        prepare_outdir(args.outdir)
    except ValueError as error:  # hw.dataset.DataError included
        return fail(error, 2)

    rng = np.random.default_rng(args.seed)
    progress = ProgressLine(sys.stderr, args.epochs)
    watch = DivergenceWatch()

    def on_batch(epoch, done, total, mean_loss):
        progress.update(epoch, done, total, mean_loss)
        watch.batch(epoch, done, total, mean_loss)

    def on_epoch(epoch, train_loss, train_error, val_loss, val_error):
        watch.epoch(epoch, train_loss, train_error, val_loss, val_error)
        progress.clear()
        print(f"epoch {epoch:>{len(str(args.epochs))}}/{args.epochs}  "
              f"train loss {train_loss:.4f} error {100 * train_error:5.2f}%  "
              f"val loss {val_loss:.4f} error {100 * val_error:5.2f}%  "
              f"({progress.elapsed():.2f} s, {progress.samples_per_second:,.0f} samples/s)", flush=True)
        progress.start_epoch()

    try:
        model, description = build(data, args, rng)
        print(f"data: {data.describe()}")
        print(f"model: {description}, batch {args.batch_size}, {args.epochs} epochs, seed {args.seed}", flush=True)
        # Divergence is reported below, so NumPy's overflow warnings would only repeat it.
        with np.errstate(over="ignore", invalid="ignore"):
            curves = fit(model, data, args, rng, on_batch, on_epoch)
            test = evaluate(model, *data.test) if data.test is not None else None
    except Diverged as error:
        progress.clear()
        default = parser.get_default("lr")
        hint = f" (the default is {default:g})" if args.lr > default else ""
        return fail(f"{error}; training stopped. Try a smaller learning rate, e.g. --lr {args.lr / 10:g}{hint}", 1)
    except NotImplementedError as error:
        progress.clear()
        frame = traceback.extract_tb(error.__traceback__)[-1]
        return fail(f"a part of the homework is not written yet: {frame.name} in {frame.filename}, "
                    f"line {frame.lineno} ({error or 'NotImplementedError'})", 1)
    stats = dict(zip(STAT_NAMES, curves))

    if test is not None:
        test_loss, test_error = test
        print(f"test: loss {test_loss:.4f} error {100 * test_error:.2f}% "
              f"(accuracy {100 * (1 - test_error):.2f}%)")
    else:
        print("test: no test split in the data (test_data.npy and test_labels.npy); skipped")
    val_error = stats["val_error"]
    best = int(np.argmin(val_error))
    print(f"validation accuracy {100 * (1 - val_error[-1]):.2f}% after the last epoch "
          f"(best {100 * (1 - val_error[best]):.2f}% after epoch {best + 1})")

    try:
        written = [write_stats(stats, args.outdir)]
        plots = write_plots(stats, args.outdir, model_name)
    except OSError as error:
        return fail(f"could not write the outputs to {args.outdir}: {error}", 1)
    if plots is None:
        print("plots: matplotlib is not installed, so no plots were written; install it with "
              "pip install -e '.[plot]' (or pip install matplotlib)")
    else:
        written += plots
    print(f"wrote {', '.join(written)}")
    print(f"wall time {time.perf_counter() - started:.1f} s")
    return 0
