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

from ._engine import PatchedModule
from ._linemap import Unit

_FUNCS = (ast.FunctionDef, ast.AsyncFunctionDef)


class LiveError(Exception):
    """Why a change cannot be made to the already-imported module (the set can still apply at import)."""


@dataclass
class Transaction:
    """Changes made so far, and how to undo each, newest last."""

    undo: list[Callable[[], None]] = field(default_factory=list)

    def rollback(self) -> None:
        while self.undo:
            self.undo.pop()()


def _unwrap_all(obj: object, qualname: str, filename: str, depth: int = 0) -> list[types.FunctionType]:
    """Functions with this qualname behind `obj`: through methods, properties, wrappers and closures."""
    if depth > 6 or obj is None:
        return []
    if isinstance(obj, types.FunctionType):
        code = obj.__code__
        if code.co_qualname == qualname and code.co_filename == filename:
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


def _define(module: types.ModuleType, unit: Unit, node: ast.stmt, tree: ast.Module, filename: str) -> object:
    """Execute `node` (in stand-in classes) and return the object it binds."""
    namespace: dict = {}
    code = compile(_wrapped(unit, node, tree), filename, "exec", dont_inherit=True)
    exec(code, module.__dict__, namespace)
    obj: object = namespace
    for stmt in [s for s in unit.chain if isinstance(s, ast.ClassDef)]:
        obj = vars(obj)[stmt.name] if isinstance(obj, type) else obj[stmt.name]
    return vars(obj)[node.name] if isinstance(obj, type) else obj[node.name]


def _dumps(nodes: list[ast.AST]) -> list[str]:
    return [ast.dump(n, include_attributes=False) for n in nodes]


def _functions_with_code(code: types.CodeType) -> list[types.FunctionType]:
    return [r for r in gc.get_referrers(code) if isinstance(r, types.FunctionType) and r.__code__ is code]


def patch_in_place(module: types.ModuleType, patched: PatchedModule, txn: Transaction) -> None:
    """Apply `patched` to the live `module`, recording undo steps in `txn`; LiveError when it cannot."""
    filename = patched.source.path
    tree = patched.compiled.tree
    original = patched.original_index
    swaps: list[tuple[list[types.FunctionType], types.FunctionType]] = []
    statements: list[tuple[object, Unit]] = []
    for unit in patched.compiled.units:
        owner = _owner(module, unit)
        if unit.is_function:
            qualname = unit.qualname
            existed = qualname is not None and original.find(qualname)
            if existed and not any(not isinstance(s, ast.ClassDef) for s in unit.chain):
                bare = copy.copy(unit.node)
                bare.decorator_list = []
                fresh = _define(module, unit, bare, tree, filename)
                live = _unwrap_all(vars(owner).get(unit.node.name), qualname, filename)
                if not live:
                    raise LiveError(f"cannot find the live function {qualname} (a decorator may hide it)")
                if len(existed) > 1:
                    raise LiveError(f"{qualname} is defined {len(existed)} times (property getter and setter?)")
                if _dumps(existed[0].node.decorator_list) != _dumps(unit.node.decorator_list):
                    raise LiveError(f"the decorators of {qualname} change, and a live function keeps the ones it was made with")
                everyone = {id(f): f for g in live for f in _functions_with_code(g.__code__)}
                everyone.update({id(f): f for f in live})
                for f in everyone.values():
                    if f.__code__.co_freevars != fresh.__code__.co_freevars:
                        raise LiveError(
                            f"the patched {qualname} needs closure variables {fresh.__code__.co_freevars} where the "
                            f"live one has {f.__code__.co_freevars} (e.g. a new zero-argument super())"
                        )
                swaps.append((list(everyone.values()), fresh))
                continue
        if any(not isinstance(s, ast.ClassDef) for s in unit.chain):
            raise LiveError(f"line {unit.start + 1} changes a statement inside an if/try/with block at module or class scope")
        if isinstance(unit.node, ast.ClassDef) and unit.qualname and original.find(unit.qualname):
            raise LiveError(f"the class statement of {unit.qualname} itself changes")
        statements.append((owner, unit))

    # Prepared: now change things, each with its undo.
    for owner, unit in statements:
        if isinstance(owner, type):
            _exec_in_class(module, owner, unit, tree, filename, txn)
        else:
            _exec_in_module(module, unit, tree, filename, txn)
    for functions, fresh in swaps:
        for f in functions:
            before = (f.__code__, f.__defaults__, f.__kwdefaults__, f.__doc__, f.__annotations__)
            f.__code__ = fresh.__code__
            f.__defaults__, f.__kwdefaults__ = fresh.__defaults__, fresh.__kwdefaults__
            f.__doc__, f.__annotations__ = fresh.__doc__, fresh.__annotations__

            def undo(f=f, before=before) -> None:
                f.__code__, f.__defaults__, f.__kwdefaults__, f.__doc__, f.__annotations__ = before

            txn.undo.append(undo)
    _drop_removed(module, patched, txn)


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
            if "__class__" in f.__code__.co_freevars:  # zero-argument super() must see the live class
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
    """Functions the hunks removed are removed from the live module or class too."""
    from ._scopes import ScopeIndex

    now = {s.qualname for s in ScopeIndex(patched.text).scopes if s.addressable}
    for scope in patched.original_index.scopes:
        if scope.kind != "function" or not scope.addressable or scope.qualname in now or "<locals>" in scope.qualname:
            continue
        *classes, name = scope.qualname.split(".")
        owner: object = module
        for cls_name in classes:
            owner = vars(owner).get(cls_name)
        if owner is None or name not in vars(owner):
            continue
        before = vars(owner)[name]
        delattr(owner, name)
        txn.undo.append(lambda owner=owner, name=name, before=before: setattr(owner, name, before))
