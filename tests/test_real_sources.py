"""The engine on the installed vLLM's real source files (read from disk, never imported): every refusal reason."""

import textwrap
from pathlib import Path

import pytest

from vllm_surgeon.core.refusal import Reason
from vllm_surgeon.core.source import ModuleSource
from vllm_surgeon.engine import planner
from vllm_surgeon.sets.loader import load_file
from vllm_surgeon.sets.search import bundled_dir
from vllm_surgeon.trees.installed import installed_vllm, read_installed

VERSION, _ = installed_vllm()
PRIORITY = bundled_dir() / "priority.hunk"
SCHEDULE = "vllm.v1.core.sched.scheduler:Scheduler.schedule"


def plan(*sets, read=read_installed):
    return planner.plan(list(sets), read, VERSION)


def hunk_set(tmp_path: Path, name: str, text: str):
    path = tmp_path / f"{name}.hunk"
    path.write_text(textwrap.dedent(text).lstrip("\n"))
    return load_file(path)


def test_priority_set_applies_to_the_installed_vllm(vllm_dir):
    p = plan(load_file(PRIORITY))
    assert p.refusals == []
    assert {h.scope for h in p.results[0].hunks} == {"Request.__lt__", "Request", None, "Scheduler.schedule"}
    scheduler = p.modules["vllm.v1.core.sched.scheduler"]
    assert scheduler.source.path == str(vllm_dir / "v1" / "core" / "sched" / "scheduler.py")
    assert "key=lambda r: (r.aged_priority(), r.arrival_time)," in scheduler.text


def test_altered_anchor_line_is_refused_with_the_real_code_beside_it(tmp_path):
    broken = PRIORITY.read_text().replace(
        "                            key=lambda r: (r.priority, r.arrival_time),",
        "                            key=lambda r: (r.priority, -r.arrival_time),",
    )
    (tmp_path / "priority.hunk").write_text(broken)
    p = plan(load_file(tmp_path / "priority.hunk"))
    (refusal,) = p.refusals
    assert refusal.reason is Reason.ANCHOR_NOT_FOUND and refusal.target == SCHEDULE
    assert p.modules == {}  # the good hunks in vllm/v1/request.py are not applied either
    message = refusal.message()
    line = next(i for i, text in enumerate(broken.splitlines(), 1) if text.startswith("@@ " + SCHEDULE))
    assert f"hunk:    {tmp_path / 'priority.hunk'}:{line}" in message
    assert f"vLLM:    {VERSION} (" in message and "scheduler.py)" in message
    assert "-                            key=lambda r: (r.priority, -r.arrival_time)," in message
    assert "+                            key=lambda r: (r.priority, r.arrival_time)," in message
    assert f"found at scheduler.py:{refusal.found_line} (vLLM {VERSION})" in message


@pytest.mark.parametrize(
    "reason, text",
    [
        (Reason.MODULE_NOT_FOUND, "@@ vllm.v1.core.sched.no_such_module:f\n x\n+y\n"),
        (Reason.TARGET_NOT_FOUND, "@@ vllm.v1.core.sched.scheduler:Scheduler.schedulee\n x\n+y\n"),
        (Reason.ANCHOR_AMBIGUOUS,
         f"@@ {SCHEDULE}\n                     if self.policy == SchedulingPolicy.PRIORITY:\n+                        pass\n"),
        (Reason.VERSION,
         "vllm: <0.20\n@@ vllm.v1.request:Request.__lt__\n-        if self.priority != other.priority:\n"
         "+        if self.priority > other.priority:\n"),
        (Reason.INVALID_PYTHON, "@@ vllm.v1.request:Request.__lt__\n         if self.priority != other.priority:\n+        while True:\n"),
    ],
)
def test_each_refusal_reason_on_real_source(tmp_path, reason, text):
    p = plan(hunk_set(tmp_path, "probe", text))
    (refusal,) = p.refusals
    assert refusal.reason is reason, refusal.message()
    assert refusal.vllm_version == VERSION and str(refusal.origin).startswith(str(tmp_path / "probe.hunk"))


def test_a_set_changing_the_priority_sets_lines_conflicts_with_it(tmp_path):
    rival = hunk_set(tmp_path, "fifo_victims", f"""
        @@ {SCHEDULE}
                                 preempted_req = max(
                                     self.running,
        -                            key=lambda r: (r.priority, r.arrival_time),
        +                            key=lambda r: (r.priority, -r.arrival_time),
                                 )
    """)
    p = plan(load_file(PRIORITY), rival)
    (refusal,) = p.refusals
    assert refusal.reason is Reason.CONFLICT and refusal.set_name == "fifo_victims" and refusal.other_sets == ("priority",)
    assert [s.name for s in p.accepted] == ["priority"]


def test_diff_of_the_real_file_still_applies_when_unrelated_code_above_moves(tmp_path, vllm_dir):
    """A later release where only code above the change moved: simulated by growing the real file's top."""
    import subprocess

    original = vllm_dir / "v1" / "core" / "sched" / "scheduler.py"
    edited = tmp_path / "scheduler.py"
    edited.write_text(original.read_text().replace(
        "key=lambda r: (r.priority, r.arrival_time),", "key=lambda r: (r.priority, -r.arrival_time),"
    ))
    diff = subprocess.run(["diff", "-u", str(original), str(edited)], capture_output=True, text=True).stdout
    (tmp_path / "victims.patch").write_text(diff)
    s = load_file(tmp_path / "victims.patch")
    later = tmp_path / "later" / "vllm" / "v1" / "core" / "sched"
    later.mkdir(parents=True)
    text = original.read_text()
    grown = text.replace("\nimport itertools\n", "\nimport itertools\n" + "".join(f"_MOVED_{i} = {i}\n" for i in range(25)), 1)
    (later / "scheduler.py").write_text(grown)

    def read_later(module: str):
        path = tmp_path / "later" / (module.replace(".", "/") + ".py")
        return ModuleSource(module, str(path), path.read_text()) if path.exists() else None

    p = plan(s, read=read_later)
    (result,) = p.results[0].hunks
    assert p.refusals == [] and result.scope == "Scheduler.schedule"
    assert result.status == "moved" and result.moved == 25
    assert plan(s).results[0].hunks[0].status == "applies"
