"""Grade mytorch: the working tree, one submission, or a folder of submissions.

    python autograder/runner.py [--pack PACK] [SECTION ...]
        grade this tree on the public tests (the student's view); the last line is
        Autolab's JSON summary
    python autograder/runner.py [--pack PACK] --submission PATH [--hidden] [--format text|autolab|gradescope|junit]
                                [--output FILE]
        grade a handin.tar, or a folder holding mytorch/, an archive, or one folder holding mytorch/
    python autograder/runner.py [--pack PACK] --batch DIR --csv FILE [--jobs N] [--hidden]
        grade every archive or folder in DIR into a gradebook CSV (written row by row as they finish)
    --staff-report FILE (with --submission or --batch) also writes the full report for staff:
        the student-visible one shows hidden tests' failures in words only

PACK is the homework, one of those below (default: this grader's own, named in the
autograder/pack.txt of its handout or bundle; mlp in the project's checkout). The packs and
their sections:
"""

import argparse
import concurrent.futures
import csv
import json
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if sys.path and os.path.abspath(sys.path[0] or ".") == os.path.dirname(os.path.abspath(__file__)):
    sys.path[0] = ROOT  # import the grader as the package ``autograder``, not its files one by one
elif ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from autograder import grading, junit, packs, report, sandbox  # noqa: E402

__doc__ += "".join(f"    {pack.name}: {', '.join(pack.sections)}\n" for pack in packs.PACKS.values())


def parse_args(argv):
    defaults = grading.Options()
    parser = argparse.ArgumentParser(
        prog="python autograder/runner.py", description=__doc__.splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter, epilog="\n".join(__doc__.splitlines()[2:]))
    parser.add_argument("sections", nargs="*", metavar="SECTION", help="grade only these sections")
    parser.add_argument("--pack", choices=list(packs.PACKS), default=packs.default(),
                        help=f"the homework to grade (default: {packs.default()}, this grader's own)")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--submission", metavar="PATH",
                       help="a handin.tar (or .zip), or a folder holding mytorch/, an archive, or one folder "
                            "holding mytorch/")
    where.add_argument("--batch", metavar="DIR", help="grade every archive or folder in DIR")
    parser.add_argument("--csv", metavar="FILE", help="the gradebook to write (with --batch)")
    parser.add_argument("--jobs", type=int, default=1, metavar="N",
                        help=f"submissions graded at once (with --batch; at most {sandbox.SLOTS})")
    parser.add_argument("--hidden", action="store_true", help="also run the hidden tests (not in the handout)")
    parser.add_argument("--allow-unisolated", action="store_true",
                        help="run the hidden tests even on a host that cannot fully isolate the tests (the report's "
                             "notes say what is missing)")
    parser.add_argument("--format", choices=("text", "autolab", "gradescope", "junit"), default=None,
                        help="text (default), autolab (text, then the JSON summary as the last line), "
                             "gradescope (results.json), junit (JUnit XML, for CI services)")
    parser.add_argument("--output", metavar="FILE", help="write the report to FILE instead of the screen")
    parser.add_argument("--staff-report", metavar="FILE",
                        help="also write the full report for staff to FILE: hidden tests' numbers, messages and "
                             "printed output, which the student-visible report leaves out")
    parser.add_argument("--timeout", type=float, default=defaults.timeout, metavar="S",
                        help=f"seconds per test (default {defaults.timeout:g})")
    parser.add_argument("--memory", type=int, default=defaults.memory // 2 ** 20, metavar="MB",
                        help=f"memory per test in MB (default {defaults.memory // 2 ** 20})")
    parser.add_argument("--total-timeout", type=float, default=None, metavar="S",
                        help="seconds for one whole submission, after which its remaining tests are not run "
                             "(default 20 x --timeout)")
    parser.add_argument("--disk", type=int, default=defaults.disk // 2 ** 20, metavar="MB",
                        help=f"disk space per test in MB (default {defaults.disk // 2 ** 20})")
    args = parser.parse_args(argv)
    if args.batch and not args.csv:
        parser.error("--batch needs --csv FILE")
    if (args.csv or args.jobs != 1) and not args.batch:
        parser.error("--csv and --jobs go with --batch")
    if (args.format or args.output) and not args.submission:
        parser.error("--format and --output go with --submission")
    if (args.hidden or args.staff_report) and not (args.submission or args.batch):
        parser.error("--hidden and --staff-report go with --submission or --batch")
    if args.allow_unisolated and not args.hidden:
        parser.error("--allow-unisolated goes with --hidden")
    total = args.total_timeout
    if (args.jobs < 1 or args.timeout <= 0 or args.memory <= 0 or args.disk <= 0
            or (total is not None and total <= 0)):
        parser.error("--jobs, --timeout, --memory, --disk and --total-timeout must be positive")
    if args.jobs > sandbox.SLOTS:
        parser.error(f"--jobs: at most {sandbox.SLOTS} submissions at once")
    return args


def emit(text, output):
    """Print ``text``, or write it atomically to ``output``."""
    if output:
        report.write_atomically(output, text if text.endswith("\n") else text + "\n")
    else:
        print(text, flush=True)


def grade_safely(path, tests, options, batch=None):
    """grading.grade's report; should grading itself raise, a report saying so (a batch goes on)."""
    start = time.monotonic()
    try:
        return grading.grade(path, tests, options, batch)
    except Exception as error:
        return grading.Report(path, [], [], error=f"grader failure: {type(error).__name__}: {error}",
                              elapsed=time.monotonic() - start)


def grade_one(args, tests, options):
    result = grade_safely(args.submission, tests, options)
    fmt = args.format or "text"
    title = (f"mytorch autograder, {packs.get(args.pack).title}: {args.submission} "
             f"({'public and hidden' if args.hidden else 'public'} tests)")
    if fmt == "gradescope":
        text = json.dumps(report.gradescope_results(result), indent=1)
    elif fmt == "junit":
        text = junit.junit_xml(result, title)
    else:
        text = report.text_report(result, title)
        if fmt == "autolab":
            text += "\n" + report.autolab_line(result, tests)
    emit(text, args.output)
    if args.staff_report:
        report.write_atomically(args.staff_report, report.text_report(result, title + ", staff report", staff=True)
                                + "\n")
    if args.output:
        shown = report.one_line(args.submission, report.MAX_NOTE)
        print(f"graded {shown}: {report.number(result.total())}/{report.number(result.max_total())}"
              f" -> {args.output}" if not result.error else f"could not grade {shown}: {report.error_of(result)}")
    # Gradescope and Autolab read their report whatever the exit status (and Autolab's Makefile must not
    # fail after the JSON line); elsewhere 1 says "not graded" (or: the hidden tests asked for were not run).
    return 1 if (result.error or result.refused) and fmt not in ("gradescope", "autolab") else 0


GRADER_OUTPUTS = (".csv", ".json", ".yml")  # gradebooks, results.json, Gradescope's submission_metadata.yml


def batch_entries(folder, csv_path):
    """(the names in ``folder`` to grade, the names skipped as grader outputs): hidden files, the gradebook
    being written and other gradebooks or results files are not submissions."""
    names = sorted(name for name in os.listdir(folder) if not name.startswith("."))
    gradebook = os.path.realpath(csv_path)
    skipped = [name for name in names if name.lower().endswith(GRADER_OUTPUTS)
               or os.path.realpath(os.path.join(folder, name)) == gradebook]
    return [name for name in names if name not in skipped], skipped


def grade_batch(args, tests, options):
    """Grade every submission in the batch folder, writing each gradebook row as soon as it is graded (so
    no row is lost if the run stops), then the whole gradebook sorted by name."""
    names, skipped = batch_entries(args.batch, args.csv)
    for name in skipped:
        print(f"skipped {report.one_line(name, report.MAX_NOTE)}: a grader output, not a submission",
              file=sys.stderr)
    paths = [os.path.join(args.batch, n) for n in names]
    reports = [None] * len(paths)
    with open(args.csv, "w", newline="", encoding="utf-8") as progress:
        rows = csv.writer(progress)
        rows.writerow(report.gradebook_header(tests))
        with concurrent.futures.ThreadPoolExecutor(max_workers=args.jobs) as pool:
            futures = {pool.submit(grade_safely, path, tests, options, args.batch): i for i, path in enumerate(paths)}
            try:
                for done, future in enumerate(concurrent.futures.as_completed(futures), start=1):
                    i = futures[future]
                    reports[i] = r = future.result()
                    rows.writerow(report.gradebook_row(r, tests))
                    progress.flush()
                    outcome = (report.error_of(r) if r.error
                               else f"{report.number(r.total())}/{report.number(r.max_total())}")
                    print(f"[{done}/{len(paths)}] {report.one_line(names[i], report.MAX_NOTE)}: {outcome}",
                          file=sys.stderr, flush=True)
            except BaseException:  # Ctrl-C: start no more submissions (the ones running finish)
                for future in futures:
                    future.cancel()
                raise
    report.write_atomically(args.csv, report.gradebook_csv(reports, tests))
    if args.staff_report:
        report.write_atomically(args.staff_report, "\n\n".join(
            report.text_report(r, f"mytorch autograder: {name}, staff report", staff=True)
            for name, r in zip(names, reports)) + "\n")
    print(f"graded {len(paths)} submissions ({sum(1 for r in reports if r.error)} could not be graded) -> {args.csv}")
    return 0


def grade_tree(args, tests, options):
    result = grade_safely(os.path.realpath(ROOT), tests, options)
    which = f"sections {', '.join(args.sections)}" if args.sections else "all sections"
    print(report.text_report(result, f"mytorch autograder, {packs.get(args.pack).title}: public tests, {which}"))
    print(report.autolab_line(result, tests), flush=True)
    return 1 if result.error else 0


def main(argv=None):
    for stream in (sys.stdout, sys.stderr):  # an odd character in a report must never stop it being written
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")
    args = parse_args(sys.argv[1:] if argv is None else argv)
    options = grading.Options(timeout=args.timeout, memory=args.memory * 2 ** 20, disk=args.disk * 2 ** 20,
                              allow_unisolated=args.allow_unisolated, total=args.total_timeout)
    try:
        tests = grading.select_tests(args.sections, hidden=args.hidden, pack=args.pack)
        if args.hidden and args.batch and not args.allow_unisolated:  # (grade() refuses each submission too)
            problems = grading.host_problems(options, args.batch, args.batch)
            if problems:
                raise ValueError("--hidden: " + grading.refusal(problems))
        if args.batch:
            return grade_batch(args, tests, options)
        if args.submission:
            return grade_one(args, tests, options)
        return grade_tree(args, tests, options)
    except (ValueError, OSError, sandbox.SandboxError) as error:
        print(f"runner: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
