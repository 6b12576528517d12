"""Plain unified diffs as hunk sets: module from the path, header numbers kept as hints only."""

import textwrap

import pytest

from vllm_surgeon._difffile import parse_diff_file
from vllm_surgeon._paths import candidates
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
