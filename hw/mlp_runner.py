"""Train the homework MLP on MNIST with the mytorch autograd engine.

    python hw/mlp_runner.py                  # the default configuration on the bundled sample
    python hw/mlp_runner.py --hiddens 32,32,32 --activation sigmoid --lr 1e-3 \\
        --momentum 0.856 --batch-size 1 --epochs 25   # the course's configuration
    python hw/mlp_runner.py --data DIR       # a folder with train_data.npy, train_labels.npy, ...

It prints one line per epoch (a progress line updates during the epoch when the
output is a terminal), the test-set loss and error at the end, and writes
OUTDIR/stats.json and the plots OUTDIR/loss.png and OUTDIR/error.png.
Exit status: 0 when training finished, 1 when the loss became NaN or infinite (or a
part of the homework is not written yet), 2 for bad arguments or data.
"""
import argparse
import ctypes
import json
import math
import os
import sys
import time
import traceback

if __name__ == "__main__":
    # For this process only (a library must not do this): one BLAS thread. It is as fast
    # for these small matrices on a few cores and much steadier. Must come before numpy loads.
    for _variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(_variable, "1")
if __package__ in (None, ""):  # run as a script: make the repository root (hw/..) importable
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402

from hw.dataset import DataError, load_dataset  # noqa: E402
from hw.mlp import MLP, TrainingDiverged, evaluate, get_training_stats  # noqa: E402
from mytorch import Autograd, nn  # noqa: E402

DEFAULT_DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "mnist5k.npz")
ACTIVATIONS = {"relu": nn.ReLU, "sigmoid": nn.Sigmoid, "tanh": nn.Tanh}
STAT_NAMES = ("train_loss", "train_error", "val_loss", "val_error")


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


def layer_sizes(text):
    """argparse type: comma-separated hidden layer sizes ("128,64"); "" or "none" for no hidden layer."""
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


def build_parser():
    """The command line; defaults are the configuration that trains in a few seconds."""
    parser = argparse.ArgumentParser(
        prog="mlp_runner.py",
        description="Train an MLP with the mytorch autograd engine and write its learning curves.",
        epilog="Exit status: 0 done, 1 the loss became NaN or infinite or the homework is unfinished, "
               "2 bad arguments or data.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--epochs", type=positive_int, default=10, help="passes over the training set")
    parser.add_argument("--batch-size", type=positive_int, default=64, help="examples per SGD step")
    parser.add_argument("--lr", type=positive_float, default=0.05, help="learning rate")
    parser.add_argument("--momentum", type=momentum_value, default=0.9, help="SGD momentum, in [0, 1)")
    parser.add_argument("--hiddens", type=layer_sizes, default=[128, 64],
                        help="hidden layer sizes, comma-separated (\"none\" for no hidden layer)")
    parser.add_argument("--activation", choices=sorted(ACTIVATIONS), default="relu",
                        help="activation after every hidden layer")
    parser.add_argument("--seed", type=non_negative_int, default=0,
                        help="seeds the initial weights and the order of the batches")
    parser.add_argument("--data", default=DEFAULT_DATA,
                        help="an .npz file or a folder with train_data.npy, train_labels.npy, "
                             "val_data.npy, val_labels.npy (test_data.npy, test_labels.npy optional)")
    parser.add_argument("--outdir", default="out", help="where stats.json and the plots are written")
    return parser


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


def write_stats(stats, outdir):
    """Write the per-epoch lists to OUTDIR/stats.json; return the file's path."""
    path = os.path.join(outdir, "stats.json")
    with open(path, "w") as file:
        json.dump({name: [float(v) for v in stats[name]] for name in STAT_NAMES}, file, indent=2)
        file.write("\n")
    return path


def write_plots(stats, outdir):
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
        axes.set_title(f"MLP {quantity} per epoch")
        axes.grid(alpha=0.3)
        axes.legend()
        figure.tight_layout()
        path = os.path.join(outdir, quantity + ".png")
        figure.savefig(path)
        paths.append(path)
    return paths


# ---------------------------------------------------------------------------- training
def build_mlp(num_features, num_classes, args, engine, rng):
    """The MLP of the command line: ``args.activation`` after each hidden layer, softmax cross-entropy."""
    activation = ACTIVATIONS[args.activation]
    activations = [activation(engine) for _ in args.hiddens] + [nn.Identity(engine)]
    return MLP(num_features, num_classes, args.hiddens, activations, nn.SoftmaxCrossEntropy(engine),
               args.lr, engine, momentum=args.momentum, rng=rng)


def keep_heap_memory():
    """On glibc, keep freed memory in the heap instead of returning it to the kernel (this process only).

    Every step frees and reallocates temporaries of up to a few MB. With glibc's
    default settings the large ones are mmapped and the heap is trimmed, so each
    step pays for fresh pages; this makes a run up to twice as slow and erratic
    (see benchmarks/README.md). Same effect as MALLOC_MMAP_THRESHOLD_=16777216
    MALLOC_TRIM_THRESHOLD_=134217728 in the environment.
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


def fail(message, status=2):
    """Print ``error: message`` to stderr and return the exit status."""
    print(f"mlp_runner.py: error: {message}", file=sys.stderr)
    return status


def main(argv=None):
    """Parse ``argv``, train, report and write the outputs; return the exit status."""
    started = time.perf_counter()
    args = build_parser().parse_args(argv)
    try:
        data = load_dataset(args.data)
    except DataError as error:
        return fail(error)
    try:
        os.makedirs(args.outdir, exist_ok=True)
    except OSError as error:
        return fail(f"--outdir {args.outdir}: cannot create the folder ({error.strerror})")

    rng = np.random.default_rng(args.seed)
    engine = Autograd()
    mlp = build_mlp(data.num_features, data.num_classes, args, engine, rng)
    print(f"data: {data.describe()}")
    print(f"model: {'-'.join(str(n) for n in [data.num_features] + args.hiddens + [data.num_classes])}, "
          f"{args.activation}, softmax cross-entropy; SGD lr {args.lr:g}, momentum {args.momentum:g}, "
          f"batch {args.batch_size}, {args.epochs} epochs, seed {args.seed}")

    progress = ProgressLine(sys.stderr, args.epochs)

    def on_epoch(epoch, train_loss, train_error, val_loss, val_error):
        progress.clear()
        print(f"epoch {epoch:>{len(str(args.epochs))}}/{args.epochs}  "
              f"train loss {train_loss:.4f} error {100 * train_error:5.2f}%  "
              f"val loss {val_loss:.4f} error {100 * val_error:5.2f}%  "
              f"({progress.elapsed():.2f} s, {progress.samples_per_second:,.0f} samples/s)", flush=True)
        progress.start_epoch()

    try:  # non-finite losses are reported below, so NumPy's overflow warnings would only repeat it
        with np.errstate(over="ignore", invalid="ignore"):
            curves = get_training_stats(mlp, data.as_tuple(), args.epochs, args.batch_size, rng=rng,
                                        on_batch=progress.update, on_epoch=on_epoch)
    except TrainingDiverged as error:
        progress.clear()
        return fail(f"{error}; training stopped. Try a smaller learning rate, "
                    f"e.g. --lr {args.lr / 10:g}", status=1)
    except NotImplementedError as error:
        progress.clear()
        frame = traceback.extract_tb(error.__traceback__)[-1]
        return fail(f"a part of the homework is not written yet: {frame.name} in {frame.filename}, "
                    f"line {frame.lineno} ({error or 'NotImplementedError'})", status=1)
    stats = dict(zip(STAT_NAMES, curves))

    if data.test is not None:
        test_loss, test_error = evaluate(mlp, *data.test)
        print(f"test: loss {test_loss:.4f} error {100 * test_error:.2f}% "
              f"(accuracy {100 * (1 - test_error):.2f}%)")
    else:
        print("test: no test split in the data (test_data.npy and test_labels.npy); skipped")
    val_error = stats["val_error"]
    best = int(np.argmin(val_error))
    print(f"validation accuracy {100 * (1 - val_error[-1]):.2f}% after the last epoch "
          f"(best {100 * (1 - val_error[best]):.2f}% after epoch {best + 1})")

    written = [write_stats(stats, args.outdir)]
    plots = write_plots(stats, args.outdir)
    if plots is None:
        print("plots: matplotlib is not installed, so no plots were written; install it with "
              "pip install -e '.[plot]' (or pip install matplotlib)")
    else:
        written += plots
    print(f"wrote {', '.join(written)}")
    print(f"wall time {time.perf_counter() - started:.1f} s")
    return 0


if __name__ == "__main__":
    keep_heap_memory()
    sys.exit(main())
