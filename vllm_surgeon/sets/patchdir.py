"""Folder sets: a directory named after the set, holding a patch series as teams keep them.

Either a quilt `series` file (one patch name per line, in order, optionally followed by `-pN`;
`#` starts a comment) or, without one, numbered patch files (`0001-*.patch`, as `git format-patch
-o NAME/` writes them), applied in numeric order. Each file is one commit (or, if it is an mbox of
several, each of its messages). Header fields: `# key: value` comment lines of `series` (quilt
ignores comments), and/or a `fields` file of `key: value` lines, as a `.hunk` header.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from pathlib import Path

from vllm_surgeon.core.lines import split_lines
from vllm_surgeon.core.model import HunkFileError, HunkSet, Origin, check_fields
from vllm_surgeon.sets.difffile import ParsedPatch, assemble, parse_patch
from vllm_surgeon.sets.hunkfile import parse_header_line
from vllm_surgeon.sets.reader import SetReader, decode_set_text

SERIES = "series"
FIELDS_FILE = "fields"
PATCH_SUFFIXES = (".patch", ".diff")
_NUMBERED = re.compile(r"^(\d+)")


def _number(path: Path) -> int | None:
    """The number a patch file's name starts with (`0002-...`), None when it has none."""
    found = _NUMBERED.match(path.name)
    return int(found.group(1)) if found else None


def is_set_dir(path: Path) -> bool:
    """Whether a directory looks like a folder set: a `series` file or patch files in it."""
    try:
        return (path / SERIES).is_file() or any(p.suffix in PATCH_SUFFIXES and p.is_file() for p in path.iterdir())
    except OSError:
        return False


def _read_text(path: Path, digest: hashlib._Hash, reader: SetReader) -> str:
    """One file of the folder, read once (no FIFO hangs) through `reader` (its whole path checked:
    issue 13); its name and bytes go into the set's digest, so the code cache keys on exactly what
    was parsed (issue 7 item 2)."""
    data = reader.read(path)
    digest.update(path.name.encode() + b"\0" + len(data).to_bytes(8, "big") + data)
    return decode_set_text(data, str(path))


def _series(
    directory: Path, fields: dict[str, str], origins: dict[str, Origin], digest: hashlib._Hash, reader: SetReader
) -> list[tuple[Path, int | None]]:
    series = directory / SERIES
    out: list[tuple[Path, int | None]] = []
    for number, line in enumerate(split_lines(_read_text(series, digest, reader)), start=1):
        origin = Origin(str(series), number)
        stripped = line.strip()
        if stripped.startswith("#"):
            parse_header_line(stripped[1:].strip(), origin, fields, origins, strict=False)
            continue
        stripped = stripped.split(" #", 1)[0].strip()
        if not stripped:
            continue
        name, *options = stripped.split()
        strip = None
        for option in options:
            match = re.fullmatch(r"-p(\d{1,3})", option)
            if match is None:
                raise HunkFileError(origin, f"series option {option!r} is not supported; only -pN (strip N leading path components)")
            strip = int(match.group(1))
        path = directory / name
        if Path(name).is_absolute() or ".." in Path(name).parts:
            raise HunkFileError(origin, f"series entry {name!r} must name a patch inside {directory}")
        if not path.is_file():
            raise HunkFileError(origin, f"series names {name!r}, which is not a file in {directory}")
        out.append((path, strip))
    if not out:
        raise HunkFileError(Origin(str(series), 1), "the series file names no patch")
    return out


def _numbered(directory: Path) -> list[tuple[Path, int | None]]:
    patches = sorted(p for p in directory.iterdir() if p.suffix in PATCH_SUFFIXES and p.is_file() and not p.name.startswith("."))
    if not patches:
        raise HunkFileError(Origin(str(directory), 1), "this folder set holds no *.patch or *.diff file and no series file")
    unnumbered = [p.name for p in patches if not _NUMBERED.match(p.name)]
    if unnumbered and len(patches) > 1:
        raise HunkFileError(
            Origin(str(directory / unnumbered[0]), 1),
            f"cannot tell the order of {', '.join(unnumbered)}: number the patches (0001-..., as git format-patch -o writes "
            f"them) or list them in order in a {SERIES} file",
        )
    keyed = sorted(patches, key=lambda p: (_number(p) or 0, p.name))
    numbers = [n for n in map(_number, keyed) if n is not None]
    for a, b, pa, pb in zip(numbers, numbers[1:], keyed, keyed[1:], strict=False):
        if a == b:
            raise HunkFileError(Origin(str(pb), 1), f"{pa.name} and {pb.name} have the same number: which comes first?")
    return [(p, None) for p in keyed]


def parse_patch_dir(directory: Path, name: str, reader: SetReader) -> HunkSet:
    """Read a folder set, its files through `reader` (sets/reader.py); HunkFileError names the file and
    line at fault (an unreadable folder too)."""
    try:
        return _parse_patch_dir(directory, name, reader)
    except OSError as exc:
        raise HunkFileError(Origin(str(directory), 1), f"cannot read this folder set: {exc.strerror or exc}") from None


def _parse_patch_dir(directory: Path, name: str, reader: SetReader) -> HunkSet:
    fields: dict[str, str] = {}
    origins: dict[str, Origin] = {}
    digest = hashlib.sha256(b"folder set\0")
    fields_file = directory / FIELDS_FILE
    if fields_file.is_file():
        for number, line in enumerate(split_lines(_read_text(fields_file, digest, reader)), start=1):
            origin = Origin(str(fields_file), number)
            if line.strip() and not line.startswith("#") and not parse_header_line(line, origin, fields, origins):
                raise HunkFileError(origin, f"expected a header field (key: value), got {line[:60]!r}")
    entries = _series(directory, fields, origins, digest, reader) if (directory / SERIES).is_file() else _numbered(directory)
    patches: list[tuple[ParsedPatch, str | None]] = []
    for path, strip in entries:
        text = _read_text(path, digest, reader)
        parsed = parse_patch(text, str(path), strip)
        if not parsed.messages:
            if parsed.mbox:
                continue  # `git format-patch --cover-letter -o NAME/`: 0000-cover-letter.patch holds no diff (any
                # other message without one is refused by parse_patch)
            raise HunkFileError(Origin(str(path), 1), "no diff in this patch: expected '--- a/...', '+++ b/...' and '@@' lines")
        for key, value in parsed.fields.items():  # fields in a patch's own preamble count for the set
            if key in fields:
                raise HunkFileError(parsed.origins[key], f"header field {key!r} given twice (first at {origins[key]})")
            fields[key], origins[key] = value, parsed.origins[key]
        patches.append((parsed, _label(path)))
    check_fields(fields, origins)
    return dataclasses.replace(assemble(name, str(directory), fields, origins, patches), digest=digest.hexdigest())


def _label(path: Path) -> str:
    """A commit's subject when its file has none: `0002-sched-use-the-job-queue.patch` -> `sched use the job queue`."""
    stem = path.stem
    stem = _NUMBERED.sub("", stem).lstrip("-_ ")
    return stem.replace("-", " ") or path.name
