"""Start a local Ray cluster on loopback and report, from inside vLLM's own Ray worker actor, which sets apply.

    python tools/ray_driver.py SCENARIO OUT.json

The actor is vLLM's `RayWorkerWrapper` (what its Ray executor runs on every node); a probe
function is sent to it through `execute_method`, as vLLM sends its own calls. Scenarios:

- `inherited`: this process's environment (VLLM_SURGEON_HUNKS set) starts the cluster, so the
  raylet and every worker inherit it (`ray start` with the variables set, on each node);
- `job_runtime_env`: the cluster starts without them; the driver gives them to the job with
  `ray.init(runtime_env={"env_vars": ...})` (or vLLM's `ray_runtime_env`);
- `vllm_copies_env`: the cluster and the actor start without them; the driver then sets them
  and vLLM's own propagation carries them over: the variables vLLM's executors copy to workers
  (`get_env_vars_to_copy`, `get_driver_env_vars`: every `VLLM_*`) are set in the actor with
  `update_environment_variables`, and vLLM's worker start calls the general plugins.

The VLLM_SURGEON_* variables to use come from this process's environment; for the last two
scenarios they are removed before Ray starts and given to Ray only as described.
"""

from __future__ import annotations

import json
import os
import sys


def probe(worker, load_plugins: bool) -> dict:
    """Runs inside the actor: what vLLM's worker start does (plugins), then what is patched."""
    if load_plugins:
        from vllm.plugins import load_general_plugins

        load_general_plugins()  # as WorkerWrapperBase.init_worker does
    import vllm.v1.request as request

    import vllm_surgeon

    return {
        "pid": os.getpid(),
        "env": os.environ.get("VLLM_SURGEON_HUNKS"),
        "aged_priority": hasattr(request.Request, "aged_priority"),
        "rate": getattr(request, "_PRIORITY_AGING_RATE", None),
        "applied": [{"name": a.name, "pid": a.pid, "modules": a.modules} for a in vllm_surgeon.applied()],
    }


def main() -> int:
    scenario, out = sys.argv[1:]
    surgeon = {k: v for k, v in os.environ.items() if k.startswith("VLLM_SURGEON_") and k != "VLLM_SURGEON_CACHE_DIR"}
    if scenario != "inherited":
        for key in surgeon:
            del os.environ[key]
    import cloudpickle
    import ray

    init = dict(num_cpus=2, include_dashboard=False, _node_ip_address="127.0.0.1", log_to_driver=True)
    if scenario == "job_runtime_env":
        init["runtime_env"] = {"env_vars": surgeon}
    ray.init(**init)
    try:
        from vllm.v1.executor.ray_utils import RayWorkerWrapper

        actor = ray.remote(num_cpus=1)(RayWorkerWrapper).remote(rpc_rank=0)
        load_plugins = scenario == "vllm_copies_env"
        copied: list[str] = []
        if load_plugins:
            from vllm.ray.ray_env import get_env_vars_to_copy
            from vllm.v1.executor.ray_env_utils import get_driver_env_vars
            from vllm.v1.executor.ray_utils import WORKER_SPECIFIC_ENV_VARS

            os.environ.update(surgeon)  # the driver (`vllm serve`, `LLM(...)`) has them
            names = get_env_vars_to_copy(exclude_vars=WORKER_SPECIFIC_ENV_VARS, destination="workers")
            v2 = get_driver_env_vars(worker_specific_vars=WORKER_SPECIFIC_ENV_VARS)
            copied = sorted(k for k in surgeon if k in names and k in v2)
            ray.get(actor.update_environment_variables.remote([{k: os.environ[k] for k in names if k in os.environ}]))
        report = ray.get(actor.execute_method.remote(cloudpickle.dumps(probe), load_plugins))
        report["copied_by_vllm"] = copied
        report["driver_pid"] = os.getpid()
    finally:
        ray.shutdown()
    with open(out, "w") as f:
        json.dump(report, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
