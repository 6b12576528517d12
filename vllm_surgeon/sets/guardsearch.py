"""Find guard records (`NAME.guard`) by name on the search path sets use, and read them as sets are read.

The same directories in the same order as sets (sets/search.py: VLLM_SURGEON_PATH, the folders installed
packages register, the bundled ones), the same naming rules (a name, never a path; the first directory
holding one wins), and the same reader (sets/reader.py) for the file's bytes: a record is read with
every check a set file is read with.
"""

from __future__ import annotations

from pathlib import Path

from vllm_surgeon.core.model import HunkFileError, Origin
from vllm_surgeon.sets.guardfile import SUFFIX, GuardedFunction, GuardRecord, parse_guard_file
from vllm_surgeon.sets.loader import UnknownSetError
from vllm_surgeon.sets.reader import ENFORCE, SetReader, decode_set_text
from vllm_surgeon.sets.search import Location, SearchPathError, first_on_path, search_dirs


def read_guard_file(path: Path, name: str | None = None, mode: str = ENFORCE) -> GuardRecord:
    """Read one `.guard` file through the set reader and parse it; HunkFileError names file and line.
    `mode` as for sets (sets/reader.py, issue 13): the commands read records as they read sets (REPORT);
    in vLLM (a refusal's message) a record someone else can change is not read."""
    path = Path(path)
    name = name or path.name.removesuffix(SUFFIX)
    with SetReader(mode) as reader:
        data = reader.read(path)
    text = decode_set_text(data, str(path))
    try:
        return parse_guard_file(text, str(path), name)
    except HunkFileError:
        raise
    except RecursionError:
        raise HunkFileError(Origin(str(path), 1), "nested too deeply to read") from None
    except Exception as exc:  # the parser let something through: still the file's fault, named
        raise HunkFileError(Origin(str(path), 1), f"cannot read this guard record: {type(exc).__name__}: {exc}") from None


def _records_in(directory: Path, label: str) -> dict[str, Path]:
    if not directory.is_dir():
        return {}
    try:
        entries = sorted(directory.iterdir())
    except OSError as exc:
        raise SearchPathError(f"cannot list {directory} ({label}): {exc.strerror or exc}; make it readable "
                              "or take it off VLLM_SURGEON_PATH") from None
    return {p.name.removesuffix(SUFFIX): p for p in entries
            if p.name.endswith(SUFFIX) and not p.name.startswith((".", "_")) and p.is_file()}


def available_guards(errors: list[str] | None = None) -> list[Location]:
    """Every guard record on the search path; a name found twice is listed where it wins (first).
    A directory that cannot be listed is skipped, and why is appended to `errors` when given."""
    return first_on_path(_records_in, errors)


def locate_guard(name: str) -> Location | None:
    """The record `name` (the first directory of the search path holding NAME.guard), or None."""
    if not name or "/" in name or "\\" in name or name.endswith(SUFFIX) or name in (".", ".."):
        raise UnknownSetError(f"{name!r} is not a guard record name: records are found by name, never by path "
                              f"(NAME for NAME{SUFFIX} in a directory of VLLM_SURGEON_PATH)")
    for label, directory in search_dirs():
        path = _records_in(directory, label).get(name)
        if path is not None:
            return Location(name, path, label)
    return None


def recorded_source(target: str, digest: str) -> GuardedFunction | None:
    """A record on the search path holding `target` at `digest` (its source shows what changed), or
    None. Best effort, for a refusal's message: a record or directory that cannot be read is passed over."""
    try:
        locations = available_guards()
    except (UnknownSetError, OSError):
        return None
    for location in locations:
        try:
            record = read_guard_file(location.path, location.name)
        except (HunkFileError, OSError):
            continue
        for function in record.functions:
            if str(function.target) == target and function.digest == digest:
                return function
    return None
