"""`vllm-surgeon adopt FILE::QUALNAME --target ...`: one copy-and-edit monkey patch becomes a hunk set
whose change is computed on code, not text, checked with the engine; identical copies, refusals and
bad input (small fake trees, read statically)."""

from __future__ import annotations

import ast

import pytest
from adopt_trees import cli, vllm_tree, write

from vllm_surgeon.adopt import assemble, code
from vllm_surgeon.adopt.adoption import ADOPTED, Copy, ModuleChange, adopt
from vllm_surgeon.adopt.patchfile import PatchFile
from vllm_surgeon.adopt.resolve import Resolver
from vllm_surgeon.core.model import Target
from vllm_surgeon.engine import planner
from vllm_surgeon.sets.hunkfile import parse_hunk_file
from vllm_surgeon.trees.releases import directory

TARGET = "vllm.v1.core.sched.scheduler:Scheduler.schedule"


@pytest.fixture
def tree(tmp_path):
    return vllm_tree(tmp_path / "checkout")


def adopted(tmp_path, tree, patch: str, qualname: str, target: str = TARGET, out: str = "out.hunk") -> tuple[int, str, str | None]:
    """Run the one-copy command on a patch file written from `patch`; (exit code, output, set text)."""
    path = write(tmp_path, "mypatches/patch.py", patch)
    set_path = tmp_path / out
    code_, output = cli("adopt", f"{path}::{qualname}", "--target", target, "--against", str(tree), "--out", str(set_path))
    return code_, output, set_path.read_text() if set_path.exists() else None


def patched(tree, set_text: str, module: str = "vllm.v1.core.sched.scheduler") -> str:
    """The module as the engine makes it from the set on the tree."""
    plan = planner.plan([parse_hunk_file(set_text, "x.hunk", "x")], directory(tree).read, "0.99.0")
    assert not plan.refusals, plan.refusals[0].message()
    return plan.modules[module].text


def function(text: str, qualname: str) -> ast.FunctionDef | ast.AsyncFunctionDef:
    (node,) = code.find_def(ast.parse(text), qualname)
    assert isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
    return node


# A copy as black would lay it out (upstream's long call re-wrapped, other quotes), with one change.
REWRAPPED = '''
from vllm.logger import init_logger
from vllm.v1.core.sched.scheduler import Scheduler

logger = init_logger(__name__)


def schedule(self) -> list:
    scheduled = []
    while self.waiting and self.budget > 0:
        request = self.waiting.popleft()
        if request.tokens >= self.budget:  # my change: equal no longer fits
            self.waiting.appendleft(request)
            break
        self.budget -= request.tokens
        scheduled.append(request)
    logger.debug(
        'scheduled %d requests, %d tokens left in the budget',
        len(scheduled),
        self.budget,
    )
    return scheduled


Scheduler.schedule = schedule
'''


def test_a_reformatted_copy_gives_a_hunk_only_where_its_code_changed(tmp_path, tree):
    rc, output, text = adopted(tmp_path, tree, REWRAPPED, "schedule")
    assert rc == 0, output
    assert "adopted" in output and "1 hunk" in output
    changed = [line for line in text.splitlines() if line.startswith(("+", "-"))]
    # The re-wrapped logger.debug call and the quotes are layout: only the comparison changed.
    assert changed == ["-            if request.tokens > self.budget:",
                       "+            if request.tokens >= self.budget:  # my change: equal no longer fits"]
    assert f"@@ {TARGET} @@" in text and "written-against: 0.99.0" in text
    result = patched(tree, text)
    copy = function((tmp_path / "mypatches/patch.py").read_text(), "schedule")
    assert code.function_key(function(result, "Scheduler.schedule")) == code.function_key(copy)
    # Upstream's docstring and comment stay (docstrings aside, the code is the copy's).
    assert '"""Pick what runs next."""' in result and "# Admit waiting requests" in result


def test_a_copy_that_is_upstreams_code_is_identical_and_writes_nothing(tmp_path, tree):
    copy = REWRAPPED.replace("request.tokens >= self.budget:  # my change: equal no longer fits", "request.tokens > self.budget:")
    rc, output, text = adopted(tmp_path, tree, '"""Module doc."""\n' + copy.replace("def schedule(self) -> list:\n",
                               'def schedule(self) -> list:\n    """Another docstring."""\n'), "schedule")
    assert rc == 0 and output.startswith("identical:") and text is None


def test_a_function_assigned_over_a_staticmethod_keeps_the_decorator(tmp_path, tree):
    patch = '''
    from vllm.v1.core.sched.scheduler import Scheduler

    def describe_request(request) -> str:
        return f"request {request.id}: {request.tokens} tokens"

    Scheduler.describe = describe_request
    '''
    rc, output, text = adopted(tmp_path, tree, patch, "describe_request", "vllm.v1.core.sched.scheduler:Scheduler.describe")
    assert rc == 0, output
    result = patched(tree, text)
    assert "    @staticmethod\n    def describe(request) -> str:" in result  # renamed back, decorator kept
    assert "@@ vllm.v1.core.sched.scheduler:Scheduler.describe @@" in text


def test_a_name_the_patch_file_imports_becomes_an_import_line_in_upstreams_import_block(tmp_path, tree):
    patch = '''
    from typing import Optional

    from mypatches.limits import clamp


    def admit(queue, budget: Optional[int]) -> int:
        total = 0
        for request in queue:
            total += clamp(request.tokens)
        return min(total, budget)
    '''
    rc, output, text = adopted(tmp_path, tree, patch, "admit", "vllm.v1.core.sched.scheduler:admit")
    assert rc == 0, output
    assert "+from mypatches.limits import clamp\n+from typing import Optional\n" in text
    result = patched(tree, text)
    lines = result.splitlines()
    # In the import block, after upstream's last import, before the module's code.
    assert lines.index("from mypatches.limits import clamp") < lines.index("logger = init_logger(__name__)")


def test_an_import_of_a_name_the_release_lacks_is_refused(tmp_path, tree):
    patch = '''
    from vllm.logger import init_logger, clamp_tokens

    def admit(queue, budget: int) -> int:
        return min(sum(clamp_tokens(r.tokens) for r in queue), budget)
    '''
    rc, output, text = adopted(tmp_path, tree, patch, "admit", "vllm.v1.core.sched.scheduler:admit")
    assert rc == 1 and text is None
    assert "reads clamp_tokens, imported by" in output and "from vllm.logger, which has no such name here" in output


def test_helpers_only_the_patch_file_defines_are_carried_in_after_the_imports(tmp_path, tree):
    patch = '''
    import math

    FLOOR = 0


    def _clamp(n):
        return max(n, FLOOR)


    class _Budget:
        def left(self, total: int, budget: int) -> int:
            return math.floor(budget - total)


    def admit(queue, budget: int) -> int:
        total = sum(_clamp(r.tokens) for r in queue)
        return min(total, _Budget().left(0, budget))
    '''
    rc, output, text = adopted(tmp_path, tree, patch, "admit", "vllm.v1.core.sched.scheduler:admit")
    assert rc == 0, output
    lines = patched(tree, text).splitlines()
    # The import line, then the patch file's statements in its order, then upstream's own code.
    order = ["import math", "FLOOR = 0", "def _clamp(n):", "class _Budget:", "logger = init_logger(__name__)"]
    assert [lines.index(line) for line in order] == sorted(lines.index(line) for line in order), lines
    assert "+        return math.floor(budget - total)" in text


def test_a_helper_reading_at_definition_what_the_module_binds_later_goes_after_it(tmp_path, tree):
    patch = '''
    from vllm.v1.core.sched.scheduler import Scheduler


    class _Quick(Scheduler):
        pass


    def admit(queue, budget: int) -> int:
        return min(sum(r.tokens for r in queue), budget, len(_Quick.__mro__))
    '''
    rc, output, text = adopted(tmp_path, tree, patch, "admit", "vllm.v1.core.sched.scheduler:admit")
    assert rc == 0, output
    lines = patched(tree, text).splitlines()
    # vLLM's class Scheduler is defined further down than the imports: the subclass goes right after it.
    assert lines.index("class Scheduler:") < lines.index("class _Quick(Scheduler):") < lines.index("class PriorityScheduler(Scheduler):")
    assert "@@ vllm.v1.core.sched.scheduler @@" in text


def test_a_helper_reading_at_definition_a_name_the_module_binds_only_for_type_checkers_is_refused(tmp_path, tree):
    write(tree, "vllm/v1/core/sched/typed.py", '''
        from typing import TYPE_CHECKING

        if TYPE_CHECKING:
            from vllm.v1.core.sched.scheduler import Scheduler


        def count(scheduler: "Scheduler") -> int:
            return len(scheduler.waiting)
    ''')
    patch = '''
    from vllm.v1.core.sched.scheduler import Scheduler


    class _Mine(Scheduler):
        pass


    def count(scheduler: "Scheduler") -> int:
        return len(scheduler.waiting) + len(_Mine.__mro__)
    '''
    rc, output, text = adopted(tmp_path, tree, patch, "count", "vllm.v1.core.sched.typed:count")
    assert rc == 1 and text is None
    assert "reads _Mine, defined in" in output and "which reads Scheduler as it is defined" in output
    assert "vllm.v1.core.sched.typed does not always bind it at its top level" in output


def test_a_helper_the_patch_file_defines_twice_is_refused_by_name(tmp_path, tree):
    patch = '''
    import os

    if os.environ.get("FAST"):
        def _clamp(n):
            return n
    else:
        def _clamp(n):
            return max(n, 0)

    def admit(queue, budget: int) -> int:
        return min(sum(_clamp(r.tokens) for r in queue), budget)
    '''
    rc, output, text = adopted(tmp_path, tree, patch, "admit", "vllm.v1.core.sched.scheduler:admit")
    assert rc == 1 and text is None
    assert "reads _clamp, defined in" in output and "which vllm.v1.core.sched.scheduler lacks" in output


def test_a_closure_is_refused(tmp_path, tree):
    patch = '''
    def make(limit):
        def admit(queue, budget: int) -> int:
            return min(limit, budget)
        return admit
    '''
    rc, output, _ = adopted(tmp_path, tree, patch, "make.<locals>.admit", "vllm.v1.core.sched.scheduler:admit")
    assert rc == 1 and "reads limit from the function around it (a closure)" in output


def test_globals_redefined_beside_an_unchanged_copy_become_module_scope_hunks(tmp_path, tree):
    patch = '''
    from vllm.logger import init_logger

    logger = init_logger(__name__)
    MAX_WAITING = 10  # the real change: a smaller queue


    def admit(queue, budget: int) -> int:
        total = 0
        for request in list(queue)[:MAX_WAITING]:
            total += request.tokens
        return min(total, budget)
    '''
    rc, output, text = adopted(tmp_path, tree, patch, "admit", "vllm.v1.core.sched.scheduler:admit")
    assert rc == 0, output
    assert "-MAX_WAITING = 100\n+MAX_WAITING = 10  # the real change: a smaller queue" in text
    assert "@@ vllm.v1.core.sched.scheduler @@" in text


def test_an_unchanged_copy_reading_a_redefined_global_is_adopted_not_identical(tmp_path, tree):
    patch = '''
    MAX_WAITING = 5

    def admit(queue, budget: int) -> int:
        total = 0
        for request in queue:
            total += request.tokens
        return min(total, budget, MAX_WAITING)
    '''
    unchanged = patch.replace("min(total, budget, MAX_WAITING)", "min(total, budget)")
    assert adopted(tmp_path, tree, unchanged, "admit", "vllm.v1.core.sched.scheduler:admit")[0] == 0
    rc, output, text = adopted(tmp_path, tree, patch, "admit", "vllm.v1.core.sched.scheduler:admit", "two.hunk")
    assert rc == 0 and "-MAX_WAITING = 100" in text


def test_statements_sharing_a_line_are_replaced_with_the_statement_around_them(tmp_path, tree):
    write(tree, "vllm/v1/core/sched/scheduler.py", tree.joinpath("vllm/v1/core/sched/scheduler.py").read_text().replace(
        "        self.running.remove(request)", "        if request: self.running.remove(request); request.done = True"))
    patch = '''
    def finish(self, request) -> None:
        if request:
            self.running.remove(request)
            request.done = False
    '''
    rc, output, text = adopted(tmp_path, tree, patch, "finish", "vllm.v1.core.sched.scheduler:Scheduler.finish")
    assert rc == 0, output
    result = patched(tree, text)
    assert code.function_key(function(result, "Scheduler.finish")) == code.function_key(function(patch.replace("\n    ", "\n"), "finish"))


def test_a_re_exported_target_is_adopted_where_it_is_defined(tmp_path, tree):
    patch = '''
    from vllm.config import ModelConfig

    def verify(self) -> None:
        if self.max_len <= 0:
            raise ValueError("max_len must be positive, got %d" % self.max_len)
        self.ready = True

    ModelConfig.verify = verify
    '''
    rc, output, text = adopted(tmp_path, tree, patch, "verify", "vllm.config:ModelConfig.verify")
    assert rc == 0, output
    assert "@@ vllm.config.model:ModelConfig.verify @@" in text


def test_an_inherited_target_becomes_an_override_in_the_class_named(tmp_path, tree):
    """`PriorityScheduler.schedule = f` changes PriorityScheduler, not Scheduler, which defines schedule."""
    patch = '''
    def schedule(self) -> list:
        return sorted(self.waiting, key=lambda r: r.priority)
    '''
    rc, output, text = adopted(tmp_path, tree, patch, "schedule", "vllm.v1.core.sched.scheduler:PriorityScheduler.schedule")
    assert rc == 0, output
    assert "@@ vllm.v1.core.sched.scheduler:PriorityScheduler\n+\n+    def schedule(self) -> list:" in text
    result = patched(tree, text)
    assert code.find_def(ast.parse(result), "PriorityScheduler.schedule")
    assert '"""Pick what runs next."""' in result  # Scheduler.schedule itself is untouched
    same = "def finish(self, request) -> None:\n    self.running.remove(request)\n"
    rc, output, _ = adopted(tmp_path, tree, same, "finish", "vllm.v1.core.sched.scheduler:PriorityScheduler.finish", "b.hunk")
    assert rc == 0 and output.startswith("identical: ") and "the copy is vllm.v1.core.sched.scheduler:Scheduler.finish, which" in output


def test_a_method_the_class_lacks_is_added_at_its_end(tmp_path, tree):
    patch = '''
    class SchedulerPatch:
        def waiting_tokens(self) -> int:
            return sum(r.tokens for r in self.waiting)
    '''
    rc, output, text = adopted(tmp_path, tree, patch, "SchedulerPatch.waiting_tokens",
                               "vllm.v1.core.sched.scheduler:Scheduler.waiting_tokens")
    assert rc == 0 and "a new method" in output
    assert "@@ vllm.v1.core.sched.scheduler:Scheduler\n+\n+    def waiting_tokens(self) -> int:" in text
    assert "def waiting_tokens" in patched(tree, text)


def test_no_such_function_upstream_is_refused_with_similar_names(tmp_path, tree):
    rc, output, _ = adopted(tmp_path, tree, REWRAPPED, "schedule", "vllm.v1.core.sched.scheduler:admitt")
    assert rc == 1 and "has no admitt" in output and "similar names: admit" in output


def test_the_check_refuses_a_set_whose_code_is_not_the_replacements(tmp_path, tree):
    """Never a hunk that gives other code: a change whose expected code differs is refused by the check."""
    path = write(tmp_path, "mypatches/patch.py", REWRAPPED)
    resolver = Resolver(directory(tree).read)
    adoption = adopt(Copy.named(PatchFile.read(path), "schedule"), Target.parse(TARGET, None), resolver, "tree")
    assert adoption.verdict == ADOPTED and adoption.change is not None
    change: ModuleChange = adoption.change
    text = assemble.render([change], [])
    assert assemble.check(text, "x.hunk", "x", directory(tree).read, "0.99.0", [change]) is None
    change.expect["Scheduler.schedule"] = code.function_key(function(tree.joinpath(
        "vllm/v1/core/sched/scheduler.py").read_text(), "Scheduler.schedule"))
    why = assemble.check(text, "x.hunk", "x", directory(tree).read, "0.99.0", [change])
    assert why is not None and "is not the replacement's code" in why
    change.edits[0].lines[0] += "  # and more"
    why = assemble.check(text, "x.hunk", "x", directory(tree).read, "0.99.0", [change])
    assert why is not None and "is not the adopted text" in why


def test_a_set_that_would_read_an_undefined_name_is_refused(tmp_path, tree):
    path = write(tmp_path, "mypatches/patch.py", REWRAPPED)
    resolver = Resolver(directory(tree).read)
    adoption = adopt(Copy.named(PatchFile.read(path), "schedule"), Target.parse(TARGET, None), resolver, "tree")
    change = adoption.change
    assert change is not None
    change.edits[0].lines = [line.replace("self.budget:", "self.budget + SLACK:") for line in change.edits[0].lines]
    change.expect.clear()
    why = assemble.check(assemble.render([change], []), "x.hunk", "x", directory(tree).read, "0.99.0", [change])
    assert why == "the patched vllm.v1.core.sched.scheduler reads undefined names: SLACK"


@pytest.mark.parametrize(("args", "message"), [
    (["missing.py::f", "--target", TARGET], "missing.py: no such file"),
    (["{patch}::schedul", "--target", TARGET], "defines no schedul; similar names: schedule"),
    (["{patch}::schedule", "--target", "vllm.v1 core:Scheduler.schedule"], "--target 'vllm.v1 core:Scheduler.schedule'"),
    (["{patch}::schedule", "--target", "vllm.v1.core.sched.scheduler"], "name the function, as module:Qualified.name"),
    (["{patch}", "--target", TARGET], "exactly one FILE::QUALNAME"),
    (["{patch}::schedule"], "needs --target MODULE:QUALNAME"),
    (["{patch}::Holder", "--target", TARGET], "Holder is a class; adopt takes a function"),
    (["{patch}::schedule", "--target", TARGET, "--out", "x.patch"], "an adopted set is a .hunk file"),
    (["{broken}::f", "--target", TARGET], "broken.py:3: does not parse"),
    (["{patch}::schedule", "--target", TARGET, "--against", "/no/such/tree"], "/no/such/tree: no such directory"),
])
def test_bad_input_exits_2_naming_the_file_line_or_value(tmp_path, tree, capsys, args, message):
    patch = write(tmp_path, "mypatches/patch.py", REWRAPPED + "\nclass Holder:\n    pass\n")
    broken = write(tmp_path, "mypatches/broken.py", "def f():\n    return 1\n  x = (\n")
    args = [a.format(patch=patch, broken=broken) for a in args]
    if "--against" not in args:
        args += ["--against", str(tree)]
    rc, _ = cli("adopt", *args)
    assert rc == 2
    assert message in capsys.readouterr().err


def test_an_existing_out_file_is_kept_unless_forced(tmp_path, tree, capsys):
    (tmp_path / "out.hunk").write_text("mine\n")
    rc, _, text = adopted(tmp_path, tree, REWRAPPED, "schedule")
    assert rc == 2 and text == "mine\n" and "exists; pass --force" in capsys.readouterr().err


def test_the_upstream_digest_is_of_code_not_layout(tmp_path, tree):
    """What a guard record of a wrapper keeps: the same for a re-laid function, another for changed code."""
    from vllm_surgeon.adopt.adoption import upstream_digest

    target = Target.parse(TARGET, None)
    before = upstream_digest(target, Resolver(directory(tree).read), "tree")
    module = tree / "vllm/v1/core/sched/scheduler.py"
    text = module.read_text()
    module.write_text(text.replace("        scheduled = []\n", "        scheduled = [\n        ]  # re-laid\n"))
    assert upstream_digest(target, Resolver(directory(tree).read), "tree") == before
    module.write_text(text.replace("        scheduled = []\n", "        scheduled = [None]\n"))
    assert upstream_digest(target, Resolver(directory(tree).read), "tree") not in (before, None)
    assert upstream_digest(Target.parse(f"{TARGET}x", None), Resolver(directory(tree).read), "tree") is None
    # the digest `vllm-surgeon guard` records: a guard record can be written from a wrapper site
    from vllm_surgeon.authoring.guards import read_targets

    (recorded,) = read_targets([TARGET], directory(tree))
    assert recorded.code.digest == upstream_digest(target, Resolver(directory(tree).read), "tree")


def test_a_method_vllm_lacks_is_added_with_the_helper_it_reads(tmp_path, tree):
    patch = '''
    def _waiting(scheduler) -> int:
        return len(scheduler.waiting)


    def waiting_count(self) -> int:
        return _waiting(self)
    '''
    rc, output, text = adopted(tmp_path, tree, patch, "waiting_count", "vllm.v1.core.sched.scheduler:Scheduler.waiting_count")
    assert rc == 0, output
    result = patched(tree, text)
    assert "def _waiting(scheduler) -> int:" in result and "    def waiting_count(self) -> int:\n        return _waiting(self)" in result


def test_a_global_the_patch_file_keeps_setting_is_not_carried_in(tmp_path, tree):
    patch = '''
    _LIMIT = 0


    def set_limit(n: int) -> None:
        global _LIMIT
        _LIMIT = n


    def admit(queue, budget: int) -> int:
        return min(sum(r.tokens for r in queue), budget, _LIMIT)
    '''
    rc, output, text = adopted(tmp_path, tree, patch, "admit", "vllm.v1.core.sched.scheduler:admit")
    assert rc == 1 and text is None
    assert "reads _LIMIT, defined in" in output and "sets (global _LIMIT)" in output and "different variables" in output


def test_statement_keys_compare_code_not_layout_and_keep_each_statements_depth():
    def keys(text: str) -> list[str]:
        fn = ast.parse(text).body[0]
        assert isinstance(fn, ast.FunctionDef)
        return code.statement_keys(fn)

    wrapped = keys('def f(x):\n    """Doc."""\n    if x:\n        y = g(\n            x,\n        )\n    return y\n')
    assert wrapped == keys("def f(x):\n    if x:\n        y = g(x)\n    return y\n")
    assert [key.split(" ")[0] for key in wrapped] == ["0", "1", "0"]
    assert wrapped != keys("def f(x):\n    if x:\n        y = g(x, 1)\n    return y\n")
