"""tools/dev.py test: ruff and mypy run before pytest, and either failing fails the run, naming it."""

import subprocess
import sys

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
