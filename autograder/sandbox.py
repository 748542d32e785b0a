"""The scoring process's side of the sandbox: the submission copy and the zygote process.

``Sandbox`` writes the submission's files into a fresh folder (``src/``, read-only for
the tests) next to the tests' working folder (``work/``). As root, each sandbox has a uid
of its own (see ``dedicated_uids``) and its folder lies in a folder only root may write
(``sandbox_parent``). ``Zygote`` starts ``zygote.py`` on it and sends one request per
test; if the zygote dies or stops answering it is killed and started again for the
next test.
"""
import fcntl
import grp
import json
import os
import pwd
import signal
import stat
import subprocess
import sys
import tempfile
import time

from autograder import wire
from autograder.zygote import remove_below, remove_tree

GRADER_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ZYGOTE = os.path.join(GRADER_ROOT, "autograder", "zygote.py")
START_TIMEOUT = 60.0  # seconds for the zygote to import NumPy and get ready
GRACE = 5.0  # seconds the zygote may take beyond a test's own time limit
CLEANUP_TIMEOUT = 60.0  # seconds the zygote may take to delete what a test wrote
UID_BASE = 1 << 29  # the reserved uids: UID_BASE + SLOTS * (grader pid mod PIDS) + slot
SLOTS = 256  # sandboxes one grading process may have at once
PIDS = 1 << 22  # Linux's largest pid_max
DISK = 64 * 1024 * 1024  # bytes a test may hold on disk (its folder and /dev/shm), by default


class SandboxError(RuntimeError):
    """The zygote died, stopped answering or could not start, or no sandbox uid is free."""


def id_ranges(kind):
    """[(first id, count)] of the uids ("uid") or gids ("gid") this user namespace maps."""
    try:
        with open(f"/proc/self/{kind}_map") as handle:
            return [(int(line.split()[0]), int(line.split()[2])) for line in handle if line.strip()]
    except (OSError, ValueError, IndexError):
        return [(0, 1 << 32)]


def mapped(ranges, first, count=1):
    return any(start <= first and first + count <= start + size for start, size in ranges)


def has_account(uid):
    for lookup in (pwd.getpwuid, grp.getgrgid):
        try:
            lookup(uid)
            return True
        except KeyError:
            pass
    return False


def dedicated_uids():
    """The uids (each also the gid) this grading process may give its sandboxes, none with an account:
    where the reserved ids are mapped, a block of SLOTS that no other running grader uses (it follows
    from the pid); in a container whose uid map is small (root mapped to 65,536 ids, say), the mapped
    ids from the top down (two graders then share them, and the sandbox folders' locks keep them apart)."""
    uids, gids = id_ranges("uid"), id_ranges("gid")
    first = UID_BASE + SLOTS * (os.getpid() % PIDS)
    if mapped(uids, first, SLOTS) and mapped(gids, first, SLOTS):
        candidates = range(first, first + SLOTS)
    else:
        top_down = sorted(uids, key=lambda r: -(r[0] + r[1]))
        candidates = (uid for start, size in top_down for uid in range(start + size - 1, start - 1, -1))
    for uid in candidates:
        if 0 < uid < 0xFFFFFFFF and uid not in (65534, 65535) and mapped(gids, uid) and not has_account(uid):
            yield uid


def sandbox_parent():
    """(folder, private): the folder holding a root grader's sandboxes, ``$TMPDIR/mytorch-grader``, owned by
    root and mode 0711 (a sandbox's tests may pass through it to their own folder; nobody else may list
    it or create anything in it). Never a folder someone else made: if the name is taken by anything
    but such a folder, a new private folder (``private`` True: the sandbox removes it when it closes)."""
    temp = os.path.realpath(tempfile.gettempdir())
    folder = os.path.join(temp, "mytorch-grader")
    try:
        os.mkdir(folder, 0o711)
    except FileExistsError:
        pass
    info = os.lstat(folder)
    if stat.S_ISDIR(info.st_mode) and info.st_uid == os.geteuid():
        if stat.S_IMODE(info.st_mode) != 0o711:
            os.chmod(folder, 0o711)  # ours, in a sticky folder: nobody else can swap it for a link
        return folder, False
    folder = tempfile.mkdtemp(prefix="mytorch-grader-", dir=temp)
    os.chmod(folder, 0o711)
    return folder, True


def claim(folder):
    """The folder ``folder``, created if need be, opened and locked (``flock``) for one sandbox; None if
    another sandbox holds it. One left by a grader that ended without removing it (its lock ended with
    it) is emptied, given back to root and mode 0700, and taken."""
    for _ in range(3):
        try:
            os.mkdir(folder, 0o700)
        except FileExistsError:
            pass
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        try:
            current = os.path.samestat(os.fstat(fd), os.lstat(folder))
        except FileNotFoundError:
            current = False
        if current:
            remove_below(fd)
            os.fchown(fd, os.geteuid(), os.getegid())
            os.fchmod(fd, 0o700)
            return fd
        os.close(fd)  # its sandbox deleted it while we waited for the lock: make it again
    return None


class Sandbox:
    """A folder holding ``src/`` (the submission copy) and ``work/`` (the tests' cwd).

    As root, the folder is ``sandbox_parent()/UID``, named after the uid it reserves
    (a lock on the folder is the reservation, so concurrent sandboxes never share a
    uid); it is mode 0700 until ``hand_over`` gives ``work/`` to that uid and lets it
    pass through the folder; ``src/`` stays owned by root. Where no uid is usable (a uid map of one id),
    ``uid`` is None and a user namespace isolates the tests. Otherwise (not root) the
    folder is a private ``mkdtemp`` one, ``uid`` is None.
    """

    def __init__(self, files):
        self.uid = self.lock = self.parent = self.root = None
        try:
            if os.geteuid() == 0:
                parent, private = sandbox_parent()
                self.parent = parent if private else None
                self.root, self.uid, self.lock = self._reserve(parent)
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
        except BaseException:
            self.close()
            raise

    @staticmethod
    def _reserve(parent):
        """(folder, uid, lock): the first uid of ``dedicated_uids`` whose folder could be claimed; with no
        usable uid at all, a private folder and uid None."""
        tried = 0
        for uid in dedicated_uids():
            tried += 1
            lock = claim(os.path.join(parent, str(uid)))
            if lock is not None:
                return os.path.join(parent, str(uid)), uid, lock
            if tried >= SLOTS:
                break
        if not tried:
            return tempfile.mkdtemp(prefix="ns-", dir=parent), None, None
        raise SandboxError(f"no free sandbox uid: {tried} sandboxes are running in {parent}")

    def hand_over(self):
        """Give ``work/`` to the sandbox's uid, and let it (its gid) pass through the folder but neither list
        it nor create anything in it (root's, mode 0710); as root, once the zygote runs as that uid."""
        if self.uid is not None:
            os.chown(self.work, self.uid, self.uid)
            os.chown(self.root, 0, self.uid)
            os.chmod(self.root, 0o710)

    def close(self):
        """Delete the folder, whatever the tests made of ``work/`` (see ``zygote.remove_tree``)."""
        if self.root is not None:
            remove_tree(self.root)
        if self.lock is not None:
            os.close(self.lock)
        if self.parent is not None:
            remove_tree(self.parent)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class Zygote:
    """The zygote process of one sandbox; ``run`` sends one test and returns its raw outcome.

    ``hide`` lists the folders the tests must not see (the grader, the folder holding
    every sandbox, the submissions' folder), ``namespaces`` whether to try namespaces at
    all, ``disk`` the disk quota in bytes; ``isolation`` is what the running zygote
    reported (see ``zygote.isolate``), plus ``namespace_error`` when namespaces failed
    half-way and the zygote was started again without them.
    """

    def __init__(self, sandbox, python=None, hide=(), namespaces=True, disk=DISK):
        self.sandbox = sandbox
        self.python = python or sys.executable
        self.hide = sorted({os.path.realpath(folder) for folder in hide})
        self.namespaces = namespaces
        self.disk = disk
        self.namespace_error = None
        self.process = None
        self.restarts = 0
        self.left = 0  # files or folders the tests wrote that the zygote could not delete
        self.isolation = {}

    def start(self):
        config = {"grader_root": GRADER_ROOT, "root": self.sandbox.root, "src": self.sandbox.src,
                  "work": self.sandbox.work, "uid": self.sandbox.uid, "hide": self.hide,
                  "namespaces": self.namespaces, "disk": self.disk}
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
            if header.get("namespace_error") and self.namespaces:  # they failed half-way: do without
                self.namespaces, self.namespace_error = False, str(header["namespace_error"])
                return self.start()
            raise SandboxError(f"the sandbox could not start: {header.get('error') or 'it did not say why'}")
        self.sandbox.hand_over()
        self.isolation = {key: value for key, value in header.items() if key != "ready"}
        if self.namespace_error:
            self.isolation["namespace_error"] = self.namespace_error

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
            in_own_pids = "pid" in self.isolation.get("namespaces", ())  # then it ended with its namespace
            if isinstance(test_pid, int) and test_pid > 1 and not in_own_pids:  # it may have left its group
                try:
                    os.kill(test_pid, signal.SIGKILL)
                except OSError:
                    pass
            raise SandboxError(str(error)) from None
        try:  # then the zygote deletes what the test wrote (on a slow disk, a deep tree takes seconds)
            cleaned, _ = wire.decode(self._reply(time.monotonic() + CLEANUP_TIMEOUT))
            self.left += cleaned["left"] if type(cleaned.get("left")) is int else 0
        except (SandboxError, wire.WireError, OSError):  # a new zygote cleans up before the next test
            self.stop()
            self.restarts += 1
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
