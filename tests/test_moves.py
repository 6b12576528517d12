"""Code that moved (issue 14 part 2), on small source trees: what a refusal says about a target gone
from its module, the definition index and its cache, and `rebase` carrying a set to where its code went."""

from __future__ import annotations

import io
import json
import os

import pytest

from vllm_surgeon.commands.cli import main
from vllm_surgeon.core.refusal import Reason
from vllm_surgeon.core.source import ModuleSource, TreeReader
from vllm_surgeon.engine import planner
from vllm_surgeon.sets.difffile import parse_diff_file
from vllm_surgeon.sets.hunkfile import parse_hunk_file
from vllm_surgeon.trees import definitions as defs
from vllm_surgeon.trees.releases import directory

WORK = '''\
import os


def helper(x):
    return x


def work(items):
    total = 0
    for item in items:
        total += helper(item)
    return total
'''

SET = '''\
written-against: {base}
@@ vllm.old.place:work @@
     total = 0
     for item in items:
-        total += helper(item)
+        total += 2 * helper(item)
     return total
'''

DIFF = '''\
--- a/vllm/old/place.py
+++ b/vllm/old/place.py
@@ -9,4 +9,4 @@ def work(items):
     total = 0
     for item in items:
-        total += helper(item)
+        total += 2 * helper(item)
     return total
'''


def tree(root, version: str, files: dict[str, str]):
    """A vllm/ source tree: `files` maps module names to their text (packages get an __init__.py)."""
    for module, text in files.items():
        path = root.joinpath(*module.split(".")).with_suffix(".py")
        path.parent.mkdir(parents=True, exist_ok=True)
        for parent in path.relative_to(root).parents:
            if str(parent) != ".":
                init = root / parent / "__init__.py"
                if not init.exists():
                    init.write_text("")
        path.write_text(text)
    (root / "vllm" / "_version.py").write_text(f"__version__ = version = '{version}'\n")
    return root


def verify_one(text: str, onto, kind: str = "hunk"):
    parse = parse_diff_file if kind == "diff" else parse_hunk_file
    hunk_set = parse(text, f"t.{kind}", "t")
    return planner.plan([hunk_set], onto.read, onto.version).results[0]


@pytest.fixture(autouse=True)
def _fresh_index():
    defs.forget()
    yield
    defs.forget()


# -- what verify says --------------------------------------------------------------------------------

def test_a_target_whose_module_is_gone_names_the_module_and_line_it_moved_to(tmp_path):
    onto = directory(tree(tmp_path / "new", "2.0.0", {"vllm.new.place": "# moved here\n\n" + WORK}))
    result = verify_one(SET.format(base="1.0.0"), onto)
    (refusal,) = result.refusals
    assert refusal.reason is Reason.MODULE_NOT_FOUND
    assert "no Python source for module vllm.old.place" in refusal.detail
    (moved,) = refusal.moved
    assert (moved.module, moved.qualname, moved.line, moved.how, moved.anchor) == ("vllm.new.place", "work", 10, "moved", "found")
    assert "defined in vllm.new.place:work (line 10" in refusal.detail and "`vllm-surgeon rebase` carries" in refusal.detail


def test_with_the_written_against_release_it_says_whether_the_code_is_identical_or_how_similar(tmp_path, monkeypatch):
    base = tree(tmp_path / "old", "1.0.0", {"vllm.old.place": WORK})
    same = directory(tree(tmp_path / "same", "2.0.0", {"vllm.new.place": WORK}))
    changed = WORK.replace("    return total\n", "    total = int(total)\n    return total\n")
    similar = directory(tree(tmp_path / "similar", "2.0.0", {"vllm.new.place": changed}))
    hunk_set = parse_hunk_file(SET.format(base=base), "t.hunk", "t")
    before = directory(base).read
    (moved,) = planner.plan([hunk_set], same.read, "2.0.0", before=lambda s: before).refusals[0].moved
    assert (moved.code, moved.similarity) == ("identical", 1.0)
    refusal = planner.plan([hunk_set], similar.read, "2.0.0", before=lambda s: before).refusals[0]
    (moved,) = refusal.moved
    assert moved.code == "similar" and 0.6 <= moved.similarity < 1 and "code similar (" in refusal.detail


def test_verify_compares_with_the_written_against_release_and_says_it_in_json(tmp_path, monkeypatch):
    base = tree(tmp_path / "old", "1.0.0", {"vllm.old.place": WORK})
    onto = tree(tmp_path / "new", "2.0.0", {"vllm.new.place": WORK})
    sets = tmp_path / "sets"
    sets.mkdir()
    (sets / "twice.hunk").write_text(SET.format(base=base))
    monkeypatch.setenv("VLLM_SURGEON_PATH", str(sets))
    out = io.StringIO()
    assert main(["verify", "twice", "--against", str(onto), "--json"], out=out) == 1
    (refusal,) = json.loads(out.getvalue())["sets"][0]["refusals"]
    assert refusal["moved_to"] == [{"module": "vllm.new.place", "qualname": "work", "line": 8, "how": "moved",
                                    "anchor": "found", "code": "identical", "similarity": 1.0}]


def test_a_name_defined_in_several_other_modules_lists_each(tmp_path):
    onto = directory(tree(tmp_path / "new", "2.0.0", {"vllm.a": WORK, "vllm.b": WORK.replace("total = 0", "total = 1")}))
    refusal = verify_one(SET.format(base="1.0.0"), onto).refusals[0]
    assert [(m.module, m.anchor) for m in refusal.moved] == [("vllm.a", "found"), ("vllm.b", "not-found")]
    assert "in 2 places" in refusal.detail and "carries" not in refusal.detail


def test_a_method_gone_from_its_class_names_the_base_class_that_defines_it(tmp_path):
    method = "    def step(self, items):\n" + "".join("    " + line + "\n" for line in WORK.split("def work(items):\n")[1].splitlines())
    files = {
        "vllm.engine": "from vllm.mixins import StepMixin\n\n\nclass Engine(StepMixin):\n    pass\n",
        "vllm.mixins": "from vllm.util import helper\n\n\nclass StepMixin:\n" + method,
        "vllm.util": "def helper(x):\n    return x\n",
    }
    onto = directory(tree(tmp_path / "new", "2.0.0", files))
    text = SET.format(base="1.0.0").replace("vllm.old.place:work", "vllm.engine:Engine.step").replace("\n     ", "\n         ")
    text = text.replace("\n-    ", "\n-        ").replace("\n+    ", "\n+        ")
    refusal = verify_one(text, onto).refusals[0]
    assert refusal.reason is Reason.TARGET_NOT_FOUND
    (moved,) = refusal.moved
    assert (moved.module, moved.qualname, moved.how, moved.anchor) == ("vllm.mixins", "StepMixin.step", "base-class", "found")
    assert "inherited from vllm.mixins:StepMixin.step (line 5" in refusal.detail


def test_a_function_renamed_in_its_module_with_the_same_body(tmp_path):
    base = directory(tree(tmp_path / "old", "1.0.0", {"vllm.old.place": WORK}))
    onto = directory(tree(tmp_path / "new", "2.0.0", {"vllm.old.place": WORK.replace("def work(", "def do_work(")}))
    hunk_set = parse_hunk_file(SET.format(base="1.0.0"), "t.hunk", "t")
    refusal = planner.plan([hunk_set], onto.read, "2.0.0", before=lambda s: base.read).refusals[0]
    (moved,) = refusal.moved
    assert (moved.module, moved.qualname, moved.how, moved.code) == ("vllm.old.place", "do_work", "renamed", "identical")
    # Without the written-against release: the one function of the module that holds the anchor.
    (moved,) = verify_one(SET.format(base="1.0.0"), onto).refusals[0].moved
    assert (moved.qualname, moved.how, moved.code) == ("do_work", "anchor-in", None)


def test_a_plain_diff_whose_file_is_gone_names_where_its_function_went(tmp_path):
    onto = directory(tree(tmp_path / "new", "2.0.0", {"vllm.new.place": WORK}))
    refusal = verify_one(DIFF, onto, kind="diff").refusals[0]
    assert refusal.reason is Reason.PATH_NOT_FOUND
    (moved,) = refusal.moved
    assert (moved.module, moved.qualname, moved.anchor) == ("vllm.new.place", "work", "found")
    # With its release at hand: the function its hunk landed in there, not only the name git printed.
    base = directory(tree(tmp_path / "old", "1.0.0", {"vllm.old.place": WORK}))
    hunk_set = parse_diff_file(DIFF.replace(" def work(items):", ""), "t.diff", "t")
    refusal = planner.plan([hunk_set], onto.read, "2.0.0", before=lambda s: base.read).refusals[0]
    assert [(m.module, m.qualname, m.code) for m in refusal.moved] == [("vllm.new.place", "work", "identical")]


def test_a_plan_that_applies_never_reads_the_release_index(tmp_path):
    files = {"vllm.old.place": WORK}
    onto = directory(tree(tmp_path / "new", "2.0.0", files))

    def never():
        raise AssertionError("the index was read though nothing was refused")

    assert isinstance(onto.read, TreeReader)
    reader = TreeReader(onto.read.source, onto.read.form, never)
    assert planner.plan([parse_hunk_file(SET.format(base="1.0.0"), "t.hunk", "t")], reader, "2.0.0").refusals == []


def test_a_refusal_from_a_reader_without_an_index_still_stands(tmp_path):
    def read(module: str):
        return ModuleSource(module, "/x/m.py", WORK) if module == "vllm.other" else None

    refusal = planner.plan([parse_hunk_file(SET.format(base="1.0.0"), "t.hunk", "t")], read, "2.0.0").refusals[0]
    assert refusal.reason is Reason.MODULE_NOT_FOUND and refusal.moved == ()


# -- the index and its cache ---------------------------------------------------------------------------

def _wheel(tmp_path, files: dict[str, str]):
    import zipfile

    path = tmp_path / "vllm-2.0.0-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as z:
        for name, text in files.items():
            z.writestr(name, text)
        z.writestr("vllm-2.0.0.dist-info/METADATA", "Name: vllm\nVersion: 2.0.0\n")
    return path


def test_the_index_is_cached_beside_the_wheel_and_read_back(tmp_path):
    from vllm_surgeon.trees.wheels import Wheel

    path = _wheel(tmp_path, {"vllm/__init__.py": "", "vllm/new/__init__.py": "", "vllm/new/place.py": WORK})
    index = Wheel(path).definitions()
    cache = defs.cache_path(path)
    assert cache.name == path.name + ".definitions.json" and cache.is_file()
    assert oct(cache.stat().st_mode & 0o777) == "0o600"
    assert [d.where() for d in index.where("work")] == ["vllm.new.place:work (line 8)"]
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []
    defs.forget()
    payload = json.loads(cache.read_text())
    payload["definitions"][0][1] = "from_the_cache"
    cache.write_text(json.dumps(payload))
    assert Wheel(path).definitions().where("from_the_cache")  # a good entry is read, not rebuilt


@pytest.mark.parametrize("damage", ["corrupt", "schema", "other-wheel", "bad-row", "group-writable", "symlink", "fifo"])
def test_a_corrupt_or_hostile_cache_entry_is_ignored_and_rebuilt(tmp_path, damage):
    from vllm_surgeon.trees.wheels import Wheel

    path = _wheel(tmp_path, {"vllm/__init__.py": "", "vllm/place.py": WORK})
    Wheel(path).definitions()
    defs.forget()
    cache = defs.cache_path(path)
    payload = json.loads(cache.read_text())
    payload["definitions"][0][1] = "planted"
    if damage == "corrupt":
        cache.write_bytes(b"\x00{not json")
    elif damage == "schema":
        cache.write_text(json.dumps({**payload, "schema": "vllm-surgeon/definitions/0"}))
    elif damage == "other-wheel":
        cache.write_text(json.dumps({**payload, "wheel": "0" * 64}))
    elif damage == "bad-row":
        payload["definitions"][1][3] = -1
        cache.write_text(json.dumps(payload))
    elif damage == "group-writable":
        cache.write_text(json.dumps(payload))
        os.chmod(cache, 0o664)
    elif damage == "symlink":
        planted = tmp_path / "planted.json"
        planted.write_text(json.dumps(payload))
        cache.unlink()
        cache.symlink_to(planted)
    elif damage == "fifo":
        cache.unlink()
        os.mkfifo(cache)
    index = Wheel(path).definitions()
    assert not index.where("planted") and index.where("work")
    if damage in ("corrupt", "schema", "other-wheel", "bad-row"):  # rewritten good
        defs.forget()
        assert defs.read_cache(cache, json.loads(cache.read_text())["wheel"]) is not None


def test_an_unwritable_folder_only_costs_the_cache(tmp_path):
    from vllm_surgeon.trees.wheels import Wheel

    path = _wheel(tmp_path, {"vllm/__init__.py": "", "vllm/place.py": WORK})
    os.chmod(tmp_path, 0o500)
    try:
        if os.access(tmp_path, os.W_OK):
            pytest.skip("running as a user who can write any folder")
        assert Wheel(path).definitions().where("work")
    finally:
        os.chmod(tmp_path, 0o700)


def test_a_module_that_does_not_parse_is_listed_as_unreadable():
    sources = {"vllm.ok": WORK, "vllm.bad": "def broken(:\n"}
    index = defs.build(sources, lambda m: ModuleSource(m, f"/x/{m}.py", sources[m]))
    assert index.unreadable == ("vllm.bad",) and index.where("work")


# -- rebase --------------------------------------------------------------------------------------------

def cli(*args):
    out = io.StringIO()
    return main(list(args), out=out), out.getvalue()


@pytest.fixture
def moved_trees(tmp_path, monkeypatch):
    base = tree(tmp_path / "old", "1.0.0", {"vllm.old.place": WORK, "vllm.stays": WORK.replace("work", "keep")})
    sets = tmp_path / "sets"
    sets.mkdir()
    monkeypatch.setenv("VLLM_SURGEON_PATH", str(sets))
    return tmp_path, base, sets


def test_rebase_carries_a_hunk_to_the_module_its_function_moved_to(moved_trees):
    root, base, sets = moved_trees
    onto = tree(root / "new", "2.0.0", {"vllm.new.place": "import os\n\n" + WORK.replace("    total = 0\n", "    total = 0  # a start\n"),
                                        "vllm.stays": WORK.replace("work", "keep")})
    stays = ('@@ vllm.stays:keep @@\n     total = 0\n     for item in items:\n'
             '-        total += helper(item)\n+        total -= helper(item)\n')
    (sets / "twice.hunk").write_text(SET.format(base=base).replace("     total = 0\n", "") + stays)
    code, out = cli("rebase", "twice", "--onto", str(onto))
    assert code == 0, out
    assert "twice.hunk:2 (vllm.old.place:work) to vllm.new.place:work (line 10), where vllm 2.0.0" in out, out
    assert "defines it, code identical" in out  # a comment is not code
    text = (sets / "twice.rebased.hunk").read_text()
    assert "@@ vllm.new.place:work @@" in text and "+        total += 2 * helper(item)" in text
    assert "@@ vllm.stays:keep @@" in text and "vllm.old.place" not in text and "written-against: 2.0.0" in text
    (sets / "twice.rebased.hunk").rename(sets / "carried.hunk")
    assert cli("verify", "carried", "--against", str(onto))[0] == 0


def test_rebase_carries_a_plain_diff_to_the_new_path(moved_trees):
    root, base, sets = moved_trees
    onto = tree(root / "new", "2.0.0", {"vllm.new.place": WORK})
    (sets / "twice.patch").write_text(f"written-against: {base}\n" + DIFF)
    code, out = cli("rebase", "twice", "--onto", str(onto))
    assert code == 0, out
    assert "to vllm.new.place:work (line 8)" in out
    text = (sets / "twice.rebased.patch").read_text()
    assert "--- a/vllm/new/place.py" in text and "+++ b/vllm/new/place.py" in text and "+        total += 2 * helper(item)" in text
    assert "old/place" not in text


def test_rebase_never_guesses_between_two_modules_defining_the_name(moved_trees):
    root, base, sets = moved_trees
    onto = tree(root / "new", "2.0.0", {"vllm.a": WORK, "vllm.b": WORK})
    (sets / "twice.hunk").write_text(SET.format(base=base))
    code, out = cli("rebase", "twice", "--onto", str(onto))
    assert code == 1, out
    assert "work is not in vllm.old.place" in out and "defined in 2 other places" in out
    assert "vllm.a:work" in out and "vllm.b:work" in out and not (sets / "twice.rebased.hunk").exists()


def test_rebase_refuses_a_moved_definition_where_the_anchor_is_not_found(moved_trees):
    root, base, sets = moved_trees
    onto = tree(root / "new", "2.0.0", {"vllm.new.place": WORK.replace("for item in items:", "for thing in items:")})
    (sets / "twice.hunk").write_text(SET.format(base=base))
    code, out = cli("rebase", "twice", "--onto", str(onto))
    assert code == 1, out
    assert "defined in vllm.new.place:work (line 8" in out and "anchor not found there" in out


def test_rebase_merges_a_moved_function_whose_docstring_changed_around_the_anchor(moved_trees):
    root, _, sets = moved_trees
    documented = WORK.replace("def work(items):\n", 'def work(items):\n    """Add them up."""\n')
    base = tree(root / "doc", "1.0.0", {"vllm.old.place": documented})
    onto = tree(root / "new", "2.0.0", {"vllm.new.place": documented.replace("Add them up.", "Sum the items.")})
    (sets / "doc.hunk").write_text(f'written-against: {base}\n@@ vllm.old.place:work @@\n     """Add them up."""\n'
                                   "     total = 0\n+    total = 1\n")
    code, out = cli("rebase", "doc", "--onto", str(onto))
    assert code == 0, out
    assert "code identical; the anchor is not there as written: the function was merged three-way" in out
    text = (sets / "doc.rebased.hunk").read_text()
    assert "@@ vllm.new.place:work @@" in text and "+    total = 1" in text and "Add them up" not in text


def test_a_temporary_file_a_killed_writer_left_is_removed_when_the_index_is_written(tmp_path):
    from vllm_surgeon.trees.wheels import Wheel

    path = _wheel(tmp_path, {"vllm/__init__.py": "", "vllm/place.py": WORK})
    stale, fresh = tmp_path / f".{path.name}{defs.SUFFIX}.abc.tmp", tmp_path / f".{path.name}{defs.SUFFIX}.def.tmp"
    stale.write_text("half")
    fresh.write_text("being written")
    os.utime(stale, (1, 1))
    Wheel(path).definitions()
    assert not stale.exists() and fresh.exists()


def test_a_plain_diff_whose_function_left_a_module_that_is_still_there_names_where_it_went(tmp_path):
    onto = directory(tree(tmp_path / "new", "2.0.0", {"vllm.old.place": "import os\n", "vllm.new.place": WORK}))
    refusal = verify_one(DIFF, onto, kind="diff").refusals[0]
    assert refusal.reason is Reason.ANCHOR_NOT_FOUND
    assert [(m.module, m.qualname, m.anchor) for m in refusal.moved] == [("vllm.new.place", "work", "found")]
    # Still in its module (the anchor changed there): nothing is searched, the refusal is as before.
    onto = directory(tree(tmp_path / "kept", "2.0.0", {"vllm.old.place": WORK.replace("for item", "for thing")}))
    assert verify_one(DIFF, onto, kind="diff").refusals[0].moved == ()


def test_a_line_added_after_a_functions_last_line_follows_that_function(moved_trees):
    root, base, sets = moved_trees
    onto = tree(root / "new", "2.0.0", {"vllm.new.place": WORK})
    (sets / "tail.patch").write_text(f"written-against: {base}\n--- a/vllm/old/place.py\n+++ b/vllm/old/place.py\n"
                                     "@@ -10,3 +10,4 @@ def work(items):\n     for item in items:\n"
                                     "         total += helper(item)\n     return total\n+    # done\n")
    code, out = cli("rebase", "tail", "--onto", str(onto))
    assert code == 0, out
    assert "(vllm.old.place:work) to vllm.new.place:work" in out
    assert "+++ b/vllm/new/place.py" in (sets / "tail.rebased.patch").read_text()


def test_a_hunk_in_a_def_nested_in_a_moved_function_moves_with_it(moved_trees):
    root, _, sets = moved_trees
    nested = WORK.replace("    total = 0\n", "    def inner(x):\n        y = x + 1\n        z = y * 2\n        return z\n\n    total = 0\n")
    base = tree(root / "nest", "1.0.0", {"vllm.old.place": nested})
    onto = directory(tree(root / "new", "2.0.0", {"vllm.new.place": nested}))
    text = (f"written-against: {base}\n@@ vllm.old.place:work.<locals>.inner @@\n         y = x + 1\n"
            "         z = y * 2\n+        z += 1\n         return z\n")
    (sets / "nest.hunk").write_text(text)
    refusal = verify_one(text, onto).refusals[0]
    assert [(m.module, m.qualname, m.anchor) for m in refusal.moved] == [("vllm.new.place", "work", "found")]
    code, out = cli("rebase", "nest", "--onto", str(onto.location))
    assert code == 0, out
    assert "@@ vllm.new.place:work.<locals>.inner @@" in (sets / "nest.rebased.hunk").read_text()
