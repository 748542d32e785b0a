"""Formatting reports: the text table, the Autolab line, Gradescope's results.json, the gradebook CSV."""
import csv
import io
import json
import os
import tempfile

from autograder import grading
from autograder.grading import SECTIONS


def number(value):
    """4.0 -> '4', 2.5 -> '2.5'."""
    return f"{value:g}"


def text_report(report, title, staff=False):
    """The table of tests, the feedback of the tests not passed, and the totals.

    Students see each test's ``feedback`` (for hidden tests: which check failed and why, in words);
    ``staff=True`` shows the full ``detail`` instead (inputs-dependent numbers, messages and printed
    output of the hidden tests too): the TA's report.
    """
    if report.error:
        return f"{title}\ncould not grade {report.submission}: {report.error}"
    width = max([len(r.name) for r in report.results] + [4])
    lines = [title, f"  {'test':<{width}}  {'score':>9}  status"]
    for r in report.results:
        score = f"{number(r.score)}/{number(r.points)}"
        lines.append(f"  {r.name:<{width}}  {score:>9}  {r.status}{'  (hidden)' if r.hidden else ''}")
    blocked = import_failures(report)
    for text, names in blocked:
        lines += ["", f"Your code could not be imported ({grading.import_summary(text)}), so these "
                      f"{len(names)} tests could not run: {', '.join(names)}"]
        lines += [f"  {line}" for line in text.splitlines()]
    failed = [r for r in report.results if r.status != "passed" and not (r.import_error and not staff)]
    if failed:
        lines += ["", "Feedback on the tests not passed:"]
        for r in failed:
            hidden = " (hidden)" if r.hidden else ""
            lines += ["", f"[{r.name}]{hidden} {number(r.score)}/{number(r.points)}, {r.status}: {r.description}"]
            lines += [f"  {line}" for line in (r.detail if staff else r.feedback).splitlines()]
    lines.append("")
    sections = {}
    for r in report.results:
        got, most = sections.get(r.section, (0.0, 0.0))
        sections[r.section] = (got + r.score, most + r.points)
    order = [s for s in SECTIONS if s in sections]
    lines.append("Sections: " + ", ".join(f"{s} {number(round(sections[s][0], 2))}/{number(sections[s][1])}"
                                          for s in order))
    for note in report.notes:
        lines.append(f"Note: {note}")
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


def autolab_line(report):
    """Autolab's summary: a JSON object with one score per section (and 'hidden')."""
    scores = {section: 0 for section in SECTIONS} if report.error else report.section_scores()
    return json.dumps({"scores": scores}, sort_keys=False)


def gradescope_results(report):
    """results.json as Gradescope's autograder specification describes it.

    Hidden tests are visible after publication, with feedback in words only; their full detail
    goes to an entry per failed hidden test with visibility ``hidden`` (staff only, worth 0 points).
    """
    if report.error:
        return {"score": 0.0, "execution_time": round(report.elapsed, 3),
                "output": f"Your submission could not be graded: {report.error}", "tests": []}
    tests, staff = [], []
    for number_, r in enumerate(report.results, start=1):
        output = f"Status: {r.status}. {r.description}."
        if r.feedback:
            output += "\n" + r.feedback
        name = ("hidden: " if r.hidden else "") + r.name
        tests.append({"name": name, "number": str(number_), "score": r.score, "max_score": float(r.points),
                      "status": "passed" if r.status == "passed" else "failed", "output": output,
                      "tags": [r.section], "visibility": "after_published" if r.hidden else "visible"})
        if r.hidden and r.detail != r.feedback:
            staff.append({"name": f"staff only: {name}", "score": 0.0, "max_score": 0.0, "status": "failed",
                          "output": f"Status: {r.status}. {r.description}.\n{r.detail}", "tags": [r.section],
                          "visibility": "hidden"})
    summary = f"Public tests: {number(report.total(hidden=False))}/{number(report.max_total(hidden=False))}."
    for text, names in import_failures(report):
        summary += (f"\nYour code could not be imported ({grading.import_summary(text)}), so these tests could "
                    f"not run: {', '.join(names)}\n{text}")
    if report.notes:
        summary += "\n" + "\n".join(f"Note: {note}" for note in report.notes)
    return {"score": report.total(), "execution_time": round(report.elapsed, 3), "output": summary,
            "stdout_visibility": "hidden", "tests": tests + staff}


def write_atomically(path, text):
    """Write ``text`` to ``path`` through a temporary file in the same folder, then rename it."""
    folder = os.path.dirname(os.path.abspath(path))
    handle, temporary = tempfile.mkstemp(dir=folder, prefix=".grading-")
    try:
        with os.fdopen(handle, "w", newline="") as stream:
            stream.write(text)
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise


def gradebook_csv(reports, tests):
    """The gradebook: one row per submission, one column per test, the totals and why a row failed."""
    columns = [("hidden: " if t.hidden else "") + t.name for t in tests]
    rows = [["submission", "graded", "problem"] + columns + ["public_total", "hidden_total", "total", "notes"]]
    for report in reports:
        name = os.path.basename(os.path.normpath(report.submission))
        if report.error:
            rows.append([name, "no", report.error] + [""] * len(columns) + ["0", "0", "0", ""])
            continue
        scores = {(r.hidden, r.name): number(r.score) for r in report.results}
        rows.append([name, "yes", report.problem()] + [scores.get((t.hidden, t.name), "") for t in tests]
                    + [number(report.total(hidden=False)), number(report.total(hidden=True)),
                       number(report.total()), "; ".join(report.notes)])
    text = io.StringIO()
    csv.writer(text).writerows(rows)
    return text.getvalue()
