"""Real vLLM modules in fresh interpreters (no engine): rewrite at import, in-place patching, fail-closed import."""

import json
import textwrap

from conftest import run_python, surgeon_env

QUEUE = "vllm.v1.core.sched.request_queue"
# FCFSRequestQueue.__len__ is `return super().__len__()`: a real method using zero-argument super().
QUEUE_SET = f"""
description: test set on real vLLM: FCFS queue length times 1000, peek names the patch
@@ {QUEUE}:FCFSRequestQueue.__len__
         \"\"\"Get number of requests in queue.\"\"\"
-        return super().__len__()
+        return super().__len__() * 1000
@@ {QUEUE}:FCFSRequestQueue.peek_request
         if not self:
-            raise IndexError("peek from an empty queue")
+            raise IndexError("peek from an empty queue (patched by vllm-surgeon)")
"""


def write_set(tmp_path):
    (tmp_path / "queue_len.hunk").write_text(textwrap.dedent(QUEUE_SET).lstrip())
    return str(tmp_path)


def test_not_yet_imported_real_module_is_rewritten_at_import(tmp_path):
    out = run_python(f"""
        import json, vllm_surgeon
        from {QUEUE} import FCFSRequestQueue
        q = FCFSRequestQueue()
        q.append(1)
        print(json.dumps([len(q), [a.modules for a in vllm_surgeon.applied()]]))
    """, surgeon_env(VLLM_SURGEON_HUNKS="queue_len", VLLM_SURGEON_PATH=write_set(tmp_path)))
    assert json.loads(out.stdout) == [1000, [{QUEUE: "at import"}]], out.stderr


def test_already_imported_real_module_is_patched_in_place_with_super_and_held_references(tmp_path):
    out = run_python(f"""
        import inspect, json, os, traceback
        import vllm.v1.core.sched.scheduler  # imports {QUEUE}, as vLLM does before its plugins run
        from {QUEUE} import FCFSRequestQueue
        length = FCFSRequestQueue.__len__  # a reference held elsewhere before the patch
        q = FCFSRequestQueue()
        q.append(1)
        before = len(q)
        os.environ["VLLM_SURGEON_HUNKS"] = "queue_len"
        from vllm.plugins import load_general_plugins
        load_general_plugins()  # vLLM's own call: runs vllm_surgeon._plugin.register
        try:
            FCFSRequestQueue().peek_request()
        except IndexError:
            frame = traceback.extract_tb(__import__("sys").exc_info()[2])[-1]
        import vllm_surgeon
        print(json.dumps([before, len(q), length(q), "* 1000" in inspect.getsource(FCFSRequestQueue.__len__),
                          frame.line, [a.modules for a in vllm_surgeon.applied()]]))
    """, surgeon_env(VLLM_SURGEON_PATH=write_set(tmp_path)))
    before, after, held, source, line, modules = json.loads(out.stdout)
    assert (before, after, held, source) == (1, 1000, 1000, True), out.stderr
    assert line == 'raise IndexError("peek from an empty queue (patched by vllm-surgeon)")'
    assert modules == [{QUEUE: "in place"}]
    assert "applied set 'queue_len'" in out.stderr and "(MainProcess)" in out.stderr


def test_unknown_set_stops_import_vllm_listing_the_available_sets():
    out = run_python("import vllm", surgeon_env(VLLM_SURGEON_HUNKS="priorty"))
    assert out.returncode != 0
    assert "unknown hunk set 'priorty'. Available: priority" in out.stderr


LLAMA_SET = """
@@ vllm.model_executor.models.llama:LlamaMLP.forward
         x, _ = self.gate_up_proj(x)
+        x = x * 1.0  # vllm-surgeon: a traced change
"""

HASHES = """
import json, sys
from pathlib import Path
import vllm.model_executor.models.llama as llama
import vllm.v1.request as request
from vllm.compilation.caching import _compute_code_hash, _compute_code_hash_with_content
from torch._dynamo.package import _get_module_content
recorded = _get_module_content(llama)  # what torch stores with a compiled graph
print(json.dumps({
    "llama": _compute_code_hash({llama.__file__}),
    "request": _compute_code_hash({request.__file__}),
    "recorded_matches": _compute_code_hash_with_content({llama.__file__: recorded}) == _compute_code_hash({llama.__file__}),
    "recorded_is_disk": recorded == Path(llama.__file__).read_text(),
}))
"""


def test_compile_cache_is_keyed_on_the_patched_source_of_patched_files(tmp_path):
    """vLLM keys torch.compile caches on traced files read from disk; a patched model file must not
    reuse a graph compiled from unpatched code. Checked with vLLM's own hashing functions."""
    (tmp_path / "traced.hunk").write_text(textwrap.dedent(LLAMA_SET).lstrip())
    plain = json.loads(run_python(HASHES, surgeon_env()).stdout)
    out = run_python(HASHES, surgeon_env(VLLM_SURGEON_HUNKS="traced", VLLM_SURGEON_PATH=str(tmp_path)))
    patched = json.loads(out.stdout)
    assert patched["llama"] != plain["llama"], out.stderr  # a graph from unpatched code is never reused
    assert patched["request"] == plain["request"]  # files nobody patched key exactly as before
    # A graph compiled from the patched code records the patched text, and reloads only where it applies.
    assert patched["recorded_matches"] and not patched["recorded_is_disk"]
    assert plain["recorded_matches"] and plain["recorded_is_disk"]
