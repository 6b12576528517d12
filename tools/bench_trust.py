"""What checking who can change a set costs when vLLM starts (issue 13), as ratios against reading the
same files unchecked, in the same run.

    .venv/bin/python tools/bench_trust.py [--runs N] [--starts N]

1. Reading sets in this process, checked (each file opened by a walk from `/`, every folder's owner,
   mode and filesystem asked through its descriptor) against unchecked (one plain open), alternated
   block by block: the bundled `priority.hunk`; a folder set of 40 numbered patches 8 folders deep;
   a ConfigMap-style layout (each file a symlink through `..data` into a timestamped folder).
2. A vLLM process's start with VLLM_SURGEON_HUNKS=priority: `import vllm` (which reads and checks the
   set, then plans or takes the code cache) in fresh interpreters, checks on against off, alternated.
The `.pth` path does no checking at all (tools/bench_start.py measures it): sets are read at `import vllm`.
"""

from __future__ import annotations

import argparse
import functools
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PATCH = "--- a/pkg/mod{n}.py\n+++ b/pkg/mod{n}.py\n@@ -1 +1 @@\n-a = {n}\n+a = {n} + 1\n"
START = "import time; t = time.perf_counter(); import vllm; print(time.perf_counter() - t)"
OFF = "import vllm_surgeon.core.trust as t; t.SUPPORTED = False  # the benchmark's switch: read sets unchecked\n"


def _layouts(root: Path) -> dict[str, tuple[Path, str]]:
    """The cases: (path to load, name)."""
    from vllm_surgeon.sets.search import bundled_dir

    deep = root.joinpath(*"abcdefgh") / "series"
    deep.mkdir(parents=True)
    for n in range(1, 41):
        (deep / f"{n:04d}-change-{n}.patch").write_text(PATCH.format(n=n))
    volume = root / "configmap"
    stamp = volume / "..2026_12_06_10_17_42.1234567890"
    stamp.mkdir(parents=True)
    (stamp / "priority.hunk").write_bytes((bundled_dir() / "priority.hunk").read_bytes())
    (volume / "..data").symlink_to(stamp.name)
    (volume / "priority.hunk").symlink_to("..data/priority.hunk")
    return {
        "priority.hunk (bundled)": (bundled_dir() / "priority.hunk", "priority"),
        "40-patch folder, 8 deep": (deep, "series"),
        "ConfigMap symlinks": (volume / "priority.hunk", "priority"),
    }


def _per_load(load: Callable[[], object], runs: int) -> float:
    start = time.perf_counter()
    for _ in range(runs):
        load()
    return (time.perf_counter() - start) / runs


def reading(runs: int) -> None:
    from vllm_surgeon.core import trust
    from vllm_surgeon.sets.loader import load_file

    with tempfile.TemporaryDirectory(dir=Path.home()) as tmp:  # a folder only this user can write
        cases = _layouts(Path(tmp))
        times: dict[tuple[str, bool], list[float]] = {}
        for block in range(10):
            for checked in (True, False) if block % 2 == 0 else (False, True):
                trust.SUPPORTED = checked
                for case, (path, name) in cases.items():
                    times.setdefault((case, checked), []).append(_per_load(functools.partial(load_file, path, name), runs))
        trust.SUPPORTED = True
    print(f"1. reading a set in this process, median of 10 blocks of {runs} loads each")
    for case in cases:
        on, off = statistics.median(times[(case, True)]), statistics.median(times[(case, False)])
        print(f"   {case:26s} checked {on * 1e3:7.3f} ms   unchecked {off * 1e3:7.3f} ms   ratio {on / off:.3f}   "
              f"(+{(on - off) * 1e6:.0f} us)")


def starting(starts: int) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VLLM_SURGEON_")}
    env.update(VLLM_SURGEON_HUNKS="priority", VLLM_SURGEON_CACHE_DIR=str(REPO / ".cache" / "surgeon-cache"))
    times: dict[bool, list[float]] = {True: [], False: []}
    for i in range(starts + 1):
        for checked in (True, False) if i % 2 == 0 else (False, True):
            code = START if checked else OFF + START
            out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
            if i:  # the first round warms the code cache and the page cache
                times[checked].append(float(out.stdout.strip().splitlines()[-1]))
    on, off = statistics.median(times[True]), statistics.median(times[False])
    print(f"2. `import vllm` with VLLM_SURGEON_HUNKS=priority, median of {starts} fresh interpreters each")
    print(f"   checked {on:.3f} s   unchecked {off:.3f} s   ratio {on / off:.3f}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200, help="loads per block in part 1 (default 200)")
    parser.add_argument("--starts", type=int, default=10, help="interpreters per case in part 2 (default 10)")
    args = parser.parse_args()
    reading(args.runs)
    starting(args.starts)
    return 0


if __name__ == "__main__":
    sys.exit(main())
