"""The import hook and the plugin in fresh interpreters, on a small fake package (fast; real vLLM is in test_real_*)."""

import json

import pytest

PKG = '''
class Greeter:
    """Says hello."""

    def greet(self, name):
        text = "hello " + name
        return text

    def shout(self, name):
        return self.greet(name).upper()


def answer():
    return 41
'''

GOOD = '''
description: Friendlier greetings
@@ fakepkg.core:Greeter.greet
-        text = "hello " + name
+        text = "hi " + name
'''

BROKEN = '''
@@ fakepkg.core:Greeter.greet
-        text = "howdy " + name
+        text = "hi " + name
'''


@pytest.fixture
def pkg(fakepkg):
    fakepkg.module("fakepkg.core", PKG)
    (fakepkg.src / "fakepkg" / "data.txt").write_text("resource")
    fakepkg.hunk("good", GOOD)
    fakepkg.hunk("broken", BROKEN)
    return fakepkg


def test_unset_costs_nothing_no_hook_and_no_import(pkg):
    out = pkg.run("""
        import sys
        print(any('surgeon' in type(f).__name__.lower() for f in sys.meta_path), 'vllm_surgeon' in sys.modules)
    """)
    assert out.stdout.split() == ["False", "False"], out.stderr


def test_set_is_applied_at_import_and_reported_with_pid_and_process(pkg):
    out = pkg.run("""
        import json, os, fakepkg.core as core, vllm_surgeon
        print(json.dumps([core.Greeter().greet("bob"), os.getpid(), [vars(a) for a in vllm_surgeon.applied()]]))
    """, hunks="good")
    greeting, pid, applied = json.loads(out.stdout)
    assert greeting == "hi bob"
    (entry,) = applied
    assert entry["name"] == "good" and entry["modules"] == {"fakepkg.core": "at import"}
    assert entry["targets"] == ["fakepkg.core:Greeter.greet"] and entry["process"] == "MainProcess"
    assert f"applied set 'good' ({pkg.hunks / 'good.hunk'}) in pid {pid} (MainProcess)" in out.stderr
    assert out.stderr.count("[vllm-surgeon] applied") == 1


def test_refused_set_stops_the_import_with_the_whole_story(pkg):
    out = pkg.run("import fakepkg.core", hunks="good,broken")
    assert out.returncode != 0
    err = out.stderr
    assert "SurgeonError: vllm-surgeon refused hunk set 'broken'" in err
    assert f"hunk:    {pkg.hunks / 'broken.hunk'}:1" in err and "target:  fakepkg.core:Greeter.greet" in err
    assert "vLLM:    " in err and '-        text = "howdy " + name' in err and '+        text = "hello " + name' in err
    assert "VLLM_SURGEON_ON_FAILURE=warn" in err


def test_warn_runs_without_the_refused_set_and_keeps_the_good_one(pkg):
    out = pkg.run("import fakepkg.core as c; print(c.Greeter().greet('bob'))", hunks="broken,good", VLLM_SURGEON_ON_FAILURE="warn")
    assert out.returncode == 0 and out.stdout.strip() == "hi bob"
    assert "running without the refused sets" in out.stderr and "refused hunk set 'broken'" in out.stderr


def test_warn_with_only_the_refused_set_runs_unpatched(pkg):
    out = pkg.run("import fakepkg.core as c; print(c.Greeter().greet('bob'))", hunks="broken", VLLM_SURGEON_ON_FAILURE="warn")
    assert out.returncode == 0 and out.stdout.strip() == "hello bob"


def test_bad_on_failure_value_fails_closed(pkg):
    out = pkg.run("import fakepkg.core", hunks="good", VLLM_SURGEON_ON_FAILURE="sometimes")
    assert out.returncode != 0 and "VLLM_SURGEON_ON_FAILURE='sometimes' is not understood" in out.stderr


REGISTER = "import vllm_surgeon._plugin as p; p.register()"  # what vLLM does in every process


def test_unknown_name_lists_what_is_available_and_paths_are_not_names(pkg):
    out = pkg.run(REGISTER, hunks="nope")
    assert out.returncode != 0
    assert "unknown hunk set 'nope'. Available: broken, good, priority" in out.stderr
    out = pkg.run(REGISTER, hunks=str(pkg.hunks / "good.hunk"))
    assert "is not a hunk set name: sets are enabled by name, never by path" in out.stderr


def test_malformed_hunk_file_fails_closed_naming_file_and_line(pkg):
    pkg.hunk("typo", "description: x\n@@ fakepkg.core:Greeter.greet\n  a\n?b\n")
    out = pkg.run(REGISTER, hunks="typo")
    assert out.returncode != 0 and f"{pkg.hunks / 'typo.hunk'}:4: a hunk line must start with" in out.stderr


def test_two_enabled_sets_on_the_same_lines_conflict_naming_both(pkg):
    pkg.hunk("rival", GOOD.replace('"hi "', '"hey "'))
    out = pkg.run("import fakepkg.core", hunks="good,rival")
    assert out.returncode != 0 and "refused hunk set 'rival'" in out.stderr and "set 'good'" in out.stderr
    assert "conflicts with another set" in out.stderr and "refused hunk set 'good'" not in out.stderr


def test_patched_module_keeps_file_spec_loader_resources_and_pickling(pkg):
    out = pkg.run("""
        import importlib.resources, inspect, json, pickle
        import fakepkg.core as core
        g = pickle.loads(pickle.dumps(core.Greeter()))
        print(json.dumps([
            core.__file__, core.__spec__.origin, core.__spec__.name, type(core.__loader__).__name__,
            importlib.resources.files("fakepkg").joinpath("data.txt").read_text(), g.shout("x"),
            inspect.getsource(core.Greeter.greet).splitlines()[1].strip(),
            core.answer.__code__.co_firstlineno,
        ]))
    """, hunks="good")
    file, origin, name, loader, resource, shout, line, answer_line = json.loads(out.stdout)
    assert file == origin == str(pkg.src / "fakepkg" / "core.py") and name == "fakepkg.core"
    assert loader == "SurgeonLoader" and resource == "resource" and shout == "HI X"
    assert line == 'text = "hi " + name' and answer_line == 12


def test_plugin_patches_an_already_imported_module_in_place(pkg):
    out = pkg.run("""
        import json, os
        import fakepkg.core as core
        from fakepkg.core import Greeter
        greet = Greeter.greet
        os.environ["VLLM_SURGEON_HUNKS"] = "good"
        import vllm_surgeon, vllm_surgeon._plugin
        vllm_surgeon._plugin.register()
        print(json.dumps([greet(Greeter(), "a"), Greeter().shout("b"), [a.modules for a in vllm_surgeon.applied()]]))
    """, VLLM_SURGEON_PATH=str(pkg.hunks))
    assert json.loads(out.stdout) == ["hi a", "HI B", [{"fakepkg.core": "in place"}]], out.stderr


def test_bootstrap_can_be_turned_off_so_only_the_plugin_applies(pkg):
    out = pkg.run("""
        import sys, fakepkg.core as core
        print(core.Greeter().greet("a"), 'vllm_surgeon' in sys.modules)
    """, hunks="good", VLLM_SURGEON_BOOTSTRAP="0")
    assert out.stdout.split() == ["hello", "a", "False"]


def test_a_forked_child_logs_its_own_line_when_vllm_calls_the_plugin_there(pkg):
    out = pkg.run("""
        import multiprocessing, os
        import fakepkg.core as core
        import vllm_surgeon._plugin as plugin

        def child():
            plugin.register()  # vLLM calls its general plugins in every process it starts
            print("child", os.getpid(), core.Greeter().greet("x"), flush=True)

        if __name__ == "__main__":
            p = multiprocessing.get_context("fork").Process(target=child, name="ForkedWorker")
            p.start()
            p.join()
    """, hunks="good")
    _, pid, greeting = out.stdout.split(maxsplit=2)
    assert greeting.strip() == "hi x"
    assert f"in pid {pid} (ForkedWorker)" in out.stderr and out.stderr.count("[vllm-surgeon] applied") == 2


def test_target_found_through_another_finder_as_in_an_editable_install(pkg, tmp_path):
    """setuptools' editable installs map a package to its checkout with a sys.meta_path finder,
    not a sys.path entry: the hook asks the other finders, so it finds and patches the module."""
    checkout = tmp_path / "checkout"
    (pkg.src / "fakepkg").rename(checkout)  # now off sys.path, reachable only through the finder
    out = pkg.run(f"""
        import importlib.util, sys

        class EditableFinder:  # what setuptools writes into __editable___*_finder.py
            @classmethod
            def find_spec(cls, fullname, path=None, target=None):
                if fullname != "fakepkg":
                    return None
                return importlib.util.spec_from_file_location(
                    fullname, {str(checkout / "__init__.py")!r}, submodule_search_locations=[{str(checkout)!r}]
                )

        sys.meta_path.append(EditableFinder)  # as a .pth line of the editable install does, at start
        import vllm
        import fakepkg.core as core
        print(core.Greeter().greet("bob"), core.__file__)
    """, hunks="good", trigger=False)
    assert out.stdout.split() == ["hi", "bob", str(checkout / "core.py")], out.stderr


def test_reload_of_a_patched_module_is_patched_again(pkg):
    out = pkg.run("""
        import importlib, fakepkg.core as core
        importlib.reload(core)
        print(core.Greeter().greet("bob"))
    """, hunks="good")
    assert out.stdout.strip() == "hi bob", out.stderr
