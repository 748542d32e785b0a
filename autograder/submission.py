"""Reading a submission (a folder or a tarball) into memory, safely.

A submission is the ``.py`` files under ``mytorch/`` plus ``hw/mlp.py``. Nothing
else is read. Tarball members are never extracted by ``tarfile`` itself: each
regular file is read into memory and written later by the grader under a path it
built, so ``..``, absolute paths, links and devices are refused by construction
and reported in the notes.
"""
import os
import posixpath
import stat
import tarfile

MAX_FILES = 500
MAX_FILE_BYTES = 2 * 1024 * 1024
MAX_TOTAL_BYTES = 20 * 1024 * 1024


class SubmissionError(ValueError):
    """The submission cannot be read (missing, not a tarball, no mytorch, too large)."""


def wanted(relpath):
    """True for the files a submission consists of: mytorch/**/*.py and hw/mlp.py."""
    parts = relpath.split("/")
    if "__pycache__" in parts or any(part.startswith(".") for part in parts):
        return False
    return (parts[0] == "mytorch" and relpath.endswith(".py")) or relpath == "hw/mlp.py"


def unsafe_name(name):
    """Why a member name is unsafe, or None."""
    if name.startswith("/") or name.startswith("\\") or (len(name) > 1 and name[1] == ":"):
        return "absolute path"
    if ".." in name.replace("\\", "/").split("/"):
        return "'..' in the path"
    return None


class Budget:
    """Counts files and bytes read, raising SubmissionError past the limits."""

    def __init__(self):
        self.files = 0
        self.bytes = 0

    def take(self, name, size):
        self.files += 1
        self.bytes += size
        if self.files > MAX_FILES:
            raise SubmissionError(f"more than {MAX_FILES} files in mytorch/ and hw/")
        if size > MAX_FILE_BYTES:
            raise SubmissionError(f"{name} is larger than {MAX_FILE_BYTES // 1024} KB")
        if self.bytes > MAX_TOTAL_BYTES:
            raise SubmissionError(f"the submission is larger than {MAX_TOTAL_BYTES // (1024 * 1024)} MB")


def read_folder(root):
    """(files, notes) from a folder; symbolic links and special files are skipped, never followed."""
    files, notes, budget = {}, [], Budget()
    for top in ("mytorch", "hw"):
        base = os.path.join(root, top)
        if os.path.islink(base):
            notes.append(f"ignored {top}: a symbolic link")
            continue
        for folder, dirs, names in os.walk(base):
            for name in list(dirs):
                if os.path.islink(os.path.join(folder, name)):
                    notes.append(f"ignored {os.path.relpath(os.path.join(folder, name), root)}: a symbolic link")
                    dirs.remove(name)
            for name in names:
                path = os.path.join(folder, name)
                relpath = os.path.relpath(path, root).replace(os.sep, "/")
                if not wanted(relpath):
                    continue
                info = os.lstat(path)
                if not stat.S_ISREG(info.st_mode):
                    notes.append(f"ignored {relpath}: not a regular file")
                    continue
                budget.take(relpath, info.st_size)
                with open(path, "rb") as handle:
                    files[relpath] = handle.read(MAX_FILE_BYTES + 1)
    return files, notes


def read_tarball(path):
    """(files, notes) from a tar archive (any compression tarfile reads), without extracting it."""
    files, notes, budget = {}, [], Budget()
    try:
        archive = tarfile.open(path, "r:*")
    except (tarfile.TarError, OSError) as error:
        raise SubmissionError(f"{os.path.basename(path)} is not a readable tar archive ({error})") from None
    with archive:
        try:
            members = archive.getmembers()
        except (tarfile.TarError, OSError, EOFError) as error:
            raise SubmissionError(f"{os.path.basename(path)} is damaged ({error})") from None
        prefix = tar_prefix([m.name for m in members if m.isfile()])
        for member in members:
            problem = unsafe_name(member.name)
            if problem is None and not (member.isfile() or member.isdir()):
                kind = "a link" if member.issym() or member.islnk() else "a device or special file"
                problem = kind
            name = posixpath.normpath(member.name) if problem is None else member.name
            if problem is not None:
                notes.append(f"ignored unsafe entry {member.name!r}: {problem}")
                continue
            if member.isdir() or not name.startswith(prefix):
                continue
            relpath = name[len(prefix):]
            if not wanted(relpath):
                continue
            budget.take(relpath, member.size)
            handle = archive.extractfile(member)
            files[relpath] = handle.read(MAX_FILE_BYTES + 1)
    return files, notes


def tar_prefix(names):
    """The folder inside the archive that holds mytorch/ ('' when it is at the top)."""
    candidates = [posixpath.normpath(n) for n in names if posixpath.normpath(n).endswith("mytorch/__init__.py")
                  or posixpath.normpath(n) == "mytorch/__init__.py"]
    if not candidates:
        return ""
    best = min(candidates, key=len)
    return best[: -len("mytorch/__init__.py")]


def read_submission(path):
    """(files, notes) of the submission at ``path``: a tarball, a folder, or a folder holding one tarball."""
    if os.path.isfile(path):
        files, notes = read_tarball(path)
    elif os.path.isdir(path):
        if os.path.isdir(os.path.join(path, "mytorch")):
            files, notes = read_folder(path)
        else:
            tars = sorted(n for n in os.listdir(path) if ".tar" in n or n.endswith(".tgz"))
            if len(tars) != 1:
                raise SubmissionError(f"{path} holds neither mytorch/ nor exactly one tarball (found {tars or 'none'})")
            files, notes = read_tarball(os.path.join(path, tars[0]))
    else:
        raise SubmissionError(f"{path} does not exist")
    if "mytorch/__init__.py" not in files:
        raise SubmissionError("the submission has no mytorch/__init__.py (was handin.tar made by create_tarball.sh?)")
    return files, notes
