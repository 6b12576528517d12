"""Find hunk sets by name: `VLLM_SURGEON_PATH`, then sets installed packages register, then bundled ones."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from vllm_surgeon.core import settings as _settings, trust as _trust
from vllm_surgeon.core.model import HunkSet
from vllm_surgeon.core.trust import Problem
from vllm_surgeon.sets.loader import SUFFIXES, UnknownSetError, load_file
from vllm_surgeon.sets.reader import ENFORCE, set_rule

# An installed package registers a directory of sets: [project.entry-points."vllm_surgeon.hunks"]
# myteam = "myteam_patches.hunks"  (a package whose directory holds NAME.hunk files).
ENTRY_POINT_GROUP = "vllm_surgeon.hunks"
PROPOSAL = ".rebased"  # `rebase` writes NAME.rebased.SUFFIX beside the set


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
    package = Path(__file__).resolve().parent.parent  # vllm_surgeon/
    packaged = package / "_bundled_hunks"
    return packaged if packaged.is_dir() else package.parent / "hunks"


def search_dirs() -> list[tuple[str, Path]]:
    """The search path in order, as (label, directory)."""
    try:
        dirs = [(_settings.PATH, Path(entry)) for entry in _settings.search_dirs()]
    except _settings.SettingError as exc:  # a load error like any other: `warn` runs without the sets (issue 13)
        raise SearchPathError(str(exc)) from None
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
    from vllm_surgeon.trees.installed import find_spec

    spec = find_spec(package.split(":")[0].strip())
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


def _sets_in(directory: Path, label: str = "search path") -> dict[str, list[Path]]:
    """Set files in `directory` by name; SearchPathError when it exists but cannot be listed."""
    found: dict[str, list[Path]] = {}
    if not directory.is_dir():
        return found
    from vllm_surgeon.sets.patchdir import is_set_dir

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
    return first_on_path(lambda directory, label: {n: paths[0] for n, paths in _sets_in(directory, label).items()}, errors)


def first_on_path(listing: Callable[[Path, str], dict[str, Path]], errors: list[str] | None = None) -> list[Location]:
    """What `listing` finds in each search-path directory, by name, where each name wins (its first
    directory): the one walk for sets and guard records. A directory that cannot be listed is skipped,
    and why is appended to `errors` when given."""
    seen: dict[str, Location] = {}
    for label, directory in search_dirs():
        try:
            found = listing(directory, label)
        except SearchPathError as exc:
            if errors is not None:
                errors.append(str(exc))
            continue
        for name, path in found.items():
            seen.setdefault(name, Location(name, path, label))
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
            unsafe = "".join(f"\n  and vLLM refuses every set in that folder: {p}" for p in untrusted(directory))
            raise UnknownSetError(
                f"hunk set {name!r} is ambiguous: {', '.join(str(p) for p in paths)} all define it; keep one{unsafe}"
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


def load(name: str, mode: str = ENFORCE) -> HunkSet:
    """Find and parse set `name` (`mode`: sets/reader.py; by default a set others can change is refused)."""
    return load_file(locate(name).path, name, mode)


def untrusted(directory: Path) -> list[Problem]:
    """Why vLLM refuses every set in search directory `directory` (issue 13): someone other than this
    user or root can change it or a folder above it. Empty when it is safe, or not there to be read
    (the search path's other checks say that), or when VLLM_SURGEON_TRUSTED_GROUP is not understood."""
    if not _trust.SUPPORTED:
        return []
    try:
        with _trust.Walker(set_rule()) as walker:
            return walker.check_dir(directory)
    except (OSError, _settings.SettingError):
        return []


def enabled_names(value: str | None = None) -> list[str]:
    """The names in VLLM_SURGEON_HUNKS, in order, without repeats."""
    return _settings.hunks() if value is None else _settings.split_names(value)
