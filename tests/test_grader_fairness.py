"""Fair grading: fixtures that hold on any CPU, public tests that show every kind of hidden input,
feedback that leads to the bug, and hidden tests whose data never reaches the student."""
import concurrent.futures
import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest

from autograder import catalog, grading, make_fixtures, probes, report
from autograder.hidden import catalog as hidden_catalog
from test_autograder import (
    DIV, EXP, F, FAST, LOG, MATMUL, MUL, PUBLIC, ROOT, RUNNER, SUB, WRONG, inject, patched, reference_files, write_tree,
)


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
    for _, stem, tests in make_fixtures.test_sets():
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


# --------------------------------------------------------------------- feedback that leads to the bug
def wrong(mistake):
    return [WRONG[mistake]]


MUL_B = "unbroadcast(grad_output * a, b.shape)"
ADD = "return unbroadcast(grad_output, a.shape), unbroadcast(grad_output, b.shape)"
# mistake -> (patches, test, a line its feedback must hold); hidden tests say the same in words (HIDDEN_WORDS)
FEEDBACK = {
    "matmul_backward: g.T @ a for a.T @ g": (wrong("matmul_backward"), "functional/matmul_backward",
                                             "grad1: expected shape (4, 5), got shape (5, 4): it is the expected one "
                                             "transposed"),
    "sub_backward: the sign of b's gradient": (wrong("sub_backward"), "functional/sub_backward",
                                               "grad1 it is the expected one negated (a sign error?)"),
    "SoftmaxCrossEntropy_backward: no mean over the batch": (
        wrong("SoftmaxCrossEntropy_backward"), "functional/SoftmaxCrossEntropy_backward",
        "grad1 it is the expected one times 4, the batch size: a division by the batch size missing"),
    "MLP.total_loss: the batch mean, not the total": (wrong("MLP.total_loss"), "mlp/total_loss",
                                                      "it is the expected one divided by 4, the batch size"),
    "MSELoss.forward: a sum for the mean": (wrong("MSELoss.forward"), "loss/MSELoss",
                                            "loss it is the expected one times 12, the number of elements (N x C)"),
    "mul_backward: no unbroadcast": (wrong("mul_backward"), "functional/mul_backward",
                                     "grad1: expected shape (3, 1), got shape (3, 4): it has the shape (3, 4) of the "
                                     "operation's output, and summed back to the input's shape (3, 1) it is right: "
                                     "undo the broadcasting"),
    "mul_backward: summed over the wrong axis": (
        [(F, MUL_B, "(grad_output * a).sum(axis=0)")], "functional/mul_backward",
        "grad1: expected shape (3, 1), got shape (4,): it is the gradient summed over axes (0,), but this input was "
        "broadcast along axes (1,) of the output (3, 4)"),
    "Linear.forward: dW recorded for W.T": (wrong("Linear.forward: dW recorded for W.T"), "linear/backward",
                                            "for the input self.W.T pass self.dW.T"),
    "MLP.forward: the last activation skipped": (wrong("MLP.forward: the last activation skipped"), "mlp/forward",
                                                 "output it is the output before the last activation: the last "
                                                 "layer's activation was skipped"),
    "sum_backward: float32 returned as float64": (
        wrong("sum_backward: float32 gradient returned as float64"), "functional/sum_backward",
        "grad0: expected dtype float32, got float64 (shape (3, 5) is right): something made float64 of float32"),
    "SoftmaxCrossEntropy_backward: unstable softmax": (
        wrong("SoftmaxCrossEntropy_backward: unstable softmax"), "functional/SoftmaxCrossEntropy_backward",
        "grad1 holds inf or nan: an overflow?"),
    "matmul_backward: no case for vector operands": (
        wrong("matmul_backward: no case for vector operands"), "functional/matmul_backward",
        'File "mytorch/nn/functional.py", line'),
    "sum_backward: axis taken to be an int": (wrong("sum_backward: axis taken to be an int"),
                                              "functional/sum_backward", "    shape[axis] = 1\n"
                                              "TypeError: list indices must be integers or slices, not tuple"),
    "add_backward (given code) edited": (
        [(F, ADD, "return unbroadcast(grad_output, a.shape), grad_output")], "autograd/backward_chain",
        "Check this first: your submission changes code the handout gives (not a TODO), which the tests rely on: "
        "add_backward in mytorch/nn/functional.py (line "),
    "print, then an endless loop": (
        [inject(F, LOG, ["print('log_backward starts')", "print('no newline yet', end='')", "while True:",
                         "    pass"])], "functional/log_backward", "  | log_backward starts\n  | no newline yet"),
}
HIDDEN_WORDS = {  # mistake -> what its hidden test says, in words
    "sub_backward: the sign of b's gradient": "the gradient of b: wrong values (negated)",
    "mul_backward: no unbroadcast": "wrong shape (broadcasting not undone)",
    "SoftmaxCrossEntropy_backward: no mean over the batch": "wrong values (scaled by the batch size)",
    "sum_backward: float32 returned as float64": "wrong dtype (float64 where float32 is expected)",
    "matmul_backward: no case for vector operands": "your code raised AxisError",
    "print, then an endless loop": "the test ran out of time",
}


@pytest.fixture(scope="module")
def feedback(tmp_path_factory):
    """mistake -> the Report of the reference with that mistake, graded on the tests named after its test."""
    tmp = tmp_path_factory.mktemp("mistakes")
    everything = grading.select_tests(hidden=True)

    def grade(item):
        mistake, (patches, name, _) = item
        folder = write_tree(str(tmp / f"m{abs(hash(mistake))}"), patched(patches))
        return mistake, grading.grade(folder, [t for t in everything if t.name == name], FAST)

    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        return dict(pool.map(grade, FEEDBACK.items()))


@pytest.mark.parametrize("mistake", sorted(FEEDBACK))
def test_feedback_names_the_mistake(feedback, mistake):
    _, name, line = FEEDBACK[mistake]
    public = next(r for r in feedback[mistake].results if not r.hidden)
    assert public.score < public.points and line in public.feedback, public.feedback
    if mistake in HIDDEN_WORDS:
        hidden = next(r for r in feedback[mistake].results if r.hidden)
        assert HIDDEN_WORDS[mistake] in hidden.feedback, hidden.feedback


def test_changed_given_code_is_said_first_in_every_failed_test(feedback):
    for r in feedback["add_backward (given code) edited"].results:
        assert r.feedback.startswith("Check this first:") and "add_backward" in r.feedback.splitlines()[0]


@pytest.mark.parametrize("old, new, changed", [
    ("def add_backward(grad_output, a, b):\n", "def add_backward(grad_output, a, b):  # given\n    # a comment\n", False),
    ('"""out = a + b (with broadcasting)."""', '"""My notes:\n\n    out = a + b.\n    """', False),
    (ADD, ADD.replace(", ", ",\n        "), False),
    ("def add_backward(grad_output, a, b):\n", "def add_backward(grad_output, a, b):\n    unused = 1\n", True),
])
def test_given_code_changes_are_told_from_comments_docstrings_and_layout(old, new, changed):
    files = reference_files()
    text = files[F].decode()
    files[F] = text.replace(old, new).encode()
    line = text[:text.index("def add_backward")].count("\n") + 1
    expected = [f"add_backward in {F} (line {line}) differs from the handout's"] if changed else []
    assert grading.given_changes(files, grading.load_given()) == expected


def test_the_reference_changes_no_given_code_and_a_missing_function_is_named():
    files = reference_files()
    assert grading.given_changes(files, grading.load_given()) == []
    files[F] = files[F].decode().replace("def neg_backward(", "def negated_backward(").encode()
    assert grading.given_changes(files, grading.load_given()) == [f"neg_backward is missing from {F}"]


def test_an_engine_note_is_printed_once(tmp_path):
    folder = write_tree(str(tmp_path), patched([inject(F, MATMUL, ["raise ValueError('matmul_backward is broken')"])]))
    rep = grading.grade(folder, [t for t in PUBLIC if t.name == "mlp/training_stats"], FAST)
    text = rep.results[0].feedback
    assert "ValueError: matmul_backward is broken" in text
    assert text.count("(in backward of operation #") == (1 if sys.version_info >= (3, 11) else 0)


def test_an_error_raised_outside_the_students_files_says_so(tmp_path):
    try:
        np.ones(2) + np.ones(3)
    except ValueError as error:
        text = probes.student_traceback(error, str(tmp_path))
    assert "raised outside your files, in the grader's test_an_error_raised_outside_the_students_files_says_so()" \
        in text and text.endswith("(3,)")


@pytest.mark.parametrize("patch, blocked", [
    ((F, "def log_backward(grad_output, a):", "def log_backward(grad_output, a:"), "all"),
    (("hw/mlp.py", "import numpy as np\n", "import numpy as np\ndef broken(:\n"), "mlp"),
])
def test_an_import_failure_is_reported_once_with_the_tests_it_stops(tmp_path, patch, blocked):
    folder = write_tree(str(tmp_path), patched([patch]))
    rep = grading.grade(folder, grading.select_tests(hidden=True), FAST)
    stopped = [r.name + " (hidden)" * r.hidden for r in rep.results if blocked == "all" or r.section == blocked]
    text = report.text_report(rep, "one submission")
    assert text.count("SyntaxError: ") == 1
    assert f"Your code could not be imported (SyntaxError at {patch[0]}:" in text
    assert f"so these {len(stopped)} tests could not run: {', '.join(stopped)}\n" in text
    assert all(r.score == 0 for r in rep.results if r.name + " (hidden)" * r.hidden in stopped)
    problem = rep.problem()
    if blocked == "all":  # the gradebook says why the row has no points
        assert problem.startswith(f"nothing could run: the code could not be imported (SyntaxError at {patch[0]}:")
        assert f"yes,{problem}," in report.gradebook_csv([rep], grading.select_tests(hidden=True)).replace('"', "")
    else:
        assert problem == "" and rep.total() > 0


# --------------------------------------------------------------------- hidden stays hidden
SPY = [  # a submission that shows its inputs every way it can, and gets the hidden tests wrong
    inject(F, SUB, ["print('SPY', a.tolist(), b.tolist(), grad_output.tolist())",
                    "raise ValueError(f'SPY {a.tolist()} {b.tolist()}')"]),
    inject(F, MUL, ["print('SPY', a.tolist(), b.tolist())",
                    "return unbroadcast(grad_output * b * 1.5, a.shape), unbroadcast(grad_output * a * 1.5, b.shape)"]),
    inject(F, DIV, ["return (type('SPY' + repr(a.ravel().tolist()), (), {})(), b)"]),
    inject(F, LOG, ["print('SPY', a.tolist(), flush=True)", "while True:", "    pass"]),
    inject(F, EXP, ["import sys", "sys.exit(repr(a.tolist()))"]),
]
SPIED = ("sub_backward", "mul_backward", "div_backward", "log_backward", "exp_backward")


def values_as_text(tests):
    """Every input and expected value of ``tests`` as Python and the feedback print it (repr, 6 digits)."""
    found = set()
    for case in (case for t in tests for case in t.cases):
        for value in list(case["inputs"].values()) + [v for v in case["expected"].values() if isinstance(v, np.ndarray)]:
            for v in np.asarray(value, dtype=np.float64).ravel().tolist():
                found |= {text for text in (repr(v), f"{v:.6g}") if len(text) >= 6}  # long enough to mean it
    return found


def numbers_in(text):
    return set(re.findall(r"-?\d+(?:\.\d+)?(?:e[-+]?\d+)?", text))


def test_hidden_inputs_expected_values_and_output_never_reach_the_student(tmp_path):
    folder = write_tree(str(tmp_path / "spy"), patched(SPY))
    tests = [t for t in grading.select_tests(hidden=True) if t.name.split("/")[-1] in SPIED]
    hidden = [t for t in tests if t.hidden]
    rep = grading.grade(folder, tests, FAST)
    assert {r.name for r in rep.results if r.hidden and r.score < r.points} == {t.name for t in hidden}
    gradescope = report.gradescope_results(rep)
    visible = [t for t in gradescope["tests"] if t["visibility"] != "hidden"]
    student = "\n".join([report.text_report(rep, "student"), gradescope["output"], json.dumps(visible)])
    staff = report.text_report(rep, "staff", staff=True) + json.dumps(gradescope["tests"])
    secrets = values_as_text(hidden) - values_as_text([t for t in tests if not t.hidden])
    notes = {f"({c['note']})" for t in hidden for c in t.cases if any(ch.isdigit() for ch in c["note"])}
    assert secrets & numbers_in(staff) and any(note in staff for note in notes), \
        "the staff report shows the hidden data (a positive control)"
    assert secrets & numbers_in(student) == set() and [note for note in notes if note in student] == []
    hidden_text = [line for line in student.splitlines() if "(hidden)" in line or line.startswith("  - case")]
    assert not any("SPY" in line for line in hidden_text)
    shown = [r.feedback for r in rep.results if r.hidden]
    assert all("(a hidden test: its data, messages and what your code printed are not shown" in f for f in shown)
    assert "your code raised ValueError" in shown[[t.name for t in hidden].index("functional/sub_backward")]
    assert {t["visibility"] for t in gradescope["tests"] if t["name"].startswith("staff only: hidden: ")} == {"hidden"}
    with open(os.path.join(ROOT, "autograder", "gradescope_results.schema.json")) as handle:
        pytest.importorskip("jsonschema").validate(gradescope, json.load(handle))


def test_a_hidden_tests_import_error_text_is_not_shown():
    test = grading.select_tests(hidden=True)[-1]
    result = grading.Result(test, 0.0, "error", "not run: your code could not be imported", "SECRET 0.123456789",
                            import_error="importing your code failed:\nValueError: SECRET 0.123456789")
    rep = grading.Report("x", [result], [])
    assert test.hidden and "SECRET" not in report.text_report(rep, "t") + json.dumps(report.gradescope_results(rep)
                                                                                       ["tests"][0])
    assert "SECRET" in report.text_report(rep, "t", staff=True)


def test_the_runner_writes_a_staff_report(tmp_path):
    folder = write_tree(str(tmp_path / "spy"), patched(SPY[:1]))
    staff, student = tmp_path / "staff.txt", tmp_path / "student.txt"
    run = subprocess.run([sys.executable, RUNNER, "--submission", folder, "--hidden", "--format", "autolab",
                          "--output", str(student), "--staff-report", str(staff), "--timeout", "2", "functional"],
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert "SPY" in staff.read_text() and "SPY" not in "\n".join(
        line for line in student.read_text().splitlines() if "(hidden)" in line)
    lines = [line for line in student.read_text().splitlines() if "raise ValueError(f'SPY" in line]
    assert 0 < len(lines) < staff.read_text().count("raise ValueError(f'SPY")  # the public tracebacks only

