"""Train the homework CNN (hw/cnn.py) on MNIST with the mytorch autograd engine.

    python hw/cnn_runner.py                  # the default configuration on the bundled sample
    python hw/cnn_runner.py --dtype float64 --epochs 5
    python hw/cnn_runner.py --data DIR       # a folder with train_data.npy, train_labels.npy, ...

It prints one line per epoch, then the validation accuracy, the wall time and the
process's CPU time (which does not count time spent waiting for a busy machine).
Images must be square (N, S * S) rows or (N, S, S); the bundled sample's are 28x28.
Exit status: 0 when training finished, 1 when the loss became NaN or infinite, 2 for bad
arguments or data.
"""
import argparse
import math
import os
import sys
import time

if __name__ == "__main__":
    # For this process only: one BLAS thread (see hw/mlp_runner.py). Must come before numpy loads.
    for _variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(_variable, "1")
if __package__ in (None, ""):  # run as a script: make the repository root (hw/..) importable
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402

from hw.cnn import TrainingDiverged, default_cnn, get_training_stats  # noqa: E402
from hw.dataset import DataError, load_dataset  # noqa: E402
from hw.trainer import (  # noqa: E402
    DEFAULT_DATA, STAT_NAMES, keep_heap_memory, momentum_value, non_negative_int, positive_float, positive_int,
)
from mytorch import Autograd  # noqa: E402

DEFAULTS = dict(epochs=10, batch_size=64, lr=0.05, momentum=0.9, seed=0, dtype="float32")


def as_images(split, cnn):
    """An ``(x, labels)`` split with its rows as images of the CNN's input shape and dtype."""
    x, labels = split
    return x.reshape((len(x),) + cnn.input_shape).astype(cnn.dtype), labels


def build_cnn(data, lr=DEFAULTS["lr"], momentum=DEFAULTS["momentum"], dtype=DEFAULTS["dtype"], rng=None):
    """The default CNN (``hw.cnn.default_cnn``) for the square images of ``data`` (a ``hw.dataset.Dataset``)."""
    side = math.isqrt(data.num_features)
    if side * side != data.num_features:
        raise DataError(f"the CNN reads square images, but the data has {data.num_features} features per "
                        f"example (not S * S for any S)")
    try:
        return default_cnn(Autograd(), rng=rng, lr=lr, momentum=momentum, dtype=dtype,
                           num_classes=data.num_classes, input_shape=(1, side, side))
    except ValueError as error:  # images too small for the network
        raise DataError(str(error)) from None


def train_cnn(cnn, data, epochs=DEFAULTS["epochs"], batch_size=DEFAULTS["batch_size"], rng=None,
              on_batch=None, on_epoch=None):
    """Train ``cnn`` on ``data`` (a ``hw.dataset.Dataset``); return a dict of per-epoch lists (``STAT_NAMES``).

    The images are reshaped to the CNN's input shape and dtype; ``rng`` draws the batch
    order. ``on_batch``/``on_epoch`` are ``get_training_stats``'s callbacks. Raises
    ``TrainingDiverged`` if the loss stops being finite.
    """
    train, val = as_images(data.train, cnn), as_images(data.val, cnn)
    curves = get_training_stats(cnn, (train, val, None), epochs, batch_size, rng=rng,
                                on_batch=on_batch, on_epoch=on_epoch)
    return dict(zip(STAT_NAMES, curves))


def build_parser():
    parser = argparse.ArgumentParser(
        prog="cnn_runner.py",
        description="Train the homework CNN with the mytorch autograd engine.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--epochs", type=positive_int, default=DEFAULTS["epochs"], help="passes over the training set")
    parser.add_argument("--batch-size", type=positive_int, default=DEFAULTS["batch_size"], help="examples per SGD step")
    parser.add_argument("--lr", type=positive_float, default=DEFAULTS["lr"], help="learning rate")
    parser.add_argument("--momentum", type=momentum_value, default=DEFAULTS["momentum"], help="SGD momentum, in [0, 1)")
    parser.add_argument("--seed", type=non_negative_int, default=DEFAULTS["seed"],
                        help="seeds the initial weights and the order of the batches")
    parser.add_argument("--dtype", choices=["float32", "float64"], default=DEFAULTS["dtype"],
                        help="the parameters' and images' float type (float32 is about 1.7x faster)")
    parser.add_argument("--data", default=DEFAULT_DATA,
                        help="an .npz file or a folder with train_data.npy, train_labels.npy, "
                             "val_data.npy, val_labels.npy")
    return parser


def main(argv=None):
    """Parse ``argv``, train and report; return the exit status."""
    wall_start, cpu_start = time.perf_counter(), time.process_time()
    args = build_parser().parse_args(argv)
    try:
        data = load_dataset(args.data)
        rng = np.random.default_rng(args.seed)
        cnn = build_cnn(data, args.lr, args.momentum, args.dtype, rng)
        print(f"data: {data.describe()}")
        print(f"model: {cnn}")
        print(f"training: SGD lr {args.lr:g}, momentum {args.momentum:g}, batch {args.batch_size}, "
              f"{args.epochs} epochs, {args.dtype}, seed {args.seed}", flush=True)

        def on_epoch(epoch, train_loss, train_error, val_loss, val_error):
            print(f"epoch {epoch:>{len(str(args.epochs))}}/{args.epochs}  "
                  f"train loss {train_loss:.4f} error {100 * train_error:5.2f}%  "
                  f"val loss {val_loss:.4f} error {100 * val_error:5.2f}%  "
                  f"({time.perf_counter() - wall_start:.1f} s)", flush=True)

        with np.errstate(over="ignore", invalid="ignore"):
            stats = train_cnn(cnn, data, args.epochs, args.batch_size, rng, on_epoch=on_epoch)
    except DataError as error:
        print(f"cnn_runner.py: error: {error}", file=sys.stderr)
        return 2
    except TrainingDiverged as error:
        print(f"cnn_runner.py: error: {error}; training stopped. Try a smaller learning rate, "
              f"e.g. --lr {args.lr / 10:g}", file=sys.stderr)
        return 1
    print(f"validation accuracy {100 * (1 - stats['val_error'][-1]):.2f}% after the last epoch")
    print(f"wall time {time.perf_counter() - wall_start:.1f} s, CPU time {time.process_time() - cpu_start:.1f} s")
    return 0


if __name__ == "__main__":
    keep_heap_memory()
    sys.exit(main())
