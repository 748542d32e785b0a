"""The autograder: full marks for the reference, exact costs for wrong formulas and hostile code.

Every corpus submission is the reference with one patch (a wrong formula, or an
attack); the whole corpus is graded once, two submissions at a time, by a
module-scoped fixture, and each test asserts on its report: the attacked tests
lose their points with the expected status, every other test keeps full marks.
"""
import concurrent.futures
import csv
import io
import json
import os
import re
import struct
import subprocess
import sys
import tarfile
import tempfile
import time
import zipfile

import numpy as np
import pytest

from autograder import grading, probes, report, sandbox, submission, wire

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RUNNER = os.path.join(ROOT, "autograder", "runner.py")
AS_ROOT = os.geteuid() == 0
FAST = grading.Options(timeout=2.0)  # the reference needs milliseconds per test
PUBLIC = grading.select_tests()
PUBLIC_NAMES = [t.name for t in PUBLIC]
F = "mytorch/nn/functional.py"


def reference_files():
    files, notes = submission.read_submission(ROOT)
    assert not notes
    return files


def patched(patches):
    """The reference submission with each (file, old, new) applied; ``old`` must occur exactly once."""
    files = reference_files()
    for relpath, old, new in patches:
        text = files[relpath].decode()
        assert text.count(old) == 1, f"{old!r} occurs {text.count(old)} times in {relpath}"
        files[relpath] = text.replace(old, new).encode()
    return files


def write_tree(folder, files):
    for relpath, data in files.items():
        path = os.path.join(folder, *relpath.split("/"))
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as handle:
            handle.write(data)
    return folder


def inject(relpath, anchor, code):
    """A patch putting ``code`` (one line per list item) before ``anchor``, at the anchor's indentation."""
    indent = anchor[: len(anchor) - len(anchor.lstrip())]
    return (relpath, anchor, "".join(f"{indent}{line}\n" for line in code) + anchor)


def grade_all(folders, options=FAST, tests=PUBLIC, batch=None):
    """name -> Report, grading the folders two at a time (each sandbox with its own uid when root)."""
    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        futures = {name: pool.submit(grading.grade, path, tests, options, batch) for name, path in folders.items()}
        return {name: future.result() for name, future in futures.items()}


def running_as(uids):
    """(pid, state) of the live processes whose real uid is in ``uids`` (zombies left out)."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/status") as handle:
                fields = dict(line.split(":", 1) for line in handle if ":" in line)
        except OSError:
            continue
        if int(fields["Uid"].split()[0]) in uids and not fields["State"].strip().startswith("Z"):
            found.append((int(pid), fields["State"].strip()))
    return found


def by_name(rep):
    assert not rep.error, f"{rep.submission} could not be graded: {rep.error}"
    return {r.name: r for r in rep.results if not r.hidden}


# --------------------------------------------------------------------- the corpus
# Plausible wrong formulas, at least one per solution block: "block" or "block: the mistake" -> (file, old, new).
WRONG = {
    "sub_backward": (F, "unbroadcast(-grad_output, b.shape)", "unbroadcast(grad_output, b.shape)"),  # sign
    "mul_backward": (F, "return unbroadcast(grad_output * b, a.shape), unbroadcast(grad_output * a, b.shape)",
                     "return grad_output * b, grad_output * a"),  # no unbroadcast
    "div_backward": (F, "unbroadcast(-grad_a * a / b, b.shape)", "unbroadcast(grad_a * a / b, b.shape)"),  # sign
    "matmul_backward": (F, "grad_b = np.dot(a.T, grad_output)\n", "grad_b = np.dot(grad_output.T, a)\n"),
    "outer_backward": (F, "grad_b = a.ravel() @ grad_output", "grad_b = grad_output.sum(axis=0)"),
    "log_backward": (F, "return (grad_output / a,)", "return (grad_output * a,)"),
    "exp_backward": (F, "return (grad_output * out,)", "return ((grad_output * out).astype(np.float32),)"),
    "sum_backward": (F, "grad = _expand_reduced(grad_output, axis, keepdims)\n    return (np.broadcast_to",
                     "grad = grad_output\n    return (np.broadcast_to"),  # axis not re-inserted
    "max_backward": (F, "return (winners * (grad / count),)", "return (winners * grad,)"),  # ties not shared
    "SoftmaxCrossEntropy_backward": (F, "scale = grad_output / y_hat.shape[0]", "scale = grad_output"),  # no batch mean
    "Autograd.add_operation": ("mytorch/autograd_engine.py", "            if target is None:\n                self.gradient_buffer.add_spot",
                               "            if target is not None:\n                self.gradient_buffer.add_spot"),
    "Autograd.backward": ("mytorch/autograd_engine.py", "self.gradient_buffer.update_param(array, grad)",
                          "self.gradient_buffer.set_param(array, grad)"),  # no accumulation
    "Linear.forward": ("mytorch/nn/modules/linear.py", "[y, self.b], out, [None, self.db]", "[y, self.b], out, [None, None]"),
    "Sigmoid.forward": ("mytorch/nn/modules/activation.py", "self.state = stable_sigmoid(x)", "self.state = 1 / (1 + np.exp(x))"),
    "Tanh.forward": ("mytorch/nn/modules/activation.py", "self.state = np.tanh(x)", "self.state = np.tanh(x).astype(np.float32)"),
    "ReLU.forward": ("mytorch/nn/modules/activation.py", "self.state = np.maximum(x, 0)", "self.state = np.abs(x)"),
    "MSELoss.forward": ("mytorch/nn/modules/loss.py", "mean = np.asarray(np.mean(squared))", "mean = np.asarray(np.sum(squared))"),
    "SoftmaxCrossEntropy.forward": ("mytorch/nn/modules/loss.py", "-np.mean(np.sum(y * log_softmax, axis=1))",
                                    "-np.sum(y * log_softmax)"),  # no batch mean
    "MLP.forward": ("hw/mlp.py", "out = activation(linear(out))", "out = linear(out)"),
    "MLP.zero_grads": ("hw/mlp.py", "layer.dW.fill(0.0)", "pass"),
    "MLP.step": ("hw/mlp.py", "layer.W += layer.momentum_W", "layer.W -= layer.momentum_W"),
    "MLP.total_loss": ("hw/mlp.py", "return float(batch_mean[0]) * len(labels)", "return float(batch_mean[0])"),
    "get_training_stats": ("hw/mlp.py", "            mlp.zero_grads()\n            mlp.forward(x)",
                           "            mlp.forward(x)"),
    # Mistakes only some kinds of input reveal (students passing every public test lost hidden points to these)
    "sum_backward: float32 gradient returned as float64": (
        F, "return (np.broadcast_to(grad, a.shape).copy(),)\n    # END SOLUTION\n\n\ndef max_backward",
        "return (grad * np.ones(a.shape),)\n    # END SOLUTION\n\n\ndef max_backward"),
    "sub_backward: unbroadcast on one side only": (
        F, "return unbroadcast(grad_output, a.shape), unbroadcast(-grad_output, b.shape)",
        "return grad_output, unbroadcast(-grad_output, b.shape)"),
    "sum_backward: axis taken to be an int": (
        F, "    grad = _expand_reduced(grad_output, axis, keepdims)\n    return (np.broadcast_to(grad, a.shape)",
        "    grad = grad_output\n    if axis is not None and not keepdims:\n        shape = list(a.shape)\n"
        "        shape[axis] = 1\n        grad = grad_output.reshape(shape)\n    return (np.broadcast_to(grad, a.shape)"),
    "matmul_backward: no case for vector operands": (
        F, "    a2 = a[np.newaxis, :] if a.ndim == 1 else a\n    b2 = b[:, np.newaxis] if b.ndim == 1 else b\n"
           "    g2 = grad_output[..., np.newaxis] if b.ndim == 1 else grad_output\n"
           "    g2 = g2[..., np.newaxis, :] if a.ndim == 1 else g2\n",
        "    a2, b2, g2 = a, b, grad_output\n"),
    "SoftmaxCrossEntropy_backward: unstable softmax": (
        F, "softmax = np.exp(log_softmax)", "softmax = np.exp(y_hat) / np.exp(y_hat).sum(axis=1, keepdims=True)"),
    "SoftmaxCrossEntropy.forward: unstable softmax": (
        "mytorch/nn/modules/loss.py", "log_softmax = stable_log_softmax(y_hat)",
        "log_softmax = np.log(np.exp(y_hat) / np.exp(y_hat).sum(axis=1, keepdims=True))"),
    "ReLU.forward: float64 output for float32 input": (
        "mytorch/nn/modules/activation.py", "self.state = np.maximum(x, 0)", "self.state = np.maximum(x, np.zeros(x.shape))"),
    "Linear.forward: dW recorded for W.T": (
        "mytorch/nn/modules/linear.py", "[x, W_T], y, [None, self.dW.T]", "[x, W_T], y, [None, self.dW]"),
    "MLP.forward: the last activation skipped": (
        "hw/mlp.py", "out = activation(linear(out))",
        "out = linear(out) if linear is self.linear_layers[-1] else activation(linear(out))"),
}

HIDDEN_NPZ = grading.HIDDEN + ".npz"
LOG = "    return (grad_output / a,)\n"
EXP = "    return (grad_output * out,)\n"
SUM = "    grad = _expand_reduced(grad_output, axis, keepdims)\n    return (np.broadcast_to"
MAX = "    return (winners * (grad / count),)\n"
OUTER = "    grad_a = grad_output @ b.ravel()\n"
DIV = "    grad_a = grad_output / b\n"
MUL = "    return unbroadcast(grad_output * b, a.shape), unbroadcast(grad_output * a, b.shape)\n"
SUB = "    return unbroadcast(grad_output, a.shape), unbroadcast(-grad_output, b.shape)\n"
MATMUL = "    if a.ndim == 2 and b.ndim == 2:\n"
MLP = [n for n in PUBLIC_NAMES if n.startswith("mlp/")]


def users(*blocks):
    """The public tests that run any of ``blocks``."""
    return {t.name for t in PUBLIC if set(blocks) & set(t.uses)}


def linger_file(tmp):
    """Where the lingering attack writes its pid: /dev/shm, which every user can write and tests still
    see (they see no /tmp but their own sandbox when the grader runs as root)."""
    return f"/dev/shm/mytorch-linger-{os.getpid()}-{tmp.name}.pid"


# Code that writes its own frames on the grader's result pipe (the only descriptor above 2 a test
# process holds): one with a deflated array of zeros, one whose JSON header is nested 100000 deep.
FRAME_WRITER = """import io as _io, os as _os, stat as _stat, struct as _struct


def _send_frame(header, blob=b""):
    pipe = next(fd for fd in range(3, 64) if _is_fifo(fd))
    message = _struct.pack("<I", len(header)) + header + blob
    _os.write(pipe, _struct.pack("<Q", len(message)) + message)


def _is_fifo(fd):
    try:
        return _stat.S_ISFIFO(_os.fstat(fd).st_mode)
    except OSError:
        return False


def _deflated_zeros():
    buffer = _io.BytesIO()
    np.savez_compressed(buffer, grad0=np.zeros(4_000_000))  # 32 MB of zeros in 31 KB
    return buffer.getvalue()
"""
FRAMES = [(F, "import numpy as np\n", "import numpy as np\n" + FRAME_WRITER),
          inject(F, LOG, ["_send_frame(b'{\"case\": 0, \"values\": {}, \"missing\": {}}', _deflated_zeros())"]),
          inject(F, EXP, ["_send_frame(b'[' * 100000 + b']' * 100000)"])]

# Code in mytorch/__init__.py that swaps the probes, their helpers and what sends their results for
# fakes reporting what autograd/add_operation and mlp/zero_grads expect (the reviewer's attack, and more).
PROBE_SWAP = """
import sys as _sys
_probes, _wire, _zygote = (_sys.modules.get(n) for n in ("autograder.probes", "autograder.wire", "__main__"))
if _probes is not None:
    _graph, _mlp, _encode = _probes.probe_graph, _probes.probe_mlp, _wire.encode

    def _fake_graph(sub, arrays, params, out):
        if params["mode"] != "record":
            return _graph(sub, arrays, params, out)
        spots = {n for op in params["ops"] for n, u in zip(op["in"], op["update"]) if u is None}
        out.update(n_ops=len(params["ops"]), tape_problems=[],
                   in_buffer={n: n in spots for n in params["report"]})

    def _fake_mlp(sub, arrays, params, out):
        if params["mode"] != "zero_grads":
            return _mlp(sub, arrays, params, out)
        out["tape_length"] = 0
        for name, value in arrays.items():
            if name[0] in "Wb":
                out["d" + name] = _probes.np.zeros_like(value)

    def _fake_run_case(sub, probe, arrays, params):
        out = {}
        {"graph": _fake_graph, "mlp": _fake_mlp}.get(probe, _probes.PROBES[probe])(sub, arrays, params, out)
        return out, None

    _probes.PROBES["graph"], _probes.PROBES["mlp"] = _fake_graph, _fake_mlp
    _probes.probe_graph, _probes.probe_mlp, _probes.run_case = _fake_graph, _fake_mlp, _fake_run_case
    _probes.tape_problems = lambda operations, recorded: []
    _wire.encode = lambda header, arrays=None: _encode(dict(header, status="passed"), arrays)
    _zygote.jsonable = lambda value: [] if isinstance(value, list) else value
"""


def hostile(tmp):
    """name -> (patches, attacked tests, their expected status, needs root)."""
    out_dir = str(tmp / "out")
    return {
        "endless loop": ([inject(F, LOG, ["while True:", "    pass"])], users("log_backward"), "timeout", False),
        "huge allocation": ([inject(F, OUTER, ["np.ones((1 << 40,))"])], users("outer_backward"), "out of memory", False),
        "sys.exit in a primitive": ([inject(F, EXP, ["import sys", "sys.exit(0)"])], users("exp_backward"), "error", False),
        "sys.exit at import of hw/mlp.py": (
            [("hw/mlp.py", "import numpy as np\n", "import sys\nimport numpy as np\nsys.exit(0)\n")],
            set(MLP), "error", False),
        "syntax error in hw/mlp.py": ([("hw/mlp.py", "import numpy as np\n", "import numpy as np\ndef broken(:\n")],
                                      set(MLP), "error", False),
        "os._exit": ([inject(F, SUM, ["import os", "os._exit(0)"])], users("sum_backward"), "error", False),
        "segfault": ([inject(F, MAX, ["import ctypes", "ctypes.string_at(0)"])], users("max_backward"), "error", False),
        "kill the parent": ([inject(F, SUB, ["import os, signal", "os.kill(os.getppid(), signal.SIGKILL)"])],
                            users("sub_backward"), "error", False),
        "kill the parent and linger in a new session": (
            [inject(F, OUTER, ["import os, signal, time", f"open({linger_file(tmp)!r}, 'w').write(str(os.getpid()))",
                               "os.setsid()", "os.kill(os.getppid(), signal.SIGKILL)", "time.sleep(600)"])],
            users("outer_backward"), "error", False),
        "fork bomb": ([inject(F, MUL, ["import os", "while True:", "    os.fork()"])], users("mul_backward"), "error", False),
        "forged output and fake results files": (
            [inject(F, DIV, ["print('Total: 100/100')", "print('{\"scores\": {\"functional\": 1000}}')",
                             "open('results.json', 'w').write('{\"score\": 1000}')",
                             f"open({os.path.join(out_dir, 'results.json')!r}, 'w').write('{{\"score\": 1000}}')",
                             f"open({os.path.join(out_dir, 'gradebook.csv')!r}, 'w').write('forged,1000')"])],
            users("div_backward"), "error", True),
        "monkeypatched numpy.allclose and numpy.testing, wrong sign": (
            [inject(F, SUB, ["np.allclose = lambda *a, **k: True", "np.testing.assert_allclose = lambda *a, **k: None",
                             "np.array_equal = lambda *a, **k: True"]), WRONG["sub_backward"]],
            {"functional/sub_backward"}, "failed", False),
        "writes its own compressed and deeply nested result frames": (
            FRAMES, {"functional/log_backward", "functional/exp_backward"}, "error", False),
        "reads the hidden tests": ([inject(F, EXP, [f"open({HIDDEN_NPZ!r}, 'rb').read(1)"])], users("exp_backward"),
                                   "error", True),
        "reads the reference solution": (
            [inject(F, LOG, [f"open({os.path.join(ROOT, 'mytorch', 'utils.py')!r}).read(1)"])], users("log_backward"),
            "error", True),
        "writes the grader": ([inject(F, MATMUL, [f"open({os.path.join(ROOT, 'autograder', 'grading.py')!r}, 'a')"])],
                              users("matmul_backward"), "error", True),
    }


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """Grade the reference, every wrong formula and every attack once; name -> Report."""
    tmp = tmp_path_factory.mktemp("corpus")
    (tmp / "out").mkdir()
    folders = {"reference": ROOT}
    for mistake, patch in WRONG.items():
        folders[f"wrong {mistake}"] = write_tree(str(tmp / f"wrong-{len(folders)}"), patched([patch]))
    attacks = hostile(tmp)
    for name, (patches, _, _, _) in attacks.items():
        folders[name] = write_tree(str(tmp / f"attack-{len(folders)}"), patched(patches))
    unimplemented = [WRONG["Autograd.add_operation"], WRONG["MLP.zero_grads"]]
    folders["wrong engine and zero_grads"] = write_tree(str(tmp / "unforged"), patched(unimplemented))
    swap = ("mytorch/__init__.py", "__version__", PROBE_SWAP + "__version__")
    folders["the same, with the probes swapped"] = write_tree(str(tmp / "forged"), patched(unimplemented + [swap]))
    reports = grade_all(folders)
    reports["hidden reference"] = grading.grade(ROOT, grading.select_tests(hidden=True), FAST)
    return {"tmp": tmp, "reports": reports, "attacks": attacks}


def test_reference_scores_full_marks_on_public_and_hidden_tests(corpus):
    public = corpus["reports"]["reference"]
    assert public.error is None and public.total() == 100 == public.max_total()
    both = corpus["reports"]["hidden reference"]
    assert both.total(hidden=False) == 100
    assert both.total(hidden=True) == both.max_total(hidden=True) > 0
    assert {r.status for r in both.results} == {"passed"}


@pytest.mark.parametrize("mistake", sorted(WRONG))
def test_a_wrong_formula_loses_its_tests_points_and_nothing_else(corpus, mistake):
    rep = corpus["reports"][f"wrong {mistake}"]
    block = mistake.split(":")[0]
    results = by_name(rep)
    users = {t.name for t in PUBLIC if block in t.uses}
    assert users, f"no public test uses {block}"
    lost = {name for name, r in results.items() if r.score < r.points}
    assert lost and lost <= users, f"lost {sorted(lost)}; tests using {block}: {sorted(users)}"
    own = f"functional/{block}"
    if own in results:
        assert own in lost
    for name in lost:
        assert results[name].status in ("failed", "error") and results[name].feedback


@pytest.mark.parametrize("attack", [
    "endless loop", "huge allocation", "sys.exit in a primitive", "sys.exit at import of hw/mlp.py",
    "syntax error in hw/mlp.py", "os._exit",
    "segfault", "kill the parent", "kill the parent and linger in a new session", "fork bomb", "forged output and fake results files",
    "monkeypatched numpy.allclose and numpy.testing, wrong sign",
    "writes its own compressed and deeply nested result frames",
    "reads the hidden tests", "reads the reference solution", "writes the grader"])
def test_an_attack_costs_exactly_the_attacked_tests(corpus, attack):
    _, attacked, status, needs_root = corpus["attacks"][attack]
    if needs_root and not AS_ROOT:
        pytest.skip("the grader drops privileges only when it runs as root")
    results = by_name(corpus["reports"][attack])
    assert set(results) == set(PUBLIC_NAMES) and attacked
    for name, r in results.items():
        if name in attacked:
            assert r.status == status and r.score < r.points, f"{name}: {r.status} {r.score}\n{r.feedback}"
        else:
            assert (r.status, r.score) == ("passed", r.points), f"{name}: {r.status}\n{r.feedback}"


def test_attack_feedback_says_what_happened(corpus):
    reports = corpus["reports"]
    feedback = {name: by_name(reports[name]) for name in reports if name in corpus["attacks"]}
    assert "within 2 s" in feedback["endless loop"]["functional/log_backward"].feedback
    assert "MemoryError" in feedback["huge allocation"]["functional/outer_backward"].feedback
    assert "sys.exit(0)" in feedback["sys.exit in a primitive"]["functional/exp_backward"].feedback
    assert "segmentation fault" in feedback["segfault"]["functional/max_backward"].feedback
    assert "sandbox process stopped" in feedback["kill the parent"]["functional/sub_backward"].feedback
    assert "BlockingIOError" in feedback["fork bomb"]["functional/mul_backward"].feedback
    assert re.search(r'File "hw/mlp.py", line \d+\n.*\n.*\nSyntaxError',
                     feedback["syntax error in hw/mlp.py"]["mlp/step"].import_error)
    if AS_ROOT:
        for attack, test in (("reads the hidden tests", "functional/exp_backward"),
                             ("reads the reference solution", "functional/log_backward"),
                             ("writes the grader", "functional/matmul_backward")):
            assert re.search(r"(PermissionError|FileNotFoundError): \[Errno", feedback[attack][test].feedback)
        forged = feedback["forged output and fake results files"]["functional/div_backward"].feedback
        assert "  | Total: 100/100" in forged and re.search(r"(PermissionError|FileNotFoundError): \[Errno", forged)
    frames = feedback["writes its own compressed and deeply nested result frames"]
    assert "is compressed" in frames["functional/log_backward"].feedback
    assert "RecursionError" in frames["functional/exp_backward"].feedback


def test_swapping_the_probes_gains_nothing(corpus):
    unforged = by_name(corpus["reports"]["wrong engine and zero_grads"])
    forged = by_name(corpus["reports"]["the same, with the probes swapped"])
    assert forged["autograd/add_operation"].score < 4 and forged["mlp/zero_grads"].score < 2
    assert {n: (r.score, r.status) for n, r in forged.items()} == {n: (r.score, r.status) for n, r in unforged.items()}


def test_a_sealed_copy_ignores_swapped_module_attributes_and_dict_entries(monkeypatch):
    sealed = probes.seal(vars(probes))
    sub = probes.load_submission(ROOT)

    def fake(*args, **kwargs):
        raise AssertionError("the swapped function ran")

    for name in ("probe_primitive", "probe_graph", "gradients_of", "tape_problems", "run_case"):
        monkeypatch.setattr(probes, name, fake)
    monkeypatch.setattr(probes.GraderTape, "backward", fake)
    monkeypatch.setitem(probes.PROBES, "primitive", fake)
    monkeypatch.setitem(probes.FORWARD, "add", fake)
    a, b = np.ones((2, 3)), np.arange(3.0)
    out, error = sealed.run_case(sub, "primitive", {"grad_output": a, "in0": a, "in1": b},
                                 {"name": "add_backward", "n_inputs": 2})
    assert error is None and out["grad1"].tolist() == [2.0, 2.0, 2.0]
    ops = [{"fn": "add", "in": ["a", "b"], "out": "c", "update": [None, None], "kwargs": {}}]
    out, error = sealed.run_case(sub, "graph", {"a": a, "b": b}, {"ops": ops, "mode": "record", "report": ["a"]})
    assert error is None and out["n_ops"] == 1 and out["tape_problems"] == []
    x = np.array([[-1.0, 2.0]])
    out, error = sealed.run_case(sub, "module", {"x": x, "grad_output": np.ones((1, 2))},
                                 {"kind": "activation", "module": "ReLU"})
    assert error is None and out["dx"].tolist() == [[0.0, 1.0]]
    with pytest.raises(TypeError):
        sealed.PROBES["primitive"] = fake


def test_a_test_that_leaves_its_process_group_is_killed_all_the_same(corpus):
    # In a pid namespace the lingering process ends with it (and its /dev/shm is private, so it left no
    # pid file here); without one it left its pid in the shared /dev/shm. Either way, no process started
    # for the corpus (their command lines name its folder, which they hide) may still run.
    pids = []
    if os.path.exists(linger_file(corpus["tmp"])):
        with open(linger_file(corpus["tmp"])) as handle:
            pids.append(int(handle.read()))
        os.unlink(linger_file(corpus["tmp"]))
    if AS_ROOT:  # and nothing else of this process's sandbox uids runs either
        assert running_as(set(sandbox.dedicated_uids())) == []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as handle:
                if os.fsencode(str(corpus["tmp"])) in handle.read():
                    pids.append(int(pid))
        except OSError:
            pass
    for pid in pids:
        state = "gone"
        for _ in range(50):
            try:
                with open(f"/proc/{pid}/stat") as handle:
                    state = handle.read().rsplit(")", 1)[1].split()[0]
            except FileNotFoundError:
                state = "gone"
            if state in ("gone", "Z"):
                break
            time.sleep(0.1)
        assert state in ("gone", "Z")


def test_without_a_mount_namespace_file_modes_still_hide_the_hidden_tests(tmp_path):
    if not AS_ROOT:
        pytest.skip("the grader drops privileges only when it runs as root")
    folder = write_tree(str(tmp_path), patched([inject(F, EXP, [f"open({HIDDEN_NPZ!r}, 'rb').read(1)"])]))
    options = grading.Options(timeout=2.0, namespaces=False)
    rep = grading.grade(folder, [t for t in PUBLIC if "exp_backward" in t.uses], options)
    assert "PermissionError: [Errno 13]" in by_name(rep)["functional/exp_backward"].feedback
    assert any("could read the reference solution" in note for note in rep.notes)


def test_fake_results_files_never_reach_the_output(corpus):
    if not AS_ROOT:
        pytest.skip("the output folder is protected from the tests only when the grader runs as root")
    tmp = corpus["tmp"]
    attack = [p for p in tmp.iterdir() if p.name.startswith("attack-")]
    folder = next(p for p in attack if "print('Total: 100/100')" in (p / F).read_text())
    results = tmp / "out" / "results.json"
    run = subprocess.run([sys.executable, RUNNER, "--submission", str(folder), "--format", "gradescope",
                          "--output", str(results), "--timeout", "2"], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    written = json.loads(results.read_text())
    assert written["score"] == 96
    assert not (tmp / "out" / "gradebook.csv").exists()
    autolab = subprocess.run([sys.executable, RUNNER, "--submission", str(folder), "--format", "autolab",
                              "--timeout", "2"], capture_output=True, text=True)
    last = json.loads(autolab.stdout.strip().splitlines()[-1])
    assert last["scores"]["functional"] == 36 and sum(last["scores"].values()) == 96


def test_the_submissions_mytorch_is_the_one_imported(tmp_path):
    # This process has the reference imported; a submission folder without it must not pick it up.
    import mytorch  # noqa: F401

    with pytest.raises(ImportError, match="not from the submission"):
        probes.load_submission(str(tmp_path))


def test_a_submission_without_mytorch_is_refused(tmp_path):
    (tmp_path / "hw").mkdir()
    rep = grading.grade(str(tmp_path), PUBLIC, FAST)
    assert rep.results == [] and "mytorch" in rep.error


# --------------------------------------------------------------------- one submission against another
THIEF = """import os, time


def _listdir(folder):
    try:
        return os.listdir(folder)
    except OSError:
        return []


def _candidates():
    # the victims named here, every grader's --batch/--submission folder and every sandbox's src/
    folders = list(VICTIMS)
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            argv = open(f"/proc/{pid}/cmdline", "rb").read().split(bytes(1))
        except OSError:
            continue
        for flag in (b"--batch", b"--submission"):
            if flag in argv[:-1]:
                folder = os.fsdecode(argv[argv.index(flag) + 1])
                folders += [folder] + [os.path.join(folder, name) for name in _listdir(folder)]
    folders += [os.path.join(TEMP, name, "src") for name in _listdir(TEMP) if name.startswith("mytorch-grade-")]
    return folders


def _read(place, relpath):
    # relpath from a submission folder, or from a tarball (ustar headers, parsed by hand)
    if not os.path.isfile(place):
        return open(os.path.join(place, relpath)).read()
    data, offset = open(place, "rb").read(), 0
    while offset + 512 <= len(data) and data[offset:offset + 512].strip(bytes(1)):
        name = data[offset:offset + 100].rstrip(bytes(1)).decode()
        size = int(data[offset + 124:offset + 136].rstrip(b" " + bytes(1)) or b"0", 8)
        if name == relpath:
            return data[offset + 512:offset + 512 + size].decode()
        offset += 512 + (size + 511) // 512 * 512
    raise OSError(f"{relpath} is not in {place}")


def load(relpath):
    # another submission's copy of relpath, looked for during up to a second
    mine = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    end = time.monotonic() + 1.0
    while True:
        for place in _candidates():
            try:
                if os.path.realpath(place) != mine and "_steal.py" not in _listdir(os.path.join(place, "mytorch")):
                    return _read(place, relpath)
            except (OSError, ValueError):
                pass
        if time.monotonic() > end:
            raise ImportError("nothing to steal: no other submission is readable")
        time.sleep(0.05)
"""


def thief(victims):
    """A submission whose every file runs another submission's copy of itself, if it can read one."""
    setup = f"VICTIMS = {victims!r}\nTEMP = {os.path.realpath(tempfile.gettempdir())!r}\n"
    files = {"mytorch/_steal.py": (setup + THIEF).encode()}
    for relpath in reference_files():
        files[relpath] = (f"from mytorch._steal import load as _load\n"
                          f"exec(compile(_load({relpath!r}), __file__, 'exec'))\n").encode()
    return files


KILLER = ("import os as _os, time as _time\n_end = _time.monotonic() + 1.0\nwhile _time.monotonic() < _end:\n"
          "    try:\n        _os.kill(-1, 9)\n    except OSError:\n        pass\n")


def make_batch(folder, mode):
    """A batch folder of the given mode: two reference submissions (a folder, a tarball), a thief of
    their code, and a submission that kills every process it may signal while it is imported."""
    folder.mkdir()
    folder.chmod(mode)
    write_tree(str(folder / "alice"), reference_files())
    with tarfile.open(folder / "bob.tar", "w") as archive:
        for relpath, data in reference_files().items():
            add_member(archive, relpath, data)
    write_tree(str(folder / "mallory-thief"), thief([str(folder / "alice"), str(folder / "bob.tar")]))
    killer = ("mytorch/__init__.py", "__version__", KILLER + "__version__")
    write_tree(str(folder / "mallory-killer"), patched([killer]))
    return folder


def test_in_a_batch_no_submission_can_read_or_kill_another(tmp_path):
    if not AS_ROOT:
        pytest.skip("sandboxes get their own uids only when the grader runs as root")
    batch = make_batch(tmp_path / "batch", 0o755)  # readable by everyone: the mount namespace must hide it
    gradebook = tmp_path / "grades.csv"
    run = subprocess.Popen([sys.executable, RUNNER, "loss", "linear", "--batch", str(batch), "--csv", str(gradebook),
                            "--jobs", "4"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _, err = run.communicate()
    assert run.returncode == 0, err
    rows = {row["submission"]: row for row in csv.DictReader(gradebook.open())}
    assert rows["alice"]["total"] == rows["bob.tar"]["total"] == "16"
    assert rows["mallory-thief"]["total"] == rows["mallory-killer"]["total"] == "0"
    assert not any("not hidden" in row["notes"] for row in rows.values())
    first = sandbox.UID_BASE + sandbox.SLOTS * (run.pid % sandbox.PIDS)  # the runner's sandbox uids
    assert running_as(set(range(first, first + sandbox.SLOTS))) == []


def test_without_a_mount_namespace_sandbox_uids_and_a_private_batch_folder_still_protect(tmp_path):
    if not AS_ROOT:
        pytest.skip("sandboxes get their own uids only when the grader runs as root")
    batch = make_batch(tmp_path / "batch", 0o700)
    tests = [t for t in PUBLIC if t.section == "loss"]
    options = grading.Options(timeout=5.0, namespaces=False)
    folders = {name: str(batch / name) for name in ("alice", "mallory-thief", "bob.tar", "mallory-killer")}
    reports = grade_all(folders, options, tests, batch=str(batch))
    assert [reports[name].total() for name in folders] == [8, 0, 8, 0]
    assert "nothing to steal" in reports["mallory-thief"].results[0].import_error
    batch.chmod(0o755)
    exposed = grading.grade(folders["alice"], tests[:1], options, str(batch))
    assert any("could read the other submissions" in note for note in exposed.notes)


def test_each_sandbox_has_its_own_uid_and_a_private_folder():
    if not AS_ROOT:
        pytest.skip("sandboxes get their own uids only when the grader runs as root")
    files = reference_files()
    with sandbox.Sandbox(files) as one, sandbox.Sandbox(files) as two:
        assert None is not one.uid != two.uid is not None
        hide = [sandbox.GRADER_ROOT, os.path.dirname(one.root)]
        with sandbox.Zygote(one, hide=hide) as first, sandbox.Zygote(two, hide=hide) as second:
            first.start()
            second.start()
            for box, zygote in ((one, first), (two, second)):
                info, work = os.stat(box.root), os.stat(box.work)
                assert (info.st_uid, info.st_gid, info.st_mode & 0o777) == (0, box.uid, 0o710)
                assert (work.st_uid, work.st_mode & 0o777) == (box.uid, 0o700) == (zygote.isolation["uid"], 0o700)
                assert os.stat(os.path.join(box.src, F)).st_uid == 0
                assert len(set(zygote.isolation["hidden"].values())) == 1  # all, or without namespaces none


# --------------------------------------------------------------------- broken results
def message(header=b"{}", blob=b""):
    return struct.pack("<I", len(header)) + header + blob


def stored_npz(**arrays):
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def lying_npz():
    """A stored npz whose member claims 4 GB in the zip directory but holds 160 bytes."""
    blob = bytearray(stored_npz(x=np.zeros(4)))
    directory = blob.rindex(b"PK\x01\x02")
    blob[directory + 24:directory + 28] = struct.pack("<I", 0xFFFFFFFE)  # its uncompressed size
    return bytes(blob)


def deflated_npz():
    buffer = io.BytesIO()
    np.savez_compressed(buffer, x=np.zeros(1 << 20))
    return buffer.getvalue()


def npy_announcing(shape):
    """A stored npz whose one member's .npy header announces ``shape`` of float64 but holds 8 bytes."""
    member = io.BytesIO()
    np.lib.format.write_array_header_1_0(member, {"descr": "<f8", "fortran_order": False, "shape": shape})
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("x.npy", member.getvalue() + bytes(8))
    return buffer.getvalue()


@pytest.mark.parametrize("data, reason", [
    (message(b"[" * 100000 + b"]" * 100000), "RecursionError"),
    (message(b"[1, 2]"), "not a JSON object"),
    (message(blob=deflated_npz()), "is compressed"),
    (message(blob=npy_announcing((1 << 29,))), "announces shape (536870912,)"),
    (message(blob=lying_npz()), "do not fit"),
    (message(blob=stored_npz(**{f"a{i}": np.zeros(1) for i in range(wire.MAX_ARRAYS + 1)})), "more than the limit"),
    (message(blob=b"PK\x03\x04 not a zip"), "cannot be read"),
])
def test_a_malformed_message_is_refused_before_anything_is_loaded(data, reason):
    with pytest.raises(wire.WireError, match=re.escape(reason)):
        wire.decode(data)


def test_a_message_round_trips():
    arrays = {"a": np.arange(6.0).reshape(2, 3), "b": np.asfortranarray(np.ones((3, 2), np.float32)),
              "c": np.int64(7)}
    header, back = wire.decode(wire.encode({"x": [1, "y"]}, arrays))
    assert header == {"x": [1, "y"]}
    for name, value in arrays.items():
        assert back[name].dtype == value.dtype and np.array_equal(back[name], value)


def test_broken_frames_cost_their_test_and_gradescope_output_is_still_written(corpus, tmp_path):
    tmp = corpus["tmp"]
    folder = next(p for p in tmp.iterdir() if p.name.startswith("attack-") and "_deflated_zeros" in (p / F).read_text())
    results = tmp_path / "results.json"
    run = subprocess.run([sys.executable, RUNNER, "functional", "--submission", str(folder), "--format", "gradescope",
                          "--output", str(results), "--timeout", "2"], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    written = json.loads(results.read_text())
    assert written["score"] == 32
    lost = {t["name"] for t in written["tests"] if t["score"] < t["max_score"]}
    assert lost == {"functional/log_backward", "functional/exp_backward"}


def test_an_error_while_scoring_one_test_costs_that_test_only(monkeypatch):
    compare = grading.compare

    def failing(name, expected, got, missing, hints=None):
        if name == "loss_val":
            raise RecursionError("maximum recursion depth exceeded")
        return compare(name, expected, got, missing, hints)

    monkeypatch.setattr(grading, "compare", failing)
    tests = [t for t in PUBLIC if t.section in ("loss", "linear")]
    results = by_name(grading.grade(ROOT, tests, FAST))
    broken = {name for name, r in results.items() if r.status != "passed"}
    assert broken == {"loss/MSELoss", "loss/SoftmaxCrossEntropy"}
    for name in broken:
        assert results[name].score == 0 and "the grader could not score" in results[name].feedback


# --------------------------------------------------------------------- tarballs
def add_member(archive, name, data=b"", kind=tarfile.REGTYPE, link=""):
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.size = kind, link, len(data) if kind == tarfile.REGTYPE else 0
    archive.addfile(info, io.BytesIO(data) if kind == tarfile.REGTYPE else None)


def test_unsafe_tarball_entries_are_ignored_and_the_rest_graded(tmp_path):
    path = tmp_path / "handin.tar"
    escape = tmp_path / "escaped.py"
    with tarfile.open(path, "w") as archive:
        for relpath, data in reference_files().items():
            add_member(archive, relpath, data)
        add_member(archive, "../escaped.py", b"print('escaped')")
        add_member(archive, str(escape), b"print('absolute')")
        add_member(archive, "mytorch/evil_link.py", kind=tarfile.SYMTYPE, link="/etc/passwd")
        add_member(archive, "mytorch/evil_hard.py", kind=tarfile.LNKTYPE, link="mytorch/utils.py")
        add_member(archive, "mytorch/evil_device.py", kind=tarfile.CHRTYPE)
        add_member(archive, "mytorch/evil_fifo.py", kind=tarfile.FIFOTYPE)
    files, notes = submission.read_tarball(str(path))
    assert set(files) == set(reference_files())
    assert len(notes) == 6 and all(note.startswith("ignored unsafe entry") for note in notes)
    rep = grading.grade(str(path), PUBLIC, FAST)
    assert rep.total() == 100 and rep.notes == notes
    assert not escape.exists() and not (tmp_path.parent / "escaped.py").exists()


def test_a_symlinked_solution_file_in_a_tarball_is_not_followed(tmp_path):
    path = tmp_path / "handin.tar"
    with tarfile.open(path, "w") as archive:
        for relpath, data in reference_files().items():
            if relpath != F:
                add_member(archive, relpath, data)
        add_member(archive, F, kind=tarfile.SYMTYPE, link=os.path.join(ROOT, F))
    rep = grading.grade(str(path), PUBLIC, FAST)
    assert rep.total() == 0 and {r.status for r in rep.results} == {"error"}
    assert rep.results[0].import_error.startswith("importing your code failed:")


def test_a_symlink_in_a_folder_submission_is_not_followed(tmp_path):
    files = reference_files()
    del files[F]
    write_tree(str(tmp_path), files)
    os.symlink(os.path.join(ROOT, F), tmp_path / F)
    read, notes = submission.read_folder(str(tmp_path))
    assert F not in read and notes == [f"ignored {F}: not a regular file"]


# --------------------------------------------------------------------- output formats
def test_gradescope_results_validate_against_the_schema(corpus):
    jsonschema = pytest.importorskip("jsonschema")
    with open(os.path.join(ROOT, "autograder", "gradescope_results.schema.json")) as handle:
        schema = json.load(handle)
    jsonschema.Draft7Validator.check_schema(schema)
    full = report.gradescope_results(corpus["reports"]["hidden reference"])
    broken = report.gradescope_results(corpus["reports"]["endless loop"])
    unreadable = report.gradescope_results(grading.Report("x.tar", [], [], error="not a tar archive"))
    for results in (full, broken, unreadable):
        jsonschema.validate(results, schema)
    assert full["score"] == sum(t["score"] for t in full["tests"]) == 100 + corpus["reports"]["hidden reference"].max_total(hidden=True)
    hidden = [t for t in full["tests"] if t["name"].startswith("hidden: ")]
    assert hidden and {t["visibility"] for t in hidden} == {"after_published"}
    assert {t["visibility"] for t in full["tests"] if t not in hidden} == {"visible"}
    loop = next(t for t in broken["tests"] if t["name"] == "functional/log_backward")
    assert loop["status"] == "failed" and loop["output"].startswith("Status: timeout")
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"tests": [{"name": "no score"}]}, schema)


def test_the_local_run_prints_a_table_and_the_autolab_line_last():
    run = subprocess.run([sys.executable, RUNNER, "loss", "linear"], capture_output=True, text=True, cwd=ROOT)
    assert run.returncode == 0, run.stderr
    lines = run.stdout.strip().splitlines()
    assert json.loads(lines[-1]) == {"scores": {"linear": 8.0, "loss": 8.0}}
    assert lines[-2] == "Total: 16/16"
    assert sum(1 for line in lines if line.strip().startswith(("loss/", "linear/"))) == 4


def test_batch_grading_writes_one_row_per_submission(tmp_path, corpus):
    batch = tmp_path / "batch"
    batch.mkdir()
    with tarfile.open(batch / "alice.tar", "w") as archive:
        for relpath, data in reference_files().items():
            add_member(archive, relpath, data)
    write_tree(str(batch / "bob"), patched([WRONG["log_backward"]]))
    (batch / "carol.tar").write_bytes(b"this is not a tar archive")
    (batch / "dave").mkdir()
    gradebook = tmp_path / "grades.csv"
    run = subprocess.run([sys.executable, RUNNER, "--batch", str(batch), "--csv", str(gradebook), "--jobs", "2",
                          "--timeout", "2"], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    rows = {row["submission"]: row for row in csv.DictReader(gradebook.open())}
    assert sorted(rows) == ["alice.tar", "bob", "carol.tar", "dave"]
    assert rows["alice.tar"]["total"] == "100" and rows["alice.tar"]["graded"] == "yes"
    assert rows["bob"]["functional/log_backward"] == "0" and rows["bob"]["total"] == "96"
    assert rows["carol.tar"]["graded"] == "no" and "not a readable tar archive" in rows["carol.tar"]["problem"]
    assert rows["dave"]["graded"] == "no" and rows["dave"]["problem"]
    assert set(PUBLIC_NAMES) <= set(rows["alice.tar"])


# --------------------------------------------------------------------- comparing
@pytest.mark.parametrize("got, message", [
    (np.zeros((3, 2)), "expected shape (2, 3), got shape (3, 2)"),
    (np.zeros((2, 3), np.float32), "expected dtype float64, got float32"),
    (np.array([[0.0, 0.0, 0.0], [0.0, 0.5, 0.0]]), "1 of 6 values differ; largest difference 0.5 at index (1, 1)"),
    (np.full((2, 3), np.nan), "6 of 6 values differ"),
])
def test_compare_names_what_differs(got, message):
    assert message in grading.compare("grad0", np.zeros((2, 3)), got, {})


def test_compare_accepts_rounding_and_a_missing_output_says_why():
    expected = np.linspace(-1, 1, 6).reshape(2, 3)
    assert grading.compare("y", expected, expected * (1 + 1e-12), {}) is None
    assert grading.compare("y", expected, None, {"y": "forward did not return an array"}).endswith("return an array")
    assert grading.compare("n_ops", 4, 3, {}) == "n_ops: expected 4, got 3"


def test_partial_credit_comes_from_sub_checks(corpus):
    # Missing unbroadcast breaks only the broadcasting case of mul_backward: half of its points remain.
    mul = by_name(corpus["reports"]["wrong mul_backward"])["functional/mul_backward"]
    assert 0 < mul.score < mul.points and "expected shape (3, 1), got shape (3, 4)" in mul.feedback
