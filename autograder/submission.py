"""Reading a hand-in (a folder, a tar archive in any compression, or a zip) into memory, with bounds.

A submission is the ``.py`` files under ``mytorch/`` plus the homeworks' files under
``hw/`` (``hw/mlp.py``, ``hw/cnn.py``, ``hw/rnn.py``: ``packs.submission_hw_files``); nothing
else is kept. Archives are never extracted: the tar format is read here, block by
block, from a stream that decompresses gzip, bzip2 or xz itself and stops at
``MAX_UNPACKED_BYTES``; zips are read with ``zipfile`` after checking the size of
their directory. Every wanted file is read into memory and written later by the
grader under a path it built, so ``..``, absolute paths, links and devices are
refused by construction and reported in the notes. Reading is bounded in bytes
(uploaded, unpacked, per file, in total), in entries, in header and name sizes,
in folder depth and in time; whatever goes wrong ends as a SubmissionError whose
text tells the student, in words, what was wrong and what to hand in.
"""
import bz2
import lzma
import os
import posixpath
import stat
import struct
import time
import zipfile
import zlib

from autograder import packs

MAX_FILES = 500  # files read from mytorch/ and hw/
MAX_FILE_BYTES = 2 * 1024 * 1024
MAX_TOTAL_BYTES = 20 * 1024 * 1024  # all files read
MAX_UPLOAD_BYTES = 32 * 1024 * 1024  # an archive as uploaded
MAX_UNPACKED_BYTES = 64 * 1024 * 1024  # a tar archive once decompressed
MAX_ZIP_DIRECTORY = 2 * 1024 * 1024  # a zip's central directory, which zipfile reads whole
MAX_ENTRIES = 100_000  # archive entries (headers) or folder entries looked at
MAX_STREAMS = 1000  # concatenated compressed streams (pbzip2 makes one per 900 KB)
MAX_HEADER_BYTES = 1024 * 1024  # one pax or GNU long-name header
MAX_PAX_RECORDS = 1000  # records in one pax header (real ones hold a dozen)
MAX_NAME = 1024  # bytes of a file name that is still read (the file systems' limit is 4096)
MAX_DEPTH = 32  # folder levels read under mytorch/ and hw/
READ_SECONDS = 30.0
MAX_NOTES = 20  # notes listed one by one; the rest are counted

HAND_IN = ("Hand in the handin.tar that `sh create_tarball.sh` makes in your handout folder "
           "(or your mytorch/ folder and your homework's files under hw/ themselves).")
HW_FILES = packs.submission_hw_files()
ARCHIVE_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz", ".tbz2", ".tar.xz", ".txz", ".zip")
COMPRESSIONS = {b"\x1f\x8b": "gzip", b"BZh": "bzip2", b"\xfd7zXZ\x00": "xz"}
UNREADABLE = {b"\x28\xb5\x2f\xfd": "a zstd-compressed file", b"7z\xbc\xaf\x27\x1c": "a 7z archive",
              b"Rar!": "a rar archive", b"%PDF": "a PDF document"}
BLOCK = 512
TAR_KINDS = {b"0": "file", b"\0": "file", b"7": "file", b"5": "folder", b"1": "link", b"2": "link",
             b"3": "device", b"4": "device", b"6": "device", b"S": "sparse"}
KIND_WORDS = {"link": "a link", "device": "a device or special file", "sparse": "a sparse file",
              "unknown": "an entry of unknown type"}


class SubmissionError(ValueError):
    """The submission cannot be read: missing, not an archive, damaged, too large, no mytorch."""


def wanted(relpath):
    """True for the files a submission consists of: mytorch/**/*.py and the homeworks' files under hw/."""
    parts = relpath.split("/")
    if "__pycache__" in parts or any(part.startswith(".") for part in parts):
        return False
    return (parts[0] == "mytorch" and relpath.endswith(".py")) or relpath in HW_FILES


def unsafe_name(name):
    """Why a member name is unsafe, or None."""
    if name.startswith("/") or name.startswith("\\") or (len(name) > 1 and name[1] == ":"):
        return "absolute path"
    if ".." in name.replace("\\", "/").split("/"):
        return "'..' in the path"
    if "\0" in name:
        return "a NUL character in the name"
    encoded = name.encode("utf-8", "surrogatepass")  # an undecodable byte counts 3: never too few
    if len(encoded) > MAX_NAME or any(len(part) > 255 for part in encoded.split(b"/")):
        return "a name too long for a file system"
    return None


def shown(name):
    """A file name as notes and errors show it: at most 100 characters, quoted and escaped (odd bytes as
    \\udc.., control characters as \\x..) unless it is plainly printable."""
    name = name if len(name) <= 100 else name[:100] + "..."
    return name if name.isprintable() and name.strip() == name and name else repr(name)


def listing(names, most=5, quote=True):
    """'a', 'b' and 'c': at most ``most`` names, then how many more."""
    names = [shown(name) if quote else name for name in names]
    if len(names) > most:
        names = names[:most] + [f"{len(names) - most:,} more"]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def megabytes(count):
    return f"{count / 2 ** 20:,.0f} MB" if count >= 2 ** 20 else f"{count:,} bytes"


class Notes:
    """What was ignored while reading: the first MAX_NOTES listed, the rest counted."""

    def __init__(self):
        self.kept, self.more = [], 0

    def add(self, text):
        if len(self.kept) < MAX_NOTES:
            self.kept.append(text)
        else:
            self.more += 1

    def listed(self):
        return self.kept + ([f"ignored {self.more:,} more entries like these"] if self.more else [])


class Budget:
    """Counts files, bytes and entries read and the time taken for the hand-in called ``display``,
    raising SubmissionError past the limits."""

    def __init__(self, display):
        self.display = display
        self.files = 0
        self.bytes = 0
        self.entries = 0
        self.deadline = time.monotonic() + READ_SECONDS

    def take(self, name, size):
        """Account for one wanted file of ``size`` bytes, before it is read."""
        self.files += 1
        self.bytes += size
        if self.files > MAX_FILES:
            raise SubmissionError(f"{self.display} holds more than {MAX_FILES} files in mytorch/ and hw/")
        if size > MAX_FILE_BYTES:
            raise SubmissionError(f"{shown(name)} is larger than {megabytes(MAX_FILE_BYTES)}")
        if self.bytes > MAX_TOTAL_BYTES:
            raise SubmissionError(f"the files of {self.display} in mytorch/ and hw/ add up to more than "
                                  f"{megabytes(MAX_TOTAL_BYTES)}")

    def entry(self):
        """Account for one more archive or folder entry looked at."""
        self.entries += 1
        if self.entries > MAX_ENTRIES:
            raise SubmissionError(f"{self.display} holds more than {MAX_ENTRIES:,} entries")
        self.check_time()

    def check_time(self):
        if time.monotonic() > self.deadline:
            raise SubmissionError(f"reading {self.display} took more than {READ_SECONDS:g} s")


# --------------------------------------------------------------------- where the files sit
def relative_paths(name):
    """(root, relpath) for each way ``name`` is a submission file below a folder ``root`` ('' = the top)."""
    parts = name.split("/")
    return [("/".join(parts[:i]), "/".join(parts[i:])) for i, part in enumerate(parts)
            if part in ("mytorch", "hw") and wanted("/".join(parts[i:]))]


def choose_root(candidates, notes, display):
    """The submission files among ``candidates`` (archive name -> bytes): those of the shallowest folder
    holding mytorch/__init__.py (the top, or e.g. the one folder a zip puts everything in)."""
    def depth(root):
        return root.count("/") + bool(root)
    roots = sorted({root for name in candidates for root, relpath in relative_paths(name)
                    if relpath == "mytorch/__init__.py"}, key=lambda root: (depth(root), root))
    if not roots:
        raise SubmissionError(f"{display} holds no mytorch/__init__.py")
    tied = [root for root in roots if depth(root) == depth(roots[0])]
    if len(tied) > 1:
        raise SubmissionError(f"{display} holds {len(tied)} copies of mytorch/ (in {listing(tied)}): keep one")
    for other in roots[1:]:
        notes.add(f"ignored the other copy of mytorch/ in {shown(other)}")
    return {relpath: data for name, data in candidates.items()
            for root, relpath in relative_paths(name) if root == roots[0]}


def without_conflicts(files, notes):
    """``files`` without the paths that need a folder where another file is (mytorch/x.py/a.py next to
    mytorch/x.py), each such path noted."""
    kept = {}
    for relpath in sorted(files):
        parents = ["/".join(relpath.split("/")[:i]) for i in range(1, relpath.count("/") + 1)]
        clash = next((parent for parent in parents if parent in kept), None)
        if clash is None:
            kept[relpath] = files[relpath]
        else:
            notes.add(f"ignored {shown(relpath)}: {shown(clash)} is a file, not a folder")
    return kept


# --------------------------------------------------------------------- folders
def read_folder(root):
    """(files, notes) from a folder holding mytorch/; links and special files are skipped, never followed."""
    notes = Notes()
    files = without_conflicts(folder_files(root, Budget(shown(os.path.basename(root))), notes), notes)
    return files, notes.listed()


def folder_files(root, budget, notes):
    """Relative path -> bytes of the submission files in the folder ``root``."""
    files = {}
    for top in ("mytorch", "hw"):
        base = os.path.join(root, top)
        if os.path.islink(base):
            notes.add(f"ignored {top}: a symbolic link")
            continue
        if not os.path.isdir(base):
            continue
        # fwalk never follows links and lists each folder through an open descriptor of it
        for folder, dirs, names, fd in os.fwalk(base, follow_symlinks=False):
            relfolder = os.path.relpath(folder, root).replace(os.sep, "/")
            if relfolder.count("/") >= MAX_DEPTH:
                notes.add(f"ignored {shown(relfolder)}: more than {MAX_DEPTH} folders deep")
                dirs.clear()
                continue
            for name in list(dirs):
                budget.entry()
                if stat.S_ISLNK(os.stat(name, dir_fd=fd, follow_symlinks=False).st_mode):
                    notes.add(f"ignored {shown(relfolder + '/' + name)}: a symbolic link")
                    dirs.remove(name)
            for name in names:
                budget.entry()
                relpath = f"{relfolder}/{name}"
                if not wanted(relpath):
                    continue
                problem = unsafe_name(relpath)
                data = None if problem else read_regular_file(name, fd, relpath, budget)
                if data is None:
                    notes.add(f"ignored {shown(relpath)}: {problem or 'not a regular file'}")
                else:
                    files[relpath] = data
    return files


def read_regular_file(name, dir_fd, relpath, budget):
    """The bytes of the regular file ``name`` in the folder ``dir_fd``, or None if it is not one
    (a link is never followed, a FIFO or device never waited on)."""
    before = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    if not stat.S_ISREG(before.st_mode):
        return None
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=dir_fd)
    except OSError:
        return None
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or (info.st_dev, info.st_ino) != (before.st_dev, before.st_ino):
            return None
        budget.take(relpath, info.st_size)
        return handle.read(MAX_FILE_BYTES + 1)


# --------------------------------------------------------------------- tar archives
class Unpacked:
    """The bytes of a tar archive read from ``handle``, decompressed (``compression``: None, 'gzip',
    'bzip2' or 'xz'; several concatenated streams too), at most MAX_UNPACKED_BYTES of them, in time."""

    def __init__(self, handle, compression, display, budget):
        self.handle, self.compression, self.display, self.budget = handle, compression, display, budget
        self.decompressor = self.new_decompressor()
        self.pending = bytearray()  # decompressed, not yet read
        self.input = b""  # compressed, not yet given to the decompressor
        self.position = 0  # bytes read so far
        self.streams = 1
        self.ended = False

    def new_decompressor(self):
        if self.compression == "gzip":
            return zlib.decompressobj(wbits=31)
        if self.compression == "bzip2":
            return bz2.BZ2Decompressor()
        if self.compression == "xz":
            return lzma.LZMADecompressor(memlimit=128 * 2 ** 20)
        return None

    def fill(self, count):
        """Add up to ``count`` more bytes to ``pending``; sets ``ended`` at the end of the data."""
        self.budget.check_time()
        if self.decompressor is None:
            data = self.handle.read(64 * 1024)
            self.ended = not data
        else:
            data = self.decompress(count)
        self.pending += data
        if self.position + len(self.pending) > MAX_UNPACKED_BYTES:
            raise SubmissionError(f"{self.display} holds more than {megabytes(MAX_UNPACKED_BYTES)} once unpacked")

    def decompress(self, count):
        decompressor = self.decompressor
        if decompressor.eof:  # a stream ended: zeros are padding, anything else starts the next stream
            self.input = (decompressor.unused_data + self.input).lstrip(b"\0")
            while not self.input:
                self.input = self.handle.read(64 * 1024)
                if not self.input:
                    self.ended = True
                    return b""
                self.input = self.input.lstrip(b"\0")
            self.streams += 1
            if self.streams > MAX_STREAMS:
                raise SubmissionError(f"{self.display} is made of more than {MAX_STREAMS:,} {self.compression} streams")
            self.decompressor = decompressor = self.new_decompressor()
        if not self.input and (self.compression == "gzip" or decompressor.needs_input):
            self.input = self.handle.read(64 * 1024)
            if not self.input:
                raise SubmissionError(f"{self.display} is damaged: its {self.compression} data ends too early "
                                      "(the file was cut short)")
        try:
            if self.compression == "gzip":  # zlib keeps what it did not use in unconsumed_tail
                data = decompressor.decompress(self.input, count)
                self.input = b"" if decompressor.eof else decompressor.unconsumed_tail  # at the end: unused_data
            else:  # bz2 and lzma keep it themselves, and say when they need more
                feed = self.input if decompressor.needs_input else b""
                data = decompressor.decompress(feed, count)
                self.input = self.input[len(feed):]
        except (zlib.error, OSError, EOFError, lzma.LZMAError) as error:
            what = "needs more memory to unpack than allowed" if "memory" in str(error).lower() else "is corrupt"
            raise SubmissionError(f"{self.display} is damaged: its {self.compression} data {what}") from None
        return data

    def read(self, count):
        """Up to ``count`` bytes; fewer only at the end of the data."""
        while len(self.pending) < count and not self.ended:
            self.fill(max(count - len(self.pending), 64 * 1024))
        data = bytes(self.pending[:count])
        del self.pending[:count]
        self.position += len(data)
        return data

    def read_exactly(self, count, what):
        data = self.read(count)
        if len(data) < count:
            raise SubmissionError(f"{self.display} is damaged: it ends in the middle of {what} "
                                  "(the file was cut short)")
        return data

    def skip(self, count, what):
        while count > 0:
            count -= len(self.read_exactly(min(count, 1024 * 1024), what))

    def drain(self):
        """Read compressed data to its end, so that its checksums are verified (bounded like any read)."""
        if self.decompressor is not None:
            while self.read(1024 * 1024):
                pass


def tar_number(field, display):
    """A tar header's number: octal text, or GNU's base-256 binary."""
    if field[:1] == b"\x80":
        return int.from_bytes(field[1:], "big")
    text = field.split(b"\0")[0].strip()
    if field[:1] == b"\xff" or not all(48 <= c <= 55 for c in text):
        raise SubmissionError(f"{display} is damaged: a tar header holds a number that is not one")
    return int(text, 8) if text else 0


def checksum_ok(header):
    """True if the header block's checksum field matches its bytes (as unsigned or signed sums)."""
    text = header[148:156].split(b"\0")[0].strip()
    if not text or not all(48 <= c <= 55 for c in text):
        return False
    rest = header[:148] + b" " * 8 + header[156:]
    return int(text, 8) in (sum(rest), sum(struct.unpack("512b", rest)))


def pax_records(data, display):
    """key -> value (bytes) of a pax extended header: records 'LENGTH KEY=VALUE\\n'."""
    records, at = {}, 0
    while at < len(data) and data[at:].strip(b"\0"):
        space = data.find(b" ", at)
        length = data[at:space]
        end = at + int(length) if space > at and length.isdigit() and len(length) < 10 else -1
        key, equals, value = data[space + 1:end - 1].partition(b"=")
        if end <= space or end > len(data) or data[end - 1:end] != b"\n" or not equals:
            raise SubmissionError(f"{display} is damaged: a pax header of the tar archive is malformed")
        records[key.decode("utf-8", "surrogateescape")] = value
        if len(records) > MAX_PAX_RECORDS:
            raise SubmissionError(f"{display} holds a pax header of more than {MAX_PAX_RECORDS:,} records")
        at = end
    return records


def tar_entries(stream, display, budget):
    """(name, kind, size) of each entry of the tar data in ``stream``, extension headers applied.

    The caller may read the entry's data (``stream.read``) before asking for the next
    one; the rest is skipped. The end is an all-zero block or the end of the data.
    """
    extended = {}
    while True:
        budget.entry()
        header = stream.read(BLOCK)
        if not header or header == bytes(BLOCK):
            return
        if len(header) < BLOCK or not checksum_ok(header):
            first = stream.position == len(header)
            stream.drain()  # a corrupt compressed stream decompresses to garbage first: name the real damage
            if first:
                raise SubmissionError(f"{display} is not a readable tar archive or zip archive")
            raise SubmissionError(f"{display} is damaged: a tar header is cut short or corrupt")
        flag, size = header[156:157], tar_number(header[124:136], display)
        if flag in (b"L", b"K", b"x", b"g"):  # GNU long name or link, pax header: it describes the next entry
            if size > MAX_HEADER_BYTES:
                raise SubmissionError(f"{display} holds a tar extension header of {size:,} bytes "
                                      f"(at most {megabytes(MAX_HEADER_BYTES)} are read)")
            data = stream.read_exactly(size, "a tar header")
            stream.skip(-size % BLOCK, "a tar header")
            if flag == b"L":
                extended["path"] = data.split(b"\0")[0]
            elif flag == b"x":
                extended.update(pax_records(data, display))
            continue
        raw_name = header[:100].split(b"\0")[0]
        if header[257:263] == b"ustar\0" and header[345:500].strip(b"\0"):
            raw_name = header[345:500].split(b"\0")[0] + b"/" + raw_name
        name = extended.get("path", raw_name).decode("utf-8", "surrogateescape")
        if "size" in extended:
            size = int(extended["size"]) if extended["size"].isdigit() and len(extended["size"]) < 20 else -1
        kind = TAR_KINDS.get(flag, "unknown")
        if kind == "file" and name.endswith("/"):
            kind = "folder"
        if any(key.startswith("GNU.sparse") for key in extended):
            kind = "sparse"
        extended = {}
        if size < 0:
            raise SubmissionError(f"{display} is damaged: its entry {shown(name)} has a size that is not a number")
        if stream.position + size > MAX_UNPACKED_BYTES:
            raise SubmissionError(f"{display} holds more than {megabytes(MAX_UNPACKED_BYTES)} once unpacked: its entry "
                                  f"{shown(name)} alone claims to hold {size:,} bytes")
        start = stream.position
        yield name, kind, (size if kind in ("file", "sparse", "unknown") else 0)
        stream.skip(start + size + (-size % BLOCK) - stream.position, f"the entry {shown(name)}")


def read_tar(stream, display, budget, notes):
    """Archive name -> bytes of the entries that may be submission files."""
    candidates = {}
    for name, kind, size in tar_entries(stream, display, budget):
        problem = unsafe_name(name) or (None if kind in ("file", "folder") else KIND_WORDS[kind])
        if problem:
            notes.add(f"ignored unsafe entry {shown(name)}: {problem}")
            continue
        name = posixpath.normpath(name)
        if kind == "folder" or not relative_paths(name):
            continue
        budget.take(name, size)
        if name in candidates:
            notes.add(f"{shown(name)} is in the archive twice: the last copy was read")
        candidates[name] = stream.read_exactly(size, f"the entry {shown(name)}")
    stream.drain()
    return candidates


# --------------------------------------------------------------------- zip archives
ZIP_ERRORS = (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, EOFError, OSError, ValueError,
              zlib.error)


def check_zip_directory(handle, size, display):
    """Refuse a zip whose central directory (read whole by zipfile) is larger than MAX_ZIP_DIRECTORY.

    The end record is found the way zipfile finds it: at the very end, else the last
    signature in the final 64 KB (after a comment).
    """
    tail_size = min(size, 22 + 65535)
    handle.seek(size - tail_size)
    tail = handle.read(tail_size)
    at = len(tail) - 22 if tail[-22:-18] == b"PK\x05\x06" and tail[-2:] == b"\0\0" else tail.rfind(b"PK\x05\x06")
    if at < 0 or len(tail) - at < 22:
        raise SubmissionError(f"{display} is damaged: it is cut short or is not a zip archive")
    if at >= 20 and tail[at - 20:at - 16] == b"PK\x06\x07":
        raise SubmissionError(f"{display} is a zip64 archive, made for more files or bytes than a hand-in holds")
    directory = struct.unpack("<L", tail[at + 12:at + 16])[0]
    if directory > MAX_ZIP_DIRECTORY:
        raise SubmissionError(f"{display} lists too many files (its directory takes {megabytes(directory)})")
    handle.seek(0)


def read_zip(handle, size, display, budget, notes):
    """Archive name -> bytes of the zip's entries that may be submission files."""
    check_zip_directory(handle, size, display)
    candidates = {}
    try:
        archive = zipfile.ZipFile(handle)
    except ZIP_ERRORS:
        raise SubmissionError(f"{display} is damaged: its zip directory cannot be read") from None
    with archive:
        for info in archive.infolist():
            budget.entry()
            mode = stat.S_IFMT(info.external_attr >> 16)  # the Unix file type, 0 when the zip does not say
            kind = "link" if mode == stat.S_IFLNK else None if mode in (0, stat.S_IFREG, stat.S_IFDIR) else "device"
            problem = unsafe_name(info.filename) or (KIND_WORDS[kind] if kind else None)
            if problem:
                notes.add(f"ignored unsafe entry {shown(info.filename)}: {problem}")
                continue
            name = posixpath.normpath(info.filename.replace("\\", "/"))  # PowerShell 5.1 writes backslashes
            if info.is_dir() or not relative_paths(name):
                continue
            if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED) or info.flag_bits & 1:
                raise SubmissionError(f"{display} holds {shown(name)} encrypted or compressed in a way the grader "
                                      "does not read (zip it with the usual settings)")
            budget.take(name, info.file_size)
            try:
                with archive.open(info) as member:
                    candidates[name] = member.read(MAX_FILE_BYTES + 1)
            except ZIP_ERRORS:
                raise SubmissionError(f"{display} is damaged: {shown(name)} in it cannot be unpacked") from None
    return candidates


# --------------------------------------------------------------------- archives and uploads
def open_regular_file(path, display):
    """A binary file object for the regular file at ``path``, opened without following a link at
    its end and without waiting on a FIFO; SubmissionError for anything else."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as error:
        raise SubmissionError(f"{display} cannot be opened ({error.strerror})") from None
    handle = os.fdopen(fd, "rb")
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        handle.close()
        raise SubmissionError(f"{display} is not a regular file")
    return handle


def archive_files(path, budget, notes):
    """The submission files in the tar or zip archive at ``path``, whatever its compression."""
    display = shown(os.path.basename(path))
    with open_regular_file(path, display) as handle:
        size = os.fstat(handle.fileno()).st_size
        if size > MAX_UPLOAD_BYTES:
            raise SubmissionError(f"{display} is {megabytes(size)}, more than a hand-in may be "
                                  f"({megabytes(MAX_UPLOAD_BYTES)}; handin.tar is usually under 1 MB)")
        head = handle.read(BLOCK)
        handle.seek(0)
        if not head:
            raise SubmissionError(f"{display} is empty")
        if head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
            candidates = read_zip(handle, size, display, budget, notes)
        else:
            for magic, kind in UNREADABLE.items():
                if head.startswith(magic):
                    raise SubmissionError(f"{display} is {kind}, not a tar or zip archive")
            compression = next((kind for magic, kind in COMPRESSIONS.items() if head.startswith(magic)), None)
            candidates = read_tar(Unpacked(handle, compression, display, budget), display, budget, notes)
    return choose_root(candidates, notes, display)


def folder_entries(path, budget):
    """(name, kind) of the entries of the folder ``path``: kind 'file', 'folder', 'link' or 'other'."""
    entries = []
    with os.scandir(path) as found:
        for entry in found:
            budget.entry()
            kind = ("link" if entry.is_symlink() else "folder" if entry.is_dir(follow_symlinks=False)
                    else "file" if entry.is_file(follow_symlinks=False) else "other")
            entries.append((entry.name, kind))
    return sorted(entries)


def is_folder(path):
    """True if ``path`` is a folder itself, not a link to one."""
    try:
        return stat.S_ISDIR(os.lstat(path).st_mode)
    except OSError:
        return False


def upload_files(path, budget, notes):
    """The submission files of an upload folder: mytorch/ in it, else its archive (the newest handin
    one if there are several), else the one folder in it that holds mytorch/ (an unpacked zip)."""
    entries = folder_entries(path, budget)
    archives = [name for name, kind in entries if kind == "file" and name.lower().endswith(ARCHIVE_SUFFIXES)]
    if is_folder(os.path.join(path, "mytorch")):
        if archives:
            notes.add(f"graded the mytorch/ folder; ignored {listing(archives)} next to it")
        return folder_files(path, budget, notes)
    if len(archives) > 1:
        handins = [name for name in archives if name.lower().startswith("handin")]
        if not handins:
            raise SubmissionError(f"the upload holds {len(archives)} archives ({listing(archives)}) and none "
                                  "is named handin.tar")
        newest = max(handins, key=lambda name: (os.lstat(os.path.join(path, name)).st_mtime, name == "handin.tar"))
        notes.add(f"graded {shown(newest)}, the newest hand-in; ignored {listing(n for n in archives if n != newest)}")
        archives = [newest]
    if archives:
        return archive_files(os.path.join(path, archives[0]), budget, notes)
    folders = [name for name, kind in entries if kind == "folder" and not name.startswith(".") and name != "__MACOSX"]
    if len(folders) == 1 and is_folder(os.path.join(path, folders[0], "mytorch")):
        return folder_files(os.path.join(path, folders[0]), budget, notes)
    words = {"folder": "/", "link": " (a link, never followed)", "other": " (not a regular file)", "file": ""}
    found = [shown(name) + words[kind] for name, kind in entries if not name.startswith(".")]
    raise SubmissionError("the upload holds no mytorch/ folder and no handin.tar"
                          + (f" (it holds {listing(found, quote=False)})" if found else " (it is empty)"))


def read_submission(path):
    """(files, notes) of the hand-in at ``path``: a tar or zip archive, or a folder holding mytorch/, an
    archive, or one folder holding mytorch/. SubmissionError, saying what to hand in, if it is none of
    these or cannot be read within the limits."""
    display = shown(os.path.basename(os.path.normpath(path)))
    budget, notes = Budget(display), Notes()
    try:
        try:
            mode = os.lstat(path).st_mode
        except OSError as error:
            raise SubmissionError(f"{display} cannot be read ({error.strerror})") from None
        if stat.S_ISLNK(mode):
            raise SubmissionError(f"{display} is a symbolic link, which is never followed")
        if stat.S_ISDIR(mode):
            files = upload_files(path, budget, notes)
        elif stat.S_ISREG(mode):
            files = archive_files(path, budget, notes)
        else:
            raise SubmissionError(f"{display} is not a regular file or folder")
        if "mytorch/__init__.py" not in files:
            raise SubmissionError(f"{display} holds no mytorch/__init__.py")
    except SubmissionError as error:
        raise SubmissionError(f"{error}. {HAND_IN}") from None
    files = without_conflicts(files, notes)
    return files, notes.listed()


def read_tarball(path):
    """(files, notes) from the tar or zip archive at ``path`` (any compression), SubmissionError if it
    cannot be read."""
    notes = Notes()
    files = without_conflicts(archive_files(path, Budget(shown(os.path.basename(path))), notes), notes)
    return files, notes.listed()
