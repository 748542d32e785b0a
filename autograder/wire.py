"""Length-prefixed messages: a JSON header plus NumPy arrays, never pickles.

One message is ``u32 header length | header JSON | npz bytes``; a frame on a
stream is ``u64 length | message``. Arrays are decoded with ``allow_pickle=False``,
so a message can carry numbers and text but never code.
"""
import io
import json
import os
import struct

import numpy as np

MAX_MESSAGE = 256 * 1024 * 1024  # refuse frames larger than this (bytes)


class WireError(ValueError):
    """A message or frame is malformed, truncated or too large."""


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
    if 4 + size > len(message):
        raise WireError("message header is truncated")
    try:
        header = json.loads(message[4:4 + size].decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as error:
        raise WireError(f"message header is not JSON: {error}") from None
    if not isinstance(header, dict):
        raise WireError("message header is not a JSON object")
    arrays = {}
    blob = message[4 + size:]
    if blob:
        try:
            with np.load(io.BytesIO(blob), allow_pickle=False) as archive:
                arrays = {name: archive[name] for name in archive.files}
        except Exception as error:  # any malformed archive is the sender's fault
            raise WireError(f"message arrays cannot be read: {type(error).__name__}: {error}") from None
    return header, arrays


def write_frame(fd, message):
    """Write one length-prefixed frame to the file descriptor ``fd``."""
    data = struct.pack("<Q", len(message)) + message
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _read_exactly(fd, count):
    chunks = []
    while count:
        chunk = os.read(fd, min(count, 1 << 20))
        if not chunk:
            return None
        chunks.append(chunk)
        count -= len(chunk)
    return b"".join(chunks)


def read_frame(fd):
    """The next frame's message from ``fd``, or None at end of stream."""
    prefix = _read_exactly(fd, 8)
    if prefix is None:
        return None
    (size,) = struct.unpack("<Q", prefix)
    if size > MAX_MESSAGE:
        raise WireError(f"frame of {size} bytes exceeds the limit of {MAX_MESSAGE}")
    message = _read_exactly(fd, size)
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
