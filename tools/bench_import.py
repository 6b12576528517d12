"""What vllm-surgeon costs when VLLM_SURGEON_HUNKS is unset, as a ratio against it uninstalled.

    .venv/bin/python tools/bench_import.py [--runs N]

Times two things in fresh interpreters of this venv, alternating the two installs run by run so
that machine noise falls on both alike:
- `python -c pass`: interpreter start, where the `.pth` line runs;
- `import vllm` then vLLM's `load_general_plugins()`, where the plugin entry point is loaded and called.
"Uninstalled" is real: `pip uninstall vllm-surgeon` (the .pth, the entry points and the package
go), then an editable reinstall at the end, whatever happens.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CASES = {
    "interpreter start": "pass",
    "import vllm + load_general_plugins()": "import vllm\nfrom vllm.plugins import load_general_plugins\nload_general_plugins()",
}


def _time(code: str) -> float:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VLLM_SURGEON_")}
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def _pip(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "pip", "-q", *args], check=True, stdout=subprocess.DEVNULL)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15, help="runs per case and install state (default 15)")
    args = parser.parse_args()
    times: dict[tuple[str, str], list[float]] = {}
    try:
        for i in range(args.runs):
            for state in ("installed", "uninstalled") if i % 2 == 0 else ("uninstalled", "installed"):
                if state == "uninstalled":
                    _pip("uninstall", "-y", "vllm-surgeon")
                else:
                    _pip("install", "--no-deps", "-e", str(REPO))
                for case, code in CASES.items():
                    times.setdefault((case, state), []).append(_time(code))
    finally:
        _pip("install", "--no-deps", "-e", str(REPO))
    print(f"median of {args.runs} runs each, VLLM_SURGEON_HUNKS unset")
    for case in CASES:
        on = statistics.median(times[(case, "installed")])
        off = statistics.median(times[(case, "uninstalled")])
        print(f"  {case:38s} installed {on * 1000:8.1f} ms   uninstalled {off * 1000:8.1f} ms   ratio {on / off:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
