"""Compile patched source so that unchanged code keeps the line numbers of the file on disk.

Every changed piece (the outermost function holding a changed line, or a changed statement at
class or module scope) is a *unit*. Units are numbered as if they sat after the end of the file:
the text registered with `linecache` is the file on disk followed by a tail holding each unit, so
a traceback from patched code shows the patched lines, `inspect.getsource` shows the patched
function, and every other line keeps its number on disk (DESIGN: "elsewhere unchanged").
"""

from __future__ import annotations

import ast
import types
from collections.abc import Sequence
from dataclasses import dataclass

from ._scopes import blocks

_FUNCS = (ast.FunctionDef, ast.AsyncFunctionDef)
BANNER = "# ---- vllm-surgeon: patched code below; the lines above are the file on disk ----"


@dataclass
class Unit:
    """One relocated piece: a statement of the patched text and the blocks that hold it."""

    node: ast.stmt
    chain: list[ast.stmt]  # enclosing statements (classes, ifs, ...), outermost first
    start: int  # 0-based first line in the patched text (decorators included)
    end: int  # exclusive
    tail_line: int = 0  # 1-based line of `start` in the display text

    @property
    def is_function(self) -> bool:
        return isinstance(self.node, _FUNCS)

    @property
    def qualname(self) -> str | None:
        """Dotted name for a def or class reached through classes only; None otherwise."""
        if not isinstance(self.node, (*_FUNCS, ast.ClassDef)):
            return None
        names = [c.name for c in self.chain if isinstance(c, ast.ClassDef)]
        return ".".join([*names, self.node.name])


@dataclass
class Compiled:
    display: str  # the text tracebacks and inspect read (file on disk + tail)
    code: types.CodeType
    tree: ast.Module  # the relocated tree `code` was compiled from
    units: list[Unit]


def _first_line(node: ast.stmt) -> int:
    return min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])])


def _unit_for(
    line: int, body: list[ast.stmt], chain: list[ast.stmt], text: Sequence[str]
) -> tuple[ast.stmt, list[ast.stmt]] | None:
    """The unit holding 1-based `line`: the outermost def, else the innermost statement (None: a blank
    or comment line between statements, which holds no code)."""
    for stmt in body:
        if _first_line(stmt) <= line <= stmt.end_lineno:
            if isinstance(stmt, _FUNCS):
                return stmt, chain
            inner = blocks(stmt)
            if not inner or line < min(_first_line(b[0]) for b in inner):
                return stmt, chain  # a simple statement, or the header of a compound one
            for block in inner:
                found = _unit_for(line, block, [*chain, stmt], text)
                if found is not None:
                    return found
            stripped = text[line - 1].strip() if line - 1 < len(text) else ""
            if not stripped or stripped.startswith("#"):
                return None
            return stmt, chain  # an `else:`/`except ...:` line: the whole compound statement changed
    return None


def find_units(tree: ast.Module, changed_lines: Sequence[int], text: Sequence[str]) -> list[Unit]:
    """Units covering the 0-based patched `changed_lines`, outermost only, in text order."""
    found: dict[int, Unit] = {}
    for line in changed_lines:
        hit = _unit_for(line + 1, tree.body, [], text)
        if hit is not None:
            node, chain = hit
            found.setdefault(id(node), Unit(node, chain, _first_line(node) - 1, node.end_lineno))
    units = sorted(found.values(), key=lambda u: (u.start, -u.end))
    outer: list[Unit] = []
    for unit in units:
        if not any(o.start <= unit.start and unit.end <= o.end for o in outer):
            outer.append(unit)
    return outer


def _tail_headers(unit: Unit, note: str) -> list[str]:
    """Synthetic block headers so the tail is valid Python with the unit at its own indentation."""
    headers = []
    for stmt in unit.chain:
        pad = " " * stmt.col_offset
        if isinstance(stmt, ast.ClassDef):
            headers.append(f"{pad}class {stmt.name}:  # {note}")
        else:
            headers.append(f"{pad}if True:  # {note}")
    return headers


def compile_patched(
    original: Sequence[str],
    patched: Sequence[str],
    tree: ast.Module,
    origin_of: Sequence[int | None],
    filename: str,
    note: str,
) -> Compiled:
    """Relocate the changed units of `tree` (parsed from `patched`) past the end of `original`; compile.

    origin_of[i]: the 0-based line of `original` that patched line i is, or None for a new line.
    Raises SyntaxError when the patched text does not compile.
    """
    changed = [i for i, o in enumerate(origin_of) if o is None]
    # A removal inside a function changes that function even where no line was added.
    for i in range(1, len(origin_of)):
        prev, cur = origin_of[i - 1], origin_of[i]
        if prev is not None and cur is not None and cur != prev + 1:
            changed.append(i)
    units = find_units(tree, changed, patched)

    display = list(original)
    if display and display[-1] == "":
        display.pop()
    if units:
        display += ["", BANNER]
    for unit in units:
        display.append("")
        display += _tail_headers(unit, note)
        unit.tail_line = len(display) + 1
        display += patched[unit.start : unit.end]
    display.append("")

    # Where a line outside the units sits on disk: its own line, or the nearest line above it.
    disk = [0] * (len(patched) + 2)
    last = 1
    for i, o in enumerate(origin_of):
        if o is not None:
            last = o + 1
        disk[i + 1] = last
    disk[len(patched) + 1] = last

    spans = [(u.start + 1, u.end, u.tail_line - (u.start + 1)) for u in units]

    def shift_for(line: int) -> int | None:
        for lo, hi, shift in spans:
            if lo <= line <= hi:
                return shift
        return None

    for node in ast.walk(tree):
        lineno = getattr(node, "lineno", None)
        if lineno is None:
            continue
        end = getattr(node, "end_lineno", None) or lineno
        shift = shift_for(lineno)
        if shift is not None and shift_for(end) == shift:
            node.lineno, node.end_lineno = lineno + shift, end + shift
        else:
            start = disk[min(lineno, len(patched) + 1)]
            node.lineno = start
            node.end_lineno = max(start, disk[min(end, len(patched) + 1)])
            if node.end_lineno == start and getattr(node, "end_col_offset", None) is not None:
                node.end_col_offset = max(node.end_col_offset, node.col_offset)
    code = compile(tree, filename, "exec", dont_inherit=True)
    return Compiled("\n".join(display), code, tree, units)
