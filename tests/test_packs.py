"""The course packs (autograder/packs.py): each homework built, graded and handed in, one pack at a time.

For every pack: the registry lists every file once; the reference scores full marks on the
public and hidden tests; the untouched handout imports, runs and scores 0; the reference bodies
put back give the reference files and full marks, also once handed in with the handout's own
create_tarball.sh and graded by a TA with the hidden tests; the Gradescope and Autolab bundles
grade a reference hand-in to full marks. For the CNN and RNN packs: a handout whose base pack
ships solved still scores 0 untouched, every hidden kind of input is shown by a public test, the
expected values agree with finite differences (and PyTorch, where installed), and each common
wrong formula loses its tests' points and nothing else.

Every grading run of a module is started at once by one module fixture, two at a time.
"""
import concurrent.futures
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
import zipfile

import numpy as np
import pytest

from autograder import catalog_cnn, catalog_rnn, grading, handout, make_fixtures, packs, probes
from helpers import numeric_gradient
from test_autograder import FAST, patched, reference_files, write_tree

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RUNNER = os.path.join(ROOT, "autograder", "runner.py")
PACKS = list(packs.PACKS)
BUILT_ON = [name for name in PACKS if packs.get(name).bases]  # cnn, rnn
MODELS = {name: packs.get(name).handin[-1][:-len(".py")].replace("/", ".") for name in PACKS}  # hw.cnn, ...


def run(args, cwd, **kwargs):
    return subprocess.run(args, cwd=str(cwd), capture_output=True, text=True, timeout=300, **kwargs)


def hidden_points(pack):
    return sum(t.points for t in grading.select_tests(hidden=True, pack=pack) if t.hidden)


def python_files(folder):
    return sorted(os.path.relpath(os.path.join(d, n), folder).replace(os.sep, "/")
                  for d, _, names in os.walk(folder) for n in names if n.endswith(".py") and "__pycache__" not in d)


def put_back(folder, todos):
    """Put the reference bodies back into every TODO file of the handout copy ``folder``; returns the files
    that differ from the reference afterwards (none should)."""
    differ = []
    for relpath in todos:
        with open(os.path.join(ROOT, relpath)) as handle:
            reference = handle.read()
        path = os.path.join(folder, relpath)
        with open(path) as handle:
            restored = handout.restore(handle.read(), reference, relpath)
        with open(path, "w") as handle:
            handle.write(restored)
        if restored != reference:
            differ.append(relpath)
    return differ


# --------------------------------------------------------------------- the registry
def test_every_file_of_mytorch_and_hw_belongs_to_one_pack():
    assert handout.unlisted_files() == [], "add these files to a pack (or SHARED) in autograder/packs.py"
    entries = [entry for pack in packs.PACKS.values() for entry in pack.files] + list(packs.SHARED)
    assert len(entries) == len(set(entries))
    for name in PACKS:
        assert handout.student_files(pack=name)  # every listed file exists


def test_the_checkouts_create_tarball_is_the_mlp_packs():
    with open(os.path.join(ROOT, "create_tarball.sh")) as handle:
        assert handout.tarball_script("mlp") == handle.read()


@pytest.mark.parametrize("pack", PACKS)
def test_each_packs_fixtures_are_checked_alone(pack, capsys):
    assert make_fixtures.main(["--pack", pack, "--check"]) == 0
    stems = [f"autograder/fixtures/{packs.get(pack).public} (", f"autograder/hidden/{packs.get(pack).hidden} ("]
    out = capsys.readouterr().out
    assert all(stem in out for stem in stems) and out.count(" tests)") == 2


def test_an_unknown_pack_is_named_with_the_packs():
    with pytest.raises(ValueError, match="unknown pack 'gan'; the packs are mlp, cnn, rnn"):
        packs.get("gan")
    graded = run([sys.executable, RUNNER, "--pack", "gan"], ROOT)
    assert graded.returncode == 2 and "invalid choice: 'gan'" in graded.stderr


@pytest.mark.parametrize("text, message", [
    ("a = 1\n# BEGIN PACK cnn\nb = 2\n", "m.py:2: # BEGIN PACK cnn is never closed"),
    ("# BEGIN PACK cnn\n# END PACK rnn\n", "m.py:2: # END PACK rnn does not close # BEGIN PACK cnn (line 1)"),
    ("# BEGIN PACK cnn\n# BEGIN PACK rnn\n", "m.py:2: # BEGIN PACK rnn inside the pack block opened at line 1"),
])
def test_bad_pack_markers_are_errors_naming_the_line(text, message):
    with pytest.raises(handout.MarkerError, match=re.escape(message)):
        handout.keep_packs(text, "m.py", ["mlp"])


def test_pack_blocks_are_kept_only_in_the_handouts_holding_the_pack():
    text = "a = 1\n# BEGIN PACK cnn\nb = 2\n# END PACK cnn\n# BEGIN PACK rnn\nc = 3\n# END PACK rnn\n"
    assert handout.keep_packs(text, "m.py", ["mlp"]) == "a = 1\n"
    assert handout.keep_packs(text, "m.py", ["mlp", "cnn"]) == "a = 1\nb = 2\n"


@pytest.mark.parametrize("pack, solved, message", [
    ("cnn", ("rnn",), "--solved rnn: only the packs cnn builds on can ship solved (mlp)"),
    ("mlp", ("mlp",), "--solved mlp: only the packs mlp builds on can ship solved (it builds on none)"),
])
def test_only_a_base_pack_can_ship_solved(tmp_path, pack, solved, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        handout.build_handout(str(tmp_path / "h"), pack, solved)
    assert not (tmp_path / "h").exists()


# --------------------------------------------------------------------- handouts, hand-ins and bundles
def build_everything(tmp):
    """Build each pack's handout (and a cnn and rnn one with the mlp pack solved), a copy with the reference
    put back and packed by its create_tarball.sh, and each pack's bundles; returns what the tests read."""
    built = {}
    for name in PACKS + [f"{name}+mlp" for name in BUILT_ON]:
        pack, solved = name.split("+")[0], tuple(name.split("+")[1:])
        target = tmp / name / "handout"
        todos = handout.build_handout(str(target), pack, solved)
        student = tmp / name / "student"
        shutil.copytree(target, student)
        differ = put_back(str(student), todos)
        packed = run(["sh", "create_tarball.sh"], student)
        built[name] = {"pack": pack, "target": target, "todos": todos, "student": student, "differ": differ,
                       "packed": packed}
    for pack in PACKS:
        handout.build_gradescope(str(tmp / f"{pack}.zip"), pack)
        folder = tmp / f"{pack}-gradescope" / "source"
        with zipfile.ZipFile(tmp / f"{pack}.zip") as bundle:
            bundle.extractall(folder)
        handout.build_autolab(str(tmp / f"{pack}-autolab"), pack)
        job = tmp / f"{pack}-job"
        job.mkdir()
        shutil.copy(built[pack]["student"] / "handin.tar", job / "handin.tar")
        shutil.copy(tmp / f"{pack}-autolab" / "autograde.tar", job / "autograde.tar")
        shutil.copy(tmp / f"{pack}-autolab" / "autograde-Makefile", job / "Makefile")
        built[pack].update(zip=tmp / f"{pack}.zip", gradescope=folder, autolab=tmp / f"{pack}-autolab", job=job)
    return built


def gradescope_command(built, tmp):
    """run_autograder of the pack's bundle, pointed at this test's folders instead of /autograder."""
    with zipfile.ZipFile(built["zip"]) as bundle:
        script = bundle.read("run_autograder").decode()
    return (script.replace("/autograder/source", str(built["gradescope"]))
            .replace("/autograder/submission", str(built["student"] / "handin.tar"))
            .replace("/autograder/results/results.json", str(tmp / f"{built['pack']}-results.json")))


@pytest.fixture(scope="module")
def packs_built(tmp_path_factory):
    """Every handout and bundle, and every grading run of them (two at a time): name -> results."""
    tmp = tmp_path_factory.mktemp("packs")
    built = build_everything(tmp)
    jobs = {}
    for name, b in built.items():
        jobs[(name, "untouched")] = ([sys.executable, "autograder/runner.py"], b["target"])
        jobs[(name, "restored")] = ([sys.executable, "autograder/runner.py"], b["student"])
        jobs[(name, "imports")] = ([sys.executable, "-I", "-c", "import sys; sys.path.insert(0, '.'); import mytorch, "
                                   f"{MODELS[b['pack']]}; print(mytorch.__file__)"], b["target"])
    for pack in PACKS:
        b = built[pack]
        jobs[(pack, "ta")] = ([sys.executable, RUNNER, "--pack", pack, "--submission", str(b["student"] / "handin.tar"),
                               "--hidden"], ROOT)
        jobs[(pack, "gradescope")] = (["bash", "-c", gradescope_command(b, tmp)], tmp)
        jobs[(pack, "autolab")] = (["make"], b["job"])
    for pack in BUILT_ON:
        jobs[(pack, "reference")] = ([sys.executable, RUNNER, "--pack", pack, "--submission", ROOT, "--hidden"], ROOT)
    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        done = dict(zip(jobs, pool.map(lambda job: run(*job), jobs.values())))
    return {"tmp": tmp, "built": built, "runs": done}


def total_line(run_):
    return [line for line in run_.stdout.splitlines() if line.startswith("Total: ")][-1]


@pytest.mark.parametrize("pack", BUILT_ON)
def test_the_reference_scores_full_marks_on_public_and_hidden_tests(packs_built, pack):
    graded = packs_built["runs"][(pack, "reference")]  # (the mlp pack's: tests/test_autograder.py)
    assert graded.returncode == 0, graded.stderr
    assert total_line(graded) == f"Total: 100/100 public + {hidden_points(pack)}/{hidden_points(pack)} hidden = " \
                                 f"{100 + hidden_points(pack)}/{100 + hidden_points(pack)}"


@pytest.mark.parametrize("name", PACKS + [f"{pack}+mlp" for pack in BUILT_ON])
def test_the_untouched_handout_imports_runs_and_scores_zero(packs_built, name):
    b, runs = packs_built["built"][name], packs_built["runs"]
    imported = runs[(name, "imports")]
    assert imported.returncode == 0 and imported.stdout.startswith(str(b["target"])), imported.stderr
    graded = runs[(name, "untouched")]
    assert graded.returncode == 0, graded.stderr
    lines = graded.stdout.strip().splitlines()
    assert json.loads(lines[-1]) == {"scores": {s: 0.0 for s in packs.get(b["pack"]).sections}}
    assert lines[-2] == "Total: 0/100"
    assert f"mytorch autograder, {packs.get(b['pack']).title}: public tests" in lines[0]
    assert "NotImplementedError" in graded.stdout and "Traceback" not in graded.stdout


@pytest.mark.parametrize("name", PACKS + [f"{pack}+mlp" for pack in BUILT_ON])
def test_the_reference_put_back_gives_the_reference_files_and_full_marks(packs_built, name):
    b = packs_built["built"][name]
    assert b["todos"] and b["differ"] == []
    graded = packs_built["runs"][(name, "restored")]
    lines = graded.stdout.strip().splitlines()
    assert lines[-2] == "Total: 100/100", graded.stdout[-3000:]
    assert json.loads(lines[-1]) == {"scores": {s: float(p) for s, p in packs.get(b["pack"]).sections.items()}}


@pytest.mark.parametrize("name", PACKS + [f"{pack}+mlp" for pack in BUILT_ON])
def test_a_handout_holds_its_packs_files_and_nothing_of_the_others(packs_built, name):
    b = packs_built["built"][name]
    target, pack = b["target"], b["pack"]
    held = {p for p in python_files(target) if not p.startswith("autograder/")}
    listed = {p for p in handout.student_files(pack=pack) if p.endswith(".py")}
    assert held == listed
    others = {p for p in python_files(ROOT) if packs.owner(p) not in (None, "shared")
              and packs.owner(p) not in [c.name for c in packs.chain(pack)]}
    assert others and not held & others
    for relpath in held:
        text = (target / relpath).read_text()
        assert "# BEGIN PACK" not in text and "# END PACK" not in text, relpath
        assert handout.BEGIN not in text and handout.END not in text, relpath
    fixtures = sorted(os.listdir(target / "autograder" / "fixtures"))
    assert fixtures == sorted(f"{p.public}{ext}" for p in packs.chain(pack) for ext in (".json", ".npz"))
    assert (target / "autograder" / "pack.txt").read_text() == f"{pack}\n"
    assert not (target / "autograder" / "hidden").exists()


def test_the_mlp_handout_holds_no_cnn_or_rnn_file(packs_built):
    target = packs_built["built"]["mlp"]["target"]
    names = python_files(target)
    assert not [n for n in names if "cnn" in n or "rnn" in n or n.endswith(("conv.py", "pool.py"))]
    assert "functional_cnn" not in (target / "mytorch" / "nn" / "__init__.py").read_text()
    assert "Conv" not in (target / "mytorch" / "nn" / "modules" / "__init__.py").read_text()


@pytest.mark.parametrize("pack", BUILT_ON)
def test_a_solved_base_pack_ships_the_reference_bodies_and_a_readme_saying_so(packs_built, pack):
    stubbed, solved = packs_built["built"][pack], packs_built["built"][f"{pack}+mlp"]
    assert {packs.owner(p) for p in solved["todos"]} == {pack}
    assert {packs.owner(p) for p in stubbed["todos"]} == {"mlp", pack}
    for relpath in ("mytorch/autograd_engine.py", "hw/mlp.py"):
        with open(os.path.join(ROOT, relpath)) as handle:
            reference = handle.read()
        assert (solved["target"] / relpath).read_text() == handout.solved(reference, relpath)
    readme = " ".join((solved["target"] / "README.md").read_text().split())  # (paragraphs are wrapped)
    assert "given complete" in readme and "bring your code" not in readme
    readme = " ".join((stubbed["target"] / "README.md").read_text().split())
    assert "bring your code from the earlier homework" in readme and "--pack mlp" in readme
    assert "`Autograd.backward`" in readme and "`MLP.forward`" in readme


@pytest.mark.parametrize("pack", PACKS)
def test_the_readme_and_project_are_the_packs(packs_built, pack):
    target = packs_built["built"][pack]["target"]
    readme = (target / "README.md").read_text()
    this = packs.get(pack)
    assert this.trainer in readme and not re.search(r"\{[a-z_]+\}", readme)  # every placeholder filled
    for path, names in packs_built["built"][pack]["todos"].items():
        assert all(f"`{name}`" in readme for name in names), path
    project = (target / "pyproject.toml").read_text()
    assert this.title in project and 'include = ["mytorch*"]' in project


@pytest.mark.parametrize("pack", PACKS)
def test_create_tarball_packs_the_packs_files_and_a_ta_grades_them_to_full_marks(packs_built, pack):
    b = packs_built["built"][pack]
    assert b["packed"].returncode == 0 and b["packed"].stderr == "", b["packed"].stderr
    assert f"--pack {pack} --submission handin.tar" in b["packed"].stdout
    with tarfile.open(b["student"] / "handin.tar") as archive:
        names = sorted(archive.getnames())
    expected = [p for p in python_files(b["student"]) if p.startswith("mytorch/")] + packs.handin(pack)
    assert names == sorted(expected)
    graded = packs_built["runs"][(pack, "ta")]
    assert graded.returncode == 0, graded.stderr
    assert total_line(graded) == f"Total: 100/100 public + {hidden_points(pack)}/{hidden_points(pack)} hidden = " \
                                 f"{100 + hidden_points(pack)}/{100 + hidden_points(pack)}"


@pytest.mark.parametrize("pack", BUILT_ON)
def test_create_tarball_requires_the_packs_model_file(packs_built, tmp_path, pack):
    student = tmp_path / "student"
    shutil.copytree(packs_built["built"][pack]["target"], student)
    model = packs.get(pack).handin[-1]  # hw/cnn.py, hw/rnn.py
    (student / model).unlink()
    packed = run(["sh", "create_tarball.sh"], student)
    assert packed.returncode == 1 and f"required file(s) missing: {model}" in packed.stderr


@pytest.mark.parametrize("pack", PACKS)
def test_the_gradescope_bundle_grades_a_reference_handin_to_full_marks(packs_built, pack):
    b, tmp = packs_built["built"][pack], packs_built["tmp"]
    with zipfile.ZipFile(b["zip"]) as bundle:
        names = set(bundle.namelist())
        assert f"--pack {pack} " in bundle.read("run_autograder").decode()
    fixtures = {f"autograder/fixtures/{packs.get(pack).public}.json", f"autograder/hidden/{packs.get(pack).hidden}.npz"}
    assert fixtures | {"autograder/pack.txt", "autograder/packs.py", "setup.sh"} <= names
    assert not any(name.startswith(("mytorch", "hw/")) or "catalog" in name for name in names)
    assert len([name for name in names if name.startswith("autograder/hidden/")]) == 2  # this pack's only
    graded = packs_built["runs"][(pack, "gradescope")]
    assert graded.returncode == 0, graded.stderr
    results = json.loads((tmp / f"{pack}-results.json").read_text())
    assert results["score"] == 100 + hidden_points(pack)
    assert all(t["status"] == "passed" for t in results["tests"])


@pytest.mark.parametrize("pack", PACKS)
def test_the_autolab_bundle_grades_a_reference_handin_to_full_marks(packs_built, pack):
    b = packs_built["built"][pack]
    made = packs_built["runs"][(pack, "autolab")]
    assert made.returncode == 0, made.stdout[-2000:] + made.stderr
    expected = dict(packs.get(pack).sections, hidden=hidden_points(pack))
    assert json.loads(made.stdout.rstrip("\n").splitlines()[-1]) == {"scores": {k: float(v) for k, v in
                                                                                expected.items()}}
    with tarfile.open(b["autolab"] / "autograde.tar") as archive:
        names = set(archive.getnames())
    assert "autograder/pack.txt" in names and not any(n.startswith(("mytorch", "hw/")) for n in names)
    makefile = (b["autolab"] / "autograde-Makefile").read_text()
    assert f"runner.py --pack {pack} " in makefile
    instructions = (b["autolab"] / "autolab-setup.txt").read_text()
    for text in (makefile, instructions):  # the hidden tests on Autolab: what happens, and the choices
        assert "user namespaces" in text and "GRADER_FLAGS = --allow-unisolated" in text and "HIDDEN =" in text
    width = max(len(name) for name in expected)
    for name, points in expected.items():
        assert f"     {name:<{width}}  {points:>4g}\n" in instructions


def test_the_autolab_makefile_passes_the_instructors_choices_to_the_grader(packs_built, tmp_path):
    """HIDDEN= grades the public tests only; the flags given in GRADER_FLAGS reach the runner."""
    job = tmp_path / "job"
    shutil.copytree(packs_built["built"]["rnn"]["job"], job)
    made = run(["make", "HIDDEN=", "GRADER_FLAGS=--timeout 3"], job)
    assert made.returncode == 0, made.stderr
    assert json.loads(made.stdout.splitlines()[-1]) == {"scores": {k: float(v) for k, v in
                                                                   packs.get("rnn").sections.items()}}


def test_on_a_host_without_user_namespaces_the_autolab_job_does_what_its_instructions_say(packs_built):
    """Autolab's case (an ordinary user whose kernel refuses user namespaces): by default the hidden tests are
    not run (0, with the reason) and the public tests graded; GRADER_FLAGS=--allow-unisolated grades them anyway,
    with notes saying what is missing; HIDDEN= grades the public tests only."""
    from test_grader_isolation import AS_ROOT, LAUNCHER, USER

    if not AS_ROOT:
        pytest.skip("simulating an ordinary user without user namespaces needs root")
    uid = USER + 2
    spec = {"kind": "map", "uid": uid, "map": f"{uid} {uid} 1", "no_userns": True, "grader": ROOT}
    base = tempfile.mkdtemp(prefix="mytorch-autolab-")
    try:
        os.chmod(base, 0o711)
        expected = dict(packs.get("rnn").sections, hidden=hidden_points("rnn"))
        outcomes = {}
        for name, args in (("default", []), ("unisolated", ["GRADER_FLAGS=--allow-unisolated"]),
                           ("public only", ["HIDDEN="])):
            job = os.path.join(base, name.replace(" ", "-"))
            shutil.copytree(packs_built["built"]["rnn"]["job"], job, ignore=shutil.ignore_patterns("autograder", "*.out"))
            for folder, _, names in os.walk(job):
                os.chown(folder, uid, uid)
                for entry in names:
                    os.chown(os.path.join(folder, entry), uid, uid)
            command = [shutil.which("make"), f"PYTHON={sys.executable}"] + args
            outcomes[name] = run([sys.executable, "-c", LAUNCHER, json.dumps(spec)] + command, job,
                                 env={"PATH": os.defpath, "HOME": job, "TMPDIR": job, "LANG": "C.UTF-8"})
        for name, made in outcomes.items():
            assert made.returncode == 0, (name, made.stdout[-2000:], made.stderr[-2000:])
        scores = {name: json.loads(made.stdout.splitlines()[-1])["scores"] for name, made in outcomes.items()}
        assert scores["default"] == dict({k: float(v) for k, v in packs.get("rnn").sections.items()}, hidden=0.0)
        assert "the hidden tests were not run, because on this host" in outcomes["default"].stdout
        assert "--allow-unisolated" in outcomes["default"].stdout
        assert scores["unisolated"] == {k: float(v) for k, v in expected.items()}
        assert "Note: the tests ran as the grader's own user" in outcomes["unisolated"].stdout
        assert scores["public only"] == {k: float(v) for k, v in packs.get("rnn").sections.items()}
    finally:
        shutil.rmtree(base, ignore_errors=True)


# --------------------------------------------------------------------- grading in threads
class Finalized:
    """Cyclic garbage whose finalizer runs Python code: the collector may run it in the middle of building an
    AST, and the interpreter may then switch threads (what the grader's sandboxes and archives do)."""

    def __del__(self):
        sum(range(50))


def test_two_threads_read_results_and_given_code_at_once():
    """--jobs 2: one thread reads a test's result arrays (NumPy reads each .npy header with ast.literal_eval)
    while the other digests given code (ast.parse); CPython's AST building is not thread-safe, so without
    wire.AST_LOCK this raised "SystemError: AST constructor recursion depth mismatch" within a second."""
    with open(os.path.join(ROOT, "mytorch", "nn", "functional_cnn.py")) as handle:
        text = handle.read()
    message = grading.wire.encode({"case": 0}, {"grad0": np.zeros((3, 4)), "grad1": np.ones(2, np.float32)})
    errors, stop = [], []

    def hammer(work):
        while not stop:
            a, b = Finalized(), Finalized()
            a.other, b.other = b, a
            try:
                work()
            except SystemError as error:
                errors.append(error)

    threads = [threading.Thread(target=hammer, args=(lambda: grading.function_digests(text),)),
               threading.Thread(target=hammer, args=(lambda: grading.wire.decode(message),))]
    switch = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        for thread in threads:
            thread.start()
        time.sleep(2)
    finally:
        stop.append(True)
        for thread in threads:
            thread.join()
        sys.setswitchinterval(switch)
    assert errors == []


# --------------------------------------------------------------------- fair tests
CATALOGS = {"cnn": (catalog_cnn, "autograder.hidden.catalog_cnn"), "rnn": (catalog_rnn, "autograder.hidden.catalog_rnn")}


def categories(tests):
    return {(case.unit, kind) for t in tests for case in t.cases for kind in case.kinds}


@pytest.mark.parametrize("pack", BUILT_ON)
def test_every_kind_of_input_a_hidden_test_grades_appears_in_a_public_test(pack):
    import importlib

    public_catalog, hidden_name = CATALOGS[pack]
    public = categories(public_catalog.public_tests())
    hidden = categories(importlib.import_module(hidden_name).hidden_tests())
    assert hidden and not hidden - public, f"hidden kinds no public test shows: {sorted(hidden - public)}"


@pytest.mark.parametrize("pack", BUILT_ON)
def test_public_tests_show_the_odd_inputs(pack):
    kinds = {kind for _, kind in categories(CATALOGS[pack][0].public_tests())}
    wanted = {"float32", "batch of 1"} | ({"window as wide as the input", "stride > 1", "one channel",
                                           "several channels", "ties", "padding", "on your engine"}
                                          if pack == "cnn" else
                                          {"relu nonlinearity", "no h (zeros)", "one time step", "on your engine",
                                           "every step's hidden state returned", "0-d inputs",
                                           "inputs of different sizes along the axis"})
    assert wanted <= kinds, sorted(wanted - kinds)


@pytest.mark.parametrize("pack", PACKS)
def test_each_test_uses_a_block_of_its_own_pack(pack, monkeypatch):
    handout.check_uses(pack)
    blocks = handout.blocks_by_pack(pack)
    assert all(blocks.values()) and set(blocks) == {p.name for p in packs.chain(pack)}
    if pack != "mlp":  # a test of the pack that ran only the base pack's code would pass with --solved mlp
        only_mlp = grading.load_tests(grading.public_stem(pack))[:1]
        only_mlp[0].uses = ["MLP.forward"]
        monkeypatch.setattr(grading, "load_tests", lambda stem, hidden=False: only_mlp)
        with pytest.raises(handout.MarkerError, match="uses no solution block of the .* pack itself"):
            handout.check_uses(pack)


def test_each_pack_has_its_own_given_code_manifest():
    cnn = grading.given_of(grading.select_tests(pack="cnn"))
    assert "im2col" in cnn["mytorch/nn/functional_cnn.py"] and "add_backward" in cnn["mytorch/nn/functional.py"]
    assert not any("cnn" in path or "rnn" in path for path in grading.given_of(grading.select_tests(pack="mlp")))
    files = reference_files()
    path = "mytorch/nn/functional_cnn.py"
    files[path] = files[path].replace(b"def im2col(x, kernel):\n", b"def im2col(x, kernel):\n    x = x * 1\n")
    assert [change.split(" (line")[0] for change in grading.given_changes(files, cnn)] == [f"im2col in {path}"]


def test_a_handin_holds_the_homeworks_files_under_hw(tmp_path):
    write_tree(str(tmp_path), reference_files())
    (tmp_path / "hw" / "cnn_runner.py").write_text("print('not handed in')\n")
    files, _ = grading.submission.read_submission(str(tmp_path))
    assert {"hw/mlp.py", "hw/cnn.py", "hw/rnn.py"} <= set(files) and "hw/cnn_runner.py" not in files


# --------------------------------------------------------------------- expected values, independently
def float64(arrays):
    return {name: np.array(value, dtype=np.float64) if value.dtype.kind == "f" else value
            for name, value in arrays.items()}


def cnn_model_forward(params, arrays, x):
    """The CNN (convolution, ReLU, 2x2 max pooling per block; Flatten; Linear), from probes.FORWARD."""
    out, blocks = x, len(params["channels"])
    for i in range(blocks):
        out = probes.FORWARD["maxpool2d"](np.maximum(probes.conv_stride1(out, arrays[f"W{i}"], arrays[f"b{i}"]), 0),
                                          2, 2)
    return out.reshape(len(out), -1) @ arrays[f"W{blocks}"].T + arrays[f"b{blocks}"]


def gru_classifier_forward(params, arrays, x):
    names = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
    cell = dict(zip(names, (arrays[f"p{i}"] for i in range(4))),
                x=x.reshape(len(x), params["steps"], params["input_size"]))
    last = catalog_rnn.cell_forward({"cell": "GRUCell", "options": {}, "sequence": {"return_sequence": False}}, cell)
    return last @ arrays["p4"].T + arrays["p5"]


def independent(case):
    """(forward, {output name: input name}) of a case: its output from the inputs by formulas written apart from
    the reference, and which expected gradient belongs to which input."""
    probe, params = case["probe"], case["params"]
    if probe == "primitive":
        n = params["n_inputs"]
        kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in params["kwargs"].items()}
        function = probes.FORWARD[params["name"][:-len("_backward")]]
        return (lambda a: function(*[a[f"in{i}"] for i in range(n)], **kwargs)), {f"grad{i}": f"in{i}"
                                                                                  for i in range(n)}
    if probe == "layer":
        grads = {"dx": "x"} | ({"dW": "W", "db": "b"} if params["module"].startswith("Conv") else {})
        return (lambda a: catalog_cnn.FORWARD_OF[params["module"]](a, params["options"])), grads
    if probe == "recurrent":
        grads = {"dx": "x", "dh": "h"} | {f"d{name}": name for name in probes.RECURRENT_PARAMETERS}
        return (lambda a: catalog_rnn.cell_forward(params, a)), grads
    if params["model"] == "CNN":
        layers = len(params["channels"]) + 1
        return (lambda a: cnn_model_forward(params, a, a["x"])), {f"grad {n}{i}": f"{n}{i}" for i in range(layers)
                                                                  for n in "Wb"}
    return (lambda a: gru_classifier_forward(params, a, a["x"])), dict(zip(probes.GRU_CLASSIFIER_GRADIENTS,
                                                                           (f"p{i}" for i in range(6))))


def close(got, expected, what, single):
    """float64 values against an expected array: to rounding (float64) or float32's precision."""
    tol = dict(rtol=1e-4, atol=1e-4) if single else dict(rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(np.asarray(got, dtype=np.float64), np.asarray(expected, dtype=np.float64),
                               err_msg=what, **tol)


PACK_CASES = [pytest.param(pack, t, i, c, id=f"{pack} {'hidden ' if t.hidden else ''}{t.name} case {i + 1}")
              for pack in BUILT_ON for t in grading.select_tests(hidden=True, pack=pack) for i, c in enumerate(t.cases)]


@pytest.mark.parametrize("pack, test, index, case", PACK_CASES)
def test_expected_values_match_finite_differences(pack, test, index, case):
    params, expected = case["params"], case["expected"]
    arrays = float64(case["inputs"])
    single = any(a.dtype == np.float32 for a in case["inputs"].values())
    forward, grads = independent(case)
    mode = params.get("mode")
    if mode == "zero_grads":
        assert expected["tape_length"] == 0 and all(not expected[k].any() for k in expected if k[:2] in ("dW", "db"))
        return
    if mode == "step":
        for i in range(len(params["channels"]) + 1):
            for p in "Wb":
                param, velocity = arrays[f"{p}{i}"].copy(), arrays[f"momentum_{p}{i}"].copy()
                for _ in range(params["steps"]):
                    velocity = params["momentum"] * velocity - params["lr"] * arrays[f"d{p}{i}"]
                    param = param + velocity
                close(param, expected[f"{p}{i}"], f"{p}{i}", single)
                close(velocity, expected[f"momentum_{p}{i}"], f"momentum_{p}{i}", single)
        return
    out = forward(arrays)
    for name in ("y", "output", "cnn.output"):
        if name in expected:
            close(out, expected[name], name, single)
    if "ties" in case["kinds"] or (params.get("model") == "CNN" and mode == "forward"):
        return  # no gradient there (max pooling's choice among ties is checked against PyTorch below)
    g = arrays["grad_output"]
    for output, name in grads.items():
        if name not in arrays:
            continue
        numeric = numeric_gradient(lambda: float(np.sum(forward(arrays) * g)), arrays[name])
        if mode == "train_step":  # one SGD step from zero momentum: param - lr * gradient
            close(arrays[name] - params["lr"] * numeric, expected[name], name, single)
        else:
            close(numeric, expected[output], output, single)


def torch_twin(T, case, tensors):
    """The PyTorch output of a case ``has_torch_twin`` accepts, from leaf tensors named like its inputs."""
    params, F = case["params"], T.nn.functional
    if case["probe"] == "primitive":
        name, kw = params["name"][:-len("_backward")], params["kwargs"]
        ins = [tensors[f"in{i}"] for i in range(params["n_inputs"])]
        if name.startswith("conv"):
            return (F.conv1d if ins[0].dim() == 3 else F.conv2d)(*ins)
        if name in ("maxpool2d", "meanpool2d"):
            return (F.max_pool2d if name == "maxpool2d" else F.avg_pool2d)(ins[0], kw["kernel_size"], kw["stride"])
        return (T.stack if name == "stack" else T.cat)(ins, kw.get("axis", 0))
    if case["probe"] == "layer":
        options = params["options"]
        x = tensors["x"]
        if params["module"].startswith("Conv"):
            conv = F.conv1d if x.dim() == 3 else F.conv2d
            return conv(x, tensors["W"], tensors["b"], stride=options.get("stride", 1), padding=options.get("padding", 0))
        pool = F.max_pool2d if params["module"] == "MaxPool2d" else F.avg_pool2d
        return pool(x, options["kernel_size"], options.get("stride") or options["kernel_size"])
    cell_class = T.nn.GRUCell if params["cell"] == "GRUCell" else T.nn.RNNCell
    hidden = tensors["weight_hh"].shape[1]
    kw = {} if params["cell"] == "GRUCell" else {"nonlinearity": params["options"].get("nonlinearity", "tanh")}
    cell = cell_class(tensors["weight_ih"].shape[1], hidden, dtype=tensors["x"].dtype, **kw)
    for name in probes.RECURRENT_PARAMETERS:  # the cell's own leaves, read back by the caller
        tensors[name] = T.nn.Parameter(tensors[name].detach())
        setattr(cell, name, tensors[name])
    h = tensors.get("h")
    if params.get("sequence") is None:
        return cell(tensors["x"], h)
    states = []
    for t in range(tensors["x"].shape[1]):
        h = cell(tensors["x"][:, t], h)
        states.append(h)
    return T.stack(states, 1) if params["sequence"]["return_sequence"] else h


def has_torch_twin(case):
    """Convolutions, pooling, stacking and the cells; resampling and flattening (slicing and reshaping) and the
    models are left to the finite differences."""
    params = case["params"]
    if case["probe"] == "primitive":
        return params["name"].startswith(("conv", "maxpool", "meanpool", "stack", "concatenate"))
    return case["probe"] == "recurrent" or (case["probe"] == "layer" and params["module"].startswith(("Conv", "Max",
                                                                                                     "Mean")))


@pytest.mark.parametrize("pack, test, index, case", [p for p in PACK_CASES if has_torch_twin(p.values[3])])
def test_expected_values_match_pytorch(pack, test, index, case):
    T = pytest.importorskip("torch")
    tensors = {name: T.tensor(value, requires_grad=value.dtype.kind == "f") for name, value in case["inputs"].items()
               if name != "grad_output"}
    out = torch_twin(T, case, tensors)
    _, grads = independent(case)
    expected = case["expected"]
    out.backward(T.tensor(case["inputs"]["grad_output"]))
    single = out.dtype == T.float32
    if "y" in expected:
        close(out.detach().numpy(), expected["y"], "y", single)
    for output, name in grads.items():
        if name in tensors and output in expected:
            assert expected[output].dtype == case["inputs"][name].dtype
            close(tensors[name].grad.numpy(), expected[output], output, single)


# --------------------------------------------------------------------- wrong formulas
FCNN, FRNN = "mytorch/nn/functional_cnn.py", "mytorch/nn/functional_rnn.py"
MODULES = "mytorch/nn/modules/"
# "block: the mistake" -> [(file, old, new)]: the common mistakes of each pack; each must cost its tests' points.
WRONG = {
    "cnn": {
        "conv_stride1_backward: dx with the kernel flipped (the flip convention)": [
            (FCNN, "grad_cols = W.reshape(c_out, -1).T @ g",
             "grad_cols = np.flip(W, axis=tuple(range(2, W.ndim))).reshape(c_out, -1).T @ g")],
        "conv_stride1_backward: dW from the wrong transpose": [
            (FCNN, "grad_W = (g @ cols.transpose(0, 2, 1)).sum(axis=0)", "grad_W = (cols @ g.transpose(0, 2, 1)).sum(axis=0)")],
        "conv_stride1_backward: db not summed over the positions": [
            (FCNN, "grad_b = g.sum(axis=(0, 2))", "grad_b = g.sum(axis=0)")],
        "conv_stride1_backward: dW not summed over the batch": [
            (FCNN, "grad_W = (g @ cols.transpose(0, 2, 1)).sum(axis=0)", "grad_W = (g @ cols.transpose(0, 2, 1))[0]")],
        "downsampling1d_backward: the gradient put in the first entries": [
            (FCNN, "grad[..., ::factor] = grad_output", "grad[..., :grad_output.shape[-1]] = grad_output")],
        "downsampling2d_backward: only the rows downsampled": [
            (FCNN, "grad[..., ::factor, ::factor] = grad_output", "grad[..., ::factor, :grad_output.shape[-1]] = grad_output")],
        "upsampling1d_backward: the first entries, not every factor-th": [
            (FCNN, "grad = grad_output[..., ::factor]\n", "grad = grad_output[..., :x.shape[-1]]\n")],
        "upsampling2d_backward: scaled by the factor (taken for a repetition)": [
            (FCNN, "grad = grad_output[..., ::factor, ::factor]", "grad = grad_output[..., ::factor, ::factor] * factor")],
        "flatten_backward: column-major order": [
            (FCNN, "grad = grad_output.reshape(x.shape)", 'grad = grad_output.reshape(x.shape, order="F")')],
        "maxpool2d_backward: every tied maximum gets the gradient": [
            (FCNN, "winner = (view[(Ellipsis,) + offset] == out) & ~found", "winner = view[(Ellipsis,) + offset] == out")],
        "meanpool2d_backward: divided by k, not k * k": [
            (FCNN, "share = grad_output / (kernel_size * kernel_size)", "share = grad_output / kernel_size")],
        "_ConvNd.forward: the padding forgotten": [(MODULES + "conv.py", "if self.padding > 0:", "if False:")],
        "_ConvNd.forward: dW not given to the tape": [
            (MODULES + "conv.py", "[None, self.dW, self.db]", "[None, None, self.db]")],
        "_Pool2d.forward: the stride taken to be the kernel size": [
            (MODULES + "pool.py", "out = self.pool(x, self.kernel_size, self.stride)",
             "out = self.pool(x, self.kernel_size, self.kernel_size)")],
        "Flatten.forward: not recorded": [
            (MODULES + "flatten.py", "self.autograd_engine.add_operation([x], out, [None], F.flatten_backward)", "pass")],
        "_Resample.forward: the factor not passed to the backward": [
            (MODULES + "resampling.py", "self.resample_backward, factor=self.factor)", "self.resample_backward)")],
        "CNN.forward: the last layer skipped": [("hw/cnn.py", "for layer in self.layers:", "for layer in self.layers[:-1]:")],
        "CNN.zero_grads: the tape not emptied": [("hw/cnn.py", "self.autograd_engine.zero_grad()\n", "pass\n")],
        "CNN.step: the update's sign": [("hw/cnn.py", "velocity -= self.lr * grad", "velocity += self.lr * grad")],
    },
    "rnn": {
        "stack_backward: always split along axis 0": [
            (FRNN, "slices = np.moveaxis(grad_output, axis, 0)", "slices = grad_output")],
        "concatenate_backward: equal pieces": [
            (FRNN, "pieces = np.split(grad_output, np.cumsum(sizes)[:-1], axis=axis)",
             "pieces = np.split(grad_output, len(inputs), axis=axis)")],
        "RNNCell.forward: always tanh": [(MODULES + "rnn.py", 'if self.nonlinearity == "tanh":', "if True:")],
        "GRUCell.forward: the gates r and z swapped": [
            (MODULES + "rnn.py", "r = self._sigmoid(self._add(self._gate(gi, 0), self._gate(gh, 0)))",
             "r = self._sigmoid(self._add(self._gate(gi, 1), self._gate(gh, 1)))"),
            (MODULES + "rnn.py", "z = self._sigmoid(self._add(self._gate(gi, 1), self._gate(gh, 1)))",
             "z = self._sigmoid(self._add(self._gate(gi, 0), self._gate(gh, 0)))")],
        "GRUCell.forward: h' = (1 - z) * h + z * n": [
            (MODULES + "rnn.py", "h_minus_n = self._record(sub_backward, h - n, h, n)\n        return self._add(n, ",
             "h_minus_n = self._record(sub_backward, n - h, n, h)\n        return self._add(h, ")],
        "Recurrent.forward: no backpropagation through time (the state handed on as a copy)": [
            (MODULES + "rnn.py", "h = cell(x_t, h)", "h = cell(x_t, None if h is None else h.copy())")],
        "Recurrent.forward: the time steps sliced without recording": [
            (MODULES + "rnn.py", "engine.add_operation([x], x_t, [None], getitem_backward, index=index)\n", "\n")],
        "GRUClassifier.forward: the first hidden state, not the last": [
            ("hw/rnn.py", "self.output = self.linear(self.rnn(self.sequences(x)))",
             "self.rnn(self.sequences(x))\n        self.output = self.linear(self.rnn.hiddens[0])")],
    },
}
WRONG_CASES = [(pack, mistake) for pack in WRONG for mistake in WRONG[pack]]


@pytest.fixture(scope="module")
def wrong_reports(tmp_path_factory):
    """(pack, mistake) -> the report of the reference with that mistake, on the pack's public tests."""
    tmp = tmp_path_factory.mktemp("wrong")
    tests = {pack: grading.select_tests(pack=pack) for pack in WRONG}

    def grade(item):
        (pack, mistake), number = item
        folder = write_tree(str(tmp / f"m{number}"), patched(WRONG[pack][mistake]))
        return (pack, mistake), grading.grade(folder, tests[pack], FAST)

    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        return dict(pool.map(grade, zip(WRONG_CASES, range(len(WRONG_CASES)))))


@pytest.mark.parametrize("pack, mistake", WRONG_CASES, ids=[f"{p}: {m}" for p, m in WRONG_CASES])
def test_a_common_mistake_loses_its_tests_points_and_nothing_else(wrong_reports, pack, mistake):
    rep = wrong_reports[(pack, mistake)]
    block = mistake.split(":")[0]
    users = {t.name for t in grading.select_tests(pack=pack) if block in t.uses}
    lost = {r.name for r in rep.results if r.score < r.points}
    assert users and lost and lost <= users, f"lost {sorted(lost)}; tests using {block}: {sorted(users)}"
    for r in rep.results:
        if r.name in lost:
            assert r.status in ("failed", "error") and r.feedback
