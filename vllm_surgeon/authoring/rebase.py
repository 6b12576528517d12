"""`rebase`: carry a set onto a new release by a three-way merge of each module it changes.

base = the module in the release the set was written against, ours = base with the set applied,
theirs = the module in the new release. A clean merge becomes a new set of the same format,
checked against the new release before it is offered; overlapping changes are shown diff3-style.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from dataclasses import dataclass, field

from vllm_surgeon.authoring.drafts import code_lines, drafts, render_hunk_section, render_new_module_section, same_named
from vllm_surgeon.authoring.merge3 import Merge, merge3, render_conflicts
from vllm_surgeon.authoring.moved import carry_moved
from vllm_surgeon.authoring.udiff import relative_path, unified
from vllm_surgeon.core.model import AnchoredHunk, HunkSet, TransformHunk
from vllm_surgeon.core.scopes import ScopeIndex
from vllm_surgeon.engine import planner
from vllm_surgeon.engine.results import Plan
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


def _scope_of(index: ScopeIndex, total: int):
    def scope_of(start: int, end: int):
        exact = [s for s in index.scopes if (s.start, s.end) == (start, end) and s.kind != "module"]
        if exact:  # asked to widen: the smallest scope strictly around this one
            around = [s for s in index.scopes if s.start <= start and end <= s.end and (s.start, s.end) != (start, end)]
            best = min(around, key=lambda s: s.end - s.start, default=index.module)
        else:
            best = index.innermost(start, end)
        if best.kind == "module":
            return None, 0, total
        return best.qualname, best.start, best.end

    return scope_of


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

    def keep(i1: int, i2: int):
        around = [f for f in floors if f[0] <= i2 and i1 <= f[1]]
        if not around:
            return None
        return min(f[0] for f in around), max(f[1] for f in around), max(f[2] for f in around)

    return keep


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
    if moved.any:
        planned = planner.plan([moved.stay], base.read, base.version)
    out = _Carried(_written_anchors(hunk_set, planned) | moved.written, _reformatted_onto(moved.stay, onto))
    out.conflicts += moved.conflicts
    for module in sorted(planned.modules):  # the set's modules as its paths resolve on the base (issue 6)
        patched = planned.modules[module]
        theirs_source = onto.read(module)
        if patched.created:  # a module the set creates: carried as it is, unless upstream made one too
            out.created(hunk_set, module, patched, theirs_source, onto)
            continue
        if theirs_source is None:
            raise RebaseError(f"{module} does not exist in {onto.label}")
        out.changed(hunk_set, module, patched, theirs_source, base, onto)
    for module, carried in sorted(moved.modules.items()):  # already applied there: the merge keeps them as they are
        if module in planned.modules:
            out.conflicts += [f"--- {module}", f"{hunk_set.name} changes {module} and carries moved code into it: merge by hand"]
        else:
            out.changed(hunk_set, module, carried, onto.read(module), onto, onto)
    if out.conflicts:
        return Rebased(None, out.conflicts, copies=out.copies if not out.outside else {}, outside=out.outside, notes=moved.notes)
    return Rebased(_rebased_text(hunk_set, onto, planned, out), notes=moved.notes)


class _Carried:
    """What `rebase` carries onto the new release, module by module: .hunk sections or diff lines,
    or the conflicts (with the merged copies of the functions they are in)."""

    def __init__(self, written: dict[str, list], laid_out: dict[str, str]) -> None:
        self.written, self.laid_out = written, laid_out
        self.conflicts: list[str] = []
        self.copies: dict[str, str] = {}
        self.outside: list[str] = []
        self.sections: list[str] = []
        self.diffs: list[str] = []

    def created(self, hunk_set: HunkSet, module: str, patched, theirs_source, onto: Tree) -> None:
        if theirs_source is not None:
            self.conflicts += [f"--- {module}", f"{hunk_set.name} creates {module}, and {onto.label} has one already "
                               f"({theirs_source.path}): merge them by hand"]
        elif hunk_set.kind == "diff":
            self.diffs += unified(relative_path(module, patched.source.path), None, patched.text)
        else:
            self.sections += render_new_module_section(module, patched.text) + [""]

    def changed(self, hunk_set: HunkSet, module: str, patched, theirs_source, base: Tree, onto: Tree) -> None:
        base_lines = patched.source.lines()
        theirs_lines = theirs_source.lines()
        labels = (f"{hunk_set.name} (on {base.version})", f"vllm {base.version}", f"vllm {onto.version}")
        if module in self.laid_out:  # same code, new layout: the set as it applies there, in that layout
            merged = Merge(self.laid_out[module].split("\n"), [])
        else:
            merged = merge3(base_lines, patched.text.split("\n"), theirs_lines)
        if merged.conflicts:
            self.conflicts += [f"--- {module}"] + render_conflicts(merged, *labels)
            index = ScopeIndex(theirs_source.text, theirs_source.path)
            found, at_module = _copies(module, merged, theirs_lines, index, labels)
            self.copies.update(found)
            if at_module:
                self.outside.append(module)
            return
        if merged.lines == theirs_lines:
            self.conflicts += [f"--- {module}", f"the new release already contains every change of {hunk_set.name} here"]
            return
        keep = _keep_written(self.written.get(module, []), base_lines, theirs_lines)
        if hunk_set.kind == "diff":
            # Exact unified output (ends of files, no final newline): what git apply and patch -F0 accept,
            # with as much context as the written anchor had around each change (issue 8: never weaker).
            context = _context_for(theirs_lines, merged.lines, keep)
            self.diffs += unified(relative_path(module, theirs_source.path), theirs_source.text, "\n".join(merged.lines), context)
            return
        index = ScopeIndex(theirs_source.text, theirs_source.path)
        for draft in drafts(theirs_lines, merged.lines, _scope_of(index, len(theirs_lines)), keep=keep, same_named=same_named(index)):
            target = f"{module}:{draft.scope}" if draft.scope else module
            self.sections += render_hunk_section(target, draft) + [""]


def _rebased_text(hunk_set: HunkSet, onto: Tree, planned, out: _Carried) -> str:
    """The rebased set's file: its header (written-against the new release; a series' commits and
    files left out noted) and its sections or diffs."""
    fields = {k: v for k, v in hunk_set.fields.items() if k != "root"}  # the rebased diff's paths are from the tree's root
    fields["written-against"] = onto.release or fields.get("written-against", "")
    header = [f"{key}: {value}" for key, value in fields.items() if value]
    if hunk_set.commits:  # a series is rebased as its net change: one diff, its commits recorded here
        header = [f"# rebased by vllm-surgeon from {hunk_set.path}, the net change of {len(hunk_set.commits)} commits:"] + [
            f"#   {c.label()}" for c in hunk_set.commits] + header
    left_out = planned.results[0].skipped
    if left_out:
        header += [f"# not carried (skip: {k.pattern}): {k.file.name}" for k in left_out]
    if hunk_set.kind == "diff":
        return "\n".join(header + out.diffs) + "\n"
    return "\n".join(header + [""] + out.sections).rstrip("\n") + "\n"


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
