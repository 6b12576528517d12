"""Real vLLM engines (CPU build, tiny random Llama) in their real processes: MainProcess, EngineCore, worker.

Three engine starts serve all tests here (~35 s each), one per configuration:
- "priority": the bundled set applied by the vLLM plugin alone (VLLM_SURGEON_BOOTSTRAP=0): in
  vLLM 0.32 `vllm.v1.request` is imported in every process before plugins run, so `Request.__lt__`
  (the heap order of the waiting queue) is patched in place; the scheduler is rewritten at import;
- "probe": a plain `diff -u` of two vLLM files, found through VLLM_SURGEON_PATH, applied through
  the .pth bootstrap (modules rewritten at import);
- "warn": the probe with one anchor line altered and VLLM_SURGEON_ON_FAILURE=warn: vLLM runs
  unpatched, which is also the no-aging baseline for the priority measurement.
"""

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import surgeon_env

pytestmark = pytest.mark.vllm

PROBE_TOKEN = 7  # any id of the tiny model's vocabulary
PROBE_LENGTH = 3
AGING = "20"  # priority levels per second: a priority-10 request is ahead of arrivals 0.5 s younger


def _diff(original: Path, edit: tuple[str, str], scratch: Path) -> str:
    """`diff -u` of a real vLLM file against a copy with one edit, as a user would make it."""
    old, new = edit
    text = original.read_text()
    assert text.count(old) == 1, f"probe edit not found once in {original}"
    copy = scratch / original.name
    copy.write_text(text.replace(old, new))
    result = subprocess.run(["diff", "-u", str(original), str(copy)], capture_output=True, text=True)
    assert result.returncode == 1, result.stderr
    return result.stdout


def make_probe(vllm_dir: Path, directory: Path, broken: bool = False) -> Path:
    """probe.patch: the worker's greedy sampler always picks PROBE_TOKEN; the EngineCore stops at PROBE_LENGTH."""
    directory.mkdir(parents=True, exist_ok=True)
    scratch = directory / "scratch"
    scratch.mkdir(exist_ok=True)
    sampler = _diff(vllm_dir / "v1" / "sample" / "sampler.py", (
        "            return torch.ops._C.greedy_argmax(logits)\n",
        f"            return torch.full_like(torch.ops._C.greedy_argmax(logits), {PROBE_TOKEN})\n",
    ), scratch)
    stop = _diff(vllm_dir / "v1" / "core" / "sched" / "utils.py", (
        "        or request.num_output_tokens >= request.max_tokens\n",
        f"        or request.num_output_tokens >= min(request.max_tokens, {PROBE_LENGTH})\n",
    ), scratch)
    text = sampler + stop
    if broken:  # one context line of the EngineCore hunk no longer matches the installed vLLM
        text = text.replace(" request.num_tokens >= max_model_len\n", " request.num_tokens > max_model_len\n", 1)
        assert " request.num_tokens > max_model_len\n" in text
    shutil.rmtree(scratch)
    path = directory / "probe.patch"
    path.write_text(text)
    return path


@pytest.fixture(scope="module")
def priority_run(engine_run):
    env = surgeon_env(VLLM_SURGEON_HUNKS="priority", VLLM_SURGEON_PRIORITY_AGING=AGING, VLLM_SURGEON_BOOTSTRAP="0")
    return engine_run("priority", env, ["starvation", "applied"])


@pytest.fixture(scope="module")
def probe_run(engine_run, vllm_dir, tmp_path_factory):
    directory = tmp_path_factory.mktemp("probe-sets")
    make_probe(vllm_dir, directory)
    env = surgeon_env(VLLM_SURGEON_HUNKS="probe", VLLM_SURGEON_PATH=str(directory))
    return engine_run("probe", env, ["generate", "applied"])


@pytest.fixture(scope="module")
def broken_probe_dir(vllm_dir, tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp("broken-probe")
    make_probe(vllm_dir, directory, broken=True)
    return directory


@pytest.fixture(scope="module")
def warn_run(engine_run, broken_probe_dir):
    env = surgeon_env(VLLM_SURGEON_HUNKS="probe", VLLM_SURGEON_PATH=str(broken_probe_dir), VLLM_SURGEON_ON_FAILURE="warn")
    return engine_run("warn", env, ["starvation", "generate", "applied"])


def test_priority_set_is_applied_in_the_main_enginecore_and_worker_processes(priority_run):
    assert priority_run.returncode == 0, priority_run.log[-3000:]
    processes = priority_run.processes_applied("priority")
    assert {"MainProcess", "EngineCore"} <= processes and any(p.startswith("VllmWorker") for p in processes), processes
    pids = {m["pid"] for m in priority_run.applied_lines()}
    assert len(pids) == 3
    (entry,) = priority_run.results["applied"]["applied"]
    assert entry["name"] == "priority" and entry["process"] == "MainProcess"
    assert entry["modules"]["vllm.v1.request"] == "in place"


def test_already_imported_request_module_is_patched_in_place_in_every_process(priority_run):
    full = [l for l in priority_run.log.splitlines() if "[vllm-surgeon] applied set 'priority'" in l]
    assert len(full) == 3 and all("vllm.v1.request in place" in l for l in full), full


def test_priority_set_bounds_a_low_priority_wait_under_a_high_priority_stream(priority_run, warn_run):
    aged = priority_run.results["starvation"]
    plain = warn_run.results["starvation"]
    # Without aging (upstream vLLM) the low request runs only once the stream stops: every
    # later high-priority arrival overtakes it.
    assert not plain["low_finished_while_streaming"]
    assert plain["overtaken_by_later_highs"] == plain["highs_arrived_after_low"] > 0
    # With the set it is served while the stream goes on, and later arrivals wait behind it.
    assert aged["low_finished_while_streaming"], aged
    assert aged["later_highs_served_after_low"] > 0
    assert aged["low_wait_s"] < plain["low_wait_s"]


def test_plain_diff_from_surgeon_path_changes_enginecore_and_worker_behaviour(probe_run):
    assert probe_run.returncode == 0, probe_run.log[-3000:]
    for tokens in probe_run.results["generate"]["token_ids"]:
        assert tokens == [PROBE_TOKEN] * PROBE_LENGTH  # sampler (worker) and stop check (EngineCore)
    processes = probe_run.processes_applied("probe")
    assert "EngineCore" in processes and any(p.startswith("VllmWorker") for p in processes), processes


def test_probe_is_rewritten_at_import_by_the_bootstrap(probe_run):
    full = [l for l in probe_run.log.splitlines() if "[vllm-surgeon] applied set 'probe'" in l]
    assert len(full) == 3, full
    # The line says what happened in its process: with the bootstrap, a module is patched `at import`,
    # or not imported there yet (`pending import`; a later line says when it is). Never `in place`.
    for line in full:
        states = line.rsplit("[", 1)[1].rstrip("]").split(", ")
        assert sorted(s.rsplit(" ", 2)[0] for s in states) == ["vllm.v1.core.sched.utils", "vllm.v1.sample.sampler"], line
        assert all(s.endswith((" at import", " pending import")) for s in states), line

    def patched_at_import(module: str, process: str) -> bool:
        for line in probe_run.log.splitlines():
            if f"({process}" in line and "[vllm-surgeon]" in line and (
                f"{module} at import by the import hook" in line or ("applied set 'probe'" in line and f"{module} at import" in line)
            ):
                return True
        return False

    # Each module is patched where it runs: the stop check in the EngineCore, the sampler in the worker.
    assert patched_at_import("vllm.v1.core.sched.utils", "EngineCore"), full
    assert patched_at_import("vllm.v1.sample.sampler", "VllmWorker"), full


def test_probe_with_one_altered_anchor_line_stops_vllms_start(broken_probe_dir, tiny_model):
    env = surgeon_env(VLLM_SURGEON_HUNKS="probe", VLLM_SURGEON_PATH=str(broken_probe_dir))
    code = f"from vllm import LLM\nLLM(model={str(tiny_model)!r}, gpu_memory_utilization=0.1, max_model_len=256)\n"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode != 0
    err = out.stderr
    assert "vllm-surgeon refused hunk set 'probe'" in err and "anchor not found" in err
    assert f"hunk:    {broken_probe_dir / 'probe.patch'}:" in err and "target:  vllm.v1.core.sched.utils" in err
    assert "-        request.num_tokens > max_model_len" in err and "+        request.num_tokens >= max_model_len" in err
    assert "Nothing of these sets was applied" in err


def test_with_warn_the_refused_probe_is_logged_and_vllm_runs_unpatched(warn_run):
    assert warn_run.returncode == 0, warn_run.log[-3000:]
    assert "running without the refused sets" in warn_run.log and "refused hunk set 'probe'" in warn_run.log
    for tokens in warn_run.results["generate"]["token_ids"]:
        assert len(tokens) == 8 and tokens != [PROBE_TOKEN] * 8  # neither hunk applied: all or nothing
    assert warn_run.results["applied"]["applied"] == [] and not warn_run.applied_lines()


def test_with_warn_the_refusal_is_said_in_full_once_and_in_one_line_by_every_other_process(warn_run):
    log = warn_run.log
    assert log.count("vllm-surgeon refused hunk set 'probe'") == 1, log[-5000:]
    full = next(l for l in log.splitlines() if "VLLM_SURGEON_ON_FAILURE=warn, running without the refused sets ('probe')" in l)
    said_by = full.split("[vllm-surgeon] ", 1)[1].split(":", 1)[0]
    assert re.fullmatch(r"pid \d+ \(MainProcess\)", said_by), full
    brief = [l for l in log.splitlines() if "running without the refused sets ('probe'; VLLM_SURGEON_ON_FAILURE=warn)" in l]
    processes = {re.search(r"\] pid \d+ \(([^)]+)\)", l).group(1) for l in brief}
    assert "EngineCore" in processes and any(p.startswith("VllmWorker") for p in processes), brief
    assert all(l.endswith(f"the full refusal was logged by {said_by}") for l in brief)
    assert "set VLLM_SURGEON_ON_FAILURE=warn" not in log  # never advised when it is set
