"""Tests of hw/mlp_runner.py and the trainer it is built on (hw/trainer.py): every flag, the
outputs, determinism, every error message with its exit status, divergence, and the trainer's
API driven by a model that is not the MLP.

Most tests call ``main(argv)`` in-process on a tiny data set in the course layout;
a few run ``python hw/mlp_runner.py`` as a script, the way students do.
"""
import io
import os
import sys

import numpy as np
import pytest

from hw_helpers import STAT_KEYS, run_main, run_script, stats_of, write_image_folder
from hw import mlp_runner, trainer


@pytest.fixture
def tiny(tmp_path):
    """8x8 images of 3 classes in the course layout: 60 train, 15 val, 15 test."""
    return write_image_folder(tmp_path / "tiny")


def run(capsys, *argv):
    """Run the MLP runner in-process; return (exit status, stdout, stderr)."""
    return run_main(mlp_runner.main, capsys, *argv)


def tiny_run(capsys, tiny, outdir, *extra):
    return run(capsys, "--data", tiny, "--outdir", outdir, "--epochs", 2, "--hiddens", "16", "--batch-size", 16,
               *extra)


# ---------------------------------------------------------------------------- outputs
def test_a_run_prints_epochs_test_result_and_writes_stats(capsys, tiny, tmp_path):
    status, out, err = tiny_run(capsys, tiny, tmp_path / "out")
    assert status == 0, err
    assert "60 train, 15 val, 15 test examples of 64 features, 3 classes" in out
    assert "model: 64-16-3, relu" in out
    assert out.count("epoch 1/2") == 1 and out.count("epoch 2/2") == 1
    assert "samples/s" in out
    assert "test: loss" in out and "validation accuracy" in out and "wall time" in out
    stats = stats_of(tmp_path / "out")
    assert set(stats) == STAT_KEYS
    assert all(len(values) == 2 for values in stats.values())
    assert all(0 <= v <= 1 for v in stats["train_error"] + stats["val_error"])
    last_val_error = stats["val_error"][-1]
    assert f"validation accuracy {100 * (1 - last_val_error):.2f}%" in out


def test_plots_are_pngs(capsys, tiny, tmp_path):
    pytest.importorskip("matplotlib")
    status, out, _ = tiny_run(capsys, tiny, tmp_path)
    assert status == 0
    for name in ("loss.png", "error.png"):
        with open(tmp_path / name, "rb") as file:
            assert file.read(8) == b"\x89PNG\r\n\x1a\n"
        assert str(tmp_path / name) in out


def test_without_matplotlib_the_run_completes_and_says_how_to_get_plots(capsys, tiny, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # makes "import matplotlib..." fail
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    status, out, _ = tiny_run(capsys, tiny, tmp_path)
    assert status == 0
    assert "matplotlib is not installed" in out and "pip install -e '.[plot]'" in out
    assert not (tmp_path / "loss.png").exists() and (tmp_path / "stats.json").exists()


def test_without_a_test_split_the_run_says_so(capsys, tiny, tmp_path):
    os.remove(tiny / "test_data.npy")
    os.remove(tiny / "test_labels.npy")
    status, out, _ = tiny_run(capsys, tiny, tmp_path)
    assert status == 0 and "no test split" in out


def test_the_bundled_sample_is_the_default_data(capsys, tmp_path):
    status, out, err = run(capsys, "--outdir", tmp_path, "--epochs", 1, "--batch-size", 500, "--hiddens", "8")
    assert status == 0, err
    assert "mnist5k.npz: 4000 train, 500 val, 500 test examples of 784 features, 10 classes" in out
    assert len(stats_of(tmp_path)["val_error"]) == 1


def test_outdir_is_created(capsys, tiny, tmp_path):
    outdir = tmp_path / "a" / "b"
    status, _, _ = tiny_run(capsys, tiny, outdir)
    assert status == 0 and (outdir / "stats.json").exists()


# ---------------------------------------------------------------------------- flags
def test_same_seed_same_numbers_other_seed_other_numbers(capsys, tiny, tmp_path):
    runs = {}
    for name, seed in (("a", 7), ("b", 7), ("c", 8)):
        assert tiny_run(capsys, tiny, tmp_path / name, "--seed", seed)[0] == 0
        runs[name] = stats_of(tmp_path / name)
    assert runs["a"] == runs["b"]
    assert runs["a"] != runs["c"]


@pytest.mark.parametrize("flag, value, shown", [
    ("--batch-size", 7, "batch 7"),
    ("--batch-size", 1000, "batch 1000"),  # larger than the training set: one batch per epoch
    ("--lr", 0.003, "lr 0.003"),
    ("--momentum", 0.0, "momentum 0,"),
    ("--hiddens", "10,6", "model: 64-10-6-3"),
    ("--hiddens", "none", "model: 64-3,"),
    ("--activation", "sigmoid", "sigmoid"),
    ("--activation", "tanh", "tanh"),
])
def test_each_training_flag_is_used(capsys, tiny, tmp_path, flag, value, shown):
    status, out, err = tiny_run(capsys, tiny, tmp_path / "flag", flag, value)
    assert status == 0, err
    assert shown in out
    assert tiny_run(capsys, tiny, tmp_path / "base")[0] == 0
    assert stats_of(tmp_path / "flag") != stats_of(tmp_path / "base")  # the flag changed the training


def test_epochs_sets_the_length_of_every_curve(capsys, tiny, tmp_path):
    status, out, _ = run(capsys, "--data", tiny, "--outdir", tmp_path, "--epochs", 3, "--hiddens", "8")
    assert status == 0 and "epoch 3/3" in out
    assert {len(v) for v in stats_of(tmp_path).values()} == {3}


def test_help_lists_every_flag(capsys):
    with pytest.raises(SystemExit) as exit_info:
        mlp_runner.main(["--help"])
    out = capsys.readouterr().out
    assert exit_info.value.code == 0
    for flag in ("--epochs", "--batch-size", "--lr", "--momentum", "--hiddens", "--activation", "--seed",
                 "--data", "--outdir"):
        assert flag in out


# ---------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("argv, message", [
    (["--lr", "0"], "--lr: must be a positive number, got 0"),
    (["--lr", "-0.1"], "--lr: must be a positive number"),
    (["--lr", "nan"], "--lr: must be a positive number"),
    (["--lr", "fast"], "--lr: expected a number"),
    (["--batch-size", "0"], "--batch-size: must be at least 1, got 0"),
    (["--batch-size", "-5"], "--batch-size: must be at least 1"),
    (["--batch-size", "2.5"], "--batch-size: expected a whole number"),
    (["--epochs", "0"], "--epochs: must be at least 1"),
    (["--momentum", "1"], "--momentum: must be in [0, 1)"),
    (["--hiddens", "128,x"], "--hiddens: expected comma-separated whole numbers"),
    (["--hiddens", "128,0"], "--hiddens: layer sizes must be at least 1"),
    (["--activation", "softplus"], "--activation: invalid choice: 'softplus'"),
    (["--seed", "-1"], "--seed: must be 0 or more"),
])
def test_bad_arguments_exit_2_with_a_message(capsys, argv, message):
    with pytest.raises(SystemExit) as exit_info:
        mlp_runner.main(argv)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_missing_data_folder(capsys, tmp_path):
    status, _, err = run(capsys, "--data", tmp_path / "nowhere", "--outdir", tmp_path)
    assert status == 2
    assert f"{tmp_path / 'nowhere'}: no such file or folder" in err and "train_data.npy" in err


def test_data_folder_missing_a_file(capsys, tiny, tmp_path):
    os.remove(tiny / "val_labels.npy")
    status, _, err = run(capsys, "--data", tiny, "--outdir", tmp_path)
    assert status == 2 and "missing val_labels.npy" in err


def test_data_file_of_the_wrong_shape(capsys, tiny, tmp_path):
    np.save(tiny / "val_data.npy", np.zeros((15, 10), dtype=np.uint8))
    status, _, err = run(capsys, "--data", tiny, "--outdir", tmp_path)
    assert status == 2
    assert "val_data.npy: expected shape (N, 64) like the training data, got shape (15, 10)" in err


def test_labels_that_do_not_match_the_images(capsys, tiny, tmp_path):
    np.save(tiny / "train_labels.npy", np.zeros(59, dtype=int))
    status, _, err = run(capsys, "--data", tiny, "--outdir", tmp_path)
    assert status == 2
    assert "train_labels.npy: expected shape (60,) (one integer label per row of" in err




def test_a_nan_loss_stops_the_run_and_suggests_a_smaller_lr(capsys, tiny, tmp_path):
    status, out, err = tiny_run(capsys, tiny, tmp_path, "--lr", "1e200")
    assert status == 1
    assert "the training loss became nan" in err and "smaller learning rate" in err
    assert "--lr 1e+199" in err
    assert not (tmp_path / "stats.json").exists()


def test_an_unwritten_homework_part_is_named(capsys, tiny, tmp_path, monkeypatch):
    def stub(self, x):
        raise NotImplementedError("TODO: MLP.forward")

    monkeypatch.setattr(mlp_runner.MLP, "forward", stub)
    status, _, err = tiny_run(capsys, tiny, tmp_path)
    assert status == 1
    assert "not written yet: stub in" in err and "TODO: MLP.forward" in err


@pytest.mark.parametrize("split, labels, message", [
    ("train", "huge", "train_labels.npy: label 1000000000000 at index 4 would make 1000000000001 classes, more "
                      "than the 60 training examples"),
    ("train", "negative", "train_labels.npy: label -1 at index 4 is negative"),
    ("train", "fraction", "train_labels.npy: label 2.5 at index 4 is not a whole number"),
    ("train", "nan", "train_labels.npy: label nan at index 4 is not a whole number"),
    ("val", "unknown", "val_labels.npy: label 3 at index 4 is not a class of the training labels (0..2)"),
    ("test", "huge", "test_labels.npy: label 1000000000000 at index 4 is not a class of the training labels (0..2)"),
])
def test_a_label_outside_the_classes_is_refused_with_the_label_and_the_file(capsys, tiny, tmp_path, split,
                                                                              labels, message):
    values = np.load(tiny / f"{split}_labels.npy").astype(np.float64 if labels in ("fraction", "nan") else np.int64)
    values[4] = {"huge": 10 ** 12, "negative": -1, "fraction": 2.5, "nan": np.nan, "unknown": 3}[labels]
    np.save(tiny / f"{split}_labels.npy", values)
    status, out, err = run(capsys, "--data", tiny, "--outdir", tmp_path / "out")
    assert status == 2 and message in err, err
    assert "epoch" not in out and not (tmp_path / "out").exists()  # refused before anything else


def test_whole_float_labels_are_accepted_and_a_missing_class_is_named(capsys, tiny, tmp_path):
    labels = np.load(tiny / "train_labels.npy")
    labels[labels == 1] = 0  # no training example of class 1 (0 and 2 remain)
    np.save(tiny / "train_labels.npy", labels.astype(np.float32))
    status, out, err = tiny_run(capsys, tiny, tmp_path)
    assert status == 0, err
    assert "3 classes (no training example of class 1)" in out


@pytest.mark.parametrize("make, message", [
    (lambda path: path.write_text("# a README\n"), "cannot be read: it is not a NumPy .npz archive (--data takes a folder"),
    (lambda path: np.save(path, np.zeros(3)), "holds a single array"),
    (lambda path: path.write_bytes(b"PK\x03\x04 not really a zip"), "cannot be read as a NumPy .npz archive"),
])
def test_a_data_file_that_is_not_an_npz_archive_says_what_was_expected(capsys, tmp_path, make, message):
    path = tmp_path / "README.md"
    make(path)
    if not path.exists():  # np.save added .npy
        path = tmp_path / "README.md.npy"
    status, _, err = run(capsys, "--data", path, "--outdir", tmp_path / "out")
    assert status == 2 and message in err, err
    assert "pickle" not in err


@pytest.mark.parametrize("case", ["file", "proc", "stats_is_a_folder"])
def test_an_outdir_that_cannot_be_written_is_refused_before_training(capsys, tiny, tmp_path, case):
    if case == "file":
        outdir = tmp_path / "file"
        outdir.write_text("x")
        message = "is a file, not a folder"
    elif case == "proc":
        if not os.path.isdir("/proc/self"):
            pytest.skip("needs Linux's /proc")
        outdir, message = "/proc", "--outdir /proc: cannot write there"
    else:
        outdir = tmp_path / "out"
        (outdir / "stats.json").mkdir(parents=True)
        message = "stats.json is a folder"
    status, out, err = run(capsys, "--data", tiny, "--outdir", outdir, "--epochs", 1)
    assert status == 2 and message in err, err
    assert "epoch" not in out and "model:" not in out


def test_an_exploding_loss_stops_the_run_with_a_hint(capsys, tiny, tmp_path):
    status, out, err = tiny_run(capsys, tiny, tmp_path, "--lr", "1e6")
    assert status == 1
    assert "the training loss exploded to" in err and "(the first batch's was" in err
    assert "Try a smaller learning rate, e.g. --lr 100000 (the default is 0.05)" in err
    assert not (tmp_path / "stats.json").exists() and "validation accuracy" not in out


@pytest.mark.parametrize("batches, message", [
    ([2.3, 2.0, 1.5, 1.0], None),                      # training: the loss falls
    ([2.3, 2.0, 22.0, 1.0], None),                     # a spike under 10x the first batch's loss
    ([2.3, 2.0, 24.0], "the training loss exploded to 24 at epoch 1, batch 3 (the first batch's was 2.3)"),
    ([2.3, float("inf")], "the training loss became inf at epoch 1, batch 2"),
    ([2.3, float("nan")], "the training loss became nan at epoch 1, batch 2"),
    ([0.001, 0.5, 0.9], None),                         # a loss near zero may grow a little: at least 10 x 0.1
    ([0.001, 1.5], "the training loss exploded to 1.5 at epoch 1, batch 2 (the first batch's was 0.001)"),
])
def test_the_divergence_watch(batches, message):
    watch = trainer.DivergenceWatch()
    done = total = 0

    def feed():
        nonlocal done, total
        for loss in batches:  # batches of 4 examples; the callback gets the running mean
            done, total = done + 4, total + 4 * loss
            watch.batch(1, done, 4 * len(batches), total / done)

    if message is None:
        feed()
        watch.epoch(1, batches[-1], 0.5, batches[-1], 0.5)
    else:
        with pytest.raises(trainer.Diverged) as error:
            feed()
        assert str(error.value) == message


def test_the_watch_checks_the_validation_loss_and_counts_batches_per_epoch():
    watch = trainer.DivergenceWatch()
    for epoch in (1, 2):
        for done in (4, 8):
            watch.batch(epoch, done, 8, 2.0)
    with pytest.raises(trainer.Diverged, match=r"^the training loss became inf at epoch 3, batch 1$"):
        watch.batch(3, 4, 8, float("inf"))
    with pytest.raises(trainer.Diverged, match=r"^the validation loss exploded to 50 after epoch 2"):
        watch.epoch(2, 2.0, 0.5, 50.0, 0.9)


# ---------------------------------------------------------------------------- the trainer's API
class Centroids:
    """A model that is not the MLP: nearest class mean, 'trained' one batch at a time."""

    def __init__(self, num_features, num_classes):
        self.sums = np.zeros((num_classes, num_features))
        self.counts = np.zeros(num_classes)

    def scores(self, x):
        means = self.sums / np.maximum(self.counts, 1)[:, None]
        return -((x[:, None, :] - means[None]) ** 2).sum(axis=2)

    def loss_and_error(self, x, labels):
        scores = self.scores(x)
        shifted = scores - scores.max(axis=1, keepdims=True)
        log_p = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
        return float(-log_p[np.arange(len(x)), labels].mean()), float(np.mean(scores.argmax(axis=1) != labels))


def centroid_runner(outdir_calls):
    def build(data, args, rng):
        return Centroids(data.num_features, data.num_classes), "nearest class mean"

    def fit(model, data, args, rng, on_batch, on_epoch):
        (x, labels), (val_x, val_labels) = data.train, data.val
        curves = ([], [], [], [])
        for epoch in range(1, args.epochs + 1):
            order = rng.permutation(len(x))
            loss_sum = 0.0
            for start in range(0, len(x), args.batch_size):
                rows = order[start:start + args.batch_size]
                loss, _ = model.loss_and_error(x[rows], labels[rows])
                np.add.at(model.sums, labels[rows], x[rows])
                np.add.at(model.counts, labels[rows], 1)
                loss_sum += loss * len(rows)
                on_batch(epoch, start + len(rows), len(x), loss_sum / (start + len(rows)))
            values = (loss_sum / len(x), model.loss_and_error(x, labels)[1]) + model.loss_and_error(val_x, val_labels)
            for curve, value in zip(curves, values):
                curve.append(value)
            on_epoch(epoch, *values)
            outdir_calls.append(epoch)
        return curves

    def evaluate(model, x, labels):
        return model.loss_and_error(x, labels)

    return build, fit, evaluate


def test_another_model_runs_on_the_trainer_with_the_same_flags_and_outputs(capsys, tiny, tmp_path):
    pytest.importorskip("matplotlib")
    epochs = []
    parser = trainer.build_parser("centroid_runner.py", "Nearest class means.", epochs=3, momentum=None)
    assert "--momentum" not in parser.format_help()
    status = trainer.run(parser, ["--data", str(tiny), "--outdir", str(tmp_path), "--batch-size", "16"],
                         "Centroids", *centroid_runner(epochs))
    out = capsys.readouterr().out
    assert status == 0 and epochs == [1, 2, 3]
    assert "model: nearest class mean, batch 16, 3 epochs, seed 0" in out
    assert "epoch 3/3" in out and "test: loss" in out
    assert {len(v) for v in stats_of(tmp_path).values()} == {3}
    assert set(stats_of(tmp_path)) == STAT_KEYS
    assert (tmp_path / "loss.png").read_bytes()[:4] == b"\x89PNG"


def test_a_model_whose_fit_reports_an_infinite_loss_is_stopped(capsys, tiny, tmp_path):
    def fit(model, data, args, rng, on_batch, on_epoch):
        on_batch(1, 16, 60, 2.0)
        on_batch(1, 32, 60, float("inf"))
        raise AssertionError("the trainer should have stopped this run")

    build, _, evaluate = centroid_runner([])
    parser = trainer.build_parser("centroid_runner.py", "Nearest class means.")
    status = trainer.run(parser, ["--data", str(tiny), "--outdir", str(tmp_path), "--lr", "0.01"],
                         "Centroids", build, fit, evaluate)
    err = capsys.readouterr().err
    assert status == 1
    assert err == ("centroid_runner.py: error: the training loss became inf at epoch 1, batch 2; training stopped. "
                   "Try a smaller learning rate, e.g. --lr 0.001\n")


# ---------------------------------------------------------------------------- progress line
class FakeTerminal(io.StringIO):
    def isatty(self):
        return True


def test_progress_line_updates_in_place_on_a_terminal():
    terminal = FakeTerminal()
    progress = trainer.ProgressLine(terminal, nepochs=3, interval=0)
    progress.update(1, 32, 128, 2.5)
    progress.update(1, 128, 128, 1.25)
    progress.clear()
    text = terminal.getvalue()
    assert text.count("\r") >= 3
    assert "epoch 1/3" in text and "32/128" in text and "loss 2.5000" in text and "loss 1.2500" in text
    assert "samples/s" in text
    assert text.endswith("\r")


def test_progress_line_is_silent_when_not_a_terminal():
    stream = io.StringIO()
    progress = trainer.ProgressLine(stream, nepochs=1, interval=0)
    progress.update(1, 10, 10, 1.0)
    progress.clear()
    assert stream.getvalue() == "" and progress.samples_per_second > 0


# ---------------------------------------------------------------------------- as a script
def test_script_exit_statuses(tiny, tmp_path):
    bad_lr = run_script("mlp_runner.py", tmp_path, "--lr", "0")
    assert bad_lr.returncode == 2 and "--lr: must be a positive number" in bad_lr.stderr
    diverged = run_script("mlp_runner.py", tmp_path, "--data", tiny, "--epochs", 1, "--batch-size", 60,
                          "--lr", "1e200")
    assert diverged.returncode == 1 and "the validation loss became nan after epoch 1" in diverged.stderr
