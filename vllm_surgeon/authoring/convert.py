"""`convert`: the change a diff set makes, written as a `.hunk` set of function-anchored hunks.

A plain diff cannot say which function it meant: a block that sits once in the file but in another
function is accepted, and one that occurs in two functions is refused. A `.hunk` section names its
function (`@@ module:Qualified.name`) and its anchor must occur once *there*, so on later releases
it neither jumps into another function nor is refused because of a twin elsewhere.

The converted set is the *net* change at the base release: for a series, base -> after the last
commit (its commits are recorded in comments). A new module is `@@ pkg.new_module @@ new` with only
'+' lines. The text is checked to give identical modules on the base release before it is offered.
"""

from __future__ import annotations

from dataclasses import dataclass

from vllm_surgeon.authoring.drafts import drafts, render_hunk_section, render_new_module_section, same_named, scope_finder
from vllm_surgeon.core.model import HunkSet, TransformHunk
from vllm_surgeon.core.scopes import ScopeIndex
from vllm_surgeon.engine import planner
from vllm_surgeon.engine.results import PatchedModule, Plan
from vllm_surgeon.sets.hunkfile import parse_hunk_file
from vllm_surgeon.trees.releases import Tree


class ConvertError(ValueError):
    """The set cannot be converted: it does not apply to the base, or a change has no `.hunk` spelling."""


@dataclass
class Converted:
    text: str
    hunks: int
    modules: int


def convert(hunk_set: HunkSet, tree: Tree, out_path: str) -> Converted:
    """The `.hunk` text for `hunk_set` at `tree` (its base release), checked to give the same modules there."""
    if any(isinstance(h, TransformHunk) for h in hunk_set.hunks):
        raise ConvertError(f"{hunk_set.name} is a set of LibCST transforms; only hunk and diff sets are converted")
    planned = planner.plan([hunk_set], tree.read, tree.version, require_version=False)
    if planned.refusals:
        raise ConvertError(
            f"{hunk_set.name} does not apply to {tree.label} ({planned.refusals[0].summary()}); "
            "convert it against the release it was written for (--against SPEC)"
        )
    header = _converted_header(hunk_set, tree, planned)
    sections: list[str] = []
    count = 0
    for module in sorted(planned.modules):
        written, n = _module_sections(module, planned.modules[module])
        sections += written
        count += n
    text = "\n".join(header + [""] + sections).rstrip("\n") + "\n"
    check = parse_hunk_file(text, out_path, hunk_set.name)
    again = planner.plan([check], tree.read, tree.version, require_version=False)
    # Modules the set leaves as they were (a series whose later commit undoes an earlier one, a hunk that
    # rewrites a line as itself) have no section: compare what changed.
    same = not again.refusals and _changed(again) == _changed(planned)
    if not same:
        why = again.refusals[0].summary() if again.refusals else "the modules it gives differ from the diff's"
        raise ConvertError(f"the converted set would not give the same text on {tree.label} ({why}); nothing written")
    return Converted(text, count, len(planned.modules))


def _converted_header(hunk_set: HunkSet, tree: Tree, planned: Plan) -> list[str]:
    """Where the set came from (its commits, the files it leaves out) and its fields, written against `tree`."""
    header = [f"# converted by `vllm-surgeon convert` from {hunk_set.path}, checked against {tree.label}"]
    header += [f"# {commit.label()}" for commit in hunk_set.commits]
    header += [f"# left out (skip: {skipped.pattern}): {skipped.file.name}" for skipped in planned.results[0].skipped]
    fields = {k: v for k, v in hunk_set.fields.items() if k not in ("skip", "root")}
    if tree.release:
        fields["written-against"] = tree.release
    return header + [f"{key}: {value}" for key, value in fields.items() if value]


def _module_sections(module: str, patched: PatchedModule) -> tuple[list[str], int]:
    """The .hunk sections (each followed by a blank line) that make `patched` from its source, and how many."""
    new = patched.text.split("\n")
    if patched.created:
        if patched.source.path.replace("\\", "/").endswith("/__init__.py"):
            raise ConvertError(f"{module} is a package the set creates; a .hunk set creates modules only (keep the diff)")
        return render_new_module_section(module, patched.text) + [""], 1
    old = patched.source.lines()
    index = ScopeIndex(patched.source.text, patched.source.path)
    try:
        # The smallest anchor unique in its function (and its same-named definitions): the function name
        # anchors it already. Three lines of code, as capture asks, made converted sets refuse more often
        # on later releases (bench_history: 173 vs 181 of 182 at +1, 153 vs 173 at +4) for no safety gained.
        found = drafts(old, new, scope_finder(index, len(old)), min_code=1, same_named=same_named(index))
    except ValueError as exc:
        raise ConvertError(f"{module}: {exc}") from None
    sections: list[str] = []
    for draft in found:
        target = f"{module}:{draft.scope}" if draft.scope else module
        sections += render_hunk_section(target, draft) + [""]
    return sections, len(found)


def _changed(plan: Plan) -> dict[str, str]:
    return {m: p.text for m, p in plan.modules.items() if p.created or p.text != p.source.text}
