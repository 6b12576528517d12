"""`.py` sets: LibCST transforms with a structural anchor, refused when absent, unchanged or broken."""

import textwrap

import pytest

from vllm_surgeon.core.model import HunkFileError
from vllm_surgeon.core.refusal import Reason
from vllm_surgeon.core.source import ModuleSource
from vllm_surgeon.engine import planner
from vllm_surgeon.sets.pyfile import parse_py_file

SOURCE = textwrap.dedent('''\
    class Scheduler:
        def schedule(self, budget):
            # pick the cheapest
            picked = min(self.queue, key=lambda r: r.cost)
            if budget  >  picked.cost:  # odd spacing on purpose
                return picked
            return None

        def other(self):
            return 1
''')

HEADER = '''\
import libcst as cst
from vllm_surgeon import transform

VLLM = ">=0.1"
DESCRIPTION = "pick the dearest"
'''


def load(tmp_path, body: str, name: str = "t", extra: str = ""):
    path = tmp_path / f"{name}.py"
    path.write_text(HEADER + textwrap.dedent(body) + extra)
    return parse_py_file(str(path), name)


def plan(hunk_set, source=SOURCE):
    return planner.plan([hunk_set], lambda m: ModuleSource(m, "/src/pkg/sched.py", source) if m == "pkg.sched" else None, "0.32.0")


MIN_TO_MAX = '''
class MinToMax(cst.CSTTransformer):
    def leave_Name(self, original, updated):
        return updated.with_changes(value="max") if updated.value == "min" else updated
'''


def test_function_transform_with_structural_anchor(tmp_path):
    s = load(tmp_path, '''
        @transform("pkg.sched:Scheduler.schedule", anchor="if budget > picked.cost: return picked")
        def min_to_max(node):
            return node.visit(MinToMax())
    ''', extra=MIN_TO_MAX)
    assert s.kind == "py" and s.fields == {"vllm": ">=0.1", "description": "pick the dearest"}
    p = plan(s)
    assert p.refusals == []
    text = p.modules["pkg.sched"].text
    assert "picked = max(self.queue" in text and "# pick the cheapest" in text and "if budget  >  picked.cost:  # odd" in text
    (result,) = p.results[0].hunks
    assert result.scope == "Scheduler.schedule" and result.hunk.origin.line == 7


def test_transformer_class_is_applied_to_the_target_only(tmp_path):
    decorator = '@transform("pkg.sched:Scheduler.schedule", anchor="min(self.queue, key=lambda r: r.cost)")'
    s = load(tmp_path, MIN_TO_MAX.replace("class MinToMax", decorator + "\nclass MinToMax"))
    assert "picked = max(" in plan(s).modules["pkg.sched"].text


def test_absent_anchor_unchanged_result_raising_and_wrong_type_are_refused(tmp_path):
    cases = {
        Reason.ANCHOR_NOT_FOUND: ('"if budget > 0: return picked"', "return node.visit(MinToMax())"),
        Reason.UNCHANGED: ('"picked.cost"', "return node"),
        Reason.TRANSFORM_FAILED: ('"picked.cost"', "raise KeyError('oops')"),
    }
    for reason, (anchor, body) in cases.items():
        s = load(tmp_path, f'''
            @transform("pkg.sched:Scheduler.schedule", anchor={anchor})
            def t(node):
                {body}
        ''', name=reason.value.replace("-", "_"), extra=MIN_TO_MAX)
        (refusal,) = plan(s).refusals
        assert refusal.reason is reason, refusal.message()
    s = load(tmp_path, '''
        @transform("pkg.sched:Scheduler.schedule", anchor="picked.cost")
        def t(node):
            return cst.Pass()
    ''', name="wrong")
    (refusal,) = plan(s).refusals
    assert refusal.reason is Reason.TRANSFORM_FAILED and "returned Pass; it must return a FunctionDef" in refusal.detail
    s = load(tmp_path, '''
        @transform("pkg.sched:Scheduler.schedule", anchor="picked.cost")
        def t(node):
            raise KeyError('oops')
    ''', name="raises")
    assert f"{tmp_path / 'raises.py'}:" in plan(s).refusals[0].detail


def test_loading_errors_name_the_file_and_line(tmp_path):
    path = tmp_path / "bad.py"
    path.write_text("import libcst\n\nraise RuntimeError('no')\n")
    with pytest.raises(HunkFileError, match=r"bad.py:3: RuntimeError while loading: no"):
        parse_py_file(str(path), "bad")
    path.write_text("x = 1\n")
    with pytest.raises(HunkFileError, match="no transforms"):
        parse_py_file(str(path), "bad")
    path.write_text("from vllm_surgeon import transform\n\n@transform('pkg.sched', anchor='x')\ndef f(n):\n    return n\n")
    with pytest.raises(HunkFileError, match="must name a function or class"):
        parse_py_file(str(path), "bad")
