"""Read plain unified diffs (`git diff`, `diff -u`) of vLLM's files as hunk sets.

Each diff hunk becomes an anchored hunk on its file's module; the function it changes is found
later, from where its changed lines land in the source. `@@ -l,n +l,n @@` numbers are kept as
hints only. Lines before the first file header may carry header fields (`vllm: >=0.30`), bare
or after `# `; other preamble text (a commit message, `diff --git`, `index`) is skipped.
"""

from __future__ import annotations

import re

from ._hunkfile import parse_header_line
from ._model import AnchoredHunk, HunkFileError, HunkSet, Line, Origin, Target, check_fields

_HUNK_HEADER = re.compile(r"^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@ ?(.*)$")
_UNSUPPORTED = ("rename from", "rename to", "copy from", "copy to", "Binary files", "GIT binary patch")


def module_for_path(path: str) -> str | None:
    """`a/vllm/v1/core/sched/scheduler.py` -> `vllm.v1.core.sched.scheduler`; None if not a .py file."""
    path = path.strip()
    if path.startswith('"') and path.endswith('"'):
        path = path[1:-1]
    if "\t" in path:  # `diff -u` appends a timestamp after a tab
        path = path.split("\t", 1)[0]
    if not path.endswith(".py") or path == "/dev/null":
        return None
    parts = [p for p in path[: -len(".py")].replace("\\", "/").split("/") if p not in ("", ".")]
    if "vllm" in parts:
        parts = parts[len(parts) - 1 - parts[::-1].index("vllm") :]
    elif parts and parts[0] in ("a", "b") and len(parts) > 1:
        parts = parts[1:]
    else:
        return None
    if parts and parts[-1] == "__init__":
        parts = parts[:-1]
    if not parts or not all(p.isidentifier() for p in parts):
        return None
    return ".".join(parts)


def parse_diff_file(text: str, path: str, name: str) -> HunkSet:
    """Parse a unified diff; a malformed or unsupported part raises HunkFileError naming path:line."""
    lines = [raw.rstrip("\r") for raw in text.splitlines()]
    fields: dict[str, str] = {}
    origins: dict[str, Origin] = {}
    hunks: list[AnchoredHunk] = []
    module: str | None = None
    seen_file = False
    i = 0
    while i < len(lines):
        line = lines[i]
        origin = Origin(path, i + 1)
        if line.startswith("--- ") and i + 1 < len(lines) and lines[i + 1].startswith("+++ "):
            seen_file = True
            old, new = line[4:], lines[i + 1][4:]
            if old.split("\t", 1)[0].strip() == "/dev/null":
                raise HunkFileError(
                    origin, f"this diff creates the file {new.strip()!r}; vllm-surgeon only changes existing modules"
                )
            module = module_for_path(old) or module_for_path(new)
            if module is None:
                raise HunkFileError(
                    origin,
                    f"cannot tell which module {old.strip()!r} is: a diff must name the file by its path "
                    "inside the package, e.g. a/vllm/v1/core/sched/scheduler.py",
                )
            i += 2
            continue
        if line.startswith("@@"):
            match = _HUNK_HEADER.match(line)
            if match is None:
                raise HunkFileError(origin, f"malformed hunk header {line!r}; expected '@@ -l,n +l,n @@'")
            if module is None:
                raise HunkFileError(origin, "hunk before any '--- a/...' / '+++ b/...' file header")
            hunk, i = _read_hunk(lines, i, match, path, module)
            hunks.append(hunk)
            continue
        if line.startswith(_UNSUPPORTED):
            raise HunkFileError(origin, f"unsupported diff content ({line.split(' ')[0]} ...): only text changes to existing files")
        if not seen_file:
            parse_header_line(line[2:] if line.startswith("# ") else line, origin, fields, origins, strict=False)
        i += 1
    if not hunks:
        raise HunkFileError(Origin(path, 1), "no diff hunks found: expected '--- a/...', '+++ b/...' and '@@ -l,n +l,n @@' lines")
    check_fields(fields, origins)
    return HunkSet(name=name, path=path, kind="diff", hunks=tuple(hunks), fields=fields, field_origins=origins)


def _read_hunk(lines: list[str], i: int, match: re.Match, path: str, module: str) -> tuple[AnchoredHunk, int]:
    """Read one `@@` hunk starting at lines[i]; returns it and the index after it."""
    header = Origin(path, i + 1)
    old_start = int(match.group(1))
    old_count = 1 if match.group(2) is None else int(match.group(2))
    new_count = 1 if match.group(4) is None else int(match.group(4))
    scope = match.group(5).strip() or None
    body: list[Line] = []
    old_seen = new_seen = 0
    i += 1
    while (old_seen < old_count or new_seen < new_count) and i < len(lines):
        line = lines[i]
        origin = Origin(path, i + 1)
        if line.startswith("\\"):
            i += 1
            continue
        op, content = (line[0], line[1:]) if line else (" ", "")  # some tools strip a blank context line's space
        if op not in " -+":
            break
        body.append(Line(op, content, origin))
        old_seen += op != "+"
        new_seen += op != "-"
        i += 1
    while i < len(lines) and lines[i].startswith("\\"):
        i += 1
    if old_seen != old_count or new_seen != new_count:
        raise HunkFileError(
            header,
            f"hunk ends early or runs long: its header promises {old_count} old and {new_count} new lines, "
            f"the body has {old_seen} and {new_seen}",
        )
    if not any(b.op != " " for b in body):
        raise HunkFileError(header, "diff hunk changes nothing: it has no '-' or '+' lines")
    # With no old lines, `-l,0` means "after line l"; otherwise l is the first old line.
    hint = old_start if old_count else old_start + 1
    hunk = AnchoredHunk(
        origin=header, target=Target(module), lines=tuple(body), from_diff=True, hint_line=hint, hint_scope=scope
    )
    return hunk, i
