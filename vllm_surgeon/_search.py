"""Find hunk sets by name: `VLLM_SURGEON_PATH`, then sets installed packages register, then bundled ones."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ._model import HunkFileError, HunkSet, Origin

SUFFIXES = (".hunk", ".patch", ".diff", ".py")
# An installed package registers a directory of sets: [project.entry-points."vllm_surgeon.hunks"]
# myteam = "myteam_patches.hunks"  (a package whose directory holds NAME.hunk files).
ENTRY_POINT_GROUP = "vllm_surgeon.hunks"
PROPOSAL = ".rebased"  # `rebase` writes NAME.rebased.SUFFIX beside the set


class UnknownSetError(LookupError):
    """A set name that is not on the search path (or is a path, not a name)."""


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
    for entry in os.environ.get("VLLM_SURGEON_PATH", "").split(os.pathsep):
        if entry.strip():
            dirs.append(("VLLM_SURGEON_PATH", Path(entry.strip()).expanduser().absolute()))
    from importlib.metadata import entry_points

    for ep in entry_points(group=ENTRY_POINT_GROUP):
        directory = _package_dir(ep.value)
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


def _sets_in(directory: Path) -> dict[str, list[Path]]:
    found: dict[str, list[Path]] = {}
    if not directory.is_dir():
        return found
    from ._patchdir import is_set_dir

    for path in sorted(directory.iterdir()):
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


def available() -> list[Location]:
    """Every set on the search path; a name found twice is listed where it wins (first)."""
    seen: dict[str, Location] = {}
    for label, directory in search_dirs():
        for name, paths in _sets_in(directory).items():
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
        paths = _sets_in(directory).get(name)
        if not paths:
            continue
        if len(paths) > 1:
            raise UnknownSetError(
                f"hunk set {name!r} is ambiguous: {', '.join(str(p) for p in paths)} all define it; keep one"
            )
        return Location(name, paths[0], label)
    names = sorted({n for _, d in dirs for n in _sets_in(d)})
    where = "; ".join(f"{label}: {d}" for label, d in dirs)
    if name.endswith(PROPOSAL):
        raise UnknownSetError(
            f"{name!r} is a proposal written by `vllm-surgeon rebase`, not a set: review it, then replace the set "
            f"with it (or rebase again with --write). Available: {', '.join(names) if names else '(none)'}"
        )
    raise UnknownSetError(
        f"unknown hunk set {name!r}. Available: {', '.join(names) if names else '(none)'}. Searched {where}"
    )


def load_file(path: Path, name: str | None = None) -> HunkSet:
    """Parse one set file by its suffix; HunkFileError names the file and line at fault."""
    from ._difffile import parse_diff_file
    from ._hunkfile import parse_hunk_file

    name = name or path.stem
    if path.is_dir():
        from ._patchdir import parse_patch_dir

        return parse_patch_dir(path, name)
    if path.suffix == ".py":
        from ._pyfile import parse_py_file

        return parse_py_file(str(path), name)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise HunkFileError(Origin(str(path), 1), f"not UTF-8 text: {exc}") from None
    if path.suffix == ".hunk":
        return parse_hunk_file(text, str(path), name)
    if path.suffix in (".patch", ".diff"):
        return parse_diff_file(text, str(path), name)  # one diff, or a series (git format-patch --stdout)
    raise UnknownSetError(f"{path}: unknown hunk set format {path.suffix!r}; use one of {', '.join(SUFFIXES)}")


def load(name: str) -> HunkSet:
    """Find and parse set `name`."""
    return load_file(locate(name).path, name)


def enabled_names(value: str | None = None) -> list[str]:
    """The names in VLLM_SURGEON_HUNKS, in order, without repeats."""
    value = os.environ.get("VLLM_SURGEON_HUNKS", "") if value is None else value
    return list(dict.fromkeys(n.strip() for n in value.split(",") if n.strip()))
