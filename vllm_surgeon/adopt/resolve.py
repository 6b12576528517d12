"""Where a name really lives in a vLLM tree, following the tree's own imports (never importing it).

`from vllm.config import VllmConfig` is defined in `vllm.config.vllm` at 0.13.0 and in
`vllm/config/__init__.py` at 0.11.0; `vllm.LLM` comes from the lazy `MODULE_ATTRS` table; a method
a class does not define may come from a base class. A patch site names what it patches as the file
imports it: this finds the definition an anchored hunk must change.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field

from vllm_surgeon.adopt import bindings
from vllm_surgeon.adopt.bindings import Binding
from vllm_surgeon.adopt.relayout import Text
from vllm_surgeon.core.scopes import ScopeIndex
from vllm_surgeon.core.source import ModuleSource, SourceReader

_MAX_DEPTH = 30


@dataclass
class Found:
    """What a dotted name is in the tree.

    kind: "module", "function", "class", "value" (anything else bound there), "missing" (the module
    is in the tree and has no such name), or "external" (a module the tree does not hold: torch...).
    """

    kind: str
    module: str
    qualname: str = ""
    node: ast.AST | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def target(self) -> str:
        return f"{self.module}:{self.qualname}" if self.qualname else self.module

    @property
    def defined(self) -> bool:
        return self.kind in ("module", "function", "class", "value")


class Resolver:
    """Names in the modules a tree holds under the top-level packages `tops` (others are external)."""

    def __init__(self, read: SourceReader, tops: frozenset[str] = frozenset({"vllm"})) -> None:
        self._read = read
        self.tops = tops
        self._sources: dict[str, ModuleSource | None] = {}
        self._indexes: dict[str, ScopeIndex | None] = {}
        self._layouts: dict[str, Text] = {}
        self._bindings: dict[str, dict[str, list[Binding]]] = {}

    def inside(self, module: str) -> bool:
        return module.split(".", 1)[0] in self.tops

    def source(self, module: str) -> ModuleSource | None:
        if module not in self._sources:
            self._sources[module] = self._read(module) if self.inside(module) else None
        return self._sources[module]

    def tree(self, module: str) -> ast.Module | None:
        index = self.index(module)
        return None if index is None else index.tree

    def index(self, module: str) -> ScopeIndex | None:
        """The module's scopes (its syntax tree with them), parsed once; None when absent or unparsable."""
        if module not in self._indexes:
            source = self.source(module)
            try:
                self._indexes[module] = None if source is None else ScopeIndex(source.text, source.path)
            except SyntaxError:
                self._indexes[module] = None
        return self._indexes[module]

    def layout(self, module: str) -> Text:
        """The module's lines and string continuations, read once (the text hunks are drafted on)."""
        if module not in self._layouts:
            source = self.source(module)
            self._layouts[module] = Text.of(source.text if source is not None else "")
        return self._layouts[module]

    def is_package(self, module: str) -> bool:
        source = self.source(module)
        return source is not None and source.path.replace("\\", "/").endswith("/__init__.py")

    def bindings(self, module: str) -> dict[str, list[Binding]]:
        if module not in self._bindings:
            tree = self.tree(module)
            package = module if self.is_package(module) else module.rpartition(".")[0]
            self._bindings[module] = {} if tree is None else bindings.top_level(tree, package or None)
        return self._bindings[module]

    def resolve(self, dotted: str) -> Found:
        """`vllm.v1.core.sched.scheduler.Scheduler.schedule` -> where it is defined."""
        parts = dotted.split(".")
        for cut in range(len(parts), 0, -1):
            module = ".".join(parts[:cut])
            if self.tree(module) is not None:
                return self.resolve_in(module, parts[cut:])
        return Found("external", dotted)

    def resolve_in(self, module: str, chain: list[str], depth: int = 0) -> Found:
        """The attribute chain `chain` looked up from module `module`."""
        if self.tree(module) is None:
            return Found("external" if not self.inside(module) else "missing", module, ".".join(chain),
                         notes=[] if not self.inside(module) else [f"no module {module} in the tree"])
        if not chain:
            return Found("module", module)
        if depth > _MAX_DEPTH:
            return Found("missing", module, ".".join(chain), notes=["imports go round in a circle"])
        name, rest = chain[0], chain[1:]
        found = self.bindings(module).get(name)
        if not found:
            return self._unbound(module, name, rest, depth)
        return self._bound(module, _preferred(found), rest, depth)

    def _bound(self, module: str, binding: Binding, rest: list[str], depth: int) -> Found:
        """What `module`'s binding of a name is, then `rest` looked up in it."""
        name = binding.name
        if binding.kind in ("def", "class"):
            return self._member(module, binding.node, name, rest, depth)
        if binding.kind == "import" and binding.module:
            return self._follow(binding.module, rest, depth, f"{module}.{name} is the module {binding.module}")
        if binding.kind == "from" and binding.module and binding.attr:
            if self.tree(f"{binding.module}.{binding.attr}") is not None and not self.bindings(binding.module).get(binding.attr):
                return self._follow(f"{binding.module}.{binding.attr}", rest, depth, "")
            result = self.resolve_in(binding.module, [binding.attr] + rest, depth + 1)
            if result.defined:
                result.notes.append(f"re-exported by {module}")
            return result
        if binding.kind == "assign" and isinstance(binding.node, ast.Assign | ast.AnnAssign):
            alias = attribute_chain(binding.node.value) if binding.node.value is not None else None
            if alias and alias != [name]:
                result = self.resolve_in(module, alias + rest, depth + 1)
                result.notes.append(f"{module}.{name} = {'.'.join(alias)}")
                return result
        if rest:
            return Found("missing", module, ".".join([name] + rest), notes=[f"{module}.{name} is a value, not a class"])
        return Found("value", module, name, binding.node)

    def _follow(self, module: str, rest: list[str], depth: int, note: str) -> Found:
        result = self.resolve_in(module, rest, depth + 1)
        if note and result.defined:
            result.notes.append(note)
        return result

    def _unbound(self, module: str, name: str, rest: list[str], depth: int) -> Found:
        """A name the module does not bind itself: a submodule, a lazy attribute, a star import."""
        if self.tree(f"{module}.{name}") is not None:
            return self.resolve_in(f"{module}.{name}", rest, depth + 1)
        lazy = _lazy_attributes(self.tree(module))
        if name in lazy:
            where, _, attr = lazy[name].partition(":")
            level = len(where) - len(where.lstrip("."))
            package = module if self.is_package(module) else module.rpartition(".")[0]
            absolute = bindings.absolute(where.lstrip(".") or None, level, package) if level else where
            if absolute:
                result = self.resolve_in(absolute, [attr or name] + rest, depth + 1)
                result.notes.append(f"lazy attribute of {module}")
                return result
        for star in self.bindings(module).get("*", []):
            if star.module and self.tree(star.module) is not None:
                result = self.resolve_in(star.module, [name] + rest, depth + 1)
                if result.defined:
                    return result
        return Found("missing", module, ".".join([name] + rest), notes=[f"{module} has no {name}"])

    def _member(self, module: str, node: ast.AST, qualname: str, rest: list[str], depth: int) -> Found:
        """A def or class, then the members named by `rest`, looked up in base classes too."""
        if not rest:
            return Found("class" if isinstance(node, ast.ClassDef) else "function", module, qualname, node)
        if not isinstance(node, ast.ClassDef):
            return Found("missing", module, f"{qualname}.{'.'.join(rest)}", notes=[f"{qualname} is a function"])
        members = bindings.top_level(ast.Module(body=node.body, type_ignores=[]), None)
        name = rest[0]
        if name in members:
            member = _preferred(members[name])
            if member.kind in ("def", "class"):
                return self._member(module, member.node, f"{qualname}.{name}", rest[1:], depth)
            return Found("value", module, f"{qualname}.{name}", member.node)
        for base in node.bases:
            chain = attribute_chain(base.value if isinstance(base, ast.Subscript) else base)
            if not chain or depth > _MAX_DEPTH:
                continue
            owner = self.resolve_in(module, chain, depth + 1)
            if owner.kind == "class" and owner.node is not None:
                result = self._member(owner.module, owner.node, owner.qualname, rest, depth + 1)
                if result.defined:
                    result.notes.append(f"inherited by {module}:{qualname} from {owner.target}")
                    return result
        return Found("missing", module, f"{qualname}.{'.'.join(rest)}", node,
                     notes=[f"{module}:{qualname} has no {name}"])


def _preferred(found: list[Binding]) -> Binding:
    """The binding a reader sees: the last unconditional one, else the last written."""
    plain = [b for b in found if not b.conditional]
    return (plain or found)[-1]


def attribute_chain(node: ast.AST | None) -> list[str] | None:
    """`a.b.c` -> ['a', 'b', 'c']; None for anything that is not names and attributes."""
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.insert(0, node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        return [node.id] + parts
    return None


def _lazy_attributes(tree: ast.Module | None) -> dict[str, str]:
    """A module's `MODULE_ATTRS = {"LLM": ".entrypoints.llm:LLM", ...}` table (vllm/__init__.py)."""
    out: dict[str, str] = {}
    for stmt in tree.body if tree is not None else []:
        target = stmt.targets[0] if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 else getattr(stmt, "target", None)
        value = getattr(stmt, "value", None)
        if isinstance(target, ast.Name) and target.id in ("MODULE_ATTRS", "_LAZY_IMPORTS") and isinstance(value, ast.Dict):
            for key, item in zip(value.keys, value.values, strict=True):
                if isinstance(key, ast.Constant) and isinstance(item, ast.Constant) and isinstance(item.value, str):
                    out[str(key.value)] = item.value
    return out
