"""Fair grading: fixtures that hold on any CPU, public tests that show every kind of hidden input,
feedback that leads to the bug, and hidden tests whose data never reaches the student."""
import json

import numpy as np
import pytest

from autograder import catalog, grading, make_fixtures, probes
from autograder.hidden import catalog as hidden_catalog
from test_autograder import F, FAST, ROOT, patched, write_tree


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


# --------------------------------------------------------------------- every hidden kind shown publicly
def categories(tests):
    """{(unit, kind)} of catalog tests: what sort of input each case shows the function it tests."""
    return {(case.unit, kind) for t in tests for case in t.cases for kind in case.kinds}


def test_every_kind_of_input_a_hidden_test_grades_appears_in_a_public_test():
    public, hidden = categories(catalog.public_tests()), categories(hidden_catalog.hidden_tests())
    assert hidden and not hidden - public, f"hidden kinds no public test shows: {sorted(hidden - public)}"


def test_the_fixtures_carry_the_kinds_of_the_catalog():
    for stem, tests in make_fixtures.test_sets():
        with open(stem + ".json") as handle:
            stored = [(c["unit"], c["kinds"]) for t in json.load(handle)["tests"] for c in t["cases"]]
        assert stored == [(c.unit, c.kinds) for t in tests for c in t.cases]


@pytest.mark.parametrize("shapes, kinds", [
    (((3, 4), (3, 4)), {"same shapes"}),
    (((2, 3, 4), (4,)), {"one side broadcast", "b gains leading axes"}),
    (((4, 1, 3), (2, 3)), {"both sides broadcast", "a stretched along a size-1 axis", "b gains leading axes"}),
    (((3, 1), (1, 4)), {"both sides broadcast", "a stretched along a size-1 axis", "b stretched along a size-1 axis"}),
])
def test_broadcasting_kinds_name_each_side(shapes, kinds):
    assert catalog.broadcast_kinds(shapes) == kinds


@pytest.mark.parametrize("kwargs, a, kinds", [
    ({}, np.full((2, 3), 1.5), {"axis=None", "ties", "all entries equal"}),
    ({"axis": 1}, np.array([[1.0, 3.0, 3.0], [2.0, 0.0, 1.0]]), {"axis an int", "ties"}),
    ({"axis": -1, "keepdims": True}, np.arange(6.0).reshape(2, 3), {"axis a negative int, keepdims"}),
    ({"axis": [0, 1]}, np.arange(6.0).reshape(2, 3), {"axis a tuple"}),
])
def test_reduction_kinds_name_the_axis_and_the_ties(kwargs, a, kinds):
    params = {"name": "max_backward", "n_inputs": 1, "kwargs": kwargs}
    assert catalog.primitive_kinds(params, {"in0": a, "grad_output": np.ones(1)}) == kinds | {"float64"}


def test_a_public_mlp_test_ends_in_an_activation_other_than_identity():
    last = {case.params["activations"][-1] for t in catalog.mlp_tests() for case in t.cases}
    assert last - {"Identity"}


# --------------------------------------------------------------------- the same grade on every NumPy
NUMPY2_STYLE = [  # correct code whose float32 results NumPy 1.x's value-based casting turns into float64
    ("mytorch/nn/modules/loss.py", "-np.mean(np.sum(y * log_softmax, axis=1))", "-np.sum(y * log_softmax) / y_hat.shape[0]"),
    (F, "scale = grad_output / y_hat.shape[0]", "scale = grad_output[0] / y_hat.shape[0]"),
]


def test_code_that_keeps_float32_under_numpy2_rules_scores_full_marks_on_any_numpy(tmp_path):
    folder = write_tree(str(tmp_path), patched(NUMPY2_STYLE))
    tests = [t for t in grading.select_tests(hidden=True) if "SoftmaxCrossEntropy_backward" in t.uses
             or t.section == "loss"]
    rep = grading.grade(folder, tests, FAST)
    assert [(r.name, r.status) for r in rep.results if r.status != "passed"] == []
    assert rep.total() == rep.max_total()


def test_cases_run_with_numpy2_type_promotion_and_leave_the_process_as_it_was():
    sub = probes.load_submission(ROOT)
    before = probes.set_promotion("weak")  # what this process runs with (legacy on NumPy 1.x)
    probes.set_promotion(before)
    x = np.array([[0.5, -1.0]], np.float32)
    out, error = probes.run_case(sub, "module", {"y": np.array([[0.0, 1.0]], np.float32), "y_hat": x},
                                 {"kind": "loss", "module": "SoftmaxCrossEntropy"})
    assert error is None and out["loss"].dtype == out["dy_hat"].dtype == np.float32
    assert probes.set_promotion(before) == before
