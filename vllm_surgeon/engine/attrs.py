"""`self.X` on a set's added lines, against the class as patched and its bases (issue 14 part 3).

A method's added line reads `self.X` (or `cls.X` in a classmethod); X is gone when nothing defines it:
not the class body (methods, properties, class attributes, dataclass fields, `__slots__`, nested
classes), not an assignment `anything.X = ...` / `setattr(anything, "X", ...)` anywhere in the class's
module or its bases' modules, not a base class (read from the tree, across modules, following
re-exports), and nothing else in those modules mentions `.X` or the string "X" (vLLM's own code reading
it there means it is provided from elsewhere: a subclass, another module).

What makes it unknowable, and then nothing is said: `__getattr__`/`__getattribute__` in the class or a
base, a base that cannot be read (a third-party class, a name bound by assignment, a local class), a
class decorator or metaclass that may add attributes (any but dataclass-like ones and ABCMeta),
`setattr`/`__setattr__` with a name that is not a literal, `__dict__` or `vars()` in the class.
It only warns (`attribute-gone`): another module can still assign X to an instance, which no text of
the class shows.
"""

from __future__ import annotations

import abc
import ast
import bisect
import builtins
import typing
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from vllm_surgeon.core.model import Origin
from vllm_surgeon.core.scopes import blocks
from vllm_surgeon.core.source import ModuleSource
from vllm_surgeon.engine.results import Finding
from vllm_surgeon.engine.state import State

# Classes whose attributes Python itself defines (dir() is all of them), by (module, name).
_KNOWN: dict[tuple[str, str], object] = {
    ("abc", "ABC"): abc.ABC,
    ("typing", "Generic"): typing.Generic,
    ("typing", "Protocol"): typing.Protocol,
    ("typing_extensions", "Generic"): typing.Generic,
    ("typing_extensions", "Protocol"): typing.Protocol,
}
# Class decorators that add no attribute a method could read under another name.
_PLAIN_DECORATORS = frozenset(("dataclass", "final", "total_ordering", "runtime_checkable", "unique", "dataclass_transform"))
_PLAIN_METACLASSES = frozenset(("ABCMeta",))
_DEPTH = 8  # re-exports followed from one module to the next


@dataclass
class Model:
    """What a class and its bases define, and whether that can be known from the text."""

    names: set[str]
    closed: bool  # False: something may add attributes no line shows
    modules: set[str] = field(default_factory=set)  # modules of the class and its bases
    chain: list[str] = field(default_factory=list)  # the bases, for messages


@dataclass
class _Module:
    """One module's parse, as the attribute check needs it."""

    name: str
    is_package: bool
    tree: ast.Module
    classes: dict[str, list[ast.ClassDef]]  # module level (through if/try blocks)
    imports: dict[str, tuple[str, str | None]]  # bound name -> (module, name in it; None: the module itself)
    # Filled on first need (_words): a walk of every node, which most checks never need.
    stored: set[str] | None = None  # attribute names assigned anywhere: `x.X = ...`, `setattr(x, "X", ...)`
    mentions: dict[str, set[int]] | None = None  # `.X` or the string "X" -> 0-based lines where it appears


def _dotted(expr: ast.expr) -> list[str] | None:
    parts: list[str] = []
    while isinstance(expr, ast.Attribute):
        parts.insert(0, expr.attr)
        expr = expr.value
    if isinstance(expr, ast.Name):
        return [expr.id, *parts]
    return None


def _last(expr: ast.expr) -> str:
    if isinstance(expr, ast.Call):
        expr = expr.func
    parts = _dotted(expr)
    return parts[-1] if parts else ""


def _statements(body: list[ast.stmt], into_defs: bool = False) -> Iterator[ast.stmt]:
    """Statements of a block and the blocks inside it (if/try/with/for), defs entered only if asked."""
    for stmt in body:
        yield stmt
        if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and not into_defs:
            continue
        for block in blocks(stmt):
            yield from _statements(block, into_defs)


def _absolute(module: str, is_package: bool, level: int, name: str | None) -> str | None:
    if level == 0:
        return name
    parts = (module if is_package else module.rpartition(".")[0]).split(".")
    keep = len(parts) - (level - 1)
    if keep <= 0 or not parts[0]:
        return None
    base = ".".join(parts[:keep])
    return f"{base}.{name}" if name else base


def _parse(source: ModuleSource, tree: ast.Module) -> _Module:
    is_package = source.path.replace("\\", "/").endswith("/__init__.py")
    info = _Module(source.module, is_package, tree, {}, {})
    _module_level(info)
    return info


def _module_level(info: _Module) -> None:
    """The module-level classes and import bindings (through if/try blocks)."""
    for stmt in _statements(info.tree.body):
        if isinstance(stmt, ast.ClassDef):
            info.classes.setdefault(stmt.name, []).append(stmt)
        elif isinstance(stmt, ast.Import):
            for alias in stmt.names:
                if alias.asname:
                    info.imports[alias.asname] = (alias.name, None)
                else:
                    top = alias.name.split(".", 1)[0]
                    info.imports[top] = (top, None)
        elif isinstance(stmt, ast.ImportFrom):
            base = _absolute(info.name, info.is_package, stmt.level, stmt.module)
            if base is not None:
                for alias in stmt.names:
                    info.imports[alias.asname or alias.name] = (base, alias.name)


def _words(info: _Module) -> tuple[set[str], dict[str, set[int]]]:
    """Every attribute the module assigns, and where it mentions each attribute name or identifier string."""
    if info.stored is not None and info.mentions is not None:
        return info.stored, info.mentions
    stored: set[str] = set()
    mentions: dict[str, set[int]] = {}
    for node in ast.walk(info.tree):
        if isinstance(node, ast.Attribute):
            mentions.setdefault(node.attr, set()).add(node.lineno - 1)
            if isinstance(node.ctx, (ast.Store, ast.Del)):
                stored.add(node.attr)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.isidentifier():
            mentions.setdefault(node.value, set()).add(node.lineno - 1)
        elif isinstance(node, ast.Call) and _last(node.func) in ("setattr", "__setattr__"):
            literal = _setattr_name(node)
            if literal is not None:
                stored.add(literal)
    info.stored, info.mentions = stored, mentions
    return stored, mentions


def _setattr_name(call: ast.Call) -> str | None:
    """The attribute name a setattr/__setattr__ call sets when it is a literal (else None)."""
    index = 0 if isinstance(call.func, ast.Attribute) and call.func.attr == "__setattr__" and len(call.args) == 2 else 1
    if len(call.args) <= index:
        return None
    arg = call.args[index]
    return arg.value if isinstance(arg, ast.Constant) and isinstance(arg.value, str) else None


def _body_names(node: ast.ClassDef) -> set[str]:
    """Names the class body binds: defs, classes, assignments, annotations (dataclass fields), imports,
    and the strings of `__slots__`."""
    names: set[str] = set()
    for stmt in _statements(node.body):
        if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(stmt.name)
            continue
        targets: list[ast.expr] = []
        if isinstance(stmt, ast.Assign):
            targets = stmt.targets
        elif isinstance(stmt, (ast.AnnAssign, ast.AugAssign, ast.For, ast.AsyncFor)):
            targets = [stmt.target]
        elif isinstance(stmt, (ast.With, ast.AsyncWith)):
            targets = [item.optional_vars for item in stmt.items if item.optional_vars is not None]
        elif isinstance(stmt, (ast.Import, ast.ImportFrom)):
            names |= {(a.asname or a.name).split(".", 1)[0] for a in stmt.names}
        for target in targets:
            names |= {n.id for n in ast.walk(target) if isinstance(n, ast.Name)}
        if isinstance(stmt, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "__slots__" for t in stmt.targets):
            names |= {c.value for c in ast.walk(stmt.value) if isinstance(c, ast.Constant) and isinstance(c.value, str)}
    return names


def _dynamic(node: ast.ClassDef) -> bool:
    """Whether the class may get attributes no line names: non-literal setattr, `__dict__`, `vars()`,
    a decorator or metaclass that is not known to add none."""
    if any(_last(d) not in _PLAIN_DECORATORS for d in node.decorator_list):
        return True
    if any(k.arg == "metaclass" and _last(k.value) not in _PLAIN_METACLASSES for k in node.keywords):
        return True
    for sub in ast.walk(node):
        if isinstance(sub, ast.Attribute) and sub.attr == "__dict__":
            return True
        if isinstance(sub, ast.Call):
            func = _last(sub.func)
            if func == "vars" or (func in ("setattr", "__setattr__") and _setattr_name(sub) is None):
                return True
    return False


class AttributeCheck:
    """`attribute-gone` findings for one set; modules and class models are parsed once per check."""

    def __init__(self, parsed: Callable[[str], tuple[ModuleSource, ast.Module] | None]) -> None:
        self.parsed = parsed
        self._modules: dict[str, _Module | None] = {}
        self._models: dict[int, Model] = {}

    def module(self, name: str) -> _Module | None:
        if name not in self._modules:
            found = self.parsed(name)
            self._modules[name] = None if found is None else _parse(*found)
        return self._modules[name]

    def check(self, module: str, state: State, added: dict[int, Origin]) -> list[Finding]:
        info = self.module(module)
        if info is None:
            return []
        out: list[Finding] = []
        seen: set[tuple[str, int]] = set()
        lines = sorted(added)
        for cls in _classes_holding(info.tree, lines):
            for receiver, attr, line in _reads(cls, added):
                if (attr, line) in seen:
                    continue
                seen.add((attr, line))
                model = self.model(info, cls)
                if not model.closed or attr in model.names or self._mentioned(model, attr, module, added):
                    continue
                bases = f" nor its bases ({', '.join(model.chain)})" if model.chain else ""
                out.append(Finding(
                    "attribute-gone", added[line], f"{receiver}.{attr}",
                    f"{cls.name} in {module} as patched has no attribute {attr!r}: nothing defines or assigns it in "
                    f"{cls.name}{bases}, nor mentions it in their modules (an AttributeError when the line runs)",
                    refuses=False, missing=f"{module}:{cls.name}.{attr}"))
        return out

    def _mentioned(self, model: Model, attr: str, own: str, added: dict[int, Origin]) -> bool:
        """Whether a module of the class or a base stores or mentions `attr` on a line this set did not add."""
        for name in model.modules:
            info = self.module(name)
            if info is None:
                return True
            stored, mentions = _words(info)
            if attr in stored:
                return True
            lines = mentions.get(attr, set())
            if any(line not in added for line in lines) if name == own else lines:
                return True
        return False

    # -- class models ------------------------------------------------------------------------------
    def model(self, info: _Module, node: ast.ClassDef, depth: int = 0) -> Model:
        key = id(node)
        if key in self._models:
            return self._models[key]
        model = Model(_body_names(node), not _dynamic(node), {info.name})
        self._models[key] = model  # a cycle of bases meets this (open) model, never recursion
        model.closed = model.closed and depth < _DEPTH
        for base in node.bases:
            found = self._base(info, base, depth)
            model.chain.append(ast.unparse(base))
            if found is None:
                model.closed = False
                continue
            model.names |= found.names
            model.modules |= found.modules
            model.chain += [c for c in found.chain if c not in model.chain]
            model.closed = model.closed and found.closed
        if model.names & {"__getattr__", "__getattribute__"}:
            model.closed = False
        return model

    def _base(self, info: _Module, expr: ast.expr, depth: int) -> Model | None:
        if isinstance(expr, ast.Subscript):  # Generic[T], Base[int]
            expr = expr.value
        parts = _dotted(expr)
        if parts is None:
            return None
        if len(parts) == 1:
            name = parts[0]
            if name in info.classes:
                return self._union([self.model(info, c, depth + 1) for c in info.classes[name]])
            if name in info.imports:
                module, inner = info.imports[name]
                return None if inner is None else self._class(module, inner, depth + 1)
            value = getattr(builtins, name, None)
            return _python_class(value) if isinstance(value, type) else None
        head = info.imports.get(parts[0])
        if head is None:
            return None
        module = head[0] if head[1] is None else f"{head[0]}.{head[1]}"
        return self._class(".".join([module, *parts[1:-1]]), parts[-1], depth + 1)

    def _class(self, module: str, name: str, depth: int) -> Model | None:
        """The model of class `name` as module `module` binds it (following re-exports)."""
        known = _KNOWN.get((module, name))
        if known is not None:
            return _python_class(known)
        if depth > _DEPTH:
            return None
        info = self.module(module)
        if info is None:
            return None
        if name in info.classes:
            return self._union([self.model(info, c, depth) for c in info.classes[name]])
        if name in info.imports:
            target, inner = info.imports[name]
            return None if inner is None else self._class(target, inner, depth + 1)
        return None

    @staticmethod
    def _union(models: list[Model]) -> Model:
        out = Model(set(), all(m.closed for m in models))
        for m in models:
            out.names |= m.names
            out.modules |= m.modules
            out.chain += [c for c in m.chain if c not in out.chain]
        return out


def _python_class(cls: object) -> Model:
    """A class Python defines (a builtin, abc.ABC, typing.Generic): dir() is all it has; object's own
    attribute lookup (`__getattribute__`) is no dynamic attribute."""
    names = set(dir(cls))
    for hook in ("__getattribute__", "__getattr__"):
        if getattr(cls, hook, None) is getattr(object, hook, None):
            names.discard(hook)
    return Model(names, True)


def _classes_holding(tree: ast.Module, lines: list[int]) -> Iterator[ast.ClassDef]:
    """Every class (nested ones too) whose span holds one of the 0-based `lines`: statements only,
    expressions are never entered."""
    for stmt in _statements(tree.body, into_defs=True):
        if isinstance(stmt, ast.ClassDef):
            first, last = stmt.lineno - 1, (stmt.end_lineno or stmt.lineno) - 1
            i = bisect.bisect_left(lines, first)
            if i < len(lines) and lines[i] <= last:
                yield stmt


def _receiver(func: ast.FunctionDef | ast.AsyncFunctionDef) -> str | None:
    """The first parameter's name (self, or cls of a classmethod); None for a staticmethod."""
    if any(_last(d) == "staticmethod" for d in func.decorator_list):
        return None
    params = func.args.posonlyargs + func.args.args
    return params[0].arg if params else None


def _reads(cls: ast.ClassDef, added: dict[int, Origin]) -> Iterator[tuple[str, str, int]]:
    """(receiver, attribute, 0-based line) of each `self.X` read on an added line in the class's methods
    (nested functions and lambdas too, unless they rebind the receiver's name)."""
    for func in _statements(cls.body):
        if not isinstance(func, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        receiver = _receiver(func)
        if receiver is None or not any(func.lineno - 1 <= line < (func.end_lineno or func.lineno) for line in added):
            continue
        if any(isinstance(n, ast.Name) and n.id == receiver and not isinstance(n.ctx, ast.Load) for n in ast.walk(func)):
            continue  # the receiver is reassigned: what it holds is not known
        yield from _receiver_reads(func.body, receiver, added)


def _receiver_reads(nodes: list, receiver: str, added: dict[int, Origin]) -> Iterator[tuple[str, str, int]]:
    stack = list(nodes)
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            args = node.args
            params = args.posonlyargs + args.args + args.kwonlyargs + [a for a in (args.vararg, args.kwarg) if a is not None]
            if any(p.arg == receiver for p in params):
                continue  # shadowed
        if isinstance(node, ast.ClassDef):
            continue  # a nested class's methods have their own receiver
        read = None
        if isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Load):
            read = node
        elif isinstance(node, ast.AugAssign) and isinstance(node.target, ast.Attribute):
            read = node.target
        if read is not None and isinstance(read.value, ast.Name) and read.value.id == receiver and read.lineno - 1 in added:
            yield receiver, read.attr, read.lineno - 1
        stack.extend(ast.iter_child_nodes(node))
