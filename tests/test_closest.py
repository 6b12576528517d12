"""The closest code shown when an anchor is not found, and the headline that says what differs.

Issue 7 item 11 (the search was quadratic-ish: minutes for a 200-line anchor; its speed is measured
by tools/bench_closest.py) and issue 8 item 8 ("5 of 5 lines agree" when upstream inserted lines
between them; an unrelated `)` shown for a renamed block). On the installed vLLM's real
scheduler.py, edited the way upstream edits it; and on a real release pair in test_real_releases.
"""

import textwrap

import pytest

from vllm_surgeon.core.refusal import Reason
from vllm_surgeon.core.source import ModuleSource
from vllm_surgeon.engine import planner
from vllm_surgeon.matching.anchor import closest
from vllm_surgeon.sets.hunkfile import parse_hunk_file
from vllm_surgeon.trees.installed import read_installed

# Reads the installed vLLM's modules.
pytestmark = pytest.mark.needs_vllm

SCHED = "vllm.v1.core.sched.scheduler"
BLOCK = """\
                    # Preempt the lowest-priority request.
                    if self.policy == SchedulingPolicy.PRIORITY:
                        preempted_req = max(
                            self.running,
                            key=lambda r: (r.priority, r.arrival_time),
                        )
"""
HUNK = f"""\
@@ {SCHED}:Scheduler.schedule
{textwrap.indent(BLOCK, " ", lambda line: True).rstrip()}
+                        # a change
"""


@pytest.fixture(scope="module")
def real():
    source = read_installed(SCHED)
    assert source is not None and source.text.count(BLOCK) == 1
    return source


def refuse(real, edit):
    text = edit(real.text)
    assert text != real.text
    hunk_set = parse_hunk_file(HUNK, "/sets/victims.hunk", "victims")
    plan = planner.plan([hunk_set], lambda m: ModuleSource(m, real.path, text) if m == SCHED else None, "0.32.0")
    (refusal,) = plan.refusals
    assert refusal.reason is Reason.ANCHOR_NOT_FOUND
    return refusal, text.split("\n")


def line_of(lines, text: str) -> int:
    (index,) = [i for i, line in enumerate(lines) if line == text]
    return index + 1


def test_one_changed_line_is_named_by_its_place_in_the_anchor(real):
    refusal, lines = refuse(real, lambda t: t.replace("(r.priority, r.arrival_time)", "(r.priority, -r.arrival_time)"))
    assert refusal.found_line == line_of(lines, "                    # Preempt the lowest-priority request.")
    assert "closest match at line" in refusal.detail and "1 of 6 lines differs (anchor line 5 changed)" in refusal.detail
    assert len(refusal.found) == 6


def test_lines_upstream_inserted_inside_the_anchor_are_said_so_not_all_agree(real):
    inserted = "                            # upstream: ties go to the youngest\n                            default=None,\n"
    running = "                            self.running,\n"
    refusal, lines = refuse(real, lambda t: t.replace(running, running + inserted))
    assert "all 6 lines are there, but upstream inserted 2 lines inside the anchor (after its line 4)" in refusal.detail
    indent = " " * 28
    assert refusal.found[4:6] == (f"{indent}# upstream: ties go to the youngest", f"{indent}default=None,")
    assert len(refusal.found) == 8


def test_a_renamed_block_shows_that_block_not_a_stray_closing_parenthesis(real):
    def rename(text):
        block = BLOCK.replace("preempted_req", "victim").replace("self.running,", "self.running_requests,")
        block = block.replace("r.priority, r.arrival_time", "req.priority, req.arrival_time").replace("lambda r:", "lambda req:")
        return text.replace(BLOCK, block)

    refusal, lines = refuse(real, rename)
    start = line_of(lines, "                    # Preempt the lowest-priority request.")
    assert refusal.found_line == start and refusal.found[0].strip() == "# Preempt the lowest-priority request."
    assert "anchor lines 3-5 changed" in refusal.detail


def test_a_block_moved_into_a_new_if_is_re_indented(real):
    def nest(text):
        nested = "                    if True:\n" + textwrap.indent(BLOCK, "    ")
        return text.replace(BLOCK, nested)

    refusal, _ = refuse(real, nest)
    assert "6 of 6 lines differ (anchor lines 1-6 re-indented)" in refusal.detail


def test_nothing_alike_says_so_instead_of_pointing_at_unrelated_code(real):
    hunk_set = parse_hunk_file(
        f"@@ {SCHED}:Scheduler.schedule\n" + "".join(f"         frobnicate_{i}(widget_{i}, gizmo={i})\n" for i in range(200))
        + "+        pass\n", "/sets/nowhere.hunk", "nowhere",
    )
    (refusal,) = planner.plan([hunk_set], read_installed, "0.32.0").refusals
    assert refusal.detail.endswith("no code there resembles it") and refusal.found is None
    assert "expected anchor (200 lines):" in refusal.message()


def test_the_hunks_line_hint_chooses_among_equally_close_places():
    body = ["def f(x):", "    a = x + 1", "    b = a * 2", "    return b", ""]
    lines = body * 3  # three identical places
    anchor = ["    a = x + 1", "    b = a * 3", "    return b"]
    assert closest(lines, anchor, 0, len(lines)).start == 1  # no hint: the first
    assert closest(lines, anchor, 0, len(lines), near=11).start == 11
    assert closest(lines, anchor, 0, len(lines), near=7).start == 6


def test_headlines_for_removed_lines_and_several_insertions():
    lines = ["x = 1", "y = 2", "z = 3", "w = 4", "v = 5"]
    miss = closest(lines, ["x = 1", "q = 9", "y = 2", "z = 3"], 0, 5)
    assert (miss.start, miss.summary) == (0, "1 of 4 lines differs (anchor line 2 removed upstream)")
    lines = ["a = 1", "new1 = 0", "b = 2", "new2 = 0", "new3 = 0", "c = 3"]
    miss = closest(lines, ["a = 1", "b = 2", "c = 3"], 0, 6)
    assert miss.summary == "all 3 lines are there, but upstream inserted 3 lines inside the anchor (1 after its line 1, 2 after its line 2)"


def test_a_block_renamed_throughout_is_shown_from_its_first_line(real):
    """Only its closing `)` is left as it was: the block is still what a person points at."""
    four = "".join(BLOCK.splitlines(keepends=True)[2:])
    hunk = f"@@ {SCHED}:Scheduler.schedule\n" + textwrap.indent(four, " ", lambda line: True) + "+                        # a change\n"
    renamed = (four.replace("preempted_req", "victim").replace("self.running,", "self.running_requests,")
               .replace("r.priority, r.arrival_time", "req.priority, req.arrival_time").replace("lambda r:", "lambda req:"))
    text = real.text.replace(four, renamed)
    hunk_set = parse_hunk_file(hunk, "/sets/renamed.hunk", "renamed")
    (refusal,) = planner.plan([hunk_set], lambda m: ModuleSource(m, real.path, text), "0.32.0").refusals
    assert refusal.found[0] == "                        victim = max(" and len(refusal.found) == 4
    assert refusal.found_line == line_of(text.split("\n"), "                        victim = max(")
    assert "3 of 4 lines differ (anchor lines 1-3 changed)" in refusal.detail


def test_a_diffs_line_hint_picks_between_two_equally_close_matches():
    block = ["def f{n}(x):", "    y = x + 1", "    z = y * 2", "    return z", ""]
    module = "\n".join(line.format(n=n) for n in (1, 2) for line in block) + "\n"
    reads = {"pkg.mod": ModuleSource("pkg.mod", "/src/pkg/mod.py", module)}
    from vllm_surgeon.sets.difffile import parse_diff_file

    def refusal_for(hint: int):
        diff = (f"--- a/pkg/mod.py\n+++ b/pkg/mod.py\n@@ -{hint},3 +{hint},3 @@\n"
                "     y = x + 1\n-    z = y * 3\n+    z = y * 4\n     return z\n")
        plan = planner.plan([parse_diff_file(diff, "/sets/d.patch", "d")], reads.get, None, require_version=False)
        (refusal,) = plan.refusals
        assert refusal.reason is Reason.ANCHOR_NOT_FOUND
        return refusal.found_line

    assert refusal_for(2) == 2  # near f1's body
    assert refusal_for(7) == 7  # near f2's body: the same text, the hint decides
