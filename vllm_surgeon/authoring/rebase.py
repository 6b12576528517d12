"""`rebase`: carry a set onto a new release by a three-way merge of each module it changes.

base = the module in the release the set was written against, ours = base with the set applied,
theirs = the module in the new release. A clean merge becomes a new set of the same format,
checked against the new release before it is offered; overlapping changes are shown diff3-style.
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Sequence
from dataclasses import dataclass, field

from vllm_surgeon.authoring.carry import Carried, Written, carry_module, extra_sections, near_in, sections
from vllm_surgeon.authoring.drafts import code_lines
from vllm_surgeon.authoring.hunktext import HunkText, Section, cut
from vllm_surgeon.authoring.merge3 import Merge, merge3, render_conflicts
from vllm_surgeon.authoring.moved import Carried as Moved, carry_moved
from vllm_surgeon.authoring.udiff import relative_path, unified
from vllm_surgeon.core.model import AnchoredHunk, HunkSet, TransformHunk
from vllm_surgeon.core.scopes import ScopeIndex
from vllm_surgeon.engine import planner
from vllm_surgeon.engine.results import Plan
from vllm_surgeon.sets.loader import set_text
from vllm_surgeon.trees.releases import Tree


class RebaseError(ValueError):
    """The set cannot be rebased at all (wrong base, a transform set, a module gone)."""


@dataclass
class Rebased:
    text: str | None  # the new set file, when the merge is clean
    conflicts: list[str] = field(default_factory=list)  # diff3-style lines, when it is not
    # On a conflict: editable copies of the new release's functions the set changes, merged, with
    # diff3 markers where both sides changed: target -> text (for `capture`). Empty when a change
    # lies outside any function or class (then `new` + `capture` by hand is the way).
    copies: dict[str, str] = field(default_factory=dict)
    outside: list[str] = field(default_factory=list)  # modules with a change at module scope
    notes: list[str] = field(default_factory=list)  # hunks carried to where upstream moved their code (issue 14)


def _written_anchors(hunk_set: HunkSet, planned: Plan) -> dict[str, list[tuple[int, int, int]]]:
    """Per module: each written anchor's 0-based span in the base release and its lines of real code."""
    spans: dict[str, list[tuple[int, int, int]]] = {}
    for result in planned.results[0].hunks:
        hunk = result.hunk
        if isinstance(hunk, AnchoredHunk) and hunk.anchor and result.line is not None:
            start = result.line - 1
            spans.setdefault(hunk.target.module, []).append((start, start + len(hunk.anchor), code_lines(hunk.anchor)))
    return spans


def _keep_written(written: list[tuple[int, int, int]], base: Sequence[str], theirs: Sequence[str]):
    """For `drafts`: a change in the new release must be anchored by at least the lines of the
    anchor the user wrote that are still there, and by as many lines of code (issue 8: a clean
    rebase shrank a hand-written 5-line anchor to one comment line)."""
    to_theirs: dict[int, int] = {}
    for a, b, size in difflib.SequenceMatcher(None, list(base), list(theirs), autojunk=False).get_matching_blocks():
        to_theirs.update((a + k, b + k) for k in range(size))
    floors = []
    for start, end, code in written:
        mapped = [to_theirs[i] for i in range(start, end) if i in to_theirs]
        if mapped:
            floors.append((min(mapped), max(mapped) + 1, code))
    return _keep_near(floors)


def _context_for(theirs: Sequence[str], merged: Sequence[str], keep, default: int = 3) -> int:
    """Context lines for a rebased diff: enough that each change keeps the written anchor's lines around it."""
    context = default
    for tag, i1, i2, _, _ in difflib.SequenceMatcher(None, list(theirs), list(merged), autojunk=False).get_opcodes():
        floor = keep(i1, i2) if tag != "equal" else None
        if floor is not None:
            context = max(context, i1 - floor[0], floor[1] - i2)
    return context


def _reformatted_onto(hunk_set: HunkSet, onto: Tree) -> dict[str, str]:
    """Modules where the set applies to the new release as it is, some hunks only by structure
    (upstream re-laid the code out, issue 10): their patched text there. A three-way merge would see
    every re-laid line as an upstream change; this writes the anchors as the new release lays them out.
    Only when the whole set applies there: a set with a real conflict anywhere is merged three-way."""
    direct = planner.plan([hunk_set], onto.read, None, require_version=False)
    result = direct.results[0]
    if not result.ok:
        return {}
    modules = {h.hunk.target.module for h in result.hunks if h.reformatted}
    return {m: direct.modules[m].text for m in modules if m in direct.modules and not direct.modules[m].created}


def rebase(hunk_set: HunkSet, base: Tree, onto: Tree) -> Rebased:
    if any(isinstance(h, TransformHunk) for h in hunk_set.hunks):
        raise RebaseError(
            f"{hunk_set.name} is a set of LibCST transforms: they are not rebased, they run on the new code; "
            "`vllm-surgeon verify` tells whether their anchors still hold"
        )
    planned = planner.plan([hunk_set], base.read, base.version)
    if planned.refusals:
        first = planned.refusals[0]
        raise RebaseError(
            f"{hunk_set.name} does not apply to its base, {base.label} ({first.summary()}); "
            "name the release it was written against with --from"
        )
    moved = carry_moved(hunk_set, planned, base, onto)  # hunks whose code upstream moved (issue 14)
    if hunk_set.kind == "hunk":
        return _rebase_hunk_file(hunk_set, base, onto, planned, moved)
    return _rebase_diff(hunk_set, base, onto, planned, moved)


def _rebase_diff(hunk_set: HunkSet, base: Tree, onto: Tree, planned: Plan, moved: Moved) -> Rebased:
    """A diff set (a file or a series) carried onto `onto` as one diff, module by module."""
    if moved.any:
        planned = planner.plan([moved.stay], base.read, base.version)
    out = _Carried(_written_anchors(hunk_set, planned) | moved.written, _reformatted_onto(moved.stay, onto))
    out.conflicts += moved.conflicts
    for module in sorted(planned.modules):  # the set's modules as its paths resolve on the base (issue 6)
        patched = planned.modules[module]
        theirs_source = onto.read(module)
        if patched.created:  # a module the set creates: carried as it is, unless upstream made one too
            if out.created(hunk_set, module, theirs_source, onto):
                out.diffs += unified(relative_path(module, patched.source.path), None, patched.text)
            continue
        if theirs_source is None:
            raise RebaseError(f"{module} does not exist in {onto.label}")
        merged = out.merged(hunk_set, module, patched, theirs_source, base, onto)
        if merged is not None:
            # Exact unified output (ends of files, no final newline): what git apply and patch -F0 accept,
            # with as much context as the written anchor had around each change (issue 8: never weaker).
            keep = _keep_written(out.written.get(module, []), patched.source.lines(), theirs_source.lines())
            context = _context_for(theirs_source.lines(), merged, keep)
            out.diffs += unified(relative_path(module, theirs_source.path), theirs_source.text, "\n".join(merged), context)
    for module, theirs_source, carried, merged in out.carried_moves(hunk_set, moved, set(planned.modules), onto):
        keep = _keep_written(out.written.get(module, []), carried.source.lines(), theirs_source.lines())
        context = _context_for(theirs_source.lines(), merged, keep)
        out.diffs += unified(relative_path(module, theirs_source.path), theirs_source.text, "\n".join(merged), context)
    if out.conflicts:
        return out.failed(moved.notes)
    return Rebased(_rebased_text(hunk_set, onto, planned, out), notes=moved.notes)


def _carried_as_is(hunk) -> bool:
    """A section of only '+' lines: added at the end of its class or module, or a module created; it
    has no anchor to merge and is carried as written (issue 15: merged, upstream's new code at the end
    of the file made it a conflict, and a method added to a class became a module-scope hunk)."""
    return isinstance(hunk, AnchoredHunk) and (hunk.creates or not hunk.anchor)


def _rebase_hunk_file(hunk_set: HunkSet, base: Tree, onto: Tree, planned: Plan, moved: Moved) -> Rebased:
    """A `.hunk` set carried onto `onto` as its author wrote it: header, comments, hunk order and
    targets kept wherever they hold; only the hunks that no longer apply are drafted again, and the
    hunks whose code upstream moved (issue 14) are drafted where it went, in the place of the first."""
    written = cut(set_text(hunk_set))
    if [s.line for s in written.sections] != [h.origin.line for h in hunk_set.hunks]:
        raise RebaseError(f"{hunk_set.path}: its sections do not match the hunks read from it; run the command again")
    staying = {h.origin for h in moved.stay.hunks} if moved.any else {h.origin for h in hunk_set.hunks}
    merging = dataclasses.replace(hunk_set, hunks=tuple(h for h in hunk_set.hunks if not _carried_as_is(h) and h.origin in staying))
    if not merging.hunks:  # only '+' sections: each is carried as written
        ours = direct = Plan([], {}, base.version)
    else:
        ours = planner.plan([merging], base.read, base.version)
        direct = planner.plan([merging], onto.read, None, require_version=False)
    out = _Carried(_written_anchors(merging, ours) if merging.hunks else {}, _reformatted_onto(merging, onto))
    out.conflicts += moved.conflicts
    for module in sorted(planned.modules):
        if planned.modules[module].created and not out.created(hunk_set, module, onto.read(module), onto):
            continue
        if module not in ours.modules:
            continue
        patched, theirs = ours.modules[module], onto.read(module)
        if theirs is None:
            raise RebaseError(f"{module} does not exist in {onto.label}")
        merged = out.merged(hunk_set, module, patched, theirs, base, onto)
        if merged is None:
            continue
        mine = _written_hunks(hunk_set, module, written, ours, direct, near_in(patched.source.lines(), theirs.lines()))
        keep = _keep_near([(w.near[0], w.near[1], code_lines(w.hunk.anchor)) for w in mine if w.holds is None])
        out.carried[module] = carry_module(module, theirs, merged, mine, keep, onto.read)
    gone = [n for n, h in enumerate(hunk_set.hunks) if h.origin not in staying]
    as_written = moved.targets if all(hunk_set.hunks[n].origin in moved.targets for n in gone) else {}
    moved_sections = _moved_sections(hunk_set, moved, out, set(ours.modules), onto, drafted=not as_written)
    if out.conflicts:
        return out.failed(moved.notes)
    return Rebased(_written_back(hunk_set, onto, written, out, (gone, moved_sections, as_written)), notes=moved.notes)


def _moved_sections(hunk_set: HunkSet, moved: Moved, out: _Carried, changed: set[str], onto: Tree, drafted: bool) -> list[str]:
    """The sections that carry the hunks whose code moved (issue 14), drafted anew where it went; none
    when each is carried as written (its section is then written back with its new target)."""
    sections_there: list[str] = []
    for module, theirs, _, merged in out.carried_moves(hunk_set, moved, changed, onto):
        if drafted:
            carried = carry_module(module, theirs, merged, [], _keep_near(moved.written.get(module, [])), onto.read)
            sections_there += extra_sections(module, carried)
    return sections_there


def _written_hunks(hunk_set: HunkSet, module: str, written: HunkText, ours: Plan, direct: Plan, near) -> list[Written]:
    """The anchored hunks of `module` as written: where each lay (mapped onto the new release), and
    where it applies there as written, if it does (not by structure only: that one is laid out anew)."""
    on_base = {id(r.hunk): r for r in ours.results[0].hunks}
    on_onto = {id(r.hunk): r for r in direct.results[0].hunks}
    mine = []
    for number, hunk in enumerate(hunk_set.hunks):
        if hunk.target.module != module or not isinstance(hunk, AnchoredHunk) or _carried_as_is(hunk) or id(hunk) not in on_base:
            continue
        start = (on_base[id(hunk)].line or 1) - 1
        there, holds, section = on_onto.get(id(hunk)), None, written.sections[number].text()
        if there is not None and there.refusal is None and not there.reformatted and there.line is not None:
            holds = (there.line - 1, there.line - 1 + len(hunk.anchor))
            if there.moved and hunk.hint_offset is not None:
                section = written.sections[number].with_offset(hunk.hint_offset + there.moved)
        mine.append(Written(number, hunk, near(start, start + len(hunk.anchor)), holds, section))
    return mine


def _keep_near(floors: list[tuple[int, int, int]]):
    """For `drafts`: a redrafted change keeps at least the lines (and the code) of the written anchor
    it came from that the new release still has (issue 8: a rebase shrank a 5-line anchor to one line)."""

    def keep(i1: int, i2: int):
        around = [f for f in floors if f[0] <= i2 and i1 <= f[1]]
        if not around:
            return None
        return min(f[0] for f in around), max(f[1] for f in around), max(f[2] for f in around)

    return keep


def _written_back(hunk_set: HunkSet, onto: Tree, written: HunkText, out: _Carried,
                  moved: tuple[list[int], list[str], dict]) -> str:
    """The user's file with `written-against` set to the new release, each section that holds as it
    was, and the redrafted ones in the place of the sections they replace; `moved`: the numbers of the
    sections whose code moved, the sections drafted where it went (in the place of the first), and the
    new targets of those carried as written (all of them, or none: then every one is drafted)."""
    gone, moved_sections, moved_to = moved
    header = written.header
    if onto.release:
        header = written.header_with(hunk_set, "written-against", onto.release)
    lines = list(header)
    last_of: dict[str, int] = {}
    for number, hunk in enumerate(hunk_set.hunks):
        last_of[hunk.target.module] = number
    for number, hunk in enumerate(hunk_set.hunks):
        module = hunk.target.module
        section = written.sections[number]
        carried = out.carried.get(module)
        if number in gone and hunk.origin in moved_to:  # carried as written: only its target is new
            lines += section.with_target(moved_to[hunk.origin])
        elif number in gone:  # its comment stays; the first one's place takes every section drafted where the code went
            lines += [line for line in section.lead if line.strip()] + (moved_sections[:-1] + [""] if number == gone[0] else [])
        elif carried is None or _carried_as_is(hunk) or number in carried.kept:
            lines += _kept_text(carried, number, section)
        elif number in carried.placed:
            lead = section.lead + [line for n in carried.absorbed.get(number, []) for line in written.sections[n].lead if line.strip()]
            lines += lead + sections(module, carried, number)[:-1] + (section.trail or [""])
        if carried is not None and last_of[module] == number and carried.extra:
            lines += [""] + extra_sections(module, carried)[:-1]
    return "\n".join(lines).rstrip("\n") + "\n"


def _kept_text(carried: Carried | None, number: int, section: Section) -> list[str]:
    """A section written back as it is (a kept hunk that moved: its offset hint updated)."""
    return carried.as_written.get(number, section.text()) if carried is not None else section.text()


class _Carried:
    """What `rebase` carries onto the new release, module by module: diff lines or `.hunk` sections,
    or the conflicts (with the merged copies of the functions they are in)."""

    def __init__(self, written: dict[str, list], laid_out: dict[str, str]) -> None:
        self.written, self.laid_out = written, laid_out
        self.conflicts: list[str] = []
        self.copies: dict[str, str] = {}
        self.outside: list[str] = []
        self.diffs: list[str] = []
        self.carried: dict[str, Carried] = {}  # a `.hunk` set: module -> its sections kept and drafted

    def created(self, hunk_set: HunkSet, module: str, theirs_source, onto: Tree) -> bool:
        """Whether a module the set creates can be carried as it is (not when upstream made one too)."""
        if theirs_source is None:
            return True
        self.conflicts += [f"--- {module}", f"{hunk_set.name} creates {module}, and {onto.label} has one already "
                           f"({theirs_source.path}): merge them by hand"]
        return False

    def merged(self, hunk_set: HunkSet, module: str, patched, theirs_source, base: Tree, onto: Tree) -> list[str] | None:
        """The new release's module with the set's change merged in; None (and the conflict recorded)
        when both sides changed the same lines or the new release has the change already."""
        theirs_lines = theirs_source.lines()
        labels = (f"{hunk_set.name} (on {base.version})", f"vllm {base.version}", f"vllm {onto.version}")
        if module in self.laid_out:  # same code, new layout: the set as it applies there, in that layout
            merged = Merge(self.laid_out[module].split("\n"), [])
        else:
            merged = merge3(patched.source.lines(), patched.text.split("\n"), theirs_lines)
        if merged.conflicts:
            self.conflicts += [f"--- {module}"] + render_conflicts(merged, *labels)
            index = ScopeIndex(theirs_source.text, theirs_source.path)
            found, at_module = _copies(module, merged, theirs_lines, index, labels)
            self.copies.update(found)
            if at_module:
                self.outside.append(module)
            return None
        if merged.lines == theirs_lines:
            self.conflicts += [f"--- {module}", f"the new release already contains every change of {hunk_set.name} here"]
            return None
        return merged.lines

    def carried_moves(self, hunk_set: HunkSet, moved: Moved, changed: set[str], onto: Tree) -> list[tuple]:
        """(module, its source, the carried module, merged lines) for each module that code upstream moved
        went to, the set's hunks carried there (issue 14); a module the set changes anyway is a conflict."""
        found = []
        for module, carried in sorted(moved.modules.items()):
            theirs = onto.read(module)
            if module in changed or theirs is None:
                self.conflicts += [f"--- {module}", f"{hunk_set.name} changes {module} and carries moved code into it: merge by hand"]
                continue
            merged = self.merged(hunk_set, module, carried, theirs, onto, onto)  # already applied there: kept as it is
            if merged is not None:
                found.append((module, theirs, carried, merged))
        return found

    def failed(self, notes: list[str]) -> Rebased:
        return Rebased(None, self.conflicts, copies=self.copies if not self.outside else {}, outside=self.outside, notes=notes)


def _rebased_text(hunk_set: HunkSet, onto: Tree, planned, out: _Carried) -> str:
    """A rebased diff set's file: its header (written-against the new release; a series' commits and
    files left out noted) and its diffs."""
    fields = {k: v for k, v in hunk_set.fields.items() if k != "root"}  # the rebased diff's paths are from the tree's root
    fields["written-against"] = onto.release or fields.get("written-against", "")
    header = [f"{key}: {value}" for key, value in fields.items() if value]
    if hunk_set.commits:  # a series is rebased as its net change: one diff, its commits recorded here
        header = [f"# rebased by vllm-surgeon from {hunk_set.path}, the net change of {len(hunk_set.commits)} commits:"] + [
            f"#   {c.label()}" for c in hunk_set.commits] + header
    left_out = planned.results[0].skipped
    if left_out:
        header += [f"# not carried (skip: {k.pattern}): {k.file.name}" for k in left_out]
    return "\n".join(header + out.diffs) + "\n"


def _copies(
    module: str, merged: Merge, theirs: list[str], index: ScopeIndex, labels: tuple[str, str, str]
) -> tuple[dict[str, str], bool]:
    """The new release's functions that the merge changes, as merged, with diff3 markers where both
    sides changed; and whether some change lies at module scope (no function to hold it)."""
    ours_label, base_label, theirs_label = labels
    edits: list[tuple[int, int, list[str]]] = []  # (start, end) in theirs -> replacement lines
    matcher = difflib.SequenceMatcher(None, theirs, merged.lines, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag != "equal":
            edits.append((i1, i2, merged.lines[j1:j2]))
    for c in merged.conflicts:
        block = [f"<<<<<<< {ours_label}", *c.ours, f"||||||| {base_label}", *c.base, "=======", *c.theirs,
                 f">>>>>>> {theirs_label}"]
        edits.append((c.theirs_start, c.theirs_start + len(c.theirs), block))
    scopes = {}
    at_module = False
    for start, end, _ in edits:
        scope = _holder(index, start, end)
        if scope.kind == "module":
            at_module = True
        else:
            scopes[(scope.start, scope.end)] = scope
    # One copy per outermost scope: a method's edits go in its class's copy when the class has one.
    chosen = [s for s in scopes.values()
              if not any(o is not s and o.start <= s.start and s.end <= o.end for o in scopes.values())]
    copies = {}
    for scope in sorted(chosen, key=lambda s: s.start):
        lines, pos = [], scope.start
        for start, end, replacement in sorted(e for e in edits if scope.start <= e[0] and e[1] <= scope.end):
            lines += theirs[pos:start] + replacement
            pos = end
        lines += theirs[pos : scope.end]
        copies[f"{module}:{scope.qualname}"] = "\n".join(lines) + "\n"
    return copies, at_module


def _holder(index: ScopeIndex, start: int, end: int):
    """The smallest function or class reachable by name (`module:Qualified.name`) holding lines
    [start, end) (an empty span: the gap before `start`); the module when there is none."""
    best = index.module
    for scope in index.scopes:
        inside = scope.contains(start, end) if end > start else scope.start < start < scope.end
        if inside and scope.addressable and scope.kind != "module" and scope.end - scope.start <= best.end - best.start:
            best = scope
    return best
