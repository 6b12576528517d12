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


@pytest.fixture
def trees(tmp_path, monkeypatch):
    sets = tmp_path / "sets"
    sets.mkdir()
    base = tree(tmp_path / "v1", "1.0.0", BASE)
    (sets / "thirty.hunk").write_text(SET.format(base=base))
    monkeypatch.setenv("VLLM_SURGEON_PATH", str(sets))
    return tmp_path, sets, base


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
