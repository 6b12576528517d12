"""Module changes -> a `.hunk` set, checked with the engine before anyone sees it.

Hunks are drafted as `capture` drafts them (the smallest anchors unique in their function, with
three lines of code where the function has them); a method added to a class is an add-only section.
The check (issue 16): the engine, given the set and the release, must produce exactly the text the
adoption computed; the target's code must be the replacement's; and the patched module must read no
undefined name the release's module does not. Never a hunk that gives other code.
"""

from __future__ import annotations

import ast

from vllm_surgeon.adopt import code, names
from vllm_surgeon.adopt.adoption import ModuleChange
from vllm_surgeon.adopt.relayout import diff_edits
from vllm_surgeon.authoring.drafts import drafts, render_hunk_section, same_named, scope_finder
from vllm_surgeon.core.model import HunkFileError
from vllm_surgeon.core.scopes import ScopeIndex
from vllm_surgeon.core.source import SourceReader
from vllm_surgeon.engine import planner
from vllm_surgeon.sets.hunkfile import parse_hunk_file


def sections(change: ModuleChange) -> list[str]:
    """The `.hunk` sections of one module's change, each followed by a blank line. A method added to a
    class is an add-only section, unless a drafted hunk reaches the class's end: then it is drafted
    with the rest (two hunks of one set may not change the same place)."""
    old = change.text.lines
    index = change.index or ScopeIndex(change.source.text, change.source.path)
    inline: set[str] = set()
    while True:
        new, opcodes = diff_edits(old, change.all_edits(with_added=inline))
        class_ends = {index.find(q.rpartition(".")[0])[0].end for q in inline}
        scope_of = _scope_finder(index, len(old), class_ends, set(change.defined_at.values()))
        found = drafts(old, new, scope_of, same_named=same_named(index), opcodes=opcodes) if new != old else []
        ends = {q: index.find(q.rpartition(".")[0])[0].end for q in change.added if q not in inline}
        touched = {q for q, end in ends.items() if any(d.start <= end <= d.end for d in found)}
        if not touched:
            break
        inline |= touched
    out: list[str] = []
    for draft in found:
        target = f"{change.module}:{draft.scope}" if draft.scope else change.module
        out += render_hunk_section(target, draft) + [""]
    for qualname, lines in change.added.items():
        if qualname not in inline:
            out += [f"@@ {change.module}:{qualname.rpartition('.')[0]}", "+"] + ["+" + line for line in lines] + [""]
    return out


def _scope_finder(index: ScopeIndex, total: int, class_ends: set[int], module_at: set[int]):
    """convert's scope_of, but lines added at the very end of a function belong to that function
    (statements appended to its body), a method added at a class's end (`class_ends`) to the class,
    and a global carried in after a top-level statement (`module_at`) to the module."""
    base = scope_finder(index, total)

    def scope_of(start: int, end: int) -> tuple[str | None, int, int]:
        if start == end and start in module_at:
            return None, 0, total
        if start == end and start in class_ends:
            holder = min((s for s in index.scopes if s.kind == "class" and s.end == start), key=lambda s: s.end - s.start)
            return holder.qualname, holder.start, holder.end
        if start == end and start > 0:
            before = index.innermost(start - 1, start)
            if before.kind == "function" and before.addressable and before.end == start:
                return before.qualname, before.start, before.end
        return base(start, end)

    return scope_of


def render(changes: list[ModuleChange], header: list[str]) -> str:
    """The whole set file: header lines, then every module's sections."""
    body: list[str] = []
    for change in sorted(changes, key=lambda c: c.module):
        body += sections(change)
    return "\n".join(header + [""] + body).rstrip("\n") + "\n"


def check(text: str, path: str, name: str, read: SourceReader, version: str | None, changes: list[ModuleChange]) -> str | None:
    """Why the set must not be written (None: it gives exactly the adopted code)."""
    try:
        hunk_set = parse_hunk_file(text, path, name)
    except HunkFileError as exc:  # a bug here, never the user's: say it plainly
        return f"the drafted set does not read back ({exc})"
    plan = planner.plan([hunk_set], read, version, require_version=False)
    if plan.refusals:
        return f"the engine refuses the drafted set: {plan.refusals[0].summary()}"
    for change in changes:
        patched = plan.modules.get(change.module)
        if patched is None:
            return f"the engine leaves {change.module} unchanged"
        if patched.text.split("\n") != change.lines():
            return f"the engine's {change.module} is not the adopted text"
        why = _holds(patched.compiled.tree, change)
        if why:
            return why
        before = names.undefined(change.source.text, change.source.path)
        after = names.undefined(patched.text, change.source.path)
        if after - before:
            return f"the patched {change.module} reads undefined names: {', '.join(sorted(after - before))}"
    return None


def _holds(tree: ast.Module, change: ModuleChange) -> str | None:
    """Why the engine's patched tree does not hold the adopted code (None: it does)."""
    for qualname, key in change.expect.items():
        found = code.find_def(tree, qualname)
        if len(found) != 1 or not isinstance(found[0], ast.FunctionDef | ast.AsyncFunctionDef) or code.function_key(found[0]) != key:
            return f"the patched {change.module}:{qualname} is not the replacement's code"
    return None
