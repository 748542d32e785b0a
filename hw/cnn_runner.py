"""Train the homework CNN (hw/cnn.py) on MNIST with the mytorch autograd engine.

    python hw/cnn_runner.py                    # the default configuration on the bundled sample
    python hw/cnn_runner.py --dtype float64 --epochs 5
    python hw/cnn_runner.py --channels 8 --kernel-size 3 --picture step.svg
    python hw/cnn_runner.py --data DIR         # a folder with train_data.npy, train_labels.npy, ...

Images must be square: rows of S * S pixels (or (N, S, S) arrays); the bundled
sample's are 28x28. It prints one line per epoch (a progress line updates during
the epoch on a terminal), the test-set loss and error, the wall and CPU time, and
writes OUTDIR/stats.json and the plots OUTDIR/loss.png and OUTDIR/error.png.
Exit status: 0 when training finished; 1 when the loss became NaN or infinite or
exploded, a part of the homework is not written yet, or the outputs could not be
written; 2 for bad arguments, data, --outdir or --picture. The command line, the
checks, the training loop and the outputs are hw/trainer.py's; this file supplies the model.
"""
import os
import sys

if __name__ == "__main__":
    # For this process only: one BLAS thread (see hw/mlp_runner.py). Must come before numpy loads.
    for _variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(_variable, "1")
if __package__ in (None, ""):  # run as a script: make the repository root (hw/..) importable
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402

from hw import trainer  # noqa: E402
from hw.cnn import CNN  # noqa: E402
from mytorch import Autograd, nn  # noqa: E402


def build_parser():
    """The command line; the defaults reach the SPEC's 96% validation accuracy in well under a minute."""
    parser = trainer.build_parser(
        "cnn_runner.py", "Train a small CNN with the mytorch autograd engine and write its learning curves.",
        epochs=10, batch_size=64, lr=0.05, momentum=0.9, lr_decay=0.8, outdir=os.path.join("out", "cnn"))
    parser.add_argument("--channels", type=trainer.int_list, default="16,32",
                        help="output channels of each block (Conv2d, ReLU, MaxPool2d(2)), comma-separated")
    parser.add_argument("--kernel-size", type=trainer.positive_int, default=5,
                        help="every convolution's square kernel size (stride 1, no padding)")
    parser.add_argument("--shift", type=trainer.non_negative_int, default=2,
                        help="train on each image moved by a random offset of up to this many pixels "
                             "along each axis (0: the images as they are)")
    parser.add_argument("--dtype", choices=["float32", "float64"], default="float32",
                        help="the parameters' and images' float type (float32 trains about twice as fast)")
    return parser


def build(data, args, rng):
    """The trainer's ``build``: the CNN of the flags for the square images of ``data``, and its description."""
    if not args.channels:
        raise trainer.ConfigError("--channels: give at least one block, e.g. --channels 16,32")
    side = trainer.square_side(data.num_features, "CNN")
    if args.shift >= side:
        raise trainer.ConfigError(f"--shift {args.shift}: must be less than the images' side ({side} pixels), "
                                  f"e.g. --shift 2")
    engine = Autograd()
    try:
        cnn = CNN((1, side, side), data.num_classes, args.channels, [args.kernel_size] * len(args.channels),
                  nn.SoftmaxCrossEntropy(engine), args.lr, engine, momentum=args.momentum, rng=rng,
                  dtype=args.dtype)
    except ValueError as error:  # images too small for the blocks
        raise trainer.ConfigError(f"{error}; use fewer --channels blocks or a smaller --kernel-size") from None
    *convolutions, linear = cnn.parameter_layers
    blocks = ", ".join(f"Conv2d({conv.in_channels}, {conv.out_channels}, {conv.kernel_size})-ReLU-MaxPool2d(2)"
                       for conv in convolutions)
    return cnn, (f"{side}x{side} images -> {blocks}, Flatten, Linear({linear.in_features}, {linear.out_features}), "
                 f"softmax cross-entropy, {args.dtype}; SGD lr {args.lr:g} (x{args.lr_decay:g} per epoch), "
                 f"momentum {args.momentum:g}")


def images(cnn, x):
    """The trainer's ``prepare``: rows of pixels as images (N, C, H, W) in the CNN's dtype."""
    return x.reshape((len(x),) + cnn.input_shape).astype(cnn.dtype)


def random_shifts(images, rng, max_shift):
    """Images (N, C, H, W), each moved by its own random offset of up to ``max_shift`` pixels along
    each axis (drawn from ``rng``); the pixels moved in are zeros."""
    n, height, width = len(images), images.shape[2], images.shape[3]
    padded = np.pad(images, ((0, 0), (0, 0), (max_shift, max_shift), (max_shift, max_shift)))
    # windows[i, c, dy, dx] is channel c of image i moved up by dy - max_shift and left by dx - max_shift.
    windows = np.lib.stride_tricks.sliding_window_view(padded, (height, width), axis=(2, 3))
    dy, dx = rng.integers(0, 2 * max_shift + 1, (2, n))
    return windows[np.arange(n), :, dy, dx]


def fit(cnn, data, args, rng, on_batch, on_epoch):
    """The trainer's ``fit``: its training loop on images shifted at random by up to --shift pixels;
    the learning rate is multiplied by --lr-decay after every epoch."""
    def decay(*stats):
        cnn.lr *= args.lr_decay
        on_epoch(*stats)

    shift = (lambda x, rng: random_shifts(x, rng, args.shift)) if args.shift else None
    return trainer.train_model(cnn, data.train, data.val, args.epochs, args.batch_size, rng, on_batch, decay,
                               augment=shift)


def main(argv=None):
    """Parse ``argv``, train, report and write the outputs; return the exit status."""
    return trainer.run(build_parser(), argv, "CNN", build, fit, prepare=images)


if __name__ == "__main__":
    trainer.keep_heap_memory()
    sys.exit(main())
