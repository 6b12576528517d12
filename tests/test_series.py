"""Patch files as teams keep them, on small packages made with real git: series (mbox, folders, quilt),
paths as they come, new modules, files that cannot be applied, ends of files, and `diff` output that
`git apply --check` and `patch -p1 -F0` accept."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from conftest import git

from vllm_surgeon.core.model import HunkFileError
from vllm_surgeon.core.refusal import Reason
from vllm_surgeon.core.source import ModuleSource
from vllm_surgeon.engine import planner
from vllm_surgeon.sets.loader import load_file

BASE_MOD = textwrap.dedent("""\
    import os


    def f(x):
        return x


    def g(x):
        return x
""")


def make_repo(root: Path, files: dict[str, str]) -> Path:
    repo = root / "repo"
    repo.mkdir(parents=True)
    git(repo, "init", "-q")
    git(repo, "config", "user.email", "dev@example.com")
    git(repo, "config", "user.name", "Dev")
    commit(repo, files, "base")
    return repo


def commit(repo: Path, files: dict[str, str | None], message: str) -> None:
    for name, text in files.items():
        path = repo / name
        if text is None:
            path.unlink()
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", message)


def tree_reader(root: Path):
    """Read modules from a directory, as `--against DIR` does."""

    def read(module: str):
        base = root.joinpath(*module.split("."))
        for path in (base.with_suffix(".py"), base / "__init__.py"):
            if path.is_file():
                return ModuleSource(module, str(path), path.read_text())
        return None

    return read


def checkout(repo: Path, rev: str, where: Path) -> Path:
    where.mkdir(parents=True)
    archive = subprocess.run(["git", "archive", rev], cwd=repo, check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(where)], input=archive, check=True)
    return where


SUBJECT_2 = "mod: use the helper \u2713 (a subject long enough that git folds it over two header lines, as RFC 2822 asks)"


@pytest.fixture
def series(tmp_path: Path):
    """A two-commit series on package `pkg`: commit 1 adds pkg/helper.py and edits f; commit 2 uses the helper."""
    repo = make_repo(tmp_path, {"pkg/__init__.py": "", "pkg/mod.py": BASE_MOD, "README.md": "hello\n"})
    commit(repo, {"pkg/helper.py": "def helper(x):\n    return x * 2\n",
                  "pkg/mod.py": BASE_MOD.replace("    return x\n", "    y = x + 1\n    return y\n", 1)},
           "mod: add helper and change f\n\nA commit message with a line like\n--- not a diff\nand more.")
    mod = (repo / "pkg/mod.py").read_text()
    commit(repo, {"pkg/mod.py": mod.replace("import os\n", "import os\n\nfrom pkg.helper import helper\n")
                  .replace("    return y\n", "    return helper(y)\n")}, SUBJECT_2)
    return repo


def plan_on(s, root: Path):
    return planner.plan([s], tree_reader(root), None)


def assert_same_as_git(plan, repo: Path, rev: str = "HEAD") -> None:
    assert plan.refusals == [], [r.message() for r in plan.refusals]
    for module, patched in plan.modules.items():
        rel = module.replace(".", "/") + ".py"
        assert patched.text == git(repo, "show", f"{rev}:{rel}"), module


def test_format_patch_series_applies_commit_after_commit_as_git_am_would(series, tmp_path):
    (tmp_path / "s.patch").write_text(git(series, "format-patch", "--stdout", "HEAD~2"))
    s = load_file(tmp_path / "s.patch")
    assert [c.subject for c in s.commits] == ["mod: add helper and change f", SUBJECT_2]
    assert all(c.sha and len(c.sha) == 40 for c in s.commits)
    base = checkout(series, "HEAD~2", tmp_path / "base")
    p = plan_on(s, base)
    assert_same_as_git(p, series)
    assert p.modules["pkg.helper"].created and not p.modules["pkg.mod"].created
    # Commit 2's hunk names lines commit 1 added: it is located on commit 1's text.
    last = p.results[0].hunks[-1]
    assert last.hunk.commit.number == 2 and last.hunk.step == 1 and last.line == 1 and last.moved == 0
    # patch -p1 -F0 on the same base agrees with every file.
    patched = checkout(series, "HEAD~2", tmp_path / "by-patch")
    subprocess.run(["patch", "-p1", "-F0", "-s", "-i", str(tmp_path / "s.patch")], cwd=patched, check=True)
    for module, result in p.modules.items():
        assert (patched / (module.replace(".", "/") + ".py")).read_text() == result.text


def test_a_refusal_in_a_later_commit_names_that_commit(series, tmp_path):
    (tmp_path / "s.patch").write_text(git(series, "format-patch", "--stdout", "HEAD~2"))
    base = checkout(series, "HEAD~2", tmp_path / "base")
    (base / "pkg/mod.py").write_text(BASE_MOD.replace("import os\n", "import sys\n"))  # commit 2's context line
    result = plan_on(load_file(tmp_path / "s.patch"), base).results[0]
    (refusal,) = result.refusals
    assert refusal.reason is Reason.ANCHOR_NOT_FOUND
    assert refusal.commit.startswith("commit 2/2 ") and SUBJECT_2 in refusal.commit
    assert f"({refusal.commit})" in refusal.message() and f"s.patch:{refusal.origin.line}" in refusal.message()
    assert [h.status for h in result.hunks] == ["applies", "applies", "refused"]


def test_a_later_commit_on_a_file_whose_earlier_commit_was_refused_is_not_reached(series, tmp_path):
    (tmp_path / "s.patch").write_text(git(series, "format-patch", "--stdout", "HEAD~2"))
    base = checkout(series, "HEAD~2", tmp_path / "base")
    (base / "pkg/mod.py").write_text(BASE_MOD.replace("def f(x):\n    return x", "def f(x):\n    return -x"))
    result = plan_on(load_file(tmp_path / "s.patch"), base).results[0]
    assert [r.reason for r in result.refusals] == [Reason.ANCHOR_NOT_FOUND, Reason.NOT_REACHED]
    assert "commit 1/2" in result.refusals[1].detail


def test_the_same_series_as_a_folder_of_numbered_patches_and_as_a_quilt_series(series, tmp_path):
    base = checkout(series, "HEAD~2", tmp_path / "base")
    numbered = tmp_path / "sets" / "jobs"
    git(series, "format-patch", "-q", "-o", str(numbered), "HEAD~2")
    (numbered / "fields").write_text("description: the helper series\nwhy: a test\n")
    s = load_file(numbered)
    assert s.name == "jobs" and s.description == "the helper series" and len(s.commits) == 2
    assert_same_as_git(plan_on(s, base), series)
    # quilt: a series file with comments, header fields as `# key: value`, -p1; plain diffs, no mbox.
    quilt = tmp_path / "sets" / "quilted"
    quilt.mkdir()
    (quilt / "helper.diff").write_text(git(series, "diff", "HEAD~2", "HEAD~1"))
    (quilt / "use-helper.diff").write_text(git(series, "diff", "HEAD~1", "HEAD"))
    (quilt / "series").write_text("# description: quilted\n# a comment\nhelper.diff -p1\n\nuse-helper.diff -p1  # last\n")
    q = load_file(quilt)
    assert q.description == "quilted" and [c.subject for c in q.commits] == ["helper", "use helper"]
    assert_same_as_git(plan_on(q, base), series)


def test_folder_sets_refuse_unclear_order_and_bad_series_lines(tmp_path):
    folder = tmp_path / "x"
    folder.mkdir()
    diff = "--- a/pkg/mod.py\n+++ b/pkg/mod.py\n@@ -1 +1 @@\n-import os\n+import sys\n"
    (folder / "b.patch").write_text(diff)
    (folder / "a.patch").write_text(diff)
    with pytest.raises(HunkFileError, match="cannot tell the order of a.patch, b.patch"):
        load_file(folder)
    (folder / "series").write_text("a.patch\nb.patch -R\n")
    with pytest.raises(HunkFileError) as info:
        load_file(folder)
    assert str(info.value).startswith(f"{folder / 'series'}:2: series option '-R' is not supported")
    (folder / "series").write_text("a.patch\nmissing.patch\n")
    with pytest.raises(HunkFileError, match=r"series:2: series names 'missing.patch'"):
        load_file(folder)


def test_two_sections_for_one_file_in_one_plain_diff_apply_in_order(series, tmp_path):
    text = git(series, "diff", "HEAD~2", "HEAD~1", "--", "pkg/mod.py") + git(series, "diff", "HEAD~1", "HEAD")
    (tmp_path / "two.patch").write_text(text)
    s = load_file(tmp_path / "two.patch")
    assert not s.commits
    assert_same_as_git(plan_on(s, checkout(series, "HEAD~2", tmp_path / "base")), series)


@pytest.mark.parametrize("old, new", [
    ("a/pkg/mod.py", "b/pkg/mod.py"),
    ("pkg/mod.py", "pkg/mod.py"),
    ("a/monorepo/pkg/mod.py", "b/monorepo/pkg/mod.py"),
    ("{root}/pkg/mod.py", "/tmp/edited/mod.py"),
    ("/venv/lib/python3.11/site-packages/pkg/mod.py", "/venv/lib/python3.11/site-packages/pkg/mod.py"),
])
def test_paths_as_they_come_resolve_to_the_module_whose_file_they_are(tmp_path, old, new):
    root = tmp_path / "tree"
    (root / "pkg").mkdir(parents=True)
    (root / "pkg/__init__.py").write_text("")
    (root / "pkg/mod.py").write_text(BASE_MOD)
    old = old.format(root=root)
    (tmp_path / "p.patch").write_text(f"--- {old}\n+++ {new}\n@@ -1 +1 @@\n-import os\n+import sys\n")
    p = plan_on(load_file(tmp_path / "p.patch"), root)
    assert p.refusals == [] and p.modules["pkg.mod"].text.startswith("import sys\n")


def test_a_path_is_its_longest_real_module_and_one_that_is_none_is_refused_saying_so(tmp_path):
    root = tmp_path / "tree"
    for rel in ("pkg/__init__.py", "pkg/pkg/__init__.py"):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text("")
    (root / "pkg/mod.py").write_text(BASE_MOD)
    (root / "pkg/pkg/mod.py").write_text(BASE_MOD)
    (tmp_path / "p.patch").write_text(
        "--- a/pkg/pkg/mod.py\n+++ b/pkg/pkg/mod.py\n@@ -1 +1 @@\n-import os\n+import sys\n"
        "--- a/tests/test_mod.py\n+++ b/tests/test_mod.py\n@@ -1 +1 @@\n-a = 1\n+a = 2\n"
    )
    result = plan_on(load_file(tmp_path / "p.patch"), root).results[0]
    missing, = result.refusals  # pkg/pkg/mod.py is pkg.pkg.mod, as patch -p1 at the tree's root reads it
    assert [h.hunk.target.module for h in result.hunks] == ["pkg.pkg.mod"]
    assert missing.reason is Reason.PATH_NOT_FOUND and missing.origin.line == 6 and "skip:" in missing.detail
    assert "tests/test_mod.py: no installed package has this file" in missing.detail


UNAPPLIABLE = """\
diff --git a/csrc/ops.cu b/csrc/ops.cu
index 1..2 100644
--- a/csrc/ops.cu
+++ b/csrc/ops.cu
@@ -1 +1 @@
-int x;
+int y;
diff --git a/pkg/old.py b/pkg/old.py
deleted file mode 100644
index 1..0
--- a/pkg/old.py
+++ /dev/null
@@ -1 +0,0 @@
-x = 1
diff --git a/pkg/a.py b/pkg/b.py
similarity index 100%
rename from pkg/a.py
rename to pkg/b.py
diff --git a/docs/logo.png b/docs/logo.png
index 1..2 100644
Binary files a/docs/logo.png and b/docs/logo.png differ
diff --git a/tools/run.py b/tools/run.py
old mode 100644
new mode 100755
diff --git a/pkg/mod.py b/pkg/mod.py
--- a/pkg/mod.py
+++ b/pkg/mod.py
@@ -1 +1 @@
-import os
+import sys
"""


def test_files_that_cannot_be_applied_at_import_are_each_refused_by_name_unless_skipped(tmp_path):
    root = tmp_path / "tree"
    (root / "pkg").mkdir(parents=True)
    (root / "pkg/__init__.py").write_text("")
    (root / "pkg/mod.py").write_text(BASE_MOD)
    (tmp_path / "p.patch").write_text(UNAPPLIABLE)
    result = plan_on(load_file(tmp_path / "p.patch"), root).results[0]
    assert [(r.reason.value, r.target, r.origin.line) for r in result.refusals] == [
        ("not-python", "csrc/ops.cu", 1),
        ("unsupported-change", "pkg/old.py", 8),
        ("unsupported-change", "pkg/b.py", 15),
        ("unsupported-change", "docs/logo.png", 19),
        ("unsupported-change", "tools/run.py", 22),
    ]
    assert "deletes the file" in result.refusals[1].detail and "renames" in result.refusals[2].detail
    assert "binary" in result.refusals[3].detail and "mode" in result.refusals[4].detail
    (tmp_path / "q.patch").write_text("skip: csrc/**, docs/, pkg/old.py, pkg/b.py, tools/*.py\n" + UNAPPLIABLE)
    p = plan_on(load_file(tmp_path / "q.patch"), root)
    assert p.refusals == [] and p.modules["pkg.mod"].text.startswith("import sys\n")
    assert [(k.file.name, k.pattern) for k in p.results[0].skipped] == [
        ("csrc/ops.cu", "csrc/**"), ("pkg/old.py", "pkg/old.py"), ("pkg/b.py", "pkg/b.py"),
        ("docs/logo.png", "docs/"), ("tools/run.py", "tools/*.py"),
    ]


@pytest.mark.parametrize("header", ["@@ -1,1 +1,1 @@", "@@ -" + "9" * 5000 + " +1 @@", "@@ -1," + "1" * 30 + " +1 @@"])
def test_hunk_headers_with_numbers_too_large_are_located_errors(tmp_path, header):
    (tmp_path / "p.patch").write_text(f"--- a/pkg/mod.py\n+++ b/pkg/mod.py\n{header}\n-import os\n+import sys\n")
    if header == "@@ -1,1 +1,1 @@":
        load_file(tmp_path / "p.patch")
        return
    with pytest.raises(HunkFileError) as info:
        load_file(tmp_path / "p.patch")
    assert str(info.value).startswith(f"{tmp_path / 'p.patch'}:3: line number") and "is not a line number" in str(info.value)


def test_lines_split_only_on_line_ends_not_on_unicode_separators(tmp_path):
    root = tmp_path / "tree"
    (root / "pkg").mkdir(parents=True)
    (root / "pkg/__init__.py").write_text("")
    text = 'A = "x\u2028y\x0cz\x85"\nB = 1\n'
    (root / "pkg/mod.py").write_text(text)
    (tmp_path / "p.patch").write_text('--- a/pkg/mod.py\n+++ b/pkg/mod.py\n@@ -1,2 +1,2 @@\n A = "x\u2028y\x0cz\x85"\n-B = 1\n+B = 2\n')
    p = plan_on(load_file(tmp_path / "p.patch"), root)
    assert p.refusals == [] and p.modules["pkg.mod"].text == text.replace("B = 1", "B = 2")


# -- ends of files, and `diff` output that git apply and patch accept ---------------------------------

EOF_CASES = {
    # name: (old text, new text)
    "append_at_end": ("a = 1\nb = 2\n", "a = 1\nb = 2\nc = 3\n"),
    "drop_final_newline": ("a = 1\nb = 2\n", "a = 1\nb = 2"),
    "add_final_newline": ("a = 1\nb = 2", "a = 1\nb = 2\n"),
    "edit_last_line_without_newline": ("a = 1\nb = 2", "a = 1\nb = 3"),
    "edit_above_last_line_without_newline": ("a = 1\nb = 2\nc = 3\nd = 4\ne = 5", "a = 0\nb = 2\nc = 3\nd = 4\ne = 5"),
}


@pytest.mark.parametrize("case", sorted(EOF_CASES))
def test_ends_of_files_apply_exactly_and_diff_output_is_accepted_by_git_apply_and_patch(case, tmp_path):
    old, new = EOF_CASES[case]
    repo = make_repo(tmp_path, {"pkg/__init__.py": "", "pkg/mod.py": old})
    commit(repo, {"pkg/mod.py": new}, case)
    (tmp_path / "p.patch").write_text(git(repo, "format-patch", "--stdout", "HEAD~1"))
    base = checkout(repo, "HEAD~1", tmp_path / "base")
    p = plan_on(load_file(tmp_path / "p.patch"), base)
    assert_same_as_git(p, repo)
    check_diff_output(p, base)


def test_a_new_module_and_a_series_give_diff_output_git_apply_and_patch_accept(series, tmp_path):
    (tmp_path / "s.patch").write_text(git(series, "format-patch", "--stdout", "HEAD~2"))
    base = checkout(series, "HEAD~2", tmp_path / "base")
    check_diff_output(plan_on(load_file(tmp_path / "s.patch"), base), base)


def check_diff_output(plan, root: Path) -> None:
    """`vllm-surgeon diff`'s text for `plan` (as cmd_diff makes it) passes `git apply --check` and
    `patch --dry-run -p1 -F0` on `root`, and applying it gives the planned text."""
    from vllm_surgeon.authoring.udiff import relative_path, unified

    text = ""
    for module, patched in sorted(plan.modules.items()):
        rel = relative_path(module, patched.source.path)
        text += "\n".join(unified(rel, None if patched.created else patched.source.text, patched.text)) + "\n"
    diff_file = root.parent / "surgeon.diff"
    diff_file.write_text(text)
    check = subprocess.run(["git", "apply", "--check", "-v", str(diff_file)], cwd=root, capture_output=True, text=True)
    assert check.returncode == 0, check.stderr + text
    dry = subprocess.run(["patch", "--dry-run", "-p1", "-F0", "-i", str(diff_file)], cwd=root, capture_output=True, text=True)
    assert dry.returncode == 0 and "offset" not in dry.stdout and "fuzz" not in dry.stdout, dry.stdout + text
    copy = root.parent / "applied"
    subprocess.run(["cp", "-r", str(root), str(copy)], check=True)
    subprocess.run(["git", "apply", str(diff_file)], cwd=copy, check=True)
    for module, patched in plan.modules.items():
        assert (copy / relative_path(module, patched.source.path)).read_text() == patched.text
    subprocess.run(["rm", "-rf", str(copy)], check=True)


# -- new modules at run time ----------------------------------------------------------------------------

def test_a_new_module_imports_as_if_installed_with_file_spec_tracebacks_and_getsource(series, fakepkg, tmp_path):
    fakepkg.module("pkg.mod", BASE_MOD)
    fakepkg.hunks.mkdir()
    (fakepkg.hunks / "helpers.patch").write_text(git(series, "format-patch", "--stdout", "HEAD~2"))
    (fakepkg.hunks / "helpers.patch").write_text(
        (fakepkg.hunks / "helpers.patch").read_text().replace("+    return x * 2\n", "+    return x * 2 // (x - x)\n")
    )
    out = fakepkg.run("""
        import inspect, json, os, traceback, pkg.mod, pkg.helper, vllm_surgeon
        try:
            pkg.mod.f(1)
        except ZeroDivisionError:
            frame = traceback.extract_tb(__import__("sys").exc_info()[2])[-1]
        print(json.dumps({
            "file": pkg.helper.__file__, "origin": pkg.helper.__spec__.origin, "name": pkg.helper.__spec__.name,
            "exists": os.path.exists(pkg.helper.__file__), "src": inspect.getsource(pkg.helper.helper),
            "frame": [frame.filename, frame.lineno, frame.line],
            "applied": [a.modules for a in vllm_surgeon.applied()],
        }))
    """, hunks="helpers")
    assert out.returncode == 0, out.stderr
    info = json.loads(out.stdout)
    where = str(fakepkg.src / "pkg" / "helper.py")
    assert info["file"] == info["origin"] == where and info["name"] == "pkg.helper" and not info["exists"]
    assert info["src"] == "def helper(x):\n    return x * 2 // (x - x)\n"
    assert info["frame"] == [where, 2, "return x * 2 // (x - x)"]
    assert info["applied"] == [{"pkg.helper": "at import", "pkg.mod": "at import"}]


def test_a_set_whose_new_module_exists_already_is_refused(series, tmp_path):
    (tmp_path / "s.patch").write_text(git(series, "format-patch", "--stdout", "HEAD~2"))
    head = checkout(series, "HEAD", tmp_path / "head")  # pkg/helper.py is there already
    refusals = plan_on(load_file(tmp_path / "s.patch"), head).refusals
    assert refusals[0].reason is Reason.MODULE_EXISTS and "pkg.helper" in refusals[0].detail


# -- rebase, convert and the command line on a series ------------------------------------------------------

def cli(*args: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "vllm_surgeon", *args], env=env, capture_output=True, text=True)


@pytest.fixture
def series_sets(series, tmp_path):
    from conftest import surgeon_env

    sets = tmp_path / "sets"
    sets.mkdir()
    commit(series, {"csrc/ops.cu": "int y;\n", "README.md": "hello again\n"}, "docs and kernels")
    (sets / "helpers.patch").write_text("skip: csrc/**, *.md\n" + git(series, "format-patch", "--stdout", "HEAD~3"))
    base = checkout(series, "HEAD~3", tmp_path / "base")
    later = checkout(series, "HEAD~3", tmp_path / "later")  # a later "release": a new function above g, g changed
    (later / "pkg/mod.py").write_text(BASE_MOD.replace(
        "def g(x):\n    return x\n", "def e():\n    pass\n\n\ndef g(x):\n    return x + 1\n"))
    return {"sets": sets, "base": base, "later": later, "env": surgeon_env(VLLM_SURGEON_PATH=str(sets))}


def test_cli_verify_names_commits_and_skipped_files_and_diff_leaves_them_out(series_sets):
    env, base = series_sets["env"], series_sets["base"]
    out = cli("verify", "helpers", "--against", str(base), env=env)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "  commit 1/3 " in out.stdout and "'mod: add helper and change f'" in out.stdout
    assert "skipped  helpers.patch:" in out.stdout and "csrc/ops.cu  (skip: csrc/**)" in out.stdout
    assert "README.md  (skip: *.md)" in out.stdout
    report = json.loads(cli("verify", "helpers", "--against", str(base), "--json", env=env).stdout)
    (entry,) = report["sets"]
    assert [s["path"] for s in entry["skipped"]] == ["README.md", "csrc/ops.cu"]  # git writes files in path order
    assert entry["hunks"][-1]["commit"]["number"] == 2 and entry["hunks"][-1]["commit"]["subject"] == SUBJECT_2
    listed = cli("list", env=env).stdout
    assert "skip: csrc/**, *.md" in listed and "  commit 3/3 " in listed and "-> b/pkg/helper.py (new)" in listed
    shown = cli("show", "helpers", "--against", str(base), env=env)
    assert shown.returncode == 0 and "# pkg.helper (new module, " in shown.stdout and "def helper(x):\n    return x * 2\n" in shown.stdout
    diff = cli("diff", "helpers", "--against", str(base), env=env)
    assert diff.returncode == 0 and "csrc" not in diff.stdout and "csrc/ops.cu left out (skip: csrc/**)" in diff.stderr


def test_rebase_of_a_series_writes_its_net_change_as_one_diff_that_applies_to_the_new_release(series_sets, tmp_path):
    env, base, later = series_sets["env"], series_sets["base"], series_sets["later"]
    out = cli("rebase", "helpers", "--from", str(base), "--onto", str(later), env=env)
    assert out.returncode == 0, out.stdout + out.stderr
    rebased = series_sets["sets"] / "helpers.rebased.patch"
    text = rebased.read_text()
    assert "# rebased by vllm-surgeon from" in text and "#   commit 2/3 " in text
    assert "# not carried (skip: csrc/**): csrc/ops.cu" in text and "skip: csrc/**, *.md" in text
    s = load_file(rebased)
    p = plan_on(s, later)
    assert p.refusals == [] and p.modules["pkg.helper"].created
    mod = p.modules["pkg.mod"].text
    assert "from pkg.helper import helper" in mod and "    return helper(y)\n" in mod and "    return x + 1\n" in mod
    check_diff_output(p, later)


def test_convert_writes_a_hunk_set_that_gives_the_same_text_and_never_overwrites(series_sets):
    env, base = series_sets["env"], series_sets["base"]
    out = cli("convert", "helpers", "--against", str(base), env=env)
    assert out.returncode == 0, out.stdout + out.stderr
    converted = series_sets["sets"] / "helpers.converted.hunk"
    text = converted.read_text()
    assert "@@ pkg.helper @@ new\n+def helper(x):\n" in text and "@@ pkg.mod:f @@ " in text
    assert "# commit 1/3 " in text and "# left out (skip: csrc/**): csrc/ops.cu" in text
    again = cli("convert", "helpers", "--against", str(base), env=env)
    assert again.returncode == 2 and "exists; pass --force" in again.stderr
    a = plan_on(load_file(converted), base)
    b = plan_on(load_file(series_sets["sets"] / "helpers.patch"), base)
    assert a.refusals == [] and {m: x.text for m, x in a.modules.items()} == {m: x.text for m, x in b.modules.items()}


BLOCK = "    a = 1\n    b = 2\n    x = x + 1\n    c = 3\n    d = 4\n    return x\n"


def test_a_converted_set_stays_in_its_function_where_the_diff_jumps_or_is_refused(tmp_path):
    """A plain diff cannot say which function it meant; the converted `.hunk` set can."""
    from vllm_surgeon.authoring.convert import convert
    from vllm_surgeon.sets.hunkfile import parse_hunk_file
    from vllm_surgeon.trees.releases import directory

    root = tmp_path / "tree"
    (root / "pkg").mkdir(parents=True)
    (root / "pkg/__init__.py").write_text("")
    mod = root / "pkg/mod.py"
    mod.write_text("import os\n\n\ndef f(x):\n" + BLOCK)
    (tmp_path / "d.patch").write_text(  # as `diff -U2` writes it
        "--- a/pkg/mod.py\n+++ b/pkg/mod.py\n@@ -5,5 +5,5 @@\n"
        "     a = 1\n     b = 2\n-    x = x + 1\n+    x = x + 2\n     c = 3\n     d = 4\n")
    raw = load_file(tmp_path / "d.patch")
    converted = convert(raw, directory(root), str(tmp_path / "d.hunk"))
    assert "@@ pkg.mod:f @@ " in converted.text
    hunk = parse_hunk_file(converted.text, str(tmp_path / "d.hunk"), "d")
    # A later release moves the block out of f into a new g: the diff follows it into g, the .hunk refuses.
    mod.write_text("import os\n\n\ndef f(x):\n    return x * 2\n\n\ndef g(x):\n" + BLOCK)
    (jumped,) = plan_on(raw, root).results[0].hunks
    assert jumped.status == "moved" and jumped.scope == "g"
    (refusal,) = plan_on(hunk, root).refusals
    assert refusal.reason is Reason.ANCHOR_NOT_FOUND and "in function f" in refusal.detail
    # Another release adds imports above f and a copy of the block in g below it: the diff is refused
    # (two places, and its line number lands on neither), the .hunk applies in f.
    mod.write_text("import os\nimport re\n\n\ndef f(x):\n" + BLOCK + "\n\ndef g(x):\n" + BLOCK)
    (refusal,) = plan_on(raw, root).refusals
    assert refusal.reason is Reason.ANCHOR_AMBIGUOUS
    p = plan_on(hunk, root)
    assert p.refusals == [] and p.results[0].hunks[0].scope == "f"
    text = p.modules["pkg.mod"].text
    assert text.count("x = x + 2") == 1 and text.index("x = x + 2") < text.index("def g")


def test_a_series_may_create_a_package_with_modules_in_it(fakepkg, tmp_path):
    repo = make_repo(tmp_path, {"pkg/__init__.py": "", "pkg/mod.py": BASE_MOD})
    commit(repo, {"pkg/jobs/__init__.py": "from pkg.jobs.queue import take\n",
                  "pkg/jobs/queue.py": "def take(x):\n    return [x, x]\n",
                  "pkg/mod.py": BASE_MOD.replace("def g(x):\n    return x\n",
                                                 "def g(x):\n    from pkg.jobs import take\n    return take(x)\n")},
           "pkg: a jobs package")
    fakepkg.module("pkg.mod", BASE_MOD)
    fakepkg.hunks.mkdir()
    (fakepkg.hunks / "jobs.patch").write_text(git(repo, "format-patch", "--stdout", "HEAD~1"))
    base = checkout(repo, "HEAD~1", tmp_path / "base")
    p = plan_on(load_file(fakepkg.hunks / "jobs.patch"), base)
    assert p.refusals == [] and p.modules["pkg.jobs"].source.path == str(base / "pkg/jobs/__init__.py")
    assert p.modules["pkg.jobs.queue"].source.path == str(base / "pkg/jobs/queue.py")
    for module, patched in p.modules.items():  # the packages' files are __init__.py: compare by path
        assert patched.text == git(repo, "show", f"HEAD:{Path(patched.source.path).relative_to(base)}"), module
    check_diff_output(p, base)
    out = fakepkg.run("""
        import json, pkg.mod, pkg.jobs
        print(json.dumps([pkg.mod.g(3), pkg.jobs.__file__, pkg.jobs.__path__, pkg.jobs.__spec__.submodule_search_locations]))
    """, hunks="jobs")
    assert out.returncode == 0, out.stderr
    result, where, path, locations = json.loads(out.stdout)
    folder = str(fakepkg.src / "pkg" / "jobs")
    assert result == [3, 3] and where == folder + "/__init__.py" and path == locations == [folder]
