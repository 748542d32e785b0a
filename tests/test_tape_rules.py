"""One set of tape rules: the engine and the grader's tape enforce the same ones, from one definition.

1. Every rule, broken on mytorch's ``Autograd`` and on the grader's ``GraderTape``: both raise
   the same error with the same message.
2. The return contract of a primitive: the forms both tapes accept give the same gradients, and
   ``probes.gradients_of`` reads a primitive's result the same way.
3. The definition: ``mytorch/_tape_rules.py``, which the grader loads by path as its own copy
   (shipped as ``autograder/tape_rules.py`` in the handout and the Gradescope bundle), never the
   submission's.
4. Each rule costs the module that breaks it its points: the reference with one such mutation
   (in-place ReLU or Tanh, Linear adding the bias into its recorded output, a primitive writing
   into a recorded array, Linear passing ``dW`` for ``W.T``) loses the module tests that use the
   mutated code, and nothing else; gutting the submission's own rules file gains nothing.
"""
import os
import re
import shutil
import subprocess
import sys
import zipfile

import numpy as np
import pytest

from autograder import handout, probes
from mytorch import Autograd
from mytorch.nn import functional as F
from test_autograder import FAST, PUBLIC, ROOT, by_name, grade_all, patched, write_tree

RULES = os.path.join(ROOT, "mytorch", "_tape_rules.py")
TAPES = {"engine": Autograd, "grader": probes.GraderTape}

pytestmark = pytest.mark.filterwarnings("ignore:the matrix subclass:PendingDeprecationWarning")


# --------------------------------------------------------------------------- 1. the same refusals
def double(tape, x, **kwargs):
    """Record y = 2 x on ``tape`` (as a multiplication by a 0-d constant) and return y."""
    y = x * 2.0
    tape.add_operation([x, np.asarray(2.0)], y, [None, None], F.mul_backward, **kwargs)
    return y


def writes_its_input(grad_output, a):
    a *= 2.0  # a recorded array: read-only on the tape
    return (grad_output,)


def returns(value):
    """A primitive returning ``value(grad_output)``."""
    def odd_backward(grad_output, *inputs):
        return value(grad_output)
    return odd_backward


def calls_back(action):
    def sum_calling_back(grad_output, a):
        action()
        return (np.broadcast_to(grad_output, a.shape).copy(),)
    return sum_calling_back


def record_then(primitive, divergence=1):
    """A scenario: record y = -x with ``primitive`` as its backward, then run backward."""
    def scenario(tape):
        x = np.ones((2, 3))
        y = -x
        tape.add_operation([x], y, [None], primitive)
        tape.backward(divergence)
    return scenario


def read_only_then_changed(tape):
    x = np.ones(3)
    x.flags.writeable = False  # read-only when recorded: the tape keeps its bytes
    tape.add_operation([x], -x, [None], F.neg_backward)
    x.flags.writeable = True
    x[0] = 5.0
    tape.backward(1)


def with_matrix(tape):
    a = np.matrix([[1.0, 2.0], [3.0, 4.0]])
    tape.add_operation([a, a], np.multiply(a, a), [None, None], F.mul_backward)


def reentrant(action):
    def scenario(tape):
        x = np.ones(2)
        y = double(tape, x)
        tape.add_operation([y], np.asarray(y.sum()), [None], calls_back(lambda: action(tape)))
        tape.backward(1)
    return scenario


def backward_twice(tape):
    double(tape, np.ones(2))
    tape.backward(1)
    tape.backward(1)


def record_after_backward(tape):
    y = double(tape, np.ones(2))
    tape.backward(1)
    tape.add_operation([y], -y, [None], F.neg_backward)


def output_recorded_twice(tape):
    y = double(tape, np.ones(2))
    tape.add_operation([np.ones(2)], y, [None], F.identity_backward)


def linear_with_dW_for_W_T(tape):
    x, W, dW = np.ones((4, 3)), np.ones((2, 3)), np.zeros((2, 3))
    tape.add_operation([x, W.T], x @ W.T, [None, dW], F.matmul_backward)


def target(make):
    def scenario(tape):
        x = np.ones(3)
        tape.add_operation([x], -x, [make()], F.neg_backward)
    return scenario


def read_only_target():
    t = np.zeros(3)
    t.flags.writeable = False
    return t


def write_after_recording(which):
    def scenario(tape):
        W = np.ones((2, 3))
        x = np.ones((4, 3))
        y = x @ W.T
        tape.add_operation([x, W.T], y, [None, None], F.matmul_backward)
        {"input": x, "output": y, "base of a recorded view": W}[which][0, 0] = 7.0
    return scenario


def cycle(tape):
    x = np.ones(2)
    double(tape, x)
    tape.add_operation([np.ones(2)], x, [None], F.identity_backward)


RULE_BREAKERS = {  # name -> (scenario, error type, what the message must say)
    "output is its own input": (lambda t: (lambda x: t.add_operation([x], x, [None], F.relu_backward))(np.ones(2)),
                                ValueError, r"the output of operation #0 \(relu_backward\) is the same array object"),
    "output was an earlier input": (cycle, ValueError, r"is already input 0 of operation #0 \(mul_backward\).*cycle"),
    "output recorded twice": (output_recorded_twice, ValueError,
                              r"is already the output of operation #0 \(mul_backward\)"),
    "recorded input written": (write_after_recording("input"), ValueError, "read-only"),
    "recorded output written": (write_after_recording("output"), ValueError, "read-only"),
    "base of a recorded view written": (write_after_recording("base of a recorded view"), ValueError, "read-only"),
    "read-only input changed behind the tape": (read_only_then_changed, ValueError,
                                                r"input 0 of operation #0 \(neg_backward\) \(shape \(3,\)\) changed"),
    "dW given for W.T": (linear_with_dW_for_W_T, ValueError,
                         r"gradients_to_update\[1\] of operation #0 \(matmul_backward\) has shape \(2, 3\), but "
                         r"input 1 has shape \(3, 2\)"),
    "target of another dtype": (target(lambda: np.zeros(3, dtype=np.float32)), ValueError, "dtype float64"),
    "read-only target": (target(read_only_target), ValueError, "writeable=False"),
    "target not an array": (target(lambda: [0.0, 0.0, 0.0]), ValueError, r"gradients_to_update\[0\] .* is a list"),
    "input not an array": (lambda t: t.add_operation([[1.0, 2.0]], np.ones(2), [None], F.neg_backward),
                           TypeError, r"input 0 of operation #0 \(neg_backward\) is a list"),
    "np.matrix input": (with_matrix, TypeError, r"input 0 of operation #0 \(mul_backward\) is a numpy\.matrix"),
    "complex input": (lambda t: t.add_operation([np.ones(2) * 1j], np.ones(2), [None], F.neg_backward),
                      TypeError, "is complex"),
    "complex output": (lambda t: t.add_operation([np.ones(2)], np.ones(2) * 1j, [None], F.neg_backward),
                       TypeError, "the output of operation #0 .* is complex"),
    "mismatched lists": (lambda t: t.add_operation([np.ones(2), np.ones(2)], np.ones(2), [None], F.add_backward),
                         ValueError, r"2 inputs but 1 entries"),
    "complex divergence": (record_then(F.neg_backward, divergence=1j), TypeError, "divergence is complex"),
    "divergence of another shape": (record_then(F.neg_backward, divergence=np.ones(4)), ValueError,
                                    r"divergence of shape \(4,\) cannot be broadcast to the output \(2, 3\)"),
    "too few gradients": (record_then(returns(lambda g: ())), ValueError, "returned 0 gradients for 1 inputs"),
    "gradient of another shape": (record_then(returns(lambda g: (g.sum(axis=0),))), ValueError,
                                  r"returned gradient 0 of shape \(3,\), but input 0 has shape \(2, 3\)"),
    "complex gradient": (record_then(returns(lambda g: (g * 1j,))), TypeError, "returned gradient 0, which is complex"),
    "a Python float as gradient": (record_then(returns(lambda g: (1.0,))), TypeError, "returned a float as gradient 0"),
    "a lone array for two inputs": (lambda t: t.add_operation([np.ones(2), np.ones(2)], np.ones(2), [None, None],
                                                              returns(lambda g: g)) or t.backward(1),
                                    TypeError, "returned a ndarray; a primitive returns a tuple"),
    "primitive writes into a recorded input": (record_then(writes_its_input), ValueError, "read-only"),
    "backward from inside a primitive": (reentrant(lambda t: t.backward(1)), ValueError,
                                         r"backward: called while backward\(\) runs"),
    "zero_grad from inside a primitive": (reentrant(lambda t: t.zero_grad()), ValueError,
                                          r"zero_grad: called while backward\(\) runs"),
    "recording from inside a primitive": (reentrant(lambda t: t.add_operation([np.ones(1)], np.ones(1), [None],
                                                                              F.identity_backward)),
                                          ValueError, r"cannot record operation #2 \(identity_backward\) while"),
    "backward twice": (backward_twice, ValueError, r"backward\(\) already ran"),
    "recording after backward": (record_after_backward, ValueError, r"cannot record operation #1 .* already ran"),
    "backward on an empty tape": (lambda t: t.backward(1), ValueError, "the tape is empty"),
}


def outcome(tape_class, scenario):
    """(error type, message) that ``scenario`` raised on a new tape of ``tape_class``."""
    try:
        scenario(tape_class())
    except Exception as error:  # noqa: BLE001 (every error is compared)
        return type(error), str(error)
    return None, "no error"


@pytest.mark.parametrize("rule", sorted(RULE_BREAKERS))
def test_both_tapes_refuse_each_broken_rule_with_the_same_error(rule):
    scenario, error, pattern = RULE_BREAKERS[rule]
    results = {name: outcome(tape_class, scenario) for name, tape_class in TAPES.items()}
    assert results["engine"] == results["grader"], results
    kind, message = results["engine"]
    assert kind is error, results
    assert re.search(pattern, message), message


def test_the_engine_and_the_grader_tape_both_use_the_rules():
    """Neither tape has checks of its own: each calls a TapeRules (the engine mytorch's, the grader its copy)."""
    from mytorch import _tape_rules

    assert isinstance(Autograd()._rules, _tape_rules.TapeRules)
    assert isinstance(probes.GraderTape()._rules, probes.tape_rules.TapeRules)
    assert probes.tape_rules is not _tape_rules  # the grader's copy: a submission's import cannot replace it


# --------------------------------------------------------------------------- 2. the return contract
CONTRACT = {  # what a primitive for y = 3 * x (x of shape ``shape``) returns, in each accepted form
    "tuple": ((2,), lambda g: (3.0 * g,)),
    "list": ((2,), lambda g: [3.0 * g]),
    "lone array": ((2,), lambda g: 3.0 * g),
    "NumPy scalar for a 0-d input": ((), lambda g: (3.0 * g,)),  # 0-d array * float is a NumPy scalar
    "lone NumPy scalar for a 0-d input": ((), lambda g: 3.0 * g),
    "integer gradient (kept as float64)": ((2,), lambda g: (np.full(g.shape, 3),)),
}


def gradient_of_x(tape_class, shape, result):
    tape = tape_class()
    x = np.arange(1.0, 1.0 + np.prod(shape, dtype=int)).reshape(shape)
    tape.add_operation([x], np.asarray(3.0 * x), [None], returns(result))
    tape.backward(1)
    grad = tape.gradient_buffer.get_param(x) if tape_class is Autograd else tape.grad(x)
    return np.array(grad)


@pytest.mark.parametrize("form", sorted(CONTRACT))
def test_both_tapes_read_every_accepted_form_alike(form):
    shape, result = CONTRACT[form]
    grads = [gradient_of_x(tape_class, shape, result) for tape_class in TAPES.values()]
    for grad in grads:
        assert grad.shape == shape and grad.dtype == np.float64
        np.testing.assert_array_equal(grad, np.full(shape, 3.0))
    probe = probes.gradients_of(result(np.ones(shape)), 1, "times3_backward")
    assert [g.shape for g in probe] == [shape]


@pytest.mark.parametrize("rule", ["too few gradients", "complex gradient", "a Python float as gradient"])
def test_gradients_of_refuses_what_the_tapes_refuse_in_the_same_words(rule):
    """The probe of a primitive says what the engine would say, without the tape's 'operation #i'."""
    result = {"too few gradients": (), "complex gradient": (np.ones((2, 3)) * 1j,),
              "a Python float as gradient": (1.0,)}[rule]
    with pytest.raises(probes.ProbeFailure) as info:
        probes.gradients_of(result, 1, "odd_backward")
    _, message = outcome(Autograd, RULE_BREAKERS[rule][0])
    probe_message = str(info.value)
    assert probe_message.startswith("odd_backward returned ")
    assert probe_message.replace("odd_backward", "backward: operation #0 (odd_backward)", 1) in message


# --------------------------------------------------------------------------- 3. one definition
def test_the_grader_loads_its_own_copy_by_path():
    """In the checkout the grader's copy is the reference's mytorch/_tape_rules.py, loaded as its own module."""
    assert os.path.realpath(probes.tape_rules.__file__) == os.path.realpath(RULES)
    assert "autograder.tape_rules" not in sys.modules or sys.modules["autograder.tape_rules"] is probes.tape_rules
    assert probes.tape_rules.__name__ == "autograder.tape_rules"


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    target = tmp_path_factory.mktemp("handout") / "hw1"
    handout.build_handout(str(target))
    return target


def probes_rules_file(folder):
    """Where ``autograder.probes`` in ``folder`` takes its tape rules from, as a fresh interpreter reports it."""
    return subprocess.run([sys.executable, "-I", "-c", "import sys; sys.path.insert(0, '.'); "
                           "from autograder import probes; print(probes.tape_rules.__file__)"],
                          cwd=str(folder), capture_output=True, text=True)


def test_the_handout_ships_the_rules_as_a_grader_file_and_the_grader_uses_it(built):
    shipped = built / "autograder" / "tape_rules.py"
    with open(RULES, "rb") as handle:
        assert shipped.read_bytes() == handle.read()
    assert (built / "mytorch" / "_tape_rules.py").read_bytes() == shipped.read_bytes()  # given code, no TODO
    found = probes_rules_file(built)
    assert found.returncode == 0, found.stderr
    assert os.path.realpath(found.stdout.strip()) == os.path.realpath(str(shipped))


def test_a_handout_without_the_grader_copy_refuses_rather_than_read_the_students(built, tmp_path):
    student = tmp_path / "student"
    shutil.copytree(built, student)
    (student / "autograder" / "tape_rules.py").unlink()
    found = probes_rules_file(student)
    assert found.returncode != 0
    assert "tape_rules.py is missing" in found.stderr and "ImportError" in found.stderr


def test_the_gradescope_bundle_ships_the_rules(tmp_path):
    bundle = tmp_path / "autograder.zip"
    handout.build_gradescope(str(bundle))
    with zipfile.ZipFile(bundle) as archive, open(RULES, "rb") as handle:
        assert archive.read("autograder/tape_rules.py") == handle.read()


def test_the_sealed_probes_keep_their_own_copy_of_the_rules(monkeypatch):
    """A submission swapping the grader's rules (class methods or module functions) changes nothing the
    sealed probes run: in the sealed copy GraderTape still refuses an in-place activation."""
    sealed = probes.seal(vars(probes))

    def accept(*args, **kwargs):
        return None

    for name in ("check_operation", "freeze", "_protect", "call_primitive"):
        monkeypatch.setattr(probes.tape_rules.TapeRules, name, accept)
    monkeypatch.setattr(probes.tape_rules, "gradient_tuple", accept)
    monkeypatch.setattr(probes.tape_rules, "TapeRules", type("Lenient", (), {}))
    tape = sealed.GraderTape()
    x = np.array([-1.0, 2.0])
    with pytest.raises(ValueError, match="same array object as input 0"):
        tape.add_operation([x], x, [None], F.relu_backward)
    with pytest.raises(sealed.ProbeFailure, match="returned a float as gradient 0"):
        sealed.gradients_of((1.0,), 1, "odd_backward")


# --------------------------------------------------------------------------- 4. each rule costs its module
ACT = "mytorch/nn/modules/activation.py"
LIN = "mytorch/nn/modules/linear.py"
FUN = "mytorch/nn/functional.py"
SOFTMAX_START = "    if log_softmax is None:\n        log_softmax = stable_log_softmax(y_hat)\n"
MUTATIONS = {  # name -> (patches, the blocks they change, the module tests that must lose points)
    "in-place ReLU": ([(ACT, "self.state = np.maximum(x, 0)", "self.state = np.maximum(x, 0, out=x)")],
                      ["ReLU.forward"], ["activation/ReLU"]),
    "in-place Tanh": ([(ACT, "self.state = np.tanh(x)", "self.state = np.tanh(x, out=x)")],
                      ["Tanh.forward"], ["activation/Tanh"]),
    "Linear adds the bias into its recorded output": (
        [(LIN, "        out = y + self.b\n", "        y += self.b\n        out = y.view()\n")],
        ["Linear.forward"], ["linear/forward", "linear/backward"]),
    "a primitive writes into a recorded array": (
        [(FUN, SOFTMAX_START, "    y_hat -= y_hat.max(axis=1, keepdims=True)  # in place\n" + SOFTMAX_START)],
        ["SoftmaxCrossEntropy_backward"], ["loss/SoftmaxCrossEntropy"]),
    "Linear records dW for W.T": ([(LIN, "[None, self.dW.T]", "[None, self.dW]")],
                                  ["Linear.forward"], ["linear/backward"]),
}
GUTTED_RULES = [  # the submission's own rules accept everything and freeze nothing
    ("mytorch/_tape_rules.py", '        """Raise TypeError or ValueError, naming the operation, unless it may be '
     'recorded."""\n', '        """Raise TypeError or ValueError, naming the operation, unless it may be '
     'recorded."""\n        return\n'),
    ("mytorch/_tape_rules.py", '        self._recorded[id(array)] = (array, index, position)\n',
     '        self._recorded[id(array)] = (array, index, position)\n        return\n'),
]


@pytest.fixture(scope="module")
def mutants(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("mutants")
    folders = {name: write_tree(str(tmp / f"m{i}"), patched(patches))
               for i, (name, (patches, _, _)) in enumerate(MUTATIONS.items())}
    folders["in-place ReLU, own rules gutted"] = write_tree(
        str(tmp / "gutted"), patched(MUTATIONS["in-place ReLU"][0] + GUTTED_RULES))
    return grade_all(folders, FAST, PUBLIC)


@pytest.mark.parametrize("name", sorted(MUTATIONS))
def test_a_module_breaking_a_rule_loses_its_module_tests_and_nothing_else(mutants, name):
    _, blocks, module_tests = MUTATIONS[name]
    results = by_name(mutants[name])
    lost = {test for test, r in results.items() if r.score < r.points}
    users = {t.name for t in PUBLIC if set(blocks) & set(t.uses)}
    assert set(module_tests) <= lost, f"lost {sorted(lost)}"
    assert lost <= users, f"lost {sorted(lost)}; tests using {blocks}: {sorted(users)}"
    for test in module_tests:
        assert results[test].status == "error" and results[test].feedback


def test_gutting_the_submissions_own_rules_gains_nothing(mutants):
    """The grader's tape uses the grader's copy of the rules, whatever the submission's says."""
    gutted = by_name(mutants["in-place ReLU, own rules gutted"])
    plain = by_name(mutants["in-place ReLU"])
    assert gutted["activation/ReLU"].score == plain["activation/ReLU"].score == 0
    assert "same array object as input 0" in gutted["activation/ReLU"].feedback
