"""Read the `.hunk` format: header fields, then `@@ module:Qualified.name` sections of ` `/`-`/`+` lines.

    description: Priority scheduling that cannot starve
    vllm: >=0.30,<0.40

    @@ vllm.v1.request:Request.__lt__
             \"\"\"
    -        if self.priority != other.priority:
    +        if aged(self) != aged(other):

Each `@@` header starts one hunk; `@@ target @@ +N` (as `capture` writes it) records that the
anchor started N lines into the target, so `verify` can say when it has moved. Lines starting with `#` in column 0 are comments (code lines
always start with ' ', '-' or '+'). An empty line inside a hunk is a blank context line; empty
lines at the end of a hunk are ignored.
"""

from __future__ import annotations

import re

from vllm_surgeon.core.lines import split_lines
from vllm_surgeon.core.model import FIELDS, AnchoredHunk, HunkFileError, HunkSet, Line, Origin, Target, check_fields

_HINT = re.compile(r"\s*\+(\d+)\b")
_MAX_HINT_DIGITS = 9  # a line offset; int() of 5,000 digits raises ValueError (issue 7 item 8)


def parse_header_line(
    line: str, origin: Origin, fields: dict[str, str], origins: dict[str, Origin], *, strict: bool = True
) -> bool:
    """Take one `key: value` header line into `fields`; False when the line is not one.

    strict: an unknown key is an error (a `.hunk` header) rather than other text (a diff preamble).
    """
    key, sep, value = line.partition(":")
    key = key.strip().lower()
    if not sep or not key or " " in key:
        return False
    if key not in FIELDS:
        if not strict:
            return False
        raise HunkFileError(
            origin, f"unknown header field {key!r}; known fields: {', '.join(FIELDS)}"
        )
    if key in fields:
        raise HunkFileError(origin, f"header field {key!r} given twice (first at line {origins[key].line})")
    fields[key] = value.strip()
    origins[key] = origin
    return True


def parse_hunk_file(text: str, path: str, name: str) -> HunkSet:
    """Parse a `.hunk` file's text; every malformed line raises HunkFileError naming path:line."""
    reader = _Reader(path)
    for number, line in enumerate(split_lines(text), start=1):
        reader.line(line, Origin(path, number))
    reader.close()
    hunks, fields, origins = reader.hunks, reader.fields, reader.origins
    if not hunks:
        raise HunkFileError(Origin(path, 1), "no hunks: add a section starting with '@@ module:Qualified.name'")
    if "root" in fields:  # a .hunk names its targets by module: there are no paths to be relative to
        raise HunkFileError(origins["root"], "root: is for diff sets (their paths are relative to that package's folder); "
                            "a .hunk section names its module")
    check_fields(fields, origins)
    return HunkSet(name=name, path=path, kind="hunk", hunks=tuple(hunks), fields=fields, field_origins=origins)


class _Reader:
    """The `.hunk` reader's state: header fields until the first `@@`, then one section at a time."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.fields: dict[str, str] = {}
        self.origins: dict[str, Origin] = {}
        self.hunks: list[AnchoredHunk] = []
        self.current: tuple[Origin, Target, int | None, bool] | None = None
        self.body: list[Line] = []
        self.blanks: list[Line] = []  # empty lines not yet known to be inside the hunk
        self.last_field: str | None = None
        self.no_eol: list[Origin] = []  # a `\ No newline at end of file` after a new module's last line

    def line(self, line: str, origin: Origin) -> None:
        if line.startswith("@@"):
            self.close()
            self.current = _section(line, origin)
        elif line.startswith("#"):
            pass
        elif self.current is None:
            self.header(line, origin)
        else:
            self.hunk_line(line, origin, self.current[3])

    def header(self, line: str, origin: Origin) -> None:
        if not line.strip():
            self.last_field = None
        elif line[0] in " \t" and self.last_field is not None:
            self.fields[self.last_field] += " " + line.strip()
        elif parse_header_line(line, origin, self.fields, self.origins):
            self.last_field = line.partition(":")[0].strip().lower()
        else:
            raise HunkFileError(
                origin,
                f"expected a header field ({', '.join(FIELDS)}) or an '@@ module:Qualified.name' "
                f"line, got {line[:60]!r}",
            )

    def hunk_line(self, line: str, origin: Origin, creates: bool) -> None:
        if line == "":
            self.blanks.append(Line(" ", "", origin))
            return
        if line.startswith("\\"):  # "\ No newline at end of file"
            if creates and self.body and self.body[-1].op == "+" and not self.blanks:
                self.no_eol.append(origin)
            return
        op = line[0]
        if op not in " -+":
            raise HunkFileError(
                origin,
                f"a hunk line must start with ' ' (context), '-' (removed) or '+' (added); "
                f"got {op!r} in {line[:60]!r}",
            )
        self.body.extend(self.blanks)  # empty lines followed by more hunk lines are blank context
        self.blanks.clear()
        self.body.append(Line(op, line[1:], origin))

    def close(self) -> None:
        if self.current is None:
            return
        origin, target, offset, creates = self.current
        body = self.body
        if not creates and not any(b.op != " " for b in body):  # `@@ m @@ new` alone creates an empty module
            raise HunkFileError(origin, f"hunk for {target} changes nothing: it has no '-' or '+' lines")
        if creates and any(b.op != "+" for b in body):
            bad = next(b for b in body if b.op != "+")
            raise HunkFileError(bad.origin, f"'@@ {target} @@ new' creates the module: every line of it starts with '+'")
        if creates and self.no_eol and body:
            # The module's text ends without a newline: as a diff's marker does, the hunk replaces the empty
            # last element of the text it creates (what `convert` writes for such a new module).
            body.append(Line("-", "", self.no_eol[0]))
        self.no_eol.clear()
        self.hunks.append(AnchoredHunk(origin=origin, target=target, lines=tuple(body), hint_offset=offset, creates=creates))
        self.body = []
        self.blanks.clear()


def _section(line: str, origin: Origin) -> tuple[Origin, Target, int | None, bool]:
    """An `@@ target @@ [+N | new]` line: (origin, target, position hint, creates the module)."""
    spec, _, trailer = line[2:].partition("@@")
    spec = spec.strip()
    if not spec:
        raise HunkFileError(origin, "'@@' must name a target, e.g. @@ vllm.v1.request:Request.__lt__")
    hint = _HINT.match(trailer)
    if hint and len(hint.group(1)) > _MAX_HINT_DIGITS:
        raise HunkFileError(origin, f"position hint +{hint.group(1)[:12]}... is not a line offset; write '@@ target @@ +N'")
    target = Target.parse(spec, origin)
    creates = trailer.strip() == "new"  # `@@ pkg.new_module @@ new`: the module's whole text (issue 6)
    if creates and target.qualname is not None:
        raise HunkFileError(origin, f"'@@ ... @@ new' creates a module: name the module alone, not {spec!r}")
    return origin, target, int(hint.group(1)) if hint else None, creates
