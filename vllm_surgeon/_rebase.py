"""`rebase`: carry a set onto a new release by a three-way merge of each module it changes.

base = the module in the release the set was written against, ours = base with the set applied,
theirs = the module in the new release. A clean merge becomes a new set of the same format,
checked against the new release before it is offered; overlapping changes are shown diff3-style.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from . import _engine
from ._drafts import drafts, render_hunk_section, render_unified
from ._merge3 import merge3, render_conflicts
from ._model import HunkSet, TransformHunk
from ._releases import Tree
from ._scopes import ScopeIndex


class RebaseError(ValueError):
    """The set cannot be rebased at all (wrong base, a transform set, a module gone)."""


@dataclass
class Rebased:
    text: str | None  # the new set file, when the merge is clean
    conflicts: list[str] = field(default_factory=list)  # diff3-style lines, when it is not
    plan: _engine.Plan | None = None  # the new set checked against the new release


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


@dataclass
class _Merged:
    lines: list[str]
    conflicts: bool = False


def _reformatted_onto(hunk_set: HunkSet, onto: Tree) -> dict[str, str]:
    """Modules where the set's hunks apply to the new release as they are, some only by structure
    (upstream re-laid the code out, issue 10): their patched text there. A three-way merge would see
    every re-laid line as an upstream change; this writes the anchors as the new release lays them out."""
    out = {}
    for module in hunk_set.modules:
        part = replace(hunk_set, hunks=tuple(h for h in hunk_set.hunks if h.target.module == module))
        direct = _engine.plan([part], onto.read, None, require_version=False)
        if not direct.refusals and any(h.reformatted for h in direct.results[0].hunks) and module in direct.modules:
            out[module] = direct.modules[module].text
    return out


def rebase(hunk_set: HunkSet, base: Tree, onto: Tree) -> Rebased:
    if any(isinstance(h, TransformHunk) for h in hunk_set.hunks):
        raise RebaseError(
            f"{hunk_set.name} is a set of LibCST transforms: they are not rebased, they run on the new code; "
            "`vllm-surgeon verify` tells whether their anchors still hold"
        )
    planned = _engine.plan([hunk_set], base.read, base.version)
    if planned.refusals:
        first = planned.refusals[0]
        raise RebaseError(
            f"{hunk_set.name} does not apply to its base, {base.label} ({first.summary()}); "
            "name the release it was written against with --from"
        )
    conflicts: list[str] = []
    sections: list[str] = []
    diffs: list[str] = []
    laid_out = _reformatted_onto(hunk_set, onto)
    for module in hunk_set.modules:
        theirs_source = onto.read(module)
        if theirs_source is None:
            raise RebaseError(f"{module} does not exist in {onto.label}")
        base_lines = base.read(module).lines()
        ours_lines = planned.modules[module].text.split("\n")
        theirs_lines = theirs_source.lines()
        if module in laid_out:  # same code, new layout: the set as it applies there, in that layout
            merged = _Merged(laid_out[module].split("\n"))
        else:
            merged = merge3(base_lines, ours_lines, theirs_lines)
        if merged.conflicts:
            conflicts += [f"--- {module}"] + render_conflicts(
                merged, f"{hunk_set.name} (on {base.version})", f"vllm {base.version}", f"vllm {onto.version}"
            )
            continue
        if merged.lines == theirs_lines:
            conflicts += [f"--- {module}", f"the new release already contains every change of {hunk_set.name} here"]
            continue
        index = ScopeIndex(theirs_source.text, theirs_source.path)
        if hunk_set.kind == "diff":
            whole = len(theirs_lines)
            found = drafts(theirs_lines, merged.lines, lambda a, b, whole=whole: (None, 0, whole), min_context=3)
            diffs += render_unified(module.replace(".", "/") + ".py", theirs_lines, found)
        else:
            for draft in drafts(theirs_lines, merged.lines, _scope_of(index, len(theirs_lines))):
                target = f"{module}:{draft.scope}" if draft.scope else module
                sections += render_hunk_section(target, draft) + [""]
    if conflicts:
        return Rebased(None, conflicts)
    fields = dict(hunk_set.fields)
    fields["written-against"] = onto.release or fields.get("written-against", "")
    header = [f"{key}: {value}" for key, value in fields.items() if value]
    if hunk_set.kind == "diff":
        text = "\n".join(header + diffs) + "\n"
    else:
        text = "\n".join(header + [""] + sections).rstrip("\n") + "\n"
    return Rebased(text)
