"""Read unified diffs as hunk sets: `git diff`, `diff -u`, and `git format-patch` series (mbox).

A file may hold one diff, or several commits as `git format-patch --stdout` writes them (`From
<sha> Mon Sep 17 00:00:00 2001` separators, RFC-2822 headers, the commit message, a `---`
diffstat, the diff, a `-- ` signature). Each commit's hunks apply on the text the earlier commits
left, as `git am` would; so does a file's second section inside one diff. Which module a path is
(`a/vllm/v1/...`, `vllm/vllm/v1/...` from a monorepo, an absolute installed path) is decided at
plan time, against the tree being read (_paths.py); here a path is only recorded.

Header fields (`vllm: >=0.30`, `skip: tests/**`) go before the first file header of a plain diff,
bare or after `# `; in a series, before its first `From <sha>` line (commit messages are never
read as fields). Every error names the file and line.
"""

from __future__ import annotations

import email.errors
import email.header
import email.parser
import re
from dataclasses import dataclass, field, replace

from vllm_surgeon.core.lines import split_lines
from vllm_surgeon.core.model import AnchoredHunk, Commit, DiffFile, HunkFileError, HunkSet, Line, Origin, Target, check_fields
from vllm_surgeon.sets.hunkfile import parse_header_line

_HUNK_HEADER = re.compile(r"^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@ ?(.*)$")
# `git format-patch` separates messages with `From <sha> Mon Sep 17 00:00:00 2001` (a fixed magic date):
# a SHA-1 or, from a SHA-256 repository, a 64-hex object name (issue 13 item 5). A mailbox saved by a
# mail client (`From sender@host Tue Mar  4 10:00:00 2025`), which `git am` reads too, is a series as well.
_MBOX_FROM = re.compile(
    r"^From (?:([0-9a-f]{40}|[0-9a-f]{64}) |\S+ +(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun) (?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)"
    r" +\d{1,2} \d\d:\d\d:\d\d \d{4}\s*$)"
)
# Where a commit message starts in a plain diff's preamble: a mail's header (a single `git format-patch`
# file without its `From ` line), `hg export`, `git show`/`git log -p`. Fields come before it, never after.
_MESSAGE_START = re.compile(
    r"^(?:(?:From|Subject|Date|Message-I[Dd]|Return-Path|Received|Delivered-To): |# HG changeset patch$|commit [0-9a-f]{7,64}\b)"
)
_COVER_LETTER = re.compile(r"\[[^\]]*\b0+/\d+\]")  # [PATCH 0/3], [PATCH v2 00/12]: holds no diff
_SUBJECT_PREFIX = re.compile(r"^\s*(\[[^\]]*\]\s*)+")
_MAX_DIGITS = 9  # a hunk header number longer than this is not a line number (and int() has a limit)


def path_parts(path: str) -> list[str]:
    """A diff path's components: git's a/ or b/ prefix and empty or `.` components dropped."""
    parts = [p for p in path.strip().replace("\\", "/").split("/") if p not in ("", ".")]
    if len(parts) > 1 and parts[0] in ("a", "b"):
        parts = parts[1:]
    return parts


def guess_module(path: str) -> str:
    """A module name for messages before the path is resolved: the dotted path without a/ or b/."""
    parts = path_parts(path)
    if parts and parts[-1].endswith(".py"):
        parts = parts[:-1] + ([parts[-1][:-3]] if parts[-1] != "__init__.py" else [])
    return ".".join(parts) or path.strip()


@dataclass
class _Message:
    """One commit (or the whole of a plain diff): its subject, sha, and file sections in order."""

    origin: Origin
    sha: str | None = None
    subject: str | None = None
    files: list[tuple[DiffFile, list[AnchoredHunk]]] = field(default_factory=list)
    cover: bool = False  # `git format-patch --cover-letter`'s message 0/N, which holds no diff


@dataclass
class ParsedPatch:
    """What one patch file holds, before commits are numbered across a series."""

    fields: dict[str, str]
    origins: dict[str, Origin]
    messages: list[_Message]
    mbox: bool


def parse_diff_file(text: str, path: str, name: str) -> HunkSet:
    """Parse a diff or a series; a malformed or unsupported part raises HunkFileError naming path:line."""
    parsed = parse_patch(text, path)
    check_fields(parsed.fields, parsed.origins)
    return assemble(name, path, parsed.fields, parsed.origins, [(parsed, None)])


def assemble(
    name: str, path: str, fields: dict[str, str], origins: dict[str, Origin], patches: list[tuple[ParsedPatch, str | None]]
) -> HunkSet:
    """One set from parsed patch files in order (a folder set gives several; label: the file's name)."""
    messages = [(m, label) for parsed, label in patches for m in parsed.messages]
    series = len(messages) > 1 or any(p.mbox for p, _ in patches)
    commits: list[Commit] = []
    files: list[DiffFile] = []
    hunks: list[AnchoredHunk] = []
    for number, (message, label) in enumerate(messages, start=1):
        commit = None
        if series:
            subject = message.subject or label or f"patch {number}"
            commit = Commit(number, len(messages), subject, message.sha, message.origin)
            commits.append(commit)
        for diff_file, file_hunks in message.files:
            diff_file = replace(diff_file, commit=commit)
            files.append(diff_file)
            hunks += [replace(h, file=diff_file, commit=commit) for h in file_hunks]
    if not files:
        raise HunkFileError(Origin(path, 1), "no diff hunks found: expected '--- a/...', '+++ b/...' and '@@ -l,n +l,n @@' lines")
    return HunkSet(name=name, path=path, kind="diff", hunks=tuple(hunks), fields=fields, field_origins=origins,
                   files=tuple(files), commits=tuple(commits))


def parse_patch(text: str, path: str, strip: int | None = None) -> ParsedPatch:
    """Split a patch file into its messages (commits) and read each one's file sections and hunks."""
    lines = split_lines(text)
    fields: dict[str, str] = {}
    origins: dict[str, Origin] = {}
    starts = [i for i, line in enumerate(lines) if _MBOX_FROM.match(line)]
    if not starts:
        message = _Message(Origin(path, 1))
        _read_diff(lines, 0, len(lines), path, message, strip, fields, origins)
        return ParsedPatch(fields, origins, [message] if message.files else [], mbox=False)
    for i in range(starts[0]):  # before the first message: the set's header fields
        line = lines[i]
        parse_header_line(line[2:] if line.startswith("# ") else line, Origin(path, i + 1), fields, origins, strict=False)
    messages = []
    for k, start in enumerate(starts):
        end = starts[k + 1] if k + 1 < len(starts) else len(lines)
        found = _MBOX_FROM.match(lines[start])  # it matched: `starts` holds exactly such lines
        message = _Message(Origin(path, start + 1), sha=found.group(1) if found else None)
        body = _read_headers(lines, start + 1, end, path, message)
        _read_diff(lines, body, end, path, message, strip, None, None)
        if message.files:
            messages.append(message)
        elif not message.cover:
            # `git am` stops on it ("Patch is empty"): never drop a commit of the series (issue 13 item 4).
            number = f"message {k + 1} of {len(starts)}" + (f" ({message.subject!r})" if message.subject else "")
            raise HunkFileError(message.origin, f"{number} holds no diff; git am refuses an empty patch: give it its "
                                "diff, or remove the message from the series")
    return ParsedPatch(fields, origins, messages, mbox=True)


def _read_headers(lines: list[str], i: int, end: int, path: str, message: _Message) -> int:
    """Read an mbox message's RFC-2822 headers (folded, MIME-encoded) up to the blank line."""
    start = i
    while i < end and lines[i].strip():
        i += 1
    headers = email.parser.HeaderParser().parsestr("\n".join(lines[start:i]) + "\n\n")
    subject = headers.get("Subject")
    if subject is not None:
        try:
            decoded = str(email.header.make_header(email.header.decode_header(str(subject))))
        except (UnicodeError, LookupError, email.errors.HeaderParseError):
            decoded = str(subject)
        decoded = " ".join(decoded.split())
        prefix = _SUBJECT_PREFIX.match(decoded)
        message.cover = prefix is not None and _COVER_LETTER.search(prefix.group(0)) is not None
        message.subject = _SUBJECT_PREFIX.sub("", decoded) or decoded
    return i


def _number(text: str, origin: Origin) -> int:
    if len(text) > _MAX_DIGITS:
        raise HunkFileError(origin, f"line number {text[:20]}{'...' if len(text) > 20 else ''} ({len(text)} digits) is not a line number")
    return int(text)


def _unquote(raw: str) -> str:
    """A diff path: without a `diff -u` timestamp, and with git's C-style quotes undone."""
    raw = raw.split("\t", 1)[0].rstrip()
    if len(raw) >= 2 and raw[0] == raw[-1] == '"':
        body = raw[1:-1]
        try:
            return body.encode("latin-1", "backslashreplace").decode("unicode_escape").encode("latin-1").decode("utf-8")
        except (UnicodeError, ValueError):
            return body
    return raw


_STAMP = re.compile(r"\t(\d{4})-(\d\d)-(\d\d) (\d\d):(\d\d):(\d\d)(?:\.\d+)?(?: ([+-])(\d\d)(\d\d))?\s*$")


def _absent(raw: str) -> bool:
    """A `diff -N` side for a file that is not there: `--- old/x.py<TAB>1970-01-01 00:00:00 +0000` (the epoch
    in the writer's time zone, e.g. `1969-12-31 16:00:00 -0800`), as GNU patch reads it."""
    match = _STAMP.search(raw)
    if match is None:
        return False
    import datetime

    y, mo, d, h, mi, sec = (int(g) for g in match.groups()[:6])
    offset = 0 if match.group(7) is None else (int(match.group(8)) * 60 + int(match.group(9))) * (1 if match.group(7) == "+" else -1)
    try:
        moment = datetime.datetime(y, mo, d, h, mi, sec) - datetime.timedelta(minutes=offset)
    except ValueError:
        return False
    return moment == datetime.datetime(1970, 1, 1)


def _git_paths(line: str) -> tuple[str | None, str | None]:
    """`diff --git a/X b/Y` -> (a/X, b/Y) when it can be split unambiguously (quoted or equal halves)."""
    rest = line[len("diff --git "):]
    if rest.startswith('"'):
        match = re.match(r'^("(?:[^"\\]|\\.)*")\s+(.*)$', rest)
        if match:
            return _unquote(match.group(1)), _unquote(match.group(2))
        return None, None
    half = len(rest) // 2
    if len(rest) % 2 == 1 and rest[half] == " " and rest[:half][2:] == rest[half + 1 :][2:]:
        return rest[:half], rest[half + 1 :]
    parts = rest.split(" ")
    return (parts[0], parts[-1]) if len(parts) == 2 else (None, None)


_EXTENDED = ("old mode ", "new mode ", "deleted file mode ", "new file mode ", "copy from ", "copy to ",
             "rename from ", "rename to ", "similarity index ", "dissimilarity index ", "index ")


class _Section:
    """A file section being read: paths and kind from `diff --git` + extended headers or `---`/`+++`."""

    def __init__(self, origin: Origin, old: str | None, new: str | None, git: bool) -> None:
        self.origin = origin
        self.old, self.new = old, new
        self.git = git
        self.flags: set[str] = set()
        self.hunks: list[AnchoredHunk] = []
        self.has_paths = False
        self.prefixes = ("", "")  # git's a/ and b/, when its `diff --git` line has them

    def finish(self, strip: int | None) -> DiffFile:
        change = "modify"
        if "binary" in self.flags:
            change = "binary"
        elif "rename" in self.flags:
            change = "rename"
        elif "copy" in self.flags:
            change = "copy"
        elif "delete" in self.flags or (self.new is None and self.old is not None):
            change = "delete"
        elif "new" in self.flags or (self.old is None and self.new is not None):
            change = "new"
        elif "mode" in self.flags and not self.hunks:
            change = "mode"
        return DiffFile(self.old, self.new, self.origin, change, strip=strip)


def _read_diff(
    lines: list[str], i: int, end: int, path: str, message: _Message, strip: int | None,
    fields: dict[str, str] | None, origins: dict[str, Origin] | None,
) -> None:
    """Read file sections and hunks from lines[i:end] into `message`.

    fields: a plain diff's preamble fields are read into it (None in an mbox message, whose text
    before the diff is a commit message).
    """
    reader = _DiffReader(lines, end, path, message, strip, fields, origins)
    while i < end:
        if reader.mbox and lines[i] == "-- " and reader.section is not None:
            break  # the signature: `-- ` then git's version; nothing after it is diff content
        i = reader.step(i)
    reader.close()


class _DiffReader:
    """The state of `_read_diff`: the file section being read; each `step` reads from one line on."""

    def __init__(self, lines: list[str], end: int, path: str, message: _Message, strip: int | None,
                 fields: dict[str, str] | None, origins: dict[str, Origin] | None) -> None:
        self.lines, self.end, self.path, self.message, self.strip = lines, end, path, message, strip
        self.fields, self.origins = fields, origins  # set to None where a plain diff's message starts
        self.mbox = fields is None
        self.section: _Section | None = None

    def step(self, i: int) -> int:
        """Read what starts at lines[i]; the index of the next line to read."""
        line = self.lines[i]
        origin = Origin(self.path, i + 1)
        if line.startswith("diff --git "):
            self.close()
            old, new = _git_paths(line)
            self.section = _Section(origin, old, new, git=True)
            if line.startswith(('diff --git a/', 'diff --git "a/')):
                self.section.prefixes = ("a/", "b/")
            return i + 1
        if line.startswith("--- ") and i + 1 < self.end and self.lines[i + 1].startswith("+++ "):
            self.file_header(line, self.lines[i + 1], origin)
            return i + 2
        if line.startswith("@@"):
            return self.hunk(i, line, origin)
        section = self.section
        if section is not None and section.git and not section.has_paths and not section.hunks:
            if line.startswith(_EXTENDED):
                _extended(section, line)
                return i + 1
            if line.startswith("Binary files ") or line == "GIT binary patch":
                return self.binary(i, line)
        if section is None and self.fields is not None and self.origins is not None and line[:1] not in (" ", "\t"):
            # before the diff: a plain diff's preamble fields (`git show` indents its message), up to where
            # a commit message starts: a message is never a header (issue 13 item 5)
            if _MESSAGE_START.match(line):
                self.fields = self.origins = None
            else:
                parse_header_line(line[2:] if line.startswith("# ") else line, origin, self.fields, self.origins, strict=False)
        return i + 1

    def file_header(self, minus: str, plus: str, origin: Origin) -> None:
        """A `--- old` / `+++ new` pair: the paths of a git section, or a plain diff's new section."""
        old_text, new_text = _unquote(minus[4:]), _unquote(plus[4:])
        # `diff -Naur` writes a file that one side lacks with the epoch as its time stamp.
        old_absent, new_absent = _absent(minus[4:]), _absent(plus[4:])
        old = None if old_text == "/dev/null" or (old_absent and not new_absent) else old_text
        new = None if new_text == "/dev/null" or (new_absent and not old_absent) else new_text
        section = self.section
        if section is None or not section.git or section.has_paths or section.hunks:
            self.close()
            section = self.section = _Section(origin, old, new, git=False)
        else:
            section.old = old if "new" not in section.flags else None
            section.new = new if "delete" not in section.flags else None
        section.has_paths = True

    def hunk(self, i: int, line: str, origin: Origin) -> int:
        """An `@@` line: a hunk of the current section (or, before any diff, text to pass over)."""
        match = _HUNK_HEADER.match(line)
        if match is None:
            if self.section is None:
                return i + 1  # e.g. a commit message line; diff content has not started
            raise HunkFileError(origin, f"malformed hunk header {line!r}; expected '@@ -l,n +l,n @@'")
        if self.section is None and self.mbox:
            return i + 1  # a commit message quoting a diff: the diff itself has not started
        if self.section is None or (self.section.git and not self.section.has_paths):
            raise HunkFileError(origin, "hunk before any '--- a/...' / '+++ b/...' file header")
        hunk, i = _read_hunk(self.lines, i, self.end, match, self.path, self.section)
        self.section.hunks.append(hunk)
        return i

    def binary(self, i: int, line: str) -> int:
        """A binary file's section: flagged; git's base85 data skipped up to the blank line."""
        assert self.section is not None
        self.section.flags.add("binary")
        i += 1
        if line == "GIT binary patch":
            while i < self.end and self.lines[i].strip():
                i += 1
        return i

    def close(self) -> None:
        section = self.section
        if section is None:
            return
        new = section.new or ""
        if section.git and not section.hunks and "new" in section.flags and new.endswith(".py"):
            # git's diff of a new *empty* file (`index 0000000..e69de29`, an empty `__init__.py` of a new
            # package) has no hunk: the file is still created, as patch and git apply create it.
            section.hunks.append(AnchoredHunk(origin=section.origin, target=Target(guess_module(new)),
                                              lines=(), from_diff=True, creates=True))
        if not section.hunks and not section.flags:
            # A header and nothing it changes: a diff cut short. git apply and patch refuse it (issue 13 item 4).
            what = "this `diff --git` section" if section.git else "this file header (`---`/`+++`)"
            raise HunkFileError(section.origin, f"{what} of {section.finish(self.strip).name or '?'} holds no hunk "
                                "and no change git records (new, deleted, renamed, copied, binary, mode): git apply "
                                "refuses it; the diff was cut short, or the header is left over")
        self.message.files.append((section.finish(self.strip), section.hunks))
        self.section = None


def _extended(section: _Section, line: str) -> None:
    """One git extended header line (mode, new/deleted file, rename, copy, index)."""
    if line.startswith("new file mode "):
        section.flags.add("new")
        section.old = None
    elif line.startswith("deleted file mode "):
        section.flags.add("delete")
        section.new = None
    elif line.startswith(("rename from ", "rename to ", "copy from ", "copy to ")):
        kind, side, raw = line.split(" ", 2)
        section.flags.add(kind)
        # The paths git writes here (never with a/ or b/) name the file when the `diff --git` line could not
        # be split: a rename of `x y.yml` to `x-y.yml` (ipex-llm's vLLM 0.6.6 patch).
        a, b = section.prefixes
        if side == "from" and section.old is None:
            section.old = a + _unquote(raw)
        elif side == "to" and section.new is None:
            section.new = b + _unquote(raw)
    elif line.startswith(("old mode ", "new mode ")):
        section.flags.add("mode")


def _read_hunk(lines: list[str], i: int, end: int, match: re.Match, path: str, section: _Section) -> tuple[AnchoredHunk, int]:
    """Read one `@@` hunk starting at lines[i]; returns it and the index after it."""
    header = Origin(path, i + 1)
    old_start = _number(match.group(1), header)
    old_count = 1 if match.group(2) is None else _number(match.group(2), header)
    new_count = 1 if match.group(4) is None else _number(match.group(4), header)
    _number(match.group(3), header)
    scope = match.group(5).strip() or None
    body, old_no_eol, new_no_eol, i = _hunk_body(lines, i + 1, end, path, old_count, new_count)
    old_seen, new_seen = sum(b.op != "+" for b in body), sum(b.op != "-" for b in body)
    if old_seen != old_count or new_seen != new_count:
        raise HunkFileError(
            header,
            f"hunk ends early or runs long: its header promises {old_count} old and {new_count} new lines, "
            f"the body has {old_seen} and {new_seen}",
        )
    if not any(b.op != " " for b in body):
        raise HunkFileError(header, "diff hunk changes nothing: it has no '-' or '+' lines")
    # Sources are held as text.split("\n"): a file ending in a newline has a last, empty element.
    # A hunk at the end of a file without one adds or drops that element, and must sit at the end.
    if old_no_eol and not new_no_eol:
        body.append(Line("+", "", header))
    elif new_no_eol and not old_no_eol:
        body.append(Line("-", "", header))
    creates = section.old is None or "new" in section.flags
    if creates and old_count:
        raise HunkFileError(header, f"this hunk creates {section.new!r} but expects {old_count} old lines")
    # With no old lines, `-l,0` means "after line l"; otherwise l is the first old line.
    hint = old_start if old_count else old_start + 1
    hunk = AnchoredHunk(
        origin=header, target=Target(guess_module(section.new or section.old or "")), lines=tuple(body), from_diff=True,
        hint_line=hint, hint_scope=scope, at_end=old_no_eol or new_no_eol, creates=creates,
    )
    return hunk, i


def _hunk_body(lines: list[str], start: int, end: int, path: str, old_count: int, new_count: int) -> tuple[list[Line], bool, bool, int]:
    """A hunk's lines from lines[start] until its header's counts are met (or a line is no hunk line):
    (body, old side lacks a final newline, new side does, index after the body)."""
    body: list[Line] = []
    old_seen = new_seen = 0
    old_no_eol = new_no_eol = False
    for i in range(start, end):
        line = lines[i]
        if line.startswith("\\"):  # "\ No newline at end of file": about the line before it
            if body:
                old_no_eol |= body[-1].op in " -"
                new_no_eol |= body[-1].op in " +"
            continue
        op, content = (line[0], line[1:]) if line else (" ", "")  # some tools strip a blank context line's space
        if (old_seen >= old_count and new_seen >= new_count) or op not in " -+":
            return body, old_no_eol, new_no_eol, i
        body.append(Line(op, content, Origin(path, i + 1)))
        old_seen += op != "+"
        new_seen += op != "-"
    return body, old_no_eol, new_no_eol, end
