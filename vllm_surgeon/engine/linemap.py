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
from dataclasses import dataclass, field
from typing import Any

from vllm_surgeon.core.scopes import blocks

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
    # The relocated tree `code` was compiled from; None for code read from the on-disk cache
    # (_cache.py), which keeps only what the import hook runs. Read it as `tree`, which says so.
    parsed: ast.Module | None
    units: list[Unit]
    # Display line (1-based, in the tail) -> (set, hunk file, hunk line) behind it: every line of
    # every unit, so a traceback or an in-place failure in patched code names its hunk line.
    blame: dict[int, tuple[str, str, int]] = field(default_factory=dict)

    @property
    def tree(self) -> ast.Module:
        if self.parsed is None:
            raise FromCacheError("compiled code from the on-disk cache has no tree: plan the module again")
        return self.parsed


class FromCacheError(RuntimeError):
    """Text or tree asked of a module read from the code cache, which holds compiled code only.

    An internal error (a code path that must plan again first, as Runtime._full does), never a user's."""


def _first_line(node: ast.stmt) -> int:
    return min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])])


def _last_line(node: ast.stmt) -> int:
    assert node.end_lineno is not None  # ast.parse sets it on every statement
    return node.end_lineno


def _unit_for(
    line: int, body: list[ast.stmt], chain: list[ast.stmt], text: Sequence[str]
) -> tuple[ast.stmt, list[ast.stmt]] | None:
    """The unit holding 1-based `line`: the outermost def, else the innermost statement (None: a blank
    or comment line between statements, which holds no code)."""
    for stmt in body:
        if _first_line(stmt) <= line <= _last_line(stmt):
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
            found.setdefault(id(node), Unit(node, chain, _first_line(node) - 1, _last_line(node)))
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


def changed_lines(
    original: Sequence[str],
    patched: Sequence[str],
    origin_of: Sequence[int | None],
    original_tree: ast.Module | None,
    tree: ast.Module,
) -> list[int]:
    """0-based lines of `patched` whose code differs from `original`: what units are made of.

    New lines; for lines removed, the first surviving line of the original statement or function
    that held them (a statement removed whole changes nothing that survives: in-place patching drops
    the names it bound); and the def line of every function or class whose decorators differ (a
    line inserted between `@decorator` and `def` moves the decorator onto it, with no line of the
    def itself changed: issue 7 item 5). Without the original tree: the line after each removal.
    """
    changed = [i for i, o in enumerate(origin_of) if o is None]
    if original_tree is None:
        for i in range(1, len(origin_of)):
            prev, cur = origin_of[i - 1], origin_of[i]
            if prev is not None and cur is not None and cur != prev + 1:
                changed.append(i)
        return changed
    return changed + _after_removals(original, origin_of, original_tree) + _decorators_changed(original_tree, tree)


def _after_removals(original: Sequence[str], origin_of: Sequence[int | None], original_tree: ast.Module) -> list[int]:
    """For each original statement or function that lost lines: the patched line of its first
    surviving line (a statement removed whole has none)."""
    new_of_old = {o: i for i, o in enumerate(origin_of) if o is not None}
    seen: set[int] = set()
    out = []
    for k in range(len(original)):
        if k in new_of_old:
            continue
        hit = _unit_for(k + 1, original_tree.body, [], original)
        if hit is None or id(hit[0]) in seen:
            continue
        seen.add(id(hit[0]))
        node = hit[0]
        survivors = [new_of_old[j] for j in range(_first_line(node) - 1, _last_line(node)) if j in new_of_old]
        if survivors:
            out.append(survivors[0])
    return out


def _decorators_changed(original_tree: ast.Module, tree: ast.Module) -> list[int]:
    """The def line of every function or class whose decorators differ from the original's."""
    before, after = _decorators(original_tree), _decorators(tree)
    out = []
    for qualname, defs in after.items():
        old = before.get(qualname)
        if old is None or len(old) != len(defs):
            continue
        for (_, old_decorators), (node, new_decorators) in zip(old, defs, strict=True):
            if old_decorators != new_decorators:
                out.append(node.lineno - 1)
    return out


def _decorators(tree: ast.Module) -> dict[str, list[tuple[ast.stmt, list[str]]]]:
    """Each def and class reachable through classes (in if/try blocks too), with its decorators."""
    found: dict[str, list[tuple[ast.stmt, list[str]]]] = {}

    def walk(body: list[ast.stmt], prefix: str) -> None:
        for stmt in body:
            if isinstance(stmt, (*_FUNCS, ast.ClassDef)):
                qualname = prefix + stmt.name
                found.setdefault(qualname, []).append((stmt, [ast.dump(d) for d in stmt.decorator_list]))
                if isinstance(stmt, ast.ClassDef):
                    walk(stmt.body, qualname + ".")
            else:
                for block in blocks(stmt):
                    walk(block, prefix)

    walk(tree.body, "")
    return found


def compile_patched(
    original: Sequence[str],
    patched: Sequence[str],
    tree: ast.Module,
    origin_of: Sequence[int | None],
    filename: str,
    note: str,
    *,
    original_tree: ast.Module | None = None,
    blame: Sequence[tuple[str, Any] | None] | None = None,
) -> Compiled:
    """Relocate the changed units of `tree` (parsed from `patched`) past the end of `original`; compile.

    origin_of[i]: the 0-based line of `original` that patched line i is, or None for a new line.
    original_tree: `original` parsed (finds what removals and decorator moves change).
    blame[i]: (set, Origin) behind patched line i, or None. Raises SyntaxError when the patched
    text does not compile.
    """
    changed = changed_lines(original, patched, origin_of, original_tree, tree)
    units = find_units(tree, changed, patched)
    display = _display(original, patched, units, note)
    tail_blame = _tail_blame(units, blame) if blame else {}
    _relocate(tree, units, origin_of, len(patched))
    code = compile(tree, filename, "exec", dont_inherit=True)
    return Compiled("\n".join(display), code, tree, units, tail_blame)


def _display(original: Sequence[str], patched: Sequence[str], units: list[Unit], note: str) -> list[str]:
    """The text tracebacks show: the original file, then each changed unit after the banner (each
    unit's `tail_line` is set to where it starts there)."""
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
    return display


def _relocate(tree: ast.Module, units: list[Unit], origin_of: Sequence[int | None], n_patched: int) -> None:
    """Give every located node of `tree` its line on display: a unit's nodes their tail lines, every
    other node the disk line it is (or the nearest line above it)."""
    disk = [0] * (n_patched + 2)
    last = 1
    for i, o in enumerate(origin_of):
        if o is not None:
            last = o + 1
        disk[i + 1] = last
    disk[n_patched + 1] = last
    spans = [(u.start + 1, u.end, u.tail_line - (u.start + 1)) for u in units]

    def shift_for(line: int) -> int | None:
        return next((shift for lo, hi, shift in spans if lo <= line <= hi), None)

    for node in ast.walk(tree):
        lineno = getattr(node, "lineno", None)
        if lineno is None:
            continue
        end = getattr(node, "end_lineno", None) or lineno
        # Any node with a location (statements, expressions, arguments, ...): typeshed gives ast.AST none.
        shift = shift_for(lineno)
        if shift is not None and shift_for(end) == shift:
            node.lineno, node.end_lineno = lineno + shift, end + shift  # type: ignore[attr-defined]
            continue
        start = disk[min(lineno, n_patched + 1)]
        end = max(start, disk[min(end, n_patched + 1)])
        node.lineno, node.end_lineno = start, end  # type: ignore[attr-defined]
        end_col = getattr(node, "end_col_offset", None)
        if end == start and end_col is not None:
            node.end_col_offset = max(end_col, node.col_offset)  # type: ignore[attr-defined]


def _tail_blame(units: list[Unit], blame: Sequence[tuple[str, Any] | None]) -> dict[int, tuple[str, str, int]]:
    """Every tail line of every unit -> the hunk line that wrote it, else the nearest one above it
    in the unit (a removal, a changed line earlier in the function), else the unit's first."""
    out: dict[int, tuple[str, str, int]] = {}
    for unit in units:
        own = [blame[i] if i < len(blame) else None for i in range(unit.start, unit.end)]
        last = next((b for b in own if b is not None), None)
        for offset, entry in enumerate(own):
            last = entry or last
            if last is not None:
                set_name, origin = last
                out[unit.tail_line + offset] = (set_name, origin.path, origin.line)
    return out
