"""tools/dev.py test: ruff and mypy run before pytest, and either failing fails the run, naming it."""

import subprocess
import sys

import pytest
from conftest import REPO

sys.path.insert(0, str(REPO / "tools"))
import dev  # noqa: E402 - tools/ is no package: put on sys.path above


def test_lint_names_each_check_that_failed(monkeypatch):
    monkeypatch.setattr(dev, "PYTHON", sys.executable)
    monkeypatch.setattr(dev, "LINTS", [("clean", ["-c", "pass"]), ("dirty", ["-c", "raise SystemExit(1)"])])
    assert dev.lint() == ["dirty"]


def test_a_failed_check_fails_the_run_before_pytest(monkeypatch, capsys):
    ran = []
    monkeypatch.setattr(dev, "setup", lambda: None)
    monkeypatch.setattr(dev, "lint", lambda: ["mypy"])
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: ran.append(a))
    assert dev.test(["-q"]) == 1
    assert ran == [] and "mypy failed" in capsys.readouterr().err


def test_the_checks_are_the_configured_ruff_and_mypy_and_pinned():
    assert [name for name, _ in dev.LINTS] == ["ruff", "mypy"]
    assert any(t.startswith("ruff==") for t in dev.TOOLS) and any(t.startswith("mypy==") for t in dev.TOOLS)
    config = (REPO / "pyproject.toml").read_text()
    assert "[tool.ruff]" in config and "[tool.mypy]" in config


def test_every_claimed_python_runs_the_tests_that_need_no_vllm_and_a_failure_fails_the_run(monkeypatch, capsys):
    calls = []
    monkeypatch.setattr(dev, "setup", lambda: None)
    monkeypatch.setattr(dev, "lint", lambda: [])
    monkeypatch.setattr(dev, "find_python", lambda v: None if v == "3.13" else f"/py{v}")
    monkeypatch.setattr(dev, "setup_other", lambda v, p: f"/venv-{v}/python")

    def run(argv, **kwargs):
        calls.append(argv)
        return subprocess.CompletedProcess(argv, 1 if argv[0] == "/venv-3.12/python" else 0)

    monkeypatch.setattr(subprocess, "run", run)
    assert dev.test([]) == 1
    others = [c for c in calls if c[0].startswith("/venv-")]
    assert [c[0] for c in others] == ["/venv-3.10/python", "/venv-3.12/python"]
    assert all(c[c.index("-m", 2) + 1] == "not needs_vllm" for c in others)
    err = capsys.readouterr().err
    assert "no Python 3.13 on this machine" in err and "failed on Python 3.12" in err


def test_the_other_pythons_are_every_version_pyproject_claims_but_the_main_one():
    import re

    floor = re.search(r'requires-python = ">=3\.(\d+)"', (REPO / "pyproject.toml").read_text())
    assert floor is not None
    claimed = {f"3.{minor}" for minor in range(int(floor.group(1)), 14)}
    assert set(dev.OTHER_PYTHONS) | {"3.11"} == claimed


def test_setup_stops_with_the_free_space_named_when_the_disk_is_too_full(monkeypatch, tmp_path):
    import collections

    usage = collections.namedtuple("usage", "total used free")
    monkeypatch.setattr("shutil.disk_usage", lambda where: usage(10**12, 10**12 - 287 * 10**6, 287 * 10**6))
    with pytest.raises(SystemExit) as stop:
        dev._check_disk(tmp_path, dev.SETUP_DISK_GB)
    assert f"{tmp_path} has 0.3 GB free" in str(stop.value) and "needs about 6 GB" in str(stop.value)


def test_setup_installs_without_pips_wheel_cache():
    assert dev._pip_env()["PIP_NO_CACHE_DIR"] == "1"
