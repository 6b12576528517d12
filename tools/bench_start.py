"""What a named set costs an interpreter that never imports vLLM: `python -c pass` with
VLLM_SURGEON_HUNKS set, against it unset, in the same run (issue 7 item 10; goal: <= 1.1x).

    .venv/bin/python tools/bench_start.py [--runs N]

Cases, alternated run by run so that machine noise falls on all alike:
- unset: the `.pth` line reads one variable and stops;
- set: `VLLM_SURGEON_HUNKS=priority`: the `.pth` line imports vllm_surgeon._bootstrap, which only
  puts a finder on sys.meta_path that waits for `import vllm` (no set is read);
- commas: `VLLM_SURGEON_HUNKS=" , "` names no set: nothing at all.
Each case also reports how many modules the interpreter holds at exit. Bytecode of the modules the
bootstrap imports is compiled first (pip does that at install; PYTHONDONTWRITEBYTECODE would
otherwise make every run compile them again, which no installed environment does).
"""

from __future__ import annotations

import argparse
import os
import py_compile
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CASES = {"unset": None, "set (priority)": "priority", 'commas (" , ")': " , "}


def _env(value: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VLLM_SURGEON_")}
    if value is not None:
        env["VLLM_SURGEON_HUNKS"] = value
    return env


def _modules(value: str | None) -> int:
    code = "import sys; print(len(sys.modules))"  # (importing json to print would add two dozen)
    out = subprocess.run([sys.executable, "-c", code], env=_env(value), capture_output=True, text=True, check=True)
    return int(out.stdout)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=60, help="runs per case (default 60)")
    args = parser.parse_args()
    import vllm_surgeon

    package = Path(vllm_surgeon.__file__).parent
    for name in ("__init__.py", "_bootstrap.py"):
        py_compile.compile(str(package / name), doraise=True)
    times: dict[str, list[float]] = {case: [] for case in CASES}
    order = list(CASES.items())
    for i in range(args.runs):
        for case, value in order if i % 2 == 0 else reversed(order):
            env = _env(value)
            start = time.perf_counter()
            subprocess.run([sys.executable, "-c", "pass"], env=env, check=True)
            times[case].append(time.perf_counter() - start)
    base = statistics.median(times["unset"])
    print(f"python -c pass, median of {args.runs} runs each ({sys.executable})")
    for case, value in CASES.items():
        median = statistics.median(times[case])
        print(f"  {case:20s} {median * 1000:7.2f} ms   ratio {median / base:.3f}   modules at exit: {_modules(value)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
