"""The bytes and text of one set file, read once through one descriptor: the bottom of reading sets."""

from __future__ import annotations

import codecs
import os
import stat
from pathlib import Path

from vllm_surgeon.core.lines import normalize_newlines
from vllm_surgeon.core.model import HunkFileError, Origin
from vllm_surgeon.core.source import MAX_SOURCE_BYTES

# A set file is text someone wrote: anything larger is not one (and is not read into memory).
MAX_SET_BYTES = MAX_SOURCE_BYTES


def read_set_bytes(path: Path) -> bytes:
    """The bytes of a set file, read once through one open file (issue 7 items 2 and 8).

    Opened non-blocking and checked with fstat, so a FIFO or device put where a set was listed
    is refused instead of hanging the process; every OS error is a HunkFileError naming the file.
    """
    origin = Origin(str(path), 1)
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        raise HunkFileError(origin, f"cannot open this set file: {exc.strerror or exc}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise HunkFileError(origin, "not a regular file (a directory, FIFO or device is not a hunk set)")
        if info.st_size > MAX_SET_BYTES:
            raise HunkFileError(origin, f"{info.st_size} bytes: too large for a hunk set (the limit is {MAX_SET_BYTES})")
        chunks, size = [], 0
        while True:
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                break
            size += len(chunk)
            if size > MAX_SET_BYTES:
                raise HunkFileError(origin, f"grew past {MAX_SET_BYTES} bytes while being read")
            chunks.append(chunk)
        return b"".join(chunks)
    except OSError as exc:
        raise HunkFileError(origin, f"cannot read this set file: {exc.strerror or exc}") from None
    finally:
        os.close(fd)


def decode_set_text(data: bytes, path: str) -> str:
    """UTF-8 text (a leading BOM dropped) with Python's line breaks turned into \\n."""
    if data.startswith(codecs.BOM_UTF8):
        data = data[len(codecs.BOM_UTF8) :]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise HunkFileError(Origin(path, line), f"not UTF-8 text: byte {data[exc.start]:#04x} cannot be decoded") from None
    return normalize_newlines(text)
