"""The scoring process's side of the sandbox: the submission copy and the zygote process.

``Sandbox`` writes the submission's files into a fresh temporary folder (``src/``,
read-only for the tests) next to the tests' writable working folder (``work/``).
As root, each sandbox has a uid of its own (see ``dedicated_uids``) and its folder
is private to that uid. ``Zygote`` starts ``zygote.py`` on it and sends one request
per test; if the zygote dies or stops answering it is killed and started again
for the next test.
"""
import json
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import time

from autograder import wire

GRADER_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ZYGOTE = os.path.join(GRADER_ROOT, "autograder", "zygote.py")
START_TIMEOUT = 60.0  # seconds for the zygote to import NumPy and get ready
GRACE = 5.0  # seconds the zygote may take beyond a test's own time limit
UID_BASE = 1 << 29  # the reserved uids: UID_BASE + SLOTS * (grader pid mod PIDS) + slot
SLOTS = 256  # sandboxes one grading process may have at once
PIDS = 1 << 22  # Linux's largest pid_max


class SandboxError(RuntimeError):
    """The zygote died, stopped answering or could not start, or no sandbox uid is free."""


def dedicated_uids():
    """The uids this grading process may give its sandboxes: a block no other running process uses
    (it is derived from the pid), skipping any uid that has an account."""
    first = UID_BASE + SLOTS * (os.getpid() % PIDS)
    for uid in range(first, first + SLOTS):
        try:
            pwd.getpwuid(uid)
        except KeyError:
            yield uid


class Sandbox:
    """A temporary folder holding ``src/`` (the submission copy) and ``work/`` (the tests' cwd).

    As root, the folder is named after the uid it reserves (creating it is the
    reservation, so concurrent sandboxes never share a uid), it is mode 0700 and
    ``hand_over`` gives it to that uid once the zygote runs as it; ``src/`` stays
    owned by root. Otherwise ``uid`` is None and tests run as the grader's user.
    """

    def __init__(self, files):
        self.uid = None
        if os.geteuid() == 0:
            self.root, self.uid = self._reserve()
        else:
            self.root = tempfile.mkdtemp(prefix="mytorch-grade-")
        self.src = os.path.join(self.root, "src")
        self.work = os.path.join(self.root, "work")
        for relpath, data in files.items():
            path = os.path.join(self.src, *relpath.split("/"))
            os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
            with open(path, "wb") as handle:
                handle.write(data)
            os.chmod(path, 0o644)
        os.makedirs(self.src, mode=0o755, exist_ok=True)
        os.makedirs(self.work, mode=0o700)

    @staticmethod
    def _reserve():
        """(folder, uid): the first uid of ``dedicated_uids`` whose folder could be created."""
        temp = os.path.realpath(tempfile.gettempdir())
        for uid in dedicated_uids():
            root = os.path.join(temp, f"mytorch-grade-{uid}")
            try:
                os.mkdir(root, 0o700)
            except FileExistsError:  # another sandbox of this process has it, or a stale one
                continue
            return root, uid
        raise SandboxError(f"no free sandbox uid: this process already has {SLOTS} sandboxes in {temp}")

    def hand_over(self):
        """Give the folder and ``work/`` to the sandbox's uid (as root; the zygote already runs as it)."""
        if self.uid is not None:
            for path in (self.root, self.work):
                os.chown(path, self.uid, self.uid)

    def close(self):
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class Zygote:
    """The zygote process of one sandbox; ``run`` sends one test and returns its raw outcome.

    ``hide`` lists the folders to hide from the tests when running as root (the grader,
    the temporary folder holding every sandbox, the submissions' folder); ``isolation``
    is what the running zygote reported: its uid and, per folder, whether it is hidden.
    """

    def __init__(self, sandbox, python=None, hide=()):
        self.sandbox = sandbox
        self.python = python or sys.executable
        self.hide = sorted({os.path.realpath(folder) for folder in hide})
        self.process = None
        self.restarts = 0
        self.isolation = {}

    def start(self):
        config = {"grader_root": GRADER_ROOT, "root": self.sandbox.root, "src": self.sandbox.src,
                  "work": self.sandbox.work, "uid": self.sandbox.uid, "hide": self.hide}
        env = {"PATH": os.defpath, "HOME": self.sandbox.work, "TMPDIR": self.sandbox.work, "LANG": "C.UTF-8",
               "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONHASHSEED": "0"}
        self.process = subprocess.Popen(
            [self.python, "-I", ZYGOTE, json.dumps(config)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=None if os.environ.get("MYTORCH_GRADER_DEBUG") else subprocess.DEVNULL, env=env,
            cwd=self.sandbox.work, start_new_session=True, close_fds=True,
        )
        try:
            header, _ = wire.decode(self._reply(time.monotonic() + START_TIMEOUT))
        except (SandboxError, wire.WireError) as error:
            self.stop()
            raise SandboxError(f"the sandbox could not start: {error}") from None
        if not header.get("ready"):
            self.stop()
            raise SandboxError("the sandbox could not start")
        self.sandbox.hand_over()
        self.isolation = {"uid": header.get("uid"), "hidden": header.get("hidden") or {}}

    def _reply(self, deadline):
        """The zygote's next frame; SandboxError if it ends first, WireError if it is late or malformed."""
        message = wire.read_frame(self.process.stdout.fileno(), deadline)
        if message is None:
            raise SandboxError("the sandbox process ended unexpectedly")
        return message

    def run(self, request, arrays):
        """(reply header, result frames bytes) of one test; SandboxError if the zygote failed."""
        if self.process is None:
            self.start()
        deadline = time.monotonic() + request["limits"]["timeout"] + GRACE
        test_pid = None
        try:
            wire.write_frame(self.process.stdin.fileno(), wire.encode(request, arrays))
            test_pid = wire.decode(self._reply(deadline))[0].get("pid")
            header, _ = wire.decode(self._reply(deadline))
            frames = self._reply(deadline)
        except (SandboxError, wire.WireError, OSError) as error:
            self.stop()
            self.restarts += 1
            if isinstance(test_pid, int) and test_pid > 1:  # the test may have left its process group
                try:
                    os.kill(test_pid, signal.SIGKILL)
                except OSError:
                    pass
            raise SandboxError(str(error)) from None
        return header, frames

    def stop(self, grace=0.0):
        """End the zygote: with ``grace`` seconds, first let it end by itself (it then kills whatever
        its uid left running), then kill its process group."""
        if self.process is None:
            return
        ended = False
        if grace:
            try:
                self.process.stdin.close()
                self.process.wait(grace)
                ended = True
            except (OSError, subprocess.TimeoutExpired):
                pass
        if not ended:  # its pid is not reaped yet, so the group id is still its own
            try:
                os.killpg(self.process.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        for stream in (self.process.stdin, self.process.stdout):
            try:
                stream.close()
            except OSError:
                pass
        self.process.wait()
        self.process = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop(grace=2.0)
