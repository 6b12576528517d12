"""A module's source text as read from disk, a wheel or a source tree: what every layer passes around."""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass
class ModuleSource:
    """A module's source text as read from disk, a wheel or a source tree."""

    module: str
    path: str
    text: str

    def lines(self) -> list[str]:
        return self.text.split("\n")


SourceReader = Callable[[str], "ModuleSource | None"]

# A source file or a set file is text someone wrote: nothing larger is read into memory (issue 13:
# wheel members and --against directory files had no limit; set files had this one).
MAX_SOURCE_BYTES = 16 * 1024 * 1024


class SourceTooLarge(ValueError):
    """A file past MAX_SOURCE_BYTES, named."""


def read_source_file(path: str) -> bytes | None:
    """The bytes of a regular file of a source tree, at most MAX_SOURCE_BYTES; None when `path` is no
    regular file (a FIFO is never opened for reading in blocking mode, so it cannot hang the reader).
    OSError or SourceTooLarge, naming the file, otherwise."""
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(path, flags)
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
        return None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            return None
        chunks, size = [], 0
        while chunk := os.read(fd, 1 << 20):
            size += len(chunk)
            if size > MAX_SOURCE_BYTES:
                raise SourceTooLarge(f"{path}: larger than any source file read (the limit is {MAX_SOURCE_BYTES} bytes)")
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)

@dataclass(frozen=True)
class TreeReader:
    """A tree's reader: called like a SourceReader (a module's Python source), and `form` says what a
    module is there in any importable form (an extension, a namespace folder...; None: nothing)."""

    source: SourceReader
    form: Callable[[str], str | None]
    # Every definition of the tree (trees/definitions.DefinitionIndex), built on first call: what a
    # refusal searches when a target is gone from its module (issue 14). None: the tree cannot list.
    definitions: Callable[[], Any] | None = None

    def __call__(self, module: str) -> ModuleSource | None:
        return self.source(module)


def module_form(read: SourceReader, module: str) -> str | None:
    """What `module` is in `read`'s tree, for a set about to create it (issue 13 item 3); a reader that
    knows only sources can say only whether it has one."""
    if isinstance(read, TreeReader):
        return read.form(module)
    source = read(module)
    return None if source is None else f"a module ({source.path})"
