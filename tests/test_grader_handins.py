"""The scoring process under damaged, hostile and unusual hand-ins: bounded, and every submission gets its report.

Each hand-in is built here: every upload shape students make, compression bombs and damaged
streams of every format the grader reads, oversized and impossible tar headers, links,
FIFOs and devices, odd and non-UTF-8 names, member floods, conflicting members; then the
reports: an ungradable hand-in in every output form, a batch in which grading raises, the
per-submission wall-clock limit, and the fixed upper size of every output.
"""
import bz2
import csv
import gzip
import io
import json
import lzma
import os
import subprocess
import sys
import tarfile
import threading
import time
import zipfile
import zlib

import numpy as np
import pytest

from autograder import grading, report, runner, submission, wire

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RUNNER = os.path.join(ROOT, "autograder", "runner.py")
REFERENCE, _ = submission.read_submission(ROOT)
PUBLIC = grading.select_tests()
LOSS = [t for t in PUBLIC if t.section == "loss"]  # two tests, 8 points: a quick end-to-end check
FAST = grading.Options(timeout=2.0)
COMPRESS = {"gzip": gzip.compress, "bzip2": bz2.compress, "xz": lzma.compress}
INTERNALS = ("tarfile", "zipfile", "ReadError", "BadZipFile", "Error -3", "zlib", "Traceback", "Errno", "LZMAError")


# --------------------------------------------------------------------- building hand-ins
def member(name, kind=tarfile.REGTYPE, size=0, link="", pax=None):
    """A TarInfo; ``pax``: the records of a pax header written before it (in PAX_FORMAT)."""
    info = tarfile.TarInfo(name)
    info.type, info.size, info.linkname, info.pax_headers = kind, size, link, pax or {}
    return info


def tar_bytes(files=REFERENCE, prefix="", fmt=tarfile.PAX_FORMAT, extra=()):
    """A tar archive of ``files`` (relpath -> bytes) under ``prefix``, then the ``extra`` (TarInfo, data)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=fmt, encoding="utf-8", errors="surrogateescape") as archive:
        for relpath, data in files.items():
            archive.addfile(member(prefix + relpath, size=len(data)), io.BytesIO(data))
        for info, data in extra:
            archive.addfile(info, io.BytesIO(data) if data else None)
    return buffer.getvalue()


def zip_bytes(files=REFERENCE, prefix="", extra=()):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for relpath, data in files.items():
            archive.writestr(prefix + relpath, data)
        for name, data in extra:
            archive.writestr(name, data)
    return buffer.getvalue()


def write_tree(folder, files=REFERENCE):
    for relpath, data in files.items():
        path = os.path.join(folder, *relpath.split("/"))
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as handle:
            handle.write(data)
    return str(folder)


def put(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as handle:
        handle.write(data)
    return str(path)


def in_two_streams(compress, data):
    """``data`` compressed as two concatenated streams (as pigz, pbzip2 or `cat a.gz b.gz` make)."""
    return compress(data[:len(data) // 2]) + compress(data[len(data) // 2:])


def refused(path):
    """The SubmissionError text for the hand-in at ``path``: it ends with what to hand in, and shows no
    tarfile or zipfile internals."""
    with pytest.raises(submission.SubmissionError) as caught:
        submission.read_submission(str(path))
    message = str(caught.value)
    assert message.endswith(submission.HAND_IN), message
    assert not any(word in message for word in INTERNALS), message
    return message


def returns_within(seconds, function, *args):
    """``function(*args)``'s result or exception, failing the test if it blocks longer than ``seconds``."""
    outcome = {}

    def call():
        try:
            outcome["value"] = function(*args)
        except BaseException as error:  # handed back to the test below
            outcome["error"] = error
    thread = threading.Thread(target=call, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"{function.__name__} blocked for more than {seconds} s"
    return outcome


# --------------------------------------------------------------------- upload shapes that are accepted
def older(path, seconds=3600):
    stamp = time.time() - seconds
    os.utime(path, (stamp, stamp))
    return path


def shape_plain_tar(tmp):
    return put(tmp / "handin.tar", tar_bytes())


def shape_tgz_with_dot_slash(tmp):
    return put(tmp / "handin.tar.gz", gzip.compress(tar_bytes(prefix="./")))


def shape_gnu_tar_as_bz2_in_two_streams(tmp):
    return put(tmp / "handin.tar.bz2", in_two_streams(bz2.compress, tar_bytes(fmt=tarfile.GNU_FORMAT, extra=[
        (member("docs/" + "long-name-" * 30 + ".txt", size=3), b"abc")])))


def shape_pax_tar_as_xz_named_tar(tmp):
    return put(tmp / "handin.tar", lzma.compress(tar_bytes(extra=[(member("docs/" + "é" * 150, size=1), b"x")])))


def shape_gzip_in_two_members(tmp):
    return put(tmp / "handin.tgz", in_two_streams(gzip.compress, tar_bytes()))


def shape_tar_with_one_top_folder(tmp):
    return put(tmp / "handin.tar", tar_bytes(prefix="hw1-handout/"))


def shape_zip_with_one_top_folder(tmp):
    apple = [("__MACOSX/handout/mytorch/._utils.py", b"\0")]
    return put(tmp / "handout.zip", zip_bytes(prefix="handout/", extra=apple))


def shape_zip_with_backslashes(tmp):  # as Windows PowerShell 5.1's Compress-Archive makes them
    windows = {relpath.replace("/", "\\"): data for relpath, data in REFERENCE.items()}
    return put(tmp / "handin.zip", zip_bytes(windows, prefix="hw1\\"))


def shape_loose_files(tmp):
    return write_tree(tmp / "upload")


def shape_folder_holding_handin_tar(tmp):
    put(tmp / "upload" / "handin.tar", tar_bytes())
    return str(tmp / "upload")


def shape_folder_holding_an_unpacked_zip(tmp):
    write_tree(tmp / "upload" / "hw1")
    put(tmp / "upload" / "__MACOSX" / "hw1" / "._hw1", b"\0")
    return str(tmp / "upload")


def shape_folder_holding_one_tarball_of_another_name(tmp):
    put(tmp / "upload" / "my work.tgz", gzip.compress(tar_bytes()))
    put(tmp / "upload" / "README.txt", b"hello")
    return str(tmp / "upload")


def shape_folder_holding_handin_tar_and_older_tarballs(tmp):
    wrong = dict(REFERENCE, **{"mytorch/utils.py": b"raise ImportError('an old version')\n"})
    older(put(tmp / "upload" / "handin (1).tar", tar_bytes(wrong)))
    older(put(tmp / "upload" / "old.tgz", gzip.compress(tar_bytes(wrong))))
    put(tmp / "upload" / "handin.tar", tar_bytes())
    return str(tmp / "upload")


SHAPES = [shape_plain_tar, shape_tgz_with_dot_slash, shape_gnu_tar_as_bz2_in_two_streams, shape_pax_tar_as_xz_named_tar,
          shape_gzip_in_two_members, shape_tar_with_one_top_folder, shape_zip_with_one_top_folder,
          shape_zip_with_backslashes, shape_loose_files,
          shape_folder_holding_handin_tar, shape_folder_holding_an_unpacked_zip,
          shape_folder_holding_one_tarball_of_another_name, shape_folder_holding_handin_tar_and_older_tarballs]


@pytest.mark.parametrize("shape", SHAPES, ids=lambda shape: shape.__name__[len("shape_"):])
def test_every_upload_shape_gives_the_submission_files(tmp_path, shape):
    files, notes = submission.read_submission(shape(tmp_path))
    assert files == REFERENCE
    assert all(note.startswith(("ignored", "graded")) for note in notes)


def test_of_several_tarballs_the_newest_handin_is_graded_and_the_others_named(tmp_path):
    files, notes = submission.read_submission(shape_folder_holding_handin_tar_and_older_tarballs(tmp_path))
    assert files == REFERENCE
    assert notes == ["graded handin.tar, the newest hand-in; ignored handin (1).tar and old.tgz"]
    os.utime(tmp_path / "upload" / "handin (1).tar")  # now the renamed copy is the newest
    older(tmp_path / "upload" / "handin.tar", 60)
    files, notes = submission.read_submission(str(tmp_path / "upload"))
    assert files["mytorch/utils.py"].startswith(b"raise ImportError")
    assert notes == ["graded handin (1).tar, the newest hand-in; ignored handin.tar and old.tgz"]


@pytest.mark.parametrize("shape", [shape_zip_with_one_top_folder, shape_folder_holding_an_unpacked_zip],
                         ids=["zip with one top folder", "folder holding an unpacked zip"])
def test_upload_shapes_grade_end_to_end(tmp_path, shape):
    results = tmp_path / "results.json"
    run = subprocess.run([sys.executable, RUNNER, "loss", "--submission", shape(tmp_path), "--format", "gradescope",
                          "--output", str(results), "--timeout", "2"], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert json.loads(results.read_text())["score"] == 8


# --------------------------------------------------------------------- uploads that are refused, in one sentence
def garbage_named_handin_tar(tmp):
    return put(tmp / "handin.tar", b"<html>Upload failed</html>" * 40)


def empty_file(tmp):
    return put(tmp / "handin.tar", b"")


def a_7z_archive(tmp):
    return put(tmp / "handin.7z", b"7z\xbc\xaf\x27\x1c" + bytes(100))


def empty_folder(tmp):
    os.mkdir(tmp / "upload")
    return str(tmp / "upload")


def folder_of_other_files(tmp):
    put(tmp / "upload" / "notes.txt", b"hi")
    put(tmp / "upload" / "plot.png", b"\x89PNG")
    return str(tmp / "upload")


def folder_of_archives_none_named_handin(tmp):
    put(tmp / "upload" / "a.tar", tar_bytes())
    put(tmp / "upload" / "b.zip", zip_bytes())
    return str(tmp / "upload")


def zip_without_mytorch(tmp):
    return put(tmp / "handin.zip", zip_bytes({"hw/mlp.py": b"pass\n"}))


def two_copies_side_by_side(tmp):
    both = {f"{copy}/{relpath}": data for copy in ("a", "b") for relpath, data in REFERENCE.items()}
    return put(tmp / "handin.tar", tar_bytes(both))


def more_than_500_files(tmp):
    files = dict(REFERENCE, **{f"mytorch/extra/m{i}.py": b"" for i in range(500)})
    return put(tmp / "handin.tar", tar_bytes(files))


def more_than_20_mb_of_files(tmp):
    files = dict(REFERENCE, **{f"mytorch/data{i}.py": bytes(2 * 10 ** 6) for i in range(11)})
    return put(tmp / "handin.tar", tar_bytes(files))


def a_missing_path(tmp):
    return str(tmp / "nothing-here.tar")


REFUSALS = [
    (garbage_named_handin_tar, "handin.tar is not a readable tar archive or zip archive"),
    (empty_file, "handin.tar is empty"),
    (a_7z_archive, "handin.7z is a 7z archive, not a tar or zip archive"),
    (empty_folder, "the upload holds no mytorch/ folder and no handin.tar (it is empty)"),
    (folder_of_other_files, "the upload holds no mytorch/ folder and no handin.tar (it holds notes.txt and plot.png)"),
    (folder_of_archives_none_named_handin,
     "the upload holds 2 archives (a.tar and b.zip) and none is named handin.tar"),
    (zip_without_mytorch, "handin.zip holds no mytorch/__init__.py"),
    (two_copies_side_by_side, "handin.tar holds 2 copies of mytorch/ (in a and b): keep one"),
    (more_than_500_files, "handin.tar holds more than 500 files in mytorch/ and hw/"),
    (more_than_20_mb_of_files, "the files of handin.tar in mytorch/ and hw/ add up to more than 20 MB"),
    (a_missing_path, "nothing-here.tar cannot be read (No such file or directory)"),
]


@pytest.mark.parametrize("make, reason", REFUSALS, ids=[make.__name__ for make, _ in REFUSALS])
def test_an_unusable_upload_is_refused_with_what_to_hand_in(tmp_path, make, reason):
    assert refused(make(tmp_path)) == f"{reason}. {submission.HAND_IN}"


# --------------------------------------------------------------------- compression bombs and damaged streams
def entries_bomb(compress):
    """1,000 tar entries of 8 MB of zeros each (8 GB), as 1,000 concatenated compressed streams."""
    unit = member("junk.bin", size=8 * 2 ** 20)
    return compress(unit.tobuf(tarfile.GNU_FORMAT) + bytes(unit.size)) * 1000


def zeros_bomb(compress):
    """The reference's tar, then 8 GB of zeros after its end (read to check the stream), in 1,001 streams."""
    return compress(tar_bytes()) + compress(bytes(8 * 2 ** 20)) * 1000


def streams_bomb(compress):
    """Two million empty compressed streams, one after the other (each costs a new decompressor)."""
    unit = compress(b"")
    return unit * (32 * 2 ** 20 // len(unit) - 1)


@pytest.mark.parametrize("make, reason", [
    (entries_bomb, "handin.tar holds more than 64 MB once unpacked: its entry junk.bin alone claims to hold "),
    (zeros_bomb, "handin.tar holds more than 64 MB once unpacked."),
    (streams_bomb, "handin.tar is made of more than 1,000 {} streams."),
], ids=["entries", "zeros after the end", "empty streams"])
@pytest.mark.parametrize("compression", ["gzip", "bzip2", "xz"])
def test_a_compression_bomb_stops_at_a_limit(tmp_path, compression, make, reason):
    path = put(tmp_path / "handin.tar", make(COMPRESS[compression]))
    assert os.path.getsize(path) < submission.MAX_UPLOAD_BYTES
    assert refused(path).startswith(reason.format(compression))


def test_an_oversized_upload_is_refused_before_it_is_read(tmp_path):
    path = tmp_path / "handin.tar"
    with open(path, "wb") as handle:
        handle.truncate(40 * 2 ** 20)  # a sparse file of zeros
    assert refused(path).startswith("handin.tar is 40 MB, more than a hand-in may be (32 MB;")


def lying_zip():
    """A zip whose member mytorch/big.py says it holds 10 bytes and inflates to 50 MB."""
    data = zip_bytes(dict(REFERENCE, **{"mytorch/big.py": bytes(50 * 2 ** 20)}))
    true_size = (50 * 2 ** 20).to_bytes(4, "little")
    return data.replace(true_size, (10).to_bytes(4, "little"))


def bzip2_zip():
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_BZIP2) as archive:
        for relpath, data in REFERENCE.items():
            archive.writestr(relpath, data)
    return buffer.getvalue()


@pytest.mark.parametrize("make, reason", [
    (lambda: zip_bytes(dict(REFERENCE, **{"mytorch/big.py": bytes(100 * 2 ** 20)})),
     "mytorch/big.py is larger than 2 MB"),
    (lying_zip, "handin.zip is damaged: mytorch/big.py in it cannot be unpacked"),
    (bzip2_zip, f"handin.zip holds {next(iter(REFERENCE))} encrypted or compressed in a way the grader does not read"),
], ids=["honest 100 MB member", "member lying about its size", "bzip2 members (unbounded in zipfile)"])
def test_zip_bombs_are_refused_without_unpacking_them(tmp_path, make, reason):
    message = refused(put(tmp_path / "handin.zip", make()))
    assert message.startswith(reason), message


def test_a_zip_directory_too_large_to_read_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(submission, "MAX_ZIP_DIRECTORY", 4096)
    message = refused(put(tmp_path / "handin.zip", zip_bytes(extra=[(f"junk/{i:04d}.txt", b"") for i in range(200)])))
    assert message.startswith("handin.zip lists too many files (its directory takes")


def xz_needing_4_gb():
    """The reference's tar as xz, its block header patched to announce a 4 GB dictionary (which the
    decompressor would allocate), its checksum recomputed."""
    data = bytearray(lzma.compress(tar_bytes()))
    size = (data[12] + 1) * 4  # the block header follows the 12-byte stream header
    assert data[14:16] == b"\x21\x01"  # one filter, LZMA2, one byte of properties: the dictionary size
    data[16] = 40  # the largest: 4 GB - 1
    data[12 + size - 4:12 + size] = zlib.crc32(bytes(data[12:12 + size - 4])).to_bytes(4, "little")
    return bytes(data)


def test_an_xz_stream_asking_for_a_huge_dictionary_is_refused(tmp_path):
    message = refused(put(tmp_path / "handin.tar.xz", xz_needing_4_gb()))
    assert message.startswith("handin.tar.xz is damaged: its xz data needs more memory to unpack than allowed")


def damaged(data, how):
    if how == "corrupt":  # 32 bytes in the middle turned over
        middle = len(data) // 2
        return data[:middle] + bytes(b ^ 0xFF for b in data[middle:middle + 32]) + data[middle + 32:]
    return data[:len(data) // 2]


@pytest.mark.parametrize("how", ["corrupt", "truncated"])
@pytest.mark.parametrize("compression", ["gzip", "bzip2", "xz"])
def test_a_damaged_compressed_stream_named_tar_is_a_reason_in_words(tmp_path, compression, how):
    data = damaged(COMPRESS[compression](tar_bytes()), how)
    message = refused(put(tmp_path / "handin.tar", data))
    assert message.startswith(f"handin.tar is damaged: its {compression} data "), message


def plain_tar_damage(how):
    """The reference's plain tar, damaged at its third entry (``how``: cut inside its data, cut inside its
    header, or its header overwritten)."""
    data = tar_bytes()
    with tarfile.open(fileobj=io.BytesIO(data)) as archive:
        third = archive.getmembers()[2]
    if how == "cut inside an entry":
        return data[:third.offset_data + third.size // 2]
    if how == "cut inside a header":
        return data[:third.offset + 300]
    return data[:third.offset] + b"x" * 512 + data[third.offset + 512:]


@pytest.mark.parametrize("how, reason", [
    ("cut inside an entry", "handin.tar is damaged: it ends in the middle of the entry "),
    ("cut inside a header", "handin.tar is damaged: a tar header is cut short or corrupt"),
    ("a corrupt header", "handin.tar is damaged: a tar header is cut short or corrupt"),
])
def test_a_damaged_plain_tar_is_a_reason_in_words(tmp_path, how, reason):
    message = refused(put(tmp_path / "handin.tar", plain_tar_damage(how)))
    assert message.startswith(reason), message


# --------------------------------------------------------------------- headers, sizes and entries
def base256(info, size):
    """``info``'s header with its size field in GNU base-256 (for sizes octal cannot hold)."""
    header = bytearray(info.tobuf(tarfile.GNU_FORMAT))
    header[124:136] = b"\x80" + size.to_bytes(11, "big")
    header[148:156] = b" " * 8
    header[148:156] = b"%06o\0 " % sum(header)
    return bytes(header)


HEADERS = {
    "a pax header holding a 2 MB path": (
        tar_bytes(extra=[(member("x" * 2 * 2 ** 20, size=1), b"x")]), "handin.tar holds a tar extension header of 2,"),
    "a GNU long name of 2 MB": (
        tar_bytes(fmt=tarfile.GNU_FORMAT, extra=[(member("x" * 2 * 2 ** 20, size=1), b"x")]),
        "handin.tar holds a tar extension header of 2,"),
    "an entry claiming 8 GB": (
        member("junk.bin", size=8 * 2 ** 30 - 1).tobuf(tarfile.GNU_FORMAT) + bytes(4096),
        "handin.tar holds more than 64 MB once unpacked: its entry junk.bin alone claims to hold 8,589,934,591 bytes"),
    "an entry claiming 2**80 bytes": (
        base256(member("junk.bin"), 2 ** 80) + bytes(4096),
        "handin.tar holds more than 64 MB once unpacked: its entry junk.bin alone claims to hold 1,208,925,819,"),
    "a pax header of 5,000 records": (
        tar_bytes(extra=[(member("docs", pax={f"key{i}": "" for i in range(5000)}), None)]),
        "handin.tar holds a pax header of more than 1,000 records"),
    "a submission file claiming 3 MB": (
        member("mytorch/nn/functional.py", size=3 * 2 ** 20).tobuf(tarfile.GNU_FORMAT) + bytes(4096),
        "mytorch/nn/functional.py is larger than 2 MB"),
}


@pytest.mark.parametrize("data, reason", HEADERS.values(), ids=HEADERS.keys())
def test_huge_and_impossible_tar_headers_are_refused_in_words(tmp_path, data, reason):
    message = refused(put(tmp_path / "handin.tar", gzip.compress(data)))
    assert message.startswith(reason), message


def test_a_member_flood_is_read_and_its_notes_summarised(tmp_path):
    link = member("mytorch/link.py", tarfile.SYMTYPE, link="/etc/passwd")
    path = put(tmp_path / "handin.tar.gz", gzip.compress(tar_bytes(extra=[(link, None)] * 20_000)))
    files, notes = submission.read_submission(path)
    assert files == REFERENCE
    assert notes[:20] == ["ignored unsafe entry mytorch/link.py: a link"] * 20
    assert notes[20:] == ["ignored 19,980 more entries like these"]
    results = json.dumps(report.gradescope_results(grading.Report(path, [], notes)))
    assert len(results) < 3000


def test_more_entries_than_the_limit_is_a_reason_in_words(tmp_path):
    link = member("docs/link", tarfile.SYMTYPE, link="x").tobuf(tarfile.GNU_FORMAT)
    path = put(tmp_path / "handin.tar.gz", gzip.compress(link * (submission.MAX_ENTRIES + 1), compresslevel=1))
    assert refused(path).startswith("handin.tar.gz holds more than 100,000 entries")


def test_reading_is_bounded_in_time(tmp_path, monkeypatch):
    monkeypatch.setattr(submission, "READ_SECONDS", -1.0)  # as if reading had already taken too long
    for path in (shape_plain_tar(tmp_path), shape_zip_with_one_top_folder(tmp_path), shape_loose_files(tmp_path)):
        assert " took more than -1 s." in refused(path)


def test_a_very_deep_folder_is_noted_not_followed(tmp_path):
    folder = write_tree(tmp_path / "upload")
    put(os.path.join(folder, "mytorch", *["deep"] * 40, "x.py"), b"")
    files, notes = submission.read_submission(folder)
    assert files == REFERENCE
    deepest = "mytorch/" + "/".join(["deep"] * submission.MAX_DEPTH)
    assert notes == [f"ignored {submission.shown(deepest)}: more than 32 folders deep"]


# --------------------------------------------------------------------- links, devices, FIFOs
def test_a_hand_in_that_is_a_link_to_dev_zero_is_refused_at_once(tmp_path):
    os.symlink("/dev/zero", tmp_path / "handin.tar")
    outcome = returns_within(5, submission.read_submission, str(tmp_path / "handin.tar"))
    assert "handin.tar is a symbolic link, which is never followed" in str(outcome["error"])
    outcome = returns_within(5, submission.read_submission, "/dev/zero")
    assert "zero is not a regular file or folder" in str(outcome["error"])


def test_a_fifo_is_never_opened_for_reading(tmp_path):
    os.mkfifo(tmp_path / "handin.tar")
    outcome = returns_within(5, submission.read_submission, str(tmp_path / "handin.tar"))
    assert "handin.tar is not a regular file or folder" in str(outcome["error"])
    upload = tmp_path / "upload"
    os.mkdir(upload)
    os.mkfifo(upload / "handin.tar")
    outcome = returns_within(5, submission.read_submission, str(upload))
    assert "(it holds handin.tar (not a regular file))" in str(outcome["error"])
    folder = write_tree(tmp_path / "loose", {k: v for k, v in REFERENCE.items() if k != "mytorch/utils.py"})
    os.mkfifo(os.path.join(folder, "mytorch", "utils.py"))
    outcome = returns_within(5, submission.read_submission, folder)
    assert outcome["value"][1] == ["ignored mytorch/utils.py: not a regular file"]


def test_a_handin_tar_linked_to_another_students_hand_in_is_not_graded(tmp_path):
    victim = put(tmp_path / "alice" / "handin.tar", tar_bytes())
    os.mkdir(tmp_path / "mallory")
    os.symlink(victim, tmp_path / "mallory" / "handin.tar")
    message = refused(tmp_path / "mallory")
    assert message.startswith("the upload holds no mytorch/ folder and no handin.tar "
                              "(it holds handin.tar (a link, never followed))")
    os.symlink(tmp_path / "alice", tmp_path / "mallory-folder")
    assert refused(tmp_path / "mallory-folder").startswith("mallory-folder is a symbolic link, which is never followed")
    rep = grading.grade(str(tmp_path / "mallory"), LOSS, FAST)
    assert rep.error and rep.total() == 0


def test_links_inside_a_folder_hand_in_are_noted_not_followed(tmp_path):
    folder = write_tree(tmp_path / "upload", {k: v for k, v in REFERENCE.items() if not k.startswith("mytorch/nn/")})
    os.symlink(os.path.join(ROOT, "mytorch", "nn"), os.path.join(folder, "mytorch", "nn"))
    files, notes = submission.read_submission(folder)
    assert not any(name.startswith("mytorch/nn/") for name in files)
    assert notes == ["ignored mytorch/nn: a symbolic link"]


# --------------------------------------------------------------------- names and conflicts
ODD_NAMES = ["mytorch/caf\udce9.py", "mytorch/new\nline.py", "mytorch/\x1b[31mred.py", "mytorch/" + "n" * 300 + ".py",
             "mytorch/sp ace/ x.py", "mytorch/" + "d/" * 200 + "deep.py",
             "mytorch/" + "\U0001f600/" * 250 + "x.py"]  # 512 characters but 1,262 bytes: too long


def test_odd_and_non_utf8_names_are_graded_or_noted_never_a_crash(tmp_path):
    extra = [(member(name, size=2), b"#\n") for name in ODD_NAMES]
    nul = member("mytorch/nul.py", size=2, pax={"path": "mytorch/nul\0byte.py"})  # only pax can hold a NUL
    extra.append((nul, b"#\n"))
    path = put(tmp_path / "handin.tar", tar_bytes(extra=extra))
    files, notes = submission.read_submission(path)
    assert {k: v for k, v in files.items() if k in REFERENCE} == REFERENCE
    assert set(files) - set(REFERENCE) == {"mytorch/caf\udce9.py", "mytorch/new\nline.py", "mytorch/\x1b[31mred.py",
                                            "mytorch/sp ace/ x.py", "mytorch/" + "d/" * 200 + "deep.py"}
    assert notes == [f"ignored unsafe entry mytorch/{'n' * 92}...: a name too long for a file system",
                     f"ignored unsafe entry mytorch/{chr(0x1f600) + '/'}{(chr(0x1f600) + '/') * 45}...: a name too long "
                     "for a file system",
                     "ignored unsafe entry 'mytorch/nul\\x00byte.py': a NUL character in the name"]
    rep = grading.grade(path, LOSS, FAST)
    assert rep.error is None and rep.total() == 8
    text = report.text_report(rep, "t")
    assert [line for line in text.splitlines() if line.startswith("Note: ")] == [f"Note: {note}" for note in notes]
    for text in (text, json.dumps(report.gradescope_results(rep)), ",".join(report.gradebook_row(rep, LOSS))):
        text.encode("utf-8")  # strict: no stray surrogate reaches an output
        assert "\x1b" not in text and "\x00" not in text


def test_conflicting_members_are_a_note_and_the_rest_is_graded(tmp_path):
    extra = [(member("mytorch/x.py/a.py", size=2), b"#\n"), (member("mytorch/x.py", size=2), b"#\n"),
             (member("mytorch/x.py", size=3), b"#2\n")]
    path = put(tmp_path / "handin.tar", tar_bytes(extra=extra))
    files, notes = submission.read_submission(path)
    assert files == dict(REFERENCE, **{"mytorch/x.py": b"#2\n"})
    assert notes == ["mytorch/x.py is in the archive twice: the last copy was read",
                     "ignored mytorch/x.py/a.py: mytorch/x.py is a file, not a folder"]
    rep = grading.grade(path, LOSS, FAST)
    assert rep.error is None and rep.total() == 8 and rep.notes == notes


# --------------------------------------------------------------------- every submission gets its report
def test_an_ungradable_hand_in_still_gets_every_form_of_report(tmp_path):
    handin = garbage_named_handin_tar(tmp_path)
    autolab = subprocess.run([sys.executable, RUNNER, "--submission", handin, "--format", "autolab"],
                             capture_output=True, text=True)
    lines = autolab.stdout.strip().splitlines()
    assert "could not grade" in lines[-2] and submission.HAND_IN in lines[-2]
    assert set(json.loads(lines[-1])["scores"]) >= set(grading.SECTIONS)
    results = tmp_path / "results.json"
    gradescope = subprocess.run([sys.executable, RUNNER, "--submission", handin, "--format", "gradescope",
                                 "--output", str(results)], capture_output=True, text=True)
    assert gradescope.returncode == 0, gradescope.stderr
    written = json.loads(results.read_text())
    assert written["score"] == 0 and written["output"].endswith(submission.HAND_IN)


def batch_folder(tmp_path):
    batch = tmp_path / "batch"
    put(batch / "alice.tar", tar_bytes())
    put(batch / "bob.tar", tar_bytes())
    put(batch / "carol.tar", tar_bytes())
    put(os.path.join(os.fsencode(batch), b"d\xe9sir\xe9e.tar"), tar_bytes())  # a name that is not UTF-8
    put(batch / "results.json", b"{}")  # a grader output: not a submission
    return batch


def test_a_batch_keeps_every_row_when_grading_one_raises(tmp_path, monkeypatch, capsys):
    batch = batch_folder(tmp_path)
    read, grade = submission.read_submission, grading.grade

    def failing_read(path):
        if path.endswith("bob.tar"):
            raise RuntimeError("a bug in reading")
        return read(path)

    def failing_grade(path, *args):
        if path.endswith("carol.tar"):
            raise MemoryError("a bug in grading")
        return grade(path, *args)
    monkeypatch.setattr(submission, "read_submission", failing_read)
    monkeypatch.setattr(grading, "grade", failing_grade)
    gradebook = batch / "grades.csv"  # inside the batch folder
    for _ in range(2):  # the second run must not grade the first run's gradebook
        argv = ["loss", "--batch", str(batch), "--csv", str(gradebook), "--timeout", "2", "--jobs", "2"]
        assert runner.main(argv) == 0
        with open(gradebook, encoding="utf-8", newline="") as handle:
            rows = {row["submission"]: row for row in csv.DictReader(handle)}
        assert sorted(rows) == ["alice.tar", "bob.tar", "carol.tar", "d\\udce9sir\\udce9e.tar"]
        assert rows["alice.tar"]["total"] == rows["d\\udce9sir\\udce9e.tar"]["total"] == "8"
        assert rows["bob.tar"]["problem"] == "grader failure while reading the hand-in: RuntimeError: a bug in reading"
        assert rows["carol.tar"]["problem"] == "grader failure: MemoryError: a bug in grading"
    assert "skipped grades.csv: a grader output" in capsys.readouterr().err


def test_rows_already_graded_survive_a_batch_that_stops(tmp_path, monkeypatch):
    batch = batch_folder(tmp_path)
    grade = grading.grade

    def interrupted(path, *args):
        if os.path.basename(path).startswith("d"):  # the last one
            raise KeyboardInterrupt  # the TA presses Ctrl-C, or the machine stops the job
        return grade(path, *args)
    monkeypatch.setattr(grading, "grade", interrupted)
    gradebook = tmp_path / "grades.csv"
    with pytest.raises(KeyboardInterrupt):
        runner.main(["loss", "--batch", str(batch), "--csv", str(gradebook), "--timeout", "2"])
    with open(gradebook, encoding="utf-8", newline="") as handle:
        rows = {row["submission"]: row["total"] for row in csv.DictReader(handle)}
    assert rows == {"alice.tar": "8", "bob.tar": "8", "carol.tar": "8"}


def test_the_wall_clock_limit_reports_the_remaining_tests_as_not_run(tmp_path):
    looping = dict(REFERENCE, **{"mytorch/__init__.py": b"while True:\n    pass\n"})
    start = time.monotonic()
    rep = grading.grade(write_tree(tmp_path / "upload", looping), PUBLIC, grading.Options(timeout=0.5, total=1.5))
    elapsed = time.monotonic() - start
    not_run = [r for r in rep.results if r.feedback.startswith("not run: ")]
    assert len(rep.results) == len(PUBLIC) and {r.status for r in rep.results} == {"timeout"}
    assert not_run and len(PUBLIC) - len(not_run) <= 4 and rep.total() == 0  # each test run took >= 0.5 s
    assert rep.notes[-1] == (f"grading stopped after 1.5 s, the limit for one submission: the last {len(not_run)} "
                             "test(s) were not run")
    assert elapsed < 1.5 + 0.5 + 10  # the limit, one test's own limit, and the sandbox's start and grace


def test_the_total_timeout_flag_is_checked_and_defaults_to_twenty_tests(capsys):
    assert grading.Options(timeout=3).total == 60 and grading.Options(total=7).total == 7
    with pytest.raises(SystemExit) as caught:
        runner.parse_args(["--submission", "x", "--total-timeout", "0"])
    assert caught.value.code == 2 and "--total-timeout must be positive" in capsys.readouterr().err


# --------------------------------------------------------------------- bounded output
def test_every_output_has_a_fixed_size_whatever_the_report_holds():
    huge = "\x1b[2J" + "x\udcff\n" * 300_000
    results = [grading.Result(test, 0.0, "failed", huge) for test in LOSS]
    full = grading.Report("\udcffhandin.tar", results, [huge] * 10_000)
    broken = grading.Report("\udcffhandin.tar", [], [huge] * 10_000, error=huge)
    per_test = 10 * report.MAX_FEEDBACK + 1000  # an escaped character takes at most 10
    bound = len(LOSS) * per_test + (report.MAX_NOTES + 1) * (10 * report.MAX_NOTE + 50) + 10 * report.MAX_ERROR + 5000
    for rep in (full, broken):
        outputs = [report.text_report(rep, "title " + huge), json.dumps(report.gradescope_results(rep)),
                   "\n".join(report.gradebook_row(rep, LOSS))]
        for text in outputs:
            assert len(text) < bound
            text.encode("utf-8")  # strict
            assert "\x1b" not in text
    notes = report.notes_of(full)
    assert len(notes) == report.MAX_NOTES + 1 and notes[-1] == "... and 9975 more notes"


def test_frame_headers_and_array_names_are_bounded():
    big = b'{"a": "' + b"x" * wire.MAX_HEADER + b'"}'
    with pytest.raises(wire.WireError, match=f"header of {len(big)} bytes exceeds the limit of {wire.MAX_HEADER}"):
        wire.decode(len(big).to_bytes(4, "little") + big)
    named = wire.encode({"case": 0}, {"n" * 300: np.zeros(2)})
    with pytest.raises(wire.WireError, match="name is longer than 256 characters"):
        wire.decode(named)
    assert wire.decode(wire.encode({"case": 0}, {"n" * 256: np.zeros(2)}))[1]["n" * 256].shape == (2,)
