"""Plain unified diffs as hunk sets: module from the path, header numbers kept as hints only."""

import textwrap

import pytest

from vllm_surgeon.core.model import HunkFileError
from vllm_surgeon.engine.paths import candidates
from vllm_surgeon.sets.difffile import parse_diff_file

GIT_DIFF = """\
vllm: >=0.30
From: someone
Subject: make the scheduler nicer

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
    "path, modules",
    [
        ("a/vllm/v1/core/sched/scheduler.py", ["a.vllm.v1.core.sched.scheduler", "vllm.v1.core.sched.scheduler",
                                                "v1.core.sched.scheduler", "core.sched.scheduler", "sched.scheduler"]),
        ("/venv/lib/python3.11/site-packages/vllm/v1/request.py", ["vllm.v1.request", "v1.request"]),
        ("/home/me/vllm/vllm/v1/__init__.py", ["home.me.vllm.vllm.v1", "me.vllm.vllm.v1", "vllm.vllm.v1", "vllm.v1", "v1"]),
        ("b/transformers/utils.py", ["b.transformers.utils", "transformers.utils"]),  # never the top-level `utils`
        ("a/setup.py", ["a.setup", "setup"]),  # a top-level module only when nothing but a/ comes before it
        ("scheduler.py.orig", []),
    ],
)
def test_the_modules_a_path_may_be_are_the_suffixes_of_its_folders(path, modules):
    # Which of them is real is decided against the tree being read (tests/test_series.py).
    assert [c.module for c in candidates(path)] == modules


def test_git_diff_with_preamble_fields_and_two_hunks():
    s = parse(GIT_DIFF)
    assert s.kind == "diff" and s.fields == {"vllm": ">=0.30"}
    first, second = s.hunks
    assert first.file.path == "b/vllm/v1/core/sched/scheduler.py" and first.from_diff and not s.commits
    assert first.hint_line == 10 and first.hint_scope == "class Scheduler(SchedulerInterface):"
    assert first.anchor == ("    def f(self):", "        a = 1", "        b = 2", "")
    assert first.replacement[-2:] == ("        c = 4", "")
    assert second.hint_line == 40 and second.origin.line == 16


def test_a_new_file_is_a_hunk_that_creates_its_module():
    (hunk,) = parse("--- /dev/null\n+++ b/vllm/new.py\n@@ -0,0 +1 @@\n+x = 1\n").hunks
    assert hunk.creates and hunk.file.change == "new" and hunk.anchor == ()
    assert "creates 'b/vllm/new.py' but expects 2 old lines" in error("--- /dev/null\n+++ b/vllm/new.py\n@@ -1,2 +1 @@\n-a\n-b\n+x = 1\n")


def test_hunk_whose_body_does_not_match_its_header_counts():
    message = error("--- a/vllm/x.py\n+++ b/vllm/x.py\n@@ -1,3 +1,3 @@\n a\n-b\n+c\n")
    assert message.startswith("sets/p.patch:3: hunk ends early or runs long: its header promises 3 old and 3 new lines")


def test_malformed_header_rename_and_empty_diff():
    assert "malformed hunk header" in error("--- a/vllm/x.py\n+++ b/vllm/x.py\n@@ -1 +1 @\n")
    assert parse("diff --git a/vllm/x.py b/vllm/y.py\nrename from vllm/x.py\nrename to vllm/y.py\n").files[0].change == "rename"
    assert "no diff hunks found" in error("just text\n")


MBOX = """\
# description: two commits kept as one file
skip: docs/**
From 1111111111111111111111111111111111111111 Mon Sep 17 00:00:00 2001
From: Dev <dev@example.com>
Date: Mon, 1 Jan 2026 00:00:00 +0000
Subject: [PATCH 1/2] =?UTF-8?q?sched:=20caf=C3=A9?= and a subject
 folded over two lines

why: this line is the commit message, never a header field
---
 vllm/x.py | 2 +-
 1 file changed, 1 insertion(+), 1 deletion(-)

diff --git a/vllm/x.py b/vllm/x.py
index 1..2 100644
--- a/vllm/x.py
+++ b/vllm/x.py
@@ -1,2 +1,2 @@
 a = 1
-b = 2
+b = 3
-- 
2.39.5


From 2222222222222222222222222222222222222222 Mon Sep 17 00:00:00 2001
From: Dev <dev@example.com>
Subject: [PATCH 2/2] second

---
diff --git a/vllm/x.py b/vllm/x.py
--- a/vllm/x.py
+++ b/vllm/x.py
@@ -2 +2,2 @@
 b = 3
+c = 4
-- 
2.39.5
"""  # noqa: W291 - "-- " (with its space) is git's signature separator in an mbox


def test_mbox_series_commits_subjects_and_fields_before_the_first_message_only():
    s = parse(MBOX)
    assert s.fields == {"description": "two commits kept as one file", "skip": "docs/**"} and s.skip == ("docs/**",)
    first, second = s.commits
    assert (first.number, first.total, first.sha[:4], first.origin.line) == (1, 2, "1111", 3)
    assert first.subject == "sched: caf\u00e9 and a subject folded over two lines" and second.subject == "second"
    assert first.label() == "commit 1/2 111111111111 'sched: caf\u00e9 and a subject folded over two lines'"
    h1, h2 = s.hunks
    assert h1.commit is first and h2.commit is second and h1.origin.line == 18 and h2.origin.line == 34
    # The `-- ` signature after the last hunk is not a removed line.
    assert h1.lines[-1].text == "b = 3" and h2.lines[-1].text == "c = 4"


def test_no_newline_markers_make_the_hunk_sit_at_the_end_of_the_file():
    (drop,) = parse("--- a/x.py\n+++ b/x.py\n@@ -1 +1 @@\n-a = 1\n+a = 2\n\\ No newline at end of file\n").hunks
    assert drop.at_end and drop.anchor == ("a = 1", "") and drop.replacement == ("a = 2",)
    (add,) = parse("--- a/x.py\n+++ b/x.py\n@@ -1 +1 @@\n-a = 1\n\\ No newline at end of file\n+a = 1\n").hunks
    assert add.at_end and add.anchor == ("a = 1",) and add.replacement == ("a = 1", "")
    (plain,) = parse("--- a/x.py\n+++ b/x.py\n@@ -1 +1 @@\n-a = 1\n+a = 2\n").hunks
    assert not plain.at_end


def test_crlf_patch_files_and_unicode_line_separators_inside_lines():
    (hunk,) = parse("--- a/x.py\r\n+++ b/x.py\r\n@@ -1 +1 @@\r\n-s = 'a\u2028b'\r\n+s = 'a\x0cb'\r\n").hunks
    assert hunk.anchor == ("s = 'a\u2028b'",) and hunk.replacement == ("s = 'a\x0cb'",)
