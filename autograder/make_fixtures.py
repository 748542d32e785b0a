"""Regenerate the expected values of every test from the reference solution.

    python autograder/make_fixtures.py [--pack PACK | --all]          # rewrite the fixtures of every pack (or one)
    python autograder/make_fixtures.py [--pack PACK | --all] --check  # exit 1 if they differ from a fresh run

Each pack (``packs.py``) has its public fixtures in ``fixtures/`` (the MLP's ``public.*``,
the CNN's ``cnn_public.*``, ...) and its hidden ones in ``hidden/``.

Runs the probes in this process on the reference ``mytorch`` of this checkout (it
refuses any other copy) and stores inputs and expected outputs as JSON + npz.
``--check`` compares float arrays with ``CHECK_TOLERANCES``, a thousand times
tighter than the grading tolerances but loose enough for the last-bit differences
of NumPy's float kernels between CPUs; everything else must be equal.
"""
import argparse
import dataclasses
import json
import os
import sys

import numpy as np

# dtype -> (atol, rtol) of ``--check``: far below grading.TOLERANCES, far above rounding differences.
CHECK_TOLERANCES = {"float64": (1e-12, 1e-10), "float32": (1e-8, 1e-6)}

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if sys.path[0] != ROOT:
    sys.path.insert(0, ROOT)

import importlib  # noqa: E402

from autograder import grading, handout, packs, probes, submission  # noqa: E402


def build(tests, sub, pack=packs.DEFAULT):
    """(meta, arrays) for ``tests`` (``catalog.CatalogTest``s) of ``pack``: expected outputs from running each
    case on ``sub``."""
    meta, arrays = {"version": 1, "pack": pack, "tests": []}, {}
    for t, spec in enumerate(tests):
        if not spec.uses:
            raise ValueError(f"{spec.name}: a test must name the solution blocks it uses")
        cases = []
        for c, case in enumerate(spec.cases):
            out, error = probes.run_case(sub, case.probe, case.inputs, case.params)
            if error is not None:
                raise RuntimeError(f"{spec.name} case {c + 1}: the reference raised {error!r}") from error
            values, stored = {}, []
            for name in [name for chk in case.checks for name in chk.outputs]:
                value = out.get(name)
                if value is None or isinstance(value, probes.Missing):
                    raise RuntimeError(f"{spec.name} case {c + 1}: the reference produced no {name}")
                if isinstance(value, np.ndarray):
                    arrays[f"t{t}|c{c}|out|{name}"] = value
                    stored.append(name)
                else:
                    values[name] = value
            for name, value in case.inputs.items():
                arrays[f"t{t}|c{c}|in|{name}"] = np.asarray(value)
            hints = diagnosis_hints(sub, case)
            arrays.update({f"t{t}|c{c}|hint|{name}": value for name, value in hints.items()})
            cases.append({"probe": case.probe, "params": case.params, "note": case.note,
                          "checks": [dataclasses.asdict(chk) for chk in case.checks], "inputs": sorted(case.inputs),
                          "arrays": stored, "values": values, "unit": case.unit, "kinds": case.kinds,
                          "scales": case.scales, "hints": sorted(hints)})
        meta["tests"].append({"name": spec.name, "section": spec.section, "points": spec.points, "uses": spec.uses,
                              "description": spec.description, "cases": cases})
    return meta, arrays


def diagnosis_hints(sub, case):
    """Arrays that let the grader name a usual mistake (``grading.diagnose``), as "<kind>/<output>":

    - ``unreduced/grad<i>``: for the broadcast inputs of an elementwise primitive, the gradient
      before undoing broadcasting (to recognise a sum over the wrong axes);
    - ``before_last_activation/output``: for an MLP forward whose last activation is not Identity,
      the output without it.
    """
    if case.probe == "primitive" and case.params["name"] in ("sub_backward", "mul_backward", "div_backward"):
        inputs = [case.inputs[f"in{i}"] for i in range(case.params["n_inputs"])]
        shape = np.broadcast_shapes(*(a.shape for a in inputs))
        full = getattr(sub.F, case.params["name"])(case.inputs["grad_output"],
                                                   *(np.broadcast_to(a, shape) for a in inputs))
        return {f"unreduced/grad{i}": np.array(g) for i, (a, g) in enumerate(zip(inputs, full)) if a.shape != shape}
    if case.probe == "mlp" and case.params["mode"] == "forward" and case.params["activations"][-1] != "Identity":
        params = dict(case.params, activations=case.params["activations"][:-1] + ["Identity"])
        out, error = probes.run_case(sub, "mlp", case.inputs, params)
        if error is not None:
            raise RuntimeError(f"the reference without the last activation raised {error!r}") from error
        return {"before_last_activation/output": out["output"], "before_last_activation/mlp.output": out["output"]}
    return {}


def given_functions(root=ROOT, pack=packs.DEFAULT):
    """{file: {function: digest}} of the functions of the student files of ``pack``'s handout (its own and
    its bases') that hold no solution block: the code the handout gives, which the grader checks the
    submission left alone."""
    manifest = {}
    for relpath in handout.student_files(root, pack):
        if not submission.wanted(relpath):
            continue
        with open(os.path.join(root, relpath), encoding="utf-8") as handle:
            text = handle.read()
        blocks = [begin + 1 for begin, _, _, _ in handout.solution_blocks(text, relpath)]
        functions = {name: digest for name, (first, last, digest) in grading.function_digests(text).items()
                     if not any(first <= line <= last for line in blocks)}
        if functions:
            manifest[relpath] = functions
    return manifest


def write(stem, meta, arrays):
    os.makedirs(os.path.dirname(stem), exist_ok=True)
    with open(stem + ".json", "w") as handle:
        json.dump(meta, handle, indent=1, sort_keys=True)
        handle.write("\n")
    np.savez_compressed(stem + ".npz", **arrays)


def differences(stem, meta, arrays):
    """What differs between the files at ``stem`` and a fresh (meta, arrays), beyond CHECK_TOLERANCES."""
    if not os.path.exists(stem + ".json"):
        return [f"{stem}.json is missing"]
    with open(stem + ".json") as handle:
        found = json.load(handle)
    problems = [] if found == json.loads(json.dumps(meta)) else [f"{stem}.json differs"]
    with np.load(stem + ".npz", allow_pickle=False) as archive:
        if set(archive.files) != set(arrays):
            problems.append(f"{stem}.npz holds other arrays")
        else:
            problems += [f"{stem}.npz: {name} {problem}" for name in sorted(arrays)
                         for problem in [array_difference(archive[name], arrays[name])] if problem]
    return problems


def array_difference(stored, fresh):
    """None if ``stored`` matches ``fresh`` (float dtypes within CHECK_TOLERANCES), else how it differs."""
    if stored.dtype != fresh.dtype or stored.shape != fresh.shape:
        return f"is {stored.dtype} {stored.shape}, a fresh run gives {fresh.dtype} {fresh.shape}"
    if fresh.dtype.kind != "f":
        return None if np.array_equal(stored, fresh) else "differs"
    atol, rtol = CHECK_TOLERANCES.get(str(fresh.dtype), CHECK_TOLERANCES["float32"])
    if np.allclose(stored, fresh, rtol=rtol, atol=atol, equal_nan=True):
        return None
    return f"differs by up to {float(np.nanmax(np.abs(stored - fresh))):.3g} (atol {atol:g}, rtol {rtol:g})"


def test_sets(names=tuple(packs.PACKS)):
    """(pack, stem, tests) for the public set and, when its catalog is here, the hidden set of each pack."""
    sets = []
    for name in names:
        pack = packs.get(name)
        sets.append((name, grading.public_stem(name), importlib.import_module(pack.catalog).public_tests()))
        hidden = os.path.join(ROOT, *pack.hidden_catalog.split(".")) + ".py"
        if os.path.exists(hidden):
            sets.append((name, grading.hidden_stem(name), importlib.import_module(pack.hidden_catalog).hidden_tests()))
    return sets


def check_points(name, tests):
    """SystemExit unless the public ``tests`` of pack ``name`` give each section the points packs.py says."""
    found = {}
    for t in tests:
        found[t.section] = found.get(t.section, 0) + t.points
    expected = packs.get(name).sections
    if found != expected or list(found) != list(expected) or sum(found.values()) != 100:
        raise SystemExit(f"make_fixtures: the public tests of the {name} pack give the sections {found} "
                         f"({sum(found.values())} points), but autograder/packs.py says {expected} (100 points)")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare with the files instead of writing them")
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--pack", choices=list(packs.PACKS), help="only this pack's fixtures")
    which.add_argument("--all", action="store_true", help="every pack's fixtures (the default)")
    args = parser.parse_args(argv)
    sub = probes.load_submission(ROOT)
    problems, checked = [], []
    for name, stem, tests in test_sets([args.pack] if args.pack else tuple(packs.PACKS)):
        if stem == grading.public_stem(name):
            check_points(name, tests)
        meta, arrays = build(tests, sub, name)
        if stem == grading.public_stem(name):
            meta["given"] = given_functions(pack=name)
        if args.check:
            problems += differences(stem, meta, arrays)
            checked.append(f"{os.path.relpath(stem, ROOT)} ({len(tests)} tests)")
        else:
            write(stem, meta, arrays)
            print(f"wrote {os.path.relpath(stem, ROOT)}.json/.npz: {len(tests)} tests, "
                  f"{sum(t.points for t in tests)} points")
    if problems:
        print("fixtures are out of date (run python autograder/make_fixtures.py):\n  " + "\n  ".join(problems))
        return 1
    if args.check:
        print(f"fixtures are up to date: {', '.join(checked)} match a fresh run of the reference")
    return 0


if __name__ == "__main__":
    sys.exit(main())
