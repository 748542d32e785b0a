"""The sandbox process: started once per submission, it forks one process per test.

Run by ``sandbox.Zygote`` as ``python -I zygote.py CONFIG_JSON``. Before any student
code exists in memory it imports NumPy and the probes, compiles the submission
copy and seals the code the tests run (``probes.seal``). Then ``isolate`` shuts the
tests in, with what the host allows:

- namespaces (mount, pid, network, IPC; plus a user namespace when the grader has no
  sandbox uid to give, e.g. as an ordinary user): the tests see a new root holding
  only the system folders, Python and their own sandbox (``src/`` read-only, ``work/``
  and ``/dev/shm`` on a tmpfs of the disk quota), no network, and only their own
  processes; everything in the namespaces ends with the sandbox;
- as root, the sandbox's own uid (``setuid``); as an ordinary user, no capabilities;
- a seccomp filter refusing SysV IPC, POSIX message queues and the kernel's keyrings,
  and sockets where there is no network namespace.

For every request read from its protocol input, it forks a test process that limits
its own memory, time, processes and file sizes, imports the submission from the copy
and runs the probes; the zygote collects that process's result frames and printed
output under the time limit, deletes whatever the test wrote, and answers with a
status header and the frames. The zygote itself never imports the submission, so
every test starts clean.
"""
import io
import json
import os
import re
import resource
import select
import signal
import stat
import sys
import time
import types

OUTPUT_LIMIT = 16 * 1024  # bytes of a test's printed output kept for its feedback
RESULT_LIMIT = 64 * 1024 * 1024  # bytes of result frames accepted from one test
FILE_LIMIT = 16 * 1024 * 1024  # bytes of one file a test writes
ENTRY_LIMIT = 10_000  # files and folders a test may hold at once (with its disk quota)
QUOTA_CHECK = 0.1  # seconds between two measures of what a test wrote, where no tmpfs limits it
PREIMPORT = (  # stdlib modules a test may need after the user change (the stdlib may be unreadable then)
    "abc", "collections", "contextlib", "copy", "ctypes", "dataclasses", "functools", "itertools", "json",
    "math", "numbers", "operator", "random", "re", "signal", "struct", "time", "traceback", "typing",
    "warnings", "zipfile", "encodings.cp437", "numpy", "numpy.random", "numpy.linalg", "numpy.fft", "numpy.testing",
)
SYSTEM_FOLDERS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc")  # read-only in the new root
DEVICES = ("null", "zero", "full", "random", "urandom")
SHARED_TEMP = ("/tmp", "/var/tmp", "/dev/shm", "/dev/mqueue", "/run/lock")  # where any uid may write (no mount namespace)
# Linux's constants (linux/sched.h, linux/mount.h, linux/prctl.h, linux/seccomp.h, linux/filter.h, linux/audit.h)
CLONE_NEWNS, CLONE_NEWIPC, CLONE_NEWUSER, CLONE_NEWPID, CLONE_NEWNET = 0x20000, 0x8000000, 0x10000000, 0x20000000, 0x40000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 1, 2, 4, 8, 32, 4096, 0x4000, 0x40000
MNT_DETACH = 2
PR_SET_PDEATHSIG, PR_SET_DUMPABLE, PR_SET_SECCOMP, PR_SET_NO_NEW_PRIVS = 1, 4, 22, 38
SYSCALLS = {  # machine -> (seccomp's audit arch, syscall numbers)
    "x86_64": (0xC000003E, {"pivot_root": 155, "socket": 41, "io_uring_setup": 425, "shmget": 29, "semget": 64,
                            "msgget": 68, "mq_open": 240, "add_key": 248, "request_key": 249, "keyctl": 250}),
    "aarch64": (0xC00000B7, {"pivot_root": 41, "socket": 198, "io_uring_setup": 425, "shmget": 194, "semget": 190,
                             "msgget": 186, "mq_open": 180, "add_key": 217, "request_key": 218, "keyctl": 219}),
}
BLOCKED = {"network": ("socket", "io_uring_setup"), "ipc": ("shmget", "semget", "msgget", "mq_open"),
           "keys": ("add_key", "request_key", "keyctl")}  # keys: the grader's session keyring is inherited


def prepare(config, replies):
    """Everything done before the first fork: imports, compilation, isolation, sealing.

    Returns the sealed copies the test processes run (``probes``, ``wire`` and this
    module, see ``probes.seal``), the zygote's own ``wire`` module, and the isolation
    report (see ``isolate``).
    """
    sys.path.insert(0, config["grader_root"])
    from autograder import probes, wire

    del sys.path[0]
    import compileall
    import importlib

    for name in PREIMPORT:
        try:
            importlib.import_module(name)
        except ImportError:
            pass
    wire.decode(wire.encode({}, {"warm": probes.np.zeros(1)}))  # import what np.savez/np.load load lazily
    # The submission copy comes first on sys.path (below); drop this script's folder, the entries
    # holding a mytorch package and the finders of editable installs, which could otherwise serve
    # an installed mytorch (in a mount namespace, those mytorch folders are hidden as well).
    # probes.load_submission checks where every mytorch module came from.
    here = os.path.dirname(os.path.abspath(__file__))
    installed = [os.path.join(p, "mytorch") for p in sys.path if p and os.path.isdir(os.path.join(p, "mytorch"))]
    sys.path[:] = [p for p in sys.path if p and os.path.abspath(p) != here
                   and not os.path.exists(os.path.join(p, "mytorch"))]
    sys.meta_path[:] = [f for f in sys.meta_path if "editable" not in repr(f).lower()]
    compileall.compile_dir(config["src"], quiet=2, workers=1)
    hide = sorted({os.path.realpath(folder) for folder in config["hide"] + installed})
    isolation = isolate(dict(config, hide=hide), lambda header: wire.write_frame(replies, wire.encode(header)))
    sys.path.insert(0, config["src"])
    sys.dont_write_bytecode = True
    sealed = types.SimpleNamespace(probes=probes.seal(vars(probes)), wire=probes.seal(vars(wire)),
                                   zygote=probes.seal(globals()))
    return sealed, wire, isolation


# --------------------------------------------------------------------- isolation
def isolate(config, say):
    """Shut the tests in as far as this host allows; returns what holds, for the scoring process:

    ``uid`` the tests run as; ``user``: "own" (the sandbox's own uid, as root),
    "namespace" (the grader's user without capabilities, in a user namespace) or
    "shared" (the grader's own user: nothing keeps the tests from what it may do);
    ``namespaces`` entered; ``namespace_error`` why none could be; ``filter``: what the
    seccomp filter refuses ("ipc", "keys", "network"); ``quota``: "tmpfs" (a size-limited
    tmpfs), "watch" (the zygote measures what the sandbox uid holds) or None;
    ``hidden``: per folder asked to hide, whether the tests cannot see into it;
    ``unreadable``: the folders of the Python installation the sandbox's uid cannot read
    (without a new root only).
    """
    uid = config.get("uid")
    report = {"namespaces": [], "filter": [], "quota": None, "hidden": dict.fromkeys(config["hide"], False)}
    if config.get("namespaces"):
        try:
            report["namespaces"] = enter_namespaces(config, say, user=uid is None)
            report.update(quota="tmpfs", hidden=dict.fromkeys(config["hide"], True))
        except OSError as error:  # refused before anything changed: go on without
            report["namespace_error"] = str(error)
    if uid is not None:
        try:
            os.setgroups([])
            os.setgid(uid)
            os.setuid(uid)
        except OSError as error:  # never run tests as root
            say({"ready": False, "error": f"could not switch to the sandbox's uid {uid}: {error}"})
            os._exit(1)
        if not report["namespaces"]:
            kill_leftovers()
            report["quota"] = "watch"
            # Without a new root the tests see the host's folders with the uid's rights: a Python installed
            # under a private folder (such as root's home) lets them import only what was imported above.
            report["unreadable"] = [folder for folder in python_folders() if not os.access(folder, os.R_OK | os.X_OK)]
    elif report["namespaces"]:
        drop_capabilities()
    report["user"] = "own" if uid is not None else "namespace" if report["namespaces"] else "shared"
    report["uid"] = os.getuid()
    wanted = ["ipc", "keys"] + ([] if "net" in report["namespaces"] else ["network"])
    try:
        report["filter"] = install_filter(wanted)
    except OSError as error:
        report["filter_error"] = str(error)
    try:  # a non-dumpable process cannot be traced or have its /proc/PID/fd opened by its children
        libc().prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)
    except OSError:
        pass
    return report


def libc():
    """The C library, through ctypes, keeping errno for ``check``."""
    import ctypes

    return ctypes.CDLL(None, use_errno=True)


def check(result, what):
    """OSError naming ``what`` unless a libc call's ``result`` is 0."""
    if result != 0:
        import ctypes

        number = ctypes.get_errno()
        raise OSError(number, f"{what}: {os.strerror(number)}")


def mount(source, target, fstype, flags, data=None):
    """mount(2); OSError naming ``target`` if it fails."""
    source, target_b, fstype, data = (None if v is None else os.fsencode(v) for v in (source, target, fstype, data))
    check(libc().mount(source, target_b, fstype, flags, data), f"mount {target}")


def enter_namespaces(config, say, user):
    """Enter new mount, pid, network and IPC namespaces (and a user namespace if ``user``) and pivot into
    the new root (``build_root``). Returns the namespaces' names, in the zygote process, which is pid 2:
    the process that called it waits for the namespaces' init (pid 1) and exits as it does; init waits
    for the zygote, and when it ends the kernel kills whatever else the namespaces hold.

    OSError if the namespaces are refused (nothing changed then); if setting them up fails later,
    ``say`` tells the scoring process why and the processes end.
    """
    flags = CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWIPC | (CLONE_NEWUSER if user else 0)
    if os.uname().machine not in SYSCALLS:
        raise OSError(f"namespaces: this grader cannot pivot into a new root on {os.uname().machine}")
    uid, gid = os.geteuid(), os.getegid()
    check(libc().unshare(flags), "unshare")
    try:
        if user:  # the tests keep the grader's ids (root's become 65534): never root inside
            for name, text in (("setgroups", "deny"), ("uid_map", f"{uid or 65534} {uid} 1"),
                               ("gid_map", f"{gid or 65534} {gid} 1")):
                with open(f"/proc/self/{name}", "w") as handle:
                    handle.write(text)
        init = os.fork()
    except OSError as error:
        fail(say, error)
    if init:
        outlive(init)
    try:
        check(libc().prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0), "prctl")
        build_root(config)
        zygote = os.fork()
    except OSError as error:
        fail(say, error)
    if zygote:
        outlive(zygote)
    return (["user"] if user else []) + ["mount", "pid", "net", "ipc"]


def fail(say, error):
    """Tell the scoring process why the namespaces could not be set up (it starts again without), and end."""
    say({"ready": False, "namespace_error": f"setting up the namespaces failed: {error}"})
    os._exit(1)


def outlive(child):
    """Wait (reaping every orphan, as a pid namespace's init must) until ``child`` ends, then end as it did."""
    os.closerange(3, 1 << 16)  # the protocol's pipes are the zygote's alone
    libc().prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)
    while True:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            os._exit(1)
        if pid == child:
            os._exit(os.WEXITSTATUS(status) if os.WIFEXITED(status) else 1)


def build_root(config):
    """In the new namespaces (as their root): a new root file system, pivoted into.

    It holds the system folders and Python read-only (with the folders to hide that lie
    inside them covered by an empty tmpfs), the sandbox's ``src/`` read-only at its own
    path, ``work/`` and ``/dev/shm`` on one tmpfs of the disk quota, a few devices, and
    a /proc of the new pid namespace. Nothing else of the host is there: not the
    grader, not the other sandboxes or submissions, not the grader's home.
    """
    base, scratch = os.path.join(config["root"], "fs"), os.path.join(config["root"], "scratch")
    mount(None, "/", None, MS_REC | MS_PRIVATE)
    for folder in (base, scratch):
        os.makedirs(folder, exist_ok=True)
    mount("tmpfs", base, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755,size=1m,nr_inodes=4096")
    shown = []
    for folder in SYSTEM_FOLDERS + tuple(python_folders()):
        if any(folder.startswith(other + os.sep) for other in shown):
            continue
        if os.path.islink(folder):  # /lib -> usr/lib
            os.symlink(os.readlink(folder), base + folder)
        elif os.path.isdir(folder):
            bind(folder, base + folder, readonly=True)
            shown.append(folder)
    owner = f",uid={config['uid']},gid={config['uid']}" if config.get("uid") is not None else ""
    mount("tmpfs", scratch, "tmpfs", MS_NOSUID | MS_NODEV,
          f"mode=0700,size={config['disk']},nr_inodes={ENTRY_LIMIT}{owner}")
    for name in ("work", "shm"):
        os.mkdir(os.path.join(scratch, name), 0o700)
        if owner:
            os.chown(os.path.join(scratch, name), config["uid"], config["uid"])
    bind(config["src"], base + config["src"], readonly=True)
    bind(os.path.join(scratch, "work"), base + config["work"])
    os.makedirs(base + "/dev")
    for name in DEVICES:
        if os.path.exists("/dev/" + name):
            bind("/dev/" + name, base + "/dev/" + name)
    for name, target in (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"), ("stdout", "/proc/self/fd/1"),
                         ("stderr", "/proc/self/fd/2")):
        os.symlink(target, base + "/dev/" + name)
    bind(os.path.join(scratch, "shm"), base + "/dev/shm")
    os.mkdir(base + "/proc")
    mount("proc", base + "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    keep = [config["root"]] + python_folders()
    for folder in config["hide"]:
        if folder != os.sep and any(folder == s or folder.startswith(s + os.sep) for s in shown):
            inside = [base + k for k in keep if k.startswith(folder + os.sep)]
            if not cover(base + folder, inside):
                raise OSError(f"could not hide {folder}")
    os.chdir(base)
    check(libc().syscall(SYSCALLS[os.uname().machine][1]["pivot_root"], b".", b"."), "pivot_root")
    check(libc().umount2(b".", MNT_DETACH), "umount the old root")
    os.chdir("/")
    mount(None, "/", None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV)


def bind(source, target, readonly=False):
    """Bind ``source`` (a folder or a file, with the mounts below it) on ``target``, made for it;
    read-only: every mount of it, keeping the flags the host locked (nosuid, nodev, noexec)."""
    if os.path.isdir(source):
        os.makedirs(target, exist_ok=True)
    else:
        os.makedirs(os.path.dirname(target), exist_ok=True)
        os.close(os.open(target, os.O_WRONLY | os.O_CREAT, 0o644))
    mount(source, target, None, MS_BIND | MS_REC)
    if readonly:
        for point in mount_points(target):
            locked = os.statvfs(point).f_flag & (MS_NOSUID | MS_NODEV | MS_NOEXEC)  # ST_* equal MS_* for these
            mount(None, point, None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV | locked)


def mount_points(top):
    """The mount points at or under ``top``, outermost first (from /proc/self/mountinfo, where a space in a
    path is written \\040)."""
    with open("/proc/self/mountinfo", "rb") as handle:
        raw = [line.split()[4] for line in handle]
    points = [os.fsdecode(re.sub(rb"\\([0-7]{3})", lambda m: bytes([int(m.group(1), 8)]), p)) for p in raw]
    return sorted({p for p in points if p == top or p.startswith(top.rstrip(os.sep) + os.sep)}, key=len)


def cover(folder, keep):
    """Mount an empty tmpfs on ``folder``, bind the ``keep`` folders under it back, make it read-only.
    True on success; on failure nothing stays mounted."""
    keep = [k for k in keep if not any(k.startswith(other + os.sep) for other in keep)]  # the outermost ones
    handles = [os.open(k, os.O_RDONLY | os.O_DIRECTORY) for k in keep]  # still reachable once covered
    try:
        mount("tmpfs", folder, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "size=1m,mode=0755")
        try:
            for path, handle in zip(keep, handles):
                os.makedirs(path, exist_ok=True)
                mount(f"/proc/self/fd/{handle}", path, None, MS_BIND | MS_REC)
            mount(None, folder, None, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC)
        except OSError:
            libc().umount2(os.fsencode(folder), MNT_DETACH)
            raise
        return True
    except OSError:
        return False
    finally:
        for handle in handles:
            os.close(handle)


def python_folders():
    """The folders of the Python installation and of NumPy, which the tests must keep seeing."""
    import numpy

    folders = (sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix, os.path.dirname(numpy.__file__))
    return sorted({os.path.realpath(folder) for folder in folders})


def drop_capabilities():
    """Give up every capability (the creator of a user namespace holds all of them in it)."""
    import ctypes

    header = (ctypes.c_uint32 * 2)(0x20080522, 0)  # _LINUX_CAPABILITY_VERSION_3, this process
    check(libc().capset(header, (ctypes.c_uint32 * 6)()), "capset")


def install_filter(blocked):
    """No new privileges (no set-uid programs), and a seccomp filter making the system calls of the
    ``blocked`` groups (see BLOCKED) fail with EPERM; calls of another ABI (i386, x32) fail too.
    Returns ``blocked``; OSError where the kernel or the machine has no such filter."""
    import ctypes

    check(libc().prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "prctl(PR_SET_NO_NEW_PRIVS)")
    if os.uname().machine not in SYSCALLS:
        raise OSError(f"seccomp: no system call table for {os.uname().machine}")
    arch, numbers = SYSCALLS[os.uname().machine]
    load, jeq, jge, ret = 0x20, 0x15, 0x35, 0x06  # BPF_LD|BPF_W|BPF_ABS, BPF_JMP|BPF_JEQ|BPF_K, ..JGE.., BPF_RET|BPF_K
    deny = [numbers[name] for group in blocked for name in BLOCKED[group]]
    # (code, jump if true, jump if false, k); the last two instructions are "allow" and "deny"
    program = [(load, 0, 0, 4), (jeq, 0, 2 + len(deny) + 1, arch), (load, 0, 0, 0),
               (jge, 1 + len(deny), 0, 0x40000000)]
    program += [(jeq, len(deny) - i, 0, number) for i, number in enumerate(deny)]
    program += [(ret, 0, 0, 0x7FFF0000), (ret, 0, 0, 0x00050000 | 1)]  # SECCOMP_RET_ALLOW, SECCOMP_RET_ERRNO|EPERM

    class Instruction(ctypes.Structure):
        _fields_ = [("code", ctypes.c_uint16), ("jt", ctypes.c_uint8), ("jf", ctypes.c_uint8), ("k", ctypes.c_uint32)]

    class Program(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.POINTER(Instruction))]

    instructions = (Instruction * len(program))(*program)
    check(libc().prctl(PR_SET_SECCOMP, 2, ctypes.byref(Program(len(program), instructions)), 0, 0),
          "prctl(PR_SET_SECCOMP)")  # 2: SECCOMP_MODE_FILTER
    return list(blocked)


def kill_leftovers():
    """Kill every other process of this (dedicated) uid: whatever an earlier sandbox of it left running."""
    try:
        os.kill(-1, signal.SIGKILL)
    except OSError:  # ESRCH: there was none
        pass


# --------------------------------------------------------------------- what a test leaves behind
def entries_below(top):
    """(folder fd, name, is a folder) for everything below the open folder ``top``, a folder's entries
    before the folder itself. Iterative, and folders are opened relative to their parent (left through
    ".."), so neither Python's recursion limit nor PATH_MAX bound the depth; links are never followed;
    folders are made rwx for their owner first (their owner, or root, may always do so). ``top`` stays open.
    """
    fd = os.dup(top)
    names, pending = [], [listing(fd)]
    try:
        while True:
            if pending[-1]:
                name, folder = pending[-1].pop()
                child = open_folder(name, fd) if folder else None
                if child is None:
                    yield fd, name, folder
                    continue
                os.close(fd)
                fd = child
                names.append(name)
                pending.append(listing(fd))
                continue
            pending.pop()
            if not names:
                return
            try:
                parent = os.open("..", os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
            except OSError:  # cannot happen to a folder made rwx above; stop rather than fail
                return
            os.close(fd)
            fd = parent
            yield fd, names.pop(), True
    finally:
        os.close(fd)


def listing(fd):
    try:
        with os.scandir(fd) as entries:
            return [(entry.name, entry.is_dir(follow_symlinks=False)) for entry in entries]
    except OSError:
        return []


def open_folder(name, dir_fd=None):
    """The folder ``name`` opened (never through a link) and made rwx for its owner; None if impossible."""
    flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW
    try:
        try:
            fd = os.open(name, flags, dir_fd=dir_fd)
        except PermissionError:  # mode 000: its owner may change that
            os.chmod(name, 0o700, dir_fd=dir_fd)
            fd = os.open(name, flags, dir_fd=dir_fd)
    except OSError:
        return None
    try:
        if os.fstat(fd).st_mode & 0o700 != 0o700:
            os.fchmod(fd, stat.S_IMODE(os.fstat(fd).st_mode) | 0o700)
    except OSError:
        pass
    return fd


def remove_below(top):
    """Delete everything below the open folder ``top``; returns how many entries could not be deleted."""
    left = 0
    for fd, name, folder in entries_below(top):
        for attempt in range(2):
            try:
                (os.rmdir if folder else os.unlink)(name, dir_fd=fd)
                break
            except FileNotFoundError:
                break
            except OSError:
                if attempt:
                    left += 1
    return left


def remove_tree(path):
    """Delete ``path`` (a folder with everything in it, or any other entry; a link itself, never its
    target); returns how many entries could not be deleted (0: it is gone)."""
    fd = open_folder(path)
    if fd is None:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        except OSError:
            return 0 if not os.path.lexists(path) else 1
        return 0
    try:
        left = remove_below(fd)
    finally:
        os.close(fd)
    try:
        os.rmdir(path)
    except OSError:
        left += 1
    return left


def empty_folder(path):
    """Delete what is in the folder ``path`` (kept); returns how many entries could not be deleted."""
    fd = open_folder(path)
    if fd is None:
        return 0 if not os.path.lexists(path) else 1
    try:
        return remove_below(fd)
    finally:
        os.close(fd)


def shared_entries(uid):
    """The paths ``uid`` owns in the shared temporary folders (SHARED_TEMP) and in the world-writable
    folders directly in them (such as /tmp/.X11-unix)."""
    found, folders = [], list(SHARED_TEMP)
    while folders:
        folder = folders.pop()
        try:
            with os.scandir(folder) as entries:
                for entry in entries:
                    try:
                        info = entry.stat(follow_symlinks=False)
                    except OSError:
                        continue
                    if info.st_uid == uid:
                        found.append(entry.path)
                    elif folder in SHARED_TEMP and stat.S_ISDIR(info.st_mode) and info.st_mode & 0o002:
                        folders.append(entry.path)
        except OSError:
            pass
    return found


def clean_up(config, isolation):
    """Delete what a test wrote: its folder's content, in a mount namespace its /dev/shm, as a sandbox uid
    without one what the uid owns in the shared temporary folders. Returns how many entries are left."""
    left = empty_folder(config["work"])
    if "mount" in isolation["namespaces"]:
        left += empty_folder("/dev/shm")
    elif isolation["user"] == "own":
        left += sum(remove_tree(path) for path in shared_entries(isolation["uid"]))
    return left


def over_quota(config, isolation):
    """Whether the sandbox uid holds more than the disk quota (bytes or ENTRY_LIMIT entries) in its
    folder and the shared temporary folders; for the hosts where no tmpfs enforces it."""
    used = entries = 0
    tops = [config["work"]] + shared_entries(isolation["uid"])
    for top in tops:
        try:
            info = os.lstat(top)
        except OSError:
            continue
        folder = stat.S_ISDIR(info.st_mode)
        used, entries = used + (0 if folder else info.st_blocks * 512), entries + 1
        fd = open_folder(top) if folder else None
        if fd is None:
            continue
        try:
            for folder_fd, name, folder in entries_below(fd):
                try:  # bytes of files, as a tmpfs counts them; folders count as entries
                    used += 0 if folder else os.stat(name, dir_fd=folder_fd, follow_symlinks=False).st_blocks * 512
                except OSError:
                    pass
                entries += 1
                if used > config["disk"] or entries > ENTRY_LIMIT:
                    return True
        finally:
            os.close(fd)
    return used > config["disk"] or entries > ENTRY_LIMIT


def set_limits(config):
    """Memory (address space beyond what is mapped now), CPU time, processes, file size, core dumps."""
    with open("/proc/self/statm") as statm:
        mapped = int(statm.read().split()[0]) * resource.getpagesize()
    limits = [
        (resource.RLIMIT_AS, mapped + config["memory"]),
        (resource.RLIMIT_CPU, int(config["timeout"]) + 2),
        (resource.RLIMIT_NPROC, 0),
        (resource.RLIMIT_FSIZE, FILE_LIMIT),
        (resource.RLIMIT_CORE, 0),
    ]
    for which, value in limits:
        try:
            resource.setrlimit(which, (value, value))
        except (ValueError, OSError):
            pass


def classify(error, probes, src):
    """(status, feedback text) for an exception raised while running a case."""
    if isinstance(error, MemoryError):
        return "out of memory", "MemoryError: the test ran out of memory (the limit is per test)"
    if isinstance(error, probes.ProbeFailure):
        return "failed", str(error)
    if isinstance(error, SystemExit):
        return "error", f"your code called sys.exit({error.code!r})\n" + probes.student_traceback(error, src)
    return "error", probes.student_traceback(error, src)


def jsonable(value):
    """``value`` if it can be sent as JSON, else its (shortened) repr."""
    try:
        json.dumps(value)
        return value
    except (TypeError, ValueError):
        return repr(value)[:200]


def run_child(request, arrays, result_fd, probes, wire, config):
    """The test process: import the submission, run every case, send one frame per case.

    It runs as a sealed copy (see ``probes.seal``) and is given the sealed ``probes`` and ``wire``.
    """
    src = config["src"]

    def send(header, out_arrays=None):
        wire.write_frame(result_fd, wire.encode(header, out_arrays))

    try:
        sub = probes.load_submission(src)
    except BaseException as error:  # ImportError, SyntaxError, SystemExit at import, ...
        status, text = classify(error, probes, src)
        send({"import_error": f"importing your code failed:\n{text}", "status": status})
        return
    for index, case in enumerate(request["cases"]):
        case_arrays = {name[len(f"{index}/"):]: value for name, value in arrays.items()
                       if name.startswith(f"{index}/")}
        out, error = probes.run_case(sub, case["probe"], case_arrays, case["params"])
        header = {"case": index, "values": {}, "missing": {}}
        out_arrays = {}
        for name, value in out.items():
            if isinstance(value, probes.Missing):
                header["missing"][name] = value.reason
            elif isinstance(value, probes.np.ndarray) and value.dtype.kind not in "biufc":
                header["missing"][name] = f"is an array of dtype {value.dtype}, not of numbers"
            elif isinstance(value, probes.np.ndarray):
                out_arrays[name] = value
            else:
                header["values"][name] = jsonable(value)
        if error is not None:
            header["status"], header["error"] = classify(error, probes, src)
        send(header, out_arrays)


def fork_test(request, arrays, sealed, config):
    """Fork the test process; returns (pid, result read fd, output read fd)."""
    result_r, result_w = os.pipe()
    output_r, output_w = os.pipe()
    pid = os.fork()
    if pid:
        os.close(result_w)
        os.close(output_w)
        return pid, result_r, output_r
    code = 0
    try:
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.dup2(output_w, 1)
        os.dup2(output_w, 2)
        for fd, name in ((1, "stdout"), (2, "stderr")):  # unbuffered, as python -u: a timeout loses nothing printed
            setattr(sys, name, io.TextIOWrapper(io.FileIO(fd, "w", closefd=False), encoding="utf-8",
                                                errors="backslashreplace", write_through=True))
        os.closerange(3, result_w)
        os.closerange(result_w + 1, 1 << 16)
        os.chdir(config["work"])
        set_limits(config)
        sealed.zygote.run_child(request, arrays, result_w, sealed.probes, sealed.wire, config)
    except BaseException:  # the grader's own failure: say so on the captured output
        code = 70
        try:
            import traceback

            traceback.print_exc()
        except BaseException:
            pass
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except BaseException:
                pass
        os._exit(code)


def supervise(pid, result_fd, output_fd, timeout, over_quota=None):
    """Collect a test process's frames and output until it ends, its time is up, or (checked every
    QUOTA_CHECK seconds) ``over_quota()`` says it wrote more than the disk quota."""
    deadline = time.monotonic() + timeout
    next_check = time.monotonic() + QUOTA_CHECK
    chunks = {result_fd: bytearray(), output_fd: bytearray()}
    limits = {result_fd: RESULT_LIMIT, output_fd: OUTPUT_LIMIT}
    open_fds = [result_fd, output_fd]
    ending, wait_status = None, None
    while ending is None:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            ending = "timeout"
            break
        if over_quota is not None and time.monotonic() >= next_check:
            if over_quota():
                ending = "disk"
                break
            next_check = time.monotonic() + QUOTA_CHECK
        if open_fds:
            ready, _, _ = select.select(open_fds, [], [], min(remaining, QUOTA_CHECK))
            for fd in ready:
                data = os.read(fd, 1 << 16)
                if not data:
                    open_fds.remove(fd)
                elif fd == result_fd and len(chunks[fd]) + len(data) > limits[fd]:
                    ending = "oversize"
                elif len(chunks[fd]) < limits[fd]:
                    chunks[fd] += data[:limits[fd] - len(chunks[fd])]
        else:
            time.sleep(0.002)
        if not open_fds:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                wait_status, ending = status, "exited"
    if wait_status is None:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        _, wait_status = os.waitpid(pid, 0)
    os.close(result_fd)
    os.close(output_fd)
    header = {"ending": ending, "output": bytes(chunks[output_fd]).decode("utf-8", "replace")}
    if os.WIFSIGNALED(wait_status):
        header["signal"] = os.WTERMSIG(wait_status)
    else:
        header["code"] = os.WEXITSTATUS(wait_status)
    return header, bytes(chunks[result_fd])


def main():
    config = json.loads(sys.argv[1])
    # The protocol runs on private copies of stdin/stdout; fds 0-2 become harmless.
    requests = os.dup(0)
    replies = os.dup(1)
    null = os.open(os.devnull, os.O_RDWR)
    os.dup2(null, 0)
    os.dup2(null, 1)
    sealed, wire, isolation = prepare(config, replies)
    watch = None
    if isolation["quota"] == "watch":
        watch = lambda: over_quota(config, isolation)  # noqa: E731
        clean_up(config, isolation)  # what an earlier sandbox of this uid may have left
    wire.write_frame(replies, wire.encode(dict(isolation, ready=True)))
    while True:
        message = wire.read_frame(requests)
        if message is None:
            break
        request, arrays = wire.decode(message)
        pid, result_fd, output_fd = fork_test(request, arrays, sealed, dict(config, **request["limits"]))
        wire.write_frame(replies, wire.encode({"pid": pid}))  # so the grader can kill it if the zygote dies
        header, frames = supervise(pid, result_fd, output_fd, request["limits"]["timeout"], watch)
        header["output"] = header["output"].replace(os.path.join(config["src"], ""), "")  # paths as in the handout
        wire.write_frame(replies, wire.encode(header))
        wire.write_frame(replies, frames)
        wire.write_frame(replies, wire.encode({"left": clean_up(config, isolation)}))  # before the next test
    if isolation["user"] == "own":  # the grader closed the sandbox: leave nothing running
        kill_leftovers()
    os._exit(0)  # nothing is left to flush; this skips the interpreter's slow teardown


if __name__ == "__main__":
    main()
