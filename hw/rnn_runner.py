"""Train the GRU classifier (hw/rnn.py) on MNIST with the mytorch autograd engine.

    python hw/rnn_runner.py                      # the default configuration on the bundled sample
    python hw/rnn_runner.py --hidden-size 64 --epochs 12
    python hw/rnn_runner.py --picture step.svg   # also draw the tape of one training step (.svg or .dot)

Each square image is read row by row: a 28x28 digit is 28 time steps of 28
features. It prints one line per epoch (a progress line updates during the epoch on
a terminal), the test-set loss and error, the wall and CPU time, and writes
OUTDIR/stats.json and the plots OUTDIR/loss.png and OUTDIR/error.png.
Exit status: 0 when training finished; 1 when the loss became NaN or infinite or
exploded, a part of the homework is not written yet, or the outputs could not be
written; 2 for bad arguments, data, --outdir or --picture. The command line, the
checks, the training loop and the outputs are hw/trainer.py's; this file supplies the model.
"""
import os
import sys

if __name__ == "__main__":
    # For this process only: one BLAS thread (steadier and as fast for these small matrices).
    for _variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(_variable, "1")
if __package__ in (None, ""):  # run as a script: make the repository root (hw/..) importable
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from hw import trainer  # noqa: E402
from hw.rnn import GRUClassifier  # noqa: E402
from mytorch import Autograd  # noqa: E402


def build_parser():
    """The command line; the defaults reach the SPEC's 93% validation accuracy in well under a minute."""
    parser = trainer.build_parser(
        "rnn_runner.py", "Train a GRU that reads each image row by row, with the mytorch autograd engine.",
        epochs=8, batch_size=32, lr=0.005, momentum=None, lr_decay=0.8, outdir=os.path.join("out", "rnn"))
    parser.add_argument("--hidden-size", type=trainer.positive_int, default=128,
                        help="size of the GRU's hidden state")
    parser.add_argument("--dtype", choices=["float32", "float64"], default="float32",
                        help="the parameters' and images' float type")
    return parser


def build(data, args, rng):
    """The trainer's ``build``: a GRU reading the rows of the square images of ``data``, and its description."""
    side = trainer.square_side(data.num_features, "GRU")
    model = GRUClassifier(side, args.hidden_size, data.num_classes, Autograd(), args.lr, steps=side, rng=rng,
                          dtype=args.dtype)
    return model, (f"GRU {side}->{args.hidden_size} over {side} rows, Linear {args.hidden_size}->"
                   f"{data.num_classes}, softmax cross-entropy, {args.dtype}; Adam lr {args.lr:g} "
                   f"(x{args.lr_decay:g} per epoch)")


def sequences(model, x):
    """The trainer's ``prepare``: rows of pixels as sequences (N, rows, row width) in the model's dtype."""
    return x.reshape(len(x), model.steps, model.input_size).astype(model.dtype)


def fit(model, data, args, rng, on_batch, on_epoch):
    """The trainer's ``fit``: its training loop; Adam's learning rate is multiplied by --lr-decay after every epoch."""
    def decay(*stats):
        model.optimizer.lr *= args.lr_decay
        on_epoch(*stats)

    return trainer.fit(model, data, args, rng, on_batch, decay)


def main(argv=None):
    """Parse ``argv``, train, report and write the outputs; return the exit status."""
    return trainer.run(build_parser(), argv, "GRU", build, fit, prepare=sequences)


if __name__ == "__main__":
    trainer.keep_heap_memory()
    sys.exit(main())
