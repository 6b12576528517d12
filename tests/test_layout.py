"""Anchors that survive reformatting (issue 10), on small sources: OLD is laid out as vLLM was before
0.11.1 (yapf), NEW is exactly `ruff format` of it. Hunks written against OLD apply to NEW by structure,
land where they were meant to (the patched tree equals OLD's with the hunk, re-laid), and a real change
of the code is still refused, with the same message as before."""

import ast
import textwrap

import pytest

from vllm_surgeon.core.refusal import Reason
from vllm_surgeon.core.source import ModuleSource
from vllm_surgeon.engine import planner
from vllm_surgeon.matching import layout as _layout
from vllm_surgeon.matching.tokens import hard, scan
from vllm_surgeon.sets.difffile import parse_diff_file
from vllm_surgeon.sets.hunkfile import parse_hunk_file

OLD = textwrap.dedent('''\
    import os


    class Scheduler:

        def schedule(self, budget):
            """Schedule what fits in the budget.

            Returns the outputs.
            """
            token_budget = self.max_num_scheduled_tokens
            num_tokens = (self.num_scheduled_tokens['a'] -
                          len(self.spec_decode_tokens.get('a', ())))
            if token_budget > 0 and \\
                    num_tokens < budget:
                self.log('scheduling %d tokens '
                         'for now', num_tokens)  #note
            outputs = self.make_outputs(token_budget, num_tokens,
                                        budget,)
            self.count = 0; self.total = 0
            assert len(
                set(outputs)) == 1, "one output only"
            return outputs

        def other(self, budget):
            token_budget = self.max_num_scheduled_tokens
            return token_budget
''')

NEW = textwrap.dedent('''\
    import os


    class Scheduler:
        def schedule(self, budget):
            """Schedule what fits in the budget.

            Returns the outputs.
            """
            token_budget = self.max_num_scheduled_tokens
            num_tokens = self.num_scheduled_tokens["a"] - len(
                self.spec_decode_tokens.get("a", ())
            )
            if token_budget > 0 and num_tokens < budget:
                self.log("scheduling %d tokens for now", num_tokens)  # note
            outputs = self.make_outputs(
                token_budget,
                num_tokens,
                budget,
            )
            self.count = 0
            self.total = 0
            assert len(set(outputs)) == 1, "one output only"
            return outputs

        def other(self, budget):
            token_budget = self.max_num_scheduled_tokens
            return token_budget
''')

TARGET = "pkg.sched:Scheduler.schedule"


def read(text):
    def reader(module):
        return ModuleSource(module, "/src/pkg/sched.py", text) if module == "pkg.sched" else None

    return reader


def hunk_set(body: str, name="s"):
    return parse_hunk_file(f"@@ {TARGET}\n" + textwrap.dedent(body).lstrip("\n"), f"/sets/{name}.hunk", name)


def plan(hset, text=NEW):
    return planner.plan([hset], read(text), "0.11.1")


def tree(text: str, qualname="Scheduler.schedule") -> str:
    node = ast.parse(text)
    for part in qualname.split("."):
        node = next(n for n in node.body if getattr(n, "name", None) == part)
    return ast.dump(node)


def applied_to_old(hset) -> str:
    """The hunk applied by text to the source it was written against: what it means."""
    p = plan(hset, OLD)
    assert p.refusals == [] and p.results[0].hunks[0].status == "applies"
    return p.modules["pkg.sched"].text


def assert_lands_right(hset) -> str:
    p = plan(hset)
    assert p.refusals == [], [r.message() for r in p.refusals]
    (result,) = p.results[0].hunks
    assert result.status == "reformatted" and result.reformatted
    text = p.modules["pkg.sched"].text
    assert tree(text) == tree(applied_to_old(hset))
    return text


def test_layout_only_change_refused_by_text_alone():
    hset = hunk_set("""
                 token_budget = self.max_num_scheduled_tokens
        +        self.log("budget", token_budget)
                 num_tokens = (self.num_scheduled_tokens['a'] -
                               len(self.spec_decode_tokens.get('a', ())))
    """)
    _layout.ENABLED = False
    try:
        (refusal,) = plan(hset).refusals
    finally:
        _layout.ENABLED = True
    assert refusal.reason is Reason.ANCHOR_NOT_FOUND


def test_insert_between_statements_whose_line_breaks_quotes_and_parentheses_changed():
    text = assert_lands_right(hunk_set("""
                 token_budget = self.max_num_scheduled_tokens
        +        self.log("budget", token_budget)
                 num_tokens = (self.num_scheduled_tokens['a'] -
                               len(self.spec_decode_tokens.get('a', ())))
    """))
    # Context keeps the new layout; the added line goes in between, at its indentation.
    assert '        token_budget = self.max_num_scheduled_tokens\n        self.log("budget", token_budget)\n' \
           '        num_tokens = self.num_scheduled_tokens["a"] - len(\n' in text


def test_removed_statement_is_removed_wherever_the_formatter_put_it():
    text = assert_lands_right(hunk_set("""
                 if token_budget > 0 and \\
                         num_tokens < budget:
        -            self.log('scheduling %d tokens '
        -                     'for now', num_tokens)  #note
        +            pass
                 outputs = self.make_outputs(token_budget, num_tokens,
    """))
    assert "scheduling" not in text
    assert "        if token_budget > 0 and num_tokens < budget:\n            pass\n        outputs = self.make_outputs(\n" in text


def test_one_removed_line_the_formatter_split_in_two_removes_both():
    text = assert_lands_right(hunk_set("""
                                             budget,)
        -        self.count = 0; self.total = 0
                 assert len(
    """))
    assert "self.count" not in text and "self.total" not in text


def test_statement_spread_over_lines_by_a_magic_trailing_comma_is_replaced():
    text = assert_lands_right(hunk_set("""
        -        outputs = self.make_outputs(token_budget, num_tokens,
        -                                    budget,)
        +        outputs = self.make_outputs(token_budget, num_tokens, budget + 1)
                 self.count = 0; self.total = 0
    """))
    assert "        outputs = self.make_outputs(token_budget, num_tokens, budget + 1)\n        self.count = 0\n" in text


def test_anchor_starting_and_ending_inside_statements():
    # First line: the tail of a call the new layout explodes; last line: the head of a call it joins.
    text = assert_lands_right(hunk_set("""
                                             budget,)
        +        self.log("tokens", num_tokens)
                 self.count = 0; self.total = 0
                 assert len(
    """))
    assert '            budget,\n        )\n        self.log("tokens", num_tokens)\n        self.count = 0\n' in text


def test_closing_parenthesis_whose_opening_one_the_formatter_dropped_before_the_anchor_is_refused():
    # The anchor's last `)` closed a `(` before the anchor that ruff dropped. Issue 10 put it back
    # wherever in the statement it could have been (the tree is the same everywhere), but that `(`
    # is beyond the anchor's first line: the anchor does not show it, so its `)` is code the new
    # release does not have (issue 14). Refused, as text matching refuses it.
    (refusal,) = plan(hunk_set("""
                               len(self.spec_decode_tokens.get('a', ())))
        +        self.log("tokens", num_tokens)
                 if token_budget > 0 and \\
    """)).refusals
    assert refusal.reason is Reason.ANCHOR_NOT_FOUND


def test_opening_parenthesis_whose_closing_one_the_formatter_dropped_after_the_anchor_is_refused():
    # vllm 0.10.2's `with (tracer.start_as_current_span(... ) as span):`, which ruff wrote without
    # the outer parentheses: the anchor ends before their `)`. `with (t.start(...)) as span` and
    # `with (t.start(...) as span)` are the same statement, but the anchor shows neither: where its
    # `(` closes is beyond its last line, so that `(` is code the new release does not have (issue
    # 14). The hunk still applies to the release it was written against.
    old = 'def f(t):\n    x = 1\n    with (t.start(\n            "x",\n            kind=1) as span):\n        return span\n'
    new = 'def f(t):\n    x = 1\n    with t.start("x", kind=1) as span:\n        return span\n'
    hset = parse_hunk_file('@@ pkg.sched:f\n-    x = 1\n+    x = 2\n     with (t.start(\n             "x",\n',
                           "/sets/w.hunk", "w")
    (refusal,) = plan(hset, new).refusals
    assert refusal.reason is Reason.ANCHOR_NOT_FOUND
    assert plan(hset, old).refusals == []


@pytest.mark.parametrize("new, applies", [
    ("    x = c * (a + b)\n", True),  # the parentheses are needed: the formatter kept them
    ("    x = c * a + b\n", False),  # a real change; `(c * a + b)` would fit, `c * (a + b)` not
    ("    x = c * a + -b\n", False),
])
def test_a_dropped_parenthesis_is_put_back_everywhere_it_could_have_been(new, applies):
    old = "def f(a, b, c):\n    x = c * (a +\n             b)\n    return x\n"
    hset = parse_hunk_file("@@ pkg.sched:f\n              b)\n+    x += 1\n     return x\n", "/sets/p.hunk", "p")
    assert plan(hset, old).results[0].hunks[0].status == "applies"
    p = plan(hset, f"def f(a, b, c):\n{new}    return x\n")
    assert (p.refusals == []) is applies, [r.message() for r in p.refusals]


def test_added_line_inside_a_statement_the_new_layout_joined_rewrites_that_statement_only():
    text = assert_lands_right(hunk_set("""
                 if token_budget > 0 and \\
        +                self.enabled and \\
                         num_tokens < budget:
    """))
    assert "        if token_budget > 0 and \\\n                self.enabled and \\\n                num_tokens < budget:\n" in text
    assert '            self.log("scheduling %d tokens for now", num_tokens)  # note\n' in text  # untouched


def test_removed_line_sharing_a_line_with_code_outside_the_anchor_is_refused_saying_why():
    (refusal,) = plan(hunk_set("""
        -            set(outputs)) == 1, "one output only"
        +            set(outputs)) == 2, "two outputs"
                 return outputs
    """)).refusals
    assert refusal.reason is Reason.ANCHOR_NOT_FOUND
    assert "the same code, laid out anew, is at line 23" in refusal.detail
    assert "share a line with code before its anchor" in refusal.detail


def test_real_change_is_refused_with_the_same_message_as_without_structure():
    changed = NEW.replace("num_tokens < budget:", "num_tokens <= budget:")
    hset = hunk_set("""
                 if token_budget > 0 and \\
                         num_tokens < budget:
        -            self.log('scheduling %d tokens '
        -                     'for now', num_tokens)  #note
        +            pass
    """)
    (refusal,) = plan(hset, changed).refusals
    _layout.ENABLED = False
    try:
        (text_only,) = plan(hset, changed).refusals
    finally:
        _layout.ENABLED = True
    assert refusal.reason is Reason.ANCHOR_NOT_FOUND
    assert refusal.message() == text_only.message()
    assert refusal.found is not None


def test_anchor_starting_at_the_second_piece_of_a_string_the_formatter_joined_is_not_guessed():
    # 'a ' 'b' joined as "a b" looks the same as two arguments 'a ', 'b' made one: refused.
    (refusal,) = plan(hunk_set("""
                          'for now', num_tokens)  #note
        -        outputs = self.make_outputs(token_budget, num_tokens,
        -                                    budget,)
        +        outputs = None
    """)).refusals
    assert refusal.reason is Reason.ANCHOR_NOT_FOUND


@pytest.mark.parametrize("change", [
    ('"a", ()', '"a", []'),  # a tuple became a list
    ('get("a", ())', 'get(("a", ()))'),  # two arguments became one tuple
    ("self.spec_decode_tokens.get", "self.spec_tokens.get"),
    ('self.num_scheduled_tokens["a"] - len(\n            self.spec_decode_tokens.get("a", ())\n        )',
     '(self.num_scheduled_tokens["a"] - len)(\n            self.spec_decode_tokens.get("a", ())\n        )'),
])
def test_same_tokens_in_another_tree_are_refused(change):
    # The tokens, with parentheses and commas left out, are the same: only the tree tells them apart.
    old, new = change
    assert old in NEW
    hset = hunk_set("""
                 token_budget = self.max_num_scheduled_tokens
        +        self.log("budget", token_budget)
                 num_tokens = (self.num_scheduled_tokens['a'] -
                               len(self.spec_decode_tokens.get('a', ())))
    """)
    (refusal,) = plan(hset, NEW.replace(old, new)).refusals
    assert refusal.reason is Reason.ANCHOR_NOT_FOUND


# Issue 13 ("tests that pin the guarantees"): with the tree comparison of step 1 removed, the test
# above still passed, since a context line kept in the target's text makes step 2 differ too. A hunk
# that removes its whole anchor leaves step 2 nothing to compare: only step 1 (the anchor's text in
# the region parses to the target's tree) stands between it and replacing other code.
@pytest.mark.parametrize("change", [
    ('"a", ()', '"a", []'),  # a tuple became a list
    ('get("a", ())', 'get(("a", ()))'),  # two arguments became one tuple
    ('self.num_scheduled_tokens["a"] - len(\n            self.spec_decode_tokens.get("a", ())\n        )',
     '(self.num_scheduled_tokens["a"] - len)(\n            self.spec_decode_tokens.get("a", ())\n        )'),
])
def test_layout_never_accepts_region_whose_tree_differs(change):
    old, new = change
    assert old in NEW
    hset = hunk_set("""
        -        num_tokens = (self.num_scheduled_tokens['a'] -
        -                      len(self.spec_decode_tokens.get('a', ())))
        +        num_tokens = 0
    """)
    assert "num_tokens = 0" in assert_lands_right(hset)  # the same code, laid out anew: replaced
    p = plan(hset, NEW.replace(old, new))
    (refusal,) = p.refusals
    assert refusal.reason is Reason.ANCHOR_NOT_FOUND
    assert "pkg.sched" not in p.modules  # all or nothing: the other code is left as it is


def test_same_code_twice_in_the_new_layout_is_ambiguous():
    hset = parse_hunk_file(textwrap.dedent("""
        @@ pkg.sched:Scheduler
                 token_budget = self.max_num_scheduled_tokens
        -        return token_budget
        +        return token_budget + 1
    """).lstrip(), "/sets/a.hunk", "a")
    twice = NEW + "\n    def third(self):\n        token_budget = self.max_num_scheduled_tokens\n        return (token_budget)\n"
    assert plan(hset, twice.replace("return (token_budget)", "return token_budget")).refusals[0].reason is Reason.ANCHOR_AMBIGUOUS
    (refusal,) = plan(parse_hunk_file(textwrap.dedent("""
        @@ pkg.sched:Scheduler
                 token_budget = self.max_num_scheduled_tokens
        -        return (token_budget)
        +        return token_budget + 1
    """).lstrip(), "/sets/a.hunk", "a"), twice.replace("return (token_budget)", "return token_budget")).refusals
    assert refusal.reason is Reason.ANCHOR_AMBIGUOUS and "laid out anew" in refusal.detail
    assert "lines 27, 31" in refusal.detail


def test_anchor_starting_inside_a_docstring():
    old = 'def f(x):\n    """Doc.\n\n    More.\n    """\n    y = g(x,\n          1)\n    return y\n'
    new = 'def f(x):\n    """Doc.\n\n    More.\n    """\n    y = g(x, 1)\n    return y\n'
    hset = parse_hunk_file(textwrap.dedent('''
        @@ pkg.sched:f
             More.
             """
        +    x = x + 1
             y = g(x,
                   1)
    ''').lstrip(), "/sets/d.hunk", "d")
    p = plan(hset, new)
    assert p.refusals == [], [r.message() for r in p.refusals]
    assert p.results[0].hunks[0].status == "reformatted"
    assert p.modules["pkg.sched"].text == new.replace("    y = g", "    x = x + 1\n    y = g")
    assert tree(p.modules["pkg.sched"].text, "f") == tree(plan(hset, old).modules["pkg.sched"].text, "f")


def test_comments_compare_as_formatters_write_them_and_a_changed_comment_is_refused():
    hset = hunk_set("""
        -            self.log('scheduling %d tokens '
        -                     'for now', num_tokens)  #note
        +            pass
                 outputs = self.make_outputs(token_budget, num_tokens,
    """)
    assert_lands_right(hset)
    (refusal,) = plan(hset, NEW.replace("# note", "# other note")).refusals
    assert refusal.reason is Reason.ANCHOR_NOT_FOUND


def test_blank_lines_the_formatter_dropped_do_not_matter():
    hset = parse_hunk_file(textwrap.dedent('''
        @@ pkg.sched:Scheduler
         class Scheduler:
         
             def schedule(self, budget):
        +        """Schedule."""
                 """Schedule what fits in the budget.
    ''').lstrip(), "/sets/a.hunk", "a")  # noqa: W293 - a hunk's blank context line is one space
    p = plan(hset)
    assert p.refusals == [], [r.message() for r in p.refusals]
    assert 'class Scheduler:\n    def schedule(self, budget):\n        """Schedule."""\n' in p.modules["pkg.sched"].text


def test_hunk_whose_own_lines_are_not_python_is_refused_as_invalid():
    (refusal,) = plan(hunk_set("""
                 token_budget = self.max_num_scheduled_tokens
        +        self.log("budget", token_budget
                 num_tokens = (self.num_scheduled_tokens['a'] -
                               len(self.spec_decode_tokens.get('a', ())))
    """)).refusals
    assert refusal.reason is Reason.INVALID_PYTHON


def test_plain_diff_against_the_old_layout_applies_to_the_new_one():
    diff = textwrap.dedent("""\
        --- a/pkg/sched.py
        +++ b/pkg/sched.py
        @@ -18,6 +18,6 @@ class Scheduler:
                 outputs = self.make_outputs(token_budget, num_tokens,
                                             budget,)
        -        self.count = 0; self.total = 0
        +        self.count = self.total = 0
                 assert len(
                     set(outputs)) == 1, "one output only"
                 return outputs
    """)
    hset = parse_diff_file(diff, "/sets/d.patch", "d")
    p = planner.plan([hset], read(NEW), None)
    assert p.refusals == [], [r.message() for r in p.refusals]
    (result,) = p.results[0].hunks
    assert (result.status, result.scope, result.line) == ("reformatted", "Scheduler.schedule", 16)
    expected = planner.plan([hset], read(OLD), None).modules["pkg.sched"].text
    assert tree(p.modules["pkg.sched"].text) == tree(expected)
    assert "        self.count = self.total = 0\n        assert len(set(outputs)) == 1" in p.modules["pkg.sched"].text


def test_tokens_of_fragments():
    toks = scan("        x = f(a,\n              b)) + 'q' \\\n   # c\n")
    assert [t.text for t in toks] == ["x", "=", "f", "(", "a", ",", "b", ")", ")", "+", "'q'", "# c"]
    head = scan('still docs.\n"""\nx = 1', '"""')
    assert head[0].partial == "head" and head[0].text == 'still docs.\n"""' and [t.text for t in head[1:]] == ["x", "=", "1"]
    tail = scan('x = 1\ny = """doc\nmore')
    assert tail[-1].partial == "tail"
    keys = [h.key for h in hard(scan("u'a' \"b\" 0XFF 1_0.5e1 #x\n(c,);"))]
    assert keys == [h.key for h in hard(scan('"ab" 0xff 105.0 # x\nc'))]


def test_a_match_keeps_and_drops_the_target_lines_it_names():
    hunk = hunk_set("""
                 if token_budget > 0 and \\
                         num_tokens < budget:
        -            self.log('scheduling %d tokens '
        -                     'for now', num_tokens)  #note
        +            pass
                 outputs = self.make_outputs(token_budget, num_tokens,
                                             budget,)
        +        self.count = 1
                 self.count = 0; self.total = 0
    """).hunks[0]
    lines = NEW.split("\n")
    (place,) = _layout.search(lines, [(l.op, l.text) for l in hunk.lines], [(4, 24)]).places
    match = place.match
    old = [op_text for op_text in match.new if op_text[0] != "+"]
    assert len(old) == match.end - match.start
    assert [text for _, text in old] == lines[match.start : match.end]
    assert [op for op, _ in match.new] == [" ", "-", "+", " ", " ", " ", " ", " ", "+", " ", " "]


def test_scanner_reads_real_vllm_sources_as_pythons_tokenizer_does(vllm_dir):
    import io
    import tokenize

    layout = {tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT, tokenize.ENDMARKER}
    fstring_start = getattr(tokenize, "FSTRING_START", None)  # Python 3.12+ splits f-strings
    fstring_end = getattr(tokenize, "FSTRING_END", None)

    def expected(text):
        out, depth = [], 0
        for t in tokenize.generate_tokens(io.StringIO(text).readline):
            if t.type == fstring_start:
                if depth == 0:
                    out.append([t.start, None])
                depth += 1
            elif depth:
                depth -= t.type == fstring_end
                if not depth:
                    out[-1][1] = t.end
            elif t.type not in layout:
                out.append(t.string)
        lines = text.split("\n")

        def whole(a, b):
            return "\n".join(lines[a[0] - 1 : b[0]])[a[1] : len("\n".join(lines[a[0] - 1 : b[0]])) - len(lines[b[0] - 1]) + b[1]]

        return [x if isinstance(x, str) else whole(*x) for x in out]

    files = sorted((vllm_dir / "v1").rglob("*.py"))[:150]
    assert len(files) >= 100
    for path in files:
        text = path.read_text()
        assert [t.text for t in scan(text)] == expected(text), path


def test_the_same_code_twice_on_one_line_of_the_new_layout_is_ambiguous():
    hset = hunk_set("""
                 self.count = 0; self.total = 0
        +        self.flag = 1
    """)
    assert plan(hset).refusals == []  # once in NEW (as two lines)
    twice = NEW.replace("        self.count = 0\n        self.total = 0\n",
                        "        self.count = 0; self.total = 0; self.count = 0; self.total = 0\n")
    (refusal,) = plan(hset, twice).refusals
    assert refusal.reason is Reason.ANCHOR_AMBIGUOUS


@pytest.mark.parametrize("new, applies", [
    ("def f(a):\n    x = g(a, 1)\n\n    y = 2\n    return y\n", True),
    ("def f(a):\n    x = g(a, 1)\n\n\n    y = 2\n    return y\n", True),  # blank lines collapse or not
    ("def f(a):\n    x = g(a, 1)\n    y = 2\n    return y\n", False),  # no formatter drops that one
    ("def f(a):\n    x = g(a, 1)\n    # y next\n    y = 2\n    return y\n", False),
])
def test_a_blank_line_of_the_anchor_is_a_blank_line_of_the_target_unless_a_block_starts_there(new, applies):
    hset = parse_hunk_file("@@ pkg.sched:f\n     x = g(a,\n           1)\n \n+    z = 1\n     y = 2\n", "/sets/b.hunk", "b")
    assert plan(hset, "def f(a):\n    x = g(a,\n          1)\n\n    y = 2\n    return y\n").refusals == []
    p = plan(hset, new)
    assert (p.refusals == []) is applies, [r.message() for r in p.refusals]


def test_a_trailing_blank_line_of_the_anchor_where_the_target_goes_on_is_refused():
    hset = parse_hunk_file("@@ pkg.sched:f\n-    x = g(a,\n-          1)\n+    x = 0\n \n", "/sets/b.hunk", "b")
    assert plan(hset, "def f(a):\n    x = g(a, 1)\n\n    return x\n").refusals == []
    (refusal,) = plan(hset, "def f(a):\n    x = g(a, 1)\n    return x\n").refusals
    assert refusal.reason is Reason.ANCHOR_NOT_FOUND


def test_a_dropped_parenthesis_the_anchor_shows_nothing_inside_is_not_put_back():
    # `if (` as the anchor's last line would fit any `if` of the target.
    hset = parse_hunk_file("@@ pkg.sched:f\n     y = 1\n+    z = 2\n     if (\n", "/sets/i.hunk", "i")
    assert plan(hset, "def f(a):\n    y = 1\n    if (\n        a\n    ):\n        return y\n").refusals == []
    (refusal,) = plan(hset, "def f(a):\n    y = 1\n    if a:\n        return y\n").refusals
    assert refusal.reason is Reason.ANCHOR_NOT_FOUND


def test_added_line_above_an_anchor_whose_first_line_the_new_layout_glued_to_code_before_is_refused():
    # `set(outputs)) == 1, ...` is the tail of `assert len(set(outputs)) == 1, ...` in the new
    # layout: a line added above it would go inside that statement, where no line starts.
    (refusal,) = plan(hunk_set("""
        +            flag,
                     set(outputs)) == 1, "one output only"
                 return outputs
    """)).refusals
    assert refusal.reason is Reason.ANCHOR_NOT_FOUND
    assert "share a line with code before its anchor" in refusal.detail


def test_added_line_below_an_anchor_whose_last_line_the_new_layout_glued_to_code_after_is_refused():
    (refusal,) = plan(hunk_set("""
                 self.count = 0; self.total = 0
                 assert len(
        +            flag,
    """)).refusals
    assert refusal.reason is Reason.ANCHOR_NOT_FOUND
    assert "share a line with code after its anchor" in refusal.detail


def test_added_line_just_above_an_anchor_last_line_glued_to_code_after_lands_right():
    # Only lines added after the anchor's glued last line are refused; one above it is a statement.
    text = assert_lands_right(hunk_set("""
                 self.count = 0; self.total = 0
        +        self.log("counted")
                 assert len(
    """))
    assert '        self.total = 0\n        self.log("counted")\n        assert len(set(outputs)) == 1' in text


def test_added_line_above_the_anchor_lands_right():
    # The hunk's `+` lines before its first context line are part of what it means.
    text = assert_lands_right(hunk_set("""
        +        self.log("start")
                 token_budget = self.max_num_scheduled_tokens
                 num_tokens = (self.num_scheduled_tokens['a'] -
                               len(self.spec_decode_tokens.get('a', ())))
    """))
    assert '        self.log("start")\n        token_budget = self.max_num_scheduled_tokens\n' in text


def test_removed_line_above_an_anchor_last_line_glued_to_code_after_lands_right():
    # The new side is then one line, glued after: it is cut where the anchor's code ends, no further.
    text = assert_lands_right(hunk_set("""
        -        self.count = 0; self.total = 0
                 assert len(
    """))
    assert "self.count" not in text and '        assert len(set(outputs)) == 1, "one output only"\n' in text


@pytest.mark.parametrize("body, new_y", [
    ("             b)\n-    y = 2\n+    y = 3\n     z = bar(c,\n", "    y = 3\n"),
    ("             b)\n-    y = 2\n     z = bar(c,\n", ""),
])
def test_a_line_changed_between_anchor_lines_glued_to_code_before_and_after_lands_right(body, new_y):
    # The new layout joined both calls: the anchor's first line has `x = foo(a, ` before it, its
    # last line `d)` after it. What the hunk means is its new side, cut at the anchor's edges.
    old = "def f():\n    x = foo(a,\n            b)\n    y = 2\n    z = bar(c,\n            d)\n    return x\n"
    new = "def f():\n    x = foo(a, b)\n    y = 2\n    z = bar(c, d)\n    return x\n"
    hset = parse_hunk_file("@@ pkg.sched:f\n" + body, "/sets/g.hunk", "g")
    assert plan(hset, old).refusals == []
    p = plan(hset, new)
    assert p.refusals == [], [r.message() for r in p.refusals]
    assert p.results[0].hunks[0].status == "reformatted"
    assert p.modules["pkg.sched"].text == new.replace("    y = 2\n", new_y)


def test_plain_diff_laid_out_anew_is_in_the_function_it_changes_not_the_one_its_anchor_starts_in():
    # The anchor starts in f's last statement (joined by the new layout); the line changed is g's.
    old = "def f(a, b):\n    return foo(a,\n               b)\n\n\ndef g():\n    x = 1\n    return x\n"
    new = "def f(a, b):\n    return foo(a, b)\n\n\ndef g():\n    x = 1\n    return x\n"
    diff = ("--- a/pkg/sched.py\n+++ b/pkg/sched.py\n@@ -2,6 +2,6 @@\n"
            "     return foo(a,\n                b)\n \n \n def g():\n-    x = 1\n+    x = 2\n")
    hset = parse_diff_file(diff, "/sets/d.patch", "d")
    assert planner.plan([hset], read(old), None).results[0].hunks[0].scope == "g"
    p = planner.plan([hset], read(new), None)
    assert p.refusals == [], [r.message() for r in p.refusals]
    (result,) = p.results[0].hunks
    assert (result.status, result.scope) == ("reformatted", "g")
    assert p.modules["pkg.sched"].text == new.replace("x = 1", "x = 2")
