"""The `.pth` bootstrap: nothing at interpreter start but a tiny finder; the sets load at `import vllm`.

Every interpreter in the environment runs the `.pth` line (pip, tools, Ray and multiprocessing
helpers): issue 7 items 9 and 10.
"""

import json
import subprocess
import sys

import pytest
from conftest import run_python, surgeon_env

GOOD = """
@@ fakepkg.core:answer
-    return 41
+    return 42
"""

MODULES = "import json, sys; print(json.dumps(sorted(m for m in sys.modules if m.startswith('vllm_surgeon'))))"


def test_a_named_set_costs_one_tiny_module_at_start_and_is_not_read(fakepkg):
    fakepkg.module("fakepkg.core", "def answer():\n    return 41\n")
    marker = fakepkg.root / "ran"
    fakepkg.hunk("loud", f"open({str(marker)!r}, 'w').close()\n", suffix=".py")
    out = fakepkg.run(MODULES, hunks="loud", trigger=False)
    assert json.loads(out.stdout) == ["vllm_surgeon", "vllm_surgeon._bootstrap"], out.stderr
    assert not marker.exists()  # a .py set is never executed before vLLM is imported
    out = fakepkg.run("import importlib.util; importlib.util.find_spec('vllm');" + MODULES, hunks="loud", trigger=False)
    assert json.loads(out.stdout) == ["vllm_surgeon", "vllm_surgeon._bootstrap"], out.stderr  # probing is free
    assert not marker.exists()


def test_commas_and_spaces_name_no_set_and_cost_nothing(fakepkg):
    out = fakepkg.run(MODULES + "; import vllm; print(sys.meta_path[0].__class__.__module__)", VLLM_SURGEON_HUNKS=" , ,")
    first, second = out.stdout.split("\n", 1)
    assert json.loads(first) == [] and "surgeon" not in second, out.stderr
    out = fakepkg.run("import vllm_surgeon._plugin as p; p.register(); import sys; print('vllm_surgeon.runtime.runtime' in sys.modules)",
                      VLLM_SURGEON_HUNKS=" , ")
    assert out.stdout.strip() == "False", out.stderr


def test_the_sets_load_and_apply_when_vllm_is_imported(fakepkg):
    fakepkg.module("fakepkg.core", "def answer():\n    return 41\n")
    fakepkg.hunk("good", GOOD)
    out = fakepkg.run("""
        import sys
        before = 'vllm_surgeon.runtime.runtime' in sys.modules
        import vllm
        after = 'vllm_surgeon.runtime.runtime' in sys.modules
        import fakepkg.core as core
        print(before, after, core.answer(), type(vllm.__loader__).__name__, type(vllm.__spec__.loader).__name__,
              any(type(f).__name__ == 'WaitForVllm' for f in sys.meta_path))
    """, hunks="good", trigger=False)
    # vllm keeps its real loader; the waiting finder is gone once it has done its job.
    assert out.stdout.split() == ["False", "True", "42", "SourceFileLoader", "SourceFileLoader", "False"], out.stderr


def test_sys_exit_in_a_py_set_takes_down_no_interpreter_and_stops_vllm_naming_the_file(fakepkg):
    path = fakepkg.hunk("quits", "import sys\n\nsys.exit(3)\n", suffix=".py")
    env = fakepkg.env("quits")
    assert run_python("print('alive')", env).stdout.strip() == "alive"
    pip = subprocess.run([sys.executable, "-m", "pip", "--version"], env=env, capture_output=True, text=True)
    assert pip.returncode == 0 and "pip" in pip.stdout, pip.stderr
    out = run_python("import vllm", env)
    assert out.returncode == 1 and "SurgeonError" in out.stderr
    assert f"vllm-surgeon cannot load hunk set 'quits': {path}:3: calls sys.exit(3) while loading" in out.stderr
    # With warn, vLLM runs without it, and the exit never happens.
    out = run_python("import vllm; print('served')", fakepkg.env("quits", VLLM_SURGEON_ON_FAILURE="warn"))
    assert out.returncode == 0 and out.stdout.strip() == "served" and "calls sys.exit(3)" in out.stderr


def test_keyboard_interrupt_and_other_base_exceptions_in_a_set_are_refusals_too(fakepkg):
    fakepkg.hunk("gen", "raise GeneratorExit('odd')\n", suffix=".py")
    out = fakepkg.run("pass", hunks="gen")
    assert out.returncode == 1 and "gen.py:1: GeneratorExit while loading: odd" in out.stderr


@pytest.mark.needs_vllm  # imports the installed vLLM
def test_real_vllm_import_with_an_exiting_set_is_a_clean_refusal(tmp_path):
    (tmp_path / "quits.py").write_text("import sys\nsys.exit('bye')\n")
    env = surgeon_env(VLLM_SURGEON_HUNKS="quits", VLLM_SURGEON_PATH=str(tmp_path))
    assert run_python("import json; print('ok')", env).stdout.strip() == "ok"
    out = run_python("import vllm", env)
    assert out.returncode == 1 and "vllm_surgeon.core.refusal.SurgeonError" in out.stderr
    assert f"{tmp_path / 'quits.py'}:2: calls sys.exit('bye') while loading" in out.stderr
