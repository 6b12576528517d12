"""What each global a copy reads means in the patch file, and what it would mean in vLLM's module.

For every name the copy reads (issue 16):
- vLLM's module binds it to the same thing (the same import, the same definition followed through
  re-exports, or an equal statement): nothing to do;
- vLLM's module lacks it and the patch file imports it: an import line at module scope;
- the patch file redefines a global vLLM's module has (one top-level statement on each side):
  that statement becomes a module-scope hunk (vllm-ascend 0.11.0's roberta patch);
- vLLM's module lacks it and the patch file defines it by one plain statement (a helper def or
  class, a constant): that statement is added, its own reads settled the same way, after the
  module's imports, or further down where what it reads as it runs is bound (the main refusal of
  the corpus);
- otherwise a refusal naming it: a name bound differently on the two sides or more than once, a
  helper that reads at definition what the module never binds for sure, a name read from the
  function around the copy.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field

from vllm_surgeon.adopt import code, names
from vllm_surgeon.adopt.bindings import Binding, statement_bindings
from vllm_surgeon.adopt.patchfile import PatchFile
from vllm_surgeon.adopt.resolve import Resolver

# Logging is not behaviour: a copy that logs through its own `logger` logs through vLLM's once adopted.
_LOGGER = "logger"


@dataclass(frozen=True, order=True)
class ImportLine:
    """`from module import name as alias`, or `import module as alias` (name None)."""

    module: str
    name: str | None
    alias: str | None = None

    @property
    def binds(self) -> str:
        return self.alias or self.name or self.module.split(".")[0]

    def render(self) -> str:
        if self.name is None:
            return f"import {self.module}" + (f" as {self.alias}" if self.alias else "")
        return f"from {self.module} import {self.name}" + (f" as {self.alias}" if self.alias and self.alias != self.name else "")


@dataclass
class Carried:
    """A global the patch file defines: its statement there replaces vLLM's (`swap`), or is added after
    the module's imports (`add`: vLLM imports the name, or lacks the constant or helper the copy reads)."""

    name: str
    patch: Binding
    upstream: Binding | None
    mode: str  # "swap" or "add"
    at: int | None = None  # "add" further down: after the module's 1-based line `at` (the statement binding what it needs)


@dataclass
class Needs:
    imports: set[ImportLine] = field(default_factory=set)
    carried: list[Carried] = field(default_factory=list)
    refusal: str | None = None
    notes: list[str] = field(default_factory=list)


def needs(
    file: PatchFile, reads: set[str], module: str, resolver: Resolver, stands_for: dict[str, str] | None = None,
    copy: ast.AST | None = None,
) -> Needs:
    """What `reads` (names a copy in `file` reads) need so they mean the same in vLLM's `module`.

    stands_for: patch-file names that mean a vLLM class once adopted (the class the copy sits in,
    the subclass swapped in for the target): name -> the vLLM class's name in `module`. copy: the
    copy's def (its own `global NAME` statements move into vLLM with it)."""
    out = Needs()
    todo = sorted(reads)
    seen: set[str] = set()
    while todo and out.refusal is None:
        name = todo.pop(0)
        if name in seen:
            continue
        seen.add(name)
        more = _one(file, name, module, resolver, stands_for or {}, out)
        todo += sorted(more - seen)
    out.carried.sort(key=lambda c: c.patch.line)  # added definitions keep the patch file's order
    if out.refusal is None:
        out.refusal = _shared(file, out, copy) or _place(file, out, module, resolver)
    return out


def _shared(file: PatchFile, out: Needs, copy: ast.AST | None) -> str | None:
    """Why a global carried in would stop being one variable (None: none would): a function of the
    patch file that stays there sets it (`global NAME`), and would set its own once vLLM's module has
    the copy's."""
    added = {item.name: item.patch.line for item in out.carried if item.mode == "add" and item.upstream is None}
    moved = {id(node) for item in out.carried for node in ast.walk(item.patch.node)} | (
        {id(node) for node in ast.walk(copy)} if copy is not None else set())
    for node in ast.walk(file.tree):
        if isinstance(node, ast.Global) and id(node) not in moved and added.keys() & set(node.names):
            name = sorted(added.keys() & set(node.names))[0]
            return (f"reads {name}, defined in {file.label}:{added[name]}, which {file.label}:{node.lineno} sets "
                    f"(global {name}): carried into vLLM's module, the two would be different variables")
    return None


def _one(file: PatchFile, name: str, module: str, resolver: Resolver, stands_for: dict[str, str], out: Needs) -> set[str]:
    """Settle one name into `out`; the names a carried statement reads in turn."""
    theirs = file.binding(name)
    ours = resolver.bindings(module).get(name)
    if name in stands_for:
        if stands_for[name] == name and ours:
            return set()
        out.refusal = f"reads {name} (the class {file.label} patches with); {module} has no {name}"
        return set()
    if ours is None and not resolver.resolve_in(module, [name]).defined:
        return _missing(file, name, theirs, module, resolver, out)
    if theirs is None or _same(file, theirs, name, module, resolver):
        return set()
    if name == _LOGGER and theirs.kind in ("assign", "from", "import"):
        out.notes.append(f"logs through {module}'s logger")
        return set()
    return _redefined(file, name, theirs, ours or [], module, resolver, out)


def _missing(file: PatchFile, name: str, theirs: Binding | None, module: str, resolver: Resolver, out: Needs) -> set[str]:
    """A name vLLM's module lacks: an import line, a literal constant carried over, or a refusal."""
    if theirs is None:
        if name not in names.BUILTINS:
            out.refusal = f"reads {name}, which neither {file.label} nor {module} defines"
        return set()
    imported = _import_line(file, name)
    if imported is not None and _gone(imported, resolver):
        out.refusal = f"reads {name}, imported by {file.label}:{theirs.line} from {imported.module}, which has no such name here"
        return set()
    if imported is not None:
        out.imports.add(imported)
        return set()
    if theirs.kind in ("def", "class", "assign") and len(file.bindings[name]) == 1 and not theirs.conditional:
        # A helper or constant only the patch file defines is carried in with the copy (its own reads
        # settled in turn); `_place` puts it where what it reads as it is defined is bound.
        out.carried.append(Carried(name, theirs, None, "add"))
        return names.statement_reads(theirs.node)
    out.refusal = (f"reads {name}, defined in {file.label}:{theirs.line}, which {module} lacks "
                   "(move it into vLLM by hand, or keep this a monkey patch)")
    return set()


def _place(file: PatchFile, out: Needs, module: str, resolver: Resolver) -> str | None:
    """Where each statement carried in goes (`Carried.at`); why one cannot go anywhere (None: all can).

    Added statements run at import: the names one reads as it runs (a def's decorators, defaults and
    annotations; a class's bases and body; a value) must be bound by then. It goes after the module's
    imports when they are builtins, bound by the import block or the added import lines, or carried
    there before it; else right after the module's own top-level statement that binds the last of them
    (vllm-ascend's `class AscendWorkerProc(WorkerProc)` after vLLM's `class WorkerProc`)."""
    tree = resolver.tree(module)
    body = tree.body if tree is not None else []
    block = _import_block(tree)
    ready = set(names.BUILTINS) | {line.binds for line in out.imports} | {n for stmt in block for n in always_bound(stmt)}
    ends = {n: stmt.end_lineno or stmt.lineno for stmt in body for n in always_bound(stmt)}
    placed: dict[str, int] = {}
    for item in out.carried:
        if item.mode != "add":
            continue
        late = names.definition_reads(item.patch.node) - ready
        unbound = sorted(n for n in late if n not in placed and n not in ends)
        if unbound:
            return (f"reads {item.name}, defined in {file.label}:{item.patch.line}, which reads {', '.join(unbound)} as it is "
                    f"defined, and {module} does not always bind {'it' if len(unbound) == 1 else 'them'} at its top level")
        if late:
            item.at = max(placed[n] if n in placed else ends[n] for n in late)
            placed[item.name] = item.at
        else:
            ready.add(item.name)
    return None


def always_bound(stmt: ast.stmt) -> set[str]:
    """Names a top-level statement binds whichever way it runs: not those of one branch of an `if`
    (`if TYPE_CHECKING:` imports) or of a `try` whose handlers do not bind them too."""
    if isinstance(stmt, ast.If):
        return _bound_by(stmt.body) & _bound_by(stmt.orelse)
    if isinstance(stmt, ast.Try):
        handlers = [_bound_by(h.body) for h in stmt.handlers]
        return set.intersection(_bound_by(stmt.body), *handlers) | _bound_by(stmt.finalbody) if handlers else _bound_by(stmt.body)
    if isinstance(stmt, ast.For | ast.While | ast.With | ast.AsyncFor | ast.AsyncWith) or type(stmt).__name__ == "TryStar":
        return set()
    return {b.name for b in statement_bindings(stmt, None)}


def _bound_by(body: list[ast.stmt]) -> set[str]:
    return set().union(*(always_bound(stmt) for stmt in body)) if body else set()


def _redefined(
    file: PatchFile, name: str, theirs: Binding, ours: list[Binding], module: str, resolver: Resolver, out: Needs,
) -> set[str]:
    """A global both sides bind differently: the patch file's statement carried into vLLM's module
    (in place of vLLM's one statement, or after vLLM's import of it), or a refusal."""
    why = (f"reads {name}, which {file.label}:{theirs.line} binds ({theirs.describe()}) "
           f"and {module} binds otherwise")
    if theirs.kind not in ("def", "class", "assign") or theirs.conditional or len(file.bindings[name]) > 1 or len(ours) != 1:
        out.refusal = why
        return set()
    upstream = ours[0]
    if upstream.conditional:
        out.refusal = why
        return set()
    if upstream.kind in ("def", "class", "assign"):
        out.carried.append(Carried(name, theirs, upstream, "swap"))
    elif upstream.kind in ("from", "import") and upstream.node in _import_block(resolver.tree(module)):
        out.carried.append(Carried(name, theirs, upstream, "add"))
    else:
        out.refusal = why
        return set()
    return names.statement_reads(theirs.node)


_DATA = (ast.Constant, ast.BinOp, ast.UnaryOp, ast.BoolOp, ast.Compare, ast.Tuple, ast.List, ast.Set, ast.Dict,
         ast.Name, ast.operator, ast.unaryop, ast.boolop, ast.cmpop, ast.expr_context)


def _gone(line: ImportLine, resolver: Resolver) -> bool:
    """Whether an import line names a module of the tree that is not there, or a name it lacks."""
    dotted = line.module if line.name is None else f"{line.module}.{line.name}"
    top = dotted.split(".")[0]
    if not resolver.inside(dotted) or resolver.tree(top) is None or resolver.bindings(line.module).get("__getattr__"):
        return False  # a package this tree does not hold, or a module that makes names on demand
    return resolver.resolve(dotted).kind in ("missing", "external")


def _literal(binding: Binding) -> bool:
    """A `NAME = <data>` statement: literals and operators on them and on other names (`1 << 30`,
    `MULTIPLIER - 1`); no call, no attribute: evaluating it in vLLM's module gives the same value."""
    value = getattr(binding.node, "value", None)
    if binding.kind != "assign" or value is None:
        return False
    return all(isinstance(node, _DATA) for node in ast.walk(value))


def _same(file: PatchFile, theirs: Binding, name: str, module: str, resolver: Resolver) -> bool:
    """Whether the patch file's binding of `name` is the thing vLLM's `module` binds to it."""
    ours = resolver.bindings(module).get(name) or []
    here = resolver.resolve_in(module, [name])
    if theirs.kind in ("def", "class", "assign"):
        if len(ours) == 1 and code.dump(ours[0].node) == code.dump(theirs.node):
            return True
        # The same literal value, wherever vLLM defines it (`PAD_SLOT_ID = -1` copied beside the copy).
        value = getattr(here.node, "value", None)
        return _literal(theirs) and here.kind == "value" and value is not None and \
            code.dump(value) == code.dump(getattr(theirs.node, "value", None))
    where = _where(theirs, resolver)
    if where is None:
        return False
    candidates = {_canonical(here)} if here.kind != "missing" else set()
    return where in candidates | _alternatives(resolver, module, name, 0)


def _alternatives(resolver: Resolver, module: str, name: str, depth: int) -> set[str]:
    """Everything `name` may be in `module` through each of its bindings, conditional ones too
    (`if HAS_TRITON: import triton` / `else: triton = TritonPlaceholder()` may be `import triton`)."""
    out: set[str] = set()
    for binding in resolver.bindings(module).get(name, []) if depth < 8 else []:
        where = _where(binding, resolver)
        if where is not None:
            out.add(where)
        if binding.kind == "from" and binding.module and binding.attr and resolver.tree(binding.module) is not None:
            out |= _alternatives(resolver, binding.module, binding.attr, depth + 1)
    return out


def _where(binding: Binding, resolver: Resolver) -> str | None:
    """The thing an import binding names, followed through the tree ('module:qualname', or the dotted
    name outside it); vLLM's `torch = LazyLoader("torch", globals(), "torch")` is `import torch`."""
    if binding.kind == "assign":
        value = getattr(binding.node, "value", None)
        if isinstance(value, ast.Call) and code.decorator_name(value) == "LazyLoader" and len(value.args) == 3:
            module = value.args[2]
            return _alias(module.value) if isinstance(module, ast.Constant) and isinstance(module.value, str) else None
        return None
    if binding.module is None:
        return None
    if binding.kind == "import":
        return _alias(binding.module)
    if binding.kind != "from" or binding.attr is None:
        return None
    return _canonical(resolver.resolve(f"{binding.module}.{binding.attr}"))


def _canonical(found) -> str:
    if found.kind == "external":
        return _alias(".".join(p for p in (found.module, found.qualname) if p))
    return found.target


# typing's aliases of collections.abc: `from typing import Generator` reads as vLLM's collections.abc one.
_ABC = frozenset({"AsyncGenerator", "AsyncIterable", "AsyncIterator", "Awaitable", "Callable", "Collection", "Container",
                  "Coroutine", "Generator", "Hashable", "ItemsView", "Iterable", "Iterator", "KeysView", "Mapping",
                  "MappingView", "MutableMapping", "MutableSequence", "MutableSet", "Reversible", "Sequence", "Sized",
                  "ValuesView"})


def _alias(dotted: str) -> str:
    module, _, name = dotted.rpartition(".")
    return f"collections.abc.{name}" if module == "typing" and name in _ABC else dotted


def _import_line(file: PatchFile, name: str) -> ImportLine | None:
    """The import line that gives vLLM's module `name` as the patch file imports it (absolute)."""
    for binding in file.bindings.get(name, []):
        if binding.module is None:
            continue
        if binding.kind == "import":
            full = binding.attr or binding.module
            return ImportLine(full, None, name if name != full.split(".")[0] else None)
        if binding.kind == "from" and binding.attr is not None and binding.attr != "*":
            return ImportLine(binding.module, binding.attr, name if name != binding.attr else None)
    return None


def _import_block(tree: ast.Module | None) -> list[ast.stmt]:
    """The module's top-level statements up to where added lines go (`import_block_end`)."""
    if tree is None:
        return []
    end = import_block_end(tree)
    return [stmt for stmt in tree.body if (stmt.end_lineno or stmt.lineno) <= end]


def import_block_end(tree: ast.Module) -> int:
    """0-based line after the module's last top-level import that comes before its first def or class
    (where an added import line goes: upstream's own import block); after the docstring when none."""
    end = 0
    for stmt in tree.body:
        if isinstance(stmt, ast.Import | ast.ImportFrom):
            end = stmt.end_lineno or stmt.lineno
        elif isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            break
        elif end == 0 and code.is_docstring(stmt):
            end = stmt.end_lineno or stmt.lineno
    return end


def render_imports(lines: set[ImportLine]) -> list[str]:
    """Import lines in upstream's style: one `from m import a, b` per module, sorted."""
    out: list[str] = []
    plain = sorted(line for line in lines if line.name is None)
    out += [line.render() for line in plain]
    by_module: dict[str, list[ImportLine]] = {}
    for line in sorted(line for line in lines if line.name is not None):
        by_module.setdefault(line.module, []).append(line)
    for module, found in by_module.items():
        parts = [f"{line.name} as {line.alias}" if line.alias and line.alias != line.name else str(line.name) for line in found]
        single = f"from {module} import {', '.join(parts)}"
        out += [single] if len(single) <= 88 else [f"from {module} import ("] + [f"    {p}," for p in parts] + [")"]
    return out
