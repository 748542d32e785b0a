"""Deployment: the Autolab bundle run the way Autolab runs it, the autolab and JUnit report forms,
the Gradescope bundle's name and setup.sh, and the handout installed as the project it is."""
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import types
import venv
import xml.etree.ElementTree as ET
import zipfile

import pytest

from autograder import grading, handout, junit, report

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RUNNER = os.path.join(ROOT, "autograder", "runner.py")
PROBLEMS = report.autolab_problems(grading.select_tests(hidden=True))


def run(args, cwd, **kwargs):
    return subprocess.run(args, cwd=str(cwd), capture_output=True, text=True, timeout=300, **kwargs)


@pytest.fixture(scope="module")
def autolab(tmp_path_factory):
    folder = tmp_path_factory.mktemp("autolab")
    handout.build_autolab(str(folder))
    return folder


@pytest.fixture(scope="module")
def handins(tmp_path_factory):
    """The hand-ins a course sees: the reference, one that does not compile, an empty file and random bytes."""
    folder = tmp_path_factory.mktemp("handins")
    with tarfile.open(folder / "good.tar", "w") as archive:
        for top in ("mytorch", "hw/mlp.py"):
            archive.add(os.path.join(ROOT, top), top, filter=lambda m: None if "__pycache__" in m.name else m)
    broken = folder / "broken"
    shutil.copytree(os.path.join(ROOT, "mytorch"), broken / "mytorch", ignore=shutil.ignore_patterns("__pycache__"))
    os.makedirs(broken / "hw")
    shutil.copy(os.path.join(ROOT, "hw", "mlp.py"), broken / "hw" / "mlp.py")
    with open(broken / "mytorch" / "nn" / "functional.py", "a") as handle:
        handle.write("\ndef broken(:\n")
    with tarfile.open(folder / "broken.tar", "w") as archive:
        archive.add(broken / "mytorch", "mytorch")
        archive.add(broken / "hw" / "mlp.py", "hw/mlp.py")
    (folder / "empty.tar").write_bytes(b"")
    (folder / "garbage.tar").write_bytes(os.urandom(3000))
    return folder


def autolab_job(autolab, handin, folder):
    """Lay out a job folder as Autolab does: the hand-in under the handin filename, autograde.tar, Makefile."""
    folder.mkdir()
    shutil.copy(handin, folder / "handin.tar")
    shutil.copy(autolab / "autograde.tar", folder / "autograde.tar")
    shutil.copy(autolab / "autograde-Makefile", folder / "Makefile")
    return folder


def last_json(output):
    lines = output.rstrip("\n").splitlines()
    return json.loads(lines[-1])


# ---------------------------------------------------------------------------- Autolab
def test_the_autolab_bundle_holds_the_grader_and_hidden_tests_but_no_solution(autolab):
    with tarfile.open(autolab / "autograde.tar") as archive:
        names = set(archive.getnames())
    assert {"autograder/runner.py", "autograder/junit.py", "autograder/hidden/hidden.npz",
            "autograder/fixtures/public.json"} <= names
    assert not any(name.startswith(("mytorch", "hw")) or "catalog" in name for name in names)
    makefile = (autolab / "autograde-Makefile").read_text()
    assert json.loads(makefile.split("ZEROS = ", 1)[1].splitlines()[0]) == {"scores": {k: 0 for k in PROBLEMS}}


@pytest.mark.parametrize("kind", ["good", "broken", "empty", "garbage"])
def test_autolab_runs_the_makefile_and_the_last_line_is_the_full_json(autolab, handins, tmp_path, kind):
    job = autolab_job(autolab, handins / f"{kind}.tar", tmp_path / "job")
    made = run(["make"], job)
    assert made.returncode == 0, made.stdout[-2000:] + made.stderr
    output = made.stdout + made.stderr  # Autolab's autodriver sends both to one file
    assert "make:" not in output and "Error" not in made.stderr
    scores = last_json(made.stdout)["scores"]
    assert list(scores) == list(PROBLEMS)
    if kind == "good":
        assert scores == {name: float(points) for name, points in PROBLEMS.items()}
        assert "Total: 100/100 public + 37/37 hidden = 137/137" in made.stdout
    else:
        assert set(scores.values()) == {0}
        if kind == "broken":
            assert "SyntaxError" in made.stdout
        else:
            assert "could not grade handin.tar" in made.stdout


def test_autolab_gets_a_line_of_zeros_when_the_grader_cannot_run(autolab, handins, tmp_path):
    job = autolab_job(autolab, handins / "good.tar", tmp_path / "job")
    made = run(["make", "PYTHON=no-such-python"], job)
    assert made.returncode == 0
    assert "The autograder could not finish (see above)" in made.stdout
    assert last_json(made.stdout) == {"scores": {name: 0 for name in PROBLEMS}}


def test_autolab_gets_a_line_of_zeros_when_the_time_limit_stops_the_grader(autolab, handins, tmp_path):
    if not shutil.which("timeout"):
        pytest.skip("no timeout command")
    job = autolab_job(autolab, handins / "good.tar", tmp_path / "job")
    made = run(["make", "TIME_LIMIT=0.01"], job)
    assert made.returncode == 0
    assert last_json(made.stdout) == {"scores": {name: 0 for name in PROBLEMS}}


def test_the_autolab_command_lists_the_problems_and_points(tmp_path, capsys):
    assert handout.main(["--autolab", str(tmp_path / "al")]) == 0
    out = capsys.readouterr().out
    for name, points in PROBLEMS.items():
        assert f"     {name:<10}  {points:>4g}\n" in out
    assert sum(PROBLEMS.values()) == 100 + sum(t.points for t in grading.select_tests(hidden=True) if t.hidden)
    assert f"({sum(PROBLEMS.values()):g} points in all)" in out
    assert (tmp_path / "al" / "autolab-setup.txt").read_text() in out
    assert {p.name for p in (tmp_path / "al").iterdir()} == {"autograde.tar", "autograde-Makefile", "autolab-setup.txt"}


@pytest.mark.parametrize("hidden", [False, True])
def test_the_autolab_form_names_every_problem_and_exits_0_for_an_ungradable_handin(handins, hidden):
    graded = run([sys.executable, RUNNER, "--submission", str(handins / "empty.tar"), "--format", "autolab"]
                 + (["--hidden"] if hidden else []), ROOT)
    assert graded.returncode == 0, graded.stderr
    expected = {name: 0 for name in PROBLEMS if hidden or name != "hidden"}
    assert last_json(graded.stdout) == {"scores": expected}
    text = run([sys.executable, RUNNER, "--submission", str(handins / "empty.tar")], ROOT)
    assert text.returncode == 1  # the text form still says "not graded" by its status


# ---------------------------------------------------------------------------- JUnit
def junit_of(path, cwd, *extra, status=0):
    graded = run([sys.executable, RUNNER, "--submission", str(path), "--format", "junit"] + list(extra), cwd)
    assert graded.returncode == status, graded.stderr
    assert graded.stdout.startswith('<?xml version="1.0" encoding="UTF-8"?>\n<testsuites ')
    return ET.fromstring(graded.stdout.split("\n", 1)[1])


def check_structure(root):
    """The JUnit structure CI services read; returns {suite: {test: child tag or None}}."""
    assert root.tag == "testsuites"
    found, totals = {}, {"tests": 0, "failures": 0, "errors": 0}
    for suite in root:
        assert suite.tag == "testsuite" and set(suite.attrib) == {"name", "tests", "failures", "errors", "skipped"}
        cases = [c for c in suite if c.tag == "testcase"]
        assert [c.tag for c in suite if c.tag not in ("testcase", "properties", "system-out")] == []
        children = {}
        for case in cases:
            assert set(case.attrib) == {"name", "classname"}
            outcome = [c for c in case if c.tag in ("failure", "error")]
            assert len(outcome) <= 1
            if outcome:
                assert set(outcome[0].attrib) == {"message", "type"} and outcome[0].text
            children[case.get("name")] = outcome[0].tag if outcome else None
        counted = {"tests": len(cases), "failures": sum(v == "failure" for v in children.values()),
                   "errors": sum(v == "error" for v in children.values())}
        assert {k: int(suite.get(k)) for k in counted} == counted
        for k in totals:
            totals[k] += counted[k]
        found[suite.get("name")] = children
    assert {k: int(root.get(k)) for k in totals} == totals
    float(root.get("time"))
    return found


def test_junit_of_the_reference_passes_every_test(handins):
    root = junit_of(handins / "good.tar", ROOT, "--hidden")
    found = check_structure(root)
    assert list(found) == list(PROBLEMS)
    assert all(outcome is None for cases in found.values() for outcome in cases.values())
    tests = grading.select_tests(hidden=True)
    assert sum(len(cases) for cases in found.values()) == len(tests)
    for suite in root:
        values = {p.get("name"): float(p.get("value")) for p in suite.find("properties")}
        assert values == {"score": PROBLEMS[suite.get("name")], "points": PROBLEMS[suite.get("name")]}


def test_junit_of_the_untouched_handout_reports_each_test_with_its_feedback(tmp_path):
    target = tmp_path / "handout"
    handout.build_handout(str(target))
    with tarfile.open(tmp_path / "handin.tar", "w") as archive:
        archive.add(target / "mytorch", "mytorch")
        archive.add(target / "hw" / "mlp.py", "hw/mlp.py")
    found = check_structure(junit_of(tmp_path / "handin.tar", ROOT))
    assert "hidden" not in found
    assert all(outcome in ("failure", "error") for cases in found.values() for outcome in cases.values())
    root = junit_of(tmp_path / "handin.tar", ROOT)
    first = root.find("testsuite/testcase/error")
    assert first.get("message").startswith("0/4 points, error: ") and "NotImplementedError" in first.text


def test_junit_of_an_ungradable_handin_is_one_erroring_test(handins):
    found = check_structure(junit_of(handins / "garbage.tar", ROOT, status=1))  # 1: not graded, as in text form
    assert found == {"submission": {"grading": "error"}}


ODD = "nul \x00 bell \x07 esc \x1b[31m ff \x0c surrogate \ud800 nonchar \uffff <tag> & ]]> \"quotes\" é 🙂"


def test_junit_is_valid_xml_whatever_the_feedback_holds():
    """Feedback and names with control characters, surrogates and markup still give a document that parses."""
    def result(name, status, score, hidden=False):
        return types.SimpleNamespace(name=name, section="functional", points=4, hidden=hidden, score=score,
                                     status=status, description="desc " + ODD, feedback="line 1\n" + ODD)

    results = [result("functional/a" + ODD, "failed", 2.5), result("functional/b", "timeout", 0.0),
               result("functional/c", "passed", 4.0), result("functional/d", "out of memory", 0.0, hidden=True)]
    graded = types.SimpleNamespace(submission="x.tar", results=results, notes=["note " + ODD], error=None, elapsed=1.5)
    text = junit.junit_xml(graded, "title " + ODD)
    root = ET.fromstring(text.split("\n", 1)[1].encode("utf-8"))
    assert check_structure(root) == {
        "functional": {"functional/a" + junit.xml_text(ODD): "failure", "functional/b": "error", "functional/c": None},
        "hidden": {"functional/d": "error"}}
    failure = root.find("testsuite/testcase/failure")
    assert failure.get("type") == "failed" and failure.get("message").startswith("2.5/4 points, failed: desc")
    assert failure.text == "line 1\n" + junit.xml_text(ODD)
    assert "\\x00" in failure.text and "\\x1b[31m" in failure.text and "\\ud800" in failure.text
    assert "<tag> & ]]>" in failure.text and "é 🙂" in failure.text
    assert root.find("testsuite/system-out").text == "Note: note " + junit.xml_text(ODD)
    assert root.find("testsuite[@name='hidden']/testcase").get("classname") == "hidden.functional"


# ---------------------------------------------------------------------------- Gradescope
@pytest.mark.parametrize("name, written", [("ag2", "ag2.zip"), ("ag3.zip", "ag3.zip"), ("AG4.ZIP", "AG4.ZIP")])
def test_the_gradescope_bundle_is_a_zip_file(tmp_path, capsys, name, written):
    assert handout.main(["--gradescope", str(tmp_path / name)]) == 0
    assert f"wrote the Gradescope bundle {tmp_path / written}" in capsys.readouterr().out
    assert zipfile.is_zipfile(tmp_path / written)
    assert [p.name for p in tmp_path.iterdir()] == [written]


def test_a_gradescope_bundle_name_with_another_extension_is_refused(tmp_path, capsys):
    assert handout.main(["--gradescope", str(tmp_path / "ag2.tar")]) == 1
    assert "Gradescope takes a .zip file; give a name ending in .zip" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


FAKE_PYTHON = """#!/bin/sh
# python3 for setup.sh's tests: pip is simulated (FAKE_PIP=old: Ubuntu 22.04's pip, which knows no
# --break-system-packages; managed: 24.04's, which refuses without it), everything else is real.
if [ "$1" = -m ] && [ "$2" = pip ]; then
    echo "pip $*" >> "$LOG"
    if [ "$3" = help ]; then
        echo "Install Options:"
        [ "$FAKE_PIP" = managed ] && echo "  --break-system-packages    Allow pip to modify an EXTERNALLY-MANAGED Python"
        exit 0
    fi
    case "$*" in
        *--break-system-packages*) [ "$FAKE_PIP" = old ] && { echo "no such option" >&2; exit 2; } ;;
        *) [ "$FAKE_PIP" = managed ] && { echo "error: externally-managed-environment" >&2; exit 1; } ;;
    esac
    exit 0
fi
exec "$REAL_PYTHON" "$@"
"""


def fake_image(tmp_path, pip):
    """A PATH whose apt-get only logs and whose python3 simulates ``pip``; returns (environment, log)."""
    tools = tmp_path / "bin"
    tools.mkdir()
    (tools / "apt-get").write_text('#!/bin/sh\necho "apt-get $*" >> "$LOG"\n')
    (tools / "python3").write_text(FAKE_PYTHON)
    for tool in tools.iterdir():
        tool.chmod(0o755)
    log = tmp_path / "log"
    env = dict(os.environ, PATH=f"{tools}:{os.environ['PATH']}", LOG=str(log), FAKE_PIP=pip,
               REAL_PYTHON=sys.executable)
    return env, log


@pytest.mark.parametrize("image, pip", [("Ubuntu 22.04", "old"), ("Ubuntu 24.04", "managed")])
def test_setup_sh_installs_numpy_on_both_gradescope_images(tmp_path, image, pip):
    metadata = handout.project_metadata()
    script = tmp_path / "setup.sh"
    script.write_text(handout.setup_script(metadata))
    env, log = fake_image(tmp_path, pip)
    done = run(["bash", str(script)], tmp_path, env=env)
    assert done.returncode == 0, done.stderr
    calls = log.read_text().splitlines()
    assert calls[0] == "apt-get update" and calls[1].startswith("apt-get install -y")
    install = [c for c in calls if c.startswith("pip -m pip install")]
    assert len(install) == 1 and all(d in install[0] for d in metadata["dependencies"])
    assert ("--break-system-packages" in install[0]) == (pip == "managed")
    assert "setup.sh: Python" in done.stdout and "with NumPy" in done.stdout


def test_setup_sh_refuses_a_python_outside_the_projects_range(tmp_path):
    metadata = dict(handout.project_metadata(), requires_python=">=3.99")
    script = tmp_path / "setup.sh"
    script.write_text(handout.setup_script(metadata))
    env, log = fake_image(tmp_path, "managed")
    done = run(["bash", str(script)], tmp_path, env=env)
    assert done.returncode == 1
    assert "setup.sh: the grader needs Python >=3.99, but python3 is 3." in done.stderr
    assert "pip -m pip install" not in log.read_text()


@pytest.mark.parametrize("spec, inside, outside", [
    (">=3.8", [(3, 8), (3, 13)], [(3, 7)]),
    (">=3.10,<3.14", [(3, 10), (3, 13)], [(3, 9), (3, 14)]),
    ("> 3.9, <= 3.12", [(3, 10), (3, 12)], [(3, 9), (3, 13)]),
])
def test_version_condition(spec, inside, outside):
    condition = handout.version_condition(spec)
    for version, expected in [(v, True) for v in inside] + [(v, False) for v in outside]:
        assert eval(condition, {"sys": types.SimpleNamespace(version_info=version + (0,))}) is expected


def test_an_unsupported_python_range_is_an_error():
    with pytest.raises(ValueError, match="only >=, >, <= and <"):
        handout.version_condition("~=3.10")


# ---------------------------------------------------------------------------- the handout as a project
def editable_builds_offline():
    """True if this Python's setuptools can build an editable wheel without downloading anything."""
    try:
        import setuptools
    except ImportError:
        return False
    version = tuple(int(part) for part in re.findall(r"\d+", setuptools.__version__)[:2])
    return version >= (70, 1) or importlib.util.find_spec("wheel") is not None


def test_the_handout_installs_with_the_command_its_readme_gives(tmp_path):
    target = tmp_path / "hw1"
    handout.build_handout(str(target))
    readme = (target / "README.md").read_text()
    assert "pip install -e '.[plot]'" in readme
    for path in target.rglob("*.md"):
        assert "BEGIN SOLUTION" not in path.read_text(), path
    metadata = handout.project_metadata()
    assert f"Python ({metadata['requires_python']})" in readme
    project = (target / "pyproject.toml").read_text()
    assert f'requires-python = "{metadata["requires_python"]}"' in project

    # The README's command, offline: the venv sees this machine's packages instead of downloading them
    # (pip would otherwise fetch a recent setuptools; the machine's must build editable wheels itself).
    if not editable_builds_offline():
        pytest.skip("this Python's setuptools is older than 70.1 and has no wheel package beside it, so "
                    "pip --no-build-isolation cannot build the editable install offline")
    environment = tmp_path / "venv"
    venv.EnvBuilder(system_site_packages=True, with_pip=False, symlinks=True).create(environment)
    python = str(environment / "bin" / "python")
    installed = run([python, "-m", "pip", "install", "--no-index", "--no-build-isolation", "-e", ".[plot]"], target)
    assert installed.returncode == 0, installed.stdout[-3000:] + installed.stderr[-3000:]
    where = run([python, "-c", "import mytorch, numpy, matplotlib; print(mytorch.__file__)"], tmp_path)
    assert where.returncode == 0 and where.stdout.strip() == str(target / "mytorch" / "__init__.py"), where.stderr

    # With the handout installed in the environment, the grader still grades this folder: 0/100.
    graded = run([python, "autograder/runner.py", "autograd"], target)
    assert graded.returncode == 0, graded.stderr
    assert last_json(graded.stdout) == {"scores": {"autograd": 0.0}}
    trained = run([python, "hw/mlp_runner.py", "--epochs", "1"], target)
    assert trained.returncode == 1 and "a part of the homework is not written yet" in trained.stderr
