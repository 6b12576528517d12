"""What an operator reads: one vocabulary for the applied line and `applied()`, warn-mode messages that
name their process and are said in full once per run, diff hunks named by the function they changed."""

import json

import pytest

PKG = '''
class Greeter:
    def greet(self, name):
        text = "hello " + name
        return text


def helper():
    return 0
'''

OTHER = '''
def unused():
    return "untouched"
'''

GOOD = '''
@@ fakepkg.core:Greeter.greet
-        text = "hello " + name
+        text = "hi " + name
'''

BROKEN = '''
@@ fakepkg.core:Greeter.greet
-        text = "howdy " + name
+        text = "hi " + name
'''

# A `git diff` set: it names only the file; the engine finds the function.
DIFF = '''\
--- a/fakepkg/core.py
+++ b/fakepkg/core.py
@@ -3,3 +3,3 @@ class Greeter:
     def greet(self, name):
-        text = "hello " + name
+        text = "hey " + name
         return text
'''


@pytest.fixture
def pkg(fakepkg):
    fakepkg.module("fakepkg.core", PKG)
    fakepkg.module("fakepkg.other", OTHER)
    fakepkg.hunk("good", GOOD)
    fakepkg.hunk("broken", BROKEN)
    fakepkg.hunk("both", GOOD + "\n@@ fakepkg.other:unused\n-    return \"untouched\"\n+    return \"touched\"\n")
    fakepkg.hunk("viadiff", DIFF, suffix=".patch")
    return fakepkg


def _applied_line(stderr: str) -> str:
    (line,) = [l for l in stderr.splitlines() if "[vllm-surgeon] applied set" in l]
    return line


def test_a_module_not_imported_yet_is_pending_in_both_the_log_line_and_applied(pkg):
    """The line is logged by the plugin (as vLLM calls it) while one module is still unimported:
    both say `pending import`; after the import, applied() says `at import`."""
    out = pkg.run("""
        import json, vllm_surgeon, vllm_surgeon._plugin as plugin
        import fakepkg.core
        plugin.register()
        before = vllm_surgeon.applied()[0].modules
        import fakepkg.other
        print(json.dumps([before, vllm_surgeon.applied()[0].modules]))
    """, hunks="both")
    before, after = json.loads(out.stdout)
    assert before == {"fakepkg.core": "at import", "fakepkg.other": "pending import"}, out.stderr
    assert after == {"fakepkg.core": "at import", "fakepkg.other": "at import"}
    assert _applied_line(out.stderr).endswith("[fakepkg.core at import, fakepkg.other pending import]")
    # When the pending module is imported later, one more line says so.
    later = out.stderr.split("[fakepkg.core at import, fakepkg.other pending import]", 1)[1]
    assert "[vllm-surgeon] fakepkg.other at import by the import hook (set 'both') in pid " in later
    assert later.rstrip().endswith("(MainProcess)")


def test_with_no_plugin_the_first_patched_module_logs_the_line_and_a_later_one_its_own(pkg):
    """A process that never calls vLLM's plugins (a Ray actor importing one target) still says so."""
    out = pkg.run("""
        import json, vllm_surgeon
        import fakepkg.core
        first = dict(vllm_surgeon.applied()[0].modules)
        import fakepkg.other
        print(json.dumps([first, vllm_surgeon.applied()[0].modules]))
    """, hunks="both")
    first, then = json.loads(out.stdout)
    assert first == {"fakepkg.core": "at import", "fakepkg.other": "pending import"}
    assert then == {"fakepkg.core": "at import", "fakepkg.other": "at import"}
    assert _applied_line(out.stderr).endswith("[fakepkg.core at import, fakepkg.other pending import]")
    assert "fakepkg.other at import by the import hook (set 'both')" in out.stderr


def test_in_place_and_at_import_are_told_apart(pkg):
    out = pkg.run("""
        import json, os
        import fakepkg.core
        os.environ["VLLM_SURGEON_HUNKS"] = "both"
        import vllm_surgeon, vllm_surgeon._plugin as plugin
        plugin.register()
        import fakepkg.other
        print(json.dumps(vllm_surgeon.applied()[0].modules))
    """, VLLM_SURGEON_PATH=str(pkg.hunks))
    assert json.loads(out.stdout) == {"fakepkg.core": "in place", "fakepkg.other": "at import"}, out.stderr
    assert _applied_line(out.stderr).endswith("[fakepkg.core in place, fakepkg.other pending import]")


def test_a_diff_hunk_is_named_by_the_function_it_changes_in_the_line_and_applied(pkg):
    for attempt in ("planned", "from the code cache"):
        out = pkg.run("""
            import json, vllm_surgeon, fakepkg.core
            print(json.dumps([fakepkg.core.Greeter().greet("x"), list(vllm_surgeon.applied()[0].targets)]))
        """, hunks="viadiff", VLLM_SURGEON_CACHE_DIR=str(pkg.root / "cache"))
        greeting, targets = json.loads(out.stdout)
        assert greeting == "hey x" and targets == ["fakepkg.core:Greeter.greet"], (attempt, out.stderr)
        assert ": fakepkg.core:Greeter.greet [fakepkg.core at import]" in _applied_line(out.stderr), attempt


SPAWNS = """
    import multiprocessing, sys
    import fakepkg.core
    import vllm_surgeon._plugin as plugin

    def child():
        import fakepkg.core
        plugin.register()
        print("child", fakepkg.core.Greeter().greet("x"), flush=True)

    if __name__ == "__main__":
        plugin.register()
        for method, name in (("spawn", "SpawnedCore"), ("fork", "ForkedWorker")):
            p = multiprocessing.get_context(method).Process(target=child, name=name)
            p.start()
            p.join()
            assert p.exitcode == 0
"""


def test_warn_says_the_refusal_in_full_once_and_in_one_line_in_each_child_naming_its_process(pkg):
    script = pkg.root / "main.py"
    script.write_text(__import__("textwrap").dedent(SPAWNS))
    import subprocess
    import sys

    out = subprocess.run([sys.executable, str(script)], env=pkg.env("broken,good", VLLM_SURGEON_ON_FAILURE="warn"),
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split("\n")[:2] == ["child hi x", "child hi x"]  # the good set still applies everywhere
    warnings = [l for l in out.stderr.splitlines() if "WARNING" in l and "running without" in l]
    assert len(warnings) == 3, out.stderr
    full, spawned, forked = warnings
    parent = full.split("] ", 1)[1].split(":", 1)[0]
    assert parent.startswith("pid ") and parent.endswith("(MainProcess)")
    assert "VLLM_SURGEON_ON_FAILURE=warn, running without the refused sets ('broken')" in full
    assert out.stderr.count("vllm-surgeon refused hunk set 'broken'") == 1  # the whole refusal, once
    assert out.stderr.count('-        text = "howdy " + name') == 1
    for line, name in ((spawned, "SpawnedCore"), (forked, "ForkedWorker")):
        assert f"({name}): running without the refused sets ('broken'; VLLM_SURGEON_ON_FAILURE=warn)" in line
        assert "anchor not found" in line and line.endswith(f"the full refusal was logged by {parent}")
    # Never advise setting what is already set.
    assert "set VLLM_SURGEON_ON_FAILURE=warn" not in out.stderr
    assert "vLLM runs without them (VLLM_SURGEON_ON_FAILURE=warn)" in out.stderr


def test_without_warn_the_refusal_advises_it(pkg):
    out = pkg.run("import fakepkg.core", hunks="broken")
    assert out.returncode != 0 and "or set VLLM_SURGEON_ON_FAILURE=warn to run without them" in out.stderr


def test_a_set_that_cannot_be_loaded_is_also_said_once_per_run(pkg):
    pkg.hunk("typo", "@@ fakepkg.core:Greeter.greet\n?x\n")
    out = pkg.run("""
        import multiprocessing, fakepkg.core, vllm_surgeon._plugin as plugin
        plugin.register()
        p = multiprocessing.get_context("fork").Process(target=plugin.register, name="Child")
        p.start(); p.join()
    """, hunks="typo,good", VLLM_SURGEON_ON_FAILURE="warn")
    assert out.returncode == 0, out.stderr
    assert out.stderr.count("a hunk line must start with") == 1
    assert "(Child): running without these sets ('typo'; VLLM_SURGEON_ON_FAILURE=warn): they cannot be loaded" in out.stderr
