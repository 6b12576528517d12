"""The main job end to end: a real vLLM (CPU build) with the bundled `priority` set, then a verify.

Run by `python3.11 tools/dev.py demo` inside .venv. Step 1 starts a real engine (MainProcess,
EngineCore and a worker process) with VLLM_SURGEON_HUNKS=priority and shows the set applied in
each, then measures a low-priority request's wait under a steady stream of high-priority ones.
Step 2 runs `vllm-surgeon verify --against 0.33.0`: the release's wheel is downloaded (no
dependencies, never installed) and every bundled hunk is checked against it.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
OUT = REPO / ".cache" / "demo"


def step(title: str) -> None:
    print(f"\n== {title}", flush=True)


def engine_with_priority_set() -> bool:
    OUT.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("VLLM_SURGEON_")}
    env.update(VLLM_SURGEON_HUNKS="priority", VLLM_SURGEON_PRIORITY_AGING="20")
    step("vLLM with VLLM_SURGEON_HUNKS=priority VLLM_SURGEON_PRIORITY_AGING=20 (about 30-40 s to start)")
    results = OUT / "results.json"
    log = OUT / "engine.log"
    with log.open("w") as f:
        code = subprocess.run(
            [sys.executable, str(REPO / "tools" / "engine_driver.py"), str(REPO / ".cache" / "tiny-llama"),
             str(results), "starvation", "applied"],
            env=env, cwd=REPO, stdout=f, stderr=subprocess.STDOUT,
        ).returncode
    text = log.read_text()
    lines = [line for line in text.splitlines() if "[vllm-surgeon]" in line]
    print("\n".join(lines) or "(no vllm-surgeon lines!)")
    processes = set(re.findall(r"applied set 'priority' .* in pid \d+ \(([^)]+)\)", text))
    print(f"\nset 'priority' applied in: {', '.join(sorted(processes))}   (full log: {log})")
    if code != 0:
        print(f"the engine run failed (exit {code}); see {log}")
        return False
    r = json.loads(results.read_text())["starvation"]
    print(
        f"low-priority request (priority 10) under a stream of {r['highs']} priority-0 requests:\n"
        f"  waited {r['low_wait_s']:.2f} s, overtaken by {r['overtaken_by_later_highs']} later arrivals, "
        f"then served while the stream went on ({r['later_highs_served_after_low']} later arrivals served after it).\n"
        f"  Without the set it waits as long as the stream lasts ({r['stream_s']:.0f} s here, or forever)."
    )
    return {"MainProcess", "EngineCore"} <= processes and any(p.startswith("VllmWorker") for p in processes)


def verify_against_release() -> int:
    step("vllm-surgeon verify --against 0.33.0")
    return subprocess.run([sys.executable, "-m", "vllm_surgeon", "verify", "--against", "0.33.0"], cwd=REPO).returncode


def main() -> int:
    ok = engine_with_priority_set()
    code = verify_against_release()
    print(f"\ndemo {'done' if ok else 'FAILED'}; verify exit code {code}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
