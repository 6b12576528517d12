"""Benchmark `vllm-surgeon adopt` (issue 16) on the monkey-patch corpus of real vLLM extension projects.

The corpus (.cache/corpus/adopt, kept out of git: third-party code) holds patch packages at their
release tags, `copy_and_edit_cases.tsv` (205 copied-and-edited functions, `FILE::QUALNAME`, target,
vLLM version) and the pinned vLLM wheels (.cache/corpus/wheels). Without it this says so and exits 0.

1. One copy: `adopt FILE::QUALNAME --target ...` (adopt.one.adopt_one, what the command runs) on every
   case. An `adopted` set is re-checked here, independently of adopt's own check: planned on the
   release, the target's code (unparsed, docstrings and method-kind decorators aside) must equal the
   replacement's, and the patched module may read no undefined name the release's does not.
   `identical` must be upstream's code. Anything else is `wrong` (must be 0). Per project: cases,
   adopted exactly, identical, refused by reason, wrong.
2. Discovery per project: sites found (against the catalogue's count), verdict counts, and wrappers
   (by the catalogue) that were adopted (must be 0).
3. UCM: the sparse sites adopted by discovery, against `vllm-adapt-sparse.patch` applied to 0.11.0
   (the same change as a git series): functions whose adopted code equals the series'.
4. Time: discovery + `--out` on the largest patch package, as a ratio to one `planner.plan` of the set.

    .venv/bin/python tools/bench_adopt.py                       # all four
    .venv/bin/python tools/bench_adopt.py --parts one,time --json out.json
    .venv/bin/python tools/bench_adopt.py --corpus ~/corpus/adopt --wheels ~/corpus/wheels
"""

from __future__ import annotations

import argparse
import ast
import collections
import copy
import csv
import difflib
import json
import os
import re
import symtable
import sys
import time
from pathlib import Path

from vllm_surgeon.adopt.discover import Report, discover, write_set
from vllm_surgeon.adopt.one import adopt_one
from vllm_surgeon.adopt.patchfile import AdoptInputError, PatchFile, split_node_id
from vllm_surgeon.core.source import ModuleSource
from vllm_surgeon.engine import planner
from vllm_surgeon.sets.hunkfile import parse_hunk_file
from vllm_surgeon.trees.releases import Tree, directory, wheel

# Corpora of third-party code and release wheels: kept out of git, under the checkout's git-ignored .cache.
CORPORA = Path(__file__).resolve().parent.parent / ".cache" / "corpus"

CORPUS = CORPORA / "adopt"  # --corpus
WHEELS = CORPORA / "wheels"  # --wheels
ASCEND_011 = "vllm-ascend/v0.11.0"  # UCM's vllm_ascend patches target vllm-ascend 0.11.0

# (project, ref, vLLM, patch folders, helpers, other packages that count)
PROJECTS = [
    ("vllm-ascend", "v0.11.0", "0.11.0", ["vllm-ascend/v0.11.0/vllm_ascend"], [], []),
    ("vllm-ascend", "v0.13.0", "0.13.0", ["vllm-ascend/v0.13.0/vllm_ascend"], [], []),
    ("ucm", "v0.4.0", "0.11.0", ["ucm/v0.4.0/ucm/integration"], ["patch_or_inject"], ["vllm_ascend"]),
    ("vllm-mindspore", "v0.5.1", "0.11.0", ["vllm-mindspore/v0.5.1/vllm_mindspore"], [], []),
    ("arcticinference", "v0.1.2", "0.11.0", ["arcticinference/v0.1.2/arctic_inference"], [], []),
    ("arcticinference", "v0.2.0", "0.18.0", ["arcticinference/v0.2.0/arctic_inference"], [], []),
    ("vllm-gaudi", "v0.13.0.post1", "0.13.0", ["vllm-gaudi/v0.13.0.post1/vllm_gaudi"], [], []),
    ("vllm-gaudi", "v0.26.0", "0.26.0", ["vllm-gaudi/v0.26.0/vllm_gaudi"], [], []),
    ("lmcache-vllm", "v0.6.2.post1", "0.6.1.post2", ["lmcache-vllm/v0.6.2.post1/lmcache_vllm"], [], []),
    ("nemo-rl", "v0.7.0", "0.20.0", ["nemo-rl/v0.7.0/nemo_rl"], [], []),
    ("ipex-llm", "69edc8b", "0.6.6.post1", ["ipex-llm/69edc8b/python/llm"], [], []),
]

# How refusals are grouped in the report (first match wins).
REASONS = [
    ("a helper the patch file defines", r", defined in .* which .* lacks"),
    ("a helper that reads, as it is defined, what the module binds later", r"as it is defined"),
    ("a name that means another thing in vLLM's module", r"binds otherwise|patches with\)"),
    ("not in the release", r"has no |no module"),
    ("a closure", r"closure"),
    ("inherited target", r"inherited"),
    ("super() in a swapped-in subclass", r"super\(\)"),
    ("layout", r"cannot be laid out|does not parse"),
    ("the engine check", r"engine|undefined names|not the adopted|replacement's code"),
]

_trees: dict[str, Tree] = {}


def tree_for(version: str, with_ascend: bool = False) -> Tree:
    """The release's wheel (and, for UCM, vllm-ascend 0.11.0 from the corpus beside it)."""
    key = f"{version}+ascend" if with_ascend else version
    if key not in _trees:
        base = wheel(next(WHEELS.glob(f"vllm-{version}-*.whl")))
        if with_ascend:
            ascend = directory(CORPUS / ASCEND_011)

            def read(module: str, base=base, ascend=ascend) -> ModuleSource | None:
                return ascend.read(module) if module.split(".")[0] == "vllm_ascend" else base.read(module)

            base = Tree(base.label + " + vllm-ascend 0.11.0", base.version, read, base.location, base.dist)
        _trees[key] = base
    return _trees[key]


# -- the independent check ------------------------------------------------------------------------

_KINDS = {"staticmethod", "classmethod", "property", "cached_property", "abstractmethod", "override"}


def normalised(node: ast.FunctionDef | ast.AsyncFunctionDef) -> str:
    """A def as code: renamed `_`, docstrings out everywhere, method-kind decorators out (the site
    says what kind of method a module-level copy is)."""
    node = copy.deepcopy(node)
    node.name = "_"
    node.decorator_list = [d for d in node.decorator_list if _decorator(d) not in _KINDS]
    for inner in ast.walk(node):
        body = getattr(inner, "body", None)
        if isinstance(inner, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) and body and \
                isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) and isinstance(body[0].value.value, str):
            inner.body = body[1:] or [ast.Pass()]
    return ast.unparse(node)


def _decorator(node: ast.expr) -> str:
    node = node.func if isinstance(node, ast.Call) else node
    return node.attr if isinstance(node, ast.Attribute) else node.id if isinstance(node, ast.Name) else ""


def lookup(tree: ast.Module, qualname: str) -> list[ast.AST]:
    """Defs named by a dotted path, through class bodies and top-level if/try blocks."""
    found: list[ast.AST] = [tree]
    for name in qualname.split("."):
        nxt: list[ast.AST] = []
        for node in found:
            stack = list(getattr(node, "body", []))
            while stack:
                stmt = stack.pop(0)
                if isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                    if stmt.name == name:
                        nxt.append(stmt)
                elif isinstance(stmt, ast.If | ast.Try):
                    stack += stmt.body + stmt.orelse + getattr(stmt, "finalbody", [])
        found = nxt
    return found


def undefined(text: str) -> set[str]:
    """Names some scope of the module reads as globals and the module never binds (stdlib symtable)."""
    top = symtable.symtable(text, "<m>", "exec")
    bound = {s.get_name() for s in top.get_symbols() if s.is_assigned() or s.is_imported() or s.is_namespace()}
    read: set[str] = set()
    stack = [top]
    while stack:
        table = stack.pop()
        read |= {s.get_name() for s in table.get_symbols() if s.is_global() and s.is_referenced()}
        stack += table.get_children()
    import builtins
    return {n for n in read - bound if n not in dir(builtins) and not n.startswith("__")}


def exactly(set_text: str, tree: Tree, target: str, replacement: ast.FunctionDef | ast.AsyncFunctionDef,
            patch: ast.Module | None = None) -> str | None:
    """Why an adopted set is wrong (None: the patched target is the replacement, no new undefined name,
    and each top-level def or class the module gained is the patch file's of that name)."""
    plan = planner.plan([parse_hunk_file(set_text, "bench.hunk", "bench")], tree.read, tree.version, require_version=False)
    if plan.refusals:
        return "the engine refuses it: " + plan.refusals[0].summary()
    module, _, qualname = target.partition(":")
    patched = plan.modules.get(module)
    if patched is None:
        return f"{module} unchanged"
    found = lookup(ast.parse(patched.text), qualname)
    if len(found) != 1 or not isinstance(found[0], ast.FunctionDef | ast.AsyncFunctionDef):
        return f"{qualname} found {len(found)} times in the patched module"
    if normalised(found[0]) != normalised(replacement):
        return "the patched target is not the replacement's code"
    new = {m: undefined(p.text) - undefined(p.source.text) for m, p in plan.modules.items()}
    new = {m: n for m, n in new.items() if n}
    if new:
        return f"new undefined names {new}"
    return _carried_differ(patched.text, patched.source.text, patch) if patch is not None else None


def _carried_differ(text: str, before: str, patch: ast.Module) -> str | None:
    """A top-level def or class the patched module gained that is not the patch file's (helpers carried in)."""
    defs = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
    old = {s.name for s in ast.parse(before).body if isinstance(s, defs)}
    theirs = {s.name: s for s in patch.body if isinstance(s, defs)}
    for stmt in ast.parse(text).body:
        name = getattr(stmt, "name", None) if isinstance(stmt, defs) else None
        if name is not None and name not in old and (name not in theirs or ast.dump(stmt) != ast.dump(theirs[name])):
            return f"the module gained {name}, which is not the patch file's"
    return None


def upstream_is(tree: Tree, target: str, replacement: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    module, _, qualname = target.partition(":")
    source = tree.read(module)
    found = lookup(ast.parse(source.text), qualname) if source is not None else []
    return len(found) == 1 and isinstance(found[0], ast.FunctionDef | ast.AsyncFunctionDef) and \
        normalised(found[0]) == normalised(replacement)


# -- 1. one copy ----------------------------------------------------------------------------------

def one_copy(out_dir: Path) -> dict:
    rows = list(csv.DictReader((CORPUS / "copy_and_edit_cases.tsv").open(), delimiter="\t"))
    per: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    reasons: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    wrong: list[str] = []
    refusals: list[str] = []
    corpus_identical: collections.Counter = collections.Counter()
    started = time.perf_counter()
    for row in rows:
        project = f"{row['project']} {row['ref']}"
        tree = tree_for(row["vllm_version"], with_ascend=row["target"].startswith("vllm_ascend"))
        path, qualname = split_node_id(row["replacement"])
        replacement = PatchFile.read(CORPUS / path).function(qualname)[0]
        node_id = f"{CORPUS / path}::{qualname}"
        try:
            outcome = adopt_one(node_id, row["target"], tree, out_dir / "case.hunk", frozenset({"vllm_ascend"}))
        except AdoptInputError as exc:
            wrong.append(f"{row['id']} {row['replacement']}: bad input? {exc}")
            continue
        verdict = outcome.adoption.verdict if outcome.adoption else "refused"
        verdict = verdict if outcome.code == 0 else "refused"
        per[project]["cases"] += 1
        if row["identical"] == "True":
            corpus_identical[verdict] += 1
        if verdict in ("adopted", "new") and outcome.text is not None:
            assert outcome.adoption is not None
            why = exactly(outcome.text, tree, outcome.adoption.target, replacement, PatchFile.read(CORPUS / path).tree)
            if why:
                wrong.append(f"{row['id']} {row['replacement']} -> {outcome.adoption.target}: {why}")
                per[project]["wrong"] += 1
            else:
                per[project]["adopted exactly"] += 1
        elif verdict == "identical":
            assert outcome.adoption is not None
            if upstream_is(tree, outcome.adoption.target, replacement):
                per[project]["identical"] += 1
            else:
                wrong.append(f"{row['id']} {row['replacement']}: called identical, but it is not upstream's code")
                per[project]["wrong"] += 1
        else:
            reason = outcome.message.partition(": ")[2] if outcome.adoption is None else outcome.adoption.reason
            group = next((name for name, pattern in REASONS if re.search(pattern, reason)), "other: " + reason[:60])
            per[project]["refused"] += 1
            reasons[project][group] += 1
            refusals.append(f"{row['id']} {row['replacement']} -> {row['target']}: {reason}")
    total: collections.Counter = collections.Counter()
    for counts in per.values():
        total.update(counts)
    return {"per_project": {p: dict(c) for p, c in per.items()}, "refused_by_reason": {p: dict(c) for p, c in reasons.items()},
            "total": dict(total), "wrong": wrong, "refusals": refusals, "corpus_identical_rows": dict(corpus_identical),
            "seconds": round(time.perf_counter() - started, 1)}


# -- 2. discovery ---------------------------------------------------------------------------------

def discovery() -> tuple[dict, dict[str, Report]]:
    catalogue = json.loads((CORPUS / "catalogue.json").read_text())
    results, reports = {}, {}
    for project, ref, version, paths, helpers, packages in PROJECTS:
        if not Path(paths[0]).is_dir() or not list(WHEELS.glob(f"vllm-{version}-*.whl")):
            print(f"discovery: {project} {ref} (or its vllm {version} wheel) is not in the corpus, left out")
            continue
        tree = tree_for(version, with_ascend=bool(packages))
        started = time.perf_counter()
        report = discover([Path(p) for p in paths], tree, frozenset(helpers), frozenset(packages))
        seconds = time.perf_counter() - started
        expected = [s for s in catalogue if s["project"] == project and s["ref"] == ref]
        # A class swap gives one site a method on the swap's line: a wrapper is matched by its target too.
        wrappers = {(s["file"], s["line"], s["target"]) for s in expected if s.get("class") == "wrapper"}
        adopted_wrappers = [f"{r.file}:{r.line} {r.target}" for r in report.rows
                            if (r.file, r.line, r.target) in wrappers and r.verdict in ("adopted", "identical")]
        not_exact = [f"{r.file}:{r.line} {r.target}: {why}" for r in report.rows if (why := rechecked(r, tree))]
        lines = {(r.file, r.line) for r in report.rows}
        missed = sorted({f"{s['file']}:{s['line']} {s['kind']} {s['target']}" for s in expected if (s["file"], s["line"]) not in lines})
        results[f"{project} {ref}"] = {"sites": len(report.rows), "catalogue_sites": len(expected), **report.counts(),
                                       "catalogue_lines_missed": len(missed), "missed": missed,
                                       "wrappers_adopted": adopted_wrappers, "not_exact": not_exact, "seconds": round(seconds, 1)}
        reports[f"{project} {ref}"] = report
    return results, reports


def rechecked(row, tree: Tree) -> str | None:
    """The independent check of a site adopted by discovery (its own hunks, alone); None when exact
    (or nothing to check: not adopted, or a string replacement, which has no def to compare)."""
    if row.verdict not in ("adopted", "new") or not row.hunks or "::" not in row.label:
        return None
    path, qualname = split_node_id(row.label)
    return exactly(row.hunks, tree, row.target, PatchFile.read(path).function(qualname)[0])


# -- 3. UCM against its git series ----------------------------------------------------------------

def ucm_against_series(report: Report) -> dict:
    applied = CORPUS / "ucm" / "v0.4.0-sparse-patch-applied"
    tree = tree_for("0.11.0")
    out: dict[str, str] = {}
    size: collections.Counter = collections.Counter()
    for line in (CORPUS / "ucm_sparse_patch_vs_monkey.tsv").read_text().splitlines():
        target = line.split("\t")[0]
        module, _, qualname = target.partition(":")
        rows = [r for r in report.rows if r.target == target and r.file.endswith("sparse_patch.py")]
        if not rows:
            out[target] = "no sparse site"
            continue
        row = rows[0]
        series_file = applied / (module.replace(".", "/") + ".py")
        theirs = lookup(ast.parse(series_file.read_text()), qualname) if series_file.is_file() else []
        if row.verdict == "identical":
            out[target] = "identical (the series leaves it too)" if not theirs or upstream_same(tree, target, theirs) \
                else "identical, but the series changes it"
            continue
        if not row.hunks:
            out[target] = f"{row.verdict}: {row.reason[:80]}"
            continue
        plan = planner.plan([parse_hunk_file(row.hunks, "ucm.hunk", "ucm")], tree.read, tree.version, require_version=False)
        ours = lookup(ast.parse(plan.modules[module].text), qualname) if module in plan.modules else []
        defs = [n for n in ours + theirs if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)]
        same = len(ours) == len(theirs) == 1 and len(defs) == 2 and normalised(defs[0]) == normalised(defs[1])
        out[target] = f"{row.verdict}: " + ("equals the series" if same else "differs from the series")
        if same:  # how many lines each changes in that function: the adopted hunks against the series' diff
            size["ours"] += function_lines(row.hunks, target)
            size["series"] += series_lines(tree, series_file, module, qualname)
    return {"functions": out, "equal": sum(1 for v in out.values() if v.endswith("equals the series")),
            "changed_lines": dict(size)}


def function_lines(hunks: str, target: str) -> int:
    """Lines the adopted sections of one function add or remove (import lines at module scope aside)."""
    count, inside = 0, False
    for line in hunks.splitlines():
        if line.startswith("@@ "):
            inside = line.split()[1] == target
        elif inside and line.startswith(("+", "-")):
            count += 1
    return count


def series_lines(tree: Tree, series_file: Path, module: str, qualname: str) -> int:
    """Lines the series adds or removes in one function (a unified diff of its text at 0.11.0 and after)."""
    texts = []
    for text in ((tree.read(module) or ModuleSource(module, "", "")).text, series_file.read_text()):
        found = lookup(ast.parse(text), qualname)
        node = found[0] if len(found) == 1 else None
        lines = text.split("\n")
        texts.append(lines[node.lineno - 1:node.end_lineno] if isinstance(node, ast.stmt) and node.end_lineno else [])
    return sum(1 for line in difflib.unified_diff(texts[0], texts[1], lineterm="", n=0)
               if line.startswith(("+", "-")) and not line.startswith(("+++", "---")))


def upstream_same(tree: Tree, target: str, theirs: list[ast.AST]) -> bool:
    node = theirs[0]
    return isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and upstream_is(tree, target, node)


# -- 4. time --------------------------------------------------------------------------------------

def timing(out_dir: Path) -> dict:
    project, ref, version, paths, helpers, packages = next(p for p in PROJECTS if p[:2] == ("vllm-gaudi", "v0.26.0"))
    tree = tree_for(version)
    started = time.perf_counter()
    report = discover([Path(p) for p in paths], tree, frozenset(helpers), frozenset(packages))
    text, message = write_set(report, out_dir / "gaudi.hunk")
    adopt_s = time.perf_counter() - started
    assert text is not None, message
    hunk_set = parse_hunk_file(text, "gaudi.hunk", "gaudi")
    started = time.perf_counter()
    plan = planner.plan([hunk_set], tree.read, tree.version, require_version=False)
    plan_s = time.perf_counter() - started
    assert not plan.refusals
    return {"package": f"{project} {ref}", "sites": len(report.rows), "hunks": len(hunk_set.hunks),
            "adopt_s": round(adopt_s, 1), "plan_s": round(plan_s, 2), "ratio": round(adopt_s / plan_s, 1), "message": message}


def main() -> int:
    global CORPUS, WHEELS  # where the corpus is, for every part (set once, from the options)
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--parts", default="one,discovery,ucm,time", help="which measurements (comma-separated)")
    parser.add_argument("--json", help="also write the results here")
    parser.add_argument("--corpus", type=Path, default=CORPUS, help=f"the monkey-patch corpus (default {CORPUS})")
    parser.add_argument("--wheels", type=Path, default=WHEELS, help=f"its pinned vLLM wheels (default {WHEELS})")
    args = parser.parse_args()
    CORPUS, WHEELS = args.corpus.absolute(), args.wheels.absolute()
    if not (CORPUS / "copy_and_edit_cases.tsv").is_file() or not WHEELS.is_dir():
        print(f"no adopt corpus at {CORPUS} (or no wheels at {WHEELS}): nothing to measure")
        return 0
    parts = set(args.parts.split(","))
    out_dir = Path(os.environ.get("TMPDIR", "/tmp")) / "bench_adopt"
    out_dir.mkdir(exist_ok=True)
    os.chdir(CORPUS)  # discovery reports paths relative to here, as the catalogue does
    results: dict = {}
    if "one" in parts:
        results["one_copy"] = one_copy(out_dir)
        _print_one(results["one_copy"])
    if parts & {"discovery", "ucm"}:
        results["discovery"], reports = discovery()
        _print_discovery(results["discovery"])
        if "ucm" in parts:
            results["ucm_vs_series"] = ucm_against_series(reports["ucm v0.4.0"])
            ucm = results["ucm_vs_series"]
            print(f"\nUCM sparse sites vs vllm-adapt-sparse.patch: {ucm['equal']} functions equal; in those, the adopted hunks "
                  f"change {ucm['changed_lines'].get('ours', 0)} lines in them, the series {ucm['changed_lines'].get('series', 0)}")
            for target, verdict in results["ucm_vs_series"]["functions"].items():
                print(f"  {verdict:<45} {target}")
    if "time" in parts:
        results["time"] = timing(out_dir)
        t = results["time"]
        print(f"\ntime: adopt of {t['package']} ({t['sites']} sites, {t['hunks']} hunks) {t['adopt_s']} s; "
              f"one planner.plan of the set {t['plan_s']} s; ratio {t['ratio']}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1) + "\n")
    wrong = len(results.get("one_copy", {}).get("wrong", [])) + sum(
        len(r["wrappers_adopted"]) + len(r["not_exact"]) for r in results.get("discovery", {}).values())
    return 1 if wrong else 0


def _print_one(res: dict) -> None:
    print("one copy (adopt FILE::QUALNAME --target ...), per project:")
    print(f"  {'project':<28}{'cases':>6}{'exact':>7}{'ident':>7}{'refus':>7}{'wrong':>7}")
    for project, c in res["per_project"].items():
        print(f"  {project:<28}{c.get('cases', 0):>6}{c.get('adopted exactly', 0):>7}{c.get('identical', 0):>7}"
              f"{c.get('refused', 0):>7}{c.get('wrong', 0):>7}")
    t = res["total"]
    ok = t.get("adopted exactly", 0) + t.get("identical", 0)
    print(f"  total: {t.get('cases', 0)} cases, {t.get('adopted exactly', 0)} adopted exactly, {t.get('identical', 0)} identical "
          f"({100 * ok / max(1, t.get('cases', 0)):.1f}% either), {t.get('refused', 0)} refused, {t.get('wrong', 0)} wrong; "
          f"{res['seconds']} s")
    print(f"  the corpus's identical rows got: {res['corpus_identical_rows']}")
    print("  refused by reason:")
    merged: collections.Counter = collections.Counter()
    for counts in res["refused_by_reason"].values():
        merged.update(counts)
    for reason, n in merged.most_common():
        print(f"    {n:>3}  {reason}")
    for line in res["wrong"]:
        print(f"  WRONG {line}")


def _print_discovery(res: dict) -> None:
    print("\ndiscovery (adopt PATH --against SPEC), per project:")
    print(f"  {'project':<28}{'sites':>6}{'(cat.)':>7}{'adopt':>7}{'ident':>7}{'wrap':>6}{'new':>5}{'refus':>7}{'miss':>6}{'s':>7}")
    for project, r in res.items():
        print(f"  {project:<28}{r['sites']:>6}{r['catalogue_sites']:>7}{r['adopted']:>7}{r['identical']:>7}{r['wrapper']:>6}"
              f"{r['new']:>5}{r['refused']:>7}{r['catalogue_lines_missed']:>6}{r['seconds']:>7}")
        for wrapper in r["wrappers_adopted"]:
            print(f"    WRONG: a wrapper adopted: {wrapper}")
        for line in r["not_exact"]:
            print(f"    WRONG: not the replacement's code: {line}")


if __name__ == "__main__":
    sys.exit(main())
