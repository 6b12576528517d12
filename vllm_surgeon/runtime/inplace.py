"""Patch a module that was imported before the hook arrived, in place.

Changed functions get the patched code object on every live function object that runs the old
code (found through decorators and `gc`), so zero-argument `super()`, closures and references
held elsewhere (`from m import f`) all run the new code. New functions and changed module-level
statements are executed in the module's namespace. Everything is prepared before anything
changes, and every change is undone if a later one fails: nothing is left half-patched.
"""

from __future__ import annotations

import ast
import copy
import functools
import gc
import types
from collections.abc import Callable
from dataclasses import dataclass, field

from vllm_surgeon.core.scopes import blocks
from vllm_surgeon.engine.linemap import Unit
from vllm_surgeon.engine.results import PatchedModule

_FUNCS = (ast.FunctionDef, ast.AsyncFunctionDef)
_COMPREHENSIONS = frozenset(("<listcomp>", "<setcomp>", "<dictcomp>", "<genexpr>"))


class LiveError(Exception):
    """Why a change cannot be made to the already-imported module (the set can still apply at import).

    `unit` is the piece of patched code at fault, when one is (its lines name the hunk to blame).
    """

    def __init__(self, message: str, unit: Unit | None = None, module: str | None = None) -> None:
        super().__init__(message)
        self.unit = unit
        self.module = module


@dataclass
class Transaction:
    """Changes made so far, and how to undo each, newest last."""

    undo: list[Callable[[], None]] = field(default_factory=list)

    def rollback(self) -> None:
        while self.undo:
            self.undo.pop()()


def code_qualname(code: types.CodeType) -> str | None:
    """A code object's qualified name: `co_qualname` on Python 3.11+. Python 3.10 has none (and a
    wrapper's `__qualname__` lies): there it is read from the code compiled from its file, on disk or
    by vllm-surgeon itself (issue 15)."""
    qualname = getattr(code, "co_qualname", None)
    if qualname is not None:
        return qualname
    return qualnames_of(code.co_filename).get((code.co_name, code.co_firstlineno))


# filename -> (name, first line) -> qualified name, or None where two code objects share the key.
_QUALNAMES: dict[str, dict[tuple[str, int], str | None]] = {}


def qualnames_of(filename: str) -> dict[tuple[str, int], str | None]:
    """Qualified names of every code object compiled from `filename`'s source, named as 3.11 names them."""
    names = _QUALNAMES.get(filename)
    if names is None:
        import linecache

        names = _QUALNAMES[filename] = {}
        try:
            note_compiled(compile("".join(linecache.getlines(filename)), filename, "exec", dont_inherit=True))
        except (SyntaxError, ValueError):
            pass
    return names


def note_compiled(module_code: types.CodeType) -> None:
    """Record the qualified names of code that vllm-surgeon compiled (only needed where co_qualname is not)."""
    if not hasattr(module_code, "co_qualname"):
        names = _QUALNAMES.setdefault(module_code.co_filename, {})
        for key, qualname in compiled_qualnames(module_code).items():
            names[key] = qualname if names.get(key, qualname) == qualname else None


def compiled_qualnames(module_code: types.CodeType) -> dict[tuple[str, int], str | None]:
    """(name, first line) -> qualified name of every code object inside `module_code`, as CPython 3.11
    names them; None where two share the key (two lambdas on one line: never a guess)."""
    names: dict[tuple[str, int], str | None] = {}

    def walk(code: types.CodeType, prefix: str, in_function: bool) -> None:
        for const in code.co_consts:
            if isinstance(const, types.CodeType):
                qualname = prefix + ("<locals>." if in_function else "") + const.co_name
                key = (const.co_name, const.co_firstlineno)
                names[key] = qualname if names.get(key, qualname) == qualname else None
                # Only a function or lambda adds `<locals>.` to what it holds: a class body (`Class.method`)
                # and a comprehension (`f.<locals>.<listcomp>.<genexpr>`) do not.
                is_function = bool(const.co_flags & 0x02) and const.co_name not in _COMPREHENSIONS  # CO_NEWLOCALS
                walk(const, qualname + ".", is_function)

    walk(module_code, "", False)
    return names


def _unwrap_all(obj: object, qualname: str, filename: str, depth: int = 0) -> list[types.FunctionType]:
    """Functions with this qualname behind `obj`: through methods, properties, wrappers and closures."""
    if depth > 6 or obj is None:
        return []
    if isinstance(obj, types.FunctionType):
        code = obj.__code__
        if code.co_filename == filename and code_qualname(code) == qualname:
            return [obj]
        found = _unwrap_all(getattr(obj, "__wrapped__", None), qualname, filename, depth + 1)
        for cell in obj.__closure__ or ():
            try:
                found += _unwrap_all(cell.cell_contents, qualname, filename, depth + 1)
            except ValueError:  # empty cell
                pass
        return found
    if isinstance(obj, (staticmethod, classmethod)):
        return _unwrap_all(obj.__func__, qualname, filename, depth + 1)
    if isinstance(obj, property):
        return [f for part in (obj.fget, obj.fset, obj.fdel) for f in _unwrap_all(part, qualname, filename, depth + 1)]
    if isinstance(obj, functools.partial):
        return _unwrap_all(obj.func, qualname, filename, depth + 1)
    wrapped = getattr(obj, "__wrapped__", None)
    if wrapped is not None:
        return _unwrap_all(wrapped, qualname, filename, depth + 1)
    func = getattr(obj, "__func__", None)
    return _unwrap_all(func, qualname, filename, depth + 1) if func is not None else []


def _owner(module: types.ModuleType, unit: Unit) -> object:
    """The live module or class whose namespace holds the unit."""
    owner: object = module
    for stmt in unit.chain:
        if isinstance(stmt, ast.ClassDef):
            try:
                owner = vars(owner)[stmt.name]
            except KeyError:
                raise LiveError(f"class {stmt.name} is not in the live {module.__name__}") from None
            if not isinstance(owner, type):
                raise LiveError(f"{stmt.name} in the live {module.__name__} is not a class")
    return owner


def _futures(tree: ast.Module) -> list[ast.stmt]:
    return [s for s in tree.body if isinstance(s, ast.ImportFrom) and s.module == "__future__"]


def _wrapped(unit: Unit, node: ast.stmt, tree: ast.Module) -> ast.Module:
    """A module that defines `node` inside stand-ins for its classes, so `super()` and names compile alike."""
    body: list[ast.stmt] = [node]
    for stmt in reversed([s for s in unit.chain if isinstance(s, ast.ClassDef)]):
        body = [
            ast.ClassDef(
                name=stmt.name, bases=[], keywords=[], body=body, decorator_list=[],
                lineno=node.lineno, end_lineno=node.end_lineno, col_offset=0, end_col_offset=0,
            )
        ]
    module = ast.Module(body=_futures(tree) + body, type_ignores=[])
    return ast.fix_missing_locations(module)


def _define(
    module: types.ModuleType, unit: Unit, node: ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef, tree: ast.Module,
    filename: str,
) -> object:
    """Execute `node` (in stand-in classes) and return the object it binds."""
    namespace: dict[str, object] = {}
    code = compile(_wrapped(unit, node, tree), filename, "exec", dont_inherit=True)
    note_compiled(code)
    exec(code, module.__dict__, namespace)
    obj: type | dict[str, object] = namespace
    for stmt in [s for s in unit.chain if isinstance(s, ast.ClassDef)]:
        inner = vars(obj)[stmt.name] if isinstance(obj, type) else obj[stmt.name]
        assert isinstance(inner, type)  # a stand-in class of the chain
        obj = inner
    return vars(obj)[node.name] if isinstance(obj, type) else obj[node.name]


def _decorators(node: ast.stmt | ast.Module) -> list[ast.expr]:
    return getattr(node, "decorator_list", [])


def _dumps(nodes: list[ast.expr]) -> list[str]:
    return [ast.dump(n, include_attributes=False) for n in nodes]


@dataclass
class _Prepared:
    """One module's changes, checked and built, not yet made."""

    module: types.ModuleType
    patched: PatchedModule
    swaps: list[tuple[Unit, list[types.FunctionType], types.FunctionType]]  # (unit, live functions, fresh)
    statements: list[tuple[object, Unit]]  # (live owner, unit) executed in the owner's namespace


def _prepare(module: types.ModuleType, patched: PatchedModule) -> _Prepared:
    """Find the live objects of every unit and build the new functions; LiveError (with its unit) when one cannot be."""
    filename = patched.source.path
    tree = patched.compiled.tree
    original = patched.original_index
    assert original is not None, f"{patched.source.module}: in place needs the module as planned, with its original"
    prepared = _Prepared(module, patched, [], [])
    for unit in patched.compiled.units:
        owner = _owner(module, unit)
        node = unit.node
        if isinstance(node, _FUNCS):
            qualname = unit.qualname
            existed = original.find(qualname) if qualname is not None else []
            if qualname is not None and existed and not any(not isinstance(s, ast.ClassDef) for s in unit.chain):
                if len(existed) > 1:
                    raise LiveError(f"{qualname} is defined {len(existed)} times (property getter and setter?)", unit)
                if _dumps(_decorators(existed[0].node)) != _dumps(node.decorator_list):
                    raise LiveError(
                        f"the decorators of {qualname} change, and a live function keeps the ones it was made with", unit
                    )
                live = _unwrap_all(vars(owner).get(node.name), qualname, filename)
                if not live:
                    raise LiveError(f"cannot find the live function {qualname} (a decorator may hide it)", unit)
                bare = copy.copy(node)
                bare.decorator_list = []
                fresh = _define(module, unit, bare, tree, filename)
                assert isinstance(fresh, types.FunctionType)  # an undecorated def binds a function
                prepared.swaps.append((unit, live, fresh))
                continue
        if any(not isinstance(s, ast.ClassDef) for s in unit.chain):
            raise LiveError(f"line {unit.start + 1} changes a statement inside an if/try/with block at module or class scope", unit)
        if isinstance(unit.node, ast.ClassDef) and unit.qualname and original.find(unit.qualname):
            raise LiveError(f"the class statement of {unit.qualname} itself changes", unit)
        prepared.statements.append((owner, unit))
    _check_later_readers(patched, [unit for _, unit in prepared.statements])
    return prepared


def _body(stmt: ast.stmt) -> list[ast.stmt]:
    """The body of a unit's enclosing statement (a class: in place refuses units inside anything else)."""
    return getattr(stmt, "body", [])


def _check_later_readers(patched: PatchedModule, units: list[Unit]) -> None:
    """LiveError when a statement that runs after a changed one reads, as the module is executed,
    a name the change binds (`Y = X + 1` after `X = 2`; a default `def f(a=X)`; a class body): at
    import it would see the new value, in place it keeps the one it computed from the old."""
    mine = {id(u.node) for u in units}
    display = patched.compiled.display.split("\n")
    for unit in units:
        bound = _bound_by(unit.node)
        if not bound:
            continue
        body = _body(unit.chain[-1]) if unit.chain else patched.compiled.tree.body
        if not any(stmt is unit.node for stmt in body):
            continue
        after = body[[i for i, stmt in enumerate(body) if stmt is unit.node][0] + 1 :]
        for stmt in after:
            if id(stmt) in mine:
                continue
            read = bound & _read_when_run(stmt)
            if read:
                line = display[stmt.lineno - 1].strip() if 0 < stmt.lineno <= len(display) else ""
                raise LiveError(
                    f"line {stmt.lineno} (`{line}`) reads {', '.join(sorted(read))} when the module runs, and this hunk "
                    "changes it: at import that line would see the new value, in place it keeps the old one",
                    unit,
                )


def _bound_by(node: ast.stmt) -> set[str]:
    """Names a statement binds in the scope it runs in."""
    return _scope_names(ast.Module(body=[node], type_ignores=[])).get((), set())


def _read_when_run(stmt: ast.stmt) -> set[str]:
    """Names a statement reads when it is executed (a def's decorators, defaults and annotations, a
    class's bases and body; not what a function body reads when called)."""
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, (*_FUNCS, ast.Lambda)):
            args = node.args
            parts: list[ast.AST | None] = [*args.defaults, *args.kw_defaults]
            if not isinstance(node, ast.Lambda):
                parts += [*node.decorator_list, node.returns]
                parts += [a.annotation for a in (*args.posonlyargs, *args.args, *args.kwonlyargs, args.vararg, args.kwarg) if a]
            for part in parts:
                if part is not None:
                    visit(part)
            return
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load):
            found.add(node.id)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(stmt)
    return found


def functions_running(codes: list[types.CodeType]) -> dict[int, list[types.FunctionType]]:
    """Every live function object running one of `codes`, by id(code): one pass over the heap for
    all of them (issue 7 item 12: one gc.get_referrers call per function cost seconds in vLLM)."""
    if not codes:
        return {}
    wanted = {id(c): c for c in codes}
    found: dict[int, list[types.FunctionType]] = {}
    for ref in gc.get_referrers(*wanted.values()):
        if type(ref) is types.FunctionType or isinstance(ref, types.FunctionType):
            code = ref.__code__
            if wanted.get(id(code)) is code:
                found.setdefault(id(code), []).append(ref)
    return found


def patch_modules(items: list[tuple[types.ModuleType, PatchedModule, Transaction]]) -> None:
    """Apply each PatchedModule to its live module, undo steps recorded in that module's Transaction;
    LiveError (naming the module and unit) when one cannot be. The caller rolls back on any error.

    Everything is prepared (live objects found, new code built, closures checked) for every module
    before anything changes; the heap is searched once for all of them.
    """
    prepared = []
    for module, patched, txn in items:
        try:
            prepared.append((_prepare(module, patched), txn))
        except LiveError as exc:
            exc.module = module.__name__
            raise
    swaps = _function_swaps(prepared)
    # Prepared: now change things, each with its undo.
    for p, txn in prepared:
        tree, filename = p.patched.compiled.tree, p.patched.source.path
        for owner, unit in p.statements:
            if isinstance(owner, type):
                _exec_in_class(p.module, owner, unit, tree, filename, txn)
            else:
                _exec_in_module(p.module, unit, tree, filename, txn)
    for functions, fresh, txn in swaps:
        for f in functions:
            _swap_code(f, fresh, txn)
    for p, txn in prepared:
        _drop_removed(p.module, p.patched, txn)


def _function_swaps(prepared: list) -> list[tuple[list[types.FunctionType], types.FunctionType, Transaction]]:
    """For each patched function: every live function object running its code (one heap search for
    all), and the fresh one whose code they take; LiveError when their closure variables differ."""
    codes = {id(f.__code__): f.__code__ for p, _ in prepared for _, live, _ in p.swaps for f in live}
    running = functions_running(list(codes.values()))
    swaps: list[tuple[list[types.FunctionType], types.FunctionType, Transaction]] = []
    for p, txn in prepared:
        for unit, live, fresh in p.swaps:
            everyone = {id(f): f for g in live for f in running.get(id(g.__code__), ())}
            everyone.update({id(f): f for f in live})
            mismatched = next((f for f in everyone.values() if f.__code__.co_freevars != fresh.__code__.co_freevars), None)
            if mismatched is not None:
                raise LiveError(
                    f"the patched {unit.qualname} needs closure variables {fresh.__code__.co_freevars} where the "
                    f"live one has {mismatched.__code__.co_freevars} (e.g. a new zero-argument super())",
                    unit, p.module.__name__,
                )
            swaps.append((list(everyone.values()), fresh, txn))
    return swaps


def _swap_code(f: types.FunctionType, fresh: types.FunctionType, txn: Transaction) -> None:
    """Give live function `f` the fresh one's code, defaults, doc and annotations; the undo in `txn`."""
    before = (f.__code__, f.__defaults__, f.__kwdefaults__, f.__doc__, f.__annotations__)
    f.__code__ = fresh.__code__
    f.__defaults__, f.__kwdefaults__ = fresh.__defaults__, fresh.__kwdefaults__
    f.__doc__, f.__annotations__ = fresh.__doc__, fresh.__annotations__

    def undo() -> None:
        f.__code__, f.__defaults__, f.__kwdefaults__, f.__doc__, f.__annotations__ = before

    txn.undo.append(undo)


def patch_in_place(module: types.ModuleType, patched: PatchedModule, txn: Transaction) -> None:
    """Apply `patched` to the live `module`, recording undo steps in `txn`; LiveError when it cannot."""
    patch_modules([(module, patched, txn)])


def _exec_in_module(module: types.ModuleType, unit: Unit, tree: ast.Module, filename: str, txn: Transaction) -> None:
    snapshot = dict(module.__dict__)

    def undo() -> None:
        module.__dict__.clear()
        module.__dict__.update(snapshot)

    txn.undo.append(undo)
    code = compile(ast.Module(body=_futures(tree) + [unit.node], type_ignores=[]), filename, "exec", dont_inherit=True)
    exec(code, module.__dict__)


def _exec_in_class(module: types.ModuleType, cls: type, unit: Unit, tree: ast.Module, filename: str, txn: Transaction) -> None:
    if isinstance(unit.node, _FUNCS):
        obj = _define(module, unit, unit.node, tree, filename)
        for f in _unwrap_all(obj, f"{cls.__qualname__}.{unit.node.name}", filename):
            if "__class__" in f.__code__.co_freevars and f.__closure__ is not None:  # zero-argument super() must see the live class
                f.__closure__[f.__code__.co_freevars.index("__class__")].cell_contents = cls
        names = {unit.node.name: obj}
    else:
        namespace = dict(vars(cls))
        code = compile(ast.Module(body=_futures(tree) + [unit.node], type_ignores=[]), filename, "exec", dont_inherit=True)
        exec(code, module.__dict__, namespace)
        names = {k: v for k, v in namespace.items() if k not in vars(cls) or vars(cls)[k] is not v}
    for name, value in names.items():
        missing = object()
        before = vars(cls).get(name, missing)
        setattr(cls, name, value)

        def undo(name=name, before=before, missing=missing) -> None:
            if before is missing:
                delattr(cls, name)
            else:
                setattr(cls, name, before)

        txn.undo.append(undo)


def _drop_removed(module: types.ModuleType, patched: PatchedModule, txn: Transaction) -> None:
    """Names the hunks stopped binding at module or class scope (functions, classes, assignments,
    imports) are removed from the live module or class too: at import they would not exist."""
    assert patched.original_index is not None, f"{patched.source.module}: in place needs the module as planned"
    before = _scope_names(patched.original_index.tree)
    after = _scope_names(patched.compiled.tree)
    for path, names in before.items():
        now = after.get(path)
        if now is None or "*" in now:  # the class is gone (its own name is dropped above it), or a star import
            continue
        owner: object = module
        for cls_name in path:
            owner = vars(owner).get(cls_name) if owner is not None else None
        if owner is None:
            continue
        for name in sorted(names - now):
            if name not in vars(owner):
                continue
            value = vars(owner)[name]
            delattr(owner, name)
            txn.undo.append(functools.partial(setattr, owner, name, value))


def _scope_names(tree: ast.Module) -> dict[tuple[str, ...], set[str]]:
    """Names bound at module scope and in each class reached through classes, by class path."""
    out: dict[tuple[str, ...], set[str]] = {}

    def walk(body: list[ast.stmt], path: tuple[str, ...], names: set[str]) -> None:
        for stmt in body:
            if isinstance(stmt, ast.ClassDef):
                names.add(stmt.name)
                walk(stmt.body, path + (stmt.name,), out.setdefault(path + (stmt.name,), set()))
            elif isinstance(stmt, _FUNCS):
                names.add(stmt.name)
            else:
                names.update(_names_bound(stmt))
                for block in blocks(stmt):
                    walk(block, path, names)

    walk(tree.body, (), out.setdefault((), set()))
    return out


def _names_bound(stmt: ast.stmt) -> set[str]:
    """The names a statement other than a def or class binds in its own scope (not in nested blocks)."""
    if isinstance(stmt, (ast.Import, ast.ImportFrom)):
        return {(a.asname or a.name).split(".")[0] for a in stmt.names}
    if isinstance(stmt, ast.Assign):
        return {n for target in stmt.targets for n in _targets(target)}
    if isinstance(stmt, (ast.AnnAssign, ast.AugAssign, ast.For, ast.AsyncFor)):
        return _targets(stmt.target)
    if isinstance(stmt, (ast.With, ast.AsyncWith)):
        return {n for item in stmt.items if item.optional_vars is not None for n in _targets(item.optional_vars)}
    return set()


def _targets(node: ast.AST) -> set[str]:
    if isinstance(node, ast.Name):
        return {node.id}
    if isinstance(node, (ast.Tuple, ast.List)):
        return {n for elt in node.elts for n in _targets(elt)}
    if isinstance(node, ast.Starred):
        return _targets(node.value)
    return set()
