"""Why a hunk or a set was refused, and the message that tells an operator what to do about it."""

from __future__ import annotations

import difflib
import enum
import os
from collections.abc import Sequence
from dataclasses import dataclass, field

from vllm_surgeon.core.model import HunkSet, Origin


class Reason(str, enum.Enum):
    """Each refusal has exactly one reason; the value is what `--json` and `applied()` report."""

    MODULE_NOT_FOUND = "module-not-found"
    TARGET_NOT_FOUND = "target-not-found"
    ANCHOR_NOT_FOUND = "anchor-not-found"
    ANCHOR_AMBIGUOUS = "anchor-ambiguous"
    VERSION = "version-mismatch"
    INVALID_PYTHON = "invalid-python"
    CONFLICT = "conflict"
    OVERLAP = "overlap"  # two hunks of one set change the same lines
    TRANSFORM_FAILED = "transform-failed"
    UNCHANGED = "unchanged"  # a transform that changes nothing
    LIVE = "cannot-patch-live"  # an already-imported module this change cannot reach in place
    # Diff files that cannot be applied at import (issue 6); each names the file.
    NOT_PYTHON = "not-python"  # C++/CUDA, CMake, docs, ... not listed in `skip:`
    UNSUPPORTED_CHANGE = "unsupported-change"  # deletion, rename, copy, binary or mode-only change
    PATH_NOT_FOUND = "path-not-found"  # a .py path that is no module of an installed package
    PATH_AMBIGUOUS = "path-ambiguous"  # a path that is two real modules
    MODULE_EXISTS = "module-exists"  # a diff creates a module that is already there
    NOT_REACHED = "not-reached"  # a later step's hunk (commit, or file section) on a module where an earlier step's hunk was refused
    RAISED = "patched-code-raised"  # the patched module raised when executed (at import or in place)
    # What a hunk's added lines read, gone from the patched module (issue 14 part 3; engine/names.py).
    NAME_GONE = "name-gone"  # a name no global, import or builtin of the patched module binds
    IMPORT_GONE = "import-gone"  # `import x.y` / `from x import y` of a module or name the tree does not have
    # `@copied_from` (issue 16): the upstream code a monkey patch copied or wraps is not what it was.
    UPSTREAM_CHANGED = "upstream-changed"
    UPSTREAM_UNREADABLE = "upstream-unreadable"  # its module does not parse here: it cannot be compared


_TITLES = {
    Reason.MODULE_NOT_FOUND: "module not found",
    Reason.TARGET_NOT_FOUND: "target not found",
    Reason.ANCHOR_NOT_FOUND: "anchor not found",
    Reason.ANCHOR_AMBIGUOUS: "anchor found more than once",
    Reason.VERSION: "version range not met",
    Reason.INVALID_PYTHON: "result is not valid Python",
    Reason.CONFLICT: "conflicts with another set",
    Reason.OVERLAP: "two hunks of this set change the same lines",
    Reason.TRANSFORM_FAILED: "transform failed",
    Reason.UNCHANGED: "transform changed nothing",
    Reason.LIVE: "cannot patch the already-imported module in place",
    Reason.NOT_PYTHON: "not a Python module",
    Reason.UNSUPPORTED_CHANGE: "change cannot be applied at import",
    Reason.PATH_NOT_FOUND: "file is no installed module",
    Reason.PATH_AMBIGUOUS: "path names more than one module",
    Reason.MODULE_EXISTS: "new module already exists",
    Reason.NOT_REACHED: "not checked: an earlier step on this module was refused",
    Reason.RAISED: "the patched code raised when it ran",
    Reason.NAME_GONE: "an added line reads a name that is not defined",
    Reason.IMPORT_GONE: "an added line imports what this vLLM does not have",
    Reason.UPSTREAM_CHANGED: "the upstream code changed",
    Reason.UPSTREAM_UNREADABLE: "the upstream code cannot be read",
}


@dataclass(frozen=True)
class MovedTo:
    """Where a refused hunk's target may have gone in the release checked (issue 14 part 2)."""

    module: str
    qualname: str
    line: int  # 1-based first line of the definition there
    how: str  # "moved": same name, another module; "base-class": a base of its class defines it;
    # "renamed": another name in its module, the same code; "anchor-in": its anchor is in this definition
    anchor: str  # the hunk's anchor there: "found", "reformatted" (by structure), "ambiguous", "not-found"
    code: str | None = None  # against the definition the set was written against: identical, similar, different
    similarity: float | None = None  # 0..1, for "similar" and "different"

    @property
    def carries(self) -> bool:
        """Whether `rebase` can carry the hunk there: its anchor is found once (text or structure)."""
        return self.anchor in ("found", "reformatted")

    def describe(self) -> str:
        how = {"moved": "defined in", "base-class": "inherited from", "renamed": "renamed to",
               "anchor-in": "its anchor is in"}[self.how]
        code = ""
        if self.code == "identical":
            code = ", code identical"
        elif self.code is not None:
            code = f", code {self.code} ({self.similarity or 0:.0%} alike)"
        anchor = {"found": "anchor found there", "reformatted": "anchor found there by structure (new layout)",
                  "ambiguous": "anchor found there more than once", "not-found": "anchor not found there"}[self.anchor]
        return f"{how} {self.module}:{self.qualname} (line {self.line}{code}; {anchor})"


@dataclass
class Refusal:
    """One refused hunk (or a whole set, when `origin` is the set's header)."""

    reason: Reason
    set_name: str
    origin: Origin  # the hunk (or header field) at fault
    target: str
    detail: str
    vllm_version: str | None = None
    module_path: str | None = None
    expected: tuple[str, ...] | None = None  # the anchor, for anchor refusals
    found: tuple[str, ...] | None = None  # the closest lines in the source
    found_line: int | None = None  # 1-based line of `found[0]` in module_path
    other_sets: tuple[str, ...] = field(default_factory=tuple)
    commit: str | None = None  # in a series: `commit 2/3 'subject'`
    moved: tuple[MovedTo, ...] = ()  # where a target gone from its module is in this release (issue 14)

    @property
    def title(self) -> str:
        return _TITLES[self.reason]

    def summary(self) -> str:
        """One line: where, what, why."""
        commit = f" ({self.commit})" if self.commit else ""
        return f"{self.origin}{commit}: {self.target}: {self.title}: {self.detail}"

    def message(self, indent: str = "  ") -> str:
        """The full, multi-line explanation, with the expected anchor against the closest code found."""
        version = self.vllm_version or "unknown"
        out = [
            f"{self.title} — {self.detail}",
            f"{indent}hunk:    {self.origin}" + (f"  ({self.commit})" if self.commit else ""),
            f"{indent}target:  {self.target}",
            f"{indent}vLLM:    {version}" + (f" ({self.module_path})" if self.module_path else ""),
        ]
        if self.other_sets:
            out.append(f"{indent}with:    {', '.join(self.other_sets)}")
        if self.expected is not None and self.found is not None and self.found_line is not None:
            where = os.path.basename(self.module_path or "source")
            out.append(f"{indent}expected anchor ('-') against the closest code found ('+'):")
            diff = side_by_side_diff(
                self.expected,
                self.found,
                f"expected by {self.origin}",
                f"found at {where}:{self.found_line} (vLLM {version})",
            )
            out += [indent * 2 + line for line in diff]
        elif self.expected is not None:
            out.append(f"{indent}expected anchor ({len(self.expected)} lines):")
            out += [indent * 2 + "|" + line for line in self.expected]
        return "\n".join(out)


class SurgeonError(RuntimeError):
    """An enabled hunk set could not be applied; stops vLLM's start unless VLLM_SURGEON_ON_FAILURE=warn."""

    def __init__(
        self, refusals: list[Refusal] | None = None, sets: dict[str, HunkSet] | None = None, extra: str | None = None,
        running_without: bool = False,
    ) -> None:
        refusals = refusals or []
        self.refusals = refusals
        lines = [extra] if extra else []
        by_set: dict[str, list[Refusal]] = {}
        for refusal in refusals:
            by_set.setdefault(refusal.set_name, []).append(refusal)
        for name, items in by_set.items():
            path = sets[name].path if sets and name in sets else None
            lines.append(f"vllm-surgeon refused hunk set {name!r}" + (f" ({path})" if path else "") + ":")
            for refusal in items:
                lines.append("  " + refusal.message(indent="    ").replace("\n", "\n  "))
        if not refusals:
            super().__init__("\n".join(lines))
            return
        if running_without:  # VLLM_SURGEON_ON_FAILURE=warn is set: never advise setting it (issue 8)
            lines.append(
                "Nothing of these sets was applied; vLLM runs without them (VLLM_SURGEON_ON_FAILURE=warn). "
                "Fix or disable them (VLLM_SURGEON_HUNKS); `vllm-surgeon verify NAME` shows this again."
            )
        else:
            lines.append(
                "Nothing of these sets was applied. Fix or disable them (VLLM_SURGEON_HUNKS), "
                "or set VLLM_SURGEON_ON_FAILURE=warn to run without them."
            )
        super().__init__("\n".join(lines))


def side_by_side_diff(expected: Sequence[str], found: Sequence[str], expected_label: str, found_label: str) -> list[str]:
    """A unified diff of the whole expected anchor against the found lines ('-' expected, '+' found)."""
    return list(
        difflib.unified_diff(
            list(expected), list(found), expected_label, found_label, lineterm="", n=max(len(expected), len(found))
        )
    )
