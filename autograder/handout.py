"""Build the student handout (or the Gradescope bundle) from the reference solution.

    python autograder/handout.py DIR                   # the student handout, in a new or empty DIR
    python autograder/handout.py --gradescope FILE.zip # the Gradescope autograder bundle

In the handout, the code between ``# BEGIN SOLUTION`` and ``# END SOLUTION`` is
replaced by a stub that raises NotImplementedError with a TODO hint, at the
block's indentation. Unbalanced or nested markers are an error naming the file
and line. ``restore`` puts the reference bodies back into a handout file (the
round-trip check of the project's tests).
"""
import argparse
import ast
import os
import shutil
import stat
import sys
import zipfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BEGIN = "# BEGIN SOLUTION"
END = "# END SOLUTION"
TODO = "# TODO: your code here"
# The grader files a student runs (the TA guide, fixture builder, catalog and hidden tests stay behind).
GRADER_FILES = ("__init__.py", "runner.py", "grading.py", "sandbox.py", "zygote.py", "probes.py", "wire.py",
                "submission.py", "report.py", "fixtures/public.json", "fixtures/public.npz")
# Grader files made from another file of the project: the grader's own copy of the tape rules, which
# probes.load_tape_rules reads (the Gradescope bundle has no mytorch/, and the handout's is the student's).
GRADER_COPIES = {"tape_rules.py": "mytorch/_tape_rules.py"}
HIDDEN_FILES = ("hidden/hidden.json", "hidden/hidden.npz")
STUDENT_TREES = ("mytorch", "hw")
SKIP = ("__pycache__", ".pytest_cache", "out")  # folders never copied from mytorch/ and hw/
KEEP = (".py", ".md", ".txt", ".npz", ".npy", ".csv")  # the kinds of file that are (no plots, no run output)


class MarkerError(ValueError):
    """Solution markers are unbalanced, nested or misplaced."""


def solution_blocks(text, path):
    """[(begin index, end index, indent, qualname)] of the marked blocks (0-based line indices)."""
    lines = text.splitlines()
    blocks, opened = [], None
    for i, line in enumerate(lines):
        stripped = line.strip()
        if stripped == BEGIN:
            if opened is not None:
                raise MarkerError(f"{path}:{i + 1}: {BEGIN} inside the block opened at line {opened + 1}")
            opened = i
        elif stripped == END:
            if opened is None:
                raise MarkerError(f"{path}:{i + 1}: {END} without a {BEGIN} before it")
            indent = lines[opened][: len(lines[opened]) - len(lines[opened].lstrip())]
            if not line.startswith(indent) or line[len(indent):].startswith((" ", "\t")):
                raise MarkerError(f"{path}:{i + 1}: {END} is not indented like its {BEGIN} (line {opened + 1})")
            blocks.append((opened, i, indent))
            opened = None
        elif BEGIN in line or END in line:
            raise MarkerError(f"{path}:{i + 1}: a solution marker must be alone on its line")
    if opened is not None:
        raise MarkerError(f"{path}:{opened + 1}: {BEGIN} is never closed by {END}")
    names = enclosing_functions(text, path, [begin + 1 for begin, _, _ in blocks])
    return [(begin, end, indent, name) for (begin, end, indent), name in zip(blocks, names)]


def enclosing_functions(text, path, line_numbers):
    """The qualified name (Class.method or function) of the function around each 1-based line."""
    tree = ast.parse(text, path)
    found = []

    def visit(node, prefix):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                name = prefix + child.name
                if isinstance(child, ast.ClassDef):
                    visit(child, name + ".")
                else:
                    found.append((child.lineno, child.end_lineno, name))
                    visit(child, name + ".")
    visit(tree, "")
    names = []
    for line in line_numbers:
        around = [(start, name) for start, end, name in found if start <= line <= end]
        if not around:
            raise MarkerError(f"{path}:{line}: a solution block must sit inside a function")
        names.append(max(around)[1])  # the innermost function
    return names


def stub(text, path):
    """(handout text, [qualnames]): every marked block replaced by a TODO and a raise."""
    lines = text.splitlines(keepends=True)
    blocks = solution_blocks(text, path)
    for begin, end, indent, name in reversed(blocks):
        lines[begin:end + 1] = [
            f"{indent}{TODO} (then delete the raise below)\n",
            f'{indent}raise NotImplementedError("{name} in {path} is not implemented yet")\n',
        ]
    return "".join(lines), [name for _, _, _, name in blocks]


def restore(handout_text, reference_text, path):
    """The handout text with each stub replaced, in order, by the reference's marked block."""
    reference = reference_text.splitlines(keepends=True)
    blocks = solution_blocks(reference_text, path)
    lines = handout_text.splitlines(keepends=True)
    out, k, i = [], 0, 0
    while i < len(lines):
        if lines[i].strip().startswith(TODO) and i + 1 < len(lines) and "raise NotImplementedError" in lines[i + 1]:
            if k >= len(blocks):
                raise MarkerError(f"{path}: more stubs in the handout than blocks in the reference")
            begin, end, _, _ = blocks[k]
            out.extend(reference[begin:end + 1])
            k, i = k + 1, i + 2
        else:
            out.append(lines[i])
            i += 1
    if k != len(blocks):
        raise MarkerError(f"{path}: {len(blocks)} blocks in the reference but {k} stubs in the handout")
    return "".join(out)


def student_files(root=ROOT):
    """Relative paths of the files under mytorch/ and hw/ that go into the handout."""
    paths = []
    for top in STUDENT_TREES:
        for folder, dirs, names in os.walk(os.path.join(root, top)):
            dirs[:] = sorted(d for d in dirs if d not in SKIP and not d.startswith("."))
            for name in sorted(names):
                if name.startswith(".") or not name.endswith(KEEP):
                    continue
                paths.append(os.path.relpath(os.path.join(folder, name), root).replace(os.sep, "/"))
    return paths


def stubbed_tree(root=ROOT):
    """{relative path: bytes} of mytorch/ and hw/ with every solution block stubbed, and the TODO names."""
    files, todos = {}, {}
    for relpath in student_files(root):
        with open(os.path.join(root, relpath), "rb") as handle:
            data = handle.read()
        if relpath.endswith(".py"):
            text, names = stub(data.decode("utf-8"), relpath)
            ast.parse(text, relpath)  # a stubbed file must still be valid Python
            if names:
                todos[relpath] = names
            data = text.encode("utf-8")
        files[relpath] = data
    return files, todos


def check_uses(todos):
    """Every solution block a test names in ``uses`` must exist (so the stubbed handout scores 0)."""
    sys.path.insert(0, ROOT)
    from autograder import grading

    blocks = {name for names in todos.values() for name in names}
    stems = [grading.PUBLIC] + ([grading.HIDDEN] if os.path.exists(grading.HIDDEN + ".json") else [])
    for stem in stems:
        for test in grading.load_tests(stem):
            unknown = [name for name in test.uses if name not in blocks]
            if unknown or not test.uses:
                raise MarkerError(f"test {test.name} uses {unknown or 'nothing'}, which is not a solution block")


def readme(todos):
    with open(os.path.join(ROOT, "autograder", "STUDENT_README.md")) as handle:
        template = handle.read()
    listing = "\n".join(f"- `{path}`: " + ", ".join(f"`{name}`" for name in names) for path, names in todos.items())
    return template.replace("{todo_list}", listing)


def grader_sources(hidden=False):
    """(source path, path under autograder/) of each grader file of the handout (with ``hidden``: of a bundle)."""
    relpaths = GRADER_FILES + (HIDDEN_FILES if hidden else ())
    return ([(os.path.join(ROOT, "autograder", relpath), relpath) for relpath in relpaths]
            + [(os.path.join(ROOT, source), relpath) for relpath, source in GRADER_COPIES.items()])


def write_file(path, data, executable=False):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as handle:
        handle.write(data)
    os.chmod(path, 0o755 if executable else 0o644)


def build_handout(target):
    """Write the student handout into ``target`` (a new or empty folder)."""
    if os.path.exists(target) and os.listdir(target):
        raise ValueError(f"{target} is not empty; give a new or empty folder")
    files, todos = stubbed_tree()
    check_uses(todos)
    for relpath, data in files.items():
        write_file(os.path.join(target, relpath), data)
    for source, relpath in grader_sources():
        destination = os.path.join(target, "autograder", relpath)
        os.makedirs(os.path.dirname(destination), exist_ok=True)
        shutil.copyfile(source, destination)
    shutil.copyfile(os.path.join(ROOT, "create_tarball.sh"), os.path.join(target, "create_tarball.sh"))
    os.chmod(os.path.join(target, "create_tarball.sh"), 0o755)
    write_file(os.path.join(target, "README.md"), readme(todos).encode("utf-8"))
    return todos


SETUP_SH = """#!/usr/bin/env bash
# Gradescope runs this once, as root, when it builds the autograder image.
set -euo pipefail
apt-get install -y python3 python3-pip
python3 -m pip install 'numpy>=1.22' || python3 -m pip install --break-system-packages 'numpy>=1.22'
"""

RUN_AUTOGRADER = """#!/usr/bin/env bash
# Gradescope runs this for every submission, as root, in /autograder.
cd /autograder/source
python3 autograder/runner.py --submission /autograder/submission --hidden --format gradescope \\
    --output /autograder/results/results.json
"""


def build_gradescope(zip_path):
    """Write the Gradescope bundle: setup.sh, run_autograder, the grader with public and hidden tests."""
    for relpath in HIDDEN_FILES:
        if not os.path.exists(os.path.join(ROOT, "autograder", relpath)):
            raise ValueError(f"autograder/{relpath} is missing: run python autograder/make_fixtures.py")
    with zipfile.ZipFile(zip_path, "w", zipfile.ZIP_DEFLATED) as bundle:
        for name, text in (("setup.sh", SETUP_SH), ("run_autograder", RUN_AUTOGRADER)):
            info = zipfile.ZipInfo(name)
            info.external_attr = (stat.S_IFREG | 0o755) << 16
            bundle.writestr(info, text)
        for source, relpath in grader_sources(hidden=True):
            bundle.write(source, f"autograder/{relpath}")


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python autograder/handout.py", description=__doc__.splitlines()[0])
    parser.add_argument("dir", nargs="?", help="where to write the student handout (new or empty)")
    parser.add_argument("--gradescope", metavar="FILE.zip", help="write the Gradescope autograder bundle")
    args = parser.parse_args(argv)
    if not args.dir and not args.gradescope:
        parser.error("give DIR, --gradescope FILE.zip, or both")
    try:
        if args.dir:
            todos = build_handout(args.dir)
            count = sum(len(names) for names in todos.values())
            print(f"wrote the handout to {args.dir}: {count} TODOs in {len(todos)} files")
        if args.gradescope:
            build_gradescope(args.gradescope)
            print(f"wrote the Gradescope bundle {args.gradescope}")
    except (MarkerError, ValueError, OSError) as error:
        print(f"handout: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
