"""Parse one set file or folder by its suffix: `.hunk`, `.patch`/`.diff`, `.py`, or a folder of patches."""

from __future__ import annotations

import dataclasses
import hashlib
import os
from collections.abc import Iterable
from pathlib import Path

from vllm_surgeon.core.model import HunkFileError, HunkSet, Origin
from vllm_surgeon.sets.reader import ENFORCE, REPORT, SetReader, decode_set_text

SUFFIXES = (".hunk", ".patch", ".diff", ".py")


class UnknownSetError(LookupError):
    """A set name that is not on the search path (or is a path, not a name)."""


def load_file(path: Path, name: str | None = None, mode: str = ENFORCE) -> HunkSet:
    """Read one set file (or folder) once and parse those bytes by its suffix; the set carries their digest.

    Every way a set file can be bad ends as a HunkFileError naming the file (and line, where the
    parser knows it): a parser that lets another exception escape is caught here as well. `mode`
    (sets/reader.py): ENFORCE refuses a set someone other than this user or root can change
    (UntrustedSetError); REPORT reads it and lists why on the set, except a `.py` set: reading that
    runs it, so it is refused in every mode.
    """
    path = Path(path)
    name = name or path.stem
    with SetReader(mode) as reader:
        hunk_set = _parse(path, name, reader)
    if reader.problems:
        hunk_set = dataclasses.replace(hunk_set, untrusted=tuple(reader.problems))
    return hunk_set


def _parse(path: Path, name: str, reader: SetReader) -> HunkSet:
    from vllm_surgeon.sets.difffile import parse_diff_file
    from vllm_surgeon.sets.hunkfile import parse_hunk_file

    if path.is_dir() and path.suffix not in SUFFIXES:  # a folder set: NAME/ (a directory `x.hunk` is no set file)
        from vllm_surgeon.sets.patchdir import parse_patch_dir

        return parse_patch_dir(path, name, reader)
    if path.suffix not in SUFFIXES:
        raise UnknownSetError(f"{path}: unknown hunk set format {path.suffix!r}; use one of {', '.join(SUFFIXES)}")
    data = reader.read(path)
    try:
        if path.suffix == ".py":
            if reader.problems:  # reading a .py set runs it: never one someone else can change
                raise reader.refusal(path)
            from vllm_surgeon.sets.pyfile import parse_py_file

            hunk_set = parse_py_file(str(path), name, data)
        else:
            text = decode_set_text(data, str(path))
            parse = parse_hunk_file if path.suffix == ".hunk" else parse_diff_file
            hunk_set = parse(text, str(path), name)
    except (HunkFileError, UnknownSetError):
        raise
    except RecursionError:
        raise HunkFileError(Origin(str(path), 1), "nested too deeply to read") from None
    except Exception as exc:  # a parser let something through: still the file's fault, named
        raise HunkFileError(Origin(str(path), 1), f"cannot read this set: {type(exc).__name__}: {exc}") from None
    return dataclasses.replace(hunk_set, digest=hashlib.sha256(data).hexdigest())


def set_text(hunk_set: HunkSet) -> str:
    """The text of a set file as it was parsed (`rebase` writes the user's own lines back); read again,
    with the same checks, and refused when the file changed since (its digest differs)."""
    path = Path(hunk_set.path)
    with SetReader(REPORT) as reader:
        data = reader.read(path)
    if hunk_set.digest and hashlib.sha256(data).hexdigest() != hunk_set.digest:
        raise HunkFileError(Origin(str(path), 1), "the file changed while it was read; run the command again")
    return decode_set_text(data, str(path))


def distinct(sets: Iterable[HunkSet], together: bool) -> list[HunkSet]:
    """`sets` with a set given again (same name, same file) kept once, where first given, as the runtime
    reads VLLM_SURGEON_HUNKS=a,a (issue 13: `verify a a --together` refused the second copy). Sets
    planned `together` are told apart by name: two different files of one name are an UnknownSetError."""
    kept: dict[tuple[str, str], HunkSet] = {}
    names: dict[str, HunkSet] = {}
    for hunk_set in sets:
        kept.setdefault((hunk_set.name, os.path.realpath(hunk_set.path)), hunk_set)
        first = names.setdefault(hunk_set.name, hunk_set)
        if together and os.path.realpath(first.path) != os.path.realpath(hunk_set.path):
            raise UnknownSetError(
                f"two different sets are named {hunk_set.name!r} ({first.path} and {hunk_set.path}): "
                "they cannot be planned together; rename one"
            )
    return list(kept.values())
