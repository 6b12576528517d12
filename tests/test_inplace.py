"""Patching an already-imported module in place: every live reference runs the new code, or nothing changes."""

import importlib
import sys
import traceback
import uuid

import pytest

from vllm_surgeon.core.source import ModuleSource
from vllm_surgeon.engine import planner
from vllm_surgeon.runtime.hook import register_source
from vllm_surgeon.runtime.inplace import LiveError, Transaction, patch_in_place
from vllm_surgeon.sets.hunkfile import parse_hunk_file

SOURCE = '''\
import functools


def deco(fn):
    @functools.wraps(fn)
    def wrapper(*a, **k):
        return fn(*a, **k)
    return wrapper


def plain_deco(fn):
    def inner(*a, **k):
        return fn(*a, **k)
    return inner


class Base:
    def greet(self):
        return "base"


class Child(Base):
    def greet(self):
        word = "child"
        return word + "/" + super().greet()

    @deco
    def wrapped(self):
        return 1

    @plain_deco
    def hidden(self):
        return 1

    @staticmethod
    def static():
        return 1

    @property
    def prop(self):
        return 1


def make_counter():
    count = 0

    def inc():
        nonlocal count
        count += 1
        return count
    return inc


def top(x):
    return x + 1
'''

HUNKS = '''\
@@ {m}:Child.greet
-        word = "child"
+        word = "patched"
@@ {m}:Child.wrapped
-        return 1
+        return 2
@@ {m}:Child.hidden
-        return 1
+        return 2
@@ {m}:Child.static
-        return 1
+        return 2
@@ {m}:Child.prop
-        return 1
+        return 2
@@ {m}:make_counter
-        count += 1
+        count += 10
@@ {m}:top
-    return x + 1
+    if x < 0:
+        raise ValueError("negative " + helper_name())
+    return x + 2
@@ {m}:Child
+
+    def extra(self):
+        return super().greet() + "!"
@@ {m}
+
+
+def helper_name():
+    return "input"
'''


@pytest.fixture
def live(tmp_path, monkeypatch):
    """A freshly imported module with SOURCE, and a function making the plan for hunk text on it."""
    name = f"fake_{uuid.uuid4().hex[:8]}"
    path = tmp_path / f"{name}.py"
    path.write_text(SOURCE)
    monkeypatch.syspath_prepend(str(tmp_path))
    module = importlib.import_module(name)

    def patched(hunks: str):
        s = parse_hunk_file(hunks.format(m=name), str(tmp_path / "set.hunk"), "set")
        plan = planner.plan([s], lambda m: ModuleSource(m, str(path), SOURCE) if m == name else None, None)
        assert plan.refusals == [], [r.message() for r in plan.refusals]
        return plan.modules[name]

    yield module, patched
    sys.modules.pop(name, None)


def test_every_kind_of_live_reference_runs_the_patched_code(live):
    module, patched = live
    held_top = module.top  # `from m import top` elsewhere
    held_greet = module.Child.greet
    child = module.Child()
    old_counter = module.make_counter()
    patch_in_place(module, patched(HUNKS), Transaction())

    assert child.greet() == "patched/base" and held_greet(child) == "patched/base"  # zero-argument super()
    assert child.wrapped() == 2 and child.hidden() == 2 and module.Child.static() == 2 and child.prop == 2
    assert held_top(1) == 3
    counter = module.make_counter()
    assert counter() == 10 and counter() == 20  # closures keep working
    assert old_counter() == 1  # a closure made before the patch keeps the code it was made with
    assert child.extra() == "base!"  # new method, super() bound to the live class
    assert module.helper_name() == "input"


def test_traceback_and_getsource_show_patched_lines_while_other_lines_keep_disk_numbers(live):
    import inspect

    module, patched = live
    result = patched(HUNKS)
    patch_in_place(module, result, Transaction())
    register_source(result)
    with pytest.raises(ValueError) as info:
        module.top(-1)
    frames = traceback.extract_tb(info.tb)
    assert frames[-1].line == 'raise ValueError("negative " + helper_name())'
    assert frames[-1].lineno > SOURCE.count("\n")  # in the tail, past the file on disk
    assert 'raise ValueError("negative "' in inspect.getsource(module.top)
    assert module.Base.greet.__code__.co_firstlineno == 18  # untouched code: its line on disk


def test_a_failing_step_undoes_everything_already_done(live):
    module, patched = live
    result = patched(HUNKS + "@@ {m}\n+import a_module_that_does_not_exist\n")
    txn = Transaction()
    with pytest.raises(ImportError):
        patch_in_place(module, result, txn)
    txn.rollback()
    assert module.top(1) == 2 and not hasattr(module, "helper_name") and not hasattr(module.Child, "extra")


def test_a_new_zero_argument_super_cannot_be_added_in_place(live):
    module, patched = live
    result = patched('@@ {m}:Base.greet\n-        return "base"\n+        return "base" + str(super().__init__())\n')
    with pytest.raises(LiveError, match=r"closure variables \('__class__',\)"):
        patch_in_place(module, result, Transaction())
    assert module.Base().greet() == "base"


def test_changed_decorators_cannot_be_made_live(live):
    module, patched = live
    with pytest.raises(LiveError, match="the decorators of Child.wrapped change"):
        patch_in_place(module, patched("@@ {m}:Child.wrapped\n-    @deco\n+    @plain_deco\n     def wrapped(self):\n"), Transaction())
    assert module.Child().wrapped() == 1


def test_new_defaults_reach_the_live_function(live):
    module, patched = live
    patch_in_place(module, patched("@@ {m}:top\n-def top(x):\n+def top(x=5):\n"), Transaction())
    assert module.top() == 6


def _shape(namespace: dict) -> dict:
    """What a module binds, and what each class binds, by kind: property, function, staticmethod ..."""
    out: dict = {}
    for name, value in namespace.items():
        if name.startswith("__"):
            continue
        if isinstance(value, type):
            out[name] = {k: type(v).__name__ for k, v in vars(value).items() if not k.startswith("__")}
        else:
            out[name] = type(value).__name__
    return out


def _as_imported(module, patched) -> dict:
    """The namespace the patched module would have had, had it been imported with the set."""
    namespace = {"__name__": module.__name__, "__file__": module.__file__}
    exec(patched.compiled.code, namespace)
    return namespace


def test_a_decorator_replaced_by_a_comment_is_refused_in_place_never_silently_kept(live):
    """Issue 7 item 5: at import `prop` becomes a plain method; in place nothing changed yet it said 'in place'."""
    module, patched = live
    result = patched("@@ {m}:Child.prop\n-    @property\n+    # no longer a property\n     def prop(self):\n")
    assert _shape(_as_imported(module, result))["Child"]["prop"] == "function"
    with pytest.raises(LiveError, match="the decorators of Child.prop change") as info:
        patch_in_place(module, result, Transaction())
    assert info.value.unit is not None and info.value.unit.qualname == "Child.prop"
    assert isinstance(vars(module.Child)["prop"], property)


def test_a_method_slipped_between_a_decorator_and_its_def_is_refused_in_place(live):
    module, patched = live
    result = patched("@@ {m}:Child\n     @property\n+    def added(self):\n+        return 5\n+\n     def prop(self):\n")
    imported = _shape(_as_imported(module, result))["Child"]
    assert (imported["added"], imported["prop"]) == ("property", "function")  # the decorator moved
    with pytest.raises(LiveError, match="the decorators of Child.prop change"):
        patch_in_place(module, result, Transaction())
    assert "added" not in vars(module.Child) and isinstance(vars(module.Child)["prop"], property)


def test_a_decorated_method_added_above_a_decorated_one_is_in_place_what_import_makes(live):
    module, patched = live
    result = patched("@@ {m}:Child\n     @property\n+    def added(self):\n+        return 5\n+\n+    @property\n     def prop(self):\n")
    patch_in_place(module, result, Transaction())
    assert _shape(vars(module)) == _shape(_as_imported(module, result))
    assert module.Child().added == 5 and module.Child().prop == 1


def test_names_a_hunk_removes_are_gone_in_place_as_at_import_and_come_back_on_rollback(live):
    module, patched = live
    result = patched(
        "@@ {m}\n-def make_counter():\n-    count = 0\n-\n-    def inc():\n-        nonlocal count\n-        count += 1\n"
        "-        return count\n-    return inc\n-\n-\n def top(x):\n"
        "@@ {m}:Child\n-    @staticmethod\n-    def static():\n-        return 1\n-\n     @property\n"
    )
    txn = Transaction()
    patch_in_place(module, result, txn)
    assert _shape(vars(module)) == _shape(_as_imported(module, result))
    assert not hasattr(module, "make_counter") and "static" not in vars(module.Child)
    txn.rollback()
    assert module.make_counter()() == 1 and module.Child.static() == 1


def test_copies_of_a_function_made_elsewhere_are_found_in_one_heap_pass(live):
    import types

    module, patched = live
    clone = types.FunctionType(module.top.__code__, module.__dict__, "clone")  # e.g. a tracer's copy
    patch_in_place(module, patched("@@ {m}:top\n-    return x + 1\n+    return x + 2\n"), Transaction())
    assert module.top(1) == 3 and clone(1) == 3


READERS = '''\
LIMIT = 1
DOUBLE = LIMIT * 2


def uses(a=LIMIT):
    return a


def reads_at_call():
    return LIMIT
'''


@pytest.fixture
def readers(tmp_path, monkeypatch):
    name = f"fake_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{name}.py").write_text(READERS)
    monkeypatch.syspath_prepend(str(tmp_path))
    module = importlib.import_module(name)

    def patched(hunks: str):
        s = parse_hunk_file(hunks.format(m=name), str(tmp_path / "set.hunk"), "set")
        plan = planner.plan([s], lambda m: ModuleSource(m, str(tmp_path / f"{name}.py"), READERS) if m == name else None, None)
        assert plan.refusals == []
        return plan.modules[name]

    yield module, patched
    sys.modules.pop(name, None)


def test_a_changed_constant_that_later_lines_read_as_the_module_runs_is_refused_in_place(readers):
    """At import DOUBLE and the default of `uses` would follow LIMIT; in place they would keep the old."""
    module, patched = readers
    with pytest.raises(LiveError, match=r"line 2 \(`DOUBLE = LIMIT \* 2`\) reads LIMIT when the module runs"):
        patch_in_place(module, patched("@@ {m}\n-LIMIT = 1\n+LIMIT = 5\n DOUBLE = LIMIT * 2\n"), Transaction())
    assert module.LIMIT == 1


def test_a_changed_constant_read_only_inside_functions_is_patched_in_place_as_at_import(tmp_path, monkeypatch):
    name = f"fake_{uuid.uuid4().hex[:8]}"
    source = "def reads_at_call():\n    return LIMIT\n\n\nLIMIT = 1\n"
    (tmp_path / f"{name}.py").write_text(source)
    monkeypatch.syspath_prepend(str(tmp_path))
    module = importlib.import_module(name)
    s = parse_hunk_file(f"@@ {name}\n-LIMIT = 1\n+LIMIT = 5\n", str(tmp_path / "set.hunk"), "set")
    result = planner.plan([s], lambda m: ModuleSource(m, str(tmp_path / f"{name}.py"), source), None).modules[name]
    patch_in_place(module, result, Transaction())
    assert module.reads_at_call() == 5 and _shape(vars(module)) == _shape(_as_imported(module, result))
    sys.modules.pop(name, None)


def test_qualnames_read_from_source_agree_with_cpython_on_real_vllm(vllm_dir):
    """Python 3.10 has no co_qualname: in-place patching names code objects from their compiled source
    instead (issue 15). On 3.11+ both exist: they must agree on every code object of real vLLM modules,
    or be None where two share a name and line (never a wrong name)."""
    import types

    from vllm_surgeon.runtime.inplace import compiled_qualnames

    checked = 0
    for path in sorted((vllm_dir / "v1").rglob("*.py"))[:150]:
        module_code = compile(path.read_text(), str(path), "exec")
        names = compiled_qualnames(module_code)
        stack = [module_code]
        while stack:
            for const in stack.pop().co_consts:
                if isinstance(const, types.CodeType):
                    expected = getattr(const, "co_qualname", None)  # 3.10: agreement is shown on 3.11+ only
                    assert names[(const.co_name, const.co_firstlineno)] in (expected, None) or expected is None
                    checked += 1
                    stack.append(const)
    assert checked > 2000


def test_the_in_process_fixture_blames_the_set_whose_hunk_cannot_be_patched_not_the_last_one(fakepkg):
    """Issue 15: `InProcess` named the last set that changed the module, whichever hunk could not be made
    live; it now finds the hunk as the runtime does (runtime/blame.py)."""
    fakepkg.module("shoplive.cart", SOURCE)
    fakepkg.hunk("first", '''
        @@ shoplive.cart:Base.greet
        -        return "base"
        +        return "base/" + super().__repr__()
    ''')
    fakepkg.hunk("second", '''
        @@ shoplive.cart:top
        -    return x + 1
        +    return x + 2
    ''')
    out = fakepkg.run(f'''
        import shoplive.cart
        from vllm_surgeon.core.refusal import SurgeonError
        from vllm_surgeon.runtime.inprocess import InProcess
        from vllm_surgeon.runtime.shared import IN_PLACE
        from vllm_surgeon.sets.loader import load_file
        hunks = {str(fakepkg.hunks)!r}
        try:
            InProcess().apply([load_file(hunks + "/first.hunk"), load_file(hunks + "/second.hunk")])
        except SurgeonError as exc:
            (refusal,) = exc.refusals
            print(refusal.set_name, refusal.origin, refusal.target, "surgeon('first')" in refusal.detail)
        print(shoplive.cart.top(1), shoplive.cart.Base().greet())
        run = InProcess()
        print(run.apply([load_file(hunks + "/second.hunk")]).how == {{"shoplive.cart": IN_PLACE}}, shoplive.cart.top(1))
        run.undo()
        print(shoplive.cart.top(1))
    ''')
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == [
        f"first {fakepkg.hunks / 'first.hunk'}:3 shoplive.cart:Base.greet True", "2 base", "True 3", "2"]
