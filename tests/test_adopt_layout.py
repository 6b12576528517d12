"""The replacement's code laid out in upstream's text (adopt/relayout.py): statements compared as code,
changed ones re-indented to upstream's blocks, string contents never touched."""

from __future__ import annotations

import ast
import textwrap

from vllm_surgeon.adopt import code
from vllm_surgeon.adopt.relayout import Relayout, Text, apply_edits

UPSTREAM = '''\
class Engine:
    def step(self, batch, limit=4):
        """Run one step."""
        # Split the batch.
        if not batch:
            return None
        elif len(batch) > limit:
            batch = batch[:limit]
        else:
            batch = list(batch)
        for item in batch:
            self.run(item)
        self.log("""step done:
batch finished""")
        return batch
'''


def relaid(copy: str, upstream: str = UPSTREAM) -> tuple[str, list]:
    """Upstream's module after the edits that make Engine.step the copy's `step` (a module-level def)."""
    up, rep = Text.of(upstream), Text.of(textwrap.dedent(copy))
    u = ast.parse(upstream).body[0].body[0]
    r = next(s for s in ast.parse(textwrap.dedent(copy)).body if isinstance(s, ast.FunctionDef))
    assert isinstance(u, ast.FunctionDef) and isinstance(r, ast.FunctionDef)
    edits = Relayout(up, rep).function(u, r, [("rep", d) for d in r.decorator_list], "step")
    text = "\n".join(apply_edits(up.lines, edits))
    new = ast.parse(text).body[0].body[0]
    assert isinstance(new, ast.FunctionDef)
    assert code.function_key(new) == code.function_key(r)  # the copy's code, exactly
    return text, edits


COPY = '''
def step(self, batch, limit=4):
    if not batch:
        return None
    elif len(batch) > limit:
        batch = batch[:limit]
    else:
        batch = list(batch)
    for item in batch:
        self.run(item)
    self.log("""step done:
batch finished""")
    return batch
'''


def test_an_identical_copy_needs_no_edit():
    _, edits = relaid(COPY)
    assert edits == []


def test_a_statement_added_in_a_loop_is_one_insertion_at_upstreams_indentation():
    text, edits = relaid(COPY.replace("        self.run(item)\n", "        self.run(item)\n        # count it\n        self.count += 1\n"))
    assert len(edits) == 1 and edits[0].start == edits[0].end
    assert edits[0].lines == ["            # count it", "            self.count += 1"]
    assert "            self.count += 1\n        self.log(" in text


def test_a_changed_statement_with_a_multiline_string_keeps_the_string_verbatim():
    text, _ = relaid(COPY.replace('self.log("""step done:', 'self.warn("""step done:'))
    assert '        self.warn("""step done:\nbatch finished""")' in text  # content at column 0 stays there


def test_an_elif_body_change_touches_only_that_line_and_the_elif_stays():
    text, edits = relaid(COPY.replace("batch = batch[:limit]", "batch = batch[-limit:]"))
    assert len(edits) == 1 and edits[0].lines == ["            batch = batch[-limit:]"]
    assert "        elif len(batch) > limit:" in text


def test_else_if_written_out_in_the_copy_replaces_upstreams_elif_chain_as_code():
    copy = COPY.replace("    elif len(batch) > limit:\n        batch = batch[:limit]\n    else:\n        batch = list(batch)\n",
                        "    else:\n        if len(batch) > 2 * limit:\n            batch = batch[:limit]\n"
                        "        else:\n            batch = list(batch)\n")
    relaid(copy)  # the code equals the copy's (asserted in relaid)


def test_a_changed_default_changes_only_the_def_line_and_a_decorator_is_added():
    copy = "import functools\n@functools.cache\n" + COPY.lstrip("\n").replace("limit=4", "limit=8")
    text, edits = relaid(copy)
    assert "    @functools.cache\n    def step(self, batch, limit=8):\n" in text
    assert '"""Run one step."""' in text and "# Split the batch." in text


def test_statements_on_one_line_are_replaced_by_the_statement_around_them():
    upstream = UPSTREAM.replace("        for item in batch:\n            self.run(item)\n",
                                "        for item in batch: self.run(item)\n")
    text, _ = relaid(COPY.replace("        self.run(item)\n", "        self.run(item, fast=True)\n"), upstream)
    assert "        for item in batch:\n            self.run(item, fast=True)\n" in text


def test_a_changed_if_header_is_replaced_alone_and_its_body_keeps_upstreams_text():
    upstream = UPSTREAM.replace("        self.log(", "        self.log(\n            # keep\n            ").replace(
        '"""step done:\nbatch finished""")', '"""step done:\nbatch finished""",\n        )')
    copy = COPY.replace("elif len(batch) > limit:", "elif len(batch) >= limit:").replace(
        '    self.log("""step done:\nbatch finished""")', '    self.log("""step done:\nbatch finished""")')
    text, edits = relaid(copy, upstream)
    assert [e.lines for e in edits] == [["        elif len(batch) >= limit:"]]
    assert "            # keep" in text  # the log call (the same code, laid out otherwise) is upstream's text
