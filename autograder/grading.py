"""Scoring: load the tests and their expected values, run them in the sandbox, compare.

This module runs in the process that decides the score. It never imports or
unpickles anything from the submission: it sends each test's inputs to the
sandbox and reads back arrays (``allow_pickle=False``) and short JSON text.
"""
import ast
import builtins
import hashlib
import json
import os
import re
import signal
import stat
import time
import tokenize

import numpy as np

from autograder import packs, sandbox, submission, wire

HERE = os.path.dirname(os.path.abspath(__file__))


def public_stem(pack):
    """Where the public tests of ``pack`` are: ``stem``.json and ``stem``.npz."""
    return os.path.join(HERE, "fixtures", packs.get(pack).public)


def hidden_stem(pack):
    """Where the hidden tests of ``pack`` are (never in a handout)."""
    return os.path.join(HERE, "hidden", packs.get(pack).hidden)


PUBLIC, HIDDEN = public_stem(packs.DEFAULT), hidden_stem(packs.DEFAULT)  # the MLP homework's
SECTIONS = tuple(packs.get(packs.DEFAULT).sections)
STATUS_ORDER = ("passed", "failed", "error", "out of memory", "timeout")  # later ones win
TOLERANCES = {"float64": (1e-9, 1e-6), "float32": (1e-5, 1e-4)}  # dtype -> (atol, rtol)
OUTPUT_LINES = 15  # lines of a test's printed output shown in its feedback


class Options:
    """Per-test limits (seconds, bytes), the limit for a whole submission (``total`` seconds, default 20
    tests' worth; tests not started by then are not run) and how tests are isolated; the defaults suit a
    student's laptop and a grading server, and are the runner's defaults.

    ``disk``: the bytes a test may hold on disk at once. ``namespaces``: isolate the tests
    in namespaces where the host allows (False does without, as where the kernel refuses
    them). ``allow_unisolated``: run hidden tests even where some isolation is missing
    (see ``isolation_problems``).
    """

    def __init__(self, timeout=5.0, memory=2 * 1024 ** 3, python=None, disk=sandbox.DISK, namespaces=True,
                 allow_unisolated=False, total=None):
        self.timeout = timeout
        self.total = 20 * timeout if total is None else total
        self.memory = memory
        self.python = python
        self.disk = disk
        self.namespaces = namespaces
        self.allow_unisolated = allow_unisolated


class Test:
    """One test: metadata, and per case its probe, inputs, checks and expected outputs."""

    def __init__(self, meta, cases, hidden, pack=packs.DEFAULT):
        self.pack = pack
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
    with wire.AST_LOCK, np.load(stem + ".npz", allow_pickle=False) as archive:  # (.npy headers: see wire.AST_LOCK)
        arrays = {name: archive[name] for name in archive.files}
    tests = []
    for t, test in enumerate(meta["tests"]):
        cases = []
        for c, case in enumerate(test["cases"]):
            inputs = {name: arrays[f"t{t}|c{c}|in|{name}"] for name in case["inputs"]}
            expected = dict(case["values"])
            expected.update({name: arrays[f"t{t}|c{c}|out|{name}"] for name in case["arrays"]})
            hints = {name: arrays[f"t{t}|c{c}|hint|{name}"] for name in case.get("hints", [])}
            cases.append(dict(case, inputs=inputs, expected=expected, hints=hints))
        tests.append(Test(test, cases, hidden, meta.get("pack", packs.DEFAULT)))
    return tests


def load_given(stem=PUBLIC):
    """{file: {function: digest}} of the functions the handout gives (not TODOs), from ``stem``.json."""
    with open(stem + ".json") as handle:
        return json.load(handle).get("given", {})


def given_of(tests):
    """The given-code manifest of the packs of ``tests`` (each pack's public fixtures hold its own)."""
    given = {}
    for pack in sorted({test.pack for test in tests}):
        for relpath, functions in load_given(public_stem(pack)).items():
            given.setdefault(relpath, {}).update(functions)
    return given


def link_kinds(public, hidden):
    """Give each hidden case ``shown_in``: the public cases that show its kinds of input (for feedback)."""
    shown = {}
    for test in public:
        for c, case in enumerate(test.cases):
            for kind in case.get("kinds", []):
                shown.setdefault((case.get("unit"), kind), (test.name, c + 1))
    for test in hidden:
        for case in test.cases:
            places = [shown.get((case.get("unit"), kind)) for kind in case.get("kinds", [])]
            case["shown_in"] = sorted({place for place in places if place})


def protect_hidden():
    """When root, make the hidden tests readable by root only (the sandbox user must not read them)."""
    folder = os.path.join(HERE, "hidden")
    if os.geteuid() == 0 and os.path.isdir(folder):
        os.chmod(folder, stat.S_IRWXU)
        for name in os.listdir(folder):
            path = os.path.join(folder, name)
            if os.path.isfile(path) and not os.path.islink(path):
                os.chmod(path, stat.S_IRUSR | stat.S_IWUSR)


def select_tests(sections=(), hidden=False, pack=None):
    """The public tests of ``pack`` (of ``sections``, all if empty), plus the hidden ones if asked.

    ``pack`` defaults to the pack of this grader (``packs.default``: a handout's or a bundle's own,
    the mlp pack in the project's checkout).
    """
    pack = packs.get(pack or packs.default()).name
    sections_of = tuple(packs.get(pack).sections)
    unknown = [s for s in sections if s not in sections_of]
    if unknown:
        raise ValueError(f"unknown section(s) {', '.join(unknown)}; the sections of the {pack} pack are "
                         f"{', '.join(sections_of)}")
    if not os.path.exists(public_stem(pack) + ".json"):
        raise ValueError(f"the {pack} pack's tests are not here (this grader is the {packs.default()} pack's)")
    tests = load_tests(public_stem(pack))
    protect_hidden()
    if hidden:
        if not os.path.exists(hidden_stem(pack) + ".json"):
            raise ValueError("--hidden: the hidden tests are not here (autograder/hidden/ is not in the handout)")
        hidden_tests = load_tests(hidden_stem(pack), hidden=True)
        link_kinds(tests, hidden_tests)
        tests += hidden_tests
    return [t for t in tests if not sections or t.section in sections]


# --------------------------------------------------------------------- comparing
class Mismatch(str):
    """How an output differs from its expected value: the sentence itself, and ``words``, the same
    without any number or value (what a hidden test may tell the student)."""

    def __new__(cls, text, words):
        mismatch = super().__new__(cls, text)
        mismatch.words = words
        return mismatch


def tolerance(dtype):
    return TOLERANCES.get(str(dtype), TOLERANCES["float32"])


def close(got, expected):
    """True if float arrays ``got`` and ``expected`` have one shape and agree within the grading tolerance."""
    atol, rtol = tolerance(expected.dtype)
    with np.errstate(invalid="ignore", over="ignore"):
        return got.shape == expected.shape and bool(np.all(np.abs(got - expected) <= atol + rtol * np.abs(expected)))


def compare(name, expected, got, missing, hints=None):
    """None if ``got`` matches ``expected``, else a ``Mismatch`` saying how it differs.

    ``hints`` may hold ``scales`` (the case's batch size, ...), the ``unreduced`` gradient (before
    undoing broadcasting) and the MLP output ``before_last_activation``, to recognise the usual
    mistakes (see ``diagnose``).
    """
    if not isinstance(expected, np.ndarray):
        if name in missing:
            return Mismatch(f"{name}: {missing[name]}", "not produced")
        if got != expected:
            return Mismatch(f"{name}: expected {expected!r}, got {got!r}", "wrong value")
        return None
    if got is None:
        return Mismatch(f"{name}: {missing.get(name, 'not produced')}", "not produced")
    found = diagnose(name, expected, got, hints or {}) if got.dtype.kind in "biuf" and expected.dtype.kind == "f" \
        else None
    if got.shape != expected.shape:
        text = f"{name}: expected shape {expected.shape}, got shape {got.shape}"
        return Mismatch(text + (f": {found[0]}" if found else ""), "wrong shape" + (f" ({found[1]})" if found else ""))
    if got.dtype != expected.dtype:
        hint = (": something made float64 of float32 (np.zeros/np.ones/np.array without dtype=, or a NumPy float64 "
                "scalar); float32 inputs keep float32 gradients") if (got.dtype, expected.dtype) == (
            np.float64, np.float32) else ""
        return Mismatch(f"{name}: expected dtype {expected.dtype}, got {got.dtype} (shape {got.shape} is right){hint}",
                        f"wrong dtype ({got.dtype} where {expected.dtype} is expected)")
    if expected.dtype.kind != "f":
        if not np.array_equal(got, expected):
            bad = np.argwhere(got != expected)[0]
            where = tuple(int(i) for i in bad)
            return Mismatch(f"{name}: differs at index {where}: expected {expected[where]!r}, got {got[where]!r}",
                            "wrong values")
        return None
    atol, rtol = tolerance(expected.dtype)
    with np.errstate(invalid="ignore", over="ignore"):
        difference = np.abs(got.astype(np.float64) - expected)
        bad = ~(difference <= atol + rtol * np.abs(expected))
    bad &= ~(np.isnan(got) & np.isnan(expected))
    if not bad.any():
        return None
    scores = np.where(bad, np.nan_to_num(difference, nan=np.inf), -1.0)
    where = np.unravel_index(int(np.argmax(scores)), expected.shape)
    index = tuple(int(i) for i in where)
    text = (f"{name} (shape {expected.shape}): {int(bad.sum())} of {expected.size} values differ; largest "
            f"difference {float(difference[where]):.3g} at index {index}: expected {float(expected[where]):.6g}, "
            f"got {float(got[where]):.6g} (tolerance {atol:g} + {rtol:g} x |expected|)")
    if found:
        return Mismatch(f"{text}\n      {name} {found[0]}", f"wrong values ({found[1]})")
    if np.isfinite(expected).all() and not np.isfinite(got).all():
        return Mismatch(f"{text}\n      {name} holds inf or nan: an overflow? (exp of a large number: shift by the "
                        "maximum first)", "wrong values (inf or nan)")
    return Mismatch(text, "wrong values")


def diagnose(name, expected, got, hints):
    """(sentence, words) naming the usual mistake that turns ``expected`` into ``got``, or None.

    Recognised: transposed, negated, scaled by the batch size or its inverse (or another of
    ``hints["scales"]``, or for several values any constant), broadcasting not undone (``got``
    sums to ``expected``), summed over the wrong axes (with ``hints["unreduced"]``, the gradient
    before undoing the broadcasting) and an MLP's last activation skipped (with
    ``hints["before_last_activation"]``).
    """
    try:
        with np.errstate(all="ignore"):
            return _diagnose(name, expected.astype(np.float64), got.astype(np.float64), hints)
    except (ValueError, TypeError, MemoryError):
        return None


def _diagnose(name, expected, got, hints):
    if got.size > 4 * 1024 * 1024:
        return None
    transpose = "it is the expected one transposed" + (
        ": in Linear.forward, record self.dW.T (not self.dW) as the gradient array of the input self.W.T"
        if name == "dW" else "")
    if expected.ndim >= 2 and got.shape == expected.shape[::-1] and close(got, expected.T) and (
            got.shape != expected.shape or not close(expected, expected.T)):
        return transpose, "transposed"
    if got.shape == expected.shape and expected.size and np.any(expected != 0):
        if close(got, -expected):
            return "it is the expected one negated (a sign error?)", "negated"
        skipped = hints.get("before_last_activation")
        if skipped is not None and close(got, skipped):
            return ("it is the output before the last activation: the last layer's activation was skipped (the "
                    "last activation is not always Identity)", "the last activation skipped")
        factor = scale_factor(expected, got)
        for what, size in (hints.get("scales") or {}).items() if factor is not None else ():
            if np.isclose(factor, size, rtol=1e-6):
                return (f"it is the expected one times {size}, {what}: a division by {what} missing (a sum where "
                        "the mean belongs)?", f"scaled by {what}")
            if np.isclose(factor * size, 1, rtol=1e-6):
                return (f"it is the expected one divided by {size}, {what}: divided once too often (a mean where "
                        "the sum belongs)?", f"divided by {what}")
        if factor is not None and got.size > 1:
            return f"it is the expected one times {factor:.6g}", "scaled by a constant"
    reduced = sum_to(got, expected.shape)
    if reduced is not None and got.shape != expected.shape and close(reduced, expected):
        return (f"it has the shape {got.shape} of the operation's output, and summed back to the input's shape "
                f"{expected.shape} it is right: undo the broadcasting (unbroadcast(grad, a.shape))",
                "broadcasting not undone")
    unreduced = hints.get("unreduced")
    if unreduced is not None and unreduced.ndim <= 6:
        right = broadcast_axes(unreduced.shape, expected.shape)
        for axes in nonempty_subsets(unreduced.ndim):
            for keepdims in (True, False):
                summed = unreduced.sum(axis=axes, keepdims=keepdims)
                if summed.shape == got.shape and close(got, summed):
                    if set(axes) == set(right):
                        return (f"it is summed over the right axes {axes} but has shape {got.shape}: reshape it "
                                f"to the input's shape {expected.shape}", "summed right, wrong shape")
                    return (f"it is the gradient summed over axes {axes}, but this input was broadcast along "
                            f"axes {right} of the output {unreduced.shape}", "summed over the wrong axes")
    return None


def scale_factor(expected, got):
    """c if ``got`` is ``c * expected`` for one constant c (not 1, not -1), else None."""
    atol, _ = tolerance(expected.dtype)
    big = np.abs(expected) > 100 * atol
    if not big.any():
        return None
    factor = float(np.median(got[big] / expected[big]))
    if not np.isfinite(factor) or np.isclose(abs(factor), 1, rtol=1e-6) or factor == 0:
        return None
    return factor if close(got, factor * expected) else None


def sum_to(grad, shape):
    """``grad`` summed over the axes along which an array of ``shape`` was broadcast to it, or None."""
    lead = grad.ndim - len(shape)
    if lead < 0 or any(n not in (1, g) for n, g in zip(shape, grad.shape[lead:])):
        return None
    axes = tuple(range(lead)) + tuple(lead + i for i, n in enumerate(shape) if n == 1 and grad.shape[lead + i] != 1)
    return grad.sum(axis=axes, keepdims=True).reshape(shape) if axes else None


def broadcast_axes(full, shape):
    """The axes of ``full`` along which an array of ``shape`` was broadcast."""
    lead = len(full) - len(shape)
    return tuple(range(lead)) + tuple(lead + i for i, n in enumerate(shape) if n == 1 and full[lead + i] != 1)


def nonempty_subsets(ndim):
    return [tuple(a for a in range(ndim) if mask >> a & 1) for mask in range(1, 2 ** ndim)]


# --------------------------------------------------------------------- given code the submission changed
def function_digests(text):
    """{qualified name: (first line, last line, digest)} of every function and method in Python source ``text``.

    The digest is of the function's tokens without comments, docstrings and layout, so those may
    change freely; f-strings count as written (their tokens differ between Python versions).
    Nested functions count as part of their parent.
    """
    lines = text.splitlines(keepends=True)
    found = {}

    def visit(node, prefix):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.ClassDef):
                visit(child, prefix + child.name + ".")
            elif isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                first = min([child.lineno] + [d.lineno for d in child.decorator_list])
                skip = {(doc.lineno, doc.col_offset) for doc in docstrings(child)}
                found[prefix + child.name] = (child.lineno, child.end_lineno,
                                              code_digest(lines[first - 1:child.end_lineno], first, skip))

    with wire.AST_LOCK:  # (see there)
        tree = ast.parse(text)
    visit(tree, "")
    return found


def docstrings(function):
    """The docstring expressions of ``function`` and of the functions and classes inside it."""
    for node in ast.walk(function):
        body = getattr(node, "body", None)
        if (isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and body
                and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant)
                and isinstance(body[0].value.value, str)):
            yield body[0]


LAYOUT = {tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT, tokenize.ENDMARKER}


def code_digest(lines, first, skip):
    """A digest of the tokens of ``lines`` (source starting at line ``first``) without layout, comments and
    the strings starting at the (line, column) positions in ``skip`` (docstrings)."""
    fstring_start = getattr(tokenize, "FSTRING_START", None)  # Python 3.12+ splits f-strings into tokens
    fstring_end = getattr(tokenize, "FSTRING_END", None)
    words, depth, opened = [], 0, None
    for token in tokenize.generate_tokens(iter(lines).__next__):
        if token.type == fstring_start:
            depth, opened = depth + 1, opened if depth else token.start
        elif token.type == fstring_end:
            depth -= 1
            if not depth:  # the whole f-string as written, as older Pythons give it
                words.append(source_between(lines, opened, token.end))
        elif depth or token.type in LAYOUT or (token.start[0] + first - 1, token.start[1]) in skip:
            continue
        else:
            words.append(token.string)
    return hashlib.sha256("\x00".join(words).encode()).hexdigest()[:16]


def source_between(lines, start, end):
    """The text of ``lines`` from tokenize position ``start`` to ``end`` (1-based rows, 0-based columns)."""
    if start[0] == end[0]:
        return lines[start[0] - 1][start[1]:end[1]]
    return "".join([lines[start[0] - 1][start[1]:]] + lines[start[0]:end[0] - 1] + [lines[end[0] - 1][:end[1]]])


def given_changes(files, given, limit=1 << 20):
    """Sentences naming each given (non-TODO) function of the manifest ``given`` the submission changed.

    ``files`` maps relative paths to bytes; files over ``limit`` bytes or that do not parse are
    left to the tests (their import fails with the right message).
    """
    changes = []
    for relpath, functions in sorted(given.items()):
        data = files.get(relpath)
        if data is None or len(data) > limit:
            continue
        try:
            found = function_digests(data.decode("utf-8"))
        except (SyntaxError, ValueError, RecursionError, MemoryError, UnicodeDecodeError, tokenize.TokenError):
            continue
        for name, digest in sorted(functions.items(), key=lambda item: found.get(item[0], (0,))[0]):
            if name not in found:
                changes.append(f"{name} is missing from {relpath}")
            elif found[name][2] != digest:
                changes.append(f"{name} in {relpath} (line {found[name][0]}) differs from the handout's")
    return changes


def given_note(changes, shown=4):
    """The line that opens the feedback of every failed test when given code was changed."""
    more = f"; and {len(changes) - shown} more" if len(changes) > shown else ""
    return ("Check this first: your submission changes code the handout gives (not a TODO), which the tests "
            "rely on: " + "; ".join(changes[:shown]) + more + ". Put the handout's version back.")


# --------------------------------------------------------------------- one test's outcome
class Result:
    """The graded outcome of one test.

    ``feedback`` is what the student may see; ``detail`` is the full account for staff (the same
    for public tests; for hidden tests it also holds inputs-dependent numbers, error messages and
    printed output). ``import_error`` is the import failure that kept the test from running at all
    (the reports show it once for all the tests it stopped).
    """

    def __init__(self, test, score, status, feedback, detail=None, import_error=None):
        self.name = test.name
        self.section = test.section
        self.points = test.points
        self.hidden = test.hidden
        self.uses = test.uses
        self.description = test.description
        self.score = score
        self.status = status
        self.feedback = feedback
        self.detail = feedback if detail is None else detail
        self.import_error = import_error


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


IMPORT_FAILED = "importing "  # how the test process's text for an import failure begins
EXCEPTIONS = {name for name, value in vars(builtins).items()
              if isinstance(value, type) and issubclass(value, BaseException)} | {"AxisError"}


def error_type(text):
    """The exception class a traceback text ends with, if it is a built-in one (untrusted text: nothing else)."""
    for line in reversed(text.splitlines()):
        name = line.split(":", 1)[0].strip().rsplit(".", 1)[-1]
        if name in EXCEPTIONS:
            return name
    return None


def import_summary(text):
    """'SyntaxError at mytorch/nn/functional.py:12' from an import failure's traceback text."""
    places = re.findall(r'File "([^"]+)", line (\d+)', text)
    kind = error_type(text) or "an error"
    return f"{kind} at {places[-1][0]}:{places[-1][1]}" if places else kind


def read_results(test, frames):
    """(case index -> (header, arrays), import error text, statuses, errors) from the result frames.

    ``errors`` maps each error text (once, however many cases raised it) to its status. The test
    process sends an import error, or one frame per case in order; WireError if a frame cannot
    be read or is not the one expected next. A case whose error is an import failure (a file under
    hw/, such as hw/mlp.py) counts as the test's import error.
    """
    results, import_error, statuses, errors = {}, None, [], {}
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
            if text.startswith(IMPORT_FAILED):
                import_error = import_error or text
            elif not any(same_but_numbers(text, seen) for seen in errors):
                errors[text] = statuses[-1]
    return results, import_error, statuses, errors


def same_but_numbers(text, other):
    """True if two error texts differ only in their numbers (one error raised by several cases)."""
    def skeleton(message):
        return re.sub(r"\d+", "#", re.sub(r"\([\d, ]*\)", "()", message))

    return skeleton(text) == skeleton(other)


def check_cases(test, results):
    """(weight earned, total weight, feedback lines, the same in words only) of the checks of every case.

    The words-only lines name the case by its kinds of input and say what is wrong without any
    value, number or text from the test process: what a hidden test may tell the student.
    """
    lines, words, earned, total = [], [], 0.0, 0.0
    for c, case in enumerate(test.cases):
        header, arrays = results.get(c, ({}, {}))
        values = header.get("values") if isinstance(header.get("values"), dict) else {}
        missing = header.get("missing") if isinstance(header.get("missing"), dict) else {}
        scales = case.get("scales", {})
        kinds = f"{', '.join(case.get('kinds', []))}" or "other data"
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
                hints = {kind: value for kind, _, output in (key.partition("/") for key in case.get("hints", {}))
                         if output == name for value in [case["hints"][f"{kind}/{output}"]]}
                reason = compare(name, case["expected"][name], got, missing, dict(hints, scales=scales))
                if reason:
                    reasons.append((sanitize(reason, 1000), getattr(reason, "words", "wrong")))
            if reasons:
                lines.append(f"- case {c + 1} ({case['note']}), {check['label']}:")
                lines.extend(f"    {reason}" for reason, _ in reasons)
                words.append(f"- case {c + 1} ({kinds}), {check['label']}: "
                             + "; ".join(sorted({word for _, word in reasons})))
            else:
                earned += check["weight"]
        if not_reached:
            lines.append(f"- case {c + 1} ({case['note']}): no result for {', '.join(not_reached)} "
                         "(your code raised an error, see below)")
            words.append(f"- case {c + 1} ({kinds}): no result for {', '.join(not_reached)} (your code raised an error)")
    return earned, total, lines, words


def score_test(test, reply, frames, timeout, given=()):
    """A Result from the sandbox's reply and result frames (both untrusted).

    ``given`` lists the given functions the submission changed (``given_changes``): said first.
    """
    problem, unreadable = None, None
    try:
        results, import_error, statuses, errors = read_results(test, frames)
    except wire.WireError as error:  # a broken or forged frame: none of this test's results count
        results, import_error, statuses, errors = {}, None, ["error"], {}
        unreadable = (f"a result of this test could not be read, so none counts: {error} (did your code write "
                      "to the grader's pipe?)")
    else:
        if len(results) < len(test.cases) and import_error is None:
            problem = ending_problem(reply, timeout) or (
                "error", "the test process ended before finishing (did your code call os._exit(), or close "
                         "the grader's pipe?)")
            statuses.append(problem[0])
    earned, total, lines, words = check_cases(test, results)
    score = round(min(test.points, test.points * earned / total if total else 0.0), 2)
    status = "passed" if score >= test.points else max(statuses + ["failed"], key=STATUS_ORDER.index)
    if status == "passed":
        return Result(test, score, status, "")
    first = [given_note(given)] if given else []
    runs = f"(this test runs your {', '.join(test.uses)})"
    if import_error and not earned:  # nothing ran: the report shows the import failure once, for all its tests
        blocked = "not run: your code could not be imported" + (
            f" ({import_summary(import_error)})" if not test.hidden else "")
        return Result(test, score, status, "\n".join(first + [blocked]),
                      "\n".join(first + [blocked, import_error]), import_error=import_error)
    detail = first + lines + ([problem[1]] if problem else []) + ([unreadable] if unreadable else []) + list(errors)
    if import_error:
        detail.append(import_error)
    detail.append(runs)
    output = sanitize(reply.get("output", ""), 16 * 1024).strip()
    if output:
        detail.append("your code printed:")
        detail.extend(f"  | {line[:300]}" for line in output.splitlines()[:OUTPUT_LINES])
    if not test.hidden:
        return Result(test, score, status, "\n".join(detail))
    return Result(test, score, status, "\n".join(hidden_feedback(test, status, first, words, problem, unreadable,
                                                                 errors, import_error) + [runs]),
                  "\n".join(detail))


def hidden_feedback(test, status, first, words, problem, unreadable, errors, import_error):
    """The lines a student may see for a failed hidden test: which checks failed and why, in words only.

    Nothing here comes from the test's data or from the test process's text (which the student's
    code controls): no inputs, expected or computed values, messages or printed output.
    """
    lines = first + words
    if problem:
        lines.append({"timeout": "the test ran out of time", "out of memory": "the test ran out of memory"}.get(
            status, "the test process ended before finishing (a crash, os._exit or a signal)"))
    if unreadable:
        lines.append("a result of this test could not be read, so none counts")
    raised = sorted({error_type(text) or "an exception" for text, status in errors.items() if status != "failed"})
    if raised:
        lines.append(f"your code raised {', '.join(raised)}")
    if "failed" in errors.values():
        lines.append("your code returned something the test could not use (a wrong type, count or shape)")
    if import_error:
        lines.append("importing your code (a file under hw/) failed")
    shown = {}
    for case in test.cases:
        for name, number in case.get("shown_in", []):
            shown.setdefault(name, set()).add(number)
    places = "; ".join(f"{name} case{'s' * (len(numbers) > 1)} {', '.join(map(str, sorted(numbers)))}"
                       for name, numbers in sorted(shown.items()))
    lines.append("(a hidden test: its data, messages and what your code printed are not shown; "
                 + (f"the public {places} show the same kinds of input)" if places else
                    "the public tests show the same kinds of input)"))
    return lines


# --------------------------------------------------------------------- a whole submission
class Report:
    """All results of one submission, plus notes (ignored tarball entries, sandbox restarts)."""

    def __init__(self, submission, results, notes, error=None, elapsed=0.0, refused=None):
        self.submission = submission
        self.results = results
        self.notes = notes
        self.error = error  # why the submission could not be graded at all, or None
        self.elapsed = elapsed
        self.refused = refused  # why the hidden tests were not run on this host (see ``refusal``), or None

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

    def import_errors(self):
        """[(import error text, names of the tests it kept from running)], public tests' texts only."""
        groups = {}
        for r in self.results:
            if r.import_error and not r.hidden:
                groups.setdefault(r.import_error, []).append(r.name)
        return list(groups.items())

    def problem(self):
        """Why this submission scored nothing because nothing could run, in words; '' otherwise."""
        if self.error:
            return self.error
        if not self.results or self.total() > 0:
            return ""
        if all(r.import_error for r in self.results):
            texts = [text for text, _ in self.import_errors()] or [r.import_error for r in self.results]
            return f"nothing could run: the code could not be imported ({import_summary(texts[0])})"
        if all(r.status in ("error", "timeout", "out of memory") for r in self.results):
            statuses = sorted({r.status for r in self.results}, key=STATUS_ORDER.index)
            return f"nothing could run: every test ended with {' or '.join(statuses)}"
        return ""


def grade(path, tests, options, batch=None):
    """Grade the submission at ``path`` (folder or archive) on ``tests``; never raises: whatever goes wrong
    ends in the report (``error`` when nothing could be graded).

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
    except Exception as error:  # the grader's own failure: this report says so, a batch goes on
        return Report(path, [], [], error=f"grader failure while reading the hand-in: {type(error).__name__}: "
                                          f"{error}", elapsed=time.monotonic() - start)
    own_tree = os.path.realpath(path) == os.path.realpath(sandbox.GRADER_ROOT)  # the local run
    try:
        given = given_changes(files, given_of(tests))
    except Exception as error:  # a grader bug in this extra check must not cost the submission its grade
        given = []
        notes.append(f"the grader could not compare the given code with the handout's ({type(error).__name__}: "
                     f"{error}); the tests ran without that check")
    try:
        with sandbox.Sandbox(files) as box:
            with sandbox.Zygote(box, options.python, hidden_folders(box, path, batch), options.namespaces,
                                options.disk) as zygote:
                zygote.start()
                problems = isolation_problems(zygote.isolation, path, batch)
                refused = None
                if problems and not own_tree and not options.allow_unisolated and any(t.hidden for t in tests):
                    refused = refusal(problems)
                    notes.append(refused)
                run = [test for test in tests if not (refused and test.hidden)]
                done = iter(run_tests(zygote, run, options, start + options.total, notes, given))
                results = [Result(test, 0.0, "error", "not run: " + refused) if refused and test.hidden
                           else next(done) for test in tests]
            if not own_tree:  # (a refusal already names the problems)
                notes += isolation_notes(box, zygote) + ([] if refused else problems)
    except sandbox.SandboxError as error:
        return Report(path, [], notes, error=str(error), elapsed=time.monotonic() - start)
    except Exception as error:  # the grader's own failure: this report says so, a batch goes on
        return Report(path, [], notes, error=f"grader failure: {type(error).__name__}: {error}",
                      elapsed=time.monotonic() - start)
    if zygote.restarts:
        notes.append(f"the sandbox process was restarted {zygote.restarts} time(s)")
    return Report(path, results, notes, elapsed=time.monotonic() - start, refused=refused)


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
    """For the TA: which ids isolated the tests where the host's uid map is small, whether the tests could
    read the Python installation, and whether anything a test wrote could not be deleted."""
    notes = []
    if box.uid is not None and not sandbox.UID_BASE <= box.uid < sandbox.UID_BASE + sandbox.SLOTS * sandbox.PIDS:
        notes.append(f"this host maps few uids (a rootless container?): the tests ran as uid {box.uid}, a mapped "
                     "uid without an account")
    elif box.uid is None and os.geteuid() == 0:
        notes.append("this host maps no uid a sandbox could use (a uid map of one id?): the tests ran in a user "
                     "namespace of their own" if zygote.isolation.get("user") == "namespace" else
                     "this host maps no uid a sandbox could use, and refused user namespaces")
    unreadable = zygote.isolation.get("unreadable")
    if unreadable:
        notes.append(f"the sandbox's uid cannot read the Python installation ({', '.join(unreadable)}): the tests "
                     "could import only the modules the grader loaded before them, so code importing another "
                     "module of the standard library failed; install Python and NumPy where every user can read "
                     "them, or grade where namespaces are allowed")
    if zygote.left:
        notes.append(f"{zygote.left} files or folders the tests wrote could not be deleted")
    return notes


def run_tests(zygote, tests, options, deadline, notes, given=()):
    """The Result of each test; those not started by ``deadline`` (a time.monotonic() value) are not run.
    ``given``: the given functions the submission changed (see ``run_test``)."""
    results = []
    for test in tests:
        if time.monotonic() >= deadline:
            break
        results.append(run_test(zygote, test, options, given))
    skipped = tests[len(results):]
    if skipped:
        notes.append(f"grading stopped after {options.total:g} s, the limit for one submission: the last "
                     f"{len(skipped)} test(s) were not run")
    return results + [Result(test, 0.0, "timeout", f"not run: grading this submission took longer than its limit "
                                                   f"of {options.total:g} s (did earlier tests time out?)")
                      for test in skipped]


def refusal(problems):
    """Why the hidden tests are not run on a host with the isolation ``problems``, and what to do."""
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


def run_test(zygote, test, options, given=()):
    """Run one test in the sandbox and score it; a dead sandbox, or a result the grader cannot score,
    costs this test only. ``given``: the given functions the submission changed."""
    request, arrays = test.request(options)
    try:
        reply, frames = zygote.run(request, arrays)
    except sandbox.SandboxError as error:
        return failure(test, f"the sandbox process stopped during this test ({error}): did your code kill "
                             "its parent process?")
    try:
        return score_test(test, reply, frames, options.timeout, given)
    except Exception as error:  # e.g. results nested too deeply to compare
        return failure(test, f"the grader could not score this test's results ({type(error).__name__}: "
                             f"{sanitize(error, 300)})")
