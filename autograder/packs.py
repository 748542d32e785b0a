"""The course packs: the homeworks built from this reference solution, one engine for all of them.

Each pack is a homework of its own: the MLP (the engine, its primitives, Linear, the
activations and losses, an MLP trainer), the CNN and the RNN/GRU (which build on the
MLP's engine and layers). Everything that differs between them is written here, once:
the handout builder, the fixture builder, the runner and ``create_tarball.sh`` read it.

A pack's handout holds the files of its bases, its own files and ``SHARED``; paths
ending in ``/`` are folders, copied whole. ``handin`` lists its files under ``hw/`` that a
hand-in holds besides every ``.py`` file under ``mytorch/`` (with its bases' ones).
``sections`` gives the public points of each section, in report order (100 in all).
"""
import os
from dataclasses import dataclass

HERE = os.path.dirname(os.path.abspath(__file__))
PACK_FILE = "pack.txt"  # in a handout or bundle: the name of the pack it is (the runner's default)
DEFAULT = "mlp"  # the pack of this checkout's own runs (no pack.txt here)
SHARED = ("hw/trainer.py", "hw/dataset.py", "hw/data/", "mytorch/tape_picture.py")


@dataclass(frozen=True)
class Pack:
    """One homework: what its handout holds, how it is graded and trained."""

    name: str
    title: str  # "the CNN homework"
    bases: tuple  # the packs it builds on, in order
    files: tuple  # its own student files and folders under mytorch/ and hw/
    handin: tuple  # its files under hw/ that a hand-in holds
    sections: dict  # section -> public points, in report order
    trainer: str  # the command that trains its model
    readme: str  # the student README's template, under autograder/
    public: str  # fixture stem under autograder/fixtures/
    hidden: str  # fixture stem under autograder/hidden/
    catalog: str  # the module of its public tests (``public_tests()``)
    hidden_catalog: str  # the module of its hidden tests (``hidden_tests()``)


PACKS = {pack.name: pack for pack in (
    Pack("mlp", "the MLP homework", (),
         ("mytorch/__init__.py", "mytorch/_tape_rules.py", "mytorch/autograd_engine.py", "mytorch/gradcheck.py",
          "mytorch/utils.py", "mytorch/optim/", "mytorch/nn/__init__.py", "mytorch/nn/functional.py",
          "mytorch/nn/modules/__init__.py", "mytorch/nn/modules/activation.py", "mytorch/nn/modules/linear.py",
          "mytorch/nn/modules/loss.py", "hw/__init__.py", "hw/README.md", "hw/mlp.py", "hw/mlp_runner.py"),
         ("hw/mlp.py",),
         {"autograd": 20, "functional": 40, "activation": 9, "linear": 8, "loss": 8, "mlp": 15},
         "python hw/mlp_runner.py", "STUDENT_README.md", "public", "hidden",
         "autograder.catalog", "autograder.hidden.catalog"),
    Pack("cnn", "the CNN homework", ("mlp",),
         ("mytorch/nn/functional_cnn.py", "mytorch/nn/modules/_arguments.py", "mytorch/nn/modules/conv.py",
          "mytorch/nn/modules/pool.py", "mytorch/nn/modules/resampling.py", "mytorch/nn/modules/flatten.py",
          "hw/cnn.py", "hw/cnn_runner.py"),
         ("hw/cnn.py",),
         {"functional": 50, "layers": 30, "cnn": 20},
         "python hw/cnn_runner.py", "STUDENT_README_cnn.md", "cnn_public", "cnn_hidden",
         "autograder.catalog_cnn", "autograder.hidden.catalog_cnn"),
    Pack("rnn", "the RNN homework", ("mlp",),
         ("mytorch/nn/functional_rnn.py", "mytorch/nn/modules/rnn.py", "hw/rnn.py", "hw/rnn_runner.py"),
         ("hw/rnn.py",),
         {"functional": 20, "cells": 40, "sequence": 25, "gru": 15},
         "python hw/rnn_runner.py", "STUDENT_README_rnn.md", "rnn_public", "rnn_hidden",
         "autograder.catalog_rnn", "autograder.hidden.catalog_rnn"),
)}


def get(name):
    """The pack called ``name``; ValueError naming the packs for any other name."""
    if name not in PACKS:
        raise ValueError(f"unknown pack {name!r}; the packs are {', '.join(PACKS)}")
    return PACKS[name]


def chain(name):
    """The packs a handout of ``name`` holds: its bases, in order, then itself."""
    pack = get(name)
    return [PACKS[base] for base in pack.bases] + [pack]


def owner(relpath):
    """The name of the pack whose files hold ``relpath`` ('shared' for SHARED), or None."""
    for name, entries in [(pack.name, pack.files) for pack in PACKS.values()] + [("shared", SHARED)]:
        if any(relpath == entry or (entry.endswith("/") and relpath.startswith(entry)) for entry in entries):
            return name
    return None


def handout_entries(name):
    """The files and folders of the handout of pack ``name`` (each pack of its chain, then SHARED)."""
    return [entry for pack in chain(name) for entry in pack.files] + list(SHARED)


def handin(name):
    """The files under hw/ a hand-in of pack ``name`` holds (its bases' first)."""
    return [path for pack in chain(name) for path in pack.handin]


def required(name):
    """The files ``create_tarball.sh`` of pack ``name`` requires: every .py file the handout lists under
    mytorch/ by name, and the hand-in's files under hw/."""
    return [entry for entry in handout_entries(name) if entry.startswith("mytorch/") and entry.endswith(".py")] \
        + handin(name)


def submission_hw_files():
    """Every pack's hand-in files under hw/: the files besides mytorch/**.py that the grader reads."""
    return tuple(path for pack in PACKS.values() for path in pack.handin)


def default(folder=HERE):
    """The pack of the grader in ``folder``: the one named in its pack.txt (a handout or a bundle), else DEFAULT."""
    path = os.path.join(folder, PACK_FILE)
    if not os.path.isfile(path):
        return DEFAULT
    with open(path, encoding="utf-8") as handle:
        return get(handle.read().strip()).name
