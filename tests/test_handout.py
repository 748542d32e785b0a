"""The handout builder, the student's round trip, create_tarball.sh and the Gradescope bundle.

One handout is built per module; the student's path is replayed on a copy of it:
the untouched handout scores 0/100 and still imports, the reference bodies put
back give the reference files byte for byte and 100/100, create_tarball.sh packs
exactly the submission files, and grading that handin.tar with --hidden gives the
same public score plus every hidden point.
"""
import json
import os
import pwd
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile

import pytest

from autograder import grading, handout

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FAST = grading.Options(timeout=2.0)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    target = tmp_path_factory.mktemp("handout") / "hw1"
    todos = handout.build_handout(str(target))
    return target, todos


def run(args, cwd, **kwargs):
    return subprocess.run(args, cwd=str(cwd), capture_output=True, text=True, **kwargs)


def python_files(folder):
    return sorted(os.path.relpath(os.path.join(d, n), folder) for d, _, names in os.walk(folder)
                  for n in names if n.endswith(".py") and "__pycache__" not in d)


def test_the_handout_holds_the_student_files_and_no_solution(built):
    target, todos = built
    for path in ("README.md", "create_tarball.sh", "autograder/runner.py", "autograder/fixtures/public.npz",
                 "hw/mlp.py", "hw/mlp_runner.py", "hw/data/mnist5k.npz", "mytorch/nn/functional.py"):
        assert (target / path).is_file(), path
    for path in ("autograder/hidden", "autograder/make_fixtures.py", "autograder/catalog.py", "tests"):
        assert not (target / path).exists(), path
    for relpath in python_files(target):
        text = (target / relpath).read_text()
        assert handout.BEGIN not in text and handout.END not in text, relpath
        compile(text, relpath, "exec")
    readme = (target / "README.md").read_text()
    assert "python autograder/runner.py" in readme and "sh create_tarball.sh" in readme
    names = [name for names in todos.values() for name in names]
    assert all(f"`{name}`" in readme for name in names)
    uses = {name for test in grading.select_tests(hidden=True) for name in test.uses}
    assert uses <= set(names)


def test_the_untouched_handout_imports_runs_and_scores_zero(built):
    target, _ = built
    imported = run([sys.executable, "-I", "-c", "import sys; sys.path.insert(0, '.'); import mytorch, hw.mlp; "
                    "print(mytorch.__file__)"], target)
    assert imported.returncode == 0 and imported.stdout.startswith(str(target)), imported.stderr
    graded = run([sys.executable, "autograder/runner.py"], target)
    assert graded.returncode == 0, graded.stderr
    lines = graded.stdout.strip().splitlines()
    assert json.loads(lines[-1]) == {"scores": {s: 0.0 for s in grading.SECTIONS}}
    assert lines[-2] == "Total: 0/100"
    assert "NotImplementedError" in graded.stdout and "Traceback" not in graded.stdout


def test_putting_the_reference_back_restores_it_and_scores_full_marks(built, tmp_path):
    target, todos = built
    student = tmp_path / "student"
    shutil.copytree(target, student)
    for relpath in todos:
        reference = open(os.path.join(ROOT, relpath)).read()
        restored = handout.restore((student / relpath).read_text(), reference, relpath)
        assert restored == reference, relpath
        (student / relpath).write_text(restored)
    graded = run([sys.executable, "autograder/runner.py"], student)
    assert graded.stdout.strip().splitlines()[-2] == "Total: 100/100", graded.stdout[-3000:]

    packed = run(["sh", "create_tarball.sh"], student)
    assert packed.returncode == 0, packed.stderr
    with tarfile.open(student / "handin.tar") as archive:
        names = sorted(archive.getnames())
    expected = sorted(p for p in python_files(student) if p.startswith("mytorch/")) + ["hw/mlp.py"]
    assert names == sorted(expected)

    # The TA grades that handin.tar: the same public score plus every hidden point.
    results = tmp_path / "results.json"
    ta = run([sys.executable, os.path.join(ROOT, "autograder", "runner.py"), "--submission",
              str(student / "handin.tar"), "--hidden", "--format", "gradescope", "--output", str(results)], ROOT)
    assert ta.returncode == 0, ta.stderr
    scored = json.loads(results.read_text())
    hidden_points = sum(t.points for t in grading.select_tests(hidden=True) if t.hidden)
    assert scored["score"] == 100 + hidden_points
    assert all(t["status"] == "passed" for t in scored["tests"])


SYSTEM_PYTHON = "/usr/bin/python3"


def as_nobody():
    """The setpriv prefix that runs a command as user nobody, if a Python with NumPy works that way; else skip."""
    if os.geteuid() != 0 or not shutil.which("setpriv"):
        pytest.skip("needs root and setpriv to run as another user")
    try:
        entry = pwd.getpwnam("nobody")
    except KeyError:
        pytest.skip("no user nobody")
    prefix = ["setpriv", f"--reuid={entry.pw_uid}", f"--regid={entry.pw_gid}", "--clear-groups"]
    if subprocess.run(prefix + [SYSTEM_PYTHON, "-c", "import numpy"], capture_output=True).returncode != 0:
        pytest.skip(f"no NumPy for {SYSTEM_PYTHON} that user nobody can import")
    return prefix, entry


def test_a_student_without_root_gets_the_same_score(built):
    prefix, nobody = as_nobody()
    target, todos = built
    folder = tempfile.mkdtemp(prefix="mytorch-student-")
    try:
        student = os.path.join(folder, "hw1")
        shutil.copytree(target, student)
        for relpath in todos:
            with open(os.path.join(ROOT, relpath)) as handle:
                reference = handle.read()
            with open(os.path.join(student, relpath)) as handle:
                text = handout.restore(handle.read(), reference, relpath)
            with open(os.path.join(student, relpath), "w") as handle:
                handle.write(text)
        for path in [folder] + [os.path.join(d, n) for d, dirs, names in os.walk(folder) for n in dirs + names]:
            os.chown(path, nobody.pw_uid, nobody.pw_gid)
        os.chmod(folder, 0o755)
        graded = run(prefix + ["env", f"HOME={folder}", SYSTEM_PYTHON, "autograder/runner.py"], student)
        assert graded.stdout.strip().splitlines()[-2] == "Total: 100/100", graded.stdout[-3000:] + graded.stderr
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.parametrize("breakage, message", [
    ("missing", "required file(s) missing: hw/mlp.py"),
    ("syntax", "your code does not import"),
])
def test_create_tarball_refuses_a_broken_tree(built, tmp_path, breakage, message):
    target, _ = built
    student = tmp_path / "student"
    shutil.copytree(target, student)
    if breakage == "missing":
        (student / "hw" / "mlp.py").unlink()
    else:
        with open(student / "mytorch" / "nn" / "functional.py", "a") as handle:
            handle.write("\ndef broken(:\n")
    packed = run(["sh", "create_tarball.sh"], student)
    assert packed.returncode == 1 and message in packed.stderr
    assert not (student / "handin.tar").exists()


def test_the_stub_keeps_the_blocks_indentation_inside_try_finally():
    source = "def f(x):\n    try:\n        # BEGIN SOLUTION\n        y = x\n        # END SOLUTION\n    finally:\n        pass\n"
    text, names = handout.stub(source, "m.py")
    assert names == ["f"]
    assert text.splitlines()[2:4] == ["        " + handout.TODO + " (then delete the raise below)",
                                      '        raise NotImplementedError("f in m.py is not implemented yet")']
    with pytest.raises(NotImplementedError, match="f in m.py"):
        namespace = {}
        exec(compile(text, "m.py", "exec"), namespace)
        namespace["f"](1)
    assert handout.restore(text, source, "m.py") == source


@pytest.mark.parametrize("source, message", [
    ("def f():\n    # BEGIN SOLUTION\n    # BEGIN SOLUTION\n    pass\n    # END SOLUTION\n", "m.py:3: # BEGIN SOLUTION inside"),
    ("def f():\n    pass\n    # END SOLUTION\n", "m.py:3: # END SOLUTION without"),
    ("def f():\n    # BEGIN SOLUTION\n    pass\n", "m.py:2: # BEGIN SOLUTION is never closed"),
    ("def f():\n    # BEGIN SOLUTION\n    pass\n  # END SOLUTION\n", "m.py:4: # END SOLUTION is not indented"),
    ("# BEGIN SOLUTION\nx = 1\n# END SOLUTION\n", "m.py:1: a solution block must sit inside a function"),
])
def test_bad_markers_are_errors_naming_the_line(source, message):
    with pytest.raises(handout.MarkerError) as error:
        handout.stub(source, "m.py")
    assert str(error.value).startswith(message)


def test_the_gradescope_bundle(tmp_path):
    bundle = tmp_path / "autograder.zip"
    assert handout.main(["--gradescope", str(bundle)]) == 0
    with zipfile.ZipFile(bundle) as archive:
        names = set(archive.namelist())
        mode = archive.getinfo("run_autograder").external_attr >> 16
        script = archive.read("run_autograder").decode()
    assert {"setup.sh", "run_autograder", "autograder/runner.py", "autograder/hidden/hidden.npz",
            "autograder/fixtures/public.json"} <= names
    assert not any(name.startswith("mytorch/") for name in names)
    assert mode & 0o111 and "--hidden --format gradescope" in script and "/autograder/results/results.json" in script
