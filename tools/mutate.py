"""Mutation testing of the guard code (issue 13: two hand-made mutants of guard code survived the
whole suite). Runs cosmic-ray over one module at a time, each with the few fast test files that
exercise it (the whole suite takes 20 minutes: far too slow to run once per mutant).

    .venv/bin/python tools/mutate.py --list          # the modules and their tests
    .venv/bin/python tools/mutate.py trust cache     # run (resumes a session left unfinished)
    .venv/bin/python tools/mutate.py --report trust  # score and surviving mutants, without running

cosmic-ray (not mutmut): it writes each mutant into the file on disk, so the fresh interpreters our
tests start (a vLLM process, the CLI) run the mutant too; mutmut 3 switches mutants through
trampolines in a copied `mutants/` tree that only its own pytest process imports. Sessions live in
.cache/mutate/ (git-ignored). The file is restored from a copy taken before, whatever happens.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / ".cache" / "mutate"
PYTHON = sys.executable
COSMIC_RAY = "cosmic-ray==8.7.0"


@dataclass(frozen=True)
class Module:
    path: str  # the file mutated, in the repository
    tests: tuple[str, ...]  # pytest arguments: the fast tests that exercise it (run with -x)
    guards: str  # what it guards, for --list
    only: tuple[str, ...] = ()  # when set, only these top-level functions/classes are mutated (the rest is not guard code)


MODULES = {
    "trust": Module("vllm_surgeon/core/trust.py", ("tests/test_trust_rules.py", "tests/test_cache_rules.py"),
                    "who can change a path: owner, mode, read-only filesystem, symlinks (sets and cache)"),
    "reader": Module("vllm_surgeon/sets/reader.py", ("tests/test_trust_rules.py", "tests/test_bad_input.py"),
                     "set files read once, through a checked descriptor; refusals"),
    "cache": Module("vllm_surgeon/runtime/cache.py", ("tests/test_cache_rules.py",),
                    "code cache: owner/mode of entries and folders, key, exact contents"),
    "anchor": Module("vllm_surgeon/matching/anchor.py", ("tests/test_engine.py", "tests/test_names.py"),
                     "an anchor's exact occurrences (closest() only words the refusal: not mutated)", only=("occurrences",)),
    "locate": Module("vllm_surgeon/engine/locate.py", ("tests/test_engine.py", "tests/test_layout.py", "tests/test_names.py"),
                     "an anchor is found exactly once (by text, else by structure), or refused"),
    "apply": Module("vllm_surgeon/engine/apply.py", ("tests/test_engine.py", "tests/test_inplace.py", "tests/test_diff_format.py",
                                                    "tests/test_series_messages.py", "tests/test_series.py"),
                    "all or nothing: every set applies, or none"),
    "planner": Module("vllm_surgeon/engine/planner.py", ("tests/test_engine.py", "tests/test_series.py"),
                      "all or nothing over sets and modules"),
    "proof": Module("vllm_surgeon/matching/proof.py", ("tests/test_layout.py", "tests/test_layout_edges.py"),
                    "the layout proof: the anchor's text there parses to the target's tree (equality, never similarity)"),
    "hunkfile": Module("vllm_surgeon/sets/hunkfile.py", ("tests/test_hunk_format.py", "tests/test_bad_input.py"),
                       "the .hunk reader"),
    "difffile": Module("vllm_surgeon/sets/difffile.py", ("tests/test_diff_format.py", "tests/test_series.py"),
                       "the unified diff / series reader"),
}

# Mutation operators left out by default, to keep a run within minutes: of cosmic-ray's 132 binary
# operator swaps only one per operator is kept, and of the comparison swaps the negation and the
# boundary shift (`<` to `>=` and `<=`). --all-operators keeps them all.
_KEPT_BINARY = ("Add_Sub|Sub_Add|Mul_Add|Div_Mul|FloorDiv_Mul|Mod_Add|Pow_Mul|BitOr_BitAnd|BitAnd_BitOr|BitXor_BitOr"
                "|LShift_RShift|RShift_LShift")
_KEPT_COMPARE = "Eq_NotEq|NotEq_Eq|Lt_GtE|Lt_LtE|LtE_Gt|LtE_Lt|Gt_LtE|Gt_GtE|GtE_Lt|GtE_Gt|Is_IsNot|IsNot_Is"
EXCLUDED = (
    rf"core/ReplaceBinaryOperator_(?!({_KEPT_BINARY})$)",
    rf"core/ReplaceComparisonOperator_(?!({_KEPT_COMPARE})$)",
    r"core/ReplaceUnaryOperator_(?!(USub_UAdd|Delete_Not)$)",
)


def _config(name: str, module: Module, timeout: float, all_operators: bool) -> str:
    test = f"{PYTHON} {ROOT / 'tools' / 'mutate.py'} --test {name}"
    lines = [
        "[cosmic-ray]",
        f"module-path = {json.dumps(module.path)}",
        f"timeout = {timeout}",
        "excluded-modules = []",
        f"test-command = {json.dumps(test)}",
        "",
        "[cosmic-ray.distributor]",
        'name = "local"',
        "",
        "[cosmic-ray.filters.operators-filter]",
        f"exclude-operators = {json.dumps([] if all_operators else list(EXCLUDED))}",
    ]
    return "\n".join(lines) + "\n"


def _tool(name: str) -> str:
    path = Path(PYTHON).parent / name
    if not path.exists():
        sys.exit(f"{path} is missing: install it with `{PYTHON} -m pip install {COSMIC_RAY}`")
    return str(path)


def _dump(session: Path) -> list[dict]:
    """One record per mutant: operator, line, outcome (None while pending)."""
    out = subprocess.run([_tool("cosmic-ray"), "dump", str(session)], capture_output=True, text=True, check=True, cwd=ROOT)
    records = []
    for line in out.stdout.splitlines():
        item, result = json.loads(line)
        (mutation,) = item["mutations"]
        records.append({
            "operator": mutation["operator_name"], "occurrence": mutation["occurrence"],
            "line": mutation["start_pos"][0], "col": mutation["start_pos"][1],
            "job": item["job_id"],
            "worker": result["worker_outcome"] if result else None,
            "test": result["test_outcome"] if result else None,
            "diff": result.get("diff", "") if result else "",
        })
    return records


def report(name: str) -> tuple[int, int, int] | None:
    """Print the score and the surviving mutants of `name`'s session; (killed, survived, pending)."""
    session = WORK / f"{name}.sqlite"
    if not session.exists():
        print(f"{name}: no session (run `tools/mutate.py {name}`)")
        return None
    records = [r for r in _dump(session) if r["worker"] != "skipped"]
    killed = [r for r in records if r["test"] == "killed" or r["worker"] == "exception"]
    survived = [r for r in records if r["test"] == "survived"]
    pending = [r for r in records if r["worker"] is None]
    done = len(killed) + len(survived)
    score = f"{100 * len(killed) / done:.0f}%" if done else "-"
    print(f"{name}: {len(killed)} killed / {done} run ({score}), {len(survived)} survived, {len(pending)} pending "
          f"[{MODULES[name].path}]")
    for r in sorted(survived, key=lambda r: (r["line"], r["col"])):
        print(f"  survived: line {r['line']}:{r['col']} {r['operator']} #{r['occurrence']} (job {r['job']})")
        for d in r["diff"].splitlines():
            if d.startswith(("+", "-")) and not d.startswith(("+++", "---")):
                print(f"      {d}")
    return len(killed), len(survived), len(pending)


def retry_survivors(name: str) -> None:
    """Forget the results of `name`'s surviving mutants, so the next run tries them again (after a new test)."""
    session = WORK / f"{name}.sqlite"
    if session.exists():
        with contextlib.closing(sqlite3.connect(session)) as db, db:
            gone = db.execute("DELETE FROM work_results WHERE lower(test_outcome) = 'survived'").rowcount
        print(f"{name}: {gone} survivors to try again")


def run(name: str, timeout: float, all_operators: bool, fresh: bool) -> None:
    module = MODULES[name]
    path = ROOT / module.path
    if not path.exists():
        sys.exit(f"{module.path} does not exist: update MODULES in tools/mutate.py")
    if shutil.which("git") is None:
        sys.exit("git is needed (a mutated file must be committed first)")
    dirty = subprocess.run(["git", "status", "--porcelain", "--", module.path], capture_output=True, text=True, cwd=ROOT)
    if dirty.stdout.strip():
        sys.exit(f"{module.path} has uncommitted changes: commit them first (mutants are written into the file)")
    WORK.mkdir(parents=True, exist_ok=True)
    config, session = WORK / f"{name}.toml", WORK / f"{name}.sqlite"
    config.write_text(_config(name, module, timeout, all_operators))
    if fresh or not session.exists():
        session.unlink(missing_ok=True)
        subprocess.run([_tool("cosmic-ray"), "init", str(config), str(session)], check=True, cwd=ROOT)
        subprocess.run([_tool("cr-filter-pragma"), str(session)], check=True, cwd=ROOT)
        subprocess.run([_tool("cr-filter-operators"), str(session), str(config)], check=True, cwd=ROOT)
        subprocess.run([PYTHON, __file__, "--skip-annotations", name], check=True, cwd=ROOT)
    original = path.read_bytes()
    started = time.monotonic()
    try:
        subprocess.run([_tool("cosmic-ray"), "exec", str(config), str(session)], check=True, cwd=ROOT)
        skip_annotations(name)  # a resumed session's, skipped after they ran
    finally:
        if path.read_bytes() != original:  # an interrupted run leaves its mutant in the file
            path.write_bytes(original)
            print(f"{module.path}: restored")
    print(f"{name}: {time.monotonic() - started:.0f} s")


Span = tuple[tuple[int, int], tuple[int, int]]


def _outside(path: Path, only: tuple[str, ...]) -> list[Span]:
    """The spans of `path` outside the top-level functions and classes named in `only` (none when empty)."""
    if not only:
        return []
    tree = ast.parse(path.read_text())
    kept = sorted((n.lineno, n.end_lineno or n.lineno) for n in tree.body
                  if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and n.name in only)
    if len(kept) != len(only):
        sys.exit(f"{path}: not all of {', '.join(only)} are defined there: update MODULES in tools/mutate.py")
    spans, line = [], 1
    for first, last in kept:
        spans.append(((line, 0), (first - 1, 10**6)))
        line = last + 1
    spans.append(((line, 0), (10**9, 0)))
    return spans


def _annotation_spans(path: Path) -> list[Span]:
    """Where `path`'s annotations are, when the module never evaluates them (`from __future__ import
    annotations`): a mutant there (`str | None` made `str & None`) changes nothing that runs."""
    tree = ast.parse(path.read_text())
    future = any(isinstance(n, ast.ImportFrom) and n.module == "__future__" and any(a.name == "annotations" for a in n.names)
                 for n in tree.body)
    if not future:
        return []
    notes: list[ast.expr] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.arg) and node.annotation is not None:
            notes.append(node.annotation)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.returns is not None:
            notes.append(node.returns)
        elif isinstance(node, ast.AnnAssign):
            notes.append(node.annotation)
    return [((n.lineno, n.col_offset), (n.end_lineno or n.lineno, n.end_col_offset or 0)) for n in notes]


def skip_annotations(name: str) -> int:
    """Mark as skipped the mutants of `name`'s session that lie inside an annotation, or outside the
    functions the module's entry names (`only`); how many."""
    from cosmic_ray.work_db import WorkDB, use_db
    from cosmic_ray.work_item import WorkerOutcome, WorkResult

    path = ROOT / MODULES[name].path
    spans = _annotation_spans(path) + _outside(path, MODULES[name].only)
    skipped = 0
    with use_db(str(WORK / f"{name}.sqlite"), WorkDB.Mode.open) as db:
        done = {job for job, result in db.results if result.worker_outcome == WorkerOutcome.SKIPPED}
        for item in list(db.work_items):
            inside = all(any(lo <= tuple(m.start_pos) and tuple(m.end_pos) <= hi for lo, hi in spans) for m in item.mutations)
            if item.job_id not in done and inside:
                db.set_result(item.job_id, WorkResult(output="inside an annotation (never evaluated) or not guard code",
                                                      worker_outcome=WorkerOutcome.SKIPPED))
                skipped += 1
    print(f"{name}: {skipped} mutants skipped (inside annotations, or outside the guard code)")
    return 0


def test(name: str) -> int:
    """The test command cosmic-ray runs for each mutant: the module's tests, stopping at the first failure."""
    module = MODULES[name]
    # A stale compiled copy must never stand in for the mutant (its size and mtime may match).
    stem = Path(module.path).stem
    for pyc in (ROOT / module.path).parent.glob(f"__pycache__/{stem}.*.pyc"):
        pyc.unlink(missing_ok=True)
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
    cmd = [PYTHON, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", "-p", "no:randomly", *module.tests]
    return subprocess.run(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("modules", nargs="*", help=f"of: {', '.join(MODULES)} (default: all)")
    parser.add_argument("--list", action="store_true", help="the modules, their tests and what they guard")
    parser.add_argument("--report", action="store_true", help="score and survivors of the sessions, without running")
    parser.add_argument("--fresh", action="store_true", help="start the sessions anew (default: resume)")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds for one mutant's tests (over it: killed)")
    parser.add_argument("--retry-survivors", action="store_true", help="run the surviving mutants again (after adding tests)")
    parser.add_argument("--all-operators", action="store_true", help="every cosmic-ray operator (slow; with --fresh)")
    parser.add_argument("--test", metavar="MODULE", help=argparse.SUPPRESS)
    parser.add_argument("--skip-annotations", metavar="MODULE", help=argparse.SUPPRESS)
    return parser


def main() -> int:
    parser = _parser()
    args = parser.parse_args()
    if args.test:
        return test(args.test)
    if args.skip_annotations:
        return skip_annotations(args.skip_annotations)
    unknown = [m for m in args.modules if m not in MODULES]
    if unknown:
        parser.error(f"unknown module {', '.join(unknown)}: one of {', '.join(MODULES)}")
    names = args.modules or list(MODULES)
    if args.list:
        for name in names:
            m = MODULES[name]
            print(f"{name:9} {m.path}\n{'':9} tests: {' '.join(m.tests)}\n{'':9} guards: {m.guards}")
        return 0
    for name in [] if args.report else names:
        if args.retry_survivors:
            retry_survivors(name)
        run(name, args.timeout, args.all_operators, args.fresh)
    for name in names:
        report(name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
