"""`rebase` of a `.hunk` set, module by module: the user's hunks carried as written wherever they hold.

A hunk whose anchor the new release still has, in its target, is kept as written (comments and all);
the rest of the merged change is drafted again in the place of the hunk it came from, under its
comment and with its target where that target still holds the change (issue 15: a proposal dropped
the comments, reordered the hunks and turned `Request.__lt__` into a module-scope hunk). What is kept
is checked: the module's sections must give exactly the merged text, else all of it is drafted again.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from vllm_surgeon.authoring.drafts import Draft, Keep, ScopeOf, drafts, render_hunk_section, same_named, scope_finder
from vllm_surgeon.core.model import AnchoredHunk, HunkFileError
from vllm_surgeon.core.scopes import ScopeIndex
from vllm_surgeon.core.source import ModuleSource
from vllm_surgeon.engine import planner
from vllm_surgeon.sets.hunkfile import parse_hunk_file


@dataclass
class Written:
    """One anchored hunk of the user's file, as seen from the new release."""

    number: int  # its section, 0-based, in file order
    hunk: AnchoredHunk
    near: tuple[int, int]  # where its anchor lay in the base, mapped onto the new release's lines
    holds: tuple[int, int] | None  # its anchor's span in the new release when it applies there as written
    section: list[str] = field(default_factory=list)  # its section as written (the offset hint updated)


@dataclass
class Carried:
    """One module's part of the proposal: which written sections stay, and the redrafted ones."""

    kept: set[int] = field(default_factory=set)  # sections written back as they are
    placed: dict[int, list[Draft]] = field(default_factory=dict)  # section -> the drafts that replace it
    absorbed: dict[int, list[int]] = field(default_factory=dict)  # section -> other sections whose change it took
    extra: list[Draft] = field(default_factory=list)  # drafts no written hunk is near
    as_written: dict[int, list[str]] = field(default_factory=dict)  # kept section -> its text


def near_in(base: Sequence[str], theirs: Sequence[str]) -> Callable[[int, int], tuple[int, int]]:
    """near(start, end): lines [start, end) of the base as a span of the new release's lines (the
    lines still there; else the gap where they were)."""
    to_theirs: dict[int, int] = {}
    for a, b, size in difflib.SequenceMatcher(None, list(base), list(theirs), autojunk=False).get_matching_blocks():
        to_theirs.update((a + k, b + k) for k in range(size))

    def near(start: int, end: int) -> tuple[int, int]:
        mapped = [to_theirs[i] for i in range(start, end) if i in to_theirs]
        if mapped:
            return min(mapped), max(mapped) + 1
        before = max((to_theirs[i] + 1 for i in to_theirs if i < start), default=0)
        after = min((to_theirs[i] for i in to_theirs if i >= end), default=len(theirs))
        return before, max(before, after)

    return near


def carry_module(
    module: str, theirs: ModuleSource, merged: list[str], written: list[Written], keep: Keep, read,
) -> Carried:
    """The sections that turn the new release's `module` into `merged`: the written hunks that hold
    kept, the rest drafted; when what is kept does not give `merged` exactly, everything is drafted."""
    theirs_lines = theirs.lines()
    holding = [w for w in written if w.holds is not None]
    while True:
        carried = _try(theirs, theirs_lines, merged, written, holding, keep)
        if isinstance(carried, list):  # drafted anchors reach into these kept hunks: they are drafted too
            holding = [w for w in holding if w not in carried]
            continue
        if not holding or _gives(module, carried, written, merged, read):
            carried.as_written = {w.number: w.section for w in holding}
            return carried
        holding = []


def _try(theirs: ModuleSource, theirs_lines: list[str], merged: list[str], written: list[Written],
         holding: list[Written], keep: Keep) -> Carried | list[Written]:
    """The drafts for what the `holding` hunks leave of the change, placed; else the kept hunks a draft overlaps."""
    kept_spans = [w.holds for w in holding if w.holds is not None]
    residual = _without(theirs_lines, merged, kept_spans)
    index = ScopeIndex(theirs.text, theirs.path)
    others = [w for w in written if w not in holding]
    scope_of = _written_scope(index, len(theirs_lines), others)
    found = drafts(theirs_lines, residual, scope_of, keep=keep, same_named=same_named(index)) if residual != theirs_lines else []
    clash = [w for w in holding if w.holds is not None and any(d.start < w.holds[1] and w.holds[0] < d.end for d in found)]
    if clash:
        return clash
    carried = Carried(kept={w.number for w in holding})
    for draft in found:
        owners = [w.number for w in others if draft.start <= w.near[1] and w.near[0] <= draft.end]
        if not owners and others:  # nearest written hunk not kept
            owners = [min(others, key=lambda w: min(abs(w.near[0] - draft.start), abs(w.near[1] - draft.end))).number]
        if not owners:
            carried.extra.append(draft)
            continue
        first = min(owners)
        carried.placed.setdefault(first, []).append(draft)
        carried.absorbed.setdefault(first, [])
        carried.absorbed[first] += [n for n in owners if n != first and n not in carried.absorbed[first]]
    return carried


def _without(theirs: list[str], merged: list[str], kept: list[tuple[int, int]]) -> list[str]:
    """`merged` with the changes that the kept hunks make (inside or touching their anchors) left out."""
    out: list[str] = []
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(None, theirs, merged, autojunk=False).get_opcodes():
        covered = tag != "equal" and any(s <= i1 and i2 <= e for s, e in kept)
        out += theirs[i1:i2] if tag == "equal" or covered else merged[j1:j2]
    return out


def _written_scope(index: ScopeIndex, total: int, written: list[Written]) -> ScopeOf:
    """scope_finder, but a change near a written hunk whose target holds it keeps that target."""
    found = scope_finder(index, total)

    def scope_of(start: int, end: int) -> tuple[str | None, int, int]:
        for w in written:
            if not (start <= w.near[1] and w.near[0] <= end):
                continue
            name = w.hunk.target.qualname
            for scope in index.find(name):
                span = (0, total) if name is None else (scope.start, scope.end)
                if span[0] <= start and end <= span[1] and span != (start, end):
                    return name, span[0], span[1]
        return found(start, end)

    return scope_of


def sections(module: str, carried: Carried, number: int) -> list[str]:
    """The rendered sections that take the place of written section `number` (none: it was dropped)."""
    out: list[str] = []
    for draft in carried.placed.get(number, []):
        out += render_hunk_section(f"{module}:{draft.scope}" if draft.scope else module, draft) + [""]
    return out


def extra_sections(module: str, carried: Carried) -> list[str]:
    out: list[str] = []
    for draft in carried.extra:
        out += render_hunk_section(f"{module}:{draft.scope}" if draft.scope else module, draft) + [""]
    return out


def _gives(module: str, carried: Carried, written: list[Written], merged: list[str], read) -> bool:
    """Whether the kept sections and the drafted ones give exactly `merged` on the new release."""
    text: list[str] = []
    for w in written:
        if w.number in carried.kept:
            text += w.section + [""]
        text += sections(module, carried, w.number)
    text += extra_sections(module, carried)
    try:
        check = parse_hunk_file("\n".join(text) + "\n", f"<rebase of {module}>", "rebase")
    except HunkFileError:
        return False
    planned = planner.plan([check], read, None, require_version=False)
    return not planned.refusals and module in planned.modules and planned.modules[module].text.split("\n") == merged
