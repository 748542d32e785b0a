"""create_tarball.sh as a student runs it, on a copy of a freshly built handout: what it packs,
its warnings and refusals with their exit statuses, and the paths it is run from."""
import os
import shutil
import subprocess
import tarfile

import pytest

from autograder import handout

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    target = tmp_path_factory.mktemp("tools") / "hw1"
    todos = handout.build_handout(str(target))
    return target, todos


@pytest.fixture
def student(built, tmp_path):
    """A fresh copy of the untouched handout."""
    folder = tmp_path / "hw1"
    shutil.copytree(built[0], folder)
    return folder


def pack(folder, *args, cwd=None, script=None, env=None):
    """Run ``sh SCRIPT ARGS`` (default: the folder's create_tarball.sh, from inside it)."""
    command = ["sh"] + ([script] if script else ["create_tarball.sh"]) + list(args)
    return subprocess.run(command, cwd=str(cwd or folder), capture_output=True, text=True, env=env, timeout=120)


def names_in(tarball):
    with tarfile.open(tarball) as archive:
        return sorted(archive.getnames())


def restore_reference(folder, todos):
    for relpath in todos:
        with open(os.path.join(ROOT, relpath)) as handle:
            reference = handle.read()
        path = folder / relpath
        path.write_text(handout.restore(path.read_text(), reference, relpath))


def test_the_untouched_handout_is_packed_with_a_warning_naming_every_stub(built, student):
    _, todos = built
    packed = pack(student)
    assert packed.returncode == 0, packed.stderr
    count = sum(len(names) for names in todos.values())
    assert f"warning: {count} function(s) are still the handout's stubs" in packed.stderr
    for relpath, names in todos.items():
        assert f"  {relpath}: {', '.join(names)}\n" in packed.stderr
    assert "hw/mlp.py" in names_in(student / "handin.tar")


def test_a_finished_tree_is_packed_without_a_warning_and_without_caches_or_hidden_files(built, student):
    restore_reference(student, built[1])
    (student / "mytorch" / "__pycache__").mkdir(exist_ok=True)
    (student / "mytorch" / "__pycache__" / "utils.cpython-311.pyc").write_bytes(b"\0")
    (student / "mytorch" / ".ipynb_checkpoints").mkdir()
    (student / "mytorch" / ".ipynb_checkpoints" / "utils-checkpoint.py").write_text("x = 1\n")
    (student / "mytorch" / "notes.txt").write_text("not code\n")
    packed = pack(student)
    assert packed.returncode == 0 and packed.stderr == "", packed.stderr
    names = names_in(student / "handin.tar")
    expected = sorted(os.path.relpath(os.path.join(d, n), student) for d, dirs, files in os.walk(student / "mytorch")
                      for n in files if n.endswith(".py") and "__pycache__" not in d and "/." not in d)
    assert names == sorted(expected + ["hw/mlp.py"])
    assert not (student / "handin.tar.partial").exists()


@pytest.mark.parametrize("breakage, message", [
    ("missing", "not packing: required file(s) missing: hw/mlp.py"),
    ("syntax", "not packing: fix the import error above first"),
    ("raises", "not packing: fix the import error above first"),
])
def test_a_refusal_renames_an_older_handin_so_it_is_not_handed_in(student, breakage, message):
    (student / "handin.tar").write_bytes(b"yesterday's work")
    if breakage == "missing":
        (student / "hw" / "mlp.py").unlink()
    elif breakage == "syntax":
        with open(student / "mytorch" / "nn" / "functional.py", "a") as handle:
            handle.write("\ndef broken(:\n")
    else:
        with open(student / "mytorch" / "utils.py", "a") as handle:
            handle.write("\nraise RuntimeError('boom at import')\n")
    packed = pack(student)
    assert packed.returncode == 1
    assert message in packed.stderr
    assert "renamed the older handin.tar to handin.tar.old, so it is not handed in by mistake" in packed.stderr
    assert not (student / "handin.tar").exists()
    assert (student / "handin.tar.old").read_bytes() == b"yesterday's work"
    if breakage == "raises":
        assert "RuntimeError: boom at import" in packed.stderr


def test_a_refusal_without_an_older_handin_says_nothing_about_it(student):
    (student / "hw" / "mlp.py").unlink()
    packed = pack(student)
    assert packed.returncode == 1 and "renamed" not in packed.stderr
    assert not (student / "handin.tar.old").exists()


def test_no_python_is_a_refusal_that_says_how_to_point_at_one(student, tmp_path):
    tools = tmp_path / "bin"
    tools.mkdir()
    for tool in ("sh", "find", "sort", "tar", "mktemp", "sed", "awk", "wc", "tr", "rm", "mv", "cat"):
        where = shutil.which(tool)
        if where:
            os.symlink(where, tools / tool)
    packed = subprocess.run([str(tools / "sh"), "create_tarball.sh"], cwd=str(student), capture_output=True, text=True,
                            env={"PATH": str(tools), "PYTHON": "no-such-python"}, timeout=60)
    assert packed.returncode == 1
    assert "no python3 or python found" in packed.stderr and "PYTHON=" in packed.stderr


@pytest.mark.parametrize("folder_name", ["-dir", "with space", "-x y"])
def test_it_runs_from_any_folder_even_one_whose_name_starts_with_a_dash(student, tmp_path, folder_name):
    odd = tmp_path / folder_name
    student.rename(odd)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    packed = subprocess.run(["sh", "--", f"{folder_name}/create_tarball.sh"], cwd=str(tmp_path), capture_output=True,
                            text=True, timeout=120)
    assert packed.returncode == 0, packed.stderr
    assert (odd / "handin.tar").is_file() and not (tmp_path / "handin.tar").exists()
    by_absolute_path = pack(odd, script=str(odd / "create_tarball.sh"), cwd=elsewhere)
    assert by_absolute_path.returncode == 0, by_absolute_path.stderr
    assert not (elsewhere / "handin.tar").exists()


@pytest.mark.parametrize("args, status, message", [
    (["--help"], 0, "usage: sh create_tarball.sh"),
    (["-h"], 0, "usage: sh create_tarball.sh"),
    (["handin.tar"], 2, "unexpected argument 'handin.tar'"),
])
def test_arguments(student, args, status, message):
    packed = pack(student, *args)
    assert packed.returncode == status and message in packed.stderr
    assert not (student / "handin.tar").exists()
