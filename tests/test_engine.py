"""The hunk engine on small sources: placement, every refusal reason, all-or-nothing sets, conflicts."""

import textwrap

from vllm_surgeon.core.refusal import Reason
from vllm_surgeon.core.source import ModuleSource
from vllm_surgeon.engine import planner
from vllm_surgeon.sets.difffile import parse_diff_file
from vllm_surgeon.sets.hunkfile import parse_hunk_file

MOD = textwrap.dedent('''\
    import os


    class Base:
        def run(self, x):
            return x


    class Worker(Base):
        """A worker."""

        def run(self, x):
            y = x + 1
            y = y * 2
            return super().run(y)

        def other(self, x):
            y = x + 1
            return y


    def helper():
        return 1
''')


def sources(**modules: str):
    texts = {name.replace("_", "."): text for name, text in modules.items()}

    def read(module: str):
        text = texts.get(module)
        return None if text is None else ModuleSource(module, f"/src/{module.replace('.', '/')}.py", text)

    return read


def hset(name: str, text: str):
    return parse_hunk_file(textwrap.dedent(text).lstrip("\n"), f"/sets/{name}.hunk", name)


def plan(*sets, version="0.32.0", **modules):
    return planner.plan(list(sets), sources(**(modules or {"pkg_mod": MOD})), version)


WORKER_RUN = """
    @@ pkg.mod:Worker.run
             y = x + 1
    -        y = y * 2
    +        y = y * 3
"""


def test_anchor_inside_the_target_applies_and_ignores_the_same_lines_elsewhere():
    p = plan(hset("a", WORKER_RUN))
    assert p.refusals == []
    text = p.modules["pkg.mod"].text
    assert "y = y * 3" in text and text.count("y = x + 1") == 2
    (result,) = p.results[0].hunks
    assert (result.status, result.scope, result.line) == ("applies", "Worker.run", 13)


def test_target_not_found_suggests_similar_names():
    p = plan(hset("a", "@@ pkg.mod:Worker.runn\n  y = 1\n+ z = 2\n"))
    (refusal,) = p.refusals
    assert refusal.reason is Reason.TARGET_NOT_FOUND
    assert "Worker.run" in refusal.detail and str(refusal.origin) == "/sets/a.hunk:1"


def test_module_not_found():
    (refusal,) = plan(hset("a", "@@ pkg.nope:f\n x\n+y\n")).refusals
    assert refusal.reason is Reason.MODULE_NOT_FOUND and "pkg.nope" in refusal.detail


def test_anchor_not_found_shows_expected_against_closest_lines():
    p = plan(hset("a", """
        @@ pkg.mod:Worker.run
                 y = x + 1
        -        y = y * 5
        +        y = y * 3
                 return super().run(y)
    """))
    (refusal,) = p.refusals
    assert refusal.reason is Reason.ANCHOR_NOT_FOUND
    assert refusal.found_line == 13 and refusal.found[:3] == ("        y = x + 1", "        y = y * 2", "        return super().run(y)")
    message = refusal.message()
    assert "-        y = y * 5" in message and "+        y = y * 2" in message
    assert "hunk:    /sets/a.hunk:1" in message and "target:  pkg.mod:Worker.run" in message
    assert "vLLM:    0.32.0 (/src/pkg/mod.py)" in message
    assert "pkg.mod" not in p.modules


def test_anchor_found_twice_in_the_target_is_refused_with_both_lines():
    (refusal,) = plan(hset("a", "@@ pkg.mod\n         y = x + 1\n+        pass\n")).refusals
    assert refusal.reason is Reason.ANCHOR_AMBIGUOUS and "at lines 13, 18" in refusal.detail


def test_version_range_not_met():
    p = plan(hset("a", "vllm: >=0.40\n" + textwrap.dedent(WORKER_RUN)))
    (refusal,) = p.refusals
    assert refusal.reason is Reason.VERSION and "this is 0.32.0" in refusal.detail and refusal.origin.line == 1
    assert plan(hset("a", "vllm: >=0.30,<0.40\n" + textwrap.dedent(WORKER_RUN)), version="0.32.0+cpu").refusals == []
    assert plan(hset("a", "vllm: >=0.30\n" + textwrap.dedent(WORKER_RUN)), version=None).refusals[0].reason is Reason.VERSION


def test_result_that_is_not_valid_python_is_refused():
    (refusal,) = plan(hset("a", "@@ pkg.mod:Worker.other\n         y = x + 1\n+        if y:\n")).refusals
    assert refusal.reason is Reason.INVALID_PYTHON and "does not parse" in refusal.detail


def test_set_is_all_or_nothing_across_modules():
    other = "def g():\n    return 2\n"
    s = hset("a", textwrap.dedent(WORKER_RUN) + "\n@@ pkg.other:g\n-    return 3\n+    return 4\n")
    p = plan(s, pkg_mod=MOD, pkg_other=other)
    assert [r.reason for r in p.refusals] == [Reason.ANCHOR_NOT_FOUND]
    assert p.modules == {} and p.accepted == []
    assert p.results[0].hunks[0].status == "applies"  # the good hunk was checked, and still not applied


def test_two_sets_touching_the_same_lines_conflict_and_the_later_is_refused():
    first = hset("first", WORKER_RUN)
    second = hset("second", "@@ pkg.mod:Worker.run\n         y = y * 2\n+        y = -y\n")
    for order in ([first, second], [second, first]):
        p = plan(*order)
        (refusal,) = p.refusals
        assert refusal.reason is Reason.CONFLICT
        assert refusal.set_name == order[1].name and refusal.other_sets == (order[0].name,)
        assert [s.name for s in p.accepted] == [order[0].name]


def test_sets_changing_different_lines_of_one_function_stack():
    first = hset("first", WORKER_RUN)
    second = hset("second", "@@ pkg.mod:Worker.run\n         return super().run(y)\n+        # after\n")
    p = plan(first, second)
    assert p.refusals == [] and p.modules["pkg.mod"].sets == ("first", "second")
    assert "y = y * 3" in p.modules["pkg.mod"].text and "# after" in p.modules["pkg.mod"].text


def test_two_hunks_of_one_set_on_the_same_lines_overlap():
    s = hset("a", textwrap.dedent(WORKER_RUN) + "\n@@ pkg.mod:Worker.run\n-        y = y * 2\n+        y = y * 4\n")
    (refusal,) = plan(s).refusals
    assert refusal.reason is Reason.OVERLAP and "/sets/a.hunk:1" in refusal.detail


def test_new_method_at_end_of_class_and_helper_at_end_of_module():
    p = plan(hset("a", """
        @@ pkg.mod:Worker
        +
        +    def added(self):
        +        return helper2()

        @@ pkg.mod
        +
        +
        +def helper2():
        +    return 2
    """))
    assert p.refusals == []
    namespace = {}
    exec(p.modules["pkg.mod"].compiled.code, namespace)
    assert namespace["Worker"]().added() == 2


def test_only_added_lines_on_a_function_target_is_refused():
    (refusal,) = plan(hset("a", "@@ pkg.mod:helper\n+    x = 1\n")).refusals
    assert refusal.reason is Reason.ANCHOR_NOT_FOUND and "only '+' lines" in refusal.detail


def diff_set(text: str):
    return parse_diff_file(textwrap.dedent(text), "/sets/d.patch", "d")


OTHER_DIFF = """\
    --- a/pkg/mod.py
    +++ b/pkg/mod.py
    @@ -17,4 +17,4 @@ class Worker(Base):
         def other(self, x):
             y = x + 1
    -        return y
    +        return -y
     
"""  # noqa: W293 - a diff's blank context line is one space


def test_diff_hunk_is_mapped_to_the_function_holding_its_changed_lines():
    p = plan(diff_set(OTHER_DIFF))
    assert p.refusals == []
    (result,) = p.results[0].hunks
    assert (result.scope, result.line, result.moved) == ("Worker.other", 17, 0)


def test_diff_applies_when_unrelated_code_above_moved_and_line_numbers_never_decide():
    moved = MOD.replace("import os\n", "import os\nimport sys\n\nX = 1\nY = 2\n")
    p = plan(diff_set(OTHER_DIFF), pkg_mod=moved)
    (result,) = p.results[0].hunks
    assert p.refusals == [] and result.status == "moved" and result.moved == 4 and result.line == 21
    wrong_hint = OTHER_DIFF.replace("@@ -17,4 +17,4 @@", "@@ -2,4 +2,4 @@")
    assert plan(diff_set(wrong_hint)).refusals == []


def test_diff_context_may_reach_past_the_function():
    p = plan(diff_set("""\
        --- a/pkg/mod.py
        +++ b/pkg/mod.py
        @@ -19,5 +19,5 @@
                 return y
         
         
         def helper():
        -    return 1
        +    return 0
    """))  # noqa: W293 - a diff's blank context lines are one space
    assert p.refusals == [] and p.results[0].hunks[0].scope == "helper"


def test_diff_anchor_found_in_two_functions_is_ambiguous_unless_git_named_the_function():
    text = """\
        --- a/pkg/mod.py
        +++ b/pkg/mod.py
        @@ -{line},1 +{line},2 @@{scope}
                 y = x + 1
        +        y = y - 1
    """
    (refusal,) = plan(diff_set(text.format(line=30, scope=""))).refusals
    assert refusal.reason is Reason.ANCHOR_AMBIGUOUS and "line 13 (function Worker.run)" in refusal.detail
    p = plan(diff_set(text.format(line=30, scope=" def other(self, x):")))
    assert p.refusals == [] and p.results[0].hunks[0].scope == "Worker.other"


def test_diff_anchor_found_twice_is_the_one_its_header_line_lands_on_exactly():
    text = """\
        --- a/pkg/mod.py
        +++ b/pkg/mod.py
        @@ -{line},1 +{line},2 @@
                 y = x + 1
        +        y = y - 1
    """
    for line, scope in ((13, "Worker.run"), (18, "Worker.other")):  # the two occurrences, as patch would find them
        p = plan(diff_set(text.format(line=line)))
        assert p.refusals == [] and p.results[0].hunks[0].scope == scope and p.results[0].hunks[0].line == line
    (refusal,) = plan(diff_set(text.format(line=14))).refusals  # lands on neither: refused as before
    assert refusal.reason is Reason.ANCHOR_AMBIGUOUS


def test_unchanged_code_keeps_its_line_numbers_and_patched_code_reads_patched_lines():
    grown = textwrap.dedent(WORKER_RUN) + "+        y = y + 0\n+        y = y - 0\n"
    p = plan(hset("a", grown))
    patched = p.modules["pkg.mod"]
    namespace = {"__name__": "pkg.mod"}
    exec(patched.compiled.code, namespace)
    other = namespace["Worker"].other.__code__
    run = namespace["Worker"].run.__code__
    assert other.co_firstlineno == 17 and namespace["helper"].__code__.co_firstlineno == 22
    display = patched.compiled.display.split("\n")
    assert display[:23] == MOD.split("\n")[:23]
    assert display[run.co_firstlineno - 1] == "    def run(self, x):"
    assert display[run.co_firstlineno + 1] == "        y = y * 3" and run.co_firstlineno > 24
    assert compile(patched.compiled.display, "display", "exec")  # the tail is valid Python too


def test_a_hunk_set_refuses_one_hunk_and_checks_the_others_of_that_module_on_their_own():
    """A `.hunk` set has no commits: its hunks are located on the same text, each on its own. One refused
    hunk refuses the set (all or nothing) but never makes an unrelated hunk read "not reached" (issue 15)."""
    s = hset("two", """
        @@ pkg.mod:Worker.run
        -        y = y * 3
        +        y = y * 4
        @@ pkg.mod:Worker.other
        -        return y
        +        return y + 1
    """)
    result = planner.plan([s], sources(pkg_mod=MOD), "1.0").results[0]
    assert not result.ok
    assert [h.status for h in result.hunks] == ["refused", "applies"]
    assert [r.reason for r in result.refusals] == [Reason.ANCHOR_NOT_FOUND]


def test_every_hunk_of_a_set_whose_patched_module_does_not_parse_is_refused_and_nothing_applies():
    # Worker.run's hunk is fine alone; Worker.other's `+` line breaks the module: the set is refused
    # whole, each of its hunks shows why, and the refusal quotes the `+` line at fault.
    s = hset("a", "@@ pkg.mod:Worker.other\n         y = x + 1\n+        y = = 1\n" + textwrap.dedent(WORKER_RUN).lstrip("\n"))
    p = plan(s)
    (refusal,) = p.refusals
    assert refusal.reason is Reason.INVALID_PYTHON
    assert refusal.detail.endswith("at patched line 19: 'y = = 1' (the + line at /sets/a.hunk:3)"), refusal.detail
    assert [h.refusal for h in p.results[0].hunks] == [refusal, refusal]
    assert "pkg.mod" not in p.modules


def test_the_plus_line_that_breaks_the_module_is_quoted_whichever_hunk_of_the_set_wrote_it():
    s = hset("a", textwrap.dedent(WORKER_RUN).lstrip("\n") + "@@ pkg.mod:Worker.other\n         y = x + 1\n+        y = = 1\n")
    (refusal,) = plan(s).refusals
    assert refusal.reason is Reason.INVALID_PYTHON
    assert refusal.detail.endswith("'y = = 1' (the + line at /sets/a.hunk:7)"), refusal.detail
    assert refusal.origin.line == 5  # blamed on the hunk that wrote it, Worker.other's


def test_a_refused_hunk_leaves_nothing_of_its_set_applied_and_the_hunks_after_it_are_still_checked():
    s = hset("a", "@@ pkg.mod:Worker.other\n         y = x + 5\n+        pass\n" + textwrap.dedent(WORKER_RUN).lstrip("\n"))
    p = plan(s)
    assert [r.reason for r in p.refusals] == [Reason.ANCHOR_NOT_FOUND]
    assert [h.status for h in p.results[0].hunks] == ["refused", "applies"]
    assert p.modules == {}


def test_each_module_of_a_set_that_does_not_parse_is_refused_on_its_own():
    other = "def g():\n    return 2\n"
    s = hset("a", "@@ pkg.mod:Worker.other\n         y = x + 1\n+        y = = 1\n@@ pkg.other:g\n+    y = = 2\n     return 2\n")
    p = plan(s, pkg_mod=MOD, pkg_other=other)
    assert [r.reason for r in p.refusals] == [Reason.INVALID_PYTHON, Reason.INVALID_PYTHON]
    assert p.modules == {}


def test_a_hunk_on_a_missing_module_leaves_nothing_of_its_set_applied_and_the_hunks_after_it_are_still_checked():
    s = hset("a", "@@ pkg.gone:f\n+    pass\n     return 1\n" + textwrap.dedent(WORKER_RUN).lstrip("\n"))
    p = plan(s)
    assert [r.reason for r in p.refusals] == [Reason.MODULE_NOT_FOUND]
    assert [h.status for h in p.results[0].hunks] == ["refused", "applies"]
    assert p.modules == {}


def test_a_set_whose_module_compiles_only_without_it_is_refused_whole_and_a_good_set_on_it_still_applies():
    # `nonlocal y` after `y = ...` parses but does not compile: the planner's compile-time guard. The set that
    # breaks the module is refused whole (its other module too), in either order; the good set stacked on it applies.
    good = hset("good", WORKER_RUN)
    bad = hset("bad", "@@ pkg.mod:Worker.other\n         y = x + 1\n+        nonlocal y\n\n@@ pkg.other:g\n-    return 2\n+    return 4\n")
    for order in ([good, bad], [bad, good]):
        p = plan(*order, pkg_mod=MOD, pkg_other="def g():\n    return 2\n")
        (refusal,) = p.refusals
        assert refusal.set_name == "bad" and refusal.reason is Reason.INVALID_PYTHON
        assert "the patched pkg.mod does not compile" in refusal.detail and "nonlocal" in refusal.detail
        assert [s.name for s in p.accepted] == ["good"] and sorted(p.modules) == ["pkg.mod"]
        assert "y = y * 3" in p.modules["pkg.mod"].text and "nonlocal" not in p.modules["pkg.mod"].text
