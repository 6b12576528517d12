"""Find hunk sets by name: `VLLM_SURGEON_PATH`, then sets installed packages register, then bundled ones."""

from __future__ import annotations

import codecs
import dataclasses
import hashlib
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from . import _settings
from ._lines import normalize_newlines
from ._model import HunkFileError, HunkSet, Origin

SUFFIXES = (".hunk", ".patch", ".diff", ".py")
# An installed package registers a directory of sets: [project.entry-points."vllm_surgeon.hunks"]
# myteam = "myteam_patches.hunks"  (a package whose directory holds NAME.hunk files).
ENTRY_POINT_GROUP = "vllm_surgeon.hunks"
PROPOSAL = ".rebased"  # `rebase` writes NAME.rebased.SUFFIX beside the set


class UnknownSetError(LookupError):
    """A set name that is not on the search path (or is a path, not a name)."""


class SearchPathError(UnknownSetError):
    """A directory of the search path that cannot be listed: a set there cannot be ruled in or out."""


@dataclass(frozen=True)
class Location:
    """Where a set file was found: its path and which part of the search path holds it."""

    name: str
    path: Path
    source: str  # "VLLM_SURGEON_PATH", "package NAME" or "bundled"


def bundled_dir() -> Path:
    """The sets shipped with vllm-surgeon: inside the wheel, or the checkout's `hunks/`."""
    here = Path(__file__).resolve().parent
    packaged = here / "_bundled_hunks"
    return packaged if packaged.is_dir() else here.parent / "hunks"


def search_dirs() -> list[tuple[str, Path]]:
    """The search path in order, as (label, directory)."""
    dirs: list[tuple[str, Path]] = []
    for entry in _settings.search_path():
        dirs.append((_settings.PATH, Path(entry).expanduser().absolute()))
    from importlib.metadata import entry_points

    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            directory = _package_dir(ep.value)
        except Exception:  # a broken package's registration must not stop the others
            directory = None
        if directory is not None:
            dirs.append((f"package {ep.name}", directory))
    dirs.append(("bundled", bundled_dir()))
    return dirs


def _package_dir(package: str) -> Path | None:
    from ._sources import find_spec

    spec = find_spec(package.split(":")[0].strip())
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


def _sets_in(directory: Path, label: str = "search path") -> dict[str, list[Path]]:
    """Set files in `directory` by name; SearchPathError when it exists but cannot be listed."""
    found: dict[str, list[Path]] = {}
    if not directory.is_dir():
        return found
    from ._patchdir import is_set_dir

    try:
        entries = sorted(directory.iterdir())
    except OSError as exc:
        raise SearchPathError(
            f"cannot list {directory} ({label}): {exc.strerror or exc}; make it readable "
            "or take it off VLLM_SURGEON_PATH"
        ) from None
    for path in entries:
        if path.name.startswith((".", "_")):
            continue
        if path.suffix in SUFFIXES and path.is_file() and not is_proposal(path):
            found.setdefault(path.stem, []).append(path)
        elif path.is_dir() and "." not in path.name and is_set_dir(path):  # a folder set: NAME/ (not NAME.surgeon/)
            found.setdefault(path.name, []).append(path)
    return found


def is_proposal(path: Path) -> bool:
    """`NAME.rebased.hunk` (or .patch, ...): a proposal `rebase` wrote for review, never a set (issue 8)."""
    return path.stem.endswith(PROPOSAL)


def available(errors: list[str] | None = None) -> list[Location]:
    """Every set on the search path; a name found twice is listed where it wins (first).

    A directory that cannot be listed is skipped, and why is appended to `errors` when given.
    """
    seen: dict[str, Location] = {}
    for label, directory in search_dirs():
        try:
            sets = _sets_in(directory, label)
        except SearchPathError as exc:
            if errors is not None:
                errors.append(str(exc))
            continue
        for name, paths in sets.items():
            if name not in seen:
                seen[name] = Location(name, paths[0], label)
    return list(seen.values())


def _check_name(name: str) -> None:
    if not name or os.sep in name or "/" in name or name.endswith(SUFFIXES) or name in (".", ".."):
        raise UnknownSetError(
            f"{name!r} is not a hunk set name: sets are enabled by name, never by path. "
            "Put the file in a directory listed in VLLM_SURGEON_PATH and use its name without the suffix."
        )


def locate(name: str) -> Location:
    """The file for set `name`: the first directory on the search path that has one."""
    _check_name(name)
    dirs = search_dirs()
    for label, directory in dirs:
        # An unlistable directory before the one holding `name` might hold another `name`: refuse.
        paths = _sets_in(directory, label).get(name)
        if not paths:
            continue
        if len(paths) > 1:
            raise UnknownSetError(
                f"hunk set {name!r} is ambiguous: {', '.join(str(p) for p in paths)} all define it; keep one"
            )
        return Location(name, paths[0], label)
    names = sorted({loc.name for loc in available()})
    where = "; ".join(f"{label}: {d}" for label, d in dirs)
    if name.endswith(PROPOSAL):
        raise UnknownSetError(
            f"{name!r} is a proposal written by `vllm-surgeon rebase`, not a set: review it, then replace the set "
            f"with it (or rebase again with --write). Available: {', '.join(names) if names else '(none)'}"
        )
    raise UnknownSetError(
        f"unknown hunk set {name!r}. Available: {', '.join(names) if names else '(none)'}. Searched {where}"
    )


# A set file is text someone wrote: anything larger is not one (and is not read into memory).
MAX_SET_BYTES = 16 * 1024 * 1024


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


def load_file(path: Path, name: str | None = None) -> HunkSet:
    """Read one set file once and parse those bytes by its suffix; the set carries their digest.

    Every way a set file can be bad ends as a HunkFileError naming the file (and line, where the
    parser knows it): a parser that lets another exception escape is caught here as well.
    """
    from ._difffile import parse_diff_file
    from ._hunkfile import parse_hunk_file

    path = Path(path)
    name = name or path.stem
    if path.is_dir() and path.suffix not in SUFFIXES:  # a folder set: NAME/ (a directory `x.hunk` is no set file)
        from ._patchdir import parse_patch_dir

        return parse_patch_dir(path, name)
    if path.suffix not in SUFFIXES:
        raise UnknownSetError(f"{path}: unknown hunk set format {path.suffix!r}; use one of {', '.join(SUFFIXES)}")
    data = read_set_bytes(path)
    try:
        if path.suffix == ".py":
            from ._pyfile import parse_py_file

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


def load(name: str) -> HunkSet:
    """Find and parse set `name`."""
    return load_file(locate(name).path, name)


def enabled_names(value: str | None = None) -> list[str]:
    """The names in VLLM_SURGEON_HUNKS, in order, without repeats."""
    return _settings.hunks() if value is None else _settings.split_names(value)
