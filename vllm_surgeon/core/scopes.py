"""Where each function and class of a module's source lies, by qualified name (from `ast`, no import)."""

from __future__ import annotations

import ast
from dataclasses import dataclass

_DEFS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)


@dataclass(frozen=True)
class Scope:
    """A function, a class or the module: its `__qualname__` and 0-based line span [start, end)."""

    qualname: str  # "" for the module
    kind: str  # "function", "class" or "module"
    start: int  # first line, decorators included
    end: int
    # Reachable by attribute lookup from the module (not defined inside a function).
    addressable: bool
    node: ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef | ast.Module  # a Module for kind "module"

    def contains(self, start: int, end: int) -> bool:
        return self.start <= start and end <= self.end

    def describe(self) -> str:
        return "module scope" if self.kind == "module" else f"{self.kind} {self.qualname}"


def blocks(node: ast.AST) -> list[list[ast.stmt]]:
    """The statement blocks directly inside `node`: body, else, handlers, finally, match cases."""
    out: list[list[ast.stmt]] = []
    for name in ("body", "orelse", "finalbody"):
        block = getattr(node, name, None)
        if isinstance(block, list) and block and isinstance(block[0], ast.stmt):
            out.append(block)
    out += [handler.body for handler in getattr(node, "handlers", ())]
    out += [case.body for case in getattr(node, "cases", ())]
    return out


def _statements(node: ast.AST) -> list[ast.stmt]:
    return [stmt for block in blocks(node) for stmt in block]


class ScopeIndex:
    """All scopes of one source text; parsing errors propagate as SyntaxError."""

    def __init__(self, text: str, filename: str = "<source>") -> None:
        try:
            self.tree = ast.parse(text, filename=filename)
        except ValueError as exc:  # a NUL byte: ValueError on Python 3.10, SyntaxError (with no line) later
            raise SyntaxError(str(exc)) from None
        count = text.count("\n") + 1
        self.module = Scope("", "module", 0, count, True, self.tree)
        self.scopes: list[Scope] = [self.module]
        self._walk(self.tree, "", True)

    def _walk(self, node: ast.AST, prefix: str, addressable: bool) -> None:
        # Only statements can define functions and classes: expressions are never entered (that
        # keeps indexing a 3,000-line module to a few milliseconds).
        for child in _statements(node):
            if isinstance(child, _DEFS):
                qualname = prefix + child.name
                first = min([child.lineno] + [d.lineno for d in child.decorator_list])
                assert child.end_lineno is not None  # ast.parse sets it on every statement
                is_class = isinstance(child, ast.ClassDef)
                self.scopes.append(
                    Scope(qualname, "class" if is_class else "function", first - 1, child.end_lineno, addressable, child)
                )
                if is_class:
                    self._walk(child, qualname + ".", addressable)
                else:
                    self._walk(child, qualname + ".<locals>.", False)
            else:
                self._walk(child, prefix, addressable)

    def find(self, qualname: str | None) -> list[Scope]:
        """Every scope with this qualified name (a property's getter and setter share one)."""
        if qualname is None:
            return [self.module]
        return [s for s in self.scopes if s.qualname == qualname]

    def innermost(self, start: int, end: int) -> Scope:
        """The smallest scope holding lines [start, end) (an empty span: the gap before `start`)."""
        best = self.module
        for scope in self.scopes:
            inside = scope.contains(start, end) if end > start else scope.start < start < scope.end
            if inside and scope.end - scope.start <= best.end - best.start and scope is not self.module:
                best = scope
        return best

    def names(self) -> list[str]:
        return [s.qualname for s in self.scopes if s.kind != "module"]

    def similar(self, qualname: str | None) -> str:
        """"; similar names: ..." for a name that is not here (empty when nothing is close)."""
        import difflib

        close = difflib.get_close_matches(qualname or "", self.names(), n=3)
        return f"; similar names: {', '.join(close)}" if close else ""
