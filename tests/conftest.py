"""Shared pytest setup: make the repository's ``mytorch`` and ``tests/helpers.py`` importable.

Works both from a plain checkout and after ``pip install -e .``: the repository root is put
first on ``sys.path`` so the working tree's ``mytorch`` is the one under test.
"""
import os
import sys

import numpy as np
import pytest

TESTS_DIR = os.path.dirname(os.path.abspath(__file__))
REPO_ROOT = os.path.dirname(TESTS_DIR)
for _path in (TESTS_DIR, REPO_ROOT):
    if _path not in sys.path:
        sys.path.insert(0, _path)


@pytest.fixture
def engine():
    """A fresh autograd engine."""
    from mytorch import Autograd

    return Autograd()


@pytest.fixture
def rng():
    """A seeded NumPy generator, so every test is deterministic."""
    return np.random.default_rng(20240531)
