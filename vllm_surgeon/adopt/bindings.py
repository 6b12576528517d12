"""What a module binds at its top level, read from its syntax tree: imports, defs, classes, assignments.

Both sides of an adoption are read this way: the patch file (what a name the copy reads means there)
and vLLM's module (what the same name means in the target). Nothing is imported.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass


@dataclass(frozen=True)
class Binding:
    """One top-level statement binding `name`.

    kind: "import" (`import m` / `import m as name`: module is m), "from" (`from m import attr as name`),
    "def", "class", "assign" (a plain `name = ...` or `name: T = ...`), or "other" (loops, `with ... as`,
    tuple targets, augmented assignments: bound, but not by one statement of its own).
    """

    name: str
    kind: str
    node: ast.stmt
    module: str | None = None  # absolute; None for a relative import that cannot be made absolute
    attr: str | None = None  # what a `from` import takes; the whole dotted name an `import a.b.c` imports
    conditional: bool = False  # inside an `if`/`try`/`with` at the top level

    @property
    def line(self) -> int:
        return self.node.lineno

    def describe(self) -> str:
        if self.kind == "import":
            return f"import {self.module}"
        if self.kind == "from":
            return f"from {self.module} import {self.attr}"
        return f"{self.kind} at line {self.line}"


def absolute(module: str | None, level: int, package: str | None) -> str | None:
    """`from ..x import y` in `package` -> the absolute module (None when it climbs out of the package)."""
    if level == 0:
        return module
    if package is None:
        return None
    parts = package.split(".")
    if level - 1 >= len(parts):
        return None
    base = parts[: len(parts) - (level - 1)]
    return ".".join(base + ([module] if module else []))


def top_level(tree: ast.Module, package: str | None) -> dict[str, list[Binding]]:
    """Every top-level binding of a module, by name, in source order ('*' holds star imports)."""
    out: dict[str, list[Binding]] = {}
    _collect(tree.body, package, False, out)
    return out


def statement_bindings(stmt: ast.stmt, package: str | None, conditional: bool = False) -> list[Binding]:
    """The bindings one statement makes (in a function body too: `from x import y` inside a def)."""
    out: dict[str, list[Binding]] = {}
    _collect([stmt], package, conditional, out)
    return [b for found in out.values() for b in found]


def _collect(body: list[ast.stmt], package: str | None, conditional: bool, out: dict[str, list[Binding]]) -> None:
    for stmt in body:
        for binding in _bindings(stmt, package, conditional):
            out.setdefault(binding.name, []).append(binding)
        if isinstance(stmt, ast.If | ast.Try | ast.With | ast.For | ast.While) or type(stmt).__name__ == "TryStar":
            for block in ("body", "orelse", "finalbody"):
                _collect(getattr(stmt, block, []) or [], package, True, out)
            for handler in getattr(stmt, "handlers", []):
                _collect(handler.body, package, True, out)


def _bindings(stmt: ast.stmt, package: str | None, conditional: bool) -> list[Binding]:
    if isinstance(stmt, ast.Import):
        # `import a.b.c` binds `a` (the package a), and attr keeps what the statement imports.
        return [Binding(a.asname or a.name.split(".")[0], "import", stmt, a.name if a.asname else a.name.split(".")[0],
                        a.name, conditional) for a in stmt.names]
    if isinstance(stmt, ast.ImportFrom):
        module = absolute(stmt.module, stmt.level, package)
        return [Binding(a.asname or a.name, "from", stmt, module, a.name, conditional) for a in stmt.names]
    if isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef):
        return [Binding(stmt.name, "def", stmt, conditional=conditional)]
    if isinstance(stmt, ast.ClassDef):
        return [Binding(stmt.name, "class", stmt, conditional=conditional)]
    if isinstance(stmt, ast.Assign):
        single = len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name)
        return [Binding(n, "assign" if single else "other", stmt, conditional=conditional) for n in _targets(stmt.targets)]
    if isinstance(stmt, ast.AnnAssign) and stmt.value is not None and isinstance(stmt.target, ast.Name):
        return [Binding(stmt.target.id, "assign", stmt, conditional=conditional)]
    if isinstance(stmt, ast.AugAssign):
        return [Binding(n, "other", stmt, conditional=conditional) for n in _targets([stmt.target])]
    if isinstance(stmt, ast.For | ast.AsyncFor):
        return [Binding(n, "other", stmt, conditional=conditional) for n in _targets([stmt.target])]
    if isinstance(stmt, ast.With | ast.AsyncWith):
        return [Binding(n, "other", stmt, conditional=conditional)
                for n in _targets([i.optional_vars for i in stmt.items if i.optional_vars is not None])]
    return []


def _targets(targets: list[ast.expr]) -> list[str]:
    names: list[str] = []
    for target in targets:
        if isinstance(target, ast.Name):
            names.append(target.id)
        elif isinstance(target, ast.Tuple | ast.List):
            names += _targets(list(target.elts))
        elif isinstance(target, ast.Starred):
            names += _targets([target.value])
    return names


def module_name(parts: list[str]) -> str:
    """`['pkg', 'sub', '__init__']` -> `pkg.sub`."""
    if parts and parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)
