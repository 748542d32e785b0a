"""Length-prefixed messages: a JSON header plus NumPy arrays, never pickles.

One message is ``u32 header length | header JSON | npz bytes``; a frame on a
stream is ``u64 length | message``. The arrays travel as ``np.savez`` writes them:
a zip of stored (uncompressed) ``.npy`` members. ``decode`` refuses anything else
(compressed members, sizes that do not add up, object arrays) before loading, so
the arrays of a message never take more memory than the message itself, and it
turns every malformed message into a WireError.
"""
import io
import json
import math
import os
import select
import struct
import threading
import time
import zipfile

import numpy as np

MAX_MESSAGE = 256 * 1024 * 1024  # refuse frames larger than this (bytes)
MAX_HEADER = 1024 * 1024  # refuse message headers larger than this (bytes; the grader's own are under 200 KB)
MAX_ARRAYS = 4096  # refuse messages with more arrays than this
MAX_ARRAY_NAME = 256  # refuse array names longer than this (characters)
# Python's AST is built with one recursion counter per interpreter, so two threads building one at once
# (ast.parse, and ast.literal_eval in NumPy's .npy header reader) can fail with "SystemError: AST constructor
# recursion depth mismatch" (python/cpython#106905). The scoring process grades submissions in threads
# (--jobs): whatever builds an AST there holds this lock.
AST_LOCK = threading.Lock()


class WireError(ValueError):
    """A message or frame is malformed, truncated, too large or late."""


def encode(header, arrays=None):
    """Bytes of one message: ``header`` (JSON-able dict) and ``arrays`` (name -> ndarray)."""
    head = json.dumps(header, allow_nan=True).encode("utf-8")
    blob = b""
    if arrays:
        buffer = io.BytesIO()
        np.savez(buffer, **{name: np.asarray(value) for name, value in arrays.items()})
        blob = buffer.getvalue()
    return struct.pack("<I", len(head)) + head + blob


def decode(message):
    """(header dict, arrays dict) from the bytes ``encode`` made; raises WireError if malformed."""
    if len(message) < 4:
        raise WireError("message shorter than its length prefix")
    (size,) = struct.unpack("<I", message[:4])
    if size > MAX_HEADER:
        raise WireError(f"message header of {size} bytes exceeds the limit of {MAX_HEADER}")
    if 4 + size > len(message):
        raise WireError("message header is truncated")
    try:
        header = json.loads(message[4:4 + size].decode("utf-8"))
    except Exception as error:  # UnicodeDecodeError, ValueError, RecursionError on deep nesting, ...
        raise WireError(f"message header is not readable JSON: {type(error).__name__}: {error}") from None
    if not isinstance(header, dict):
        raise WireError("message header is not a JSON object")
    blob = message[4 + size:]
    if not blob:
        return header, {}
    try:
        return header, read_arrays(blob)
    except WireError:
        raise
    except Exception as error:  # any other malformed archive is the sender's fault too
        raise WireError(f"message arrays cannot be read: {type(error).__name__}: {error}") from None


def read_arrays(blob):
    """name -> array from ``np.savez`` bytes, after checking that they hold only stored ``.npy`` members
    whose sizes add up to at most ``len(blob)``; raises WireError otherwise."""
    with zipfile.ZipFile(io.BytesIO(blob)) as archive:
        members = archive.infolist()
        if len(members) > MAX_ARRAYS:
            raise WireError(f"message holds {len(members)} arrays, more than the limit of {MAX_ARRAYS}")
        names = [info.filename[:-len(".npy")] for info in members]
        if len(set(names)) != len(names) or not all(info.filename.endswith(".npy") for info in members):
            raise WireError("message arrays are not uniquely named .npy members")
        if any(len(name) > MAX_ARRAY_NAME for name in names):
            raise WireError(f"a message array's name is longer than {MAX_ARRAY_NAME} characters")
        total = 0
        for info in members:
            if info.compress_type != zipfile.ZIP_STORED:
                raise WireError(f"array {info.filename!r} is compressed (zip method {info.compress_type}); "
                                "only stored arrays are accepted")
            total += info.file_size
            if info.file_size != info.compress_size or total > len(blob):
                raise WireError(f"array {info.filename!r}: the member sizes ({info.file_size} bytes) do not fit "
                                f"in the {len(blob)} bytes of the message")
        return {name: read_npy(name, archive.read(info)) for name, info in zip(names, members)}


def read_npy(name, data):
    """The array in the ``.npy`` bytes ``data``, after checking that its header announces exactly the
    bytes that follow (np.load allocates what the header announces before reading)."""
    stream = io.BytesIO(data)
    version = np.lib.format.read_magic(stream)
    if version not in ((1, 0), (2, 0)):
        raise WireError(f"array {name!r} has .npy format version {version}, not 1.0 or 2.0")
    with AST_LOCK:  # the header is read with ast.literal_eval, here and in read_array
        read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, _, dtype = read_header(stream)
    if dtype.hasobject:
        raise WireError(f"array {name!r} holds Python objects")
    announced = math.prod(shape) * dtype.itemsize
    if announced != len(data) - stream.tell():
        raise WireError(f"array {name!r}: its header announces shape {shape} of {dtype} ({announced} bytes) "
                        f"but {len(data) - stream.tell()} bytes follow")
    stream.seek(0)
    with AST_LOCK:
        return np.lib.format.read_array(stream, allow_pickle=False)


def write_frame(fd, message):
    """Write one length-prefixed frame to the file descriptor ``fd``."""
    data = struct.pack("<Q", len(message)) + message
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _read_exactly(fd, count, deadline):
    """``count`` bytes from ``fd``; None if the stream ends before the first byte."""
    data = bytearray()
    while len(data) < count:
        if deadline is not None:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not select.select([fd], [], [], remaining)[0]:
                raise WireError("no complete frame arrived in time (the other side stopped answering)")
        chunk = os.read(fd, min(count - len(data), 1 << 20))
        if not chunk:
            if not data:
                return None
            raise WireError("stream ended inside a frame")
        data += chunk
    return bytes(data)


def read_frame(fd, deadline=None):
    """The next frame's message from ``fd``, or None if the stream ends before a frame starts.

    With ``deadline`` (a ``time.monotonic()`` value), WireError if the frame is not complete by then.
    """
    prefix = _read_exactly(fd, 8, deadline)
    if prefix is None:
        return None
    (size,) = struct.unpack("<Q", prefix)
    if size > MAX_MESSAGE:
        raise WireError(f"frame of {size} bytes exceeds the limit of {MAX_MESSAGE}")
    message = _read_exactly(fd, size, deadline) if size else b""
    if message is None:
        raise WireError("stream ended inside a frame")
    return message


def split_frames(data, limit):
    """The complete frames in ``data`` (bytes), at most ``limit`` of them; a trailing partial frame is dropped."""
    frames, offset = [], 0
    while len(frames) < limit and offset + 8 <= len(data):
        (size,) = struct.unpack("<Q", data[offset:offset + 8])
        if offset + 8 + size > len(data):
            break
        frames.append(data[offset + 8:offset + 8 + size])
        offset += 8 + size
    return frames
