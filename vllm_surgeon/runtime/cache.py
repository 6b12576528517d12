"""On-disk cache of patched, compiled modules, so each vLLM process skips parsing and compiling.

Modeled on pytest's assertion-rewrite cache, hardened for processes that run as root (issue 7
items 1-3). The key is everything the result depends on (Python, vllm-surgeon and its engine's
code, the exact bytes every set was parsed from, every target module's path and source text, the
vLLM version). An entry is believed only if all of these hold, else it is a miss with a reason:
- every directory from the entry up to the cache root is ours and writable by no one else, and
  every directory above the root is ours or root's and writable by no one else unless sticky
  (another user who can write a directory on the path could swap what we read); judged by
  core/trust.py, the rule the set reader uses too (issue 13), on descriptors opened from `/`;
- the entry is opened once, without following symlinks and without blocking (a FIFO), and what
  is checked (a regular file, ours, writable by no one else) is the open file that is then read;
- its payload matches the digest stored with it, and it holds exactly the modules planned, each
  patched by exactly the sets planned.
Writes are atomic (a private temporary file, then rename). Stale temporary files of killed writers
are removed and the least recently used entries evicted past a size or count cap: only when an
entry is written (a miss), never on the hit path, and only files it wrote (by name and header). An unusable directory only costs the write.
"""

from __future__ import annotations

import hashlib
import marshal
import os
import re
import stat
import sys
import time
import types
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from vllm_surgeon.core import trust as _trust
from vllm_surgeon.core.model import HunkSet
from vllm_surgeon.core.source import ModuleSource
from vllm_surgeon.core.version import __version__
from vllm_surgeon.engine.linemap import Compiled
from vllm_surgeon.engine.results import PatchedModule

# The layers whose code decides what a set turns a module into: reading sets, matching, planning
# (issue 15: a hand-kept list of module names missed one and let a renamed file drop out of the key).
_PLANNING_LAYERS = ("core", "sets", "matching", "engine")
_FORMAT = 3
_MAGIC = b"vllm-surgeon code cache\n"
_DIGEST = hashlib.sha256().digest_size
MAX_ENTRY_BYTES = 64 * 1024 * 1024
MAX_ENTRIES = 64
MAX_TOTAL_BYTES = 512 * 1024 * 1024
STALE_TMP_SECONDS = 600  # a writer takes milliseconds: a temporary file this old was left by a kill
TOUCH_SECONDS = 3600  # a hit refreshes its entry's mtime (the LRU clock) at most this often

# The only names this cache writes in its folder: entries (the key) and its writers' temporary files.
_ENTRY_NAME = re.compile(r"[0-9a-f]{64}\.bin\Z")
_TMP_NAME = re.compile(r"\.tmp-[0-9]+-[0-9a-f]{12}\Z")
_FLAGS = getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)


def cache_root() -> Path:
    from vllm_surgeon.trees.releases import cache_dir as root

    return root()


def cache_dir() -> Path:
    return cache_root() / "code"


def key(sets: Sequence[HunkSet], sources: dict[str, ModuleSource], vllm_version: str | None) -> str | None:
    """The key of a plan of `sets` on `sources`; None when a set carries no digest of its bytes."""
    if any(not s.digest for s in sets):
        return None
    digest = hashlib.sha256()
    for part in (sys.version, sys.implementation.cache_tag or "", __version__, str(_FORMAT), vllm_version or ""):
        digest.update(part.encode() + b"\0")
    digest.update(_planning_code_digest())
    for s in sets:
        digest.update(f"{s.name}\0{s.path}\0{s.digest}\0".encode())
    for module in sorted(sources):
        source = sources[module]
        digest.update(f"{module}\0{source.path}\0".encode() + source.text.encode("utf-8", "surrogatepass") + b"\0")
    return digest.hexdigest()


def _planning_code_digest() -> bytes:
    """A digest of every source file of the planning layers, by path inside the package.

    Raises RuntimeError when a layer is missing or empty: a key that silently left out the code
    that decides the result would serve stale modules after an upgrade.
    """
    package = Path(__file__).resolve().parent.parent
    digest = hashlib.sha256()
    for layer in _PLANNING_LAYERS:
        files = sorted((package / layer).glob("*.py"))
        if not any(f.name != "__init__.py" for f in files):
            raise RuntimeError(f"vllm-surgeon is incomplete: no modules in {package / layer} (reinstall it)")
        for path in files:
            digest.update(f"{layer}/{path.name}\0".encode() + path.read_bytes() + b"\0")
    return digest.digest()


def planned_modules(sets: Sequence[HunkSet]) -> dict[str, tuple[str, ...]]:
    """Each module the sets change -> the names of the sets that change it, in order: what a hit must hold."""
    modules: dict[str, tuple[str, ...]] = {}
    for s in sets:
        for module in s.modules:
            modules[module] = modules.get(module, ()) + (s.name,)
    return modules


class UnsafeDirectory(Exception):
    """A directory on the way to the cache that someone else could change."""


def _euid() -> int | None:
    return os.geteuid() if hasattr(os, "geteuid") else None


def _rules(root: Path) -> Callable[[str], _trust.Rule]:
    """Inside the cache root: this user's and writable by no one else. Above it: this user's or root's,
    and writable by others only when sticky (/tmp: others cannot rename or remove what is ours there)."""
    me = os.geteuid()
    real_root = os.path.realpath(root)
    inside = _trust.Rule(frozenset({me}), sticky_above=False)
    above = _trust.Rule(frozenset({me, 0}), sticky_above=True, sticky_place=True)

    def rule(path: str) -> _trust.Rule:
        return inside if path == real_root or path.startswith(real_root.rstrip("/") + "/") else above

    return rule


def _check_chain(directory: Path, root: Path) -> None:
    """Check `directory` and every directory above it (see the module docstring); UnsafeDirectory if
    one is not safe, FileNotFoundError if one is missing."""
    if not _trust.SUPPORTED:
        return
    with _trust.Walker(_rules(root)) as walker:
        problems = _walked(walker.check_dir, directory)
    if problems:
        raise UnsafeDirectory(str(problems[0]))


def _walked(step: Callable[[Path], Any], directory: Path) -> Any:
    """`step(directory)`, an OSError on the way (other than a missing directory) an UnsafeDirectory."""
    try:
        return step(directory)
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise UnsafeDirectory(f"{exc.filename or directory}: {exc.strerror or exc}") from None


def _open_dir(directory: Path, root: Path) -> int | None:
    """A descriptor of `directory`, opened by a walk from `/` that checked it and every directory above
    it (core/trust.py); None where the OS has no descriptor walks (nothing is checked there)."""
    if not _trust.SUPPORTED:
        return None
    with _trust.Walker(_rules(root)) as walker:
        opened = _walked(walker.open_dir, directory)
    if opened.problems:
        os.close(opened.fd)
        raise UnsafeDirectory(str(opened.problems[0]))
    return opened.fd


def _read_fd(fd: int, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        chunk = os.read(fd, 1 << 20)
        if not chunk:
            return b"".join(chunks)
        size += len(chunk)
        if size > limit:
            raise ValueError(f"larger than {limit} bytes")
        chunks.append(chunk)


class CodeCache:
    """One lookup or store; `reason` says why the last lookup missed (or that it hit)."""

    def __init__(self, directory: Path | None = None, root: Path | None = None) -> None:
        self.directory = directory or cache_dir()
        self.root = root or (self.directory.parent if directory is not None else cache_root())
        self.reason = "not looked up"
        self.targets: dict[str, tuple[str, ...]] = {}  # set name -> targets as located (diff hunks: functions)

    # -- reading ----------------------------------------------------------------------------
    def load(
        self, entry_key: str, sources: dict[str, ModuleSource], planned: dict[str, tuple[str, ...]]
    ) -> dict[str, PatchedModule] | None:
        """The modules stored under `entry_key`, if the entry is safe, intact and holds exactly `planned`."""
        name = f"{entry_key}.bin"
        try:
            dir_fd = _open_dir(self.directory, self.root)
        except FileNotFoundError:
            self.reason = "miss: no entry"
            return None
        except UnsafeDirectory as exc:
            self.reason = f"miss: cache directory not safe, ignored ({exc})"
            return None
        except OSError as exc:
            self.reason = f"miss: cache directory unreadable ({exc.strerror or exc})"
            return None
        try:
            flags = os.O_RDONLY | _NOFOLLOW | getattr(os, "O_NONBLOCK", 0) | _FLAGS
            try:
                fd = os.open(name, flags, dir_fd=dir_fd) if dir_fd is not None else os.open(self.directory / name, flags)
            except FileNotFoundError:
                self.reason = "miss: no entry"
                return None
            except OSError as exc:
                link = os.path.islink(self.directory / name)
                self.reason = "miss: entry is a symlink, ignored" if link else f"miss: unreadable ({exc.strerror or exc})"
                return None
            try:
                data = self._checked_read(fd)
                if data is None:
                    return None
            finally:
                os.close(fd)
        finally:
            if dir_fd is not None:
                os.close(dir_fd)
        try:
            modules, targets = self._decode(data, entry_key, sources, planned)
        except Exception as exc:  # corrupt, truncated, or written by something else
            self.reason = f"miss: corrupt entry ({type(exc).__name__}: {exc})"
            return None
        self.targets = targets
        self.reason = "hit"
        return modules

    def _checked_read(self, fd: int) -> bytes | None:
        """The entry's bytes, read from the open file that passed the checks; None (reason set) if it did not."""
        info = os.fstat(fd)
        euid = _euid()
        ours = _trust.Rule(frozenset({info.st_uid if euid is None else euid}))  # as the directories inside the root
        if not stat.S_ISREG(info.st_mode):
            self.reason = "miss: entry is not a regular file, ignored"
        elif _trust.owner_problem("entry", info, ours):
            self.reason = "miss: entry owned by another user, ignored"
        elif _trust.write_problem("entry", info, ours, _trust.readonly(fd)):
            self.reason = "miss: entry writable by others, ignored"
        elif info.st_size > MAX_ENTRY_BYTES:
            self.reason = f"miss: entry larger than {MAX_ENTRY_BYTES} bytes, ignored"
        else:
            try:
                data = _read_fd(fd, MAX_ENTRY_BYTES)
            except (OSError, ValueError) as exc:
                self.reason = f"miss: unreadable ({exc})"
                return None
            if time.time() - info.st_mtime > TOUCH_SECONDS:
                try:  # the LRU clock for eviction; a read-only cache just does not record it
                    os.utime(fd)
                except (OSError, NotImplementedError, TypeError):
                    pass
            return data
        return None

    @staticmethod
    def _decode(
        data: bytes, entry_key: str, sources: dict[str, ModuleSource], planned: dict[str, tuple[str, ...]]
    ) -> tuple[dict[str, PatchedModule], dict[str, tuple[str, ...]]]:
        """The modules (and each set's located targets) of an intact entry that holds exactly `planned`."""
        head = len(_MAGIC) + _DIGEST
        if len(data) < head or not data.startswith(_MAGIC):
            raise ValueError("not a vllm-surgeon cache entry")
        payload = data[head:]
        if hashlib.sha256(payload).digest() != data[len(_MAGIC) : head]:
            raise ValueError("payload does not match its digest")
        entry = marshal.loads(payload)
        if not isinstance(entry, dict) or entry.get("format") != _FORMAT or entry.get("key") != entry_key:
            raise ValueError("another format or key")
        stored = entry["modules"]
        if set(stored) != set(planned):
            raise ValueError(f"holds modules {sorted(stored)}, the plan changes {sorted(planned)}")
        modules = {}
        for name, (origin, display, code, sets, blame) in stored.items():
            if origin != sources[name].path:
                raise ValueError(f"{name} now lives elsewhere")
            if tuple(sets) != planned[name]:
                raise ValueError(f"{name} was patched by {list(sets)}, the plan applies {list(planned[name])}")
            if not isinstance(code, types.CodeType) or not isinstance(display, str) or not isinstance(blame, dict):
                raise ValueError(f"{name}: malformed")
            # From the cache: what the import hook needs. In-place patching plans afresh.
            modules[name] = PatchedModule.cached(sources[name], tuple(sets), Compiled(display, code, None, [], blame))
        stored_targets = entry.get("targets", {})
        if not isinstance(stored_targets, dict):
            raise ValueError("malformed targets")
        targets = {str(k): tuple(str(t) for t in v) for k, v in stored_targets.items()}
        return modules, targets

    # -- writing ----------------------------------------------------------------------------
    def store(self, entry_key: str, modules: dict[str, PatchedModule], targets: dict[str, tuple[str, ...]] | None = None) -> None:
        payload = marshal.dumps({
            "format": _FORMAT,
            "key": entry_key,
            "modules": {
                name: (m.source.path, m.compiled.display, m.compiled.code, list(m.sets), dict(m.compiled.blame))
                for name, m in modules.items()
            },
            "targets": {name: list(t) for name, t in (targets or {}).items()},
        })
        data = _MAGIC + hashlib.sha256(payload).digest() + payload
        try:
            self._make_dirs()
            dir_fd = _open_dir(self.directory, self.root)
        except (OSError, UnsafeDirectory) as exc:
            self.reason += f"; not stored ({exc})"
            return
        try:
            self._write(dir_fd, f"{entry_key}.bin", data)
            self._tidy(dir_fd, keep=f"{entry_key}.bin")
        except OSError as exc:
            self.reason += f"; not stored ({exc})"
            return
        finally:
            if dir_fd is not None:
                os.close(dir_fd)
        self.reason += "; stored"

    def _make_dirs(self) -> None:
        """Create the missing directories down to ours, each private to this user (whatever the umask),
        once the deepest existing one is checked: nothing is created where we would not read."""
        missing = []
        path = Path(os.path.abspath(self.directory))
        while not os.path.lexists(path):
            missing.append(path)
            if path.parent == path:
                break
            path = path.parent
        if missing:
            _check_chain(path, self.root)
        for path in reversed(missing):
            try:
                os.mkdir(path, 0o700)
            except FileExistsError:
                pass

    def _at(self, name: str, dir_fd: int | None) -> tuple[str | Path, dict]:
        return (name, {"dir_fd": dir_fd}) if dir_fd is not None else (self.directory / name, {})

    def _write(self, dir_fd: int | None, name: str, data: bytes) -> None:
        tmp = f".tmp-{os.getpid()}-{os.urandom(6).hex()}"
        target, kw = self._at(tmp, dir_fd)
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW | _FLAGS, 0o600, **kw)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            final, _ = self._at(name, dir_fd)
            if dir_fd is not None:
                os.replace(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
            else:
                os.replace(target, final)
        except BaseException:
            try:
                os.unlink(target, **kw)
            except OSError:
                pass
            raise

    def _tidy(self, dir_fd: int | None, keep: str) -> None:
        """Remove stale temporary files and evict the least recently used entries past the caps."""
        now = time.time()
        euid = _euid()
        entries: list[tuple[float, int, str]] = []
        with os.scandir(dir_fd if dir_fd is not None else self.directory) as it:
            for item in it:
                try:
                    info = item.stat(follow_symlinks=False)
                except OSError:
                    continue
                if not stat.S_ISREG(info.st_mode) or (euid is not None and info.st_uid != euid):
                    continue
                if _TMP_NAME.match(item.name):
                    if now - info.st_mtime > STALE_TMP_SECONDS:
                        self._remove(item.name, dir_fd)
                elif _ENTRY_NAME.match(item.name) and item.name != keep and self._is_entry(item.name, dir_fd):
                    entries.append((info.st_mtime, info.st_size, item.name))
        entries.sort()
        count = len(entries) + 1
        total = sum(size for _, size, _ in entries)
        for _, size, name in entries:
            if count <= MAX_ENTRIES and total <= MAX_TOTAL_BYTES:
                break
            self._remove(name, dir_fd)
            count -= 1
            total -= size

    def _is_entry(self, name: str, dir_fd: int | None) -> bool:
        """Whether file `name` begins as this cache's entries do: eviction removes only its own files
        (issue 13: it deleted any *.bin someone kept in the folder)."""
        target, kw = self._at(name, dir_fd)
        try:
            fd = os.open(target, os.O_RDONLY | _NOFOLLOW | getattr(os, "O_NONBLOCK", 0) | _FLAGS, **kw)
        except OSError:
            return False
        try:
            return os.read(fd, len(_MAGIC)) == _MAGIC
        except OSError:
            return False
        finally:
            os.close(fd)

    def _remove(self, name: str, dir_fd: int | None) -> None:
        target, kw = self._at(name, dir_fd)
        try:
            os.unlink(target, **kw)
        except OSError:
            pass
