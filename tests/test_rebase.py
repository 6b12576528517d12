"""`rebase` on small source trees (fast; the real release history is in test_real_releases.py)."""

import io

import pytest

from vllm_surgeon.commands.cli import main

BASE = '''\
class Engine:
    def step(self):
        a = 1
        b = 2
        c = 3
        d = 4
        return a + b + c + d
'''

SET = '''\
written-against: {base}
@@ vllm.engine.core:Engine.step @@ +1
         a = 1
         b = 2
-        c = 3
+        c = 30
         d = 4
'''


def tree(root, version, text):
    pkg = root / "vllm" / "engine"
    pkg.mkdir(parents=True)
    (pkg / "core.py").write_text(text)
    (root / "vllm" / "_version.py").write_text(f"__version__ = version = '{version}'\n")
    return root


def cli(*args):
    out = io.StringIO()
    return main(list(args), out=out), out.getvalue()


def _set_up(tmp_path, monkeypatch, source: str, name: str, text: str):
    """Release 1.0.0 of `source` in tmp_path/v1, set `name` written against it in tmp_path/sets (the search path)."""
    sets = tmp_path / "sets"
    sets.mkdir()
    base = tree(tmp_path / "v1", "1.0.0", source)
    (sets / f"{name}.hunk").write_text(text.format(base=base))
    monkeypatch.setenv("VLLM_SURGEON_PATH", str(sets))
    return tmp_path, sets, base


@pytest.fixture
def trees(tmp_path, monkeypatch):
    return _set_up(tmp_path, monkeypatch, BASE, "thirty", SET)


def test_clean_rebase_writes_a_proposal_that_applies_and_write_replaces_the_set(trees):
    root, sets, _ = trees
    onto = tree(root / "v2", "2.0.0", BASE.replace("        a = 1\n", "        a = 1\n        a += 0  # upstream\n"))
    assert cli("verify", "thirty", "--against", str(onto))[0] == 1  # the anchor broke upstream
    code, out = cli("rebase", "thirty", "--onto", str(onto))
    assert code == 0, out
    proposal = sets / "thirty.rebased.hunk"
    text = proposal.read_text()
    assert "written-against: 2.0.0" in text and "+        c = 30" in text and "-        c = 3" in text
    assert (sets / "thirty.hunk").read_text().startswith(f"written-against: {root / 'v1'}")  # untouched
    proposal.rename(sets / "thirty_new.hunk")
    assert cli("verify", "thirty_new", "--against", str(onto))[0] == 0
    code, out = cli("rebase", "thirty", "--onto", str(onto), "--write")
    assert code == 0 and cli("verify", "thirty", "--against", str(onto))[0] == 0


def test_rebase_replaces_no_existing_file_without_force(trees, capsys):
    """Issue 13: `rebase --out FILE` replaced an existing file (convert and capture refuse without --force)."""
    root, sets, _ = trees
    onto = tree(root / "v2", "2.0.0", BASE.replace("        a = 1\n", "        a = 1\n        a += 0  # upstream\n"))
    kept = root / "notes.hunk"
    kept.write_text("mine\n")
    assert cli("rebase", "thirty", "--onto", str(onto), "--out", str(kept))[0] == 2
    assert f"{kept} exists; pass --force to overwrite it" in capsys.readouterr().err and kept.read_text() == "mine\n"
    assert cli("rebase", "thirty", "--onto", str(onto), "--out", str(kept), "--force")[0] == 0
    assert "+        c = 30" in kept.read_text()
    assert cli("rebase", "thirty", "--onto", str(onto))[0] == 0
    proposal = sets / "thirty.rebased.hunk"
    proposal.write_text(proposal.read_text() + "# reviewed by hand\n")
    assert cli("rebase", "thirty", "--onto", str(onto))[0] == 2  # an earlier proposal, maybe under review, is kept
    assert proposal.read_text().endswith("# reviewed by hand\n")


def test_a_dotted_set_name_keeps_its_whole_name_in_the_proposal(trees):
    """Issue 13: the name was cut at the first dot: `s.v2` wrote `s.rebased.hunk`, over set `s`'s proposal."""
    root, sets, base = trees
    onto = tree(root / "v2", "2.0.0", BASE.replace("        a = 1\n", "        a = 1\n        a += 0  # upstream\n"))
    (sets / "thirty.v2.hunk").write_text(SET.format(base=base))
    assert cli("rebase", "thirty.v2", "--onto", str(onto))[0] == 0
    assert (sets / "thirty.v2.rebased.hunk").is_file() and not (sets / "thirty.rebased.hunk").exists()
    assert cli("convert", "thirty.v2", "--against", str(base))[0] == 0
    assert (sets / "thirty.v2.converted.hunk").is_file() and not (sets / "thirty.converted.hunk").exists()


def test_files_written_keep_the_sets_mode_or_follow_the_umask(trees):
    """Issue 13: every file the CLI wrote was 0600 (mkstemp): after `rebase --write` a 0644 set could no
    longer be read by a vLLM service running as another user."""
    import os
    import stat

    root, sets, _ = trees
    onto = tree(root / "v2", "2.0.0", BASE.replace("        a = 1\n", "        a = 1\n        a += 0  # upstream\n"))
    mode = lambda path: stat.S_IMODE(path.stat().st_mode)  # noqa: E731
    (sets / "thirty.hunk").chmod(0o644)
    old = os.umask(0o027)
    try:
        assert cli("rebase", "thirty", "--onto", str(onto))[0] == 0
        assert mode(sets / "thirty.rebased.hunk") == 0o640  # a new file: 0666 less the umask, as open() makes it
        assert cli("rebase", "thirty", "--onto", str(onto), "--write")[0] == 0
        assert mode(sets / "thirty.hunk") == 0o644  # a replaced file keeps its mode
        (sets / "thirty.hunk").chmod(0o600)
        assert cli("convert", "thirty", "--against", str(onto), "--out", str(sets / "thirty.hunk"), "--force")[0] == 0
        assert mode(sets / "thirty.hunk") == 0o600
    finally:
        os.umask(old)
    assert [p.name for p in sets.iterdir() if p.name.startswith(".")] == []  # no temporary file left


def test_verify_names_a_set_twice_as_one_set_as_the_runtime_does(trees):
    """Issue 13: `verify a a --together` refused the second copy, while VLLM_SURGEON_HUNKS=a,a applies."""
    root, sets, base = trees
    for extra in ([], ["--together"]):
        code, out = cli("verify", "thirty", "thirty", "--against", str(base), *extra)
        assert code == 0 and out.count("thirty  applies") == 1, out
        code, out = cli("verify", "--files", str(sets / "thirty.hunk"), str(sets / ".." / "sets" / "thirty.hunk"),
                        "--against", str(base), *extra)
        assert code == 0 and out.count("thirty  applies") == 1, out


def test_verify_together_refuses_two_different_sets_of_one_name(trees, capsys):
    root, sets, base = trees
    other = root / "other"
    other.mkdir()
    (other / "thirty.hunk").write_text(SET.format(base=base).replace("c = 30", "c = 31"))
    files = [str(sets / "thirty.hunk"), str(other / "thirty.hunk")]
    assert cli("verify", "--files", *files, "--against", str(base))[0] == 0  # each alone: fine
    assert cli("verify", "--files", *files, "--against", str(base), "--together")[0] == 2
    assert "two different sets are named 'thirty'" in capsys.readouterr().err


def test_overlapping_upstream_change_is_a_conflict_and_nothing_is_written(trees, monkeypatch):
    root, sets, _ = trees
    monkeypatch.chdir(root)  # the conflict's work folder is written here
    onto = tree(root / "v2", "2.0.0", BASE.replace("        c = 3\n", "        c = 3.0\n"))
    code, out = cli("rebase", "thirty", "--onto", str(onto))
    assert code == 1 and not (sets / "thirty.rebased.hunk").exists()
    block = out[out.index("<<<<<<<"):].splitlines()
    assert block[:7] == ["<<<<<<< thirty (on 1.0.0)", "        c = 30", "||||||| vllm 1.0.0", "        c = 3",
                         "=======", "        c = 3.0", ">>>>>>> vllm 2.0.0"]


def test_rebase_needs_a_base_release(trees, capsys):
    root, sets, _ = trees
    (sets / "nobase.hunk").write_text(SET.split("\n", 1)[1])
    assert cli("rebase", "nobase", "--onto", str(root / "v1"))[0] == 2
    assert "records no written-against version; name its base release with --from" in capsys.readouterr().err


def test_verify_together_stacks_sets_and_reports_their_conflict(trees):
    root, sets, base = trees
    (sets / "rival.hunk").write_text(SET.format(base=base).replace("c = 30", "c = 31"))
    assert cli("verify", "thirty", "rival", "--against", str(base))[0] == 0  # each alone applies
    code, out = cli("verify", "thirty", "rival", "--against", str(base), "--together")
    assert code == 1 and "conflicts with another set" in out and "set 'thirty'" in out


def test_a_clean_rebase_never_gives_back_a_weaker_anchor_than_the_one_written(tmp_path, monkeypatch):
    """Five written anchor lines (one a comment); upstream inserts a line among them. The rebased
    anchor keeps all five and upstream's line, not the smallest unique context."""
    base = tree(tmp_path / "v1", "1.0.0", BASE.replace("        c = 3\n", "        # the third\n        c = 3\n"))
    sets = tmp_path / "sets"
    sets.mkdir()
    (sets / "wide.hunk").write_text(
        f"written-against: {base}\n@@ vllm.engine.core:Engine.step\n"
        "         a = 1\n         b = 2\n         # the third\n-        c = 3\n+        c = 30\n         d = 4\n"
    )
    monkeypatch.setenv("VLLM_SURGEON_PATH", str(sets))
    onto = tree(tmp_path / "v2", "2.0.0", (base / "vllm" / "engine" / "core.py").read_text().replace(
        "        a = 1\n", "        a = 1\n        a += 0  # upstream\n"))
    code, out = cli("rebase", "wide", "--onto", str(onto))
    assert code == 0, out
    section = (sets / "wide.rebased.hunk").read_text().split("@@ vllm.engine.core:Engine.step @@")[1].splitlines()[1:]
    assert section == ["         a = 1", "         a += 0  # upstream", "         b = 2", "         # the third",
                       "-        c = 3", "+        c = 30", "         d = 4"]


def test_a_conflict_says_the_next_step_and_proposals_are_not_sets(trees, monkeypatch, capsys):
    root, sets, _ = trees
    monkeypatch.chdir(root)
    onto = tree(root / "v2", "2.0.0", BASE.replace("        c = 3\n", "        c = 3.0\n"))
    code, out = cli("rebase", "thirty", "--onto", str(onto))
    assert code == 1 and "Next step:" in out and "vllm-surgeon capture thirty.rebased" in out
    copy = root / "thirty.rebased.surgeon" / "vllm.engine.core" / "Engine.step.py"
    assert "<<<<<<< thirty (on 1.0.0)\n        c = 30\n||||||| vllm 1.0.0\n" in copy.read_text()
    # Run again: the work folder is there; it is not overwritten, and the way by hand is given.
    code, out = cli("rebase", "thirty", "--onto", str(onto))
    assert code == 1 and "not written: thirty.rebased.surgeon already holds a work folder" in out
    assert f"vllm-surgeon new thirty.rebased TARGET... --against {onto}" in out
    (sets / "thirty.rebased.hunk").write_text((sets / "thirty.hunk").read_text())
    assert "thirty.rebased" not in cli("list")[1]
    assert [line for line in cli("verify", "--against", str(onto))[1].splitlines() if "rebased" in line] == []


def test_rebase_keeps_the_last_line_of_a_created_module_without_a_final_newline(trees):
    """`convert` writes `\\ No newline at end of file` after such a module; rebase must carry it whole."""
    root, sets, base = trees
    (sets / "extra.hunk").write_text(
        f"written-against: {base}\n"
        "@@ vllm.engine.extra @@ new\n+A = 1\n+B = 2\n\\ No newline at end of file\n\n" + SET.format(base=base).split("\n", 1)[1])
    onto = tree(root / "v2", "2.0.0", BASE.replace("        a = 1\n", "        a = 1\n        a += 0  # upstream\n"))
    for release in (base, onto):  # a module is created in a package
        for package in ("vllm", "vllm/engine"):
            (release / package / "__init__.py").write_text("")
    code, out = cli("rebase", "extra", "--onto", str(onto))
    assert code == 0, out
    proposal = (sets / "extra.rebased.hunk").rename(sets / "extra_new.hunk").read_text()
    assert "+A = 1\n+B = 2\n\\ No newline at end of file\n" in proposal, proposal
    assert cli("verify", "extra_new", "--against", str(onto))[0] == 0


# -- issue 15: a proposal keeps what the user wrote --------------------------------------------------------

ENGINE = "import sys\n\n\n" + BASE + '''
    def stop(self):
        x = 1
        y = 2
        return x + y


def helper():
    def inner():
        p = 1
        q = 2
        return p + q

    return inner()
'''

WRITTEN = '''\
# Why this set exists: a rationale the author wrote,
# over two lines.

description: keeps what was written
written-against: {base}

# stop comes first in this file.
@@ vllm.engine.core:Engine.stop @@ +1
         x = 1
-        y = 2
+        y = 20
         return x + y

# A method added at the end of the class.
@@ vllm.engine.core:Engine
+
+    def extra(self):
+        return 1

# step: the anchor upstream breaks.
''' + SET.split("\n", 1)[1] + '''# a comment inside the file, after a section

@@ vllm.engine.core
+import os
'''


@pytest.fixture
def written(tmp_path, monkeypatch):
    return _set_up(tmp_path, monkeypatch, ENGINE, "kept", WRITTEN)


def test_a_proposal_keeps_the_header_comments_order_and_targets_the_user_wrote(written):
    """Issue 15: the proposal dropped the rationale and `#` comments, sorted the hunks by module and turned
    the method added to a class into a module-scope hunk. Only the hunk whose anchor broke is drafted again,
    in its place, under its comment, with its target."""
    root, sets, _ = written
    upstream = ENGINE.replace("        a = 1\n", "        a = 1\n        a += 0  # upstream\n").replace(
        "    return inner()\n", "    return inner()\n\n\nUPSTREAM_AT_THE_END = 1\n")
    onto = tree(root / "v2", "2.0.0", upstream)
    assert cli("verify", "kept", "--against", str(onto))[0] == 1
    code, out = cli("rebase", "kept", "--onto", str(onto))
    assert code == 0, out
    proposal = (sets / "kept.rebased.hunk").read_text()
    original = WRITTEN.format(base=root / "v1")
    # Everything but written-against and the one hunk whose anchor broke is as written.
    before = original.split("@@ vllm.engine.core:Engine.step @@ +1\n")[0].replace(
        f"written-against: {root / 'v1'}", "written-against: 2.0.0")
    assert proposal.startswith(before)
    step = proposal[len(before):].split("\n# a comment inside the file")[0]
    assert step.splitlines() == ["@@ vllm.engine.core:Engine.step @@ +1", "         a = 1", "         a += 0  # upstream",
                                 "         b = 2", "-        c = 3", "+        c = 30", "         d = 4"]
    assert proposal.endswith("# a comment inside the file, after a section\n\n@@ vllm.engine.core\n+import os\n")
    (sets / "kept.rebased.hunk").rename(sets / "kept_new.hunk")
    assert cli("verify", "kept_new", "--against", str(onto))[0] == 0


def test_an_add_only_section_is_carried_as_written_not_merged_with_upstreams_new_end_of_file(written):
    """Issue 15: a set whose last section appends `import os` at module scope (only '+' lines) was refused
    as a conflict with upstream's new code at the end of the file, although `verify` said it applies."""
    root, sets, _ = written
    onto = tree(root / "v2", "2.0.0", ENGINE + "\n\nclass Upstream:\n    pass\n")
    assert cli("verify", "kept", "--against", str(onto))[0] == 0
    code, out = cli("rebase", "kept", "--onto", str(onto))
    assert code == 0, out
    proposal = (sets / "kept.rebased.hunk").read_text()
    assert proposal == WRITTEN.format(base=root / "v1").replace(f"written-against: {root / 'v1'}", "written-against: 2.0.0")


def test_a_kept_hunk_that_moved_gets_its_new_offset_and_nothing_else_changes(written):
    root, sets, _ = written
    onto = tree(root / "v2", "2.0.0", ENGINE.replace("    def stop(self):\n", "    def stop(self):\n        pass\n"))
    code, out = cli("rebase", "kept", "--onto", str(onto))
    assert code == 0, out
    proposal = (sets / "kept.rebased.hunk").read_text()
    assert "@@ vllm.engine.core:Engine.stop @@ +2\n" in proposal
    assert proposal.replace("@@ +2\n", "@@ +1\n", 1) == WRITTEN.format(base=root / "v1").replace(
        f"written-against: {root / 'v1'}", "written-against: 2.0.0")


def test_rebase_drafts_with_the_scope_finder_convert_uses_never_a_locals_target():
    """Issue 15: rebase's own copy of the scope finder could write `helper.<locals>.inner` as a target."""
    from vllm_surgeon.authoring.carry import _written_scope
    from vllm_surgeon.core.scopes import ScopeIndex

    lines = ENGINE.split("\n")
    at = lines.index("        q = 2")
    assert _written_scope(ScopeIndex(ENGINE), len(lines), [])(at, at + 1)[0] == "helper"


def test_new_takes_a_module_target_and_capture_writes_function_targets_for_it(written, monkeypatch):
    """Issue 15: after a conflict at module scope, the suggested `vllm-surgeon new NAME TARGET` refused a module."""
    root, sets, base = written
    monkeypatch.chdir(root)
    code, out = cli("new", "whole", "vllm.engine.core", "--against", str(base))
    assert code == 0, out
    copy = root / "whole.surgeon" / "vllm.engine.core" / "vllm.engine.core.py"
    assert copy.read_text() == ENGINE
    copy.write_text(ENGINE.replace("        c = 3\n", "        c = 33\n").replace("import sys\n", "import os\nimport sys\n"))
    code, out = cli("capture", "whole")
    assert code == 0, out
    text = (root / "whole.hunk").read_text()
    assert "@@ vllm.engine.core:Engine.step @@" in text and "\n@@ vllm.engine.core @@ +0\n+import os\n" in text, text


def test_a_conflict_at_module_scope_suggests_a_new_command_that_works(written, monkeypatch):
    root, sets, base = written
    monkeypatch.chdir(root)
    (sets / "imports.hunk").write_text(f"written-against: {base}\n@@ vllm.engine.core\n-import sys\n+import sys  # mine\n")
    onto = tree(root / "v2", "2.0.0", ENGINE.replace("import sys\n", "import sys  # upstream\n"))
    code, out = cli("rebase", "imports", "--onto", str(onto))
    assert code == 1 and "(vllm.engine.core changed at module scope)" in out, out
    suggested = next(line for line in out.splitlines() if "vllm-surgeon new " in line).split("#")[0].split()
    assert suggested[:4] == ["vllm-surgeon", "new", "imports.rebased", "vllm.engine.core"], suggested
    assert cli(*suggested[1:])[0] == 0
    assert (root / "imports.rebased.surgeon" / "vllm.engine.core" / "vllm.engine.core.py").read_text().startswith(
        "import sys  # upstream\n")
