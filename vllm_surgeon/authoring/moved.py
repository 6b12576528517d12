"""`rebase` follows code that upstream moved (issue 14 part 2): the hunks whose function is gone from
its module in the new release, carried to where the same qualified name is defined now.

A hunk is carried only when exactly one other place defines it there (another module, or its own
module under another name with the same code) and its anchor is found in that definition by the
usual rules (text first, then structure). Anything else is a conflict that lists the candidates: a
name defined in several modules, a definition where the anchor is not found, a method now inherited
from a base class (carrying the change there would change every class that inherits it). Never a guess.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from vllm_surgeon.authoring.drafts import code_lines
from vllm_surgeon.core.model import AnchoredHunk, HunkSet, Origin
from vllm_surgeon.core.refusal import MovedTo
from vllm_surgeon.core.scopes import ScopeIndex
from vllm_surgeon.engine import planner
from vllm_surgeon.engine.moves import Lost, Search, retarget
from vllm_surgeon.engine.results import PatchedModule, Plan
from vllm_surgeon.engine.state import Context
from vllm_surgeon.trees.releases import Tree

_CARRIED = ("moved", "renamed")  # a base class's method is shared: never carried there without the user


@dataclass
class Carried:
    """The hunks of a set whose code moved: where they land in the new release, or why they cannot."""

    stay: HunkSet  # the set without the hunks carried or in conflict: merged three-way as before
    modules: dict[str, PatchedModule] = field(default_factory=dict)  # new module -> the new release's text, carried hunks applied
    written: dict[str, list[tuple[int, int, int]]] = field(default_factory=dict)  # their anchors there (rebase keeps them)
    notes: list[str] = field(default_factory=list)  # what the summary says of each carried hunk
    conflicts: list[str] = field(default_factory=list)

    @property
    def any(self) -> bool:
        return bool(self.modules or self.conflicts)


def _gone(onto: Tree, module: str, qualname: str | None, cache: dict[str, ScopeIndex | None]) -> bool:
    """Whether `module:qualname` is not defined in the new release (its module gone, or the name in it)."""
    if module not in cache:
        source = onto.read(module)
        try:
            cache[module] = None if source is None else ScopeIndex(source.text, source.path)
        except SyntaxError:
            cache[module] = None
            return False  # a module that does not parse there: the usual merge says so
    index = cache[module]
    return index is None or (qualname is not None and not index.find(qualname))


def carry_moved(hunk_set: HunkSet, planned: Plan, base: Tree, onto: Tree) -> Carried:
    """Which of the set's hunks (planned on `base`) aim at code gone from its module in `onto`, and
    where each goes; `stay` is the set without them (the whole set when nothing moved)."""
    out = Carried(hunk_set)
    ctx = Context(hunk_set, onto.version)
    search = Search(onto.read, base.read)
    cache: dict[str, ScopeIndex | None] = {}
    moved: dict[Origin, AnchoredHunk | None] = {}  # hunk -> where it goes (None: a conflict)
    for result in planned.results[0].hunks:
        hunk = result.hunk
        qual = hunk.target.qualname or result.scope
        if not isinstance(hunk, AnchoredHunk) or hunk.creates or not qual or not _gone(onto, hunk.target.module, qual, cache):
            continue
        found = search.whereabouts(ctx, hunk, Lost(hunk.target.module, (qual,)))
        if not found:
            continue  # nowhere else: the usual rebase says what is gone
        where = f"{hunk.origin} ({hunk.target.module}:{qual})"
        usable = [m for m in found if m.how in _CARRIED]
        if len(usable) == 1 and len([m for m in found if m.how == "moved"]) <= 1 and usable[0].carries:
            to = usable[0]
            moved[hunk.origin] = retarget(hunk, to.module, to.qualname)
            out.notes.append(f"carried {where} to {to.module}:{to.qualname} (line {to.line}), "
                             f"where {onto.label} {_how(to)}")
        else:
            out.conflicts += [f"--- {where}", f"{qual} is not in {hunk.target.module} in {onto.label}; "
                              + _conflict(found) + "; carry it by hand (write the hunk against the right target)"]
            moved[hunk.origin] = None
    if not moved:
        return out
    out.stay = replace(hunk_set, hunks=tuple(h for h in hunk_set.hunks if h.origin not in moved))
    carried = [h for h in moved.values() if h is not None]
    if carried and not out.conflicts:
        _apply(out, hunk_set, carried, onto)
    return out


def _apply(out: Carried, hunk_set: HunkSet, carried: list[AnchoredHunk], onto: Tree) -> None:
    """The carried hunks applied to the new release together (they were checked one by one)."""
    carried_set = replace(hunk_set, hunks=tuple(carried), files=(), commits=(), fields={})
    plan = planner.plan([carried_set], onto.read, onto.version, require_version=False)
    if plan.refusals:  # two carried hunks that overlap there, say: shown, never written
        for r in plan.refusals:
            out.conflicts += [f"--- {r.origin}", f"carried to {r.target}, it is refused there: {r.detail}"]
        return
    out.modules = {m: p for m, p in plan.modules.items() if not p.created}
    for result in plan.results[0].hunks:
        hunk = result.hunk
        if isinstance(hunk, AnchoredHunk) and hunk.anchor and result.line is not None:
            start = result.line - 1
            out.written.setdefault(hunk.target.module, []).append((start, start + len(hunk.anchor), code_lines(hunk.anchor)))


def _how(to: MovedTo) -> str:
    what = "defines it" if to.how == "moved" else "has the same code under this name"
    code = "" if to.code in (None, "identical") else f"; its code is {to.code}, {to.similarity or 0:.0%} alike"
    code = ", code identical" if to.code == "identical" else code
    anchor = "" if to.anchor == "found" else ", the anchor found by structure"
    return what + code + anchor


def _conflict(found: list[MovedTo]) -> str:
    listed = "; ".join(m.describe() for m in found)
    if len({m.module for m in found if m.how == "moved"}) > 1:
        return f"it is defined in {len(found)} other places, which one is not for rebase to guess: {listed}"
    if any(m.how == "base-class" for m in found):
        return f"it is {listed} (carrying the change there would change every class that inherits it)"
    return f"it is {listed}"
