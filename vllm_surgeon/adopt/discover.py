"""`vllm-surgeon adopt PATH... --against SPEC`: every patch site of a package, with its verdict.

Verdicts (issue 16): `adopted` (a hunk set gives the replacement's code), `identical` (the copy is
upstream's code), `wrapper` (it calls the original: it stays a monkey patch, never a hunk), `new`
(no upstream definition: a method added to a class is an add-only hunk where it is plain code, else
it stays), `refused` with the reason. Each site's hunks are checked alone; `--out` merges them per
module and checks the whole set again.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from vllm_surgeon.adopt import assemble, strings
from vllm_surgeon.adopt.adoption import (
    ADOPTED,
    IDENTICAL,
    NEW,
    REFUSED,
    WRAPPER,
    Adoption,
    ModuleChange,
    adopt,
    digest_of,
    find_upstream,
)
from vllm_surgeon.adopt.one import set_header
from vllm_surgeon.adopt.patchfile import AdoptInputError, PatchFile
from vllm_surgeon.adopt.resolve import Resolver
from vllm_surgeon.adopt.sites import Finder, Site
from vllm_surgeon.core.model import Target
from vllm_surgeon.trees.releases import Tree

SCHEMA = "vllm-surgeon/adopt/1"
_REASON = 160  # characters of a reason the table shows (a refusal names what is at fault first)
VERDICTS = (ADOPTED, IDENTICAL, WRAPPER, NEW, REFUSED)


@dataclass
class Row:
    """One site's verdict, as `--json` writes it. `target` and `digest` (the upstream definition's
    `ast1:` digest at SPEC, as `vllm-surgeon guard` prints it) are what a guard record of a site that
    stays a monkey patch (a wrapper) is written from (authoring/guards.write_guard_record)."""

    file: str
    line: int
    kind: str
    target: str
    verdict: str
    reason: str
    hunks: str = ""
    digest: str | None = None
    change: ModuleChange | None = field(default=None, repr=False)
    label: str = field(default="", repr=False)

    def json(self) -> dict:
        return {"file": self.file, "line": self.line, "kind": self.kind, "target": self.target, "verdict": self.verdict,
                "reason": self.reason, "hunks": self.hunks, "digest": self.digest}


@dataclass
class Report:
    tree: Tree
    rows: list[Row]
    unreadable: list[str]
    files: int

    def counts(self) -> dict[str, int]:
        return {v: sum(1 for r in self.rows if r.verdict == v) for v in VERDICTS}


def python_files(paths: list[Path]) -> list[Path]:
    """The .py files named, and those under the folders named; AdoptInputError for a missing path."""
    out: list[Path] = []
    for path in paths:
        if path.is_dir():
            out += sorted(p for p in path.rglob("*.py") if not any(part.startswith(".") for part in p.parts))
        elif path.is_file():
            out.append(path)
        else:
            raise AdoptInputError(f"{path}: no such file or folder")
    return list(dict.fromkeys(out))


def discover(paths: list[Path], tree: Tree, helpers: frozenset[str] = frozenset(), tops: frozenset[str] = frozenset()) -> Report:
    """Every site in `paths`, each with its verdict against `tree`."""
    files, unreadable = [], []
    named = {p for p in paths if p.is_file()}
    for path in python_files(paths):
        try:
            files.append(PatchFile.read(path))
        except AdoptInputError as exc:
            if path in named:
                raise  # a file named on the command line that cannot be read is bad input
            unreadable.append(str(exc))  # one found in a folder: listed, the others still read
    resolver = Resolver(tree.read, frozenset({"vllm"}) | tops)
    rows = [_row(site, resolver, tree) for site in Finder(files, resolver, helpers, tree.label).sites()]
    for file in files:
        rows += [_string_row(item, resolver, tree) for item in strings.replacements(file, resolver)]
    rows.sort(key=lambda r: (r.file, r.line, r.target))
    return Report(tree, rows, unreadable, len(files))


def _row(site: Site, resolver: Resolver, tree: Tree) -> Row:
    row = Row(_show(site.file.path), site.line, site.kind, site.target, REFUSED, site.why)
    attr = site.original or site.attr  # a saved original: the function it keeps is what the site depends on
    upstream = find_upstream(_target(site, attr), resolver, tree.label) if site.owner is not None and attr != "?" else None
    if upstream is not None and not isinstance(upstream, Adoption):
        row.digest = digest_of(resolver, upstream.source.module, upstream.qualname)
        if site.original is None:
            row.target = f"{upstream.source.module}:{upstream.qualname}"
    elif isinstance(upstream, Adoption) and upstream.override is not None:
        base = upstream.override  # what it calls when it wraps: the def it inherits
        row.digest = digest_of(resolver, base.module, base.qualname)
    if site.wrapper:
        row.verdict, row.reason = WRAPPER, f"{site.wrapper}: it stays a monkey patch"
        return row
    missing = isinstance(upstream, Adoption) and (upstream.verdict == NEW and upstream.override is None
                                                  or upstream.verdict == REFUSED and "has no" in upstream.reason)
    if site.owner is not None and missing and (site.copy is None or site.owner.kind == "module"):
        where = site.owner.target
        row.verdict, row.reason = NEW, f"{where} has no {site.attr}: the patch adds it; it stays a monkey patch"
        return row
    if site.copy is None or site.owner is None:
        return row
    adoption = adopt(site.copy, _target(site), resolver, tree.label)
    row.target, row.label = adoption.target, site.copy.label
    notes = [adoption.reason, *adoption.notes, *site.notes, _alias(site, resolver)]
    row.verdict, row.reason = adoption.verdict, "; ".join(n for n in notes if n)
    return _checked(row, adoption.change, tree)


def _string_row(item: strings.Replacement, resolver: Resolver, tree: Tree) -> Row:
    adoption = strings.adopt_replacement(item, resolver, tree.label)
    row = Row(_show(item.file.path), item.line, "string-replace", adoption.target, adoption.verdict, adoption.reason,
              label=adoption.copy)
    return _checked(row, adoption.change, tree)


def _checked(row: Row, change: ModuleChange | None, tree: Tree) -> Row:
    """A row whose change passed the engine check alone (its hunks filled in), or refused with why not."""
    if change is None or row.verdict not in (ADOPTED, NEW):
        return row
    text = assemble.render([change], [])
    why = assemble.check(text, "<site>", "site", tree.read, tree.version, [change])
    if why is not None:
        row.verdict, row.reason = REFUSED, why
        return row
    row.hunks, row.change = text.lstrip("\n"), change
    return row


def _target(site: Site, attr: str | None = None) -> Target:
    assert site.owner is not None
    attr = attr or site.attr
    if site.owner.kind == "module":
        return Target(site.owner.module, attr)
    return Target(site.owner.module, f"{site.owner.qualname}.{attr}")


def _alias(site: Site, resolver: Resolver) -> str:
    """A note when the site rebinds a module's imported name, not its definition (binding-is-alias)."""
    if site.owner is None or site.owner.kind != "module":
        return ""
    binding = resolver.bindings(site.owner.module).get(site.attr)
    if binding and binding[-1].kind == "from":
        return (f"{site.owner.module}.{site.attr} is imported from {binding[-1].module}: the monkey patch rebinds that "
                "name only, the hunk changes the definition for every caller")
    return ""


def merged(report: Report) -> tuple[list[ModuleChange], list[str]]:
    """Every adopted change merged per module (sites that clash are refused in the report); their labels."""
    by_module: dict[str, ModuleChange] = {}
    labels: list[str] = []
    for row in report.rows:
        if row.change is None or row.verdict not in (ADOPTED, NEW):
            continue
        into = by_module.get(row.change.module)
        if into is None:
            by_module[row.change.module] = _copy(row.change)
        else:
            why = into.merge(row.change)
            if why is not None:
                row.verdict, row.reason, row.hunks = REFUSED, f"conflicts with another site: {why}", ""
                continue
        labels.append(row.label or f"{row.file}:{row.line}")
    return list(by_module.values()), labels


def _copy(change: ModuleChange) -> ModuleChange:
    return ModuleChange(change.source, change.text, list(change.edits), set(change.imports), dict(change.added),
                        dict(change.expect), change.import_at, dict(change.defined), change.index, dict(change.defined_at))


def write_set(report: Report, out: Path) -> tuple[str | None, str]:
    """The merged set's text and a message (text None: nothing to write, or the check failed)."""
    changes, labels = merged(report)
    if not changes:
        return None, "no site was adopted: nothing to write"
    text = assemble.render(changes, set_header(report.tree, labels, []))
    why = assemble.check(text, str(out), out.name.split(".")[0], report.tree.read, report.tree.version, changes)
    if why is not None:
        return None, f"the merged set fails the check ({why}); nothing written"
    count = sum(1 for line in text.splitlines() if line.startswith("@@ "))
    return text, (f"wrote {out}: {count} hunk{'s' if count != 1 else ''} from {len(labels)} site{'s' if len(labels) != 1 else ''}, "
                  f"checked against {report.tree.label}")


def render_table(report: Report) -> list[str]:
    """The report as a person reads it: one line a site, verdict first, then the counts."""
    rows = report.rows
    out = [f"adopt: {len(rows)} site{'s' if len(rows) != 1 else ''} in {report.files} file(s), against {report.tree.label}"]
    if rows:
        width_t = min(70, max(len(r.target) for r in rows))
        width_s = min(50, max(len(f"{r.file}:{r.line}") for r in rows))
        for r in rows:
            where = f"{r.file}:{r.line}"
            hunks = sum(1 for line in r.hunks.splitlines() if line.startswith("@@ "))
            why = f"{hunks} hunk{'s' if hunks != 1 else ''}" + (f"; {r.reason}" if r.reason else "") if r.hunks else r.reason
            why = why if len(why) <= _REASON else why[: _REASON - 3] + "..."  # all of it: --json
            out.append(f"  {r.verdict:<9} {r.target:<{width_t}}  {where:<{width_s}}  {why}")
    out += [f"  unreadable: {u}" for u in report.unreadable]
    counts = report.counts()
    out.append(", ".join(f"{n} {v}" for v, n in counts.items() if n) or "no patch sites found")
    return out


def to_json(report: Report) -> dict:
    return {"schema": SCHEMA, "against": report.tree.label, "sites": [r.json() for r in report.rows],
            "unreadable": report.unreadable}


def _show(path: Path) -> str:
    """A path as the table shows it: relative to the working folder when it is below it."""
    try:
        return os.path.relpath(path) if not os.path.relpath(path).startswith("..") else str(path)
    except ValueError:
        return str(path)
