"""A digest of a definition's code, not its layout: what guard records and `copied_from` keep of the
upstream functions a monkey patch depends on (issue 16).

What the digest covers, exactly: every `def`, `async def` or `class` statement that defines the
qualified name in the module (a property's getter and setter, or two branches of an `if`, are all
taken, in source order), as Python's `ast` parses them: the kind of statement, its decorators, its
arguments with their annotations and defaults, its return annotation, type parameters, bases and
keywords, and its body, each node by its type and named fields. Left aside: the definition's own name
(the target names it), the docstring of it and of every def or class inside it (a body that was only a
docstring counts as `pass`), comments, layout (line breaks, indentation, parentheses, blank lines),
how a literal is spelled (quotes, string prefixes and implicit concatenation, `0x10` or `16`), type
comments, and source positions. Fields that are empty or None are left out too, so the digest is the
same on every Python this package runs on (3.12 added an empty `type_params` to every def).

Written `ast1:` and 32 hex digits (the first 128 bits of a sha256 of that canonical text): the prefix
names the rule, so a later rule can be told from this one.
"""

from __future__ import annotations

import ast
import hashlib
import re
from dataclasses import dataclass

from vllm_surgeon.core.scopes import ScopeIndex, blocks

PREFIX = "ast1:"
_HEX = 32
_DIGEST = re.compile(rf"^{re.escape(PREFIX)}[0-9a-f]{{{_HEX}}}$")
_DEFS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
_SKIPPED = frozenset({"type_comment", "kind"})  # `kind`: the `u` of u"..." (spelling, not code)
_WRAP = "if 1:\n"  # makes an indented snippet (a method) parse on its own


def is_digest(text: str) -> bool:
    """Whether `text` is a digest this rule writes (`ast1:` and 32 lowercase hex digits)."""
    return bool(_DIGEST.match(text))


def _is_docstring(stmt: ast.stmt) -> bool:
    return isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant) and isinstance(stmt.value.value, str)


def _body(node: ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) -> list[ast.stmt]:
    body = node.body
    if body and _is_docstring(body[0]):
        return body[1:] or [ast.Pass()]
    return body


def _canonical(node: object, out: list[str], top: bool = False) -> None:
    if isinstance(node, list):
        out.append("[")
        for item in node:
            _canonical(item, out)
            out.append(",")
        out.append("]")
        return
    if not isinstance(node, ast.AST):
        out.append(f"{type(node).__name__}:{node!r}")
        return
    out.append(type(node).__name__ + "(")
    for name in node._fields:
        if name in _SKIPPED or (top and name == "name"):
            continue
        value = _body(node) if name == "body" and isinstance(node, _DEFS) else getattr(node, name, None)
        if value is None or (isinstance(value, list) and not value):
            continue
        out.append(name + "=")
        _canonical(value, out)
        out.append(",")
    out.append(")")


def canonical(nodes: list[ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef]) -> str:
    """The text the digest hashes: each definition as above, in order."""
    out: list[str] = []
    for node in nodes:
        _canonical(node, out, top=True)
        out.append(";")
    return "".join(out)


def digest_nodes(nodes: list[ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef]) -> str:
    return PREFIX + hashlib.sha256(canonical(nodes).encode("utf-8", "surrogatepass")).hexdigest()[:_HEX]


@dataclass(frozen=True)
class Code:
    """One qualified name's definitions in a module: where they are, their text, their digest."""

    qualname: str
    kind: str  # "function" or "class" (of the first definition)
    start: int  # 1-based first line of the text (a decorator, or the `if` that holds two definitions)
    end: int  # 1-based last line
    text: str  # the module's lines start..end, exactly as written
    digest: str
    count: int  # how many definitions the name has there (a property's getter and setter: 2)


def code_of(index: ScopeIndex, lines: list[str], qualname: str) -> Code | None:
    """The definitions of `qualname` in a parsed module (`lines`: its text split on \\n); None when it
    defines no such name. Their text runs from the first to the last statement of the enclosing body
    that holds one of them, so that it parses alone and gives the same digest (`digest_of_text`)."""
    scopes = sorted((s for s in index.find(qualname) if s.kind != "module"), key=lambda s: s.start)
    if not scopes:
        return None
    nodes = [s.node for s in scopes if not isinstance(s.node, ast.Module)]
    start, end = _span(index, qualname, nodes)
    return Code(qualname, scopes[0].kind, start, end, "\n".join(lines[start - 1 : end]), digest_nodes(nodes), len(nodes))


def _first_line(stmt: ast.stmt) -> int:
    decorators = getattr(stmt, "decorator_list", [])
    return min([stmt.lineno] + [d.lineno for d in decorators])


def _span(index: ScopeIndex, qualname: str, nodes: list) -> tuple[int, int]:
    """1-based lines of the statements of the enclosing body that hold the definitions."""
    if len(nodes) == 1:
        return _first_line(nodes[0]), nodes[0].end_lineno
    parent_name = qualname.rpartition(".")[0].removesuffix(".<locals>")
    parents = [s for s in index.find(parent_name or None)] if parent_name else [index.module]
    parent = next((p for p in parents if p.start < nodes[0].lineno <= p.end), index.module)
    holders = [stmt for block in blocks(parent.node) for stmt in block
               if any(_first_line(stmt) <= n.lineno and n.end_lineno <= stmt.end_lineno for n in nodes)]
    if not holders:  # not reached: each definition is inside a statement of its parent's body
        return _first_line(nodes[0]), max(n.end_lineno for n in nodes)
    return min(_first_line(s) for s in holders), max(s.end_lineno or 0 for s in holders)


def digest_of_text(text: str, qualname: str) -> str | None:
    """The digest of the definitions of `qualname`'s last name found in `text`, a snippet as `code_of`
    cuts it (indented or not); None when it holds none. SyntaxError when it does not parse."""
    name = qualname.rpartition(".")[2]
    indented = bool(text) and text[:1] in " \t"
    tree = ast.parse(_WRAP + text if indented else text)
    top: ast.AST = tree.body[0] if indented and tree.body else tree
    nodes = _named(top, name)
    return digest_nodes(nodes) if nodes else None


def _named(node: ast.AST, name: str) -> list:
    """Definitions called `name` in `node`'s blocks, through compound statements, never inside a def."""
    found = []
    for block in blocks(node):
        for stmt in block:
            if isinstance(stmt, _DEFS):
                if stmt.name == name:
                    found.append(stmt)
            else:
                found += _named(stmt, name)
    return found
