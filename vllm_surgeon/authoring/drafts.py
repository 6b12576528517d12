"""The smallest hunks that turn one text into another, each with just enough context to be unique.

Used by `capture` (edited copy of a function -> `.hunk`) and `rebase` (new release -> merged
module -> `.hunk` or `.patch`). A hunk's anchor must occur exactly once in its scope *and* be
specific: at least MIN_CODE_LINES lines of real code (issue 8: `return {}, False` alone was unique
but said nothing of where it is), growing until both hold or the scope has no more lines. `rebase`
also gives a floor: the lines of the anchor the user wrote, so a rebased anchor is never weaker.
Hunks whose anchors would touch are merged into one.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from vllm_surgeon.core.scopes import ScopeIndex
from vllm_surgeon.matching.anchor import occurrences


@dataclass
class Draft:
    """One hunk to write: its scope (a qualname, or None for the module) and lines in old-text order."""

    scope: str | None
    scope_start: int  # 0-based first line of the scope in the old text
    start: int  # 0-based first anchor line in the old text
    end: int  # exclusive
    lines: list[tuple[str, str]]  # (op, text)

    @property
    def offset(self) -> int:
        """Where the anchor starts, in lines from the scope's first line (the `@@ ... @@ +N` hint)."""
        return self.start - self.scope_start


# scope_of(start, end) -> (qualname or None, first line, end line) of the scope a change sits in;
# given a scope's span back, it answers with the scope around that one.
ScopeOf = Callable[[int, int], "tuple[str | None, int, int]"]


# An anchor holds at least this many lines of real code (see `code_lines`), unless its scope has fewer.
MIN_CODE_LINES = 3

# keep(i1, i2) -> (start, end, code lines) the anchor of the change old[i1:i2] must cover and hold
# at least (rebase: the written anchor's surviving lines), or None.
Keep = Callable[[int, int], "tuple[int, int, int] | None"]


def is_code(line: str) -> bool:
    """A line that says something about where it is: not blank, not a comment, not only brackets,
    quotes or punctuation (`)`, `],`, `\"\"\"`)."""
    text = line.strip()
    return bool(text) and not text.startswith("#") and any(c.isalnum() for c in text)


def code_lines(lines: Sequence[str]) -> int:
    return sum(1 for line in lines if is_code(line))


# same_named(qualname, lo, hi) -> every span the engine searches for a target of that name: a function
# defined more than once (`@overload` stubs, a property's getter and setter) is all of its definitions.
SameNamed = Callable[["str | None", int, int], "list[tuple[int, int]]"]


def _unique(old: Sequence[str], spans: list[tuple[int, int]], start: int, end: int) -> bool:
    anchor = old[start:end]
    return (bool(anchor) and any(line.strip() for line in anchor)
            and len({i for lo, hi in spans for i in occurrences(old, anchor, lo, hi)}) == 1)


def drafts(
    old: Sequence[str], new: Sequence[str], scope_of: ScopeOf, min_context: int = 0,
    min_code: int = MIN_CODE_LINES, keep: Keep | None = None, same_named: SameNamed | None = None,
    opcodes: Sequence[tuple[str, int, int, int, int]] | None = None,
) -> list[Draft]:
    """Hunks turning `old` into `new`; each anchor unique inside the scope `scope_of` gives for its
    change (and inside every other scope of the same name, when `same_named` says which), and holding
    at least `min_code` lines of real code where the scope has them. `opcodes` (difflib's form): the
    change as the caller knows it (`adopt` knows which statements changed; a line diff of the whole
    text may pair an added `break` with the wrong one)."""
    if opcodes is None:
        opcodes = difflib.SequenceMatcher(None, list(old), list(new), autojunk=False).get_opcodes()
    changes = [(i1, i2) for tag, i1, i2, _, _ in opcodes if tag != "equal"]
    spans = [_anchor_span(old, i1, i2, scope_of, min_context, min_code, keep, same_named) for i1, i2 in changes]
    return [Draft(name, lo, start, end, _draft_lines(old, new, opcodes, start, end))
            for start, end, name, lo, _hi in _merged(spans)]


def _anchor_span(
    old: Sequence[str], i1: int, i2: int, scope_of: ScopeOf, min_context: int, min_code: int,
    keep: Keep | None, same_named: SameNamed | None,
) -> list:
    """[start, end, qualname, scope_lo, scope_hi]: the change old[i1:i2] with context grown, alternately
    before and after, until it is unique (and has enough code) in its scope; widened to the scope
    around it when the scope is used up. ValueError when even the whole module is not enough."""
    name, lo, hi = scope_of(i1, i2)
    # At module scope an anchor is unique in the whole file already; growing it to min_code lines
    # would swallow the functions around it (and merge their hunks into one module-scope hunk).
    want_lo, want_hi, want_code = i1, i2, (min_code if name is not None else min(min_code, 1))
    floor = keep(i1, i2) if keep is not None else None
    if floor is not None:
        want_lo, want_hi, want_code = min(i1, floor[0]), max(i2, floor[1]), max(min_code, floor[2])
    before = after = min_context
    while True:
        start, end = max(lo, min(want_lo, i1 - before)), min(hi, max(want_hi, i2 + after))
        spans_named = same_named(name, lo, hi) if same_named else [(lo, hi)]
        can_before, can_after = start > lo, end < hi
        if _unique(old, spans_named, start, end) and (
            code_lines(old[start:end]) >= want_code or not (can_before or can_after)
        ):
            return [start, end, name, lo, hi]
        if not can_before and not can_after:
            if name is None and lo == 0 and hi == len(old):
                raise ValueError("the change cannot be anchored uniquely even in the whole module")
            name, lo, hi = scope_of(lo, hi)  # widen to the scope around this one
            continue
        if (before <= after and can_before) or not can_after:
            before += 1
        else:
            after += 1


def _merged(spans: list[list]) -> list[list]:
    """Anchors that overlap or touch merged; the merged one lives in the wider scope."""
    merged: list[list] = []
    for span in sorted(spans):
        if merged and span[0] <= merged[-1][1]:
            last = merged[-1]
            last[1] = max(last[1], span[1])
            if span[4] - span[3] > last[4] - last[3]:
                last[2:] = span[2:]
        else:
            merged.append(span)
    return merged


def _draft_lines(old: Sequence[str], new: Sequence[str], opcodes, start: int, end: int) -> list[tuple[str, str]]:
    """The hunk lines of the anchor old[start:end]: its context, and every change inside or touching it."""
    lines: list[tuple[str, str]] = []
    for tag, i1, i2, j1, j2 in opcodes:
        a, b = max(i1, start), min(i2, end)
        if tag == "equal":
            lines += [(" ", old[i]) for i in range(a, b)]
        elif (i1 < end and i2 > start) or (i1 == i2 and start <= i1 <= end):  # touching changes were merged
            lines += [("-", old[i]) for i in range(i1, i2)]
            lines += [("+", new[j]) for j in range(j1, j2)]
    return lines


def scope_finder(index: ScopeIndex, total: int) -> ScopeOf:
    """A ScopeOf on a module's ScopeIndex: the innermost function or class of a change that a target can
    name (a function inside a function is not one: its addressable holder); asked again, the scope around it.
    The one scope finder of `convert`, `rebase` and `adopt` (issue 15: rebase's copy wrote `<locals>` targets)."""

    def scope_of(start: int, end: int) -> tuple[str | None, int, int]:
        exact = [s for s in index.scopes if (s.start, s.end) == (start, end) and s.kind != "module"]
        if exact:
            around = [s for s in index.scopes if s.start <= start and end <= s.end and (s.start, s.end) != (start, end)]
            best = min(around, key=lambda s: s.end - s.start, default=index.module)
        else:
            best = index.innermost(start, end)
        if best.kind == "module" or not best.addressable:
            # A function inside a function is not a target: the smallest addressable scope around it is.
            if best.kind != "module":
                outer = [s for s in index.scopes if s.addressable and s.kind != "module" and s.start <= best.start and best.end <= s.end]
                if outer:
                    best = min(outer, key=lambda s: s.end - s.start)
                    return best.qualname, best.start, best.end
            return None, 0, total
        return best.qualname, best.start, best.end

    return scope_of


def same_named(index) -> SameNamed:
    """same_named for a module's ScopeIndex: every definition the engine searches for a target of that name."""

    def spans(name: str | None, lo: int, hi: int) -> list[tuple[int, int]]:
        return [(s.start, s.end) for s in index.find(name)] if name else [(lo, hi)]

    return spans


def render_hunk_section(target: str, draft: Draft) -> list[str]:
    """The `.hunk` text of one draft; blank context lines are written as ' ' so they are kept."""
    out = [f"@@ {target} @@ +{draft.offset}"]
    for op, text in draft.lines:
        out.append(op + text if (text or op != " ") else " ")
    return out


def render_new_module_section(module: str, text: str) -> list[str]:
    """The `.hunk` section that creates `module` with `text` (for convert and rebase alike): a last
    line without a final newline is kept and marked, as diff marks it."""
    lines = text.split("\n")
    if text and not text.endswith("\n"):
        return [f"@@ {module} @@ new"] + ["+" + line for line in lines] + ["\\ No newline at end of file"]
    return [f"@@ {module} @@ new"] + ["+" + line for line in lines[:-1]]
