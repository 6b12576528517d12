"""Shapes that real third-party patch series kept against vLLM releases take (tools/check_series.py
found each one), reproduced with invented content on small trees: every result must be what
`patch -p1 -F0` makes, and `diff` output must be accepted by `git apply` and `patch`."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from test_series import check_diff_output, commit, git, make_repo, plan_on

from vllm_surgeon.core.refusal import Reason
from vllm_surgeon.sets.loader import load_file


def write_tree(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return root


def patch_truth(base: Path, patch: Path, where: Path) -> Path:
    """What `patch -p1 -F0` makes of `base` (it must apply cleanly)."""
    shutil.copytree(base, where)
    run = subprocess.run(["patch", "-p1", "-F0", "--force", "-i", str(patch)], cwd=where, capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr
    return where


def assert_like_patch(patch: Path, base: Path, tmp_path: Path):
    """vllm-surgeon applies the set at `base` and every module it changes is byte for byte what patch makes."""
    plan = plan_on(load_file(patch), base)
    assert plan.refusals == [], [r.message() for r in plan.refusals]
    truth = patch_truth(base, patch, tmp_path / "truth")
    for module, patched in plan.modules.items():
        rel = Path(patched.source.path).relative_to(base)
        assert patched.text == (truth / rel).read_text(), module
    check_diff_output(plan, base)
    return plan


# -- paths ---------------------------------------------------------------------------------------------

def test_a_folder_named_like_a_top_level_package_is_read_as_the_longest_module_path(tmp_path):
    # llm-scaler at vLLM 0.10-0.14: vllm/transformers_utils/tokenizers/__init__.py and a new
    # vllm/tokenizers/bpe_qwen.py, where Hugging Face's top-level `tokenizers` is installed too.
    files = {"app/__init__.py": "", "app/tok/__init__.py": "from app.tok.base import Base\n",
             "app/tok/base.py": "class Base:\n    pass\n", "tok/__init__.py": "VERSION = 1\n", "tok/base.py": "x = 1\n"}
    repo = make_repo(tmp_path / "src", files)
    commit(repo, {"app/tok/__init__.py": "from app.tok.base import Base\nfrom app.tok.bpe import Bpe\n",
                  "app/tok/bpe.py": "class Bpe:\n    pass\n", "app/tok/base.py": "class Base:\n    name = 'base'\n"},
           "tok: add bpe")
    (tmp_path / "s.patch").write_text(git(repo, "format-patch", "--stdout", "HEAD~1"))
    base = write_tree(tmp_path / "base", files)
    plan = assert_like_patch(tmp_path / "s.patch", base, tmp_path)
    assert set(plan.modules) == {"app.tok", "app.tok.bpe", "app.tok.base"}


def test_the_two_paths_of_one_file_naming_two_modules_are_ambiguous(tmp_path):
    base = write_tree(tmp_path / "base", {"pkg/__init__.py": "", "pkg/a.py": "import os\n", "pkg/b.py": "import os\n"})
    (tmp_path / "p.patch").write_text("--- a/pkg/a.py\n+++ b/pkg/b.py\n@@ -1 +1 @@\n-import os\n+import sys\n")
    refusal, = plan_on(load_file(tmp_path / "p.patch"), base).refusals
    assert refusal.reason is Reason.PATH_AMBIGUOUS and "pkg.a (" in refusal.detail and "pkg.b (" in refusal.detail


# -- series --------------------------------------------------------------------------------------------

def test_a_later_commit_changes_a_module_an_earlier_commit_created(tmp_path):
    # llm-scaler's ai-dynamo-xpu series at vLLM 0.14.0: commit 8 adds vllm/v1/kv_offload/worker/cpu_xpu.py,
    # commit 11 changes an import in it.
    files = {"pkg/__init__.py": "", "pkg/worker/__init__.py": "", "pkg/worker/gpu.py": "def copy(x):\n    return x\n"}
    repo = make_repo(tmp_path / "src", files)
    commit(repo, {"pkg/worker/xpu.py": "import os\n\nfrom pkg.worker.gpu import copy\n\n\ndef run(x):\n    return copy(x)\n"},
           "worker: xpu")
    commit(repo, {"pkg/worker/gpu.py": "def copy(x):\n    return list(x)\n"}, "gpu: copy lists")
    commit(repo, {"pkg/worker/xpu.py": "import os\n\nfrom pkg.worker import gpu\n\n\ndef run(x):\n    return gpu.copy(x)\n"},
           "xpu: import the module")
    (tmp_path / "s.patch").write_text(git(repo, "format-patch", "--stdout", "HEAD~3"))
    base = write_tree(tmp_path / "base", files)
    plan = assert_like_patch(tmp_path / "s.patch", base, tmp_path)
    assert plan.modules["pkg.worker.xpu"].created


# -- hunks ---------------------------------------------------------------------------------------------

def test_a_hunk_filling_an_existing_empty_file_applies_and_only_to_an_empty_file(tmp_path):
    # omni-infer at vLLM 0.8.3: `index e69de29bb..` / `@@ -0,0 +1,12 @@` on vllm/distributed/kv_transfer/__init__.py.
    files = {"pkg/__init__.py": "", "pkg/sub/__init__.py": "", "pkg/sub/state.py": "def get():\n    return 1\n"}
    repo = make_repo(tmp_path / "src", files)
    commit(repo, {"pkg/sub/__init__.py": "from pkg.sub.state import get\n\n__all__ = ['get']\n"}, "sub: export get")
    (tmp_path / "s.patch").write_text(git(repo, "diff", "HEAD~1", "HEAD"))
    assert "@@ -0,0 +1,3 @@" in (tmp_path / "s.patch").read_text()
    base = write_tree(tmp_path / "base", files)
    assert_like_patch(tmp_path / "s.patch", base, tmp_path)
    (base / "pkg/sub/__init__.py").write_text("X = 1\n")  # upstream filled it meanwhile: the anchor (an empty file) is gone
    refusal, = plan_on(load_file(tmp_path / "s.patch"), base).refusals
    assert refusal.reason is Reason.ANCHOR_NOT_FOUND and "empty file" in refusal.detail and "pkg.sub is not empty" in refusal.detail


# -- diffs made inside a package's folder, diff -N ------------------------------------------------------

PKG = {"pkg/__init__.py": "", "pkg/_version.py": "version = '1.0'\n", "pkg/core/__init__.py": "",
       "pkg/core/sched.py": "def schedule(queue):\n    return queue.pop(0)\n"}


def diff_naur(tmp_path: Path, files: dict[str, str], changes: dict[str, str | None], old: str, new: str) -> str:
    """`diff -Naur OLD NEW` of two copies of a folder, as `diff` writes it (time stamps, epoch for a missing file)."""
    for side, extra in ((old, {}), (new, changes)):
        for rel, text in {**files, **extra}.items():
            if text is not None:
                (tmp_path / side / rel).parent.mkdir(parents=True, exist_ok=True)
                (tmp_path / side / rel).write_text(text)
    run = subprocess.run(["diff", "-Naur", old, new], cwd=tmp_path, capture_output=True, text=True)
    assert run.returncode == 1, run.stderr
    return run.stdout


def test_a_diff_of_two_copies_of_a_package_folder_applies_with_root(tmp_path):
    # NVIDIA Dynamo's vllm_patch_063post1.patch: `diff -Naur v0.6.3.post1_vllm/ patched_vllm/`, applied with
    # `cd site-packages/vllm && patch -p1`; its paths (`v0.6.3.post1_vllm/core/scheduler.py`) name no module
    # from a tree's root. The set says `root: vllm`.
    inside = {rel[len("pkg/"):]: text for rel, text in PKG.items()}
    text = diff_naur(tmp_path / "d", inside, {"_version.py": "version = '1.0.post1'\n",
                                              "core/sched.py": "def schedule(queue):\n    return queue.pop()\n",
                                              "core/queue.py": "class Queue(list):\n    pass\n"}, "v1.0_pkg", "patched_pkg")
    assert "--- v1.0_pkg/core/queue.py\t1970-01-01" in text
    (tmp_path / "p.patch").write_text("root: pkg\n\n" + text)
    base = write_tree(tmp_path / "base", PKG)
    plan = plan_on(load_file(tmp_path / "p.patch"), base)
    assert plan.refusals == [], [r.message() for r in plan.refusals]
    assert set(plan.modules) == {"pkg._version", "pkg.core.sched", "pkg.core.queue"} and plan.modules["pkg.core.queue"].created
    truth = tmp_path / "truth"
    shutil.copytree(base, truth)
    subprocess.run(["patch", "-p1", "-F0", "-i", str(tmp_path / "p.patch")], cwd=truth / "pkg", check=True, capture_output=True)
    for module, patched in plan.modules.items():
        assert patched.text == (truth / Path(patched.source.path).relative_to(base)).read_text(), module
    check_diff_output(plan, base)  # diff output is from the tree's root: `a/pkg/core/sched.py`
    (tmp_path / "p.patch").write_text(text)  # without root: the paths are no module, and the refusal says which
    refusals = plan_on(load_file(tmp_path / "p.patch"), base).refusals
    assert {r.reason for r in refusals} == {Reason.PATH_NOT_FOUND} and len(refusals) == 3


def test_diff_N_epoch_time_stamps_create_a_module_from_a_trees_root(tmp_path):
    text = diff_naur(tmp_path / "d", PKG, {"pkg/core/queue.py": "class Queue(list):\n    pass\n"}, "a", "b")
    assert "+++ b/pkg/core/queue.py\t" in text and "@@ -0,0 +1,2 @@" in text
    (tmp_path / "p.patch").write_text(text)
    plan = assert_like_patch(tmp_path / "p.patch", write_tree(tmp_path / "base", PKG), tmp_path)
    assert plan.modules["pkg.core.queue"].created


def test_root_is_checked_and_only_for_diff_sets(tmp_path):
    from vllm_surgeon.core.model import HunkFileError

    (tmp_path / "bad.patch").write_text("root: pkg/core\n--- a/x.py\n+++ b/x.py\n@@ -1 +1 @@\n-a\n+b\n")
    with pytest.raises(HunkFileError, match=r"bad.patch:1: root: 'pkg/core' is not a package name"):
        load_file(tmp_path / "bad.patch")
    (tmp_path / "h.hunk").write_text("root: pkg\n\n@@ pkg.core.sched:schedule\n-    return queue.pop(0)\n+    return queue.pop()\n")
    with pytest.raises(HunkFileError, match=r"h.hunk:1: root: is for diff sets"):
        load_file(tmp_path / "h.hunk")


# -- where a diff made on a nearby commit lands (offsets), as patch -F0 decides it -----------------------

def made_on_a_nearby_commit(tmp_path: Path, dev: str, changed: str, base: str) -> tuple[Path, Path]:
    """A git diff of pkg/mod.py from `dev` to `changed`, and a tree holding `base` (the release, which differs
    from `dev` elsewhere, as FlagScale's and BlitzLoad's vLLM patches differ from their release)."""
    repo = make_repo(tmp_path / "src", {"pkg/__init__.py": "", "pkg/mod.py": dev})
    commit(repo, {"pkg/mod.py": changed}, "change")
    (tmp_path / "s.patch").write_text(git(repo, "diff", "HEAD~1", "HEAD"))
    return tmp_path / "s.patch", write_tree(tmp_path / "base", {"pkg/__init__.py": "", "pkg/mod.py": base})


BLOCK = ("    total = 0\n    count = 0\n    for item in items:\n        total += item\n        count += 1\n"
         "    mean = total / count\n    return mean\n")


def test_an_anchor_found_twice_off_its_line_is_where_patch_puts_it_or_refused(tmp_path):
    dev = f"def first(items):\n{BLOCK}\n\ndef second(items):\n{BLOCK}"
    changed = dev[: dev.rindex("        total += item")] + "        total += item * 2\n" + BLOCK[BLOCK.index("        count += 1"):]
    # Upstream (the release) has a long function between the two: from the hunk's line (12), the nearest
    # occurrence is first()'s, where patch -F0 puts it, though git named `def second`.
    filler = "\n\ndef middle():\n" + "    pass\n" * 20
    patch, base = made_on_a_nearby_commit(tmp_path, dev, changed, dev.replace("\n\ndef second", filler + "\n\ndef second"))
    assert "@@ def second(items):" in patch.read_text()
    refusal, = plan_on(load_file(patch), base).refusals
    assert refusal.reason is Reason.ANCHOR_AMBIGUOUS and "patch would apply it, is line 2" in refusal.detail
    # A few lines off only: the nearest is second()'s, the one git named too: applied there, as patch does.
    shutil.rmtree(tmp_path / "src"), shutil.rmtree(base)
    patch, base = made_on_a_nearby_commit(tmp_path, dev, changed, dev.replace("\n\ndef second", "\n\nX = 1\nY = 2\n\n\ndef second"))
    assert assert_like_patch(patch, base, tmp_path).results[0].hunks[0].scope == "second"


def test_a_hunk_diff_wrote_at_the_end_of_a_file_takes_the_last_of_its_occurrences(tmp_path):
    block = "x = 0\ny = 1\nz = 2\nw = 3\n"
    dev = block + "# between\n" + block
    patch, base = made_on_a_nearby_commit(tmp_path, dev, dev[: -len("w = 3\n")] + "w = 4\n",
                                          block + "# between\n" + "v = 9\n" * 12 + block)
    assert "@@ -6,4 +6,4 @@" in patch.read_text()  # 3 lines before the change, none after: the end of the file
    plan = assert_like_patch(patch, base, tmp_path)
    assert plan.modules["pkg.mod"].text.endswith("v = 9\nx = 0\ny = 1\nz = 2\nw = 4\n")


def test_a_folder_written_by_format_patch_with_a_cover_letter_skips_the_letter(tmp_path):
    files = {"pkg/__init__.py": "", "pkg/mod.py": "import os\n\n\ndef f(x):\n    return x\n"}
    repo = make_repo(tmp_path / "src", files)
    commit(repo, {"pkg/mod.py": "import os\n\n\ndef f(x):\n    return x + 1\n"}, "mod: f adds one")
    commit(repo, {"pkg/mod.py": "import sys\n\n\ndef f(x):\n    return x + 1\n"}, "mod: sys")
    git(repo, "format-patch", "-q", "--cover-letter", "-o", str(tmp_path / "sets" / "jobs"), "HEAD~2")
    assert sorted(p.name for p in (tmp_path / "sets" / "jobs").iterdir())[0] == "0000-cover-letter.patch"
    base = write_tree(tmp_path / "base", files)
    s = load_file(tmp_path / "sets" / "jobs")
    assert [c.subject for c in s.commits] == ["mod: f adds one", "mod: sys"]
    plan = plan_on(s, base)
    assert plan.refusals == [] and plan.modules["pkg.mod"].text == "import sys\n\n\ndef f(x):\n    return x + 1\n"
    (tmp_path / "sets" / "jobs" / "0001-mod-f-adds-one.patch").unlink()  # a folder of only a letter has nothing to apply
    (tmp_path / "sets" / "jobs" / "0002-mod-sys.patch").unlink()
    with pytest.raises(Exception, match="no diff hunks found"):
        load_file(tmp_path / "sets" / "jobs")


def test_a_new_package_whose_init_is_empty_is_created_and_imports(fakepkg, tmp_path):
    # git writes a new empty file as `new file mode` + `index 0000000..e69de29` and no hunk.
    import json

    mod = "import os\n\n\ndef f(x):\n    return x\n"
    repo = make_repo(tmp_path / "src", {"pkg/__init__.py": "", "pkg/mod.py": mod})
    commit(repo, {"pkg/jobs/__init__.py": "", "pkg/jobs/queue.py": "def take(x):\n    return [x, x]\n",
                  "pkg/mod.py": mod.replace("    return x\n", "    from pkg.jobs.queue import take\n    return take(x)\n")},
           "pkg: a jobs package")
    text = git(repo, "format-patch", "--stdout", "HEAD~1")
    assert "index 0000000..e69de29\ndiff --git a/pkg/jobs/queue.py" in text
    fakepkg.module("pkg.mod", mod)
    fakepkg.hunks.mkdir()
    (fakepkg.hunks / "jobs.patch").write_text(text)
    base = write_tree(tmp_path / "base", {"pkg/__init__.py": "", "pkg/mod.py": mod})
    plan = assert_like_patch(fakepkg.hunks / "jobs.patch", base, tmp_path)
    assert plan.modules["pkg.jobs"].created and plan.modules["pkg.jobs"].text == ""
    out = fakepkg.run("""
        import json, pkg.mod, pkg.jobs
        print(json.dumps([pkg.mod.f(3), pkg.jobs.__file__]))
    """, hunks="jobs")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == [[3, 3], str(fakepkg.src / "pkg" / "jobs" / "__init__.py")]


def test_an_empty_new_module_converts_to_a_section_that_creates_it_empty(tmp_path):
    from vllm_surgeon.authoring.convert import convert
    from vllm_surgeon.sets.hunkfile import parse_hunk_file
    from vllm_surgeon.trees.releases import directory

    mod = "import os\n"
    repo = make_repo(tmp_path / "src", {"pkg/__init__.py": "", "pkg/mod.py": mod})
    commit(repo, {"pkg/marker.py": "", "pkg/mod.py": "import os\nimport pkg.marker\n"}, "pkg: a marker module")
    (tmp_path / "s.patch").write_text(git(repo, "format-patch", "--stdout", "HEAD~1"))
    base = write_tree(tmp_path / "base", {"pkg/__init__.py": "", "pkg/mod.py": mod})
    diff_plan = assert_like_patch(tmp_path / "s.patch", base, tmp_path)
    converted = convert(load_file(tmp_path / "s.patch"), directory(base), str(tmp_path / "s.converted.hunk"))
    assert "@@ pkg.marker @@ new\n\n@@ pkg.mod" in converted.text
    again = plan_on(parse_hunk_file(converted.text, "s.converted.hunk", "s"), base)
    assert again.refusals == [] and {m: p.text for m, p in again.modules.items()} == {m: p.text for m, p in diff_plan.modules.items()}


def test_a_hand_trimmed_hunk_with_less_context_after_than_before_applies_as_git_applies_it(tmp_path):
    # Dynamo's v0.22.0/ultra/0005 patch: 3 context lines before its change and 2 after, in the middle of the
    # file. GNU patch -F0 ties such a hunk to the end of the file and rejects it; git apply / git am apply it
    # where its lines are, and so does vllm-surgeon (the anchor matches exactly, once).
    mod = "def f(x):\n    a = 1\n    b = 2\n    c = 3\n    d = 4\n    e = 5\n    f = 6\n    return a\n\n\nZ = 0\n"
    base = write_tree(tmp_path / "base", {"pkg/__init__.py": "", "pkg/mod.py": mod})
    (tmp_path / "p.patch").write_text(
        "--- a/pkg/mod.py\n+++ b/pkg/mod.py\n@@ -2,6 +2,6 @@ def f(x):\n     a = 1\n     b = 2\n     c = 3\n"
        "-    d = 4\n+    d = 40\n     e = 5\n     f = 6\n")
    rejected = subprocess.run(["patch", "--dry-run", "-p1", "-F0", "-i", str(tmp_path / "p.patch")], cwd=base,
                              capture_output=True, text=True)
    assert rejected.returncode == 1 and "FAILED" in rejected.stdout
    git_tree = tmp_path / "git"
    shutil.copytree(base, git_tree)
    subprocess.run(["git", "apply", "-p1", str(tmp_path / "p.patch")], cwd=git_tree, check=True,
                   env={**os.environ, "GIT_CEILING_DIRECTORIES": str(tmp_path)})
    plan = plan_on(load_file(tmp_path / "p.patch"), base)
    assert plan.refusals == [] and plan.modules["pkg.mod"].text == (git_tree / "pkg/mod.py").read_text() == mod.replace("d = 4", "d = 40")


def test_a_rename_of_a_file_whose_name_has_a_space_is_named_and_can_be_skipped(tmp_path):
    # ipex-llm's vLLM 0.6.6 patch: `diff --git a/.github/ISSUE_TEMPLATE/400-bug report.yml b/.github/ISSUE_TEMPLATE/
    # 400-bug-report.yml`, a pure rename: only `rename from` / `rename to` name the files.
    mod = "import os\n"
    files = {"pkg/__init__.py": "", "pkg/mod.py": mod, "docs/bug report.yml": "name: bug\n"}
    repo = make_repo(tmp_path / "src", files)
    git(repo, "mv", "docs/bug report.yml", "docs/bug-report.yml")
    commit(repo, {"pkg/mod.py": "import sys\n"}, "rename a template, change mod")
    text = git(repo, "format-patch", "--stdout", "-M", "HEAD~1")
    assert "diff --git a/docs/bug report.yml b/docs/bug-report.yml\nsimilarity index 100%" in text
    (tmp_path / "p.patch").write_text(text)
    base = write_tree(tmp_path / "base", files)
    refusal, = plan_on(load_file(tmp_path / "p.patch"), base).refusals
    assert refusal.reason is Reason.UNSUPPORTED_CHANGE and refusal.detail.startswith("docs/bug-report.yml: this diff renames")
    (tmp_path / "p.patch").write_text("skip: docs/**\n" + text)
    result = plan_on(load_file(tmp_path / "p.patch"), base).results[0]
    assert result.ok and [s.file.name for s in result.skipped] == ["docs/bug-report.yml"]


def test_convert_writes_a_new_module_without_final_newline_and_leaves_out_modules_a_series_leaves_as_they_were(tmp_path):
    # Real series at vLLM 0.7-0.14 (Dynamo, llm-scaler, ServerlessLLM, ipex-llm) create modules whose last line
    # has no newline; others change a line to itself, or change a module in one commit and undo it in a later one.
    from vllm_surgeon.authoring.convert import convert
    from vllm_surgeon.sets.hunkfile import parse_hunk_file
    from vllm_surgeon.trees.releases import directory

    files = {"pkg/__init__.py": "", "pkg/a.py": "import os\n\n\ndef f(x):\n    return x\n", "pkg/b.py": "X = 1\n"}
    repo = make_repo(tmp_path / "src", files)
    commit(repo, {"pkg/loader.py": "def load():\n    return 1", "pkg/b.py": "X = 2\n"}, "pkg: a loader")
    commit(repo, {"pkg/b.py": "X = 1\n", "pkg/a.py": "import os\n\n\ndef f(x):\n    return x + 1\n"}, "pkg: undo b, change a")
    text = git(repo, "format-patch", "--stdout", "HEAD~2")
    assert "+    return 1\n\\ No newline at end of file" in text
    (tmp_path / "s.patch").write_text(text)
    base = write_tree(tmp_path / "base", files)
    diff_plan = assert_like_patch(tmp_path / "s.patch", base, tmp_path)
    assert diff_plan.modules["pkg.b"].text == files["pkg/b.py"]  # changed, then changed back
    converted = convert(load_file(tmp_path / "s.patch"), directory(base), str(tmp_path / "s.converted.hunk"))
    assert "@@ pkg.loader @@ new\n+def load():\n+    return 1\n\\ No newline at end of file\n" in converted.text
    assert "pkg.b" not in converted.text
    again = plan_on(parse_hunk_file(converted.text, "s.converted.hunk", "s"), base)
    assert again.refusals == [] and again.modules["pkg.loader"].text == "def load():\n    return 1"
    assert again.modules["pkg.a"].text == diff_plan.modules["pkg.a"].text and "pkg.b" not in again.modules


def test_convert_anchors_a_change_once_across_every_definition_of_an_overloaded_function(tmp_path):
    # Dynamo's vLLM 0.7.2 patch adds a parameter after `priority: int = 0,` in MQLLMEngineClient.generate,
    # which has two @overload stubs with that same line: the .hunk section must hold more context.
    from vllm_surgeon.authoring.convert import convert
    from vllm_surgeon.sets.hunkfile import parse_hunk_file
    from vllm_surgeon.trees.releases import directory

    stub = (
        "    @overload\n    def generate(\n        self,\n        prompt: str,\n        priority: int = 0,\n    ) -> str:\n        ...\n\n"
    )
    mod = ("from typing import overload\n\n\nclass Client:\n" + stub + stub.replace("prompt: str", "prompts: list")
           + "    def generate(\n        self,\n        prompt=None,\n        priority: int = 0,\n    ):\n        return prompt\n")
    files = {"pkg/__init__.py": "", "pkg/client.py": mod}
    repo = make_repo(tmp_path / "src", files)
    priority = "        priority: int = 0,\n"
    changed = mod[: mod.rindex(priority)] + priority + "        remote=None,\n    ):\n        return prompt\n"
    commit(repo, {"pkg/client.py": changed}, "client: remote")
    (tmp_path / "s.patch").write_text(git(repo, "format-patch", "--stdout", "HEAD~1"))
    base = write_tree(tmp_path / "base", files)
    assert_like_patch(tmp_path / "s.patch", base, tmp_path)
    converted = convert(load_file(tmp_path / "s.patch"), directory(base), str(tmp_path / "s.converted.hunk"))
    again = plan_on(parse_hunk_file(converted.text, "s.converted.hunk", "s"), base)
    assert again.refusals == [] and again.modules["pkg.client"].text == changed
