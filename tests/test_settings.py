"""VLLM_SURGEON_* settings: read in one module (_settings), a bad value named with its variable, everywhere it is read."""

import json
import os
import subprocess
import sys

import pytest
from conftest import run_python, surgeon_env

from vllm_surgeon.core import settings as _settings


@pytest.mark.parametrize(("value", "policy"), [("", "fail"), (" WARN ", "warn"), ("fail", "fail")])
def test_on_failure_is_fail_or_warn_whatever_the_case(monkeypatch, value, policy):
    monkeypatch.setenv(_settings.ON_FAILURE, value)
    assert _settings.on_failure() == policy


@pytest.mark.parametrize(("getter", "name", "value"), [
    (_settings.on_failure, _settings.ON_FAILURE, "sometimes"),
    (_settings.code_cache, _settings.CODE_CACHE, "off"),
])
def test_a_bad_value_names_the_variable_and_the_value(monkeypatch, getter, name, value):
    monkeypatch.setenv(name, value)
    with pytest.raises(_settings.SettingError) as caught:
        getter()
    assert str(caught.value).startswith(f"{name}={value!r} is not understood; use ")
    assert caught.value.name == name and caught.value.value == value


def test_bootstrap_reads_as_the_pth_line_and_problems_reports_the_rest(monkeypatch):
    monkeypatch.setenv(_settings.BOOTSTRAP, "no")
    assert _settings.bootstrap()  # the .pth line turns it off only for "0"
    assert [p.name for p in _settings.problems()] == [_settings.BOOTSTRAP]
    monkeypatch.setenv(_settings.BOOTSTRAP, "0")
    assert not _settings.bootstrap() and not _settings.problems()


def test_names_and_search_path_skip_blanks_and_repeats(monkeypatch):
    monkeypatch.setenv(_settings.HUNKS, " a, ,b,a ")
    monkeypatch.setenv(_settings.PATH, f" /x {':'} {':'}/y")
    assert _settings.hunks() == ["a", "b"] and _settings.hunks_named() and _settings.search_path() == ["/x", "/y"]
    monkeypatch.setenv(_settings.HUNKS, " , ")
    assert not _settings.hunks_named() and _settings.hunks() == []


def test_only_settings_reads_the_environment_for_them():
    """No other module of the package names a VLLM_SURGEON_ variable in code it reads (messages may)."""
    import re
    from pathlib import Path

    settings = Path(_settings.__file__)
    package = settings.parent.parent  # every layer of vllm_surgeon/, the root's entry points too
    reads = re.compile(r"""environ(\.get)?\s*[\[(]\s*["']_?VLLM_SURGEON_""")
    modules = [p for p in package.rglob("*.py") if p != settings]
    assert len(modules) > 40  # the whole package is read, not one folder of it
    offenders = [str(p.relative_to(package)) for p in modules if reads.search(p.read_text())]
    assert offenders == []


def test_settings_imports_nothing_but_os():
    code = "import sys; before = set(sys.modules); import vllm_surgeon.core.settings; print(sorted(set(sys.modules) - before))"
    out = subprocess.run([sys.executable, "-c", code], env=surgeon_env(), capture_output=True, text=True, check=True)
    # __future__: its `annotations` import (a few microseconds, no other module); vllm_surgeon.core: its empty __init__
    assert json.loads(out.stdout.replace("'", '"')) == ["__future__", "vllm_surgeon", "vllm_surgeon.core", "vllm_surgeon.core.settings"]


def test_a_bad_code_cache_value_fails_closed_at_import(fakepkg):
    fakepkg.module("fakepkg.calc", "def answer():\n    value = 41\n    return value\n")
    fakepkg.hunk("fix", "@@ fakepkg.calc:answer\n-    value = 41\n+    value = 42\n")
    out = fakepkg.run("import fakepkg.calc", hunks="fix", VLLM_SURGEON_CODE_CACHE="off")
    assert out.returncode != 0 and "VLLM_SURGEON_CODE_CACHE='off' is not understood; use '0'" in out.stderr


def test_doctor_fails_on_a_bad_code_cache_and_bootstrap_value():
    env = surgeon_env(VLLM_SURGEON_CODE_CACHE="off", VLLM_SURGEON_BOOTSTRAP="yes")
    out = subprocess.run([sys.executable, "-m", "vllm_surgeon", "doctor", "--json"], env=env, capture_output=True, text=True)
    failed = [c["detail"] for c in json.loads(out.stdout)["checks"] if c["check"] == "settings" and c["status"] == "fail"]
    assert out.returncode == 1
    assert [d.split("=")[0] for d in failed] == ["VLLM_SURGEON_CODE_CACHE", "VLLM_SURGEON_BOOTSTRAP"]


def test_user_paths_expand_home_and_name_what_cannot_be(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))
    assert _settings.user_path("~/sets") == str(tmp_path / "sets")
    assert _settings.user_path("rel", absolute=False) == "rel" and _settings.user_path("/abs/x") == "/abs/x"
    with pytest.raises(ValueError, match="~nosuchuser13 names no user on this system; write the directory's full path"):
        _settings.user_path("~nosuchuser13/x")
    monkeypatch.setenv(_settings.PATH, f"/ok{os.pathsep}~nosuchuser13/x")
    with pytest.raises(_settings.SettingError, match=r"entry '~nosuchuser13/x': ~nosuchuser13 names no user"):
        _settings.search_dirs()


def test_import_with_a_search_path_that_cannot_be_expanded_fails_named_or_honours_warn(fakepkg):
    """Issue 13: VLLM_SURGEON_PATH='~nouser/x' raised a bare RuntimeError out of `import vllm`, even under warn."""
    fakepkg.module("fakepkg.calc", "def answer():\n    return 41\n")
    env = surgeon_env(VLLM_SURGEON_HUNKS="fix", VLLM_SURGEON_PATH="~nosuchuser13/x", PYTHONPATH=str(fakepkg.src))
    code = "import vllm, fakepkg.calc; print(fakepkg.calc.answer())"
    out = run_python(code, dict(env, VLLM_SURGEON_ON_FAILURE="warn"))
    assert out.returncode == 0 and out.stdout.strip() == "41", out.stderr
    assert "VLLM_SURGEON_PATH='~nosuchuser13/x' is not understood" in out.stderr and "running without these sets" in out.stderr
    out = run_python(code, env)
    assert out.returncode != 0 and "VLLM_SURGEON_PATH='~nosuchuser13/x' is not understood" in out.stderr
    assert "RuntimeError" not in out.stderr
