"""Scoring: load the tests and their expected values, run them in the sandbox, compare.

This module runs in the process that decides the score. It never imports or
unpickles anything from the submission: it sends each test's inputs to the
sandbox and reads back arrays (``allow_pickle=False``) and short JSON text.
"""
import json
import os
import signal
import stat
import time

import numpy as np

from autograder import sandbox, submission, wire

HERE = os.path.dirname(os.path.abspath(__file__))
PUBLIC = os.path.join(HERE, "fixtures", "public")
HIDDEN = os.path.join(HERE, "hidden", "hidden")
SECTIONS = ("autograd", "functional", "activation", "linear", "loss", "mlp")
STATUS_ORDER = ("passed", "failed", "error", "out of memory", "timeout")  # later ones win
TOLERANCES = {"float64": (1e-9, 1e-6), "float32": (1e-5, 1e-4)}  # dtype -> (atol, rtol)
OUTPUT_LINES = 15  # lines of a test's printed output shown in its feedback


class Options:
    """Per-test limits (seconds, bytes) and how tests are isolated; the defaults suit a student's laptop
    and a grading server, and are the runner's defaults.

    ``disk``: the bytes a test may hold on disk at once. ``namespaces``: isolate the tests
    in namespaces where the host allows (False does without, as where the kernel refuses
    them). ``allow_unisolated``: run hidden tests even where some isolation is missing
    (see ``isolation_problems``).
    """

    def __init__(self, timeout=5.0, memory=2 * 1024 ** 3, python=None, disk=sandbox.DISK, namespaces=True,
                 allow_unisolated=False):
        self.timeout = timeout
        self.memory = memory
        self.python = python
        self.disk = disk
        self.namespaces = namespaces
        self.allow_unisolated = allow_unisolated


class Test:
    """One test: metadata, and per case its probe, inputs, checks and expected outputs."""

    def __init__(self, meta, cases, hidden):
        self.name = meta["name"]
        self.section = meta["section"]
        self.points = meta["points"]
        self.uses = meta["uses"]
        self.description = meta["description"]
        self.hidden = hidden
        self.cases = cases

    def request(self, options):
        """The message for the sandbox: probes and parameters, plus the input arrays."""
        cases = [{"probe": case["probe"], "params": case["params"]} for case in self.cases]
        arrays = {f"{i}/{name}": value for i, case in enumerate(self.cases) for name, value in case["inputs"].items()}
        limits = {"timeout": options.timeout, "memory": options.memory}
        return {"test": self.name, "cases": cases, "limits": limits}, arrays


def load_tests(stem, hidden=False):
    """The tests in ``stem``.json and their arrays in ``stem``.npz."""
    with open(stem + ".json") as handle:
        meta = json.load(handle)
    with np.load(stem + ".npz", allow_pickle=False) as archive:
        arrays = {name: archive[name] for name in archive.files}
    tests = []
    for t, test in enumerate(meta["tests"]):
        cases = []
        for c, case in enumerate(test["cases"]):
            inputs = {name: arrays[f"t{t}|c{c}|in|{name}"] for name in case["inputs"]}
            expected = dict(case["values"])
            expected.update({name: arrays[f"t{t}|c{c}|out|{name}"] for name in case["arrays"]})
            cases.append(dict(case, inputs=inputs, expected=expected))
        tests.append(Test(test, cases, hidden))
    return tests


def protect_hidden():
    """When root, make the hidden tests readable by root only (the sandbox user must not read them)."""
    folder = os.path.dirname(HIDDEN)
    if os.geteuid() == 0 and os.path.isdir(folder):
        os.chmod(folder, stat.S_IRWXU)
        for name in os.listdir(folder):
            path = os.path.join(folder, name)
            if os.path.isfile(path) and not os.path.islink(path):
                os.chmod(path, stat.S_IRUSR | stat.S_IWUSR)


def select_tests(sections=(), hidden=False):
    """The public tests (of ``sections``, all if empty), plus the hidden ones if asked."""
    unknown = [s for s in sections if s not in SECTIONS]
    if unknown:
        raise ValueError(f"unknown section(s) {', '.join(unknown)}; the sections are {', '.join(SECTIONS)}")
    tests = load_tests(PUBLIC)
    protect_hidden()
    if hidden:
        if not os.path.exists(HIDDEN + ".json"):
            raise ValueError("--hidden: the hidden tests are not here (autograder/hidden/ is not in the handout)")
        tests += load_tests(HIDDEN, hidden=True)
    return [t for t in tests if not sections or t.section in sections]


# --------------------------------------------------------------------- comparing
def compare(name, expected, got, missing):
    """None if ``got`` matches ``expected``, else a sentence saying how it differs."""
    if not isinstance(expected, np.ndarray):
        if name in missing:
            return f"{name}: {missing[name]}"
        if got != expected:
            return f"{name}: expected {expected!r}, got {got!r}"
        return None
    if got is None:
        return f"{name}: {missing.get(name, 'not produced')}"
    if got.shape != expected.shape:
        return f"{name}: expected shape {expected.shape}, got shape {got.shape}"
    if got.dtype != expected.dtype:
        return f"{name}: expected dtype {expected.dtype}, got {got.dtype} (shape {got.shape} is right)"
    if expected.dtype.kind != "f":
        if not np.array_equal(got, expected):
            bad = np.argwhere(got != expected)[0]
            where = tuple(int(i) for i in bad)
            return f"{name}: differs at index {where}: expected {expected[where]!r}, got {got[where]!r}"
        return None
    atol, rtol = TOLERANCES.get(str(expected.dtype), TOLERANCES["float32"])
    with np.errstate(invalid="ignore", over="ignore"):
        difference = np.abs(got.astype(np.float64) - expected)
        bad = ~(difference <= atol + rtol * np.abs(expected))
    bad &= ~(np.isnan(got) & np.isnan(expected))
    if not bad.any():
        return None
    scores = np.where(bad, np.nan_to_num(difference, nan=np.inf), -1.0)
    where = np.unravel_index(int(np.argmax(scores)), expected.shape)
    index = tuple(int(i) for i in where)
    return (f"{name} (shape {expected.shape}): {int(bad.sum())} of {expected.size} values differ; largest "
            f"difference {float(difference[where]):.3g} at index {index}: expected {float(expected[where]):.6g}, "
            f"got {float(got[where]):.6g} (tolerance {atol:g} + {rtol:g} x |expected|)")


# --------------------------------------------------------------------- one test's outcome
class Result:
    """The graded outcome of one test."""

    def __init__(self, test, score, status, feedback):
        self.name = test.name
        self.section = test.section
        self.points = test.points
        self.hidden = test.hidden
        self.uses = test.uses
        self.description = test.description
        self.score = score
        self.status = status
        self.feedback = feedback


def ending_problem(reply, timeout):
    """(status, sentence) for a test process that did not end normally, else None."""
    ending = reply.get("ending")
    if ending == "timeout":
        return "timeout", f"the test did not finish within {timeout:g} s (an endless loop, or very slow code?)"
    if ending == "oversize":
        return "error", "the test sent back more than 64 MB of results"
    if ending == "disk":
        return "error", "the test wrote more to disk than its quota allows (its files were deleted)"
    number = reply.get("signal")
    if number is not None:
        try:
            name = signal.Signals(number).name
        except ValueError:
            name = str(number)
        if number == signal.SIGXCPU:
            return "timeout", f"the test used more than its CPU time ({name})"
        if number == signal.SIGSEGV:
            return "error", "the test process crashed with a segmentation fault (SIGSEGV)"
        return "error", f"the test process was killed by signal {name}"
    if reply.get("code"):
        return "error", f"the test process exited with code {reply['code']} before finishing"
    return None


def sanitize(text, limit=4000):
    """Printable text only (no terminal control sequences), tabs kept, at most ``limit`` characters."""
    text = str(text)
    if len(text) > limit:
        text = text[:limit] + " [...]"
    return "".join(ch if ch.isprintable() or ch in "\n\t" else "?" for ch in text)


def status_of(header):
    status = header.get("status")
    return status if isinstance(status, str) and status in STATUS_ORDER else "error"


def read_results(test, frames):
    """(case index -> (header, arrays), import error text, statuses, error texts) from the result frames.

    The test process sends an import error, or one frame per case in order; WireError
    if a frame cannot be read or is not the one expected next.
    """
    results, import_error, statuses, errors = {}, None, [], []
    for message in wire.split_frames(frames, limit=len(test.cases) + 1):
        header, arrays = wire.decode(message)
        if "import_error" in header and not results:
            statuses.append(status_of(header))
            import_error = sanitize(header["import_error"])
            break
        case = header.get("case")
        if type(case) is not int or case != len(results) or case >= len(test.cases):
            raise wire.WireError(f"a frame for case {case!r} arrived where case {len(results)} was expected")
        results[case] = (header, arrays)
        if header.get("error") is not None:
            statuses.append(status_of(header))
            text = sanitize(header["error"])
            if text not in errors:
                errors.append(text)
    return results, import_error, statuses, errors


def check_cases(test, results):
    """(weight earned, total weight, feedback lines) of the checks of every case."""
    lines, earned, total = [], 0.0, 0.0
    for c, case in enumerate(test.cases):
        header, arrays = results.get(c, ({}, {}))
        values = header.get("values") if isinstance(header.get("values"), dict) else {}
        missing = header.get("missing") if isinstance(header.get("missing"), dict) else {}
        not_reached = []  # checks with no output at all because the code raised first
        for check in case["checks"]:
            total += check["weight"]
            if c not in results:
                continue
            produced = [name in arrays or name in values or name in missing for name in check["outputs"]]
            if header.get("error") is not None and not any(produced):
                not_reached.append(check["label"])
                continue
            reasons = []
            for name in check["outputs"]:
                got = arrays.get(name) if isinstance(case["expected"][name], np.ndarray) else values.get(name)
                reason = compare(name, case["expected"][name], got, missing)
                if reason:
                    reasons.append(sanitize(reason, 1000))
            if reasons:
                lines.append(f"- case {c + 1} ({case['note']}), {check['label']}:")
                lines.extend(f"    {reason}" for reason in reasons)
            else:
                earned += check["weight"]
        if not_reached:
            lines.append(f"- case {c + 1} ({case['note']}): no result for {', '.join(not_reached)} "
                         "(your code raised an error, see below)")
    return earned, total, lines


def score_test(test, reply, frames, timeout):
    """A Result from the sandbox's reply and result frames (both untrusted)."""
    problem = None
    try:
        results, import_error, statuses, errors = read_results(test, frames)
    except wire.WireError as error:  # a broken or forged frame: none of this test's results count
        results, import_error, statuses = {}, None, ["error"]
        errors = [f"a result of this test could not be read, so none counts: {error} (did your code write "
                  "to the grader's pipe?)"]
    else:
        if len(results) < len(test.cases) and import_error is None:
            problem = ending_problem(reply, timeout) or (
                "error", "the test process ended before finishing (did your code call os._exit(), or close "
                         "the grader's pipe?)")
            statuses.append(problem[0])
    earned, total, lines = check_cases(test, results)
    score = round(min(test.points, test.points * earned / total if total else 0.0), 2)
    status = "passed" if score >= test.points else max(statuses + ["failed"], key=STATUS_ORDER.index)
    lines += [import_error] if import_error else []
    lines += [problem[1]] if problem else []
    lines += errors
    if status != "passed":
        lines.append(f"(this test runs your {', '.join(test.uses)})")
        output = sanitize(reply.get("output", ""), 16 * 1024).strip()
        if output:
            lines.append("your code printed:")
            lines.extend(f"  | {line[:300]}" for line in output.splitlines()[:OUTPUT_LINES])
    return Result(test, score, status, "\n".join(lines))


# --------------------------------------------------------------------- a whole submission
class Report:
    """All results of one submission, plus notes (ignored tarball entries, sandbox restarts)."""

    def __init__(self, submission, results, notes, error=None, elapsed=0.0):
        self.submission = submission
        self.results = results
        self.notes = notes
        self.error = error  # why the submission could not be graded at all, or None
        self.elapsed = elapsed

    def total(self, hidden=None):
        return round(sum(r.score for r in self.results if hidden is None or r.hidden == hidden), 2)

    def max_total(self, hidden=None):
        return sum(r.points for r in self.results if hidden is None or r.hidden == hidden)

    def section_scores(self):
        """Autolab's scores: one per public section, plus 'hidden' when hidden tests ran."""
        scores = {}
        for result in self.results:
            key = "hidden" if result.hidden else result.section
            scores[key] = round(scores.get(key, 0.0) + result.score, 2)
        return scores


def grade(path, tests, options, batch=None):
    """Grade the submission at ``path`` (folder or tarball) on ``tests``; never raises for bad submissions.

    ``batch`` is the folder holding the other submissions of a batch: hidden from the
    tests like the grader (the folder holding ``path`` always is), and named in a note
    when it could not be hidden and others can read it. Hidden tests are not run where
    ``isolation_problems`` finds any, unless ``options.allow_unisolated``.
    """
    start = time.monotonic()
    try:
        files, notes = submission.read_submission(path)
    except submission.SubmissionError as error:
        return Report(path, [], [], error=str(error), elapsed=time.monotonic() - start)
    own_tree = os.path.realpath(path) == os.path.realpath(sandbox.GRADER_ROOT)  # the local run
    try:
        with sandbox.Sandbox(files) as box:
            with sandbox.Zygote(box, options.python, hidden_folders(box, path, batch), options.namespaces,
                                options.disk) as zygote:
                zygote.start()
                problems = isolation_problems(zygote.isolation, path, batch)
                if problems and not own_tree and not options.allow_unisolated and any(t.hidden for t in tests):
                    raise sandbox.SandboxError(refusal(problems))
                results = [run_test(zygote, test, options) for test in tests]
            if not own_tree:
                notes += isolation_notes(box, zygote) + problems
    except sandbox.SandboxError as error:
        return Report(path, [], notes, error=str(error), elapsed=time.monotonic() - start)
    except Exception as error:  # the grader's own failure: this report says so, a batch goes on
        return Report(path, [], notes, error=f"grader failure: {type(error).__name__}: {error}",
                      elapsed=time.monotonic() - start)
    if zygote.restarts:
        notes.append(f"the sandbox process was restarted {zygote.restarts} time(s)")
    return Report(path, results, notes, elapsed=time.monotonic() - start)


def hidden_folders(box, path, batch=None):
    """The folders the tests of ``box`` must not see: the grader, the folder of every sandbox, the folder
    holding the submission at ``path`` and the batch folder."""
    return [sandbox.GRADER_ROOT, os.path.dirname(box.root), os.path.dirname(os.path.abspath(path))] + (
        [batch] if batch else [])


def isolation_problems(isolation, path, batch):
    """What the tests of a sandbox could do that they must not, one sentence each, from the zygote's
    report (``zygote.isolate``); empty when every guarantee of autograder/README.md holds."""
    namespaces, blocked = set(isolation.get("namespaces", ())), set(isolation.get("filter", ()))
    why = isolation.get("namespace_error") or "namespaces were not tried"
    if isolation.get("user") not in ("own", "namespace"):
        return [f"the tests ran as the grader's own user (uid {isolation.get('uid')}) without namespaces ({why}): "
                "they could read and change whatever it can (the hidden tests and their expected values included), "
                "signal its processes, and leave files anywhere it may write"]
    problems = []
    if "mount" not in namespaces:
        hidden, grader = isolation.get("hidden", {}), os.path.realpath(sandbox.GRADER_ROOT)
        if (not hidden.get(grader) and os.path.realpath(path) != grader
                and os.path.isdir(os.path.join(grader, "mytorch"))):
            problems.append(f"the grader's folder {grader} was not hidden from the tests (no mount namespace: "
                            f"{why}): they could read the reference solution in it")
        if batch and not hidden.get(os.path.realpath(batch)) and os.stat(batch).st_mode & 0o005:
            problems.append(f"the batch folder {batch} was not hidden from the tests (no mount namespace: {why}) and "
                            f"has mode {os.stat(batch).st_mode & 0o777:o}: they could read the other submissions; "
                            "make it private (chmod 700)")
    if "net" not in namespaces and "network" not in blocked:
        problems.append("the tests could use the network (no network namespace, no seccomp filter: "
                        f"{isolation.get('filter_error') or why})")
    if "ipc" not in namespaces and "ipc" not in blocked:
        problems.append("the tests could create SysV IPC objects and message queues that outlive them (no IPC "
                        f"namespace, no seccomp filter: {isolation.get('filter_error') or why})")
    if "keys" not in blocked:
        problems.append("the tests could read the keys of the grader's session keyring (no seccomp filter: "
                        f"{isolation.get('filter_error')})")
    return problems


def isolation_notes(box, zygote):
    """For the TA: which ids isolated the tests where the host's uid map is small, and whether anything
    a test wrote could not be deleted."""
    notes = []
    if box.uid is not None and not sandbox.UID_BASE <= box.uid < sandbox.UID_BASE + sandbox.SLOTS * sandbox.PIDS:
        notes.append(f"this host maps few uids (a rootless container?): the tests ran as uid {box.uid}, a mapped "
                     "uid without an account")
    elif box.uid is None and os.geteuid() == 0:
        notes.append("this host maps no uid a sandbox could use (a uid map of one id?): the tests ran in a user "
                     "namespace of their own" if zygote.isolation.get("user") == "namespace" else
                     "this host maps no uid a sandbox could use, and refused user namespaces")
    if zygote.left:
        notes.append(f"{zygote.left} files or folders the tests wrote could not be deleted")
    return notes


def refusal(problems):
    return ("the hidden tests were not run, because on this host " + "; ".join(problems) + ". Grade where "
            "namespaces are allowed (as root, or as a user with unprivileged user namespaces), or pass "
            "--allow-unisolated to grade anyway.")


def host_problems(options, path, batch=None):
    """``isolation_problems`` of a sandbox started here with ``options``, before grading ``path``."""
    with sandbox.Sandbox({}) as box:
        with sandbox.Zygote(box, options.python, hidden_folders(box, path, batch), options.namespaces,
                            options.disk) as zygote:
            zygote.start()
            return isolation_problems(zygote.isolation, path, batch)


def failure(test, text):
    """A Result with no points and status error, saying ``text``."""
    return Result(test, 0.0, "error", f"{text}\n(this test runs your {', '.join(test.uses)})")


def run_test(zygote, test, options):
    """Run one test in the sandbox and score it; a dead sandbox, or a result the grader cannot score,
    costs this test only."""
    request, arrays = test.request(options)
    try:
        reply, frames = zygote.run(request, arrays)
    except sandbox.SandboxError as error:
        return failure(test, f"the sandbox process stopped during this test ({error}): did your code kill "
                             "its parent process?")
    try:
        return score_test(test, reply, frames, options.timeout)
    except Exception as error:  # e.g. results nested too deeply to compare
        return failure(test, f"the grader could not score this test's results ({type(error).__name__}: "
                             f"{sanitize(error, 300)})")
