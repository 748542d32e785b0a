"""Formatting reports: the text table, the Autolab line, Gradescope's results.json, the gradebook CSV.

Whatever a hand-in holds, each output has a fixed upper size: a test's feedback, each
note, the number of notes and the error text are cut to the limits below, and text
from outside the grader (file names, printed output) is made printable, so no name
or byte can make writing a report fail.
"""
import csv
import io
import json
import os
import tempfile

from autograder import grading

MAX_FEEDBACK = 8000  # characters of one test's feedback
MAX_NOTE = 300  # characters of one note
MAX_NOTES = 25  # notes shown; the rest are counted
MAX_ERROR = 1000  # characters of the reason a submission could not be graded


def printable(text, limit, keep="\n\t"):
    """``text`` cut to ``limit`` characters, each character that is not printable (control characters,
    stray surrogates from undecodable file names) written as its escape, such as \\x1b or \\udcff."""
    text = str(text)
    cut = f" [... {len(text) - limit:,} more characters]" if len(text) > limit else ""
    return "".join(ch if ch.isprintable() or ch in keep else ch.encode("unicode_escape").decode("ascii")
                   for ch in text[:limit]) + cut


def one_line(text, limit):
    return printable(text, limit, keep="")


def feedback_of(result, staff=False):
    """The test's feedback for the student (``staff``: its full detail), bounded and printable."""
    return printable(result.detail if staff else result.feedback, MAX_FEEDBACK)


def notes_of(report):
    """The report's notes, each on one line and cut, at most MAX_NOTES of them."""
    notes = [one_line(note, MAX_NOTE) for note in report.notes[:MAX_NOTES]]
    if len(report.notes) > MAX_NOTES:
        notes.append(f"... and {len(report.notes) - MAX_NOTES} more notes")
    return notes


def error_of(report):
    return one_line(report.error, MAX_ERROR)


def number(value):
    """4.0 -> '4', 2.5 -> '2.5'."""
    return f"{value:g}"


def text_report(report, title, staff=False):
    """The table of tests, the feedback of the tests not passed, and the totals.

    Students see each test's ``feedback`` (for hidden tests: which check failed and why, in words);
    ``staff=True`` shows the full ``detail`` instead (inputs-dependent numbers, messages and printed
    output of the hidden tests too): the TA's report.
    """
    title = one_line(title, MAX_NOTE)
    if report.error:
        return f"{title}\ncould not grade {one_line(report.submission, MAX_NOTE)}: {error_of(report)}"
    width = max([len(r.name) for r in report.results] + [4])
    lines = [title, f"  {'test':<{width}}  {'score':>9}  status"]
    for r in report.results:
        score = f"{number(r.score)}/{number(r.points)}"
        lines.append(f"  {r.name:<{width}}  {score:>9}  {r.status}{'  (hidden)' if r.hidden else ''}")
    blocked = import_failures(report)
    for text, names in blocked:
        lines += ["", f"Your code could not be imported ({grading.import_summary(text)}), so these "
                      f"{len(names)} tests could not run: {', '.join(names)}"]
        lines += [f"  {line}" for line in printable(text, MAX_FEEDBACK).splitlines()]
    failed = [r for r in report.results if r.status != "passed" and not (r.import_error and not staff)]
    if failed:
        lines += ["", "Feedback on the tests not passed:"]
        for r in failed:
            hidden = " (hidden)" if r.hidden else ""
            lines += ["", f"[{r.name}]{hidden} {number(r.score)}/{number(r.points)}, {r.status}: {r.description}"]
            lines += [f"  {line}" for line in feedback_of(r, staff).splitlines()]
    lines.append("")
    sections = {}
    for r in report.results:
        got, most = sections.get(r.section, (0.0, 0.0))
        sections[r.section] = (got + r.score, most + r.points)
    lines.append("Sections: " + ", ".join(f"{s} {number(round(got, 2))}/{number(most)}"
                                          for s, (got, most) in sections.items()))
    lines += [f"Note: {note}" for note in notes_of(report)]
    public = f"{number(report.total(hidden=False))}/{number(report.max_total(hidden=False))}"
    if any(r.hidden for r in report.results):
        hidden = f"{number(report.total(hidden=True))}/{number(report.max_total(hidden=True))}"
        lines.append(f"Total: {public} public + {hidden} hidden = "
                     f"{number(report.total())}/{number(report.max_total())}")
    else:
        lines.append(f"Total: {public}")
    return "\n".join(lines)


def import_failures(report):
    """[(import error text, names of the tests it stopped)]: each failure once, with the hidden tests it
    stopped listed under it (their own texts, which the student's code could forge, are not shown)."""
    groups = report.import_errors()
    hidden = [r.name + " (hidden)" for r in report.results if r.hidden and r.import_error]
    if hidden and groups:
        groups[0] = (groups[0][0], groups[0][1] + hidden)
    elif hidden:
        groups = [("importing your code failed in hidden tests only (their messages are not shown)", hidden)]
    return groups


def autolab_problems(tests):
    """{Autolab problem name: points} of ``tests``: one problem per section (in the order of the tests),
    then 'hidden' for the hidden tests."""
    points = {}
    for test in sorted(tests, key=lambda test: test.hidden):  # a stable sort: the sections keep their order
        key = "hidden" if test.hidden else test.section
        points[key] = points.get(key, 0) + test.points
    return points


def autolab_line(report, tests):
    """Autolab's summary: a JSON object with a score for every problem of ``tests``, 0 when not graded."""
    scores = {key: 0.0 for key in autolab_problems(tests)}
    if not report.error:
        scores.update(report.section_scores())
    return json.dumps({"scores": scores})


def gradescope_results(report):
    """results.json as Gradescope's autograder specification describes it.

    Hidden tests are visible after publication, with feedback in words only; their full detail
    goes to an entry per failed hidden test with visibility ``hidden`` (staff only, worth 0 points).
    """
    if report.error:
        return {"score": 0.0, "execution_time": round(report.elapsed, 3),
                "output": f"Your submission could not be graded: {error_of(report)}", "tests": []}
    tests, staff = [], []
    for number_, r in enumerate(report.results, start=1):
        output = f"Status: {r.status}. {r.description}."
        if r.feedback:
            output += "\n" + feedback_of(r)
        name = ("hidden: " if r.hidden else "") + r.name
        tests.append({"name": name, "number": str(number_), "score": r.score, "max_score": float(r.points),
                      "status": "passed" if r.status == "passed" else "failed", "output": output,
                      "tags": [r.section], "visibility": "after_published" if r.hidden else "visible"})
        if r.hidden and r.detail != r.feedback:
            staff.append({"name": f"staff only: {name}", "score": 0.0, "max_score": 0.0, "status": "failed",
                          "output": f"Status: {r.status}. {r.description}.\n{feedback_of(r, staff=True)}",
                          "tags": [r.section], "visibility": "hidden"})
    summary = f"Public tests: {number(report.total(hidden=False))}/{number(report.max_total(hidden=False))}."
    for text, names in import_failures(report):
        summary += (f"\nYour code could not be imported ({grading.import_summary(text)}), so these tests could "
                    f"not run: {', '.join(names)}\n{printable(text, MAX_FEEDBACK)}")
    summary += "".join(f"\nNote: {note}" for note in notes_of(report))
    return {"score": report.total(), "execution_time": round(report.elapsed, 3), "output": summary,
            "stdout_visibility": "hidden", "tests": tests + staff}


def write_atomically(path, text):
    """Write ``text`` to ``path`` through a temporary file in the same folder, then rename it."""
    folder = os.path.dirname(os.path.abspath(path))
    handle, temporary = tempfile.mkstemp(dir=folder, prefix=".grading-")
    try:
        with os.fdopen(handle, "w", newline="", encoding="utf-8") as stream:
            stream.write(text)
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise


def gradebook_header(tests):
    """The gradebook's first row: submission, graded, problem, one column per test, the totals, notes."""
    columns = [("hidden: " if t.hidden else "") + t.name for t in tests]
    return ["submission", "graded", "problem"] + columns + ["public_total", "hidden_total", "total", "notes"]


def gradebook_row(report, tests):
    """One submission's gradebook row, every cell printable and of bounded length."""
    name = one_line(os.path.basename(os.path.normpath(report.submission)), MAX_NOTE)
    if report.error:
        return [name, "no", error_of(report)] + [""] * len(tests) + ["0", "0", "0", "; ".join(notes_of(report))]
    scores = {(r.hidden, r.name): number(r.score) for r in report.results}
    return ([name, "yes", one_line(report.problem(), MAX_ERROR)]
            + [scores.get((t.hidden, t.name), "") for t in tests]
            + [number(report.total(hidden=False)), number(report.total(hidden=True)), number(report.total()),
               "; ".join(notes_of(report))])


def gradebook_csv(reports, tests):
    """The gradebook: one row per submission, one column per test, the totals and why a row failed."""
    text = io.StringIO()
    csv.writer(text).writerows([gradebook_header(tests)] + [gradebook_row(report, tests) for report in reports])
    return text.getvalue()
