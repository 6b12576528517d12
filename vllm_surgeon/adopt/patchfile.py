"""A monkey-patch file, read statically: its text, its functions by qualified name, its imports.

It is never imported (issue 16: patch packages import torch_npu, MindSpore, Habana...). Its module
name comes from the folders above it that hold an `__init__.py`, so relative imports can be made
absolute for the import lines an adoption adds to vLLM's module.
"""

from __future__ import annotations

import ast
import importlib.util
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from vllm_surgeon.adopt.bindings import Binding, module_name, top_level
from vllm_surgeon.adopt.relayout import Text
from vllm_surgeon.core.scopes import Scope, ScopeIndex


class AdoptInputError(ValueError):
    """Bad input to `adopt` (exit 2): a missing or unparsable file, a name it does not define, a
    malformed target. The message names the file and line, or the value, at fault."""


@dataclass
class PatchFile:
    """One Python file of a patch package."""

    path: Path
    text: str
    tree: ast.Module
    module: str | None  # dotted name from the package folders above it; None when it is in no package
    is_package: bool = False
    _index: ScopeIndex | None = field(default=None, repr=False)

    @classmethod
    def read(cls, path: Path) -> PatchFile:
        if not path.is_file():
            raise AdoptInputError(f"{path}: no such file" if not path.exists() else f"{path}: not a file")
        try:
            text = importlib.util.decode_source(path.read_bytes())
        except (OSError, UnicodeDecodeError, SyntaxError) as exc:
            raise AdoptInputError(f"{path}: cannot be read: {exc}") from None
        try:
            tree = ast.parse(text, filename=str(path))
        except SyntaxError as exc:
            raise AdoptInputError(f"{path}:{exc.lineno or 1}: does not parse: {exc.msg}") from None
        module, is_package = _module_of(path)
        return cls(path, text, tree, module, is_package)

    def rename(self, module: str) -> None:
        """Name the file's module (discovery learns it from how other files import it)."""
        self.module = module
        self.__dict__.pop("bindings", None)  # relative imports are read from the package anew

    @property
    def label(self) -> str:
        return str(self.path)

    @cached_property
    def layout(self) -> Text:
        return Text.of(self.text)

    @property
    def index(self) -> ScopeIndex:
        if self._index is None:
            self._index = ScopeIndex(self.text, str(self.path))
        return self._index

    @property
    def package(self) -> str | None:
        """The package relative imports start from."""
        if self.module is None:
            return None
        return self.module if self.is_package else self.module.rpartition(".")[0] or None

    @cached_property
    def bindings(self) -> dict[str, list[Binding]]:
        return top_level(self.tree, self.package)

    def binding(self, name: str) -> Binding | None:
        """The one top-level binding of `name` (the last one written, as Python would leave it)."""
        found = self.bindings.get(name)
        return found[-1] if found else None

    def dotted(self, chain: list[str]) -> str | None:
        """The absolute dotted name `a.b.c` means in this file through its top-level imports
        (None: the first name is not imported here)."""
        binding = self.binding(chain[0])
        if binding is None or binding.module is None:
            return None
        if binding.kind == "import":
            return ".".join([binding.module] + chain[1:])
        if binding.kind == "from" and binding.attr:
            return ".".join([binding.module, binding.attr] + chain[1:])
        return None

    def definitions(self, qualname: str) -> list[Scope]:
        return self.index.find(qualname)

    def function(self, qualname: str) -> tuple[ast.FunctionDef | ast.AsyncFunctionDef, Scope]:
        """The def named `qualname` (`Class.method`, `outer.<locals>.inner`); AdoptInputError otherwise."""
        scopes = self.definitions(qualname)
        if not scopes:
            raise AdoptInputError(f"{self.path}: defines no {qualname}{self.index.similar(qualname)}")
        if len(scopes) > 1:
            lines = ", ".join(str(s.start + 1) for s in scopes)
            raise AdoptInputError(f"{self.path}: {qualname} is defined {len(scopes)} times (lines {lines}); name one that is defined once")
        scope = scopes[0]
        if not isinstance(scope.node, ast.FunctionDef | ast.AsyncFunctionDef):
            raise AdoptInputError(f"{self.path}:{scope.start + 1}: {qualname} is a class; adopt takes a function (Class.method)")
        return scope.node, scope

    def holder(self, scope: Scope) -> Scope | None:
        """The class a def sits in (None: a module-level or nested function)."""
        qualname = scope.qualname.rpartition(".")[0]
        if not qualname or qualname.endswith("<locals>"):
            return None
        found = [s for s in self.index.find(qualname) if s.kind == "class"]
        return found[0] if found else None


def _module_of(path: Path) -> tuple[str | None, bool]:
    """`a/pkg/sub/mod.py` (pkg and sub holding `__init__.py`) -> ("pkg.sub.mod", False)."""
    path = path.absolute()
    parts = [path.stem]
    folder = path.parent
    while (folder / "__init__.py").is_file() and folder.name.isidentifier():
        parts.insert(0, folder.name)
        folder = folder.parent
    if len(parts) == 1 and path.stem != "__init__":
        return (path.stem if path.stem.isidentifier() else None), False
    if path.stem == "__init__" and len(parts) == 1:
        return None, True
    return module_name(parts), path.stem == "__init__"


def split_node_id(spec: str) -> tuple[Path, str]:
    """`path/to/file.py::Class.method` (pytest's node-id convention) -> (path, qualname)."""
    path, sep, qualname = spec.rpartition("::")
    if not sep or not path or not qualname:
        raise AdoptInputError(f"{spec!r}: expected FILE::QUALNAME, e.g. my_patches/sched.py::Scheduler.schedule")
    if not all(p.isidentifier() or p == "<locals>" for p in qualname.split(".")):
        raise AdoptInputError(f"{spec!r}: {qualname!r} is not a qualified name like Class.method")
    return Path(path), qualname
