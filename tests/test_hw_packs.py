"""The CNN and GRU homeworks do not need the MLP homework: hw/cnn.py and hw/rnn.py import only NumPy
and mytorch (so a grader can load each from its file alone, as it loads hw/mlp.py), and their
runners train with the MLP's student parts still stubbed, as in a handout."""
import ast
import importlib.util
import os
import shutil
import sys

import numpy as np
import pytest

from hw_helpers import REPO_ROOT, run_script, stats_of, write_image_folder

PACKS = {"cnn": ["--channels", "4", "--kernel-size", "3"], "rnn": ["--hidden-size", "8"]}


def imported_modules(path):
    """The top-level names of every module ``path`` imports (at any depth of the file)."""
    with open(path) as file:
        tree = ast.parse(file.read(), path)
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            names.add("." if node.level else node.module.split(".")[0])
    return names


@pytest.mark.parametrize("pack", PACKS)
def test_the_pack_model_imports_only_numpy_and_mytorch(pack):
    assert imported_modules(os.path.join(REPO_ROOT, "hw", f"{pack}.py")) <= {"numpy", "mytorch"}


@pytest.mark.parametrize("pack", PACKS)
def test_the_pack_model_loads_from_its_file_with_no_other_hw_module(pack, monkeypatch):
    """Loaded the way the grader loads hw/mlp.py, with ``hw`` and its modules unimportable."""
    for name in ("hw", "hw.mlp", "hw.trainer", "hw.dataset"):
        monkeypatch.setitem(sys.modules, name, None)  # makes any import of them fail
    spec = importlib.util.spec_from_file_location(f"alone_{pack}", os.path.join(REPO_ROOT, "hw", f"{pack}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    from mytorch import Autograd, nn

    engine, rng = Autograd(), np.random.default_rng(0)
    if pack == "cnn":
        model = module.CNN((1, 8, 8), 3, [2], [3], nn.SoftmaxCrossEntropy(engine), 0.1, engine, rng=rng)
        x = rng.random((2, 1, 8, 8))
    else:
        model = module.GRUClassifier(8, 4, 3, engine, lr=0.01, steps=8, rng=rng)
        x = rng.random((2, 64))
    model.zero_grads()
    model.forward(x)
    assert model.total_loss(np.eye(3)[[0, 2]]) > 0 and model.error(np.eye(3)[[0, 2]]) in (0, 1, 2)
    model.backward()
    model.step()


@pytest.fixture(scope="module")
def handout_like(tmp_path_factory):
    """A copy of mytorch/ and hw/ (without the bundled data) whose hw/mlp.py is the handout's: every
    solution block replaced by its TODO stub (autograder/handout.py's ``stub``)."""
    from autograder.handout import stub

    root = tmp_path_factory.mktemp("handout")
    ignore = shutil.ignore_patterns("__pycache__", "out", "data")
    for tree in ("mytorch", "hw"):
        shutil.copytree(os.path.join(REPO_ROOT, tree), str(root / tree), ignore=ignore)
    mlp = root / "hw" / "mlp.py"
    text, todos = stub(mlp.read_text(), "hw/mlp.py")
    assert "get_training_stats" in todos and "MLP.total_loss" in todos
    mlp.write_text(text)
    write_image_folder(root / "tiny")
    return root


def test_in_that_copy_the_mlp_runner_stops_at_the_first_todo(handout_like, tmp_path):
    completed = run_script("mlp_runner.py", tmp_path, "--data", handout_like / "tiny", "--epochs", 1,
                           root=handout_like)
    assert completed.returncode == 1
    assert "a part of the homework is not written yet: get_training_stats in" in completed.stderr


@pytest.mark.parametrize("pack", PACKS)
def test_the_pack_runner_trains_with_the_mlp_homework_stubbed(handout_like, tmp_path, pack):
    completed = run_script(f"{pack}_runner.py", tmp_path, "--data", handout_like / "tiny", "--epochs", 2,
                           "--picture", "step.svg", *PACKS[pack], root=handout_like)
    assert completed.returncode == 0, completed.stderr
    assert "epoch 2/2" in completed.stdout and len(stats_of(tmp_path / "out" / pack)["val_error"]) == 2
    assert (tmp_path / "step.svg").read_text().startswith("<svg")
