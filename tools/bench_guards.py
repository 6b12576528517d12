"""What `@vllm_surgeon.copied_from` costs at import (issue 16), as a ratio to importing what it guards.

In a fresh interpreter: import vllm's scheduler module (what a monkey patch of it imports anyway),
then check three of its functions with `copied_from` (the first parses the module's file; the others
reuse that parse). Prints both times and the ratio; several runs, the median.

    .venv/bin/python tools/bench_guards.py [--runs 5]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys

TARGETS = ["Scheduler.schedule", "Scheduler.update_from_output", "Scheduler.finish_requests"]
MODULE = "vllm.v1.core.sched.scheduler"

CHILD = f"""
import json, time
t0 = time.perf_counter()
import {MODULE}
t1 = time.perf_counter()
from vllm_surgeon.authoring.guards import read_targets
from vllm_surgeon.trees.releases import installed
digests = {{r.target: r.code.digest for r in read_targets([f"{MODULE}:{{t}}" for t in {TARGETS!r}], installed())}}
t2 = time.perf_counter()
import vllm_surgeon
for target, digest in digests.items():
    vllm_surgeon.copied_from(target, "0.32.0", digest)(lambda: None)
t3 = time.perf_counter()
print(json.dumps({{"import": t1 - t0, "check": t3 - t2}}))
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    imports, checks = [], []
    for _ in range(args.runs):
        run = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True)
        if run.returncode != 0:
            sys.stderr.write(run.stderr)
            return 1
        result = json.loads(run.stdout.strip().splitlines()[-1])
        imports.append(result["import"])
        checks.append(result["check"])
    imp, chk = statistics.median(imports), statistics.median(checks)
    print(f"import {MODULE}: {imp * 1000:.0f} ms; copied_from on {len(TARGETS)} of its functions: {chk * 1000:.0f} ms "
          f"({chk / imp:.1%} of the import; median of {args.runs})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
