"""Sets apply inside vLLM's Ray workers: a local Ray cluster on loopback, vLLM's own `RayWorkerWrapper` actor.

tools/ray_driver.py starts the cluster (ray.init(num_cpus=2, include_dashboard=False) on 127.0.0.1)
in a fresh interpreter per scenario and asks the actor what is patched. The three ways the sets
reach a worker are the ones a multi-node deployment has (docs/running.md "Ray and multi-node").
"""

import json

import pytest
from conftest import REPO, run_python, surgeon_env

pytestmark = pytest.mark.vllm

RATE = "7"  # an aging rate nobody else uses: the actor's value proves the variables reached it


@pytest.fixture(scope="module")
def ray_reports(tmp_path_factory) -> dict[str, dict]:
    reports = {}
    for scenario in ("inherited", "job_runtime_env", "vllm_copies_env"):
        out = tmp_path_factory.mktemp(f"ray-{scenario}") / "report.json"
        env = surgeon_env(VLLM_SURGEON_HUNKS="priority", VLLM_SURGEON_PRIORITY_AGING=RATE, RAY_USAGE_STATS_ENABLED="0")
        proc = run_python(
            f"import runpy, sys; sys.argv = ['ray_driver', {scenario!r}, {str(out)!r}]; "
            f"runpy.run_path({str(REPO / 'tools' / 'ray_driver.py')!r}, run_name='__main__')",
            env, cwd=REPO, timeout=600,
        )
        assert proc.returncode == 0 and out.exists(), f"{scenario}:\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"
        reports[scenario] = {**json.loads(out.read_text()), "log": proc.stdout + proc.stderr}
    return reports


def _patched_in_the_actor(report: dict, how: str) -> None:
    assert report["pid"] != report["driver_pid"]
    assert report["env"] == "priority" and report["aged_priority"] and report["rate"] == float(RATE)
    (entry,) = report["applied"]
    assert entry["name"] == "priority" and entry["pid"] == report["pid"]
    assert entry["modules"]["vllm.v1.request"] == how


def test_workers_of_a_cluster_started_with_the_variables_apply_sets_at_import(ray_reports):
    report = ray_reports["inherited"]
    _patched_in_the_actor(report, "at import")
    assert "applied set 'priority'" in report["log"] and f"in pid {report['pid']}" in report["log"]


def test_a_job_runtime_env_brings_the_sets_to_workers_of_a_cluster_started_without_them(ray_reports):
    _patched_in_the_actor(ray_reports["job_runtime_env"], "at import")


def test_vllms_own_env_propagation_and_plugin_call_patch_a_running_worker_in_place(ray_reports):
    report = ray_reports["vllm_copies_env"]
    # vLLM's executors copy every VLLM_* variable of the driver; the worker had none at start.
    assert report["copied_by_vllm"] == ["VLLM_SURGEON_HUNKS", "VLLM_SURGEON_PRIORITY_AGING"]
    _patched_in_the_actor(report, "in place")

