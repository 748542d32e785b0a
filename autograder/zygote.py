"""The sandbox process: started once per submission, it forks one process per test.

Run by ``sandbox.Zygote`` as ``python -I zygote.py CONFIG_JSON``. Before any student
code exists in memory it imports NumPy and the probes, compiles the submission
copy, seals the code the tests run (``probes.seal``) and, when started as root,
hides the grader, the other sandboxes and the submissions' folder in a private
mount namespace, switches to the sandbox's dedicated uid and kills whatever an
earlier sandbox of that uid left running. Then, for every
request read from its protocol input, it forks a test process that limits its own
memory, time, processes and file sizes, imports the submission from the copy and
runs the probes; the zygote collects that process's result frames and printed
output under the time limit and answers with a status header and the frames.
The zygote itself never imports the submission, so every test starts clean.
"""
import io
import json
import os
import resource
import select
import signal
import sys
import time
import types

OUTPUT_LIMIT = 16 * 1024  # bytes of a test's printed output kept for its feedback
RESULT_LIMIT = 64 * 1024 * 1024  # bytes of result frames accepted from one test
PREIMPORT = (  # stdlib modules a test may need after the user change (the stdlib may be unreadable then)
    "abc", "collections", "contextlib", "copy", "ctypes", "dataclasses", "functools", "itertools", "json",
    "math", "numbers", "operator", "random", "re", "signal", "struct", "time", "traceback", "typing",
    "warnings", "zipfile", "encodings.cp437", "numpy", "numpy.random", "numpy.linalg", "numpy.fft", "numpy.testing",
)


def prepare(config):
    """Everything done before the first fork: imports, compilation, hiding folders, the user change.

    Returns the sealed copies the test processes run (``probes``, ``wire`` and this
    module, see ``probes.seal``), the zygote's own ``wire`` module, and the isolation
    report: the uid tests run as and, per folder asked to hide, whether it is hidden.
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
    # an installed mytorch. probes.load_submission checks where every mytorch module came from.
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path[:] = [p for p in sys.path if p and os.path.abspath(p) != here
                   and not os.path.exists(os.path.join(p, "mytorch"))]
    sys.meta_path[:] = [f for f in sys.meta_path if "editable" not in repr(f).lower()]
    compileall.compile_dir(config["src"], quiet=2, workers=1)
    hidden = {}
    uid = config.get("uid")
    if uid is not None:
        if config.get("hide"):
            hidden = hide_folders(config["hide"], keep=[config["root"]] + python_folders())
        os.setgroups([])
        os.setgid(uid)
        os.setuid(uid)
        kill_leftovers()
    try:  # a non-dumpable process cannot be traced or have its /proc/PID/fd opened by its children
        import ctypes

        ctypes.CDLL(None).prctl(4, 0, 0, 0, 0)  # PR_SET_DUMPABLE = 4
    except (OSError, AttributeError):
        pass
    sys.path.insert(0, config["src"])
    sys.dont_write_bytecode = True
    sealed = types.SimpleNamespace(probes=probes.seal(vars(probes)), wire=probes.seal(vars(wire)),
                                   zygote=probes.seal(globals()))
    return sealed, wire, {"uid": os.getuid(), "hidden": hidden}


def python_folders():
    """The folders of the Python installation and of NumPy, which the tests must keep seeing."""
    import numpy

    folders = (sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix, os.path.dirname(numpy.__file__))
    return sorted({os.path.realpath(folder) for folder in folders})


def kill_leftovers():
    """Kill every other process of this (dedicated) uid: whatever an earlier sandbox of it left running."""
    try:
        os.kill(-1, signal.SIGKILL)
    except OSError:  # ESRCH: there was none
        pass


def hide_folders(folders, keep):
    """As root, in a private mount namespace: cover each of ``folders`` with an empty read-only tmpfs,
    then mount back each folder of ``keep`` (the sandbox, Python) that it covered.

    Returns {folder: whether the tests cannot see into it}; every folder is False where mount
    namespaces are not allowed (e.g. an unprivileged container). ``/`` and the ``keep`` folders
    themselves are never covered.
    """
    import ctypes

    clone_newns, ms_rec, ms_private = 0x20000, 0x4000, 0x40000
    hidden = dict.fromkeys(folders, False)
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.unshare(clone_newns) != 0 or libc.mount(b"none", b"/", None, ms_rec | ms_private, None) != 0:
            return hidden
    except (OSError, AttributeError):
        return hidden
    for folder in sorted(hidden, key=lambda path: path.count(os.sep)):  # outer folders first
        if folder == os.sep or folder in keep:
            continue
        if not os.path.isdir(folder):  # under a folder covered already
            hidden[folder] = True
            continue
        hidden[folder] = cover(libc, folder, [k for k in keep if k.startswith(folder + os.sep) and os.path.isdir(k)])
    return hidden


def cover(libc, folder, keep):
    """Mount an empty tmpfs on ``folder``, bind the ``keep`` folders under it back, make it read-only.
    True on success; on failure nothing stays mounted."""
    ms_rdonly, ms_nosuid, ms_nodev, ms_noexec, ms_remount, ms_bind, ms_rec, mnt_detach = (
        1, 2, 4, 8, 32, 4096, 0x4000, 2)
    locked = ms_nosuid | ms_nodev | ms_noexec
    keep = [k for k in keep if not any(k.startswith(other + os.sep) for other in keep)]  # the outermost ones
    handles = [os.open(k, os.O_RDONLY | os.O_DIRECTORY) for k in keep]  # still reachable once covered
    try:
        if libc.mount(b"tmpfs", os.fsencode(folder), b"tmpfs", locked, b"size=1m,mode=0755") != 0:
            return False
        for path, handle in zip(keep, handles):
            os.makedirs(path, exist_ok=True)
            if libc.mount(os.fsencode(f"/proc/self/fd/{handle}"), os.fsencode(path), None, ms_bind | ms_rec, None) != 0:
                libc.umount2(os.fsencode(folder), mnt_detach)
                return False
        libc.mount(None, os.fsencode(folder), None, ms_remount | ms_rdonly | locked, None)
        return True
    finally:
        for handle in handles:
            os.close(handle)


def set_limits(config):
    """Memory (address space beyond what is mapped now), CPU time, processes, file size, core dumps."""
    with open("/proc/self/statm") as statm:
        mapped = int(statm.read().split()[0]) * resource.getpagesize()
    limits = [
        (resource.RLIMIT_AS, mapped + config["memory"]),
        (resource.RLIMIT_CPU, int(config["timeout"]) + 2),
        (resource.RLIMIT_NPROC, 0),
        (resource.RLIMIT_FSIZE, 16 * 1024 * 1024),
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


def supervise(pid, result_fd, output_fd, timeout):
    """Collect a test process's frames and output until it ends or its time is up."""
    deadline = time.monotonic() + timeout
    chunks = {result_fd: bytearray(), output_fd: bytearray()}
    limits = {result_fd: RESULT_LIMIT, output_fd: OUTPUT_LIMIT}
    open_fds = [result_fd, output_fd]
    ending, wait_status = None, None
    while ending is None:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            ending = "timeout"
            break
        if open_fds:
            ready, _, _ = select.select(open_fds, [], [], min(remaining, 0.2))
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
    sealed, wire, isolation = prepare(config)
    wire.write_frame(replies, wire.encode(dict(isolation, ready=True)))
    while True:
        message = wire.read_frame(requests)
        if message is None:
            break
        request, arrays = wire.decode(message)
        pid, result_fd, output_fd = fork_test(request, arrays, sealed, dict(config, **request["limits"]))
        wire.write_frame(replies, wire.encode({"pid": pid}))  # so the grader can kill it if the zygote dies
        header, frames = supervise(pid, result_fd, output_fd, request["limits"]["timeout"])
        header["output"] = header["output"].replace(os.path.join(config["src"], ""), "")  # paths as in the handout
        wire.write_frame(replies, wire.encode(header))
        wire.write_frame(replies, frames)
    if config.get("uid") is not None:  # the grader closed the sandbox: leave nothing running
        kill_leftovers()
    os._exit(0)  # nothing is left to flush; this skips the interpreter's slow teardown


if __name__ == "__main__":
    main()
