"""The data every part shares: hunk sets, their hunks, and the file and line each came from."""

from __future__ import annotations

import keyword
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

from packaging.specifiers import InvalidSpecifier, SpecifierSet

from vllm_surgeon.core.trust import Problem


@dataclass(frozen=True)
class Origin:
    """A place in a hunk file: what every error about that file points at."""

    path: str
    line: int

    def __str__(self) -> str:
        return f"{self.path}:{self.line}"


class HunkFileError(ValueError):
    """A hunk file that cannot be read as written; the message starts with `file:line:`."""

    def __init__(self, origin: Origin, message: str) -> None:
        super().__init__(f"{origin}: {message}")
        self.origin = origin
        self.detail = message


@dataclass(frozen=True)
class Target:
    """What a hunk changes: a module, and a function or class in it (None: module scope)."""

    module: str
    qualname: str | None = None

    def __str__(self) -> str:
        return self.module if self.qualname is None else f"{self.module}:{self.qualname}"

    @classmethod
    def parse(cls, spec: str, origin: Origin) -> Target:
        """Read `package.module:Class.method` (or just `package.module`), refusing malformed names."""
        spec = spec.strip()
        module, sep, qualname = spec.partition(":")
        if not _dotted(module, allow_locals=False):
            raise HunkFileError(
                origin,
                f"target {spec!r}: {module!r} is not a module name; "
                "write it as package.module:Class.method, e.g. "
                "vllm.v1.core.sched.scheduler:Scheduler.schedule",
            )
        if sep and not _dotted(qualname, allow_locals=True):
            raise HunkFileError(
                origin,
                f"target {spec!r}: {qualname!r} is not a qualified name like Class.method",
            )
        return cls(module, qualname if sep else None)


def _dotted(name: str, *, allow_locals: bool) -> bool:
    parts = name.split(".")
    return bool(name) and all(
        (p.isidentifier() and not keyword.iskeyword(p)) or (allow_locals and p == "<locals>")
        for p in parts
    )


@dataclass(frozen=True)
class Line:
    """One line of an anchored hunk: op is ' ' (context), '-' (removed) or '+' (added)."""

    op: str
    text: str
    origin: Origin


@dataclass(frozen=True)
class Commit:
    """One commit of a patch series (an mbox message, or one file of a patch folder)."""

    number: int  # 1-based, in the order the series applies
    total: int
    subject: str
    sha: str | None
    origin: Origin  # where the commit starts (its `From <sha>` line, or its file's first line)

    def label(self) -> str:
        """`commit 2/3 'sched: use the job queue'` — what refusals, verify and list print."""
        sha = f" {self.sha[:12]}" if self.sha else ""
        return f"commit {self.number}/{self.total}{sha} {self.subject!r}"


_C_ESCAPES = {"\t": "\\t", "\n": "\\n", "\r": "\\r", '"': '\\"', "\\": "\\\\"}


def printable_path(path: str) -> str:
    """A diff path as messages print it: as written, or, when it holds a control character (a NUL or a
    newline from git's C-quoted `"a/x\\000y.py"`), quoted and escaped as git writes it (issue 13)."""
    if not any(ord(c) < 32 or c == "\x7f" for c in path):
        return path
    return '"' + "".join(_C_ESCAPES.get(c) or (f"\\{ord(c):03o}" if ord(c) < 32 or c == "\x7f" else c) for c in path) + '"'


@dataclass(frozen=True)
class DiffFile:
    """One file section of a diff: the paths as written, and what kind of change it is.

    change: "modify", "new", "delete", "rename", "copy", "binary" or "mode" (mode only). Only
    "modify" and "new" can be applied; the others are refused naming the file (unless skipped).
    """

    old_path: str | None  # as written, prefix kept; None for /dev/null
    new_path: str | None
    origin: Origin  # its `diff --git` line, or its `---` line
    change: str
    commit: Commit | None = None
    strip: int | None = None  # quilt's -pN for this patch: leading components that are never the package's

    @property
    def path(self) -> str:
        """The path the change is about (the new one, or the old one for a deletion)."""
        return self.new_path if self.new_path is not None else (self.old_path or "")

    @property
    def name(self) -> str:
        """The path as messages print it: without git's `a/` or `b/`."""
        path = self.path
        return printable_path(path[2:] if path.startswith(("a/", "b/")) and len(path) > 2 else path)

    @property
    def paths(self) -> tuple[str, ...]:
        """Both paths when they differ (`diff -u installed/file.py /tmp/edited.py`): either may name the module."""
        return tuple(dict.fromkeys(p for p in (self.old_path, self.new_path) if p is not None))


@dataclass(frozen=True)
class AnchoredHunk:
    """Lines to find (context and removed) and what replaces them, inside one target."""

    origin: Origin
    target: Target
    lines: tuple[Line, ...]
    # A plain diff names only a file: its scope is found from where its changed lines land.
    from_diff: bool = False
    # The old-file line the diff's `@@ -l,n` header gives: a hint, never a decision.
    hint_line: int | None = None
    # The text git writes after the second `@@` (the enclosing def or class line).
    hint_scope: str | None = None
    # `.hunk` sections written by `capture`: `@@ target @@ +N`, the anchor's line offset in the target.
    hint_offset: int | None = None
    # The diff file section this hunk belongs to (None for `.hunk` files).
    file: DiffFile | None = None
    # The commit it belongs to, in a series (None: a single diff or a `.hunk` file).
    commit: Commit | None = None
    # Order of application inside the set: a hunk is located on the text that all hunks of lower
    # steps produced (a series' commits, or a file's second section in one diff). Set when the
    # set's paths are resolved (_paths.py); 0 for `.hunk` files.
    step: int = 0
    # The anchor must end at the end of the file (a `\ No newline at end of file` marker).
    at_end: bool = False
    # The hunk creates the module (`--- /dev/null`, or `@@ pkg.mod @@ new`): it holds only '+' lines.
    creates: bool = False

    @property
    def anchor(self) -> tuple[str, ...]:
        return tuple(line.text for line in self.lines if line.op != "+")

    @property
    def replacement(self) -> tuple[str, ...]:
        return tuple(line.text for line in self.lines if line.op != "-")


@dataclass(frozen=True)
class TransformHunk:
    """A LibCST transform of one target node, with the code it expects to find there."""

    origin: Origin
    target: Target
    function: Callable[[Any], Any]
    anchors: tuple[str, ...]
    name: str

    # What an AnchoredHunk may carry and a transform never does (it comes from a `.py` set, not a
    # diff or series): the same names, so code over any Hunk reads them without getattr.
    from_diff: ClassVar[bool] = False
    hint_line: ClassVar[None] = None
    file: ClassVar[None] = None
    commit: ClassVar[None] = None
    step: ClassVar[int] = 0
    creates: ClassVar[bool] = False


Hunk = AnchoredHunk | TransformHunk

# Header fields every format may carry (`.hunk` header lines, `.patch` preamble, `.py` globals).
FIELDS = ("description", "why", "upstream", "vllm", "written-against", "skip", "root")


@dataclass(frozen=True)
class HunkSet:
    """One named file of hunks, applied all together or not at all."""

    name: str
    path: str
    kind: str  # "hunk", "diff" or "py"
    hunks: tuple[Hunk, ...]
    fields: dict[str, str] = field(default_factory=dict)
    field_origins: dict[str, Origin] = field(default_factory=dict)
    # Diff sets: every file section, applicable or not (what `skip:` and the refusals are about).
    files: tuple[DiffFile, ...] = ()
    # A series: its commits in order (empty for a single diff).
    commits: tuple[Commit, ...] = ()

    @property
    def skip(self) -> tuple[str, ...]:
        """The `skip:` glob patterns: files of the diff left out on purpose (tests/**, csrc/**, ...)."""
        return tuple(p.strip() for p in self.fields.get("skip", "").split(",") if p.strip())
    # sha256 of the exact bytes this set was parsed from (issue 7 item 2: the code cache keys on
    # what was planned, never on the file as it is later); "" for text parsed from elsewhere.
    digest: str = ""
    # Read for a report (verify, list, show): why vLLM would refuse these files here (issue 13:
    # someone other than the user or root can change them). Empty when read by vLLM: it refuses.
    untrusted: tuple[Problem, ...] = ()

    @property
    def root(self) -> str | None:
        """The `root:` package of a diff set: its paths are relative to that package's folder (None: to a tree's root)."""
        return self.fields.get("root") or None

    @property
    def description(self) -> str | None:
        return self.fields.get("description")

    @property
    def vllm_range(self) -> SpecifierSet | None:
        """The `vllm:` version range, e.g. `>=0.11,<0.40` (None: any version)."""
        spec = self.fields.get("vllm")
        return None if spec is None else SpecifierSet(spec)

    @property
    def written_against(self) -> str | None:
        return self.fields.get("written-against")

    @property
    def modules(self) -> tuple[str, ...]:
        return tuple(sorted({h.target.module for h in self.hunks}))

    @property
    def targets(self) -> tuple[str, ...]:
        """Each distinct target once, in file order."""
        return tuple(dict.fromkeys(str(h.target) for h in self.hunks))


def check_fields(fields: dict[str, str], origins: dict[str, Origin]) -> None:
    """Refuse a header whose version range or root package does not parse, naming its line."""
    root = fields.get("root")
    if root is not None and not _dotted(root, allow_locals=False):
        raise HunkFileError(origins["root"], f"root: {root!r} is not a package name; write e.g. root: vllm "
                            "(the diff's paths are relative to that package's folder)")
    spec = fields.get("vllm")
    if spec is not None:
        try:
            # Evaluating it too: `==9999...` (5,000 digits) parses, then fails on use (ValueError).
            SpecifierSet(spec).contains("0", prereleases=True)
        except (InvalidSpecifier, ValueError):
            raise HunkFileError(
                origins["vllm"],
                f"vllm: {spec!r} is not a version range; write e.g. vllm: >=0.11,<0.40",
            ) from None
