"""Sets are code, on the real vLLM (issue 13): the issue's own reproduction, a set adding a line at
module scope of `vllm.v1.request`, enabled by VLLM_SURGEON_PATH and VLLM_SURGEON_HUNKS, then
`import vllm.v1.request` in a fresh interpreter. Another user's file never runs (with warn, vLLM goes
on without it); root's file in root's folders, and a Kubernetes ConfigMap volume, run."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from conftest import run_python, surgeon_env
from test_trust import NOBODY, configmap, remount_ro, tmpfs, write

pytestmark = [
    pytest.mark.vllm,
    pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="needs root to act as another user"),
]


def request_set(marker: Path) -> str:
    return f"description: the issue's reproduction\n@@ vllm.v1.request\n+\n+open({str(marker)!r}, 'a').write('ran\\n')\n"


def start(sets: Path, **extra: str):
    env = surgeon_env(VLLM_SURGEON_PATH=str(sets), VLLM_SURGEON_HUNKS="x", **extra)
    return run_python("import vllm.v1.request\nprint('imported')", env, timeout=600)


def test_another_users_set_never_runs_in_vllm_and_warn_goes_on_without_it(tmp_path):
    marker = tmp_path / "ran"
    sets = tmp_path / "sets"
    f = write(sets / "x.hunk", request_set(marker), owner=NOBODY)
    refused = start(sets)
    assert refused.returncode != 0 and "imported" not in refused.stdout and not marker.exists()
    assert f"{f} is owned by nobody (uid 65534)" in refused.stderr and f"chown root {f}" in refused.stderr
    warned = start(sets, VLLM_SURGEON_ON_FAILURE="warn")
    assert warned.returncode == 0 and "imported" in warned.stdout and not marker.exists(), warned.stderr
    assert "running without these sets ('x')" in warned.stderr


def test_roots_set_in_roots_folders_runs_in_vllm(tmp_path):
    marker = tmp_path / "ran"
    sets = tmp_path / "etc" / "vllm-surgeon" / "hunks"
    write(sets / "x.hunk", request_set(marker))
    started = start(sets)
    assert started.returncode == 0 and marker.read_text() == "ran\n", started.stderr


def test_a_configmap_volume_runs_in_vllm(tmp_path):
    marker = tmp_path / "ran"
    with tmpfs(tmp_path / "config") as volume:
        configmap(volume, {"x.hunk": request_set(marker)})
        remount_ro(volume)
        started = start(volume)
        assert started.returncode == 0 and marker.read_text() == "ran\n", started.stderr
