"""Plain unified diffs as hunk sets: module from the path, header numbers kept as hints only."""

import textwrap

import pytest

from vllm_surgeon._difffile import module_for_path, parse_diff_file
from vllm_surgeon._model import HunkFileError

GIT_DIFF = """\
From: someone
Subject: make the scheduler nicer

vllm: >=0.30
diff --git a/vllm/v1/core/sched/scheduler.py b/vllm/v1/core/sched/scheduler.py
index 1111111..2222222 100644
--- a/vllm/v1/core/sched/scheduler.py
+++ b/vllm/v1/core/sched/scheduler.py
@@ -10,4 +10,5 @@ class Scheduler(SchedulerInterface):
     def f(self):
         a = 1
-        b = 2
+        b = 3
+        c = 4

@@ -40 +41 @@ def helper():
-    return 1
+    return 2
\\ No newline at end of file
"""


def parse(text: str, path: str = "sets/p.patch"):
    return parse_diff_file(text, path, "p")


def error(text: str) -> str:
    with pytest.raises(HunkFileError) as info:
        parse(textwrap.dedent(text))
    return str(info.value)


@pytest.mark.parametrize(
    "path, module",
    [
        ("a/vllm/v1/core/sched/scheduler.py", "vllm.v1.core.sched.scheduler"),
        ("/venv/lib/python3.11/site-packages/vllm/v1/request.py\t2026-11-27 10:00:00.0 +0000", "vllm.v1.request"),
        ("/home/me/vllm/vllm/v1/__init__.py", "vllm.v1"),
        ("b/transformers/utils.py", "transformers.utils"),
        ("scheduler.py.orig", None),
        ("/dev/null", None),
    ],
)
def test_module_is_read_from_the_file_path(path, module):
    assert module_for_path(path) == module


def test_git_diff_with_preamble_fields_and_two_hunks():
    s = parse(GIT_DIFF)
    assert s.kind == "diff" and s.fields == {"vllm": ">=0.30"}
    first, second = s.hunks
    assert str(first.target) == "vllm.v1.core.sched.scheduler" and first.from_diff
    assert first.hint_line == 10 and first.hint_scope == "class Scheduler(SchedulerInterface):"
    assert first.anchor == ("    def f(self):", "        a = 1", "        b = 2", "")
    assert first.replacement[-2:] == ("        c = 4", "")
    assert second.hint_line == 40 and second.origin.line == 16


def test_new_file_and_unknown_module_are_refused_with_their_line():
    assert "creates the file" in error("--- /dev/null\n+++ b/vllm/new.py\n@@ -0,0 +1 @@\n+x = 1\n")
    message = error("--- old.txt\n+++ new.txt\n@@ -1 +1 @@\n-a\n+b\n")
    assert message.startswith("sets/p.patch:1: cannot tell which module 'old.txt' is")


def test_hunk_whose_body_does_not_match_its_header_counts():
    message = error("--- a/vllm/x.py\n+++ b/vllm/x.py\n@@ -1,3 +1,3 @@\n a\n-b\n+c\n")
    assert message.startswith("sets/p.patch:3: hunk ends early or runs long: its header promises 3 old and 3 new lines")


def test_malformed_header_rename_and_empty_diff():
    assert "malformed hunk header" in error("--- a/vllm/x.py\n+++ b/vllm/x.py\n@@ -1 +1 @\n")
    assert "unsupported diff content" in error("diff --git a/vllm/x.py b/vllm/y.py\nrename from vllm/x.py\n")
    assert "no diff hunks found" in error("just text\n")
