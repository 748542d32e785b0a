"""Regenerate the expected values of every test from the reference solution.

    python autograder/make_fixtures.py          # rewrite fixtures/public.* and hidden/hidden.*
    python autograder/make_fixtures.py --check  # exit 1 if the files differ from a fresh run

Runs the probes in this process on the reference ``mytorch`` of this checkout (it
refuses any other copy) and stores inputs and expected outputs as JSON + npz.
"""
import argparse
import json
import os
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if sys.path[0] != ROOT:
    sys.path.insert(0, ROOT)

from autograder import catalog, grading, probes  # noqa: E402


def build(tests, sub):
    """(meta, arrays) for ``tests``: expected outputs from running each case on ``sub``."""
    meta, arrays = {"version": 1, "tests": []}, {}
    for t, spec in enumerate(tests):
        if not spec["uses"]:
            raise ValueError(f"{spec['name']}: a test must name the solution blocks it uses")
        cases = []
        for c, case in enumerate(spec["cases"]):
            out, error = probes.run_case(sub, case["probe"], case["inputs"], case["params"])
            if error is not None:
                raise RuntimeError(f"{spec['name']} case {c + 1}: the reference raised {error!r}") from error
            needed = [name for chk in case["checks"] for name in chk["outputs"]]
            values, stored = {}, []
            for name in needed:
                value = out.get(name)
                if value is None or isinstance(value, probes.Missing):
                    raise RuntimeError(f"{spec['name']} case {c + 1}: the reference produced no {name}")
                if isinstance(value, np.ndarray):
                    arrays[f"t{t}|c{c}|out|{name}"] = value
                    stored.append(name)
                else:
                    values[name] = value
            for name, value in case["inputs"].items():
                arrays[f"t{t}|c{c}|in|{name}"] = np.asarray(value)
            cases.append({"probe": case["probe"], "params": case["params"], "note": case["note"],
                          "checks": case["checks"], "inputs": sorted(case["inputs"]), "arrays": stored,
                          "values": values})
        meta["tests"].append({key: spec[key] for key in ("name", "section", "points", "uses", "description")})
        meta["tests"][-1]["cases"] = cases
    return meta, arrays


def write(stem, meta, arrays):
    os.makedirs(os.path.dirname(stem), exist_ok=True)
    with open(stem + ".json", "w") as handle:
        json.dump(meta, handle, indent=1, sort_keys=True)
        handle.write("\n")
    np.savez_compressed(stem + ".npz", **arrays)


def differences(stem, meta, arrays):
    """What differs between the files at ``stem`` and a fresh (meta, arrays)."""
    if not os.path.exists(stem + ".json"):
        return [f"{stem}.json is missing"]
    with open(stem + ".json") as handle:
        found = json.load(handle)
    problems = [] if found == json.loads(json.dumps(meta)) else [f"{stem}.json differs"]
    with np.load(stem + ".npz", allow_pickle=False) as archive:
        if set(archive.files) != set(arrays):
            problems.append(f"{stem}.npz holds other arrays")
        else:
            problems += [f"{stem}.npz: {name} differs" for name in sorted(arrays)
                         if not np.array_equal(archive[name], arrays[name])
                         or archive[name].dtype != arrays[name].dtype]
    return problems


def test_sets():
    """(stem, tests) for the public set and, when present, the hidden set."""
    sets = [(grading.PUBLIC, catalog.public_tests())]
    if os.path.exists(os.path.join(ROOT, "autograder", "hidden", "catalog.py")):
        from autograder.hidden import catalog as hidden_catalog

        sets.append((grading.HIDDEN, hidden_catalog.hidden_tests()))
    return sets


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare with the files instead of writing them")
    args = parser.parse_args(argv)
    sub = probes.load_submission(ROOT)
    public_points = sum(t["points"] for t in catalog.public_tests())
    if public_points != 100:
        raise SystemExit(f"make_fixtures: the public tests are worth {public_points} points, not 100")
    problems = []
    for stem, tests in test_sets():
        meta, arrays = build(tests, sub)
        if args.check:
            problems += differences(stem, meta, arrays)
        else:
            write(stem, meta, arrays)
            print(f"wrote {os.path.relpath(stem, ROOT)}.json/.npz: {len(tests)} tests, "
                  f"{sum(t['points'] for t in tests)} points")
    if problems:
        print("fixtures are out of date (run python autograder/make_fixtures.py):\n  " + "\n  ".join(problems))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
