"""Train the GRU classifier (hw/rnn.py) on MNIST with the mytorch autograd engine.

    python hw/rnn_runner.py                      # the default configuration on the bundled sample
    python hw/rnn_runner.py --hidden-size 128 --epochs 15
    python hw/rnn_runner.py --picture step.svg   # also draw the tape of one training step (.svg or .dot)

Each 28x28 image is read row by row: 28 time steps of 28 features. It prints one
line per epoch, the test-set accuracy, the wall and CPU time, and writes
OUTDIR/stats.json (the per-epoch lists train_loss, train_error, val_loss, val_error).
Exit status: 0 when training finished, 1 when the loss became NaN or infinite (or a
part of the homework is not written yet), 2 for bad arguments or data.
"""
import argparse
import os
import sys
import time
import traceback

if __name__ == "__main__":
    # For this process only: one BLAS thread (steadier and as fast for these small matrices).
    for _variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(_variable, "1")
if __package__ in (None, ""):  # run as a script: make the repository root (hw/..) importable
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402

from hw.dataset import DataError, load_dataset  # noqa: E402
from hw.mlp import TrainingDiverged, evaluate, one_hot  # noqa: E402
from hw.trainer import (  # noqa: E402
    DEFAULT_DATA, ProgressLine, keep_heap_memory, non_negative_int, number_type, positive_float,
    positive_int, write_stats,
)
from hw.rnn import DEFAULTS, ROW_SIZE, picture_of_one_step, train_gru  # noqa: E402

decay_value = number_type(float, lambda value: 0 < value <= 1, "in (0, 1]")


def build_parser():
    """The command line; the defaults reach the SPEC's 93% validation accuracy."""
    parser = argparse.ArgumentParser(
        prog="rnn_runner.py",
        description="Train a GRU that reads each image row by row, with the mytorch autograd engine.",
        epilog="Exit status: 0 done, 1 the loss became NaN or infinite or the homework is unfinished, "
               "2 bad arguments or data.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--epochs", type=positive_int, default=DEFAULTS["epochs"], help="passes over the training set")
    parser.add_argument("--batch-size", type=positive_int, default=DEFAULTS["batch_size"], help="examples per step")
    parser.add_argument("--lr", type=positive_float, default=DEFAULTS["lr"], help="Adam's learning rate")
    parser.add_argument("--lr-decay", type=decay_value, default=DEFAULTS["lr_decay"],
                        help="the learning rate is multiplied by this after every epoch")
    parser.add_argument("--hidden-size", type=positive_int, default=DEFAULTS["hidden_size"],
                        help="size of the GRU's hidden state")
    parser.add_argument("--dtype", choices=["float32", "float64"], default=DEFAULTS["dtype"],
                        help="floating point type of the parameters and data")
    parser.add_argument("--seed", type=non_negative_int, default=DEFAULTS["seed"],
                        help="seeds the initial weights and the order of the batches")
    parser.add_argument("--data", default=DEFAULT_DATA,
                        help="an .npz file or a folder with train_data.npy, train_labels.npy, val_data.npy, "
                             f"val_labels.npy; images of width {ROW_SIZE}, flattened row-major")
    parser.add_argument("--outdir", default=os.path.join("out", "rnn"), help="where stats.json is written")
    parser.add_argument("--picture", metavar="FILE",
                        help="after training, draw the tape of one training step to FILE (.svg or .dot)")
    return parser


def fail(message, status=2):
    """Print ``error: message`` to stderr and return the exit status."""
    print(f"rnn_runner.py: error: {message}", file=sys.stderr)
    return status


def main(argv=None):
    """Parse ``argv``, train, report and write the outputs; return the exit status."""
    started, cpu_started = time.perf_counter(), time.process_time()
    args = build_parser().parse_args(argv)
    if args.picture is not None and not args.picture.endswith((".svg", ".dot", ".gv")):
        return fail(f"--picture {args.picture}: the file name must end in .svg, .dot or .gv")
    try:
        data = load_dataset(args.data)
    except DataError as error:
        return fail(error)
    if data.num_features % ROW_SIZE:
        return fail(f"{args.data}: images have {data.num_features} pixels, not a whole number of rows "
                    f"of {ROW_SIZE}")
    try:
        os.makedirs(args.outdir, exist_ok=True)
    except OSError as error:
        return fail(f"--outdir {args.outdir}: cannot create the folder ({error.strerror})")

    print(f"data: {data.describe()}")
    print(f"model: GRU {ROW_SIZE}->{args.hidden_size} over {data.num_features // ROW_SIZE} rows, "
          f"Linear {args.hidden_size}->{data.num_classes}, softmax cross-entropy, {args.dtype}; Adam lr "
          f"{args.lr:g} (x{args.lr_decay:g} per epoch), batch {args.batch_size}, {args.epochs} epochs, "
          f"seed {args.seed}")
    progress = ProgressLine(sys.stderr, args.epochs)

    def on_epoch(epoch, train_loss, train_error, val_loss, val_error):
        progress.clear()
        print(f"epoch {epoch:>{len(str(args.epochs))}}/{args.epochs}  "
              f"train loss {train_loss:.4f} error {100 * train_error:5.2f}%  "
              f"val loss {val_loss:.4f} error {100 * val_error:5.2f}%  "
              f"({progress.elapsed():.2f} s, {progress.samples_per_second:,.0f} samples/s)", flush=True)
        progress.start_epoch()

    try:
        with np.errstate(over="ignore", invalid="ignore"):
            model, curves = train_gru(
                data.as_tuple(), hidden_size=args.hidden_size, epochs=args.epochs, batch_size=args.batch_size,
                lr=args.lr, lr_decay=args.lr_decay, seed=args.seed, dtype=args.dtype,
                on_batch=progress.update, on_epoch=on_epoch)
    except TrainingDiverged as error:
        progress.clear()
        return fail(f"{error}; training stopped. Try a smaller learning rate, e.g. --lr {args.lr / 10:g}",
                    status=1)
    except NotImplementedError as error:
        progress.clear()
        frame = traceback.extract_tb(error.__traceback__)[-1]
        return fail(f"a part of the homework is not written yet: {frame.name} in {frame.filename}, "
                    f"line {frame.lineno} ({error or 'NotImplementedError'})", status=1)
    stats = dict(zip(("train_loss", "train_error", "val_loss", "val_error"), curves))

    if data.test is not None:
        test_x, test_labels = data.test
        test_loss, test_error = evaluate(model, test_x.astype(args.dtype), test_labels)
        print(f"test: loss {test_loss:.4f} error {100 * test_error:.2f}% (accuracy {100 * (1 - test_error):.2f}%)")
    val_error = stats["val_error"]
    best = int(np.argmin(val_error))
    print(f"validation accuracy {100 * (1 - val_error[-1]):.2f}% after the last epoch "
          f"(best {100 * (1 - val_error[best]):.2f}% after epoch {best + 1})")
    written = [write_stats(stats, args.outdir)]
    if args.picture is not None:
        x, labels = data.train[0][:args.batch_size], data.train[1][:args.batch_size]
        picture = picture_of_one_step(model, x.astype(args.dtype), one_hot(labels, model.output_size, args.dtype))
        written.append(picture.save(args.picture))
    print(f"wrote {', '.join(written)}")
    print(f"wall time {time.perf_counter() - started:.1f} s, CPU time {time.process_time() - cpu_started:.1f} s")
    return 0


if __name__ == "__main__":
    keep_heap_memory()
    sys.exit(main())
