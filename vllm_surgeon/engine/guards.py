"""Check guard records against a release (issue 16): which upstream functions that monkey patches
depend on are still the code they were recorded at, which changed (and how), which are gone.

Each recorded function is looked up in the release by its target, its code digested as the record's
was (core/codedigest.py), and compared: `unchanged` (same digest: layout, comments and docstrings may
differ), `upstream-changed` (with the unified diff of the function from the recorded source to the
release's), `upstream-gone` (its module or its name is not in the release), or `unreadable` (the
release's module does not parse here, or has no Python source: an extension module). Only
`unchanged` is good: a team must look at the others before upgrading.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from vllm_surgeon.core.codedigest import Code, code_of
from vllm_surgeon.core.model import Target
from vllm_surgeon.core.scopes import ScopeIndex
from vllm_surgeon.core.source import ModuleSource, SourceReader, module_form
from vllm_surgeon.core.unified import hunks
from vllm_surgeon.sets.guardfile import GuardedFunction, GuardRecord

UNCHANGED = "unchanged"
CHANGED = "upstream-changed"
GONE = "upstream-gone"
UNREADABLE = "unreadable"
STATUSES = (UNCHANGED, CHANGED, GONE, UNREADABLE)  # better to worse: a record's status is its worst function's
MODULE_MISSING = "module-missing"
NAME_MISSING = "name-missing"


@dataclass
class Found:
    """A target looked up in a release: its definitions, or why there are none to compare."""

    code: Code | None
    module_path: str | None = None
    status: str | None = None  # when code is None: GONE or UNREADABLE
    gone: str | None = None  # MODULE_MISSING or NAME_MISSING
    detail: str = ""  # where it went, why it cannot be read


@dataclass
class FunctionCheck:
    """One recorded function against one release."""

    function: GuardedFunction
    status: str
    found: Found
    diff: list[str] = field(default_factory=list)  # upstream-changed: the recorded source against the release's

    @property
    def ok(self) -> bool:
        return self.status == UNCHANGED

    @property
    def relaid(self) -> bool:
        """Unchanged code whose text is not the recorded one (layout, comments, docstrings)."""
        code = self.found.code
        return self.status == UNCHANGED and code is not None and code.text != self.function.source


@dataclass
class GuardResult:
    """One record against one release."""

    record: GuardRecord
    functions: list[FunctionCheck]

    @property
    def ok(self) -> bool:
        return all(f.ok for f in self.functions)

    @property
    def status(self) -> str:
        return max((f.status for f in self.functions), key=STATUSES.index, default=UNCHANGED)

    def count(self, status: str) -> int:
        return sum(1 for f in self.functions if f.status == status)


class Modules:
    """A release's modules, each read and parsed once for every function looked up in it."""

    def __init__(self, read: SourceReader) -> None:
        self.read = read
        self.parsed: dict[str, tuple[ModuleSource | None, ScopeIndex | None, str | None]] = {}

    def get(self, module: str) -> tuple[ModuleSource | None, ScopeIndex | None, str | None]:
        """(source or None when the release has no such module, its index, why it does not parse)."""
        if module not in self.parsed:
            source = self.read(module)
            index, error = None, None
            if source is not None:
                try:
                    index = ScopeIndex(source.text, source.path)
                except (SyntaxError, ValueError, RecursionError) as exc:
                    error = f"{type(exc).__name__}: {exc}"
            self.parsed[module] = (source, index, error)
        return self.parsed[module]


def lookup(modules: Modules, target: Target, label: str) -> Found:
    """`target`'s definitions in the release `modules` reads (`label` names it: `vllm 0.33.0`)."""
    qualname = target.qualname or ""
    source, index, error = modules.get(target.module)
    if source is None:
        form = module_form(modules.read, target.module)  # an extension, a namespace folder: there, but no source
        if form is not None:
            return Found(None, status=UNREADABLE, detail=f"{target.module} is {form} in {label}: no Python source to compare")
        return Found(None, status=GONE, gone=MODULE_MISSING, detail=f"module {target.module} is not in {label}")
    if index is None:
        return Found(None, source.path, UNREADABLE,
                     detail=f"{source.path} cannot be parsed here ({error}): its code cannot be compared")
    code = code_of(index, source.lines(), qualname)
    if code is None:
        return Found(None, source.path, GONE, NAME_MISSING, f"{target.module} defines no {qualname} in {label}{index.similar(qualname)}")
    return Found(code, source.path)


def check_records(records: Sequence[GuardRecord], read: SourceReader, label: str) -> list[GuardResult]:
    """Every record against the release `read` reads (`label` names it in diffs: `vllm 0.33.0`)."""
    modules = Modules(read)
    return [GuardResult(r, [check_function(f, modules, label) for f in r.functions]) for r in records]


def check_function(function: GuardedFunction, modules: Modules, label: str) -> FunctionCheck:
    found = lookup(modules, function.target, label)
    if found.code is None:
        return FunctionCheck(function, found.status or GONE, found)
    if found.code.digest == function.digest:
        return FunctionCheck(function, UNCHANGED, found)
    target = function.target
    diff = function_diff(function.source, found.code.text, f"{target} ({function.release_label})", f"{target} ({label})",
                         function.line or 1, found.code.start)
    return FunctionCheck(function, CHANGED, found, diff)


def function_diff(old: str, new: str, old_label: str, new_label: str, old_start: int = 1, new_start: int = 1,
                  context: int = 3) -> list[str]:
    """A unified diff of two texts of one function, numbered as lines of their modules (`*_start`: the
    module line of each text's first line)."""
    out = [f"--- {old_label}", f"+++ {new_label}"]
    for header, lines in hunks(old.split("\n"), new.split("\n"), context, old_start - 1, new_start - 1):
        out += [header] + [op + line for op, line in lines]
    return out
