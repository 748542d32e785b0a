"""Fair grading: fixtures that hold on any CPU, public tests that show every kind of hidden input,
feedback that leads to the bug, and hidden tests whose data never reaches the student."""
import numpy as np
import pytest

from autograder import make_fixtures


# --------------------------------------------------------------------- fixtures on any CPU
@pytest.mark.parametrize("dtype, scale, same", [
    (np.float64, 1 + 2 ** -52, True),   # one ulp: another CPU's exp or sum
    (np.float64, 1 + 1e-8, False),      # far below the grading tolerance, but not rounding
    (np.float32, 1 + 2 ** -23, True),
    (np.float32, 1 + 1e-4, False),
])
def test_the_fixture_check_tolerates_rounding_and_nothing_more(dtype, scale, same):
    fresh = np.linspace(-3, 3, 12, dtype=dtype).reshape(3, 4)
    stored = (fresh * dtype(scale)).astype(dtype)
    assert (make_fixtures.array_difference(stored, fresh) is None) == same


def test_the_fixture_check_is_exact_about_dtype_shape_and_integers():
    fresh = np.arange(6.0).reshape(2, 3)
    assert "float32" in make_fixtures.array_difference(fresh.astype(np.float32), fresh)
    assert "(3, 2)" in make_fixtures.array_difference(fresh.reshape(3, 2), fresh)
    assert make_fixtures.array_difference(np.array([1, 2]), np.array([1, 3])) == "differs"


def test_the_fixture_check_passes_here_and_says_so(capsys):
    assert make_fixtures.main(["--check"]) == 0
    assert capsys.readouterr().out.startswith("fixtures are up to date: autograder/fixtures/public (")
