"""Code, not layout: the keys `adopt` compares statements and functions by.

Two statements are the same code when their syntax trees are, positions, docstrings and string
prefixes aside: a copy re-wrapped by another formatter, or with other quotes, is the same code; an
annotation written `Optional[X]` instead of `X | None` is not (it reads another name). A function's
key also leaves its name out (copies are renamed: `post_init` for `VllmConfig.__post_init__`).
"""

from __future__ import annotations

import ast

DEFS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
# Decorators that make a function a method of a kind (issue 16: a module-level copy assigned over a
# `@staticmethod` keeps upstream's decorator, since the site, not the def, says what it is).
DESCRIPTORS = frozenset({"staticmethod", "classmethod", "property", "cached_property", "abstractmethod", "override"})
_BLOCKS = ("body", "handlers", "cases", "orelse", "finalbody")
# Fields that say nothing about what the code does: positions are attributes (never dumped); these too.
_SKIP_FIELDS = frozenset({"kind", "type_comment"})


def is_docstring(stmt: ast.stmt) -> bool:
    return isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant) and isinstance(stmt.value.value, str)


def docstring(node: ast.AST) -> ast.stmt | None:
    """The docstring statement of a def or class, or None."""
    body = getattr(node, "body", None)
    if isinstance(node, DEFS) and body and is_docstring(body[0]):
        return body[0]
    return None


def body_of(node: ast.AST) -> list[ast.stmt]:
    """A def's or class's statements, its docstring left out; any other node's body as it is."""
    body = list(getattr(node, "body", []))
    return body[1:] if docstring(node) is not None else body


def dump(node: object, *, name: str | None = None) -> str:
    """A text that is equal for two nodes exactly when they are the same code (docstrings aside);
    `name` replaces the name of the def or class at the top."""
    if isinstance(node, list):
        return "[" + ",".join(dump(item) for item in node) + "]"
    if not isinstance(node, ast.AST):
        return repr(node)
    parts = []
    for field in node._fields:
        if field in _SKIP_FIELDS:
            continue
        value = getattr(node, field, None)
        if field == "name" and name is not None and isinstance(node, DEFS):
            value = name
        elif field == "body" and isinstance(node, DEFS):
            value = body_of(node)
        parts.append(dump(value))
    return f"{type(node).__name__}({','.join(parts)})"


def function_key(node: ast.FunctionDef | ast.AsyncFunctionDef, decorators: list[ast.expr] | None = None) -> str:
    """The key of a function as code: name left out, `decorators` standing for its own when given."""
    if decorators is None:
        return dump(node, name="_")
    saved = node.decorator_list
    node.decorator_list = decorators
    try:
        return dump(node, name="_")
    finally:
        node.decorator_list = saved


def signature_key(node: ast.FunctionDef | ast.AsyncFunctionDef) -> str:
    """A def's signature as code: arguments, annotations, defaults, return annotation, async or not."""
    return f"{type(node).__name__}({dump(node.args)},{dump(node.returns)},{dump(getattr(node, 'type_params', None))})"


def header_key(stmt: ast.stmt) -> str:
    """A statement with its blocks left out (a compound statement's header: `if x:`, `for a in b:`,
    its handlers' and cases' headers, and which optional blocks it has); a simple statement's key."""
    parts = []
    for field in stmt._fields:
        if field in _SKIP_FIELDS:
            continue
        value = getattr(stmt, field, None)
        if field in ("body", "orelse", "finalbody"):
            parts.append(f"{field}:{bool(value)}")
        elif field == "handlers":
            parts.append(dump([[h.type, h.name] for h in value or []]))
        elif field == "cases":
            parts.append(dump([[c.pattern, c.guard] for c in value or []]))
        else:
            parts.append(dump(value))
    return f"{type(stmt).__name__}({','.join(parts)})"


def blocks(stmt: ast.stmt) -> list[list[ast.stmt]]:
    """The statement blocks of a compound statement, in a fixed order (a def's body without its docstring)."""
    out: list[list[ast.stmt]] = []
    for field in _BLOCKS:
        value = getattr(stmt, field, None)
        if not isinstance(value, list):
            continue
        if field == "body":
            out.append(body_of(stmt))
        elif field == "handlers":
            out += [handler.body for handler in value]
        elif field == "cases":
            out += [case.body for case in value]
        elif value:
            out.append(value)
    return out


Def = ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef


def find_def(tree: ast.Module, qualname: str) -> list[Def]:
    """Every def or class named `qualname` (`Class.method`) in a module's tree, looked up by name
    through class bodies and the blocks of `if`/`try` statements (never inside functions)."""
    bodies: list[list[ast.stmt]] = [tree.body]
    found: list[Def] = []
    for name in qualname.split("."):
        found = [d for body in bodies for d in _named(body, name)]
        bodies = [d.body for d in found]
    return found


def _named(body: list[ast.stmt], name: str) -> list[Def]:
    out: list[Def] = []
    for stmt in body:
        if isinstance(stmt, DEFS):
            if stmt.name == name:
                out.append(stmt)
            continue
        for field in ("body", "orelse", "finalbody"):
            inner = getattr(stmt, field, None)
            if isinstance(inner, list) and inner and isinstance(inner[0], ast.stmt):
                out += _named(inner, name)
        for handler in getattr(stmt, "handlers", []):
            out += _named(handler.body, name)
    return out


def first_line(stmt: ast.stmt) -> int:
    """0-based line of a compound statement's first block statement (its docstring, for a def)."""
    for field in _BLOCKS:
        value = getattr(stmt, field, None)
        if isinstance(value, list) and value and isinstance(value[0], ast.stmt):
            return value[0].lineno - 1
    return stmt.lineno - 1


def is_compound(stmt: ast.stmt) -> bool:
    return any(isinstance(getattr(stmt, field, None), list) for field in _BLOCKS)


def decorator_name(decorator: ast.expr) -> str:
    """`staticmethod`, `functools.cached_property` -> `cached_property`, `x.setter` -> `setter`."""
    node = decorator.func if isinstance(decorator, ast.Call) else decorator
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return ""


def is_descriptor(decorator: ast.expr) -> bool:
    """A decorator that says what kind of method a def is (`@staticmethod`, `@x.setter`)."""
    name = decorator_name(decorator)
    return name in DESCRIPTORS or (isinstance(decorator, ast.Attribute) and name in ("setter", "getter", "deleter"))


def statement_keys(fn: ast.FunctionDef | ast.AsyncFunctionDef) -> list[str]:
    """A function's statements in order, each as code (a compound statement by its header, then its
    blocks, each key prefixed by its depth): what two copies of a function are compared on, layout aside."""
    out: list[str] = []

    def walk(body: list[ast.stmt], depth: int) -> None:
        for stmt in body:
            compound = is_compound(stmt)
            out.append(f"{depth} {header_key(stmt) if compound else dump(stmt)}")
            for block in blocks(stmt) if compound else []:
                walk(block, depth + 1)

    walk(body_of(fn), 0)
    return out
