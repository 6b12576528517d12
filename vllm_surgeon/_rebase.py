"""`rebase`: carry a set onto a new release by a three-way merge of each module it changes.

base = the module in the release the set was written against, ours = base with the set applied,
theirs = the module in the new release. A clean merge becomes a new set of the same format,
checked against the new release before it is offered; overlapping changes are shown diff3-style.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from . import _engine
from ._drafts import drafts, render_hunk_section, same_named
from ._merge3 import merge3, render_conflicts
from ._model import HunkSet, TransformHunk
from ._releases import Tree
from ._scopes import ScopeIndex
from ._udiff import relative_path, unified


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
    for module in sorted(planned.modules):  # the set's modules as its paths resolve on the base (issue 6)
        patched = planned.modules[module]
        theirs_source = onto.read(module)
        if patched.created:  # a module the set creates: carried as it is, unless upstream made one too
            if theirs_source is not None:
                conflicts += [f"--- {module}", f"{hunk_set.name} creates {module}, and {onto.label} has one already "
                              f"({theirs_source.path}): merge them by hand"]
            elif hunk_set.kind == "diff":
                diffs += unified(relative_path(module, patched.source.path), None, patched.text)
            else:
                sections += [f"@@ {module} @@ new"] + ["+" + line for line in patched.text.split("\n")[:-1]] + [""]
            continue
        if theirs_source is None:
            raise RebaseError(f"{module} does not exist in {onto.label}")
        base_lines = patched.source.lines()
        ours_lines = patched.text.split("\n")
        theirs_lines = theirs_source.lines()
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
            # Exact unified output (ends of files, no final newline): what git apply and patch -F0 accept.
            diffs += unified(relative_path(module, theirs_source.path), theirs_source.text, "\n".join(merged.lines))
        else:
            for draft in drafts(theirs_lines, merged.lines, _scope_of(index, len(theirs_lines)), same_named=same_named(index)):
                target = f"{module}:{draft.scope}" if draft.scope else module
                sections += render_hunk_section(target, draft) + [""]
    if conflicts:
        return Rebased(None, conflicts)
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
        text = "\n".join(header + diffs) + "\n"
    else:
        text = "\n".join(header + [""] + sections).rstrip("\n") + "\n"
    return Rebased(text)
