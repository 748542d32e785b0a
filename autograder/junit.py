"""The JUnit XML report (``--format junit``), the test-result format CI services and GitHub Classroom read.

One ``<testsuite>`` per Autolab problem (each section, and ``hidden`` for the hidden
tests), one ``<testcase>`` per test. A test not fully passed has a ``<failure>``
(status failed, including partial credit) or an ``<error>`` (error, timeout, out of
memory) whose message gives the score and status and whose text is the test's
feedback (for a hidden test, the student-safe feedback the report shows). Points
and scores are ``<properties>`` of each suite and test case. A submission that
could not be graded is one suite ``submission`` with one erroring test case
``grading`` saying why. The report's notes are the first suite's ``<system-out>``.
Characters XML 1.0 cannot hold (control characters, lone surrogates) are written
as ``\\xNN`` escapes, so the file always parses.
"""
import re
import xml.etree.ElementTree as ET

from autograder import report as reports

# What XML 1.0 forbids: C0 controls other than tab, newline and carriage return, surrogates, U+FFFE/U+FFFF.
NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def xml_text(text):
    """``text`` with every character XML 1.0 cannot hold written as a visible escape."""
    return NOT_XML.sub(lambda match: f"\\x{ord(match.group()):02x}" if ord(match.group()) < 256
                       else f"\\u{ord(match.group()):04x}", str(text))


def element(parent, tag, text=None, **attributes):
    """A child element of ``parent`` with cleaned text and attributes (None values left out)."""
    child = ET.SubElement(parent, tag, {k: xml_text(v) for k, v in attributes.items() if v is not None})
    if text is not None:
        child.text = xml_text(text)
    return child


def properties(parent, **values):
    group = element(parent, "properties")
    for name, value in values.items():
        element(group, "property", name=name, value=reports.number(value))


def counts(results):
    """The testsuite attributes tests, failures, errors and skipped of ``results``."""
    failures = sum(1 for r in results if r.status == "failed")
    errors = sum(1 for r in results if r.status not in ("passed", "failed"))
    return {"tests": str(len(results)), "failures": str(failures), "errors": str(errors), "skipped": "0"}


def junit_xml(report, title):
    """The JUnit XML document (text, with its XML declaration) of a graded or ungradable submission."""
    root = element(ET.Element("root"), "testsuites", name=title, time=f"{report.elapsed:.3f}")
    if report.error:
        suite = element(root, "testsuite", name="submission", tests="1", failures="0", errors="1", skipped="0")
        case = element(suite, "testcase", name="grading", classname="submission")
        reason = reports.error_of(report)
        element(case, "error", f"could not grade {reports.one_line(report.submission, reports.MAX_NOTE)}: {reason}",
                message=f"could not grade the submission: {reason}", type="not graded")
    groups = {}
    for result in report.results:
        groups.setdefault("hidden" if result.hidden else result.section, []).append(result)
    for key, results in groups.items():
        suite = element(root, "testsuite", name=key, **counts(results))
        properties(suite, score=round(sum(r.score for r in results), 2), points=sum(r.points for r in results))
        for result in results:
            case = element(suite, "testcase", name=result.name,
                           classname=f"hidden.{result.section}" if result.hidden else result.section)
            properties(case, score=result.score, points=result.points)
            if result.status != "passed":
                message = (f"{reports.number(result.score)}/{reports.number(result.points)} points, "
                           f"{result.status}: {result.description}")
                element(case, "failure" if result.status == "failed" else "error", reports.feedback_of(result),
                        message=message, type=result.status)
    if report.notes:
        element(root[0], "system-out", "\n".join(f"Note: {note}" for note in reports.notes_of(report)))
    totals = {"tests": "1", "failures": "0", "errors": "1"} if report.error else counts(report.results)
    for name in ("tests", "failures", "errors"):
        root.set(name, totals[name])
    if hasattr(ET, "indent"):  # Python 3.9+
        ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
