"""The pytest plugin as a set author uses it: test files written here are run by a real pytest (pytester).

Small fake packages keep these fast; tests/test_priority_set_in_vllms_scheduler.py and
tests/test_real_processes.py use the plugin on the real vLLM.
"""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

pytest_plugins = ["pytester"]

SHOP = '''
class Cart:
    def total(self, prices):
        subtotal = sum(prices)
        return subtotal


def discount(total):
    return total


class Base:
    def hello(self):
        return "base"


class Child(Base):
    def hello(self):
        return "child"
'''

TAX_SET = '''
description: a set a test writes for itself
@@ shop.cart:Cart.total
         subtotal = sum(prices)
-        return subtotal
+        return round(subtotal * 1.2, 2)  # tax added by the set

@@ shop.cart:discount
-    return total
+    return total - 1
'''


@pytest.fixture
def project(pytester):
    """A package `shop` on sys.path for the inner pytest, and a set directory `sets/` with tax.hunk."""
    (pytester.path / "src" / "shop").mkdir(parents=True)
    (pytester.path / "src" / "shop" / "__init__.py").write_text("")
    (pytester.path / "src" / "shop" / "cart.py").write_text(SHOP.lstrip())
    (pytester.path / "sets").mkdir()
    (pytester.path / "sets" / "tax.hunk").write_text(TAX_SET.lstrip())
    pytester.makeini("[pytest]\npythonpath = src\n")
    return pytester


def run(pytester, *args):
    """A real pytest in a fresh interpreter (the plugin loads from its entry point, as for a user)."""
    env_before = {k: os.environ.pop(k) for k in list(os.environ) if k.startswith("VLLM_SURGEON_") and k != "VLLM_SURGEON_CACHE_DIR"}
    try:
        return pytester.runpytest_subprocess("-p", "no:cacheprovider", *args)
    finally:
        os.environ.update(env_before)


def test_fixture_patches_a_set_file_for_one_test_and_undoes_it_for_the_next(project):
    project.makepyfile(test_tax='''
        import inspect, shop.cart
        from shop.cart import discount  # a reference held from before the patch

        def test_patched(surgeon, pytestconfig):
            modules = surgeon.apply(pytestconfig.rootpath / "sets" / "tax.hunk")
            assert modules["shop.cart"] is shop.cart and modules.how == {"shop.cart": "in place"}
            assert shop.cart.Cart().total([10, 20]) == 36.0
            assert discount(5) == 4
            assert "tax added by the set" in inspect.getsource(shop.cart.Cart.total)

        def test_unpatched_again():
            assert shop.cart.Cart().total([10, 20]) == 30
            assert discount(5) == 5 and not hasattr(shop.cart, "round")
            assert "tax added" not in inspect.getsource(shop.cart.Cart.total)
    ''')
    result = run(project)
    result.assert_outcomes(passed=2)


def test_fixture_finds_a_set_by_name_on_vllm_surgeon_path(project):
    project.makepyfile(test_by_name='''
        def test_by_name(surgeon, monkeypatch, pytestconfig):
            monkeypatch.setenv("VLLM_SURGEON_PATH", str(pytestconfig.rootpath / "sets"))
            modules = surgeon.apply("tax")
            assert modules["shop.cart"].Cart().total([1]) == 1.2
            assert modules.sets == ("tax",)
    ''')
    run(project).assert_outcomes(passed=1)


def test_a_refused_set_fails_the_test_at_apply_with_the_refusal_and_changes_nothing(project):
    (project.path / "sets" / "stale.hunk").write_text(textwrap.dedent('''
        @@ shop.cart:discount
        -    return total
        +    return 0
        @@ shop.cart:Cart.total
        -        return subtotal * 2
        +        return 0
    ''').lstrip())
    project.makepyfile(test_stale='''
        import shop.cart

        def test_stale(surgeon, pytestconfig):
            surgeon.apply(pytestconfig.rootpath / "sets" / "stale.hunk")

        def test_still_unpatched():
            assert shop.cart.discount(5) == 5
    ''')
    result = run(project)
    result.assert_outcomes(failed=1, passed=1)
    text = result.stdout.str()
    assert "SurgeonError: vllm-surgeon refused hunk set 'stale'" in text and "anchor not found" in text
    assert f"hunk:    {project.path / 'sets' / 'stale.hunk'}:4" in text
    assert "-        return subtotal * 2" in text and "+        return subtotal" in text
    assert "_inprocess.py" not in text  # the traceback stops at the test's own line


def test_a_change_that_cannot_be_made_live_is_refused_pointing_to_the_subprocess_marker(project):
    (project.path / "sets" / "superx.hunk").write_text(textwrap.dedent('''
        @@ shop.cart:Child.hello
        -        return "child"
        +        return "child/" + super().hello()
    ''').lstrip())
    project.makepyfile(test_live='''
        import shop.cart

        def test_live(surgeon, pytestconfig):
            surgeon.apply(pytestconfig.rootpath / "sets" / "superx.hunk")

        def test_unchanged():
            assert shop.cart.Child().hello() == "child"
    ''')
    result = run(project)
    result.assert_outcomes(failed=1, passed=1)
    text = result.stdout.str()
    assert "cannot patch the already-imported module in place" in text and "super()" in text
    assert "@pytest.mark.surgeon('superx')" in text


def test_unknown_set_name_and_missing_file_are_clear_errors(project):
    project.makepyfile(test_unknown='''
        import pytest
        from vllm_surgeon import UnknownSetError

        def test_unknown(surgeon):
            with pytest.raises(UnknownSetError, match="unknown hunk set 'nosuch'. Available: .*priority"):
                surgeon.apply("nosuch")

        def test_missing_file(surgeon, tmp_path):
            with pytest.raises(UnknownSetError, match="no such hunk set file"):
                surgeon.apply(tmp_path / "gone.hunk")

        def test_twice(surgeon, pytestconfig):
            surgeon.apply(pytestconfig.rootpath / "sets" / "tax.hunk")
            with pytest.raises(RuntimeError, match="already called"):
                surgeon.apply("priority")
    ''')
    run(project).assert_outcomes(passed=3)


def test_after_undo_modules_are_refused_and_apply_works_again(project):
    """Issue 13: `apply` after `undo()` said "already called", and `surgeon.modules` (and the mapping `apply`
    returned) still handed out the modules, unpatched."""
    project.makepyfile(test_undo='''
        import pytest, shop.cart

        def test_undo(surgeon, pytestconfig):
            tax = pytestconfig.rootpath / "sets" / "tax.hunk"
            modules = surgeon.apply(tax, tax)  # the same set twice is one set, as VLLM_SURGEON_HUNKS=tax,tax
            assert modules.sets == ("tax",) and shop.cart.discount(5) == 4
            surgeon.undo()
            assert shop.cart.discount(5) == 5
            with pytest.raises(RuntimeError, match=r"were undone \\(surgeon.undo\\(\\)\\): nothing is patched"):
                surgeon.modules
            with pytest.raises(RuntimeError, match="tax were undone: these modules are no longer patched"):
                modules["shop.cart"]
            again = surgeon.apply(tax)
            assert again["shop.cart"].discount(5) == 4 and surgeon.modules is again
    ''')
    run(project).assert_outcomes(passed=1)


def test_against_a_spec_builds_fresh_modules_and_leaves_this_process_alone(project):
    tree = project.path / "checkout" / "vllm" / "surgeon_fake"
    tree.mkdir(parents=True)
    (tree / "core.py").write_text("def speed():\n    value = 1\n    return value\n")
    (project.path / "sets" / "faster.hunk").write_text(
        "@@ vllm.surgeon_fake.core:speed\n     value = 1\n-    return value\n+    return value * 10\n"
    )
    project.makepyfile(test_spec='''
        import sys

        def test_spec(surgeon, pytestconfig):
            root = pytestconfig.rootpath
            modules = surgeon.apply(root / "sets" / "faster.hunk", against=str(root / "checkout"))
            core = modules["vllm.surgeon_fake.core"]
            assert core.speed() == 10 and core.__file__ == str(root / "checkout" / "vllm" / "surgeon_fake" / "core.py")
            assert "vllm.surgeon_fake.core" not in sys.modules
            assert modules.how == {"vllm.surgeon_fake.core": "built from " + str(root / "checkout")}
    ''')
    run(project).assert_outcomes(passed=1)


MARKED = '''
import os, json, pytest, shop.cart

@pytest.mark.surgeon("tax", env={{"VLLM_SURGEON_PATH": {sets!r}}})
def test_in_a_fresh_interpreter():
    import vllm_surgeon
    assert shop.cart.Cart().total([10]) == 12.0
    (applied,) = vllm_surgeon.applied()
    assert applied.name == "tax" and applied.modules == {{"shop.cart": "at import"}}
    with open({pidfile!r}, "w") as f:
        json.dump([os.getpid(), os.environ["VLLM_SURGEON_HUNKS"]], f)

@pytest.mark.surgeon(sets=["tax"], env={{"VLLM_SURGEON_PATH": {sets!r}}})
def test_failing_inside():
    assert shop.cart.Cart().total([10]) == 11, "expected from the child"

@pytest.mark.surgeon("tax", env={{"VLLM_SURGEON_PATH": {sets!r}}})
def test_skipped_inside():
    pytest.skip("skipped in the child")

@pytest.mark.surgeon("stale", env={{"VLLM_SURGEON_PATH": {sets!r}}})
def test_refused_set():
    pass

def test_this_process_is_not_patched():
    assert shop.cart.Cart().total([10]) == 10
'''


def test_marker_runs_the_test_in_a_fresh_interpreter_with_the_sets_enabled(project):
    (project.path / "sets" / "stale.hunk").write_text("@@ shop.cart:discount\n-    return total * 3\n+    return 0\n")
    pidfile = project.path / "child.json"
    project.makepyfile(test_marked=MARKED.format(sets=str(project.path / "sets"), pidfile=str(pidfile)))
    result = project.runpytest_inprocess("-p", "no:cacheprovider", "-rA")  # this process is the parent
    result.assert_outcomes(passed=2, failed=2, skipped=1)
    child_pid, hunks = json.loads(pidfile.read_text())
    assert child_pid != os.getpid() and hunks == "tax"
    text = result.stdout.str()
    # The child's own failure, with its assertion message and how it was run.
    assert "expected from the child" in text and "assert 12.0 == 11" in text
    assert "ran in a fresh interpreter with VLLM_SURGEON_HUNKS=tax VLLM_SURGEON_PATH=" in text
    assert "SKIPPED" in text and "skipped in the child" in text
    # A refused set fails its test, with the refusal (here at collection: the file imports shop.cart at its top).
    assert "vllm-surgeon refused hunk set 'stale'" in text and "anchor not found" in text
    assert "PASSED test_marked.py::test_this_process_is_not_patched" in text


def test_marker_reports_a_child_that_cannot_collect_or_times_out(project):
    project.makepyfile(test_broken='''
        import os, time, pytest

        if os.environ.get("VLLM_SURGEON_PYTEST_CHILD"):
            raise ImportError("this module breaks in the child")

        @pytest.mark.surgeon("tax")
        def test_cannot_collect():
            pass
    ''')
    project.makepyfile(test_slow='''
        import time, pytest

        @pytest.mark.surgeon("tax", env={"VLLM_SURGEON_PATH": "sets"}, timeout=3)
        def test_hangs():
            time.sleep(60)
    ''')
    result = run(project)
    result.assert_outcomes(failed=2)
    text = result.stdout.str()
    assert "could not be collected in the fresh interpreter" in text and "this module breaks in the child" in text
    assert "did not finish within timeout=3 s; it was killed" in text


DYING = '''
import ctypes, os, signal, pytest

@pytest.mark.surgeon("tax", env={"VLLM_SURGEON_PATH": "sets"})
def test_exits():
    print("about to leave")
    os._exit(3)

@pytest.mark.surgeon("tax", env={"VLLM_SURGEON_PATH": "sets"})
def test_segfaults():
    ctypes.string_at(0)

@pytest.mark.surgeon("tax", env={"VLLM_SURGEON_PATH": "sets"})
def test_killed():
    os.kill(os.getpid(), signal.SIGKILL)

@pytest.mark.surgeon("tax", env={"VLLM_SURGEON_PATH": "sets"})
def test_dies_at_exit():
    import atexit
    atexit.register(os._exit, 7)

@pytest.mark.surgeon("tax", env={"VLLM_SURGEON_PATH": "sets"})
def test_fine():
    pass

def test_plain():
    pass
'''


def test_a_marker_test_whose_interpreter_dies_fails_saying_how(project):
    """Issue 13: a child that died (os._exit, a segfault, SIGKILL) vanished: "no tests ran", exit 0."""
    project.makepyfile(test_dying=DYING)
    result = run(project, "-rf")
    result.assert_outcomes(passed=2, failed=4)
    text = result.stdout.str()
    assert "the fresh interpreter died after the test's setup report (exit code 3): the test did not finish" in text
    assert "killed by signal 11 (SIGSEGV)" in text and "Fatal Python error: Segmentation fault" in text
    assert "killed by signal 9 (SIGKILL)" in text
    assert "the fresh interpreter ended with exit code 7 after the test's reports: it did not exit cleanly" in text
    assert "--- its output (last 60 lines) ---" in text
    # Alone, it is a failed run, not "no tests ran".
    alone = run(project, "test_dying.py::test_exits")
    alone.assert_outcomes(failed=1)
    assert alone.ret == pytest.ExitCode.TESTS_FAILED


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM])
def test_ctrl_c_on_pytest_stops_the_marker_tests_child_and_what_it_started(project, tmp_path, stop):
    """Issue 13: the child runs in a session of its own, so Ctrl-C left it running until its timeout (and a
    SIGTERM, as CI sends to cancel a job, ended pytest at once, leaving it too)."""
    pids = tmp_path / "pids"
    project.makepyfile(test_long=f'''
        import os, subprocess, sys, time, pytest

        @pytest.mark.surgeon("tax", env={{"VLLM_SURGEON_PATH": "sets"}}, timeout=600)
        def test_long():
            helper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
            with open({str(pids)!r}, "w") as f:
                f.write(f"{{os.getpid()}} {{helper.pid}}")
            time.sleep(600)
    ''')
    env = {k: v for k, v in os.environ.items() if not k.startswith("VLLM_SURGEON_") or k == "VLLM_SURGEON_CACHE_DIR"}
    outer = subprocess.Popen([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q"], cwd=project.path, env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 120
        while not (pids.exists() and len(pids.read_text().split()) == 2) and time.monotonic() < deadline:
            assert outer.poll() is None, outer.stdout.read()
            time.sleep(0.2)
        child, helper = map(int, pids.read_text().split())
        outer.send_signal(stop)  # Ctrl-C: SIGINT to the terminal's foreground group, pytest's, not the child's session
        output, _ = outer.communicate(timeout=60)
    finally:
        if outer.poll() is None:
            outer.kill()
    assert "KeyboardInterrupt" in output or "_Stopped: signal SIGTERM" in output, output
    deadline = time.monotonic() + 30
    while any(_alive(pid) for pid in (child, helper)) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _alive(child) and not _alive(helper), "the marker test's child (or what it started) outlived pytest"


def _alive(pid: int) -> bool:
    """Whether `pid` runs (a zombie waiting for its reaper has stopped running)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_marker_in_process_applies_through_the_fixture(project):
    project.makepyfile(test_inproc='''
        import os, pytest, shop.cart

        @pytest.mark.surgeon("tax", subprocess=False, env={"VLLM_SURGEON_PATH": "sets"})
        def test_inproc(surgeon):
            assert shop.cart.Cart().total([10]) == 12.0 and surgeon.modules.sets == ("tax",)
            assert "VLLM_SURGEON_PYTEST_CHILD" not in os.environ

        @pytest.mark.surgeon("tax", subprocess=False, env={"VLLM_SURGEON_PATH": "sets"})
        def test_without_asking_for_the_fixture():
            assert shop.cart.discount(5) == 4

        def test_after():
            assert shop.cart.discount(5) == 5
    ''')
    run(project).assert_outcomes(passed=3)


def test_marker_arguments_are_checked(project):
    project.makepyfile(test_args='''
        import pytest

        @pytest.mark.surgeon(subprocess=True)
        def test_no_sets():
            pass
    ''')
    result = run(project)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "names no set: write e.g. @pytest.mark.surgeon('priority')" in result.stderr.str()
    for bad, message in (("'tax', timeout=0", "timeout is a number of seconds > 0, not 0"),
                         ("3", "sets are names (str, or a list of str), not 3"),
                         ("'tax', envs={}", "unknown argument(s) envs")):
        project.makepyfile(test_args=f"import pytest\n\n@pytest.mark.surgeon({bad})\ndef test_bad():\n    pass\n")
        result = run(project)
        assert result.ret == pytest.ExitCode.USAGE_ERROR and message in result.stderr.str(), result.stderr.str()


def test_strict_fails_the_session_before_any_test_when_a_marker_set_is_refused(project):
    (project.path / "sets" / "stale.hunk").write_text("@@ shop.cart:discount\n-    return total * 3\n+    return 0\n")
    project.makepyfile(test_strict='''
        import pytest

        def test_first():
            open("ran", "w").write("yes")

        @pytest.mark.surgeon("stale", env={"VLLM_SURGEON_PATH": "sets"})
        def test_marked():
            pass
    ''')
    result = run(project, "--surgeon-strict")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    err = result.stderr.str()
    assert "--surgeon-strict: a set does not apply to the installed vLLM" in err and "@pytest.mark.surgeon stale" in err
    assert "vllm-surgeon refused hunk set 'stale'" in err and "anchor not found" in err
    assert not (project.path / "ran").exists()
    # Without --surgeon-strict only the marked test fails (at setup); the ini option turns it on for a project.
    result = run(project)
    result.assert_outcomes(passed=1, errors=1)
    assert "vllm-surgeon refused hunk set 'stale'" in result.stdout.str()
    project.makeini("[pytest]\npythonpath = src\nsurgeon_strict = true\n")
    assert run(project).ret == pytest.ExitCode.USAGE_ERROR


def test_strict_checks_the_sets_enabled_in_the_environment(project, monkeypatch):
    project.makepyfile(test_plain="def test_plain():\n    pass\n")
    monkeypatch.setenv("VLLM_SURGEON_PATH", str(project.path / "sets"))
    (project.path / "sets" / "stale.hunk").write_text("@@ shop.cart:discount\n-    return total * 3\n+    return 0\n")
    result = project.runpytest_subprocess("-p", "no:cacheprovider", "--surgeon-strict")
    assert result.ret == 0  # nothing enabled: nothing to check
    monkeypatch.setenv("VLLM_SURGEON_HUNKS", "stale")
    monkeypatch.setenv("VLLM_SURGEON_BOOTSTRAP", "0")  # the .pth would otherwise refuse at `import vllm`, not here
    result = project.runpytest_subprocess("-p", "no:cacheprovider", "--surgeon-strict")
    assert result.ret == pytest.ExitCode.USAGE_ERROR and "VLLM_SURGEON_HUNKS stale" in result.stderr.str()


def test_surgeon_sets_option_enables_sets_for_the_session_and_fails_at_start_on_a_refusal(project, monkeypatch):
    monkeypatch.setenv("VLLM_SURGEON_PATH", str(project.path / "sets"))
    project.makepyfile(test_session='''
        import os, subprocess, sys, shop.cart

        def test_patched_here_and_in_subprocesses():
            assert shop.cart.Cart().total([10]) == 12.0
            # A child starts vllm-surgeon when it imports vllm (the .pth waits for it): a stub here.
            out = subprocess.run([sys.executable, "-c", "import vllm, shop.cart; print(shop.cart.discount(5))"],
                                 capture_output=True, text=True, env=dict(os.environ, PYTHONPATH="stub:src"))
            assert out.stdout.strip() == "4", out.stderr
    ''')
    (project.path / "stub" / "vllm").mkdir(parents=True)
    (project.path / "stub" / "vllm" / "__init__.py").write_text("")
    result = project.runpytest_subprocess("-p", "no:cacheprovider", "--surgeon-sets=tax")
    result.assert_outcomes(passed=1)
    (project.path / "sets" / "stale.hunk").write_text("@@ shop.cart:discount\n-    return total * 3\n+    return 0\n")
    result = project.runpytest_subprocess("-p", "no:cacheprovider", "--surgeon-sets=stale")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "--surgeon-sets=stale: vllm-surgeon refused hunk set 'stale'" in result.stderr.str()


def test_plugin_costs_nothing_when_unused(pytester):
    pytester.makepyfile(test_quiet='''
        import sys

        def test_nothing_imported():
            loaded = [m for m in sys.modules if m == "vllm" or m.startswith(("vllm.", "vllm_surgeon._"))]
            assert loaded == [], loaded
            assert "vllm_surgeon.pytest_plugin" in sys.modules  # loaded from its entry point
    ''')
    run(pytester).assert_outcomes(passed=1)
    assert "fixtures defined from vllm_surgeon.pytest_plugin" in run(pytester, "--fixtures").stdout.str()
    assert "vllm_surgeon" not in run(pytester, "-p", "no:vllm_surgeon", "--fixtures").stdout.str()  # how to turn it off
