"""The command-line trainer shared by the homework runners (hw/mlp_runner.py, hw/cnn_runner.py,
hw/rnn_runner.py), and the training loop the CNN and GRU runners are given.

A runner supplies its model; this module does the rest: the common flags, the data,
the --outdir and --picture checks, the picture of one training step, the progress
line, one line per epoch, divergence, stats.json and the plots. Every bad input is
refused with a message and exit status 2 before training starts. A runner looks like::

    parser = trainer.build_parser("cnn_runner.py", "Train a CNN ...", epochs=5, lr=0.01)
    parser.add_argument("--channels", type=trainer.int_list, default="8,16", help="...")
    return trainer.run(parser, argv, "CNN", build, trainer.fit, prepare=images)

with functions of its own:

- ``build(data, args, rng) -> (model, description)``: the model for ``data`` (a
  ``hw.dataset.Dataset``) and one line describing it and its optimizer. It raises
  ``ConfigError`` (or ``hw.dataset.DataError``) when the flags and the data do not fit
  together, e.g. images too small for the network: exit status 2.
- ``fit(model, data, args, rng, on_batch, on_epoch) -> (train_loss, train_error,
  val_loss, val_error)``: trains for ``args.epochs`` epochs of ``args.batch_size``
  examples, calling ``on_batch(epoch, done, total, mean_loss)`` after every batch
  (``mean_loss``: the mean loss per example of the epoch so far) and
  ``on_epoch(epoch, train_loss, train_error, val_loss, val_error)`` after every epoch;
  returns the four per-epoch lists (losses are means per example, errors fractions
  misclassified). It raises ``Diverged`` if it notices a non-finite loss itself; the
  trainer also checks every value it is given. ``fit`` below is this module's own loop
  (``train_model``), for any model with the homework's training-step methods.
- ``evaluate(model, x, labels) -> (mean loss, error)`` on the test split (default:
  ``evaluate`` below).
- ``prepare(model, x) -> x`` (optional): a split's images (N, num_features) in the
  shape and dtype the model's ``forward`` takes, e.g. (N, 1, 28, 28) float32; applied
  to every split once, after ``build``.

A model has the homework's training-step methods (the MLP's, the CNN's, the GRU
classifier's)::

    model.zero_grads(); model.forward(x); model.total_loss(labels); model.backward(); model.step()

plus ``error(labels)``, ``output_size`` (the number of classes) and ``autograd_engine``,
where ``labels`` are one-hot rows.

Exit statuses of ``run``: 0 training finished; 1 the loss became NaN or infinite or
exploded (the message suggests a smaller --lr), a part of the homework is not written
yet, or the outputs could not be written; 2 bad arguments, data, --outdir or --picture.
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

from hw.dataset import DataError, load_dataset
from mytorch import TapePicture

DEFAULT_DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "mnist5k.npz")
STAT_NAMES = ("train_loss", "train_error", "val_loss", "val_error")
OUTPUT_FILES = ("stats.json", "loss.png", "error.png")
PICTURE_SUFFIXES = (".svg", ".dot", ".gv")
EXPLOSION_FACTOR = 10.0  # a batch loss above this many times the first batch's (at least 0.1) diverged


class Diverged(Exception):
    """Training stopped because a loss was NaN, infinite or exploded; the message says which and where."""


class ConfigError(ValueError):
    """The flags do not fit the data (e.g. images too small for the network); the message says what to change."""


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
decay_value = number_type(float, lambda value: 0 < value <= 1, "in (0, 1]")


def picture_file(text):
    """argparse type: a file name ending in .svg, .dot or .gv (the picture's format)."""
    if not text.lower().endswith(PICTURE_SUFFIXES):
        raise argparse.ArgumentTypeError(f"the file name must end in .svg (a picture) or .dot or .gv "
                                         f"(Graphviz text), got {text!r}")
    return text


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


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """argparse's formatter that shows each flag's default, except a default of None (no value)."""

    def _get_help_string(self, action):
        return action.help if action.default is None else super()._get_help_string(action)


def build_parser(prog, description, epochs=10, batch_size=64, lr=0.05, momentum=0.9, lr_decay=None, seed=0,
                 outdir="out"):
    """The common flags with these defaults (``momentum=None`` leaves --momentum out; ``lr_decay``
    adds --lr-decay, the factor applied to the learning rate after every epoch).

    String defaults go through the flag's type, so ``--help`` shows them in the form
    the flag accepts; runners add their model's flags the same way
    (``default="128,64"`` with ``type=int_list``).
    """
    parser = argparse.ArgumentParser(
        prog=prog, description=description, formatter_class=_HelpFormatter,
        epilog="Exit status: 0 done; 1 the loss became NaN or infinite or exploded, the homework is unfinished, "
               "or the outputs could not be written; 2 bad arguments, data, --outdir or --picture.")
    parser.add_argument("--epochs", type=positive_int, default=epochs, help="passes over the training set")
    parser.add_argument("--batch-size", type=positive_int, default=batch_size, help="examples per step")
    parser.add_argument("--lr", type=positive_float, default=lr, help="learning rate")
    if momentum is not None:
        parser.add_argument("--momentum", type=momentum_value, default=momentum, help="SGD momentum, in [0, 1)")
    if lr_decay is not None:
        parser.add_argument("--lr-decay", type=decay_value, default=lr_decay,
                            help="the learning rate is multiplied by this after every epoch, in (0, 1]")
    parser.add_argument("--seed", type=non_negative_int, default=seed,
                        help="seeds the initial weights and the order of the batches")
    parser.add_argument("--data", default=DEFAULT_DATA,
                        help="an .npz file or a folder with train_data.npy, train_labels.npy, "
                             "val_data.npy, val_labels.npy (test_data.npy, test_labels.npy optional)")
    parser.add_argument("--outdir", default=outdir, help="where stats.json and the plots are written")
    parser.add_argument("--picture", metavar="FILE", type=picture_file,
                        help="also draw the tape of one training step (the first batch, before training; "
                             "gradient norms after backward) to FILE: .svg, or .dot/.gv for Graphviz "
                             "(default: no picture)")
    return parser


def square_side(num_features, model_name):
    """The side S of square images of ``num_features`` = S * S pixels; ConfigError if there is none."""
    side = math.isqrt(num_features)
    if side * side != num_features:
        raise ConfigError(f"the {model_name} reads square images, but the data has {num_features} features "
                          f"per example (not S * S for any S)")
    return side


def _check_writable_folder(folder, flag):
    """Create ``folder`` if needed and write a probe file there; raise ValueError naming ``flag`` if it fails."""
    try:
        os.makedirs(folder, exist_ok=True)
        handle, probe = tempfile.mkstemp(dir=folder, prefix=".write-test-")
        os.close(handle)
        os.unlink(probe)
    except OSError as error:
        raise ValueError(f"{flag}: cannot write there ({error.strerror or error}); "
                         f"give a folder you can write to") from None


def prepare_outdir(outdir):
    """Create ``outdir`` if needed and make sure the outputs can be written there; raise ValueError saying why not."""
    if os.path.exists(outdir) and not os.path.isdir(outdir):
        raise ValueError(f"--outdir {outdir}: is a file, not a folder; give a folder (it is created if needed)")
    _check_writable_folder(outdir, f"--outdir {outdir}")
    for name in OUTPUT_FILES:
        path = os.path.join(outdir, name)
        if os.path.isdir(path):
            raise ValueError(f"--outdir {outdir}: {path} is a folder, so it cannot be written; "
                             f"remove it or give another --outdir")


def prepare_picture(path):
    """Make sure the picture can be written to ``path`` (its folder is created if needed); raise ValueError saying why not."""
    if os.path.isdir(path):
        raise ValueError(f"--picture {path}: is a folder; give a file name ending in .svg, .dot or .gv")
    _check_writable_folder(os.path.dirname(path) or ".", f"--picture {path}")


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


# ---------------------------------------------------------------------------- the given training loop
def one_hot(labels, num_classes, dtype=np.float64):
    """Integer labels of shape (N,) as one-hot rows of shape (N, num_classes)."""
    rows = np.zeros((len(labels), num_classes), dtype=dtype)
    rows[np.arange(len(labels)), labels] = 1
    return rows


def evaluate(model, x, labels, batch_size=1000):
    """Mean loss and error rate (fraction misclassified) of ``model`` on ``x`` and integer ``labels``.

    Runs under the engine's ``no_grad()``, so nothing is recorded.
    """
    loss_sum, errors = 0.0, 0
    num_classes = model.output_size
    with model.autograd_engine.no_grad():
        for start in range(0, len(x), batch_size):
            batch_labels = one_hot(labels[start:start + batch_size], num_classes, x.dtype)
            model.forward(x[start:start + batch_size])
            loss_sum += model.total_loss(batch_labels)
            errors += model.error(batch_labels)
    return loss_sum / len(x), errors / len(x)


def train_model(model, train, val, epochs, batch_size, rng, on_batch=None, on_epoch=None, augment=None):
    """Train ``model`` for ``epochs`` epochs of mini-batches; return its learning curves.

    ``train`` and ``val`` are ``(x, labels)`` pairs: images as ``model.forward`` takes
    them and integer labels. Each epoch visits the training set in an order drawn
    from ``rng`` (a ``np.random.Generator``), one training step per batch, then
    evaluates on the validation set. Returns the four per-epoch lists of ``run``'s
    ``fit`` (training loss and error averaged over the epoch's batches as they were
    trained, validation loss and error); calls ``on_batch`` and ``on_epoch`` as ``fit``
    does. ``augment(x, rng)``, if given, returns the batch the step trains on instead
    of ``x`` (e.g. randomly shifted images); the validation set is never augmented.
    """
    (train_x, train_labels), (val_x, val_labels) = train, val
    n = len(train_x)
    curves = ([], [], [], [])
    for epoch in range(1, epochs + 1):
        order = rng.permutation(n)
        loss_sum, errors = 0.0, 0
        for start in range(0, n, batch_size):
            rows = order[start:start + batch_size]
            x = train_x[rows] if augment is None else augment(train_x[rows], rng)
            labels = one_hot(train_labels[rows], model.output_size, train_x.dtype)
            model.zero_grads()
            model.forward(x)
            loss_sum += model.total_loss(labels)
            errors += model.error(labels)
            model.backward()
            model.step()
            done = start + len(rows)
            if on_batch is not None:
                on_batch(epoch, done, n, loss_sum / done)
        model.zero_grads()  # release the last batch's tape before evaluating
        values = (loss_sum / n, errors / n) + evaluate(model, val_x, val_labels)
        for curve, value in zip(curves, values):
            curve.append(value)
        if on_epoch is not None:
            on_epoch(epoch, *values)
    return curves


def fit(model, data, args, rng, on_batch, on_epoch):
    """``run``'s ``fit`` for a model that needs nothing but the loop: ``train_model`` with the flags."""
    return train_model(model, data.train, data.val, args.epochs, args.batch_size, rng, on_batch, on_epoch)


def picture_of_one_step(model, x, labels):
    """A ``TapePicture`` of one training step on ``x`` and one-hot ``labels``, with its gradient norms.

    The step stops after ``backward``: the parameters are not updated, and the
    tape and gradients are cleared again afterwards, so training is not changed.
    """
    model.zero_grads()
    model.forward(x)
    model.total_loss(labels)
    picture = TapePicture(model.autograd_engine)
    model.backward()
    picture.read_gradients()
    model.zero_grads()
    return picture


def save_picture_of_first_step(model, data, batch_size, path):
    """Draw one training step on the first ``batch_size`` training examples of ``data`` to ``path``
    (SVG, or DOT for .dot/.gv); return the ``TapePicture``."""
    x, labels = (split[:batch_size] for split in data.train)
    picture = picture_of_one_step(model, x, one_hot(labels, data.num_classes, x.dtype))
    picture.save(path)
    return picture


# ---------------------------------------------------------------------------- the run
def run(parser, argv, model_name, build, fit, evaluate=evaluate, prepare=None):
    """Parse ``argv`` (None: the command line) with ``parser`` (from ``build_parser``, plus the
    runner's flags), load the data, check --outdir and --picture, build, draw the picture,
    train, report and write the outputs; return the exit status (argparse exits with status 2
    itself on a bad flag).

    ``model_name`` titles the plots; ``build``, ``fit``, ``evaluate`` and ``prepare`` are
    described in the module's docstring.
    """
    started, cpu_started = time.perf_counter(), time.process_time()
    args = parser.parse_args(argv)

    def fail(message, status):
        print(f"{parser.prog}: error: {message}", file=sys.stderr)
        return status

    def unwritten(error):
        frame = traceback.extract_tb(error.__traceback__)[-1]
        return fail(f"a part of the homework is not written yet: {frame.name} in {frame.filename}, "
                    f"line {frame.lineno} ({error or 'NotImplementedError'})", 1)

    try:
        data = load_dataset(args.data)
        prepare_outdir(args.outdir)
        if args.picture is not None:
            prepare_picture(args.picture)
    except ValueError as error:  # hw.dataset.DataError included
        return fail(error, 2)

    rng = np.random.default_rng(args.seed)
    try:
        model, description = build(data, args, rng)
    except (ConfigError, DataError) as error:
        return fail(error, 2)
    except NotImplementedError as error:
        return unwritten(error)
    print(f"data: {data.describe()}")
    epochs = f"{args.epochs} epoch" + ("s" if args.epochs > 1 else "")
    print(f"model: {description}, batch {args.batch_size}, {epochs}, seed {args.seed}", flush=True)
    if prepare is not None:
        data = data.with_inputs(lambda x: prepare(model, x))

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
        # Divergence is reported below, so NumPy's overflow warnings would only repeat it.
        with np.errstate(over="ignore", invalid="ignore"):
            if args.picture is not None:
                try:
                    picture = save_picture_of_first_step(model, data, args.batch_size, args.picture)
                except OSError as error:
                    return fail(f"could not write the picture to {args.picture}: {error}", 1)
                print(f"picture: the tape of one training step ({len(picture.steps)} operations) "
                      f"in {args.picture}", flush=True)
                progress.start_epoch()
            curves = fit(model, data, args, rng, on_batch, on_epoch)
            test = evaluate(model, *data.test) if data.test is not None else None
    except Diverged as error:
        progress.clear()
        default = parser.get_default("lr")
        hint = f" (the default is {default:g})" if args.lr > default else ""
        return fail(f"{error}; training stopped. Try a smaller learning rate, e.g. --lr {args.lr / 10:g}{hint}", 1)
    except NotImplementedError as error:
        progress.clear()
        return unwritten(error)
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
    if args.picture is not None:
        written.append(args.picture)
    print(f"wrote {', '.join(written)}")
    print(f"wall time {time.perf_counter() - started:.1f} s, CPU time {time.process_time() - cpu_started:.1f} s")
    return 0
