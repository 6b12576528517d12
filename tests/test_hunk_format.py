"""The `.hunk` format: what it reads, and the file:line of every malformed input."""

import textwrap

import pytest

from vllm_surgeon.core.model import HunkFileError
from vllm_surgeon.sets.hunkfile import parse_hunk_file


def parse(text: str):
    return parse_hunk_file(textwrap.dedent(text).lstrip("\n"), "sets/x.hunk", "x")


def error(text: str) -> str:
    with pytest.raises(HunkFileError) as info:
        parse(text)
    return str(info.value)


def test_header_fields_and_sections_are_read_in_order():
    s = parse("""
        # a comment
        description: Two hunks
        why: because
          the reason goes on
        vllm: >=0.10,<0.40

        @@ pkg.mod:Cls.method
             a = 1
        -    b = 2
        +    b = 3

        @@ pkg.mod
        +import os
    """)
    assert s.fields == {"description": "Two hunks", "why": "because the reason goes on", "vllm": ">=0.10,<0.40"}
    assert [str(h.target) for h in s.hunks] == ["pkg.mod:Cls.method", "pkg.mod"]
    first = s.hunks[0]
    assert first.anchor == ("    a = 1", "    b = 2")
    assert first.replacement == ("    a = 1", "    b = 3")
    assert first.origin.line == 7 and first.lines[1].origin.line == 9
    assert str(s.vllm_range) == "<0.40,>=0.10"


def test_blank_lines_inside_a_hunk_are_context_and_trailing_ones_are_dropped():
    s = parse("""
        @@ m:f
             x = 1

        +    y = 2
             z = 3


        @@ m:g
        +    pass
    """)
    assert s.hunks[0].anchor == ("    x = 1", "", "    z = 3")
    assert [l.op for l in s.hunks[0].lines] == [" ", " ", "+", " "]


def test_unknown_header_field_names_file_and_line():
    assert error("description: ok\nvlm: >=0.1\n@@ m:f\n+x\n").startswith("sets/x.hunk:2: unknown header field 'vlm'")


def test_line_without_op_character_is_refused_with_its_line():
    message = error("@@ m:f\n a\n*b\n")
    assert message.startswith("sets/x.hunk:3:") and "must start with ' ' (context), '-' (removed) or '+'" in message


def test_section_without_target_or_with_a_bad_target():
    assert error("@@\n+x\n").startswith("sets/x.hunk:1: '@@' must name a target")
    assert "is not a module name" in error("@@ pkg/mod.py:f\n+x\n")
    assert "is not a qualified name" in error("@@ pkg.mod:Cls..f\n+x\n")


def test_hunk_that_changes_nothing_is_refused():
    assert error("@@ m:f\n a\n b\n").startswith("sets/x.hunk:1: hunk for m:f changes nothing")


def test_file_without_hunks_and_text_before_the_first_section():
    assert "no hunks" in error("description: nothing here\n")
    assert error("description: x\nthis is not a field\n").startswith("sets/x.hunk:2: expected a header field")


def test_bad_version_range_and_duplicate_field_name_their_lines():
    assert error("vllm: banana\n@@ m:f\n+x\n").startswith("sets/x.hunk:1: vllm: 'banana' is not a version range")
    assert error("why: a\nwhy: b\n@@ m:f\n+x\n").startswith("sets/x.hunk:2: header field 'why' given twice")


def test_the_bundled_priority_set_parses():
    from vllm_surgeon.sets.loader import load_file
    from vllm_surgeon.sets.search import bundled_dir

    s = load_file(bundled_dir() / "priority.hunk")
    assert s.name == "priority" and s.kind == "hunk"
    assert "vllm.v1.core.sched.scheduler:Scheduler.schedule" in s.targets
    assert s.fields["upstream"].endswith("/pull/20608")


def test_a_new_module_section_holds_only_added_lines():
    from vllm_surgeon.core.model import HunkFileError
    from vllm_surgeon.sets.hunkfile import parse_hunk_file

    s = parse_hunk_file("@@ vllm.v1.core.sched.job_queue @@ new\n+X = 1\n+\n+Y = 2\n", "/s/new.hunk", "new")
    (hunk,) = s.hunks
    assert hunk.creates and hunk.replacement == ("X = 1", "", "Y = 2") and hunk.anchor == ()
    with pytest.raises(HunkFileError, match=r"/s/bad.hunk:2: '@@ vllm.x @@ new' creates the module: every line"):
        parse_hunk_file("@@ vllm.x @@ new\n x = 1\n+y = 2\n", "/s/bad.hunk", "bad")
    with pytest.raises(HunkFileError, match=r"/s/bad.hunk:1: '@@ ... @@ new' creates a module: name the module alone"):
        parse_hunk_file("@@ vllm.x:f @@ new\n+y = 2\n", "/s/bad.hunk", "bad")
