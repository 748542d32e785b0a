"""Tests of the CNN and GRU runners (hw/cnn_runner.py, hw/rnn_runner.py) on the shared trainer
(hw/trainer.py), and of what all three runners share: the --picture flag, --help, running as a
script, the given training loop and the picture of one step.

hw/mlp_runner.py's flags and the trainer's common checks (data, --outdir, divergence watch) are
tested in depth in tests/test_hw_runner.py; here each shared check is run once per runner.
Most tests call ``main(argv)`` in-process on tiny 8x8 images in the course layout.
"""
import argparse
import types
import xml.etree.ElementTree as ET

import numpy as np
import pytest

from hw_helpers import STAT_KEYS, exit_status_of_bad_flags, run_main, run_script, stats_of, write_image_folder
from hw import cnn_runner, mlp_runner, rnn_runner, trainer
from hw.cnn import CNN
from hw.mlp import MLP, get_training_stats
from hw.rnn import GRUClassifier
from mytorch import Autograd, nn

RUNNERS = {"mlp": mlp_runner, "cnn": cnn_runner, "rnn": rnn_runner}
SMALL = {  # a small model of each runner for the 8x8 images
    "mlp": ["--hiddens", "16"],
    "cnn": ["--channels", "4", "--kernel-size", "3"],
    "rnn": ["--hidden-size", "8"],
}
PACKS = ["cnn", "rnn"]
SVG = "{http://www.w3.org/2000/svg}"


@pytest.fixture
def tiny(tmp_path):
    """8x8 images of 3 classes in the course layout: 60 train, 15 val, 15 test."""
    return write_image_folder(tmp_path / "tiny")


def run(capsys, name, *argv):
    """Run runner ``name`` in-process; return (exit status, stdout, stderr)."""
    return run_main(RUNNERS[name].main, capsys, *argv)


def tiny_run(capsys, name, tiny, outdir, *extra):
    """Runner ``name``, its small model, 2 epochs of batches of 16 on ``tiny``, outputs in ``outdir``."""
    return run(capsys, name, "--data", tiny, "--outdir", outdir, "--epochs", 2, "--batch-size", 16,
               *SMALL[name], *extra)


# ---------------------------------------------------------------------------- outputs
@pytest.mark.parametrize("name, model", [
    ("cnn", "model: 8x8 images -> Conv2d(1, 4, 3)-ReLU-MaxPool2d(2), Flatten, Linear(36, 3), softmax "
            "cross-entropy, float32; SGD lr 0.05 (x0.8 per epoch), momentum 0.9, batch 16, 3 epochs, seed 0"),
    ("rnn", "model: GRU 8->8 over 8 rows, Linear 8->3, softmax cross-entropy, float32; Adam lr 0.005 "
            "(x0.8 per epoch), batch 16, 3 epochs, seed 0"),
])
def test_a_run_prints_every_line_and_writes_stats_and_plots(capsys, tiny, tmp_path, name, model):
    pytest.importorskip("matplotlib")
    status, out, err = run(capsys, name, "--data", tiny, "--outdir", tmp_path, "--epochs", 3, "--batch-size", 16,
                           *SMALL[name])
    assert status == 0, err
    assert "60 train, 15 val, 15 test examples of 64 features, 3 classes" in out
    assert model in out
    assert [line[:10] for line in out.splitlines() if line.startswith("epoch")] == ["epoch 1/3 ", "epoch 2/3 ",
                                                                                    "epoch 3/3 "]
    assert "samples/s" in out and "test: loss" in out
    stats = stats_of(tmp_path)
    assert set(stats) == STAT_KEYS and {len(values) for values in stats.values()} == {3}
    assert stats["train_loss"][-1] < stats["train_loss"][0]  # it learns
    assert f"validation accuracy {100 * (1 - stats['val_error'][-1]):.2f}%" in out
    assert f"wrote {tmp_path / 'stats.json'}, {tmp_path / 'loss.png'}, {tmp_path / 'error.png'}\n" in out
    assert "wall time" in out and "CPU time" in out
    for plot in ("loss.png", "error.png"):
        assert (tmp_path / plot).read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize("name, flags, model", [
    ("cnn", ["--channels", "2,3", "--kernel-size", "3"], "model: 28x28 images -> Conv2d(1, 2, 3)-ReLU-MaxPool2d(2), "
                                                         "Conv2d(2, 3, 3)-ReLU-MaxPool2d(2), Flatten, Linear(75, 10)"),
    ("rnn", ["--hidden-size", "8"], "model: GRU 28->8 over 28 rows, Linear 8->10"),
])
def test_the_bundled_sample_is_the_default_data(capsys, tmp_path, name, flags, model):
    status, out, err = run(capsys, name, "--outdir", tmp_path, "--epochs", 1, "--batch-size", 500, *flags)
    assert status == 0, err
    assert "mnist5k.npz: 4000 train, 500 val, 500 test examples of 784 features, 10 classes" in out
    assert model in out


@pytest.mark.parametrize("name", PACKS)
def test_same_seed_same_numbers_other_seed_other_numbers(capsys, tiny, tmp_path, name):
    runs = {}
    for run_name, seed in (("a", 7), ("b", 7), ("c", 8)):
        assert tiny_run(capsys, name, tiny, tmp_path / run_name, "--seed", seed)[0] == 0
        runs[run_name] = stats_of(tmp_path / run_name)
    assert runs["a"] == runs["b"]
    assert runs["a"] != runs["c"]


@pytest.mark.parametrize("name, flag, value, shown", [
    ("cnn", "--batch-size", 7, "batch 7"),
    ("cnn", "--lr", 0.003, "SGD lr 0.003"),
    ("cnn", "--momentum", 0.5, "momentum 0.5"),
    ("cnn", "--lr-decay", 0.5, "(x0.5 per epoch)"),
    ("cnn", "--channels", "6", "Conv2d(1, 6, 3)-ReLU-MaxPool2d(2), Flatten, Linear(54, 3)"),
    ("cnn", "--kernel-size", 5, "Conv2d(1, 4, 5)-ReLU-MaxPool2d(2), Flatten, Linear(16, 3)"),
    ("cnn", "--shift", 0, "momentum 0.9"),
    ("cnn", "--dtype", "float64", "float64"),
    ("rnn", "--batch-size", 7, "batch 7"),
    ("rnn", "--lr", 0.02, "Adam lr 0.02"),
    ("rnn", "--lr-decay", 0.5, "(x0.5 per epoch)"),
    ("rnn", "--hidden-size", 5, "GRU 8->5 over 8 rows, Linear 5->3"),
    ("rnn", "--dtype", "float64", "float64"),
])
def test_each_training_flag_is_used(capsys, tiny, tmp_path, name, flag, value, shown):
    status, out, err = tiny_run(capsys, name, tiny, tmp_path / "flag", flag, value)
    assert status == 0, err
    assert shown in out
    assert tiny_run(capsys, name, tiny, tmp_path / "base")[0] == 0
    assert stats_of(tmp_path / "flag") != stats_of(tmp_path / "base")  # the flag changed the training


@pytest.mark.parametrize("name", RUNNERS)
def test_help_shows_every_default_in_the_form_the_flag_accepts(capsys, name):
    runner = RUNNERS[name]
    code, _ = exit_status_of_bad_flags(runner.main, capsys, "--help")  # prints to stdout, exits 0
    assert code == 0
    parser = runner.build_parser()
    text = " ".join(parser.format_help().split())  # argparse wraps long help lines
    for flag in ("--epochs", "--batch-size", "--lr", "--seed", "--data", "--outdir", "--picture"):
        assert flag in text
    for action in parser._actions:
        if action.default not in (None, argparse.SUPPRESS) and action.option_strings:
            assert f"(default: {action.default})" in text, action.option_strings
            if isinstance(action.default, str) and action.type is not None:  # the shown text parses back
                parser.parse_args([action.option_strings[0], action.default])
    assert "(default: [" not in text and "(default: None)" not in text  # [16, 32] is a form the flag refuses
    assert parser.parse_args([]).outdir == f"out/{name}"  # the three runners do not overwrite each other


# ---------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("name, argv, message", [
    ("cnn", ["--channels", "16,x"], "--channels: expected comma-separated whole numbers"),
    ("cnn", ["--channels", "16,0"], "--channels: layer sizes must be at least 1, got 0"),
    ("cnn", ["--kernel-size", "0"], "--kernel-size: must be at least 1, got 0"),
    ("cnn", ["--shift", "-1"], "--shift: must be 0 or more, got -1"),
    ("cnn", ["--lr-decay", "0"], "--lr-decay: must be in (0, 1], got 0"),
    ("cnn", ["--lr-decay", "1.5"], "--lr-decay: must be in (0, 1], got 1.5"),
    ("cnn", ["--momentum", "1"], "--momentum: must be in [0, 1)"),
    ("cnn", ["--dtype", "float16"], "--dtype: invalid choice: 'float16'"),
    ("cnn", ["--lr", "0"], "--lr: must be a positive number, got 0"),
    ("rnn", ["--hidden-size", "0"], "--hidden-size: must be at least 1, got 0"),
    ("rnn", ["--lr-decay", "nan"], "--lr-decay: must be in (0, 1], got nan"),
    ("rnn", ["--dtype", "float16"], "--dtype: invalid choice: 'float16'"),
    ("rnn", ["--momentum", "0.9"], "unrecognized arguments: --momentum 0.9"),  # Adam has no momentum flag
    ("rnn", ["--epochs", "0"], "--epochs: must be at least 1"),
    ("mlp", ["--picture", "step.png"], "--picture: the file name must end in .svg (a picture) or .dot or .gv "
                                       "(Graphviz text), got 'step.png'"),
    ("cnn", ["--picture", "step"], "--picture: the file name must end in .svg"),
    ("rnn", ["--picture", "step.svg.txt"], "--picture: the file name must end in .svg"),
])
def test_bad_arguments_exit_2_with_a_message(capsys, name, argv, message):
    code, err = exit_status_of_bad_flags(RUNNERS[name].main, capsys, *argv)
    assert code == 2 and message in err, err


@pytest.mark.parametrize("name, features, extra, message", [
    ("cnn", 50, [], "the CNN reads square images, but the data has 50 features per example (not S * S for any S)"),
    ("rnn", 50, [], "the GRU reads square images, but the data has 50 features per example"),
    ("cnn", 64, ["--channels", "4,4", "--kernel-size", "3"],
     "CNN: the images (1, 8, 8) are too small for kernels [3, 3] (each block takes kernel - 1 pixels and halves "
     "the rest); use fewer --channels blocks or a smaller --kernel-size"),
    ("cnn", 784, ["--kernel-size", "29"], "too small for kernels [29, 29]"),
    ("cnn", 64, ["--channels", "none"], "--channels: give at least one block, e.g. --channels 16,32"),
    ("cnn", 64, ["--shift", "8"], "--shift 8: must be less than the images' side (8 pixels), e.g. --shift 2"),
])
def test_flags_that_do_not_fit_the_data_exit_2_before_training(capsys, tmp_path, name, features, extra, message):
    side = int(np.sqrt(features))
    folder = write_image_folder(tmp_path / "data", side=side) if side * side == features else tmp_path / "data"
    if side * side != features:
        folder.mkdir()
        for split in ("train", "val"):
            np.save(folder / f"{split}_data.npy", np.zeros((4, features), np.uint8))
            np.save(folder / f"{split}_labels.npy", np.arange(4) % 2)
    status, out, err = run(capsys, name, "--data", folder, "--outdir", tmp_path / "out", *extra)
    assert status == 2 and message in err, err
    assert "epoch" not in out and "model:" not in out and not (tmp_path / "out" / "stats.json").exists()


@pytest.mark.parametrize("name", PACKS)
def test_data_and_outdir_problems_exit_2_before_training(capsys, tiny, tmp_path, name):
    status, _, err = run(capsys, name, "--data", tmp_path / "nowhere", "--outdir", tmp_path / "out")
    assert status == 2 and "nowhere: no such file or folder" in err
    (tmp_path / "file").write_text("x")
    status, out, err = run(capsys, name, "--data", tiny, "--outdir", tmp_path / "file")
    assert status == 2 and "--outdir" in err and "is a file, not a folder" in err and "epoch" not in out


@pytest.mark.parametrize("name, lr", [("cnn", "1e6"), ("rnn", "1e6")])
def test_a_diverging_loss_stops_the_run_with_a_hint(capsys, tiny, tmp_path, name, lr):
    status, out, err = tiny_run(capsys, name, tiny, tmp_path, "--lr", lr)
    assert status == 1
    assert "the training loss" in err and ("exploded to" in err or "became nan" in err), err
    assert "training stopped. Try a smaller learning rate, e.g. --lr 100000 (the default is " in err
    assert not (tmp_path / "stats.json").exists() and "validation accuracy" not in out


@pytest.mark.parametrize("name, model, method", [
    ("cnn", CNN, "forward"), ("cnn", CNN, "step"), ("cnn", CNN, "zero_grads"), ("rnn", GRUClassifier, "forward"),
])
def test_an_unwritten_homework_part_is_named(capsys, tiny, tmp_path, monkeypatch, name, model, method):
    def stub(self, *args):
        raise NotImplementedError(f"{model.__name__}.{method} in hw/{name}.py is not implemented yet")

    monkeypatch.setattr(model, method, stub)
    status, _, err = tiny_run(capsys, name, tiny, tmp_path)
    assert status == 1
    assert "a part of the homework is not written yet: stub in" in err
    assert f"{model.__name__}.{method} in hw/{name}.py is not implemented yet" in err


# ---------------------------------------------------------------------------- the picture
def svg_operations(path):
    """The primitives named by the SVG's operation boxes, and its title."""
    root = ET.parse(str(path)).getroot()
    assert root.tag == SVG + "svg"
    ops = [g.find(SVG + "title").text for g in root.iter(SVG + "g") if g.get("class") == "op"]
    return ops, root.find(SVG + "text").text


@pytest.mark.parametrize("name, expected", [
    ("mlp", {"matmul_backward", "add_backward", "relu_backward", "SoftmaxCrossEntropy_backward"}),
    ("cnn", {"conv2d_stride1_backward", "relu_backward", "SoftmaxCrossEntropy_backward"}),
    ("rnn", {"matmul_backward", "sigmoid_backward", "tanh_backward", "SoftmaxCrossEntropy_backward"}),
])
def test_the_picture_flag_draws_one_training_step_and_changes_nothing(capsys, tiny, tmp_path, name, expected):
    picture = tmp_path / "pictures" / "step.svg"  # its folder is created
    status, out, err = tiny_run(capsys, name, tiny, tmp_path / "with", "--picture", picture)
    assert status == 0, err
    ops, title = svg_operations(picture)
    assert f"picture: the tape of one training step ({len(ops)} operations) in {picture}\n" in out
    assert out.index("picture:") < out.index("epoch 1/2")  # drawn before training
    assert title.startswith(f"tape: {len(ops)} operations") and title.endswith("gradient norms after backward")
    assert expected <= set(ops) and ops[-1] == "SoftmaxCrossEntropy_backward"
    assert out.rstrip().splitlines()[-2].endswith(f", {picture}")  # listed with the outputs
    assert tiny_run(capsys, name, tiny, tmp_path / "without")[0] == 0
    assert stats_of(tmp_path / "with") == stats_of(tmp_path / "without")  # the picture's step changes nothing


@pytest.mark.parametrize("name", RUNNERS)
def test_the_picture_as_graphviz_text(capsys, tiny, tmp_path, name):
    status, out, err = tiny_run(capsys, name, tiny, tmp_path, "--picture", tmp_path / "step.dot")
    assert status == 0, err
    text = (tmp_path / "step.dot").read_text()
    assert text.startswith("digraph tape {") and text.rstrip().endswith("}")
    assert "SoftmaxCrossEntropy" in text and "|grad|" in text


@pytest.mark.parametrize("name", RUNNERS)
@pytest.mark.parametrize("case", ["folder", "unwritable"])
def test_a_picture_that_cannot_be_written_is_refused_before_training(capsys, tiny, tmp_path, name, case):
    if case == "folder":
        picture = tmp_path / "step.svg"
        picture.mkdir()
        message = f"--picture {picture}: is a folder"
    else:
        picture = "/proc/step.svg"
        message = "--picture /proc/step.svg: cannot write there"
    status, out, err = tiny_run(capsys, name, tiny, tmp_path / "out", "--picture", picture)
    assert status == 2 and message in err, err
    assert "model:" not in out and "epoch" not in out


def small_models(engine, rng):
    """The three homework models, small, for 8x8 images of 3 classes, each with a batch of 4 in its input form."""
    mlp = MLP(64, 3, [5], [nn.ReLU(engine), nn.Identity(engine)], nn.SoftmaxCrossEntropy(engine), 0.1, engine,
              momentum=0.5, rng=rng)
    cnn = CNN((1, 8, 8), 3, [2], [3], nn.SoftmaxCrossEntropy(engine), 0.1, engine, momentum=0.5, rng=rng)
    gru = GRUClassifier(8, 4, 3, engine, lr=0.01, steps=8, rng=rng, dtype=np.float64)
    x = rng.random((4, 64))
    return {"mlp": (mlp, x), "cnn": (cnn, x.reshape(4, 1, 8, 8)), "rnn": (gru, x)}


def parameter_arrays(model):
    """Copies of every parameter, gradient and optimizer state array of a homework model."""
    if isinstance(model, GRUClassifier):
        return [array.copy() for pair in model.parameters() for array in pair]
    layers = model.linear_layers if isinstance(model, MLP) else model.parameter_layers
    return [array.copy() for layer in layers
            for array in (layer.W, layer.b, layer.dW, layer.db, layer.momentum_W, layer.momentum_b)]


@pytest.mark.parametrize("name", RUNNERS)
def test_picture_of_one_step_leaves_the_model_as_it_was(name):
    engine = Autograd()
    model, x = small_models(engine, np.random.default_rng(0))[name]
    before = parameter_arrays(model)
    picture = trainer.picture_of_one_step(model, x, trainer.one_hot(np.array([0, 1, 2, 0]), 3))
    assert picture.has_gradients and picture.steps[-1].name == "SoftmaxCrossEntropy"
    assert engine.operation_list == []  # the tape was cleared again
    after = parameter_arrays(model)
    assert len(after) == len(before) and all(np.array_equal(a, b) for a, b in zip(before, after))


# ---------------------------------------------------------------------------- the given training loop
def test_the_given_loop_trains_exactly_as_the_mlp_homework_loop():
    """trainer.train_model and hw/mlp.py's get_training_stats (the reference solution) give the same curves."""
    data = types.SimpleNamespace(**{split: (np.random.default_rng(i).random((n, 6)), np.arange(n) % 3)
                                    for i, (split, n) in enumerate((("train", 50), ("val", 20)))})
    curves = []
    for train in (lambda mlp, rng: trainer.train_model(mlp, data.train, data.val, 3, 8, rng),
                  lambda mlp, rng: get_training_stats(mlp, (data.train, data.val, None), 3, 8, rng=rng)):
        engine, rng = Autograd(), np.random.default_rng(1)
        mlp = MLP(6, 3, [4], [nn.Tanh(engine), nn.Identity(engine)], nn.SoftmaxCrossEntropy(engine), 0.1, engine,
                  momentum=0.5, rng=rng)
        curves.append(train(mlp, rng))
        assert engine.operation_list == []  # the last batch's tape released; evaluation recorded nothing
    assert [list(curve) for curve in curves[0]] == [list(curve) for curve in curves[1]]


def test_the_given_loop_calls_back_and_augments_only_training_batches():
    engine, rng = Autograd(), np.random.default_rng(0)
    mlp = MLP(4, 2, [], [nn.Identity(engine)], nn.SoftmaxCrossEntropy(engine), 0.1, engine, rng=rng)
    train, val = (np.ones((10, 4)), np.arange(10) % 2), (np.ones((3, 4)), np.arange(3) % 2)
    seen, batches, epochs = [], [], []

    def augment(x, generator):
        assert generator is rng
        seen.append(len(x))
        return x * 0

    weights = mlp.linear_layers[0].W.copy()
    curves = trainer.train_model(mlp, train, val, 2, 4, rng, on_batch=lambda *a: batches.append(a[:3]),
                                 on_epoch=lambda *a: epochs.append(a), augment=augment)
    assert seen == [4, 4, 2, 4, 4, 2]  # every training batch, never the 3 validation images
    assert batches == [(1, 4, 10), (1, 8, 10), (1, 10, 10), (2, 4, 10), (2, 8, 10), (2, 10, 10)]
    assert [e[0] for e in epochs] == [1, 2] and [list(e[1:]) for e in epochs] == [list(v) for v in zip(*curves)]
    np.testing.assert_array_equal(mlp.linear_layers[0].W, weights)  # trained on zeros: W got no gradient


def test_random_shifts_moves_each_image_within_the_limit():
    rng = np.random.default_rng(0)
    images = rng.random((200, 2, 6, 7)) + 1  # no zero pixel
    moved = cnn_runner.random_shifts(images, rng, 2)
    assert moved.shape == images.shape and moved.dtype == images.dtype
    offsets = set()
    for image, result in zip(images, moved):
        padded = np.pad(image, ((0, 0), (2, 2), (2, 2)))
        found = [(dy, dx) for dy in range(5) for dx in range(5)
                 if np.array_equal(padded[:, dy:dy + 6, dx:dx + 7], result)]
        assert len(found) == 1  # both channels moved together, by one offset
        offsets.add(found[0])
    assert offsets == {(dy, dx) for dy in range(5) for dx in range(5)}  # every offset up to 2 pixels occurs
    np.testing.assert_array_equal(cnn_runner.random_shifts(images, rng, 0), images)


def test_dataset_with_inputs_converts_the_images_of_every_split(tiny):
    from hw.dataset import load_dataset

    data = load_dataset(str(tiny))
    images = data.with_inputs(lambda x: x.reshape(len(x), 1, 8, 8).astype(np.float32))
    assert images.train[0].shape == (60, 1, 8, 8) and images.test[0].dtype == np.float32
    assert images.val[1] is data.val[1] and images.num_features == 64 and images.num_classes == 3
    assert data.train[0].shape == (60, 64)  # the original is unchanged


# ---------------------------------------------------------------------------- as a script
@pytest.mark.parametrize("name", RUNNERS)
def test_script_trains_from_any_folder_into_its_own_outdir(tiny, tmp_path, name):
    completed = run_script(f"{name}_runner.py", tmp_path, "--data", tiny, "--epochs", 1, *SMALL[name])
    assert completed.returncode == 0, completed.stderr
    assert "epoch 1/1" in completed.stdout and "test: loss" in completed.stdout
    assert set(stats_of(tmp_path / "out" / name)) == STAT_KEYS


@pytest.mark.parametrize("name", PACKS)
def test_script_exit_statuses(tiny, tmp_path, name):
    bad = run_script(f"{name}_runner.py", tmp_path, "--picture", "x.png")
    assert bad.returncode == 2 and "--picture: the file name must end in .svg" in bad.stderr
    diverged = run_script(f"{name}_runner.py", tmp_path, "--data", tiny, "--epochs", 1, "--lr", "1e6",
                          *SMALL[name])
    assert diverged.returncode == 1 and "Try a smaller learning rate" in diverged.stderr
