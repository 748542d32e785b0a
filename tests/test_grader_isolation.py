"""The sandbox on every kind of host: what a test does stays in its test, and leaves nothing behind.

One batch of hand-ins built for the attacks (a disk filler, a deep tree, an odd-permission
tree, /dev/shm + /tmp + SysV leftovers, a network attempt, kill(-1), a writer of the other
submissions' copies, a forger of hidden results) is graded by the same driver on each kind
of host the course may use:

- ``root``: root with namespaces (a uid per sandbox, mount/pid/net/IPC namespaces);
- ``root without namespaces``: root where the kernel refuses them (Docker's default), forced
  with ``Options(namespaces=False)``;
- ``ordinary user``: a throwaway uid with no account, with unprivileged user namespaces;
- ``small uid map``: root of a user namespace mapping 65,536 uids (a rootless container);
- ``one-uid map``: root of a user namespace mapping one uid (no uid to give a sandbox);
- ``user without user namespaces``: the ordinary user in a user namespace whose limit of
  nested user namespaces is 0, as where the kernel refuses them.

The hosts other than ``root`` are made by a launcher (run as real root, so they are skipped
otherwise) that keeps this machine's Python, which lives under the 0700 /root, reachable in a
private mount namespace. Nothing here changes the machine outside the test's folders.
"""
import ast
import concurrent.futures
import csv
import hashlib
import inspect
import json
import os
import re
import shutil
import socket
import stat
import subprocess
import sys
import tarfile
import tempfile
import threading

import pytest

from autograder import grading, handout, sandbox, zygote
from test_autograder import EXP, LOG, MAX, MUL, OUTER, SUB, SUM, add_member, inject, patched, reference_files, write_tree

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
AS_ROOT = os.geteuid() == 0
USER = 64999  # the throwaway ordinary user: a uid with no account (nothing is created for it)
MAP_BASE = 100000  # the first host uid of the simulated containers' uid maps
QUOTA = 16 * 1024 * 1024  # the disk quota the tests grade with
ATTACKED = ("log", "exp", "sum", "max", "outer", "sub", "mul")  # the primitives the hand-ins attack
TESTS = [f"functional/{name}_backward" for name in ATTACKED]  # the tests graded, public and hidden
F = "mytorch/nn/functional.py"
needs_root = pytest.mark.skipif(not AS_ROOT, reason="making other users and uid maps needs root")

# Runs argv[2:] as another kind of user (argv[1] is JSON: kind, uid, map), in a private mount namespace
# where every folder above this Python that others may not pass through is covered by a tmpfs with
# Python bound back (so the Python under /root stays usable). "user": setuid; "map": root (or "uid") of
# a new user namespace mapping "map", and with "no_userns" its limit of nested user namespaces is 0.
LAUNCHER = r"""
import ctypes, json, os, sys
spec, command = json.loads(sys.argv[1]), sys.argv[2:]
sys.path.insert(0, spec["grader"])
from autograder import zygote
libc = ctypes.CDLL(None, use_errno=True)
zygote.check(libc.unshare(zygote.CLONE_NEWNS), "unshare")
zygote.mount(None, "/", None, zygote.MS_REC | zygote.MS_PRIVATE)
python = os.path.realpath(sys.base_prefix)
parts = python.strip("/").split("/")
for depth in range(1, len(parts)):
    folder = "/" + "/".join(parts[:depth])
    if not os.stat(folder).st_mode & 0o001:
        assert zygote.cover(folder, [python]), folder
        break
if spec["kind"] == "user":
    os.setgroups([])
    os.setgid(spec["uid"])
    os.setuid(spec["uid"])
    os.execv(command[0], command)
ready_r, ready_w = os.pipe()
mapped_r, mapped_w = os.pipe()
child = os.fork()
if child == 0:
    zygote.check(libc.unshare(zygote.CLONE_NEWUSER), "unshare")
    os.write(ready_w, b"1")
    os.read(mapped_r, 1)
    if spec.get("no_userns"):
        with open("/proc/sys/user/max_user_namespaces", "w") as handle:
            handle.write("0")
    os.setgroups([])
    os.setgid(spec["uid"])
    os.setuid(spec["uid"])
    os.execv(command[0], command)
os.read(ready_r, 1)
for name in ("uid_map", "gid_map"):
    with open(f"/proc/{child}/{name}", "w") as handle:
        handle.write(spec["map"])
os.write(mapped_w, b"1")
_, status = os.waitpid(child, 0)
sys.exit(os.waitstatus_to_exitcode(status))
"""

# Grades the submissions named in argv[1] (JSON) with the grader in the current folder, as many at
# once as "jobs", and prints per submission its error, notes and per test (score, points, status, feedback).
DRIVER = r"""
import concurrent.futures, json, os, sys
sys.path.insert(0, os.getcwd())
from autograder import grading
args = json.loads(sys.argv[1])
options = grading.Options(timeout=5.0, disk=args["disk"], namespaces=args["namespaces"],
                          allow_unisolated=args["allow_unisolated"])
tests = [t for t in grading.select_tests(args["sections"], hidden=args["hidden"]) if not args["only"] or t.name in args["only"]]

def grade(path):
    report = grading.grade(path, tests, options, args["batch"])
    results = {("hidden: " if r.hidden else "") + r.name: [r.score, r.points, r.status, r.feedback]
               for r in report.results}
    return {"error": report.error, "notes": report.notes, "results": results}

with concurrent.futures.ThreadPoolExecutor(max_workers=args["jobs"]) as pool:
    print(json.dumps(dict(zip(args["submissions"], pool.map(grade, args["submissions"].values())))))
"""


class Host:
    """One kind of host: how to run a command there, and its own folder (grader copy, hand-ins, TMPDIR)."""

    def __init__(self, name, base, owner, spec=None, namespaces=True):
        self.name, self.spec, self.namespaces = name, spec, namespaces
        self.home = os.path.join(base, name.replace(" ", "-"))
        self.grader = os.path.join(self.home, "grader")
        self.batch = os.path.join(self.home, "batch")
        self.temp = os.path.join(self.home, "tmp")
        self.tag = f"{os.getpid()}-{HOSTS_ALL.index(name)}-"  # names what its hand-ins leave in /tmp, /dev/shm
        self.sysv_key = 0x6D790000 + sum(map(ord, self.tag)) % 0xFFFF
        os.makedirs(self.temp)
        if not namespaces:  # /tmp-like; on a tmpfs, where deleting a deep tree takes a second, not ten
            os.rmdir(self.temp)
            self.temp = tempfile.mkdtemp(prefix="mytorch-isolation-", dir="/dev/shm")
            os.chmod(self.temp, 0o1777)
        shutil.copytree(os.path.join(ROOT, "autograder"), os.path.join(self.grader, "autograder"),
                        ignore=shutil.ignore_patterns("__pycache__"))  # like Gradescope's bundle: no mytorch/
        for relpath, source in handout.GRADER_COPIES.items():  # ... but the bundle's copy of the tape rules
            shutil.copyfile(os.path.join(ROOT, source), os.path.join(self.grader, "autograder", relpath))
        self.owner = owner

    def command(self, argv):
        """argv run as this host's user."""
        if self.spec is None:
            return argv
        return [sys.executable, "-c", LAUNCHER, json.dumps(dict(self.spec, grader=ROOT))] + argv

    def run(self, argv, **kwargs):
        env = {"PATH": os.defpath, "HOME": self.home, "TMPDIR": self.temp, "LANG": "C.UTF-8"}
        return subprocess.run(self.command(argv), cwd=self.grader, env=env, capture_output=True, text=True,
                              timeout=300, **kwargs)

    def grade(self, submissions, allow_unisolated=False):
        """name -> {"error", "notes", "results"}: TESTS, public and hidden, graded two submissions at a
        time by DRIVER."""
        args = {"submissions": submissions, "sections": ["functional"], "only": TESTS, "hidden": True,
                "disk": QUOTA, "jobs": 2, "namespaces": self.namespaces, "batch": self.batch,
                "allow_unisolated": allow_unisolated}
        done = self.run([sys.executable, "-c", DRIVER, json.dumps(args)])
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)


# --------------------------------------------------------------------- the hand-ins
def filler(tag):
    """Write files of 1 MB (each far under the 16 MB file limit), 5 ms apart, into the sandbox folder (next
    to src/), the test's folder, /dev/shm, then /tmp, each until it refuses; then raise saying how much
    got written."""
    return ["import os, time",
            "_written = 0",
            "for _place in ('..', '.', '/dev/shm', '/tmp'):",
            "    try:",
            "        for _i in range(100):",
            f"            with open(os.path.join(_place, 'mytorch-fill-{tag}-%d' % _i), 'wb') as _f:",
            "                _f.write(bytes(1 << 20))",
            "            _written += 1",
            "            time.sleep(0.005)",
            "    except OSError as _error:",
            "        print(_place, _error, flush=True)",
            "raise RuntimeError('the filler wrote %d MB' % _written)"]


DEEP_TREE = ["import os, tempfile",
             "_top = os.open('.', os.O_RDONLY)",
             "os.chdir(tempfile.mkdtemp(dir='.'))",
             "for _i in range(1500):  # 1500 levels of 'ddd/': 6000 characters, past PATH_MAX and the recursion limit",
             "    os.mkdir('ddd')",
             "    os.chdir('ddd')",
             "open('bottom', 'w').write('x')",
             "os.fchdir(_top)"]

ODD_TREE = ["import ctypes, os, tempfile",
            "os.chmod('.', 0o700)  # undo the last line, for the next case",
            "_top = os.open('.', os.O_RDONLY)",
            "os.chdir(tempfile.mkdtemp(dir='.'))",
            "for _name in ('d000', 'd500', 'ro'):",
            "    os.mkdir(_name)",
            "    for _odd in (b'new\\nline', b'\\xff\\xfe not utf-8', b'x' * 255, b' ', b'-rf'):",
            "        open(os.path.join(os.fsencode(_name), _odd), 'wb').close()",
            "    os.mkdir(os.path.join(_name, 'sub'))",
            "    open(os.path.join(_name, 'sub', 'f'), 'w').close()",
            "    os.chmod(os.path.join(_name, 'sub', 'f'), 0)",
            "    os.chmod(os.path.join(_name, 'sub'), 0)",
            "os.symlink('/', 'link-to-root')",
            "os.symlink('/etc/passwd', 'link-to-passwd')",
            "os.mkfifo('fifo')",
            "try:  # chattr +i, which needs CAP_LINUX_IMMUTABLE",
            "    _fd = os.open('ro', os.O_RDONLY)",
            "    ctypes.CDLL(None).ioctl(_fd, 0x40086602, ctypes.byref(ctypes.c_long(0x10)))",
            "except OSError:",
            "    pass",
            "os.chmod('d000', 0)",
            "os.chmod('d500', 0o500)",
            "os.chmod('ro', 0o500)",
            "os.chmod('.', 0o500)",
            "os.fchdir(_top)",
            "os.chmod('.', 0o500)  # the test's own folder too"]


def leftovers(tag, key):
    """Leave a file in /dev/shm and in /tmp, and a SysV shared memory segment; ignore refusals."""
    return ["import ctypes",
            f"for _path in ('/dev/shm/mytorch-leftover-{tag}', '/tmp/mytorch-leftover-{tag}'):",
            "    try:",
            "        open(_path, 'wb').write(bytes(1000))",
            "    except OSError:",
            "        pass",
            f"ctypes.CDLL(None).shmget({key}, 1 << 20, 0o1666)  # IPC_CREAT | 0666"]


def network(port):
    """Connect to 127.0.0.1:``port`` and send a word, through libc (socket is not among the modules the
    grader preloads, and the sandbox's uid may not be able to read the rest of the standard library)."""
    return ["import ctypes, os, struct",
            "_libc = ctypes.CDLL(None, use_errno=True)",
            "def _checked(result):",
            "    if result < 0:",
            "        raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()))",
            "    return result",
            "_fd = _checked(_libc.socket(2, 1, 0))  # AF_INET, SOCK_STREAM",
            f"_address = struct.pack('=H', 2) + struct.pack('!H', {port}) + bytes([127, 0, 0, 1]) + bytes(8)",
            "_checked(_libc.connect(_fd, _address, len(_address)))",
            "_checked(_libc.send(_fd, b'escaped', 7, 0))"]


KILL_ALL = ["import os, time",
            "_end = time.monotonic() + 0.3",
            "while time.monotonic() < _end:",
            "    try:",
            "        os.kill(-1, 9)",
            "    except OSError:",
            "        pass"]

OVERWRITTEN = "raise ImportError('overwritten by another submission')\n"
WRITER = """import os, time


def _listdir(folder):
    try:
        return os.listdir(folder)
    except OSError:
        return []


def _targets():
    found = list(TARGETS)
    for temp in TEMPS:
        for name in _listdir(temp):
            if name.startswith("mytorch-grade"):
                for sub in [""] + _listdir(os.path.join(temp, name)):
                    found.append(os.path.join(temp, name, sub, "src", "mytorch", "nn", "functional.py"))
    return found


def overwrite():
    # for half a second, overwrite every other submission's copy of functional.py it can find
    end = time.monotonic() + 0.5
    while time.monotonic() < end:
        for path in _targets():
            if "mallory-writer" not in path:
                try:
                    with open(path, "w") as handle:
                        handle.write(OVERWRITTEN)
                except OSError:
                    pass
        time.sleep(0.05)
"""

FORGER = """
import json as _json, os as _os, sys as _sys


def _forge():
    # Find the grader's test process frame, read the hidden fixtures, send their expected values as results.
    frame = _sys._getframe()
    while frame is not None and "result_fd" not in frame.f_locals:
        frame = frame.f_back
    if frame is None:
        return
    request, inputs = frame.f_locals["request"], frame.f_locals["arrays"]
    wire, fd, np = frame.f_locals["wire"], frame.f_locals["result_fd"], frame.f_locals["probes"].np
    with open(HIDDEN + ".json") as handle:
        meta = _json.load(handle)
    arrays = np.load(HIDDEN + ".npz")
    for t, test in enumerate(meta["tests"]):
        first = test["cases"][0]
        if test["name"] != request["test"] or not all(
                np.array_equal(arrays[f"t{t}|c0|in|{name}"], inputs.get(f"0/{name}")) for name in first["inputs"]):
            continue
        for c, case in enumerate(test["cases"]):
            outputs = {name: arrays[f"t{t}|c{c}|out|{name}"] for name in case["arrays"]}
            wire.write_frame(fd, wire.encode({"case": c, "values": case["values"], "missing": {}}, outputs))
        _os._exit(0)


try:
    _forge()
except OSError:
    pass
"""


def handout_files():
    """The untouched handout's submission files (every solution block a stub)."""
    files, _ = handout.stubbed_tree()
    return {relpath: data for relpath, data in files.items() if relpath in reference_files()}


def make_hand_ins(host, port):
    """The batch of ``host``: two honest submissions (a folder, a tarball) and the attackers."""
    os.makedirs(host.batch)
    os.chmod(host.batch, 0o700)
    write_tree(os.path.join(host.batch, "alice"), reference_files())
    with tarfile.open(os.path.join(host.batch, "bob.tar"), "w") as archive:
        for relpath, data in reference_files().items():
            add_member(archive, relpath, data)
    write_tree(os.path.join(host.batch, "mallory-hostile"), patched([
        inject(F, LOG, filler(host.tag)), inject(F, EXP, DEEP_TREE), inject(F, SUM, ODD_TREE),
        inject(F, MAX, leftovers(host.tag, host.sysv_key)), inject(F, OUTER, network(port))]))
    write_tree(os.path.join(host.batch, "mallory-killer"), patched([inject(F, SUB, KILL_ALL)]))
    targets = [os.path.join(host.batch, "alice", F), os.path.join(host.batch, "bob.tar")]
    writer = patched([inject(F, MUL, ["from mytorch._writer import overwrite", "overwrite()"])])
    writer["mytorch/_writer.py"] = (f"TARGETS = {targets!r}\nTEMPS = {[host.temp, '/tmp']!r}\n"
                                    f"OVERWRITTEN = {OVERWRITTEN!r}\n" + WRITER).encode()
    write_tree(os.path.join(host.batch, "mallory-writer"), writer)
    forger = handout_files()
    hidden = os.path.join(host.grader, "autograder", "hidden", "hidden")
    forger["mytorch/__init__.py"] = f"HIDDEN = {hidden!r}\n".encode() + FORGER.encode() + forger["mytorch/__init__.py"]
    write_tree(os.path.join(host.batch, "mallory-forger"), forger)


def fingerprint(folder):
    """sha256 of every file under ``folder`` (or of the file)."""
    paths = [folder] if os.path.isfile(folder) else sorted(
        os.path.join(d, n) for d, _, names in os.walk(folder) for n in names)
    return {path: hashlib.sha256(open(path, "rb").read()).hexdigest() for path in paths}


class Listener:
    """A TCP server on 127.0.0.1 recording every connection it accepts."""

    def __init__(self):
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.accepted = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                connection, address = self.server.accept()
            except OSError:
                return
            self.accepted.append(address)
            connection.close()


HOSTS = ["root", "root without namespaces", "ordinary user", "small uid map", "one-uid map"]
HOSTS_ALL = HOSTS + ["user without user namespaces"]


@pytest.fixture(scope="module")
def world():
    """Every host with its folder and batch, the listener, and each host's graded batch (graded once)."""
    if not AS_ROOT:
        pytest.skip("the hosts other than this one are made as root; run the suite as root to test them")
    base = tempfile.mkdtemp(prefix="mytorch-isolation-")
    os.chmod(base, 0o711)
    listener = Listener()
    hosts = {
        "root": Host("root", base, 0),
        "root without namespaces": Host("root without namespaces", base, 0, namespaces=False),
        "ordinary user": Host("ordinary user", base, USER, {"kind": "user", "uid": USER}),
        "small uid map": Host("small uid map", base, MAP_BASE,
                              {"kind": "map", "uid": 0, "map": f"0 {MAP_BASE} 65536"}),
        "one-uid map": Host("one-uid map", base, MAP_BASE + 1, {"kind": "map", "uid": 0, "map": f"0 {MAP_BASE + 1} 1"}),
        "user without user namespaces": Host("user without user namespaces", base, USER + 1,
                                             {"kind": "map", "uid": USER + 1, "map": f"{USER + 1} {USER + 1} 1",
                                              "no_userns": True}),
    }
    for host in hosts.values():
        make_hand_ins(host, listener.port)
        for folder, _, names in os.walk(host.home):
            os.chown(folder, host.owner, host.owner)
            for name in names:
                os.chown(os.path.join(folder, name), host.owner, host.owner, follow_symlinks=False)
    fingerprints = {name: fingerprint(os.path.join(host.batch, "alice")) | fingerprint(
        os.path.join(host.batch, "bob.tar")) for name, host in hosts.items()}

    def grade(name):
        host = hosts[name]
        return host.grade({n: os.path.join(host.batch, n) for n in sorted(os.listdir(host.batch))})

    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        graded = dict(zip(HOSTS, pool.map(grade, HOSTS)))
    yield {"hosts": hosts, "graded": graded, "listener": listener, "fingerprints": fingerprints}
    listener.server.close()
    zygote.remove_tree(base)
    zygote.remove_tree(hosts["root without namespaces"].temp)


def readable_by_others(folder):
    """True if a user with no rights of its own may list ``folder`` and enter every folder on the way to it."""
    parts = folder.split(os.sep)
    steps = [os.sep.join(parts[:i]) or os.sep for i in range(1, len(parts) + 1)]
    return all(os.stat(step).st_mode & 0o001 for step in steps) and bool(os.stat(folder).st_mode & 0o004)


def test_every_host_grades_and_the_report_says_how_where_the_uid_map_is_small(world):
    ok = {name: world["graded"][name]["alice"] for name in HOSTS}
    assert {name: report["error"] for name, report in ok.items()} == dict.fromkeys(HOSTS)
    # a missing guarantee would be a note: there is none
    assert ok["root"]["notes"] == ok["ordinary user"]["notes"] == []
    # without a new root the sandbox's uid sees the host's folders: a Python under a private folder (pyenv in
    # root's home) is unreadable to it, which the report says; elsewhere there is no note either
    private = [folder for folder in zygote.python_folders() if not readable_by_others(folder)]
    assert ok["root without namespaces"]["notes"] == ([
        f"the sandbox's uid cannot read the Python installation ({', '.join(private)}): the tests could import "
        "only the modules the grader loaded before them, so code importing another module of the standard "
        "library failed; install Python and NumPy where every user can read them, or grade where namespaces are "
        "allowed"] if private else [])
    assert any(re.search(r"the tests ran as uid 655\d\d, a mapped uid without an account", note)
               for note in ok["small uid map"]["notes"]), ok["small uid map"]
    assert any("in a user namespace of their own" in note for note in ok["one-uid map"]["notes"]), ok["one-uid map"]


@pytest.mark.parametrize("name", HOSTS)
def test_honest_submissions_keep_every_point(world, name):
    graded = world["graded"][name]
    for who in ("alice", "bob.tar", "mallory-writer"):
        results = graded[who]["results"]
        assert results and all(score == points for score, points, _, _ in results.values()), (who, {
            test: r[2:] for test, r in results.items() if r[0] != r[1]})
        assert any(test.startswith("hidden: ") for test in results)


@pytest.mark.parametrize("name", HOSTS)
def test_each_attack_costs_its_own_test_only(world, name):
    results = world["graded"][name]["mallory-hostile"]["results"]
    lost = {test for test, (score, points, _, _) in results.items() if score < points}
    attacked = {"functional/log_backward", "functional/outer_backward"}
    assert lost == attacked | {"hidden: " + test for test in attacked}, {test: results[test] for test in lost}
    assert all(results[test][2] == "error" for test in lost)
    filled = results["functional/log_backward"][3]
    assert re.search(r"\| \.\. \[Errno (13|30)\] (Permission denied|Read-only file system)", filled), filled
    if name == "root without namespaces":  # no tmpfs: the zygote measured and stopped it
        assert "more to disk than its quota" in filled, filled
    else:  # the tmpfs of the quota refused the 17th file: 16 files in work/ and /dev/shm together
        assert "No space left on device" in filled and "the filler wrote 16 MB" in filled, filled
    refused = results["functional/outer_backward"][3]
    assert "Network is unreachable" in refused or "Operation not permitted" in refused, refused
    assert world["listener"].accepted == []


@pytest.mark.parametrize("name", HOSTS)
def test_nothing_is_left_behind(world, name):
    host = world["hosts"][name]
    for folder in ("/tmp", "/dev/shm", host.temp):
        assert not [n for n in os.listdir(folder) if host.tag in n], folder
    with open("/proc/sysvipc/shm") as handle:
        keys = {int(line.split()[0]) for line in list(handle)[1:]}
    assert host.sysv_key not in keys
    sandboxes = [n for n in os.listdir(host.temp) if n.startswith("mytorch-grade")]
    assert sandboxes in ([], ["mytorch-grader"]), sandboxes  # no sandbox, at most their (root's) empty parent
    assert not sandboxes or os.listdir(os.path.join(host.temp, "mytorch-grader")) == []
    running = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as handle:
                if os.fsencode(host.home) in handle.read():
                    running.append(pid)
        except OSError:
            pass
    assert running == []


@pytest.mark.parametrize("name", HOSTS)
def test_kill_all_costs_the_killer_its_own_test_only(world, name):
    results = world["graded"][name]["mallory-killer"]["results"]
    lost = {test for test, (score, points, _, _) in results.items() if score < points}
    assert lost == {"functional/sub_backward", "hidden: functional/sub_backward"}, lost
    for test in lost:
        assert results[test][2] == "error"


@pytest.mark.parametrize("name", HOSTS)
def test_no_submission_can_rewrite_another(world, name):
    host = world["hosts"][name]
    now = fingerprint(os.path.join(host.batch, "alice")) | fingerprint(os.path.join(host.batch, "bob.tar"))
    assert now == world["fingerprints"][name]


@pytest.mark.parametrize("name", HOSTS)
def test_the_hidden_fixture_forger_gains_nothing(world, name):
    results = world["graded"][name]["mallory-forger"]["results"]
    assert results and all(score == 0 for score, _, _, _ in results.values())


def test_without_user_namespaces_hidden_tests_need_the_opt_in_and_the_attacks_show_why(world):
    host = world["hosts"]["user without user namespaces"]
    forger = {"mallory-forger": os.path.join(host.batch, "mallory-forger")}
    refused = host.grade(forger)["mallory-forger"]
    note = next(note for note in refused["notes"] if note.startswith("the hidden tests were not run"))
    assert refused["error"] is None and "--allow-unisolated" in note and "the grader's own user" in note
    assert sum("could read and change whatever it can" in n for n in refused["notes"]) == 1  # said once
    not_run = {test: r for test, r in refused["results"].items() if test.startswith("hidden: ")}
    assert not_run and all(score == 0 and status == "error" and feedback == "not run: " + note
                           for score, _, status, feedback in not_run.values())
    assert len(not_run) < len(refused["results"])  # the public tests were graded
    graded = host.grade(dict(forger, **{"mallory-writer": os.path.join(host.batch, "mallory-writer")}),
                        allow_unisolated=True)
    allowed = graded["mallory-forger"]
    hidden = {test: r for test, r in allowed["results"].items() if test.startswith("hidden: ")}
    assert hidden and all(score == points for score, points, _, _ in hidden.values())  # forged: why it is refused
    assert not any(score for test, (score, _, _, _) in allowed["results"].items() if test not in hidden)
    assert any("could read and change whatever it can" in note for note in allowed["notes"])
    with open(os.path.join(host.batch, "alice", F)) as handle:  # and the writer reached another submission
        assert handle.read() == OVERWRITTEN


def test_the_runner_refuses_hidden_tests_without_isolation_and_grades_with_the_opt_in(world):
    host = world["hosts"]["user without user namespaces"]
    runner_py = os.path.join(host.grader, "autograder", "runner.py")
    batch = host.run([sys.executable, runner_py, "loss", "--batch", host.batch, "--csv", host.home + "/grades.csv",
                      "--hidden"])
    assert batch.returncode == 2 and "--hidden: the hidden tests were not run" in batch.stderr, batch.stderr
    assert "--allow-unisolated" in batch.stderr and not os.path.exists(host.home + "/grades.csv")
    carol = write_tree(os.path.join(host.home, "carol"), reference_files())  # (the writer may have reached alice)
    for folder, _, names in os.walk(carol):
        for path in [folder] + [os.path.join(folder, name) for name in names]:
            os.chown(path, host.owner, host.owner)
    command = [sys.executable, runner_py, "loss", "--submission", carol, "--hidden"]
    refused = host.run(command)
    assert refused.returncode == 1 and "Note: the hidden tests were not run" in refused.stdout, refused.stdout
    assert "Total: 8/8 public + 0/" in refused.stdout  # the public tests were graded all the same
    allowed = host.run(command + ["--allow-unisolated"])
    assert allowed.returncode == 0, allowed.stderr
    assert "Total: 8/8 public" in allowed.stdout and "Note: the tests ran as the grader's own user" in allowed.stdout


def test_an_ordinary_user_grades_a_batch_with_hidden_tests_from_the_command_line(world):
    host = world["hosts"]["ordinary user"]
    gradebook = os.path.join(host.home, "grades.csv")
    done = host.run([sys.executable, os.path.join(host.grader, "autograder", "runner.py"), "loss", "--batch",
                     host.batch, "--csv", gradebook, "--jobs", "2", "--hidden"])
    assert done.returncode == 0, done.stderr
    with open(gradebook) as handle:
        rows = {row["submission"]: row for row in csv.DictReader(handle)}
    full = rows["alice"]["total"]
    assert float(rows["alice"]["hidden_total"]) > 0
    assert rows["bob.tar"]["total"] == rows["mallory-hostile"]["total"] == rows["mallory-writer"]["total"] == full
    assert rows["mallory-forger"]["total"] == "0"
    killer = rows["mallory-killer"]  # MSELoss runs sub_backward, where it kills every process it may
    assert killer["loss/MSELoss"] == killer["hidden: loss/MSELoss"] == "0"
    assert killer["loss/SoftmaxCrossEntropy"] == rows["alice"]["loss/SoftmaxCrossEntropy"] != "0"
    assert [row["notes"] for name, row in rows.items() if name != "mallory-killer"] == [""] * 5


# --------------------------------------------------------------------- root without namespaces: the sandbox folders
SQUATTER = ["import os",
            "_made, _refused = 0, []",
            "for _uid in range({first}, {first} + 300):  # the folders this grader's sandboxes used to claim in /tmp",
            "    os.mkdir('/tmp/mytorch-grade-%d' % _uid)",
            "    _made += 1",
            "for _path in ('/tmp/mytorch-grader/%d' % (os.getuid() + 1), '/tmp/mytorch-grader/x'):",
            "    try:",
            "        os.mkdir(_path)",
            "    except OSError as _error:",
            "        _refused.append(type(_error).__name__)",
            "raise RuntimeError('squatted %d folders; refused: %s' % (_made, _refused))"]


@needs_root
def test_a_slot_squatter_without_namespaces_costs_its_test_only_and_leaves_nothing(tmp_path):
    first = sandbox.UID_BASE + sandbox.SLOTS * (os.getpid() % sandbox.PIDS)  # this process's sandbox uids
    squatter = write_tree(str(tmp_path / "squatter"), patched([
        inject(F, LOG, [line.format(first=first) for line in SQUATTER])]))
    tests = [t for t in grading.select_tests(["functional"]) if t.name in TESTS]
    options = grading.Options(timeout=5.0, namespaces=False)
    squatted = grading.grade(squatter, tests, options)
    lost = {r.name: r.feedback for r in squatted.results if r.score < r.points}
    assert list(lost) == ["functional/log_backward"], lost
    assert "squatted 300 folders; refused: ['PermissionError', 'PermissionError']" in lost["functional/log_backward"]
    for name in ("alice", "bob"):
        later = grading.grade(write_tree(str(tmp_path / name), reference_files()), tests, options)
        assert later.error is None and later.total() == later.max_total()
    squats = [n for n in os.listdir("/tmp") if n.startswith("mytorch-grade-") and n[14:].isdigit()
              and first <= int(n[14:]) < first + 300]
    assert squats == []  # the zygote deleted what the squatter's uid owned in /tmp
    parent = os.lstat(os.path.join(tempfile.gettempdir(), "mytorch-grader"))
    assert (parent.st_uid, stat.S_IMODE(parent.st_mode)) == (0, 0o711)


@needs_root
def test_a_sandbox_parent_someone_else_made_is_never_used(tmp_path, monkeypatch):
    temp = tmp_path / "tmp"
    temp.mkdir(mode=0o1777)
    temp.chmod(0o1777)
    squatted = temp / "mytorch-grader"
    squatted.mkdir()
    os.chown(squatted, USER, USER)
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    with sandbox.Sandbox(reference_files()) as box:
        parent = os.path.dirname(box.root)
        assert parent != str(squatted) and os.lstat(parent).st_uid == 0 and box.uid is not None
    assert not os.path.exists(parent) and os.listdir(temp) == ["mytorch-grader"]
    assert os.lstat(squatted).st_uid == USER and os.listdir(squatted) == []


@needs_root
def test_a_sandbox_folder_left_by_a_dead_grader_is_emptied_and_reclaimed(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    uid = next(sandbox.dedicated_uids())
    parent, _ = sandbox.sandbox_parent()
    stale = os.path.join(parent, str(uid))
    os.makedirs(os.path.join(stale, "work", "sub"))
    os.symlink("/etc/passwd", os.path.join(stale, "src"))
    os.chmod(os.path.join(stale, "work", "sub"), 0)
    os.chown(stale, uid, uid)
    os.chmod(stale, 0o777)
    with sandbox.Sandbox(reference_files()) as box:
        info = os.lstat(box.root)
        assert (box.root, box.uid) == (stale, uid)
        assert (info.st_uid, stat.S_IMODE(info.st_mode)) == (0, 0o700)
        assert sorted(os.listdir(stale)) == ["src", "work"] and os.listdir(box.work) == []
        assert os.path.isdir(box.src) and not os.path.islink(box.src)
        with sandbox.Sandbox(reference_files()) as other:  # a live sandbox's folder is never taken
            assert other.uid != uid
    assert not os.path.exists(stale) and os.path.isfile("/etc/passwd")


# --------------------------------------------------------------------- deleting what tests leave
def odd_tree(top):
    """A tree a test could leave: deeper than PATH_MAX and the recursion limit, folders of mode 000 and
    0500, odd names, links to the outside (which must survive), a FIFO. Returns the outside file."""
    outside = os.path.join(os.path.dirname(top), "outside")
    with open(outside, "w") as handle:
        handle.write("keep me")
    os.makedirs(top)
    folder = os.open(top, os.O_RDONLY)
    for _ in range(1500):
        os.mkdir("ddd", dir_fd=folder)
        deeper = os.open("ddd", os.O_RDONLY, dir_fd=folder)
        os.close(folder)
        folder = deeper
    os.close(os.open("bottom", os.O_WRONLY | os.O_CREAT, 0o600, dir_fd=folder))
    os.close(folder)
    for name in ("d000", "d500"):
        os.mkdir(os.path.join(top, name))
        for odd in (b"new\nline", b"\xff\xfe not utf-8", b"x" * 255, b"-rf"):
            open(os.path.join(os.fsencode(top), name.encode(), odd), "wb").close()
        os.symlink(outside, os.path.join(top, name, "link"))
    os.mkfifo(os.path.join(top, "fifo"))
    os.symlink(os.path.dirname(top), os.path.join(top, "link-to-parent"))
    os.chmod(os.path.join(top, "d000"), 0)
    os.chmod(os.path.join(top, "d500"), 0o500)
    os.chmod(top, 0o500)
    return outside


@pytest.fixture
def scratch():
    """A new folder on a tmpfs (/dev/shm), deleted afterwards: deep trees take seconds to delete on a disk."""
    folder = tempfile.mkdtemp(prefix="mytorch-isolation-", dir="/dev/shm" if os.path.isdir("/dev/shm") else None)
    yield folder
    os.chmod(folder, 0o700)
    shutil.rmtree(folder, ignore_errors=True)


def test_remove_tree_deletes_any_tree_and_follows_no_link(scratch):
    outside = odd_tree(os.path.join(scratch, "tree"))
    assert zygote.remove_tree(os.path.join(scratch, "tree")) == 0
    assert os.listdir(scratch) == ["outside"] and open(outside).read() == "keep me"


@needs_root
def test_remove_tree_as_an_ordinary_user(scratch):
    os.chown(scratch, USER, USER)
    tree = os.path.join(scratch, "tree")
    code = (f"import os, sys\nsys.path.insert(0, {ROOT!r})\nfrom autograder import zygote\n{inspect.getsource(odd_tree)}"
            f"outside = odd_tree({tree!r})\n"
            f"print(zygote.remove_tree({tree!r}), os.listdir({scratch!r}), open(outside).read())")
    launcher = [sys.executable, "-c", LAUNCHER, json.dumps({"kind": "user", "uid": USER, "grader": ROOT})]
    done = subprocess.run(launcher + [sys.executable, "-c", code], capture_output=True, text=True, cwd=scratch,
                          env={"PATH": os.defpath, "HOME": scratch})
    assert done.stdout.strip() == "0 ['outside'] keep me", done.stderr


# --------------------------------------------------------------------- the namespaces themselves
def run_code(code, hide=(), namespaces=True):
    """(isolation report, feedback) of log_backward running ``code`` (lines) and raising, in a fresh sandbox."""
    files = patched([inject(F, LOG, code + ["raise RuntimeError('done')"])])
    test = next(t for t in grading.select_tests(["functional"]) if t.name == "functional/log_backward")
    with sandbox.Sandbox(files) as box:
        with sandbox.Zygote(box, hide=[sandbox.GRADER_ROOT, os.path.dirname(box.root)] + list(hide),
                            namespaces=namespaces) as process:
            process.start()
            return process.isolation, grading.run_test(process, test, grading.Options()).feedback


def printed(feedback):
    """The values a hand-in printed with ``print(repr(...))``, from its feedback."""
    return [ast.literal_eval(line.split("| ", 1)[1]) for line in feedback.splitlines() if line.startswith("  | ")]


@needs_root
def test_the_tests_see_only_the_system_python_and_their_sandbox():
    hidden_inside = "/usr/share"  # a folder to hide inside a folder the tests see: covered by an empty tmpfs
    keyctl = zygote.SYSCALLS[os.uname().machine][1]["keyctl"]  # KEYCTL_GET_KEYRING_ID of the session keyring:
    isolation, feedback = run_code(["import ctypes, os",  # the grader's, inherited
                                    f"_keys = ctypes.CDLL(None, use_errno=True).syscall({keyctl}, 0, -3, 0)",
                                    "print(repr((sorted(os.listdir('/')), os.listdir('/usr/share'), "
                                    "sorted(os.listdir('/dev')), os.getpid(), os.getppid(), _keys, ctypes.get_errno())))"],
                                   hide=[hidden_inside])
    assert isolation["namespaces"] == ["mount", "pid", "net", "ipc"] and isolation["user"] == "own"
    assert all(isolation["hidden"].values()) and isolation["quota"] == "tmpfs"
    top, share, dev, pid, parent, keys, errno = printed(feedback)[0]  # (from the first case; each case prints it)
    python = {folder.split(os.sep)[1] for folder in zygote.python_folders()}  # a venv and the Python it links to
    temp = os.path.realpath(tempfile.gettempdir()).split(os.sep)[1]
    allowed = {"bin", "dev", "etc", "lib", "lib32", "lib64", "libx32", "proc", "sbin", "usr", temp} | python
    assert {"dev", "etc", "proc", "usr", temp} <= set(top) <= allowed, top
    assert share == [] and os.listdir(hidden_inside)
    assert dev == ["fd", "full", "null", "random", "shm", "stderr", "stdin", "stdout", "urandom", "zero"]
    assert (pid, parent) == (3, 2)  # init is 1, the zygote 2: the test sees no process of the host
    assert (keys, errno) == (-1, 1)  # EPERM


@needs_root
def test_namespaces_that_fail_half_way_give_way_to_the_sandbox_without_them():
    isolation, feedback = run_code(["import os", "print(repr('mytorch-grader' in os.listdir('/tmp')))"],
                                   hide=["/usr/bin/env"])  # a file: it cannot be covered, so the new root fails
    assert isolation["namespaces"] == [] and "could not hide /usr/bin/env" in isolation["namespace_error"]
    assert isolation["user"] == "own" and isolation["quota"] == "watch"
    assert isolation["filter"] == ["ipc", "keys", "network"]
    assert printed(feedback)[0] is True  # the host's /tmp, with the sandboxes' parent: no new root


@needs_root
def test_a_uid_the_zygote_cannot_take_stops_the_sandbox_with_a_reason():
    with sandbox.Sandbox(reference_files()) as box:
        box.uid = 0xFFFFFFFF  # (uid_t)-1: no process can take it; a uid outside a container's map is like it
        with sandbox.Zygote(box, namespaces=False) as process:
            with pytest.raises(sandbox.SandboxError, match="could not switch to the sandbox's uid 4294967295"):
                process.start()
