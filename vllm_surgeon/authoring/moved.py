"""`rebase` follows code that upstream moved (issue 14 part 2): the hunks whose function is gone from
its module in the new release, carried to where the same qualified name is defined now.

A hunk is carried only when exactly one other place defines it there (another module, or its own
module under another name with the same code), and its anchor is found in that definition by the
usual rules (text first, then structure) or, when it is not there as written (a docstring changed
around it), the three-way merge of the function (as in the base release, as the set leaves it, as
it is now) is clean: the rebase of a function that did not move. Anything else is a conflict that
lists the candidates: a name defined in several modules, a definition where the anchor is not found
and the merge conflicts, a method now inherited from a base class (carrying the change there would
change every class that inherits it). Never a guess.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from vllm_surgeon.authoring.drafts import code_lines
from vllm_surgeon.authoring.merge3 import merge3
from vllm_surgeon.core.codedigest import code_of
from vllm_surgeon.core.model import AnchoredHunk, HunkSet, Origin, Target
from vllm_surgeon.core.refusal import MovedTo
from vllm_surgeon.core.scopes import ScopeIndex
from vllm_surgeon.core.source import ModuleSource
from vllm_surgeon.engine import planner
from vllm_surgeon.engine.moves import Lost, Search, addressable, anchor_scope, deeper, retarget
from vllm_surgeon.engine.results import PatchedModule, Plan
from vllm_surgeon.engine.state import Context
from vllm_surgeon.trees.releases import Tree

_CARRIED = ("moved", "renamed")  # a base class's method is shared: never carried there without the user


@dataclass
class Carried:
    """The hunks of a set whose code moved: where they land in the new release, or why they cannot."""

    stay: HunkSet  # the set without the hunks carried or in conflict: merged three-way as before
    # New module -> the new release's module with the carried hunks applied (or moved functions merged).
    modules: dict[str, PatchedModule | _Merged] = field(default_factory=dict)
    written: dict[str, list[tuple[int, int, int]]] = field(default_factory=dict)  # their anchors there (rebase keeps them)
    notes: list[str] = field(default_factory=list)  # what the summary says of each carried hunk
    # Each hunk carried with its anchor as written -> its new target (the rest are merged three-way).
    targets: dict[Origin, str] = field(default_factory=dict)
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
    moved: dict[Origin, AnchoredHunk | None] = {}  # hunk -> where it goes (None: a conflict, or merged below)
    merges: dict[tuple[str, str], MovedTo] = {}  # (module, qualname) in the base -> where its function went
    groups: dict[tuple[str, str], list[Origin]] = {}
    for result in planned.results[0].hunks:
        hunk = result.hunk
        if not isinstance(hunk, AnchoredHunk) or hunk.creates:
            continue
        qual = hunk.target.qualname or deeper(result.scope, _around_anchor(base, hunk, result.line))
        qual = addressable(qual) if qual else None  # a def nested in a function moves with it
        if not qual or not _gone(onto, hunk.target.module, qual, cache):
            continue
        found = search.whereabouts(ctx, hunk, Lost(hunk.target.module, (qual,)))
        if not found:
            continue  # nowhere else: the usual rebase says what is gone
        where = f"{hunk.origin} ({hunk.target.module}:{qual})"
        usable = [m for m in found if m.how in _CARRIED]
        groups.setdefault((hunk.target.module, qual), []).append(hunk.origin)
        if len(usable) == 1 and len([m for m in found if m.how == "moved"]) <= 1:
            to = usable[0]
            moved[hunk.origin] = retarget(hunk, to.module, to.qualname) if to.carries else None
            if not to.carries:  # the anchor is not there as written: the function is merged three-way
                merges[(hunk.target.module, qual)] = to
            out.notes.append(f"carried {where} to {to.module}:{to.qualname} (line {to.line}), "
                             f"where {onto.label} {_how(to)}")
        else:
            out.conflicts += [f"--- {where}", f"{qual} is not in {hunk.target.module} in {onto.label}; "
                              + _conflict(found) + "; carry it by hand (write the hunk against the right target)"]
            moved[hunk.origin] = None
    if moved:
        _finish(out, hunk_set, planned, base, onto, moved, merges, groups)
    return out


def _around_anchor(base: Tree, hunk: AnchoredHunk, line: int | None) -> str | None:
    """The function around a diff hunk's anchor in the base release (a line added after a function's
    last line is, by its place alone, at module scope)."""
    source = base.read(hunk.target.module)
    if source is None or line is None:
        return None
    try:
        return anchor_scope(ScopeIndex(source.text, source.path), line - 1, line - 1 + len(hunk.anchor))
    except SyntaxError:
        return None


def _finish(out: Carried, hunk_set: HunkSet, planned: Plan, base: Tree, onto: Tree, moved: dict[Origin, AnchoredHunk | None],
            merges: dict[tuple[str, str], MovedTo], groups: dict[tuple[str, str], list[Origin]]) -> None:
    """The set without its moved hunks, and those carried: as written where their anchors are, else merged."""
    out.stay = replace(hunk_set, hunks=tuple(h for h in hunk_set.hunks if h.origin not in moved))
    for key in merges:  # a function merged three-way takes all its hunks with it
        for origin in groups[key]:
            moved[origin] = None
    carried = [h for h in moved.values() if h is not None]
    if carried and not out.conflicts:
        _apply(out, hunk_set, carried, onto)
        written = {h.origin: h.target for h in hunk_set.hunks}
        out.targets = {h.origin: _new_target(written[h.origin], h.target) for h in carried} if not out.conflicts else {}
    if merges and not out.conflicts:
        _merge(out, planned, base, onto, merges)


def _new_target(written: Target, carried: Target) -> str:
    """The target a hunk carried as written gets: the user's qualified name in the new module where the
    move kept it (a def nested in the moved function: `work.<locals>.inner` stays that), else the new one."""
    mine, theirs = written.qualname or "", carried.qualname or ""
    if theirs and (mine == theirs or mine.startswith(theirs + ".")):
        return f"{carried.module}:{mine}"
    return str(carried)


@dataclass
class _Merged:
    """A module of the new release with moved functions merged three-way: what rebase drafts from."""

    source: ModuleSource
    text: str


def _merge(out: Carried, planned: Plan, base: Tree, onto: Tree, merges: dict[tuple[str, str], MovedTo]) -> None:
    """Each moved function whose anchor is not there as written, merged three-way (the function in the
    base release, as the set leaves it, and where it went): clean, it is carried; else a conflict."""
    edits: dict[str, list[tuple[int, int, list[str]]]] = {}
    for (module, qual), to in merges.items():
        merged = _merge_one(planned, base, onto, module, qual, to)
        if isinstance(merged, str):
            out.conflicts += [f"--- {module}:{qual}", f"{qual} is not in {module} in {onto.label}; it is "
                              f"{to.describe()}, and {merged}; carry it by hand (write the hunk against the right target)"]
            continue
        edits.setdefault(to.module, []).append(merged)
    for module, spans in edits.items():
        if module in out.modules:
            out.conflicts += [f"--- {module}", "moved code is carried into it both as written and merged: merge by hand"]
            continue
        source = onto.read(module)
        assert source is not None  # whereabouts read it
        lines = source.lines()
        for start, end, new in sorted(spans, reverse=True):
            lines[start:end] = new
        out.modules[module] = _Merged(source, "\n".join(lines))


def _merge_one(planned: Plan, base: Tree, onto: Tree, module: str, qual: str, to: MovedTo) -> tuple[int, int, list[str]] | str:
    """(start, end, lines): the moved function's 0-based span in the new module and its merged text; or why not."""
    old_source, new_source = base.read(module), onto.read(to.module)
    patched = planned.modules.get(module)
    if old_source is None or new_source is None or patched is None:
        return "it cannot be read"
    try:
        old = code_of(ScopeIndex(old_source.text), old_source.lines(), qual)
        ours = code_of(ScopeIndex(patched.text), patched.text.split("\n"), qual)
        theirs = code_of(ScopeIndex(new_source.text), new_source.lines(), to.qualname)
    except SyntaxError:
        return "it does not parse"
    if old is None or ours is None or theirs is None:
        return "it cannot be read"
    if ours.text == old.text:  # a line added after its last statement: the function's text does not hold it
        return "the set's change lies outside the function's own lines, which a merge of the function cannot carry"
    merged = merge3(old.text.split("\n"), ours.text.split("\n"), theirs.text.split("\n"))
    if merged.conflicts:
        return "a three-way merge of the function conflicts there"
    return theirs.start - 1, theirs.end, merged.lines


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
    anchor = {"found": "", "reformatted": ", the anchor found by structure"}.get(
        to.anchor, "; the anchor is not there as written: the function was merged three-way")
    return what + code + anchor


def _conflict(found: list[MovedTo]) -> str:
    listed = "; ".join(m.describe() for m in found)
    if len({m.module for m in found if m.how == "moved"}) > 1:
        return f"it is defined in {len(found)} other places, which one is not for rebase to guess: {listed}"
    if any(m.how == "base-class" for m in found):
        return f"it is {listed} (carrying the change there would change every class that inherits it)"
    return f"it is {listed}"
