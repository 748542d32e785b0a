"""Train the homework MLP on MNIST with the mytorch autograd engine.

    python hw/mlp_runner.py                  # the default configuration on the bundled sample
    python hw/mlp_runner.py --hiddens 32,32,32 --activation sigmoid --lr 1e-3 \\
        --momentum 0.856 --batch-size 1 --epochs 25   # the course's configuration
    python hw/mlp_runner.py --data DIR       # a folder with train_data.npy, train_labels.npy, ...
    python hw/mlp_runner.py --picture step.svg   # also draw the tape of one training step (.svg or .dot)

It prints one line per epoch (a progress line updates during the epoch when the
output is a terminal), the test-set loss and error at the end, and writes
OUTDIR/stats.json and the plots OUTDIR/loss.png and OUTDIR/error.png.
Exit status: 0 when training finished; 1 when the loss became NaN or infinite or
exploded, a part of the homework is not written yet, or the outputs could not be
written; 2 for bad arguments, data, --outdir or --picture. The command line, the checks and the
outputs are hw/trainer.py's; this file supplies the model.
"""
import os
import sys

if __name__ == "__main__":
    # For this process only (a library must not do this): one BLAS thread. It is as fast
    # for these small matrices on a few cores and much steadier. Must come before numpy loads.
    for _variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(_variable, "1")
if __package__ in (None, ""):  # run as a script: make the repository root (hw/..) importable
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from hw import trainer  # noqa: E402
from hw.mlp import MLP, TrainingDiverged, evaluate, get_training_stats  # noqa: E402
from mytorch import Autograd, nn  # noqa: E402

ACTIVATIONS = {"relu": nn.ReLU, "sigmoid": nn.Sigmoid, "tanh": nn.Tanh}


def build_parser():
    """The command line; defaults are the configuration that trains in a few seconds."""
    parser = trainer.build_parser(
        "mlp_runner.py", "Train an MLP with the mytorch autograd engine and write its learning curves.",
        outdir=os.path.join("out", "mlp"))
    parser.add_argument("--hiddens", type=trainer.int_list, default="128,64",
                        help="hidden layer sizes, comma-separated (\"none\" for no hidden layer)")
    parser.add_argument("--activation", choices=sorted(ACTIVATIONS), default="relu",
                        help="activation after every hidden layer")
    return parser


def build_mlp(num_features, num_classes, args, engine, rng):
    """The MLP of the command line: ``args.activation`` after each hidden layer, softmax cross-entropy."""
    activation = ACTIVATIONS[args.activation]
    activations = [activation(engine) for _ in args.hiddens] + [nn.Identity(engine)]
    return MLP(num_features, num_classes, args.hiddens, activations, nn.SoftmaxCrossEntropy(engine),
               args.lr, engine, momentum=args.momentum, rng=rng)


def build(data, args, rng):
    """The trainer's ``build``: the MLP and its one-line description."""
    mlp = build_mlp(data.num_features, data.num_classes, args, Autograd(), rng)
    sizes = "-".join(str(n) for n in [data.num_features] + args.hiddens + [data.num_classes])
    return mlp, (f"{sizes}, {args.activation}, softmax cross-entropy; "
                 f"SGD lr {args.lr:g}, momentum {args.momentum:g}")


def fit(mlp, data, args, rng, on_batch, on_epoch):
    """The trainer's ``fit``: ``get_training_stats`` of hw/mlp.py."""
    try:
        return get_training_stats(mlp, data.as_tuple(), args.epochs, args.batch_size, rng=rng,
                                  on_batch=on_batch, on_epoch=on_epoch)
    except TrainingDiverged as error:
        raise trainer.Diverged(str(error)) from None


def main(argv=None):
    """Parse ``argv``, train, report and write the outputs; return the exit status."""
    return trainer.run(build_parser(), argv, "MLP", build, fit, evaluate)


if __name__ == "__main__":
    trainer.keep_heap_memory()
    sys.exit(main())
