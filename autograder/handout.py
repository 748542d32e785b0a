"""Build the student handout, and the Gradescope and Autolab bundles, from the reference solution.

    python autograder/handout.py DIR                   # the student handout, in a new or empty DIR
    python autograder/handout.py --gradescope FILE.zip # the Gradescope autograder bundle
    python autograder/handout.py --autolab DIR         # Autolab's autograde.tar and autograde-Makefile

In the handout, the code between ``# BEGIN SOLUTION`` and ``# END SOLUTION`` is
replaced by a stub that raises NotImplementedError with a TODO hint, at the
block's indentation. Unbalanced or nested markers are an error naming the file
and line. ``restore`` puts the reference bodies back into a handout file (the
round-trip check of the project's tests).
"""
import argparse
import ast
import json
import os
import re
import shutil
import stat
import sys
import tarfile
import zipfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BEGIN = "# BEGIN SOLUTION"
END = "# END SOLUTION"
TODO = "# TODO: your code here"
# The grader files a student runs (the TA guide, fixture builder, catalog and hidden tests stay behind).
GRADER_FILES = ("__init__.py", "runner.py", "grading.py", "sandbox.py", "zygote.py", "probes.py", "wire.py",
                "submission.py", "report.py", "junit.py", "fixtures/public.json", "fixtures/public.npz")
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


def project_metadata(root=ROOT):
    """The version, requires-python, dependencies and plot extra of ``root``/pyproject.toml (strings and
    lists), and ``numpy``, the NumPy requirement."""
    path = os.path.join(root, "pyproject.toml")
    with open(path) as handle:
        text = handle.read()
    found = {}
    for key, pattern in (("version", r'^version\s*=\s*"([^"]+)"'), ("requires_python", r'^requires-python\s*=\s*"([^"]+)"'),
                         ("dependencies", r"^dependencies\s*=\s*\[(.*?)\]"), ("plot", r"^plot\s*=\s*\[(.*?)\]")):
        match = re.search(pattern, text, re.MULTILINE | re.DOTALL)
        if not match:
            raise ValueError(f"{path}: no {key.replace('_', '-')} found")
        found[key] = match.group(1) if key in ("version", "requires_python") else re.findall(r'"([^"]+)"', match.group(1))
    found["numpy"] = next((d for d in found["dependencies"] if d.startswith("numpy")), "numpy")
    return found


def version_condition(requires_python):
    """A Python expression over ``sys.version_info`` that is true inside ``requires_python`` (e.g. ">=3.10,<3.14")."""
    conditions = []
    for part in requires_python.split(","):
        match = re.fullmatch(r"\s*(>=|<=|>|<)\s*(\d+(?:\.\d+)*)\s*", part)
        if not match:
            raise ValueError(f"pyproject.toml: requires-python {requires_python!r}: only >=, >, <= and < "
                             f"with versions such as 3.10 are understood")
        version = tuple(int(n) for n in match.group(2).split("."))
        conditions.append(f"sys.version_info[:{len(version)}] {match.group(1)} {version}")
    return " and ".join(conditions)


def readme(todos, metadata):
    with open(os.path.join(ROOT, "autograder", "STUDENT_README.md")) as handle:
        template = handle.read()
    listing = "\n".join(f"- `{path}`: " + ", ".join(f"`{name}`" for name in names) for path, names in todos.items())
    return (template.replace("{todo_list}", listing).replace("{requires_python}", metadata["requires_python"])
            .replace("{numpy}", metadata["numpy"]))


def handout_project(metadata):
    """The handout's own pyproject.toml: ``pip install -e '.[plot]'`` there installs its mytorch and NumPy."""
    def toml_list(items):
        return "[" + ", ".join(json.dumps(item) for item in items) + "]"

    return f"""[build-system]
requires = ["setuptools>=64"]
build-backend = "setuptools.build_meta"

[project]
name = "mytorch-homework"
version = "{metadata['version']}"
description = "The mytorch homework: a reverse-mode autograd engine on NumPy, and an MLP trained with it"
readme = "README.md"
requires-python = "{metadata['requires_python']}"
dependencies = {toml_list(metadata['dependencies'])}

[project.optional-dependencies]
plot = {toml_list(metadata['plot'])}

[tool.setuptools.packages.find]
include = ["mytorch*"]
"""


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
    metadata = project_metadata()
    write_file(os.path.join(target, "README.md"), readme(todos, metadata).encode("utf-8"))
    write_file(os.path.join(target, "pyproject.toml"), handout_project(metadata).encode("utf-8"))
    return todos


def setup_script(metadata):
    """Gradescope's setup.sh: Python in the project's range and NumPy, on its Ubuntu 22.04 and 24.04 images."""
    requirements = " ".join(f"'{d}'" for d in metadata["dependencies"])
    return f"""#!/usr/bin/env bash
# Gradescope runs this once, as root, when it builds the autograder image (Ubuntu 22.04 or 24.04).
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
apt-get update
apt-get install -y --no-install-recommends python3 python3-pip
python3 - <<'PY'
import sys
if not ({version_condition(metadata["requires_python"])}):
    sys.exit("setup.sh: the grader needs Python {metadata["requires_python"]}, but python3 is "
             + sys.version.split()[0] + ": choose another base image (Ubuntu 22.04 has 3.10, 24.04 has 3.12)")
PY
# Ubuntu 24.04's Python is "externally managed" (PEP 668): pip installs there only with
# --break-system-packages, which 22.04's older pip does not know.
if python3 -m pip help install | grep -c -- --break-system-packages > /dev/null; then
    python3 -m pip install --break-system-packages {requirements}
else
    python3 -m pip install {requirements}
fi
python3 -c 'import sys, numpy; print("setup.sh: Python", sys.version.split()[0], "with NumPy", numpy.__version__)'
"""


RUN_AUTOGRADER = """#!/usr/bin/env bash
# Gradescope runs this for every submission, as root, in /autograder.
cd /autograder/source
python3 autograder/runner.py --submission /autograder/submission --hidden --format gradescope \\
    --output /autograder/results/results.json
"""


def grader_members():
    """(archive path, file path) of the grader with its public and hidden tests (never the reference solution)."""
    for relpath in HIDDEN_FILES:
        if not os.path.exists(os.path.join(ROOT, "autograder", relpath)):
            raise ValueError(f"autograder/{relpath} is missing: run python autograder/make_fixtures.py")
    return [(f"autograder/{relpath}", source) for source, relpath in grader_sources(hidden=True)]


def zip_name(path):
    """``path``, with .zip added when it has no extension; ValueError for another extension."""
    extension = os.path.splitext(os.path.basename(path))[1]
    if not extension:
        return path + ".zip"
    if extension.lower() != ".zip":
        raise ValueError(f"--gradescope {path}: Gradescope takes a .zip file; give a name ending in .zip")
    return path


def build_gradescope(zip_path):
    """Write the Gradescope bundle: setup.sh, run_autograder, the grader with public and hidden tests."""
    members = grader_members()
    with zipfile.ZipFile(zip_path, "w", zipfile.ZIP_DEFLATED) as bundle:
        for name, text in (("setup.sh", setup_script(project_metadata())), ("run_autograder", RUN_AUTOGRADER)):
            info = zipfile.ZipInfo(name)
            info.external_attr = (stat.S_IFREG | 0o755) << 16
            bundle.writestr(info, text)
        for name, path in members:
            bundle.write(path, name)


AUTOGRADE_MAKEFILE = """\
# Autolab's autograder for the mytorch homework (written by python autograder/handout.py --autolab DIR).
# Autolab runs `make` as the user autograde in a folder holding this file (as Makefile), autograde.tar
# and the student's hand-in (named after the assessment's handin filename). The last line of the
# output must be the JSON {{"scores": {{...}}}}: the grader prints it last with every problem (0 for a
# hand-in it cannot grade); if the grader itself cannot finish (no python3 or NumPy, TIME_LIMIT
# reached) this Makefile prints a line of zeros instead. No command here makes make fail, so no
# error line of make's can follow the JSON.

# The assessment's handin filename.
HANDIN = handin.tar
# Python {requires_python} with NumPy (the autograding image's).
PYTHON = python3
# Seconds after which the grader is stopped: below the assessment's autograding timeout (default 180).
TIME_LIMIT = 170
# More runner flags, e.g. --timeout 10 (seconds per test, default 5).
GRADER_FLAGS =
ZEROS = {zeros}

autograde:
\t@rm -f autograde.out; limit=; \\
\tif command -v timeout > /dev/null 2>&1; then limit="timeout -k 5 $(TIME_LIMIT)"; fi; \\
\ttar -xf autograde.tar && $$limit $(PYTHON) autograder/runner.py --submission "$(HANDIN)" --hidden \\
\t    --format autolab $(GRADER_FLAGS) 2>&1 | tee autograde.out; \\
\tif ! tail -n 1 autograde.out 2> /dev/null | grep -q '^{{"scores": '; then \\
\t    echo "The autograder could not finish (see above), so every problem scores 0: please tell the course staff."; \\
\t    echo '$(ZEROS)'; \\
\tfi

.PHONY: autograde
"""


def autolab_instructions(problems, metadata):
    """What the instructor sets up on Autolab, with the problem names and points."""
    width = max(len(name) for name in problems)
    table = "\n".join(f"     {name:<{width}}  {points:>4g}" for name, points in problems.items())
    return f"""Autolab setup for the mytorch homework
1. In the assessment, create these problems, named exactly so, with these maximum scores:
{table}
   The autograder's JSON line gives a score for each ({sum(problems.values()):g} points in all).
2. Handin filename: handin.tar (what the students' create_tarball.sh makes).
3. Autograder: upload autograde-Makefile and autograde.tar; timeout 180 s or more (the Makefile
   stops the grader after TIME_LIMIT = 170 s and then scores 0: change both together). The image
   needs python3 ({metadata['requires_python']}) with NumPy ({metadata['numpy']}), e.g. one built from
   autograding_image with `pip install numpy`.
4. Try it before the students do: copy a handin.tar, autograde.tar and autograde-Makefile (as
   Makefile) into an empty folder and run make there: the last line printed is the JSON.
Autolab runs the grader as an unprivileged user: autograder/README.md says what isolation holds there.
"""


def build_autolab(folder):
    """Write autograde.tar, autograde-Makefile and autolab-setup.txt into ``folder``; return the instructions."""
    members = grader_members()
    sys.path.insert(0, ROOT)
    from autograder import grading, report

    problems = report.autolab_problems(grading.select_tests(hidden=True))
    metadata = project_metadata()
    zeros = json.dumps({"scores": {name: 0 for name in problems}})
    os.makedirs(folder, exist_ok=True)
    with tarfile.open(os.path.join(folder, "autograde.tar"), "w", format=tarfile.PAX_FORMAT) as archive:
        for name, path in members:
            info = archive.gettarinfo(path, name)
            info.mode, info.uid, info.gid, info.uname, info.gname = 0o644, 0, 0, "root", "root"
            with open(path, "rb") as handle:
                archive.addfile(info, handle)
    instructions = autolab_instructions(problems, metadata)
    write_file(os.path.join(folder, "autograde-Makefile"),
               AUTOGRADE_MAKEFILE.format(zeros=zeros, requires_python=metadata["requires_python"]).encode())
    write_file(os.path.join(folder, "autolab-setup.txt"), instructions.encode())
    return instructions


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python autograder/handout.py", description=__doc__.splitlines()[0])
    parser.add_argument("dir", nargs="?", help="where to write the student handout (new or empty)")
    parser.add_argument("--gradescope", metavar="FILE.zip", help="write the Gradescope autograder bundle")
    parser.add_argument("--autolab", metavar="DIR", help="write autograde.tar and autograde-Makefile for Autolab "
                                                         "(and autolab-setup.txt) into DIR")
    args = parser.parse_args(argv)
    if not (args.dir or args.gradescope or args.autolab):
        parser.error("give DIR, --gradescope FILE.zip, --autolab DIR, or several")
    try:
        if args.dir:
            todos = build_handout(args.dir)
            count = sum(len(names) for names in todos.values())
            print(f"wrote the handout to {args.dir}: {count} TODOs in {len(todos)} files")
        if args.gradescope:
            path = zip_name(args.gradescope)
            build_gradescope(path)
            print(f"wrote the Gradescope bundle {path}")
        if args.autolab:
            instructions = build_autolab(args.autolab)
            print(f"wrote {os.path.join(args.autolab, 'autograde.tar')} and "
                  f"{os.path.join(args.autolab, 'autograde-Makefile')} (this text is in autolab-setup.txt there)")
            print(instructions, end="")
    except (MarkerError, ValueError, OSError) as error:
        print(f"handout: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
