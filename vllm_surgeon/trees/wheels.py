"""The one reader of wheel files (issue 15: it was written twice): vLLM's for `--against`, other
packages' for `--with`. A wheel is a zip read member by member, never installed.

A wheel is input from anywhere: a member that is corrupt (bad CRC), encrypted, compressed in a way
zipfile cannot read, or larger than any source file (issue 13: a 1.5 MB wheel holding 1.5 GB of `#`
took 3.2 GB of memory) is a WheelError naming the wheel and the member, never a traceback.
"""

from __future__ import annotations

import importlib.util
import zipfile
import zlib
from pathlib import Path

from vllm_surgeon.core.source import MAX_SOURCE_BYTES, ModuleSource, TreeReader
from vllm_surgeon.trees.definitions import DefinitionIndex, build, cache_path, cached, fingerprint, module_of_member
from vllm_surgeon.trees.forms import form_in_listing

# What zipfile raises for a member it cannot give back: a bad CRC or a broken stream (BadZipFile,
# zlib.error, EOFError), an encrypted member (RuntimeError), an unknown compression (NotImplementedError).
_UNREADABLE = (zipfile.BadZipFile, zlib.error, EOFError, RuntimeError, NotImplementedError, OSError, ValueError)


class WheelError(ValueError):
    """A wheel that cannot be read: not a zip, or a member that cannot be, named."""


class Wheel:
    """One wheel file, open for reading its members."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self._zip = zipfile.ZipFile(path)
            self.names = {info.filename: info for info in self._zip.infolist()}
        except (*_UNREADABLE, zipfile.LargeZipFile) as exc:
            raise WheelError(f"{path}: not a readable wheel ({exc})") from None

    def read(self, member: str) -> bytes:
        """The bytes of `member`, at most MAX_SOURCE_BYTES (the limit of set files too)."""
        info = self.names[member]
        where = f"{self.path}: member {member}"
        if info.file_size > MAX_SOURCE_BYTES:
            raise WheelError(f"{where} is {info.file_size} bytes, larger than any source file read "
                             f"(the limit is {MAX_SOURCE_BYTES}); a damaged or hostile wheel")
        try:
            with self._zip.open(info) as f:
                data = f.read(MAX_SOURCE_BYTES + 1)
        except _UNREADABLE as exc:
            raise WheelError(f"{where} cannot be read ({type(exc).__name__}: {exc}); a damaged wheel: download it again") from None
        if len(data) > MAX_SOURCE_BYTES:  # cannot happen past zipfile's own size check; never trust a header
            raise WheelError(f"{where} holds more than {MAX_SOURCE_BYTES} bytes")
        return data

    def module(self, module: str) -> ModuleSource | None:
        """The source of `module` (`a.b` as `a/b.py` or `a/b/__init__.py`), or None when the wheel has none."""
        base = module.replace(".", "/")
        for member in (f"{base}.py", f"{base}/__init__.py"):
            if member in self.names:
                try:
                    text = importlib.util.decode_source(self.read(member))
                except (SyntaxError, UnicodeDecodeError) as exc:  # a bad coding cookie, bytes that are not text
                    raise WheelError(f"{self.path}: member {member} is not Python source text ({exc})") from None
                return ModuleSource(module, f"{self.path}!/{member}", text)
        return None

    def form(self, module: str) -> str | None:
        """What `module` is in the wheel in any importable form (an extension `vllm/_C.abi3.so` too), or None."""
        return form_in_listing(self.names, module, str(self.path))

    def reader(self) -> TreeReader:
        """Its modules' sources, and their forms (issue 13: no set creates a module over an extension)."""
        return TreeReader(self.module, self.form, self.definitions)

    def definitions(self) -> DefinitionIndex:
        """Every definition of its Python modules, from the cache beside the wheel or built (issue 14)."""
        tops = self.tops()
        members = {n: i for n, i in self.names.items() if n.split("/", 1)[0] in tops and module_of_member(n)}
        stamp = fingerprint((n, i.file_size, i.CRC) for n, i in members.items())
        modules = [m for n in members if (m := module_of_member(n)) is not None]
        return cached(cache_path(self.path), stamp, lambda: build(modules, self.module))

    def tops(self) -> set[str]:
        """The top-level packages and modules it installs."""
        packages = {n.split("/", 1)[0] for n in self.names if "/" in n}
        modules = {n[:-3] for n in self.names if "/" not in n and n.endswith(".py")}
        return {p for p in packages if not p.endswith((".dist-info", ".data"))} | modules

    def version(self) -> str | None:
        """The `Version:` of its METADATA, if it has one."""
        for name in self.names:
            if name.endswith(".dist-info/METADATA") and name.count("/") == 1:
                for line in self.read(name).decode("utf-8", "replace").splitlines():
                    if line.startswith("Version:"):
                        return line.split(":", 1)[1].strip()
                return None
        return None
