"""The closest-match search of a refused anchor, against planning the same file with a good anchor, in
the same run (issue 7 item 11; goal: a 200-line anchor that is nowhere costs at most one more plan
of the file than a good anchor).

    .venv/bin/python tools/bench_closest.py [--repeat N]

All on the installed vLLM's real scheduler.py (`Scheduler.schedule`, ~970 lines), read once;
each case is `planner.plan` of one set (parse, locate, compile or refuse), the median of N runs:
- good: the bundled `priority` set's hunk in Scheduler.schedule (applies);
- nowhere, invented: 7/20/200 lines that occur nowhere, not even one of them;
- nowhere, real code: 7/20/200 lines of vLLM's engine core, which scheduler.py does not hold;
- near miss: the good hunk with one anchor line edited (the closest code is shown).
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time

from vllm_surgeon.core.model import AnchoredHunk
from vllm_surgeon.engine import planner
from vllm_surgeon.sets.hunkfile import parse_hunk_file
from vllm_surgeon.sets.search import bundled_dir
from vllm_surgeon.trees.installed import read_installed

SCHED = "vllm.v1.core.sched.scheduler"
TARGET = f"{SCHED}:Scheduler.schedule"


def _good() -> str:
    text = (bundled_dir() / "priority.hunk").read_text()
    return text[text.index(f"@@ {TARGET}") :]


def _anchor_set(lines: list[str]) -> str:
    return f"@@ {TARGET}\n" + "".join(f" {line}\n" for line in lines) + "+        pass  # vllm-surgeon benchmark\n"


def _invented(n: int) -> list[str]:
    rnd = random.Random(n)
    words = ["alpha", "beta", "gamma", "delta", "widget", "frob", "quux", "zeta", "omega", "kappa"]
    return [f"        {rnd.choice(words)}_{i} = {rnd.choice(words)}(self.{rnd.choice(words)}, {i})" for i in range(n)]


def _real_elsewhere(n: int) -> list[str]:
    source = read_installed("vllm.v1.engine.core")
    assert source is not None
    lines = [line for line in source.text.split("\n")[150:] if line.strip()]
    return lines[:n]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=15, help="plans per case (default 15)")
    args = parser.parse_args()
    source = read_installed(SCHED)
    assert source is not None, "no vLLM installed"
    read = {SCHED: source}.get
    good = _good()
    near = good.replace("key=lambda r: (r.priority, r.arrival_time),", "key=lambda r: (r.priority, -r.arrival_time),")
    cases = {"good anchor (applies)": good, "near miss (1 line edited)": near}
    for n in (7, 20, 200):
        cases[f"{n} invented lines, nowhere"] = _anchor_set(_invented(n))
    for n in (7, 20, 200):
        cases[f"{n} lines of engine/core.py"] = _anchor_set(_real_elsewhere(n))
    sets = {name: parse_hunk_file(text, f"/bench/{i}.hunk", f"b{i}") for i, (name, text) in enumerate(cases.items())}
    times: dict[str, list[float]] = {name: [] for name in cases}
    details = {}
    for _ in range(args.repeat):
        for name, hunk_set in sets.items():
            start = time.perf_counter()
            plan = planner.plan([hunk_set], read, "0.32.0")
            times[name].append(time.perf_counter() - start)
            details[name] = plan.refusals[0].detail.split("; ", 1)[-1] if plan.refusals else "applies"
    # The search alone, on the same span the engine searches.
    from vllm_surgeon.core.scopes import ScopeIndex
    from vllm_surgeon.matching.anchor import closest

    lines = source.lines()
    (scope,) = ScopeIndex(source.text).find("Scheduler.schedule")
    search: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(args.repeat):
        for name, hunk_set in sets.items():
            hunk = hunk_set.hunks[0]
            assert isinstance(hunk, AnchoredHunk)
            anchor = hunk.anchor
            start = time.perf_counter()
            closest(lines, anchor, scope.start, scope.end)
            search[name].append(time.perf_counter() - start)
    base = statistics.median(times["good anchor (applies)"])
    print(f"{SCHED} ({len(lines)} lines; Scheduler.schedule {scope.end - scope.start} lines), median of {args.repeat}")
    print(f"  {'case':30s} {'plan':>9s} {'vs good':>8s} {'search':>9s} {'search/good plan':>17s}   verdict")
    for name in cases:
        plan_ms, search_ms = statistics.median(times[name]), statistics.median(search[name])
        print(f"  {name:30s} {plan_ms * 1000:7.1f}ms {plan_ms / base:7.2f}x {search_ms * 1000:7.1f}ms {search_ms / base:16.2f}x   "
              f"{details[name][:80]}")
    print("goal: for the 200-line cases, plan <= 2.00x a good plan (the search costs at most one plan of the file)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
