"""Patched code that raises when it runs, and blame (issue 7 items 4 and 6), on small fake packages.

The real-vLLM versions of the main case are in tests/test_real_import_failure.py.
"""

import json

import pytest

OUTER = '''
import fakepkg.inner


def greet():
    return "hello"
'''

INNER = '''
def value():
    return 1
'''

NESTED = '''
@@ fakepkg.outer:greet
-    return "hello"
+    return "patched hello"

@@ fakepkg.inner
+
+BROKEN = not_defined
'''

PROBE = """
import json, sys
error = None
try:
    import fakepkg.outer as outer
except Exception as exc:
    error = f"{type(exc).__name__}: {exc}"
import vllm_surgeon
outer = sys.modules.get("fakepkg.outer")
inner = sys.modules.get("fakepkg.inner")
print(json.dumps({
    "error": error,
    "greet": outer.greet() if outer else None,
    "inner_broken": hasattr(inner, "BROKEN") if inner else None,
    "applied": {a.name: a.modules for a in vllm_surgeon.applied()},
    "loaders": [type(m.__loader__).__name__ for m in (outer, inner) if m],
    "source": __import__("inspect").getsource(outer.greet).strip() if outer else None,
}))
"""


@pytest.fixture
def pkg(fakepkg):
    fakepkg.module("fakepkg.outer", OUTER)
    fakepkg.module("fakepkg.inner", INNER)
    fakepkg.hunk("nested", NESTED)
    return fakepkg


def report(pkg, hunks, **extra):
    out = pkg.run(PROBE, hunks=hunks, **extra)
    assert out.stdout.strip(), out.stderr
    return json.loads(out.stdout), out.stderr


def test_a_module_importing_the_failing_one_midway_is_brought_back_too(pkg):
    """outer is executing (patched) when its import of inner fails: with warn, outer ends unpatched."""
    result, stderr = report(pkg, "nested", VLLM_SURGEON_ON_FAILURE="warn")
    assert result == {"error": None, "greet": "hello", "inner_broken": False, "applied": {},
                      "loaders": ["SourceFileLoader", "SourceFileLoader"], "source": 'def greet():\n    return "hello"'}, stderr
    assert f"{pkg.hunks / 'nested.hunk'}:7" in stderr and "NameError: name 'not_defined' is not defined" in stderr


def test_fail_mode_stops_and_every_later_import_of_a_target_fails_alike(pkg):
    out = pkg.run("""
        errors = []
        for attempt in range(2):
            try:
                import fakepkg.outer
            except Exception as exc:
                errors.append(type(exc).__name__)
        import sys, vllm_surgeon
        print(errors, "fakepkg.outer" in sys.modules, vllm_surgeon.applied())
    """, hunks="nested")
    assert out.stdout.strip() == "['SurgeonError', 'SurgeonError'] False []", out.stderr


def test_only_the_set_whose_line_raised_is_withdrawn_from_a_shared_module(pkg):
    pkg.hunk("greeting", '@@ fakepkg.inner:value\n-    return 1\n+    return 2\n')
    pkg.hunk("breaks", "@@ fakepkg.inner\n+\n+BROKEN = not_defined\n")
    out = pkg.run("""
        import json, fakepkg.inner as inner, vllm_surgeon
        print(json.dumps([inner.value(), hasattr(inner, "BROKEN"), [a.name for a in vllm_surgeon.applied()]]))
    """, hunks="greeting,breaks", VLLM_SURGEON_ON_FAILURE="warn")
    assert json.loads(out.stdout) == [2, False, ["greeting"]], out.stderr
    assert "refused hunk set 'breaks'" in out.stderr and "refused hunk set 'greeting'" not in out.stderr


def test_blame_names_the_set_whose_line_raised_not_the_last_set_on_the_module(pkg):
    pkg.hunk("first", "@@ fakepkg.inner:value\n-    return 1\n+    return 1 + undefined_name\n@@ fakepkg.inner\n+\n+V = value()\n")
    pkg.hunk("second", "@@ fakepkg.inner\n+\n+W = 3\n")
    out = pkg.run("import fakepkg.inner", hunks="first,second")
    assert "refused hunk set 'first'" in out.stderr and "refused hunk set 'second'" not in out.stderr, out.stderr
    assert f"hunk:    {pkg.hunks / 'first.hunk'}:3" in out.stderr  # the line that raised, inside value()
    assert "`return 1 + undefined_name`" in out.stderr


def test_an_error_the_module_raises_on_its_own_lines_goes_on_unchanged(fakepkg):
    """An optional dependency missing is the module's own business: same exception as without the set."""
    fakepkg.module("fakepkg.optional", "def f():\n    return 1\n\n\nimport a_dependency_that_is_not_installed\n")
    fakepkg.hunk("opt", "@@ fakepkg.optional:f\n-    return 1\n+    return 2\n")
    out = fakepkg.run("""
        try:
            import fakepkg.optional
        except ImportError as exc:
            print("ImportError", exc.name)
    """, hunks="opt")
    assert out.stdout.strip() == "ImportError a_dependency_that_is_not_installed", out.stderr
    assert "SurgeonError" not in out.stderr


LIVE = '''
class Base:
    def who(self):
        return "base"


class Child(Base):
    def who(self):
        return "child"

    def other(self):
        return 1
'''


def test_in_place_blame_names_the_set_whose_change_cannot_be_made_live(fakepkg):
    """Issue 7 item 6: the refusal blamed the module's last set (`patched.sets[-1]`)."""
    fakepkg.module("fakepkg.live", LIVE)
    # `super()` is new in Child.who: a live function cannot gain the __class__ cell it needs.
    fakepkg.hunk("supers", '@@ fakepkg.live:Child.who\n-        return "child"\n+        return "child/" + super().who()\n')
    fakepkg.hunk("later", "@@ fakepkg.live:Child.other\n-        return 1\n+        return 2\n")
    out = fakepkg.run("""
        import os
        import fakepkg.live as live
        os.environ["VLLM_SURGEON_HUNKS"] = "supers,later"
        import vllm_surgeon._plugin as plugin
        plugin.register()
    """, VLLM_SURGEON_PATH=str(fakepkg.hunks))
    assert "refused hunk set 'supers'" in out.stderr and "refused hunk set 'later'" not in out.stderr, out.stderr
    assert "cannot patch the already-imported module in place" in out.stderr
    assert f"hunk:    {fakepkg.hunks / 'supers.hunk'}:3" in out.stderr
    out = fakepkg.run("""
        import json, os
        import fakepkg.live as live
        os.environ["VLLM_SURGEON_HUNKS"] = "supers,later"
        import vllm_surgeon, vllm_surgeon._plugin as plugin
        plugin.register()
        print(json.dumps([live.Child().who(), live.Child().other(), [a.name for a in vllm_surgeon.applied()]]))
    """, VLLM_SURGEON_PATH=str(fakepkg.hunks), VLLM_SURGEON_ON_FAILURE="warn")
    assert json.loads(out.stdout) == ["child", 2, ["later"]], out.stderr
