"""What `verify` says about guard records (issue 16), as text and in its JSON report.

Per recorded function: `unchanged`, `upstream-changed` with the upstream diff of the function from the
recorded release to the one verified against, `upstream-gone` (module or name missing), `unreadable`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from vllm_surgeon.authoring.udiff import relative_path
from vllm_surgeon.engine.guards import CHANGED, GONE, UNCHANGED, UNREADABLE, FunctionCheck, GuardResult
from vllm_surgeon.trees.releases import Tree

_WORDS = {UNCHANGED: "unchanged", CHANGED: "UPSTREAM CHANGED", GONE: "UPSTREAM GONE", UNREADABLE: "UNREADABLE"}
_CELLS = {UNCHANGED: "ok", CHANGED: "changed", GONE: "gone", UNREADABLE: "unreadable"}


def function_json(f: FunctionCheck) -> dict:
    code = f.found.code
    return {
        "target": str(f.function.target),
        "origin": str(f.function.origin),
        "release": f.function.release,
        "digest": f.function.digest,
        "status": f.status,
        "digest_now": code.digest if code is not None else None,
        "module_path": f.found.module_path,
        "line": code.start if code is not None else None,  # where it starts in the release verified against
        "recorded_line": f.function.line,  # where it started at the recorded release
        "relaid": f.relaid,  # unchanged code whose layout, comments or docstrings differ from the record's
        "gone": f.found.gone,  # "module-missing" or "name-missing" when upstream-gone
        "detail": f.found.detail or None,
        "diff": f.diff or None,  # upstream-changed: the recorded source against the release's, unified
        "sites": list(f.function.sites),
    }


def guard_json(g: GuardResult) -> dict:
    return {
        "name": g.record.name,
        "path": g.record.path,
        "status": g.status,
        "description": g.record.fields.get("description"),
        "functions": [function_json(f) for f in g.functions],
    }


def render(guards: Sequence[GuardResult], style, tree: Tree) -> list[str]:
    """The guard records' part of `verify`'s text report."""
    if not guards:
        return []
    label = f"{tree.dist} {tree.version}" if tree.version else tree.label
    out = [f"\nguard records (the upstream code monkey patches depend on), against {label}:"]
    for g in guards:
        head = style.good("unchanged") if g.ok else style.bad(_WORDS[g.status])
        out.append(f"\n{g.record.name}  {head}  {style.dim(g.record.path)}")
        for f in g.functions:
            out += _function(f, style, label)
    functions = [f for g in guards for f in g.functions]
    counts = ", ".join(f"{sum(1 for f in functions if f.status == s)} {s}" for s in (UNCHANGED, CHANGED, GONE, UNREADABLE)
                       if s in (UNCHANGED, CHANGED, GONE) or any(f.status == s for f in functions))
    out.append(f"\n{len(guards)} guard record{'s' if len(guards) != 1 else ''} checked, "
               f"{len(functions)} function{'s' if len(functions) != 1 else ''}: {counts}.")
    return out


def _function(f: FunctionCheck, style, label: str) -> list[str]:
    origin = f"{os.path.basename(f.function.origin.path)}:{f.function.origin.line}"
    target = str(f.function.target)
    sites = [f"    used by {site}" for site in f.function.sites]
    if f.status == UNCHANGED:
        note = ", same code in a new layout" if f.relaid else ""
        return [f"  {style.good('unchanged       ')}  {origin}  {target}  (as at {f.function.release_label}{note})"]
    if f.status == CHANGED:
        code = f.found.code
        where = f", {relative_path(f.function.target.module, f.found.module_path or '')}:{code.start}" if code is not None else ""
        out = [f"  {style.bad('upstream-changed')}  {origin}  {target}  ({f.function.release_label} -> {label}{where})"] + sites
        return out + ["    " + _colour(line, style) for line in f.diff]
    word = "upstream-gone   " if f.status == GONE else "unreadable      "
    return [f"  {style.bad(word)}  {origin}  {target}: {f.found.detail}"] + sites


def _colour(line: str, style) -> str:
    if line.startswith(("---", "+++")):
        return style.dim(line)
    if line.startswith("-"):
        return style.bad(line)
    if line.startswith("+"):
        return style.good(line)
    return line


def matrix_rows(per_release: Sequence[Sequence[GuardResult]], style, width: int, cell: int) -> list[str]:
    """`verify`'s release matrix: one row per record, `ok` while no function it records changed upstream."""
    names = list(dict.fromkeys(g.record.name for guards in per_release for g in guards))
    rows = []
    for name in names:
        cells = []
        for guards in per_release:
            g = next((g for g in guards if g.record.name == name), None)
            if g is None:
                cells.append(f"{'-':>{cell}}")
            else:
                text = f"{_CELLS[g.status]:>{cell}}"
                cells.append(style.good(text) if g.ok else style.bad(text))
        rows.append(f"{name} (guard)".ljust(width) + "  " + "  ".join(cells))
    return rows


def summaries(guards: Sequence[GuardResult]) -> list[str]:
    """One line per function that is not unchanged: record, where in it, target, status, why."""
    return [f"{g.record.name} (guard): {f.function.origin}: {f.function.target}: {f.status}"
            + (f": {f.found.detail}" if f.found.detail else "")
            for g in guards for f in g.functions if not f.ok]
