"""Tests of hw/mlp.py (the MLP and its training loop) and hw/dataset.py (the data loader)."""
import os
import sys

import numpy as np
import pytest

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO_ROOT not in sys.path:
    sys.path.insert(0, REPO_ROOT)

from hw.dataset import DataError, load_dataset  # noqa: E402
from hw.mlp import MLP, TrainingDiverged, evaluate, get_training_stats, one_hot  # noqa: E402
from mytorch import Autograd, gradcheck, nn  # noqa: E402

BUNDLED = os.path.join(REPO_ROOT, "hw", "data", "mnist5k.npz")


def make_mlp(hiddens=(5, 4), inputs=6, classes=3, lr=0.1, momentum=0.0, activation=nn.ReLU, seed=0):
    engine = Autograd()
    activations = [activation(engine) for _ in hiddens] + [nn.Identity(engine)]
    return MLP(inputs, classes, list(hiddens), activations, nn.SoftmaxCrossEntropy(engine), lr, engine,
               momentum=momentum, rng=np.random.default_rng(seed))


def blobs(n, features=6, classes=3, seed=0):
    """An easy classification problem: class c has a mean of 3 on feature c."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, classes, n)
    x = rng.normal(size=(n, features))
    x[np.arange(n), labels] += 3
    return x, labels


def numpy_forward(mlp, x):
    """The MLP's output computed directly from its weights (ReLU hidden layers, identity output)."""
    out = x
    for i, layer in enumerate(mlp.linear_layers):
        out = out @ layer.W.T + layer.b
        if i < len(mlp.linear_layers) - 1:
            out = np.maximum(out, 0)
    return out


def numpy_cross_entropy_sum(logits, targets):
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_p = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    return -np.sum(targets * log_p)


# ---------------------------------------------------------------------------- MLP
def test_layers_follow_the_sizes():
    mlp = make_mlp(hiddens=(5, 4), inputs=6, classes=3)
    assert [layer.W.shape for layer in mlp.linear_layers] == [(5, 6), (4, 5), (3, 4)]
    assert len(mlp.activations) == 3
    assert "6-5-4-3" in repr(mlp)


def test_forward_matches_numpy_and_keeps_output():
    mlp = make_mlp()
    x, _ = blobs(7)
    out = mlp.forward(x)
    np.testing.assert_allclose(out, numpy_forward(mlp, x), rtol=1e-12, atol=1e-12)
    assert mlp.output is out


def test_forward_and_loss_gradients_match_finite_differences():
    mlp = make_mlp(activation=nn.Tanh)
    x, labels = blobs(4)
    targets = one_hot(labels, 3)
    params = [pair for layer in mlp.linear_layers for pair in layer.parameters()]

    def loss(inputs):
        mlp.forward(inputs)
        return mlp.criterion(targets, mlp.output)

    assert gradcheck(loss, x, engine=mlp.autograd_engine, params=params)


def test_total_loss_is_the_batch_sum_and_error_counts_mistakes():
    mlp = make_mlp()
    x, labels = blobs(9)
    targets = one_hot(labels, 3)
    mlp.forward(x)
    expected_loss = numpy_cross_entropy_sum(numpy_forward(mlp, x), targets)
    assert mlp.total_loss(targets) == pytest.approx(expected_loss, rel=1e-12)
    expected_errors = int(np.sum(np.argmax(numpy_forward(mlp, x), axis=1) != labels))
    assert mlp.error(targets) == expected_errors


def test_zero_grads_empties_the_tape_and_zeroes_the_gradients():
    mlp = make_mlp()
    x, labels = blobs(5)
    mlp.forward(x)
    mlp.total_loss(one_hot(labels, 3))
    mlp.backward()
    assert any(np.any(layer.dW != 0) for layer in mlp.linear_layers)
    mlp.zero_grads()
    assert mlp.autograd_engine.operation_list == []
    for layer in mlp.linear_layers:
        assert not np.any(layer.dW) and not np.any(layer.db)


def test_step_is_sgd_with_momentum_in_place():
    mlp = make_mlp(lr=0.05, momentum=0.5)
    x, labels = blobs(6)
    targets = one_hot(labels, 3)
    layer = mlp.linear_layers[0]
    W_object = layer.W
    W = layer.W.copy()
    velocity = np.zeros_like(W)
    for _ in range(2):
        mlp.zero_grads()
        mlp.forward(x)
        mlp.total_loss(targets)
        mlp.backward()
        grad = layer.dW.copy()
        mlp.step()
        velocity = 0.5 * velocity - 0.05 * grad
        W = W + velocity
    np.testing.assert_allclose(layer.W, W, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(layer.momentum_W, velocity, rtol=1e-12, atol=1e-15)
    assert layer.W is W_object  # updated in place, so (param, grad) pairs stay valid


@pytest.mark.parametrize("field, message", [
    ("activations", "2 activations"),
    ("lr", "lr must be positive"),
    ("momentum", "momentum must be in"),
])
def test_mlp_rejects_bad_arguments(field, message):
    engine = Autograd()
    args = dict(input_size=4, output_size=2, hiddens=[3], activations=[nn.ReLU(engine), nn.Identity(engine)],
                criterion=nn.SoftmaxCrossEntropy(engine), lr=0.1, autograd_engine=engine)
    args[field] = {"activations": [nn.ReLU(engine)], "lr": 0.0, "momentum": 1.0}[field]
    with pytest.raises(ValueError, match=message):
        MLP(**args)


def test_evaluate_records_nothing_and_returns_mean_loss_and_error_rate():
    mlp = make_mlp()
    x, labels = blobs(25)
    loss, error = evaluate(mlp, x, labels, batch_size=10)
    assert mlp.autograd_engine.operation_list == []
    logits = numpy_forward(mlp, x)
    assert loss == pytest.approx(numpy_cross_entropy_sum(logits, one_hot(labels, 3)) / 25, rel=1e-12)
    assert error == pytest.approx(np.mean(np.argmax(logits, axis=1) != labels))
    assert all(layer.W.flags.writeable for layer in mlp.linear_layers)  # nothing left on a tape


# ---------------------------------------------------------------------------- get_training_stats
def test_training_stats_have_one_entry_per_epoch_and_learn():
    train, val = blobs(120, seed=1), blobs(40, seed=2)
    mlp = make_mlp(hiddens=(16,), lr=0.1, momentum=0.5)
    batches, epochs = [], []
    stats = get_training_stats(mlp, (train, val, None), 4, 16, rng=np.random.default_rng(0),
                               on_batch=lambda *a: batches.append(a), on_epoch=lambda *a: epochs.append(a))
    train_loss, train_error, val_loss, val_error = stats
    assert all(len(curve) == 4 for curve in stats)
    assert all(0 <= e <= 1 for e in train_error + val_error)
    assert val_loss[-1] < val_loss[0] and train_loss[-1] < train_loss[0]
    assert val_error[-1] < 0.1  # the classes are 3 standard deviations apart
    # on_batch: (epoch, done, total, mean loss so far); 8 batches per epoch (120 / 16 rounded up)
    assert len(batches) == 4 * 8 and batches[7][:3] == (1, 120, 120)
    assert batches[7][3] == pytest.approx(train_loss[0])
    assert [e[0] for e in epochs] == [1, 2, 3, 4] and epochs[-1][1:] == tuple(c[-1] for c in stats)


def test_same_seed_same_curves_different_seed_different_curves():
    train, val = blobs(60, seed=1), blobs(20, seed=2)

    def curves(seed):
        mlp = make_mlp(seed=seed)
        return get_training_stats(mlp, (train, val, None), 2, 8, rng=np.random.default_rng(seed))

    assert curves(3) == curves(3)
    assert curves(3) != curves(4)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # NumPy notices the NaN first
def test_a_nan_loss_stops_training():
    (x, labels), val = blobs(40, seed=1), blobs(10, seed=2)
    x[17] = np.nan
    mlp = make_mlp()
    with pytest.raises(TrainingDiverged, match="nan at epoch 1") as caught:
        get_training_stats(mlp, ((x, labels), val, None), 3, 40, rng=np.random.default_rng(0))
    assert caught.value.epoch == 1 and caught.value.batch == 1


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # NumPy notices the NaN first
def test_a_nan_validation_loss_stops_training():
    train, (x, labels) = blobs(40, seed=1), blobs(10, seed=2)
    x[3] = np.inf
    with pytest.raises(TrainingDiverged, match="validation loss became nan after epoch 1") as caught:
        get_training_stats(make_mlp(), (train, (x, labels), None), 3, 40, rng=np.random.default_rng(0))
    assert caught.value.batch is None


# ---------------------------------------------------------------------------- dataset
def save_course_folder(folder, n=(30, 10, 10), features=12, classes=3, test=True, dtype=np.uint8):
    """Write a small data set in the course layout; return its arrays."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    arrays = {}
    for split, count in zip(("train", "val", "test"), n):
        if split == "test" and not test:
            continue
        arrays[f"{split}_data"] = rng.integers(0, 256, (count, features)).astype(dtype)
        arrays[f"{split}_labels"] = rng.integers(0, classes, count)
        arrays[f"{split}_labels"][:classes] = np.arange(classes)
    for name, array in arrays.items():
        np.save(folder / f"{name}.npy", array)
    return arrays


def test_bundled_sample_loads():
    data = load_dataset(BUNDLED)
    assert data.train[0].shape == (4000, 784) and data.val[0].shape == (500, 784)
    assert data.test[0].shape == (500, 784)
    assert data.num_classes == 10 and data.num_features == 784
    assert data.train[0].dtype == np.float64 and 0 <= data.train[0].min() and data.train[0].max() <= 1
    assert data.train[1].dtype == np.int64 and set(np.unique(data.train[1])) == set(range(10))


def test_course_layout_folder_loads_with_and_without_test(tmp_path):
    arrays = save_course_folder(tmp_path / "full")
    data = load_dataset(str(tmp_path / "full"))
    np.testing.assert_allclose(data.train[0], arrays["train_data"] / 255.0)
    np.testing.assert_array_equal(data.val[1], arrays["val_labels"])
    assert data.test[0].shape == (10, 12) and data.num_classes == 3
    save_course_folder(tmp_path / "notest", test=False)
    assert load_dataset(str(tmp_path / "notest")).test is None


def test_float_images_are_kept_and_image_grids_are_flattened(tmp_path):
    save_course_folder(tmp_path, dtype=np.float32)
    images = np.load(tmp_path / "train_data.npy")
    np.save(tmp_path / "train_data.npy", images.reshape(30, 3, 4))
    data = load_dataset(str(tmp_path))
    np.testing.assert_array_equal(data.train[0], images.astype(np.float64))


@pytest.mark.parametrize("change, message", [
    (lambda f: os.remove(f / "train_labels.npy"), "missing train_labels.npy"),
    (lambda f: os.remove(f / "test_labels.npy"), "missing test_labels.npy"),
    (lambda f: np.save(f / "train_data.npy", np.zeros(30)), r"train_data.npy: expected .*shape \(N, D\).*got shape \(30,\)"),
    (lambda f: np.save(f / "val_data.npy", np.zeros((10, 5))), r"val_data.npy: expected shape \(N, 12\).*got shape \(10, 5\)"),
    (lambda f: np.save(f / "val_labels.npy", np.zeros(9, dtype=int)), r"val_labels.npy: expected shape \(10,\).*got shape \(9,\)"),
    (lambda f: np.save(f / "train_labels.npy", np.full(30, 0.5)), "expected integer class labels"),
    (lambda f: np.save(f / "train_labels.npy", -np.ones(30, dtype=int)), "labels must be class numbers"),
    (lambda f: np.save(f / "train_data.npy", np.full((30, 12), np.nan)), "NaN or infinite"),
    (lambda f: np.save(f / "train_data.npy", np.array(["a"] * 30)), "expected numbers"),
    (lambda f: (f / "val_data.npy").write_bytes(b"not an array"), "val_data.npy: cannot be read"),
    (lambda f: np.save(f / "val_data.npy", np.array([{}] * 10), allow_pickle=True), "val_data.npy: cannot be read"),
])
def test_malformed_folders_say_which_file_and_what_was_expected(tmp_path, change, message):
    save_course_folder(tmp_path)
    change(tmp_path)
    with pytest.raises(DataError, match=message):
        load_dataset(str(tmp_path))


def test_missing_path_and_bad_npz_are_reported(tmp_path):
    with pytest.raises(DataError, match="no such file or folder"):
        load_dataset(str(tmp_path / "nowhere"))
    np.savez(tmp_path / "partial.npz", train_data=np.zeros((3, 4)), train_labels=np.zeros(3, dtype=int))
    with pytest.raises(DataError, match="missing array 'val_data'"):
        load_dataset(str(tmp_path / "partial.npz"))
    (tmp_path / "junk.npz").write_bytes(b"junk")
    with pytest.raises(DataError, match="cannot be read"):
        load_dataset(str(tmp_path / "junk.npz"))
