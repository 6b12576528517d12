"""In-place patching in a real vLLM process: vLLM's plugin call with the bundled `priority` set, against
the same call with no set, and against `import vllm`, in the same run (issue 7 item 12; goal: the
patching costs under a tenth of `import vllm`).

    .venv/bin/python tools/bench_inplace.py [--runs N]

Each run is a fresh interpreter with VLLM_SURGEON_BOOTSTRAP=0 (so nothing is patched at import):
it imports vllm, then torch and the scheduler (as every vLLM process has them when plugins run:
~600k objects on the heap), then calls vLLM's `load_general_plugins()`, which runs vllm-surgeon's
plugin: it loads and plans the set and vllm-surgeon's internal one (the code cache is not used in
place), and patches `vllm.v1.request` and the scheduler in place, searching the heap once for every
function it changes. vllm-surgeon's own modules are byte-compiled first, as pip leaves them. Runs alternate
between "priority" and "no set"; medians are reported, with the plan and in-place parts of the
plugin call measured inside it.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys

CHILD = r"""
import gc, json, os, sys, time
t0 = time.perf_counter()
import vllm
t1 = time.perf_counter()
import torch, vllm.v1.core.sched.scheduler, vllm.v1.request
t2 = time.perf_counter()
parts = {"plan": 0.0, "in place": 0.0}
if sys.argv[1] == "priority":
    os.environ["VLLM_SURGEON_HUNKS"] = "priority"
    import vllm_surgeon.engine.plan as engine, vllm_surgeon.runtime.inplace as inplace

    def timed(name, fn):
        def run(*a, **k):
            start = time.perf_counter()
            try:
                return fn(*a, **k)
            finally:
                parts[name] += time.perf_counter() - start
        return run

    engine.plan = timed("plan", engine.plan)
    inplace.patch_modules = timed("in place", inplace.patch_modules)
from vllm.plugins import load_general_plugins
t3 = time.perf_counter()
load_general_plugins()
t4 = time.perf_counter()
import vllm_surgeon
print("RESULT" + json.dumps({
    "import vllm": t1 - t0, "import torch + scheduler": t2 - t1, "plugins": t4 - t3, **parts,
    "objects": len(gc.get_objects()), "applied": [a.modules for a in vllm_surgeon.applied()],
}))
"""


def _run(mode: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VLLM_SURGEON_") or k == "VLLM_SURGEON_CACHE_DIR"}
    env["VLLM_SURGEON_BOOTSTRAP"] = "0"
    out = subprocess.run([sys.executable, "-c", CHILD, mode], env=env, capture_output=True, text=True, timeout=900)
    line = next((l for l in out.stdout.splitlines() if l.startswith("RESULT")), None)
    if line is None:
        raise SystemExit(f"the {mode} run failed:\n{out.stderr[-3000:]}")
    return json.loads(line[len("RESULT"):])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="runs per case (default 3; each imports vLLM and torch)")
    args = parser.parse_args()
    import compileall

    import vllm_surgeon

    # Bytecode as pip leaves it at install (PYTHONDONTWRITEBYTECODE would make each run compile it).
    compileall.compile_dir(os.path.dirname(vllm_surgeon.__file__), quiet=1)
    results: dict[str, list[dict]] = {"priority": [], "none": []}
    for i in range(args.runs):
        for mode in ("priority", "none") if i % 2 == 0 else ("none", "priority"):
            results[mode].append(_run(mode))

    def median(mode: str, key: str) -> float:
        return statistics.median(r[key] for r in results[mode])

    applied = results["priority"][0]["applied"]
    assert applied == [{"vllm.v1.request": "in place", "vllm.v1.core.sched.scheduler": "in place"}], applied
    import_vllm = statistics.median([r["import vllm"] for rs in results.values() for r in rs])
    with_set, without = median("priority", "plugins"), median("none", "plugins")
    print(f"median of {args.runs} runs each; {median('priority', 'objects'):,.0f} objects on the heap")
    print(f"  import vllm                          {import_vllm * 1000:8.1f} ms")
    print(f"  import torch + scheduler + request   {median('none', 'import torch + scheduler'):8.3f} s")
    print(f"  load_general_plugins(), no set       {without * 1000:8.1f} ms")
    print(f"  load_general_plugins(), priority     {with_set * 1000:8.1f} ms   "
          f"(plan {median('priority', 'plan') * 1000:.1f} ms, in place {median('priority', 'in place') * 1000:.1f} ms)")
    print(f"  patching cost (priority - no set) / import vllm: {(with_set - without) / import_vllm:.3f}   (goal < 0.1)")
    print(f"  load_general_plugins() priority / no set:        {with_set / without:.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
