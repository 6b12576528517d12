"""A vLLM plugin as teams write them (issue 16, in the shape of vLLM's blog post on plugins): vLLM calls
`register` through the `vllm.general_plugins` entry point in every process it starts, and it applies
the monkey patches. tests/test_real_seed_patch.py writes `seed_patches/scheduler.py` (a copy of the
installed vLLM's `Scheduler.schedule` with a few lines changed) beside this file."""

import multiprocessing
import os
import sys


def register() -> None:
    from seed_patches.scheduler import SchedulePatch

    names = SchedulePatch.apply()
    process = multiprocessing.current_process().name
    print(f"[seed-patches] patched Scheduler.{', '.join(names)} in pid {os.getpid()} ({process})", file=sys.stderr, flush=True)
