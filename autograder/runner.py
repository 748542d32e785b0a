"""Grade mytorch: the working tree, one submission, or a folder of submissions.

    python autograder/runner.py [SECTION ...]
        grade this tree on the public tests (the student's view); the last line is
        Autolab's JSON summary
    python autograder/runner.py --submission PATH [--hidden] [--format text|autolab|gradescope] [--output FILE]
        grade a handin.tar (or a folder holding mytorch/ or one tarball)
    python autograder/runner.py --batch DIR --csv FILE [--jobs N] [--hidden]
        grade every tarball or folder in DIR into a gradebook CSV

Sections: autograd, functional, activation, linear, loss, mlp.
"""
import argparse
import concurrent.futures
import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if sys.path and os.path.abspath(sys.path[0] or ".") == os.path.dirname(os.path.abspath(__file__)):
    sys.path[0] = ROOT  # import the grader as the package ``autograder``, not its files one by one
elif ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from autograder import grading, report, sandbox  # noqa: E402


def parse_args(argv):
    defaults = grading.Options()
    parser = argparse.ArgumentParser(
        prog="python autograder/runner.py", description=__doc__.splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter, epilog="\n".join(__doc__.splitlines()[2:]))
    parser.add_argument("sections", nargs="*", metavar="SECTION", help="grade only these sections")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--submission", metavar="PATH", help="a handin.tar, or a folder holding mytorch/ or one tarball")
    where.add_argument("--batch", metavar="DIR", help="grade every tarball or folder in DIR")
    parser.add_argument("--csv", metavar="FILE", help="the gradebook to write (with --batch)")
    parser.add_argument("--jobs", type=int, default=1, metavar="N",
                        help=f"submissions graded at once (with --batch; at most {sandbox.SLOTS})")
    parser.add_argument("--hidden", action="store_true", help="also run the hidden tests (not in the handout)")
    parser.add_argument("--allow-unisolated", action="store_true",
                        help="run the hidden tests even on a host that cannot fully isolate the tests (the report's "
                             "notes say what is missing)")
    parser.add_argument("--format", choices=("text", "autolab", "gradescope"), default=None,
                        help="text (default), autolab (text, then the JSON summary as the last line), "
                             "gradescope (results.json)")
    parser.add_argument("--output", metavar="FILE", help="write the report to FILE instead of the screen")
    parser.add_argument("--timeout", type=float, default=defaults.timeout, metavar="S",
                        help=f"seconds per test (default {defaults.timeout:g})")
    parser.add_argument("--memory", type=int, default=defaults.memory // 2 ** 20, metavar="MB",
                        help=f"memory per test in MB (default {defaults.memory // 2 ** 20})")
    parser.add_argument("--disk", type=int, default=defaults.disk // 2 ** 20, metavar="MB",
                        help=f"disk space per test in MB (default {defaults.disk // 2 ** 20})")
    args = parser.parse_args(argv)
    if args.batch and not args.csv:
        parser.error("--batch needs --csv FILE")
    if (args.csv or args.jobs != 1) and not args.batch:
        parser.error("--csv and --jobs go with --batch")
    if (args.format or args.output) and not args.submission:
        parser.error("--format and --output go with --submission")
    if args.hidden and not (args.submission or args.batch):
        parser.error("--hidden goes with --submission or --batch")
    if args.allow_unisolated and not args.hidden:
        parser.error("--allow-unisolated goes with --hidden")
    if args.jobs < 1 or args.timeout <= 0 or args.memory <= 0 or args.disk <= 0:
        parser.error("--jobs, --timeout, --memory and --disk must be positive")
    if args.jobs > sandbox.SLOTS:
        parser.error(f"--jobs: at most {sandbox.SLOTS} submissions at once")
    return args


def emit(text, output):
    """Print ``text``, or write it atomically to ``output``."""
    if output:
        report.write_atomically(output, text if text.endswith("\n") else text + "\n")
    else:
        print(text, flush=True)


def grade_one(args, tests, options):
    result = grading.grade(args.submission, tests, options)
    fmt = args.format or "text"
    title = f"mytorch autograder: {args.submission} ({'public and hidden' if args.hidden else 'public'} tests)"
    if fmt == "gradescope":
        text = json.dumps(report.gradescope_results(result), indent=1)
    else:
        text = report.text_report(result, title)
        if fmt == "autolab":
            text += "\n" + report.autolab_line(result)
    emit(text, args.output)
    if args.output:
        print(f"graded {args.submission}: {report.number(result.total())}/{report.number(result.max_total())}"
              f" -> {args.output}" if not result.error else f"could not grade {args.submission}: {result.error}")
    # Gradescope reads results.json whatever the exit status; elsewhere 1 says "not graded".
    return 1 if result.error and fmt != "gradescope" else 0


def grade_batch(args, tests, options):
    names = sorted(n for n in os.listdir(args.batch) if not n.startswith("."))
    paths = [os.path.join(args.batch, n) for n in names]
    reports = [None] * len(paths)
    with concurrent.futures.ThreadPoolExecutor(max_workers=args.jobs) as pool:
        futures = {pool.submit(grading.grade, path, tests, options, args.batch): i for i, path in enumerate(paths)}
        for done, future in enumerate(concurrent.futures.as_completed(futures), start=1):
            i = futures[future]
            reports[i] = r = future.result()
            outcome = r.error or f"{report.number(r.total())}/{report.number(r.max_total())}"
            print(f"[{done}/{len(paths)}] {names[i]}: {outcome}", file=sys.stderr, flush=True)
    report.write_atomically(args.csv, report.gradebook_csv(reports, tests))
    print(f"graded {len(paths)} submissions ({sum(1 for r in reports if r.error)} could not be graded) -> {args.csv}")
    return 0


def grade_tree(args, tests, options):
    result = grading.grade(ROOT, tests, options)
    which = f"sections {', '.join(args.sections)}" if args.sections else "all sections"
    print(report.text_report(result, f"mytorch autograder: public tests, {which}"))
    print(report.autolab_line(result), flush=True)
    return 1 if result.error else 0


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    options = grading.Options(timeout=args.timeout, memory=args.memory * 2 ** 20, disk=args.disk * 2 ** 20,
                              allow_unisolated=args.allow_unisolated)
    try:
        tests = grading.select_tests(args.sections, hidden=args.hidden)
        if args.hidden and args.batch and not args.allow_unisolated:  # (grade() refuses each submission too)
            problems = grading.host_problems(options, args.batch, args.batch)
            if problems:
                raise ValueError("--hidden: " + grading.refusal(problems))
        if args.batch:
            return grade_batch(args, tests, options)
        if args.submission:
            return grade_one(args, tests, options)
        return grade_tree(args, tests, options)
    except (ValueError, sandbox.SandboxError) as error:
        print(f"runner: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
