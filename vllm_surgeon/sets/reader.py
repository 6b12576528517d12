"""The bytes and text of one set file, read once through one descriptor whose path was checked: the
bottom of reading sets (issue 13: only files nobody but this user or root can change)."""

from __future__ import annotations

import codecs
import os
import stat
from collections.abc import Sequence
from pathlib import Path

from vllm_surgeon.core import settings as _settings, trust as _trust
from vllm_surgeon.core.lines import normalize_newlines
from vllm_surgeon.core.model import HunkFileError, Origin
from vllm_surgeon.core.source import MAX_SOURCE_BYTES
from vllm_surgeon.core.trust import Problem

# A set file is text someone wrote: anything larger is not one (and is not read into memory).
MAX_SET_BYTES = MAX_SOURCE_BYTES


# How a set's files are read (issue 13: a set is code that runs in every vLLM process).
ENFORCE = "enforce"  # vLLM, doctor, the pytest fixture: a file someone else can change is refused
REPORT = "report"  # verify, list, show...: read anyway, the problems kept on the set (a .py set is never run)
OWN = "own"  # vllm-surgeon's own file inside its package (runtime/compile_cache.hunk): as trusted as its code


class UntrustedSetError(HunkFileError):
    """A set file, or a folder above it, that someone other than this user or root can change: refused,
    like a broken anchor, since whoever can change it would run code in every vLLM process."""

    verb = "refused"  # what vLLM's start says of the set: "vllm-surgeon refused hunk set 'x': ..."

    def __init__(self, path: str, problems: Sequence[Problem], group: int | None = None) -> None:
        self.problems = tuple(problems)
        lines = "".join(f"\n  {p}" for p in self.problems)
        detail = (
            "refused: a set is code that runs in every vLLM process, and someone other than "
            f"{_trust.euid_words(group)} can change this one:{lines}"
        )
        super().__init__(Origin(path, 1), detail)
        self.args = (f"{path}: {detail}",)  # the file, not a line: the fault is who can write it


def set_rule() -> _trust.Rule:
    """Who may own and write set files and the folders above them: this user, root, and the members of
    VLLM_SURGEON_TRUSTED_GROUP if set; a sticky folder such as /tmp may be above a set, never hold one."""
    return _trust.Rule(frozenset({_trust.euid(), 0}), group=_settings.trusted_group())


class SetReader:
    """Reads the files of one set, each once through one descriptor, opened by a walk from `/` that
    checked every directory on the way and the file itself (core/trust.py; no check-then-open race).
    `mode`: ENFORCE refuses (UntrustedSetError) a file someone else can change, REPORT reads it and
    keeps why in `problems`, OWN does not ask. A folder set's files share the walk of the folder."""

    def __init__(self, mode: str = ENFORCE) -> None:
        self.mode = mode
        self.problems: list[Problem] = []
        self._walker: _trust.Walker | None = None
        self._rule: _trust.Rule | None = None

    def __enter__(self) -> SetReader:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._walker is not None:
            self._walker.close()

    def read(self, path: Path) -> bytes:
        """The bytes of a set file (issue 7 items 2 and 8: a FIFO or device is refused, not waited on;
        every OS error is a HunkFileError naming the file)."""
        origin = Origin(str(path), 1)
        try:
            fd = self._open(path)
        except _settings.SettingError as exc:
            raise HunkFileError(origin, str(exc)) from None
        except OSError as exc:
            raise HunkFileError(origin, f"cannot open this set file: {exc.strerror or exc}") from None
        try:
            return _read_open(fd, origin)
        finally:
            os.close(fd)

    def _open(self, path: Path) -> int:
        if self.mode == OWN or not _trust.SUPPORTED:
            return os.open(path, _FLAGS)
        if self._walker is None:
            self._rule = set_rule()
            self._walker = _trust.Walker(self._rule)
        opened = self._walker.open_file(path)
        if opened.problems:
            if self.mode == ENFORCE:
                os.close(opened.fd)
                raise self.refusal(path, opened.problems)
            self.problems += [p for p in opened.problems if p not in self.problems]
        return opened.fd

    def refusal(self, path: Path, problems: Sequence[Problem] | None = None) -> UntrustedSetError:
        """The refusal of `path` for `problems` (default: all this reader found)."""
        return UntrustedSetError(str(path), self.problems if problems is None else problems, self._rule.group if self._rule else None)


_FLAGS = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)


def _read_open(fd: int, origin: Origin) -> bytes:
    """All bytes of the open file `fd`, when it is a regular file within the size limit."""
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
