"""Tests of hw/mlp_runner.py: every flag, the outputs, determinism and every error message.

Most tests call ``main(argv)`` in-process on a tiny data set in the course layout;
a few run ``python hw/mlp_runner.py`` as a script, the way students do.
"""
import io
import json
import os
import subprocess
import sys

import numpy as np
import pytest

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO_ROOT not in sys.path:
    sys.path.insert(0, REPO_ROOT)

from hw import mlp_runner  # noqa: E402

RUNNER = os.path.join(REPO_ROOT, "hw", "mlp_runner.py")
STAT_KEYS = {"train_loss", "train_error", "val_loss", "val_error"}


@pytest.fixture
def tiny(tmp_path):
    """A learnable 3-class problem of 8x8 uint8 images in the course layout (60 train, 15 val, 15 test)."""
    folder = tmp_path / "tiny"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for split, n in (("train", 60), ("val", 15), ("test", 15)):
        labels = np.arange(n) % 3
        images = rng.integers(0, 60, (n, 64))
        images[np.arange(n)[:, None], labels[:, None] * 20 + np.arange(20)] += 180  # a bright stripe per class
        np.save(folder / f"{split}_data.npy", images.astype(np.uint8))
        np.save(folder / f"{split}_labels.npy", labels)
    return folder


def run(capsys, *argv):
    """Run the runner in-process; return (exit status, stdout, stderr)."""
    status = mlp_runner.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return status, out, err


def stats_of(outdir):
    with open(os.path.join(str(outdir), "stats.json")) as file:
        return json.load(file)


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


def test_outdir_that_is_a_file(capsys, tiny, tmp_path):
    (tmp_path / "file").write_text("x")
    status, _, err = run(capsys, "--data", tiny, "--outdir", tmp_path / "file")
    assert status == 2 and "--outdir" in err and "cannot create the folder" in err


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


# ---------------------------------------------------------------------------- progress line
class FakeTerminal(io.StringIO):
    def isatty(self):
        return True


def test_progress_line_updates_in_place_on_a_terminal():
    terminal = FakeTerminal()
    progress = mlp_runner.ProgressLine(terminal, nepochs=3, interval=0)
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
    progress = mlp_runner.ProgressLine(stream, nepochs=1, interval=0)
    progress.update(1, 10, 10, 1.0)
    progress.clear()
    assert stream.getvalue() == "" and progress.samples_per_second > 0


# ---------------------------------------------------------------------------- as a script
def script(tmp_path, *argv):
    """Run ``python hw/mlp_runner.py ARGV`` from another folder, without the repository on PYTHONPATH."""
    environment = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run([sys.executable, RUNNER] + [str(a) for a in argv], cwd=str(tmp_path), env=environment,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True, timeout=120)


def test_script_trains_from_any_folder(tiny, tmp_path):
    completed = script(tmp_path, "--data", tiny, "--epochs", 1, "--hiddens", "8")
    assert completed.returncode == 0, completed.stderr
    assert "epoch 1/1" in completed.stdout and "test: loss" in completed.stdout
    assert set(stats_of(tmp_path / "out")) == STAT_KEYS  # the default --outdir is ./out


def test_script_exit_statuses(tiny, tmp_path):
    bad_lr = script(tmp_path, "--lr", "0")
    assert bad_lr.returncode == 2 and "--lr: must be a positive number" in bad_lr.stderr
    diverged = script(tmp_path, "--data", tiny, "--epochs", 1, "--batch-size", 60, "--lr", "1e200")
    assert diverged.returncode == 1 and "the validation loss became nan after epoch 1" in diverged.stderr
