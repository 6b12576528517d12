"""Drive one real vLLM engine (CPU build) through the scenarios the tests measure; write JSON results.

Run in its own process by tests/conftest.py and tools/demo.py (`python tools/engine_driver.py MODEL OUT SCENARIO...`),
so one engine start (~30 s) serves every test of one configuration.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path


def starvation(llm) -> dict:
    """One low-priority request under a steady stream of high-priority ones (max_num_seqs=1).

    The stream keeps `depth` high-priority requests unfinished at all times (topped up after every
    engine output), so a high-priority request is always waiting when the running one finishes.
    It lasts `DRIVER_STREAM_S` seconds, or until the low one finishes; then the rest is drained.
    """
    from vllm import SamplingParams

    engine = llm.llm_engine
    params = SamplingParams(max_tokens=2, ignore_eos=True, temperature=0.0)
    depth = 8
    stream_s = float(os.environ.get("DRIVER_STREAM_S", "3"))
    arrivals: dict[str, float] = {}
    finished: list[tuple[str, float]] = []
    counter = 0

    def add_high() -> None:
        nonlocal counter
        rid = f"high-{counter}"
        counter += 1
        arrivals[rid] = time.time()
        engine.add_request(rid, "hello world", params, priority=0)

    for _ in range(depth):
        add_high()
    arrivals["low"] = time.time()
    engine.add_request("low", "hello world", params, priority=10)
    stream_until = arrivals["low"] + stream_s
    stream_ended_at = None
    steps = 0
    while engine.has_unfinished_requests():
        low_done = any(rid == "low" for rid, _ in finished)
        if stream_ended_at is None and (low_done or time.time() >= stream_until):
            stream_ended_at = time.time()
        if stream_ended_at is None:
            while counter - sum(1 for rid, _ in finished if rid != "low") < depth:
                add_high()
        for out in engine.step():
            if out.finished:
                finished.append((out.request_id, time.time()))
        steps += 1
    order = [rid for rid, _ in finished]
    low_at = order.index("low")
    low_done_at = finished[low_at][1]
    after_low = {r for r in arrivals if r != "low" and arrivals[r] > arrivals["low"]}
    return {
        "order": order,
        "low_position": low_at,
        "highs": counter,
        "highs_arrived_after_low": len(after_low),
        "overtaken_by_later_highs": sum(1 for r in order[:low_at] if r in after_low),
        "later_highs_served_after_low": sum(1 for r in order[low_at + 1 :] if r in after_low),
        "low_wait_s": low_done_at - arrivals["low"],
        "stream_s": stream_s,
        "low_finished_while_streaming": stream_ended_at is not None and low_done_at <= stream_ended_at,
        "steps": steps,
    }


def generate(llm) -> dict:
    """Greedy generation of 8 tokens for two prompts: the token ids each request got."""
    from vllm import SamplingParams

    outs = llm.generate(["hello world", "the quick brown fox"], SamplingParams(max_tokens=8, ignore_eos=True, temperature=0.0))
    return {"token_ids": [list(o.outputs[0].token_ids) for o in outs]}


def jobs(llm) -> dict:
    """Six requests of job A, then three of job B, all waiting at once (max_num_seqs=1): the order they finish.

    Request ids are `JOB-N`; vLLM appends its own suffix inside the engine, the job stays the prefix.
    Upstream FCFS finishes every A before any B; a job-aware queue lets the jobs take turns.
    """
    from vllm import SamplingParams

    engine = llm.llm_engine
    params = SamplingParams(max_tokens=2, ignore_eos=True, temperature=0.0)
    for rid in [f"jobA-{i}" for i in range(6)] + [f"jobB-{i}" for i in range(3)]:
        engine.add_request(rid, "hello world", params)
    order = []
    while engine.has_unfinished_requests():
        order += [out.request_id for out in engine.step() if out.finished]
    return {"order": order}


def _scheduler_probe(worker=None) -> dict:
    """In the process it runs in: whether vLLM's scheduler module was imported there, and whether the
    `Scheduler.schedule` it has (importing it now) is the one that writes SCHEDULE_RECORD (issue 16)."""
    import multiprocessing
    import sys

    imported = "vllm.v1.core.sched.scheduler" in sys.modules
    from vllm.v1.core.sched.scheduler import Scheduler

    code = Scheduler.schedule.__code__
    return {"pid": os.getpid(), "process": multiprocessing.current_process().name, "imported": imported,
            "records": "SCHEDULE_RECORD" in code.co_consts, "file": code.co_filename}


def schedule_probe(llm) -> dict:
    """Where `Scheduler.schedule` is changed: probed in this process and (by collective_rpc, which needs
    VLLM_ALLOW_INSECURE_SERIALIZATION=1) in every worker; and the lines the changed `schedule` wrote,
    where it ran, into the file named by SCHEDULE_RECORD (one JSON list a line)."""
    probes = [_scheduler_probe()] + list(llm.collective_rpc(_scheduler_probe))
    record = os.environ.get("SCHEDULE_RECORD", "")
    lines = Path(record).read_text().splitlines() if record and Path(record).is_file() else []
    return {"probes": probes, "records": [json.loads(line) for line in lines]}


def applied(llm) -> dict:
    import vllm_surgeon

    return {"applied": [
        {"name": a.name, "path": a.path, "targets": list(a.targets), "modules": a.modules, "pid": a.pid, "process": a.process}
        for a in vllm_surgeon.applied()
    ]}


SCENARIOS = {"starvation": starvation, "generate": generate, "jobs": jobs, "schedule_probe": schedule_probe, "applied": applied}


def main() -> int:
    model, out, *scenarios = sys.argv[1:]
    from vllm import LLM

    started = time.time()
    llm = LLM(
        model=model,
        gpu_memory_utilization=0.1,
        max_model_len=256,
        max_num_seqs=1 if {"starvation", "jobs"} & set(scenarios) else 4,
        scheduling_policy=os.environ.get("DRIVER_POLICY", "priority"),
        seed=0,
    )
    results: dict[str, object] = {"engine_start_s": time.time() - started, "pid": os.getpid()}
    for name in scenarios:
        results[name] = SCENARIOS[name](llm)
    with open(out, "w") as f:
        json.dump(results, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
