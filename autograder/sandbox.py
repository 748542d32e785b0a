"""The scoring process's side of the sandbox: the submission copy and the zygote process.

``Sandbox`` writes the submission's files into a fresh temporary folder (``src/``,
read-only for the tests) next to the tests' writable working folder (``work/``).
``Zygote`` starts ``zygote.py`` on it and sends one request per test; if the
zygote dies or stops answering it is killed and started again for the next test.
"""
import json
import os
import pwd
import select
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time

from autograder import wire

GRADER_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ZYGOTE = os.path.join(GRADER_ROOT, "autograder", "zygote.py")
START_TIMEOUT = 60.0  # seconds for the zygote to import NumPy and get ready
GRACE = 5.0  # seconds the zygote may take beyond a test's own time limit


class SandboxError(RuntimeError):
    """The zygote died, stopped answering or could not start."""


def sandbox_user(name):
    """(uid, gid) the tests run as: ``name``'s when the grader is root, else None (no change)."""
    if os.geteuid() != 0:
        return None
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        raise SandboxError(f"the sandbox user {name!r} does not exist; create it or pass --user") from None
    if entry.pw_uid == 0:
        raise SandboxError(f"the sandbox user {name!r} is root; tests must run unprivileged")
    return entry.pw_uid, entry.pw_gid


class Sandbox:
    """A temporary folder holding ``src/`` (the submission copy) and ``work/`` (the tests' cwd)."""

    def __init__(self, files, user):
        self.root = tempfile.mkdtemp(prefix="mytorch-grade-")
        os.chmod(self.root, 0o755)
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
        if user is not None:
            os.chown(self.work, *user)

    def close(self):
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _read_exactly(fd, count, deadline):
    data = bytearray()
    while len(data) < count:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise SandboxError("the sandbox process stopped answering")
        ready, _, _ = select.select([fd], [], [], remaining)
        if ready:
            chunk = os.read(fd, min(count - len(data), 1 << 20))
            if not chunk:
                raise SandboxError("the sandbox process ended unexpectedly")
            data += chunk
    return bytes(data)


def read_frame_before(fd, deadline):
    """One frame from ``fd``; SandboxError if it does not arrive by ``deadline`` (monotonic)."""
    (size,) = struct.unpack("<Q", _read_exactly(fd, 8, deadline))
    if size > wire.MAX_MESSAGE:
        raise SandboxError(f"the sandbox sent a frame of {size} bytes")
    return _read_exactly(fd, size, deadline)


class Zygote:
    """The zygote process of one sandbox; ``run`` sends one test and returns its raw outcome."""

    def __init__(self, sandbox, user, python=None, hide_grader=True):
        self.sandbox = sandbox
        self.user = user
        self.python = python or sys.executable
        self.hide_grader = hide_grader  # as root, cover the grader's checkout in the tests' mount namespace
        self.process = None
        self.restarts = 0
        self.isolation = {}  # what the running zygote reported: its uid, whether the grader tree is hidden

    def start(self):
        config = {"grader_root": GRADER_ROOT, "src": self.sandbox.src, "work": self.sandbox.work,
                  "uid": None if self.user is None else self.user[0],
                  "gid": None if self.user is None else self.user[1], "hide_grader": self.hide_grader}
        env = {"PATH": os.defpath, "HOME": self.sandbox.work, "TMPDIR": self.sandbox.work, "LANG": "C.UTF-8",
               "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONHASHSEED": "0"}
        self.process = subprocess.Popen(
            [self.python, "-I", ZYGOTE, json.dumps(config)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=None if os.environ.get("MYTORCH_GRADER_DEBUG") else subprocess.DEVNULL, env=env, cwd=self.sandbox.work, start_new_session=True, close_fds=True,
        )
        try:
            header, _ = wire.decode(read_frame_before(self.process.stdout.fileno(), time.monotonic() + START_TIMEOUT))
        except (SandboxError, wire.WireError) as error:
            self.stop()
            raise SandboxError(f"the sandbox could not start: {error}") from None
        if not header.get("ready"):
            self.stop()
            raise SandboxError("the sandbox could not start")
        self.isolation = {"uid": header.get("uid"), "grader_hidden": bool(header.get("grader_hidden"))}

    def run(self, request, arrays):
        """(reply header, result frames bytes) of one test; SandboxError if the zygote failed."""
        if self.process is None:
            self.start()
        deadline = time.monotonic() + request["limits"]["timeout"] + GRACE
        replies = self.process.stdout.fileno()
        test_pid = None
        try:
            wire.write_frame(self.process.stdin.fileno(), wire.encode(request, arrays))
            test_pid = wire.decode(read_frame_before(replies, deadline))[0].get("pid")
            header, _ = wire.decode(read_frame_before(replies, deadline))
            frames = read_frame_before(replies, deadline)
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

    def stop(self):
        if self.process is None:
            return
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
        self.stop()
