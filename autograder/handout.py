"""Build a pack's student handout, and its Gradescope and Autolab bundles, from the reference solution.

    python autograder/handout.py [--pack mlp|cnn|rnn] [--solved mlp] DIR   # the handout, in a new or empty DIR
    python autograder/handout.py [--pack PACK] --gradescope FILE.zip        # the Gradescope autograder bundle
    python autograder/handout.py [--pack PACK] --autolab DIR                # Autolab's autograde.tar and Makefile

The packs (``autograder/packs.py``) are the course's homeworks: mlp (the default), cnn and
rnn; a handout holds the files of its pack and of the packs it builds on, nothing else.
The code between ``# BEGIN SOLUTION`` and ``# END SOLUTION`` is replaced by a stub that
raises NotImplementedError with a TODO hint, at the block's indentation; a base pack's
blocks too, unless ``--solved`` names that pack (then they ship as the reference wrote
them). Lines between ``# BEGIN PACK name`` and ``# END PACK name`` (the package's
registrations of a pack's modules) are kept only in the handouts that hold that pack.
Unbalanced or nested markers are an error naming the file and line. ``restore`` puts
the reference bodies back into a handout file (the round-trip check of the project's tests).
"""
import argparse
import ast
import io
import json
import os
import re
import shutil
import stat
import sys
import tarfile
import textwrap
import time
import zipfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from autograder import packs  # noqa: E402

BEGIN = "# BEGIN SOLUTION"
END = "# END SOLUTION"
TODO = "# TODO: your code here"
PACK_BEGIN = "# BEGIN PACK "
PACK_END = "# END PACK "
# The grader files a student runs (the TA guide, fixture builders, catalogs and hidden tests stay behind),
# besides the fixtures of the pack.
GRADER_FILES = ("__init__.py", "runner.py", "grading.py", "sandbox.py", "zygote.py", "probes.py", "wire.py",
                "submission.py", "report.py", "junit.py", "packs.py")
# Grader files made from another file of the project: the grader's own copy of the tape rules, which
# probes.load_tape_rules reads (the Gradescope bundle has no mytorch/, and the handout's is the student's).
GRADER_COPIES = {"tape_rules.py": "mytorch/_tape_rules.py"}
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


def keep_packs(text, path, kept):
    """``text`` with the lines between ``# BEGIN PACK name`` and ``# END PACK name`` kept (without the
    marker lines) when ``name`` is in ``kept``, removed otherwise."""
    out, opened = [], None
    for i, line in enumerate(text.splitlines(keepends=True)):
        stripped = line.strip()
        if stripped.startswith(PACK_BEGIN):
            name = stripped[len(PACK_BEGIN):]
            if opened is not None:
                raise MarkerError(f"{path}:{i + 1}: {stripped} inside the pack block opened at line {opened[1] + 1}")
            packs.get(name)  # ValueError for a name that is no pack
            opened = (name, i)
        elif stripped.startswith(PACK_END):
            if opened is None or stripped[len(PACK_END):] != opened[0]:
                raise MarkerError(f"{path}:{i + 1}: {stripped} does not close "
                                  + (f"# BEGIN PACK {opened[0]} (line {opened[1] + 1})" if opened else "a pack block"))
            opened = None
        elif opened is None or opened[0] in kept:
            out.append(line)
    if opened is not None:
        raise MarkerError(f"{path}:{opened[1] + 1}: # BEGIN PACK {opened[0]} is never closed")
    return "".join(out)


def solved(text, path):
    """``text`` with the solution markers' lines removed: the reference's bodies, as given code."""
    lines = text.splitlines(keepends=True)
    marked = {i for begin, end, _, _ in solution_blocks(text, path) for i in (begin, end)}
    return "".join(line for i, line in enumerate(lines) if i not in marked)


def student_files(root=ROOT, pack=packs.DEFAULT):
    """Relative paths of the files under mytorch/ and hw/ that go into the handout of ``pack``."""
    paths = []
    for entry in packs.handout_entries(pack):
        if not entry.endswith("/"):
            if not os.path.isfile(os.path.join(root, entry)):
                raise ValueError(f"autograder/packs.py lists {entry} (pack {packs.owner(entry)}), which does not exist")
            paths.append(entry)
            continue
        for folder, dirs, names in os.walk(os.path.join(root, entry)):
            dirs[:] = sorted(d for d in dirs if d not in SKIP and not d.startswith("."))
            for name in sorted(names):
                if name.startswith(".") or not name.endswith(KEEP):
                    continue
                paths.append(os.path.relpath(os.path.join(folder, name), root).replace(os.sep, "/"))
    return paths


def unlisted_files(root=ROOT):
    """The files under mytorch/ and hw/ a handout would hold but no pack lists (``packs.owner`` is None)."""
    found = []
    for top in ("mytorch", "hw"):
        for folder, dirs, names in os.walk(os.path.join(root, top)):
            dirs[:] = sorted(d for d in dirs if d not in SKIP and not d.startswith("."))
            found += [relpath for name in sorted(names) if not name.startswith(".") and name.endswith(KEEP)
                      for relpath in [os.path.relpath(os.path.join(folder, name), root).replace(os.sep, "/")]
                      if packs.owner(relpath) is None]
    return found


def stubbed_tree(root=ROOT, pack=packs.DEFAULT, solved_packs=()):
    """({relative path: bytes} of the handout's mytorch/ and hw/, {relative path: TODO names}).

    Every solution block is stubbed, except in the files of the packs in ``solved_packs``, which
    keep the reference's bodies; the pack blocks of the packs the handout does not hold are removed.
    """
    kept = [p.name for p in packs.chain(pack)]
    files, todos = {}, {}
    for relpath in student_files(root, pack):
        with open(os.path.join(root, relpath), "rb") as handle:
            data = handle.read()
        if relpath.endswith(".py"):
            text = keep_packs(data.decode("utf-8"), relpath, kept)
            if packs.owner(relpath) in solved_packs:
                text, names = solved(text, relpath), []
            else:
                text, names = stub(text, relpath)
            ast.parse(text, relpath)  # a stubbed file must still be valid Python
            if names:
                todos[relpath] = names
            data = text.encode("utf-8")
        files[relpath] = data
    return files, todos


def blocks_by_pack(pack, root=ROOT):
    """{pack name: the names of the solution blocks in its files} for the packs a handout of ``pack`` holds."""
    found = {p.name: set() for p in packs.chain(pack)}
    for relpath in student_files(root, pack):
        owner = packs.owner(relpath)
        if relpath.endswith(".py") and owner in found:
            with open(os.path.join(root, relpath), encoding="utf-8") as handle:
                found[owner].update(name for _, _, _, name in solution_blocks(handle.read(), relpath))
    return found


def check_uses(pack):
    """Every test of ``pack`` (public and hidden) names in ``uses`` solution blocks of the pack or of its bases,
    at least one of its own: so the untouched handout scores 0, with or without ``--solved``."""
    from autograder import grading

    blocks = blocks_by_pack(pack)
    everything = set().union(*blocks.values())
    stems = [grading.public_stem(pack)] + [stem for stem in [grading.hidden_stem(pack)] if os.path.exists(stem + ".json")]
    for test in (test for stem in stems for test in grading.load_tests(stem)):
        unknown = [name for name in test.uses if name not in everything]
        if unknown or not test.uses:
            raise MarkerError(f"test {test.name} of pack {pack} uses {unknown or 'nothing'}, which is not a solution "
                              f"block of {' or '.join(blocks)}")
        if not set(test.uses) & blocks[pack]:
            raise MarkerError(f"test {test.name} of pack {pack} uses no solution block of the {pack} pack itself "
                              f"(only {test.uses}), so it would pass in a handout whose base packs are solved")


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


def todo_list(todos):
    return "\n".join(f"- `{path}`: " + ", ".join(f"`{name}`" for name in names) for path, names in todos.items())


def earlier_work(pack, todos, solved_packs):
    """The README's paragraph on the code of the packs ``pack`` builds on: given solved, or to bring over."""
    bases = packs.chain(pack)[:-1]
    if not bases:
        return ""
    titles = " and ".join(base.title for base in bases)
    if all(base.name in solved_packs for base in bases):
        return (f"## The code from {titles}\n\n" + textwrap.fill(
            f"This homework runs on the engine and layers of {titles}. In this handout they are given complete "
            "(the course staff's version): you need not write them again.", 100) + "\n")
    earlier = {path: names for path, names in todos.items() if packs.owner(path) != pack}
    checks = " ".join(f"`python autograder/runner.py --pack {base.name}`" for base in bases
                      if base.name not in solved_packs)
    return (f"## Your code from {titles}\n\n" + textwrap.fill(
        f"This homework runs on the engine and layers you wrote in {titles}. In this handout they are that "
        "homework's stubs again: **bring your code from the earlier homework**: copy your finished functions, or "
        "the whole files listed here, over these (not the `__init__.py` files: this homework's register its "
        "own modules too):", 100) + f"\n\n{todo_list(earlier)}\n\n" + textwrap.fill(
        f"{checks} grades them with that homework's public tests. The tests of this homework use them too: until "
        "they are in, the tests that run them score 0.", 100) + "\n")


def readme(pack, todos, metadata, solved_packs=()):
    """The handout's README.md, written from the pack's template."""
    this = packs.get(pack)
    with open(os.path.join(ROOT, "autograder", this.readme)) as handle:
        template = handle.read()
    own = {path: names for path, names in todos.items() if packs.owner(path) == pack}
    fields = {"todo_list": todo_list(own), "earlier": earlier_work(pack, todos, solved_packs),
              "requires_python": metadata["requires_python"], "numpy": metadata["numpy"],
              "sections": ", ".join(this.sections), "trainer": this.trainer,
              "handin": " and ".join(f"`{path}`" for path in packs.handin(pack))}
    for key, value in fields.items():
        template = template.replace("{" + key + "}", value)
    return template


def handout_project(pack, metadata):
    """The handout's own pyproject.toml: ``pip install -e '.[plot]'`` there installs its mytorch and NumPy."""
    def toml_list(items):
        return "[" + ", ".join(json.dumps(item) for item in items) + "]"

    name = "mytorch-homework" if pack == packs.DEFAULT else f"mytorch-{pack}-homework"
    return f"""[build-system]
requires = ["setuptools>=64"]
build-backend = "setuptools.build_meta"

[project]
name = "{name}"
version = "{metadata['version']}"
description = "The mytorch course: {packs.get(pack).title}, on a reverse-mode autograd engine in NumPy"
readme = "README.md"
requires-python = "{metadata['requires_python']}"
dependencies = {toml_list(metadata['dependencies'])}

[project.optional-dependencies]
plot = {toml_list(metadata['plot'])}

[tool.setuptools.packages.find]
include = ["mytorch*"]
"""


def tarball_script(pack):
    """``create_tarball.sh`` for ``pack``: this checkout's script (the mlp pack's) with the lines naming the
    pack, its hand-in files under hw/ and its required files written for ``pack``."""
    with open(os.path.join(ROOT, "create_tarball.sh")) as handle:
        text = handle.read()
    required, line = [], ""
    for path in packs.required(pack):  # lines of at most 100 characters inside the quotes
        if line and len(line) + len(path) >= 100:
            required.append(line)
            line = ""
        line = f"{line} {path}" if line else path
    settings = {"pack": pack, "handin": '"' + " ".join(packs.handin(pack)) + '"',
                "required": '"' + "\n".join(required + [line]) + '"'}
    for key, value in settings.items():
        text, count = re.subn(rf'^{key}=("[^"]*"|\S*)$', lambda _: f"{key}={value}", text, flags=re.MULTILINE)
        if count != 1:
            raise ValueError(f"create_tarball.sh: no line {key}=... to write for the {pack} pack")
    return text


def fixture_files(pack, hidden=False):
    """The paths under autograder/ of the fixtures a grader of ``pack`` ships: for a handout, the public
    fixtures of the pack and of its bases (so students can check the code they bring from the earlier
    homework); with ``hidden``, for a bundle, the pack's public and hidden fixtures (it grades that pack alone)."""
    chosen = [packs.get(pack)] if hidden else packs.chain(pack)
    paths = [f"fixtures/{p.public}{ext}" for p in chosen for ext in (".json", ".npz")]
    if hidden:
        paths += [f"hidden/{packs.get(pack).hidden}{ext}" for ext in (".json", ".npz")]
    for path in paths:
        if not os.path.exists(os.path.join(ROOT, "autograder", path)):
            raise ValueError(f"autograder/{path} is missing: run python autograder/make_fixtures.py")
    return paths


def grader_sources(pack=packs.DEFAULT, hidden=False):
    """(source path, path under autograder/) of each grader file of ``pack``'s handout (with ``hidden``: of
    its bundle); the callers also write ``packs.PACK_FILE``, the pack's name."""
    relpaths = GRADER_FILES + tuple(fixture_files(pack, hidden))
    return ([(os.path.join(ROOT, "autograder", relpath), relpath) for relpath in relpaths]
            + [(os.path.join(ROOT, source), relpath) for relpath, source in GRADER_COPIES.items()])


def write_file(path, data, executable=False):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as handle:
        handle.write(data)
    os.chmod(path, 0o755 if executable else 0o644)


def build_handout(target, pack=packs.DEFAULT, solved_packs=()):
    """Write the student handout of ``pack`` into ``target`` (a new or empty folder); returns its TODOs."""
    this = packs.get(pack)
    wrong = [name for name in solved_packs if name not in this.bases]
    if wrong:
        raise ValueError(f"--solved {', '.join(wrong)}: only the packs {pack} builds on can ship solved "
                         f"({', '.join(this.bases) or 'it builds on none'})")
    if os.path.exists(target) and os.listdir(target):
        raise ValueError(f"{target} is not empty; give a new or empty folder")
    files, todos = stubbed_tree(pack=pack, solved_packs=solved_packs)
    check_uses(pack)
    metadata = project_metadata()
    files.update({"README.md": readme(pack, todos, metadata, solved_packs).encode("utf-8"),
                  "pyproject.toml": handout_project(pack, metadata).encode("utf-8")})
    script = tarball_script(pack).encode()
    for relpath, data in files.items():
        write_file(os.path.join(target, relpath), data)
    for source, relpath in grader_sources(pack):
        destination = os.path.join(target, "autograder", relpath)
        os.makedirs(os.path.dirname(destination), exist_ok=True)
        shutil.copyfile(source, destination)
    write_file(os.path.join(target, "autograder", packs.PACK_FILE), f"{pack}\n".encode())
    write_file(os.path.join(target, "create_tarball.sh"), script, executable=True)
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
python3 autograder/runner.py --pack {pack} --submission /autograder/submission --hidden --format gradescope \\
    --output /autograder/results/results.json
"""


def grader_members(pack=packs.DEFAULT):
    """(archive path, bytes) of ``pack``'s grader with its public and hidden tests (never the reference
    solution), and its name in autograder/pack.txt."""
    members = []
    for source, relpath in grader_sources(pack, hidden=True):
        with open(source, "rb") as handle:
            members.append((f"autograder/{relpath}", handle.read()))
    return members + [(f"autograder/{packs.PACK_FILE}", f"{pack}\n".encode())]


def zip_name(path):
    """``path``, with .zip added when it has no extension; ValueError for another extension."""
    extension = os.path.splitext(os.path.basename(path))[1]
    if not extension:
        return path + ".zip"
    if extension.lower() != ".zip":
        raise ValueError(f"--gradescope {path}: Gradescope takes a .zip file; give a name ending in .zip")
    return path


def build_gradescope(zip_path, pack=packs.DEFAULT):
    """Write ``pack``'s Gradescope bundle: setup.sh, run_autograder, the grader with public and hidden tests."""
    scripts = [("setup.sh", setup_script(project_metadata()).encode()),
               ("run_autograder", RUN_AUTOGRADER.format(pack=pack).encode())]
    with zipfile.ZipFile(zip_path, "w", zipfile.ZIP_DEFLATED) as bundle:
        for name, data in scripts + grader_members(pack):
            info = zipfile.ZipInfo(name)
            info.external_attr = (stat.S_IFREG | (0o755 if (name, data) in scripts else 0o644)) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            bundle.writestr(info, data)


AUTOGRADE_MAKEFILE = """\
# Autolab's autograder for {title} of the mytorch course (written by python autograder/handout.py
# --pack {pack} --autolab DIR). Autolab runs `make` as the user autograde in a folder holding this file
# (as Makefile), autograde.tar and the student's hand-in (named after the assessment's handin filename).
# The last line of the output must be the JSON {{"scores": {{...}}}}: the grader prints it last with every
# problem (0 for a hand-in it cannot grade); if the grader itself cannot finish (no python3 or NumPy,
# TIME_LIMIT reached) this Makefile prints a line of zeros instead. No command here makes make fail, so
# no error line of make's can follow the JSON.

# The assessment's handin filename.
HANDIN = handin.tar
# Python {requires_python} with NumPy (the autograding image's).
PYTHON = python3
# Seconds after which the grader is stopped: below the assessment's autograding timeout (default 180).
TIME_LIMIT = 170
# The hidden tests. Autolab grades as an ordinary user inside a Docker container, where user
# namespaces are usually refused: there the tests could read the hidden tests and forge their
# results, so the grader grades the public tests only, the hidden ones scoring 0 with a note saying why.
# Your choices (see autolab-setup.txt and autograder/README.md's table of hosts):
#   - allow user namespaces in the autograding containers (then nothing here needs changing);
#   - GRADER_FLAGS = --allow-unisolated: run the hidden tests anyway, without that protection;
#   - HIDDEN = (empty): grade the public tests only.
HIDDEN = --hidden
# More runner flags, e.g. --allow-unisolated (above) or --timeout 10 (seconds per test, default 5).
GRADER_FLAGS =
ZEROS = {zeros}

autograde:
\t@rm -f autograde.out; limit=; \\
\tif command -v timeout > /dev/null 2>&1; then limit="timeout -k 5 $(TIME_LIMIT)"; fi; \\
\ttar -xf autograde.tar && $$limit $(PYTHON) autograder/runner.py --pack {pack} --submission "$(HANDIN)" \\
\t    $(HIDDEN) --format autolab $(GRADER_FLAGS) 2>&1 | tee autograde.out; \\
\tif ! tail -n 1 autograde.out 2> /dev/null | grep -q '^{{"scores": '; then \\
\t    echo "The autograder could not finish (see above), so every problem scores 0: please tell the course staff."; \\
\t    echo '$(ZEROS)'; \\
\tfi

.PHONY: autograde
"""


def autolab_instructions(pack, problems, metadata):
    """What the instructor sets up on Autolab, with the problem names and points."""
    width = max(len(name) for name in problems)
    table = "\n".join(f"     {name:<{width}}  {points:>4g}" for name, points in problems.items())
    public = sum(points for name, points in problems.items() if name != "hidden")
    return f"""Autolab setup for {packs.get(pack).title} of the mytorch course (pack {pack})
1. In the assessment, create these problems, named exactly so, with these maximum scores:
{table}
   The autograder's JSON line gives a score for each ({sum(problems.values()):g} points in all).
2. Handin filename: handin.tar (what the students' create_tarball.sh makes).
3. Autograder: upload autograde-Makefile and autograde.tar; timeout 180 s or more (the Makefile
   stops the grader after TIME_LIMIT = 170 s and then scores 0: change both together). The image
   needs python3 ({metadata['requires_python']}) with NumPy ({metadata['numpy']}), e.g. one built from
   autograding_image with `pip install numpy`.
4. The hidden tests: Autolab runs the grader as an unprivileged user in a Docker container, and
   Docker's default settings refuse the user namespaces that keep a student's code away from the
   hidden tests and their expected values. There the grader does not run them (--hidden): it grades
   the public tests, and the problem "hidden" scores 0 with a note saying why, unless you choose one
   of these:
   a. allow user namespaces in the autograding containers (e.g. Docker's seccomp profile without
      its namespace rules, on a kernel that allows unprivileged user namespaces): nothing else
      changes, and every guarantee of autograder/README.md's table of hosts holds;
   b. set GRADER_FLAGS = --allow-unisolated in autograde-Makefile: the hidden tests run, but a
      hostile hand-in could read them and forge their results (the report's notes say what is missing);
   c. set HIDDEN = (empty) in autograde-Makefile: the public tests only ({public:g} points; leave out
      the problem "hidden" above).
   Try the bundle in your autograding image (step 5) to see which case you are in.
5. Try it before the students do: copy a handin.tar, autograde.tar and autograde-Makefile (as
   Makefile) into an empty folder and run make there: the last line printed is the JSON.
"""


def build_autolab(folder, pack=packs.DEFAULT):
    """Write ``pack``'s autograde.tar, autograde-Makefile and autolab-setup.txt into ``folder``; return the
    instructions."""
    from autograder import grading, report

    members = grader_members(pack)
    problems = report.autolab_problems(grading.select_tests(hidden=True, pack=pack))
    metadata = project_metadata()
    zeros = json.dumps({"scores": {name: 0 for name in problems}})
    os.makedirs(folder, exist_ok=True)
    now = int(time.time())
    with tarfile.open(os.path.join(folder, "autograde.tar"), "w", format=tarfile.PAX_FORMAT) as archive:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.uid, info.gid, info.uname, info.gname = len(data), 0o644, 0, 0, "root", "root"
            info.mtime = now
            archive.addfile(info, io.BytesIO(data))
    instructions = autolab_instructions(pack, problems, metadata)
    write_file(os.path.join(folder, "autograde-Makefile"),
               AUTOGRADE_MAKEFILE.format(zeros=zeros, requires_python=metadata["requires_python"], pack=pack,
                                         title=packs.get(pack).title).encode())
    write_file(os.path.join(folder, "autolab-setup.txt"), instructions.encode())
    return instructions


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python autograder/handout.py", description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="\n".join(__doc__.splitlines()[2:]))
    parser.add_argument("dir", nargs="?", help="where to write the student handout (new or empty)")
    parser.add_argument("--pack", default=packs.DEFAULT, choices=list(packs.PACKS),
                        help=f"the homework (default {packs.DEFAULT})")
    parser.add_argument("--solved", action="append", default=[], metavar="PACK",
                        help="ship this base pack's blocks solved instead of stubbed (e.g. --solved mlp for the "
                             "cnn and rnn packs); may be given several times")
    parser.add_argument("--gradescope", metavar="FILE.zip", help="write the Gradescope autograder bundle")
    parser.add_argument("--autolab", metavar="DIR", help="write autograde.tar and autograde-Makefile for Autolab "
                                                         "(and autolab-setup.txt) into DIR")
    args = parser.parse_args(argv)
    if not (args.dir or args.gradescope or args.autolab):
        parser.error("give DIR, --gradescope FILE.zip, --autolab DIR, or several")
    if args.solved and not args.dir:
        parser.error("--solved goes with DIR (the handout); the bundles hold no student code")
    try:
        if args.dir:
            todos = build_handout(args.dir, args.pack, tuple(args.solved))
            count = sum(len(names) for names in todos.values())
            print(f"wrote the {args.pack} handout to {args.dir}: {count} TODOs in {len(todos)} files"
                  + (f" ({', '.join(args.solved)} given solved)" if args.solved else ""))
        if args.gradescope:
            path = zip_name(args.gradescope)
            build_gradescope(path, args.pack)
            print(f"wrote the Gradescope bundle {path} ({args.pack} pack)")
        if args.autolab:
            instructions = build_autolab(args.autolab, args.pack)
            print(f"wrote {os.path.join(args.autolab, 'autograde.tar')} and "
                  f"{os.path.join(args.autolab, 'autograde-Makefile')} (this text is in autolab-setup.txt there)")
            print(instructions, end="")
    except (MarkerError, ValueError, OSError) as error:
        print(f"handout: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
