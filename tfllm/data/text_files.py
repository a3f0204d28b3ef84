"""UTF-8 text files for the readers: a leading byte-order mark is dropped, bad bytes are named.

Every reader in `tfllm.data` opens its files here, so a file saved by a
Windows editor (with a BOM) reads like any other, and a byte that is not
UTF-8 raises a `DataError` naming the file, the line and the byte offset
instead of a bare `UnicodeDecodeError` from deep inside a reader.
"""

import codecs
import os

import tensorflow as tf

from tfllm.data.errors import DataError
from tfllm.files import read_bytes
from tfllm.files import require_file

_READ_SIZE = 1 << 20


def read_text(path):
    """The whole of a UTF-8 text file as one `str`, without a leading BOM.

    Raises `DataError` for a missing file or bytes that are not UTF-8.
    """
    raw = read_bytes(path)
    start = len(codecs.BOM_UTF8) if raw.startswith(codecs.BOM_UTF8) else 0
    return _decode(raw[start:], path, line_number=1, offset=start)


def text_lines(path):
    """Yields `(line_number, line)` of a UTF-8 text file: 1-based numbers, lines with their endings.

    Reads in chunks (large files stay out of memory) and splits on "\n"
    only, keeping every other byte: GFile's own line iteration drops "\r"
    characters, which would shift the byte offsets. The BOM is dropped from
    the first line. Raises `DataError` for a missing file or bytes that are
    not UTF-8.
    """
    path = os.fspath(path)
    require_file(path)
    offset = 0
    with tf.io.gfile.GFile(path, "rb") as f:
        for line_number, raw in enumerate(_raw_lines(f), start=1):
            start = len(codecs.BOM_UTF8) if offset == 0 and raw.startswith(codecs.BOM_UTF8) else 0
            yield line_number, _decode(raw[start:], path, line_number, offset + start)
            offset += len(raw)


def _raw_lines(f):
    """The lines of binary file `f`, each with its "\n" (the last may lack one)."""
    pending = []  # Pieces of a line that spans chunks.
    for chunk in iter(lambda: f.read(_READ_SIZE), b""):
        *lines, last = chunk.split(b"\n")
        for line in lines:
            pending.append(line)
            yield b"".join(pending) + b"\n"
            pending = []
        pending.append(last)
    tail = b"".join(pending)
    if tail:
        yield tail


def _decode(raw, path, line_number, offset):
    """`raw` (starting on line `line_number`, at byte `offset` of the file) as str."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = line_number + raw.count(b"\n", 0, e.start)
        raise DataError(
            f"{os.fspath(path)}: line {line}, byte offset {offset + e.start}: "
            f"{raw[e.start:e.end]!r} is not UTF-8 ({e.reason}); expected a UTF-8 text file"
        ) from None
