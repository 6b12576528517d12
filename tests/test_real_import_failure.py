"""A set whose patched scheduler raises at import, with a good hunk on vllm.v1.request (issue 7 item 4).

Real vLLM modules in fresh interpreters, no engine: at import (the `.pth` bootstrap) and in place
(VLLM_SURGEON_BOOTSTRAP=0, vLLM's own plugin call), each with VLLM_SURGEON_ON_FAILURE fail and warn.
All four must agree: a clean refusal naming the set and the hunk line that raised, and nothing of
the set left running (`vllm.v1.request` restored, `applied()` empty); with warn, vLLM goes on.
"""

import concurrent.futures
import json

import pytest
from conftest import run_python, surgeon_env

pytestmark = pytest.mark.vllm

SET = '''\
description: a good hunk on vllm.v1.request, and a scheduler line that raises at import
@@ vllm.v1.request
+
+SURGEON_MARK = "request patched"

@@ vllm.v1.request:Request.__lt__
         """
-        if self.priority != other.priority:
+        if self.priority != other.priority:  # surgeon-mark
             return self.priority < other.priority

@@ vllm.v1.core.sched.scheduler
+
+x = not_defined
'''
RAISING_LINE = SET.splitlines().index("+x = not_defined") + 1

REPORT = """
import inspect, json, sys
import vllm.v1.request as request
import vllm_surgeon
sched = sys.modules.get("vllm.v1.core.sched.scheduler")
print("REPORT" + json.dumps({
    "error": error,
    "mark": hasattr(request, "SURGEON_MARK"),
    "lt_patched": "surgeon-mark" in inspect.getsource(request.Request.__lt__),
    "lt_line": request.Request.__lt__.__code__.co_firstlineno,
    "scheduler_ran": sched is not None and hasattr(sched, "Scheduler"),
    "scheduler_x": sched is not None and hasattr(sched, "x"),
    "applied": [a.name for a in vllm_surgeon.applied()],
}))
"""

AT_IMPORT = """
error = None
try:
    import vllm.v1.core.sched.scheduler
except Exception as exc:
    error = f"{type(exc).__name__}: {exc}"
""" + REPORT

IN_PLACE = """
import os
import vllm.v1.core.sched.scheduler  # imports vllm.v1.request too, as vLLM does before its plugins run
os.environ["VLLM_SURGEON_HUNKS"] = "halfway"
error = None
try:
    from vllm.plugins import load_general_plugins
    load_general_plugins()
except Exception as exc:
    error = f"{type(exc).__name__}: {exc}"
""" + REPORT


@pytest.fixture(scope="module")
def sets(tmp_path_factory):
    directory = tmp_path_factory.mktemp("halfway")
    (directory / "halfway.hunk").write_text(SET)
    return directory


@pytest.fixture(scope="module")
def scenarios(sets):
    """The four interpreters (at import / in place, fail / warn) run side by side: each imports torch."""
    def run(key):
        how, policy = key
        env = surgeon_env(VLLM_SURGEON_PATH=str(sets), VLLM_SURGEON_ON_FAILURE=policy)
        if how == "at import":
            env["VLLM_SURGEON_HUNKS"] = "halfway"
        else:
            env["VLLM_SURGEON_BOOTSTRAP"] = "0"
        return run_python(AT_IMPORT if how == "at import" else IN_PLACE, env)

    keys = [(how, policy) for how in ("at import", "in place") for policy in ("fail", "warn")]
    with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
        return dict(zip(keys, pool.map(run, keys), strict=True))


def run(scenarios, how: str, policy: str):
    out = scenarios[(how, policy)]
    line = next((l for l in out.stdout.splitlines() if l.startswith("REPORT")), None)
    assert line is not None, out.stdout[-2000:] + out.stderr[-4000:]
    return json.loads(line[len("REPORT"):]), out.stderr


@pytest.mark.parametrize("how", ["at import", "in place"])
def test_fail_mode_names_the_set_and_the_raising_line_and_leaves_nothing_applied(sets, scenarios, how):
    report, stderr = run(scenarios, how, "fail")
    error = report["error"]
    assert error and error.startswith("SurgeonError: vllm-surgeon refused hunk set 'halfway'"), (error, stderr[-3000:])
    assert "the patched code raised when it ran" in error
    assert f"hunk:    {sets / 'halfway.hunk'}:{RAISING_LINE}" in error
    assert "NameError: name 'not_defined' is not defined" in error and "`x = not_defined`" in error
    assert "target:  vllm.v1.core.sched.scheduler" in error
    assert not report["mark"] and not report["lt_patched"]  # the good hunk on vllm.v1.request is undone
    assert report["applied"] == []


@pytest.mark.parametrize("how", ["at import", "in place"])
def test_warn_mode_runs_vllm_without_the_set_in_any_module(scenarios, how):
    report, stderr = run(scenarios, how, "warn")
    assert report["error"] is None, report["error"]
    assert report["scheduler_ran"] and not report["scheduler_x"]  # the scheduler runs its own code
    assert not report["mark"] and not report["lt_patched"]  # and vllm.v1.request is restored
    assert report["applied"] == []
    assert "running without the refused sets" in stderr and f"halfway.hunk:{RAISING_LINE}" in stderr


QUEUE_SET = '''\
@@ vllm.v1.core.sched.request_queue:FCFSRequestQueue.__len__
         """Get number of requests in queue."""
-        return super().__len__()
+        return super().__len__() * 1000
'''


def test_internal_compile_cache_set_refused_in_place_falls_back_and_the_users_set_applies(tmp_path):
    """Issue 7 item 6: the blame lookup raised StopIteration for vllm-surgeon's own set, so the
    fallback (VLLM_DISABLE_COMPILE_CACHE=1) was never reached."""
    (tmp_path / "queue_len.hunk").write_text(QUEUE_SET)
    out = run_python("""
        import json, os
        import vllm.compilation.backends as backends, vllm.compilation.caching
        import vllm.v1.core.sched.request_queue as rq

        class Opaque:  # a wrapper that hides the function from in-place patching
            def __init__(self, f):
                self._f = f

            def __get__(self, obj, cls):
                return self._f.__get__(obj, cls)

        backends.VllmBackend.__call__ = Opaque(backends.VllmBackend.__call__)
        os.environ["VLLM_SURGEON_HUNKS"] = "queue_len"
        from vllm.plugins import load_general_plugins
        load_general_plugins()
        import vllm_surgeon
        q = rq.FCFSRequestQueue()
        q.append(1)
        print("REPORT" + json.dumps([os.environ.get("VLLM_DISABLE_COMPILE_CACHE"), len(q), [a.name for a in vllm_surgeon.applied()]]))
    """, surgeon_env(VLLM_SURGEON_PATH=str(tmp_path), VLLM_SURGEON_BOOTSTRAP="0"))
    line = next((l for l in out.stdout.splitlines() if l.startswith("REPORT")), None)
    assert line is not None, out.stderr[-3000:]
    assert json.loads(line[len("REPORT"):]) == ["1", 1000, ["queue_len"]]
    assert "compile-cache keying could not be taught" in out.stderr and "VllmBackend.__call__" in out.stderr


UNPROPERTY = '''\
@@ vllm.v1.request:Request.num_encoder_inputs
-    @property
+    # vllm-surgeon test: no longer a property
     def num_encoder_inputs(self) -> int:
'''

KIND = """
import json, os, sys
{before}
error = None
try:
    import vllm.v1.request as request
    {plugins}
except Exception as exc:
    error = f"{{type(exc).__name__}}: {{exc}}"
import vllm_surgeon
print("REPORT" + json.dumps({{"error": error, "kind": type(vars(sys.modules["vllm.v1.request"].Request)["num_encoder_inputs"]).__name__,
                              "applied": [a.modules for a in vllm_surgeon.applied()]}}))
"""


def test_a_removed_decorator_on_real_vllm_is_applied_at_import_and_refused_in_place_never_ignored(tmp_path):
    """Issue 7 item 5: in place the hunk changed nothing, yet applied() said "in place"."""
    (tmp_path / "unproperty.hunk").write_text(UNPROPERTY)
    env = surgeon_env(VLLM_SURGEON_PATH=str(tmp_path))
    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        at_import = pool.submit(run_python, KIND.format(before="", plugins="pass"), dict(env, VLLM_SURGEON_HUNKS="unproperty"))
        in_place = pool.submit(
            run_python,
            KIND.format(before="import vllm.v1.request\nos.environ['VLLM_SURGEON_HUNKS'] = 'unproperty'",
                        plugins="from vllm.plugins import load_general_plugins; load_general_plugins()"),
            dict(env, VLLM_SURGEON_BOOTSTRAP="0"),
        )
        at_import, in_place = at_import.result(), in_place.result()
    reports = []
    for out in (at_import, in_place):
        line = next((l for l in out.stdout.splitlines() if l.startswith("REPORT")), None)
        assert line is not None, out.stderr[-3000:]
        reports.append(json.loads(line[len("REPORT"):]))
    assert reports[0] == {"error": None, "kind": "function", "applied": [{"vllm.v1.request": "at import"}]}
    error = reports[1]["error"]
    assert error.startswith("SurgeonError: vllm-surgeon refused hunk set 'unproperty'") and reports[1]["applied"] == []
    assert "cannot patch the already-imported module in place" in error
    assert "the decorators of Request.num_encoder_inputs change" in error and reports[1]["kind"] == "property"
