"""The global names code reads, and the names a module reads but never binds (Python's `symtable`).

A copy moved into vLLM's module reads its globals there: each must mean there what it meant in the
patch file (issue 16), and the patched module must read no undefined name the release's does not.
"""

from __future__ import annotations

import ast
import builtins
import functools
import symtable
from dataclasses import dataclass

# Names every module has without binding them.
_MODULE_DUNDERS = frozenset({"__name__", "__file__", "__doc__", "__spec__", "__loader__", "__package__", "__builtins__",
                             "__path__", "__annotations__", "__dict__", "__debug__", "__cached__"})
BUILTINS = frozenset(dir(builtins)) | _MODULE_DUNDERS


@dataclass
class Reads:
    """What a function reads from outside itself."""

    globals: set[str]  # module globals (or builtins), its decorators' and annotations' names included
    closure: set[str]  # names of the functions around it


@functools.lru_cache(maxsize=32)
def _table(text: str, filename: str) -> symtable.SymbolTable:
    return symtable.symtable(text, filename, "exec")


def function_reads(text: str, filename: str, node: ast.FunctionDef | ast.AsyncFunctionDef) -> Reads:
    """The names def `node` of `text` reads from its module, and from enclosing functions."""
    table = _find_table(_table(text, filename), node)
    found: set[str] = set()
    closure: set[str] = set()
    if table is not None:
        found |= _globals_below(table)
        closure = set(table.get_frees()) if isinstance(table, symtable.Function) else set()
    found |= _header_names(node)
    return Reads(found, closure)


def _find_table(top: symtable.SymbolTable, node: ast.FunctionDef | ast.AsyncFunctionDef) -> symtable.SymbolTable | None:
    """The symbol table of def `node` (by name and line), searched through classes and functions."""
    stack = [top]
    while stack:
        table = stack.pop()
        for child in table.get_children():
            if child.get_type() == "function" and child.get_name() == node.name and child.get_lineno() == node.lineno:
                return child
            stack.append(child)
    return None


def _globals_below(table: symtable.SymbolTable) -> set[str]:
    """Global names read in a table and every table inside it."""
    names = {s.get_name() for s in table.get_symbols() if s.is_global() and s.is_referenced()}
    for child in table.get_children():
        names |= _globals_below(child)
    return names


def _header_names(node: ast.FunctionDef | ast.AsyncFunctionDef) -> set[str]:
    """Names read by a def's decorators, defaults and annotations: evaluated where the def is."""
    parts: list[ast.expr] = list(node.decorator_list) + list(node.args.defaults) + [d for d in node.args.kw_defaults if d]
    args = node.args.posonlyargs + node.args.args + node.args.kwonlyargs + [a for a in (node.args.vararg, node.args.kwarg) if a]
    parts += [a.annotation for a in args if a.annotation is not None]
    if node.returns is not None:
        parts.append(node.returns)
    found: set[str] = set()
    for part in parts:  # each evaluated as an expression: a lambda's own parameters are not globals
        found |= _globals_below(symtable.symtable(ast.unparse(part), "<header>", "eval"))
    return found


def statement_reads(stmt: ast.stmt) -> set[str]:
    """Names a top-level statement reads (a global it defines may read others)."""
    if isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef):
        source = ast.unparse(ast.Module(body=[stmt], type_ignores=[]))
        parsed = ast.parse(source)
        fn = parsed.body[0]
        assert isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef)
        return function_reads(source, "<global>", fn).globals
    bound = {n.id for n in ast.walk(stmt) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}
    module = symtable.symtable(ast.unparse(stmt), "<global>", "exec")
    return _globals_below(module) - bound


# symtable's names of the scopes a statement runs as it runs (a lambda's body or a def's waits for a call).
_EAGER = frozenset({"listcomp", "setcomp", "dictcomp", "genexpr", "<listcomp>", "<setcomp>", "<dictcomp>", "<genexpr>"})


def definition_reads(stmt: ast.stmt) -> set[str]:
    """Names a top-level statement reads while it runs: a def's decorators, defaults and annotations,
    a class's bases and body (its methods' headers, not their bodies), all of any other statement.
    A helper carried into vLLM's module after its imports (issue 16) runs there at import: these must be bound by then."""
    top = symtable.symtable(ast.unparse(stmt), "<global>", "exec")
    found = {s.get_name() for s in top.get_symbols() if s.is_referenced()}
    stack = [c for c in top.get_children() if c.get_type() == "class" or c.get_name() in _EAGER]
    while stack:
        table = stack.pop()
        found |= {s.get_name() for s in table.get_symbols() if s.is_referenced() and (s.is_global() or s.is_free())}
        stack += [c for c in table.get_children() if c.get_type() == "class" or c.get_name() in _EAGER]
    bound = {n.id for n in ast.walk(stmt) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}
    if isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
        bound.add(stmt.name)
    return found - bound


@functools.lru_cache(maxsize=32)
def undefined(text: str, filename: str, provided: frozenset[str] = frozenset()) -> frozenset[str]:
    """Names read somewhere in a module that it never binds (nor are builtins, nor `provided`: names a
    star import brings)."""
    module = _table(text, filename)
    bound = {s.get_name() for s in module.get_symbols() if s.is_assigned() or s.is_imported() or s.is_namespace()}
    read = _globals_below(module)
    return frozenset(name for name in read - bound - BUILTINS - provided if not (name.startswith("__") and name.endswith("__")))
