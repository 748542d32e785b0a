"""Load an image classification data set for the MLP: the bundled MNIST sample or a course-layout folder.

Two sources are accepted:

* an ``.npz`` file with the arrays ``train_data``, ``train_labels``, ``val_data``,
  ``val_labels`` and optionally ``test_data``, ``test_labels`` (``hw/data/mnist5k.npz``);
* a folder in the course's layout, holding the same arrays as ``.npy`` files
  (``train_data.npy``, ``train_labels.npy``, ``val_data.npy``, ``val_labels.npy``,
  and optionally ``test_data.npy`` and ``test_labels.npy``).

Images are rows of shape (N, D) (or (N, H, W), which is flattened); labels are
integers 0..C-1 of shape (N,), where C, the number of classes, is the largest
training label plus one (at most the number of training examples; the validation
and test labels must be classes of the training set). uint8 images are scaled from
0..255 to 0..1; other numeric images are used as they are (as float64).
"""
import copy
import os
import zipfile

import numpy as np

SPLITS = ("train", "val", "test")
REQUIRED_SPLITS = ("train", "val")


class DataError(ValueError):
    """The data set is missing, unreadable or has arrays of the wrong shape or type."""


class Dataset:
    """The loaded splits: ``train``, ``val`` and ``test`` are ``(x, labels)`` pairs or None (test only).

    ``x`` is float64 of shape (N, num_features), ``labels`` int64 of shape (N,).
    """

    def __init__(self, source, train, val, test):
        self.source = source
        self.train, self.val, self.test = train, val, test
        self.num_features = train[0].shape[1]
        self.num_classes = int(train[1].max()) + 1

    def with_inputs(self, convert):
        """A copy whose images are ``convert(x)`` for every split (e.g. reshaped to (N, 1, 28, 28) and made
        float32); labels, ``num_features`` and ``num_classes`` stay as they are."""
        converted = copy.copy(self)
        converted.train, converted.val, converted.test = (
            None if split is None else (convert(split[0]), split[1]) for split in self.as_tuple())
        return converted

    def as_tuple(self):
        """``(train, val, test)``, the form ``get_training_stats`` takes."""
        return self.train, self.val, self.test

    def describe(self):
        """One line: where the data came from and the size of each split."""
        sizes = ", ".join(
            f"{len(split[0])} {name}" for name, split in zip(SPLITS, self.as_tuple()) if split is not None
        )
        text = f"{self.source}: {sizes} examples of {self.num_features} features, {self.num_classes} classes"
        missing = np.setdiff1d(np.arange(self.num_classes), self.train[1])
        if len(missing):
            shown = ", ".join(str(c) for c in missing[:10]) + (", ..." if len(missing) > 10 else "")
            text += f" (no training example of class {shown})"
        return text


def load_dataset(path):
    """Load the ``.npz`` file or course-layout folder at ``path``; raise ``DataError`` saying what is wrong."""
    if os.path.isdir(path):
        arrays = _read_folder(path)
    elif os.path.isfile(path):
        arrays = _read_npz(path)
    else:
        raise DataError(f"{path}: no such file or folder (expected a folder in the course layout "
                        f"with train_data.npy, train_labels.npy, val_data.npy, val_labels.npy, "
                        f"or an .npz file holding those arrays)")
    splits = {}
    num_features = num_classes = None
    for split in SPLITS:  # train first: it sets the number of features and of classes
        if split not in arrays:
            splits[split] = None
            continue
        (data_name, data), (labels_name, labels) = arrays[split]
        x = _check_data(data_name, data, num_features)
        num_features = x.shape[1]
        labels = _check_labels(labels_name, labels, len(x), data_name, num_classes)
        num_classes = num_classes or int(labels.max()) + 1
        splits[split] = (x, labels)
    return Dataset(path, splits["train"], splits["val"], splits["test"])


def _read_folder(folder):
    """The course layout: {split}_data.npy and {split}_labels.npy; test files are optional."""
    arrays = {}
    for split in SPLITS:
        names = (f"{split}_data.npy", f"{split}_labels.npy")
        present = [os.path.isfile(os.path.join(folder, name)) for name in names]
        if not any(present) and split not in REQUIRED_SPLITS:
            continue
        for name, found in zip(names, present):
            if not found:
                raise DataError(
                    f"{folder}: missing {name} (a data folder needs train_data.npy, "
                    f"train_labels.npy, val_data.npy and val_labels.npy; test_data.npy and "
                    f"test_labels.npy are optional but go together)"
                )
        arrays[split] = tuple((os.path.join(folder, name), _load_npy(os.path.join(folder, name)))
                              for name in names)
    return arrays


def _load_npy(file):
    try:
        array = np.load(file, allow_pickle=False)
    except (OSError, ValueError, EOFError) as error:
        raise DataError(f"{file}: cannot be read as a NumPy .npy array ({error})") from None
    if not isinstance(array, np.ndarray):
        array.close()
        raise DataError(f"{file}: is an .npz archive, not a single .npy array")
    return array


def _read_npz(file):
    """An .npz archive with the arrays {split}_data and {split}_labels; test ones are optional."""
    try:
        with open(file, "rb") as handle:
            magic = handle.read(6)
    except OSError as error:
        raise DataError(f"{file}: cannot be read ({error.strerror})") from None
    if magic == b"\x93NUMPY":
        raise DataError(f"{file}: holds a single array; pass the folder that holds the course's "
                        f".npy files, or an .npz archive")
    if not magic.startswith(b"PK"):  # every .npz file is a zip archive
        raise DataError(f"{file}: cannot be read: it is not a NumPy .npz archive (--data takes a folder in "
                        f"the course layout, with train_data.npy, train_labels.npy, val_data.npy and "
                        f"val_labels.npy, or an .npz file holding those arrays)")
    try:
        archive = np.load(file, allow_pickle=False)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as error:
        raise DataError(f"{file}: cannot be read as a NumPy .npz archive ({error})") from None
    try:
        with archive:
            contents = {name: archive[name] for name in archive.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as error:
        raise DataError(f"{file}: cannot be read as a NumPy .npz archive ({error})") from None
    arrays = {}
    for split in SPLITS:
        keys = (f"{split}_data", f"{split}_labels")
        present = [key in contents for key in keys]
        if not any(present) and split not in REQUIRED_SPLITS:
            continue
        for key, found in zip(keys, present):
            if not found:
                raise DataError(f"{file}: missing array {key!r} (it holds {sorted(contents)}; "
                                f"train_data, train_labels, val_data and val_labels are required)")
        arrays[split] = tuple((f"{file}[{key}]", contents[key]) for key in keys)
    return arrays


def _check_data(name, data, num_features):
    """Images as float64 rows (N, D); ``num_features`` is D of the training split (None for it)."""
    expected = "(N, D), e.g. (N, 784) for MNIST" if num_features is None else f"(N, {num_features})"
    if data.dtype.kind not in "biuf":
        raise DataError(f"{name}: expected numbers, got an array of dtype {data.dtype}")
    if data.ndim == 3:  # (N, H, W) images
        data = data.reshape(len(data), -1)
    if data.ndim != 2 or len(data) == 0 or data.shape[1] == 0:
        raise DataError(f"{name}: expected a non-empty array of shape {expected} (one flattened image "
                        f"per row), got shape {data.shape}")
    if num_features is not None and data.shape[1] != num_features:
        raise DataError(f"{name}: expected shape {expected} like the training data, got shape {data.shape}")
    x = data / 255.0 if data.dtype == np.uint8 else data.astype(np.float64)
    if not np.all(np.isfinite(x)):
        raise DataError(f"{name}: contains NaN or infinite values")
    return x


def _check_labels(name, labels, n, data_name, num_classes=None):
    """Integer class labels of shape (n,), as int64: 0..num_classes-1, or for the training split
    (``num_classes`` None) 0..C-1 with C = the largest label + 1 at most ``n``."""
    if labels.shape != (n,):
        raise DataError(f"{name}: expected shape ({n},) (one integer label per row of {data_name}), "
                        f"got shape {labels.shape}")
    if labels.dtype.kind == "f":
        whole = np.isfinite(labels) & (labels == np.round(labels))
        if not whole.all():
            index = int(np.argmin(whole))
            raise DataError(f"{name}: label {float(labels[index]):g} at index {index} is not a whole number: "
                            f"expected integer class labels 0, 1, 2, ...")
        labels = labels.astype(np.int64)
    if labels.dtype.kind not in "iu":
        raise DataError(f"{name}: expected integer class labels, got dtype {labels.dtype}")
    labels = labels.astype(np.int64)
    index = int(np.argmin(labels))
    if labels[index] < 0:
        raise DataError(f"{name}: label {labels[index]} at index {index} is negative: "
                        f"labels must be class numbers 0, 1, 2, ...")
    index = int(np.argmax(labels))
    largest = int(labels[index])
    if num_classes is None and largest + 1 > n:
        raise DataError(f"{name}: label {largest} at index {index} would make {largest + 1} classes, more than "
                        f"the {n} training examples; labels are class numbers 0, 1, ..., C-1")
    if num_classes is not None and largest >= num_classes:
        raise DataError(f"{name}: label {largest} at index {index} is not a class of the training labels "
                        f"(0..{num_classes - 1})")
    return labels
